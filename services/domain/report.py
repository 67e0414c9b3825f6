"""One run's story, as a report: what was scheduled, what arrived, who tried to cancel, which
tasks ran, what each machine did, and how it ended (issue 12, "Run reports").

Pure: everything comes in as plain values (the run, its configuration, the journal's facts
about it, its machines, the window rules and "now"); nothing is read or fetched here. The
renderers (:mod:`services.domain.reportrender`) turn a :class:`RunReport` into JSON, Markdown
or HTML.

The run is merged by the one merge rule (:func:`services.domain.runs.merge_runs`): Resource
Graph's row, then what the journaled events said (a pre-event's cut-off, a post-event's end
and status), then a verified cancel from the audit journal. A run neither Resource Graph nor
the journal knows is still reported from its id (its start is its name).

The run's facts (status, who cancelled it, its end, its events) are the ones every view shows
(:mod:`services.domain.runfacts`): ``cancelled_by`` is Azure's classification (``user`` /
``platform``, null when not cancelled) and ``cancel_initiator`` who or what sent the verified
cancel (a task, an audited identity; null when nothing is known). ``cancelled_by_azure`` is
kept, equal to ``cancelled_by``, for scripts written before issue 22. The events are the
journal's and, for a report written from the dashboard, what its event memory saw.

Portal links: a configuration's page uses the portal's generic resource address
(``<portal>/#@<tenant>/resource<id>``, the form the portal itself uses for any Resource
Manager resource). No portal page for one run is documented, so no run link is given; the
machines link to their own resource pages in the same form.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import quote

from services.domain.clock import ensure_utc, iso_z
from services.domain.model import Configuration, Machine, Run
from services.domain.runfacts import (
    CancelFact,
    EventFact,
    facts_json,
    run_events,
    verified_cancel_of,
)
from services.domain.runid import RUN_NAME_FORMAT, RunIdError, expected_run_name, parse_run_id
from services.domain.runs import merge_runs, run_from_event
from services.domain.window import RunWindow, WindowRules, run_window
from services.domain.zones import zone_for

#: Portal addresses per cloud (the stand-in speaks the public cloud's protocol).
PORTALS: Mapping[str, str] = {
    "public": "https://portal.azure.com",
    "china": "https://portal.azure.cn",
    "usgov": "https://portal.azure.us",
    "standin": "https://portal.azure.com",
}
#: The window offsets' defaults (frozen, so one shared value is safe).
DEFAULT_RULES = WindowRules()


class ReportError(ValueError):
    """A report cannot be built: the run is not named by a usable id."""


# --- the plain facts a report is built from ------------------------------------------------


@dataclass(frozen=True)
class TaskFact:
    """One task run for the run (journal ``task_runs``)."""

    task: str
    event_kind: str
    state: str  # queued | running | ok | failed | timeout | interrupted | ...
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    cancelled_run: bool = False
    detail: str | None = None
    output: str | None = None

    @property
    def skipped(self) -> bool:
        """Whether the task was skipped (a duplicate, late, cancelled run...): it never ran."""
        return self.state.startswith("skipped")

    @property
    def label(self) -> str:
        """The state as the report and the dashboard say it (``cancelled the run`` first)."""
        if self.cancelled_run:
            return "cancelled the run"
        return {"timeout": "timed out"}.get(self.state, self.state)

    def to_json(self) -> dict[str, Any]:
        """The report's ``tasks`` item (``outcome`` is the state, as ``aumwatch tasks``)."""
        return {
            "task": self.task, "event_kind": self.event_kind, "outcome": self.state,
            "started": iso_z(self.started_at), "ended": iso_z(self.ended_at),
            "exit_code": self.exit_code, "cancelled_run": self.cancelled_run,
            "detail": self.detail, "output": self.output,
        }


# --- the report -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    """One moment of the run's story; ``relative`` is against the scheduled start
    (``T-35m``)."""

    time: datetime
    what: str
    kind: str  # schedule | window | event | cancel | task | machine | run
    relative: str = ""


@dataclass(frozen=True)
class PortalLink:
    """A link into the Azure portal; ``note`` says how sure its form is."""

    label: str
    url: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "url": self.url, "note": self.note}


@dataclass(frozen=True)
class Totals:
    """Counts over the machines, the tasks and the cancel attempts."""

    machines: int
    machine_status: Mapping[str, int]
    installed: int
    failed: int
    pending: int
    reboot: Mapping[str, int]
    window_exceeded: int
    machines_with_error: int
    tasks: Mapping[str, int]
    cancel_attempts: int

    def to_json(self) -> dict[str, Any]:
        return {
            "machines": self.machines, "machine_status": dict(self.machine_status),
            "patches_installed": self.installed, "patches_failed": self.failed,
            "patches_pending": self.pending, "reboot": dict(self.reboot),
            "window_exceeded": self.window_exceeded,
            "machines_with_error": self.machines_with_error, "tasks": dict(self.tasks),
            "cancel_attempts": self.cancel_attempts,
        }


@dataclass(frozen=True)
class RunReport:
    """Everything one report says; render it with :mod:`services.domain.reportrender`."""

    generated_at: datetime
    run: Run
    configuration: Configuration | None
    zone: tzinfo = field(compare=False)
    zone_name: str
    window: RunWindow
    timeline: tuple[TimelineEntry, ...]
    events: tuple[EventFact, ...]
    cancels: tuple[CancelFact, ...]
    tasks: tuple[TaskFact, ...]
    machines: tuple[Machine, ...]
    totals: Totals
    links: tuple[PortalLink, ...]
    machine_links: Mapping[str, str]
    #: Where the facts came from and what was missing ("Resource Graph has no row ...").
    notes: tuple[str, ...] = ()

    def local(self, when: datetime) -> datetime:
        """``when`` in the configuration's zone."""
        return when.astimezone(self.zone)

    def to_json(self) -> dict[str, Any]:
        """The ``report --format json`` object: the contract keys (``run``, ``timeline``,
        ``events``, ``cancels``, ``tasks``, ``machines``) and extra ones."""
        run = self.run
        config = self.configuration

        def local_iso(when: datetime | None) -> str | None:
            return None if when is None else self.local(when).isoformat()

        facts = facts_json(run)
        return {
            "run": {
                "correlation_id": run.correlation_id,
                "configuration_name": run.configuration_name,
                "start": iso_z(run.start),
                "end": facts.pop("end"),
                "status": facts.pop("status"),
                "cancelled_by": facts.pop("cancelled_by"),
                # extra keys
                "configuration_id": run.configuration_id,
                "run_name": run.run_name,
                "start_local": local_iso(run.start),
                "end_local": local_iso(run.ended_at),
                "expected": run.expected,
                "error": run.error,
                "cutoff": iso_z(run.cutoff),
                "cancelled_by_azure": run.cancelled_by,
                **facts,
                "tenant": run.tenant or None,  # issue 19: the profile read through
                "tenant_id": run.tenant_id,
            },
            "timeline": [
                {"time": iso_z(e.time), "what": e.what, "time_local": local_iso(e.time),
                 "relative": e.relative, "kind": e.kind}
                for e in self.timeline
            ],
            "events": [e.to_json() for e in self.events],
            "cancels": [c.to_json() for c in self.cancels],
            "tasks": [t.to_json() for t in self.tasks],
            "machines": [dict(m.to_json(), portal=self.machine_links.get(m.resource_id))
                         for m in self.machines],
            # extra keys
            "configuration": None if config is None else {
                **config.to_json(), "schedule": config.schedule_description,
            },
            "time_zone": self.zone_name,
            "window": {"opens": iso_z(self.window.opens_at),
                       "closes": iso_z(self.window.closes_at),
                       "ever_opens": self.window.ever_opens},
            "totals": self.totals.to_json(),
            "links": [link.to_json() for link in self.links],
            "notes": list(self.notes),
            "generated_at": iso_z(self.generated_at),
        }


# --- building it ----------------------------------------------------------------------------


def relative_to(start: datetime, when: datetime) -> str:
    """``when`` against the start: ``T``, ``T-35m``, ``T+1h05m``, ``T-40s``."""
    seconds = int((when - start).total_seconds())
    if seconds == 0:
        return "T"
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    if seconds < 60:
        return f"T{sign}{seconds}s"
    hours, rest = divmod(seconds // 60, 60)
    return f"T{sign}{hours}h{rest:02d}m" if hours else f"T{sign}{rest}m"


def portal_resource_url(portal: str, resource_id: str, tenant: str | None = None) -> str:
    """The portal's page of a Resource Manager resource. The id is percent-encoded (it comes
    from Azure and is untrusted): it can add path segments, never leave the portal."""
    path = quote(resource_id.strip(), safe="/")
    if not path.startswith("/"):
        path = "/" + path
    where = f"@{quote(tenant.strip(), safe='')}/" if tenant and tenant.strip() else ""
    return f"{portal.rstrip('/')}/#{where}resource{path}"


def _bare_run(correlation_id: str) -> Run:
    """A run nobody has told us about: named by its id alone (its start is its name)."""
    try:
        run_id = parse_run_id(correlation_id)
    except RunIdError as exc:
        raise ReportError(str(exc)) from None
    if run_id.start is None:
        raise ReportError(f"run name {run_id.run_name!r} is not a yyyyMMddHHmmss start time and "
                          "neither Resource Graph nor the journal knows the run")
    return Run(correlation_id=run_id.correlation_id, configuration_id=run_id.configuration_id,
               configuration_name=run_id.configuration_name, run_name=run_id.run_name,
               start=run_id.start, status="Unknown", source="schedule")


def _merged_run(correlation_id: str, run: Run | None, events: Sequence[EventFact],
                cancels: Sequence[CancelFact], config: Configuration | None) -> Run:
    base_id = run.correlation_id if run is not None else correlation_id.strip().rstrip("/")
    event_runs = [r for e in events
                  if (r := run_from_event(replace(e, correlation_id=base_id))) is not None]
    observed = [run] if run is not None else []
    if not observed and not event_runs:
        observed = [_bare_run(base_id)]
    key = base_id.lower()
    verified = verified_cancel_of(cancels)
    cancelled = {key: verified} if verified is not None else None
    merged = {r.key: r for r in merge_runs(observed, (), event_runs, cancelled, ordered=False)}
    result = merged[key]
    if not result.configuration_name and config is not None:
        result = replace(result, configuration_name=config.name)
    return result


def _totals(machines: Sequence[Machine], tasks: Sequence[TaskFact],
            cancels: Sequence[CancelFact]) -> Totals:
    return Totals(
        machines=len(machines),
        machine_status=dict(sorted(Counter(m.status for m in machines).items())),
        installed=sum(m.installed or 0 for m in machines),
        failed=sum(m.failed or 0 for m in machines),
        pending=sum(m.pending or 0 for m in machines),
        reboot=dict(sorted(Counter(m.reboot for m in machines if m.reboot).items())),
        window_exceeded=sum(1 for m in machines if m.window_exceeded),
        machines_with_error=sum(1 for m in machines if m.error),
        tasks=dict(sorted(Counter(t.label for t in tasks).items())),
        cancel_attempts=len(cancels),
    )


def _timeline(run: Run, window: RunWindow, events: Sequence[EventFact],
              cancels: Sequence[CancelFact], tasks: Sequence[TaskFact],
              machines: Sequence[Machine], rules: WindowRules) -> tuple[TimelineEntry, ...]:
    # (time, order, kind, what): ``order`` keeps moments that share a time in story order.
    items: list[tuple[datetime, int, str, str]] = []
    items.append((run.start, 50, "schedule", "scheduled start"))
    if window.ever_opens:
        minutes = int(rules.opens_before.total_seconds() // 60)
        items.append((window.opens_at, 10, "window", f"cancel window opens (T-{minutes}m)"))
    closes = "cancel window closes"
    if run.cutoff is not None and run.cutoff < run.start - rules.closes_before:
        closes += " (the pre-event's cancellation cut-off)"
    if not window.ever_opens:
        closes += "; it never opened (the cut-off is before the open)"
    items.append((window.closes_at, 30, "window", closes))
    for event in events:
        when = event.event_time or event.received_at
        name = {"pre": "pre-maintenance event", "post": "post-maintenance event"}.get(
            event.kind, f"event {event.event_type}")
        what = name
        if event.kind == "post" and event.status:
            what += f", status {event.status}"
        received = ensure_utc(event.received_at)
        if event.event_time is not None and received != ensure_utc(event.event_time):
            what += f" (received {iso_z(received)})"
        if event.duplicate_deliveries:
            what += f"; delivered {event.duplicate_deliveries} more time(s)"
        items.append((when, 20 if event.kind == "pre" else 70, "event", what))
    for cancel in cancels:
        what = f"cancel attempt by {cancel.who}: {cancel.outcome}"
        if cancel.reason:
            what += f" ({cancel.reason})"
        items.append((cancel.attempted_at, 25, "cancel", what))
    for task in tasks:
        # A skipped task never started, whatever time its row was claimed at.
        if task.started_at is not None and not task.skipped:
            items.append((task.started_at, 22, "task",
                          f"task {task.task} ({task.event_kind}) started"))
        if task.ended_at is not None:
            what = f"task {task.task} ({task.event_kind}) {task.label}"
            if task.exit_code is not None:
                what += f", exit code {task.exit_code}"
            if task.detail:
                what += f": {task.detail}"
            items.append((task.ended_at, 23, "task", what))
    starts = [m.start for m in machines if m.start is not None]
    if starts:
        items.append((min(starts), 55, "machine", "first machine started patching"))
    ends = [m.end for m in machines if m.end is not None]
    if ends and len(ends) == len(machines):
        items.append((max(ends), 60, "machine", "last machine finished"))
    if run.ended_at is not None:  # the real end (runfacts.run_end), never the scheduled one
        what = "run cancelled" if run.status.lower() in ("cancelled", "canceled") \
            else f"run ended: {run.status}"
        items.append((run.ended_at, 65, "run", what))
    scheduled = run.scheduled_end or (None if run.finished else run.end)
    if scheduled is not None and scheduled != run.ended_at:
        items.append((scheduled, 64, "window", "scheduled end of the maintenance window"))
    items.sort(key=lambda item: (ensure_utc(item[0]), item[1]))
    return tuple(TimelineEntry(ensure_utc(t), what, kind, relative_to(run.start, t))
                 for t, _, kind, what in items)


def build_report(
    correlation_id: str,
    *,
    run: Run | None,
    configuration: Configuration | None,
    events: Iterable[EventFact] = (),
    seen_events: Iterable[EventFact] = (),
    cancels: Iterable[CancelFact] = (),
    tasks: Iterable[TaskFact] = (),
    machines: Iterable[Machine] = (),
    rules: WindowRules = DEFAULT_RULES,
    now: datetime,
    cloud: str = "public",
    tenant: str | None = None,
    notes: Iterable[str] = (),
) -> RunReport:
    """Build one run's report from what is known of it.

    ``run`` is Resource Graph's row (None when it has none); ``events``, ``cancels`` and
    ``tasks`` are the journal's facts about the run; ``seen_events`` the events the
    dashboard's event memory saw of it (a peeking dashboard journals nothing): the report
    shows both, one entry per event (:func:`services.domain.runfacts.run_events`);
    ``machines`` its machines. Raises :class:`ReportError` when nothing names a usable run.
    """
    event_list = list(run_events(events, seen_events))
    cancel_list = sorted(cancels, key=lambda c: ensure_utc(c.attempted_at))
    task_list = sorted(tasks, key=lambda t: (t.started_at or now, t.event_kind, t.task))
    machine_list = tuple(sorted(machines, key=lambda m: (m.name.lower(), m.resource_id.lower())))
    merged = _merged_run(correlation_id, run, event_list, cancel_list, configuration)
    zone = zone_for("config", configuration) or UTC
    zone_name = (configuration.time_zone if configuration is not None and
                 configuration.time_zone and zone is not UTC else "UTC")
    window = run_window(merged.start, cutoff=merged.cutoff,
                        end=merged.end if merged.end and merged.end >= merged.start else None,
                        rules=rules)
    portal = PORTALS.get(cloud, PORTALS["public"])
    links: list[PortalLink] = []
    if merged.configuration_id:
        links.append(PortalLink(
            "maintenance configuration", portal_resource_url(portal, merged.configuration_id,
                                                             tenant),
            "the portal's page of the configuration (its history lists this run)"))
    machine_links = {m.resource_id: portal_resource_url(portal, m.resource_id, tenant)
                     for m in machine_list}
    all_notes = list(notes)
    if cloud == "standin":
        all_notes.append("the links point at the public portal; this report comes from the "
                         "local stand-in, whose resources do not exist there")
    return RunReport(
        generated_at=ensure_utc(now),
        run=merged,
        configuration=configuration,
        zone=zone,
        zone_name=zone_name,
        window=window,
        timeline=_timeline(merged, window, event_list, cancel_list, task_list, machine_list,
                           rules),
        events=tuple(event_list),
        cancels=tuple(cancel_list),
        tasks=tuple(task_list),
        machines=machine_list,
        totals=_totals(machine_list, task_list, cancel_list),
        links=tuple(links),
        machine_links=machine_links,
        notes=tuple(all_notes),
    )


#: ``CONFIGNAME/yyyyMMddHHmmss``: a run named by its configuration and UTC start.
_SHORT_FORM = re.compile(r"(?P<name>[^/\s][^/]*)/(?P<stamp>\d{14})")


def parse_short_form(text: str) -> tuple[str, datetime] | None:
    """``(configuration name, UTC start)`` from ``CONFIGNAME/yyyyMMddHHmmss``; None when
    ``text`` is not of that form (a correlation id, say). A 14-digit stamp that is no date
    (month 13) raises :class:`ReportError`."""
    match = _SHORT_FORM.fullmatch(text.strip())
    if match is None:
        return None
    try:
        start = datetime.strptime(match["stamp"], RUN_NAME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise ReportError(f"{match['stamp']!r} is not a yyyyMMddHHmmss time") from None
    return match["name"].strip(), start


def report_file_name(report: RunReport, extension: str) -> str:
    """``<configuration>-<yyyyMMddHHmmss>.<ext>``: the configuration's name made safe for a
    file name (anything but letters, digits, ``-``, ``_`` and ``.`` becomes ``_``)."""
    name = report.run.configuration_name or "run"
    safe = "".join(ch if (ch.isascii() and (ch.isalnum() or ch in "-_.")) else "_"
                   for ch in name).strip("._") or "run"
    return f"{safe[:80]}-{expected_run_name(report.run.start)}.{extension.lstrip('.')}"
