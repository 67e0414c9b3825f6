"""Event arrival relative to its run, flagged only outside the documented range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.domain.arrivals import ArrivalRules, arrival
from services.domain.events import decode_message
from services.domain.model import Run

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "events"


def sample(name: str):  # type: ignore[no-untyped-def]
    [event] = decode_message((SAMPLES / name).read_bytes())
    return event


def test_the_sample_pre_event_is_on_time_at_t_minus_35() -> None:
    pre = sample("pre-eventgrid.json")
    assert pre.start is not None and pre.event_time is not None
    # The sample was raised at 14:25:00.37 for a 15:00 start.
    assert timedelta(minutes=34) < pre.start - pre.event_time < timedelta(minutes=36)
    assert arrival(pre, pre.event_time) == ("T-35m", False)


@pytest.mark.parametrize(("before", "label", "flagged"), [
    (timedelta(minutes=40), "T-40m", False),  # the range is inclusive at both ends
    (timedelta(minutes=30), "T-30m", False),
    (timedelta(minutes=40, seconds=1), "T-40m", True),
    (timedelta(minutes=29, seconds=59), "T-30m", True),
    (timedelta(minutes=43), "T-43m", True),  # the 2023 revision's range, outside today's
    (timedelta(minutes=-2), "T+2m", True),  # after the start
    (timedelta(hours=1, minutes=5), "T-1h05m", True),
])
def test_pre_event_arrivals_against_the_default_range(
        before: timedelta, label: str, flagged: bool) -> None:
    pre = sample("pre-eventgrid.json")
    assert pre.start is not None
    assert arrival(pre, pre.start - before) == (label, flagged)


def test_the_range_is_a_rule_the_caller_gives() -> None:
    pre = sample("pre-eventgrid.json")
    assert pre.start is not None
    old_docs = ArrivalRules(pre_event_earliest=timedelta(minutes=43),
                            pre_event_latest=timedelta(minutes=38))
    assert arrival(pre, pre.start - timedelta(minutes=42), None, old_docs) == ("T-42m", False)
    assert arrival(pre, pre.start - timedelta(minutes=35), None, old_docs) == ("T-35m", True)


def test_the_timelines_expected_slot_is_the_same_range() -> None:
    start = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    assert ArrivalRules().pre_event_range(start) == (start - timedelta(minutes=40),
                                                     start - timedelta(minutes=30))
    narrow = ArrivalRules(timedelta(minutes=38), timedelta(minutes=36))
    assert narrow.pre_event_range(start) == (start - timedelta(minutes=38),
                                             start - timedelta(minutes=36))


def test_a_range_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="pre_event_earliest"):
        ArrivalRules(pre_event_earliest=timedelta(minutes=20),
                     pre_event_latest=timedelta(minutes=30))


def test_a_post_event_is_shown_against_the_scheduled_end() -> None:
    post = sample("post-eventgrid.json")  # raised 15:55, scheduled end 18:55: ended early
    assert post.event_time is not None and post.end is not None
    assert arrival(post, post.event_time) == ("-3h00m", False)
    assert arrival(post, post.end + timedelta(minutes=4)) == ("+4m", False)
    later_end = post.end + timedelta(hours=1)
    assert arrival(post, post.end + timedelta(minutes=4), later_end) == ("-56m", False)


def test_a_post_event_before_the_run_started_is_flagged() -> None:
    post = sample("post-eventgrid.json")
    assert post.start is not None
    label, flagged = arrival(post, post.start - timedelta(minutes=5))
    assert flagged and label.startswith("-")


def test_other_events_and_missing_times_give_no_label() -> None:
    post = sample("post-eventgrid.json")
    no_end = Run("x", "c", "c", "r", datetime(2026, 1, 1, tzinfo=UTC))
    assert arrival(no_end, datetime(2026, 1, 1, tzinfo=UTC)) == ("", False)
    assert arrival(post.__class__(**{**post.__dict__, "end": None}),
                   datetime(2026, 1, 1, tzinfo=UTC)) == ("", False)
