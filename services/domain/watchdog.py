"""The watchdog: events that should have arrived and did not, and events that came twice.

docs/architecture.md "Domain rules": a run inside its window with no pre-event by T-25 min, a
finished
run with no post-event by its end + 15 min, and a repeated (event id, event type) are each
reported once.

Rules we define where the design is silent:

* A deadline is only judged when it fell while aumwatch was watching (at most ``lookback``
  before it started): history from last week has no events in a queue that keeps them for
  days at most, and flagging it would bury the findings that matter.
* A run cancelled by the user before its pre-event deadline needs no pre-event.
* A cancelled run (by the user or the platform, a verified cancel, or a Resource Graph status
  ``Cancelled`` / ``Canceled``) sends no post-event: none is expected. A platform cancel is
  still judged for its missing pre-event, which is what caused it.
* No finding is raised before every source it depends on has been read at least once
  (:data:`DEPENDS_ON`): until Resource Graph has answered, a run may be known only from its
  pre-event, with no word of its cancel, and its post-event would look missing. A watcher
  names the sources it reads (``awaits``) and says when each was first read
  (:meth:`Watchdog.mark_read`); a deadline that passes before then is judged once they all
  were, not dropped.
* A run whose end is unknown is judged for its post-event only once its status says it ended.
* A missing pre-event is explained by its configuration's Event Grid wiring when that wiring
  cannot deliver one (``explanations``: configuration id, lower case -> why, from
  :func:`services.domain.wiring.missing_pre_explanation`): the report then says why
  ("no pre-event subscription ..."), not only that the event is late. The explanations are
  data passed in, so the watchdog stays pure and knows nothing of Event Grid.

Pure: no I/O, no clock; ``now`` is passed in. :class:`Watchdog` remembers which findings it
has reported (the most recent ``max_reported``) and, for :meth:`Watchdog.check_due`, a queue
of the deadlines still to judge, so a once-a-second check costs the runs whose deadline just
passed instead of every run on screen.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from services.domain.arrivals import ArrivalRules
from services.domain.marks import is_cancelled
from services.domain.model import Run

#: The pre-event must have arrived by T minus this (by default: five minutes after the latest
#: documented arrival, T-30, so T-25; the dashboard derives it from its arrival range setting).
PRE_EVENT_DEADLINE = ArrivalRules().missing_after
#: The post-event must have arrived by the end plus this.
POST_EVENT_GRACE = timedelta(minutes=15)
#: Deadlines this long before the watch began are still judged (the queue keeps recent events).
DEFAULT_LOOKBACK = timedelta(hours=1)
#: Finding keys remembered as reported (the oldest are forgotten first; a forgotten finding
#: would only come back if its run's deadline were queued and passed again).
DEFAULT_MAX_REPORTED = 10_000

FindingKind = Literal["missing-pre", "missing-post", "duplicate"]

#: The sources a watcher may read: the configurations (their schedules' runs), the runs
#: (Resource Graph), the events queue, the journal's verified cancels and the Event Grid
#: wiring (what explains a missing pre-event).
SOURCES = ("configs", "runs", "events", "cancels", "wiring")
#: What each kind of finding depends on: it is not raised before each of these (that the
#: watcher reads) has been read once. A missing pre-event's cause comes from the wiring; a
#: duplicate is seen in the very read that holds both copies, so it waits for nothing.
DEPENDS_ON: Mapping[FindingKind, frozenset[str]] = {
    "missing-pre": frozenset(SOURCES),
    "missing-post": frozenset({"configs", "runs", "events", "cancels"}),
    "duplicate": frozenset(),
}


def read_sources(*, journal: bool = True, wiring: bool = True) -> tuple[str, ...]:
    """The :data:`SOURCES` a watcher reads: all but the journal's cancels and the Event Grid
    wiring when it reads no journal or no wiring (it must not wait for what never comes)."""
    skip = {name for name, read in (("cancels", journal), ("wiring", wiring)) if not read}
    return tuple(s for s in SOURCES if s not in skip)


class Arrivals(Protocol):
    """When the first pre- and post-event of a run arrived."""

    @property
    def pre(self) -> datetime | None: ...

    @property
    def post(self) -> datetime | None: ...


@dataclass(frozen=True)
class Finding:
    """One thing the operator should look at. ``key`` identifies it (reported once)."""

    kind: FindingKind
    key: str
    run_id: str
    configuration_name: str
    deadline: datetime | None
    message: str
    #: Why the event cannot come, from the configuration's wiring (missing-pre only), or None.
    cause: str | None = None


def pre_deadline(run: Run, before: timedelta = PRE_EVENT_DEADLINE) -> datetime:
    """When the run's pre-event must have arrived (``before`` the start)."""
    return run.start - before


def post_deadline(run: Run) -> datetime | None:
    """When the run's post-event must have arrived (None: its end is not known)."""
    return None if run.end is None else run.end + POST_EVENT_GRACE


def _minutes(value: timedelta) -> int:
    return int(value.total_seconds() // 60)


def _hm(value: datetime) -> str:
    return value.strftime("%H:%M UTC")


def check_runs(
    runs: Iterable[Run],
    arrivals: Mapping[str, Arrivals],
    now: datetime,
    *,
    watching_since: datetime,
    lookback: timedelta = DEFAULT_LOOKBACK,
    pre_before: timedelta = PRE_EVENT_DEADLINE,
    explanations: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Missing pre- and post-events among ``runs`` at ``now``.

    ``arrivals`` maps a run's key (correlation id, lower case) to its arrivals;
    ``explanations`` maps a configuration id (lower case) to why its wiring cannot deliver a
    pre-event (see the module).
    """
    horizon = watching_since - lookback
    out: list[Finding] = []
    for run in runs:
        seen = arrivals.get(run.key)
        name = run.configuration_name or run.run_name
        pre_due = pre_deadline(run, pre_before)
        user_cancelled = run.cancelled_by == "user"
        if (horizon <= pre_due <= now and not user_cancelled
                and (seen is None or seen.pre is None or seen.pre > pre_due)
                and (run.end is None or now < run.end)):
            cause = (explanations or {}).get(run.configuration_id.lower())
            message = (f"{name}: no pre-maintenance event by T-{_minutes(pre_before)} "
                       f"({_hm(pre_due)}) for the run at {_hm(run.start)}")
            if cause:
                message += f": {cause}"
            out.append(Finding(
                "missing-pre", f"missing-pre:{run.key}", run.correlation_id, name, pre_due,
                message, cause or None))
        post_due = post_deadline(run)
        if post_due is None and run.finished and run.last_update is not None:
            post_due = run.last_update + POST_EVENT_GRACE
        if (post_due is not None and horizon <= post_due <= now and not is_cancelled(run)
                and (seen is None or seen.post is None)):
            out.append(Finding(
                "missing-post", f"missing-post:{run.key}", run.correlation_id, name, post_due,
                f"{name}: no post-maintenance event by end + 15 min ({_hm(post_due)}) for "
                f"the run at {_hm(run.start)}"))
    return out


def duplicate_finding(event_id: str, event_type: str, correlation_id: str,
                      configuration_name: str | None) -> Finding:
    """A second delivery of the event (``event_id``, ``event_type``)."""
    key = f"duplicate:{event_id.lower()}|{event_type.lower()}"
    name = configuration_name or correlation_id.rsplit("/", 1)[-1] or "?"
    short_type = event_type.rsplit(".", 1)[-1]
    return Finding("duplicate", key, correlation_id, name, None,
                   f"{name}: {short_type} {event_id} delivered more than once")


class Watchdog:
    """Reports each finding once per session, and none before the sources it depends on
    were read: ``awaits`` names the sources this watcher reads (of :data:`SOURCES`; none by
    default), each to be marked with :meth:`mark_read` once read."""

    def __init__(self, watching_since: datetime, *, lookback: timedelta = DEFAULT_LOOKBACK,
                 max_reported: int = DEFAULT_MAX_REPORTED,
                 pre_before: timedelta = PRE_EVENT_DEADLINE,
                 awaits: Iterable[str] = ()) -> None:
        self.watching_since = watching_since
        self._unread = set(awaits)
        self.lookback = lookback
        self.pre_before = pre_before
        self.max_reported = max_reported
        self._reported: dict[str, None] = {}  # insertion-ordered: the oldest go first
        self._due: list[tuple[datetime, str]] = []  # heap of (deadline, run key)
        self._queued: set[tuple[datetime, str]] = set()

    def mark_read(self, source: str) -> None:
        """``source`` has been read (successfully) at least once."""
        self._unread.discard(source)

    def waiting_for(self, kind: FindingKind) -> frozenset[str]:
        """The sources a finding of ``kind`` still waits for (empty: it may be raised)."""
        return DEPENDS_ON[kind] & frozenset(self._unread)

    def new(self, findings: Iterable[Finding]) -> list[Finding]:
        """The findings not reported before (and mark them reported). A finding whose
        sources were not all read yet is left out, and not marked."""
        out: list[Finding] = []
        for finding in findings:
            if self.waiting_for(finding.kind):
                continue
            if finding.key not in self._reported:
                self._reported[finding.key] = None
                out.append(finding)
        while len(self._reported) > self.max_reported:
            del self._reported[next(iter(self._reported))]
        return out

    def check(self, runs: Iterable[Run], arrivals: Mapping[str, Arrivals], now: datetime,
              explanations: Mapping[str, str] | None = None) -> list[Finding]:
        """New missing-event findings at ``now`` among every run given (``explanations``:
        see :func:`check_runs`)."""
        return self.new(check_runs(runs, arrivals, now, watching_since=self.watching_since,
                                   lookback=self.lookback, pre_before=self.pre_before,
                                   explanations=explanations))

    def track(self, runs: Iterable[Run]) -> None:
        """Queue the deadlines of new or changed runs for :meth:`check_due`."""
        horizon = self.watching_since - self.lookback
        for run in runs:
            for deadline in run_deadlines(run, self.pre_before):
                entry = (deadline, run.key)
                if deadline >= horizon and entry not in self._queued:
                    self._queued.add(entry)
                    heapq.heappush(self._due, entry)

    def check_due(self, runs: Mapping[str, Run], arrivals: Mapping[str, Arrivals],
                  now: datetime, explanations: Mapping[str, str] | None = None
                  ) -> list[Finding]:
        """New findings among the tracked runs whose deadline passed by ``now``.

        ``runs`` maps run keys to the current version of each run (a run no longer listed
        is not judged). Same rules as :meth:`check`, judged once per passed deadline. While
        a source the run findings depend on is unread, nothing is judged and the deadlines
        stay queued.
        """
        if self.waiting_for("missing-pre") or self.waiting_for("missing-post"):
            return []
        keys: set[str] = set()
        while self._due and self._due[0][0] <= now:
            entry = heapq.heappop(self._due)
            self._queued.discard(entry)
            keys.add(entry[1])
        if not keys:
            return []
        return self.check([runs[k] for k in keys if k in runs], arrivals, now, explanations)

    @property
    def pending(self) -> int:
        """Deadlines queued and not yet passed."""
        return len(self._due)

    @property
    def reported(self) -> frozenset[str]:
        """Keys of the findings reported so far (the most recent ``max_reported``)."""
        return frozenset(self._reported)


def run_deadlines(run: Run, pre_before: timedelta = PRE_EVENT_DEADLINE) -> list[datetime]:
    """The moments a run's events are judged: pre-event deadline, post-event deadline."""
    out = [pre_deadline(run, pre_before)]
    post = post_deadline(run)
    if post is None and run.finished and run.last_update is not None:
        post = run.last_update + POST_EVENT_GRACE
    if post is not None:
        out.append(post)
    return out
