"""The dashboard screen: configurations, the selected run, its runs, the event tail, status.

Data flow (docs/architecture.md): workers (``@work(exclusive=True, exit_on_error=False,
group=...)``) call :class:`services.azure.monitor.Monitor` and only post messages with
immutable data; each handler here applies the message to the
:class:`~services.domain.dashboard.DashboardState` and redraws only the panels its
:class:`~services.domain.dashboard.Change` names, inside ``batch_update``. A poll never
overlaps itself: the next one is armed as a one-shot timer when the last one finished. One
one-second timer moves every countdown, phase and the Cancel button from stored deadlines;
it never raises. The Event Grid wiring is read on its own slow loop, started once the
configurations are known (``ctrl+r`` forces a read); ``w`` opens the selected
configuration's wiring view.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from services.azure.cancel import CancelTarget, Outcome
from services.azure.eventgrid import watched_queue
from services.azure.eventsource import EventBatch
from services.azure.monitor import Monitor
from services.domain.clock import Clock
from services.domain.dashboard import Change, DashboardState, WiringSnapshotLike
from services.domain.model import Configuration, Fetched, Run
from services.domain.taskview import TaskViewRow
from services.domain.zones import TIME_MODES, next_mode, zone_for
from services.settings import Settings
from tui.alerts import TAIL_HAS, DashboardAlerts, notification, who_am_i
from tui.cancel import cancel_lines, outcome_toast, send, target_of
from tui.messages import (
    CancelDone,
    CancelRequested,
    ConfigChosen,
    ConfigsFetched,
    EventsFetched,
    FilterSet,
    PollFailed,
    ReportWritten,
    RunChosen,
    RunOpened,
    RunsFetched,
    WiringFetched,
)
from tui.panels.configs import ConfigsPanel
from tui.panels.events import EventsPanel
from tui.panels.filter import FilterBox
from tui.panels.run import RunPanel
from tui.panels.runs import RunsPanel
from tui.poller import Poller, Scheduler
from tui.status import status_data
from widgets.compositor import TrimmedCompositor
from widgets.confirm import ConfirmCancel
from widgets.eventlog import EventLog
from widgets.sanitize import sanitize
from widgets.statusbar import StatusBar, StatusData

if TYPE_CHECKING:  # pragma: no cover
    from tui.screens.wiring import WiringInfo

#: Below this height the three tables share one slot (switch with 1, 3, 4).
COMPACT_HEIGHT = 32
#: How long a passing notice ("report written to ...") stays in the status bar.
NOTICE_FOR = timedelta(seconds=60)



class DashboardScreen(Screen[None]):
    """The default screen. ``monitor`` fetches (None: nothing is polled); ``poll`` starts the
    poll loops at mount; ``scheduler`` replaces the timers that arm each next poll (tests:
    with one, each handler re-arms through it even when ``poll`` is False)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # The App's global keys, repeated first so the footer lists them first.
        Binding("q", "app.quit", "Quit", id="quit"),
        Binding("question_mark,f1", "app.help", "Help", id="help"),
        Binding("ctrl+x", "cancel_run", "Cancel run", id="cancel", priority=True,
                tooltip="Cancel the selected run (only inside its cancel window)"),
        Binding("p", "toggle_pause", "Pause", id="pause"),
        Binding("ctrl+r", "refresh", "Refresh", id="refresh"),
        Binding("z", "cycle_zone", "Zone", id="zone"),
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="clear_filter"),
        Binding("ctrl+s", "export", "Export", id="export"),
        Binding("w", "show_wiring", "Wiring", id="wiring",
                tooltip="The selected configuration's Event Grid wiring, health and fix"),
        Binding("1", "panel('configs')", "Configs", show=False, id="panel.configs"),
        Binding("2", "panel('run')", "Run", show=False, id="panel.run"),
        Binding("3", "panel('runs')", "Runs", show=False, id="panel.runs"),
        Binding("4", "panel('events')", "Events", show=False, id="panel.events"),
        # Not in the footer (it is full at 80 columns); in the help panel and the palette.
        Binding("r", "report", "Run report", show=False, id="report",
                tooltip="Write the selected run's report (HTML and Markdown) into the data "
                "directory's reports folder"),
        Binding("a", "acknowledge", "Acknowledge", show=False, id="acknowledge",
                tooltip="Acknowledge the selected finding (the event tail's line, else the "
                "run's findings): recorded with who and when, shown to every viewer"),
        Binding("t", "tasks", "Task runs", show=False, id="tasks",
                tooltip="The selected run's pre/post task runs, with their output"),
    ]

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
                             configurations=lambda: tuple(self.state.configs.values()))
        self._wiring_started = False
        self.state = DashboardState(
            settings.window_rules, clock, watch_events=settings.queue_configured,
            queue_mode=settings.queue_mode if settings.queue_configured else None,
            read_only=settings.read_only, poll_interval=poll_interval,
            events_poll_interval=events_poll_interval, arrival_rules=settings.arrival_rules,
            include_other_scopes=settings.include_other_scopes,
            watched_queue=watched_queue(settings), wiring_interval=settings.wiring_refresh)
        self.set_reactive(DashboardScreen.time_mode, settings.time_display
                          if settings.time_display in TIME_MODES else "config")
        self._panel = "configs"
        self.configs_panel = ConfigsPanel(self.state, self.zone_of)
        self.run_panel = RunPanel(self.state, self.zone_of)
        self.runs_panel = RunsPanel(self.state, self.zone_of)
        self.events_panel = EventsPanel(self._format_event_time)
        self._notice: tuple[str, datetime] | None = None  # (text, shown until)
        # Issue 21: the findings' one list, the bell and acknowledgements (tui/alerts.py).
        self.alerts = DashboardAlerts(settings, clock, None)
        self._tasks_told = False  # whether the tasks' fate here was said once

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
        """Learn the verified cancels from the journal, then start the poll loops (each
        re-arms itself when it finished)."""
        if self.monitor is not None:
            with contextlib.suppress(Exception):  # the journal is a help, not a need
                self.show_change(self.state.learn_cancels(self.monitor.verified_cancels()))
            # Acknowledgements are shared through the journal (opened when there is one).
            self.alerts.journal_path = self.settings.journal_path
        self.poll_configs()
        if self.settings.queue_configured:
            self.poll_events()

    def poll_configs(self) -> None:
        """Poll the configurations, then the runs, now."""
        self.poller.poll_configs()

    def poll_events(self) -> None:
        """Read the events queue now."""
        self.poller.poll_events()

    def poll_wiring(self, *, force: bool = False) -> None:
        """Read the Event Grid wiring now (``force``: even when the cache is fresh)."""
        self.poller.poll_wiring(force)

    @on(ConfigsFetched)
    def _configs_fetched(self, message: ConfigsFetched) -> None:
        self.apply_configs(message.fetched)
        if not self._wiring_started and self._rearm and self.monitor is not None:
            # The wiring is read for the configurations, so only once they are known; its
            # loop then re-arms itself every [events] wiring_refresh.
            self._wiring_started = True
            if self._poll:
                self.poll_wiring()
            else:
                self.poller.arm_next("wiring", timedelta(0))

    @on(WiringFetched)
    def _wiring_fetched(self, message: WiringFetched) -> None:
        snapshot = message.snapshot
        self.apply_wiring(snapshot)
        if self._rearm:
            self.poller.arm_next("wiring", self.state.next_delay("wiring",
                                                                 snapshot.error is None))

    @on(RunsFetched)
    def _runs_fetched(self, message: RunsFetched) -> None:
        self.apply_runs(message.fetched)
        if self._rearm:
            self.poller.arm_next("configs", self.state.next_delay("configs", True))

    @on(PollFailed)
    def _poll_failed(self, message: PollFailed) -> None:
        self.show_change(self.state.set_error(message.source, message.error))
        if self._rearm:
            self.poller.arm_next(message.source, self.state.next_delay(
                message.source, False, message.throttled))

    @on(EventsFetched)
    def _events_fetched(self, message: EventsFetched) -> None:
        batch = message.batch
        self.apply_events(batch)
        self._tasks_news()
        if self._rearm:
            self.poller.arm_next("events", self.state.next_delay("events", batch.error is None))

    # -- applying data -------------------------------------------------------------------------
    def apply_configs(self, fetched: Fetched[Configuration]) -> None:
        """Take a configurations snapshot and redraw what it changed."""
        self.show_change(self.state.apply_configs(fetched))
        self._judge_findings(self.clock.now(), force=True)

    def apply_runs(self, fetched: Fetched[Run]) -> None:
        """Take a Resource Graph runs snapshot and redraw what it changed."""
        self.show_change(self.state.apply_runs(fetched))
        self._judge_findings(self.clock.now(), force=True)

    def apply_events(self, batch: EventBatch) -> None:
        """Take one read of the events queue and redraw what it changed."""
        change = self.state.apply_events(batch)
        self.show_change(change)
        if change.events:  # an empty read changes no finding (the tick judges deadlines)
            self._judge_findings(self.clock.now(), force=True)

    def apply_wiring(self, snapshot: WiringSnapshotLike) -> None:
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
                self._refresh_wiring_view(change.wiring)
        if change.warning:
            self.notify(change.warning, severity="warning", markup=False)
        for finding in change.findings:
            self.notify(finding.message, title="watchdog", severity="warning", markup=False)

    def refresh_run_views(self) -> None:
        """Runs table and run panel for the current selection."""
        state = self.state
        runs = state.runs_of(state.selected_config) if state.selected_config else []
        self.runs_panel.show_runs(runs, self.clock.now())
        self._offer_cancel(self.run_panel.show_run())

    def _offer_cancel(self, allowed: bool) -> None:
        if allowed != self.can_cancel:
            self.can_cancel = allowed

    # -- selection -----------------------------------------------------------------------------
    @on(ConfigChosen)
    def _config_chosen(self, message: ConfigChosen) -> None:
        self.show_change(self.state.select_config(message.key))

    @on(RunChosen)
    def _run_chosen(self, message: RunChosen) -> None:
        if self.state.select_run(message.key):
            self._offer_cancel(self.run_panel.show_run())

    @on(DataTable.RowSelected, "#configs")
    def _config_selected(self, event: DataTable.RowSelected) -> None:
        self.action_panel("runs")

    @on(RunOpened)
    def _run_opened(self, message: RunOpened) -> None:
        run = self.state.runs.get(message.key)
        if run is None:
            return
        if run.expected:
            self.notify("this run has not happened yet: it has no machines to show",
                        severity="information")
            return
        from tui.screens.machines import MachinesScreen

        fetch = self.monitor.poll_machines if self.monitor is not None else None
        title, format_time = self._run_screen_title("Machines", run)
        self.app.push_screen(MachinesScreen(run.correlation_id, title, fetch,
                                            format_time=format_time))

    def _run_screen_title(self, what: str, run: Run) -> tuple[str, Callable[[datetime], str]]:
        """A per-run screen's title (``what`` of the run, with its start) and how it writes
        times, both in the display zone of the run's configuration."""
        config = self.state.configs.get(run.configuration_id.lower())
        title = (f"{what} of {run.configuration_name} run {run.run_name} "
                 f"({self.format_time(run.start, config)})")
        return title, lambda when: self.format_time(when, config)

    @on(EventLog.Selected)
    def _event_selected(self, event: EventLog.Selected) -> None:
        from tui.screens.event_detail import EventDetail

        row = event.row
        self.app.push_screen(EventDetail(f"{row.kind} {row.configuration} {row.run}",
                                         row.payload or "(no payload)"))

    # -- the wiring view ------------------------------------------------------------------------
    def action_show_wiring(self) -> None:
        """Open the selected configuration's Event Grid wiring (verdict, topic, subscriptions,
        health, read error, fix)."""
        from tui.screens.wiring import WiringView

        key = self.state.selected_config
        if key is None or key not in self.state.configs:
            self.notify("no configuration selected", severity="information")
            return
        config = self.state.configs[key]
        self.app.push_screen(WiringView(key, self.wiring_info(key), self.clock.now,
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

    def _refresh_wiring_view(self, keys: frozenset[str]) -> None:
        from tui.screens.wiring import WiringView

        for screen in self.app.screen_stack:
            if isinstance(screen, WiringView) and screen.key in keys:
                screen.show(self.wiring_info(screen.key))

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
            self._offer_cancel(self.run_panel.tick(now))
            self.show_change(self.state.tick(now))
            self._judge_findings(now)
            self.update_status()
        if self._check_terminal is not None:
            self._check_terminal()

    def _judge_findings(self, now: datetime, *, force: bool = False) -> None:
        """The findings' one list at ``now`` (after new data, and every few ticks): new
        lines in the tail, and the bell and a terminal notification for a new one of
        severity error or worse not acknowledged (tui/alerts.py)."""
        lines = self.alerts.read_acks(now)
        changes = self.alerts.judge(self.state, now, force=force)
        lines += self.alerts.lines(changes, now)
        if lines:
            self.events_panel.add_lines(lines)
        for alert in self.alerts.to_notify(changes):
            if alert.kind not in TAIL_HAS:  # the watchdog's own toast says those
                self.notify(alert.summary, title=f"{alert.kind} ({alert.severity})",
                            severity="error", markup=False)
            driver = getattr(self.app, "_driver", None)
            if not self.app.is_headless and driver is not None:
                driver.write(notification(alert, bell=self.alerts.bell))

    def action_acknowledge(self) -> None:
        """Acknowledge the selected finding: the event tail's selected line, else the open
        findings of the run on the run panel (journaled: every viewer sees who and when)."""
        row = self.events_panel.event_log.selected_row
        run = self.state.current_run
        target = self.alerts.target(row.key if row is not None else None,
                                    run.key if run is not None else None)
        now = self.clock.now()
        done = self.alerts.acknowledge(target, who_am_i(), now)
        if not done:
            self.notify("no open finding to acknowledge here", severity="warning")
            return
        lines = self.alerts.read_acks(now, force=True)
        if not lines:  # no journal: this viewer's own
            from tui.alerts import ack_line

            lines = [ack_line(a.key, who_am_i(), now) for a in done]
        self.events_panel.add_lines(lines)
        self.notify(f"acknowledged {len(done)} finding(s)", markup=False)

    def update_status(self) -> None:
        """Rebuild the status bar's data (it redraws only when something changed)."""
        with contextlib.suppress(Exception):
            self.query_one(StatusBar).update_status(self._status_data())

    def _status_data(self) -> StatusData:
        notice = None
        if self._notice is not None and self.clock.now() < self._notice[1]:
            notice = self._notice[0]
        return status_data(self.state, self.monitor,
                           queue_configured=self.settings.queue_configured,
                           poll_interval=self.poll_interval, paused=self.paused,
                           notice=notice)

    def show_notice(self, text: str) -> None:
        """Say ``text`` in the status bar for :data:`NOTICE_FOR`."""
        self._notice = (text, self.clock.now() + NOTICE_FOR)
        self.update_status()

    # -- time display ----------------------------------------------------------------------------
    def zone_of(self, config: Configuration | None) -> tzinfo | None:
        """The zone times of ``config`` are shown in (None: local)."""
        return zone_for(self.time_mode, config)

    def format_time(self, when: datetime | None, config: Configuration | None = None) -> str:
        """``when`` in the current display zone, e.g. ``"Sat 14:25 CET"``."""
        from tui.display import format_time

        return format_time(when, self.zone_of(config))

    def _format_event_time(self, when: datetime) -> str:
        zone = None if self.time_mode == "local" else UTC
        local = when.astimezone(zone) if zone is not None else when.astimezone()
        return local.strftime("%H:%M:%S")

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

    def on_key(self, event: events.Key) -> None:
        # A dimmed Cancel key is not run: say why it is dimmed instead of nothing.
        active = self.app.active_bindings.get(event.key)
        if active is not None and active.binding.action == "cancel_run" and not active.enabled:
            run = self.state.current_run
            if run is not None and not self.state.read_only:
                event.stop()
                self._refused(run)

    def _refused(self, run: Run) -> None:
        reason = self.state.refusal(run) or "the cancel window of this run is not open"
        self.notify(f"cannot cancel: {reason}", severity="warning", markup=False)

    def action_toggle_pause(self) -> None:
        """Pause or resume refreshing (countdowns keep ticking)."""
        self.paused = not self.paused
        self.notify("refresh paused" if self.paused else "refresh resumed")
        self.update_status()

    def action_refresh(self) -> None:
        """Poll every source now."""
        if self.monitor is None:
            return
        self.poll_configs()
        if self.settings.queue_configured:
            self.poll_events()
        if self._wiring_started:
            self.poll_wiring(force=True)
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

    def action_cancel_run(self) -> None:
        """Ask to cancel the selected run (only inside its window, never in read-only)."""
        run = self.state.current_run
        if self.state.read_only or run is None:
            return
        if not self.can_cancel:
            self._refused(run)
            return
        key = run.key

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self._confirmed(key)

        self.app.push_screen(ConfirmCancel("Cancel this maintenance run?",
                                           cancel_lines(self.state, run)), answered)

    def _confirmed(self, key: str) -> None:
        run = self.state.runs.get(key)
        if run is None:
            self.notify("the run is no longer listed: nothing sent", severity="error")
            return
        # Everything that holds Cancel back, checked again: the window, read-only, a cancel in
        # flight or accepted and unconfirmed (never twice at once).
        refusal = self.state.refusal(run, self.clock.now())
        if refusal is not None:
            message = f"refused: {refusal} (checked again after you confirmed)"
            self.show_change(self.state.set_error("cancel", message))
            self.notify(message, severity="error", markup=False)
            return
        self.show_change(self.state.begin_cancel(key))
        self.send_cancel(target_of(run))

    @work(exclusive=False, exit_on_error=False, group="cancel")
    async def send_cancel(self, target: CancelTarget) -> None:
        """Send one cancel through the monitor and report its outcome."""
        self.post_message(CancelDone(await send(self.monitor, target)))

    @on(CancelDone)
    def _cancel_done(self, message: CancelDone) -> None:
        result = message.result
        text, severity = outcome_toast(result)
        self.notify(text, title="Cancel", severity=severity, markup=False, timeout=10)
        accepted = result.outcome is Outcome.ACCEPTED
        if result.verified:
            self.app.sub_title = f"cancelled {result.run_id.rsplit('/', 1)[-1]}"
        elif not accepted:
            self.state.set_error("cancel", text)
        self.show_change(self.state.apply_cancel(result))
        if (result.verified or accepted) and self._poll and self.monitor is not None:
            # The next poll is what confirms an accepted cancel: ask for it now.
            self.poll_configs()

    def action_export(self) -> None:
        """Write the current view (configurations, runs, events) as CSV and JSON."""
        from tui.export import export_view

        try:
            path = export_view(self.state, self.events_panel.rows,
                               self.settings.data_dir / "exports")
        except OSError as exc:
            self.show_change(self.state.set_error("export", f"export failed: {exc}"))
            self.notify(f"export failed: {exc}", severity="error", markup=False)
            return
        self.state.clear_error("export")
        self.notify(f"exported to {path} (and .csv)", title="Export", markup=False, timeout=10)

    def action_report(self) -> None:
        """Write the selected run's report (HTML and Markdown) into ``<data dir>/reports``.

        Reads only (Resource Graph, the journal): offered in read-only mode too."""
        run = self.state.current_run
        if run is None:
            self.notify("no run selected: nothing to report", severity="warning")
            return
        config = self.state.configs.get(run.configuration_id.lower())
        self.show_notice(f"writing the report of run {run.run_name}…")
        self.write_report(run, config)

    @work(exclusive=True, exit_on_error=False, group="report")
    async def write_report(self, run: Run, config: Configuration | None) -> None:
        """Gather and write one run's report; posts :class:`ReportWritten`."""
        from tui.report import write_run_report

        self.post_message(ReportWritten(await write_run_report(
            self.settings, self.monitor, self.clock, run, config)))

    @on(ReportWritten)
    def _report_written(self, message: ReportWritten) -> None:
        outcome = message.outcome
        if outcome.ok:
            self.state.clear_error("report")
            self.show_notice(outcome.message)
            self.notify(outcome.message, title="Report", markup=False, timeout=10)
        else:
            self.show_change(self.state.set_error("report", outcome.message))
            self.notify(outcome.message, title="Report", severity="error", markup=False)

    def action_tasks(self) -> None:
        """Show the selected run's task runs (from the journal); ``enter`` shows an output."""
        run = self.state.current_run
        if run is None:
            self.notify("no run selected", severity="warning")
            return
        import asyncio

        from services.azure.report import read_task_view
        from tui.screens.tasks import TaskRunsScreen

        settings = self.settings

        async def fetch(correlation_id: str) -> tuple[TaskViewRow, ...]:
            return await asyncio.to_thread(read_task_view, settings.journal_path,
                                           correlation_id, settings.tasks)

        title, format_time = self._run_screen_title("Task runs", run)
        self.app.push_screen(TaskRunsScreen(run.correlation_id, title, fetch,
                                            format_time=format_time))

    def _tasks_news(self) -> None:
        """Say once whether this dashboard runs the declared tasks (and why not, in the
        status line), and each task run's outcome as it comes."""
        monitor = self.monitor
        if monitor is not None and monitor.consume_refusal and not self._tasks_told:
            # consume mode, no tasks here, and another process consumes the queue: peeking.
            self._tasks_told = True
            self.show_change(self.state.set_error("queue", monitor.consume_refusal))
            self.notify(monitor.consume_refusal, title="Events", severity="warning",
                        markup=False, timeout=15)
        if monitor is None or not self.settings.tasks:
            return
        if not self._tasks_told:
            if monitor.tasks_refusal:
                self._tasks_told = True
                self.show_change(self.state.set_error("tasks", monitor.tasks_refusal))
                self.notify(monitor.tasks_refusal, title="Tasks", severity="warning",
                            markup=False, timeout=15)
            elif monitor.runs_tasks:
                self._tasks_told = True
                self.show_notice(f"this dashboard runs the {len(self.settings.tasks)} "
                                 "declared task(s); t: a run's task runs")
        for result in monitor.take_task_results():
            text = f"task {result.task} ({result.event_kind}): {result.outcome}"
            if result.exit_code is not None:
                text += f", exit code {result.exit_code}"
            if result.cancelled_run:
                text += "; it cancelled the run"
            elif result.reason:
                text += f"; {result.reason}"
            failed = str(result.outcome) in ("failed", "timeout", "interrupted")
            self.notify(text, title="Tasks", severity="error" if failed else "information",
                        markup=False, timeout=15 if failed else 6)
