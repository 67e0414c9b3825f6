"""The injectable clock and the one UTC time format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.domain.clock import ManualClock, ScaledClock, SystemClock, ensure_utc, iso_z

T = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(T)
    assert clock.now() == T
    clock.advance(timedelta(minutes=5))
    assert clock.now() == T + timedelta(minutes=5)
    clock.set(datetime(2026, 3, 10, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    assert clock.now() == T


def test_manual_clock_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="naive"):
        ManualClock(datetime(2026, 3, 10, 12, 0))


def test_system_clock_applies_its_skew() -> None:
    plain, ahead = SystemClock(), SystemClock(skew=timedelta(hours=1))
    assert ahead.now() - plain.now() >= timedelta(minutes=59)


def test_scaled_clock_can_be_set_and_shifted() -> None:
    clock = ScaledClock(speed=1.0)
    clock.set(T)
    assert abs(clock.now() - T) < timedelta(seconds=5)
    clock.shift(timedelta(hours=2))
    assert abs(clock.now() - (T + timedelta(hours=2))) < timedelta(seconds=5)


def test_ensure_utc_converts_and_refuses_naive() -> None:
    assert ensure_utc(datetime(2026, 3, 10, 13, 0, tzinfo=timezone(timedelta(hours=1)))) == T
    with pytest.raises(ValueError):
        ensure_utc(datetime(2026, 3, 10))


def test_iso_z_is_utc_to_the_second_unless_fractions_are_asked_for() -> None:
    value = datetime(2026, 3, 10, 13, 0, 5, 371747, tzinfo=timezone(timedelta(hours=1)))
    assert iso_z(value) == "2026-03-10T12:00:05Z"
    assert iso_z(value, fraction=True) == "2026-03-10T12:00:05.371747Z"
    assert iso_z(T, fraction=True) == "2026-03-10T12:00:00Z"
    assert iso_z(None) is None


def test_one_skew_threshold_warns_from_five_seconds_either_way() -> None:
    from services.domain.clock import SKEW_WARNING, skew_is_large

    assert SKEW_WARNING == timedelta(seconds=5)
    assert skew_is_large(timedelta(seconds=5)) and skew_is_large(timedelta(seconds=-5))
    assert not skew_is_large(timedelta(seconds=4.9)) and not skew_is_large(timedelta(0))


def test_the_doctor_judges_the_skew_by_the_same_threshold() -> None:
    from services.azure.doctor import check_skew

    assert check_skew(timedelta(seconds=5)).status == "warn"
    assert check_skew(timedelta(seconds=4.9)).status == "ok"
    assert check_skew(timedelta(seconds=-90)).status == "fail"
    assert check_skew(timedelta(seconds=-90)).detail == \
        "local clock is 1 minute and 30 seconds ahead of the server"
    assert check_skew(timedelta(seconds=1)).detail == "within 5 seconds of the server"
