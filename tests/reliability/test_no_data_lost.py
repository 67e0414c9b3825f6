"""No data lost in consume mode: kill -9 the consumer at random points while events flow.

Each iteration starts a consumer process (tests/reliability/consumer_child.py) on one queue
and one journal, keeps sending events, and SIGKILLs it after a random delay (during start-up,
mid-poll, between journal commit and delete: wherever it is). At the end a clean consumer
drains the queue. Then every event sent is in the journal exactly once: none lost, none
twice; and the journal opens cleanly after every crash (SQLite WAL). A full disk (the
journal's page cap) is reported by the poll and the messages stay in the queue.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from services.azure.eventsource import EventSource, make_queue_client
from services.azure.journal import Journal
from services.domain.clock import ManualClock, SystemClock
from services.standin.azurite import Azurite
from tests.reliability.conftest import Tally

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "events"


def event_message(event_id: str) -> str:
    event = json.loads((SAMPLES / "pre-eventgrid.json").read_text())
    event["id"] = event_id
    return base64.b64encode(json.dumps(event).encode()).decode()


async def _kill_loop(azurite: Azurite, tmp_path: Path, iterations: int,
                     seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    name = f"q{uuid.uuid4().hex[:12]}"
    journal_path = tmp_path / "journal.sqlite3"
    sent: list[str] = []
    client = make_queue_client(name, connection_string=azurite.connection_string)
    async with client:
        await client.create_queue()
        for _ in range(iterations):
            child = subprocess.Popen(
                [sys.executable, "-m", "tests.reliability.consumer_child",
                 azurite.connection_string, name, str(journal_path)],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + rng.uniform(0.3, 2.5)
            while time.monotonic() < deadline:
                for _ in range(rng.randint(1, 5)):
                    event_id = str(uuid.uuid4())
                    await client.send_message(event_message(event_id))
                    sent.append(event_id)
                await asyncio.sleep(rng.uniform(0.0, 0.1))
            os.kill(child.pid, signal.SIGKILL)
            _, err = child.communicate(timeout=10)
            assert child.returncode == -signal.SIGKILL, err.decode(errors="replace")
            # The journal must open after every crash (WAL recovery), and stay consistent.
            with Journal(journal_path) as journal:
                assert journal.journal_mode == "wal"
        # Drain: messages hidden by a killed consumer reappear after the visibility timeout.
        with Journal(journal_path) as journal:
            source = EventSource(client, clock=SystemClock(), journal=journal, mode="consume",
                                 visibility_timeout=1)
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < 2.5:
                batch = await source.poll()
                assert batch.error is None, batch.error
                if batch.events or batch.redelivered:
                    quiet_since = time.monotonic()
                await asyncio.sleep(0.2)
            remaining = (await client.get_queue_properties()).approximate_message_count
    conn = sqlite3.connect(journal_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = [r[0] for r in conn.execute("SELECT event_id FROM events")]
    finally:
        conn.close()
    journaled = set(rows)
    return {"sent": len(sent), "journaled": len(journaled), "twice": len(rows) - len(journaled),
            "lost": len(set(sent) - journaled), "remaining": remaining}


def _check(result: dict[str, int], tally: Tally, iterations: int) -> None:
    tally.add("kill -9 of a consume-mode tail", injected=iterations,
              survived=iterations if result["lost"] == 0 and result["twice"] == 0 else 0,
              lost=result["lost"] + result["twice"])
    tally.add("events through killed consumers", injected=result["sent"],
              survived=result["journaled"], lost=result["lost"])
    assert result["lost"] == 0 and result["twice"] == 0, result
    assert result["remaining"] == 0, result
    assert result["journaled"] == result["sent"] > 0, result


async def test_kill_9_at_random_points_loses_and_duplicates_nothing(
        azurite: Azurite, tmp_path: Path, tally: Tally) -> None:
    _check(await _kill_loop(azurite, tmp_path, iterations=20, seed=7), tally, 20)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 200 process starts and kills: beyond the suite's 300 s default
async def test_kill_9_two_hundred_times(azurite: Azurite, tmp_path: Path, tally: Tally) -> None:
    _check(await _kill_loop(azurite, tmp_path, iterations=200, seed=11), tally, 200)


async def test_a_full_disk_is_reported_and_the_messages_stay(
        azurite: Azurite, tmp_path: Path, tally: Tally) -> None:
    client = make_queue_client(f"q{uuid.uuid4().hex[:12]}",
                               connection_string=azurite.connection_string)
    async with client:
        await client.create_queue()
        # A big raw text per event fills the capped journal after a few rows.
        for _ in range(20):
            await client.send_message(event_message(str(uuid.uuid4())))
        with Journal(tmp_path / "empty.sqlite3") as empty:
            schema_pages = int(empty._connection().execute("PRAGMA page_count").fetchone()[0])
        # Five pages beyond the empty schema: a few rows fit, then the "disk" is full.
        with Journal(tmp_path / "full.sqlite3", max_pages=schema_pages + 5) as journal:
            source = EventSource(client, clock=ManualClock(SystemClock().now()), journal=journal,
                                 mode="consume", visibility_timeout=1)
            batch = await source.poll()
            assert batch.error is not None and "\n" not in batch.error
            assert "full" in batch.error.lower() or "disk" in batch.error.lower(), batch.error
            journaled = len(journal.events())
        await asyncio.sleep(1.2)
        left: Any = (await client.get_queue_properties()).approximate_message_count
    assert journaled + left == 20  # every message journaled or still queued
    tally.add("full disk under consume mode", injected=1, survived=1)
