"""The bench's Azure: a World filled with N configurations over S subscriptions, the stand-in
server with a server-side request counter, and settings that point aumwatch at it."""

from __future__ import annotations

import functools
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.domain.clock import Clock, ManualClock
from services.settings import Settings
from services.standin.server import StandInServer
from services.standin.world import SimRun, World, configuration_object, run_name_for

#: The bench's fixed "now" (a Tuesday) for figures that do not talk to the dashboard process.
NOW = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)
#: The real Resource Graph quota per identity is 15 per 5 s; this one never throttles.
RAISED_QUOTA = 1_000_000


def subscription(index: int) -> str:
    return f"00000000-0000-4000-8000-{index:012d}"


def config_name(index: int) -> str:
    """Short and distinctive, so it survives a narrow table column and is easy to spot."""
    return f"bcfg{index:05d}"


def config_object(index: int, sub: str, *, recur: str = "Week Saturday",
                  start: str = "2026-01-01 02:00") -> dict[str, Any]:
    """A maintenance configuration as ARM returns it."""
    return configuration_object(sub, f"rg-bench-{index % 7}", config_name(index), {
        "startDateTime": start, "expirationDateTime": None, "duration": "03:00",
        "timeZone": "W. Europe Standard Time", "recurEvery": recur,
    })


def add_run(world: World, config: dict[str, Any], start: datetime, status: str) -> SimRun:
    run = SimRun(
        correlation_id=f"{config['id']}/providers/microsoft.maintenance/applyupdates/"
                       f"{run_name_for(start)}",
        configuration_id=config["id"], start=start, end=start + timedelta(hours=3),
        status=status)
    world.upsert_run(run)
    return run


def build_world(configs: int, *, subscriptions: int = 10, runs_per_config: int = 1,
                clock: Clock | None = None) -> World:
    """``configs`` configurations spread over ``subscriptions`` subscriptions, each with
    ``runs_per_config`` finished weekly runs (the latest three days before the clock's now).

    A dashboard process runs on the system clock (corrected by the server's Date header):
    give such a world a :class:`SystemClock` so that no skew is involved."""
    world = World(clock or ManualClock(NOW))
    last_run = (world.clock.now() - timedelta(days=3)).replace(minute=0, second=0,
                                                               microsecond=0)
    subs = [subscription(i) for i in range(1, subscriptions + 1)]
    for sub in subs:
        world.add_subscription(sub)
    for i in range(configs):
        cfg = config_object(i, subs[i % len(subs)])
        world.add_configuration(cfg)
        for week in range(runs_per_config):
            add_run(world, cfg, last_run - timedelta(weeks=week), "Completed")
    return world


class CountingServer:
    """A started :class:`StandInServer` whose Resource Graph and ARM requests are counted on
    the server side (by wrapping its handlers on this instance; the class is untouched)."""

    def __init__(self, world: World, *, quota_limit: int = RAISED_QUOTA) -> None:
        self.server = StandInServer(world, quota_limit=quota_limit)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._wrap("_graph_query", "graph")
        self._wrap("_arm", "arm")

    def _wrap(self, name: str, kind: str) -> None:
        original = getattr(self.server, name, None)
        if original is None:  # the stand-in changed: counts for this kind stay at zero
            return

        @functools.wraps(original)
        async def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.counts[kind] += 1
            return await original(*args, **kwargs)

        setattr(self.server, name, counted)

    @property
    def counting(self) -> bool:
        """Whether the server-side counter is in place."""
        return "_graph_query" in vars(self.server)

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    def graph_requests(self) -> int:
        with self._lock:
            return self.counts["graph"]

    def set_quota(self, limit: int) -> None:
        """Swap the Resource Graph quota (the stand-in's public ``quota`` attribute)."""
        from services.standin.server import DEFAULT_QUOTA_WINDOW, Quota

        self.server.quota = Quota(limit, DEFAULT_QUOTA_WINDOW)

    def __enter__(self) -> CountingServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def standin_settings(server: StandInServer, subscriptions: list[str], *,
                     data_dir: Path | None = None, **extra: Any) -> Settings:
    """Settings that point aumwatch's service layer at ``server``."""
    kwargs: dict[str, Any] = {
        "cloud": "standin", "arm_endpoint": server.endpoint, "ca_file": Path(server.ca_file),
        "token": server.token, "subscriptions": tuple(subscriptions), **extra,
    }
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    return Settings(**kwargs)


def config_toml(server: StandInServer, subscriptions: list[str], *,
                queue_connection_string: str | None = None, queue_name: str | None = None,
                data_dir: Path | None = None) -> str:
    """An aumwatch config file (TOML) for the dashboard process."""
    import json

    def s(value: str) -> str:
        return json.dumps(value, ensure_ascii=True)  # a JSON string is a TOML basic string

    lines = [
        "[azure]", 'cloud = "standin"', f"arm_endpoint = {s(server.endpoint)}",
        f"ca_file = {s(server.ca_file)}", f"token = {s(server.token)}",
        "subscriptions = [" + ", ".join(s(x) for x in subscriptions) + "]",
    ]
    if queue_connection_string and queue_name:
        lines += ["", "[queue]", f"connection_string = {s(queue_connection_string)}",
                  f"name = {s(queue_name)}", 'mode = "peek"']
    if data_dir is not None:
        lines += ["", "[paths]", f"data_dir = {s(str(data_dir))}"]
    return "\n".join(lines) + "\n"
