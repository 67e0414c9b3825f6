"""The dashboard's state, driven by a manual clock (no Textual): merge rules, events once,
findings once, errors per source, back-off, selection, verified cancels, tick boundaries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.azure.eventsource import EventBatch, ReceivedEvent
from services.domain.clock import ManualClock
from services.domain.dashboard import MAX_BACKOFF, DashboardState
from services.domain.events import decode_message
from services.domain.eventtail import arrival_delay, pre_event_expected
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


@dataclass(frozen=True)
class Result:
    run_id: str
    verified: bool
    run_status: str | None = "Cancelled"


def make_state(clock: ManualClock, **kwargs: object) -> DashboardState:
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
    # The same batch handed over again adds nothing (today's double write is gone).
    again = state.apply_events(one)
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


def test_back_off_doubles_per_failure_is_capped_and_resets_on_success() -> None:
    state = make_state(ManualClock(NOW), poll_interval=timedelta(seconds=60),
                       events_poll_interval=timedelta(seconds=2))
    delays = [state.next_delay("configs", False) for _ in range(8)]
    assert delays[:3] == [timedelta(seconds=5), timedelta(seconds=10), timedelta(seconds=20)]
    assert delays[-1] == MAX_BACKOFF
    assert state.next_delay("events", False, throttled=True) == timedelta(seconds=10)
    assert state.next_delay("configs", True) == timedelta(seconds=60)
    assert state.next_delay("configs", False) == timedelta(seconds=5)
    assert state.next_delay("events", True) == timedelta(seconds=2)


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


def test_pre_event_timing_is_one_domain_rule() -> None:
    start = NOW + timedelta(minutes=30)
    assert pre_event_expected(start) == (start - timedelta(minutes=35),
                                         start - timedelta(minutes=30))
    assert arrival_delay("pre", start, None, NOW) == timedelta(0)
    assert arrival_delay("post", start, start + timedelta(hours=1),
                         start + timedelta(hours=1, minutes=4)) == timedelta(minutes=4)
    assert arrival_delay("other", start, None, NOW) is None


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
