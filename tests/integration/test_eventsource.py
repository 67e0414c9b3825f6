"""The queue event source against a real Azurite: peek, consume, crash safety, undecodables."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.azure.eventsource import PEEK_LIMIT, EventSource, make_queue_client
from services.azure.journal import Journal
from services.domain.clock import ManualClock
from services.standin.azurite import Azurite

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "events"
ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)




@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.sqlite3") as j:
        yield j


def pre_event(run: str = "20260310124000", event_id: str | None = None) -> str:
    """A pre-event queue message, base64 of Event Grid JSON, as Event Grid writes it."""
    event = json.loads((SAMPLES / "pre-eventgrid.json").read_text())
    cid = event["id"].rsplit("/", 1)[0] + "/" + run
    event["id"] = event_id or cid
    event["data"]["CorrelationId"] = cid
    return base64.b64encode(json.dumps(event).encode()).decode()


async def depth(queue: Any) -> int:
    return (await queue.get_queue_properties()).approximate_message_count


async def test_peek_sees_events_without_removing_them(queue: Any, journal: Journal) -> None:
    await queue.send_message(pre_event("20260310124000"))
    await queue.send_message(pre_event("20260310130000"))
    source = EventSource(queue, clock=ManualClock(NOW), journal=journal)
    batch = await source.poll()
    assert batch.error is None
    assert [e.event.run_name for e in batch.events] == ["20260310124000", "20260310130000"]
    assert batch.fetched_at == NOW and batch.depth == 2 and not batch.truncated
    assert all(e.received_at == NOW and not e.duplicate for e in batch.events)
    assert await depth(queue) == 2
    # Another consumer still gets every message.
    assert len(await queue.peek_messages(max_messages=32)) == 2
    # The next poll shows nothing twice.
    again = await source.poll()
    assert again.events == () and again.duplicates == ()
    assert len(journal.events()) == 2


async def test_peek_flags_a_second_delivery_of_the_same_event(queue: Any) -> None:
    await queue.send_message(pre_event())
    await queue.send_message(pre_event())  # Event Grid: at least once
    source = EventSource(queue, clock=ManualClock(NOW))
    batch = await source.poll()
    assert len(batch.events) == 1
    assert batch.duplicate_count == 1 and batch.duplicates[0].duplicate
    assert batch.duplicates[0].to_json()["duplicate"] is True


async def test_peek_warns_when_the_queue_holds_more_than_a_peek_sees(queue: Any) -> None:
    for n in range(PEEK_LIMIT + 3):
        await queue.send_message(pre_event(f"202603101{n:03d}00"))
    batch = await EventSource(queue, clock=ManualClock(NOW)).poll()
    assert len(batch.events) == PEEK_LIMIT
    assert batch.depth == PEEK_LIMIT + 3
    assert batch.truncated
    assert batch.warning is not None and "35 messages" in batch.warning


async def test_undecodable_message_is_journaled_and_shown_escaped(
    queue: Any, journal: Journal
) -> None:
    await queue.send_message("not an event\t[bold red]{")
    source = EventSource(queue, clock=ManualClock(NOW), journal=journal)
    batch = await source.poll()
    [item] = batch.undecodable
    assert "\t" not in item.raw_preview and "\\t[bold red]" in item.raw_preview
    assert item.to_json()["undecodable"] is True and item.reason
    [row] = journal.undecodable()
    assert row.raw_text == "not an event\t[bold red]{"
    assert (await source.poll()).undecodable == ()  # not shown twice
    assert await depth(queue) == 1  # peek removed nothing


async def test_consume_journals_then_deletes(queue: Any, journal: Journal) -> None:
    await queue.send_message(pre_event())
    await queue.send_message("garbage")
    source = EventSource(queue, clock=ManualClock(NOW), journal=journal, mode="consume")
    batch = await source.poll()
    assert batch.error is None
    assert len(batch.events) == 1 and len(batch.undecodable) == 1
    assert len(journal.events()) == 1 and len(journal.undecodable()) == 1
    assert await depth(queue) == 0


async def test_consume_does_not_delete_when_the_journal_cannot_write(
    queue: Any, journal: Journal
) -> None:
    await queue.send_message(pre_event())
    source = EventSource(queue, clock=ManualClock(NOW), journal=journal, mode="consume",
                         visibility_timeout=1)
    journal.close()  # every write now fails
    batch = await source.poll()
    assert batch.error is not None and "journal" in batch.error
    assert batch.events == ()
    assert await depth(queue) == 1  # still there, hidden until the visibility timeout


async def test_a_missing_queue_is_one_error_line_not_an_exception(azurite: Azurite) -> None:
    client = make_queue_client("does-not-exist", connection_string=azurite.connection_string)
    async with client:
        batch = await EventSource(client, clock=ManualClock(NOW)).poll()
    assert batch.error is not None and "\n" not in batch.error
    assert "404" in batch.error or "not" in batch.error.lower()


# -- crash safety ----------------------------------------------------------------------------

_CRASHING_CONSUMER = """
import asyncio, os, signal, sys
from datetime import UTC, datetime
from services.domain.clock import ManualClock
from services.azure.eventsource import EventSource, make_queue_client
from services.azure.journal import Journal

conn, name, path, point = sys.argv[1:5]

class KillingJournal(Journal):
    def record_event(self, *a, **kw):
        if point == "before-journal":
            os.kill(os.getpid(), signal.SIGKILL)
        return super().record_event(*a, **kw)

class KillingQueue:
    def __init__(self, inner): self._inner = inner
    def __getattr__(self, attr): return getattr(self._inner, attr)
    async def delete_message(self, *a, **kw):
        os.kill(os.getpid(), signal.SIGKILL)  # received and journaled, never deleted

async def main():
    async with make_queue_client(name, connection_string=conn) as queue:
        source = EventSource(KillingQueue(queue), clock=ManualClock(datetime.now(UTC)),
                             journal=KillingJournal(path), mode="consume", visibility_timeout=1)
        await source.poll()

asyncio.run(main())
sys.exit(3)  # not reached
"""


async def _poll_until_something(source: EventSource, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = await source.poll()
        if batch.events or batch.redelivered or batch.undecodable or batch.error:
            return batch
        if time.monotonic() > deadline:
            raise AssertionError("the message never reappeared after its visibility timeout")
        await asyncio.sleep(0.2)  # Azurite's real clock hides the message for 1 s


@pytest.mark.parametrize("point", ["before-delete", "before-journal"])
async def test_consumer_killed_mid_message_loses_and_duplicates_nothing(
    queue: Any, azurite: Azurite, tmp_path: Path, point: str
) -> None:
    await queue.send_message(pre_event())
    path = tmp_path / "journal.sqlite3"
    proc = subprocess.run(
        [sys.executable, "-c", _CRASHING_CONSUMER, azurite.connection_string, queue.queue_name,
         str(path), point],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with Journal(path) as journal:
        journaled_by_first = len(journal.events())
        assert journaled_by_first == (1 if point == "before-delete" else 0)
        assert await depth(queue) == 1  # the message is still in the queue (hidden)

        source = EventSource(queue, clock=ManualClock(NOW), journal=journal, mode="consume")
        batch = await _poll_until_something(source)
        assert batch.error is None
        if point == "before-delete":
            assert batch.redelivered == 1 and batch.events == ()  # a no-op
        else:
            assert len(batch.events) == 1
        assert len(journal.events()) == 1  # exactly once
        assert await depth(queue) == 0


# -- the `aumwatch events tail` command -------------------------------------------------------


def write_queue_config(azurite: Azurite, queue_name: str, tmp_path: Path) -> Path:
    path = tmp_path / "aumwatch.toml"
    path.write_text(
        "[queue]\n"
        f'connection_string = "{azurite.connection_string}"\n'
        f'name = "{queue_name}"\n'
        "[paths]\n"
        f'data_dir = "{tmp_path / "data"}"\n',
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


@pytest.fixture
def sync_queue(azurite: Azurite) -> Iterator[Any]:
    from azure.storage.queue import QueueClient

    client = QueueClient.from_connection_string(azurite.connection_string,
                                                f"t{uuid.uuid4().hex[:12]}")
    client.create_queue()
    yield client
    client.close()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from tui.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_tail_json_prints_one_object_per_line(
    azurite: Azurite, sync_queue: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    sync_queue.send_message(pre_event())
    sync_queue.send_message(pre_event())  # a second delivery
    sync_queue.send_message("{broken")
    cfg = write_queue_config(azurite, sync_queue.queue_name, tmp_path)
    code, out, err = cli(capsys, "events", "tail", "--json", "--config", str(cfg))
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    events = [item for item in lines if not item.get("undecodable")]
    assert [e["duplicate"] for e in events] == [False, True]
    assert events[0]["kind"] == "pre" and events[0]["received_at"].endswith("Z")
    [bad] = [item for item in lines if item.get("undecodable")]
    assert bad["raw_preview"] == "{broken" and bad["reason"]
    assert sync_queue.get_queue_properties().approximate_message_count == 3  # peek


def test_tail_consume_empties_the_queue_into_the_journal(
    azurite: Azurite, sync_queue: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    sync_queue.send_message(pre_event())
    cfg = write_queue_config(azurite, sync_queue.queue_name, tmp_path)
    code, out, err = cli(capsys, "events", "tail", "--mode", "consume", "--config", str(cfg))
    assert code == 0, err
    assert "pre" in out and "20260310124000" in out
    assert sync_queue.get_queue_properties().approximate_message_count == 0
    with Journal(tmp_path / "data" / "journal.sqlite3") as journal:
        assert len(journal.events()) == 1


def test_tail_consume_peeks_while_aumwatch_tasks_holds_the_queue(
    azurite: Azurite, sync_queue: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from services.azure.tasks import RunnerLock

    # Consuming here would take the pre-event from under a running `aumwatch tasks`.
    sync_queue.send_message(pre_event())
    cfg = write_queue_config(azurite, sync_queue.queue_name, tmp_path)
    with RunnerLock(tmp_path / "data", sync_queue.url):
        code, out, err = cli(capsys, "events", "tail", "--mode", "consume", "--config",
                             str(cfg))
    assert code == 0, err
    assert "20260310124000" in out
    assert "peeking instead of consuming: another aumwatch tasks (pid " in err
    assert sync_queue.get_queue_properties().approximate_message_count == 1


def test_tail_without_a_queue_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AUMWATCH_QUEUE_NAME", "AUMWATCH_QUEUE_CONNECTION_STRING",
                 "AUMWATCH_QUEUE_ACCOUNT_URL"):
        monkeypatch.delenv(name, raising=False)
    cfg = tmp_path / "empty.toml"
    cfg.write_text("")
    code, _, err = cli(capsys, "events", "tail", "--config", str(cfg))
    assert code == 1 and err.startswith("aumwatch: no events queue configured")


def test_tail_of_a_missing_queue_fails_with_one_line(
    azurite: Azurite, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = write_queue_config(azurite, "no-such-queue", tmp_path)
    code, _, err = cli(capsys, "events", "tail", "--config", str(cfg))
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err


async def test_a_client_given_a_ca_bundle_keeps_one_connection(azurite: Azurite,
                                                              tmp_path: Path) -> None:
    import psutil
    import trustme

    bundle = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bundle))
    client = make_queue_client(f"q{uuid.uuid4().hex[:12]}",
                               connection_string=azurite.connection_string,
                               connection_verify=str(bundle), connection_timeout=5,
                               read_timeout=5)
    me = psutil.Process()
    ports: set[int] = set()
    async with client:
        await client.create_queue()
        source = EventSource(client, clock=ManualClock(NOW))
        for _ in range(6):
            assert (await source.poll()).error is None
            ports |= {c.laddr.port for c in me.net_connections("tcp")
                      if c.raddr and c.raddr.port == azurite.port}
    # azure-core given the path builds a TLS context per request, and aiohttp, whose pool is
    # keyed by it, opened a connection per request and kept them all alive.
    assert len(ports) == 1


def test_tail_shows_each_events_own_time_and_its_arrival(
    azurite: Azurite, sync_queue: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    # Issue 20: every line showed the one time of the peek that read them all.
    for minute in (25, 31):
        event = json.loads(base64.b64decode(pre_event()))
        event["id"] = f"{event['id']}-{minute}"
        event["eventTime"] = f"2023-05-09T14:{minute}:00Z"
        sync_queue.send_message(base64.b64encode(json.dumps(event).encode()).decode())
    cfg = write_queue_config(azurite, sync_queue.queue_name, tmp_path)
    code, out, err = cli(capsys, "events", "tail", "--config", str(cfg))
    assert code == 0, err
    legend, first, second = out.splitlines()
    assert legend.startswith("# ") and "T-35m" in legend and "(-37m)" in legend
    assert first.startswith("2023-05-09 14:25:00Z  pre") and "arrival T-35m" in first
    assert "arrival T-35m !" not in first
    # T-29m is later than the documented T-30: flagged.
    assert second.startswith("2023-05-09 14:31:00Z  pre") and "arrival T-29m !" in second
