"""Figure 11: a pre-flight read (issue 18) for 10 / 1,000 / 5,000 machines: Resource Graph
requests (counted at the stand-in) and the time of ``PreflightSource.fetch`` (its six paged
queries, then the pure rules).

The world: N Azure VMs over 10 subscriptions, one configuration per 100 machines (at least
one); half the machines statically assigned, the other half found by one dynamic scope per
configuration (its subscription and a tag); every machine assessed and with its patch
extension; one finished run per configuration whose results give the static machines' past
durations. Target: ceil(rows/1000) requests per kind (configurations, assignments, machines
with their extensions, assessments, 30-day results, current runs' machine rows)."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import timedelta

from bench.result import FigureResult, median
from bench.standin import NOW, RAISED_QUOTA, CountingServer, standin_settings, subscription
from services.azure.clients import AsyncStaticTokenCredential
from services.azure.preflight import PreflightSource
from services.azure.resourcegraph import Governor, QueryRunner
from services.domain.clock import ManualClock, SystemClock
from services.standin.server import DEFAULT_QUOTA_LIMIT, DEFAULT_QUOTA_WINDOW
from services.standin.world import (
    MachineResult,
    SimMachine,
    SimRun,
    SimScope,
    World,
    configuration_object,
    run_name_for,
)

SIZES = (10, 1_000, 5_000)
QUICK_SIZES = (10, 1_000)
SUBSCRIPTIONS = 10
MACHINES_PER_CONFIG = 100


def build(machines: int, clock: ManualClock) -> tuple[World, dict[str, int]]:
    """The world above, and the rows each query kind returns."""
    world = World(clock)
    subs = [subscription(i) for i in range(1, SUBSCRIPTIONS + 1)]
    for sub in subs:
        world.add_subscription(sub)
    n_configs = max(1, machines // MACHINES_PER_CONFIG)
    configs = []
    for i in range(n_configs):
        sub = subs[i % len(subs)]
        cfg = configuration_object(sub, "rg-patch", f"pf{i:04d}", {
            "startDateTime": "2026-01-03 02:00", "expirationDateTime": None,
            "duration": "03:00", "timeZone": "UTC", "recurEvery": "Week Saturday"})
        world.add_configuration(cfg)
        world.add_scope(SimScope(cfg["id"], sub, tags={"ring": (cfg["name"],)}))
        configs.append(cfg)
    static: dict[str, list[str]] = {}
    assessed = NOW - timedelta(hours=5)
    for n in range(machines):
        cfg = configs[n % n_configs]
        dynamic = n % 2 == 1
        sub = subs[configs.index(cfg) % len(subs)] if dynamic else subs[n % len(subs)]
        name = f"vm{n:05d}"
        machine = SimMachine(
            id=f"/subscriptions/{sub}/resourceGroups/rg-vms/providers/"
               f"Microsoft.Compute/virtualMachines/{name}",
            name=name, subscription_id=sub, resource_group="rg-vms",
            os_type="Windows" if n % 3 else "Linux", pending={"critical": n % 4, "security": 2},
            assessed=assessed, tags={"ring": cfg["name"]} if dynamic else {},
            power="running" if n % 50 else "deallocated")
        world.add_machine(machine)
        if not dynamic:
            world.assign(machine.id, cfg["id"])
            static.setdefault(cfg["id"], []).append(machine.id)
    last = NOW - timedelta(days=3)
    results = 0
    for cfg in configs:
        ids = static.get(cfg["id"], [])
        run = SimRun(f"{cfg['id']}/providers/microsoft.maintenance/applyupdates/"
                     f"{run_name_for(last)}", cfg["id"], last, last + timedelta(hours=3),
                     status="Completed", machine_ids=list(ids))
        for mid in ids:
            run.results[mid] = MachineResult("Succeeded", installed=4, started=last,
                                             ended=last + timedelta(minutes=40))
        world.upsert_run(run)
        results += len(ids)
    n_static = sum(len(v) for v in static.values())
    rows = {"configurations": n_configs, "assignments": n_static + n_configs,
            "machines": 2 * machines, "assessments": machines, "results": results,
            "run machines": 0}
    return world, rows


async def _measure(size: int, quick: bool, out: FigureResult) -> None:
    clock = ManualClock(NOW)
    world, rows = build(size, clock)
    target = sum(max(1, math.ceil(n / 1000)) for n in rows.values())
    # The real quota where one read fits in it; raised (and the pacing off) above.
    real = target <= DEFAULT_QUOTA_LIMIT
    with CountingServer(world, quota_limit=DEFAULT_QUOTA_LIMIT if real else RAISED_QUOTA) \
            as server:
        settings = standin_settings(server.server, list(world.subscriptions))
        governor = (Governor(SystemClock()) if real
                    else Governor(SystemClock(), limit=RAISED_QUOTA))
        runner = QueryRunner.from_settings(
            settings, clock=clock, governor=governor,
            credential=AsyncStaticTokenCredential(server.server.token))
        times: list[float] = []
        requests = 0
        at_risk = roster = 0
        async with runner:
            source = PreflightSource(runner, clock=clock)
            for attempt in range(1 if quick else 3):
                if attempt and real:
                    await asyncio.sleep(DEFAULT_QUOTA_WINDOW)  # a fresh quota window per try
                server.reset()
                t0 = time.perf_counter()
                snapshot = await source.fetch()
                times.append(time.perf_counter() - t0)
                requests = server.graph_requests() if server.counting else snapshot.requests
                roster = sum(len(p.machines) for p in snapshot.items)
                at_risk = sum(p.at_risk for p in snapshot.items)
    out.metrics.update({
        f"machines_{size}": size,
        f"configurations_{size}": rows["configurations"],
        f"roster_{size}": roster,
        f"at_risk_{size}": at_risk,
        f"requests_{size}": requests,
        f"target_requests_{size}": target,
        f"read_s_{size}": median(times),
    })
    if roster != size:
        out.notes.append(f"{size}: the rosters hold {roster} machines, not {size}")
    if requests > target:
        out.notes.append(f"{size}: MISSED: {requests} requests, target {target}")
    if not real:
        out.notes.append(f"{size}: {target} requests exceed one quota window: measured with "
                         "the quota raised; under the real one the read waits "
                         f"{math.ceil(target / DEFAULT_QUOTA_LIMIT - 1) * DEFAULT_QUOTA_WINDOW:g}"
                         " s more")


def run(quick: bool) -> FigureResult:
    """Measure every size; requests are counted by the stand-in."""
    out = FigureResult(11, "Pre-flight read: Resource Graph requests and time",
                       "ceil(rows/1000) requests per kind (6 kinds)")
    for size in QUICK_SIZES if quick else SIZES:
        asyncio.run(_measure(size, quick, out))
    out.notes.append("rows per kind: configurations N/100, assignments N/2 + N/100, machines "
                     "2N (each VM and its patch extension), assessments N, results N/2, "
                     "current runs' machine rows 0; time is the median of 3 reads (1 quick)")
    return out
