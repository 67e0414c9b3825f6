"""Hostile queue content and a queue that goes away, through EventSource against Azurite.

Unknown event types, oversized messages (the queue's 64 KiB limit), base64 of bytes that are
not UTF-8, markup and escape sequences: every message is shown once, as an event or as an
undecodable message, and none is dropped. Azurite stopped and restarted mid-tail: the poll in
between reports one line, the tail goes on afterwards.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.azure.eventsource import EventSource, make_queue_client
from services.azure.journal import Journal
from services.domain.clock import ManualClock
from services.standin.azurite import Azurite
from tests.reliability.conftest import Tally

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "events"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HOSTILE = ("[bold red]x[/] \x1b]52;c;cHduZWQ=\x07 \x1b]8;;https://evil/\x1b\\link"
           "\x1b]8;;\x1b\\ \x9b2J")


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _event(event_type: str, subject: str = "patch") -> dict[str, Any]:
    event = json.loads((SAMPLES / "pre-eventgrid.json").read_text())
    event["eventType"] = event_type
    event["subject"] = subject
    event["id"] = str(uuid.uuid4())
    return event


@pytest.fixture
async def queue(azurite: Azurite) -> AsyncIterator[Any]:
    client = make_queue_client(f"q{uuid.uuid4().hex[:12]}",
                               connection_string=azurite.connection_string, retry_total=0)
    async with client:
        await client.create_queue()
        yield client


def hostile_messages() -> list[str]:
    unknown = _event("Microsoft.Maintenance.SomethingNew")
    hostile = _event("Microsoft.Maintenance.PreMaintenanceEvent", subject=HOSTILE)
    hostile["data"]["MaintenanceConfigurationId"] = "/subscriptions/s/" + HOSTILE
    big = _event("Microsoft.Maintenance.PostMaintenanceEvent", subject="B" * 40_000)
    return [
        _b64(json.dumps(unknown).encode()),
        _b64(json.dumps(hostile).encode()),
        _b64(json.dumps(big).encode()),  # ~54 KB of base64: near the 64 KiB message limit
        _b64(b"\xff\xfe{\"eventType\": \"x\xc3\x28\"}"),  # base64 of invalid UTF-8
        "{" * 60_000,  # oversized nonsense
        _b64(HOSTILE.encode()),  # base64 of raw escape sequences (the queue's XML cannot
        # carry control characters unencoded: Azure refuses them, Azurite then fails the peek)
        "[bold]not json[/] {",  # plain text, neither JSON nor base64
        "",  # empty
    ]


@pytest.mark.parametrize("mode", ["peek", "consume"])
async def test_hostile_messages_each_shown_once_none_dropped(
        queue: Any, tmp_path: Path, mode: str, tally: Tally) -> None:
    messages = hostile_messages()
    for text in messages:
        await queue.send_message(text)
    with Journal(tmp_path / "j.sqlite3") as journal:
        source = EventSource(queue, clock=ManualClock(NOW), journal=journal, mode=mode)  # type: ignore[arg-type]
        batch = await source.poll()
        assert batch.error is None
        shown = len(batch.events) + len(batch.undecodable)
        assert shown == len(messages)
        for item in batch.undecodable:
            assert item.raw_preview.isprintable() and "\x1b" not in item.raw_preview
            json.dumps(item.to_json())
        kinds = {e.event.type for e in batch.events}
        assert "Microsoft.Maintenance.SomethingNew" in kinds  # unknown type kept, not dropped
        for event in batch.events:
            json.loads(json.dumps(event.to_json()))  # exportable, strings escaped by JSON
        assert len(journal.events()) + len(journal.undecodable()) == len(messages)
        again = await source.poll()
        assert again.events == () and again.undecodable == ()  # none shown twice
    tally.add(f"bad input: hostile queue messages ({mode})", injected=len(messages),
              survived=shown)


async def test_azurite_restart_mid_tail_is_one_error_then_the_tail_goes_on(
        tally: Tally, tmp_path: Path) -> None:
    server = Azurite().start()
    try:
        name = f"q{uuid.uuid4().hex[:12]}"
        client = make_queue_client(name, connection_string=server.connection_string,
                                   retry_total=0, connection_timeout=2, read_timeout=2)
        async with client:
            await client.create_queue()
            await client.send_message(_b64(json.dumps(_event(
                "Microsoft.Maintenance.PreMaintenanceEvent")).encode()))
            source = EventSource(client, clock=ManualClock(NOW))
            assert len((await source.poll()).events) == 1
            server.stop()
            down = await source.poll()
            assert down.error is not None and "\n" not in down.error
            server.start()  # same port, empty (in-memory) as after a real restart
            await client.create_queue()  # what the event writer (Event Grid, the sim) does
            await client.send_message(_b64(json.dumps(_event(
                "Microsoft.Maintenance.PostMaintenanceEvent")).encode()))
            back = await source.poll()
            assert back.error is None and len(back.events) == 1
    finally:
        server.close()
    tally.add("fault: Azurite stopped and restarted mid-tail", injected=1, survived=1)
