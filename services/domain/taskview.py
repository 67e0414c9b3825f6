"""The task view of one run: its task runs as the journal recorded them, plus the declared
tasks whose event has arrived and that have not started yet (``queued``).

Pure: the task-run facts and the (task, event kind) pairs that should run are passed in
(:func:`services.azure.report.read_task_view` finds them with the tasks' own matching rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.domain.report import TaskFact

#: The order rows are listed in: pre tasks before post tasks.
_KIND_ORDER = {"pre": 0, "post": 1}
#: States in which a task run may still change (the view keeps refreshing while one shows).
LIVE_STATES = frozenset({"queued", "running"})


@dataclass(frozen=True)
class TaskViewRow:
    """One line of the task view; ``state`` is what the operator reads (``queued``,
    ``running``, ``ok``, ``failed``, ``timed out``, ``interrupted``,
    ``skipped-late``, ``skipped-cancelled``, ``cancelled the run``)."""

    task: str
    event_kind: str
    state: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    detail: str | None = None
    output: str | None = None

    @property
    def key(self) -> str:
        """The row's identity: a task runs once per (run, event kind)."""
        return f"{self.event_kind}\x1f{self.task}"


def task_view(facts: Iterable[TaskFact], due: Iterable[tuple[str, str]] = ()) -> \
        tuple[TaskViewRow, ...]:
    """The rows of the view: every recorded task run, and a ``queued`` row for each
    ``(task, event kind)`` in ``due`` that has no record yet."""
    rows: dict[str, TaskViewRow] = {}
    for fact in facts:
        row = TaskViewRow(task=fact.task, event_kind=fact.event_kind, state=fact.label,
                          started_at=fact.started_at, ended_at=fact.ended_at,
                          exit_code=fact.exit_code, detail=fact.detail, output=fact.output)
        rows[row.key] = row
    for task, kind in due:
        queued = TaskViewRow(task=task, event_kind=kind, state="queued")
        rows.setdefault(queued.key, queued)
    return tuple(sorted(rows.values(), key=_order))


def _order(row: TaskViewRow) -> tuple[int, int, str, str]:
    started = row.started_at.timestamp() if row.started_at is not None else float("inf")
    return (_KIND_ORDER.get(row.event_kind, 2), 0 if row.started_at else 1,
            f"{started:020.6f}", row.task)


def is_live(rows: Sequence[TaskViewRow]) -> bool:
    """Whether any row may still change (queued or running)."""
    return any(row.state in LIVE_STATES for row in rows)
