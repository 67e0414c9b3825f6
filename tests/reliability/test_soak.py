"""Soak: hours of simulated time on a sped-up clock, with faults switched on at random.

The demo scenario runs in a :class:`SimEnvironment` (stand-in, Azurite, scenario engine) at
``speed`` simulated seconds per real second. A poll loop reads configurations, runs and the
events queue (consume mode, journal) like the dashboard's workers do, while random stand-in
faults (429, 5xx, slow, drop, 401) come and go. Afterwards: no exception other than the
service's own error escaped, memory stayed bounded, and the journal is consistent (integrity
check, each event once). CI runs one simulated hour; the slow marker six.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import psutil
import pytest

from services.azure.eventsource import EventSource, make_queue_client
from services.azure.journal import Journal
from services.azure.resourcegraph import QueryRunner
from services.azure.sources import ConfigSource, RunSource
from services.domain.clock import SystemClock
from services.domain.errors import ServiceError
from services.settings import load_settings
from services.standin.runner import SimEnvironment
from tests.reliability.conftest import Tally

pytestmark = pytest.mark.integration

FAULT_KINDS = ["throttle", "throttle-no-retry-after", "error500", "error503", "slow", "drop",
               "expired-token"]
#: Memory may grow this much after the warm-up (caches, SDK pools) and no more.
MEMORY_BOUND = 60 * 1024 * 1024


async def _soak(hours: float, speed: float, tmp_path: Path, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    process = psutil.Process()
    with SimEnvironment(speed=speed, config_path=tmp_path / "sim.toml",
                        server_options={"quota_limit": 100_000}) as env:
        settings = load_settings({"request_timeout": None},
                                 env={"AUMWATCH_REQUEST_TIMEOUT": "1s"},
                                 config_path=env.config_path)
        server = env.server
        journal_path = tmp_path / "journal.sqlite3"
        counts = {"polls": 0, "errors": 0, "faults": 0, "events": 0}
        began_sim = env.clock.now()
        rss_after_warmup: int | None = None
        async with QueryRunner.from_settings(settings, clock=SystemClock()) as runner:
            queue = make_queue_client(settings.queue_name or "",
                                      connection_string=settings.queue_connection_string)
            async with queue:
                with Journal(journal_path) as journal:
                    events = EventSource(queue, clock=env.clock, journal=journal,
                                         mode="consume", visibility_timeout=2)
                    while env.clock.now() - began_sim < timedelta(hours=hours):
                        if rng.random() < 0.3:
                            server.faults.set(rng.choice(FAULT_KINDS), count=rng.randint(1, 2),
                                              scope=rng.choice(["graph", "arm", "all"]),
                                              retry_after=0.1, delay=1.5)
                            counts["faults"] += 1
                        for fetch in (ConfigSource(runner).fetch,
                                      RunSource(runner).fetch_observed):
                            try:
                                await fetch()
                            except ServiceError:
                                counts["errors"] += 1
                        batch = await events.poll()
                        counts["events"] += len(batch.events)
                        counts["polls"] += 1
                        if counts["polls"] == 5:
                            rss_after_warmup = process.memory_info().rss
                        await asyncio.sleep(0.05)
                    server.faults.clear()
                    # The last poll after the faults are gone succeeds.
                    assert len((await ConfigSource(runner).fetch()).items) > 0
                    assert (await events.poll()).error is None
        rss_end = process.memory_info().rss
    conn = sqlite3.connect(journal_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        total, distinct = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT dedupe_key) FROM events").fetchone()
    finally:
        conn.close()
    assert total == distinct == counts["events"], counts
    assert counts["polls"] >= 8, counts
    assert rss_after_warmup is not None
    growth = rss_end - rss_after_warmup
    assert growth < MEMORY_BOUND, f"memory grew {growth / 1e6:.1f} MB"
    tally.add(f"soak: {hours:g} simulated h, random stand-in faults", injected=counts["faults"],
              survived=counts["faults"])
    tally.add(f"soak: {hours:g} simulated h, events journaled", injected=counts["events"],
              survived=total)


async def test_soak_one_simulated_hour(tmp_path: Path, tally: Tally) -> None:
    began = time.monotonic()
    await _soak(1.0, 300.0, tmp_path, tally, seed=3)
    assert time.monotonic() - began < 60


@pytest.mark.slow
async def test_soak_six_simulated_hours(tmp_path: Path, tally: Tally) -> None:
    await _soak(6.0, 240.0, tmp_path, tally, seed=5)
