"""A run's mark (services/domain/marks.py): its window phase while live, then how it ended;
never a success mark for a run that did not succeed (issue 22, item 11)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.domain.marks import MARKS, is_cancelled, run_mark, run_outcome
from services.domain.window import WindowRules
from tests.services.test_watchdog import T, run

RULES = WindowRules()
AFTER = T + timedelta(hours=3)  # past the run's end (T + 2 h)


@pytest.mark.parametrize(("changes", "mark"), [
    ({"status": "Cancelled", "cancelled_by": "user"}, "cancelled"),
    ({"status": "Cancelled", "cancelled_by": "platform"}, "cancelled"),
    ({"status": "Canceled"}, "cancelled"),
    ({"status": "Failed", "cancelled_by": "platform"}, "cancelled"),  # Azure's classification
    ({"status": "Failed"}, "failed"),
    ({"status": "Timeout"}, "timed-out"),
    ({"status": "Succeeded"}, "succeeded"),
    ({"status": "Completed", "machines_failed": 0}, "succeeded"),
    ({"status": "Completed", "machines_failed": 3}, "warnings"),
    ({"status": "CompletedWithWarnings"}, "warnings"),
    ({"status": "InProgress"}, "ended"),  # its end passed, no status says how it ended
    ({"status": "Pending", "source": "event"}, "ended"),
    ({"status": "Scheduled", "expected": True}, "ended"),
], ids=str)
def test_a_finished_run_is_marked_by_how_it_ended(changes: dict[str, Any], mark: str) -> None:
    assert run_mark(run(**changes), AFTER, RULES) == mark


def test_only_a_success_is_marked_succeeded() -> None:
    for status in ("Cancelled", "Canceled", "Failed", "Timeout", "CompletedWithWarnings",
                   "InProgress", "Pending", "Unknown", ""):
        assert run_mark(run(status=status), AFTER, RULES) != "succeeded", status


def test_a_run_that_ended_early_is_marked_at_once_and_a_live_one_by_its_phase() -> None:
    # Cancelled inside its window, before its start: finished by status, marked cancelled.
    cancelled = run(status="Cancelled", cancelled_by="user")
    assert run_mark(cancelled, T - timedelta(minutes=20), RULES) == "cancelled"
    live = run(status="Pending")
    assert run_mark(live, T - timedelta(hours=1), RULES) == "upcoming"
    assert run_mark(live, T - timedelta(minutes=20), RULES) == "cancellable"
    assert run_mark(live, T - timedelta(minutes=5), RULES) == "locked"
    assert run_mark(run(status="InProgress"), T + timedelta(minutes=5), RULES) == "running"


def test_outcome_and_cancel_facts() -> None:
    assert run_outcome(run(status="InProgress")) is None
    assert is_cancelled(run(status="canceled"))
    assert is_cancelled(run(status="Pending", cancelled_by="user"))
    assert not is_cancelled(run(status="Failed"))
    assert len(set(MARKS)) == len(MARKS)
