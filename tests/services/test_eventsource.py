"""EventSource against a fake queue: how often it reads the queue's depth (unit level; the
behaviour against Azurite is in tests/integration/test_eventsource.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.azure.eventsource import DEDUPE_HORIZON, DEPTH_EVERY, PEEK_LIMIT, EventSource
from services.domain.clock import ManualClock

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@dataclass
class Message:
    id: str
    content: str = "not an event"
    inserted_on: datetime = NOW


@dataclass
class Properties:
    approximate_message_count: int


class FakeQueue:
    """Holds ``messages``; counts the calls; ``fail`` makes the next peek raise."""

    queue_name = "fake"

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.depth_reads = 0
        self.peeks = 0
        self.fail = False

    async def get_queue_properties(self) -> Properties:
        self.depth_reads += 1
        return Properties(len(self.messages))

    async def peek_messages(self, max_messages: int) -> list[Message]:
        self.peeks += 1
        if self.fail:
            self.fail = False
            raise ConnectionError("connection reset")
        return self.messages[:max_messages]


async def test_depth_is_read_on_the_first_poll_then_every_depth_every_polls() -> None:
    queue = FakeQueue()
    queue.messages = [Message("m1"), Message("m2")]
    source = EventSource(queue, clock=ManualClock(NOW))
    depths: list[Any] = [(await source.poll()).depth for _ in range(2 * DEPTH_EVERY + 1)]
    assert queue.peeks == 2 * DEPTH_EVERY + 1  # every poll still reads the messages
    assert queue.depth_reads == 3
    assert depths[0] == depths[DEPTH_EVERY] == depths[2 * DEPTH_EVERY] == 2
    others = [d for i, d in enumerate(depths) if i % DEPTH_EVERY]
    assert others == [None] * (2 * DEPTH_EVERY - 2)  # not measured, not zero


async def test_a_full_peek_reads_the_depth_at_once_and_warns() -> None:
    queue = FakeQueue()
    source = EventSource(queue, clock=ManualClock(NOW))
    assert (await source.poll()).depth == 0
    queue.messages = [Message(f"m{n}") for n in range(PEEK_LIMIT + 5)]
    batch = await source.poll()  # not due by the count, but the peek came back full
    assert batch.depth == PEEK_LIMIT + 5 and batch.truncated
    assert batch.warning is not None and f"{PEEK_LIMIT + 5} messages" in batch.warning
    assert queue.depth_reads == 2
    assert (await source.poll()).truncated  # still full: read again
    assert queue.depth_reads == 3


async def test_a_failed_poll_reads_the_depth_again_on_the_next() -> None:
    queue = FakeQueue()
    source = EventSource(queue, clock=ManualClock(NOW))
    await source.poll()
    queue.fail = True
    assert (await source.poll()).error is not None
    assert queue.depth_reads == 1
    # Not due by the count for DEPTH_EVERY - 2 more polls, but the queue just failed.
    assert (await source.poll()).depth == 0
    assert queue.depth_reads == 2


def test_depth_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth_every"):
        EventSource(FakeQueue(), clock=ManualClock(NOW), depth_every=0)


# -- the dedupe memory is bounded by age (figure 8 stays flat over a long tail) -------------

RUN = ("/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg/providers/"
       "Microsoft.Maintenance/maintenanceConfigurations/cfg/providers/"
       "microsoft.maintenance/applyupdates/20260310130000")


def _pre_event_text() -> str:
    from services.standin.events_out import build_event, encode_message

    start = NOW + timedelta(hours=1)
    cfg = RUN.split("/providers/microsoft.maintenance/applyupdates/")[0]
    return encode_message(build_event(
        kind="pre", correlation_id=RUN, configuration_id=cfg, configuration_name="cfg",
        start=start, end=start + timedelta(hours=2), event_time=NOW,
        subscription_ids=["00000000-0000-4000-8000-000000000001"],
        cutoff=start - timedelta(minutes=10)))


def test_the_dedupe_horizon_outlasts_event_grid_retries() -> None:
    # 10 s + 30 s + 1 min + 5 min + 10 min + 30 min + 1 h: Event Grid's retries up to its
    # hourly step, each counted from the previous attempt (docs/azure.md).
    retries = timedelta(seconds=10 + 30 + 60 + 300 + 600 + 1800 + 3600)
    assert DEDUPE_HORIZON > retries


async def test_a_duplicate_inside_the_horizon_is_flagged_not_shown() -> None:
    clock = ManualClock(NOW)
    queue = FakeQueue()
    source = EventSource(queue, clock=clock)
    queue.messages = [Message("m1", _pre_event_text())]
    assert len((await source.poll()).events) == 1
    queue.messages = []  # its owner consumed it
    clock.advance(DEDUPE_HORIZON - timedelta(minutes=1))
    queue.messages = [Message("m2", _pre_event_text())]  # Event Grid delivered it again
    batch = await source.poll()
    assert batch.events == () and len(batch.duplicates) == 1


async def test_the_dedupe_forgets_what_it_has_not_seen_for_the_horizon() -> None:
    clock = ManualClock(NOW)
    queue = FakeQueue()
    source = EventSource(queue, clock=clock)
    queue.messages = [Message("m1", _pre_event_text())]
    await source.poll()
    queue.messages = []
    clock.advance(DEDUPE_HORIZON + timedelta(seconds=1))
    await source.poll()
    assert source.remembered == (0, 0)
    queue.messages = [Message("m2", _pre_event_text())]
    batch = await source.poll()  # past the horizon: shown as an event again
    assert len(batch.events) == 1 and batch.duplicates == ()


async def test_a_message_still_in_the_queue_is_never_forgotten() -> None:
    # Peeked every poll, it stays remembered however long the queue keeps it (any TTL).
    clock = ManualClock(NOW)
    queue = FakeQueue()
    source = EventSource(queue, clock=clock)
    queue.messages = [Message("m1", _pre_event_text())]
    assert len((await source.poll()).events) == 1
    for _ in range(5):
        clock.advance(DEDUPE_HORIZON / 2)
        batch = await source.poll()
        assert batch.events == () and batch.duplicates == ()
    # ... and so do its events: a second delivery beside it is still a duplicate.
    queue.messages.append(Message("m2", _pre_event_text()))
    batch = await source.poll()
    assert batch.events == () and len(batch.duplicates) == 1


async def test_a_steady_tail_keeps_the_dedupe_memory_flat() -> None:
    clock = ManualClock(NOW)
    queue = FakeQueue()
    source = EventSource(queue, clock=clock, dedupe_horizon=timedelta(minutes=10))
    sizes = []
    for n in range(600):  # one undecodable message a minute for 10 hours, a 10-min horizon
        queue.messages = [Message(f"m{n}")]
        await source.poll()
        sizes.append(source.remembered[0])
        clock.advance(timedelta(minutes=1))
    assert max(sizes[20:]) <= 11  # the last ten minutes' messages, never more


def test_the_dedupe_horizon_must_be_positive() -> None:
    with pytest.raises(ValueError, match="dedupe_horizon"):
        EventSource(FakeQueue(), clock=ManualClock(NOW), dedupe_horizon=timedelta(0))


def test_hook_concurrency_needs_a_hook_and_stays_within_one_receive() -> None:
    clock = ManualClock(NOW)
    with pytest.raises(ValueError, match="before_delete hook only"):
        EventSource(FakeQueue(), clock=clock, hook_concurrency=2)
    for bad in (0, PEEK_LIMIT + 1):
        with pytest.raises(ValueError, match="hook_concurrency must be"):
            EventSource(FakeQueue(), clock=clock, hook_concurrency=bad)


async def test_without_concurrent_hooks_nothing_is_in_flight_and_drain_returns_at_once() -> None:
    source = EventSource(FakeQueue(), clock=ManualClock(NOW))
    assert source.in_flight == 0
    assert await source.drain(0.01)
    assert source.take_hook_error() is None
