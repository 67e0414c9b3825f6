"""Shared fixtures for tests against the local Azure stand-in and Azurite.

tests/conftest.py registers the fixtures for every test directory; import the helpers from
here (they are generic, not tied to one test file):

* ``standin_clock``: a :class:`ManualClock` at :data:`NOW` (move it with ``.advance``/``.set``).
* ``standin_world``: an empty :class:`World` on that clock with subscription :data:`SUB`
  registered. Add configurations, machines and runs before or after the server starts: the
  server reads the World live.
* ``standin``: a started :class:`StandInServer` on ``standin_world`` with the Resource Graph
  quota raised (so tests are not throttled) and **no Resource Graph lag** (``arg_lag=0``:
  every change is visible to a query at once); stopped after the test.
* ``standin_realistic``: the same server with the stand-in's realistic defaults, Resource
  Graph lag included (each change visible 5-90 s later on ``standin_clock``; what the World
  held at start is visible at once; ``server.settle()`` makes later setup visible at once).
* ``standin_factory``: ``standin_factory(world, **server_kwargs)`` starts another server (e.g.
  with the real 15-per-5-s quota or a ScaledClock world); each is stopped after the test.
  Unless the test passes ``arg_lag``, it gets ``arg_lag=0`` (immediate consistency).
* ``maintenance_client`` / ``graph_client`` (sync) and ``aio_maintenance_client`` /
  ``aio_graph_client`` (async): the real SDK clients pointed at ``standin``.
  ``sdk_kwargs(server)`` gives the keyword arguments to build more (add ``retry_total=0``
  etc. as needed).
* ``StaticTokenCredential`` / ``AsyncStaticTokenCredential``: credentials returning a fixed
  token (the stand-in's) that never expires.
* ``azurite``: a real Azurite queue server for the test module (modules that stop or restart
  it get their own); ``queue``: an async queue client on a fresh, empty queue in it.
* ``config_object(name, rg, sub)`` and ``add_run(world, config, start, ...)``: builders for a
  configuration's ARM object and a run (with machines) in a World.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from services.azure.eventsource import make_queue_client
from services.domain.clock import ManualClock
from services.standin.azurite import Azurite
from services.standin.server import StandInServer
from services.standin.world import (
    MachineResult,
    SimMachine,
    SimRun,
    World,
    configuration_object,
    run_name_for,
)

#: The stand-in's "now" in tests that use ``standin_clock``.
NOW = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)
#: The subscription ``standin_world`` starts with.
SUB = "00000000-0000-4000-8000-000000000001"
#: A Resource Graph quota high enough that no ordinary test is throttled.
RELAXED_QUOTA = 100_000

_FAR_FUTURE = int(time.time()) + 10 * 365 * 24 * 3600


class StaticTokenCredential:
    """A sync TokenCredential that always returns the same token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, _FAR_FUTURE)


class AsyncStaticTokenCredential:
    """An async TokenCredential that always returns the same token."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, _FAR_FUTURE)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> AsyncStaticTokenCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def config_object(name: str, rg: str = "rg-patch", sub: str = SUB) -> dict[str, Any]:
    """A maintenance configuration as ARM returns it (weekly, Saturday 02:00 Amsterdam)."""
    return configuration_object(sub, rg, name, {
        "startDateTime": "2026-01-01 02:00", "expirationDateTime": None,
        "duration": "03:00", "timeZone": "W. Europe Standard Time",
        "recurEvery": "Week Saturday",
    })


def add_run(world: World, config: dict[str, Any], start: datetime, *, status: str = "Pending",
            machines: int = 0, duration: timedelta = timedelta(hours=3),
            machine_status: str = "NotStarted") -> SimRun:
    """Add the configuration (if new), ``machines`` assigned VMs and a run starting at ``start``."""
    if world.get_configuration(config["id"]) is None:
        world.add_configuration(config)
    sub = config["id"].split("/")[2]
    rg = config["id"].split("/")[4]
    machine_ids = []
    for i in range(machines):
        mid = (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/"
               f"virtualMachines/{config['name']}-vm{i:03d}")
        if world.get_configuration(config["id"]) is not None and not any(
                m.id == mid for m in world.machines_of(config["id"])):
            world.add_machine(SimMachine(id=mid, name=mid.rsplit("/", 1)[-1],
                                         subscription_id=sub, resource_group=rg))
            world.assign(mid, config["id"])
        machine_ids.append(mid)
    run = SimRun(
        correlation_id=f"{config['id']}/providers/microsoft.maintenance/applyupdates/"
                       f"{run_name_for(start)}",
        configuration_id=config["id"], start=start, end=start + duration, status=status,
        machine_ids=machine_ids,
        results={mid: MachineResult(status=machine_status) for mid in machine_ids},
    )
    world.upsert_run(run)
    return run


def azure_toml(server: StandInServer, *, token: bool = True) -> str:
    """The ``[azure]`` table of a config file pointing aumwatch at ``server``: its endpoint,
    CA, :data:`SUB`, and its token (or none: then give it as ``AUMWATCH_TOKEN``)."""
    return ("[azure]\n"
            'cloud = "standin"\n'
            f'arm_endpoint = "{server.endpoint}"\n'
            f'ca_file = "{server.ca_file}"\n'
            + (f'token = "{server.token}"\n' if token else "")
            + f'subscriptions = ["{SUB}"]\n')


def pre_event_for(run: SimRun, configuration_name: str, **kw: Any) -> dict[str, Any]:
    """The pre-maintenance event of ``run`` as Azure sends it: at T-35m, cut-off at T-10m
    (``kw``: more of :func:`services.standin.events_out.build_event`'s arguments)."""
    from services.standin.events_out import build_event

    return build_event(kind="pre", correlation_id=run.correlation_id,
                       configuration_id=run.configuration_id,
                       configuration_name=configuration_name, start=run.start, end=run.end,
                       subscription_ids=[SUB], event_time=run.start - timedelta(minutes=35),
                       cutoff=run.start - timedelta(minutes=10), **kw)


def sdk_kwargs(server: StandInServer, **extra: Any) -> dict[str, Any]:
    """Keyword arguments that point an Azure SDK client at ``server``."""
    return {"base_url": server.endpoint, "connection_verify": server.ca_file, **extra}


@pytest.fixture
def standin_clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def standin_world(standin_clock: ManualClock) -> World:
    world = World(standin_clock)
    world.add_subscription(SUB)
    return world


@pytest.fixture
def standin_factory() -> Iterator[Callable[..., StandInServer]]:
    started: list[StandInServer] = []

    def start(world: World, **kwargs: Any) -> StandInServer:
        # Most tests check one behaviour at a time and need Resource Graph to agree with ARM
        # at once; a test about the lag passes arg_lag (None: the realistic default).
        kwargs.setdefault("arg_lag", 0)
        server = StandInServer(world, **kwargs)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def standin(standin_world: World,
            standin_factory: Callable[..., StandInServer]) -> StandInServer:
    # Immediate consistency, explicitly: tests on this fixture are not about the lag.
    return standin_factory(standin_world, quota_limit=RELAXED_QUOTA, arg_lag=0)


@pytest.fixture
def standin_realistic(standin_world: World,
                      standin_factory: Callable[..., StandInServer]) -> StandInServer:
    """The stand-in as Azure behaves, Resource Graph lag included (arg_lag=None: 5-90 s)."""
    return standin_factory(standin_world, quota_limit=RELAXED_QUOTA, arg_lag=None)


@pytest.fixture
def maintenance_client(standin: StandInServer) -> Iterator[Any]:
    from azure.mgmt.maintenance import MaintenanceManagementClient

    client = MaintenanceManagementClient(StaticTokenCredential(standin.token), SUB,
                                         **sdk_kwargs(standin))
    with client:
        yield client


@pytest.fixture
def graph_client(standin: StandInServer) -> Iterator[Any]:
    from azure.mgmt.resourcegraph import ResourceGraphClient

    client = ResourceGraphClient(StaticTokenCredential(standin.token), **sdk_kwargs(standin))
    with client:
        yield client


@pytest.fixture
async def aio_maintenance_client(standin: StandInServer) -> AsyncIterator[Any]:
    from azure.mgmt.maintenance.aio import MaintenanceManagementClient

    client = MaintenanceManagementClient(AsyncStaticTokenCredential(standin.token), SUB,
                                         **sdk_kwargs(standin))
    async with client:
        yield client


@pytest.fixture
async def aio_graph_client(standin: StandInServer) -> AsyncIterator[Any]:
    from azure.mgmt.resourcegraph.aio import ResourceGraphClient

    client = ResourceGraphClient(AsyncStaticTokenCredential(standin.token), **sdk_kwargs(standin))
    async with client:
        yield client


@pytest.fixture
async def aio_eventgrid_client(standin: StandInServer) -> AsyncIterator[Any]:
    """azure-mgmt-eventgrid's async client on ``standin`` (subscription :data:`SUB`)."""
    from azure.mgmt.eventgrid.aio import EventGridManagementClient

    client = EventGridManagementClient(AsyncStaticTokenCredential(standin.token), SUB,
                                       **sdk_kwargs(standin))
    async with client:
        yield client


@pytest.fixture(scope="module")
def standin_demo() -> Iterator[Any]:
    """The demo world of `aumwatch sim` / `aumwatch demo` (stand-in + Azurite) for the module:
    a :class:`services.standin.runner.SimEnvironment` with its ``config_path``."""
    from services.standin.azurite import AzuriteError
    from services.standin.runner import SimEnvironment

    env = SimEnvironment(step_interval=0.2)
    try:
        env.start()
    except AzuriteError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"Azurite unavailable: {exc}")
    yield env
    env.stop()


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    """A running Azurite for the module; stopped (with its node process) afterwards."""
    with Azurite() as server:
        yield server


@pytest.fixture
async def queue(azurite: Azurite) -> AsyncIterator[Any]:
    """An async queue client on a new, empty queue in ``azurite``."""
    client = make_queue_client(f"q{uuid.uuid4().hex[:12]}",
                               connection_string=azurite.connection_string)
    async with client:
        await client.create_queue()
        yield client
