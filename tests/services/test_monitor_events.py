"""The monitor's events source survives a poll cancelled while it is being set up (a Ctrl+R
at start-up restarts the events worker): found by the one-truth scenario, where a peeking
dashboard then never read its queue for the whole session."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from services.azure import monitor as monitor_module
from services.azure.monitor import Monitor
from services.domain.clock import ManualClock
from services.settings import Settings

CONNECTION = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
              "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
              "QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;")


async def test_an_events_poll_cancelled_during_set_up_leaves_the_next_one_to_set_it_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    calls: list[Any] = []

    def slow_import(*args: Any) -> None:
        calls.append(args)
        release.wait(5)

    monkeypatch.setattr(monitor_module, "_import_sdks", slow_import)
    settings = Settings(queue_connection_string=CONNECTION, queue_name="aum-events")
    monitor = Monitor(settings, ManualClock(datetime(2026, 3, 10, 12, tzinfo=UTC)))
    first = asyncio.ensure_future(monitor._ensure_events())
    while not calls:
        await asyncio.sleep(0.01)
    first.cancel()  # the worker restarted while the SDKs were still being imported
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await first
    source = await monitor._ensure_events()
    assert source is not None, monitor._events_error
    await monitor.close()
