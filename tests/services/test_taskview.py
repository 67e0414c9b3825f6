"""The task view of one run (services/domain/taskview.py): recorded runs, queued ones,
their order and labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.domain.report import TaskFact
from services.domain.taskview import is_live, task_view

T = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


def test_recorded_runs_come_first_by_kind_then_start_and_due_ones_are_queued() -> None:
    facts = [
        TaskFact("summary", "post", "ok", T + timedelta(hours=2), T + timedelta(hours=2), 0),
        TaskFact("precheck", "pre", "failed", T - timedelta(minutes=30),
                 T - timedelta(minutes=29), 3, cancelled_run=True),
        TaskFact("snapshot", "pre", "timeout", T - timedelta(minutes=31),
                 T - timedelta(minutes=21)),
    ]
    rows = task_view(facts, due=[("precheck", "pre"), ("notify", "pre"), ("tags", "post")])
    assert [(r.task, r.event_kind, r.state) for r in rows] == [
        ("snapshot", "pre", "timed out"),
        ("precheck", "pre", "cancelled the run"),  # not queued again: it has a record
        ("notify", "pre", "queued"),
        ("summary", "post", "ok"),
        ("tags", "post", "queued"),
    ]
    assert is_live(rows)


def test_a_view_with_only_finished_runs_is_not_live() -> None:
    rows = task_view([TaskFact("p", "pre", "ok", T, T, 0),
                      TaskFact("q", "pre", "interrupted", T, T)])
    assert not is_live(rows)
    assert is_live(task_view([TaskFact("p", "pre", "running", T)]))


def test_the_same_task_on_pre_and_post_is_two_rows() -> None:
    rows = task_view([], due=[("notify", "pre"), ("notify", "post")])
    assert [(r.task, r.event_kind) for r in rows] == [("notify", "pre"), ("notify", "post")]
    assert len({r.key for r in rows}) == 2
