"""The data aumwatch shows: plain frozen dataclasses, no SDK objects.

Sources (configs, runs, machines, events) produce these; the UI and the CLI only read them.
All datetimes are timezone-aware UTC. ``to_json()`` gives exactly the keys of the CLI's JSON
contract (times as UTC ISO 8601 with ``Z``), plus a few extra keys that are documented as extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Generic, Literal, TypeVar

from services.domain.clock import iso_z

CancelledBy = Literal["user", "platform"]
RunOrigin = Literal["arg", "event", "schedule"]

#: Run statuses after which nothing more happens to a run.
FINISHED_STATUSES = frozenset({"completed", "succeeded", "failed", "cancelled", "canceled",
                               "completedwithwarnings", "timeout"})


@dataclass(frozen=True)
class Configuration:
    """A maintenance configuration and its next occurrences (UTC ``(start, end)`` pairs)."""

    id: str
    name: str
    resource_group: str
    subscription_id: str
    location: str = ""
    scope: str = ""  # maintenanceScope: InGuestPatch, Host, OSImage, Extension, ...
    time_zone: str = ""
    recur_every: str = ""
    duration: str = ""
    start_date_time: str = ""  # wall time in time_zone, as Azure writes it ("YYYY-MM-DD hh:mm")
    expiration: str | None = None  # wall time in time_zone, or None (never)
    tags: Mapping[str, str] = field(default_factory=dict)
    schedule_error: str | None = None  # why the schedule could not be read, when it could not
    schedule_description: str | None = None
    schedule_warnings: tuple[str, ...] = ()
    next_occurrences: tuple[tuple[datetime, datetime], ...] = ()
    #: Issue 19: the ``[[tenants]]`` profile it was read through ("" without profiles) and
    #: the tenant that owns its subscription (Resource Graph's ``tenantId``; None: unknown).
    tenant: str = ""
    tenant_id: str | None = None

    @property
    def next_start(self) -> datetime | None:
        return self.next_occurrences[0][0] if self.next_occurrences else None

    @property
    def next_end(self) -> datetime | None:
        return self.next_occurrences[0][1] if self.next_occurrences else None

    def to_json(self, *, phase: str | None = None) -> dict[str, Any]:
        """The ``configs --json`` object; ``phase`` is the next run's (computed by the caller)."""
        return {
            "id": self.id,
            "name": self.name,
            "resource_group": self.resource_group,
            "subscription_id": self.subscription_id,
            "location": self.location,
            "scope": self.scope,
            "time_zone": self.time_zone,
            "recur_every": self.recur_every,
            "duration": self.duration,
            "start_date_time": self.start_date_time,
            "expiration": self.expiration,
            "next_start": iso_z(self.next_start),
            "next_end": iso_z(self.next_end),
            "phase": phase,
            "schedule_error": self.schedule_error,
            "tenant": self.tenant or None,
            "tenant_id": self.tenant_id,
        }


@dataclass(frozen=True)
class Run:
    """One run of a configuration: observed (ARG, event) or expected (schedule)."""

    correlation_id: str
    configuration_id: str
    configuration_name: str
    run_name: str
    start: datetime
    end: datetime | None = None
    status: str = "Scheduled"
    expected: bool = False  # only computed from the schedule
    cancelled_by: CancelledBy | None = None
    error: str | None = None
    machines_total: int | None = None
    machines_succeeded: int | None = None
    machines_failed: int | None = None
    machines_in_progress: int | None = None
    cutoff: datetime | None = None  # CancellationCutOffDateTime from the pre-event, when known
    source: RunOrigin = "arg"
    last_update: datetime | None = None
    #: The configuration's maintenanceScope (InGuestPatch, Host, ...); "" when unknown.
    scope: str = ""
    #: The facts :mod:`services.domain.runfacts` decides, set by the one merge
    #: (:func:`services.domain.runs.merge_runs`): who or what sent the verified cancel
    #: ("task NAME (exit N)", an audited identity), when the run really ended (None while it
    #: has not, or nobody knows), its scheduled window end, and the event time of its first
    #: pre- and post-event seen (journal or queue).
    cancel_initiator: str | None = None
    ended_at: datetime | None = None
    scheduled_end: datetime | None = None
    pre_event_at: datetime | None = None
    post_event_at: datetime | None = None
    #: Issue 19: the ``[[tenants]]`` profile it was read through ("" without profiles) and
    #: the tenant that owns its subscription (None: unknown).
    tenant: str = ""
    tenant_id: str | None = None

    @cached_property
    def key(self) -> str:
        """The merge key: correlation ids compare case-insensitively (computed once: the
        merge and the run index ask for it many times per run)."""
        return self.correlation_id.lower()

    @property
    def finished(self) -> bool:
        return self.status.lower() in FINISHED_STATUSES

    def to_json(self, *, phase: str | None = None) -> dict[str, Any]:
        """The ``runs --json`` object; ``phase`` is computed by the caller (window rules).
        ``status``, ``end``, ``cancelled_by``, ``cancel_initiator`` and the event keys are the
        run facts every JSON view shares (:func:`services.domain.runfacts.facts_json`)."""
        from services.domain.runfacts import facts_json

        facts = facts_json(self)
        return {
            "correlation_id": self.correlation_id,
            "configuration_id": self.configuration_id,
            "configuration_name": self.configuration_name,
            "run_name": self.run_name,
            "status": facts.pop("status"),
            "start": iso_z(self.start),
            "end": facts.pop("end"),
            "phase": phase,
            "expected": self.expected,
            "cancelled_by": facts.pop("cancelled_by"),
            "machines_total": self.machines_total,
            "machines_succeeded": self.machines_succeeded,
            "machines_failed": self.machines_failed,
            "machines_in_progress": self.machines_in_progress,
            "error": self.error,
            "cutoff": iso_z(self.cutoff),
            "source": self.source,
            "scope": self.scope,
            **facts,
            "tenant": self.tenant or None,
            "tenant_id": self.tenant_id,
        }


@dataclass(frozen=True)
class Machine:
    """One machine's part in one run."""

    resource_id: str
    name: str
    status: str
    installed: int | None = None
    failed: int | None = None
    pending: int | None = None
    reboot: str | None = None
    window_exceeded: bool | None = None
    error: str | None = None
    correlation_id: str = ""
    start: datetime | None = None
    end: datetime | None = None
    #: Issue 19: the profile it was read through ("" without profiles) and its tenant.
    tenant: str = ""
    tenant_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``machines --json`` object."""
        return {
            "resource_id": self.resource_id,
            "name": self.name,
            "status": self.status,
            "installed": self.installed,
            "failed": self.failed,
            "pending": self.pending,
            "reboot": self.reboot,
            "window_exceeded": self.window_exceeded,
            "error": self.error,
            "correlation_id": self.correlation_id,
            "start": iso_z(self.start),
            "end": iso_z(self.end),
            "tenant": self.tenant or None,
            "tenant_id": self.tenant_id,
        }


T = TypeVar("T")


@dataclass(frozen=True)
class Fetched(Generic[T]):
    """What one fetch returned: the items, when (injected clock), and the server clock skew.

    ``skew`` is server time minus local time from the last response's ``Date`` header (None
    when no response carried one). ``requests`` counts the pages it took.
    """

    items: tuple[T, ...]
    fetched_at: datetime
    skew: timedelta | None = None
    requests: int = 0
    #: Issue 19: the tenants whose read failed while others answered: profile name -> the
    #: one-line error (empty: every tenant answered).
    failed: Mapping[str, str] = field(default_factory=dict, hash=False)
