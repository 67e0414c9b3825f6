"""The dashboard's incremental table and tick agree with a from-scratch computation; the
events queue is read on its own interval; event-only runs leave with the event memory."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from textual.widgets import DataTable

from services.domain.boundary import EventBatch, ReceivedEvent
from services.domain.clock import ManualClock
from services.domain.eventmemory import EventMemory
from services.domain.model import Configuration, Fetched, Run
from services.settings import Settings
from tui.app import AumwatchApp
from tui.display import countdown_text

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SUB = "3f2a1c9e-7b4d-4e61-9a0f-2c5d8e7b1a10"


def config_id(i: int) -> str:
    return (f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Maintenance/"
            f"maintenanceConfigurations/cfg{i:03d}")


def make_config(i: int, start: datetime) -> Configuration:
    return Configuration(id=config_id(i), name=f"cfg{i:03d}", resource_group="rg",
                         subscription_id=SUB, time_zone="UTC", recur_every="Day",
                         next_occurrences=((start, start + timedelta(hours=1)),))


def make_run(i: int, start: datetime, status: str = "Pending",
             source: str = "arg") -> Run:
    name = start.strftime("%Y%m%d%H%M%S")
    return Run(f"{config_id(i)}/providers/microsoft.maintenance/applyupdates/{name}",
               config_id(i), f"cfg{i:03d}", name, start, start + timedelta(hours=1), status,
               source=source)  # type: ignore[arg-type]


def _on_screen(app: AumwatchApp) -> set[str]:
    # Countdowns are kept current for the rows on screen only (the others when scrolled to).
    return set(app.dashboard.configs_panel.visible_keys())


def expected_view(app: AumwatchApp) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """Order and (next, phase[, countdown on screen]) of every row, computed from scratch."""
    now = app.clock.now()
    state = app.dashboard.state
    order = state.config_order()
    visible = _on_screen(app)
    cells = {}
    for key in order:
        row = app.dashboard.configs_panel.cells_for(state.configs[key], now,
                                                    state.next_run(key, now))
        cells[key] = (row[1].plain, row[3].plain) + ((row[2].plain,) if key in visible else ())
    return order, cells


def shown_view(app: AumwatchApp) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    table: DataTable[Any] = app.query_one("#configs", DataTable)
    order = [table.coordinate_to_cell_key((i, 0)).row_key.value or ""
             for i in range(table.row_count)]
    visible = _on_screen(app)
    cells = {k: tuple(table.get_cell(k, c).plain for c in ("next", "phase")) + (
        (table.get_cell(k, "countdown").plain,) if k in visible else ()) for k in order}
    return order, cells


async def test_incremental_table_matches_a_full_recompute(tmp_path: Path) -> None:
    rng = random.Random(5)
    clock = ManualClock(NOW)
    app = AumwatchApp(Settings(data_dir=tmp_path), clock=clock, poll=False)
    async with app.run_test(size=(160, 60)) as pilot:
        configs = {i: make_config(i, NOW + timedelta(minutes=rng.randrange(-30, 300)))
                   for i in range(40)}
        runs: dict[str, Run] = {}
        for step in range(40):
            action = rng.random()
            if action < 0.3:
                i = rng.randrange(60)
                configs[i] = make_config(i, NOW + timedelta(minutes=rng.randrange(-30, 600)))
            elif action < 0.4 and configs:
                configs.pop(rng.choice(sorted(configs)))
            elif action < 0.7:
                i = rng.randrange(60)
                run = make_run(i, clock.now() + timedelta(minutes=rng.randrange(-90, 120)),
                               rng.choice(["Pending", "InProgress", "Succeeded"]))
                runs[run.key] = run
            else:
                clock.advance(timedelta(minutes=rng.choice([1, 7, 25, 60])))
                app.dashboard.tick()
                await pilot.pause()
                assert shown_view(app) == expected_view(app), f"after tick, step {step}"
                continue
            app.dashboard.apply_configs(Fetched(tuple(configs.values()), clock.now()))
            app.dashboard.apply_runs(Fetched(tuple(runs.values()), clock.now()))
            await pilot.pause()
            assert shown_view(app) == expected_view(app), f"after apply, step {step}"


async def test_far_rows_get_fresh_countdowns_when_scrolled_to(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    app = AumwatchApp(Settings(data_dir=tmp_path), clock=clock, poll=False)
    configs = tuple(make_config(i, NOW + timedelta(minutes=10 + i)) for i in range(200))
    async with app.run_test(size=(120, 40)) as pilot:
        app.dashboard.apply_configs(Fetched(configs, NOW))
        await pilot.pause()
        clock.advance(timedelta(seconds=7))
        app.dashboard.tick()
        await pilot.pause()
        table: DataTable[Any] = app.query_one("#configs", DataTable)
        last = configs[-1].id.lower()
        table.move_cursor(row=table.row_count - 1, animate=False)
        await pilot.pause()
        expected = countdown_text(app.dashboard.state.next_run(last), clock.now())
        assert table.get_cell(last, "countdown").plain == expected


async def test_the_events_queue_is_read_on_its_own_interval(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, queue_name="q",
                        queue_connection_string="UseDevelopmentStorage=true",
                        events_poll_interval=timedelta(seconds=0.5))
    armed: list[tuple[str, timedelta]] = []
    # A scheduler re-arms as if polling, without starting the workers.
    app = AumwatchApp(settings, clock=ManualClock(NOW), poll=False,
                      scheduler=lambda name, delay, callback: armed.append((name, delay)))
    async with app.run_test() as pilot:
        from tui.messages import EventsFetched

        app.dashboard.post_message(EventsFetched(EventBatch(mode="peek", fetched_at=NOW,
                                                          depth=0)))
        await pilot.pause()
    assert armed == [("events", timedelta(seconds=0.5))]
    assert app.poll_interval >= timedelta(seconds=10)  # the Resource Graph one is apart


def _received(i: int, start: datetime, at: datetime) -> ReceivedEvent:
    from services.domain.events import decode_message
    from services.standin.events_out import build_event, encode_message

    run = make_run(i, start)
    raw = encode_message(build_event(
        kind="pre", correlation_id=run.correlation_id, configuration_id=run.configuration_id,
        configuration_name=run.configuration_name, start=start, end=start + timedelta(hours=1),
        subscription_ids=[SUB], event_time=at))
    return ReceivedEvent(decode_message(raw)[0], at, f"m{i}", at)


async def test_event_only_runs_leave_the_dashboard_with_the_memory(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    app = AumwatchApp(Settings(data_dir=tmp_path), clock=clock, poll=False)
    async with app.run_test() as pilot:
        state = app.dashboard.state
        state.memory = EventMemory(max_runs=20)
        for j in range(200):  # a run every 3 minutes, announced 30 minutes ahead
            received = _received(j, clock.now() + timedelta(minutes=30), clock.now())
            app.dashboard.apply_events(EventBatch(mode="peek", fetched_at=clock.now(), depth=1,
                                        events=(received,)))
            clock.advance(timedelta(minutes=3))
        await pilot.pause()
        remembered = {r.key for r in state.memory.runs()}
        # The cap and its slack, plus the runs whose post deadline is still ahead (1 h 45).
        assert len(remembered) <= 22 + 35
        assert set(state.runs) == remembered  # no configurations: only event runs were known
        assert state.index.event_only_keys == remembered
        assert set(state.arrivals) == remembered
