"""The journal's task-run records (issue 12): claimed once, finished, interrupted, listed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.azure.journal import AuditOutcome, Journal, JournalError

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
RUN = ("/subscriptions/s/resourcegroups/rg/providers/microsoft.maintenance/"
       "maintenanceconfigurations/nightly/providers/microsoft.maintenance/applyupdates/"
       "20260310124000")


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "j.sqlite3")


def test_a_task_is_claimed_once_per_run_and_event_kind(journal: Journal) -> None:
    seq = journal.claim_task_run(run_id=RUN, event_kind="pre", task="precheck",
                                 configuration="nightly", started_at=T0, pid=123)
    assert seq is not None
    # Same key, other casing of the run id: a duplicate, nothing is written.
    assert journal.claim_task_run(run_id=RUN.upper(), event_kind="PRE", task="precheck",
                                  configuration="nightly", started_at=T0) is None
    # Another kind or another task is its own claim.
    assert journal.claim_task_run(run_id=RUN, event_kind="post", task="precheck",
                                  configuration="nightly", started_at=T0) is not None
    assert journal.claim_task_run(run_id=RUN, event_kind="pre", task="snapshot",
                                  configuration="nightly", started_at=T0) is not None
    assert len(journal.task_runs()) == 3
    [row] = [r for r in journal.task_runs(RUN.upper()) if r.task == "precheck"
             and r.event_kind == "pre"]
    assert (row.state, row.pid, row.ended_at) == ("running", 123, None)


def test_finish_records_the_outcome(journal: Journal) -> None:
    seq = journal.claim_task_run(run_id=RUN, event_kind="pre", task="precheck",
                                 configuration="nightly", started_at=T0)
    assert seq is not None
    journal.finish_task_run(seq, state="failed", ended_at=T0 + timedelta(seconds=3),
                            exit_code=3, output="disk full", detail="cancelled",
                            cancelled_run=True)
    [row] = journal.task_runs(RUN)
    assert (row.state, row.exit_code, row.output, row.cancelled_run, row.detail) == (
        "failed", 3, "disk full", True, "cancelled")
    assert row.ended_at == T0 + timedelta(seconds=3)
    with pytest.raises(JournalError, match="no task run #999"):
        journal.finish_task_run(999, state="ok", ended_at=T0)


def test_rows_left_running_by_a_dead_process_become_interrupted(journal: Journal) -> None:
    dead = journal.claim_task_run(run_id=RUN, event_kind="pre", task="a",
                                  configuration=None, started_at=T0, pid=111)
    alive = journal.claim_task_run(run_id=RUN, event_kind="pre", task="b",
                                   configuration=None, started_at=T0, pid=222)
    done = journal.claim_task_run(run_id=RUN, event_kind="pre", task="c",
                                  configuration=None, started_at=T0, pid=111)
    assert done is not None
    journal.finish_task_run(done, state="ok", ended_at=T0, exit_code=0)
    marked = journal.mark_interrupted_task_runs(ended_at=T0 + timedelta(minutes=1),
                                                is_alive=lambda pid: pid == 222)
    assert [r.seq for r in marked] == [dead]
    assert marked[0].state == "interrupted" and marked[0].ended_at is not None
    states = {r.task: r.state for r in journal.task_runs()}
    assert states == {"a": "interrupted", "b": "running", "c": "ok"}
    assert alive is not None
    # Interrupted is final: the key stays claimed, the task is not run again.
    assert journal.claim_task_run(run_id=RUN, event_kind="pre", task="a",
                                  configuration=None, started_at=T0) is None


def test_begin_cancel_records_the_initiator(journal: Journal) -> None:
    journal.begin_cancel(attempted_at=T0, run_id=RUN, configuration="nightly",
                         computed_id=False, identity=None, api_version="v",
                         outcome=AuditOutcome.REFUSED, reason="closed",
                         initiator="task precheck (exit 3)")
    journal.begin_cancel(attempted_at=T0, run_id=RUN, configuration="nightly",
                         computed_id=False, identity="ops", api_version="v")
    first, second = journal.cancel_audit()
    assert first.initiator == "task precheck (exit 3)"
    assert second.initiator is None
