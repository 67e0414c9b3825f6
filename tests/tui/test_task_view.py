"""The dashboard's task view (Pilot) against the stand-in: the selected run's task runs from
the journal, a declared task whose event arrived shown as queued, and a task's output shown
literally."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.widgets import DataTable, Static

from services.azure.journal import Journal
from services.domain.clock import ManualClock
from services.domain.events import decode_message
from services.settings import Settings, load_settings
from services.standin.server import StandInServer
from services.standin.world import SimRun, World
from tests.standin import NOW, SUB, add_run, azure_toml, pre_event_for
from tests.tui.test_report_key import daily, make_app, settle
from tui.screens.event_detail import EventDetail
from tui.screens.tasks import TaskRunsScreen

pytestmark = pytest.mark.integration

SIZE = (120, 40)
#: Task output with markup, an ANSI escape, a bidi override and a C1 CSI.
HOSTILE_OUTPUT = "[bold red]not markup[/] \x1b[31mred\x1b[0m \u202eevil \x9b2J\nline two"


@pytest.fixture
def run(standin_world: World) -> SimRun:
    """patch-web runs 30 minutes after the stand-in's now (it is the selected run)."""
    return add_run(standin_world, daily("patch-web", "13:30"), NOW + timedelta(minutes=30),
                   machines=3, duration=timedelta(hours=2))


def settings_with_tasks(server: StandInServer, tmp_path: Path) -> Settings:
    path = tmp_path / "aumwatch.toml"
    path.write_text(
        azure_toml(server, token=False)
        + "[paths]\n"
        f'data_dir = "{tmp_path}"\n'
        "[[tasks]]\n"
        'name = "[b]precheck[/b]"\n'
        'on = "pre"\n'
        'configurations = ["patch-*"]\n'
        'command = ["/bin/false"]\n'
        "[[tasks]]\n"
        'name = "notify"\n'
        'on = "pre"\n'
        'configurations = ["patch-web"]\n'
        'command = ["/bin/true"]\n'
        "[[tasks]]\n"
        'name = "summary"\n'
        'on = "post"\n'
        'configurations = ["patch-web"]\n'
        'command = ["/bin/true"]\n',
        encoding="utf-8")
    path.chmod(0o600)
    return load_settings({}, env={"AUMWATCH_TOKEN": server.token}, config_path=path)


def journal_story(tmp_path: Path, run: SimRun) -> None:
    """The pre-event arrived; precheck failed and cancelled the run; notify is not run yet."""
    event = pre_event_for(run, "patch-web")
    raw = json.dumps(event)
    with Journal(tmp_path / "journal.sqlite3") as journal:
        journal.record_event(decode_message(raw)[0], raw, received_at=NOW)
        seq = journal.claim_task_run(run_id=run.correlation_id, event_kind="pre",
                                     task="[b]precheck[/b]", configuration="patch-web",
                                     started_at=NOW - timedelta(minutes=1), pid=None)
        assert seq is not None
        journal.finish_task_run(seq, state="failed", ended_at=NOW, exit_code=3,
                                output=HOSTILE_OUTPUT, detail="pre-check failed at T-30m",
                                cancelled_run=True)


def table_rows(screen: TaskRunsScreen) -> list[tuple[str, ...]]:
    table: DataTable[Any] = screen.query_one(DataTable)
    return [tuple(cell.plain for cell in table.get_row_at(i)) for i in range(table.row_count)]


async def test_the_task_view_lists_the_runs_tasks_and_shows_output_literally(
    run: SimRun, standin: StandInServer, standin_clock: ManualClock,
    tmp_path: Path,
) -> None:
    journal_story(tmp_path, run)
    app = make_app(settings_with_tasks(standin, tmp_path), standin_clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TaskRunsScreen)
        rows = table_rows(screen)
        # The task name from the config file is drawn as text, never as markup.
        assert [(r[0], r[1], r[2], r[5]) for r in rows] == [
            ("[b]precheck[/b]", "pre", "cancelled the run", "3"),
            ("notify", "pre", "queued", ""),  # its event arrived; it has not run
        ]  # summary (post) is not due: no post-event yet
        summary = screen.query_one("#tasks-summary", Static).content
        assert isinstance(summary, Text) and "1 cancelled the run, 1 queued" in summary.plain
        await pilot.press("enter")
        await pilot.pause()
        detail = app.screen
        assert isinstance(detail, EventDetail)
        body = detail.query_one("#detail-body", Static).content
        assert isinstance(body, Text)
        assert body.plain.startswith("[bold red]not markup[/] \\x1b[31mred")
        assert "\\u202eevil" in body.plain and "\\x9b2J" in body.plain
        assert body.plain.endswith("\nline two")
        assert not body.spans  # no style came from the output
        await pilot.press("escape")
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, TaskRunsScreen | EventDetail)


async def test_the_task_view_of_a_run_without_tasks_says_so(
    run: SimRun, standin: StandInServer, standin_clock: ManualClock,
    tmp_path: Path,
) -> None:
    settings = load_settings(
        {"cloud": "standin", "arm_endpoint": standin.endpoint, "ca_file": standin.ca_file,
         "subscriptions": [SUB], "data_dir": str(tmp_path), "read_only": True},
        env={"AUMWATCH_TOKEN": standin.token}, config_path=None)
    app = make_app(settings, standin_clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TaskRunsScreen)
        assert table_rows(screen) == []
        summary = screen.query_one("#tasks-summary", Static).content
        assert isinstance(summary, Text) and summary.plain.startswith("no task has run")
        assert not (tmp_path / "journal.sqlite3").exists()  # reading created no journal
