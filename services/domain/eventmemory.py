"""What the pre/post events said about runs: the runs they announced and when each kind
first arrived. Bounded, so a dashboard left open for days does not grow.

The runs an event names show up before Resource Graph catches up (it can lag by minutes) and
carry what Resource Graph never has (a pre-event's cancellation cut-off). The first arrival of
each kind per run feeds the timeline and the watchdog. The dashboard's state owns the one
:class:`EventMemory` and is the only code that records events in it (it merges the memory's
runs with the others by ``merge_runs``).

Forgetting (we define it; the design is silent): a run is forgotten once it started more than
``max_age`` ago (the runs query's history, 7 days), and, when more than ``max_runs`` runs are
remembered, the oldest whose post-event deadline (end + 15 min) has passed are forgotten
first. A run still ahead of its deadlines is never forgotten for the cap: the watchdog needs
its arrivals. Resource Graph keeps showing a forgotten run it knows; one only the queue knew
leaves the dashboard with it.

Pure: no I/O, no clock; ``now`` is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from services.domain.boundary import EventBatch
from services.domain.events import MaintenanceEvent
from services.domain.model import Run
from services.domain.runfacts import EventFact, event_fact, run_events
from services.domain.runs import DEFAULT_SINCE, merge_event, run_from_event
from services.domain.watchdog import POST_EVENT_GRACE

#: Past runs kept beyond the ones whose deadlines are still ahead.
DEFAULT_MAX_RUNS = 1_000
#: Prune only when this many more than the cap are held (the pass sorts; keep it rare).
_SLACK = 0.1


@dataclass(frozen=True)
class EventArrival:
    """When the first pre- and post-event of one run arrived (None: not yet)."""

    pre: datetime | None = None
    post: datetime | None = None


class EventMemory:
    """Event-announced runs and first arrivals, keyed by run key (correlation id, lower case)."""

    def __init__(self, *, max_age: timedelta = DEFAULT_SINCE,
                 max_runs: int = DEFAULT_MAX_RUNS) -> None:
        if max_runs < 1:
            raise ValueError(f"max_runs must be at least 1, got {max_runs}")
        self.max_age = max_age
        self.max_runs = max_runs
        self._runs: dict[str, Run] = {}
        self._arrivals: dict[str, EventArrival] = {}
        # What each event was, per run: what a report written from the dashboard says it saw.
        self._events: dict[str, dict[tuple[str, str], EventFact]] = {}
        self._next_age_prune: datetime | None = None

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, key: object) -> bool:
        return key in self._runs

    @property
    def arrivals(self) -> Mapping[str, EventArrival]:
        """First pre/post arrival per run key (a read-only view)."""
        return MappingProxyType(self._arrivals)

    def runs(self) -> tuple[Run, ...]:
        """Every remembered run (each the merge of its pre- and post-event)."""
        return tuple(self._runs.values())

    def get(self, key: str) -> Run | None:
        """The remembered run of ``key``, if any."""
        return self._runs.get(key)

    def events_of(self, key: str) -> tuple[EventFact, ...]:
        """The pre/post events seen of run ``key`` (one per event, with its duplicate
        deliveries), in the order they happened."""
        return run_events(self._events.get(key.lower(), {}).values())

    def remember(self, batch: EventBatch, now: datetime) -> list[str]:
        """Take a batch's events; returns the keys of the runs they named. Only the
        dashboard's state hands batches over, each once."""
        keys: list[str] = []
        for received in batch.events:
            key = self.add(received.event, received.arrived_at)
            if key is not None:
                keys.append(key)
        for duplicate in getattr(batch, "duplicates", ()):
            self._count_duplicate(getattr(duplicate, "event", None))
        self.prune(now)
        return keys

    def add(self, event: MaintenanceEvent, arrived_at: datetime) -> str | None:
        """One decoded pre/post event that arrived at ``arrived_at``; its run key or None."""
        run = run_from_event(event)
        if run is None:
            return None
        previous = self._runs.get(run.key)
        self._runs[run.key] = run if previous is None else merge_event(previous, run)
        seen = self._arrivals.get(run.key, EventArrival())
        kind = str(event.kind)
        if kind == "pre" and seen.pre is None:
            seen = EventArrival(arrived_at, seen.post)
        elif kind == "post" and seen.post is None:
            seen = EventArrival(seen.pre, arrived_at)
        self._arrivals[run.key] = seen
        fact = event_fact(event, arrived_at)
        self._events.setdefault(run.key, {}).setdefault(
            (fact.event_id.lower(), fact.kind), fact)
        return run.key

    def _count_duplicate(self, event: Any) -> None:
        seen = self._events.get(str(getattr(event, "correlation_id", "") or "").lower())
        if not seen:
            return
        key = (str(getattr(event, "id", "")).lower(), str(getattr(event, "kind", "")))
        fact = seen.get(key)
        if fact is not None:
            seen[key] = replace(fact, duplicate_deliveries=fact.duplicate_deliveries + 1)

    def prune(self, now: datetime) -> list[str]:
        """Forget what is too old or over the cap (see the module); returns the keys dropped."""
        dropped: list[str] = []
        if self._next_age_prune is None or now >= self._next_age_prune \
                or len(self._runs) > self.max_runs * (1 + _SLACK):
            oldest = now - self.max_age
            dropped += [k for k, r in self._runs.items() if r.start < oldest]
            self._forget(dropped)
            # Ages change slowly: an hourly pass is enough between cap-driven ones.
            self._next_age_prune = now + timedelta(hours=1)
        if len(self._runs) > self.max_runs * (1 + _SLACK):
            excess = len(self._runs) - self.max_runs
            done = sorted((r.start, k) for k, r in self._runs.items()
                          if (r.end or r.start) + POST_EVENT_GRACE < now)
            over = [k for _, k in done[:excess]]
            self._forget(over)
            dropped += over
        return dropped

    def _forget(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._runs.pop(key, None)
            self._arrivals.pop(key, None)
            self._events.pop(key, None)
