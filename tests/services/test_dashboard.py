"""The dashboard's state, driven by a manual clock (no Textual): merge rules, events once,
findings once, errors per source, back-off, selection, verified cancels, tick boundaries."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.domain.arrivals import ArrivalRules
from services.domain.boundary import CancelResult, EventBatch, Outcome, ReceivedEvent
from services.domain.clock import ManualClock
from services.domain.dashboard import (
    ACCEPTED_HOLD,
    ACCEPTED_REASON,
    Change,
    DashboardState,
)
from services.domain.events import decode_message
from services.domain.model import Configuration, Fetched, Run
from services.domain.runs import UNSEEN_RUN_REASON
from services.domain.window import WindowRules
from services.standin.events_out import build_event, encode_message

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SUB = "3f2a1c9e-7b4d-4e61-9a0f-2c5d8e7b1a10"


def config_id(name: str) -> str:
    return (f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Maintenance/"
            f"maintenanceConfigurations/{name}")


def run_id(name: str, start: datetime) -> str:
    return (f"{config_id(name)}/providers/microsoft.maintenance/applyupdates/"
            f"{start.strftime('%Y%m%d%H%M%S')}")


def config(name: str, *starts: datetime) -> Configuration:
    return Configuration(id=config_id(name), name=name, resource_group="rg",
                         subscription_id=SUB, time_zone="UTC", recur_every="Day",
                         next_occurrences=tuple((s, s + timedelta(hours=1)) for s in starts))


def observed(name: str, start: datetime, status: str = "Pending",
             last_update: datetime | None = None) -> Run:
    return Run(run_id(name, start), config_id(name), name, start.strftime("%Y%m%d%H%M%S"),
               start, start + timedelta(hours=1), status, source="arg",
               last_update=last_update)


def received(kind: str, name: str, start: datetime, at: datetime,
             event_id: str | None = None) -> ReceivedEvent:
    raw = build_event(kind=kind, correlation_id=run_id(name, start),
                      configuration_id=config_id(name), configuration_name=name, start=start,
                      end=start + timedelta(hours=1), subscription_ids=[SUB], event_time=at)
    if event_id is not None:
        raw["id"] = event_id
    return ReceivedEvent(decode_message(encode_message(raw))[0], at, f"m-{kind}-{at}", at)


def batch(*events: ReceivedEvent, duplicates: tuple[ReceivedEvent, ...] = (),
          error: str | None = None, depth: int | None = 1) -> EventBatch:
    return EventBatch(mode="peek", fetched_at=NOW, events=events, duplicates=duplicates,
                      depth=depth, error=error)


def Result(run_id: str, verified: bool, run_status: str | None = "Cancelled",
           outcome: str = "") -> CancelResult:
    """A cancel's result as the monitor returns it."""
    kind = Outcome(outcome) if outcome else (Outcome.VERIFIED if verified else Outcome.FAILED)
    return CancelResult(kind, "", run_id, run_status=run_status)


def make_state(clock: ManualClock, **kwargs: object) -> DashboardState:
    """A state that reads no Event Grid wiring (unless ``sources`` says otherwise)."""
    kwargs.setdefault("sources", ("configs", "runs", "events", "cancels"))
    return DashboardState(WindowRules(), clock, **kwargs)  # type: ignore[arg-type]


def test_observed_runs_win_over_the_schedule_and_the_schedule_fills_gaps() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    start, later = NOW + timedelta(minutes=30), NOW + timedelta(days=1, minutes=30)
    change = state.apply_configs(Fetched((config("web", start, later),), NOW))
    key = config_id("web").lower()
    assert change.configs == {key}
    assert {r.key for r in change.runs} == {run_id("web", start).lower(),
                                            run_id("web", later).lower()}
    assert all(r.expected for r in state.runs.values())
    change = state.apply_runs(Fetched((observed("web", start, "InProgress"),), NOW))
    assert [r.status for r in change.runs] == ["InProgress"]
    assert not state.runs[run_id("web", start).lower()].expected
    assert state.runs[run_id("web", later).lower()].expected  # still the schedule's
    # The same snapshot again changes nothing.
    assert not state.apply_runs(Fetched((observed("web", start, "InProgress"),), NOW)).runs


def test_a_run_gone_from_every_source_leaves_and_a_moved_schedule_moves_its_runs() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    start, moved = NOW + timedelta(hours=2), NOW + timedelta(hours=3)
    state.apply_configs(Fetched((config("web", start),), NOW))
    change = state.apply_configs(Fetched((config("web", moved),), NOW))
    assert set(state.runs) == {run_id("web", moved).lower()}
    assert change.configs == {config_id("web").lower()}
    state.apply_configs(Fetched((), NOW))
    assert dict(state.runs) == {}


def test_events_are_remembered_once_and_fill_what_resource_graph_lacks() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock, watch_events=True)
    start = NOW + timedelta(minutes=35)
    pre = received("pre", "web", start, NOW)
    one = batch(pre)
    change = state.apply_events(one)
    key = run_id("web", start).lower()
    assert [line.kind for line in change.events] == ["pre"]
    assert state.runs[key].source == "event" and state.runs[key].cutoff is not None
    assert state.arrivals[key].pre == NOW
    # The same event read again (a peek sees it until it is deleted) adds no second run.
    again = state.apply_events(batch(pre))
    assert not again.runs and len(state.memory) == 1
    # Resource Graph catches up: its row wins, the event's cut-off stays.
    state.apply_runs(Fetched((observed("web", start),), NOW))
    assert state.runs[key].source == "arg" and state.runs[key].cutoff is not None


def test_a_duplicate_is_a_finding_once() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock, watch_events=True)
    start = NOW + timedelta(minutes=35)
    pre = received("pre", "web", start, NOW, event_id="e1")
    first = state.apply_events(batch(duplicates=(pre,)))
    second = state.apply_events(batch(duplicates=(pre,)))
    assert [f.kind for f in first.findings] == ["duplicate"]
    assert [line.flag for line in first.events] == ["watchdog"]
    assert not second.findings and len(state.findings) == 1


def test_a_missing_pre_event_is_found_once_at_its_deadline_by_tick() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock, watch_events=True)
    start = NOW + timedelta(minutes=30)
    state.apply_configs(Fetched((config("web", start),), NOW))
    state.apply_events(batch())  # the queue has been read: the watchdog may judge
    state.apply_runs(Fetched((), NOW))  # so have Resource Graph's runs, the journal, ...
    state.learn_cancels({})
    deadline = start - timedelta(minutes=25)
    assert not state.tick(deadline - timedelta(seconds=1))
    found = state.tick(deadline)
    assert [f.kind for f in found.findings] == ["missing-pre"]
    assert not state.tick(deadline + timedelta(minutes=1)).findings


def test_no_queue_no_findings() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock, watch_events=False)
    start = NOW + timedelta(minutes=30)
    state.apply_configs(Fetched((config("web", start),), NOW))
    assert not state.tick(start + timedelta(hours=3))


def test_errors_are_kept_per_source_and_cleared_by_their_own_source() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    state.set_error("runs", "runs query: 429 throttled")
    state.set_error("events", "queue: connection refused")
    assert state.last_error == "queue: connection refused"
    state.apply_events(batch())  # events answered: only its error goes
    assert state.errors == {"runs": "runs query: 429 throttled"}
    state.apply_configs(Fetched((), NOW))  # configurations do not clear the runs' error
    assert state.last_error == "runs query: 429 throttled"
    state.apply_runs(Fetched((), NOW))
    assert state.last_error is None
    state.apply_events(batch(error="queue:   gone\n  away"))
    assert state.errors == {"events": "queue: gone away"}


def test_selection_starts_on_the_first_row_and_follows_the_operator() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    soon, later = NOW + timedelta(minutes=20), NOW + timedelta(hours=5)
    change = state.apply_configs(Fetched((config("b-late", later), config("a-soon", soon)),
                                         NOW))
    assert change.selection and state.selected_config == config_id("a-soon").lower()
    assert state.current_run is not None and state.current_run.start == soon
    assert state.select_config(config_id("b-late").lower()).selection
    assert state.current_run is not None and state.current_run.start == later
    assert not state.select_config(config_id("b-late").lower())
    state.set_filter("soon")
    assert state.config_order() == [config_id("a-soon").lower()]


def test_a_verified_cancel_wins_over_a_stale_row_and_keeps_the_selection() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    start, tomorrow = NOW + timedelta(minutes=30), NOW + timedelta(days=1, minutes=30)
    state.apply_configs(Fetched((config("web", start, tomorrow),), NOW))
    state.apply_runs(Fetched((observed("web", start),), NOW))
    run = state.current_run
    assert run is not None and run.start == start and state.refusal(run) is None
    state.begin_cancel(run.key)
    assert state.refusal(run) == "a cancel of this run is in flight"
    change = state.apply_cancel(Result(run.correlation_id, True))
    assert change.selection and not state.cancel_in_flight
    shown = state.current_run
    assert shown is not None and shown.key == run.key and shown.status == "Cancelled"
    # The next Resource Graph poll still says Pending: the verified cancel wins.
    clock.advance(timedelta(seconds=30))
    state.apply_runs(Fetched((observed("web", start, "Pending", last_update=NOW),), NOW))
    assert state.runs[run.key].status == "Cancelled"
    assert state.refusal(state.runs[run.key]) is not None  # never offered again
    # The operator moves: the panel goes to what is next.
    state.select_config(None)
    state.select_config(config_id("web").lower())
    assert state.current_run is not None and state.current_run.start == tomorrow


def test_a_failed_cancel_changes_no_run() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    start = NOW + timedelta(minutes=30)
    state.apply_runs(Fetched((observed("web", start),), NOW))
    key = run_id("web", start).lower()
    state.begin_cancel(key)
    change = state.apply_cancel(Result(run_id("web", start), False, None))
    assert not change.runs and state.runs[key].status == "Pending" and not state.cancelled


def test_an_accepted_cancel_holds_cancel_back_until_a_poll_settles_it() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    start = NOW + timedelta(minutes=30)
    state.apply_runs(Fetched((observed("web", start),), NOW))
    key = run_id("web", start).lower()
    state.begin_cancel(key)
    change = state.apply_cancel(Result(run_id("web", start), False, None, "accepted"))
    assert change.selection and not state.cancel_in_flight and not state.cancelled
    assert state.cancel_unconfirmed(key)
    assert state.refusal(state.runs[key]) == ACCEPTED_REASON
    # Resource Graph lags: a poll still saying Pending confirms nothing, Cancel stays held.
    clock.advance(timedelta(minutes=2))
    state.apply_runs(Fetched((observed("web", start, last_update=NOW),), NOW))
    assert state.refusal(state.runs[key]) == ACCEPTED_REASON
    # The poll that shows it Cancelled settles it (and Cancel stays refused: it is over).
    state.apply_runs(Fetched((observed("web", start, "Cancelled"),), NOW))
    assert not state.cancel_unconfirmed(key) and state.runs[key].status == "Cancelled"
    assert state.refusal(state.runs[key]) not in (None, ACCEPTED_REASON)


def test_an_accepted_cancel_no_poll_confirms_is_offered_again_after_the_hold() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    start = NOW + timedelta(minutes=30)
    state.apply_runs(Fetched((observed("web", start),), NOW))
    key = run_id("web", start).lower()
    state.apply_cancel(Result(run_id("web", start), False, None, "accepted"))
    clock.advance(ACCEPTED_HOLD - timedelta(seconds=1))
    assert state.tick(clock.now()) == Change()
    assert state.refusal(state.runs[key]) == ACCEPTED_REASON
    clock.advance(timedelta(seconds=1))
    change = state.tick(clock.now())
    assert change.selection and change.configs == {config_id("web").lower()}
    assert key not in state.cancel_accepted and state.refusal(state.runs[key]) is None


def test_other_maintenance_scopes_are_hidden_unless_included() -> None:
    clock = ManualClock(NOW)
    start = NOW + timedelta(minutes=30)
    host = replace(config("hosts", start), scope="Host")
    guest = replace(config("web", start), scope="InGuestPatch")
    rows = (observed("hosts", start), observed("web", start))
    state = make_state(clock)
    state.apply_configs(Fetched((host, guest), NOW))
    state.apply_runs(Fetched(rows, NOW))
    assert state.config_order() == [config_id("web").lower()]
    assert set(state.runs) == {run_id("web", start).lower()}
    both = make_state(clock, include_other_scopes=True)
    both.apply_configs(Fetched((host, guest), NOW))
    both.apply_runs(Fetched(rows, NOW))
    assert set(both.config_order()) == {config_id("web").lower(), config_id("hosts").lower()}
    # The run row carries no scope: it takes its configuration's, for the run panel.
    assert both.runs[run_id("hosts", start).lower()].scope == "Host"
    # The filter matches the scope.
    both.set_filter("host")
    assert both.config_order() == [config_id("hosts").lower()]
    # A configuration moved to another scope takes its Resource Graph runs out of view.
    state.apply_configs(Fetched((host, replace(guest, scope="Extension")), NOW))
    assert state.config_order() == [] and dict(state.runs) == {}


def test_cancels_learned_from_the_journal_show_cancelled_after_a_restart() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    start = NOW + timedelta(minutes=30)
    state.learn_cancels({run_id("web", start).upper(): NOW - timedelta(minutes=1)})
    state.apply_runs(Fetched((observed("web", start),), NOW))
    assert state.runs[run_id("web", start).lower()].status == "Cancelled"


def test_a_run_known_only_from_the_schedule_is_refused_with_the_reason() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    start = NOW + timedelta(minutes=30)  # inside its window at NOW
    state.apply_configs(Fetched((config("web", start),), NOW))
    run = state.current_run
    assert run is not None and run.expected
    assert state.refusal(run) == UNSEEN_RUN_REASON
    assert make_state(clock, read_only=True).refusal(run) is not None


def test_event_lines_carry_the_arrival_label_and_flag_of_the_settings_rule() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    start = NOW + timedelta(minutes=35)
    end = start + timedelta(hours=1)
    change = state.apply_events(batch(
        received("pre", "web", start, NOW),  # T-35: inside T-40..T-30, not flagged
        received("pre", "db", start, start - timedelta(minutes=45)),  # too early
        received("post", "web", start, end + timedelta(minutes=4)),
        # A run that finished early: before its scheduled end is normal, not flagged.
        received("post", "db", start, end - timedelta(minutes=50))))
    got = [(line.kind, line.configuration, line.arrival, line.arrival_flagged)
           for line in change.events]
    assert got == [("pre", "web", "T-35m", False), ("pre", "db", "T-45m", True),
                   ("post", "web", "+4m", False), ("post", "db", "-50m", False)]
    # The range is a setting: T-38..T-36 flags the same T-35 arrival.
    narrow = make_state(clock, arrival_rules=ArrivalRules(timedelta(minutes=38),
                                                          timedelta(minutes=36)))
    line = narrow.apply_events(batch(received("pre", "web", start, NOW))).events[0]
    assert (line.arrival, line.arrival_flagged) == ("T-35m", True)


def test_the_post_event_is_measured_against_the_scheduled_end_not_the_merged_end() -> None:
    # The post-event moves the merged run's end to its arrival (the actual end); measured
    # against that, every post-event would read +0m.
    clock = ManualClock(NOW)
    state = make_state(clock)
    start = NOW - timedelta(hours=2)
    arrived = start + timedelta(minutes=20)
    line = state.apply_events(batch(received("post", "web", start, arrived))).events[0]
    assert line.arrival == "-40m" and not line.arrival_flagged


def test_a_poll_that_changed_few_runs_merges_like_a_whole_merge() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    starts = [NOW + timedelta(hours=h) for h in range(12)]
    state.apply_configs(Fetched((config("web", *starts),), NOW))
    first = tuple(observed("web", s) for s in starts[:8])
    state.apply_runs(Fetched(first, NOW))
    # One row changed, one left Resource Graph: re-merged run by run.
    second = (observed("web", starts[0], "InProgress"), *first[1:7])
    change = state.apply_runs(Fetched(second, NOW))
    assert sorted(r.status for r in change.runs) == ["InProgress", "Scheduled"]
    whole = make_state(clock)
    whole.apply_configs(Fetched((config("web", *starts),), NOW))
    whole.apply_runs(Fetched(second, NOW))
    assert dict(state.runs) == dict(whole.runs)


def test_the_unordered_merge_holds_the_same_runs() -> None:
    from services.domain.runs import expected_runs, merge_runs

    starts = [NOW + timedelta(hours=h) for h in range(6)]
    seen = [observed("web", s, "InProgress") for s in starts[:3]]
    schedule = expected_runs([config("web", *starts)])
    ordered = merge_runs(seen, schedule)
    assert [r.start for r in ordered] == sorted(starts, reverse=True)
    assert set(merge_runs(seen, schedule, ordered=False)) == set(ordered)
