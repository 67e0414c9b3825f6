"""The dashboard screen: configurations, the selected run, its runs, the event tail, status.

The seam (docs/architecture.md): the poller's workers (tui/poller.py) call
:class:`services.azure.monitor.Monitor` and only post messages with the seam's immutable
data (services/domain/boundary.py); each handler here applies the message to the
:class:`~services.domain.dashboard.DashboardState` and redraws only the panels its
:class:`~services.domain.dashboard.Change` names, inside ``batch_update``. The screen never
reads the monitor: task news, the status bar's facts and the verified cancels all come in
messages, and whether Cancel is offered is the state's refusal. A poll never overlaps
itself: the poller re-arms it, with its back-off, when the last one was applied. One
one-second timer moves every countdown, phase and the Cancel button from stored deadlines;
it never raises. The Event Grid wiring is read on its own slow loop, started once the
configurations are known (``ctrl+r`` forces a read); ``w`` opens the selected
configuration's wiring view.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from services.azure.eventgrid import watched_queue
from services.azure.monitor import Monitor
from services.domain.backoff import Backoff
from services.domain.boundary import (
    EventBatch,
    MonitorStatus,
    RunsSnapshot,
    WiringSnapshot,
)
from services.domain.clock import Clock
from services.domain.dashboard import Change, DashboardState
from services.domain.model import Configuration, Fetched, Run
from services.domain.watchdog import read_sources
from services.domain.zones import TIME_MODES, next_mode, zone_for
from services.settings import Settings
from tui.alerts import AlertsScreenMixin, DashboardAlerts
from tui.cancel import CancelScreenMixin
from tui.display import clock_time, format_time
from tui.keys import DASHBOARD_BINDINGS
from tui.messages import (
    CancelDone,
    CancelRequested,
    ConfigChosen,
    ConfigsFetched,
    EventsFetched,
    FilterSet,
    PollFailed,
    RunChosen,
    RunOpened,
    RunsFetched,
    StatusFetched,
    WiringFetched,
)
from tui.panels.configs import ConfigsPanel
from tui.panels.events import EventsPanel
from tui.panels.filter import FilterBox
from tui.panels.run import RunPanel
from tui.panels.runs import RunsPanel
from tui.poller import Poller, Scheduler
from tui.screens.preflight import PreflightScreenMixin
from tui.screens.runviews import RunViews
from tui.status import status_data
from widgets.compositor import TrimmedCompositor
from widgets.eventlog import EventLog
from widgets.sanitize import sanitize
from widgets.statusbar import StatusBar, StatusData

#: Below this height the three tables share one slot (switch with 1, 3, 4).
COMPACT_HEIGHT = 32


class DashboardScreen(PreflightScreenMixin, AlertsScreenMixin, CancelScreenMixin,
                      Screen[None]):
    """The default screen. ``monitor`` fetches (None: nothing is polled); ``poll`` starts the
    poll loops at mount; ``scheduler`` replaces the timers that arm each next poll (tests:
    with one, each handler re-arms through it even when ``poll`` is False)."""

    BINDINGS: ClassVar[list[BindingType]] = list(DASHBOARD_BINDINGS)

    paused: reactive[bool] = reactive(False, bindings=True)
    time_mode: reactive[str] = reactive("config")
    can_cancel: reactive[bool] = reactive(False, bindings=True)

    def __init__(self, settings: Settings, clock: Clock, monitor: Monitor | None, *,
                 poll_interval: timedelta, events_poll_interval: timedelta,
                 poll: bool = True, scheduler: Scheduler | None = None,
                 check_terminal: Callable[[], None] | None = None) -> None:
        super().__init__()
        # Partial updates written from the first changed cell: a ticking countdown cell
        # otherwise re-sends its whole row prefix every second (widgets/compositor.py).
        self._compositor = TrimmedCompositor()
        self.settings = settings
        self.clock = clock
        self.monitor = monitor
        self.poll_interval = poll_interval
        self._poll = poll
        self._rearm = poll or scheduler is not None
        self._check_terminal = check_terminal  # the tick's backstop for a lost terminal
        self.poller = Poller(monitor, paused=lambda: self.paused, scheduler=scheduler,
                             configurations=lambda: tuple(self.state.configs.values()),
                             backoff=Backoff(poll_interval, events_poll_interval,
                                             settings.wiring_refresh))
        self._wiring_started = False
        self.state = DashboardState(
            settings.window_rules, clock, watch_events=settings.queue_configured,
            queue_mode=settings.queue_mode if settings.queue_configured else None,
            read_only=settings.read_only, arrival_rules=settings.arrival_rules,
            include_other_scopes=settings.include_other_scopes,
            watched_queue=watched_queue(settings), tasks=len(settings.tasks),
            # The watchdog waits for each source this screen reads (issue 22, item 4).
            sources=read_sources(journal=monitor is not None and poll,
                                 wiring=monitor is not None and self._rearm),
            profile_tenants={p.name: p.tenant for p in settings.tenant_profiles()})
        if monitor is not None:  # every source listed, none answered yet
            self.state.apply_status(MonitorStatus())
        self.set_reactive(DashboardScreen.time_mode, settings.time_display
                          if settings.time_display in TIME_MODES else "config")
        self._panel = "configs"
        several = len(settings.tenant_profiles()) > 1  # issue 19: the Tenant column
        self.configs_panel = ConfigsPanel(self.state, self.zone_of, tenant_column=several)
        self.run_panel = RunPanel(self.state, self.zone_of)
        self.runs_panel = RunsPanel(self.state, self.zone_of, tenant_column=several)
        self.events_panel = EventsPanel(self._format_event_time)
        self.views = RunViews(self.state, settings, self.poller, self.format_time,
                              show_change=self.show_change, show_notice=self.show_notice)
        self._init_preflight()  # its own poll loop (tui/screens/preflight.py)
        # Issue 21: the findings' one list, the bell and acknowledgements (tui/alerts.py).
        self.alerts = DashboardAlerts(settings, clock, None)

    # -- layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(self._title_text(), id="title", markup=False)
        yield FilterBox()
        yield self.configs_panel
        yield self.run_panel
        yield self.runs_panel
        yield self.events_panel
        yield StatusBar(self._status_data(), id="status")
        yield self.poller
        yield self.views
        yield self.preflight_poller
        yield Footer()

    def _title_text(self) -> Text:
        text = Text("aumwatch", style="bold")
        text.append(f"  {sanitize(self.settings.scope_description, 80)}", style="dim")
        if self.settings.read_only:
            text.append("  ■ read-only", style="bold magenta")
        return text

    def on_mount(self) -> None:
        self._apply_size()
        self.set_interval(1.0, self.tick, name="tick")
        self.configs_panel.table.focus()
        if self._poll and self.monitor is not None:
            # Deferred: the first frame is drawn before any client is even built.
            self.call_after_refresh(self.start_polling)

    def on_resize(self) -> None:
        self._apply_size()

    def on_unmount(self) -> None:
        self.alerts.close()  # the journal connection it opened for acknowledgements

    def _apply_size(self) -> None:
        compact = self.app.size.height < COMPACT_HEIGHT
        self.set_class(compact, "-compact")
        for panel in ("configs", "runs", "events"):
            self.query_one(f"#{panel}-panel").set_class(
                compact and panel != self._panel, "-hidden")

    def action_panel(self, panel: str) -> None:
        """Show (at small sizes) and focus one panel: configs, run, runs or events."""
        if panel != "run":
            self._panel = panel
            self._apply_size()
        target = {"configs": "#configs", "run": "#cancel-button", "runs": "#runs",
                  "events": "#events"}[panel]
        widget = self.query_one(target)
        if widget.display and widget.focusable:
            widget.focus()

    # -- reading the state (for the App, tests and benchmarks) ------------------------------
    @property
    def current_run(self) -> Run | None:
        """The run the run panel shows and Cancel acts on."""
        return self.state.current_run

    @property
    def last_error(self) -> str | None:
        """The error the status bar shows, if any."""
        return self.state.last_error

    # -- polling -----------------------------------------------------------------------------
    def start_polling(self) -> None:
        """Start the poll loops (each re-arms itself when it was applied; the journal's
        verified cancels come with every runs poll)."""
        if self.monitor is not None:
            # Acknowledgements are shared through the journal (opened when there is one).
            self.alerts.journal_path = self.settings.journal_path
        self.poll_configs()
        if self.settings.queue_configured:
            self.poll_events()
        self.preflight_poller.start()

    def poll_configs(self) -> None:
        """Poll the configurations, then the runs, now."""
        self.poller.poll_configs()

    def poll_events(self) -> None:
        """Read the events queue now."""
        self.poller.poll_events()

    @on(ConfigsFetched)
    def _configs_fetched(self, message: ConfigsFetched) -> None:
        self.apply_configs(message.fetched)
        if not self._wiring_started and self._rearm and self.monitor is not None:
            # The wiring is read for the configurations, so only once they are known; its
            # loop then re-arms itself every [events] wiring_refresh.
            self._wiring_started = True
            if self._poll:
                self.poller.poll_wiring()
            else:
                self.poller.arm_next("wiring", timedelta(0))

    @on(WiringFetched)
    def _wiring_fetched(self, message: WiringFetched) -> None:
        self.apply_wiring(message.snapshot)
        if self._rearm:
            self.poller.rearm("wiring", message.snapshot.error is None)

    @on(RunsFetched)
    def _runs_fetched(self, message: RunsFetched) -> None:
        self.apply_runs(message.snapshot)
        if self._rearm:
            self.poller.rearm("configs", True)

    @on(PollFailed)
    def _poll_failed(self, message: PollFailed) -> None:
        self.show_change(self.state.set_error(message.source, message.error))
        if self._rearm:
            self.poller.rearm(message.source, False, message.throttled)

    @on(EventsFetched)
    def _events_fetched(self, message: EventsFetched) -> None:
        self.apply_events(message.batch)
        if self._rearm:
            self.poller.rearm("events", message.batch.error is None)

    @on(StatusFetched)
    def _status_fetched(self, message: StatusFetched) -> None:
        self.show_change(self.state.apply_status(message.status))

    # -- applying data -------------------------------------------------------------------------
    def apply_configs(self, fetched: Fetched[Configuration]) -> None:
        """Take a configurations snapshot and redraw what it changed."""
        self.show_change(self.state.apply_configs(fetched))
        self._judge_findings(self.clock.now(), force=True)

    def apply_runs(self, snapshot: RunsSnapshot | Fetched[Run]) -> None:
        """Take a runs poll (runs, the journal's verified cancels); redraw what it changed."""
        self.show_change(self.state.apply_runs(snapshot))
        self._judge_findings(self.clock.now(), force=True)

    def apply_events(self, batch: EventBatch) -> None:
        """Take one read of the events queue and redraw what it changed."""
        change = self.state.apply_events(batch)
        self.show_change(change)
        if change.events:  # an empty read changes no finding (the tick judges deadlines)
            self._judge_findings(self.clock.now(), force=True)

    def apply_wiring(self, snapshot: WiringSnapshot) -> None:
        """Take a read of the Event Grid wiring and redraw what it changed."""
        self.show_change(self.state.apply_wiring(snapshot))
        self._judge_findings(self.clock.now(), force=True)

    def show_change(self, change: Change) -> None:
        """Redraw only the panels ``change`` names."""
        if not change:
            return
        with self.app.batch_update():
            if change.configs:
                self.configs_panel.refresh_rows(change.configs)
            if change.events:
                self.events_panel.add_lines(change.events)
            if change.selection:
                self.refresh_run_views()
            if change.status:
                self.update_status()
            if change.wiring:
                self.views.refresh_wiring(change.wiring)
        if change.warning:
            self.notify(change.warning, severity="warning", markup=False)
        for finding in change.findings:
            self.notify(finding.message, title="watchdog", severity="warning", markup=False)
        for notice in change.notices:
            self.notify(notice.text, title=notice.title, markup=False, timeout=notice.timeout,
                        severity=notice.severity)

    def refresh_run_views(self) -> None:
        """Runs table and run panel for the current selection."""
        state = self.state
        runs = state.runs_of(state.selected_config) if state.selected_config else []
        self.runs_panel.show_runs(runs, self.clock.now())
        self.run_panel.show_run(self._offer_cancel())

    def _offer_cancel(self, now: datetime | None = None) -> str | None:
        """The state's refusal of Cancel for the current run (None: offered); sets can_cancel."""
        refusal = self.state.refusal(self.state.current_run, now)
        if (refusal is None) != self.can_cancel:
            self.can_cancel = refusal is None
        return refusal

    # -- selection -----------------------------------------------------------------------------
    @on(ConfigChosen)
    def _config_chosen(self, message: ConfigChosen) -> None:
        self.show_change(self.state.select_config(message.key))

    @on(RunChosen)
    def _run_chosen(self, message: RunChosen) -> None:
        if self.state.select_run(message.key):
            self.run_panel.show_run(self._offer_cancel())

    @on(DataTable.RowSelected, "#configs")
    def _config_selected(self, event: DataTable.RowSelected) -> None:
        self.action_panel("runs")

    @on(RunOpened)
    def _run_opened(self, message: RunOpened) -> None:
        self.views.machines(message.key)

    @on(EventLog.Selected)
    def _event_selected(self, event: EventLog.Selected) -> None:
        self.views.event(event.row)

    def action_show_wiring(self) -> None:
        """Open the selected configuration's Event Grid wiring, health and fix."""
        self.views.wiring()

    # -- the one-second tick -------------------------------------------------------------------
    def tick(self) -> None:
        """Move countdowns, phases, the timeline's now and Cancel; never raises."""
        try:
            self._tick()
        except Exception as exc:  # a timer callback must not take the app down
            with contextlib.suppress(Exception):
                self.state.set_error("display",
                                     f"display update failed: {type(exc).__name__}: {exc}")

    def _tick(self) -> None:
        now = self.clock.now()
        with self.app.batch_update():
            # Only rows whose phase or next run changes now, and the countdowns on screen.
            self.configs_panel.tick(now)
            self.runs_panel.tick(now)
            self.run_panel.tick(now, self._offer_cancel(now))
            self.show_change(self.state.tick(now))
            self._judge_findings(now)
            self.update_status()
        if self._check_terminal is not None:
            self._check_terminal()

    def update_status(self) -> None:
        """Rebuild the status bar's data (it redraws only when something changed)."""
        with contextlib.suppress(Exception):
            self.query_one(StatusBar).update_status(self._status_data())

    def _status_data(self) -> StatusData:
        return status_data(self.state, queue_configured=self.settings.queue_configured,
                           poll_interval=self.poll_interval, paused=self.paused)

    def show_notice(self, text: str) -> None:
        """Say ``text`` in the status bar for a minute."""
        self.show_change(self.state.show_notice(text))

    # -- time display ----------------------------------------------------------------------------
    def zone_of(self, config: Configuration | None) -> tzinfo | None:
        """The zone times of ``config`` are shown in (None: local)."""
        return zone_for(self.time_mode, config)

    def format_time(self, when: datetime | None, config: Configuration | None = None) -> str:
        """``when`` in the current display zone, e.g. ``"Sat 14:25 CET"``."""
        return format_time(when, self.zone_of(config))

    def _format_event_time(self, when: datetime) -> str:
        return clock_time(when, self.time_mode)

    def watch_time_mode(self, mode: str) -> None:
        if not self.is_mounted:
            return
        self.configs_panel.refresh_rows()
        self.refresh_run_views()
        self.events_panel.set_time_format(self._format_event_time)
        self.configs_panel.set_zone_label(mode)

    # -- actions ---------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_run":
            if self.state.read_only:
                return False  # absent, not just dimmed
            if self.app.screen is not self:
                return None  # a dialog or another screen is on top
            return True if self.can_cancel else None
        return True

    def action_toggle_pause(self) -> None:
        """Pause or resume refreshing (countdowns keep ticking)."""
        self.paused = not self.paused
        self.notify("refresh paused" if self.paused else "refresh resumed")
        self.update_status()

    def action_refresh(self) -> None:
        """Poll every source now."""
        if self.monitor is None:
            return
        self.start_polling()
        if self._wiring_started:
            self.poller.poll_wiring(True)
        if self.preflight_poller.started:
            self.preflight_poller.poll()
        self.notify("refreshing…", timeout=2)

    def action_cycle_zone(self) -> None:
        """Show times in the configuration's zone, UTC or the local zone."""
        self.time_mode = next_mode(self.time_mode)
        self.notify(f"times: {self.time_mode}", timeout=2)

    def action_filter(self) -> None:
        """Filter configurations by name, resource group, subscription, zone or scope."""
        self.query_one(FilterBox).open()

    def action_clear_filter(self) -> None:
        """Clear the filter (or leave the runs/events panel for the configurations)."""
        if self.query_one(FilterBox).clear_and_hide() or self.state.filter_text:
            self.state.set_filter("")
            self.configs_panel.refresh_rows()
            self.configs_panel.table.focus()

    @on(FilterSet)
    def _filter_set(self, message: FilterSet) -> None:
        if self.state.set_filter(message.text):
            self.configs_panel.refresh_rows()
        if message.done:
            self.configs_panel.table.focus()

    @on(CancelRequested)
    def _cancel_requested(self, message: CancelRequested) -> None:
        message.stop()
        self.action_cancel_run()

    @on(CancelDone)
    def _cancel_done(self, message: CancelDone) -> None:
        self.cancel_done(message.result)

    def action_export(self) -> None:
        """Write the current view (configurations, runs, events) as CSV and JSON."""
        self.views.export(self.events_panel.rows)

    def action_report(self) -> None:
        """Write the selected run's report (HTML and Markdown) into ``<data dir>/reports``
        (reads only: offered in read-only mode too)."""
        self.views.report()

    def action_tasks(self) -> None:
        """Show the selected run's task runs (from the journal); ``enter`` shows an output."""
        self.views.tasks()
