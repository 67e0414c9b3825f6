"""Figure 4: Resource Graph requests per refresh (10 / 1,000 / 5,000 configurations over 10
subscriptions), aumwatch's ConfigSource + RunSource vs the naive per-configuration poller;
and the Event Grid wiring's refresh (issue 11): one system topic per configuration, read by
``WiringSource.fetch`` (its topics query, then ARM reads per topic), and a second fetch
within the refresh interval, which must send nothing."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import timedelta
from typing import Any

from bench import naive
from bench.result import FigureResult, median
from bench.standin import NOW, RAISED_QUOTA, CountingServer, build_world, standin_settings
from services.azure.clients import AsyncStaticTokenCredential
from services.azure.eventgrid import WiringSource, eventgrid_factory
from services.azure.resourcegraph import Governor, QueryRunner
from services.azure.sources import ConfigSource, RunSource
from services.domain.clock import ManualClock, SystemClock
from services.domain.runs import expected_runs, merge_runs
from services.standin.server import DEFAULT_QUOTA_LIMIT, DEFAULT_QUOTA_WINDOW

SIZES = (10, 1_000, 5_000)
QUICK_SIZES = (10, 1_000)
SUBSCRIPTIONS = 10
#: The naive poller is timed on at most this many configurations and extrapolated (it would
#: need 2 x 5,000 queries for the largest size).
NAIVE_CAP = 200
QUICK_NAIVE_CAP = 20


def _runner(server: CountingServer, subs: list[str], clock: ManualClock,
            governor: Governor) -> QueryRunner:
    settings = standin_settings(server.server, subs)
    return QueryRunner.from_settings(settings, clock=clock, governor=governor,
                                     credential=AsyncStaticTokenCredential(server.server.token))


async def _aumwatch_refresh(runner: QueryRunner, clock: ManualClock) -> tuple[int, int, int]:
    """One dashboard refresh: configurations, then runs merged with the schedules."""
    configs = await ConfigSource(runner, clock=clock).fetch()
    runs = await RunSource(runner, clock=clock).fetch_observed()
    merged = merge_runs(runs.items, expected_runs(configs.items))
    observed = sum(1 for r in merged if not r.expected)
    return len(configs.items), observed, configs.requests + runs.requests


def add_topics(world: Any) -> int:
    """A system topic on every configuration (no subscriptions); returns how many."""
    count = 0
    for config in world.configurations():
        topic_id = config["id"].rsplit("/providers/", 1)[0] + \
            f"/providers/Microsoft.EventGrid/systemTopics/{config['name']}-events"
        status, body, _ = world.eventgrid.put_topic(topic_id, {
            "location": config.get("location") or "global",
            "properties": {"source": config["id"],
                           "topicType": "Microsoft.Maintenance.MaintenanceConfigurations"}})
        if status >= 400:
            raise RuntimeError(f"stand-in refused a topic: {body}")
        count += 1
    return count


async def _wiring_refresh(server: CountingServer, subs: list[str], clock: ManualClock,
                          governor: Governor) -> tuple[int, int, int, int, float]:
    """Two ``WiringSource.fetch`` calls within the refresh interval: (Resource Graph requests
    of the first, ARM requests of the first, Resource Graph + ARM requests of the second,
    wirings, seconds of the first)."""
    settings = standin_settings(server.server, subs)
    credential = AsyncStaticTokenCredential(server.server.token)
    runner = QueryRunner.from_settings(settings, clock=clock, governor=governor,
                                       credential=credential)
    async with runner:
        configs = (await ConfigSource(runner, clock=clock).fetch()).items
        source = WiringSource(runner, eventgrid_factory(settings, credential), watched=None,
                              clock=clock, concurrency=8)
        server.reset()
        t0 = time.perf_counter()
        snapshot = await source.fetch(configs)
        seconds = time.perf_counter() - t0
        graph, arm = server.graph_requests(), server.counts["arm"]
        server.reset()
        await source.fetch(configs)
        second = server.graph_requests() + server.counts["arm"]
    return graph, arm, second, len(snapshot.wirings), seconds


def real_quota_seconds(requests: int) -> float:
    """The least time ``requests`` queries take under ARG's 15-per-5-s quota (one identity)."""
    if requests <= DEFAULT_QUOTA_LIMIT:
        return 0.0
    return math.ceil(requests / DEFAULT_QUOTA_LIMIT - 1) * DEFAULT_QUOTA_WINDOW


async def _measure(size: int, quick: bool, out: FigureResult) -> None:
    clock = ManualClock(NOW)
    world = build_world(size, subscriptions=SUBSCRIPTIONS, clock=clock)
    subs = list(world.subscriptions)
    # aumwatch's path meets the real quota where 15 per 5 s suffices; the raised one for 5,000.
    quota = DEFAULT_QUOTA_LIMIT if size <= 1_000 else RAISED_QUOTA
    with CountingServer(world, quota_limit=quota) as server:
        if not server.counting:
            out.notes.append("stand-in request counter unavailable: counts are client-side")
        governor = Governor(SystemClock())  # the app's default pacing (15 per 5 s)
        runner = _runner(server, subs, clock, governor)
        times: list[float] = []
        requests = client_requests = 0
        rows = (0, 0)
        async with runner:
            for attempt in range(1 if quick else 3):
                if attempt:
                    await asyncio.sleep(DEFAULT_QUOTA_WINDOW)  # a fresh quota window per try
                server.reset()
                t0 = time.perf_counter()
                n_cfg, n_runs, client_requests = await _aumwatch_refresh(runner, clock)
                times.append(time.perf_counter() - t0)
                requests = server.graph_requests() if server.counting else client_requests
                rows = (n_cfg, n_runs)
        target = math.ceil(max(rows[0], 1) / 1000) + math.ceil(max(rows[1], 1) / 1000)

        # The wiring (issue 11): one topic per configuration; its topics query is one paged
        # query for the whole scope, whatever the number of configurations.
        topics = add_topics(world)
        clock.advance(timedelta(minutes=2))  # past the stand-in's Resource Graph lag (<= 90 s)
        (wiring_graph, wiring_arm, wiring_second, wirings,
         wiring_seconds) = await _wiring_refresh(server, subs, clock, Governor(SystemClock()))

        # The naive poller, on a capped subset, with the quota out of the way (its real-quota
        # time is computed from its request count instead).
        cap = min(size, QUICK_NAIVE_CAP if quick else NAIVE_CAP)
        server.set_quota(RAISED_QUOTA)
        ids = sorted(c["id"] for c in world.configurations())[:cap]
        naive_runner = _runner(server, subs, clock,
                               Governor(SystemClock(), limit=RAISED_QUOTA))
        async with naive_runner:
            server.reset()
            t0 = time.perf_counter()
            naive_cfg, naive_runs = await naive.naive_refresh(naive_runner, ids)
            naive_time = time.perf_counter() - t0
            naive_measured = server.graph_requests()
        per_config = naive_measured / cap
        naive_requests = per_config * size
        naive_seconds = naive_time * size / cap

    key = f"{size}"
    out.metrics.update({
        f"configs_{key}": rows[0],
        f"observed_runs_{key}": rows[1],
        f"aumwatch_requests_{key}": requests,
        f"aumwatch_client_counted_requests_{key}": client_requests,
        f"target_requests_{key}": target,
        f"aumwatch_refresh_s_{key}": median(times),
        f"naive_requests_{key}": naive_requests,
        f"naive_refresh_s_{key}": naive_seconds,
        f"naive_real_quota_s_{key}": real_quota_seconds(round(naive_requests)),
        f"aumwatch_real_quota_s_{key}": real_quota_seconds(requests),
        f"request_ratio_naive_over_aumwatch_{key}": naive_requests / max(requests, 1),
        f"wiring_topics_{key}": topics,
        f"wiring_graph_requests_{key}": wiring_graph,
        f"wiring_target_graph_requests_{key}": math.ceil(max(topics, 1) / 1000),
        f"wiring_arm_requests_{key}": wiring_arm,
        f"wiring_second_fetch_requests_{key}": wiring_second,
        f"wiring_refresh_s_{key}": wiring_seconds,
    })
    if wirings != rows[0]:
        out.notes.append(f"{size}: the wiring covered {wirings} of {rows[0]} configurations")
    if wiring_graph > math.ceil(max(topics, 1) / 1000) or wiring_second:
        out.notes.append(f"{size}: MISSED: wiring refresh sent {wiring_graph} Resource Graph "
                         f"requests for {topics} topics; a second fetch sent {wiring_second}")
    if cap < size:
        out.notes.append(f"{size}: naive poller measured on {cap} configurations "
                         f"({naive_measured} requests, {naive_time:.2f} s) and extrapolated "
                         "linearly")
    if naive_cfg != cap or naive_runs != cap:
        out.notes.append(f"{size}: the naive poller found {naive_cfg} configurations and "
                         f"{naive_runs} runs for {cap} configurations")
    if requests > target:
        out.notes.append(f"{size}: MISSED: {requests} requests, target {target}")


def run(quick: bool) -> FigureResult:
    """Measure every size; requests are counted by the stand-in."""
    out = FigureResult(4, "Resource Graph requests per refresh (10 subscriptions)",
                       "ceil(rows/1000) per data kind; ratio vs naive reported")
    sizes = QUICK_SIZES if quick else SIZES
    for size in sizes:
        asyncio.run(_measure(size, quick, out))
    out.notes.append(f"quota window {DEFAULT_QUOTA_WINDOW:g} s; naive real-quota time = "
                     "ceil(requests/15 - 1) x 5 s")
    out.notes.append("wiring: one system topic per configuration, no subscriptions (one ARM "
                     "list per topic, no metrics read); wiring_graph_requests counted at the "
                     "stand-in; the second fetch is within the 5-min refresh")
    return out
