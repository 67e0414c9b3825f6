"""Findings, one list for every view: what the operator must be told, opened and resolved.

The watchdog (:mod:`services.domain.watchdog`) judges missing and repeated events; this module
judges every other thing an operator asks to be told of (issue 21) and keeps the one list:

==================  ==========  =============================================================
kind                severity    open while / resolved when
==================  ==========  =============================================================
``missed-run``      critical    an expected run has no Resource Graph row ``missed_after``
                                after its start / the run shows up
``missing-pre``     error       no pre-event by T-25 (the watchdog) / a (late) pre-event came
``missing-post``    warning     no post-event by end + grace (the watchdog) / it came
``run-failed``      error       the run's status is Failed (final: never resolved)
``machines-failed`` warning     some machines failed in a run that did not fail as a whole
``empty-run``       warning     a run Resource Graph shows with no machines / machines appear
``overrun``         warning     still in progress after its window's end / it finished
``window-open``     info        the run's cancel window is open / it closed
``wiring``          warning     a configuration with a run in the next 24 h whose Event Grid
                                verdict is not ok / the verdict is ok again
``source-down``     error       a source failing for more than ``source_down_after`` / it
                                answers again
``route-failing``   error       an alert route failed after its retries / it delivers again
``duplicate``       info        an event was delivered twice (the watchdog; never resolved)
==================  ==========  =============================================================

Each finding has a stable key (kind + run or configuration id; a source's or a route's
outage adds when it began, so a later outage is a finding of its own). Rules judge only what
they can: a rule that cannot see (a source it depends on was never read, a deadline before
the watch began minus ``lookback``) says nothing, and a finding it said nothing of keeps its
state. A resolved finding stays resolved (its key is remembered).

Pure: no I/O; ``now`` is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from services.domain.clock import iso_z
from services.domain.model import Configuration, Run
from services.domain.runs import run_phase
from services.domain.watchdog import (
    DEFAULT_LOOKBACK,
    PRE_EVENT_DEADLINE,
    Arrivals,
    check_runs,
)
from services.domain.watchdog import Finding as WatchdogFinding
from services.domain.window import Phase, WindowRules

if TYPE_CHECKING:
    from services.domain.dashboard import DashboardState

Severity = Literal["info", "warning", "error", "critical"]
#: PagerDuty's severities, least first (``min_severity`` of a route compares with these).
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error", "critical")
#: Every finding kind, as routes name them in ``on``.
KINDS = ("missed-run", "missing-pre", "missing-post", "run-failed", "machines-failed",
         "empty-run", "overrun", "window-open", "wiring", "source-down", "route-failing",
         "duplicate")
SEVERITY_OF: Mapping[str, Severity] = {
    "missed-run": "critical", "missing-pre": "error", "missing-post": "warning",
    "run-failed": "error", "machines-failed": "warning", "empty-run": "warning",
    "overrun": "warning", "window-open": "info", "wiring": "warning",
    "source-down": "error", "route-failing": "error", "duplicate": "info",
}
#: ``[alerts] missed_after``: how long after its start a run without a Resource Graph row is
#: a missed run (Resource Graph lags by minutes: less would cry wolf).
DEFAULT_MISSED_AFTER = timedelta(minutes=15)
#: ``[alerts] source_down_after``: how long a source may fail before it is a finding.
DEFAULT_SOURCE_DOWN_AFTER = timedelta(minutes=10)
#: A configuration's wiring matters when it has a run starting this soon.
WIRING_HORIZON = timedelta(hours=24)
#: Resolved keys remembered (so a resolved finding does not open again).
MAX_REMEMBERED = 20_000

#: The sources each rule needs read at least once before it may judge anything.
RUN_SOURCES = frozenset({"configs", "runs"})
EVENT_SOURCES = frozenset({"configs", "runs", "events"})
WIRING_SOURCES = frozenset({"configs", "wiring"})

State = Literal["open", "resolved"]


def severity_rank(severity: str) -> int:
    """``info`` 0 < ``warning`` 1 < ``error`` 2 < ``critical`` 3 (unknown: -1)."""
    try:
        return SEVERITIES.index(severity)  # type: ignore[arg-type]
    except ValueError:
        return -1


@dataclass(frozen=True)
class Alert:
    """One finding in the one list. ``resolved_at`` is None while it is open."""

    kind: str
    key: str
    severity: Severity
    summary: str
    configuration_name: str | None
    run_id: str | None
    opened_at: datetime
    resolved_at: datetime | None = None
    configuration_id: str | None = None

    @property
    def state(self) -> State:
        """``open`` or ``resolved``."""
        return "open" if self.resolved_at is None else "resolved"

    @property
    def at(self) -> datetime:
        """When it reached its present state."""
        return self.resolved_at or self.opened_at

    def to_json(self) -> dict[str, Any]:
        """The line ``aumwatch watch`` prints (and a webhook receives)."""
        return {"kind": self.kind, "key": self.key, "severity": self.severity,
                "summary": self.summary, "configuration_name": self.configuration_name,
                "run_id": self.run_id, "state": self.state, "at": iso_z(self.at),
                "opened_at": iso_z(self.opened_at)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Alert:
        """Back from :meth:`to_json` (the journal keeps that)."""
        opened = datetime.fromisoformat(str(data.get("opened_at") or data["at"]).replace(
            "Z", "+00:00"))
        resolved = None
        if data.get("state") == "resolved":
            resolved = datetime.fromisoformat(str(data["at"]).replace("Z", "+00:00"))
        severity = data.get("severity")
        return cls(kind=str(data["kind"]), key=str(data["key"]),
                   severity=severity if severity in SEVERITIES else "error",
                   summary=str(data.get("summary", "")),
                   configuration_name=data.get("configuration_name"),
                   run_id=data.get("run_id"), opened_at=opened, resolved_at=resolved)


@dataclass(frozen=True)
class Judgement:
    """What one rule says of one finding now: ``open`` (with what to tell) or not."""

    kind: str
    key: str
    open: bool
    summary: str = ""
    configuration_name: str | None = None
    run_id: str | None = None
    configuration_id: str | None = None


@dataclass(frozen=True)
class AlertRules:
    """The rules' settings (``[alerts]``, ``[window]``, ``[events]``)."""

    missed_after: timedelta = DEFAULT_MISSED_AFTER
    source_down_after: timedelta = DEFAULT_SOURCE_DOWN_AFTER
    pre_before: timedelta = PRE_EVENT_DEADLINE
    lookback: timedelta = DEFAULT_LOOKBACK
    window: WindowRules = field(default_factory=WindowRules)


@dataclass(frozen=True)
class Inputs:
    """What the rules look at, as plain data (a :class:`DashboardState` gives all of it).

    ``read``: the sources read at least once; ``errors``: each failing source -> its error;
    ``wiring``: configuration id (lower case) -> (verdict, reason) of its last wiring read;
    ``explanations``: configuration id (lower case) -> why no pre-event can come.
    """

    runs: Iterable[Run]
    configs: Mapping[str, Configuration]
    arrivals: Mapping[str, Arrivals]
    read: Collection[str]
    errors: Mapping[str, str] = field(default_factory=dict)
    wiring: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    explanations: Mapping[str, str] = field(default_factory=dict)


def _hm(value: datetime) -> str:
    return value.strftime("%H:%M UTC")


def _name(run: Run) -> str:
    return run.configuration_name or run.run_name


def judge_runs(runs: Iterable[Run], arrivals: Mapping[str, Arrivals], now: datetime, *,
               watching_since: datetime, rules: AlertRules, read: Collection[str],
               explanations: Mapping[str, str] | None = None,
               open_runs: Collection[str] = (),
               is_known: Callable[[str], bool] | None = None,
               is_open: Callable[[str], bool] | None = None) -> list[Judgement]:
    """What the run rules say at ``now`` (see the module's table). A run that ended before
    the horizon (the watch's start minus the lookback) is history: judged only when it has
    an open finding (``open_runs``: run keys) that may resolve. With ``is_known`` (a key
    opened before) and ``is_open`` (a key open now), only what can change a finding is said:
    an opening not seen before, a resolve of an open one."""
    if not RUN_SOURCES <= set(read):
        return []
    events_read = EVENT_SOURCES <= set(read)
    horizon = watching_since - rules.lookback
    out: list[Judgement] = []
    listed = [r for r in runs if (r.end or r.start) >= horizon or r.key in open_runs]
    for run in listed:
        out += _judge_run(run, arrivals, now, horizon=horizon, rules=rules,
                          events_read=events_read, is_known=is_known, is_open=is_open)
    if events_read:
        for finding in check_runs(listed, arrivals, now, watching_since=watching_since,
                                  lookback=rules.lookback, pre_before=rules.pre_before,
                                  explanations=explanations):
            seen = arrivals.get(finding.key.partition(":")[2])
            came = seen is not None and (
                seen.pre if finding.kind == "missing-pre" else seen.post) is not None
            if not came:  # a late event: the tail marks it late, the finding is resolved
                out.append(judgement_of(finding))
    return out


def _judge_run(run: Run, arrivals: Mapping[str, Arrivals], now: datetime, *,
               horizon: datetime, rules: AlertRules, events_read: bool,
               is_known: Callable[[str], bool] | None,
               is_open: Callable[[str], bool] | None) -> list[Judgement]:
    """One run's judgements (see :func:`judge_runs`)."""
    out: list[Judgement] = []
    name = _name(run)
    cancelled = run.cancelled_by is not None or run.status.lower() in (
        "cancelled", "canceled")
    status = run.status.lower()

    def needs(kind: str, opening: bool) -> bool:
        key = f"{kind}:{run.key}"
        if opening:
            return is_known is None or not is_known(key)
        return is_open is None or is_open(key)

    def says(kind: str, opening: bool, summary: Callable[[], str] | None = None) -> None:
        if needs(kind, opening):
            out.append(Judgement(kind, f"{kind}:{run.key}", opening,
                                 summary() if summary is not None else "", name,
                                 run.correlation_id, run.configuration_id))

    # missed-run: no Resource Graph row missed_after after the start.
    due = run.start + rules.missed_after
    if run.source == "arg":
        says("missed-run", False)
    elif horizon <= due <= now and not cancelled:
        says("missed-run", True, lambda: (
            f"{name}: the run at {_hm(run.start)} did not happen: no run in Resource "
            f"Graph {int(rules.missed_after.total_seconds() // 60)} min after its start"))
    recent = (run.end or run.start) >= horizon
    if run.source == "arg" and recent:
        if status == "failed":
            says("run-failed", True, lambda: (
                f"{name}: the run at {_hm(run.start)} failed"
                + (f": {run.error}" if run.error else "")))
        elif run.machines_failed:
            says("machines-failed", True, lambda: (
                f"{name}: {run.machines_failed} of {run.machines_total or '?'} machines "
                f"failed in the run at {_hm(run.start)}"))
        if run.machines_total is not None and now >= run.start and not cancelled:
            says("empty-run", run.machines_total == 0,
                 lambda: f"{name}: the run at {_hm(run.start)} has no machines")
        if run.finished:
            says("overrun", False)
        elif (end := run.end) is not None and now > end:
            says("overrun", True, lambda: (
                f"{name}: the run at {_hm(run.start)} is still in progress after its "
                f"window's end ({_hm(end)})"))
    if needs("window-open", True) or needs("window-open", False):
        phase = run_phase(run, now, rules.window)
        if not cancelled and phase is Phase.CANCELLABLE:
            says("window-open", True, lambda: (
                f"{name}: the cancel window of the run at {_hm(run.start)} is open"))
        elif phase is not Phase.UPCOMING:
            says("window-open", False)
    if events_read:
        seen = arrivals.get(run.key)
        if seen is not None and seen.pre is not None:
            says("missing-pre", False)
        if seen is not None and seen.post is not None:
            says("missing-post", False)
    return out


def judgement_of(finding: WatchdogFinding) -> Judgement:
    """A watchdog finding (missing-pre, missing-post, duplicate) as an open judgement."""
    return Judgement(finding.kind, finding.key, True, finding.message,
                     finding.configuration_name, finding.run_id)


def judge_wiring(runs: Iterable[Run], configs: Mapping[str, Configuration],
                 wiring: Mapping[str, tuple[str, str]], now: datetime, *,
                 read: Collection[str]) -> list[Judgement]:
    """A configuration with a run in the next 24 h whose wiring verdict is not ok."""
    if not WIRING_SOURCES <= set(read):
        return []
    soon = {r.configuration_id.lower() for r in runs
            if now <= r.start <= now + WIRING_HORIZON and not r.finished}
    out: list[Judgement] = []
    for key, (verdict, reason) in wiring.items():
        config = configs.get(key)
        if config is None:
            continue
        if verdict == "ok":
            out.append(Judgement("wiring", f"wiring:{key}", False))
        elif key in soon:
            out.append(Judgement("wiring", f"wiring:{key}", True,
                                 f"{config.name}: Event Grid wiring is {verdict}: {reason}",
                                 config.name, None, config.id))
    return out


class FindingBook:
    """The one list: findings opened and resolved, each key once.

    :meth:`update` takes the judgements of a moment and returns the changes (a new open
    finding, or a finding resolved); :meth:`seed` puts back what a previous process knew
    (the journal), so a restart neither opens again nor forgets to resolve.
    """

    def __init__(self, rules: AlertRules | None = None, *,
                 max_remembered: int = MAX_REMEMBERED) -> None:
        self.rules = rules or AlertRules()
        self.max_remembered = max_remembered
        self._open: dict[str, Alert] = {}
        self._resolved: dict[str, None] = {}  # insertion-ordered: the oldest go first
        self._failing_since: dict[str, datetime] = {}  # source -> since

    @property
    def open(self) -> list[Alert]:
        """The open findings, oldest first."""
        return list(self._open.values())

    def is_known(self, key: str) -> bool:
        """Whether ``key`` was opened (and maybe resolved) before."""
        return key in self._open or key in self._resolved

    def is_open(self, key: str) -> bool:
        """Whether ``key`` is open now."""
        return key in self._open

    def seed(self, alerts: Iterable[Alert]) -> None:
        """What an earlier process told (its last state per key)."""
        for alert in alerts:
            if alert.state == "open":
                self._open[alert.key] = alert
                if alert.kind == "source-down":  # the outage goes on under its own key
                    source, since = _outage_of(alert.key)
                    if since is not None:
                        self._failing_since[source] = since
            else:
                if alert.key in self._open:
                    del self._open[alert.key]
                self._resolved[alert.key] = None
        self._trim()

    def update(self, judgements: Iterable[Judgement], now: datetime) -> list[Alert]:
        """Apply the judgements of ``now``; return the findings opened or resolved."""
        out: list[Alert] = []
        for j in judgements:
            if j.open:
                if j.key in self._open or j.key in self._resolved:
                    continue
                alert = Alert(j.kind, j.key, SEVERITY_OF.get(j.kind, "error"), j.summary,
                              j.configuration_name, j.run_id, now,
                              configuration_id=j.configuration_id)
                self._open[j.key] = alert
                out.append(alert)
            else:
                gone = self._open.pop(j.key, None)
                if gone is not None:
                    self._resolved[j.key] = None
                    out.append(replace(gone, resolved_at=now))
        self._trim()
        return out

    def sources(self, errors: Mapping[str, str], now: datetime) -> list[Judgement]:
        """``source-down`` judgements: each source failing for ``source_down_after`` (its
        outage began at the first failure seen; it ends when the source answers)."""
        out: list[Judgement] = []
        for source in list(self._failing_since):
            if source not in errors:
                since = self._failing_since.pop(source)
                out.append(Judgement("source-down", _outage_key("source-down", source, since),
                                     False))
        for key, alert in self._open.items():  # outages an earlier process saw begin
            if alert.kind == "source-down" and _outage_of(key)[0] not in errors:
                out.append(Judgement("source-down", key, False))
        for source, error in errors.items():
            since = self._failing_since.setdefault(source, now)
            if now - since >= self.rules.source_down_after:
                out.append(Judgement(
                    "source-down", _outage_key("source-down", source, since), True,
                    f"{source} has been failing since {_hm(since)}: {error}"))
        return out

    def _trim(self) -> None:
        while len(self._resolved) > self.max_remembered:
            del self._resolved[next(iter(self._resolved))]


def _outage_key(kind: str, name: str, since: datetime) -> str:
    return f"{kind}:{name.lower()}:{iso_z(since)}"


def _outage_of(key: str) -> tuple[str, datetime | None]:
    """(name, since) back from an outage key (since None: not one of ours)."""
    _, _, rest = key.partition(":")
    name, _, since = rest.partition(":")
    try:
        return name, datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        return name, None


def open_outages(book: FindingBook, kind: str, name: str) -> list[str]:
    """The keys of the open ``kind`` outages of ``name`` (a source, a route)."""
    prefix = f"{kind}:{name.lower()}:"
    return [a.key for a in book.open if a.key.startswith(prefix)]


def route_failing(route: str, since: datetime, error: str | None) -> Judgement:
    """A route that failed after its retries (``error``) or delivers again (None)."""
    key = _outage_key("route-failing", route, since)
    if error is None:
        return Judgement("route-failing", key, False)
    return Judgement("route-failing", key, True,
                     f"alert route {route} fails since {_hm(since)}: {error}")


def judge(inputs: Inputs, book: FindingBook, now: datetime, *,
          watching_since: datetime) -> list[Judgement]:
    """Every rule's judgements at ``now`` (the run rules, the wiring, the sources)."""
    runs = list(inputs.runs)
    open_runs = {a.key.partition(":")[2] for a in book.open}
    out = judge_runs(runs, inputs.arrivals, now, watching_since=watching_since,
                     rules=book.rules, read=inputs.read, explanations=inputs.explanations,
                     open_runs=open_runs, is_known=book.is_known, is_open=book.is_open)
    out += judge_wiring(runs, inputs.configs, inputs.wiring, now, read=inputs.read)
    out += book.sources(inputs.errors, now)
    return out


def state_inputs(state: DashboardState, read: Collection[str]) -> Inputs:
    """What the rules look at, from the dashboard's state (``read``: the sources read once)."""
    explanations = {k: why for k in state.configs
                    if (why := state.pre_event_explanation(k)) is not None}
    wiring = {k: (str(w.verdict), w.reason) for k, w in state.wirings.items()}
    return Inputs(runs=state.runs.values(), configs=state.configs, arrivals=state.arrivals,
                  read=read, errors=state.errors, wiring=wiring, explanations=explanations)
