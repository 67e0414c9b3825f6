"""Pre/post tasks against the stand-in and Azurite (issue 12): the runner, the queue hook,
the Canceller, and ``aumwatch tasks`` as a real process."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.azure.cancel import Canceller, CancelTarget, maintenance_client_calls
from services.azure.eventsource import EventSource
from services.azure.journal import Journal
from services.azure.resourcegraph import QueryRunner
from services.azure.tasks import TASK_CONCURRENCY, TaskRunner, graph_run_statuses, run_queue
from services.domain.clock import ManualClock
from services.domain.tasks import TaskResult, TaskSpec
from services.domain.window import WindowRules
from services.standin.events_out import build_event, encode_message
from services.standin.world import SimRun, World
from tests.processes import all_gone
from tests.standin import NOW, SUB, add_run, config_object, pre_event_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "$(touch x);rm -rf / [bold]`id`\"'<b>"

#: A task: records its environment, stdin and event file as JSON lines in argv[1], then
#: sleeps argv[3] seconds and exits with argv[2].
RECORDER = r'''
import json, os, sys, time
out, code = sys.argv[1], int(sys.argv[2])
pause = float(sys.argv[3]) if len(sys.argv) > 3 else 0
stdin = sys.stdin.read()
with open(os.environ["AUMWATCH_TASK_EVENT_FILE"], encoding="utf-8") as f:
    event_file = f.read()
with open(out, "a", encoding="utf-8") as f:
    f.write(json.dumps({"env": dict(os.environ), "stdin": stdin, "event_file": event_file,
                        "pid": os.getpid(), "at": time.time()}) + "\n")
print("checked; AccountKey=c2VjcmV0a2V5 and sig=abc123 and secret-token-value")
time.sleep(pause)
sys.exit(code)
'''


@pytest.fixture
def recorder(tmp_path: Path) -> Path:
    path = tmp_path / "recorder.py"
    path.write_text(RECORDER, encoding="utf-8")
    return path


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.sqlite3") as j:
        yield j


@pytest.fixture
def run(standin_world: World) -> SimRun:
    """A run starting 30 minutes after the stand-in's now: its cancel window is open."""
    return add_run(standin_world, config_object("nightly"), NOW + timedelta(minutes=30),
                   machines=1)


def pre_message(run: SimRun, name: str = "nightly", **kw: Any) -> str:
    return encode_message(pre_event_for(run, name, **kw))


def task(recorder: Path, out: Path, code: int = 0, **kw: Any) -> TaskSpec:
    kw.setdefault("name", "precheck")
    kw.setdefault("on", "pre")
    kw.setdefault("configurations", ("night*",))
    return TaskSpec(command=(sys.executable, str(recorder), str(out), str(code)), **kw)


async def _no_wait(seconds: float) -> None:
    return None


async def drain(queue: Any, journal: Journal, clock: ManualClock, tasks: list[TaskSpec],
                client: Any = None, *, run_statuses: Any = None,
                concurrency: int = 1) -> tuple[list[TaskResult], list[str]]:
    """Run the tasks for everything in the queue now, in process, on the manual clock."""
    cancel = None
    if client is not None:
        send, read_back = maintenance_client_calls(client)
        cancel = Canceller(send, read_back, journal, clock, WindowRules(),
                           sleep=_no_wait).cancel
    runner = TaskRunner(tasks, journal, clock, cancel=cancel,
                        secrets=["secret-token-value"], environ=os.environ,
                        run_statuses=run_statuses)
    source = EventSource(queue, clock=clock, journal=journal, mode="consume",
                         visibility_timeout=runner.visibility_timeout(),
                         before_delete=runner.handle, max_messages=1,
                         hook_concurrency=concurrency)
    errors: list[str] = []
    ok = await run_queue(source, runner, once=True, stop=asyncio.Event(), interval=0.1,
                         on_error=errors.append)
    assert ok, errors
    return runner.results, errors


def records(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


async def queue_is_empty(queue: Any) -> bool:
    return not await queue.peek_messages(max_messages=32)


async def test_a_passing_pre_check_lets_the_run_proceed(
    queue: Any, journal: Journal, standin_clock: ManualClock, standin_world: World,
    aio_maintenance_client: Any, run: SimRun, recorder: Path, tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    await queue.send_message(pre_message(run))
    results, errors = await drain(queue, journal, standin_clock,
                                  [task(recorder, out, 0, cancel_on_failure=True)],
                                  aio_maintenance_client)
    assert errors == []
    [result] = results
    assert (result.outcome, result.exit_code, result.cancelled_run) == ("ok", 0, False)
    assert standin_world.get_run(run.correlation_id).status == "Pending"
    assert journal.cancel_audit() == []
    [row] = journal.task_runs(run.correlation_id)
    assert (row.state, row.exit_code, row.event_kind, row.task) == ("ok", 0, "pre", "precheck")
    # Output is kept, scrubbed of secrets (a known value, a connection-string key, a SAS sig).
    assert row.output is not None and "checked;" in row.output
    assert "c2VjcmV0a2V5" not in row.output and "abc123" not in row.output
    assert "secret-token-value" not in row.output
    assert await queue_is_empty(queue)  # deleted once its task run was recorded


async def test_a_failing_pre_check_inside_the_window_cancels_the_run_verified_and_audited(
    queue: Any, journal: Journal, standin_clock: ManualClock, standin_world: World,
    aio_maintenance_client: Any, run: SimRun, recorder: Path, tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    await queue.send_message(pre_message(run))
    results, _ = await drain(queue, journal, standin_clock,
                             [task(recorder, out, 3, cancel_on_failure=True)],
                             aio_maintenance_client)
    [result] = results
    assert (result.outcome, result.exit_code, result.cancelled_run) == ("failed", 3, True)
    assert result.reason is not None and "T-30m" in result.reason
    assert standin_world.get_run(run.correlation_id).status == "Cancelled"
    [audit] = journal.cancel_audit()
    assert audit.outcome == "verified-cancelled"
    assert audit.initiator == "task precheck (exit 3)"
    assert audit.run_id == run.correlation_id and not audit.computed_id
    [row] = journal.task_runs(run.correlation_id)
    assert (row.state, row.cancelled_run) == ("failed", True)


async def test_a_pre_check_failing_after_t_minus_10_does_not_cancel_and_says_so(
    queue: Any, journal: Journal, standin_clock: ManualClock, standin_world: World,
    aio_maintenance_client: Any, run: SimRun, recorder: Path, tmp_path: Path,
) -> None:
    await queue.send_message(pre_message(run))
    standin_clock.set(run.start - timedelta(minutes=8))
    results, _ = await drain(queue, journal, standin_clock,
                             [task(recorder, tmp_path / "o", 1, cancel_on_failure=True)],
                             aio_maintenance_client)
    [result] = results
    assert (result.outcome, result.cancelled_run) == ("failed", False)
    assert result.reason == "pre-check precheck failed at T-8m: too late to cancel"
    assert standin_world.get_run(run.correlation_id).status == "Pending"
    assert journal.cancel_audit() == []  # nothing was even attempted
    [row] = journal.task_runs(run.correlation_id)
    assert row.detail == result.reason and not row.cancelled_run


async def test_a_duplicate_event_runs_nothing_twice(
    queue: Any, journal: Journal, standin_clock: ManualClock, run: SimRun, recorder: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    message = pre_message(run)
    await queue.send_message(message)
    await queue.send_message(message)  # Event Grid delivers at least once
    results, _ = await drain(queue, journal, standin_clock, [task(recorder, out, 0)])
    assert [r.outcome for r in results] == ["ok", "skipped-duplicate"]
    assert len(records(out)) == 1
    assert len(journal.task_runs()) == 1
    assert await queue_is_empty(queue)


async def test_a_hostile_configuration_name_reaches_the_task_only_as_data(
    queue: Any, journal: Journal, standin_clock: ManualClock, run: SimRun, recorder: Path,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.jsonl"
    # The name cannot live in a valid configuration id (it holds "/" and spaces): the event's
    # subject carries it, as Azure's events name the configuration there too.
    event = build_event(kind="post", correlation_id=run.correlation_id,
                        configuration_id=f"/subscriptions/{SUB}/x/{HOSTILE}",
                        configuration_name=HOSTILE, start=run.start, end=run.end,
                        subscription_ids=[SUB], event_time=run.end, status="Succeeded")
    await queue.send_message(encode_message(event))
    results, _ = await drain(queue, journal, standin_clock,
                             [task(recorder, out, 0, name="post", on="post",
                                   configurations=("*",))])
    [result] = results
    assert result.outcome == "ok" and result.configuration == HOSTILE
    [seen] = records(out)
    assert seen["env"]["AUMWATCH_TASK_CONFIGURATION_NAME"] == HOSTILE
    assert seen["env"]["AUMWATCH_TASK_CORRELATION_ID"] == run.correlation_id
    assert seen["env"]["AUMWATCH_TASK_EVENT_KIND"] == "post"
    assert json.loads(seen["stdin"])["configuration_name"] == HOSTILE
    assert seen["stdin"] == seen["event_file"]
    assert not (tmp_path / "x").exists()  # `$(touch x)` was never run by anything
    # The task's environment holds none of aumwatch's secrets.
    assert not {k for k in seen["env"] if k.startswith("AUMWATCH_")
                and not k.startswith("AUMWATCH_TASK_") and k != "AUMWATCH_CONFIG"}


# --- `aumwatch tasks` as a real process ----------------------------------------------------


def write_config(tmp_path: Path, azurite: Any, queue_name: str, command: list[str], *,
                 mode: str = "consume", on: str = "post", timeout: str = "60s",
                 server: Any = None) -> Path:
    """``server``: the stand-in to cancel on (the task is then a cancel_on_failure one)."""
    arm = (f'arm_endpoint = "{server.endpoint}"\nca_file = "{server.ca_file}"\n'
           f'token = "{server.token}"' if server is not None
           else 'arm_endpoint = "https://127.0.0.1:9"\ntoken = "standin-token"')
    config = tmp_path / "config.toml"
    config.write_text(f"""
[azure]
cloud = "standin"
{arm}

[queue]
name = "{queue_name}"
connection_string = "{azurite.connection_string}"
mode = "{mode}"

[paths]
data_dir = "{tmp_path / 'data'}"

[[tasks]]
name = "slow"
on = "{on}"
configurations = ["nightly"]
command = {json.dumps(command)}
timeout = "{timeout}"
cancel_on_failure = {'true' if server is not None else 'false'}
""", encoding="utf-8")
    config.chmod(0o600)
    return config


def aumwatch(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUMWATCH_")}
    return subprocess.Popen([sys.executable, "-m", "tui", "--config", str(config), "tasks",
                             *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def post_message(run: SimRun) -> str:
    return encode_message(build_event(
        kind="post", correlation_id=run.correlation_id, configuration_id=run.configuration_id,
        configuration_name="nightly", start=run.start, end=run.end, subscription_ids=[SUB],
        event_time=run.end, status="Succeeded"))


def wait_for(predicate: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


async def test_kill_9_during_a_task_then_restart_records_it_interrupted_and_not_rerun(
    azurite: Any, queue: Any, run: SimRun, recorder: Path, tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    config = write_config(tmp_path, azurite, queue.queue_name,
                          [sys.executable, str(recorder), str(out), "0", "60"])
    message = post_message(run)
    await queue.send_message(message)
    first = aumwatch(config)
    try:
        assert await asyncio.to_thread(wait_for, lambda: bool(records(out))), \
            first.stderr.read() if first.poll() is not None else "task never started"
        task_pid = records(out)[0]["pid"]
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    # The task died with its runner (it would otherwise run on, unrecorded).
    assert await asyncio.to_thread(all_gone, [task_pid])
    with Journal(tmp_path / "data" / "journal.sqlite3") as journal:
        [row] = journal.task_runs(run.correlation_id)
        assert row.state == "running"
    # Event Grid delivers the event again; the restarted runner must not run it again.
    await queue.send_message(message)
    second = aumwatch(config, "--once")
    stdout, stderr = await asyncio.to_thread(second.communicate, timeout=60)
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert [(x["task"], x["outcome"]) for x in lines] == [
        ("slow", "interrupted"), ("slow", "skipped-duplicate")], stderr
    # The interrupted line keeps the event's case, as every other line does.
    assert lines[0]["correlation_id"] == run.correlation_id != run.correlation_id.lower()
    assert lines[1]["correlation_id"] == run.correlation_id
    assert {"task", "correlation_id", "event_kind", "outcome", "exit_code", "cancelled_run",
            "started", "ended"} <= set(lines[0])
    assert second.returncode == 0, stderr
    assert len(records(out)) == 1  # run once, never again
    with Journal(tmp_path / "data" / "journal.sqlite3") as journal:
        [row] = journal.task_runs(run.correlation_id)
        assert row.state == "interrupted"


async def test_sigterm_stops_the_runner_records_the_running_task_interrupted_and_exits_0(
    azurite: Any, queue: Any, run: SimRun, recorder: Path, tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    config = write_config(tmp_path, azurite, queue.queue_name,
                          [sys.executable, str(recorder), str(out), "0", "60"])
    await queue.send_message(post_message(run))
    proc = aumwatch(config)
    try:
        assert await asyncio.to_thread(wait_for, lambda: bool(records(out)))
        task_pid = records(out)[0]["pid"]
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.to_thread(proc.communicate, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    [line] = [json.loads(x) for x in stdout.splitlines()]
    assert (line["outcome"], line["task"]) == ("interrupted", "slow")
    assert await asyncio.to_thread(all_gone, [task_pid])
    assert await queue_is_empty(queue)  # its task run is recorded: the message is done


async def test_a_stop_between_two_tasks_returns_the_message_at_once_for_the_rest(
    queue: Any, journal: Journal, standin_clock: ManualClock, run: SimRun, recorder: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    quick = task(recorder, out, 0, name="slow", on="post", configurations=("nightly",))
    slow = dataclasses.replace(quick, command=(*quick.command, "60"))  # sleeps 60 s
    after = task(recorder, out, 0, name="after", on="post", configurations=("nightly",))
    await queue.send_message(post_message(run))
    runner = TaskRunner([slow, after], journal, standin_clock, environ=os.environ)
    source = EventSource(queue, clock=standin_clock, journal=journal, mode="consume",
                         visibility_timeout=runner.visibility_timeout(),
                         before_delete=runner.handle, max_messages=1)
    poll = asyncio.ensure_future(source.poll())
    assert await asyncio.to_thread(wait_for, lambda: bool(records(out)))
    runner.request_stop()  # SIGTERM while "slow" runs
    batch = await asyncio.wait_for(poll, 30)
    # A clean stop is no failure, and the message is back at once (not after the
    # visibility timeout, a minute away) for the next runner to run "after".
    assert batch.error is None
    assert runner.visibility_timeout() >= 60
    assert len(await queue.peek_messages(max_messages=32)) == 1
    assert [(r.task, r.state) for r in journal.task_runs(run.correlation_id)] == [
        ("slow", "interrupted")]
    results, errors = await drain(queue, journal, standin_clock, [slow, after])
    assert errors == []
    assert [(r.task, str(r.outcome)) for r in results] == [
        ("slow", "skipped-duplicate"), ("after", "ok")]
    assert await queue_is_empty(queue)


async def test_the_command_judges_the_window_on_the_servers_clock_and_cancels(
    azurite: Any, queue: Any, standin: Any, standin_world: World, run: SimRun,
    recorder: Path, tmp_path: Path,
) -> None:
    # The stand-in's clock is months away from this machine's: on the local clock the run
    # would be long over ("too late to cancel"); on the server's, its window is open.
    out = tmp_path / "out.jsonl"
    config = write_config(tmp_path, azurite, queue.queue_name,
                          [sys.executable, str(recorder), str(out), "3"], on="pre",
                          server=standin)
    await queue.send_message(pre_message(run))
    proc = aumwatch(config, "--once")
    stdout, stderr = await asyncio.to_thread(proc.communicate, timeout=60)
    [line] = [json.loads(item) for item in stdout.splitlines()]
    assert (line["outcome"], line["exit_code"], line["cancelled_run"]) == ("failed", 3, True), \
        stderr
    # (Date has whole seconds: T-30m measured may read a moment later.)
    assert re.search(r"at T-(29|30)m: cancelling the run", line["reason"]), line["reason"]
    # Its times are the server's too (the stand-in's clock stands still at NOW).
    assert line["started"].startswith(NOW.strftime("%Y-%m-%dT%H:%M"))
    assert standin_world.get_run(run.correlation_id).status == "Cancelled"
    with Journal(tmp_path / "data" / "journal.sqlite3") as journal:
        [audit] = journal.cancel_audit()
    assert (audit.outcome, audit.initiator) == ("verified-cancelled", "task slow (exit 3)")


async def test_a_missing_ca_file_is_one_line_naming_it_not_a_traceback(
    azurite: Any, queue: Any, standin: Any, recorder: Path, tmp_path: Path,
) -> None:
    # An `aumwatch sim` config outlives its sim: the CA file it names is gone.
    config = write_config(tmp_path, azurite, queue.queue_name,
                          [sys.executable, str(recorder), str(tmp_path / "o"), "0"],
                          on="pre", server=standin)
    missing = tmp_path / "gone" / "ca.pem"
    config.write_text(config.read_text().replace(str(standin.ca_file), str(missing)))
    proc = aumwatch(config, "--once")
    stdout, stderr = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 1 and stdout == ""
    assert "Traceback" not in stderr
    assert f"the CA bundle {missing} (azure.ca_file) does not exist" in stderr


async def test_without_a_credential_a_cancel_on_failure_task_is_warned_of_at_start(
    azurite: Any, queue: Any, standin: Any, recorder: Path, tmp_path: Path,
) -> None:
    config = write_config(tmp_path, azurite, queue.queue_name,
                          [sys.executable, str(recorder), str(tmp_path / "o"), "0"],
                          on="pre", server=standin)
    config.write_text(config.read_text().replace(f'token = "{standin.token}"', ""))
    proc = aumwatch(config, "--once")
    _, stderr = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 0, stderr
    assert "warning: no Azure credential" in stderr
    assert "a failed cancel_on_failure pre-check cannot cancel its run" in stderr


async def test_tasks_refuse_peek_mode_saying_why(
    azurite: Any, queue: Any, recorder: Path, tmp_path: Path,
) -> None:
    config = write_config(tmp_path, azurite, queue.queue_name,
                          [sys.executable, str(recorder), str(tmp_path / "o"), "0"],
                          mode="peek")
    proc = aumwatch(config, "--once")
    stdout, stderr = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 1
    assert stdout == ""
    assert "consume" in stderr and "dedicated to aumwatch" in stderr


async def test_a_second_runner_on_the_same_queue_is_refused_naming_the_holder(
    azurite: Any, queue: Any, recorder: Path, tmp_path: Path,
) -> None:
    config = write_config(tmp_path, azurite, queue.queue_name,
                          [sys.executable, str(recorder), str(tmp_path / "o"), "0"])
    first = aumwatch(config)
    try:
        lock_dir = tmp_path / "data"
        assert await asyncio.to_thread(
            wait_for, lambda: any(p.read_text().split()[:1] == [str(first.pid)]
                                  for p in lock_dir.glob("tasks-*.lock")))
        second = aumwatch(config, "--once")
        _, stderr = await asyncio.to_thread(second.communicate, timeout=60)
        assert second.returncode == 1
        assert f"pid {first.pid}" in stderr and "one runner per queue" in stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)


# --- tasks of different messages side by side --------------------------------------------

#: A task that says it started (argv[1], a JSON line with its run and time) and then waits
#: for the gate file argv[2] (30 s at most) before exiting 0.
GATED = r'''
import json, os, sys, time
out, gate = sys.argv[1], sys.argv[2]
with open(out, "a", encoding="utf-8") as f:
    f.write(json.dumps({"run": os.environ["AUMWATCH_TASK_CORRELATION_ID"],
                        "pid": os.getpid(), "at": time.time()}) + "\n")
deadline = time.time() + 30
while not os.path.exists(gate) and time.time() < deadline:
    time.sleep(0.05)
'''


def gated(tmp_path: Path, out: Path, gate: Path, **kw: Any) -> TaskSpec:
    script = tmp_path / "gated.py"
    script.write_text(GATED, encoding="utf-8")
    kw.setdefault("name", "precheck")
    kw.setdefault("on", "pre")
    kw.setdefault("configurations", ("*",))
    return TaskSpec(command=(sys.executable, str(script), str(out), str(gate)), **kw)


def side_by_side(queue: Any, journal: Journal, clock: ManualClock, runner: TaskRunner,
                 concurrency: int = TASK_CONCURRENCY, **kw: Any) -> EventSource:
    return EventSource(queue, clock=clock, journal=journal, mode="consume",
                       visibility_timeout=runner.visibility_timeout(),
                       before_delete=runner.handle, hook_concurrency=concurrency, **kw)


async def test_the_pre_checks_of_two_configurations_run_side_by_side(
    queue: Any, journal: Journal, standin_clock: ManualClock, standin_world: World,
    run: SimRun, recorder: Path, tmp_path: Path,
) -> None:
    weekly = add_run(standin_world, config_object("weekly"), run.start, machines=1)
    out = tmp_path / "out.jsonl"
    await queue.send_message(pre_message(run))
    await queue.send_message(pre_message(weekly, "weekly"))
    slow = dataclasses.replace(task(recorder, out, 0, configurations=("*",)),
                               command=(*task(recorder, out, 0).command, "3"))  # 3 s each
    runner = TaskRunner([slow], journal, standin_clock, environ=os.environ)
    errors: list[str] = []
    ok = await run_queue(side_by_side(queue, journal, standin_clock, runner), runner,
                         once=True, stop=asyncio.Event(), interval=0.1, on_error=errors.append)
    assert ok and errors == []
    assert sorted(r.configuration or "" for r in runner.results) == ["nightly", "weekly"]
    assert [str(r.outcome) for r in runner.results] == ["ok", "ok"]
    first, second = sorted(x["at"] for x in records(out))
    # One after the other, the second would start 3 s after the first: they overlap.
    assert second - first < 1.0
    assert await queue_is_empty(queue)  # both deleted once recorded (--once waited)


async def test_a_poll_returns_new_events_while_a_task_runs(
    queue: Any, journal: Journal, standin_clock: ManualClock, standin_world: World,
    run: SimRun, tmp_path: Path,
) -> None:
    out, gate = tmp_path / "out.jsonl", tmp_path / "gate"
    runner = TaskRunner([gated(tmp_path, out, gate, configurations=("nightly",))], journal,
                        standin_clock, environ=os.environ)
    source = side_by_side(queue, journal, standin_clock, runner)
    await queue.send_message(pre_message(run))
    first = await asyncio.wait_for(source.poll(), 30)
    # The poll came back with the event while its task is still to finish.
    assert [e.event.correlation_id for e in first.events] == [run.correlation_id]
    assert source.in_flight == 1
    assert await asyncio.to_thread(wait_for, lambda: bool(records(out)))
    later = add_run(standin_world, config_object("weekly"), run.start, machines=1)
    await queue.send_message(pre_message(later, "weekly"))
    second = await asyncio.wait_for(source.poll(), 30)
    assert [e.event.correlation_id for e in second.events] == [later.correlation_id]
    [row] = journal.task_runs(run.correlation_id)
    assert row.state == "running"  # the tail moved on while the task ran
    gate.touch()
    assert await source.drain(30)
    assert [(r.task, str(r.outcome)) for r in runner.results] == [("precheck", "ok")]
    assert await queue_is_empty(queue)


async def test_a_full_runner_receives_nothing_until_a_task_ends(
    queue: Any, journal: Journal, standin_clock: ManualClock, standin_world: World,
    run: SimRun, tmp_path: Path,
) -> None:
    out, gate = tmp_path / "out.jsonl", tmp_path / "gate"
    runner = TaskRunner([gated(tmp_path, out, gate)], journal, standin_clock,
                        environ=os.environ)
    source = side_by_side(queue, journal, standin_clock, runner, concurrency=2)
    runs = [run] + [add_run(standin_world, config_object(name), run.start, machines=1)
                    for name in ("weekly", "monthly")]
    for item, name in zip(runs, ("nightly", "weekly", "monthly"), strict=True):
        await queue.send_message(pre_message(item, name))
    batch = await source.poll()
    assert len(batch.events) == 2 and source.in_flight == 2
    # Both slots are busy: the third message is not received (its visibility timeout would
    # run while it waited).
    assert (await source.poll()).events == ()
    assert len(await queue.peek_messages(max_messages=32)) == 1
    gate.touch()
    assert await source.drain(30)
    assert len((await source.poll()).events) == 1
    assert await source.drain(30)
    assert sorted(str(r.outcome) for r in runner.results) == ["ok", "ok", "ok"]
    assert await queue_is_empty(queue)


async def test_a_duplicate_delivery_handled_side_by_side_runs_the_task_once(
    queue: Any, journal: Journal, standin_clock: ManualClock, run: SimRun, tmp_path: Path,
) -> None:
    out, gate = tmp_path / "out.jsonl", tmp_path / "gate"
    skipped_while: list[list[str]] = []

    def on_result(result: TaskResult) -> None:
        if result.outcome == "skipped-duplicate":
            # Its message is deleted after this: the claim it lost to must exist already.
            skipped_while.append([r.state for r in journal.task_runs(run.correlation_id)])

    runner = TaskRunner([gated(tmp_path, out, gate)], journal, standin_clock,
                        environ=os.environ, on_result=on_result)
    source = side_by_side(queue, journal, standin_clock, runner)
    message = pre_message(run)
    await queue.send_message(message)
    await queue.send_message(message)  # Event Grid delivers at least once
    batch = await source.poll()
    assert (len(batch.events), batch.duplicate_count) == (1, 1)
    assert source.in_flight <= 2
    assert await asyncio.to_thread(wait_for, lambda: bool(records(out)))
    gate.touch()
    assert await source.drain(30)
    # The copy waited for the first to finish its tasks, then claimed nothing.
    assert skipped_while == [["ok"]]
    assert sorted(str(r.outcome) for r in runner.results) == ["ok", "skipped-duplicate"]
    assert len(records(out)) == 1
    assert [r.state for r in journal.task_runs()] == ["ok"]
    assert await queue_is_empty(queue)


async def test_the_claim_is_atomic_across_threads_and_coroutines(journal: Journal) -> None:
    def claim() -> int | None:
        return journal.claim_task_run(run_id="/subscriptions/x/run", event_kind="pre",
                                      task="precheck", configuration="nightly",
                                      started_at=NOW, pid=os.getpid())

    threaded = await asyncio.gather(*(asyncio.to_thread(claim) for _ in range(16)))
    assert sum(seq is not None for seq in threaded) == 1
    assert claim() is None
    assert len(journal.task_runs()) == 1


async def test_a_background_hook_failure_is_the_next_batchs_error_and_the_message_stays(
    queue: Any, journal: Journal, standin_clock: ManualClock, run: SimRun,
) -> None:
    async def failing(events: Any) -> bool:
        await asyncio.sleep(0.05)
        raise RuntimeError("the journal is gone")

    source = EventSource(queue, clock=standin_clock, journal=journal, mode="consume",
                         visibility_timeout=1, before_delete=failing, hook_concurrency=4)
    await queue.send_message(pre_message(run))
    first = await source.poll()
    assert len(first.events) == 1 and first.error is None  # shown at once
    assert await source.drain(10)
    second = await source.poll()
    assert second.error is not None and "the journal is gone" in second.error
    assert "\n" not in second.error
    assert (await source.poll()).error is None  # reported once
    await asyncio.sleep(1.5)  # its visibility timeout: it was never deleted
    assert len(await queue.peek_messages(max_messages=32)) == 1
    # `--once` reports it too (after its drain) and fails.
    errors: list[str] = []
    runner = TaskRunner([], journal, standin_clock, environ=os.environ)
    ok = await run_queue(source, runner, once=True, stop=asyncio.Event(), interval=0.1,
                         on_error=errors.append)
    assert not ok and any("the journal is gone" in e for e in errors)
    await asyncio.sleep(1.5)
    assert len(await queue.peek_messages(max_messages=32)) == 1


async def test_sigterm_during_two_running_tasks_records_both_interrupted_and_returns_both(
    azurite: Any, queue: Any, standin_world: World, run: SimRun, recorder: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    config = write_config(tmp_path, azurite, queue.queue_name,
                          [sys.executable, str(recorder), str(out), "0", "60"])
    # A second task per message, to run after "slow": a stop leaves it unrun, so each
    # message goes back to the queue at once for the next runner.
    config.write_text(config.read_text() + f"""
[[tasks]]
name = "after"
on = "post"
configurations = ["nightly"]
command = {json.dumps([sys.executable, str(recorder), str(tmp_path / "after.jsonl"), "0"])}
""", encoding="utf-8")
    other = add_run(standin_world, config_object("nightly"), run.start + timedelta(days=1),
                    machines=1)
    await queue.send_message(post_message(run))
    await queue.send_message(post_message(other))
    proc = aumwatch(config)
    try:
        # Both tasks run at once (one after the other, the second would wait 60 s).
        assert await asyncio.to_thread(wait_for, lambda: len(records(out)) == 2), \
            proc.stderr.read() if proc.poll() is not None else "the tasks did not both start"
        pids = [x["pid"] for x in records(out)]
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.to_thread(proc.communicate, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    lines = [json.loads(x) for x in stdout.splitlines()]
    assert sorted((x["task"], x["outcome"]) for x in lines) == [
        ("slow", "interrupted"), ("slow", "interrupted")]
    assert {x["correlation_id"].lower() for x in lines} == {
        run.correlation_id.lower(), other.correlation_id.lower()}
    assert await asyncio.to_thread(all_gone, pids)
    with Journal(tmp_path / "data" / "journal.sqlite3") as journal:
        assert sorted((r.task, r.state) for r in journal.task_runs()) == [
            ("slow", "interrupted"), ("slow", "interrupted")]
    assert not (tmp_path / "after.jsonl").exists()
    assert len(await queue.peek_messages(max_messages=32)) == 2  # both back, visible now


async def test_a_duplicate_handled_side_by_side_keeps_the_declared_order_and_runs_nothing(
    queue: Any, journal: Journal, standin_clock: ManualClock, run: SimRun, recorder: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    first = task(recorder, out, 0, name="stop-services", configurations=("*",))
    first = dataclasses.replace(first, command=(*first.command, "2"))  # runs 2 s
    second = task(recorder, out, 0, name="snapshot", configurations=("*",))
    skipped_while: list[list[tuple[str, str]]] = []

    def on_result(result: TaskResult) -> None:
        if result.outcome == "skipped-duplicate":
            skipped_while.append([(r.task, r.state)
                                  for r in journal.task_runs(run.correlation_id)])

    runner = TaskRunner([first, second], journal, standin_clock, environ=os.environ,
                        on_result=on_result)
    source = side_by_side(queue, journal, standin_clock, runner)
    message = pre_message(run)
    await queue.send_message(message)
    await queue.send_message(message)  # both copies handled side by side
    batch = await source.poll()
    assert (len(batch.events), batch.duplicate_count) == (1, 1)
    assert await source.drain(30)
    seen = records(out)
    # Each task ran once, the second only after the first had ended (2 s after its start).
    assert [x["env"]["AUMWATCH_TASK_NAME"] for x in seen] == ["stop-services", "snapshot"]
    assert seen[1]["at"] >= seen[0]["at"] + 2
    assert [(r.task, str(r.outcome)) for r in runner.results] == [
        ("stop-services", "ok"), ("snapshot", "ok"),
        ("stop-services", "skipped-duplicate"), ("snapshot", "skipped-duplicate")]
    # The copy reported (and its message was deleted) only once every claim was committed.
    assert skipped_while[0] == [("stop-services", "ok"), ("snapshot", "ok")]
    assert await queue_is_empty(queue)


def test_a_message_stays_hidden_a_minute_whatever_the_task_timeouts(
    journal: Journal, standin_clock: ManualClock, recorder: Path, tmp_path: Path,
) -> None:
    # Hidden for every timeout plus a margin, a crashed runner's message came back only
    # hours later, and its remaining pre tasks were then skipped as late.
    long = [task(recorder, tmp_path / "o", 0, name=f"t{i}", timeout=timedelta(hours=2))
            for i in range(3)]
    runner = TaskRunner(long, journal, standin_clock, environ=os.environ)
    assert runner.visibility_timeout() == 60


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_a_message_is_kept_hidden_while_its_hook_runs_and_deleted_after(
    queue: Any, journal: Journal, standin_clock: ManualClock, run: SimRun, concurrency: int,
) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def hook(events: Any) -> bool:
        started.set()
        await release.wait()
        return True

    source = EventSource(queue, clock=standin_clock, journal=journal, mode="consume",
                         visibility_timeout=1, before_delete=hook,
                         hook_concurrency=concurrency, max_messages=1)
    await queue.send_message(pre_message(run))
    poll = asyncio.ensure_future(source.poll())
    await asyncio.wait_for(started.wait(), 30)
    # Three visibility timeouts of real time: renewed, the message never reappears.
    await asyncio.sleep(3)
    assert await queue_is_empty(queue)
    release.set()
    batch = await asyncio.wait_for(poll, 30)
    assert await source.drain(30)
    assert batch.error is None
    assert (await source.poll()).error is None  # the delete used the renewed receipt
    await asyncio.sleep(1.5)
    assert await queue_is_empty(queue)


# --- pre tasks of a run known to be cancelled (issue 22 item 1) ---------------------------


def counting(read: Any) -> Any:
    """``read`` (a run-status reader), counting its calls in ``.calls``."""
    calls: list[list[str]] = []

    async def counted(ids: Any) -> Any:
        calls.append(sorted(ids))
        return await read(ids)

    counted.calls = calls  # type: ignore[attr-defined]
    return counted


async def test_a_pre_task_of_a_run_cancelled_and_verified_in_the_journal_is_not_run(
    queue: Any, journal: Journal, standin_clock: ManualClock, standin_world: World,
    aio_maintenance_client: Any, run: SimRun, recorder: Path, tmp_path: Path,
) -> None:
    # `aumwatch cancel` (or a dashboard) cancelled the run and verified it, sharing this
    # journal; then the pre-event comes.
    send, read_back = maintenance_client_calls(aio_maintenance_client)
    canceller = Canceller(send, read_back, journal, standin_clock, WindowRules(),
                          sleep=_no_wait)
    result = await canceller.cancel(CancelTarget(run.correlation_id, "nightly", run.start,
                                                 computed_id=False))
    assert result.verified
    out = tmp_path / "out.jsonl"
    await queue.send_message(pre_message(run))
    results, errors = await drain(queue, journal, standin_clock,
                                  [task(recorder, out, 0, configurations=("*",))])
    assert errors == []
    [line] = [r.to_json() for r in results]
    assert line["outcome"] == "skipped-cancelled"
    assert (line["exit_code"], line["cancelled_run"]) == (None, False)
    assert "the run is cancelled" in line["reason"] and "(journal)" in line["reason"]
    assert records(out) == []  # never run
    [row] = journal.task_runs(run.correlation_id)
    assert (row.state, row.detail) == ("skipped-cancelled", line["reason"])
    assert await queue_is_empty(queue)


async def test_a_pre_task_after_one_that_cancelled_the_run_is_not_run(
    queue: Any, journal: Journal, standin_clock: ManualClock, standin_world: World,
    aio_maintenance_client: Any, run: SimRun, recorder: Path, tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    await queue.send_message(pre_message(run))
    results, _ = await drain(queue, journal, standin_clock,
                             [task(recorder, out, 3, cancel_on_failure=True),
                              task(recorder, out, 0, name="stop-services")],
                             aio_maintenance_client)
    assert [(r.task, str(r.outcome), r.cancelled_run) for r in results] == [
        ("precheck", "failed", True), ("stop-services", "skipped-cancelled", False)]
    assert len(records(out)) == 1


async def test_a_pre_task_of_a_run_resource_graph_shows_cancelled_is_not_run_one_query(
    queue: Any, journal: Journal, standin_clock: ManualClock, standin_world: World,
    aio_graph_client: Any, run: SimRun, recorder: Path, tmp_path: Path,
) -> None:
    # Cancelled elsewhere (the portal, another tool): only Resource Graph knows it.
    standin_world.upsert_run(dataclasses.replace(run, status="Cancelled"))
    weekly = add_run(standin_world, config_object("weekly"), run.start, machines=1)
    out = tmp_path / "out.jsonl"
    await queue.send_message(pre_message(run))
    await queue.send_message(pre_message(weekly, "weekly"))
    read = counting(graph_run_statuses(QueryRunner(aio_graph_client, subscriptions=[SUB],
                                                   clock=standin_clock)))
    results, errors = await drain(queue, journal, standin_clock,
                                  [task(recorder, out, 0, configurations=("*",))],
                                  run_statuses=read, concurrency=TASK_CONCURRENCY)
    assert errors == []
    outcomes = {r.configuration: r for r in results}
    assert str(outcomes["nightly"].outcome) == "skipped-cancelled"
    assert "Resource Graph shows its status Cancelled" in (outcomes["nightly"].reason or "")
    assert str(outcomes["weekly"].outcome) == "ok"
    assert [x["env"]["AUMWATCH_TASK_CONFIGURATION_NAME"] for x in records(out)] == ["weekly"]
    # The two messages of the poll shared one Resource Graph query.
    assert read.calls == [sorted([run.correlation_id.lower(), weekly.correlation_id.lower()])]


async def test_a_pre_event_saying_its_run_is_cancelled_runs_no_pre_task(
    queue: Any, journal: Journal, standin_clock: ManualClock, run: SimRun, recorder: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    event = pre_event_for(run, "nightly")
    event["data"]["Status"] = "Cancelled"  # a status in the event's data
    await queue.send_message(encode_message(event))
    results, _ = await drain(queue, journal, standin_clock, [task(recorder, out, 0)])
    [result] = results
    assert str(result.outcome) == "skipped-cancelled"
    assert result.reason is not None and "the event says its status is Cancelled" in result.reason
    assert records(out) == []


async def test_a_failing_resource_graph_read_does_not_hold_the_pre_tasks_and_is_said(
    queue: Any, journal: Journal, standin_clock: ManualClock, run: SimRun, recorder: Path,
    tmp_path: Path,
) -> None:
    async def unreachable(ids: Any) -> Any:
        raise ConnectionError("Resource Graph unreachable")

    read = counting(unreachable)
    out = tmp_path / "out.jsonl"
    await queue.send_message(pre_message(run))
    results, errors = await drain(queue, journal, standin_clock,
                                  [task(recorder, out, 0), task(recorder, out, 0, name="b")],
                                  run_statuses=read)
    assert errors == []
    assert [str(r.outcome) for r in results] == ["ok", "ok"]
    for result in results:
        assert result.reason is not None
        assert ("Resource Graph's status of the run could not be read (Resource Graph "
                "unreachable): judged on the journal and the event only") in result.reason
    assert len(read.calls) == 1  # the failure is reused, not asked again per task


async def test_the_command_skips_the_pre_task_of_a_run_cancelled_before_it_started(
    azurite: Any, queue: Any, standin: Any, standin_world: World, run: SimRun,
    recorder: Path, tmp_path: Path,
) -> None:
    # The scenario: the run is cancelled, then `aumwatch tasks` starts with a pre
    # task for every configuration and reads the run's pre-event.
    standin_world.upsert_run(dataclasses.replace(run, status="Cancelled"))
    out = tmp_path / "out.jsonl"
    config = write_config(tmp_path, azurite, queue.queue_name,
                          [sys.executable, str(recorder), str(out), "0"], on="pre",
                          server=standin)
    config.write_text(config.read_text().replace('configurations = ["nightly"]',
                                                 'configurations = ["*"]'), encoding="utf-8")
    await queue.send_message(pre_message(run))
    proc = aumwatch(config, "--once")
    stdout, stderr = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 0, stderr
    [line] = [json.loads(item) for item in stdout.splitlines()]
    assert (line["outcome"], line["correlation_id"]) == ("skipped-cancelled",
                                                         run.correlation_id)
    assert {"task", "correlation_id", "event_kind", "outcome", "exit_code", "cancelled_run",
            "started", "ended", "configuration", "reason",
            "tenant", "tenant_id"} == set(line)  # issue 19: every JSON row names its tenant
    assert records(out) == []
    assert "skipped-cancelled" in stderr  # the diagnostic line names it too
