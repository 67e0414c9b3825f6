"""Every view says the same, right thing about a run (issue 22, "Done when").

One scenario on the real stand-in and Azurite, through the real SDK clients: a run cancelled
from the dashboard (the real key and confirmation), a run cancelled by a failing pre-check
task (``cancel_on_failure``), a failed run, an overrun, a duplicate pre-event and a run whose
post-event never comes (its subscription delivers pre-events only). Then the dashboard's
state, ``runs --json``, ``report --format json`` and the tasks' JSON lines must agree on each
run's status, who cancelled it (``cancelled_by``, ``cancel_initiator``), its end and its
events, and say what really happened.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import QueueClient
from textual.widgets import DataTable

from services.domain.clock import iso_z
from services.domain.events import EventDecodeError, EventKind, decode_message
from services.settings import load_settings
from services.standin.runner import SimEnvironment
from services.standin.scenario_file import parse_scenario
from services.standin.server import STANDIN_UPN
from tui.app import AumwatchApp
from tui.cli import main

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SUB = "5c1d7a4e-2b3f-4c6d-8e9f-0a1b2c3d4e5f"
#: configuration -> (behaviour, wiring)
PLAN: dict[str, tuple[dict[str, Any], str]] = {
    "truth-user": ({}, "ok"),
    "truth-precheck": ({}, "ok"),
    "truth-failed": ({"fail": 1.0, "failed_status": "Failed"}, "ok"),
    "truth-overrun": ({"overrun": 1.0}, "ok"),
    "truth-dup": ({"duplicate": ["pre"]}, "ok"),
    "truth-nopost": ({}, "pre-only"),
}
FACTS = ("status", "end", "cancelled_by", "cancel_initiator", "pre_event", "post_event",
         "scheduled_end", "overran")
TASKS = f"""
[[tasks]]
name = "precheck-fail"
on = "pre"
configurations = ["truth-precheck"]
command = [{json.dumps(sys.executable)}, "-c", "import sys; sys.exit(3)"]
timeout = "30s"
cancel_on_failure = true

[[tasks]]
name = "post-note"
on = "post"
configurations = ["truth-*"]
command = [{json.dumps(sys.executable)}, "-c", "print('noted')"]
timeout = "30s"
"""


def scenario() -> Any:
    configs = []
    for name, (behaviour, wiring) in PLAN.items():
        configs.append({
            "name": name, "subscription": "prod", "resource_group": "rg-truth",
            "time_zone": "UTC", "recur_every": "Day", "duration": "01:30",
            "start": "now+45m", "wiring": wiring,
            "machines": [{"count": 2, "prefix": name}],
            # Fixed moments (no draws): the pre-event at T-38, no chance overrun.
            "behaviour": {"pre_event": "T-38m", "overrun": 0.0, "finish": [0.1, 0.3],
                          **behaviour},
        })
    return parse_scenario({"seed": 22, "subscriptions": {"prod": SUB},
                           "configuration": configs})


async def until(predicate: Callable[[], bool], pilot: Any, what: str,
                timeout: float = 30.0, *, refresh: bool = False,
                state: Callable[[], Any] | None = None) -> None:
    """Wait for ``predicate``; with ``refresh``, press Ctrl+R every few seconds (a refresh
    asked while the start-up poll still runs would wait for the next poll otherwise)."""
    deadline = time.monotonic() + timeout
    next_refresh = time.monotonic() + 4
    while not predicate():
        assert time.monotonic() < deadline, \
            f"timed out waiting for {what}: {state() if state else ''}"
        if refresh and time.monotonic() >= next_refresh:
            await pilot.press("ctrl+r")
            next_refresh = time.monotonic() + 4
        await pilot.pause(0.1)


def run_tasks(config: Path) -> list[dict[str, Any]]:
    """``aumwatch tasks --once`` (consume mode) as a real process; its JSON lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUMWATCH_")}
    env["AUMWATCH_QUEUE_MODE"] = "consume"
    done = subprocess.run([sys.executable, "-m", "tui", "--config", str(config), "tasks",
                           "--once"], cwd=REPO, capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    # Exit 1 says a task failed (the pre-check, on purpose); anything else is a fault.
    failed = any(line["outcome"] != "ok" for line in lines)
    assert done.returncode == (1 if failed else 0), done.stderr
    return lines


def waiting(env: SimEnvironment) -> list[str]:
    """The kinds of the events waiting in the watched queue (a peek: nothing is taken)."""
    with QueueClient.from_connection_string(env.azurite.connection_string,
                                            env.queue_name) as client:
        texts = [m.content for m in client.peek_messages(max_messages=32)]
    kinds = []
    for text in texts:
        try:
            kinds += [str(e.kind) for e in decode_message(text)]
        except EventDecodeError:
            kinds.append("undecodable")
    return kinds


def posts_waiting(env: SimEnvironment) -> int:
    """How many post-events wait in the watched queue (a peek: nothing is taken)."""
    with QueueClient.from_connection_string(env.azurite.connection_string,
                                            env.queue_name) as client:
        texts = [m.content for m in client.peek_messages(max_messages=32)]
    count = 0
    for text in texts:
        try:
            count += sum(e.kind == EventKind.POST for e in decode_message(text))
        except EventDecodeError:
            continue
    return count


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


async def play(env: SimEnvironment, config: Path, data_dir: Path) -> dict[str, Any]:
    """Drive the world and the dashboard; returns the run ids, the dashboard's facts and
    the tasks' JSON lines."""
    settings = load_settings({"data_dir": str(data_dir)}, env={}, config_path=config)
    assert settings.queue_mode == "peek"
    app = AumwatchApp(settings, clock=env.clock)
    lines: list[dict[str, Any]] = []
    async with app.run_test(size=(160, 50)) as pilot:
        screen = app.dashboard
        state = screen.state
        # T-35: every run's row exists (T-40) and its pre-event was written (T-38).
        env.clock.shift(timedelta(minutes=10))
        runs = {}
        deadline = time.monotonic() + 20
        while len(runs) < len(PLAN):
            assert time.monotonic() < deadline, "the scenario's runs did not appear"
            await pilot.pause(0.2)
            runs = {name: run for run in env.world.runs()
                    for name in PLAN if run.configuration_id.lower().endswith("/" + name)}
        ids = {name: run.correlation_id for name, run in runs.items()}
        keys = {name: cid.lower() for name, cid in ids.items()}
        await pilot.press("ctrl+r")
        await until(lambda: len(state.configs) >= len(PLAN) and all(
                    k in state.runs and not state.runs[k].expected
                                and k in state.arrivals and state.arrivals[k].pre
                                for k in keys.values()), pilot,
                    "the dashboard to see every run and its pre-event", 40, refresh=True,
                    state=lambda: ({k: (state.runs[k].status, state.runs[k].expected,
                                        state.arrivals.get(k)) for k in keys.values()
                                    if k in state.runs}, state.errors, state.queue_depth,
                                   state.queue_mode, waiting(env)))

        # The operator cancels truth-user's run: its row, Ctrl+X, then Yes.
        table: DataTable[Any] = app.query_one("#configs", DataTable)
        matching = [k for k, c in state.configs.items() if c.name == "truth-user"]
        assert len(matching) == 1, (state.configs.keys(), state.errors)
        config_key = matching[0]
        table.focus()
        table.move_cursor(row=table.get_row_index(config_key))
        await until(lambda: (state.current_run is not None
                             and state.current_run.key == keys["truth-user"]), pilot,
                    "truth-user's run to be selected")
        await pilot.press("ctrl+x")
        await until(lambda: len(app.screen_stack) > 1, pilot, "the confirmation")
        await pilot.press("right", "enter")
        await until(lambda: keys["truth-user"] in state.cancelled, pilot,
                    "the dashboard's cancel to be verified")

        # The pre-check fails (exit 3) and cancels truth-precheck's run.
        lines += await asyncio.to_thread(run_tasks, config)

        # T+2h: every run that was not cancelled has ended (the overrun after its window).
        start = runs["truth-user"].start
        env.clock.set(start + timedelta(hours=2))
        await until(lambda: all(r.finished for r in env.world.runs()
                                if r.correlation_id.lower() in keys.values()), pilot,
                    "every run to end in the stand-in")
        await until(lambda: posts_waiting(env) >= 3, pilot,
                    "the post-events of the three delivered runs in the queue")
        lines += await asyncio.to_thread(run_tasks, config)
        await pilot.press("ctrl+r")
        with_post = {keys[n] for n in ("truth-failed", "truth-overrun", "truth-dup")}
        await until(lambda: all(state.runs[k].finished for k in keys.values())
                    and all(state.arrivals[k].post for k in with_post), pilot,
                    "the dashboard to see every run end", 40, refresh=True,
                    state=lambda: ({k: (state.runs[k].status, state.arrivals.get(k))
                                    for k in keys.values()}, state.errors))
        dashboard = {name: state.runs[key].to_json() for name, key in keys.items()}
        seen = {name: [e.kind for e in state.memory.events_of(key)]
                for name, key in keys.items()}
    return {"ids": ids, "dashboard": dashboard, "lines": lines, "seen": seen,
            "scheduled_end": {n: r.end for n, r in runs.items()}}


def test_every_view_says_the_same_about_every_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    with SimEnvironment(scenario(), arg_lag=0, config_path=tmp_path / "aumwatch.toml",
                        data_dir=data_dir, step_interval=0.2) as env:
        config = env.config_path
        with config.open("a", encoding="utf-8") as handle:
            handle.write(TASKS)
        played = asyncio.run(play(env, config, data_dir))
        ids: dict[str, str] = played["ids"]
        listed = {r["correlation_id"].lower(): r
                  for r in cli_json(capsys, "--config", str(config), "runs", "--json")}
        reports = {name: cli_json(capsys, "--config", str(config), "report", cid,
                                  "--format", "json") for name, cid in ids.items()}

    lines: list[dict[str, Any]] = played["lines"]
    for name, cid in ids.items():
        shown = played["dashboard"][name]
        from_runs = listed[cid.lower()]
        report = reports[name]["run"]
        views = {"dashboard": {k: shown[k] for k in FACTS},
                 "runs --json": {k: from_runs[k] for k in FACTS},
                 "report": {k: report[k] for k in FACTS}}
        assert views["dashboard"] == views["runs --json"] == views["report"], (name, views)
        # The report lists the events the views count, once each.
        kinds = [e["kind"] for e in reports[name]["events"]]
        assert kinds == ["pre"] + (["post"] if shown["post_event"] else []), (name, kinds)
        assert played["seen"][name] == kinds, name

    facts = {name: played["dashboard"][name] for name in ids}
    operator = facts["truth-user"]["cancel_initiator"]
    # ... and what they say is what happened.
    assert (facts["truth-user"]["status"], facts["truth-user"]["cancelled_by"]) == \
        ("Cancelled", "user")
    assert operator is not None and operator.startswith(STANDIN_UPN + " ")
    assert (facts["truth-precheck"]["status"], facts["truth-precheck"]["cancelled_by"],
            facts["truth-precheck"]["cancel_initiator"]) == (
        "Cancelled", "user", "task precheck-fail (exit 3)")
    assert facts["truth-failed"]["status"] == "Failed"
    for name in ("truth-failed", "truth-overrun", "truth-dup", "truth-nopost"):
        assert (facts[name]["cancelled_by"], facts[name]["cancel_initiator"]) == (None, None)
        scheduled = iso_z(played["scheduled_end"][name])
        assert facts[name]["end"] is not None and facts[name]["end"] != scheduled, name
        assert facts[name]["scheduled_end"] == scheduled, name
    assert facts["truth-overrun"]["end"] > facts["truth-overrun"]["scheduled_end"]
    assert {n: facts[n]["overran"] for n in ("truth-failed", "truth-overrun", "truth-dup",
                                             "truth-nopost")} == {
        "truth-failed": False, "truth-overrun": True, "truth-dup": False,
        "truth-nopost": False}
    assert facts["truth-nopost"]["status"] == "Completed"
    assert facts["truth-nopost"]["post_event"] is None
    for name in ("truth-failed", "truth-overrun", "truth-dup"):
        assert facts[name]["end"] == facts[name]["post_event"], name
    assert reports["truth-dup"]["events"][0]["duplicate_deliveries"] >= 1

    # The tasks' JSON lines tell the same story: the pre-check cancelled that run, and a post
    # task ran for exactly the runs whose post-event every view shows.
    [check] = [line for line in lines if line["task"] == "precheck-fail"]
    assert check["correlation_id"].lower() == ids["truth-precheck"].lower()
    assert (check["outcome"], check["exit_code"], check["cancelled_run"]) == ("failed", 3, True)
    assert facts["truth-precheck"]["cancel_initiator"] == \
        f"task {check['task']} (exit {check['exit_code']})"
    noted = {line["correlation_id"].lower() for line in lines if line["task"] == "post-note"
             and line["outcome"] == "ok"}
    assert noted == {ids[n].lower() for n in ids if facts[n]["post_event"]}
    for name in ids:
        if facts[name]["status"] == "Cancelled":
            assert not any(line["correlation_id"].lower() == ids[name].lower()
                           and line["event_kind"] == "post" for line in lines)
