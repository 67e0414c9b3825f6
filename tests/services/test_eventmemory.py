"""EventMemory: runs the events announced, first arrivals, bounded by age and count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from services.domain.boundary import EventBatch
from services.domain.eventmemory import EventArrival, EventMemory

T = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CFG = ("/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg/providers/"
       "Microsoft.Maintenance/maintenanceConfigurations/web")


def run_id(start: datetime) -> str:
    return f"{CFG}/providers/microsoft.maintenance/applyupdates/{start:%Y%m%d%H%M%S}"


def event(kind: str, start: datetime, **extra: object) -> SimpleNamespace:
    values: dict[str, object] = dict(
        kind=kind, correlation_id=run_id(start), configuration_id=CFG,
        configuration_name="web", start=start, end=start + timedelta(hours=1),
        status="Succeeded" if kind == "post" else None, cancellation_cutoff=None)
    values.update(extra)
    return SimpleNamespace(**values)


def batch(*received: tuple[SimpleNamespace, datetime]) -> SimpleNamespace:
    return SimpleNamespace(events=[SimpleNamespace(event=e, arrived_at=at) for e, at in received])


def test_pre_and_post_merge_into_one_run_with_first_arrivals() -> None:
    memory = EventMemory()
    cutoff = T - timedelta(minutes=1)
    keys = memory.remember(batch((event("pre", T, cancellation_cutoff=cutoff),
                                  T - timedelta(minutes=35))), T - timedelta(minutes=35))
    memory.remember(batch((event("pre", T), T - timedelta(minutes=30)),
                          (event("post", T), T + timedelta(hours=1))), T + timedelta(hours=1))
    key = run_id(T).lower()
    assert keys == [key]
    run = memory.get(key)
    assert run is not None and run.cutoff == cutoff and run.status == "Succeeded"
    assert memory.arrivals[key] == EventArrival(T - timedelta(minutes=35), T + timedelta(hours=1))
    assert len(memory) == 1


def test_a_real_event_batch_is_accepted() -> None:
    memory = EventMemory()
    assert memory.remember(EventBatch(mode="peek", fetched_at=T), T) == []


def test_runs_older_than_the_history_are_forgotten() -> None:
    memory = EventMemory(max_age=timedelta(days=7))
    old = T - timedelta(days=8)
    memory.remember(batch((event("pre", old), old - timedelta(minutes=35))), old)
    assert len(memory) == 1
    memory.remember(batch((event("pre", T), T - timedelta(minutes=35))), T)
    assert run_id(old).lower() not in memory
    assert run_id(old).lower() not in memory.arrivals
    assert run_id(T).lower() in memory


def test_over_the_cap_the_oldest_finished_go_first_and_live_runs_stay() -> None:
    memory = EventMemory(max_runs=10)
    now = T + timedelta(days=1)
    past = [T + timedelta(minutes=i) for i in range(30)]  # ended long before now
    future = [now + timedelta(hours=1, minutes=i) for i in range(15)]  # deadlines ahead
    for start in past + future:
        memory.remember(batch((event("pre", start), start - timedelta(minutes=35))), now)
    assert len(memory) <= 10 + 15 + 1  # the cap (plus slack) over past ones; all live kept
    for start in future:
        assert run_id(start).lower() in memory
    kept_past = [s for s in past if run_id(s).lower() in memory]
    assert kept_past == past[len(past) - len(kept_past):]  # the newest of the past remain
    assert set(memory.arrivals) == {r.key for r in memory.runs()}


def test_memory_stays_bounded_over_a_long_tail() -> None:
    memory = EventMemory(max_runs=100)
    now = T
    for i in range(3_000):  # a run every 6 s, pre and post, for 5 hours
        start = T + timedelta(minutes=30, seconds=6 * i)
        now = T + timedelta(seconds=6 * i)
        memory.remember(batch((event("pre", start), now), (event("post", start), now)), now)
        # Runs whose post deadline (start + 1 h 15) is ahead: 1 h 45 of starts every 6 s,
        # plus the cap and its slack.
        assert len(memory) <= 1_050 + 110 + 1
    assert len(memory.arrivals) == len(memory)


def test_a_bad_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="max_runs"):
        EventMemory(max_runs=0)
