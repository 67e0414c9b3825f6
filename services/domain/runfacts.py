"""One function per fact of a run: its status, who cancelled it, its end and its events
(issue 22, "One truth").

Every view of a run (the dashboard's state, ``aumwatch runs``, ``aumwatch report``, the
dashboard's export and its report key) gets these facts from here, through the one merge
(:func:`services.domain.runs.merge_runs`, which calls :func:`settle_facts` on every run it
merges) or directly; no view derives them itself, so they cannot disagree.

* **Status** (:func:`run_status`): a cancel aumwatch verified (read back as Cancelled) wins
  over a lagging Resource Graph row; otherwise the merged sources' status (Resource Graph's
  row, a post-event's status when the row has not caught up).
* **Who cancelled** (:func:`cancelled_by`, :func:`cancel_initiator`): ``cancelled_by`` is
  Azure's classification, ``user`` (the cancel API) or ``platform``, null when the run is not
  cancelled; ``cancel_initiator`` is who or what sent the verified cancel: the task
  (``task NAME (exit N)``) or the audited identity (``... via browser`` from a served
  dashboard), null when nothing is known.
* **End** (:func:`run_end`): when the run really ended: the post-event's time, else Resource
  Graph's end once its row is terminal, never the scheduled window end; None while the run has
  not ended or nobody knows when it did. Whether it overran its window: :func:`run_overran`.
* **Events** (:func:`run_events`): the pre/post events seen of the
  run, from the journal and from what the dashboard's event memory saw, one entry per event.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from services.domain.clock import ensure_utc, iso_z
from services.domain.model import FINISHED_STATUSES, CancelledBy, Run

#: The audit outcome of a cancel read back as Cancelled (services/azure/journal.py).
VERIFIED_OUTCOME = "verified-cancelled"
_CANCELLED = frozenset({"cancelled", "canceled"})


# --- the plain facts the journal and the queue give ----------------------------------------


@dataclass(frozen=True)
class EventFact:
    """One pre/post event of a run, as the journal recorded it or the dashboard saw it."""

    kind: str  # pre | post | other
    event_type: str
    event_id: str
    received_at: datetime
    event_time: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None
    cutoff: datetime | None = None
    status: str | None = None
    configuration_id: str | None = None
    configuration_name: str | None = None
    duplicate_deliveries: int = 0
    correlation_id: str = ""

    @property
    def cancellation_cutoff(self) -> datetime | None:
        """The pre-event's CancellationCutOffDateTime (the name the decoded event uses)."""
        return self.cutoff

    @property
    def happened_at(self) -> datetime:
        """When the event was raised (its event time), else when it was received."""
        return ensure_utc(self.event_time or self.received_at)

    def to_json(self) -> dict[str, Any]:
        """The report's ``events`` item."""
        return {
            "kind": self.kind, "type": self.event_type, "id": self.event_id,
            "event_time": iso_z(self.event_time), "received_at": iso_z(self.received_at),
            "start": iso_z(self.start), "end": iso_z(self.end),
            "cancellation_cutoff": iso_z(self.cutoff), "status": self.status,
            "duplicate_deliveries": self.duplicate_deliveries,
        }


def event_fact(event: Any, received_at: datetime) -> EventFact:
    """An :class:`EventFact` from a decoded event
    (:class:`services.domain.events.MaintenanceEvent`) received at ``received_at``."""
    return EventFact(
        kind=str(getattr(event, "kind", "")), event_type=str(getattr(event, "type", "")),
        event_id=str(getattr(event, "id", "")), received_at=ensure_utc(received_at),
        event_time=getattr(event, "event_time", None), start=getattr(event, "start", None),
        end=getattr(event, "end", None), cutoff=getattr(event, "cancellation_cutoff", None),
        status=getattr(event, "status", None),
        configuration_id=getattr(event, "configuration_id", None),
        configuration_name=getattr(event, "configuration_name", None),
        correlation_id=str(getattr(event, "correlation_id", "") or ""))


@dataclass(frozen=True)
class CancelFact:
    """One audited cancel attempt of a run."""

    attempted_at: datetime
    outcome: str
    finished_at: datetime | None = None
    identity: str | None = None
    initiator: str | None = None  # a task ("task precheck (exit 3)"); None: a person
    reason: str | None = None
    http_status: int | None = None
    run_status: str | None = None

    @property
    def sender(self) -> str | None:
        """Who or what sent the cancel (:func:`initiator_of`), None when unknown."""
        return initiator_of(self.identity, self.initiator)

    @property
    def who(self) -> str:
        """The sender, or "unknown" (the report's cancel table)."""
        return self.sender or "unknown"

    @property
    def verified(self) -> bool:
        return self.outcome == VERIFIED_OUTCOME

    def to_json(self) -> dict[str, Any]:
        """The report's ``cancels`` item."""
        return {
            "attempted_at": iso_z(self.attempted_at), "finished_at": iso_z(self.finished_at),
            "who": self.who, "identity": self.identity, "initiator": self.initiator,
            "outcome": self.outcome, "reason": self.reason, "http_status": self.http_status,
            "run_status": self.run_status,
        }


@dataclass(frozen=True)
class VerifiedCancel:
    """A cancel aumwatch verified: when, and who or what sent it (None: unknown)."""

    at: datetime
    initiator: str | None = None


def verified_cancel(value: VerifiedCancel | datetime) -> VerifiedCancel:
    """``value`` as a :class:`VerifiedCancel` (a bare time: sender unknown)."""
    return value if isinstance(value, VerifiedCancel) else VerifiedCancel(value)


def verified_cancel_of(cancels: Iterable[CancelFact]) -> VerifiedCancel | None:
    """The latest verified cancel among audited attempts, None when none was verified."""
    verified = [c for c in cancels if c.verified]
    if not verified:
        return None
    last = max(verified, key=lambda c: ensure_utc(c.finished_at or c.attempted_at))
    return VerifiedCancel(ensure_utc(last.finished_at or last.attempted_at), last.sender)


# --- the facts ------------------------------------------------------------------------------


def is_cancelled(status: str | None) -> bool:
    """Whether ``status`` says the run was cancelled (either spelling)."""
    return (status or "").strip().lower() in _CANCELLED


def is_finished(status: str | None) -> bool:
    """Whether nothing more happens to a run in ``status``."""
    return (status or "").strip().lower() in FINISHED_STATUSES


def initiator_of(identity: str | None, initiator: str | None) -> str | None:
    """Who or what sent a cancel, as every view says it: the task that asked
    (``task NAME (exit N)``), else the audited identity (``... via browser`` from a served
    dashboard), else None."""
    for value in (initiator, identity):
        if value and value.strip():
            return value.strip()
    return None


def run_status(status: str, verified: VerifiedCancel | None) -> str:
    """The run's status: Cancelled once aumwatch verified a cancel of it, whatever an older
    Resource Graph row still says; else ``status`` (the merged sources')."""
    if verified is not None and not is_cancelled(status):
        return "Cancelled"
    return status


def cancelled_by(status: str, classified: CancelledBy | None,
                 verified: VerifiedCancel | None) -> CancelledBy | None:
    """Azure's classification of a cancelled run: ``classified`` (its error text, see
    :func:`services.domain.runs.cancelled_by_from_error`), else ``user`` when aumwatch's
    cancel (the cancellation API) was verified; None when the run is not cancelled or
    nothing says how."""
    if not is_cancelled(run_status(status, verified)):
        return None
    if classified is not None:
        return classified
    return "user" if verified is not None else None


def cancel_initiator(status: str, verified: VerifiedCancel | None) -> str | None:
    """Who or what sent the cancel of a cancelled run (the verified cancel's sender); None
    when the run is not cancelled or nothing is known (a cancel from the portal)."""
    if verified is None or not is_cancelled(run_status(status, verified)):
        return None
    return verified.initiator


def run_end(status: str, *, post_event_at: datetime | None = None,
            row_end: datetime | None = None, row_last_update: datetime | None = None,
            scheduled_end: datetime | None = None,
            verified_cancel_at: datetime | None = None) -> datetime | None:
    """When the run really ended; None while it has not (``status`` not terminal) or when
    nobody knows.

    The post-event's time first (it is raised when the run ends). Else Resource Graph's once
    its row is terminal (``row_end``/``row_last_update`` are given only for a terminal row):
    its end, unless that is the scheduled window end (``scheduled_end``, or an end after the
    row's last change, which cannot have happened yet when the row was written), then the
    row's last update (when Azure recorded the final status). Else when aumwatch verified a
    cancel. Never the scheduled end.
    """
    if not is_finished(status):
        return None
    if post_event_at is not None:
        return ensure_utc(post_event_at)
    if row_end is not None and (scheduled_end is None or row_end != scheduled_end) and (
            row_last_update is None or row_end <= row_last_update):
        return ensure_utc(row_end)
    if row_last_update is not None:
        return ensure_utc(row_last_update)
    if verified_cancel_at is not None:
        return ensure_utc(verified_cancel_at)
    return None


def run_overran(run: Run) -> bool | None:
    """Whether the run ended after its scheduled window end (machines overran it); None
    while either is unknown (the run has not ended, or no source gave the scheduled end)."""
    if run.ended_at is None or run.scheduled_end is None:
        return None
    return ensure_utc(run.ended_at) > ensure_utc(run.scheduled_end)


def run_events(*sources: Iterable[EventFact]) -> tuple[EventFact, ...]:
    """The run's events from every source (the journal, the dashboard's event memory), one
    per event id and kind (the first received kept, its duplicate deliveries the most any
    source counted), in the order they happened."""
    found: dict[tuple[str, str], EventFact] = {}
    for source in sources:
        for fact in source:
            key = (fact.event_id.lower(), fact.kind)
            known = found.get(key)
            if known is None:
                found[key] = fact
                continue
            first = known if ensure_utc(known.received_at) <= ensure_utc(fact.received_at) \
                else fact
            found[key] = replace(first, duplicate_deliveries=max(
                known.duplicate_deliveries, fact.duplicate_deliveries))
    return tuple(sorted(found.values(), key=lambda e: (e.happened_at, e.kind, e.event_id)))


def settle_facts(run: Run, *, row: Run | None,
                 verified: VerifiedCancel | None) -> Run:
    """``run`` (merged from its sources) with its facts decided: status, who cancelled it and
    its end. ``row`` is Resource Graph's row of the run (None: none), ``verified`` the cancel
    aumwatch verified (None: none). Called by the one merge for every run."""
    status = run_status(run.status, verified)
    terminal_row = row is not None and is_finished(row.status)
    end = run_end(status, post_event_at=run.post_event_at,
                  row_end=row.end if terminal_row and row is not None else None,
                  row_last_update=row.last_update if terminal_row and row is not None else None,
                  scheduled_end=run.scheduled_end,
                  verified_cancel_at=verified.at if verified is not None else None)
    by = cancelled_by(status, run.cancelled_by, verified)
    # A run merged before (the dashboard's, handed to a report) keeps the sender it knew.
    initiator = cancel_initiator(status, verified) or (
        run.cancel_initiator if is_cancelled(status) else None)
    changes: dict[str, Any] = {}
    if status != run.status:
        changes["status"] = status
    if verified is not None:
        changes["expected"] = False  # Azure answered for it
        if not is_cancelled(run.status):
            changes["last_update"] = max(ensure_utc(verified.at),
                                         ensure_utc(run.last_update or verified.at))
    if by != run.cancelled_by:
        changes["cancelled_by"] = by
    if initiator != run.cancel_initiator:
        changes["cancel_initiator"] = initiator
    if end != run.ended_at:
        changes["ended_at"] = end
    if changes.get("expected") is False and not run.expected:
        del changes["expected"]
    return replace(run, **changes) if changes else run


def facts_json(run: Run) -> dict[str, Any]:
    """The run facts every JSON view of a run shows (``runs --json``, the report's ``run``
    block, the dashboard's export), with the same keys and values: ``status``, ``end`` (the
    real end, null while unknown), ``cancelled_by`` (``user``/``platform``/null),
    ``cancel_initiator``, ``scheduled_end``, ``overran`` (:func:`run_overran`),
    ``pre_event`` and ``post_event`` (the first one's event time seen, null when none was)."""
    return {
        "status": run.status,
        "end": iso_z(run.ended_at),
        "cancelled_by": run.cancelled_by,
        "cancel_initiator": run.cancel_initiator,
        "scheduled_end": iso_z(run.scheduled_end),
        "overran": run_overran(run),
        "pre_event": iso_z(run.pre_event_at),
        "post_event": iso_z(run.post_event_at),
    }


def cancels_by_run(cancels: Mapping[str, VerifiedCancel | datetime] | None
                   ) -> dict[str, VerifiedCancel]:
    """Verified cancels keyed by run key (lower case), each as a :class:`VerifiedCancel`."""
    return {k.strip().rstrip("/").lower(): verified_cancel(v) for k, v in (cancels or {}).items()}
