"""The dashboard against the stand-in and a real Azurite queue, on a manual clock (Pilot)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, DataTable
from textual.worker import WorkerCancelled

from services.azure.journal import Journal
from services.azure.monitor import Monitor
from services.azure.resourcegraph import Governor
from services.domain.clock import ManualClock, SystemClock
from services.settings import Settings, load_settings
from services.standin.azurite import Azurite
from services.standin.events_out import build_event, encode_message
from services.standin.server import StandInServer
from services.standin.world import World
from tests.standin import NOW, SUB, add_run, config_object
from tui.app import AumwatchApp
from widgets.eventlog import EventLog
from widgets.statusbar import StatusBar

pytestmark = pytest.mark.integration

# The stand-in fixtures of the integration tests, shared by name.

SIZE = (120, 40)




def daily(name: str, at: str) -> dict[str, Any]:
    config = config_object(name)
    config["properties"]["maintenanceWindow"].update(
        {"recurEvery": "Day", "timeZone": "UTC", "startDateTime": f"2026-01-01 {at}",
         "duration": "02:00"})
    return config


@pytest.fixture
def world(standin_world: World) -> World:
    """patch-web runs at 12:30 (cancellable at NOW 12:00); patch-later at 14:00 (upcoming)."""
    add_run(standin_world, daily("patch-web", "12:30"), NOW + timedelta(minutes=30),
            machines=3, duration=timedelta(hours=2))
    standin_world.add_configuration(daily("patch-later", "14:00"))
    return standin_world


def make_settings(server: StandInServer, tmp_path: Path, queue: Any, azurite: Azurite,
                  **flags: Any) -> Settings:
    return load_settings(
        {"cloud": "standin", "arm_endpoint": server.endpoint, "ca_file": server.ca_file,
         "subscriptions": [SUB], "data_dir": str(tmp_path), "queue_name": queue.queue_name,
         **flags},
        env={"AUMWATCH_TOKEN": server.token,
             "AUMWATCH_QUEUE_CONNECTION_STRING": azurite.connection_string},
        config_path=None)


async def no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


@pytest.fixture
def make_app(world: World, standin: StandInServer, standin_clock: ManualClock,
             tmp_path: Path, queue: Any, azurite: Azurite) -> Any:
    def build(**flags: Any) -> AumwatchApp:
        settings = make_settings(standin, tmp_path, queue, azurite, **flags)
        # The governor's back-off sleeps are instant so throttling tests take no real time.
        monitor = Monitor(settings, standin_clock,
                          governor=Governor(SystemClock(), sleep=no_wait))
        return AumwatchApp(settings, clock=standin_clock, monitor=monitor)
    return build


async def settle(pilot: Any) -> None:
    """Wait until every worker finished and its messages were handled (no sleeping).

    An exclusive poll started while another ran cancels the older one: that is expected.
    """
    for _ in range(3):
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerCancelled:
            continue
        await pilot.pause()


def cell(app: AumwatchApp, table_id: str, key: str, column: str) -> str:
    table: DataTable[Any] = app.query_one(table_id, DataTable)
    return table.get_cell(key, column).plain


def config_key(name: str) -> str:
    return config_object(name)["id"].lower()


async def test_configuration_table_fills_sorted_by_next_start(make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table: DataTable[Any] = app.query_one("#configs", DataTable)
        names = [table.get_row_at(i)[0].plain for i in range(table.row_count)]
        assert names == ["patch-web", "patch-later"]
        assert cell(app, "#configs", config_key("patch-web"), "phase") == "● CANCELLABLE"
        assert cell(app, "#configs", config_key("patch-later"), "phase") == "◷ upcoming"
        assert cell(app, "#configs", config_key("patch-web"), "countdown") == "30:00"
        runs: DataTable[Any] = app.query_one("#runs", DataTable)
        assert runs.row_count >= 1  # the observed run and the expected ones


async def test_phase_moves_upcoming_cancellable_locked_with_the_clock(
        make_app: Any, standin_clock: ManualClock) -> None:
    app = make_app()
    later = config_key("patch-later")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert cell(app, "#configs", later, "phase") == "◷ upcoming"
        standin_clock.set(NOW + timedelta(hours=1, minutes=20))  # 13:20 = T-40
        app.dashboard.tick()
        await pilot.pause()
        assert cell(app, "#configs", later, "phase") == "● CANCELLABLE"
        standin_clock.set(NOW + timedelta(hours=1, minutes=50))  # 13:50 = T-10
        app.dashboard.tick()
        await pilot.pause()
        assert cell(app, "#configs", later, "phase") == "■ locked"


async def test_cancel_is_dimmed_outside_the_window_and_button_follows_the_clock(
        make_app: Any, standin_clock: ManualClock) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.dashboard.tick()
        await pilot.pause()
        button = app.query_one("#cancel-button", Button)
        assert app.dashboard.check_action("cancel_run", ()) is True and not button.disabled
        standin_clock.set(NOW + timedelta(minutes=20, seconds=1))  # past T-10 of 12:30
        app.dashboard.tick()
        await pilot.pause()
        assert app.dashboard.check_action("cancel_run", ()) is None  # shown, dimmed
        assert button.disabled


async def test_cancel_inside_the_window_is_confirmed_verified_and_the_row_updates(
        make_app: Any, world: World) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.dashboard.tick()
        await pilot.pause()
        run = app.dashboard.current_run
        assert run is not None and run.configuration_name == "patch-web"
        await pilot.press("ctrl+x")
        await pilot.pause()
        from widgets.confirm import ConfirmCancel

        assert isinstance(app.screen, ConfirmCancel)
        assert app.screen.focused is not None and app.screen.focused.id == "confirm-no"
        await pilot.press("right", "enter")
        await settle(pilot)
        assert world.get_run(run.correlation_id).status == "Cancelled"
        assert app.dashboard.state.runs[run.key].status == "Cancelled"
        assert app.dashboard.state.runs[run.key].cancelled_by == "user"
        assert "Cancelled" in cell(app, "#runs", run.key, "status")
        assert app.dashboard.last_error is None


async def test_answering_no_sends_nothing(make_app: Any, world: World,
                                          tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.dashboard.tick()
        await pilot.pause()
        run = app.dashboard.current_run
        assert run is not None
        await pilot.press("ctrl+x")
        await pilot.pause()
        await pilot.press("enter")  # focus starts on No
        await settle(pilot)
        assert len(app.screen_stack) == 1
        assert world.get_run(run.correlation_id).status == "Pending"
    journal_path = tmp_path / "journal.sqlite3"
    if journal_path.exists():
        with Journal(journal_path) as journal:
            assert journal.cancel_audit() == []


async def test_read_only_has_no_cancel(make_app: Any) -> None:
    app = make_app(read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.dashboard.tick()
        await pilot.pause()
        assert app.dashboard.check_action("cancel_run", ()) is False
        assert not app.query_one("#cancel-button", Button).display
        assert not any(b.binding.action == "cancel_run" for b in app.active_bindings.values()
                       if b.node.check_action(b.binding.action, ()) is not False)
        assert app.query_one(StatusBar).data.read_only
        await pilot.press("ctrl+x")
        await pilot.pause()
        assert len(app.screen_stack) == 1


async def test_new_queue_event_appears_in_the_tail(make_app: Any, queue: Any) -> None:
    app = make_app()
    config = config_object("patch-web")
    start = NOW + timedelta(minutes=30)
    cid = f"{config['id']}/providers/microsoft.maintenance/applyupdates/20260310123000"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        event = build_event(kind="pre", correlation_id=cid, configuration_id=config["id"],
                            configuration_name="patch-web", start=start,
                            end=start + timedelta(hours=2), subscription_ids=[SUB],
                            event_time=NOW)
        await queue.send_message(encode_message(event))
        app.dashboard.poll_events()
        await settle(pilot)
        log = app.query_one(EventLog)
        assert [r.kind for r in log.rows] == ["pre"]
        assert log.rows[0].configuration == "patch-web"
        assert app.dashboard.state.arrivals[cid.lower()].pre is not None


async def test_malformed_and_markup_messages_show_literally(make_app: Any,
                                                            queue: Any) -> None:
    app = make_app()
    # A queue message is XML text: a raw ESC cannot travel, but one escaped in JSON can.
    hostile = "[bold red]boom[/] [link=https://evil.example]click[/link]"
    name = "[bold]x[/bold]\x1b[31mred"
    config_id = config_object("patch-web")["id"].rsplit("/", 1)[0] + "/" + name
    start = NOW + timedelta(minutes=30)
    event = build_event(kind="pre", correlation_id=f"{config_id}/providers/microsoft."
                        "maintenance/applyupdates/20260310123000", configuration_id=config_id,
                        configuration_name=name, start=start, end=start + timedelta(hours=2),
                        subscription_ids=[SUB], event_time=NOW)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await queue.send_message(hostile)
        await queue.send_message(encode_message(event))
        app.dashboard.poll_events()
        await settle(pilot)
        log = app.query_one(EventLog)
        assert sorted(str(r.flag) for r in log.rows) == ["None", "undecodable"]
        bad = next(i for i, r in enumerate(log.rows) if r.flag == "undecodable")
        good = 1 - bad
        first, second = log.row_text(bad), log.row_text(good)
        assert "[bold red]boom[/]" in first
        assert "[bold]x[/bold]\\x1b[31mred" in second and "\x1b" not in second
        log.focus()
        log.action_first()
        for _ in range(bad):
            log.action_cursor_down()
        await pilot.press("enter")
        await pilot.pause()
        from tui.screens.event_detail import EventDetail

        assert isinstance(app.screen, EventDetail)
        body = app.screen.query_one("#detail-body").render()
        assert "[bold red]boom[/] [link=https://evil.example]click[/link]" in str(body)
        await pilot.press("escape")
        await pilot.pause()
        log.action_first()
        for _ in range(good):
            log.action_cursor_down()
        await pilot.press("enter")
        await pilot.pause()
        body = str(app.screen.query_one("#detail-body").render())
        assert "\x1b" not in body and "\\u001b[31mred" in body
        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running and len(app.screen_stack) == 1


async def test_throttling_and_a_dropped_connection_show_and_recover(
        make_app: Any, standin: StandInServer) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        standin.faults.set("throttle-no-retry-after", scope="graph")
        app.dashboard.poll_configs()
        await settle(pilot)
        status = app.query_one(StatusBar).data
        assert status.last_error is not None and "429" in status.last_error
        assert app.monitor is not None and app.monitor.governor_state.throttled >= 1
        standin.faults.clear()
        app.dashboard.poll_configs()
        await settle(pilot)
        assert app.query_one(StatusBar).data.last_error is None

        # Dropped twice: the query and its one resend (services/azure/transport.py).
        standin.faults.set("drop", scope="graph", count=2)
        app.dashboard.poll_configs()
        await settle(pilot)
        status = app.query_one(StatusBar).data
        assert status.last_error is not None and "connection" in status.last_error
        app.dashboard.poll_configs()
        await settle(pilot)
        assert app.query_one(StatusBar).data.last_error is None
        assert app.is_running


async def test_an_idle_tick_repaints_only_what_changed_and_never_relayouts(
        make_app: Any, standin_clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    from textual.widget import Widget

    from widgets.countdown import Countdown

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.dashboard.tick()
        await pilot.pause()
        big = app.query_one("#big-countdown", Countdown)
        before = big.text
        calls: list[tuple[str, bool]] = []
        original = Widget.refresh

        def spy(self: Widget, *args: Any, **kwargs: Any) -> Any:
            calls.append((f"{type(self).__name__}#{self.id}", bool(kwargs.get("layout"))))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(Widget, "refresh", spy)
        standin_clock.advance(timedelta(seconds=1))
        app.dashboard.tick()
        monkeypatch.undo()
        # The big countdown ticked (the 12:30 run: "cancel closes in" one second less) ...
        assert big.text != before and ("Countdown#big-countdown", False) in calls
        # ... with no layout pass, and the unchanged status line, title and timeline
        # (its now marker stays in its cell for a second) were not touched.
        assert not any(layout for _, layout in calls), calls
        touched = {name for name, _ in calls}
        assert not touched & {"Static#run-status", "Static#run-title", "Timeline#timeline"}


async def test_after_a_verified_cancel_the_panel_stays_on_the_cancelled_run(
        make_app: Any, standin_clock: ManualClock) -> None:
    from dataclasses import replace

    from textual.widgets import Static

    from services.domain.model import Fetched

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        dashboard = app.dashboard
        dashboard.tick()
        await pilot.pause()
        run = dashboard.current_run
        assert run is not None and not run.expected
        await pilot.press("ctrl+x")
        await pilot.pause()
        await pilot.press("right", "enter")
        await settle(pilot)
        shown = dashboard.current_run
        assert shown is not None and shown.key == run.key and shown.status == "Cancelled"
        assert "cancelled by user" in str(app.query_one("#run-status", Static).content)
        # Resource Graph lags: its next answer still says Pending. The cancel stands.
        stale = replace(run, status="Pending", cancelled_by=None)
        dashboard.apply_runs(Fetched((stale,), standin_clock.now()))
        dashboard.tick()
        await pilot.pause()
        assert dashboard.state.runs[run.key].status == "Cancelled"
        assert dashboard.current_run is not None and dashboard.current_run.key == run.key
        assert dashboard.check_action("cancel_run", ()) is None
        assert app.query_one("#cancel-button", Button).disabled


async def test_a_restart_right_after_a_cancel_still_shows_it_cancelled(
        make_app: Any, world: World, tmp_path: Path) -> None:
    from services.azure.journal import AuditOutcome

    app = make_app()
    run_id = (f"{config_object('patch-web')['id']}/providers/microsoft.maintenance/"
              "applyupdates/20260310123000")
    # A cancel verified by an earlier session; Resource Graph (the stand-in) still says Pending.
    with Journal(app.settings.journal_path) as journal:
        seq = journal.begin_cancel(attempted_at=NOW, run_id=run_id, configuration="patch-web",
                                   computed_id=False, identity=None, api_version=None)
        journal.finish_cancel(seq, finished_at=NOW, outcome=AuditOutcome.VERIFIED)
    assert world.get_run(run_id).status == "Pending"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.dashboard.state.runs[run_id.lower()].status == "Cancelled"
        assert app.dashboard.check_action("cancel_run", ()) is not True
