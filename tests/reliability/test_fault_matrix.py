"""Fault matrix: every source against every fault the stand-in (or the proxy) can inject.

For each (source, fault) pair, with the fault switched on until cleared:

* the call ends within a bound derived from the request timeout (never hangs);
* it fails only with the service's own error (:class:`ServiceError`, or the batch's /
  result's one-line error for the sources that never raise), with a one-line message that
  names the failure;
* after the fault is cleared, the very next call succeeds (recovery without a restart).

Sources are the product's own classes on clients built by the product's factories
(``services.azure.clients``) from settings, so the request timeout and retry policies under
test are the real ones. Between client and stand-in sits a :class:`FaultProxy` so "connection
refused" (nothing listening) is a fault like the others. For the queue (Azurite has no fault
switch) the proxy injects the HTTP statuses too. Resource Manager clients get a short retry
backoff here so the matrix stays fast; their retry *count* is the SDK default.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.azure.cancel import Canceller, CancelTarget, Outcome, maintenance_client_calls
from services.azure.clients import (
    async_maintenance_client,
    make_async_credential,
    queue_service_kwargs,
)
from services.azure.eventsource import EventSource, make_queue_client
from services.azure.journal import Journal
from services.azure.resourcegraph import Governor, QueryRunner
from services.azure.sources import ConfigSource, MachineSource, RunSource
from services.domain.clock import ManualClock
from services.domain.errors import ServiceError
from services.settings import Settings, load_settings
from services.standin.azurite import Azurite, connection_string
from services.standin.server import StandInServer
from services.standin.world import World
from tests.reliability.conftest import Tally
from tests.reliability.faultproxy import FaultProxy
from tests.standin import NOW, SUB, add_run, config_object

pytestmark = pytest.mark.integration

#: The request timeout under test: short, so "slower than the timeout" is quick to show.
TIMEOUT_S = 1.0
#: A slow answer takes this long (beyond the timeout).
SLOW_S = 3.0
#: Fast SDK retry backoff for Resource Manager clients in this test (the count stays default).
FAST_RETRY = {"retry_backoff_factor": 0.05, "retry_backoff_max": 0.2}


@dataclass(frozen=True)
class FaultCase:
    """One fault: how to switch it on at the stand-in and at the proxy (for the queue)."""

    name: str
    standin: dict[str, Any] | None  # Faults.set kwargs (None: use the proxy instead)
    proxy: str | None  # FaultProxy mode for the stand-in's proxy (refused) or the queue's
    expected_kind: tuple[str, ...]  # ServiceError kinds that describe this fault


FAULTS = [
    FaultCase("429 with Retry-After", {"kind": "throttle", "retry_after": 0.1}, "http:429:0",
              ("throttled",)),
    FaultCase("429 without Retry-After", {"kind": "throttle-no-retry-after"}, "http:429",
              ("throttled",)),
    FaultCase("500", {"kind": "error500"}, "http:500", ("server",)),
    FaultCase("503", {"kind": "error503"}, "http:503", ("server",)),
    FaultCase("slow beyond the timeout", {"kind": "slow", "delay": SLOW_S}, "stall",
              ("timeout", "network")),
    FaultCase("dropped connection", {"kind": "drop"}, "drop", ("network",)),
    FaultCase("401 expired token", {"kind": "expired-token"}, "http:401", ("unauthorized",)),
    FaultCase("connection refused", None, "refuse", ("network",)),
]

SOURCES = ["configs", "runs", "machines", "config get (ARM)", "cancel", "events"]

#: Upper bound on one failing call, in request timeouts (SDK retries of a timed-out GET/PUT
#: included: azure-core retries those up to 3 times) plus scheduling slack.
BOUND_S = 4 * TIMEOUT_S + 8.0
#: The canceller sends one PUT and reads back READ_ATTEMPTS times, each a retried request.
READ_ATTEMPTS = 2
CANCEL_BOUND_S = (1 + READ_ATTEMPTS) * 4 * TIMEOUT_S + 8.0


def settings_for(server: StandInServer, port: int, tmp: Path) -> Settings:
    return load_settings(
        {"cloud": "standin", "arm_endpoint": f"https://127.0.0.1:{port}",
         "ca_file": server.ca_file, "subscriptions": [SUB], "data_dir": str(tmp)},
        env={"AUMWATCH_TOKEN": server.token,
             "AUMWATCH_REQUEST_TIMEOUT": f"{TIMEOUT_S}s"})


class Harness:
    """One source, its fault switch, and a call that returns None or a one-line error."""

    def __init__(self, call: Callable[[], Awaitable[str | None]],
                 inject: Callable[[FaultCase], None], clear: Callable[[], None]) -> None:
        self.call = call
        self.inject = inject
        self.clear = clear


def _one_line(message: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message, message


async def _raises_only_service_error(coro: Awaitable[Any]) -> str | None:
    try:
        await coro
    except ServiceError as exc:
        _one_line(str(exc))
        return f"{exc.kind}: {exc}"
    return None



@pytest.fixture
async def harness(request: pytest.FixtureRequest, standin: StandInServer,
                  standin_world: World, standin_clock: ManualClock,
                  tmp_path: Path) -> AsyncIterator[Harness]:
    source: str = request.param
    config = config_object("patch-nightly")
    run = add_run(standin_world, config, NOW + timedelta(minutes=30), machines=2)
    proxy = FaultProxy(int(standin.endpoint.rsplit(":", 1)[1]))
    settings = settings_for(standin, proxy.port, tmp_path)
    closers: list[Callable[[], Awaitable[Any]]] = []

    def inject_standin(case: FaultCase) -> None:
        if case.standin is None:
            proxy.set(case.proxy or "pass")
        else:
            standin.faults.set(**case.standin)

    def clear_standin() -> None:
        standin.faults.clear()
        proxy.set("pass")

    if source in ("configs", "runs", "machines"):
        gov_clock = ManualClock(NOW)

        async def advance(seconds: float) -> None:  # the governor's backoff, without waiting
            gov_clock.advance(timedelta(seconds=seconds))

        runner = QueryRunner.from_settings(settings, clock=standin_clock,
                                           governor=Governor(gov_clock, advance))
        closers.append(runner.close)
        if source == "configs":
            async def call() -> str | None:
                return await _raises_only_service_error(ConfigSource(runner).fetch())
        elif source == "runs":
            async def call() -> str | None:
                return await _raises_only_service_error(RunSource(runner).fetch_observed())
        else:
            async def call() -> str | None:
                return await _raises_only_service_error(
                    MachineSource(runner).fetch(run.correlation_id))
        yield Harness(call, inject_standin, clear_standin)
    elif source == "config get (ARM)":
        credential = make_async_credential(settings)
        configs = ConfigSource(QueryRunner.from_settings(settings, clock=standin_clock),
                               maintenance_client_factory=lambda sub: async_maintenance_client(
                                   settings, credential, sub, **FAST_RETRY))

        async def call() -> str | None:
            return await _raises_only_service_error(configs.get(config["id"]))
        closers.append(configs.runner.close)
        yield Harness(call, inject_standin, clear_standin)
    elif source == "cancel":
        credential = make_async_credential(settings)
        client = async_maintenance_client(settings, credential, SUB, **FAST_RETRY)
        await client.__aenter__()
        closers.append(client.close)
        journal = Journal(tmp_path / "journal.sqlite3")
        send, read_back = maintenance_client_calls(client)

        async def no_wait(seconds: float) -> None:
            return None

        canceller = Canceller(send, read_back, journal, standin_clock, read_attempts=READ_ATTEMPTS,
                              sleep=no_wait)
        target = CancelTarget(run.correlation_id, "patch-nightly", run.start)
        async def call() -> str | None:
            result = await canceller.cancel(target)
            _one_line(result.message)
            if result.outcome is Outcome.VERIFIED:
                return None
            return f"{result.outcome}: {result.message}"

        yield Harness(call, inject_standin, clear_standin)
        journal.close()
    else:  # events
        azurite: Azurite = request.getfixturevalue("azurite")
        qproxy = FaultProxy(azurite.port)
        name = f"q{uuid.uuid4().hex[:12]}"
        direct = make_queue_client(name, connection_string=azurite.connection_string)
        async with direct:
            await direct.create_queue()
            await direct.send_message('{"not": "an event"}')
        queue = make_queue_client(name, connection_string=connection_string("127.0.0.1",
                                                                            qproxy.port),
                                  **queue_service_kwargs(settings))
        await queue.__aenter__()
        closers.append(queue.close)
        events = EventSource(queue, clock=standin_clock)

        async def call() -> str | None:
            batch = await events.poll()
            if batch.error is not None:
                _one_line(batch.error)
                return batch.error
            return None

        yield Harness(call, lambda case: qproxy.set(case.proxy or "pass"),
                      lambda: qproxy.set("pass"))
        qproxy.close()
    for close in closers:
        await close()
    proxy.close()


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
@pytest.mark.parametrize("harness", SOURCES, indirect=True)
async def test_fault_is_one_clear_error_within_the_timeout_and_the_next_call_recovers(
        harness: Harness, fault: FaultCase, request: pytest.FixtureRequest,
        tally: Tally) -> None:
    source = request.node.callspec.params["harness"]
    assert await harness.call() is None, "the source must work before the fault"
    harness.inject(fault)
    began = time.monotonic()
    error = await harness.call()
    elapsed = time.monotonic() - began
    harness.clear()
    tally.add(f"fault matrix: {fault.name}", injected=1)
    bound = CANCEL_BOUND_S if source == "cancel" else BOUND_S
    assert elapsed < bound, f"{source} took {elapsed:.1f}s under {fault.name}"
    if source == "cancel":
        # The canceller never raises: a fault is a refused/failed/unknown result, one line.
        assert error is not None and not error.startswith("verified")
    else:
        assert error is not None, f"{source} did not report {fault.name}"
        if source != "events":
            assert error.split(":", 1)[0] in fault.expected_kind, error
    recovered = await harness.call()
    assert recovered is None, f"{source} did not recover after {fault.name}: {recovered}"
    tally.add(f"fault matrix: {fault.name}", survived=1)
