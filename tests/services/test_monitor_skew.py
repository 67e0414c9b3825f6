"""The clock skew is measured once (by the Resource Graph runner) and applied once.

Regression: the runner set ``SystemClock.skew`` to the measured total and the monitor then
added that total again, so a server 3 minutes ahead showed as 6, then 9, ... minutes.
"""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from services.azure.monitor import Monitor
from services.azure.resourcegraph import Governor
from services.domain.clock import ManualClock, SystemClock
from services.settings import Settings

AHEAD = timedelta(minutes=3)


class _Page:
    def __init__(self) -> None:
        self.data: list[dict[str, Any]] = []
        self.skip_token = None


class ServerAhead:
    """A Resource Graph client whose server clock runs ``AHEAD`` of the real one."""

    def __init__(self) -> None:
        self.calls = 0

    async def resources(self, request: Any, raw_response_hook: Any = None) -> _Page:
        self.calls += 1
        server_now = SystemClock().now() + AHEAD
        response = type("R", (), {"headers": {"Date": format_datetime(server_now,
                                                                       usegmt=True)}})()
        if raw_response_hook is not None:
            raw_response_hook(type("H", (), {"http_response": response})())
        return _Page()

    async def close(self) -> None:
        return None


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> ServerAhead:
    import services.azure.clients as clients

    fake = ServerAhead()
    monkeypatch.setattr(clients, "make_async_credential", lambda settings: object())
    monkeypatch.setattr(clients, "async_resource_graph_client",
                        lambda settings, credential, **extra: fake)
    return fake


def _monitor(clock: Any) -> Monitor:
    # A governor on a manual clock: the quota never makes the test wait.
    return Monitor(Settings(), clock, governor=Governor(ManualClock(SystemClock().now())))


def _close_to(value: timedelta | None, expected: timedelta) -> bool:
    # The Date header has a one-second resolution.
    return value is not None and abs(value - expected) <= timedelta(seconds=2)


async def test_a_system_clock_is_corrected_once_not_twice(server: ServerAhead) -> None:
    clock = SystemClock()
    monitor = _monitor(clock)
    for _ in range(3):  # repeated polls must not add the skew up
        await monitor.poll_configs()
    assert server.calls == 3
    assert _close_to(clock.skew, AHEAD), clock.skew
    assert _close_to(monitor.skew, AHEAD), monitor.skew
    assert _close_to(monitor.measured_skew, AHEAD)
    await monitor.close()


async def test_apply_skew_false_measures_but_leaves_the_clock_alone(server: ServerAhead
                                                                    ) -> None:
    clock = SystemClock()
    monitor = Monitor(Settings(), clock, governor=Governor(ManualClock(SystemClock().now())),
                      apply_skew=False)
    await monitor.poll_configs()
    await monitor.poll_configs()
    assert clock.skew == timedelta(0)
    assert _close_to(monitor.skew, AHEAD)
    await monitor.close()


async def test_a_manual_clock_is_never_corrected(server: ServerAhead) -> None:
    start = SystemClock().now()
    clock = ManualClock(start)
    monitor = _monitor(clock)
    await monitor.poll_configs()
    assert clock.now() == start
    assert _close_to(monitor.skew, AHEAD)
    await monitor.close()
