"""The poller aumwatch is compared with: one Resource Graph query per configuration and kind.

This is what a dashboard that loops over its configurations does ("for each configuration,
get it and get its runs"). It exists only in the bench, to measure the ratio in the same run.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.azure.resourcegraph import QueryRunner
from services.domain.configs import CONFIG_TYPE
from services.domain.runs import RUN_TYPE


def _kql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_query(config_id: str) -> str:
    return (f'resources | where type =~ "{CONFIG_TYPE}" | where id =~ {_kql_string(config_id)}'
            " | project id, name, resourceGroup, subscriptionId, location, properties, tags")


def runs_query(config_id: str, hours: int = 168) -> str:
    return (f'maintenanceresources | where type =~ "{RUN_TYPE}"'
            " | where tostring(properties.maintenanceConfigurationId) =~ "
            f"{_kql_string(config_id)}"
            f" | where todatetime(properties.startDateTime) >= ago({hours}h)"
            " | project id, name, properties")


async def naive_refresh(runner: QueryRunner, config_ids: Sequence[str]) -> tuple[int, int]:
    """One refresh the naive way; returns (rows of configurations, rows of runs)."""
    configs = runs = 0
    for config_id in config_ids:
        configs += len((await runner.query(config_query(config_id))).rows)
        runs += len((await runner.query(runs_query(config_id))).rows)
    return configs, runs
