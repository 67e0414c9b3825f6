"""The poll loops: workers that fetch through the monitor and post what they got.

A :class:`Poller` is an invisible widget of the dashboard screen (workers and timers belong
to a node) and the screen's one link to the :class:`~services.azure.monitor.Monitor`. Each
worker (``@work(exclusive=True, exit_on_error=False, group=...)``) only posts messages with
the seam's immutable data (services/domain/boundary.py), which bubble to the screen: the
fetch, then the monitor's own facts (:class:`~tui.messages.StatusFetched`). A poll never
overlaps itself: the screen re-arms the loop (:meth:`Poller.rearm`) when the last poll was
applied, with the delay this poller's :class:`Backoff` chooses. While paused, a due poll
waits a second and asks again (countdowns keep ticking; only the data stands still). The
Event Grid wiring has a loop of its own on a slow cadence (``[events] wiring_refresh``),
started by the screen once the configurations are known.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from textual import work
from textual.timer import Timer
from textual.widget import Widget

from services.azure.monitor import Monitor
from services.domain.backoff import Backoff
from services.domain.boundary import CancelResult, CancelTarget, Outcome
from services.domain.errors import ServiceError
from services.domain.model import Configuration, Fetched, Machine
from tui.messages import (
    CancelDone,
    ConfigsFetched,
    EventsFetched,
    PollFailed,
    RunsFetched,
    StatusFetched,
    WiringFetched,
)

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
    ``configurations`` gives the configurations whose wiring is read; ``backoff`` chooses
    each next delay. It also sends cancels and reads a run's machines for the screen.
    """

    DEFAULT_CSS = "Poller { display: none; }"

    def __init__(self, monitor: Monitor | None, *, paused: Callable[[], bool],
                 scheduler: Scheduler | None = None,
                 configurations: Callable[[], Sequence[Configuration]] = tuple,
                 backoff: Backoff | None = None) -> None:
        super().__init__(id="poller")
        self.monitor = monitor
        self.backoff = backoff if backoff is not None else Backoff()
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

    def rearm(self, source: str, ok: bool, throttled: bool = False) -> None:
        """Arm ``source``'s loop after a poll that succeeded (``ok``) or failed, with the
        delay :attr:`backoff` chooses."""
        self.arm_next(source, self.backoff.next_delay(source, ok, throttled))

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
            self._post_status()
            self.post_message(PollFailed("configs", str(exc), throttled=_throttled(exc)))
            return
        self.post_message(ConfigsFetched(configs))
        try:
            runs = await monitor.poll_runs()
        except Exception as exc:
            self._post_status()
            self.post_message(PollFailed("runs", str(exc), throttled=_throttled(exc)))
            return
        self._post_status()
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
            self._post_status()
            self.post_message(PollFailed("events", str(exc)))
            return
        self._post_status()
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
            self._post_status()
            self.post_message(PollFailed("wiring", str(exc), throttled=_throttled(exc)))
            return
        self._post_status()
        self.post_message(WiringFetched(snapshot))

    def _post_status(self) -> None:
        """Tell the screen the monitor's own facts (ages, quota, skew, tasks runner)."""
        if self.monitor is not None:
            self.post_message(StatusFetched(self.monitor.status()))

    # -- on demand -----------------------------------------------------------------------------
    @work(exclusive=False, exit_on_error=False, group="cancel")
    async def send_cancel(self, target: CancelTarget) -> None:
        """Send one cancel through the monitor; posts :class:`CancelDone` whatever happens."""
        self.post_message(CancelDone(await send(self.monitor, target)))

    @property
    def fetch_machines(self) -> Callable[[str], Awaitable[Fetched[Machine]]] | None:
        """Reads one run's machines (None: nothing is polled)."""
        return self.monitor.poll_machines if self.monitor is not None else None


async def send(monitor: Monitor | None, target: CancelTarget) -> CancelResult:
    """Send one cancel through ``monitor``; every failure becomes a result, never raised."""
    if monitor is None:
        return CancelResult(Outcome.REFUSED, "refused: no data source", target.correlation_id)
    try:
        return await monitor.cancel(target)
    except Exception as exc:
        return CancelResult(Outcome.FAILED, f"cancel failed: {exc}", target.correlation_id)
