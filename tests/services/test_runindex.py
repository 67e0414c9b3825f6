"""RunIndex: each configuration's next run equals the brute-force answer over a flat list,
through random puts, removals, replacements and clock moves."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.domain.model import Run
from services.domain.runindex import RunIndex, config_key_of
from services.domain.runs import run_phase
from services.domain.window import Phase, WindowRules

T = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
RULES = WindowRules()
CFG = ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Maintenance/"
       "maintenanceConfigurations/")


def brute_next(runs: dict[str, Run], config_key: str, now: datetime) -> Run | None:
    live = [r for r in runs.values() if r.configuration_id.lower() == config_key
            and run_phase(r, now, RULES) is not Phase.FINISHED]
    return min(live, key=lambda r: (r.start, r.key)) if live else None


def random_run(rng: random.Random) -> Run:
    config = CFG + rng.choice(["A", "b", "C"])  # mixed case: keys compare lower-cased
    start = T + timedelta(minutes=rng.randrange(-300, 300))
    end = start + timedelta(minutes=rng.choice([0, 30, 90])) if rng.random() < 0.85 else None
    name = f"{rng.randrange(12)}"
    return Run(f"{config}/providers/microsoft.maintenance/applyupdates/{name}".upper()
               if rng.random() < 0.2 else
               f"{config}/providers/microsoft.maintenance/applyupdates/{name}",
               rng.choice([config, CFG + "a"]) if rng.random() < 0.1 else config,
               "c", name, start, end,
               rng.choice(["Pending", "InProgress", "Succeeded", "Failed", "Scheduled"]),
               source=rng.choice(["arg", "event", "schedule"]))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_next_run_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    index = RunIndex(RULES)
    flat: dict[str, Run] = {}
    now = T - timedelta(hours=6)
    for _ in range(60):
        action = rng.random()
        if action < 0.5:
            run = random_run(rng)
            touched = index.put(run)
            if flat.get(run.key) != run:
                assert config_key_of(run) in touched
            flat[run.key] = run
        elif action < 0.6 and flat:
            key = rng.choice(sorted(flat))
            assert index.remove(key) == {config_key_of(flat.pop(key))}
        elif action < 0.65:
            fresh = {r.key: r for r in (random_run(rng) for _ in range(rng.randrange(8)))}
            index.replace(fresh)
            flat = fresh
        else:
            now += timedelta(minutes=rng.choice([1, 10, 45, 120]))
        assert dict(index.runs) == flat
        assert index.event_only_keys == {k for k, r in flat.items() if r.source == "event"}
        for config in {r.configuration_id.lower() for r in flat.values()} | {(CFG + "x").lower()}:
            assert index.next_run(config, now) == brute_next(flat, config, now)
            assert index.of_config(config) == sorted(
                (r for r in flat.values() if r.configuration_id.lower() == config),
                key=lambda r: (r.start, r.key), reverse=True)


def test_replace_reports_only_what_changed() -> None:
    rng = random.Random(7)
    runs = {r.key: r for r in (random_run(rng) for _ in range(20))}
    index = RunIndex(RULES)
    index.replace(runs)
    assert index.replace(dict(runs)) == (set(), [])
    victim = next(iter(runs.values()))
    from dataclasses import replace

    changed = replace(victim, status="Failed" if victim.status != "Failed" else "Pending")
    touched, new = index.replace({**runs, victim.key: changed})
    assert touched == {config_key_of(victim)} and new == [changed]


def test_the_cached_answer_moves_on_when_the_run_ends() -> None:
    index = RunIndex(RULES)
    first = Run(CFG + "a/providers/microsoft.maintenance/applyupdates/1", CFG + "a", "a", "1",
                T, T + timedelta(hours=1), "InProgress")
    second = Run(CFG + "a/providers/microsoft.maintenance/applyupdates/2", CFG + "a", "a", "2",
                 T + timedelta(days=1), T + timedelta(days=1, hours=1), "Scheduled")
    index.put(first)
    index.put(second)
    key = (CFG + "a").lower()
    assert index.next_run(key, T + timedelta(minutes=59)) == first
    assert index.next_run(key, T + timedelta(hours=1)) == second
    assert index.next_run(key, T) == first  # a clock set back is answered afresh
