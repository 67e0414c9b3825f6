"""When an event counts as arrived (the watchdog and the arrival delay read it)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from services.domain.boundary import ReceivedEvent
from services.domain.events import decode_message

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "events" / "pre-eventgrid.json"
PUBLISHED = datetime(2023, 5, 9, 14, 25, 0, 371747, tzinfo=UTC)  # the sample's eventTime


def _received(inserted: datetime | None, read: datetime) -> ReceivedEvent:
    [event] = decode_message(SAMPLE.read_text())
    return ReceivedEvent(event=event, received_at=read, message_id="m1", inserted_at=inserted)


def test_an_event_published_just_before_it_was_queued_counts_from_its_publication():
    inserted = datetime(2023, 5, 9, 14, 25, 2, tzinfo=UTC)
    assert _received(inserted, datetime(2023, 5, 9, 14, 26, tzinfo=UTC)).arrived_at == PUBLISHED


def test_a_backlog_written_late_keeps_its_publication_time():
    late = datetime(2023, 5, 9, 14, 50, tzinfo=UTC)
    assert _received(late, late).arrived_at == PUBLISHED


def test_an_event_stamped_in_the_future_counts_from_when_it_reached_the_queue():
    inserted = datetime(2023, 5, 9, 14, 0, tzinfo=UTC)
    assert _received(inserted, inserted).arrived_at == inserted


def test_without_an_insertion_time_the_read_time_counts():
    read = datetime(2023, 5, 9, 14, 20, tzinfo=UTC)
    assert _received(None, read).arrived_at == read
