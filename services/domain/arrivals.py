"""When a maintenance event arrived, relative to its run, and whether that is unusual.

Pre-events are raised between T-40 and T-30 for a run starting at T (current docs; a 2023
revision said T-43 to T-38, one sample has T-35): no fixed minute is to be expected, so an
arrival is shown as it is (``T-35m``) and flagged only outside the documented range, which is
a setting. A post-event comes when installation ends, early or at the window end, and later
when machines overrun the window: it is shown relative to the scheduled end (``+4m``,
``-1h20m``) and flagged only when it claims to come before the run even started
(docs/azure.md, "Timeline of one run").

Pure: every time is passed in, aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.domain.runid import RunIdError, parse_run_id

#: The labels' arrivals are rounded to the minute; the flag uses the exact times.
_MINUTE = 60


#: How long after the latest documented arrival a missing pre-event is reported.
PRE_EVENT_GRACE = timedelta(minutes=5)


@dataclass(frozen=True)
class ArrivalRules:
    """The documented range of a pre-event's arrival, as offsets before the run's start."""

    pre_event_earliest: timedelta = timedelta(minutes=40)
    pre_event_latest: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        if self.pre_event_latest < timedelta(0):
            raise ValueError(f"pre_event_latest must not be negative (got "
                             f"{self.pre_event_latest})")
        if self.pre_event_earliest < self.pre_event_latest:
            raise ValueError(f"pre_event_earliest ({self.pre_event_earliest}) must be at least "
                             f"pre_event_latest ({self.pre_event_latest})")

    @property
    def missing_after(self) -> timedelta:
        """How long before the start a pre-event that has not arrived is reported missing:
        five minutes after the latest documented arrival (T-25 by default)."""
        return max(timedelta(0), self.pre_event_latest - PRE_EVENT_GRACE)

    def pre_event_range(self, start: datetime) -> tuple[datetime, datetime]:
        """When the pre-event of a run starting at ``start`` may arrive: (earliest, latest).
        The one rule for the event tail's flag and the timeline's expected slot."""
        return start - self.pre_event_earliest, start - self.pre_event_latest


def _minutes_text(seconds: float) -> str:
    """``35m``, ``1h05m``, ``2d`` for a non-negative number of seconds (nearest minute)."""
    minutes = round(seconds / _MINUTE)
    if minutes < 60:
        return f"{minutes}m"
    if minutes < 100 * 60:
        return f"{minutes // 60}h{minutes % 60:02d}m"
    return f"{minutes // (24 * 60)}d"


def _run_start(event: Any) -> datetime | None:
    start = getattr(event, "start", None)
    if isinstance(start, datetime):
        return start
    try:
        return parse_run_id(str(getattr(event, "correlation_id", "") or "")).start
    except RunIdError:
        return None


def arrival(event: Any, arrived_at: datetime, run_end: datetime | None = None,
            rules: ArrivalRules | None = None) -> tuple[str, bool]:
    """``(label, flagged)`` for a decoded event (:class:`services.domain.events.MaintenanceEvent`
    or anything with ``kind``, ``start``, ``end``, ``correlation_id``) that arrived at
    ``arrived_at``.

    A pre-event: ``T-35m`` (how long before the run's start it arrived; ``T+2m`` after it),
    flagged outside ``rules``' range. A post-event: ``+4m`` / ``-1h20m`` against ``run_end``
    (the scheduled end; None falls back on the event's own EndDateTime), flagged only when it
    arrived before the run's start. ``("", False)`` for other events or without the times.
    """
    rules = rules if rules is not None else ArrivalRules()
    kind = str(getattr(event, "kind", ""))
    start = _run_start(event)
    if kind == "pre" and start is not None:
        ahead = (start - arrived_at).total_seconds()
        label = f"T-{_minutes_text(ahead)}" if ahead >= 0 else f"T+{_minutes_text(-ahead)}"
        early, late = rules.pre_event_range(start)
        return label, not early <= arrived_at <= late
    if kind == "post":
        end = run_end if run_end is not None else getattr(event, "end", None)
        if not isinstance(end, datetime):
            return "", False
        after = (arrived_at - end).total_seconds()
        label = f"+{_minutes_text(after)}" if after >= 0 else f"-{_minutes_text(-after)}"
        return label, start is not None and arrived_at < start
    return "", False
