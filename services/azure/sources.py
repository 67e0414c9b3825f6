"""The sources: each fetches one kind of data from Resource Graph (or Resource Manager) in one
paged query per call and turns its rows into domain objects with the pure parsers of
:mod:`services.domain.configs`, :mod:`services.domain.runs` and :mod:`services.domain.machines`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.azure.resourcegraph import QueryRunner
from services.domain.clock import Clock, SystemClock
from services.domain.configs import CONFIGS_QUERY, DEFAULT_OCCURRENCES, configuration_from_row
from services.domain.errors import ServiceError, service_error
from services.domain.machines import machine_from_row, machines_query
from services.domain.model import Configuration, Fetched, Machine, Run
from services.domain.runid import RunIdError, parse_configuration_id
from services.domain.runs import DEFAULT_SINCE, run_from_row, runs_query


class ConfigSource:
    """Fetches every maintenance configuration in scope (one paged query per call)."""

    def __init__(
        self,
        runner: QueryRunner,
        *,
        clock: Clock | None = None,
        occurrences: int = DEFAULT_OCCURRENCES,
        maintenance_client_factory: Any = None,
    ) -> None:
        """``maintenance_client_factory(subscription_id)`` returns an async
        MaintenanceManagementClient (for :meth:`get`); see :func:`maintenance_factory`."""
        self.runner = runner
        self.clock: Clock = clock or runner.clock or SystemClock()
        self.occurrences = occurrences
        self._maintenance = maintenance_client_factory

    async def fetch(self) -> Fetched[Configuration]:
        """All configurations, sorted by name (then id)."""
        result = await self.runner.query(CONFIGS_QUERY, what="configurations query")
        now = self.clock.now()
        configs = [c for row in result.rows
                   if (c := configuration_from_row(row, now, occurrences=self.occurrences))]
        configs.sort(key=lambda c: (c.name.lower(), c.id.lower()))
        return Fetched(tuple(configs), result.fetched_at, result.skew, result.requests)

    async def get(self, configuration_id: str) -> Configuration:
        """Re-read one configuration from Resource Manager (authoritative, not lagging)."""
        if self._maintenance is None:
            raise ServiceError("config", "no maintenance client configured for ConfigSource.get")
        try:
            subscription, resource_group, name = parse_configuration_id(configuration_id)
        except RunIdError as exc:
            raise ServiceError("bad_request", str(exc)) from None
        client = self._maintenance(subscription)
        try:
            async with client:
                model = await client.maintenance_configurations.get(resource_group, name)
        except Exception as exc:  # mapped to one error type
            raise service_error(exc, what=f"reading configuration {name}") from exc
        body = model.serialize(keep_readonly=True)
        config = configuration_from_row(body, self.clock.now(), occurrences=self.occurrences)
        if config is None:
            raise ServiceError("server", f"configuration {name}: the answer has no id")
        return config


def maintenance_factory(settings: Any, credential: Any) -> Any:
    """A ``subscription_id -> async MaintenanceManagementClient`` factory for ConfigSource."""
    from services.azure.clients import async_maintenance_client

    def make(subscription_id: str) -> Any:
        return async_maintenance_client(settings, credential, subscription_id)

    return make


class RunSource:
    """Fetches schedule-level runs (one paged query per call), as Resource Graph shows them.

    It does not merge: the schedules' runs, the events' runs and the verified cancels are
    merged with these by :func:`services.domain.runs.merge_runs` (the dashboard's state, the
    ``runs`` command)."""

    def __init__(self, runner: QueryRunner, *, clock: Clock | None = None) -> None:
        self.runner = runner
        self.clock: Clock = clock or runner.clock or SystemClock()

    async def fetch_observed(self, since: timedelta = DEFAULT_SINCE) -> Fetched[Run]:
        """Runs Resource Graph knows, started within ``since`` (at most 30 days)."""
        result = await self.runner.query(runs_query(since), what="runs query")
        runs = [r for row in result.rows if (r := run_from_row(row)) is not None]
        return Fetched(tuple(runs), result.fetched_at, result.skew, result.requests)


class MachineSource:
    """Fetches the machines of one run (one paged query per call)."""

    def __init__(self, runner: QueryRunner, *, clock: Clock | None = None) -> None:
        self.runner = runner
        self.clock: Clock = clock or runner.clock or SystemClock()

    async def fetch(self, correlation_id: str) -> Fetched[Machine]:
        """Every machine of the run, sorted by name."""
        result = await self.runner.query(machines_query(correlation_id), what="machines query")
        seen: dict[str, Machine] = {}
        for row in result.rows:
            machine = machine_from_row(row)
            if machine is not None:
                # A machine with several patch rows for one run: keep the first (ordered).
                seen.setdefault(machine.resource_id.lower(), machine)
        machines = sorted(seen.values(), key=lambda m: (m.name.lower(), m.resource_id.lower()))
        return Fetched(tuple(machines), result.fetched_at, result.skew, result.requests)
