"""The aumwatch application: settings, theme, keymap, the default screen, the monitor's
lifetime, hang-up handling and the global keys.

Everything the operator looks at is the :class:`~tui.screens.dashboard.DashboardScreen`
(its panels in ``tui/panels``, its state in :mod:`services.domain.dashboard`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from textual import events
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen

from services.azure.cancel import SERVED_ENV
from services.azure.monitor import Monitor
from services.domain.clock import Clock, SystemClock
from services.settings import (
    MIN_EVENTS_POLL_INTERVAL,
    MIN_POLL_INTERVAL,
    Settings,
    load_settings,
)
from tui.hangup import HangupGuard
from tui.screens.dashboard import DashboardScreen, Scheduler

HIGH_CONTRAST_THEME = "aumwatch-high-contrast"

#: What each dashboard command does, as the command palette says it under the title (a
#: binding's own tooltip wins). Keyed by binding id.
PALETTE_HELP: dict[str, str] = {
    "help": "Show or hide every key of the dashboard",
    "pause": "Stop or resume refreshing (the countdowns keep running)",
    "refresh": "Read configurations, runs, events and the Event Grid wiring again now",
    "zone": "Show times in the configuration's zone, in UTC, or in this machine's zone",
    "filter": "Show only the configurations whose name matches what you type",
    "clear_filter": "Show every configuration again",
    "export": "Write the current view as CSV and JSON into the data directory",
    "panel.configs": "Show and focus the configurations table",
    "panel.run": "Show and focus the selected run's details",
    "panel.runs": "Show and focus the table of runs",
    "panel.events": "Show and focus the event tail",
}


class AumwatchApp(App[int]):
    """The dashboard. Give it ``settings`` (or a ``config_path``) and optionally a ``clock``.

    ``monitor`` replaces the data side (tests); ``poll=False`` starts no polling (snapshot
    tests feed messages instead); ``scheduler`` replaces the timers that arm each next poll
    (see :class:`~tui.screens.dashboard.DashboardScreen`).
    """

    TITLE = "aumwatch"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("question_mark,f1", "help", "Help", id="help"),
    ]

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
        scheduler: Scheduler | None = None,
        prefetched: concurrent.futures.Future[Any] | None = None,
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
        self.clock: Clock = clock or SystemClock()
        self.read_only = settings.read_only
        interval = refresh or settings.poll_interval
        self.poll_interval = max(interval, MIN_POLL_INTERVAL)
        self.monitor: Monitor | None = monitor if monitor is not None else (
            Monitor(settings, self.clock) if poll else None)
        self._theme_name = theme
        # The [keys] table, already validated against KEY_BINDING_IDS by the settings loader.
        self._keymap = dict(settings.keymap)
        self.hangup = HangupGuard(lambda: self.exit(0))
        # Events have their own, much shorter interval: a peek is one cheap Storage call with
        # no Resource Graph quota behind it (settings.DEFAULT_EVENTS_POLL_INTERVAL).
        self.events_poll_interval = max(settings.events_poll_interval,
                                        MIN_EVENTS_POLL_INTERVAL)
        self._poll = poll
        self._scheduler = scheduler
        self._dashboard: DashboardScreen | None = None
        # Served to a browser (`aumwatch serve`), whose page focuses the terminal on load:
        # the web driver's own "not focused" at start is stale (see on_app_blur).
        self._stale_blur = os.environ.get(SERVED_ENV) == "browser"
        # The first configurations query, sent before Textual started (tui/cli/dashboard.py).
        self._prefetched = prefetched

    @property
    def dashboard(self) -> DashboardScreen:
        """The dashboard screen (built when the app starts: widgets need a running app)."""
        if self._dashboard is None:
            raise RuntimeError("the dashboard exists once the app runs")
        return self._dashboard

    def get_default_screen(self) -> Screen[Any]:
        """The dashboard."""
        if self._dashboard is None:
            self._dashboard = DashboardScreen(
                self.settings, self.clock, self.monitor, poll_interval=self.poll_interval,
                events_poll_interval=self.events_poll_interval, poll=self._poll,
                scheduler=self._scheduler, check_terminal=self.hangup.check_terminal)
        return self._dashboard

    async def on_mount(self) -> None:
        self._register_theme()
        if self._keymap:
            self.set_keymap(self._keymap)
        # Headless (tests) or served to a browser (`aumwatch serve`: stdin is textual-serve's
        # pipe, never a terminal): there is no terminal to lose; SIGTERM still ends it.
        self.hangup.headless = self.is_headless or self.is_web
        self.hangup.install()
        if self._prefetched is not None and self._poll:
            self.run_worker(self.take_prefetched(self._prefetched), name="prefetched",
                            exit_on_error=False)

    async def take_prefetched(self, prefetched: concurrent.futures.Future[Any]) -> bool:
        """Show the configurations the prefetch read, unless the dashboard's own poll came
        first (its answer is newer). Returns whether they were shown; a failed prefetch
        shows nothing (the poll reports the problem)."""
        try:
            fetched = await asyncio.wrap_future(prefetched)
        except Exception:
            return False
        if self.dashboard.state.configs:
            return False
        self.dashboard.apply_configs(fetched)
        return True

    def on_app_blur(self, event: events.AppBlur) -> None:
        """Ignore the web driver's first "the page has no focus", sent as it starts whatever
        the page does: aumwatch's page focuses the terminal on load (tui/serve.py), and
        Textual hides the footer's keys while the app is unfocused, so the first frame would
        lack them. A real blur later (the viewer clicks elsewhere) is taken as usual."""
        if self._stale_blur and self.is_web:
            self._stale_blur = False
            event.prevent_default()

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
                # The name is the operator's flag or config text: shown literally.
                self.notify(f"unknown theme {self._theme_name!r}: {exc}", severity="warning",
                            markup=False)

    async def on_unmount(self) -> None:
        self.hangup.remove()
        self.workers.cancel_all()
        if self.monitor is not None:
            with contextlib.suppress(Exception):
                await self.monitor.close()

    def action_help(self) -> None:
        """Show or hide the key help panel."""
        from textual.widgets import HelpPanel

        if self.screen.query(HelpPanel):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def get_system_commands(self, screen: Any) -> Iterable[Any]:
        """The palette lists every dashboard action next to Textual's own."""
        from textual.app import SystemCommand

        yield from super().get_system_commands(screen)
        dashboard = self.dashboard
        for binding in DashboardScreen.BINDINGS:
            if not isinstance(binding, Binding) or binding.action == "app.quit":
                continue
            if binding.action == "cancel_run" and self.read_only:
                continue
            action = binding.action
            what = binding.tooltip or PALETTE_HELP.get(binding.id or "", binding.description)
            yield SystemCommand(binding.description, what,
                                lambda action=action: dashboard.run_action(action))
