"""How long until a source is polled again (:class:`Backoff`): its interval after a success,
a doubling back-off after failures. Pure, so the dashboard's poller (tui/poller.py) and the
headless watcher (``aumwatch watch``) pace their polls by one rule."""

from __future__ import annotations

from datetime import timedelta

from services.domain.wiring import DEFAULT_WIRING_REFRESH, WIRING_RETRY

#: Longest back-off after repeated failures of one source.
MAX_BACKOFF = timedelta(minutes=5)
#: The first back-off after a failure, doubled at each further failure.
FIRST_BACKOFF = timedelta(seconds=5)
#: The shortest delay before a retry.
MIN_BACKOFF = timedelta(seconds=2)


class Backoff:
    """How long until a source is polled again: its interval after a success, a back-off
    doubling with each failure in a row (twice as long when throttled) between
    :data:`MIN_BACKOFF` and :data:`MAX_BACKOFF` after a failure; the wiring keeps its own
    slow cadence and retries a failed read after ``WIRING_RETRY`` (at most its interval).
    Configurations and runs are one loop: a success of either starts both over."""

    def __init__(self, poll_interval: timedelta = timedelta(seconds=60),
                 events_poll_interval: timedelta = timedelta(seconds=5),
                 wiring_interval: timedelta = DEFAULT_WIRING_REFRESH) -> None:
        self.poll_interval = poll_interval
        self.events_poll_interval = events_poll_interval
        self.wiring_interval = wiring_interval
        self._failures: dict[str, int] = {}

    def next_delay(self, source: str, ok: bool, throttled: bool = False) -> timedelta:
        """The delay before ``source`` (configs, runs, events or wiring) is polled again."""
        if source == "wiring":
            self._failures[source] = 0 if ok else self._failures.get(source, 0) + 1
            return self.wiring_interval if ok else min(self.wiring_interval, WIRING_RETRY)
        if ok:
            for name in (("configs", "runs") if source in ("configs", "runs") else (source,)):
                self._failures[name] = 0
            return self.events_poll_interval if source == "events" else self.poll_interval
        count = self._failures.get(source, 0) + 1
        self._failures[source] = count
        base = FIRST_BACKOFF * (2 ** min(count - 1, 16))
        if throttled:
            base *= 2
        return min(MAX_BACKOFF, max(MIN_BACKOFF, base))

    def failures(self, source: str) -> int:
        """Failures of ``source`` in a row."""
        return self._failures.get(source, 0)
