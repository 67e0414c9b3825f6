"""Fixtures every test directory may use: the local Azure stand-in and Azurite
(defined in tests/standin.py)."""

from tests.standin import (  # noqa: F401  (fixtures, registered by being imported here)
    aio_eventgrid_client,
    aio_graph_client,
    aio_maintenance_client,
    azurite,
    graph_client,
    maintenance_client,
    queue,
    standin,
    standin_clock,
    standin_demo,
    standin_factory,
    standin_realistic,
    standin_world,
)
