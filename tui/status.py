"""What the status bar shows: each source's age, the Resource Graph quota, the queue, the
clock skew, read-only, pause and the last error, all read from the state (the monitor's own
facts reach it in :class:`~tui.messages.StatusFetched` messages, never read here)."""

from __future__ import annotations

from datetime import timedelta

from services.domain.clock import SystemClock, skew_is_large
from services.domain.dashboard import DashboardState
from widgets.statusbar import SourceAge, StatusData

#: The events source is stale after this long without an answer.
EVENTS_STALE = timedelta(seconds=60)


def status_data(state: DashboardState, *, queue_configured: bool,
                poll_interval: timedelta, paused: bool) -> StatusData:
    """The status bar's data now (``state.clock``). Without a monitor's facts yet
    (``state.monitor_status`` None) no source is listed."""
    now = state.clock.now()
    facts = state.monitor_status
    stale = max(poll_interval * 3, timedelta(seconds=60))
    sources: list[SourceAge] = []
    quota: int | None = None
    throttled: timedelta | None = None
    skew: timedelta | None = None
    if facts is not None:
        sources = [SourceAge("configs", facts.age("configs", now), stale),
                   SourceAge("runs", facts.age("runs", now), stale)]
        if queue_configured:
            sources.append(SourceAge("events", facts.age("events", now), EVENTS_STALE))
        quota = facts.quota_remaining
        if facts.throttled_until is not None:
            # The quota is counted in real time, whatever clock the dashboard shows.
            throttled = max(timedelta(0), facts.throttled_until - SystemClock().now())
        if facts.skew is not None:
            skew = -facts.skew  # the bar shows local minus server
    return StatusData(
        sources=tuple(sources),
        quota_remaining=quota, throttled_for=throttled,
        queue_mode=state.queue_mode, queue_depth=state.queue_depth,
        queue_depth_capped=state.queue_capped, clock_skew=skew,
        skew_warning=skew is not None and skew_is_large(skew),
        read_only=state.read_only, paused=paused, last_error=state.last_error,
        notice=state.notice(now))
