"""Figure 12: Resource Graph requests per dashboard refresh with 1, 3 and 10 tenants
(issue 19).

The world: one subscription per tenant, 20 configurations each with one run; the stand-in
plays every tenant (its own token, refused outside its subscription); with 3 and more
tenants, the second tenant's subscription is also delegated to the first (Lighthouse), so
the first profile's queries return it too and the merge must keep it once, under its owner.
aumwatch reads them through ``[[tenants]]`` profiles with the dashboard's :class:`Monitor`
(one child monitor per profile: its own credential, runner and governor). One refresh is
``poll_configs`` then ``poll_runs``; requests are counted at the stand-in. Target: 2 per
tenant (one paged query per kind and profile), whatever the delegations."""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.result import FigureResult, median
from bench.standin import NOW, CountingServer, subscription
from services.azure.monitor import Monitor
from services.domain.clock import ManualClock
from services.settings import load_settings
from services.standin.server import DEFAULT_QUOTA_LIMIT
from services.standin.world import SimRun, World, configuration_object, run_name_for

TENANTS = (1, 3, 10)
CONFIGS_PER_TENANT = 20


def tenant_id(index: int) -> str:
    return f"{index:08d}-0000-4000-8000-000000000000"


def build(clock: ManualClock, tenants: int) -> World:
    world = World(clock)
    for t in range(1, tenants + 1):
        sub = subscription(t)
        world.add_subscription(sub)
        for c in range(CONFIGS_PER_TENANT):
            cfg = configuration_object(sub, "rg-patch", f"t{t:02d}-cfg{c:02d}", {
                "startDateTime": "2026-01-03 02:00", "expirationDateTime": None,
                "duration": "03:00", "timeZone": "UTC", "recurEvery": "Week Saturday"})
            world.add_configuration(cfg)
            start = NOW - timedelta(days=1)
            world.upsert_run(SimRun(f"{cfg['id']}/providers/microsoft.maintenance/"
                                    f"applyupdates/{run_name_for(start)}", cfg["id"], start,
                                    start + timedelta(hours=3), status="Completed"))
    return world


async def _measure(tenants: int, quick: bool, out: FigureResult) -> None:
    clock = ManualClock(NOW)
    world = build(clock, tenants)
    with CountingServer(world, quota_limit=DEFAULT_QUOTA_LIMIT) as counting, \
            tempfile.TemporaryDirectory() as tmp:
        server = counting.server
        lines = ["[azure]", 'cloud = "standin"', f'arm_endpoint = "{server.endpoint}"',
                 f'ca_file = "{server.ca_file}"']
        for t in range(1, tenants + 1):
            delegated = [subscription(2)] if t == 1 and tenants >= 3 else []
            sim = server.add_tenant(tenant_id(t), [subscription(t)], delegated=delegated)
            lines += ["", "[[tenants]]", f'name = "tenant{t}"', f'tenant = "{tenant_id(t)}"',
                      f'token = "{sim.token}"']
        path = Path(tmp) / "aumwatch.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        path.chmod(0o600)
        settings = load_settings({"data_dir": tmp}, env={}, config_path=path)
        monitor = Monitor(settings, clock)
        requests: list[int] = []
        times: list[float] = []
        configs = runs = 0
        try:
            for _ in range(2 if quick else 5):
                counting.reset()
                t0 = time.perf_counter()
                fetched = await monitor.poll_configs()
                snapshot = await monitor.poll_runs()
                times.append(time.perf_counter() - t0)
                requests.append(counting.graph_requests())
                configs, runs = len(fetched.items), len(snapshot.observed.items)
        finally:
            await monitor.close()
    out.metrics.update({
        f"tenants_{tenants}": tenants,
        f"requests_per_refresh_{tenants}": median([float(r) for r in requests]),
        f"target_requests_{tenants}": 2 * tenants,
        f"configurations_{tenants}": configs,
        f"runs_{tenants}": runs,
        f"refresh_s_{tenants}": median(times),
    })
    if max(requests) > 2 * tenants:
        out.notes.append(f"{tenants}: MISSED: {max(requests)} requests, target {2 * tenants}")
    if configs != tenants * CONFIGS_PER_TENANT:
        out.notes.append(f"{tenants}: {configs} configurations listed, not "
                         f"{tenants * CONFIGS_PER_TENANT} (a delegated one twice, or lost)")


def run(quick: bool) -> FigureResult:
    """Measure 1, 3 and 10 tenants; requests are counted by the stand-in."""
    out = FigureResult(12, "Several tenants: Resource Graph requests per refresh",
                       "2 per tenant (configurations + runs, one page each)")
    for tenants in TENANTS:
        asyncio.run(_measure(tenants, quick, out))
    out.notes.append(f"{CONFIGS_PER_TENANT} configurations and runs per tenant; with 3 and 10 "
                     "tenants tenant 2's subscription is also delegated to tenant 1; real "
                     "quota (15 per 5 s per token); time is the median of 5 refreshes "
                     "(2 quick), each tenant read side by side")
    return out
