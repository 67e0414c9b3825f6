"""Figure 7: cancel confirmed -> run verified Cancelled, against the stand-in.

:class:`services.azure.cancel.Canceller` with a real ``aio`` maintenance client: the PUT, then the
read-back, timed apart. Each sample cancels a different run (inside its cancel window).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.result import FigureResult, median, percentile
from bench.standin import NOW, CountingServer, add_run, build_world, standin_settings
from services.azure.cancel import Canceller, CancelTarget, maintenance_client_calls
from services.azure.clients import AsyncStaticTokenCredential, async_maintenance_client
from services.azure.journal import Journal
from services.domain.clock import ManualClock
from services.domain.runid import parse_run_id


async def _measure(samples: int, out: FigureResult) -> None:
    clock = ManualClock(NOW)
    world = build_world(samples, subscriptions=1, runs_per_config=0, clock=clock)
    # Each run starts in 20 min: its cancel window (T-40 .. T-10) is open now.
    start = NOW + timedelta(minutes=20)
    runs = [add_run(world, cfg, start, "Pending") for cfg in world.configurations()]
    with CountingServer(world) as server, tempfile.TemporaryDirectory() as scratch:
        settings = standin_settings(server.server, list(world.subscriptions))
        credential = AsyncStaticTokenCredential(server.server.token)
        sub = parse_run_id(runs[0].correlation_id).subscription_id
        client = async_maintenance_client(settings, credential, sub)
        async with client:
            send, read_back = maintenance_client_calls(client)
            phase: dict[str, float] = {}

            async def timed_send(path: str, api: str) -> Any:
                t0 = time.perf_counter()
                try:
                    return await send(path, api)
                finally:
                    phase["send"] = time.perf_counter() - t0

            async def timed_read(path: str, api: str) -> Any:
                t0 = time.perf_counter()
                try:
                    return await read_back(path, api)
                finally:
                    phase["reads"] = phase.get("reads", 0) + 1
                    phase["read"] = phase.get("read", 0.0) + time.perf_counter() - t0

            journal = Journal(Path(scratch) / "journal.sqlite3")
            canceller = Canceller(timed_send, timed_read, journal, clock)
            # Warm-up: the first request pays for the TLS handshake and SDK imports.
            await read_back(runs[0].correlation_id, canceller.api_version)
            totals, sends, reads, read_counts = [], [], [], []
            for run in runs:
                phase.clear()
                target = CancelTarget(run.correlation_id, run.configuration_id.rsplit("/")[-1],
                                      run.start)
                t0 = time.perf_counter()
                result = await canceller.cancel(target)
                totals.append(time.perf_counter() - t0)
                if not result.verified:
                    raise RuntimeError(f"cancel of {run.name} not verified: {result.message}")
                sends.append(phase["send"])
                reads.append(phase["read"])
                read_counts.append(phase["reads"])
            journal.close()
    out.metrics.update({
        "cancel_to_verified_median_s": median(totals),
        "cancel_to_verified_p95_s": percentile(totals, 95),
        "put_median_s": median(sends),
        "read_back_median_s": median(reads),
        "read_backs_per_cancel_median": median(read_counts),
        "cancels": len(totals),
    })
    if median(totals) > 1.0:
        out.notes.append(f"MISSED: median {median(totals):.3f} s > 1 s")


def run(quick: bool) -> FigureResult:
    """Median of N cancels, each of a different run."""
    out = FigureResult(7, "Cancel confirmed -> verified Cancelled (stand-in)",
                       "<= 1 s plus one read-back")
    asyncio.run(_measure(3 if quick else 15, out))
    out.notes.append("client: azure-mgmt-maintenance aio via maintenance_client_calls; "
                     "the audit journal (SQLite, temp dir) is written as in the app")
    return out
