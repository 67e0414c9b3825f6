"""``aumwatch watch`` as a real process against the stand-in and Azurite (issue 21, "Done
when"): a pre-event that never comes, a failed run, a run that never starts and a run that
succeeds; each finding reaches a local webhook and a local PagerDuty-shaped receiver once
(trigger, then resolve for what clears), across a kill -9 and a restart, and no secret shows
in the output, the logs or the journal."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.standin.runner import SimEnvironment
from services.standin.scenario_file import parse_scenario
from tests.receivers import Received, receiver

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SUB = "11111111-1111-4111-8111-111111111111"
ROUTING_KEY = "pdkey-SECRET-0123456789abcdef"
HOOK_SECRET = "hook-SECRET-path-9f8e7d6c"
BEAT_SECRET = "beat-SECRET-path-1a2b3c4d"


def config(name: str, **behaviour: Any) -> dict[str, Any]:
    # Fixed event moments and no overrun, so each run's story is the same at every test run.
    return {"name": name, "subscription": "prod", "resource_group": "rg-watch",
            "time_zone": "UTC", "recur_every": "Day", "duration": "01:30",
            "start": "now+60m", "machines": [{"count": 3, "prefix": name}],
            "behaviour": {"pre_event": "T-40m", "overrun": 0, "finish": [0.05, 0.1],
                          **behaviour}}


SCENARIO = {"seed": 5, "history_events": "0s", "subscriptions": {"prod": SUB}, "configuration": [
    config("ok-run"),
    config("no-pre", pre_event="never"),
    config("failing", fail=1.0),
    config("never", never_starts=True),
]}


def alerts_config(hook: str, pd: str, beat: str) -> str:
    return f"""
[alerts]
heartbeat_url = "{beat}/{BEAT_SECRET}"
heartbeat_every = "2s"

[[alerts.routes]]
name = "hook"
type = "webhook"
url = "{hook}/{HOOK_SECRET}"
min_severity = "warning"

[[alerts.routes]]
name = "pd"
type = "pagerduty"
url = "{pd}/v2/enqueue"
routing_key = "{ROUTING_KEY}"
"""


def watcher(config_path: Path, out: Path, err: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUMWATCH_")}
    with out.open("ab") as stdout, err.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "tui", "--config", str(config_path), "watch",
             "--refresh", "10s"], cwd=REPO, stdout=stdout, stderr=stderr, env=env)


async def until(what: str, done: Callable[[], bool], proc: subprocess.Popen[bytes],
                err: Path, timeout: float = 60.0) -> None:
    """Wait for ``done()`` while the watcher lives (it polls every 10 s real time)."""
    deadline = time.monotonic() + timeout
    while not done():
        if proc.poll() is not None:
            pytest.fail(f"the watcher exited {proc.returncode} waiting for {what}: "
                        f"{err.read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}: {err.read_text(errors='replace')[-2000:]}")
        await asyncio.sleep(0.2)


def kinds(got: Received, path: str) -> list[tuple[str, str]]:
    return [(b["kind"], b["configuration_name"]) for b in got.bodies(path)]


def pd_events(got: Received) -> list[tuple[str, str, str]]:
    """(action, class, component) of every PagerDuty event; a resolve names its trigger's
    dedup key."""
    classes: dict[str, tuple[str, str]] = {}
    out = []
    for body in got.bodies("/v2/enqueue"):
        if body["event_action"] == "trigger":
            classes[body["dedup_key"]] = (body["payload"]["class"],
                                          body["payload"]["component"])
        cls, component = classes.get(body["dedup_key"], ("?", "?"))
        out.append((body["event_action"], cls, component))
    return out


async def test_watch_sends_each_finding_once_across_a_kill_9_and_keeps_secrets(
        tmp_path: Path) -> None:
    env = SimEnvironment(parse_scenario(SCENARIO), config_path=tmp_path / "aumwatch.toml",
                         arg_lag=0, data_dir=tmp_path / "data", step_interval=0.1)
    out, err = tmp_path / "watch.out", tmp_path / "watch.err"
    with env:
        async with receiver() as (hook, hooked), receiver(202) as (pd, paged), \
                receiver() as (beat, beats):
            config_path = Path(env.info()["config_file"])
            with config_path.open("a", encoding="utf-8") as handle:
                handle.write(alerts_config(hook, pd, beat))
            first = watcher(config_path, out, err)
            try:
                # T-39: every cancel window is open (info: PagerDuty only).
                env.clock.shift(timedelta(minutes=21))
                await until("window-open", lambda: len(pd_events(paged)) >= 4, first, err)
                await until("a heartbeat", lambda: len(beats.requests) >= 1, first, err)
                # T-24: no pre-event came for "no-pre" nor for "never" (no events at all).
                env.clock.shift(timedelta(minutes=15))
                await until("missing-pre", lambda: len(hooked.requests) >= 2, first, err)
                first.send_signal(signal.SIGKILL)
                first.wait(10)
            finally:
                if first.poll() is None:
                    first.kill()
                    first.wait()
            second = watcher(config_path, out, err)
            try:
                # T-9: the windows closed: PagerDuty resolves what it triggered for them.
                env.clock.shift(timedelta(minutes=15))
                await until("window-open resolved", lambda: sum(
                    a == "resolve" for a, _, _ in pd_events(paged)) >= 4, second, err)
                # T+16: "failing" failed; "never" has no run 15 minutes after its start.
                env.clock.shift(timedelta(minutes=25))
                await until("run-failed and missed-run", lambda: len(hooked.requests) >= 4,
                            second, err)
                await asyncio.sleep(3)  # anything sent twice would come now
                second.send_signal(signal.SIGTERM)
                await asyncio.to_thread(second.wait, 30)
            finally:
                if second.poll() is None:
                    second.kill()
                    second.wait()
            assert second.returncode == 0, err.read_text(errors="replace")

    assert sorted(kinds(hooked, f"/{HOOK_SECRET}")) == sorted([
        ("missing-pre", "no-pre"), ("missing-pre", "never"), ("run-failed", "failing"),
        ("missed-run", "never")])
    assert {b["state"] for b in hooked.bodies()} == {"open"}
    events = pd_events(paged)
    assert len(events) == len(set(events)), events  # nothing twice
    triggers = {(c, n) for a, c, n in events if a == "trigger"}
    resolves = {(c, n) for a, c, n in events if a == "resolve"}
    assert triggers == {("window-open", n) for n in ("ok-run", "no-pre", "failing", "never")} \
        | {("missing-pre", "no-pre"), ("missing-pre", "never"), ("run-failed", "failing"),
           ("missed-run", "never")}
    assert resolves == {("window-open", n) for n in ("ok-run", "no-pre", "failing", "never")}
    for action, cls, name in events:
        if action == "resolve":  # after its trigger
            assert events.index(("trigger", cls, name)) < events.index((action, cls, name))
    assert all(b["routing_key"] == ROUTING_KEY for b in paged.bodies())

    # Every line is a flushed JSON finding; each (key, state) printed once over both runs.
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert all({"kind", "key", "severity", "summary", "configuration_name", "run_id",
                "state", "at"} <= set(x) for x in lines)
    told = [(x["key"], x["state"]) for x in lines]
    assert len(told) == len(set(told)), told
    # No secret in the output, the logs or the journal.
    texts = [out.read_bytes(), err.read_bytes()]
    texts += [p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file()]
    for secret in (ROUTING_KEY, HOOK_SECRET, BEAT_SECRET):
        assert not any(secret.encode() in text for text in texts), secret
