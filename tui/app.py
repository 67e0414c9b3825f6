"""The aumwatch dashboard: configurations, the selected run, runs, events, status.

Data flow (docs/architecture.md): workers (``@work(exclusive=True, exit_on_error=False,
group=...)``)
call :class:`services.azure.monitor.Monitor` and only post messages with immutable data; the
``@on`` handlers here own the state and diff it into the widgets inside ``batch_update``.
A poll never overlaps itself: the next one is armed as a one-shot timer when the last one
finished. One one-second timer moves every countdown, phase and the Cancel button from
stored deadlines; it never raises.
"""

from __future__ import annotations

import contextlib
import csv
import heapq
import json
import math
import os
import signal
import sys
import threading
import tomllib
from collections import deque
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Button, DataTable, Footer, Input, Static

from services.azure.cancel import CancelResult, CancelTarget, Outcome
from services.azure.eventsource import EventBatch
from services.azure.monitor import EventArrival, Monitor
from services.domain.clock import Clock, SystemClock
from services.domain.errors import ServiceError
from services.domain.eventmemory import EventMemory
from services.domain.model import Configuration, Fetched, Run
from services.domain.runindex import RunIndex
from services.domain.runs import expected_runs, merge_event, run_phase
from services.domain.watchdog import Finding, Watchdog, duplicate_finding
from services.domain.window import Phase, RunWindow, run_window
from services.settings import (
    MIN_EVENTS_POLL_INTERVAL,
    MIN_POLL_INTERVAL,
    Settings,
    load_settings,
)
from tui.messages import CancelDone, ConfigsFetched, EventsFetched, PollFailed, RunsFetched
from widgets.confirm import ConfirmCancel
from widgets.countdown import Countdown, format_remaining
from widgets.eventlog import EventLog, EventRow
from widgets.phase import phase_label
from widgets.sanitize import sanitize
from widgets.statusbar import SourceAge, StatusBar, StatusData
from widgets.timeline import Timeline, TimelineData

TIME_MODES = ("config", "utc", "local")
#: Below this height the three tables share one slot (switch with 1, 3, 4).
COMPACT_HEIGHT = 32
#: Longest backoff after repeated failures.
MAX_BACKOFF = timedelta(minutes=5)
#: Seconds a lost terminal leaves for a clean exit before the process ends itself.
HANGUP_GRACE_S = 5.0
HIGH_CONTRAST_THEME = "aumwatch-high-contrast"
#: Watchdog findings kept for the session's record (each is also in the event log).
MAX_FINDINGS = 1_000
#: Removing more rows than this at once: rebuild the table (each remove_row is O(rows)).
REBUILD_ABOVE = 64
_FAR = datetime.max.replace(tzinfo=UTC)

# The columns an operator acts on come first, so they stay visible at 80 columns.
CONFIG_COLUMNS = (("name", "Configuration"), ("next", "Next start"), ("countdown", "In"),
                  ("phase", "Next run"), ("recurrence", "Recurrence"), ("zone", "Zone"),
                  ("scope", "RG / subscription"))
COUNTDOWN = [key for key, _ in CONFIG_COLUMNS].index("countdown")
RUN_COLUMNS = (("phase", "Phase"), ("config", "Configuration"), ("status", "Status"),
               ("start", "Start"), ("end", "End"), ("machines", "OK/Fail/Total"),
               ("cancelled", "Cancelled by"))

_BOUNDARY_WORDS = {"cancel opens": "cancel opens in", "cancel closes": "cancel closes in",
                   "starts": "starts in", "ends": "ends in"}


class SortText(Text):
    """A table cell that also carries the value the table sorts on."""

    sort_key: Any = None


def _sort_text(text: str, sort_key: Any, style: str = "") -> SortText:
    cell = SortText(text, style=style, no_wrap=True, end="")
    cell.sort_key = sort_key
    return cell


def _plain(value: Any) -> str:
    return value.plain if isinstance(value, Text) else str(value)


def read_keymap(path: Path | None) -> dict[str, str]:
    """The ``[keys]`` table of the config file: binding id -> keys (``"ctrl+x"``)."""
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}  # the settings loader already reported a broken file
    keys = data.get("keys")
    if not isinstance(keys, dict):
        return {}
    return {str(k): str(v) for k, v in keys.items() if isinstance(v, str) and v.strip()}


class AumwatchApp(App[int]):
    """The dashboard. Give it ``settings`` (or a ``config_path``) and optionally a ``clock``.

    ``monitor`` replaces the data side (tests); ``poll=False`` starts no polling (snapshot
    tests feed messages instead).
    """

    TITLE = "aumwatch"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("question_mark,f1", "help", "Help", id="help"),
        Binding("ctrl+x", "cancel_run", "Cancel run", id="cancel", priority=True,
                tooltip="Cancel the selected run (only inside its cancel window)"),
        Binding("p", "toggle_pause", "Pause", id="pause"),
        Binding("ctrl+r", "refresh", "Refresh", id="refresh"),
        Binding("z", "cycle_zone", "Zone", id="zone"),
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="clear_filter"),
        Binding("ctrl+s", "export", "Export", id="export"),
        Binding("1", "panel('configs')", "Configs", show=False, id="panel.configs"),
        Binding("2", "panel('run')", "Run", show=False, id="panel.run"),
        Binding("3", "panel('runs')", "Runs", show=False, id="panel.runs"),
        Binding("4", "panel('events')", "Events", show=False, id="panel.events"),
    ]

    paused: reactive[bool] = reactive(False, bindings=True)
    time_mode: reactive[str] = reactive("config")
    can_cancel: reactive[bool] = reactive(False, bindings=True)

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        config_path: str | Path | None = None,
        clock: Clock | None = None,
        read_only: bool | None = None,
        refresh: timedelta | None = None,
        theme: str | None = None,
        monitor: Monitor | None = None,
        poll: bool = True,
    ) -> None:
        super().__init__()
        if settings is None:
            flags: dict[str, Any] = {}
            if read_only:
                flags["read_only"] = True
            settings = load_settings(flags, config_path=config_path)
        if read_only and not settings.read_only:
            # Only ever adds the lock: read_only=False never unlocks a read-only config.
            settings = replace(settings, read_only=True)
        self.settings = settings
        self._hangup_timer: threading.Timer | None = None
        self.clock: Clock = clock or SystemClock()
        self.read_only = settings.read_only
        self.rules = settings.window_rules
        interval = refresh or settings.poll_interval
        self.poll_interval = max(interval, MIN_POLL_INTERVAL)
        # Events have their own, much shorter interval: a peek is one cheap Storage call with
        # no Resource Graph quota behind it (settings.DEFAULT_EVENTS_POLL_INTERVAL).
        self.events_poll_interval = max(settings.events_poll_interval,
                                        MIN_EVENTS_POLL_INTERVAL)
        self.monitor: Monitor | None = monitor if monitor is not None else (
            Monitor(settings, self.clock) if poll else None)
        self._poll = poll
        self._theme_name = theme
        self.set_reactive(AumwatchApp.time_mode, settings.time_display
                          if settings.time_display in TIME_MODES else "config")
        # State the handlers own.
        self.configs: dict[str, Configuration] = {}
        # Runs by configuration, each one's next run cached (services.domain.runindex).
        self.index = RunIndex(self.rules)
        # What the events said; the monitor's when there is one (it merges it into every runs
        # poll), else the app's own (tests feed batches to apply_events directly).
        memory = getattr(self.monitor, "memory", None)
        self.memory: EventMemory = memory if isinstance(memory, EventMemory) else EventMemory()
        self._expected: dict[str, list[Run]] = {}  # config key -> its schedule's runs
        self._expected_keyed: dict[str, Run] | None = None
        # The configurations table as drawn: row order, each row's next run and sort key, and
        # a heap of (moment its next/phase cells change, config key) for the tick.
        self._order: list[str] = []
        self._shown_next: dict[str, Run | None] = {}
        self._drawn: dict[str, Configuration] = {}  # the configuration each row was drawn from
        self._cells: dict[str, tuple[Text, ...]] = {}  # the cells each row was drawn with
        self._sort_keys: dict[str, tuple[datetime, str, str]] = {}
        self._boundaries: list[tuple[datetime, str]] = []
        self._boundary_of: dict[str, datetime] = {}
        self.selected_config: str | None = None
        self.selected_run: str | None = None  # chosen from the runs table; else the next run
        self.filter_text = ""
        self.last_error: str | None = None
        self.findings: deque[Finding] = deque(maxlen=MAX_FINDINGS)
        self.cancel_in_flight: set[str] = set()
        self.watchdog = Watchdog(self.clock.now())
        self.queue_mode: str | None = settings.queue_mode if settings.queue_configured else None
        self.queue_depth: int | None = None
        self.queue_capped = False
        self._failures: dict[str, int] = {}
        self._poll_timers: dict[str, Timer] = {}
        self._panel = "configs"
        self._compact = False
        self._keymap = read_keymap(settings.config_path)

    # -- layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(self._title_text(), id="title", markup=False)
        yield Input(placeholder="filter configurations (esc clears)", id="filter")
        with Vertical(id="configs-panel", classes="panel"):
            table: DataTable[Text] = DataTable(id="configs", cursor_type="row")
            for key, label in CONFIG_COLUMNS:
                table.add_column(label, key=key)
            yield table
        with Horizontal(id="run-panel", classes="panel"):
            with Vertical(id="run-left"):
                yield Static(Text("no run selected"), id="run-title", markup=False)
                yield Timeline(id="timeline")
                yield Static(Text(""), id="run-status", markup=False)
            with Vertical(id="run-right"):
                yield Countdown(self.clock.now, large=True, id="big-countdown",
                                idle_text="no deadline")
                yield Countdown(self.clock.now, id="small-countdown", idle_text="no deadline")
                yield Button("Cancel run", id="cancel-button", variant="error", disabled=True)
        with Vertical(id="runs-panel", classes="panel"):
            runs: DataTable[Text] = DataTable(id="runs", cursor_type="row")
            for key, label in RUN_COLUMNS:
                runs.add_column(label, key=key)
            yield runs
        with Vertical(id="events-panel", classes="panel"):
            yield EventLog(id="events", time_format=self._format_event_time)
        yield StatusBar(self._status_data(), id="status")
        yield Footer()

    def _title_text(self) -> Text:
        text = Text("aumwatch", style="bold")
        text.append(f"  {sanitize(self.settings.scope_description, 80)}", style="dim")
        if self.read_only:
            text.append("  ■ read-only", style="bold magenta")
        return text

    async def on_mount(self) -> None:
        self._register_theme()
        if self._keymap:
            self.set_keymap(self._keymap)
        if self.read_only:
            self.query_one("#cancel-button", Button).display = False
        self.query_one("#filter", Input).display = False
        self._apply_size()
        self.set_interval(1.0, self.tick, name="tick")
        # Countdowns are written for the rows on screen only: scrolling shows fresh ones.
        self.watch(self.query_one("#configs", DataTable), "scroll_y",
                   self._configs_scrolled, init=False)
        self._install_hangup_handlers()
        self.query_one("#configs", DataTable).focus()
        if self._poll and self.monitor is not None:
            # Deferred: the first frame is drawn before any client is even built.
            self.call_after_refresh(self.start_polling)

    def start_polling(self) -> None:
        """Start the three poll loops (each re-arms itself when it finished)."""
        self.poll_configs()
        if self.settings.queue_configured:
            self.poll_events()

    def _register_theme(self) -> None:
        from textual.theme import Theme

        self.register_theme(Theme(
            name=HIGH_CONTRAST_THEME, primary="#ffff00", secondary="#00ffff",
            accent="#ff00ff", foreground="#ffffff", background="#000000",
            surface="#000000", panel="#1a1a1a", warning="#ffff00", error="#ff3030",
            success="#00ff00", dark=True))
        if self._theme_name:
            try:
                self.theme = self._theme_name
            except Exception as exc:  # an unknown theme name must not stop the dashboard
                self.notify(f"unknown theme {self._theme_name!r}: {exc}", severity="warning")

    def _install_hangup_handlers(self) -> None:
        """Exit cleanly when the terminal goes away (SSH drop: SIGHUP) or on SIGTERM.

        Textual's driver does not: without this a SIGHUP kills the process before any
        cleanup (the stand-in's Azurite of `aumwatch demo` would be left behind).
        """
        import asyncio

        loop = asyncio.get_running_loop()
        for name in ("SIGHUP", "SIGTERM"):
            sig = getattr(signal, name, None)
            if sig is None:
                continue
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._hangup)

    def _hangup(self) -> None:
        self._terminal_lost()

    def _terminal_lost(self) -> None:
        """The terminal is gone (or we were told to stop): exit, and never outlive it.

        Textual's shutdown still talks to the terminal and can block for good once it is
        gone (seen under load: the driver's writer thread and ``close()`` waiting on each
        other). A daemon timer ends the process if the clean exit has not finished within
        :data:`HANGUP_GRACE_S`; child processes die with it (the stand-in's Azurite is bound
        to its parent with PR_SET_PDEATHSIG).
        """
        if self._hangup_timer is None:
            self._hangup_timer = threading.Timer(HANGUP_GRACE_S, os._exit, args=(0,))
            self._hangup_timer.daemon = True
            self._hangup_timer.start()
        self.exit(0)

    async def on_unmount(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        for name in ("SIGHUP", "SIGTERM"):
            sig = getattr(signal, name, None)
            if sig is not None:
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
        self.workers.cancel_all()
        if self.monitor is not None:
            with contextlib.suppress(Exception):
                await self.monitor.close()

    def on_resize(self) -> None:
        self._apply_size()

    def _apply_size(self) -> None:
        compact = self.size.height < COMPACT_HEIGHT
        self._compact = compact
        self.screen.set_class(compact, "-compact")
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

    # -- polling -----------------------------------------------------------------------------
    def _arm(self, name: str, delay: timedelta, callback: Any) -> None:
        old = self._poll_timers.pop(name, None)
        if old is not None:
            old.stop()
        self._poll_timers[name] = self.set_timer(max(0.05, delay.total_seconds()), callback,
                                            name=name)

    def _delay_after(self, source: str, ok: bool, throttled: bool = False) -> timedelta:
        if ok:
            self._failures[source] = 0
            return self.poll_interval
        count = self._failures.get(source, 0) + 1
        self._failures[source] = count
        base = timedelta(seconds=5) * (2 ** (count - 1))
        if throttled:
            base *= 2
        return min(MAX_BACKOFF, max(timedelta(seconds=2), base))

    def _next_configs(self) -> None:
        if self.paused:
            self._arm("configs", timedelta(seconds=1), self._next_configs)
        else:
            self.poll_configs()

    def _next_events(self) -> None:
        if self.paused:
            self._arm("events", timedelta(seconds=1), self._next_events)
        else:
            self.poll_events()

    @work(exclusive=True, exit_on_error=False, group="configs")
    async def poll_configs(self) -> None:
        """Fetch configurations, then runs (they need the configurations' schedules)."""
        monitor = self.monitor
        if monitor is None:
            return
        try:
            configs = await monitor.poll_configs()
        except Exception as exc:
            self.post_message(PollFailed("configs", str(exc), throttled=_throttled(exc)))
            return
        self.post_message(ConfigsFetched(configs))
        try:
            runs = await monitor.poll_runs(configs.items)
        except Exception as exc:
            self.post_message(PollFailed("runs", str(exc), throttled=_throttled(exc)))
            return
        self.post_message(RunsFetched(runs))

    @work(exclusive=True, exit_on_error=False, group="events")
    async def poll_events(self) -> None:
        """Read the events queue once."""
        monitor = self.monitor
        if monitor is None:
            return
        try:
            batch = await monitor.poll_events()
        except Exception as exc:  # poll_events should not raise; be safe anyway
            self.post_message(PollFailed("events", str(exc)))
            return
        if batch is not None:
            self.post_message(EventsFetched(batch))

    @on(ConfigsFetched)
    def _configs_fetched(self, message: ConfigsFetched) -> None:
        self.apply_configs(message.fetched)
        if not self._failures.get("runs"):
            self._clear_error("configs")

    @on(RunsFetched)
    def _runs_fetched(self, message: RunsFetched) -> None:
        self.apply_runs(message.fetched)
        self._clear_error("runs")
        self._clear_error("configs")
        if self._poll:
            self._arm("configs", self._delay_after("configs", True), self._next_configs)

    @on(PollFailed)
    def _poll_failed(self, message: PollFailed) -> None:
        self.set_error(message.error)
        if self._poll:
            delay = self._delay_after(message.source, False, message.throttled)
            name, callback = (("events", self._next_events) if message.source == "events"
                              else ("configs", self._next_configs))
            self._arm(name, delay, callback)
        self.update_status()

    @on(EventsFetched)
    def _events_fetched(self, message: EventsFetched) -> None:
        batch = message.batch
        self.apply_events(batch)
        if batch.error:
            self.set_error(batch.error)
        elif self.last_error and self.last_error.startswith("queue"):
            self.last_error = None
        if self._poll:
            delay = self._delay_after("events", batch.error is None)
            if batch.error is None:
                delay = self.events_poll_interval
            self._arm("events", delay, self._next_events)
        self.update_status()

    def set_error(self, error: str) -> None:
        """Show ``error`` as the status bar's last error (one line)."""
        self.last_error = " ".join(error.split())
        self.update_status()

    def _clear_error(self, source: str) -> None:
        if self.last_error and any(word in self.last_error for word in
                                   ("configurations", "runs query", "Resource Graph")):
            self.last_error = None
        self.update_status()

    # -- applying data -------------------------------------------------------------------------
    @property
    def runs(self) -> Any:
        """Every run the dashboard knows, by key (a read-only mapping)."""
        return self.index.runs

    @property
    def arrivals(self) -> Any:
        """First pre/post arrival per run key (a read-only mapping)."""
        return self.memory.arrivals

    def apply_configs(self, fetched: Fetched[Configuration]) -> None:
        """Take a configurations snapshot: state, expected runs, table diff."""
        new = {c.id.lower(): c for c in fetched.items}
        old = self.configs
        changed = {k for k, c in new.items() if (o := old.get(k)) is not c and o != c}
        removed = old.keys() - new.keys()
        self.configs = new
        touched = changed | removed
        for key in removed:
            self._expected.pop(key, None)
            self._expected_keyed = None
        fresh_runs: list[Run] = []
        for key in changed:
            before = old.get(key)
            if before is None or (before.id, before.name, before.next_occurrences) != (
                    new[key].id, new[key].name, new[key].next_occurrences):
                self._expected[key] = expected_runs([new[key]])
                self._expected_keyed = None
            for run in self._expected[key]:
                if run.key not in self.index:
                    touched |= self.index.put(run)
                    fresh_runs.append(run)
        self._track(fresh_runs)
        if self.selected_config is None or self.selected_config not in self.configs:
            ordered = self._config_order()  # rare (first snapshot): a full sort is fine
            self.selected_config = ordered[0] if ordered else None
        self.refresh_configs_table(touched)
        self.refresh_run_views()

    def apply_runs(self, fetched: Fetched[Run]) -> None:
        """Take a runs snapshot (keeps runs only the events know until ARG has them)."""
        observed = {r.key: r for r in fetched.items}
        kept = {key: run for key in self.index.event_only_keys
                if key in self.memory and (run := self.index.get(key)) is not None}
        # The schedule's runs stay until Resource Graph or an event names them; observed runs
        # win over event-only ones, which win over the schedule's (later dicts win).
        fresh = {**self._expected_by_key(), **kept, **observed}
        touched, changed = self.index.replace(fresh)
        self._track(changed)
        self.refresh_configs_table(touched)
        self.refresh_run_views()

    def _expected_by_key(self) -> dict[str, Run]:
        """The schedules' runs by run key (rebuilt only after the configurations changed)."""
        if self._expected_keyed is None:
            self._expected_keyed = {run.key: run for runs in self._expected.values()
                                    for run in runs}
        return self._expected_keyed

    def apply_events(self, batch: EventBatch) -> None:
        """Add a batch's events to the tail; duplicates and watchdog findings once each."""
        if batch.depth is not None:
            self.queue_depth = batch.depth
            self.queue_capped = batch.truncated
        self.queue_mode = batch.mode
        rows: list[EventRow] = []
        for received in batch.events:
            event = received.event
            arrived = received.arrived_at
            rows.append(EventRow(
                time=arrived, kind=_short_type(event.type),
                configuration=event.configuration_name or "",
                run=event.run_name or event.correlation_id.rsplit("/", 1)[-1],
                delay=_arrival_delay(event, arrived, self.rules.opens_before),
                payload=_event_payload(received), key=event.id))
        touched = self._take_event_runs(batch)
        for message in batch.undecodable:
            rows.append(EventRow(
                time=message.inserted_at or message.received_at, kind="undecodable",
                configuration=message.raw_preview, run=message.reason, flag="undecodable",
                payload=f"undecodable message {message.message_id or ''}\nreason: "
                        f"{message.reason}\nraw (escaped): {message.raw_preview}",
                key=message.message_id or ""))
        findings: list[Finding] = []
        for dup in batch.duplicates:
            event = dup.event
            findings.append(duplicate_finding(event.id, event.type, event.correlation_id,
                                              event.configuration_name))
        if batch.warning:
            self.notify(batch.warning, severity="warning", markup=False)
        with self.batch_update():
            if rows:
                self.query_one(EventLog).add_rows(rows)
            self._report(self.watchdog.new(findings))
            if touched:
                self.refresh_configs_table(touched)
        if batch.events or touched:
            self.refresh_run_views()

    def _take_event_runs(self, batch: EventBatch) -> set[str]:
        """Merge the runs the batch's events named into the index (the memory holds them;
        the monitor has already remembered a batch it polled); drop the runs only events
        knew that the memory has forgotten. Returns the configuration keys touched."""
        keys = self.memory.remember(batch, self.clock.now())
        touched: set[str] = set()
        changed: list[Run] = []
        for key in dict.fromkeys(keys):
            told = self.memory.get(key)
            if told is None:
                continue
            base = self.index.get(key)
            merged = told if base is None else merge_event(base, told)
            hit = self.index.put(merged)
            if hit:
                touched |= hit
                changed.append(merged)
        for key in self.index.event_only_keys:
            if key not in self.memory:
                touched |= self.index.remove(key)
        self._track(changed)
        return touched

    def _track(self, runs: Iterable[Run]) -> None:
        """Queue new or changed runs' event deadlines for the watchdog (with a queue only:
        without one nothing is ever judged, and the queue would only grow)."""
        if self.settings.queue_configured:
            self.watchdog.track(runs)

    def _report(self, findings: Iterable[Finding]) -> None:
        log = self.query_one(EventLog)
        new = list(findings)
        if not new:
            return
        self.findings.extend(new)
        log.add_rows(EventRow(
            time=self.clock.now(), kind=f"watchdog: {f.kind.replace('-', ' ')}",
            configuration=f.configuration_name,
            run=f.run_id.rsplit("/", 1)[-1], flag="watchdog", payload=f.message, key=f.key)
            for f in new)
        for finding in new:
            self.notify(finding.message, title="watchdog", severity="warning", markup=False)

    # -- selection -----------------------------------------------------------------------------
    def _sort_key(self, key: str, now: datetime) -> tuple[datetime, str, str]:
        return _row_sort_key(self.configs[key], self.next_run(key, now))

    def _config_order(self) -> list[str]:
        now = self.clock.now()
        shown = [k for k, c in self.configs.items() if self._matches(c)]
        return sorted(shown, key=lambda k: self._sort_key(k, now))

    def _matches(self, config: Configuration) -> bool:
        needle = self.filter_text.strip().lower()
        if not needle:
            return True
        haystack = " ".join((config.name, config.resource_group, config.subscription_id,
                             config.time_zone, config.schedule_description or "")).lower()
        return needle in haystack

    def runs_of(self, config_key: str) -> list[Run]:
        """The runs of one configuration, newest start first."""
        return self.index.of_config(config_key)

    def next_run(self, config_key: str, now: datetime | None = None) -> Run | None:
        """The current or next run of a configuration (not finished), earliest first."""
        now = now or self.clock.now()
        run = self.index.next_run(config_key, now)
        if run is not None:
            return run
        for expected in self._expected.get(config_key, ()):
            if run_phase(expected, now, self.rules) is not Phase.FINISHED:
                return expected
        return None

    @property
    def current_run(self) -> Run | None:
        """The run the run panel shows and Cancel acts on."""
        if self.selected_run is not None and self.selected_run in self.runs:
            return self.runs[self.selected_run]
        if self.selected_config is None:
            return None
        return self.next_run(self.selected_config)

    @on(DataTable.RowHighlighted, "#configs")
    def _config_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value if event.row_key is not None else None
        if key != self.selected_config:
            self.selected_config = key
            self.selected_run = None
            self.refresh_run_views()

    @on(DataTable.RowHighlighted, "#runs")
    def _run_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if not self.query_one("#runs", DataTable).has_focus:
            return
        key = event.row_key.value if event.row_key is not None else None
        if key is not None and key != self.selected_run:
            self.selected_run = key
            self.refresh_run_panel()

    @on(DataTable.RowSelected, "#configs")
    def _config_selected(self, event: DataTable.RowSelected) -> None:
        self.action_panel("runs")

    @on(DataTable.RowSelected, "#runs")
    def _run_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value if event.row_key is not None else None
        run = self.runs.get(key or "")
        if run is None:
            return
        if run.expected:
            self.notify("this run has not happened yet: it has no machines to show",
                        severity="information")
            return
        from tui.screens.machines import MachinesScreen

        self.push_screen(MachinesScreen(run.correlation_id,
                                        f"Machines of {run.configuration_name} run "
                                        f"{run.run_name} ({self.format_time(run.start)})"))

    @on(EventLog.Selected)
    def _event_selected(self, event: EventLog.Selected) -> None:
        from tui.screens.event_detail import EventDetail

        row = event.row
        self.push_screen(EventDetail(f"{row.kind} {row.configuration} {row.run}",
                                     row.payload or "(no payload)"))

    # -- tables --------------------------------------------------------------------------------
    def refresh_configs_table(self, keys: Iterable[str] | None = None, *,
                              redraw: bool = False) -> None:
        """Diff configurations into their table, sorted by next start (then name).

        ``keys``: only these configurations' data or runs changed; a row whose configuration
        and next run are the same as drawn is skipped unless ``redraw`` (its phase moved).
        None: every row is redrawn (filter, time zone). Only changed cells are written, and
        the table is re-sorted only when the order changed.
        """
        table: DataTable[Text] = self.query_one("#configs", DataTable)
        now = self.clock.now()
        everything = keys is None
        todo = list(self.configs) + [k for k in self._order if k not in self.configs] \
            if everything else list(keys or ())
        gone: list[str] = []
        added: list[tuple[tuple[datetime, str, str], str, tuple[Text, ...]]] = []
        reorder = everything
        with self.batch_update():
            for key in todo:
                config = self.configs.get(key)
                if config is None or not self._matches(config):
                    if key in self._shown_next:
                        gone.append(key)
                    continue
                run = self.next_run(key, now)
                if not (everything or redraw) and self._drawn.get(key) is config \
                        and key in self._shown_next and _same_run(self._shown_next[key], run):
                    continue  # e.g. a past run of it changed: nothing this row shows did
                cells = self._config_cells(config, now, run)
                sort_key = _row_sort_key(config, run)
                if key not in self._shown_next:
                    added.append((sort_key, key, cells))
                else:
                    self._update_config_row(table, key, cells)
                    reorder = reorder or self._sort_keys.get(key) != sort_key
                self._cells[key] = cells
                self._shown_next[key] = run
                self._drawn[key] = config
                self._sort_keys[key] = sort_key
                self._schedule_boundary(key, run, now)
            # New rows go in in order: the table highlights the first row it gets, and that
            # must be the first row shown (else the selection jumps to an arbitrary one).
            added.sort(key=lambda item: item[0])
            for _, key, cells in added:
                table.add_row(*cells, key=key)
                self._order.append(key)
            reorder = reorder or bool(added)
            if gone:
                self._remove_config_rows(table, gone)
            if reorder:
                order = sorted(self._sort_keys, key=self._sort_keys.__getitem__)
                if order != self._order:
                    table.sort("next", key=lambda cell: cell.sort_key)
                    self._order = order
            self._restore_cursor(table, self.selected_config)
            self._tick_visible_countdowns(table, now)

    def _update_config_row(self, table: DataTable[Text], key: str,
                           cells: tuple[Text, ...]) -> None:
        """Write the cells that differ from the ones drawn (kept in ``_cells``)."""
        drawn = self._cells.get(key)
        if drawn is None:
            _upsert(table, key, CONFIG_COLUMNS, cells)
            return
        for (column, _), old, cell in zip(CONFIG_COLUMNS, drawn, cells, strict=True):
            if not _same_cell(old, cell):
                table.update_cell(key, column, cell)

    def _remove_config_rows(self, table: DataTable[Text], gone: list[str]) -> None:
        for key in gone:
            self._cells.pop(key, None)
            self._shown_next.pop(key, None)
            self._drawn.pop(key, None)
            self._sort_keys.pop(key, None)
            self._boundary_of.pop(key, None)
        dropped = set(gone)
        self._order = [k for k in self._order if k not in dropped]
        if len(gone) <= REBUILD_ABOVE:
            for key in gone:
                table.remove_row(key)
            return
        # Each remove_row renumbers every row after it: rebuild instead (same cells).
        rows = {k: table.get_row(k) for k in self._order}
        table.clear()
        for key in self._order:
            table.add_row(*rows[key], key=key)

    def _schedule_boundary(self, key: str, run: Run | None, now: datetime) -> None:
        """Queue the next moment this row's next-run or phase cells change."""
        at: datetime | None = None
        if run is not None:
            boundary = self._window(run).next_boundary(now)
            at = boundary[1] if boundary is not None else None
        if at is None:
            self._boundary_of.pop(key, None)
        elif self._boundary_of.get(key) != at:
            self._boundary_of[key] = at
            heapq.heappush(self._boundaries, (at, key))

    def _due_rows(self, now: datetime) -> set[str]:
        """Rows whose queued boundary passed (stale heap entries are skipped)."""
        due: set[str] = set()
        heap = self._boundaries
        while heap and heap[0][0] <= now:
            at, key = heapq.heappop(heap)
            if self._boundary_of.get(key) == at:
                del self._boundary_of[key]
                due.add(key)
        if len(heap) > 4 * len(self._boundary_of) + 1024:  # mostly stale: compact it
            self._boundaries = [(at, k) for k, at in self._boundary_of.items()]
            heapq.heapify(self._boundaries)
        return due

    def _visible_config_keys(self, table: DataTable[Text]) -> list[str]:
        top = max(0, int(table.scroll_y) - 1)
        return self._order[top:top + table.size.height + 2]

    def _tick_visible_countdowns(self, table: DataTable[Text], now: datetime) -> None:
        """The per-second countdown text, for the rows on screen only."""
        for key in self._visible_config_keys(table):
            run = self._shown_next.get(key)
            text = self._countdown_text(run, now) if run is not None else ""
            cells = self._cells.get(key)
            if cells is not None and cells[COUNTDOWN].plain != text:
                cell = Text(text)
                self._cells[key] = (*cells[:COUNTDOWN], cell, *cells[COUNTDOWN + 1:])
                table.update_cell(key, "countdown", cell)

    def _configs_scrolled(self) -> None:
        with contextlib.suppress(Exception):  # a watcher must not take the app down
            self._tick_visible_countdowns(self.query_one("#configs", DataTable),
                                          self.clock.now())

    def _restore_cursor(self, table: DataTable[Text], key: str | None) -> None:
        if key is None or key not in table.rows:
            return
        index = table.get_row_index(key)
        if table.cursor_row != index:
            table.move_cursor(row=index, animate=False)

    def _config_cells(self, config: Configuration, now: datetime,
                      run: Run | None = None) -> tuple[Text, ...]:
        if config.schedule_error:
            recurrence = Text(f"⚠ {sanitize(config.schedule_error, 40)}", style="red")
        else:
            recurrence = Text(sanitize(config.schedule_description or config.recur_every, 40))
        scope = f"{config.resource_group} / {config.subscription_id[:8]}"
        sort_key = _row_sort_key(config, run)
        if run is None:
            next_text = _sort_text("–", sort_key)
            countdown = Text("")
            phase = Text("–", style="dim")
        else:
            next_text = _sort_text(self.format_time(run.start, config), sort_key)
            countdown = Text(self._countdown_text(run, now))
            phase = phase_label(run_phase(run, now, self.rules).value)
        return (
            Text(sanitize(config.name, 32), style="bold"),
            next_text,
            countdown,
            phase,
            recurrence,
            Text(sanitize(config.time_zone, 24)),
            Text(sanitize(scope, 48)),
        )

    def _countdown_text(self, run: Run, now: datetime) -> str:
        if now < run.start:
            return table_remaining(run.start - now)
        if run.end is not None and now < run.end:
            return f"ends {table_remaining(run.end - now)}"
        return ""

    def refresh_run_views(self) -> None:
        """Runs table and run panel for the current selection."""
        self.refresh_runs_table()
        self.refresh_run_panel()

    def refresh_runs_table(self) -> None:
        """Diff the selected configuration's runs into the runs table."""
        table: DataTable[Text] = self.query_one("#runs", DataTable)
        runs = self.runs_of(self.selected_config) if self.selected_config else []
        now = self.clock.now()
        wanted = [r.key for r in runs]
        with self.batch_update():
            for row_key in list(table.rows):
                if row_key.value not in set(wanted):
                    table.remove_row(row_key)
            for run in runs:
                _upsert(table, run.key, RUN_COLUMNS, self._run_cells(run, now))
            if [k.value for k in _ordered_keys(table)] != wanted:
                table.sort("start", key=lambda cell: cell.sort_key, reverse=True)
            if self.selected_run is not None:
                self._restore_cursor(table, self.selected_run)

    def _run_cells(self, run: Run, now: datetime) -> tuple[Text, ...]:
        config = self.configs.get(run.configuration_id.lower())
        status = sanitize(run.status, 30) + (" (expected)" if run.expected else "")
        total = run.machines_total
        machines = "–" if total is None else (
            f"{run.machines_succeeded or 0}/{run.machines_failed or 0}/{total}")
        cancelled = run.cancelled_by or ""
        if run.key in self.cancel_in_flight:
            status = "cancel in flight…"
        failed_style = "bold red" if (run.machines_failed or 0) else ""
        return (
            phase_label(run_phase(run, now, self.rules).value),
            Text(sanitize(run.configuration_name or "", 40)),
            Text(status, style="bold red" if run.status.lower() == "failed" else ""),
            _sort_text(self.format_time(run.start, config), run.start),
            Text(self.format_time(run.end, config) if run.end else "–"),
            Text(machines, style=failed_style),
            Text(cancelled, style="yellow" if cancelled else ""),
        )

    # -- the run panel -------------------------------------------------------------------------
    def _window(self, run: Run) -> RunWindow:
        return run_window(run.start, cutoff=run.cutoff, end=run.end, rules=self.rules)

    def refresh_run_panel(self) -> None:
        """Title, timeline, countdown and Cancel for the current run."""
        run = self.current_run
        title = self.query_one("#run-title", Static)
        timeline = self.query_one(Timeline)
        if run is None:
            _show(title, Text("no run selected", style="dim"))
            timeline.update_data(None)
            _show(self.query_one("#run-status", Static), Text(""))
        else:
            config = self.configs.get(run.configuration_id.lower())
            text = Text(sanitize(run.configuration_name or "?", 60), style="bold")
            text.append(f"  run {sanitize(run.run_name, 40)}")
            if run.expected:
                text.append("  (computed from the schedule)", style="dim")
            text.append(f"  start {self.format_time(run.start, config)}")
            _show(title, text)
            timeline.update_data(self._timeline_data(run))
        self.tick_run_panel()

    def _timeline_data(self, run: Run) -> TimelineData | None:
        window = self._window(run)
        end = run.end if run.end is not None and run.end > run.start else \
            run.start + timedelta(hours=1)
        arrival = self.arrivals.get(run.key, EventArrival())
        start = window.start
        try:
            return TimelineData(
                start=start, end=end, opens_at=min(window.opens_at, window.closes_at),
                closes_at=window.closes_at, now=self.clock.now(),
                pre_event_at=arrival.pre, post_event_at=arrival.post,
                pre_expected=(start - timedelta(minutes=35), start - timedelta(minutes=30)))
        except ValueError:
            return None

    def tick_run_panel(self) -> None:
        """Countdown target, Cancel availability and the status line of the current run."""
        run = self.current_run
        now = self.clock.now()
        big = self.query_one("#big-countdown", Countdown)
        small = self.query_one("#small-countdown", Countdown)
        status = self.query_one("#run-status", Static)
        allowed = False
        if run is None:
            big.set_target("", None)
            small.set_target("", None)
        else:
            window = self._window(run)
            phase = run_phase(run, now, self.rules)
            boundary = None if phase is Phase.FINISHED else window.next_boundary(now)
            if boundary is None:
                big.set_target("", None)
                small.set_target("", None)
            else:
                label = _BOUNDARY_WORDS.get(boundary[0], boundary[0])
                big.set_target(label, boundary[1])
                small.set_target(label, boundary[1])
            allowed = (phase is Phase.CANCELLABLE and not self.read_only
                       and run.key not in self.cancel_in_flight)
            line = phase_label(phase.value)
            if run.key in self.cancel_in_flight:
                line.append("  cancel in flight…", style="bold")
            elif phase is Phase.CANCELLABLE:
                line.append("  cancel window open until "
                            f"{self.format_time(window.closes_at)}")
            elif phase is Phase.UPCOMING and window.ever_opens:
                line.append(f"  cancel window opens {self.format_time(window.opens_at)}")
            if run.cancelled_by:
                line.append(f"  cancelled by {run.cancelled_by}", style="yellow")
            _show(status, line)
        if allowed != self.can_cancel:
            self.can_cancel = allowed
        button = self.query_one("#cancel-button", Button)
        if button.disabled == allowed:
            button.disabled = not allowed

    # -- the one-second tick -------------------------------------------------------------------
    def tick(self) -> None:
        """Move countdowns, phases, the timeline's now and Cancel; never raises."""
        try:
            self._tick()
        except Exception as exc:  # a timer callback must not take the app down
            self.last_error = f"display update failed: {type(exc).__name__}: {exc}"

    def _tick(self) -> None:
        now = self.clock.now()
        table: DataTable[Text] = self.query_one("#configs", DataTable)
        with self.batch_update():
            # Only rows whose phase or next run changes now, and the countdowns on screen.
            due = self._due_rows(now)
            if due:
                self.refresh_configs_table(due, redraw=True)
            else:
                self._tick_visible_countdowns(table, now)
            runs: DataTable[Text] = self.query_one("#runs", DataTable)
            for row_key in list(runs.rows):
                run = self.index.get(row_key.value or "")
                if run is None:
                    continue
                cell = phase_label(run_phase(run, now, self.rules).value)
                if _plain(runs.get_cell(row_key, "phase")) != cell.plain:
                    runs.update_cell(row_key, "phase", cell)
            self.query_one(Timeline).set_now(now)
            self.tick_run_panel()
            if self.settings.queue_configured and not self.queue_capped \
                    and self.queue_depth is not None:
                # A capped peek cannot see every event: judging missing ones would cry wolf.
                self._report(self.watchdog.check_due(self.index.runs, self.arrivals, now))
            self.update_status()
        self._check_terminal()

    def _check_terminal(self) -> None:
        # A hung-up terminal: stdin gone. SIGHUP normally tells us first; this is the backstop.
        if self.is_headless:
            return
        stream = sys.__stdin__
        if stream is None:
            return
        try:
            os.tcgetpgrp(stream.fileno())
        except OSError:
            self._terminal_lost()
        except ValueError:
            pass

    def update_status(self) -> None:
        """Rebuild the status bar's data (it redraws only when something changed)."""
        with contextlib.suppress(Exception):
            self.query_one(StatusBar).update_status(self._status_data())

    def _status_data(self) -> StatusData:
        now = self.clock.now()
        monitor = self.monitor
        ages: dict[str, timedelta | None] = monitor.ages(now) if monitor else {}
        stale = max(self.poll_interval * 3, timedelta(seconds=60))
        sources = [SourceAge("configs", ages.get("configs"), stale),
                   SourceAge("runs", ages.get("runs"), stale)]
        if self.settings.queue_configured:
            sources.append(SourceAge("events", ages.get("events"), timedelta(seconds=60)))
        quota: int | None = None
        throttled: timedelta | None = None
        skew: timedelta | None = None
        if monitor is not None:
            state = monitor.governor_state
            quota = state.remaining
            if state.throttled_until is not None:
                throttled = max(timedelta(0), state.throttled_until - SystemClock().now())
            if monitor.skew is not None:
                skew = -monitor.skew  # the bar shows local minus server
        return StatusData(
            sources=tuple(sources) if monitor else (),
            quota_remaining=quota, throttled_for=throttled,
            queue_mode=self.queue_mode, queue_depth=self.queue_depth,
            queue_depth_capped=self.queue_capped, clock_skew=skew,
            read_only=self.read_only, paused=self.paused, last_error=self.last_error)

    # -- time display ----------------------------------------------------------------------------
    def _zone(self, config: Configuration | None) -> tzinfo | None:
        if self.time_mode == "utc":
            return UTC
        if self.time_mode == "local":
            return None
        if config is None or not config.time_zone:
            return UTC
        try:
            from services.domain.schedule import resolve_zone

            return resolve_zone(config.time_zone)
        except Exception:
            return UTC

    def format_time(self, when: datetime | None, config: Configuration | None = None) -> str:
        """``when`` in the current display zone, e.g. ``"Sat 14:25 CET"``."""
        if when is None:
            return "–"
        zone = self._zone(config)
        local = when.astimezone(zone) if zone is not None else when.astimezone()
        return local.strftime("%a %d %H:%M ") + (local.tzname() or "")

    def _format_event_time(self, when: datetime) -> str:
        zone = UTC if self.time_mode == "utc" else None
        if self.time_mode == "config":
            zone = UTC
        local = when.astimezone(zone) if zone is not None else when.astimezone()
        return local.strftime("%H:%M:%S")

    def watch_time_mode(self, mode: str) -> None:
        if not self.screen_stack:  # not running yet
            return
        self.refresh_configs_table()
        self.refresh_run_views()
        self.query_one(EventLog).set_time_format(self._format_event_time)
        table: DataTable[Text] = self.query_one("#configs", DataTable)
        label = {"config": "Next start", "utc": "Next (UTC)", "local": "Next (local)"}[mode]
        column = table.columns.get(_column_key(table, "next"))
        if column is not None:
            column.label = Text(label)
            table.refresh()

    # -- actions ---------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_run":
            if self.read_only:
                return False  # absent, not just dimmed
            if len(self.screen_stack) > 1:
                return None  # a dialog or another screen is on top
            return True if self.can_cancel else None
        return True

    def action_help(self) -> None:
        """Show or hide the key help panel."""
        from textual.widgets import HelpPanel

        if self.screen.query(HelpPanel):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

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
        self.notify("refreshing…", timeout=2)

    def action_cycle_zone(self) -> None:
        """Show times in the configuration's zone, UTC or the local zone."""
        index = TIME_MODES.index(self.time_mode) if self.time_mode in TIME_MODES else 0
        self.time_mode = TIME_MODES[(index + 1) % len(TIME_MODES)]
        self.notify(f"times: {self.time_mode}", timeout=2)

    def action_filter(self) -> None:
        """Filter configurations by name, resource group, subscription or zone."""
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        """Clear the filter (or leave the runs/events panel for the configurations)."""
        box = self.query_one("#filter", Input)
        if box.display or self.filter_text:
            box.value = ""
            box.display = False
            self.filter_text = ""
            self.refresh_configs_table()
            self.query_one("#configs", DataTable).focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self.refresh_configs_table()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value:
            self.query_one("#filter", Input).display = False
        self.query_one("#configs", DataTable).focus()

    @on(Button.Pressed, "#cancel-button")
    def _cancel_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_cancel_run()

    def cancel_lines(self, run: Run) -> list[tuple[str, str]]:
        """What the confirmation names: configuration, run id, start in three zones, time left."""
        config = self.configs.get(run.configuration_id.lower())
        now = self.clock.now()
        window = self._window(run)
        run_id = run.correlation_id + ("  (computed from the schedule)" if run.expected else "")
        zone = self._zone_for_mode("config", config)
        return [
            ("Configuration", run.configuration_name or "?"),
            ("Run id", run_id),
            ("Start (config zone)", _fmt(run.start, zone)),
            ("Start (UTC)", _fmt(run.start, UTC)),
            ("Start (local)", _fmt(run.start, None)),
            ("Cancel closes in", format_remaining(window.closes_at - now)),
        ]

    def _zone_for_mode(self, mode: str, config: Configuration | None) -> tzinfo | None:
        saved = self.time_mode
        try:
            self.set_reactive(AumwatchApp.time_mode, mode)
            return self._zone(config)
        finally:
            self.set_reactive(AumwatchApp.time_mode, saved)

    def action_cancel_run(self) -> None:
        """Ask to cancel the selected run (only inside its window, never in read-only)."""
        run = self.current_run
        if self.read_only or run is None:
            return
        if not self.can_cancel:
            self.notify("the cancel window of this run is not open", severity="warning")
            return
        lines = self.cancel_lines(run)
        key = run.key

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self._confirmed(key)

        self.push_screen(ConfirmCancel("Cancel this maintenance run?", lines), answered)

    def _confirmed(self, key: str) -> None:
        run = self.runs.get(key)
        if run is None:
            run = self.current_run if self.current_run and self.current_run.key == key \
                else None
        if run is None:
            self.notify("the run is no longer listed: nothing sent", severity="error")
            return
        now = self.clock.now()
        if run_phase(run, now, self.rules) is not Phase.CANCELLABLE:
            message = "refused: the cancel window closed while you were confirming"
            self.set_error(message)
            self.notify(message, severity="error", markup=False)
            return
        target = CancelTarget(run.correlation_id, run.configuration_name, run.start,
                              cutoff=run.cutoff, computed_id=run.expected)
        self.cancel_in_flight.add(key)
        self.refresh_run_views()
        self.send_cancel(target)

    @work(exclusive=False, exit_on_error=False, group="cancel")
    async def send_cancel(self, target: CancelTarget) -> None:
        """Send one cancel through the monitor and report its outcome."""
        monitor = self.monitor
        if monitor is None:
            result = CancelResult(Outcome.REFUSED, "refused: no data source",
                                  target.correlation_id)
        else:
            try:
                result = await monitor.cancel(target)
            except Exception as exc:
                result = CancelResult(Outcome.FAILED, f"cancel failed: {exc}",
                                      target.correlation_id)
        self.post_message(CancelDone(result))

    @on(CancelDone)
    def _cancel_done(self, message: CancelDone) -> None:
        result = message.result
        key = result.run_id.lower()
        self.cancel_in_flight.discard(key)
        run = self.runs.get(key)
        touched: set[str] = set()
        if result.verified and run is not None:
            cancelled = replace(run, status=result.run_status or "Cancelled",
                                cancelled_by="user", expected=False)
            touched = self.index.put(cancelled)
            self._track([cancelled])
        outcome = result.outcome.value
        severity: SeverityLevel = ("information" if outcome == "verified"
                                   else "warning" if outcome == "refused" else "error")
        text = f"cancel {result.outcome.value}: {result.message}"
        if result.journal_error:
            text += f" (audit not written: {result.journal_error})"
        self.notify(text, title="Cancel", severity=severity, markup=False, timeout=10)
        if result.verified:
            self.last_error = None
            self.sub_title = f"cancelled {result.run_id.rsplit('/', 1)[-1]}"
        else:
            self.set_error(text)
        self.refresh_configs_table(touched)
        self.refresh_run_views()
        if result.verified and self._poll and self.monitor is not None:
            self.poll_configs()

    def action_export(self) -> None:
        """Write the current view (configurations, runs, events) as CSV and JSON."""
        try:
            path = self.export_view()
        except OSError as exc:
            self.set_error(f"export failed: {exc}")
            self.notify(f"export failed: {exc}", severity="error", markup=False)
            return
        self.notify(f"exported to {path} (and .csv)", title="Export", markup=False, timeout=10)

    def export_view(self) -> Path:
        """Write the view to ``<data dir>/exports/``; returns the JSON file's path."""
        now = self.clock.now()
        folder = self.settings.data_dir / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"aumwatch-{now.strftime('%Y%m%dT%H%M%SZ')}"
        configs = [self.configs[k].to_json(phase=_phase_or_none(self.next_run(k), now,
                                                                 self.rules))
                   for k in self._config_order()]
        runs = [r.to_json(phase=run_phase(r, now, self.rules).value)
                for k in ([self.selected_config] if self.selected_config else [])
                for r in self.runs_of(k)]
        events = [{"time": row.time.isoformat(), "kind": row.kind,
                   "configuration": row.configuration, "run": row.run,
                   "delay_s": row.delay.total_seconds() if row.delay else None,
                   "flag": row.flag} for row in self.query_one(EventLog).rows]
        json_path = stem.with_suffix(".json")
        json_path.write_text(json.dumps({"exported_at": now.isoformat(),
                                         "configurations": configs, "runs": runs,
                                         "events": events}, indent=2), encoding="utf-8")
        with stem.with_suffix(".csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["name", "resource_group", "subscription_id", "time_zone",
                             "recur_every", "next_start", "phase"])
            for item in configs:
                writer.writerow([item["name"], item["resource_group"], item["subscription_id"],
                                 item["time_zone"], item["recur_every"], item["next_start"],
                                 item["phase"]])
        return json_path

    def get_system_commands(self, screen: Any) -> Iterable[Any]:
        """The palette lists every dashboard action next to Textual's own."""
        from textual.app import SystemCommand

        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            if not isinstance(binding, Binding) or binding.action in ("quit",):
                continue
            if binding.action == "cancel_run" and self.read_only:
                continue
            action = binding.action
            yield SystemCommand(binding.description, binding.tooltip or binding.description,
                                lambda action=action: self.run_action(action))


def _fmt(when: datetime, zone: tzinfo | None) -> str:
    local = when.astimezone(zone) if zone is not None else when.astimezone()
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or "")


def _phase_or_none(run: Run | None, now: datetime, rules: Any) -> str | None:
    return None if run is None else run_phase(run, now, rules).value


def table_remaining(delta: timedelta) -> str:
    """Time left as the configurations table shows it: to the second under an hour
    ("06:12"), to the minute under a day ("5h 07m"), else "2d 4h" (rounded up, as
    :func:`widgets.countdown.format_remaining`). A far-away row then changes once a minute
    or an hour, not every second: an idle dashboard redraws only the imminent rows."""
    seconds = max(0, math.ceil(delta.total_seconds()))
    if seconds < 3600 or seconds >= 86400:
        return format_remaining(delta)
    hours, minutes = divmod(math.ceil(seconds / 60), 60)
    if hours >= 24:  # the last minute before a day, rounded up
        return "1d 0h"
    return f"{hours}h {minutes:02d}m"


def _same_run(a: Run | None, b: Run | None) -> bool:
    return a is b or (a is not None and b is not None and a == b)


def _throttled(exc: BaseException) -> bool:
    return isinstance(exc, ServiceError) and exc.kind == "throttled"


def _short_type(event_type: str) -> str:
    tail = event_type.rsplit(".", 1)[-1]
    return {"PreMaintenanceEvent": "pre", "PostMaintenanceEvent": "post"}.get(tail, event_type)


def _arrival_delay(event: Any, arrived: datetime, opens_before: timedelta) -> timedelta | None:
    kind = str(getattr(event, "kind", ""))
    if kind == "pre" and event.start is not None:
        # Azure sends the pre-event at least 30 min before the start (docs/azure.md).
        return arrived - (event.start - timedelta(minutes=30))
    if kind == "post" and event.end is not None:
        return arrived - event.end
    return None


def _event_payload(received: Any) -> str:
    body = received.to_json()
    data = getattr(received.event, "data", None)
    if data:
        with contextlib.suppress(TypeError, ValueError):
            body["data"] = json.loads(json.dumps(dict(data), default=str))
    # ensure_ascii: every control or odd character is a visible \\u escape.
    return json.dumps(body, indent=2, ensure_ascii=True, default=str)


def _column_key(table: DataTable[Any], name: str) -> Any:
    for key in table.columns:
        if key.value == name:
            return key
    return None


def _ordered_keys(table: DataTable[Any]) -> list[Any]:
    return [table.coordinate_to_cell_key(Coordinate(i, 0)).row_key
            for i in range(table.row_count)]


def _show(widget: Static, text: Text) -> None:
    """Put ``text`` in a one-line Static only when it differs from what it shows, without a
    layout pass (the run panel's lines have fixed sizes in app.tcss): the tick rewrites the
    same status line every second."""
    shown = widget.content
    if isinstance(shown, Text) and _same_cell(shown, text):
        return
    widget.update(text, layout=False)


def _same_cell(old: Text, new: Text) -> bool:
    return (old.plain == new.plain and old.style == new.style and old.spans == new.spans
            and getattr(old, "sort_key", None) == getattr(new, "sort_key", None))


def _row_sort_key(config: Configuration, run: Run | None) -> tuple[datetime, str, str]:
    """Configurations sort by next start, then name, then id (a total order, so the table's
    sort and ours always agree)."""
    return (run.start if run is not None else _FAR, config.name.lower(), config.id.lower())


def _upsert(table: DataTable[Text], key: str, columns: tuple[tuple[str, str], ...],
            cells: tuple[Text, ...]) -> None:
    """Add the row, or update only the cells whose text or style changed."""
    if key not in table.rows:
        table.add_row(*cells, key=key)
        return
    for (column, _), cell in zip(columns, cells, strict=True):
        old = table.get_cell(key, column)
        if not isinstance(old, Text) or old.plain != cell.plain or old.style != cell.style \
                or old.spans != cell.spans:
            table.update_cell(key, column, cell)
