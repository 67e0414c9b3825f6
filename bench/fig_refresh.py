"""Figure 5: main-thread time to apply one refresh (configurations + runs) to the dashboard,
5,000 configurations and 20,000 runs, with 1% and 100% of the rows changed; peak RSS; and the
cost of the one-second tick at that size.

It runs in a child process (``python -m bench.fig_refresh --child``) so the peak RSS is the
dashboard's alone. The app is headless (``App.run_test``) with polling off and is fed literal
snapshots through its public ``apply_configs`` / ``apply_runs`` (what its ``ConfigsFetched`` /
``RunsFetched`` handlers call). Our coroutine runs on the app's own loop, so the time of those
calls is main-thread time; "to idle" adds the repaint (``pilot.pause()``).
``--profile`` prints the top functions (cProfile) of the 100% refresh and of the tick.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import resource
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

from bench.result import FigureResult, median
from bench.standin import NOW, config_object, subscription

SIZES = (5_000, 20_000)
QUICK_SIZES = (500, 2_000)
REPEATS = 3
#: An initial apply slower than this means one sample per measurement, not REPEATS.
SLOW_APPLY_S = 5.0
#: The figure's time budget (the child is stopped after it; partial results are kept).
BUDGET_S = 240.0
QUICK_BUDGET_S = 60.0


def snapshots(n_configs: int, n_runs: int) -> tuple[Any, Any]:
    """Literal ``Fetched`` snapshots: configurations (schedules parsed as the source does) and
    finished runs spread evenly over them."""
    from services.domain.configs import configuration_from_row
    from services.domain.model import Fetched, Run

    configs = []
    for i in range(n_configs):
        config = configuration_from_row(config_object(i, subscription(1 + i % 10)), NOW)
        assert config is not None
        configs.append(config)
    runs = []
    per = max(1, n_runs // n_configs)
    for i in range(n_runs):
        config = configs[i % n_configs]
        start = NOW - timedelta(days=3, weeks=(i // n_configs) % max(per, 1),
                                minutes=i // (n_configs * per))
        name = start.strftime("%Y%m%d%H%M%S")
        runs.append(Run(
            correlation_id=f"{config.id}/providers/microsoft.maintenance/applyupdates/{name}",
            configuration_id=config.id, configuration_name=config.name, run_name=name,
            start=start, end=start + timedelta(hours=1), status="Completed",
            machines_total=4, machines_succeeded=4, machines_failed=0, machines_in_progress=0,
            last_update=start + timedelta(hours=1)))
    return Fetched(tuple(configs), NOW), Fetched(tuple(runs), NOW)


def changed(fetched_configs: Any, fetched_runs: Any, fraction: float, salt: int
            ) -> tuple[Any, Any]:
    """New snapshots where ``fraction`` of the configurations and runs show a different value
    (resource group; status and machine counts)."""
    from services.domain.model import Fetched

    def pick(count: int) -> set[int]:
        every = max(1, round(1 / fraction)) if fraction > 0 else count + 1
        return {i for i in range(count) if (i + salt) % every == 0}

    cfg_idx = pick(len(fetched_configs.items))
    run_idx = pick(len(fetched_runs.items))
    configs = tuple(replace(c, resource_group=f"{c.resource_group}-{salt}") if i in cfg_idx
                    else c for i, c in enumerate(fetched_configs.items))
    status = "Failed" if salt % 2 else "Completed"
    runs = tuple(replace(r, status=status, machines_failed=salt % 4 + 1) if i in run_idx else r
                 for i, r in enumerate(fetched_runs.items))
    return Fetched(configs, NOW), Fetched(runs, NOW)


async def measure(n_configs: int, n_runs: int, profile: bool) -> dict[str, float]:
    from services.domain.clock import ManualClock
    from services.settings import Settings
    from tui.app import AumwatchApp

    base_configs, base_runs = snapshots(n_configs, n_runs)
    app = AumwatchApp(Settings(), clock=ManualClock(NOW), poll=False)
    out: dict[str, float] = {}
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()

        dashboard = app.dashboard

        async def apply(configs: Any, runs: Any) -> tuple[float, float]:
            t0 = time.perf_counter()
            dashboard.apply_configs(configs)
            dashboard.apply_runs(runs)
            t1 = time.perf_counter()
            await pilot.pause()
            return t1 - t0, time.perf_counter() - t0

        _progress(out)
        first, first_idle = await apply(base_configs, base_runs)
        out["initial_apply_s"], out["initial_apply_to_idle_s"] = first, first_idle
        _progress(out)
        # Keep the run bounded when the app is slow at this size: one sample each.
        repeats = REPEATS if first < SLOW_APPLY_S else 1
        out["repeats"] = repeats
        salt = 1
        for label, fraction in (("1pct", 0.01), ("100pct", 1.0)):
            mains, idles = [], []
            for _ in range(repeats):
                configs, runs = changed(base_configs, base_runs, fraction, salt)
                salt += 1
                profiler = cProfile.Profile() if profile and label == "100pct" else None
                if profiler:
                    profiler.enable()
                main, idle = await apply(configs, runs)
                if profiler:
                    profiler.disable()
                    _print_profile(profiler, f"refresh {label}")
                    profile = False
                mains.append(main)
                idles.append(idle)
            out[f"apply_{label}_s"] = median(mains)
            out[f"apply_{label}_to_idle_s"] = median(idles)
            _progress(out)
        ticks = []
        for i in range(repeats):
            profiler = cProfile.Profile() if "--profile" in sys.argv and i == 0 else None
            if profiler:
                profiler.enable()
            t0 = time.perf_counter()
            dashboard.tick()
            ticks.append(time.perf_counter() - t0)
            if profiler:
                profiler.disable()
                _print_profile(profiler, "tick")
            await pilot.pause()
        out["tick_s"] = median(ticks)
        out["config_rows"] = len(dashboard.state.configs)
        out["runs_in_state"] = len(dashboard.state.runs)
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


def _progress(metrics: dict[str, float]) -> None:
    """What is measured so far, as one JSON line (the parent keeps the last on a timeout)."""
    print(json.dumps(metrics), flush=True)


def _print_profile(profiler: cProfile.Profile, title: str) -> None:
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(18)
    print(f"--- profile: {title} ---\n{stream.getvalue()}", file=sys.stderr)


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fig_refresh")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--configs", type=int, default=SIZES[0])
    parser.add_argument("--runs", type=int, default=SIZES[1])
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.configs, args.runs, args.profile))
    print(json.dumps(result))
    return 0


def run(quick: bool) -> FigureResult:
    """Measure in a child process; pending when the app has no apply_configs/apply_runs."""
    out = FigureResult(5, "Apply one refresh to the UI (5,000 configs, 20,000 runs)",
                       "1%: <= 50 ms; 100%: <= 500 ms; peak RSS <= 300 MB")
    try:
        from tui.screens.dashboard import DashboardScreen
    except Exception as exc:
        out.status, out.reason = "pending", f"the dashboard does not import: {exc}"
        return out
    if not all(hasattr(DashboardScreen, name) for name in ("apply_configs", "apply_runs",
                                                           "tick")):
        out.status = "pending"
        out.reason = "DashboardScreen has no apply_configs/apply_runs/tick to feed snapshots to"
        return out
    n_configs, n_runs = QUICK_SIZES if quick else SIZES
    budget = QUICK_BUDGET_S if quick else BUDGET_S
    cmd = [sys.executable, "-m", "bench.fig_refresh", "--child", "--configs", str(n_configs),
           "--runs", str(n_runs)]
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = child.communicate(timeout=budget)
        timed_out = False
    except subprocess.TimeoutExpired:
        child.kill()  # our own child, by its handle
        stdout, stderr = child.communicate()
        timed_out = True
    lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
    if child.returncode != 0 and not timed_out:
        raise RuntimeError(f"child failed ({child.returncode}): {stderr.strip()[-800:]}")
    metrics = json.loads(lines[-1]) if lines else {}
    out.metrics.update(metrics)
    if timed_out:
        out.metrics["budget_s"] = budget
        out.metrics["elapsed_lower_bound_s"] = time.perf_counter() - t0
        missing = "the initial apply" if "initial_apply_s" not in metrics else "the rest"
        out.notes.append(f"MISSED: the child did not finish within {budget:g} s ({missing} "
                         "never completed); metrics are what was measured before that")
    out.notes.append(f"{n_configs} configurations, {n_runs} runs; median of "
                     f"{int(metrics.get('repeats', REPEATS))}; "
                     "headless 160x50")
    for label, limit in (("1pct", 0.05), ("100pct", 0.5)):
        value = metrics.get(f"apply_{label}_s", 0.0)
        if value > limit:
            out.notes.append(f"MISSED: {label} apply {value:.3f} s > {limit:g} s")
    if metrics.get("peak_rss_bytes", 0) > 300 * 2**20:
        out.notes.append("MISSED: peak RSS above 300 MB")
    return out


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
