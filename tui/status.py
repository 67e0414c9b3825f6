"""What the status bar shows: each source's age, the Resource Graph quota, the queue, the
clock skew, read-only, pause and the last error, gathered from the state and the monitor."""

from __future__ import annotations

from datetime import timedelta

from services.azure.monitor import Monitor
from services.domain.clock import SystemClock, skew_is_large
from services.domain.dashboard import DashboardState
from widgets.statusbar import SourceAge, StatusData

#: The events source is stale after this long without an answer.
EVENTS_STALE = timedelta(seconds=60)


def status_data(state: DashboardState, monitor: Monitor | None, *, queue_configured: bool,
                poll_interval: timedelta, paused: bool,
                notice: str | None = None) -> StatusData:
    """The status bar's data now (``state.clock``); ``notice`` is a passing message."""
    now = state.clock.now()
    ages: dict[str, timedelta | None] = monitor.ages(now) if monitor else {}
    stale = max(poll_interval * 3, timedelta(seconds=60))
    sources = [SourceAge("configs", ages.get("configs"), stale),
               SourceAge("runs", ages.get("runs"), stale)]
    if queue_configured:
        sources.append(SourceAge("events", ages.get("events"), EVENTS_STALE))
    quota: int | None = None
    throttled: timedelta | None = None
    skew: timedelta | None = None
    if monitor is not None:
        governor = monitor.governor_state
        quota = governor.remaining
        if governor.throttled_until is not None:
            # The quota is counted in real time, whatever clock the dashboard shows.
            throttled = max(timedelta(0), governor.throttled_until - SystemClock().now())
        if monitor.skew is not None:
            skew = -monitor.skew  # the bar shows local minus server
    return StatusData(
        sources=tuple(sources) if monitor else (),
        quota_remaining=quota, throttled_for=throttled,
        queue_mode=state.queue_mode, queue_depth=state.queue_depth,
        queue_depth_capped=state.queue_capped, clock_skew=skew,
        skew_warning=skew is not None and skew_is_large(skew),
        read_only=state.read_only, paused=paused, last_error=state.last_error, notice=notice)
