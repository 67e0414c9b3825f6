"""What crosses the seam between ``services/azure`` and the UI: plain frozen data.

The dashboard's only path from Azure to the screen is Monitor -> message -> ``DashboardState``
(docs/architecture.md, "The seam"). Every value that takes that path is one of these types:

* :class:`EventBatch` (one read of the events queue, with the task runs finished since the
  last read), made of :class:`ReceivedEvent` and :class:`UndecodableMessage`;
* :class:`RunsSnapshot`: the runs Resource Graph returned and the cancels the shared journal
  has verified (read with every runs poll, so a cancel verified by another aumwatch process
  shows at the next refresh);
* :class:`WiringSnapshot`: one read of the Event Grid wiring;
* :class:`CancelTarget` / :class:`CancelResult` (:class:`Outcome`): one cancel, asked and
  answered;
* :class:`MonitorStatus`: when each source last answered, the Resource Graph quota, the clock
  skew and whether this dashboard runs the declared tasks (the status bar's facts).

Pure: no I/O, no Azure SDK, no Textual.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal

from services.domain.clock import iso_z
from services.domain.events import MaintenanceEvent
from services.domain.model import Fetched, Run
from services.domain.runfacts import VerifiedCancel
from services.domain.tasks import TaskResult
from services.domain.wiring import Wiring

__all__ = [
    "SOURCES",
    "CancelResult",
    "CancelTarget",
    "EventBatch",
    "Mode",
    "MonitorStatus",
    "Outcome",
    "ReceivedEvent",
    "RunsSnapshot",
    "UndecodableMessage",
    "WiringSnapshot",
]

#: How the events queue is read.
Mode = Literal["peek", "consume"]
#: Source names, in the order the status bar lists them.
SOURCES = ("configs", "runs", "events")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


# -- events -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReceivedEvent:
    """One event as the source got it. ``duplicate`` marks a second delivery of an event
    already seen (same id and type, another message)."""

    event: MaintenanceEvent
    received_at: datetime
    message_id: str | None
    inserted_at: datetime | None
    duplicate: bool = False

    @property
    def arrived_at(self) -> datetime:
        """When the event reached us: the queue's insertion time (else when we read it), or
        the event's own time when that is earlier. A backlog written into the queue late (a
        replay, the stand-in filling its history) keeps the time the event was published, so
        the watchdog does not call an on-time pre-event late."""
        arrived = self.inserted_at or self.received_at
        published = self.event.event_time
        return published if published is not None and published < arrived else arrived

    def to_json(self) -> dict[str, Any]:
        """The event's JSON plus ``received_at`` and ``duplicate`` (``events tail --json``)."""
        out = self.event.to_json()
        out["received_at"] = iso_z(self.received_at, fraction=True)
        out["duplicate"] = self.duplicate
        return out


@dataclass(frozen=True)
class UndecodableMessage:
    """A message that holds no valid event: why, and the start of its text, escaped."""

    reason: str
    raw_preview: str
    received_at: datetime
    message_id: str | None
    inserted_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """The line ``events tail --json`` prints for it."""
        return {
            "undecodable": True,
            "reason": self.reason,
            "raw_preview": self.raw_preview,
            "received_at": iso_z(self.received_at, fraction=True),
            "message_id": self.message_id,
        }


@dataclass(frozen=True)
class EventBatch:
    """What one poll of the events queue found.

    ``events`` are new (shown once); ``duplicates`` are further deliveries of events already
    seen (flagged, not shown as new); ``redelivered`` counts consume-mode messages whose events
    were already journaled (a re-delivery after a crash: deleted, nothing new). ``depth`` is the
    queue's approximate message count, None when this poll did not read it; ``truncated`` is
    True when a peek could not see them all, with ``warning`` saying so. ``error`` is the
    one-line failure of this poll, if any. ``task_results`` are the task runs this process
    finished since the last batch (a dashboard that runs the declared tasks).
    """

    mode: Mode
    fetched_at: datetime
    events: tuple[ReceivedEvent, ...] = ()
    duplicates: tuple[ReceivedEvent, ...] = ()
    undecodable: tuple[UndecodableMessage, ...] = ()
    redelivered: int = 0
    depth: int | None = None
    truncated: bool = False
    warning: str | None = None
    error: str | None = None
    task_results: tuple[TaskResult, ...] = ()

    @property
    def duplicate_count(self) -> int:
        """How many duplicate deliveries this poll saw."""
        return len(self.duplicates)


# -- runs ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunsSnapshot:
    """One runs poll: what Resource Graph returned (observed runs only) and the cancels the
    audit journal has verified (run key, lower case -> when), read at the same poll and
    scoped to this view's world. ``cancels`` is None when the journal was not read (none
    yet, or unreadable): the verified cancels known so far stand."""

    observed: Fetched[Run]
    cancels: Mapping[str, VerifiedCancel] | None = None


# -- wiring -------------------------------------------------------------------------------
@dataclass(frozen=True)
class WiringSnapshot:
    """The Event Grid wiring of the configurations asked for, as of one read of Azure."""

    wirings: Mapping[str, Wiring]  # key: configuration id, lower-case
    fetched_at: datetime | None
    error: str | None = None  # one line when the whole read failed (else per part, in Wiring)

    def get(self, configuration_id: str) -> Wiring | None:
        """The wiring of one configuration (id compared case-insensitively)."""
        return self.wirings.get(configuration_id.strip().rstrip("/").lower())


# -- cancel -------------------------------------------------------------------------------
class Outcome(StrEnum):
    """The result of one cancel attempt."""

    VERIFIED = "verified"  # read back as Cancelled
    ACCEPTED = "accepted"  # Azure answered Cancelled; the read-back was unavailable
    REFUSED = "refused"  # not sent: the reason says why
    FAILED = "failed"  # sent, and known not to have cancelled the run
    UNKNOWN = "unknown"  # sent, and we could not learn what happened


@dataclass(frozen=True)
class CancelTarget:
    """The run to cancel. ``computed_id`` is True when the id was computed from the schedule
    (before any pre-event or Resource Graph row named it); ``cutoff`` is the pre-event's
    CancellationCutOffDateTime when known."""

    correlation_id: str
    configuration_name: str
    start: datetime
    cutoff: datetime | None = None
    computed_id: bool = False
    #: Who asked for the cancel when it was not a person ("task precheck (exit 3)"); the
    #: audit records it. None for a cancel confirmed at the keyboard.
    initiator: str | None = None
    #: Issue 19: the ``[[tenants]]`` profile the run was read through and the tenant owning
    #: its subscription (None: not known, or one tenant only).
    tenant: str | None = None
    tenant_id: str | None = None


@dataclass(frozen=True)
class CancelResult:
    """What happened. ``message`` is one line for the operator; ``run_status`` is the run's
    status as last read back; ``journal_error`` says the audit could not be written."""

    outcome: Outcome
    message: str
    run_id: str
    http_status: int | None = None
    run_status: str | None = None
    journal_error: str | None = None
    #: Who or what sent the cancel, as the audit records it and every view shows it
    #: (:func:`services.domain.runfacts.initiator_of`); None when unknown.
    initiator: str | None = None

    @property
    def verified(self) -> bool:
        """Whether the cancel was read back as Cancelled."""
        return self.outcome is Outcome.VERIFIED


# -- the monitor's own facts ---------------------------------------------------------------
@dataclass(frozen=True)
class MonitorStatus:
    """What the status bar says of the sources, as of one poll.

    ``fetched_at``: when each of :data:`SOURCES` last answered (None: never);
    ``quota_remaining`` / ``throttled_until``: the Resource Graph quota (``throttled_until``
    is in real time, whatever clock the dashboard shows); ``skew``: server time minus local
    time (None: not measured). ``runs_tasks``: this dashboard runs the declared tasks;
    ``tasks_refusal``: why it does not; ``consume_refusal``: why a consume-mode dashboard
    without tasks only peeks (another process consumes the queue).
    """

    fetched_at: Mapping[str, datetime | None] = field(default_factory=lambda: _EMPTY)
    quota_remaining: int | None = None
    throttled_until: datetime | None = None
    skew: timedelta | None = None
    runs_tasks: bool = False
    tasks_refusal: str | None = None
    consume_refusal: str | None = None

    def age(self, source: str, now: datetime) -> timedelta | None:
        """How old ``source``'s data is at ``now`` (None: never fetched)."""
        when = self.fetched_at.get(source)
        return None if when is None else now - when
