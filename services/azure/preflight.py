"""Pre-flight read (issue 18): one paged Resource Graph query per kind, then the pure rules.

Kinds: configurations, assignments (static and dynamic), candidate machines (Azure VMs, Arc
machines and their patch extensions), latest assessments, 30 days of patch results (each
machine's own durations), and the machine rows of runs that may be current (predicted against
actual). So a read costs ceil(rows/1000) requests per kind, whatever the number of
configurations. The roster and the risks come from :mod:`services.domain.preflight`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime

from services.azure.resourcegraph import QueryRunner
from services.domain import preflight as pf
from services.domain.clock import Clock, SystemClock
from services.domain.configs import CONFIGS_QUERY, configuration_from_row, in_patch_view
from services.domain.errors import ServiceError


@dataclass(frozen=True)
class PreflightSnapshot:
    """One read: the pre-flight of every configuration with a current or next run."""

    items: tuple[pf.Preflight, ...]
    fetched_at: datetime
    requests: int = 0  # Resource Graph requests it took
    seconds: float = 0.0  # wall time of the read
    error: str | None = None

    def for_configuration(self, configuration_id: str) -> pf.Preflight | None:
        key = configuration_id.lower()
        return next((p for p in self.items if p.configuration_id.lower() == key), None)


class PreflightSource:
    """Reads what pre-flight needs and applies the rules (see the module docstring)."""

    def __init__(self, runner: QueryRunner, *, rules: pf.FitRules | None = None,
                 clock: Clock | None = None, include_other_scopes: bool = False) -> None:
        self.runner = runner
        self.rules = rules or pf.FitRules()
        self.clock: Clock = clock or runner.clock or SystemClock()
        self.include_other_scopes = include_other_scopes

    async def fetch(self) -> PreflightSnapshot:
        """Read and judge; raises ServiceError (one line) when a query fails."""
        began = time.perf_counter()
        kinds = (
            (CONFIGS_QUERY, "configurations query"),
            (pf.ASSIGNMENTS_QUERY, "assignments query"),
            (pf.CANDIDATES_QUERY, "machines query"),
            (pf.ASSESSMENTS_QUERY, "assessments query"),
            (pf.DURATIONS_QUERY, "patch results query"),
            (pf.RUN_MACHINES_QUERY, "run machines query"),
        )
        results = await asyncio.gather(
            *(self.runner.query(q, what=what) for q, what in kinds))
        configs, assigns, machines, assessments, durations, run_rows = results
        now = self.clock.now()
        plans = []
        for row in configs.rows:
            config = configuration_from_row(row, now)
            if config is not None and in_patch_view(config.scope, self.include_other_scopes):
                plans.append(pf.plan_from_row(row, config))
        history: dict[str, list[pf.PastResult]] = {}
        for row in durations.rows:
            past = pf.past_result_from_row(row)
            if past is not None:
                history.setdefault(past.machine_id, []).append(past)
        latest: dict[str, pf.Assessment] = {}
        for row in assessments.rows:
            found = pf.assessment_from_row(row)
            if found is not None:
                latest[found.machine_id] = found
        world = pf.World(
            plans=tuple(plans),
            assignments=tuple(a for row in assigns.rows
                              if (a := pf.assignment_from_row(row)) is not None),
            candidates=tuple(pf.candidates_from_rows(machines.rows)),
            assessments=latest,
            history={k: tuple(v) for k, v in history.items()},
            run_machines={k: frozenset(v)
                          for k, v in pf.run_machine_ids(run_rows.rows).items()},
        )
        items = pf.preflight(world, now, self.rules)
        return PreflightSnapshot(tuple(items), now, sum(r.requests for r in results),
                                 time.perf_counter() - began)

    async def read(self) -> PreflightSnapshot:
        """:meth:`fetch`, with a failure kept as the snapshot's ``error`` (never raised)."""
        try:
            return await self.fetch()
        except ServiceError as exc:
            return PreflightSnapshot((), self.clock.now(), error=str(exc))
