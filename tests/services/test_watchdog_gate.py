"""No watchdog finding before every source it depends on was read once (issue 22, item 4), and
no post-event expected of a cancelled run, on a manual clock (no Textual).

The demo's false alarm: patch-dev-canary started 2 h 30 min ago and was cancelled by a user.
Its pre-event is still in the queue, Resource Graph answers a few seconds after the queue:
in between the run is known only from its pre-event (status Pending, end at the scheduled
end, 30 min ago), so a tick then called its post-event missing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from services.azure.eventsource import ReceivedEvent
from services.domain.clock import ManualClock
from services.domain.dashboard import DashboardState
from services.domain.eventmemory import EventArrival
from services.domain.events import decode_message
from services.domain.model import Fetched, Run
from services.domain.watchdog import SOURCES, Watchdog
from services.domain.window import WindowRules
from services.standin.events_out import build_event, encode_message
from tests.services.test_dashboard import (
    NOW,
    SUB,
    batch,
    config,
    config_id,
    observed,
    run_id,
)
from tests.services.test_dashboard_wiring_state import WATCHED, Snapshot, snapshot
from tests.services.test_watchdog import CID, T, run

#: The cancelled run: started 2 h 30 min ago, a 2-hour window, its pre-event at T-35.
START = NOW - timedelta(hours=2, minutes=30)
#: What Resource Graph says of it (the stand-in's words for a cancel through the API).
CANCEL_ERROR = "Maintenance run was cancelled using cancellation API"


def make_state(clock: ManualClock, **kwargs: Any) -> DashboardState:
    return DashboardState(WindowRules(), clock, watch_events=True, watched_queue=WATCHED,
                          **kwargs)


def pre_event(name: str, start: datetime, duration: timedelta) -> ReceivedEvent:
    """``name``'s pre-event for the run at ``start``, as the queue gives it (at T-35)."""
    at = start - timedelta(minutes=35)
    raw = build_event(kind="pre", correlation_id=run_id(name, start),
                      configuration_id=config_id(name), configuration_name=name, start=start,
                      end=start + duration, subscription_ids=[SUB], event_time=at)
    return ReceivedEvent(decode_message(encode_message(raw))[0], at, f"m-pre-{name}", at)


def ended_row(status: str, **changes: Any) -> Run:
    row = observed("canary", START, status, last_update=START + timedelta(minutes=3))
    return replace(row, end=START + timedelta(hours=2), **changes)


def read(state: DashboardState, source: str, runs: tuple[Run, ...]) -> None:
    """Give ``state`` one successful read of ``source``."""
    if source == "configs":
        state.apply_configs(Fetched((config("canary", NOW + timedelta(hours=21)),), NOW))
    elif source == "runs":
        state.apply_runs(Fetched(runs, NOW))
    elif source == "events":
        state.apply_events(batch(pre_event("canary", START, timedelta(hours=2))))
    elif source == "cancels":
        state.learn_cancels({})
    elif source == "wiring":
        state.apply_wiring(snapshot(NOW))
    else:  # pragma: no cover - a new source needs a line here
        raise AssertionError(source)


def test_the_demo_race_raises_no_missing_post_before_resource_graph_answered() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    state.learn_cancels({})  # the journal, read at start-up
    read(state, "configs", ())
    read(state, "events", ())  # the queue answers first: the run is only its pre-event
    state.apply_wiring(snapshot(NOW))
    assert state.runs[run_id("canary", START).lower()].status == "Pending"
    for _ in range(3):
        clock.advance(timedelta(seconds=1))
        assert not state.tick(clock.now()).findings  # was: "no post-maintenance event"
    read(state, "runs", (ended_row("Cancelled", error=CANCEL_ERROR, cancelled_by="user"),))
    clock.advance(timedelta(seconds=1))
    assert not state.tick(clock.now()).findings
    assert not state.findings


@pytest.mark.parametrize("missing", SOURCES)
def test_a_real_missing_post_waits_for_every_source_it_depends_on(missing: str) -> None:
    # A run that completed 30 min ago with no post-event: a true finding, but only once the
    # configurations, the runs, the queue, the journal's cancels and the wiring were read.
    clock = ManualClock(NOW)
    state = make_state(clock)
    rows = (ended_row("Completed"),)
    for source in SOURCES:
        if source != missing:
            read(state, source, rows)
    for _ in range(3):
        clock.advance(timedelta(seconds=1))
        assert not state.tick(clock.now()).findings, f"judged before reading {missing}"
    read(state, missing, rows)
    clock.advance(timedelta(seconds=1))
    assert [f.kind for f in state.tick(clock.now()).findings] == ["missing-post"]


def test_a_watcher_that_never_reads_a_source_does_not_wait_for_it() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock, sources=("configs", "runs", "events"))
    rows = (ended_row("Completed"),)
    for source in ("configs", "runs", "events"):
        read(state, source, rows)
    assert [f.kind for f in state.tick(clock.now()).findings] == ["missing-post"]


def test_a_failed_wiring_read_counts_as_read_and_the_finding_has_no_cause() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    rows = (ended_row("Completed"),)
    for source in ("configs", "runs", "events", "cancels"):
        read(state, source, rows)
    assert not state.tick(clock.now()).findings
    state.apply_wiring(Snapshot({}, None, error="Event Grid: 403 Forbidden"))
    (finding,) = state.tick(clock.now()).findings
    assert finding.kind == "missing-post" and finding.cause is None


def test_a_failed_runs_read_is_not_a_read() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    for source in ("configs", "events", "cancels", "wiring"):
        read(state, source, ())
    state.set_error("runs", "Resource Graph: 503")
    assert not state.tick(clock.now()).findings


def test_a_missing_pre_is_held_until_the_wiring_that_explains_it_was_read() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    start = NOW + timedelta(minutes=45)
    state.apply_configs(Fetched((config("web", start),), NOW))
    state.apply_runs(Fetched((), NOW))
    state.apply_events(batch(depth=0))
    state.learn_cancels({})
    clock.set(start - timedelta(minutes=25))
    assert not state.tick(clock.now()).findings  # the cause is not known yet
    from services.domain.wiring import Verdict

    state.apply_wiring(snapshot(NOW, web=Verdict.MISSING))
    (finding,) = state.tick(clock.now()).findings
    assert finding.kind == "missing-pre" and finding.cause is not None


# -- a cancelled run never expects a post-event ------------------------------------------------

POST_DUE = T + timedelta(hours=2, minutes=20)  # past the end (T + 2 h) + 15 min
PRE = {CID.lower(): EventArrival(pre=T - timedelta(minutes=35))}


@pytest.mark.parametrize("changes", [
    {"status": "Cancelled", "cancelled_by": "user"},
    {"status": "Cancelled", "cancelled_by": "platform"},
    {"status": "Cancelled"},
    {"status": "Canceled"},  # the American spelling (FINISHED_STATUSES knows it)
    {"status": "canceled", "cancelled_by": "user"},
    {"status": "Failed", "cancelled_by": "platform"},
], ids=str)
def test_a_cancelled_run_owes_no_post_event(changes: dict[str, Any]) -> None:
    dog = Watchdog(T - timedelta(hours=1))
    assert dog.check([run(**changes)], PRE, POST_DUE) == []
    dog.track([run(end=None, last_update=T + timedelta(minutes=5), **changes)])
    assert dog.check_due({CID.lower(): run(**changes)}, PRE, POST_DUE) == []


def test_a_run_whose_cancel_was_verified_owes_no_post_event() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    rows = (ended_row("InProgress"),)  # Resource Graph still lags behind the cancel
    for source in SOURCES:
        read(state, source, rows)
    state.learn_cancels({run_id("canary", START): START - timedelta(minutes=20)})
    clock.advance(timedelta(minutes=30))
    assert not state.tick(clock.now()).findings
    # Without the verified cancel the same run is a finding (the test can fail).
    other = make_state(ManualClock(NOW))
    for source in SOURCES:
        read(other, source, rows)
    assert [f.kind for f in other.tick(NOW + timedelta(minutes=30)).findings] == [
        "missing-post"]


def test_the_watchdog_itself_holds_back_until_told_each_source_was_read() -> None:
    dog = Watchdog(T - timedelta(hours=1), awaits=("runs", "events"))
    completed = run(status="Completed")
    dog.track([completed])
    runs = {CID.lower(): completed}
    assert dog.waiting_for("missing-post") == {"runs", "events"}
    assert dog.check_due(runs, PRE, POST_DUE) == []
    dog.mark_read("runs")
    assert dog.check_due(runs, PRE, POST_DUE) == []
    dog.mark_read("events")
    assert dog.waiting_for("missing-post") == frozenset()
    # The deadline held back is judged now: nothing was dropped while waiting.
    assert [f.kind for f in dog.check_due(runs, PRE, POST_DUE)] == ["missing-post"]
