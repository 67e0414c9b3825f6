"""Figure 6: CPU of an idle dashboard (countdowns ticking, polls answered with no change).

The dashboard runs in a pty against the stand-in (500 configurations) and Azurite (an empty
events queue); once it shows data and has settled, its process CPU time (user + system, via
psutil) is read at the start and end of the interval.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.dashboard import DashboardProcess
from bench.result import FigureResult
from bench.standin import CountingServer, build_world, config_toml
from services.domain.clock import SystemClock
from services.standin.azurite import Azurite

CONFIGS = 500
SETTLE_S = 5.0


def run(quick: bool) -> FigureResult:
    """CPU % of one core over 60 s (quick: 5 s)."""
    out = FigureResult(6, "Idle CPU (countdowns ticking, polls with no change)",
                       "<= 2% of one core")
    interval = 5.0 if quick else 60.0
    world = build_world(CONFIGS, subscriptions=10, clock=SystemClock())
    with CountingServer(world) as server, Azurite() as azurite, \
            tempfile.TemporaryDirectory() as scratch:
        from azure.storage.queue import QueueClient

        queue = QueueClient.from_connection_string(azurite.connection_string, "bench-idle")
        queue.create_queue()
        queue.close()
        config = Path(scratch) / "aumwatch.toml"
        config.write_text(config_toml(server.server, list(world.subscriptions),
                                      queue_connection_string=azurite.connection_string,
                                      queue_name="bench-idle",
                                      data_dir=Path(scratch) / "data"), encoding="utf-8")
        config.chmod(0o600)
        env = {"XDG_DATA_HOME": str(Path(scratch) / "xdg-data")}
        with DashboardProcess(config, {"data": b"bcfg00"}, env=env) as app:
            if app.wait_for("data", 30.0) is None:
                out.status = "pending"
                out.reason = "the dashboard never showed the stand-in's configurations"
                return out
            time.sleep(SETTLE_S)
            server.reset()
            usage = app.measure(interval)
            graph = server.graph_requests()
    out.metrics.update({
        "interval_s": usage.wall_s,
        "cpu_s": usage.cpu_s,
        "cpu_percent_of_one_core": usage.cpu_percent,
        "rss_bytes": usage.rss_bytes,
        "terminal_bytes_per_s": usage.bytes_per_s,
        "graph_requests_in_interval": graph,
    })
    out.notes.append(f"{CONFIGS} configurations, default poll interval, empty peek-mode queue; "
                     f"measured after {SETTLE_S:g} s settling")
    if usage.cpu_percent > 2.0:
        out.notes.append(f"MISSED: {usage.cpu_percent:.1f}% > 2% of one core")
    return out
