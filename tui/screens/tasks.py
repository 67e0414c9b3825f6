"""The task runs of one run (issue 12): queued, running, ok, failed, timed out, interrupted,
skipped-late, skipped-cancelled, cancelled the run; ``enter`` shows a task's output, literally.

The rows come from the journal (:func:`services.azure.report.read_task_view`) through the
``fetch`` function the dashboard gives; while a row is queued or running the view reads them
again every few seconds. Every string (task names from the config file, details and output
from a task) is drawn as plain text, never as markup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from services.domain.taskview import TaskViewRow, is_live
from tui.screens.event_detail import EventDetail
from tui.screens.runtable import RunTableScreen
from widgets.sanitize import sanitize

#: Reads one run's task view (by correlation id).
FetchTasks = Callable[[str], Awaitable[tuple[TaskViewRow, ...]]]
#: Formats a time for the table (the dashboard passes its display zone's).
FormatTime = Callable[[datetime], str]
#: How often the view reads the journal again while a task is queued or running.
LIVE_REFRESH_SECONDS = 2.0

COLUMNS = (("task", "Task"), ("on", "On"), ("state", "State"), ("started", "Started"),
           ("ended", "Ended"), ("exit", "Exit"), ("detail", "Detail"))

_STATE_STYLE = {"ok": "green", "failed": "bold red", "timed out": "bold red",
                "cancelled the run": "bold yellow", "interrupted": "yellow", "skipped-late": "dim",
                "skipped-cancelled": "dim",
                "running": "blue", "queued": "dim"}


def _utc(when: datetime) -> str:
    return when.strftime("%a %d %H:%M:%S UTC")


def task_cells(row: TaskViewRow, format_time: FormatTime = _utc) -> tuple[Text, ...]:
    """One table row for ``row`` (every string drawn literally)."""
    return (
        Text(sanitize(row.task, 60)),
        Text(sanitize(row.event_kind, 10)),
        Text(sanitize(row.state, 20), style=_STATE_STYLE.get(row.state, "")),
        Text("" if row.started_at is None else format_time(row.started_at)),
        Text("" if row.ended_at is None else format_time(row.ended_at)),
        Text("" if row.exit_code is None else str(row.exit_code), justify="right"),
        Text(sanitize(row.detail or "", 200)),
    )


class TasksFetched(Message):
    """One read of the task view (``rows`` None: it failed, ``error`` says why)."""

    def __init__(self, rows: tuple[TaskViewRow, ...] | None, error: str | None = None) -> None:
        super().__init__()
        self.rows = rows
        self.error = error


class TaskRunsScreen(RunTableScreen):
    """Pushed by the dashboard's task key; ``escape`` goes back, ``ctrl+r`` reloads,
    ``enter`` shows the selected task's output."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "back", "Back", id="tasks.back"),
        Binding("ctrl+r", "reload", "Refresh", id="tasks.refresh"),
        Binding("enter", "output", "Output", id="tasks.output"),
    ]

    DEFAULT_CSS = """
    TaskRunsScreen #tasks-title { height: 1; text-style: bold; padding: 0 1;
                                  background: $panel; }
    TaskRunsScreen #tasks-summary { height: 1; padding: 0 1; }
    TaskRunsScreen DataTable { height: 1fr; }
    """
    ID_PREFIX = "tasks"
    WAITING = "reading the journal…"
    COLUMNS = COLUMNS

    def __init__(self, correlation_id: str, title: str, fetch: FetchTasks | None = None,
                 format_time: FormatTime = _utc) -> None:
        super().__init__(correlation_id, title)
        self._fetch_tasks = fetch
        self._format_time = format_time
        self.rows: tuple[TaskViewRow, ...] = ()

    def after_mount(self) -> None:
        self.set_interval(LIVE_REFRESH_SECONDS, self._live_refresh, name="tasks-refresh")

    def _live_refresh(self) -> None:
        if is_live(self.rows):
            self.reload()

    def reload(self) -> None:
        """Read the task runs again."""
        self._fetch()

    @work(exclusive=True, exit_on_error=False, group="tasks")
    async def _fetch(self) -> None:
        fetch = self._fetch_tasks
        if fetch is None:
            self.post_message(TasksFetched(None, "no journal to read"))
            return
        try:
            rows = await fetch(self.correlation_id)
        except Exception as exc:  # shown on the screen; the app keeps running
            self.post_message(TasksFetched(None, str(exc)))
            return
        self.post_message(TasksFetched(rows))

    @on(TasksFetched)
    def _show(self, message: TasksFetched) -> None:
        message.stop()
        if message.rows is None:
            self.show_error(message.error)
            return
        self.show_rows(message.rows)

    def show_rows(self, rows: tuple[TaskViewRow, ...]) -> None:
        """Diff ``rows`` into the table (keyed by event kind and task)."""
        self.rows = rows
        self.diff_rows({row.key: task_cells(row, self._format_time) for row in rows})
        if not rows:
            summary = "no task has run for this run (none declared, or no event yet)"
        else:
            counts: dict[str, int] = {}
            for row in rows:
                counts[row.state] = counts.get(row.state, 0) + 1
            summary = f"{len(rows)} task run(s): " + ", ".join(
                f"{count} {state}" for state, count in counts.items())
            summary += "; enter: output"
        self.show_summary(summary)

    def selected(self) -> TaskViewRow | None:
        """The row under the cursor."""
        table: DataTable[Text] = self.query_one(DataTable)
        if not self.rows or table.cursor_row < 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # an empty or changing table
            return None
        return next((row for row in self.rows if row.key == key), None)

    def action_output(self) -> None:
        """Show the selected task's output, literally."""
        row = self.selected()
        if row is None:
            return
        if row.output:
            payload = row.output
        elif row.state in ("queued", "running"):
            payload = f"(no output yet: the task is {row.state})"
        else:
            payload = "(no output recorded)"
        self.app.push_screen(EventDetail(f"output of task {row.task} ({row.event_kind}), "
                                         f"{row.state}", payload))

    @on(DataTable.RowSelected, "#tasks-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_output()
