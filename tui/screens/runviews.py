"""The views the dashboard opens on what it shows: a run's machines, task runs and report, an
event's detail, a configuration's Event Grid wiring, and the export of the whole view.

A :class:`RunViews` is an invisible widget of the dashboard screen (its report worker
belongs to a node). It reads the :class:`~services.domain.dashboard.DashboardState` and
opens screens; what it needs of Azure comes through the poller (a run's machines) or the
journal (task runs), never through the monitor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from textual import on, work
from textual.widget import Widget

from services.domain.dashboard import Change, DashboardState
from services.domain.model import Configuration, Run
from services.domain.taskview import TaskViewRow
from services.settings import Settings
from tui.messages import ReportWritten
from tui.poller import Poller
from widgets.eventlog import EventRow

if TYPE_CHECKING:  # pragma: no cover
    from tui.screens.wiring import WiringInfo

#: Formats a time in the display zone of a configuration.
FormatTime = Callable[[datetime | None, Configuration | None], str]


class RunViews(Widget):
    """Opens the dashboard's views (see the module). ``show_change`` redraws what a change
    names (an error set); ``show_notice`` says something in the status bar."""

    DEFAULT_CSS = "RunViews { display: none; }"

    def __init__(self, state: DashboardState, settings: Settings, poller: Poller,
                 format_time: FormatTime, *, show_change: Callable[[Change], None],
                 show_notice: Callable[[str], None]) -> None:
        super().__init__(id="run-views")
        self.state = state
        self.settings = settings
        self.poller = poller
        self.format_time = format_time
        self._show_change = show_change
        self._show_notice = show_notice

    def _title(self, what: str, run: Run) -> tuple[str, Callable[[datetime], str]]:
        """A per-run screen's title (``what`` of the run, with its start) and how it writes
        times, both in the display zone of the run's configuration."""
        config = self.state.configs.get(run.configuration_id.lower())
        title = (f"{what} of {run.configuration_name} run {run.run_name} "
                 f"({self.format_time(run.start, config)})")
        return title, lambda when: self.format_time(when, config)

    # -- a run's machines, task runs; an event -----------------------------------------------
    def machines(self, key: str) -> None:
        """Open the machines of run ``key`` (a run not yet happened has none)."""
        run = self.state.runs.get(key)
        if run is None:
            return
        if run.expected:
            self.notify("this run has not happened yet: it has no machines to show",
                        severity="information")
            return
        from tui.screens.machines import MachinesScreen

        title, format_time = self._title("Machines", run)
        self.app.push_screen(MachinesScreen(run.correlation_id, title,
                                            self.poller.fetch_machines,
                                            format_time=format_time))

    def tasks(self) -> None:
        """Show the selected run's task runs (from the journal); ``enter`` shows an output."""
        run = self.state.current_run
        if run is None:
            self.notify("no run selected", severity="warning")
            return
        from services.azure.report import read_task_view
        from tui.screens.tasks import TaskRunsScreen

        settings = self.settings

        async def fetch(correlation_id: str) -> tuple[TaskViewRow, ...]:
            return await asyncio.to_thread(read_task_view, settings.journal_path,
                                           correlation_id, settings.tasks)

        title, format_time = self._title("Task runs", run)
        self.app.push_screen(TaskRunsScreen(run.correlation_id, title, fetch,
                                            format_time=format_time))

    def event(self, row: EventRow) -> None:
        """Open one event line's detail (its payload, literally)."""
        from tui.screens.event_detail import EventDetail

        self.app.push_screen(EventDetail(f"{row.kind} {row.configuration} {row.run}",
                                         row.payload or "(no payload)"))

    # -- the wiring view ---------------------------------------------------------------------
    def wiring(self) -> None:
        """Open the selected configuration's Event Grid wiring (verdict, topic, subscriptions,
        health, read error, fix)."""
        from tui.screens.wiring import WiringView

        key = self.state.selected_config
        if key is None or key not in self.state.configs:
            self.notify("no configuration selected", severity="information")
            return
        config = self.state.configs[key]
        self.app.push_screen(WiringView(key, self.wiring_info(key), self.state.clock.now,
                                        lambda when: self.format_time(when, config)))

    def wiring_info(self, key: str) -> WiringInfo:
        """What the wiring view shows of configuration ``key`` now."""
        from tui.screens.wiring import WiringInfo

        state = self.state
        config = state.configs.get(key)
        wiring = state.wiring_of(key)
        name = config.name if config is not None else (
            wiring.configuration_name if wiring is not None else key)
        return WiringInfo(name, wiring, state.wiring_fetched_at, state.wiring_error,
                          state.watched_queue)

    def refresh_wiring(self, keys: frozenset[str]) -> None:
        """Redraw the open wiring views of configurations ``keys``."""
        from tui.screens.wiring import WiringView

        for screen in self.app.screen_stack:
            if isinstance(screen, WiringView) and screen.key in keys:
                screen.show(self.wiring_info(screen.key))

    # -- export and report -------------------------------------------------------------------
    def export(self, rows: Sequence[EventRow]) -> None:
        """Write the current view (configurations, runs, events) as CSV and JSON."""
        from tui.export import export_view

        try:
            path = export_view(self.state, rows, self.settings.data_dir / "exports")
        except OSError as exc:
            self._show_change(self.state.set_error("export", f"export failed: {exc}"))
            self.notify(f"export failed: {exc}", severity="error", markup=False)
            return
        self.state.clear_error("export")
        self.notify(f"exported to {path} (and .csv)", title="Export", markup=False, timeout=10)

    def report(self) -> None:
        """Write the selected run's report (HTML and Markdown) into ``<data dir>/reports``.

        Reads only (Resource Graph, the journal): offered in read-only mode too."""
        run = self.state.current_run
        if run is None:
            self.notify("no run selected: nothing to report", severity="warning")
            return
        config = self.state.configs.get(run.configuration_id.lower())
        self._show_notice(f"writing the report of run {run.run_name}…")
        self.write_report(run, config)

    @work(exclusive=True, exit_on_error=False, group="report")
    async def write_report(self, run: Run, config: Configuration | None) -> None:
        """Gather and write one run's report; posts :class:`ReportWritten`."""
        from tui.report import write_run_report

        self.post_message(ReportWritten(await write_run_report(
            self.settings, self.poller.monitor, self.state.clock, run, config,
            # What this dashboard saw (a peeking one journals nothing): the report shows it.
            seen_events=self.state.memory.events_of(run.key))))

    @on(ReportWritten)
    def _report_written(self, message: ReportWritten) -> None:
        outcome = message.outcome
        if outcome.ok:
            self.state.clear_error("report")
            self._show_notice(outcome.message)
            self.notify(outcome.message, title="Report", markup=False, timeout=10)
        else:
            self._show_change(self.state.set_error("report", outcome.message))
            self.notify(outcome.message, title="Report", severity="error", markup=False)
