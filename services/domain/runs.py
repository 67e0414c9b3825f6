"""Maintenance runs: observed (Resource Graph, events) and expected (schedules), merged.

Schedule-level runs come from ``maintenanceresources`` in one paged query per poll. Their
field names are not confirmed by Microsoft (docs/azure.md), so every field is read defensively:
keys case-insensitively, missing or wrongly typed values become None, and the run's start
falls back to its name (``yyyyMMddHHmmss``, UTC). Who cancelled a run is read loosely from
the error text ("cancelled using cancellation API" -> user, "internal platform failure" ->
platform).

:func:`merge_runs` is pure: observed runs win, events add what Resource Graph has not caught
up with yet (a pre-event's cut-off, a post-event's end), and the schedule fills in the runs
nobody has seen yet (``expected=True``). Runs are keyed by correlation id, case-insensitively.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from services.domain.configs import folded, in_patch_view, text_of
from services.domain.model import FINISHED_STATUSES, CancelledBy, Configuration, Run
from services.domain.runfacts import VerifiedCancel, cancels_by_run, settle_facts
from services.domain.runid import RunIdError, correlation_id_for, parse_run_id
from services.domain.window import Phase, WindowRules, run_window

RUN_TYPE = "microsoft.maintenance/maintenanceconfigurations/applyupdates"
DEFAULT_SINCE = timedelta(days=7)
#: Resource Graph keeps maintenance history for 30 days.
MAX_SINCE = timedelta(days=30)

_USER_CANCEL = re.compile(r"cancel+ed\s+using\s+(the\s+)?cancellation\s+api", re.IGNORECASE)
_PLATFORM_CANCEL = re.compile(r"internal\s+platform\s+failure", re.IGNORECASE)


def runs_query(since: timedelta = DEFAULT_SINCE) -> str:
    """Schedule-level runs that started within ``since`` (and all later/upcoming ones).

    A row without ``startDateTime`` is kept: the client dates it by its run name
    (:func:`run_from_row`), which a filter on the missing field would never let it do.
    """
    hours = max(1, int(min(since, MAX_SINCE).total_seconds() // 3600))
    return f"""maintenanceresources
| where type =~ "{RUN_TYPE}"
| where isnull(todatetime(properties.startDateTime))
    or todatetime(properties.startDateTime) >= ago({hours}h)
| project id, name, tenantId, properties
| order by id asc"""


def run_query(correlation_id: str) -> str:
    """The Resource Graph row of one run (ids compared lower-case), to learn whether Azure has
    shown it. Raises :class:`RunIdError` when ``correlation_id`` is no run id."""
    key = parse_run_id(correlation_id).key
    wanted = '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"""maintenanceresources
| where type =~ "{RUN_TYPE}"
| where tolower(tostring(properties.correlationId)) == {wanted} or tolower(id) == {wanted}
| project id, name, tenantId, properties"""


def cancelled_by_from_error(text: str | None) -> CancelledBy | None:
    """``user`` or ``platform`` from a run's error text (matched loosely), else None."""
    if not text:
        return None
    if _USER_CANCEL.search(text):
        return "user"
    if _PLATFORM_CANCEL.search(text):
        return "platform"
    return None


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time from Azure as aware UTC (naive means UTC), None when unusable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # Python < 3.12 accepts at most 6 fractional digits; Azure writes 7.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def error_text(props: Mapping[str, Any]) -> str | None:
    """The first error message a row carries, in any of the shapes seen."""
    for key in ("error", "errordetails", "errormessage", "message"):
        value = props.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
        inner = folded(value)
        message = inner.get("message")
        if isinstance(message, str) and message.strip():
            return message.strip()
        details = inner.get("details")
        if isinstance(details, list):
            for item in details:
                text = folded(item).get("message")
                if isinstance(text, str) and text.strip():
                    return text.strip()
    return None


def run_from_row(row: Mapping[str, Any]) -> Run | None:
    """A Run from a schedule-level ``maintenanceresources`` row; None if it names no run."""
    top = folded(row)
    props = folded(top.get("properties"))
    correlation_id = (text_of(props.get("correlationid")) or text_of(top.get("id"))).strip()
    try:
        run_id = parse_run_id(correlation_id)
    except RunIdError:
        run_id = None
    configuration_id = text_of(props.get("maintenanceconfigurationid")) or (
        run_id.configuration_id if run_id else "")
    start = parse_time(props.get("startdatetime")) or (run_id.start if run_id else None)
    if not correlation_id or start is None:
        return None
    status = text_of(props.get("status")) or "Unknown"
    error = error_text(props)
    summary = folded(props.get("resourceupdatesummary") or props.get("machinesummary"))
    succeeded = _count(summary.get("succeeded"))
    completed = _count(summary.get("completed"))
    if succeeded is not None and completed is not None:
        succeeded += completed
    elif succeeded is None:
        succeeded = completed
    end = parse_time(props.get("enddatetime"))
    return Run(
        correlation_id=correlation_id,
        configuration_id=configuration_id,
        configuration_name=(run_id.configuration_name if run_id
                            else configuration_id.rsplit("/", 1)[-1]),
        run_name=run_id.run_name if run_id else (text_of(top.get("name")) or correlation_id),
        start=start,
        end=end,
        # Until the run is over its end is the window's scheduled one.
        scheduled_end=None if status.lower() in FINISHED_STATUSES else end,
        status=status,
        expected=False,
        cancelled_by=cancelled_by_from_error(error),
        error=error,
        machines_total=_count(summary.get("total")),
        machines_succeeded=succeeded,
        machines_failed=_count(summary.get("failed")),
        machines_in_progress=_count(summary.get("inprogress")),
        source="arg",
        tenant_id=text_of(top.get("tenantid")) or None,
        last_update=parse_time(props.get("lastupdatetime")),
        scope=text_of(props.get("maintenancescope")),
    )


def expected_runs(configs: Iterable[Configuration]) -> list[Run]:
    """The runs the schedules say will happen (each configuration's next occurrences)."""
    out: list[Run] = []
    for config in configs:
        for start, end in config.next_occurrences:
            try:
                correlation_id = correlation_id_for(config.id, start)
            except (RunIdError, ValueError):
                continue  # not a configuration id we can name runs of
            out.append(Run(
                correlation_id=correlation_id,
                configuration_id=config.id,
                configuration_name=config.name,
                run_name=correlation_id.rsplit("/", 1)[-1],
                start=start,
                end=end,
                scheduled_end=end,
                status="Scheduled",
                expected=True,
                source="schedule",
                scope=config.scope,
                tenant=config.tenant,
                tenant_id=config.tenant_id,
            ))
    return out


def run_from_event(event: Any) -> Run | None:
    """A Run from a decoded pre/post event (:class:`services.domain.events.MaintenanceEvent`,
    or a journaled one, :class:`services.domain.runfacts.EventFact`): the one reading of
    what an event says of its run."""
    correlation_id = getattr(event, "correlation_id", None) or ""
    kind = str(getattr(event, "kind", ""))
    if not correlation_id or kind not in ("pre", "post"):
        return None
    try:
        run_id = parse_run_id(correlation_id)
    except RunIdError:
        run_id = None
    start = getattr(event, "start", None) or (run_id.start if run_id else None)
    if start is None:
        return None
    configuration_id = getattr(event, "configuration_id", None) or (
        run_id.configuration_id if run_id else "")
    status = "Pending"
    # A pre-event's EndDateTime is the scheduled window end: a fair guess of the end until
    # the run is over. A post-event's EndDateTime is that same scheduled end, not when the
    # run ended: the run ended when the post-event was raised
    # (docs/azure.md, "Timeline of one run").
    scheduled_end = getattr(event, "end", None)
    end = scheduled_end
    happened = getattr(event, "event_time", None) or getattr(event, "received_at", None)
    if kind == "post":
        status = getattr(event, "status", None) or "Completed"
        end = happened
    return Run(
        correlation_id=correlation_id,
        configuration_id=configuration_id,
        configuration_name=(getattr(event, "configuration_name", None)
                            or (run_id.configuration_name if run_id else "")),
        run_name=run_id.run_name if run_id else correlation_id.rsplit("/", 1)[-1],
        start=start,
        end=end,
        status=status,
        cutoff=getattr(event, "cancellation_cutoff", None),
        source="event",
        scheduled_end=scheduled_end,
        pre_event_at=happened if kind == "pre" else None,
        post_event_at=happened if kind == "post" else None,
    )


def merge_event(base: Run, event: Run) -> Run:
    """Fill what ARG lacks from an event of the same run (ARG can lag by minutes)."""
    changes: dict[str, Any] = {}
    if event.cutoff is not None and base.cutoff is None:
        changes["cutoff"] = event.cutoff
    for name in ("scheduled_end", "pre_event_at", "post_event_at"):
        mine, theirs = getattr(base, name), getattr(event, name)
        if theirs is not None and (mine is None or (name != "scheduled_end" and theirs < mine)):
            changes[name] = theirs  # the scheduled end an event carries; the first event seen
    if base.end is None and event.end is not None:
        changes["end"] = event.end
    if event.finished and not base.finished:
        # The post-event knows how and when it ended (its event time, see run_from_event);
        # a pre-event's end, like a lagging row's, is only the scheduled window end.
        changes["status"] = event.status
        if event.end is not None:
            changes["end"] = event.end
    return replace(base, **changes) if changes else base


def merge_runs(
    observed: Iterable[Run],
    expected: Iterable[Run],
    events: Iterable[Run] = (),
    cancelled: Mapping[str, VerifiedCancel | datetime] | None = None,
    *,
    ordered: bool = True,
) -> tuple[Run, ...]:
    """One run list keyed by correlation id (case-insensitive), newest start first: the one
    place runs from every source are merged.

    Observed (ARG) runs win; event runs fill in cut-off, end and a finished status, or stand
    alone when ARG has not seen the run yet; expected (schedule) runs only fill the gaps.
    ``cancelled`` maps run keys to the cancel of that run aumwatch verified by reading it
    back from Resource Manager (a :class:`~services.domain.runfacts.VerifiedCancel`, or just
    when): Resource Graph lags, so such a run shows Cancelled whatever an older row still
    says, until Resource Graph agrees (docs/azure.md, "Resource Graph").
    ``ordered=False`` skips the sort (a caller that keys the runs itself).

    Each merged run's facts (status, who cancelled it, its end) are then decided by
    :func:`services.domain.runfacts.settle_facts`, the one place they are.
    """
    merged: dict[str, Run] = {}
    for run in observed:
        previous = merged.get(run.key)
        if previous is None or (run.last_update or run.start) >= (previous.last_update
                                                                   or previous.start):
            merged[run.key] = run
    rows = dict(merged)
    for event in events:
        base = merged.get(event.key)
        # Also merges a pre- and a post-event of one run: the pre's cut-off, the post's status.
        merged[event.key] = event if base is None else merge_event(base, event)
    for run in expected:
        known = merged.get(run.key)
        if known is None:
            merged[run.key] = run
        elif known.scheduled_end is None and run.scheduled_end is not None:
            merged[run.key] = replace(known, scheduled_end=run.scheduled_end)
    verified = cancels_by_run(cancelled)
    for key, run in merged.items():
        merged[key] = settle_facts(run, row=rows.get(key), verified=verified.get(key))
    if not ordered:
        return tuple(merged.values())
    return tuple(sorted(merged.values(), key=lambda r: (r.start, r.key), reverse=True))


def with_configurations(runs: Iterable[Run], configs: Iterable[Configuration]) -> tuple[Run, ...]:
    """``runs`` with what their configuration knows filled in: its name where the run has
    none, and its maintenance scope (runs rows seldom carry one)."""
    known = {c.id.lower(): c for c in configs}
    out: list[Run] = []
    for run in runs:
        config = known.get(run.configuration_id.lower())
        if config is None:
            out.append(run)
            continue
        changes: dict[str, Any] = {}
        if not run.configuration_name:
            changes["configuration_name"] = config.name
        if config.scope and not run.scope:
            changes["scope"] = config.scope
        if config.tenant and not run.tenant:
            changes["tenant"] = config.tenant
        if config.tenant_id and not run.tenant_id:
            changes["tenant_id"] = config.tenant_id
        out.append(replace(run, **changes) if changes else run)
    return tuple(out)


def runs_in_view(runs: Iterable[Run], include_other_scopes: bool = False) -> tuple[Run, ...]:
    """The runs a patch-related view shows: guest patching unless the others are asked for
    (see :func:`services.domain.configs.in_patch_view`)."""
    return tuple(r for r in runs if in_patch_view(r.scope, include_other_scopes))


def run_phase(run: Run, now: datetime, rules: WindowRules) -> Phase:
    """The run's phase at ``now`` (its status decides when it has finished)."""
    return run_window(run.start, cutoff=run.cutoff, end=run.end, rules=rules).phase(
        now, finished=run.finished)




#: Why a run known only from its schedule is never cancelled. The cancel is a create-or-update
#: PUT: on an id Azure has not created yet it may create a run and answer success while the
#: real run goes ahead (docs/azure.md, "Cancel API").
UNSEEN_RUN_REASON = ("not seen in Azure yet: its id is only computed from the schedule; "
                     "wait for its Resource Graph row or its pre-event (from T-40)")


def cancel_refusal(run: Run, now: datetime, rules: WindowRules) -> str | None:
    """Why ``run`` cannot be cancelled at ``now`` by the domain rules, None when it can.

    Read-only mode and a cancel already in flight are the caller's to add; the window is
    checked again at the moment of sending.
    """
    if run.expected:
        return UNSEEN_RUN_REASON
    phase = run_phase(run, now, rules)
    if phase is not Phase.CANCELLABLE:
        return f"the cancel window is not open (the run is {phase.value})"
    return None
