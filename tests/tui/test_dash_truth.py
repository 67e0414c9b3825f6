"""What the dashboard shows is never false (issue 22, items 4 and 11), without a network
(Pilot, manual clock, data fed as the workers would post it): no watchdog alarm before every
source was read, an honest mark for each way a run ends, and an export whose configuration
row is the screen's."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from textual.widgets import DataTable, Static

from services.domain.clock import ManualClock, iso_z
from services.domain.dashboard import DashboardState
from services.domain.marks import MARKS
from services.domain.model import Configuration, Fetched, Run
from services.domain.window import WindowRules
from services.settings import Settings
from tests.services.test_dashboard import NOW, SUB, batch, config_id, run_id
from tests.services.test_watchdog_gate import CANCEL_ERROR, pre_event
from tui.app import AumwatchApp
from tui.export import export_view
from widgets.phase import UNKNOWN_LOOK, phase_label

CONNECTION = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
              "QueueEndpoint=http://127.0.0.1:9/devstoreaccount1")
NAME = "patch-dev-canary"


def make_app(tmp_path: Path, *, queue: bool = False) -> AumwatchApp:
    settings = Settings(subscriptions=(SUB,), data_dir=tmp_path,
                        queue_name="aum-events" if queue else None,
                        queue_connection_string=CONNECTION if queue else None)
    return AumwatchApp(settings, clock=ManualClock(NOW), poll=False)


def canary(*starts: datetime) -> Configuration:
    return Configuration(
        id=config_id(NAME), name=NAME, resource_group="rg", subscription_id=SUB,
        time_zone="UTC", recur_every="Week", duration="02:00",
        next_occurrences=tuple((s, s + timedelta(hours=2)) for s in starts))


def row(start: datetime, status: str, **changes: Any) -> Run:
    return Run(run_id(NAME, start), config_id(NAME), NAME, start.strftime("%Y%m%d%H%M%S"),
               start, start + timedelta(hours=2), status, **changes)


def cells(app: AumwatchApp, table_id: str, column: str) -> dict[str, str]:
    table: DataTable[Any] = app.query_one(table_id, DataTable)
    return {key.value or "": table.get_cell(key, column).plain for key in table.rows}


def test_every_mark_has_its_own_look() -> None:
    looks = {mark: phase_label(mark).plain for mark in MARKS}
    assert UNKNOWN_LOOK.word not in " ".join(looks.values())
    assert len(set(looks.values())) == len(MARKS)


async def test_runs_that_did_not_succeed_wear_no_success_mark(tmp_path: Path) -> None:
    days = [NOW - timedelta(days=d) for d in range(1, 6)]
    history = (
        row(days[0], "Cancelled", cancelled_by="user", error=CANCEL_ERROR),
        row(days[1], "Cancelled", cancelled_by="platform",
            error="Maintenance run was cancelled due to an internal platform failure"),
        row(days[2], "Failed", machines_total=12, machines_failed=12),
        row(days[3], "Completed", machines_total=12, machines_succeeded=9, machines_failed=3),
        row(days[4], "Succeeded", machines_total=12, machines_succeeded=12),
    )
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        dashboard = app.dashboard
        dashboard.apply_configs(Fetched((canary(NOW + timedelta(days=2)),), NOW))
        dashboard.apply_runs(Fetched(history, NOW))
        dashboard.tick()
        await pilot.pause()
        phases = cells(app, "#runs", "phase")
        assert [phases[r.key] for r in history] == [
            "⊘ cancelled", "⊘ cancelled", "✗ failed", "! warnings", "✓ succeeded"]
        # The run panel says the same of the run chosen.
        dashboard.state.select_run(history[0].key)
        dashboard.refresh_run_views()
        dashboard.tick()
        await pilot.pause()
        status = str(app.query_one("#run-status", Static).content)
        assert status.startswith("⊘ cancelled by user"), status
        assert "✓" not in status


async def test_the_export_pairs_each_configurations_start_and_phase_from_one_run(
        tmp_path: Path) -> None:
    # The run at 12:21 was cancelled inside its window; the schedule still names it next.
    cancelled_at = NOW + timedelta(minutes=21)
    next_week = cancelled_at + timedelta(days=7)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        dashboard = app.dashboard
        dashboard.apply_configs(Fetched((canary(cancelled_at, next_week),), NOW))
        dashboard.apply_runs(Fetched((row(cancelled_at, "Cancelled", cancelled_by="user"),),
                                     NOW))
        dashboard.tick()
        await pilot.pause()
        key = config_id(NAME).lower()
        screen_next = cells(app, "#configs", "next")[key]
        screen_phase = cells(app, "#configs", "phase")[key]
        await pilot.press("ctrl+s")
        await pilot.pause()
        exported = json.loads(next((tmp_path / "exports").glob("*.json")).read_text())
        (config,) = exported["configurations"]
        assert (config["next_start"], config["phase"]) == (iso_z(next_week), "upcoming")
        assert config["mark"] == "upcoming"
        assert config["next_end"] == iso_z(next_week + timedelta(hours=2))
        assert screen_phase == "◷ upcoming" and next_week.strftime("%H:%M") in screen_next
        assert next_week.strftime("%d ") in screen_next  # the same day as the export's
        marks = {r["run_name"]: (r["phase"], r["mark"]) for r in exported["runs"]}
        assert marks[cancelled_at.strftime("%Y%m%d%H%M%S")] == ("finished", "cancelled")


def test_the_export_without_a_next_run_claims_no_start(tmp_path: Path) -> None:
    state = DashboardState(WindowRules(), ManualClock(NOW))
    start = NOW + timedelta(minutes=21)
    state.apply_configs(Fetched((canary(start),), NOW))
    state.apply_runs(Fetched((row(start, "Cancelled", cancelled_by="user"),), NOW))
    exported = json.loads(export_view(state, [], tmp_path).read_text())
    (config,) = exported["configurations"]
    assert (config["next_start"], config["phase"]) == (None, None)
    assert config["next_end"] is None and config["mark"] is None


async def test_no_watchdog_toast_at_start_up_before_resource_graph_answered(
        tmp_path: Path) -> None:
    # The demo's patch-dev-canary: started 2 h 30 min ago, cancelled by a user, its pre-event
    # still in the queue; the queue answers before Resource Graph does.
    start = NOW - timedelta(hours=2, minutes=30)
    app = make_app(tmp_path, queue=True)
    clock = app.clock
    assert isinstance(clock, ManualClock)
    async with app.run_test(size=(120, 40)) as pilot:
        dashboard = app.dashboard
        dashboard.apply_configs(Fetched((canary(NOW + timedelta(days=6)),), NOW))
        dashboard.apply_events(batch(pre_event(NAME, start, timedelta(hours=2))))
        for _ in range(2):
            clock.advance(timedelta(seconds=1))
            dashboard.tick()
        await pilot.pause()
        dashboard.apply_runs(Fetched((row(start, "Cancelled", cancelled_by="user",
                                          error=CANCEL_ERROR),), NOW))
        clock.advance(timedelta(seconds=1))
        dashboard.tick()
        await pilot.pause()
        assert not [n for n in app._notifications if n.title == "watchdog"]
        assert not dashboard.state.findings
