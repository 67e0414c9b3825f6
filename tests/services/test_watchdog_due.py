"""Watchdog.check_due (deadlines queued per run) agrees with check over every run, and the
reported set is bounded."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.domain.eventmemory import EventArrival
from services.domain.model import Run
from services.domain.watchdog import Watchdog, duplicate_finding

T = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CFG = ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Maintenance/"
       "maintenanceConfigurations/c")


def make_run(i: int, rng: random.Random) -> Run:
    start = T + timedelta(minutes=rng.randrange(-180, 240))
    end = start + timedelta(minutes=rng.choice([30, 60, 120])) if rng.random() < 0.8 else None
    status = rng.choice(["Pending", "InProgress", "Succeeded", "Cancelled"])
    return Run(f"{CFG}{i}/providers/microsoft.maintenance/applyupdates/{i}", f"{CFG}{i}",
               f"c{i}", str(i), start, end, status,
               cancelled_by=rng.choice([None, None, "user", "platform"]),
               last_update=start + timedelta(minutes=5) if rng.random() < 0.5 else None)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_check_due_reports_what_check_reports_every_second(seed: int) -> None:
    rng = random.Random(seed)
    runs = {r.key: r for r in (make_run(i, rng) for i in range(12))}
    arrivals = {k: EventArrival(
        T + timedelta(minutes=rng.randrange(-200, 200)) if rng.random() < 0.5 else None,
        T + timedelta(minutes=rng.randrange(-200, 300)) if rng.random() < 0.5 else None)
        for k in runs if rng.random() < 0.6}
    brute = Watchdog(T)
    queued = Watchdog(T)
    queued.track(runs.values())
    brute_found: list[str] = []
    queued_found: list[str] = []
    now = T - timedelta(hours=1)
    while now <= T + timedelta(hours=7):
        brute_found += [f.key for f in brute.check(runs.values(), arrivals, now)]
        queued_found += [f.key for f in queued.check_due(runs, arrivals, now)]
        now += timedelta(minutes=rng.choice([1, 5, 17]))
    assert sorted(queued_found) == sorted(brute_found)
    assert queued.pending == 0  # every deadline judged by the end


def test_a_changed_run_is_judged_on_its_new_deadline() -> None:
    run = Run(f"{CFG}/providers/microsoft.maintenance/applyupdates/1", CFG, "c", "1",
              T, T + timedelta(hours=1), "Pending")
    dog = Watchdog(T - timedelta(hours=1))
    dog.track([run])
    later = Run(run.correlation_id, CFG, "c", "1", T + timedelta(hours=2),
                T + timedelta(hours=3), "Pending")
    dog.track([later])
    current = {later.key: later}
    # The old pre deadline (T-25) passes: the run now starts later, nothing is due yet.
    assert dog.check_due(current, {}, T - timedelta(minutes=20)) == []
    found = dog.check_due(current, {}, T + timedelta(hours=2) - timedelta(minutes=25))
    assert [f.kind for f in found] == ["missing-pre"]


def test_reported_keys_are_capped_oldest_first() -> None:
    dog = Watchdog(T, max_reported=100)
    for i in range(250):
        assert len(dog.new([duplicate_finding(f"e{i}", "pre", "run", "c")])) == 1
    assert len(dog.reported) == 100
    newest = duplicate_finding("e249", "pre", "run", "c")
    assert dog.new([newest]) == []  # still remembered: not reported twice
