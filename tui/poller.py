"""The poll loops: workers that fetch through the monitor and post what they got.

A :class:`Poller` is an invisible widget of the dashboard screen (workers and timers belong
to a node). Each worker (``@work(exclusive=True, exit_on_error=False, group=...)``) only
posts a message with immutable data, which bubbles to the screen. A poll never overlaps
itself: the screen arms the next one (:meth:`Poller.arm_next`) when the last one was applied,
with the delay the state's back-off chose. While paused, a due poll waits a second and asks
again (countdowns keep ticking; only the data stands still). The Event Grid wiring has a
loop of its own on a slow cadence (``[events] wiring_refresh``), started by the screen once
the configurations are known.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

from textual import work
from textual.timer import Timer
from textual.widget import Widget

from services.azure.monitor import Monitor
from services.domain.errors import ServiceError
from services.domain.model import Configuration
from tui.messages import ConfigsFetched, EventsFetched, PollFailed, RunsFetched, WiringFetched

#: Arms a named one-shot poll: (name, delay, callback). The default is a Textual timer.
Scheduler = Callable[[str, timedelta, Callable[[], object]], None]
#: How often a paused poll asks again.
PAUSED_RETRY = timedelta(seconds=1)


def _throttled(exc: BaseException) -> bool:
    return isinstance(exc, ServiceError) and exc.kind == "throttled"


class Poller(Widget):
    """Polls ``monitor``: configurations then runs (one loop), events (another), the Event
    Grid wiring (a third, slow one).

    ``paused`` says whether to hold the next poll; ``scheduler`` replaces the timers that
    arm each next poll (tests record the delays instead of waiting for them);
    ``configurations`` gives the configurations whose wiring is read.
    """

    DEFAULT_CSS = "Poller { display: none; }"

    def __init__(self, monitor: Monitor | None, *, paused: Callable[[], bool],
                 scheduler: Scheduler | None = None,
                 configurations: Callable[[], Sequence[Configuration]] = tuple) -> None:
        super().__init__(id="poller")
        self.monitor = monitor
        self._paused = paused
        self._configurations = configurations
        self._scheduler = scheduler
        self._poll_timers: dict[str, Timer] = {}

    def arm(self, name: str, delay: timedelta, callback: Callable[[], object]) -> None:
        """Run ``callback`` after ``delay`` (one pending timer per ``name``)."""
        if self._scheduler is not None:
            self._scheduler(name, delay, callback)
            return
        old = self._poll_timers.pop(name, None)
        if old is not None:
            old.stop()
        self._poll_timers[name] = self.set_timer(max(0.05, delay.total_seconds()), callback,
                                            name=name)

    def arm_next(self, source: str, delay: timedelta) -> None:
        """Arm the loop that polls ``source`` (events, wiring, or configs/runs) after
        ``delay``."""
        name = source if source in ("events", "wiring") else "configs"
        self.arm(name, delay, lambda: self._next(name))

    def _next(self, name: str) -> None:
        """Start loop ``name``'s poll, or, while paused, ask again a second later."""
        if self._paused():
            self.arm(name, PAUSED_RETRY, lambda: self._next(name))
        elif name == "events":
            self.poll_events()
        elif name == "wiring":
            self.poll_wiring()
        else:
            self.poll_configs()

    @work(exclusive=True, exit_on_error=False, group="configs")
    async def poll_configs(self) -> None:
        """Fetch configurations, then runs."""
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
            runs = await monitor.poll_runs()
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

    @work(exclusive=True, exit_on_error=False, group="wiring")
    async def poll_wiring(self, force: bool = False) -> None:
        """Read the Event Grid wiring of the known configurations (the monitor's cache
        answers unless its refresh is due, or ``force``)."""
        monitor = self.monitor
        if monitor is None:
            return
        try:
            snapshot = await monitor.poll_wiring(tuple(self._configurations()), force=force)
        except Exception as exc:
            self.post_message(PollFailed("wiring", str(exc), throttled=_throttled(exc)))
            return
        self.post_message(WiringFetched(snapshot))
