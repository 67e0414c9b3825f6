"""The one source of "now" in aumwatch.

Every rule that depends on the current time takes a :class:`Clock`. Tests and the stand-in
move it; nothing else calls ``datetime.now()``. A clock may carry a measured skew (server time
minus local time, from an HTTP ``Date`` header) that is added to what it reports.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, overload

#: Clock skew (local against the server's ``Date``) from which aumwatch warns: beyond it a
#: skewed clock moves the cancel window noticeably (its edges are minutes apart). The doctor
#: and the status bar both judge by :func:`skew_is_large` (docs/architecture.md "Timeline
#: and cancel window").
SKEW_WARNING = timedelta(seconds=5)


def skew_is_large(skew: timedelta) -> bool:
    """True when ``skew`` (either sign) is worth a warning: ``SKEW_WARNING`` or more."""
    return abs(skew) >= SKEW_WARNING


class Clock(Protocol):
    """Anything that tells the current time as an aware UTC datetime."""

    def now(self) -> datetime: ...


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; naive values are refused."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} (a time zone is required)")
    return value.astimezone(UTC)


@dataclass
class SystemClock:
    """Wall-clock time, optionally corrected by a measured skew against the server."""

    skew: timedelta = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.skew


@dataclass
class ManualClock:
    """A clock that only moves when told to (tests)."""

    current: datetime

    def __post_init__(self) -> None:
        self.current = ensure_utc(self.current)

    def now(self) -> datetime:
        return self.current

    def set(self, value: datetime) -> None:
        self.current = ensure_utc(value)

    def advance(self, delta: timedelta) -> None:
        self.current = self.current + delta


@dataclass
class ScaledClock:
    """Real time, shifted and optionally sped up (the stand-in's scenario clock).

    ``now = origin + offset + (elapsed real seconds since creation) * speed``. Thread-safe:
    the offset can be moved while other threads read it.
    """

    speed: float = 1.0
    offset: timedelta = timedelta(0)
    _origin_wall: datetime = field(default_factory=lambda: datetime.now(UTC))
    _origin_mono: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def now(self) -> datetime:
        with self._lock:
            elapsed = time.monotonic() - self._origin_mono
            return self._origin_wall + self.offset + timedelta(seconds=elapsed * self.speed)

    def shift(self, delta: timedelta) -> None:
        """Move the clock by ``delta`` (forwards or backwards)."""
        with self._lock:
            self.offset += delta

    def set(self, value: datetime) -> None:
        """Make the clock read ``value`` now; it keeps running from there."""
        target = ensure_utc(value)
        with self._lock:
            elapsed = time.monotonic() - self._origin_mono
            self.offset = target - self._origin_wall - timedelta(seconds=elapsed * self.speed)


@overload
def iso_z(value: datetime, *, fraction: bool = False) -> str: ...
@overload
def iso_z(value: None, *, fraction: bool = False) -> None: ...


def iso_z(value: datetime | None, *, fraction: bool = False) -> str | None:
    """UTC ISO 8601 with ``Z``: to the second (the CLI contract, ARM's style), or, with
    ``fraction``, keeping fractions of a second when there are any (event times keep
    theirs). None stays None."""
    if value is None:
        return None
    utc = ensure_utc(value)
    if fraction:
        return utc.isoformat().replace("+00:00", "Z")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
