"""Schedules: the recurEvery grammar, zones and DST, month ends, expiration, and the jump
arithmetic checked against a naive day-by-day reference."""

from __future__ import annotations

import bisect
import calendar
import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tzlocal.windows_tz import win_tz

from services.domain.schedule import (
    Occurrence,
    Recurrence,
    Schedule,
    ScheduleError,
    parse_recurrence,
    parse_schedule,
    parse_window,
    resolve_zone,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type,misc]


def starts(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    return [o.start for o in schedule.next(after, count)]


def wall_times(schedule: Schedule, after: datetime, count: int) -> list[str]:
    """Occurrence starts as local wall times, the easiest form to check against a calendar."""
    return [
        f"{o.start.astimezone(schedule.zone):%Y-%m-%d %H:%M}" for o in schedule.next(after, count)
    ]


# --------------------------------------------------------------------------- grammar


class TestGrammarForms:
    def test_day(self) -> None:
        s = parse_schedule("2026-03-01 22:00", "UTC", "Day")
        assert starts(s, utc(2026, 3, 1), 3) == [
            utc(2026, 3, 1, 22),
            utc(2026, 3, 2, 22),
            utc(2026, 3, 3, 22),
        ]

    def test_n_days_counts_from_the_start_date(self) -> None:
        s = parse_schedule("2026-03-01 22:00", "UTC", "3Days")
        assert starts(s, utc(2026, 3, 2), 3) == [
            utc(2026, 3, 4, 22),
            utc(2026, 3, 7, 22),
            utc(2026, 3, 10, 22),
        ]

    def test_hours_are_elapsed_hours_even_across_dst(self) -> None:
        # 2026-03-29 is the spring-forward night in Berlin: the steps stay 6 h apart in UTC.
        s = parse_schedule("2026-03-28 22:00", "W. Europe Standard Time", "6Hours")
        got = starts(s, s.start, 4)
        assert got[0] == utc(2026, 3, 28, 21)
        assert [b - a for a, b in itertools.pairwise(got)] == [timedelta(hours=6)] * 3
        assert parse_recurrence("Hour") == Recurrence("hour", 1)

    def test_week_with_days(self) -> None:
        # 2026-03-04 is a Wednesday.
        s = parse_schedule("2026-03-04 22:00", "UTC", "Week Saturday,Sunday")
        assert wall_times(s, s.start, 3) == [
            "2026-03-07 22:00",
            "2026-03-08 22:00",
            "2026-03-14 22:00",
        ]

    def test_n_weeks_count_monday_first_weeks_from_the_starts_week(self) -> None:
        # Start Wednesday 2026-03-04: its week (from Monday 03-02) is week 0, so Thursday 03-05
        # is in; the next run is in week 2 (Monday 03-16).
        s = parse_schedule("2026-03-04 22:00", "UTC", "2Weeks Monday,Thursday")
        assert wall_times(s, s.start, 5) == [
            "2026-03-05 22:00",
            "2026-03-16 22:00",
            "2026-03-19 22:00",
            "2026-03-30 22:00",
            "2026-04-02 22:00",
        ]

    def test_week_without_days_means_the_starts_weekday(self) -> None:
        s = parse_schedule("2026-03-04 22:00", "UTC", "Week")
        assert s.recurrence.weekdays == (2,)
        assert wall_times(s, s.start, 2) == ["2026-03-04 22:00", "2026-03-11 22:00"]

    def test_month_day_list(self) -> None:
        s = parse_schedule("2026-03-01 22:00", "UTC", "Month day23,day24")
        assert wall_times(s, s.start, 4) == [
            "2026-03-23 22:00",
            "2026-03-24 22:00",
            "2026-04-23 22:00",
            "2026-04-24 22:00",
        ]

    def test_month_without_days_means_the_starts_day_of_month(self) -> None:
        s = parse_schedule("2026-03-10 22:00", "UTC", "2Months")
        assert s.recurrence.month_days == (10,)
        assert wall_times(s, s.start, 3) == [
            "2026-03-10 22:00",
            "2026-05-10 22:00",
            "2026-07-10 22:00",
        ]

    def test_month_last_weekday(self) -> None:
        s = parse_schedule("2026-03-01 22:00", "UTC", "Month Last Sunday")
        assert wall_times(s, s.start, 3) == [
            "2026-03-29 22:00",
            "2026-04-26 22:00",
            "2026-05-31 22:00",
        ]

    def test_month_nth_weekday_with_offset_is_the_thursday_after_patch_tuesday(self) -> None:
        s = parse_schedule(
            "2026-03-01 22:00", "W. Europe Standard Time", "Month Second Tuesday Offset3"
        )
        # Patch Tuesdays 2026: 03-10, 04-14, 05-12. 22:00 CET = 21:00 UTC, CEST = 20:00 UTC.
        assert starts(s, utc(2026, 3, 1), 3) == [
            utc(2026, 3, 13, 21),
            utc(2026, 4, 17, 20),
            utc(2026, 5, 15, 20),
        ]

    def test_every_two_months_first_monday(self) -> None:
        s = parse_schedule("2026-01-01 03:00", "UTC", "2Months First Monday")
        assert wall_times(s, s.start, 3) == [
            "2026-01-05 03:00",
            "2026-03-02 03:00",
            "2026-05-04 03:00",
        ]

    @pytest.mark.parametrize(
        "ordinal,expected", [("First", 1), ("Second", 2), ("Third", 3), ("Fourth", 4), ("Last", -1)]
    )
    def test_every_ordinal(self, ordinal: str, expected: int) -> None:
        assert parse_recurrence(f"Month {ordinal} Friday").ordinal == expected

    def test_offset_may_cross_into_the_next_month(self) -> None:
        # Last Friday of January 2026 is 01-30; +6 days is 02-05.
        s = parse_schedule("2026-01-01 22:00", "UTC", "Month Last Friday Offset6")
        assert wall_times(s, s.start, 2) == ["2026-02-05 22:00", "2026-03-05 22:00"]

    def test_a_run_pushed_into_the_next_month_is_found_from_that_month(self) -> None:
        s = parse_schedule("2026-01-01 22:00", "UTC", "Month Last Friday Offset6")
        assert wall_times(s, utc(2026, 2, 3), 1) == ["2026-02-05 22:00"]

    def test_negative_offset_may_cross_into_the_previous_month_and_never_before_start(self) -> None:
        # January's run (first Monday 01-05, -6 = 2025-12-30) is before the start: skipped.
        # February's (02-02 - 6 = 01-27) falls in January.
        s = parse_schedule("2026-01-01 22:00", "UTC", "Month First Monday Offset-6")
        assert wall_times(s, s.start, 2) == ["2026-01-27 22:00", "2026-02-24 22:00"]

    def test_seconds_in_start_are_tolerated_and_kept(self) -> None:
        s = parse_schedule("2026-03-01 22:00:30", "UTC", "Day")
        assert s.start == utc(2026, 3, 1, 22, 0, 30)


class TestGrammarTolerance:
    @pytest.mark.parametrize(
        "text,expected",
        [
            ("day", Recurrence("day", 1)),
            ("  DAYS ", Recurrence("day", 1)),
            ("3days", Recurrence("day", 3)),
            ("3 Days", Recurrence("day", 3)),
            ("2hours", Recurrence("hour", 2)),
            ("week saturday, sunday", Recurrence("week", 1, weekdays=(5, 6))),
            ("2WEEKS Monday ,Thursday", Recurrence("week", 2, weekdays=(0, 3))),
            ("Week Sunday,Monday,Sunday", Recurrence("week", 1, weekdays=(0, 6))),
            ("month DAY24, Day23", Recurrence("month", 1, month_days=(23, 24))),
            ("months day1", Recurrence("month", 1, month_days=(1,))),
            (
                "month second TUESDAY offset3",
                Recurrence("month", 1, ordinal=2, weekday=1, offset=3),
            ),
            (
                "Month Last Sunday Offset-2",
                Recurrence("month", 1, ordinal=-1, weekday=6, offset=-2),
            ),
            ("Month First Monday Offset+1", Recurrence("month", 1, ordinal=1, weekday=0, offset=1)),
            ("Month First Monday Offset0", Recurrence("month", 1, ordinal=1, weekday=0, offset=0)),
        ],
    )
    def test_case_spaces_and_plurals(self, text: str, expected: Recurrence) -> None:
        assert parse_recurrence(text) == expected


class TestInvalidInput:
    @pytest.mark.parametrize(
        "recur,named",
        [
            ("Fortnight", "Fortnight"),
            ("", "recurEvery"),
            ("0Days", "repeat count 0"),
            ("Day Monday", "Monday"),
            ("Week Funday", "Funday"),
            ("Week Monday Tuesday", "Tuesday"),
            ("Week Monday,,Tuesday", "empty item"),
            ("Month day0", "day0"),
            ("Month day32", "day32"),
            ("Month dayX", "dayX"),
            ("Month day-1", "day-1"),
            ("Month Fifth Monday", "Fifth"),
            ("Month Second", "missing weekday"),
            ("Month Second Tuesdai", "Tuesdai"),
            ("Month Second Tuesday Offset7", "Offset7"),
            ("Month Second Tuesday Offset-7", "Offset-7"),
            ("Month Second Tuesday Plus3", "Plus3"),
            ("Month Second Tuesday Offset1 extra", "extra"),
            ("Month Second Tuesday,Thursday", "Tuesday,Thursday"),
        ],
    )
    def test_bad_recurrence_names_the_part(self, recur: str, named: str) -> None:
        with pytest.raises(ScheduleError, match="recurEvery") as info:
            parse_schedule("2026-03-01 22:00", "UTC", recur)
        assert named in str(info.value)

    @pytest.mark.parametrize(
        "kwargs,named",
        [
            ({"time_zone": "Mars Standard Time"}, "Mars Standard Time"),
            ({"time_zone": ""}, "timeZone"),
            ({"time_zone": "../../etc/passwd"}, "timeZone"),
            ({"time_zone": "Europe"}, "timeZone"),
            ({"start_date_time": "2026/03/01 22:00"}, "startDateTime"),
            ({"start_date_time": "2026-03-01"}, "startDateTime"),
            ({"start_date_time": "2026-02-30 22:00"}, "startDateTime"),
            ({"start_date_time": "2026-03-01 25:00"}, "startDateTime"),
            ({"start_date_time": "01.03.2026 22:00"}, "startDateTime"),
            ({"expiration_date_time": "tomorrow"}, "expirationDateTime"),
            ({"expiration_date_time": "2026-02-01 00:00"}, "expirationDateTime"),
            ({"duration": "3h"}, "duration"),
            ({"duration": "03:75"}, "duration"),
            ({"duration": "00:00"}, "duration"),
            ({"duration": "-1:00"}, "duration"),
        ],
    )
    def test_bad_parts_name_the_part(self, kwargs: dict[str, str], named: str) -> None:
        args = {"start_date_time": "2026-03-01 22:00", "time_zone": "UTC", "recur_every": "Day"}
        args.update(kwargs)
        with pytest.raises(ScheduleError) as info:
            parse_schedule(**args)
        assert named in str(info.value)

    def test_schedule_error_is_a_value_error(self) -> None:
        assert issubclass(ScheduleError, ValueError)

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=40))
    def test_any_text_raises_only_schedule_error(self, text: str) -> None:
        try:
            parse_recurrence(text)
        except ScheduleError:
            pass

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=25), st.text(max_size=12))
    def test_any_date_or_duration_raises_only_schedule_error(
        self, when: str, duration: str
    ) -> None:
        try:
            parse_schedule(when, "UTC", "Day", duration)
        except ScheduleError:
            pass


# --------------------------------------------------------------------------- zones and DST


class TestZones:
    @pytest.mark.parametrize(
        "name,key",
        [
            ("W. Europe Standard Time", "Europe/Berlin"),
            ("Pacific Standard Time", "America/Los_Angeles"),
            ("pacific standard time", "America/Los_Angeles"),
            ("UTC", "Etc/UTC"),
            ("Europe/Berlin", "Europe/Berlin"),
            ("europe/berlin", "Europe/Berlin"),
            ("Asia/Tokyo", "Asia/Tokyo"),
        ],
    )
    def test_windows_and_iana_names(self, name: str, key: str) -> None:
        assert resolve_zone(name).key == key

    def test_every_cldr_windows_name_resolves(self) -> None:
        for name, key in win_tz.items():
            assert resolve_zone(name) == ZoneInfo(key), name

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=30))
    def test_any_zone_text_gives_a_zone_or_schedule_error(self, name: str) -> None:
        try:
            assert isinstance(resolve_zone(name), ZoneInfo)
        except ScheduleError:
            pass

    def test_unknown_zone(self) -> None:
        with pytest.raises(ScheduleError, match="Nowhere/Special"):
            resolve_zone("Nowhere/Special")


class TestDst:
    def test_berlin_spring_gap_moves_forward_by_the_gap(self) -> None:
        # 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 does not exist and becomes 03:30 CEST.
        s = parse_schedule("2026-03-27 02:30", "W. Europe Standard Time", "Day")
        assert starts(s, s.start, 4) == [
            utc(2026, 3, 27, 1, 30),  # 02:30 CET
            utc(2026, 3, 28, 1, 30),
            utc(2026, 3, 29, 1, 30),  # 03:30 CEST
            utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        ]
        assert wall_times(s, utc(2026, 3, 29), 1) == ["2026-03-29 03:30"]

    def test_berlin_autumn_fold_takes_the_first_instance(self) -> None:
        # 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice; the first is CEST (00:30 UTC).
        s = parse_schedule("2026-10-24 02:30", "W. Europe Standard Time", "Day")
        assert starts(s, s.start, 3) == [
            utc(2026, 10, 24, 0, 30),
            utc(2026, 10, 25, 0, 30),
            utc(2026, 10, 26, 1, 30),
        ]

    def test_pacific_spring_gap_and_autumn_fold(self) -> None:
        # 2026-03-08 02:00 PST -> 03:00 PDT; 2026-11-01 02:00 PDT -> 01:00 PST.
        gap = parse_schedule("2026-03-07 02:30", "Pacific Standard Time", "Day")
        assert starts(gap, gap.start, 3) == [
            utc(2026, 3, 7, 10, 30),
            utc(2026, 3, 8, 10, 30),
            utc(2026, 3, 9, 9, 30),
        ]
        fold = parse_schedule("2026-10-31 01:30", "Pacific Standard Time", "Day")
        assert starts(fold, fold.start, 3) == [
            utc(2026, 10, 31, 8, 30),
            utc(2026, 11, 1, 8, 30),
            utc(2026, 11, 2, 9, 30),
        ]

    def test_start_itself_in_a_gap_moves_forward(self) -> None:
        s = parse_schedule("2026-03-29 02:15", "Europe/Berlin", "Week")
        assert s.start == utc(2026, 3, 29, 1, 15)  # 03:15 CEST

    def test_wall_time_is_kept_across_dst_so_utc_shifts(self) -> None:
        # Sunday 2026-03-29 is the first day of CEST.
        s = parse_schedule("2026-03-22 22:00", "W. Europe Standard Time", "Week Sunday")
        assert starts(s, s.start, 2) == [utc(2026, 3, 22, 21), utc(2026, 3, 29, 20)]

    def test_end_is_start_plus_elapsed_duration_across_a_change(self) -> None:
        s = parse_schedule("2026-03-29 01:00", "W. Europe Standard Time", "Day", "03:00")
        first = s.next(s.start)[0]
        assert first == Occurrence(utc(2026, 3, 29, 0), utc(2026, 3, 29, 3))
        assert f"{first.end.astimezone(s.zone):%H:%M}" == "05:00"  # not 04:00: an hour vanished


# --------------------------------------------------------------------------- calendars


class TestMonthEnds:
    def test_day31_is_skipped_in_shorter_months(self) -> None:
        s = parse_schedule("2026-01-01 22:00", "UTC", "Month day31")
        assert [w[:10] for w in wall_times(s, s.start, 5)] == [
            "2026-01-31",
            "2026-03-31",
            "2026-05-31",
            "2026-07-31",
            "2026-08-31",
        ]

    def test_month_without_days_from_the_31st_skips_short_months(self) -> None:
        s = parse_schedule("2026-01-31 22:00", "UTC", "Month")
        assert [w[:10] for w in wall_times(s, s.start, 2)] == ["2026-01-31", "2026-03-31"]

    def test_day29_in_february_of_leap_and_non_leap_years(self) -> None:
        s = parse_schedule("2027-01-01 22:00", "UTC", "Month day29")
        assert [w[:10] for w in wall_times(s, s.start, 2)] == ["2027-01-29", "2027-03-29"]
        assert [w[:10] for w in wall_times(s, utc(2028, 1, 30), 2)] == ["2028-02-29", "2028-03-29"]

    def test_yearly_leap_day_skips_non_leap_and_century_years(self) -> None:
        s = parse_schedule("2096-02-29 22:00", "UTC", "12Months day29")
        assert [w[:10] for w in wall_times(s, s.start, 2)] == ["2096-02-29", "2104-02-29"]

    def test_day_list_that_never_occurs_yields_nothing(self) -> None:
        s = parse_schedule("2026-02-01 22:00", "UTC", "12Months day30")
        assert s.next(s.start, 3) == []
        assert s.previous(utc(2030, 1, 1)) is None

    def test_last_weekday_in_short_and_long_months(self) -> None:
        s = parse_schedule("2026-02-01 10:00", "UTC", "Month Last Saturday")
        assert [w[:10] for w in wall_times(s, s.start, 3)] == [
            "2026-02-28",
            "2026-03-28",
            "2026-04-25",
        ]

    def test_fourth_weekday_exists_in_every_month(self) -> None:
        s = parse_schedule("2026-02-01 10:00", "UTC", "Month Fourth Sunday")
        assert [w[:10] for w in wall_times(s, s.start, 2)] == ["2026-02-22", "2026-03-22"]


# --------------------------------------------------------------------------- limits


class TestExpiration:
    def test_an_occurrence_at_the_expiration_is_kept_none_after(self) -> None:
        s = parse_schedule(
            "2026-03-01 22:00", "UTC", "Day", expiration_date_time="2026-03-03 22:00"
        )
        assert len(s.next(s.start, 10)) == 3
        shorter = parse_schedule(
            "2026-03-01 22:00", "UTC", "Day", expiration_date_time="2026-03-03 21:59"
        )
        assert len(shorter.next(shorter.start, 10)) == 2
        assert s.next(utc(2026, 3, 4), 1) == []

    def test_expiration_is_wall_time_in_the_zone(self) -> None:
        s = parse_schedule(
            "2026-03-01 22:00",
            "Pacific Standard Time",
            "Day",
            expiration_date_time="2026-03-02 22:00",
        )
        assert s.expiration == utc(2026, 3, 3, 6)

    def test_azure_default_expiration_never_expires(self) -> None:
        s = parse_schedule(
            "2026-03-01 22:00",
            "Pacific Standard Time",
            "Day",
            expiration_date_time="9999-12-31 23:59:59",
        )
        assert s.expiration is None
        assert len(s.next(utc(9999, 12, 1), 3)) == 3
        assert parse_schedule("2026-03-01 22:00", "UTC", "Day").expiration is None

    def test_iteration_stops_at_the_end_of_the_calendar(self) -> None:
        s = parse_schedule("2026-03-01 22:00", "UTC", "Day")
        assert s.next(utc(9999, 12, 30), 5) == [
            Occurrence(utc(9999, 12, 30, 22), utc(9999, 12, 31, 1, 55))
        ]

    def test_previous_at_the_end_of_the_calendar_skips_a_window_that_cannot_end(self) -> None:
        s = parse_schedule("2026-03-01 22:00", "UTC", "Day")
        assert s.previous(datetime.max.replace(tzinfo=UTC)).start == utc(9999, 12, 30, 22)  # type: ignore[union-attr]

    def test_nothing_before_start(self) -> None:
        s = parse_schedule("2026-03-04 22:00", "UTC", "Week Monday")
        assert s.next(utc(2000, 1, 1))[0].start == utc(2026, 3, 9, 22)


class TestPrevious:
    def test_latest_start_strictly_before(self) -> None:
        s = parse_schedule("2026-03-01 22:00", "UTC", "Day")
        assert s.previous(utc(2026, 3, 5, 12)) == Occurrence(
            utc(2026, 3, 4, 22), utc(2026, 3, 5, 1, 55)
        )
        assert s.previous(utc(2026, 3, 5, 22)).start == utc(2026, 3, 4, 22)  # type: ignore[union-attr]

    def test_none_before_the_first(self) -> None:
        s = parse_schedule("2026-03-01 22:00", "UTC", "Day")
        assert s.previous(utc(2026, 3, 1, 22)) is None
        assert s.previous(utc(2020, 1, 1)) is None

    def test_after_expiration_gives_the_last_run(self) -> None:
        s = parse_schedule(
            "2026-03-01 22:00", "UTC", "Day", expiration_date_time="2026-03-03 22:00"
        )
        assert s.previous(utc(2030, 1, 1)).start == utc(2026, 3, 3, 22)  # type: ignore[union-attr]

    def test_negative_offset_run_of_the_next_month(self) -> None:
        s = parse_schedule("2026-01-01 22:00", "UTC", "Month First Monday Offset-6")
        assert s.previous(utc(2026, 1, 28)).start == utc(2026, 1, 27, 22)  # type: ignore[union-attr]

    def test_hourly(self) -> None:
        s = parse_schedule("2019-01-01 00:00", "UTC", "6Hours")
        assert s.previous(utc(2026, 3, 1, 7)).start == utc(2026, 3, 1, 6)  # type: ignore[union-attr]


class TestWarningsAndWords:
    @pytest.mark.parametrize("duration", ["01:30", "03:55", "02:00"])
    def test_durations_inside_the_in_guest_limits(self, duration: str) -> None:
        assert parse_schedule("2026-03-01 22:00", "UTC", "Day", duration).warnings() == []

    @pytest.mark.parametrize("duration", ["01:29", "03:56", "06:00"])
    def test_durations_outside_warn(self, duration: str) -> None:
        found = parse_schedule("2026-03-01 22:00", "UTC", "Day", duration).warnings()
        assert len(found) == 1 and "1:30..3:55" in found[0]

    def test_short_repeat_warns(self) -> None:
        found = parse_schedule("2026-03-01 22:00", "UTC", "2Hours", "01:30").warnings()
        assert found == ["repeats every 2 h; in-guest patching needs at least 6 hours between runs"]
        assert parse_schedule("2026-03-01 22:00", "UTC", "6Hours").warnings() == []

    def test_overlapping_windows_warn(self) -> None:
        found = parse_schedule("2026-03-01 22:00", "UTC", "Week Monday,Tuesday", "30:00").warnings()
        assert any("overlap" in w for w in found)

    def test_default_duration_is_3_55(self) -> None:
        assert parse_schedule("2026-03-01 22:00", "UTC", "Day").duration == timedelta(
            hours=3, minutes=55
        )
        assert parse_schedule("2026-03-01 22:00", "UTC", "Day", None).duration == timedelta(
            hours=3, minutes=55
        )

    @pytest.mark.parametrize(
        "recur,hint",
        [
            ("4Hours", timedelta(hours=4)),
            ("2Days", timedelta(days=2)),
            ("2Weeks Monday,Thursday", timedelta(days=3)),
            ("Week Sunday,Monday", timedelta(days=1)),
            ("Month day1,day31", timedelta(days=1)),
            ("Month day15", timedelta(days=28)),
            ("2Months Last Sunday", timedelta(days=56)),
        ],
    )
    def test_interval_hint(self, recur: str, hint: timedelta) -> None:
        assert parse_schedule("2026-03-01 22:00", "UTC", recur).interval_hint == hint

    @pytest.mark.parametrize(
        "recur,words",
        [
            ("Day", "every day at 22:00"),
            ("3Days", "every 3 days at 22:00"),
            ("6Hours", "every 6 hours from 2026-03-01 22:00"),
            ("Week", "every week on Sun at 22:00"),
            ("2Weeks Thursday,Monday", "every 2 weeks on Mon, Thu at 22:00"),
            ("Month day23,day24", "every month on days 23, 24 at 22:00"),
            ("Month", "every month on day 1 at 22:00"),
            ("Month Last Sunday", "every month on the last Sun at 22:00"),
            ("Month Second Tuesday Offset3", "every month 3 days after the second Tue at 22:00"),
            ("2Months First Monday Offset-1", "every 2 months 1 day before the first Mon at 22:00"),
        ],
    )
    def test_describe(self, recur: str, words: str) -> None:
        assert parse_schedule("2026-03-01 22:00", "UTC", recur).describe() == words


class TestParseWindow:
    def test_arm_maintenance_window(self) -> None:
        s = parse_window(
            {
                "startDateTime": "2026-03-01 22:00",
                "expirationDateTime": "2027-03-01 22:00",
                "duration": "02:00",
                "timeZone": "W. Europe Standard Time",
                "recurEvery": "Month Second Tuesday Offset3",
            }
        )
        assert s == parse_schedule(
            "2026-03-01 22:00",
            "W. Europe Standard Time",
            "Month Second Tuesday Offset3",
            "02:00",
            "2027-03-01 22:00",
        )

    def test_keys_are_case_insensitive_and_optional_parts_default(self) -> None:
        s = parse_window(
            {
                "STARTDATETIME": "2026-03-01 22:00",
                "timezone": "UTC",
                "RecurEvery": "Day",
                "expirationDateTime": None,
            }
        )
        assert s.duration == timedelta(hours=3, minutes=55)
        assert s.expiration is None

    def test_whole_properties_object(self) -> None:
        props = {
            "maintenanceScope": "InGuestPatch",
            "maintenanceWindow": {
                "startDateTime": "2026-03-01 22:00",
                "timeZone": "UTC",
                "recurEvery": "Day",
            },
        }
        assert parse_window(props).recurrence == Recurrence("day", 1)

    @pytest.mark.parametrize(
        "window,named",
        [
            ({"startDateTime": "2026-03-01 22:00", "timeZone": "UTC"}, "recurEvery"),
            ({"timeZone": "UTC", "recurEvery": "Day"}, "startDateTime"),
            ({"startDateTime": "2026-03-01 22:00", "timeZone": 1, "recurEvery": "Day"}, "timeZone"),
        ],
    )
    def test_missing_or_wrong_parts(self, window: dict[str, object], named: str) -> None:
        with pytest.raises(ScheduleError, match=named):
            parse_window(window)

    def test_not_an_object(self) -> None:
        with pytest.raises(ScheduleError, match="maintenanceWindow"):
            parse_window(["Day"])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- jump vs naive walk


def test_jump_does_not_walk_from_a_start_years_ago(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard's per-poll cost: a few periods examined, not seven years of days."""
    calls = 0
    original = Schedule._period_starts

    def counting(self: Schedule, period: int) -> list[datetime]:
        nonlocal calls
        calls += 1
        return original(self, period)

    monkeypatch.setattr(Schedule, "_period_starts", counting)
    for recur in ("Day", "Hour", "Week Monday", "Month day31", "Month Last Sunday Offset6"):
        calls = 0
        s = parse_schedule("2019-01-01 22:00", "W. Europe Standard Time", recur)
        assert len(s.next(utc(2026, 3, 1), 1)) == 1
        assert s.previous(utc(2026, 3, 1)) is not None
        assert calls <= 8, recur


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ZONES = (
    "UTC",
    "W. Europe Standard Time",
    "Pacific Standard Time",
    "Lord Howe Standard Time",  # 30-minute DST
    "Pacific SA Standard Time",  # Santiago: DST at midnight
    "Newfoundland Standard Time",  # -3:30
    "Chatham Islands Standard Time",  # +12:45
    "Samoa Standard Time",  # skipped 2011-12-30 entirely
    "Asia/Kolkata",
)


@st.composite
def recur_exprs(draw: st.DrawFn) -> str:
    n = draw(st.sampled_from([1, 1, 1, 2, 3, 5]))  # period boundaries matter most for n = 1
    count = "" if n == 1 and draw(st.booleans()) else str(n)
    form = draw(st.sampled_from(["hour", "day", "week", "monthdays", "monthnth", "monthnth"]))
    if form == "hour":
        return f"{count}Hours"
    if form == "day":
        return f"{count}Days"
    if form == "week":
        names = draw(st.lists(st.sampled_from(WEEKDAYS), max_size=3, unique=True))
        return f"{count}Weeks {', '.join(names)}".strip()
    if form == "monthdays":
        numbers = draw(st.lists(st.integers(1, 31), max_size=3, unique=True))
        return f"{count}Months {','.join(f'day{d}' for d in numbers)}".strip()
    # First and Last with large offsets cross month ends most often.
    ordinal = draw(st.sampled_from(["First", "Last", "First", "Last", "Second", "Third", "Fourth"]))
    # Large offsets are the ones that cross into a neighbouring month.
    offset = draw(st.one_of(st.sampled_from([-6, -5, 5, 6]), st.integers(-6, 6)))
    tail = f" Offset{offset}" if offset or draw(st.booleans()) else ""
    return f"{count}Months {ordinal} {draw(st.sampled_from(WEEKDAYS))}{tail}"


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    start = draw(st.datetimes(datetime(2010, 1, 1), datetime(2030, 12, 31)))
    start = start.replace(minute=draw(st.sampled_from([0, 15, 30, 45])), second=0, microsecond=0)
    expiration = None
    if draw(st.booleans()):
        expiration = start + timedelta(
            days=draw(st.integers(0, 900)), minutes=draw(st.integers(0, 1439))
        )
    return parse_schedule(
        f"{start:%Y-%m-%d %H:%M}",
        draw(st.sampled_from(ZONES)),
        draw(recur_exprs()),
        draw(st.sampled_from(["01:30", "03:55", "00:45"])),
        None if expiration is None else f"{expiration:%Y-%m-%d %H:%M}",
    )


def _month_anchor(year: int, month: int, ordinal: int, weekday: int) -> date:
    """The n-th (or last) weekday of a month, by plain counting (independent of relativedelta)."""
    if ordinal > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (ordinal - 1))
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _date_matches(s: Schedule, day: date) -> bool:
    """Does the rule put a run on local date ``day``? Written from the definitions, no jumps."""
    rule, first = s.recurrence, s.start_local.date()
    n = rule.interval
    if rule.unit == "day":
        return day >= first and (day - first).days % n == 0
    if rule.unit == "week":
        weeks = (
            (day - timedelta(days=day.weekday())) - (first - timedelta(days=first.weekday()))
        ).days // 7
        return weeks >= 0 and weeks % n == 0 and day.weekday() in rule.weekdays
    if rule.month_days:
        months = (day.year - first.year) * 12 + day.month - first.month
        return months >= 0 and months % n == 0 and day.day in rule.month_days
    assert rule.ordinal is not None and rule.weekday is not None
    for shift in (-1, 0, 1):  # the offset can move a run into a neighbouring month
        index = day.year * 12 + day.month - 1 + shift
        year, month = divmod(index, 12)
        months = index - (first.year * 12 + first.month - 1)
        if months >= 0 and months % n == 0:
            if (
                _month_anchor(year, month + 1, rule.ordinal, rule.weekday)
                + timedelta(days=rule.offset)
                == day
            ):
                return True
    return False


def _resolve(s: Schedule, day: date) -> datetime:
    return datetime.combine(day, s.start_local.time()).replace(tzinfo=s.zone).astimezone(UTC)


def naive_starts(s: Schedule) -> Iterator[datetime]:
    """Every start of the schedule in order, walking hour by hour or day by day from its start
    (to the expiration, or the year 2100 at the latest)."""
    last: datetime | None = None
    if s.recurrence.unit == "hour":
        step = timedelta(hours=s.recurrence.interval)
        candidates: Iterator[datetime] = (s.start + k * step for k in itertools.count())
    else:
        days = (s.start_local.date() + timedelta(days=k) for k in itertools.count(-1))
        candidates = (
            _resolve(s, d)
            for d in itertools.takewhile(lambda d: d.year < 2100, days)
            if _date_matches(s, d)
        )
    for candidate in candidates:
        if candidate < s.start or (last is not None and candidate <= last):
            continue
        if s.expiration is not None and candidate > s.expiration:
            return
        last = candidate
        yield candidate


def _probe(s: Schedule, data: st.DataObject) -> datetime:
    """An instant to ask about: anywhere in the first years, or (half the time) within days of
    a real run, where period boundaries, offsets crossing months and DST shifts bite."""
    if data.draw(st.booleans(), label="near a run"):
        index = data.draw(st.integers(0, 40), label="run index")
        runs = list(itertools.islice(naive_starts(s), index + 1))
        if runs:
            return runs[-1] + timedelta(minutes=data.draw(st.integers(-4 * 1440, 4 * 1440)))
    days = data.draw(st.integers(-60, 1200), label="days after start")
    return s.start + timedelta(days=days, minutes=data.draw(st.integers(0, 1439)))


@pytest.mark.parametrize(
    "zone,start,recur",
    [
        ("UTC", "2025-12-01 22:00", "Month First Monday Offset-6"),
        ("UTC", "2025-12-01 22:00", "Month Last Friday Offset6"),
        ("W. Europe Standard Time", "2025-12-01 00:30", "Month First Sunday Offset-1"),
        ("Pacific Standard Time", "2025-12-01 23:30", "Month Last Sunday Offset1"),
        ("W. Europe Standard Time", "2025-12-01 02:30", "Month day1,day30,day31"),
        ("Pacific Standard Time", "2025-12-03 02:30", "2Weeks Sunday,Monday"),
        ("W. Europe Standard Time", "2025-12-01 02:30", "Day"),
        ("Lord Howe Standard Time", "2025-12-01 02:00", "5Hours"),
    ],
)
def test_probes_every_few_hours_for_two_years_match_the_naive_walk(
    zone: str, start: str, recur: str
) -> None:
    """Exhaustive over probes, for the rules whose periods bleed into their neighbours."""
    s = parse_schedule(start, zone, recur)
    runs = list(itertools.takewhile(lambda x: x < utc(2028, 3, 1), naive_starts(s)))
    probe = utc(2025, 11, 1)
    while probe < utc(2028, 1, 1):
        index = bisect.bisect_left(runs, probe)
        assert [o.start for o in s.next(probe, 2)] == runs[index : index + 2], probe
        previous = s.previous(probe)
        assert (previous.start if previous else None) == (runs[index - 1] if index else None), probe
        probe += timedelta(hours=5, minutes=7)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=schedules(), data=st.data(), count=st.integers(1, 4))
def test_next_matches_the_naive_walk(s: Schedule, data: st.DataObject, count: int) -> None:
    after = _probe(s, data)
    got = s.next(after, count)
    expected = list(itertools.islice((x for x in naive_starts(s) if x >= after), count))
    assert [o.start for o in got] == expected
    # The properties, stated directly.
    assert all(a.start < b.start for a, b in itertools.pairwise(got))
    for occurrence in got:
        assert occurrence.start >= max(after, s.start)
        assert s.expiration is None or occurrence.start <= s.expiration
        assert occurrence.end - occurrence.start == s.duration
        if s.recurrence.unit != "hour":
            local_day = occurrence.start.astimezone(s.zone).date()
            # A gap can push a run past midnight (or a skipped day onto the next one).
            assert any(
                _date_matches(s, d) and _resolve(s, d) == occurrence.start
                for d in (local_day, local_day - timedelta(days=1))
            )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=schedules(), data=st.data())
def test_previous_matches_the_naive_walk(s: Schedule, data: st.DataObject) -> None:
    before = _probe(s, data)
    earlier = list(itertools.takewhile(lambda x: x < before, naive_starts(s)))
    got = s.previous(before)
    assert (got.start if got else None) == (earlier[-1] if earlier else None)


def test_wall_time_helper_is_consistent() -> None:
    # Guards the reference itself: the naive resolution is the one the module documents.
    s = parse_schedule("2026-03-29 02:30", "Europe/Berlin", "Day")
    assert _resolve(s, date(2026, 3, 29)) == utc(2026, 3, 29, 1, 30)
    assert s.start_local.time() == time(2, 30)
