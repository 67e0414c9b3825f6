"""The dashboard runs the declared tasks (Pilot, stand-in + Azurite) when it may: consume
mode, not read-only, no other runner on the queue; otherwise it says why in the status line
and leaves the queue's messages alone (peek)."""

from __future__ import annotations

import dataclasses
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import QueueClient
from textual.widgets import DataTable

from services.azure.eventsource import make_queue_client
from services.azure.journal import Journal
from services.azure.tasks import RunnerLock
from services.domain.clock import ManualClock
from services.settings import Settings, load_settings
from services.standin.azurite import Azurite
from services.standin.events_out import encode_message
from services.standin.server import StandInServer
from services.standin.world import SimRun, World
from tests.standin import NOW, add_run, azure_toml, pre_event_for
from tests.tui.test_report_key import daily, make_app, settle
from tui.messages import RunChosen
from tui.screens.tasks import TaskRunsScreen
from widgets.statusbar import StatusBar

pytestmark = pytest.mark.integration

SIZE = (120, 40)
#: A pre-check that fails (exit 3), printing markup and an escape sequence.
PRECHECK = "import sys\nprint('[red]disk C: 98% full[/red] \\x1b[1m')\nsys.exit(3)\n"


@pytest.fixture
def run(standin_world: World) -> SimRun:
    """patch-web runs 30 minutes after the stand-in's now: its cancel window is open."""
    return add_run(standin_world, daily("patch-web", "13:30"), NOW + timedelta(minutes=30),
                   machines=2, duration=timedelta(hours=2))


@pytest.fixture
def queue_name(azurite: Azurite) -> Iterator[str]:
    name = f"q{uuid.uuid4().hex[:12]}"
    client = QueueClient.from_connection_string(azurite.connection_string, name)
    client.create_queue()
    yield name
    client.delete_queue()


def settings_for(server: StandInServer, azurite: Azurite, queue_name: str, tmp_path: Path,
                 *, mode: str = "consume", read_only: bool = False,
                 script_text: str = PRECHECK, args: str = "", tasks: bool = True) -> Settings:
    script = tmp_path / "precheck.py"
    script.write_text(script_text, encoding="utf-8")
    path = tmp_path / "aumwatch.toml"
    path.write_text(
        azure_toml(server, token=False)
        + "[queue]\n"
        f'name = "{queue_name}"\n'
        f'mode = "{mode}"\n'
        f'connection_string = "{azurite.connection_string}"\n'
        "[dashboard]\n"
        f"read_only = {'true' if read_only else 'false'}\n"
        "[paths]\n"
        f'data_dir = "{tmp_path}"\n'
        + ("[[tasks]]\n"
           'name = "precheck"\n'
           'on = "pre"\n'
           'configurations = ["patch-*"]\n'
           f'command = ["{sys.executable}", "{script}"{args}]\n'
           'timeout = "30s"\n'
           "cancel_on_failure = true\n" if tasks else ""),
        encoding="utf-8")
    path.chmod(0o600)
    settings = load_settings({}, env={"AUMWATCH_TOKEN": server.token}, config_path=path)
    assert bool(settings.tasks) == tasks and settings.queue_mode == mode
    return settings


async def tasks_done(pilot: Any) -> None:
    """Settle, then wait for the tasks the dashboard runs in the background (a poll returns
    its events at once; their tasks, and the message's delete, finish later), then settle
    again for their notices."""
    await settle(pilot)
    monitor = pilot.app.dashboard.monitor
    assert monitor is not None
    assert await monitor.drain_tasks(30), "the tasks did not finish"
    await settle(pilot)


def send_pre_event(azurite: Azurite, queue_name: str, run: SimRun) -> None:
    QueueClient.from_connection_string(azurite.connection_string, queue_name).send_message(
        encode_message(pre_event_for(run, "patch-web")))


def messages_left(azurite: Azurite, queue_name: str) -> int:
    client = QueueClient.from_connection_string(azurite.connection_string, queue_name)
    return len(client.peek_messages(max_messages=32))


async def test_the_dashboard_runs_a_failing_precheck_that_cancels_the_run_verified(
    run: SimRun, standin: StandInServer, standin_clock: ManualClock, standin_world: World,
    azurite: Azurite, queue_name: str, tmp_path: Path,
) -> None:
    send_pre_event(azurite, queue_name, run)
    app = make_app(settings_for(standin, azurite, queue_name, tmp_path), standin_clock)
    async with app.run_test(size=SIZE) as pilot:
        await tasks_done(pilot)
        assert app.dashboard.monitor is not None and app.dashboard.monitor.runs_tasks
        assert app.dashboard.last_error is None
        # The task ran, failed inside the window and cancelled the run through the Canceller.
        assert standin_world.get_run(run.correlation_id).status == "Cancelled"
        with Journal(tmp_path / "journal.sqlite3") as journal:
            [task_run] = journal.task_runs(run.correlation_id)
            [audit] = journal.cancel_audit()
        assert (task_run.state, task_run.exit_code, task_run.cancelled_run) == ("failed", 3, True)
        assert audit.outcome == "verified-cancelled" and "precheck" in (audit.initiator or "")
        assert messages_left(azurite, queue_name) == 0  # deleted once its task was recorded
        # The task view shows it, and its output literally. (The run panel moved on to the
        # next run once this one was cancelled: choose it again, as the runs table does.)
        app.dashboard.post_message(RunChosen(run.correlation_id.lower()))
        await pilot.pause()
        assert app.dashboard.current_run is not None
        assert app.dashboard.current_run.key == run.correlation_id.lower()
        await pilot.press("t")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TaskRunsScreen)
        table: DataTable[Any] = screen.query_one(DataTable)
        row = [cell.plain for cell in table.get_row_at(0)]
        assert row[:3] == ["precheck", "pre", "cancelled the run"]
        assert screen.rows[0].output is not None
        assert screen.rows[0].output.startswith("[red]disk C: 98% full[/red]")


async def test_the_dashboard_runs_no_pre_task_for_a_run_resource_graph_shows_cancelled(
    run: SimRun, standin: StandInServer, standin_clock: ManualClock, standin_world: World,
    azurite: Azurite, queue_name: str, tmp_path: Path,
) -> None:
    # Cancelled in the portal before its pre-event is read: only Resource Graph knows it.
    standin_world.upsert_run(dataclasses.replace(run, status="Cancelled"))
    marker = tmp_path / "ran"
    send_pre_event(azurite, queue_name, run)
    app = make_app(settings_for(standin, azurite, queue_name, tmp_path,
                                script_text=f"open({str(marker)!r}, 'w').close()\n"),
                   standin_clock)
    async with app.run_test(size=SIZE) as pilot:
        await tasks_done(pilot)
        assert app.dashboard.monitor is not None and app.dashboard.monitor.runs_tasks
        with Journal(tmp_path / "journal.sqlite3") as journal:
            [task_run] = journal.task_runs(run.correlation_id)
        assert task_run.state == "skipped-cancelled"
        assert "Resource Graph shows its status Cancelled" in (task_run.detail or "")
        assert not marker.exists()
        assert messages_left(azurite, queue_name) == 0
        app.dashboard.post_message(RunChosen(run.correlation_id.lower()))
        await pilot.pause()
        await pilot.press("t")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TaskRunsScreen)
        table: DataTable[Any] = screen.query_one(DataTable)
        assert [cell.plain for cell in table.get_row_at(0)][:3] == [
            "precheck", "pre", "skipped-cancelled"]


@pytest.mark.parametrize(("mode", "read_only", "reason"), [
    ("peek", False, "tasks not run here: tasks need queue.mode = \"consume\""),
    ("consume", True, "tasks not run here: read-only mode"),
])
async def test_the_dashboard_refuses_to_run_tasks_saying_why_and_consumes_nothing(
    run: SimRun, standin: StandInServer, standin_clock: ManualClock, standin_world: World,
    azurite: Azurite, queue_name: str, tmp_path: Path, mode: str, read_only: bool,
    reason: str,
) -> None:
    send_pre_event(azurite, queue_name, run)
    settings = settings_for(standin, azurite, queue_name, tmp_path, mode=mode,
                            read_only=read_only)
    app = make_app(settings, standin_clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        error = app.query_one(StatusBar).data.last_error
        assert error is not None and error.startswith(reason), error
        assert app.query_one(StatusBar).data.queue_mode == "peek"
    assert messages_left(azurite, queue_name) == 1  # left for a runner that may run tasks
    assert standin_world.get_run(run.correlation_id).status == "Pending"
    if (tmp_path / "journal.sqlite3").exists():
        with Journal(tmp_path / "journal.sqlite3") as journal:
            assert journal.task_runs() == []


async def test_a_second_runner_on_the_queue_is_refused_naming_the_holder(
    run: SimRun, standin: StandInServer, standin_clock: ManualClock, standin_world: World,
    azurite: Azurite, queue_name: str, tmp_path: Path,
) -> None:
    send_pre_event(azurite, queue_name, run)
    settings = settings_for(standin, azurite, queue_name, tmp_path)
    url = make_queue_client(queue_name, connection_string=azurite.connection_string).url
    with RunnerLock(tmp_path, str(url)):
        app = make_app(settings, standin_clock)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            error = app.dashboard.last_error
            assert error is not None and "another aumwatch tasks" in error
    assert messages_left(azurite, queue_name) == 1
    assert standin_world.get_run(run.correlation_id).status == "Pending"


async def test_a_consume_dashboard_without_tasks_peeks_while_aumwatch_tasks_holds_the_queue(
    run: SimRun, standin: StandInServer, standin_clock: ManualClock, standin_world: World,
    azurite: Azurite, queue_name: str, tmp_path: Path,
) -> None:
    # A dashboard with no [[tasks]] in consume mode would delete the pre-event that the
    # running `aumwatch tasks` needs: with the queue's lock held elsewhere it must peek.
    send_pre_event(azurite, queue_name, run)
    settings = settings_for(standin, azurite, queue_name, tmp_path, tasks=False)
    url = make_queue_client(queue_name, connection_string=azurite.connection_string).url
    with RunnerLock(tmp_path, str(url)):
        app = make_app(settings, standin_clock)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            error = app.query_one(StatusBar).data.last_error
            assert error is not None and error.startswith("events peeked, not consumed: "
                                                          "another aumwatch tasks (pid "), error
            assert error.endswith("the events it consumed are read from the journal")
            assert app.query_one(StatusBar).data.queue_mode == "peek"
            assert app.dashboard.monitor is not None
            assert not app.dashboard.monitor.runs_tasks
    assert messages_left(azurite, queue_name) == 1  # left for the tasks runner


@pytest.mark.parametrize(("mode", "read_only", "tasks"), [
    ("consume", False, False),  # would consume, but the runner holds the queue
    ("consume", False, True),  # would run the tasks, but the runner holds the queue
    ("consume", True, True),  # read-only: never runs tasks
    ("peek", False, False),  # the default mode
])
async def test_a_dashboard_peeking_beside_aumwatch_tasks_reads_the_events_it_consumed(
    run: SimRun, standin: StandInServer, standin_clock: ManualClock, standin_world: World,
    azurite: Azurite, queue_name: str, tmp_path: Path, mode: str, read_only: bool,
    tasks: bool,
) -> None:
    from services.domain.events import decode_message
    from services.domain.queueid import queue_identity
    from services.standin.events_out import build_event

    # `aumwatch tasks` took the pre-event from the queue and journaled it: a peek alone never
    # sees it, and the watchdog would call the run's pre-event missing.
    raw = encode_message(pre_event_for(run, "patch-web"))
    # A post-event journaled from another queue of the same name (another storage account,
    # same data directory) is not this queue's (issue 22: rows are keyed by the queue's full
    # identity, not its name).
    other = encode_message(build_event(
        kind="post", correlation_id=run.correlation_id, configuration_id=run.configuration_id,
        configuration_name="patch-web", start=run.start, end=run.end, subscription_ids=[],
        event_time=run.end, status="Succeeded"))
    settings = settings_for(standin, azurite, queue_name, tmp_path, tasks=tasks, mode=mode,
                            read_only=read_only)
    elsewhere = queue_identity(queue_name, account_url="https://elsewhere.queue.core.windows.net")
    assert settings.queue_identity is not None and elsewhere != settings.queue_identity
    with Journal(tmp_path / "journal.sqlite3") as journal:
        journal.record_event(decode_message(raw)[0], raw, received_at=NOW - timedelta(minutes=5),
                             source_queue=queue_name, queue_identity=settings.queue_identity)
        journal.record_event(decode_message(other)[0], other, received_at=NOW,
                             source_queue=queue_name, queue_identity=elsewhere)
    url = make_queue_client(queue_name, connection_string=azurite.connection_string).url
    with RunnerLock(tmp_path, str(url)):
        app = make_app(settings, standin_clock)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.query_one(StatusBar).data.queue_mode == "peek"
            arrivals = app.dashboard.state.memory.arrivals
            assert run.correlation_id.lower() in arrivals
            assert arrivals[run.correlation_id.lower()].pre is not None
            assert arrivals[run.correlation_id.lower()].post is None
            # Read once: the next polls add nothing, and a peek of the same event neither.
            QueueClient.from_connection_string(azurite.connection_string,
                                               queue_name).send_message(raw)
            log = app.dashboard.events_panel.event_log

            def pre_rows() -> list[Any]:
                return [row for row in log.rows
                        if row.configuration == "patch-web" and row.flag != "watchdog"]

            assert len(pre_rows()) == 1
            app.dashboard.action_refresh()
            await settle(pilot)
            assert len(pre_rows()) == 1
            assert not [row for row in log.rows if row.flag == "watchdog"
                        and row.configuration == "patch-web"]


async def test_a_consume_dashboard_without_tasks_holds_the_queue_against_aumwatch_tasks(
    run: SimRun, standin: StandInServer, standin_clock: ManualClock, standin_world: World,
    azurite: Azurite, queue_name: str, tmp_path: Path,
) -> None:
    from services.azure.tasks import TasksRefused

    settings = settings_for(standin, azurite, queue_name, tmp_path, tasks=False)
    url = make_queue_client(queue_name, connection_string=azurite.connection_string).url
    app = make_app(settings, standin_clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.query_one(StatusBar).data.queue_mode == "consume"
        # It consumes: a tasks runner started now is refused, naming the dashboard.
        with pytest.raises(TasksRefused, match="another aumwatch dashboard"):
            RunnerLock(tmp_path, str(url)).acquire()
    with RunnerLock(tmp_path, str(url)):  # released when the dashboard closes
        pass


#: A pre-check that notes it ran (in argv[1]), takes two seconds, and passes.
SLOW_CHECK = "import sys, time\nopen(sys.argv[1], 'a').write('ran\\n')\ntime.sleep(2)\n"


async def test_a_refresh_while_a_task_runs_neither_abandons_nor_repeats_it(
    run: SimRun, standin: StandInServer, standin_clock: ManualClock, standin_world: World,
    azurite: Azurite, queue_name: str, tmp_path: Path,
) -> None:
    import asyncio
    import time

    marker = tmp_path / "ran.txt"
    send_pre_event(azurite, queue_name, run)
    settings = settings_for(standin, azurite, queue_name, tmp_path, script_text=SLOW_CHECK,
                            args=f', "{marker}"')
    app = make_app(settings, standin_clock)
    async with app.run_test(size=SIZE) as pilot:
        deadline = time.monotonic() + 20
        while not marker.exists():  # the task process has started
            assert time.monotonic() < deadline, "the task never started"
            await asyncio.sleep(0.05)
        await pilot.press("ctrl+r")  # restarts the events poll worker mid-task
        await tasks_done(pilot)
        with Journal(tmp_path / "journal.sqlite3") as journal:
            [task_run] = journal.task_runs(run.correlation_id)
        assert (task_run.state, task_run.exit_code) == ("ok", 0)
        assert marker.read_text(encoding="utf-8") == "ran\n"  # once
        assert messages_left(azurite, queue_name) == 0
        assert standin_world.get_run(run.correlation_id).status == "Pending"
