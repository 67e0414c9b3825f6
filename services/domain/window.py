"""The cancel window and the phase of one maintenance run.

For a run that starts at ``T`` (docs/architecture.md, "Timeline and cancel window"):

* ``upcoming`` before the window opens at ``T - opens_before`` (default 40 min);
* ``cancellable`` from the open (inclusive) until the close (exclusive), where the close is
  the earlier of ``T - closes_before`` (default 10 min) and the pre-event's
  ``CancellationCutOffDateTime`` when one is known (Azure's docs say T-10, the sample event says
  T-1: we take the earlier, so we never offer a cancel Azure may refuse);
* ``locked`` from the close until ``T``;
* ``running`` from ``T`` until the run's end (without a known end a started run stays running);
* ``finished`` from the end on, or whenever the caller knows from the run's status that it
  ended or was cancelled.

A cutoff earlier than the open means the window never opens: the run goes straight from
``upcoming`` to ``locked`` at the cutoff (once the cutoff has passed no cancel will ever be
honoured, so calling it "upcoming" would mislead). The phases therefore never go backwards
as time moves forwards.

Pure: no I/O, no clock of its own; every ``now`` is passed in and must be timezone-aware.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class Phase(StrEnum):
    """Where a run stands in its timeline, in the order a run goes through them."""

    UPCOMING = "upcoming"
    CANCELLABLE = "cancellable"
    LOCKED = "locked"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(frozen=True)
class WindowRules:
    """The window offsets. This is the one place their defaults live (they are settings)."""

    opens_before: timedelta = timedelta(minutes=40)
    closes_before: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.closes_before < timedelta(0):
            raise ValueError(
                f"closes_before must not be negative (got {self.closes_before}): "
                "the cancel window cannot close after the run starts"
            )
        if self.opens_before < self.closes_before:
            raise ValueError(
                f"opens_before ({self.opens_before}) must be at least closes_before "
                f"({self.closes_before})"
            )


def _aware_utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} {value.isoformat()} is naive (a time zone is required)")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class RunWindow:
    """The timeline of one run, all times aware UTC. Build it with :func:`run_window`."""

    start: datetime
    opens_at: datetime
    closes_at: datetime
    end: datetime | None = None
    cutoff: datetime | None = None

    @property
    def ever_opens(self) -> bool:
        """False when the close falls at or before the open (a cutoff earlier than T-40)."""
        return self.opens_at < self.closes_at

    def phase(self, now: datetime, *, finished: bool = False) -> Phase:
        """The phase at ``now``; ``finished=True`` when the run's status says it ended
        (succeeded, failed or cancelled), whatever the clock says."""
        t = _aware_utc(now, "now")
        if finished or (self.end is not None and t >= self.end):
            return Phase.FINISHED
        if t >= self.start:
            return Phase.RUNNING
        if t >= self.closes_at:
            return Phase.LOCKED
        if t >= self.opens_at:
            return Phase.CANCELLABLE
        return Phase.UPCOMING

    def is_cancellable(self, now: datetime, *, finished: bool = False) -> bool:
        """True exactly when ``opens_at <= now < closes_at`` (and the run has not ended)."""
        return self.phase(now, finished=finished) is Phase.CANCELLABLE

    def seconds_to_start(self, now: datetime) -> int:
        """Whole seconds from ``now`` to the start, rounded down (negative once started)."""
        delta = self.start - _aware_utc(now, "now")
        return math.floor(delta.total_seconds())

    def boundaries(self) -> list[tuple[str, datetime]]:
        """Every moment the phase changes, in time order, with a short label."""
        marks: list[tuple[str, datetime]] = []
        if self.ever_opens:
            marks.append(("cancel opens", self.opens_at))
        marks.append(("cancel closes", self.closes_at))
        marks.append(("starts", self.start))
        if self.end is not None:
            marks.append(("ends", self.end))
        return marks

    def next_boundary(self, now: datetime) -> tuple[str, datetime] | None:
        """The first phase change strictly after ``now``, e.g. ``("cancel closes", t)``;
        None when nothing is left (ended, or running with no known end)."""
        t = _aware_utc(now, "now")
        for label, at in self.boundaries():
            if at > t:
                return label, at
        return None


def run_window(
    start: datetime,
    *,
    cutoff: datetime | None = None,
    end: datetime | None = None,
    rules: WindowRules = WindowRules(),  # frozen, so one shared default is safe
) -> RunWindow:
    """Build the window of a run starting at ``start``.

    ``cutoff`` is the pre-event's CancellationCutOffDateTime, ``end`` the run's end (window end
    or the time its status says it ended). All must be timezone-aware; they are stored in UTC.
    """
    start_utc = _aware_utc(start, "start")
    cutoff_utc = None if cutoff is None else _aware_utc(cutoff, "cutoff")
    end_utc = None if end is None else _aware_utc(end, "end")
    if end_utc is not None and end_utc < start_utc:
        raise ValueError(f"end {end_utc.isoformat()} is before start {start_utc.isoformat()}")
    closes_at = start_utc - rules.closes_before
    if cutoff_utc is not None and cutoff_utc < closes_at:
        closes_at = cutoff_utc
    return RunWindow(
        start=start_utc,
        opens_at=start_utc - rules.opens_before,
        closes_at=closes_at,
        end=end_utc,
        cutoff=cutoff_utc,
    )
