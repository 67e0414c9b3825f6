"""EventSource against a fake queue: how often it reads the queue's depth (unit level; the
behaviour against Azurite is in tests/integration/test_eventsource.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from services.azure.eventsource import DEPTH_EVERY, PEEK_LIMIT, EventSource
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
