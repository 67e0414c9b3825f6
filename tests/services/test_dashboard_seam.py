"""The dashboard state at the seam (issue 22): everything the screen shows of the monitor comes
in typed messages and is decided here: task news in the batch, the status bar's facts, the
verified cancels with every runs poll, and whether Cancel is refused."""

from __future__ import annotations

from datetime import timedelta

from services.domain.boundary import EventBatch, MonitorStatus, RunsSnapshot
from services.domain.clock import ManualClock
from services.domain.dashboard import DashboardState
from services.domain.model import Fetched
from services.domain.tasks import TaskOutcome, TaskResult
from services.domain.window import WindowRules
from tests.services.test_dashboard import NOW, config, observed, run_id


def test_task_news_travels_in_the_event_batch() -> None:
    state = DashboardState(WindowRules(), ManualClock(NOW), tasks=1)
    change = state.apply_events(EventBatch(mode="consume", fetched_at=NOW, task_results=(
        TaskResult("precheck", "/run", "pre", TaskOutcome.FAILED, exit_code=3,
                   cancelled_run=True),
        TaskResult("notify", "/run", "post", TaskOutcome.OK))))
    [failed, ok] = change.notices
    assert (failed.text, failed.severity) == (
        "task precheck (pre): failed, exit code 3; it cancelled the run", "error")
    assert (ok.text, ok.severity) == ("task notify (post): ok", "information")


def test_the_status_bar_facts_and_the_tasks_fate_come_with_the_monitor_status() -> None:
    state = DashboardState(WindowRules(), ManualClock(NOW), tasks=2)
    refused = MonitorStatus(fetched_at={"runs": NOW - timedelta(seconds=5)},
                            tasks_refusal="tasks not run here: read-only mode")
    [notice] = state.apply_status(refused).notices
    assert notice.title == "Tasks" and state.errors["tasks"] == notice.text
    assert state.apply_status(refused).notices == ()  # said once
    assert state.monitor_status is refused
    assert refused.age("runs", NOW) == timedelta(seconds=5) and refused.age("events", NOW) is None
    runs_here = DashboardState(WindowRules(), ManualClock(NOW), tasks=2)
    runs_here.apply_status(MonitorStatus(runs_tasks=True))
    assert runs_here.notice() == "this dashboard runs the 2 declared task(s); t: a run's task runs"


def test_a_verified_cancel_in_a_runs_snapshot_is_learnt_at_that_poll() -> None:
    start = NOW + timedelta(minutes=25)
    state = DashboardState(WindowRules(), ManualClock(NOW))
    state.apply_configs(Fetched((config("web", start),), NOW))
    rows = Fetched((observed("web", start),), NOW)
    state.apply_runs(RunsSnapshot(rows, {}))
    key = run_id("web", start).lower()
    assert state.refusal(state.runs[key]) is None  # inside its window: offered
    change = state.apply_runs(RunsSnapshot(rows, {key.upper(): NOW}))
    assert state.runs[key].status == "Cancelled" and change.runs
    assert state.refusal(state.runs[key]) is not None  # the state refuses; the panel shows it


def test_a_confirmed_cancel_is_checked_again_and_refused_with_its_reason() -> None:
    start = NOW + timedelta(minutes=25)
    clock = ManualClock(NOW)
    state = DashboardState(WindowRules(), clock)
    state.apply_configs(Fetched((config("web", start),), NOW))
    state.apply_runs(Fetched((observed("web", start),), NOW))
    key = run_id("web", start).lower()
    clock.advance(timedelta(minutes=20))  # the window closed while the dialog was open
    change, run = state.confirm_cancel(key)
    assert run is None and "checked again after you confirmed" in change.notices[0].text
    assert "cancel" in state.errors and key not in state.cancel_in_flight
    change, run = state.confirm_cancel("no-such-run")
    assert run is None and change.notices[0].text.startswith("the run is no longer listed")
