"""The task runner with real subprocesses and a real journal, without Azure."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.azure.journal import Journal
from services.azure.tasks import RunnerLock, TaskRunner, TasksRefused, known_secrets
from services.domain.clock import ManualClock
from services.domain.events import EventKind, MaintenanceEvent
from services.domain.tasks import TaskSpec
from tests.processes import all_gone

START = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
CONFIG_ID = ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Maintenance/"
             "maintenanceConfigurations/web")
RUN_ID = CONFIG_ID + "/providers/microsoft.maintenance/applyupdates/20260310130000"
EVENT = MaintenanceEvent(
    id="e1", type="Microsoft.Maintenance.PostMaintenanceEvent", kind=EventKind.POST,
    schema="eventgrid", correlation_id=RUN_ID, configuration_id=CONFIG_ID,
    configuration_name="web", run_name="20260310130000", start=START,
    end=START + timedelta(hours=1), cancellation_cutoff=None, status="Succeeded",
    subscription_ids=("s",), event_time=None)


def script(tmp_path: Path, body: str, **kw: object) -> TaskSpec:
    path = tmp_path / "task.py"
    path.write_text(body, encoding="utf-8")
    values: dict[str, object] = {"name": "t", "on": "post", "configurations": ("*",),
                                 "command": (sys.executable, str(path))}
    values.update(kw)
    return TaskSpec(**values)  # type: ignore[arg-type]


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "j.sqlite3")


def runner(journal: Journal, task: TaskSpec, **kw: object) -> TaskRunner:
    return TaskRunner([task], journal, ManualClock(START), environ=os.environ,
                      **kw)  # type: ignore[arg-type]


async def test_a_timeout_kills_the_whole_process_group(tmp_path: Path, journal: Journal) -> None:
    pids = tmp_path / "pids"
    task = script(tmp_path, f"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open({str(pids)!r}, "w").write(str(child.pid))
print("started", flush=True)
time.sleep(60)
""", timeout=timedelta(seconds=1.5))
    result = await runner(journal, task).run_one(task, EVENT)
    assert result.outcome == "timeout"
    grandchild = int(pids.read_text())
    assert all_gone([grandchild], timeout=5)
    [row] = journal.task_runs()
    assert row.state == "timeout" and row.output is not None
    assert "started" in row.output and "timed out after 1.5s" in row.output


async def test_output_is_bounded_head_and_tail(tmp_path: Path, journal: Journal) -> None:
    task = script(tmp_path, "import sys\nsys.stdout.write('H' * 100 + 'M' * 50000 + 'T' * 100)"
                  "\nsys.exit(5)")
    result = await runner(journal, task, output_limit=200).run_one(task, EVENT)
    assert (result.outcome, result.exit_code) == ("failed", 5)
    [row] = journal.task_runs()
    assert row.output is not None
    assert row.output.startswith("H" * 100) and row.output.endswith("T" * 100)
    assert "[... 50000 bytes of output cut ...]" in row.output


async def test_a_command_that_cannot_start_is_a_failure_recorded(tmp_path: Path,
                                                                 journal: Journal) -> None:
    task = TaskSpec(name="t", on="post", configurations=("*",),
                    command=(str(tmp_path / "missing"),))
    result = await runner(journal, task).run_one(task, EVENT)
    assert (result.outcome, result.exit_code) == ("failed", None)
    [row] = journal.task_runs()
    assert row.state == "failed" and "cannot start" in (row.output or "")


async def test_the_event_reaches_stdin_and_the_private_file(tmp_path: Path,
                                                            journal: Journal) -> None:
    out = tmp_path / "seen"
    task = script(tmp_path, f"""
import os, stat, sys
path = os.environ["AUMWATCH_TASK_EVENT_FILE"]
mode = stat.S_IMODE(os.stat(path).st_mode)
same = open(path).read() == sys.stdin.read()
open({str(out)!r}, "w").write(f"{{mode:o}} {{same}} {{os.path.dirname(path)}}")
""")
    result = await runner(journal, task).run_one(task, EVENT)
    assert result.outcome == "ok"
    mode, same, directory = out.read_text().split(" ")
    assert (mode, same) == ("600", "True")
    assert not Path(directory).exists()  # removed once the task ended


async def test_rows_left_running_by_a_dead_runner_are_interrupted_not_rerun(
        tmp_path: Path, journal: Journal) -> None:
    task = script(tmp_path, "raise SystemExit(0)")
    dead_pid = 2 ** 22 + 12345  # beyond pid_max: no such process
    journal.claim_task_run(run_id=RUN_ID, event_kind="post", task="t", configuration="web",
                           started_at=START, pid=dead_pid)
    seen = []
    r = runner(journal, task, on_result=seen.append)
    [recovered] = r.recover()
    assert recovered.outcome == "interrupted" and seen == [recovered]
    again = await r.run_one(task, EVENT)
    assert again.outcome == "skipped-duplicate" and "interrupted" in (again.reason or "")


def test_one_runner_per_queue(tmp_path: Path) -> None:
    url = "https://acct.queue.core.windows.net/q?sv=x&sig=secret"
    with RunnerLock(tmp_path, url):
        with pytest.raises(TasksRefused) as info, RunnerLock(tmp_path, url.upper()):
            pass
        assert f"pid {os.getpid()}" in str(info.value)
        assert "secret" not in str(info.value)
    with RunnerLock(tmp_path, url):  # released: free again
        pass


def test_known_secrets_include_the_connection_string_keys() -> None:
    conn = "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=S2V5S2V5;QueueEndpoint=x"
    found = known_secrets(conn, None, environ={"AZURE_CLIENT_SECRET": "cs-123456"})
    assert {conn, "S2V5S2V5", "cs-123456"} <= set(found)


async def test_a_failing_clock_sync_does_not_stop_the_task_or_its_record(
        tmp_path: Path, journal: Journal) -> None:
    from dataclasses import replace

    calls: list[str] = []

    async def broken_sync(event: MaintenanceEvent) -> None:
        calls.append(event.correlation_id)
        raise OSError("Resource Manager unreachable")

    pre = replace(EVENT, kind=EventKind.PRE, type="Microsoft.Maintenance.PreMaintenanceEvent",
                  cancellation_cutoff=START - timedelta(minutes=10))
    task = script(tmp_path, "import sys\nsys.exit(2)", on="pre", cancel_on_failure=True)
    # The clock stands at T-60m: the window is not open yet, whatever the sync did.
    result = await TaskRunner([task], journal, ManualClock(START - timedelta(hours=1)),
                              environ=os.environ, sync_clock=broken_sync).run_one(task, pre)
    assert calls == [RUN_ID, RUN_ID]  # before it ran and before its window was judged
    assert (result.outcome, result.exit_code, result.cancelled_run) == ("failed", 2, False)
    assert result.reason == "pre-check t failed at T-60m: the cancel window is not open yet"
    [row] = journal.task_runs()
    assert row.state == "failed"


async def test_a_hanging_clock_sync_is_cut_short(tmp_path: Path, journal: Journal,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    monkeypatch.setattr("services.azure.tasks.CLOCK_SYNC_TIMEOUT", 0.2)

    async def hanging_sync(event: MaintenanceEvent) -> None:
        await asyncio.sleep(60)

    from dataclasses import replace

    pre_task = script(tmp_path, "pass", name="p", on="pre", cancel_on_failure=True)
    pre = replace(EVENT, kind=EventKind.PRE, type="Microsoft.Maintenance.PreMaintenanceEvent")
    started = asyncio.get_running_loop().time()
    # T-30m: a pre task in time (at the start itself it would be skipped as too late).
    result = await TaskRunner([pre_task], journal, ManualClock(START - timedelta(minutes=30)),
                              environ=os.environ,
                              sync_clock=hanging_sync).run_one(pre_task, pre)
    assert result.outcome == "ok"
    assert asyncio.get_running_loop().time() - started < 10


async def test_a_pre_task_handled_after_its_run_started_is_recorded_skipped_late_not_run(
        tmp_path: Path, journal: Journal) -> None:
    marker = tmp_path / "ran"
    task = script(tmp_path, f"open({str(marker)!r}, 'w').write('ran')", on="pre")
    pre = MaintenanceEvent(
        id="e1", type="Microsoft.Maintenance.PreMaintenanceEvent", kind=EventKind.PRE,
        schema="eventgrid", correlation_id=RUN_ID, configuration_id=CONFIG_ID,
        configuration_name="web", run_name="20260310130000", start=START,
        end=START + timedelta(hours=1), cancellation_cutoff=START - timedelta(minutes=10),
        status=None, subscription_ids=("s",), event_time=None)
    late = TaskRunner([task], journal, ManualClock(START + timedelta(minutes=5)),
                      environ=os.environ)
    result = await late.run_one(task, pre)
    assert result.outcome == "skipped-late" and result.exit_code is None
    assert "started at 2026-03-10T13:00:00Z" in (result.reason or "")
    assert not marker.exists()
    [row] = journal.task_runs()
    assert row.state == "skipped-late" and row.ended_at is not None
    # Recorded once: a second delivery is a duplicate, and it still does not run.
    again = await late.run_one(task, pre)
    assert again.outcome == "skipped-duplicate" and not marker.exists()
    # In time, the same task runs.
    on_time = TaskRunner([task], Journal(tmp_path / "j2.sqlite3"),
                         ManualClock(START - timedelta(minutes=35)), environ=os.environ)
    assert (await on_time.run_one(task, pre)).outcome == "ok" and marker.exists()


async def test_run_statuses_share_one_read_per_gather_and_reuse_a_failure() -> None:
    import asyncio

    from services.azure.tasks import RunStatuses

    calls: list[list[str]] = []
    failing = False

    async def read(ids: object) -> dict[str, str]:
        calls.append(list(ids))  # type: ignore[call-overload]
        if failing:
            raise ConnectionError("down")
        return {RUN_ID.upper(): "Cancelled"}

    statuses = RunStatuses(read, ttl=60, gather=0.01)
    other = RUN_ID.replace("web", "db")
    both = await asyncio.gather(statuses.status(RUN_ID), statuses.status(other))
    assert both == [("Cancelled", None), (None, None)]
    assert calls == [sorted([RUN_ID.lower(), other.lower()])]
    assert await statuses.status(RUN_ID) == ("Cancelled", None)  # reused within the ttl
    assert len(calls) == 1
    failing = True
    fresh = RunStatuses(read, ttl=60, gather=0.01)
    assert await fresh.status(RUN_ID) == (None, "down")
    assert await fresh.status(other) == (None, "down")  # not asked again within the ttl
    assert len(calls) == 2


async def test_a_hanging_run_status_read_is_cut_short() -> None:
    import asyncio

    from services.azure.tasks import RunStatuses

    async def hang(ids: object) -> dict[str, str]:
        await asyncio.Event().wait()
        return {}

    statuses = RunStatuses(hang, timeout=0.05, gather=0.0)
    assert await statuses.status(RUN_ID) == (None, "no answer within 0.05s")


async def test_run_statuses_prefetched_as_hooks_start_share_one_read() -> None:
    import asyncio

    from services.azure.tasks import RunStatuses

    calls: list[list[str]] = []

    async def read(ids: object) -> dict[str, str]:
        calls.append(list(ids))  # type: ignore[call-overload]
        return {}

    statuses = RunStatuses(read, gather=0.01)
    other = RUN_ID.replace("web", "db")
    statuses.prefetch([RUN_ID])
    statuses.prefetch([other])

    async def late_ask(correlation_id: str, after: float) -> tuple[str | None, str | None]:
        await asyncio.sleep(after)  # a clock correction before the task asks
        return await statuses.status(correlation_id)

    assert await asyncio.gather(late_ask(RUN_ID, 0.05), late_ask(other, 0.1)) == [
        (None, None), (None, None)]
    assert calls == [sorted([RUN_ID.lower(), other.lower()])]
