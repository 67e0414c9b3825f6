"""format_remaining: compact, rounds up, never negative."""

from __future__ import annotations

from datetime import timedelta

import pytest

from widgets.countdown import format_remaining


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(minutes=6, seconds=12), "06:12"),
        (timedelta(minutes=6, seconds=11, milliseconds=300), "06:12"),
        (timedelta(milliseconds=300), "00:01"),
        (timedelta(0), "00:00"),
        (timedelta(seconds=-5), "00:00"),
        (timedelta(minutes=59, seconds=59), "59:59"),
        (timedelta(hours=1), "1:00:00"),
        (timedelta(hours=1, minutes=2, seconds=3), "1:02:03"),
        (timedelta(hours=23, minutes=59, seconds=59), "23:59:59"),
        (timedelta(days=1), "1d 0h"),
        (timedelta(days=2, hours=4, minutes=59), "2d 4h"),
        (timedelta(days=400), "400d 0h"),
    ],
)
def test_format_remaining(delta: timedelta, text: str) -> None:
    assert format_remaining(delta) == text
