"""Maintenance-window schedules: parse an Azure ``maintenanceWindow`` and list its occurrences.

A window is ``startDateTime`` and ``expirationDateTime`` ("YYYY-MM-DD hh:mm", wall time in
``timeZone``), ``duration`` ("HH:mm") and ``recurEvery`` (the grammar in docs/azure.md). This module
is pure: no I/O, no clock; callers pass the instant they care about.

Grammar (case-insensitive; spaces around commas are tolerated; ``n`` defaults to 1)::

    [n]Day(s)
    [n]Hour(s)
    [n]Week(s) [Monday,...,Sunday]
    [n]Month(s) [day1,...,day31]
    [n]Month(s) First|Second|Third|Fourth|Last <Weekday> [Offset-6..Offset6]

Semantics. Azure documents the grammar but not all of its meaning; where it is silent these are
*our* definitions, applied everywhere in aumwatch:

* Occurrences start at the wall-clock time of ``startDateTime`` in the window's zone.
* Intervals count from the start: day ``k*n`` after the start date; weeks are Monday-first
  weeks counted from the week that contains the start; months are counted from the start's month.
* ``Week`` without days means the start's weekday; ``Month`` without days or weekday means the
  start's day of month.
* ``Hour`` steps are elapsed hours from the start instant (they ignore DST: every occurrence is
  exactly ``k*n`` hours after the start).
* A ``dayN`` that a month does not have (day31 in April, day29 in a non-leap February) is skipped
  for that month, not moved.
* ``Offset`` is added in days to the n-th weekday and may cross into the next (or previous) month;
  the occurrence still belongs to the month of its n-th weekday.
* No occurrence starts before ``startDateTime`` or after ``expirationDateTime`` (an occurrence
  that starts exactly at the expiration is kept). Without an expiration the schedule never ends.
* A wall time that does not exist (the DST spring gap) moves forward by the gap (02:30 on the
  night clocks jump 02:00 -> 03:00 becomes 03:30); an ambiguous wall time (the autumn fold) takes
  its first instance. This is exactly what ``zoneinfo`` does for ``fold=0``.
* ``end = start + duration`` (elapsed time, so a window may end at a different wall time when it
  spans a DST change).
* Occurrences are strictly increasing. In the rare zone where a whole local day was skipped
  (Pacific/Apia, 2011-12-30) two dates can resolve to the same instant: it is yielded once.

Speed: the dashboard asks for the next run of thousands of configurations on every poll, so
:meth:`Schedule.occurrences` never walks from the start: it computes the period (day, week,
month, hour step) that contains the instant asked for and iterates from the one before it.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property, lru_cache
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from dateutil.relativedelta import relativedelta
from dateutil.relativedelta import weekdays as RD_WEEKDAYS
from tzlocal.windows_tz import win_tz

from services.domain.clock import ensure_utc

__all__ = [
    "DEFAULT_DURATION",
    "Occurrence",
    "Recurrence",
    "Schedule",
    "ScheduleError",
    "parse_recurrence",
    "parse_schedule",
    "parse_window",
    "resolve_zone",
]

DEFAULT_DURATION = "03:55"
# In-guest patching limits (docs/azure.md "Schedules"): reported as warnings, not errors, because
# other maintenance scopes have other limits and the dashboard must still show such windows.
IN_GUEST_MIN_DURATION = timedelta(hours=1, minutes=30)
IN_GUEST_MAX_DURATION = timedelta(hours=3, minutes=55)
IN_GUEST_MIN_INTERVAL = timedelta(hours=6)
# A bound on `n` so that no interval can overflow datetime arithmetic. Azure's own bound is
# undocumented (and much lower in practice).
MAX_INTERVAL = 9999

HOUR, DAY, WEEK, MONTH = "hour", "day", "week", "month"
WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAY_SHORT = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
ORDINAL_WORDS = {value: key for key, value in ORDINALS.items()}
MAX_OFFSET = 6
# The Gregorian calendar repeats every 400 years = 4800 months: a monthly day list that has no
# date in that many consecutive months never has one.
GREGORIAN_CYCLE_MONTHS = 4800

_UNIT_RE = re.compile(r"(\d+)?(hours?|days?|weeks?|months?)", re.IGNORECASE | re.ASCII)
_DAY_RE = re.compile(r"day([+-]?\d+)", re.IGNORECASE | re.ASCII)
_OFFSET_RE = re.compile(r"offset([+-]?\d+)", re.IGNORECASE | re.ASCII)
_COMMA_RE = re.compile(r"\s*,\s*")
_DATETIME_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?", re.ASCII)
_DURATION_RE = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", re.ASCII)


class ScheduleError(ValueError):
    """A maintenance window that cannot be understood; the message names the offending part.

    Messages quote the offending value; a multi-megabyte value (found by the reliability
    suite) is cut in the middle so the message keeps its start (the part) and its end (why)
    and stays one readable line."""

    MAX_LEN = 300

    def __init__(self, message: str) -> None:
        if len(message) > self.MAX_LEN:
            half = (self.MAX_LEN - 1) // 2
            message = message[:half] + "…" + message[-half:]
        super().__init__(message)


@dataclass(frozen=True)
class Occurrence:
    """One run of a maintenance window, as aware UTC datetimes."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Recurrence:
    """A parsed ``recurEvery`` expression.

    ``weekdays`` (0 = Monday) is used by weekly rules, ``month_days`` by monthly day lists,
    ``ordinal`` (1..4, -1 = last), ``weekday`` and ``offset`` by monthly weekday rules. Empty
    lists mean "the start's weekday / day of month" and are filled by :func:`parse_schedule`.
    """

    unit: str
    interval: int = 1
    weekdays: tuple[int, ...] = ()
    month_days: tuple[int, ...] = ()
    ordinal: int | None = None
    weekday: int | None = None
    offset: int = 0


@dataclass(frozen=True)
class Schedule:
    """A parsed maintenance window. Build it with :func:`parse_schedule` or :func:`parse_window`.

    ``start_local`` / ``expiration_local`` are naive wall times in ``zone``; ``start`` /
    ``expiration`` the same instants in UTC (``expiration`` None: never expires).
    """

    time_zone: str
    zone: ZoneInfo
    start_local: datetime
    start: datetime
    duration: timedelta
    recurrence: Recurrence
    recur_every: str
    expiration_local: datetime | None = None
    expiration: datetime | None = None

    # ----------------------------------------------------------------- occurrences

    def occurrences(self, after: datetime) -> Iterator[Occurrence]:
        """Occurrences whose start is at or after ``after`` (aware), increasing, lazily.

        Stops at the expiration; runs forever (well, to year 9999) otherwise.
        """
        lower = max(ensure_utc(after), self.start)
        if self._never_occurs or (self.expiration is not None and lower > self.expiration):
            return
        try:
            period = max(0, self._period_index(lower) - 1)
        except (OverflowError, ValueError):  # `after` beyond what datetime can express locally
            return
        last: datetime | None = None
        while True:
            try:
                starts = self._period_starts(period)
            except (OverflowError, ValueError):  # ran off the end of the calendar (year 9999)
                return
            for start in starts:
                if self.expiration is not None and start > self.expiration:
                    return
                if start < lower or (last is not None and start <= last):
                    continue
                if start > self._latest_start:
                    return
                last = start
                yield Occurrence(start, start + self.duration)
            period += 1

    def next(self, after: datetime, count: int = 1) -> list[Occurrence]:
        """The first ``count`` occurrences starting at or after ``after``."""
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        result: list[Occurrence] = []
        if count == 0:
            return result
        for occurrence in self.occurrences(after):
            result.append(occurrence)
            if len(result) >= count:
                break
        return result

    def previous(self, before: datetime) -> Occurrence | None:
        """The latest occurrence starting strictly before ``before`` (the current/recent run)."""
        upper = ensure_utc(before)
        if self.expiration is not None and upper > self.expiration:
            # Anything up to and including the expiration counts.
            upper = self.expiration + timedelta(microseconds=1)
        if upper <= self.start or self._never_occurs:
            return None
        try:
            # +1: a negative offset or a DST shift can put the next period's run before `upper`.
            period = self._period_index(upper) + 1
        except (OverflowError, ValueError):
            return None
        while period >= 0:
            try:
                starts = self._period_starts(period)
            except (OverflowError, ValueError):
                starts = []
            candidates = [s for s in starts if self.start <= s < upper and s <= self._latest_start]
            if candidates:
                start = max(candidates)
                return Occurrence(start, start + self.duration)
            period -= 1
        return None

    # ----------------------------------------------------------------- descriptions

    @property
    def interval_hint(self) -> timedelta:
        """The shortest nominal gap between two occurrences (ignores DST; for warnings and UI)."""
        rule = self.recurrence
        n = rule.interval
        if rule.unit == HOUR:
            return timedelta(hours=n)
        if rule.unit == DAY:
            return timedelta(days=n)
        if rule.unit == WEEK:
            return timedelta(days=_min_cyclic_gap(rule.weekdays, 7 * n))
        if rule.month_days:
            days = rule.month_days
            # Across the month boundary the gap is shortest in the shortest month that still
            # has the last listed day.
            shortest_month = max(28, days[-1]) + 28 * (n - 1)
            return timedelta(days=_min_cyclic_gap(days, shortest_month))
        return timedelta(days=28 * n)  # n-th weekdays of consecutive months are 28 or 35 apart

    def warnings(self) -> list[str]:
        """What breaks Azure's in-guest patching limits (1:30..3:55 window, repeat >= 6 h)."""
        found: list[str] = []
        duration = _format_hours_minutes(self.duration)
        if not IN_GUEST_MIN_DURATION <= self.duration <= IN_GUEST_MAX_DURATION:
            found.append(f"duration {duration} is outside the in-guest patching limits 1:30..3:55")
        interval = self.interval_hint
        if interval < IN_GUEST_MIN_INTERVAL:
            found.append(
                f"repeats every {_format_timedelta(interval)}; in-guest patching needs at least "
                "6 hours between runs"
            )
        if self.duration > interval:
            found.append(
                f"duration {duration} is longer than the repeat interval "
                f"{_format_timedelta(interval)}: windows overlap"
            )
        return found

    def describe(self) -> str:
        """The recurrence in words, e.g. ``every 2 weeks on Mon, Thu at 22:00``."""
        rule = self.recurrence
        n = rule.interval
        at = _format_wall_time(self.start_local.time())
        every = f"every {rule.unit}" if n == 1 else f"every {n} {rule.unit}s"
        if rule.unit == HOUR:
            return f"{every} from {self.start_local:%Y-%m-%d} {at}"
        if rule.unit == DAY:
            return f"{every} at {at}"
        if rule.unit == WEEK:
            days = ", ".join(WEEKDAY_SHORT[d] for d in rule.weekdays)
            return f"{every} on {days} at {at}"
        if rule.month_days:
            days = ", ".join(str(d) for d in rule.month_days)
            word = "day" if len(rule.month_days) == 1 else "days"
            return f"{every} on {word} {days} at {at}"
        assert rule.ordinal is not None and rule.weekday is not None
        anchor = f"the {ORDINAL_WORDS[rule.ordinal]} {WEEKDAY_SHORT[rule.weekday]}"
        if rule.offset:
            days_word = "day" if abs(rule.offset) == 1 else "days"
            where = "after" if rule.offset > 0 else "before"
            return f"{every} {abs(rule.offset)} {days_word} {where} {anchor} at {at}"
        return f"{every} on {anchor} at {at}"

    # ----------------------------------------------------------------- internals

    def _resolve(self, wall: datetime) -> datetime:
        """Wall time in the zone -> UTC; fold=0 gives "gap moves forward, fold takes first"."""
        return wall.replace(tzinfo=self.zone).astimezone(UTC)

    def _period_index(self, instant: datetime) -> int:
        """Index of the period (0 = the start's) whose local span contains ``instant``."""
        rule = self.recurrence
        n = rule.interval
        if rule.unit == HOUR:
            return math.floor((instant - self.start) / timedelta(hours=n))
        local = instant.astimezone(self.zone).date()
        start = self.start_local.date()
        if rule.unit == DAY:
            return (local - start).days // n
        if rule.unit == WEEK:
            return (_monday(local) - _monday(start)).days // (7 * n)
        return ((local.year - start.year) * 12 + local.month - start.month) // n

    def _period_starts(self, period: int) -> list[datetime]:
        """UTC starts of the occurrences of one period, sorted, before any filtering."""
        rule = self.recurrence
        n = rule.interval
        if rule.unit == HOUR:
            return [self.start + timedelta(hours=period * n)]
        start = self.start_local.date()
        wall = self.start_local.time()
        if rule.unit == DAY:
            dates = [start + timedelta(days=period * n)]
        elif rule.unit == WEEK:
            monday = _monday(start) + timedelta(weeks=period * n)
            dates = [monday + timedelta(days=d) for d in rule.weekdays]
        else:
            # Plain month counting (relativedelta is 10x slower here, and this runs per poll).
            year, month0 = divmod(start.year * 12 + start.month - 1 + period * n, 12)
            first = date(year, month0 + 1, 1)
            if rule.month_days:
                length = calendar.monthrange(first.year, first.month)[1]
                dates = [first.replace(day=d) for d in rule.month_days if d <= length]
            else:
                assert rule.ordinal is not None and rule.weekday is not None
                if rule.ordinal > 0:
                    anchor = first + relativedelta(weekday=RD_WEEKDAYS[rule.weekday](rule.ordinal))
                else:
                    anchor = first + relativedelta(day=31, weekday=RD_WEEKDAYS[rule.weekday](-1))
                dates = [anchor + timedelta(days=rule.offset)]
        return [self._resolve(datetime.combine(d, wall)) for d in dates]

    @cached_property
    def _latest_start(self) -> datetime:
        """The last start whose window still ends before datetime's year-9999 limit."""
        return datetime.max.replace(tzinfo=UTC) - self.duration

    @cached_property
    def _never_occurs(self) -> bool:
        """True for a monthly day list no visited month has (e.g. ``12Months day30`` from Feb)."""
        rule = self.recurrence
        if rule.unit != MONTH or not rule.month_days or rule.month_days[0] <= 28:
            return False
        first_day = rule.month_days[0]
        start = self.start_local.date()
        # The months visited repeat (with their lengths) after this many periods.
        cycle = GREGORIAN_CYCLE_MONTHS // math.gcd(rule.interval, GREGORIAN_CYCLE_MONTHS)
        for period in range(cycle):
            months = start.month - 1 + period * rule.interval
            year, month = start.year + months // 12, months % 12 + 1
            if first_day <= calendar.monthrange(year % 400 + 2000, month)[1]:
                return False
        return True


# --------------------------------------------------------------------------- parsing


def parse_schedule(
    start_date_time: str,
    time_zone: str,
    recur_every: str,
    duration: str | None = DEFAULT_DURATION,
    expiration_date_time: str | None = None,
) -> Schedule:
    """Parse the parts of a maintenance window into a :class:`Schedule`.

    ``duration`` None means Azure's default 03:55; ``expiration_date_time`` None (or empty)
    means the window never expires. Raises :class:`ScheduleError` naming the bad part.
    Results are cached: the same window parsed on every poll costs a dictionary lookup.
    """
    return _parse_schedule_cached(
        start_date_time, time_zone, recur_every, duration, expiration_date_time or None
    )


@lru_cache(maxsize=16384)
def _parse_schedule_cached(
    start_date_time: str,
    time_zone: str,
    recur_every: str,
    duration: str | None,
    expiration_date_time: str | None,
) -> Schedule:
    zone = resolve_zone(time_zone)
    start_local = _parse_wall_time("startDateTime", start_date_time)
    window = _parse_duration(DEFAULT_DURATION if duration is None else duration)
    rule = parse_recurrence(recur_every)
    # Fill the defaults that depend on the start (see the module docstring).
    if rule.unit == WEEK and not rule.weekdays:
        rule = Recurrence(WEEK, rule.interval, weekdays=(start_local.weekday(),))
    elif rule.unit == MONTH and not rule.month_days and rule.ordinal is None:
        rule = Recurrence(MONTH, rule.interval, month_days=(start_local.day,))
    try:
        start = start_local.replace(tzinfo=zone).astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ScheduleError(f"startDateTime {start_date_time!r}: out of range") from exc
    expiration_local: datetime | None = None
    expiration: datetime | None = None
    if expiration_date_time is not None:
        expiration_local = _parse_wall_time("expirationDateTime", expiration_date_time)
        try:
            expiration = expiration_local.replace(tzinfo=zone).astimezone(UTC)
        except (OverflowError, ValueError):
            expiration = None  # e.g. Azure's 9999-12-31 23:59:59 west of UTC: never expires
        if expiration is not None and expiration < start:
            raise ScheduleError(
                f"expirationDateTime {expiration_date_time!r} is before startDateTime "
                f"{start_date_time!r}"
            )
    return Schedule(
        time_zone=time_zone,
        zone=zone,
        start_local=start_local,
        start=start,
        duration=window,
        recurrence=rule,
        recur_every=recur_every,
        expiration_local=expiration_local,
        expiration=expiration,
    )


def parse_window(properties: Mapping[str, Any]) -> Schedule:
    """Parse an ARM/Resource Graph ``maintenanceWindow`` object (keys case-insensitive).

    The configuration's whole ``properties`` object is accepted too (its ``maintenanceWindow``
    is used). Missing ``duration`` means 03:55, missing ``expirationDateTime`` never expires.
    """
    if not isinstance(properties, Mapping):
        kind = type(properties).__name__
        raise ScheduleError(f"maintenanceWindow: expected an object, got {kind}")
    keys = {str(key).lower(): value for key, value in properties.items()}
    nested = keys.get("maintenancewindow")
    if isinstance(nested, Mapping):
        keys = {str(key).lower(): value for key, value in nested.items()}

    def text(name: str, required: bool) -> str | None:
        value = keys.get(name.lower())
        if value is None or value == "":
            if required:
                raise ScheduleError(f"maintenanceWindow: {name} is missing")
            return None
        if not isinstance(value, str):
            raise ScheduleError(f"{name}: expected a string, got {type(value).__name__}")
        return value

    start = text("startDateTime", True)
    zone = text("timeZone", True)
    recur = text("recurEvery", True)
    assert start is not None and zone is not None and recur is not None
    return parse_schedule(
        start, zone, recur, text("duration", False), text("expirationDateTime", False)
    )


def parse_recurrence(recur_every: str) -> Recurrence:
    """Parse a ``recurEvery`` expression (grammar in the module docstring).

    Weekly/monthly defaults that depend on the start are left empty; :func:`parse_schedule`
    fills them.
    """

    def fail(why: str) -> ScheduleError:
        return ScheduleError(f"recurEvery {recur_every!r}: {why}")

    if not isinstance(recur_every, str) or not recur_every.strip():
        raise ScheduleError(f"recurEvery {recur_every!r}: empty")
    tokens = _COMMA_RE.sub(",", recur_every.strip()).split()
    # Tolerate "3 Days" as well as "3Days".
    if len(tokens) >= 2 and re.fullmatch(r"[0-9]+", tokens[0]):
        tokens = [tokens[0] + tokens[1], *tokens[2:]]
    match = _UNIT_RE.fullmatch(tokens[0])
    if match is None:
        raise fail(f"unknown repeat unit {tokens[0]!r} (expected Hour, Day, Week or Month)")
    interval = int(match.group(1)) if match.group(1) else 1
    if not 1 <= interval <= MAX_INTERVAL:
        raise fail(f"repeat count {match.group(1)} is outside 1..{MAX_INTERVAL}")
    unit = match.group(2).lower().rstrip("s")
    rest = tokens[1:]

    if unit in (HOUR, DAY):
        if rest:
            raise fail(f"unexpected {rest[0]!r} after {tokens[0]!r}")
        return Recurrence(unit, interval)

    if unit == WEEK:
        if len(rest) > 1:
            raise fail(f"unexpected {rest[1]!r} (separate weekdays with commas)")
        days = sorted({_weekday(item, fail) for item in _items(rest[0], fail)}) if rest else []
        return Recurrence(WEEK, interval, weekdays=tuple(days))

    # Month.
    if not rest:
        return Recurrence(MONTH, interval)
    if rest[0].lower().startswith("day"):
        if len(rest) > 1:
            raise fail(f"unexpected {rest[1]!r} (separate days with commas)")
        month_days = sorted({_month_day(item, fail) for item in _items(rest[0], fail)})
        return Recurrence(MONTH, interval, month_days=tuple(month_days))
    ordinal = ORDINALS.get(rest[0].lower())
    if ordinal is None:
        raise fail(
            f"unknown token {rest[0]!r} (expected dayN or First, Second, Third, Fourth, Last)"
        )
    if len(rest) < 2:
        raise fail(f"missing weekday after {rest[0]!r}")
    weekday = _weekday(rest[1], fail)
    offset = 0
    if len(rest) >= 3:
        offset_match = _OFFSET_RE.fullmatch(rest[2])
        if offset_match is None:
            raise fail(f"unknown token {rest[2]!r} (expected Offset-6..Offset6)")
        offset = int(offset_match.group(1))
        if not -MAX_OFFSET <= offset <= MAX_OFFSET:
            raise fail(f"{rest[2]} is outside Offset-6..Offset6")
    if len(rest) > 3:
        raise fail(f"unexpected {rest[3]!r}")
    return Recurrence(MONTH, interval, ordinal=ordinal, weekday=weekday, offset=offset)


def resolve_zone(name: str) -> ZoneInfo:
    """A Windows zone name (all of CLDR's) or an IANA name -> ZoneInfo; case-insensitive."""
    if not isinstance(name, str) or not name.strip():
        raise ScheduleError(f"timeZone {name!r}: empty")
    return _resolve_zone_cached(name.strip())


@lru_cache(maxsize=1024)
def _resolve_zone_cached(name: str) -> ZoneInfo:
    windows = _windows_zones().get(name.lower())
    candidates = [windows] if windows else [name]
    if not windows:
        # Exact IANA keys first: listing every zone touches the disk, so only when needed.
        candidates.append(_iana_zones().get(name.lower()) or "")
    for key in candidates:
        if not key:
            continue
        try:
            return ZoneInfo(key)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            continue
    raise ScheduleError(f"timeZone {name!r}: unknown time zone (expected a Windows or IANA name)")


@lru_cache(maxsize=1)
def _windows_zones() -> dict[str, str]:
    return {windows.lower(): iana for windows, iana in win_tz.items()}


@lru_cache(maxsize=1)
def _iana_zones() -> dict[str, str]:
    return {key.lower(): key for key in available_timezones()}


def _parse_wall_time(part: str, value: str) -> datetime:
    if not isinstance(value, str):
        raise ScheduleError(f'{part} {value!r}: expected a string "YYYY-MM-DD hh:mm"')
    match = _DATETIME_RE.fullmatch(value.strip())
    if match is None:
        raise ScheduleError(f'{part} {value!r}: expected "YYYY-MM-DD hh:mm"')
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise ScheduleError(f"{part} {value!r}: {exc}") from exc


def _parse_duration(value: str) -> timedelta:
    match = _DURATION_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ScheduleError(f'duration {value!r}: expected "HH:mm"')
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    if minutes > 59 or seconds > 59:
        raise ScheduleError(f"duration {value!r}: minutes and seconds must be 0..59")
    result = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if result <= timedelta(0):
        raise ScheduleError(f"duration {value!r}: must be longer than zero")
    return result


def _items(token: str, fail: Any) -> list[str]:
    items = token.split(",")
    if any(not item for item in items):
        raise fail(f"empty item in {token!r}")
    return items


def _weekday(token: str, fail: Any) -> int:
    try:
        return WEEKDAY_NAMES.index(token.lower())
    except ValueError:
        raise fail(f"unknown weekday {token!r}") from None


def _month_day(token: str, fail: Any) -> int:
    match = _DAY_RE.fullmatch(token)
    if match is None:
        raise fail(f"unknown token {token!r} (expected day1..day31)")
    day = int(match.group(1))
    if not 1 <= day <= 31:
        raise fail(f"{token} is outside day1..day31")
    return day


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _min_cyclic_gap(positions: tuple[int, ...], cycle: int) -> int:
    """Shortest gap between sorted positions repeating every ``cycle``."""
    gaps = [b - a for a, b in pairwise(positions)]
    gaps.append(cycle - positions[-1] + positions[0])
    return min(gaps)


def _format_wall_time(value: time) -> str:
    return f"{value:%H:%M:%S}" if value.second else f"{value:%H:%M}"


def _format_hours_minutes(value: timedelta) -> str:
    hours, rest = divmod(int(value.total_seconds()), 3600)
    return f"{hours}:{rest // 60:02d}"


def _format_timedelta(value: timedelta) -> str:
    """``3:55``, ``2 h``, ``3 days``: short and unambiguous for warnings."""
    total = int(value.total_seconds())
    if total % 86400 == 0:
        days = total // 86400
        return f"{days} day" if days == 1 else f"{days} days"
    if total % 3600 == 0 and total < 86400:
        return f"{total // 3600} h"
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}"
