"""Figure 2: process start to first frame, and to the first frame showing configurations from
the stand-in (the dashboard in a pty, :mod:`bench.dashboard`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.dashboard import DashboardProcess
from bench.result import FigureResult, median, percentile
from bench.standin import CountingServer, build_world, config_name, config_toml
from services.domain.clock import SystemClock

CONFIGS = 50
#: Any configuration row on screen counts (the table's sort order is the app's business).
DATA_MARK = b"bcfg000"
TITLE_MARK = b"aumwatch"
TIMEOUT = 30.0


def run(quick: bool) -> FigureResult:
    """Median (p95) of N cold dashboard starts against a stand-in with 50 configurations."""
    out = FigureResult(2, "Dashboard start: first frame; first frame with configurations",
                       "<= 0.6 s; <= 2.0 s")
    runs = 2 if quick else 7
    world = build_world(CONFIGS, subscriptions=2, clock=SystemClock())
    first: list[float] = []
    data: list[float] = []
    with CountingServer(world) as server, tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "aumwatch.toml"
        config.write_text(config_toml(server.server, list(world.subscriptions),
                                      data_dir=Path(scratch) / "data"), encoding="utf-8")
        config.chmod(0o600)
        env = {"XDG_DATA_HOME": str(Path(scratch) / "xdg-data"),
               "XDG_CONFIG_HOME": str(Path(scratch) / "xdg-config")}
        for _ in range(runs + 1):  # the first start warms the page cache and is dropped
            with DashboardProcess(config, {"title": TITLE_MARK, "data": DATA_MARK},
                                  env=env) as app:
                title = app.wait_for("title", TIMEOUT)
                rows = app.wait_for("data", TIMEOUT)
            if title is None:
                raise RuntimeError("the dashboard drew no frame with its title within "
                                   f"{TIMEOUT:g} s")
            first.append(title)
            if rows is not None:
                data.append(rows)
    first, data = first[1:], data[1:] if len(data) > 1 else data
    out.metrics["first_frame_median_s"] = median(first)
    out.metrics["first_frame_p95_s"] = percentile(first, 95)
    if not data:
        out.status = "pending"
        out.reason = (f"the dashboard never drew a configuration ({config_name(0)}...) within "
                      f"{TIMEOUT:g} s: its data path is not ready")
        return out
    out.metrics["first_data_frame_median_s"] = median(data)
    out.metrics["first_data_frame_p95_s"] = percentile(data, 95)
    out.notes.append(f"{runs} cold starts after one warm-up; pty {CONFIGS} configurations; "
                     "marks: first output containing the title / a configuration name")
    if median(first) > 0.6:
        out.notes.append(f"MISSED: first frame median {median(first):.3f} s > 0.6 s")
    if median(data) > 2.0:
        out.notes.append(f"MISSED: data frame median {median(data):.3f} s > 2.0 s")
    return out
