"""Figure 10 (issue 13 "Load"): `aumwatch serve` with 1 and with 5 viewers.

`aumwatch serve` runs against the counting stand-in (100 configurations, no queue); viewers
are websocket clients speaking textual-serve's protocol (what the page's script sends: a
resize, then it only reads), so no browser's CPU is in the figure. Once every viewer's
dashboard has drawn and settled, the figure counts Resource Graph requests at the stand-in
and the CPU time (user + system, psutil) of the server and of its dashboards over the
interval. ``python -m bench --only 10`` (or ``python -m bench.fig_serve [--quick]``).

Measured on the 2-core development machine (2026-12-01, 60 s each): 1 viewer 4 Resource Graph
requests/min, 5 viewers 20/min (exactly 5x: each dashboard polls on its own); the dashboards
used 0.5 % and 1.8 % of one core, the server under 0.1 %. Resource Graph allows about 15
requests per 5 s per user (docs/azure.md, "Resource Graph"), 180/min, shared by every viewer
since they all use the serving user's credentials: 5 viewers take about 11 % of it, so served
dashboards keep their own pollers.
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import psutil

from bench.result import FigureResult
from bench.standin import CountingServer, build_world, config_toml
from services.domain.clock import SystemClock

CONFIGS = 100
SETTLE_S = 10.0
DRAWN_BYTES = 20_000  # a first full frame of the dashboard is well above this


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Viewers:
    """``count`` websocket viewers on their own event loop thread, reading until stopped."""

    def __init__(self, ws_url: str, count: int) -> None:
        self.ws_url = ws_url
        self.count = count
        self.received = [0] * count
        self._stop: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete,
                                        args=(self._main(),), daemon=True)

    async def _one(self, session: aiohttp.ClientSession, index: int) -> None:
        async with session.ws_connect(f"{self.ws_url}?width=160&height=50") as ws:
            await ws.send_str(json.dumps(["resize", {"width": 160, "height": 50}]))
            assert self._stop is not None
            while not self._stop.is_set():
                try:
                    message = await asyncio.wait_for(ws.receive(), 0.5)
                except TimeoutError:
                    continue
                if message.type == aiohttp.WSMsgType.BINARY:
                    self.received[index] += len(message.data)
                elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                      aiohttp.WSMsgType.ERROR):
                    return

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(self._one(session, i) for i in range(self.count)),
                                 return_exceptions=True)

    def __enter__(self) -> _Viewers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)

    def all_drawn(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(n >= DRAWN_BYTES for n in self.received):
                return True
            time.sleep(0.2)
        return False


def _measure(server: CountingServer, config: Path, env: dict[str, str], viewers: int,
             interval: float) -> dict[str, float]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tui", "serve", "--config", str(config),
                             "--port", str(port), "--max-viewers", str(viewers)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(30):
                raise RuntimeError("aumwatch serve printed no address")
        token = proc.stdout.readline().strip().split("token=", 1)[1]
        with _Viewers(f"http://127.0.0.1:{port}/ws/{token}", viewers) as clients:
            if not clients.all_drawn(60.0):
                raise RuntimeError(f"not every viewer drew: {clients.received}")
            time.sleep(SETTLE_S)
            family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children()]
            before = [p.cpu_times() for p in family]
            server.reset()
            t0 = time.perf_counter()
            time.sleep(interval)
            after = [p.cpu_times() for p in family]
            wall = time.perf_counter() - t0
            graph = server.graph_requests()
        used = [(a.user - b.user) + (a.system - b.system) for a, b in zip(after, before,
                                                                           strict=True)]
        return {
            f"v{viewers}_graph_requests_per_min": graph * 60.0 / wall,
            f"v{viewers}_server_cpu_percent_of_one_core": 100.0 * used[0] / wall,
            f"v{viewers}_dashboards_cpu_percent_of_one_core": 100.0 * sum(used[1:]) / wall,
            f"v{viewers}_dashboards": float(len(family) - 1),
        }
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(quick: bool) -> FigureResult:
    """Resource Graph requests and CPU with 1 and with 5 viewers (60 s each; quick: 5 s)."""
    out = FigureResult(10, "aumwatch serve: load of 1 and 5 viewers",
                       "5 viewers: Resource Graph requests well under the quota")
    interval = 5.0 if quick else 60.0
    world = build_world(CONFIGS, subscriptions=10, clock=SystemClock())
    with CountingServer(world) as server, tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "aumwatch.toml"
        config.write_text(config_toml(server.server, list(world.subscriptions),
                                      data_dir=Path(scratch) / "data"), encoding="utf-8")
        config.chmod(0o600)
        env = {**os.environ, "XDG_DATA_HOME": str(Path(scratch) / "xdg")}
        t0 = time.perf_counter()
        for viewers in (1, 5):
            out.metrics.update(_measure(server, config, env, viewers, interval))
        out.seconds = time.perf_counter() - t0
    one = out.metrics.get("v1_graph_requests_per_min", 0.0)
    five = out.metrics.get("v5_graph_requests_per_min", 0.0)
    if one:
        out.metrics["graph_ratio_5_to_1"] = five / one
    out.notes.append(f"{CONFIGS} configurations, no queue, default poll interval; each viewer "
                     "is its own dashboard with its own polls")
    return out


if __name__ == "__main__":
    result = run("--quick" in sys.argv)
    print(json.dumps(result.to_json(), indent=2))
