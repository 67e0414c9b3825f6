"""The scenario engine on a ManualClock: each lifecycle step happens at its time, once."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.domain.clock import ManualClock
from services.domain.events import EventDecodeError, EventKind, decode_message
from services.standin.events_out import MemorySink
from services.standin.scenario import ScenarioEngine
from services.standin.scenario_file import ScenarioError, load_scenario, parse_scenario
from services.standin.world import SimMachine, SimRun, World

T0 = datetime(2026, 3, 10, 9, 0, 0, tzinfo=UTC)
SUB = "11111111-1111-4111-8111-111111111111"


def scenario(behaviour: dict[str, Any] | None = None, **config: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": "cfg-a",
        "subscription": "prod",
        "resource_group": "rg-a",
        "time_zone": "UTC",
        "recur_every": "Week {weekday}",
        "duration": "02:00",
        "start": "now+60m",
        "machines": [{"count": 10, "prefix": "vm"}],
        "behaviour": behaviour or {},
    }
    cfg.update(config)
    return {"seed": 3, "subscriptions": {"prod": SUB}, "configuration": [cfg]}


def make(data: dict[str, Any]) -> tuple[ManualClock, World, ScenarioEngine, MemorySink]:
    clock = ManualClock(T0)
    world = World(clock)
    sink = MemorySink()
    engine = ScenarioEngine(world, parse_scenario(data), sink)
    return clock, world, engine, sink


T = T0 + timedelta(minutes=60)  # the run of `scenario()` (now+60m)


def at(clock: ManualClock, engine: ScenarioEngine, when: datetime) -> None:
    clock.set(when)
    engine.step()


def the_run(world: World) -> SimRun:
    runs = [r for r in world.runs() if r.start == T]
    assert len(runs) == 1
    return runs[0]


def kinds(engine: ScenarioEngine) -> list[str]:
    return [kind for kind, _ in engine.written]


def test_configuration_gets_a_real_start_date_time_in_its_zone() -> None:
    _, world, _, _ = make(scenario(time_zone="W. Europe Standard Time", history=2))
    window = world.configurations()[0]["properties"]["maintenanceWindow"]
    # 11:00 in Amsterdam (UTC+1 in March before DST), whole weeks (history + 2) earlier.
    assert window["startDateTime"] == "2026-02-10 11:00"
    assert window["recurEvery"] == "Week Tuesday"
    assert window["timeZone"] == "W. Europe Standard Time"


def test_run_row_appears_at_t_minus_40_with_machines_frozen_then() -> None:
    clock, world, engine, _ = make(scenario())
    at(clock, engine, T - timedelta(minutes=40, seconds=1))
    assert [r for r in world.runs() if r.start == T] == []
    at(clock, engine, T - timedelta(minutes=40))
    run = the_run(world)
    assert run.status == "Pending"
    assert len(run.machine_ids) == 10
    # A machine assigned after T-40 is not part of this run.
    cfg_id = world.configurations()[0]["id"]
    late = SimMachine(id=f"/subscriptions/{SUB}/resourceGroups/rg-a/providers/"
                      "Microsoft.Compute/virtualMachines/late", name="late",
                      subscription_id=SUB, resource_group="rg-a")
    world.add_machine(late)
    world.assign(late.id, cfg_id)
    at(clock, engine, T + timedelta(minutes=5))
    assert late.id not in the_run(world).machine_ids


def test_pre_event_at_t_minus_35_as_event_grid_writes_it() -> None:
    # A fixed moment (the default spreads it over T-40..T-30, tested below).
    clock, world, engine, sink = make(scenario(behaviour={"pre_event": "T-35m"}))
    at(clock, engine, T - timedelta(minutes=35, seconds=1))
    assert "pre" not in kinds(engine)
    at(clock, engine, T - timedelta(minutes=35))
    assert kinds(engine) == ["pre"]
    text = sink.messages[0]
    raw = json.loads(base64.b64decode(text, validate=True))
    assert raw["eventType"] == "Microsoft.Maintenance.PreMaintenanceEvent"
    assert set(raw["data"]) == {"CorrelationId", "MaintenanceConfigurationId", "StartDateTime",
                                "EndDateTime", "CancellationCutOffDateTime",
                                "ResourceSubscriptionIds"}
    [event] = decode_message(text)
    assert event.kind == EventKind.PRE
    assert event.id.lower() == the_run(world).correlation_id.lower()
    assert event.start == T and event.end == T + timedelta(hours=2)
    assert event.cancellation_cutoff == T - timedelta(minutes=10)
    assert event.subscription_ids == (SUB,)


def test_run_and_machines_go_in_progress_at_t_and_finish_staggered() -> None:
    # No overrun here (overrunning runs are tested below): every machine ends in the window.
    clock, world, engine, sink = make(scenario(behaviour={"overrun": 0}))
    at(clock, engine, T - timedelta(seconds=1))
    assert the_run(world).status == "Pending"
    at(clock, engine, T)
    run = the_run(world)
    assert run.status == "InProgress"
    assert {r.status for r in run.results.values()} == {"InProgress"}
    at(clock, engine, T + timedelta(minutes=45))
    done = [r for r in run.results.values() if r.status != "InProgress"]
    assert 0 < len(done) < 10  # some finished, some still running (finish spread 5%..60%)
    at(clock, engine, T + timedelta(hours=2))
    results = list(run.results.values())
    assert all(r.status in ("Succeeded", "CompletedWithWarnings") for r in results)
    assert all(r.installed > 0 and r.ended is not None and T < r.ended <= run.end
               for r in results)
    assert len({r.ended for r in results}) > 1
    assert run.status == "Completed"
    assert kinds(engine) == ["pre", "post"]
    [post] = decode_message(sink.messages[-1])
    assert post.kind == EventKind.POST and post.status == "Succeeded"
    assert post.id == decode_message(sink.messages[0])[0].id


def test_step_is_idempotent_and_late_steps_reach_the_same_state() -> None:
    clock, world, fine, sink = make(scenario(behaviour={"fail": 0.3}))
    for minute in range(0, 200):
        at(clock, fine, T0 + timedelta(minutes=minute))
    assert fine.step() == 0  # nothing left to do at this time
    fine_state = {k: (v.status, v.installed, v.ended) for k, v in the_run(world).results.items()}
    clock2, world2, jump, sink2 = make(scenario(behaviour={"fail": 0.3}))
    at(clock2, jump, T0 + timedelta(minutes=199))
    jump_state = {k: (v.status, v.installed, v.ended) for k, v in the_run(world2).results.items()}
    assert fine_state == jump_state
    assert sink.messages == sink2.messages


def test_failing_machines_carry_the_error_and_counts() -> None:
    clock, world, engine, _ = make(scenario(behaviour={"fail": 0.3, "fail_message": "boom [b]"}))
    at(clock, engine, T + timedelta(hours=2))
    failed = [r for r in the_run(world).results.values() if r.status == "Failed"]
    assert len(failed) == 3
    assert all(r.failed >= 1 and r.error_message == "boom [b]" for r in failed)
    assert the_run(world).status == "Completed"  # some machines succeeded


def test_every_machine_failing_fails_the_run_and_the_post_event_says_so() -> None:
    clock, world, engine, sink = make(scenario(behaviour={"fail": 1.0}))
    at(clock, engine, T + timedelta(hours=2))
    assert the_run(world).status == "Failed"
    [post] = decode_message(sink.messages[-1])
    assert post.kind == EventKind.POST and post.status == "Failed"


def test_user_cancel_through_the_world_stops_the_run_and_writes_no_post_event() -> None:
    clock, world, engine, _ = make(scenario())
    at(clock, engine, T - timedelta(minutes=20))
    outcome = world.cancel(the_run(world).correlation_id)
    assert outcome.status == 200
    at(clock, engine, T + timedelta(hours=3))
    run = the_run(world)
    assert run.status == "Cancelled"
    assert {r.status for r in run.results.values()} == {"NotStarted"}
    assert kinds(engine) == ["pre"]


def test_platform_cancel_has_its_message_and_no_events() -> None:
    clock, world, engine, _ = make(scenario(behaviour={"platform_cancel": "T-30m"}))
    at(clock, engine, T - timedelta(minutes=31))
    assert the_run(world).status == "Pending"
    at(clock, engine, T + timedelta(hours=3))
    run = the_run(world)
    assert run.status == "Cancelled" and run.cancelled_by == "platform"
    assert run.error_message is not None
    assert run.error_message.startswith("Maintenance cancelled due to internal platform failure")
    assert engine.written == []


def test_pre_event_never_delivered_but_the_run_goes_on() -> None:
    clock, world, engine, _ = make(scenario(behaviour={"pre_event": "never"}))
    at(clock, engine, T + timedelta(hours=3))
    assert the_run(world).status == "Completed"
    assert kinds(engine) == ["post"]


def test_duplicate_delivery_and_malformed_message() -> None:
    clock, _, engine, sink = make(scenario(behaviour={"duplicate": ["pre", "post"],
                                                          "malformed": True}))
    at(clock, engine, T + timedelta(hours=3))
    assert kinds(engine) == ["pre", "malformed", "pre-dup", "post", "post-dup"]
    pre, bad, dup, post, post_dup = sink.messages
    assert decode_message(pre) == decode_message(dup)
    assert decode_message(post) == decode_message(post_dup)
    with pytest.raises(EventDecodeError):
        decode_message(bad)


def test_cutoff_and_pre_event_time_follow_the_scenario() -> None:
    clock, _, engine, sink = make(scenario(behaviour={"pre_event": "T-32m", "cutoff": "T-1m"}))
    at(clock, engine, T - timedelta(minutes=33))
    assert engine.written == []
    at(clock, engine, T - timedelta(minutes=32))
    [pre] = decode_message(sink.messages[0])
    assert pre.cancellation_cutoff == T - timedelta(minutes=1)


@pytest.mark.parametrize(("schema", "base64_text", "decoded_schema"),
                         [("cloudevents", True, "cloudevents"), ("plain-json", False, "eventgrid")])
def test_other_event_schemas(schema: str, base64_text: bool, decoded_schema: str) -> None:
    clock, _, engine, sink = make(scenario(behaviour={"schema": schema}))
    at(clock, engine, T - timedelta(minutes=35))
    text = sink.messages[0]
    assert text.startswith("{") is not base64_text
    [event] = decode_message(text)
    assert event.schema == decoded_schema and event.kind == EventKind.PRE


def test_event_the_sink_refused_is_written_later_exactly_once() -> None:
    clock, _, engine, sink = make(scenario())
    sink.fail = True
    at(clock, engine, T - timedelta(minutes=35))
    assert engine.written == [] and engine.pending_events == 1
    assert engine.last_error is not None
    at(clock, engine, T - timedelta(minutes=34))
    sink.fail = False
    at(clock, engine, T - timedelta(minutes=33))
    at(clock, engine, T - timedelta(minutes=32))
    assert kinds(engine) == ["pre"] and len(sink.messages) == 1


def test_history_is_synthesised_with_the_given_outcomes() -> None:
    _, world, _, sink = make(scenario(
        history=4, outcomes=["failed", "cancelled-user", "cancelled-platform", "succeeded"],
        start="now-1d"))
    past = sorted((r for r in world.runs() if r.end <= T0), key=lambda r: r.start, reverse=True)
    assert [r.status for r in past] == ["Failed", "Cancelled", "Cancelled", "Completed"]
    assert [r.cancelled_by for r in past[1:3]] == ["user", "platform"]
    assert past[1].error_message is not None
    assert past[1].error_message.startswith("Maintenance cancelled using cancellation API at")
    assert past[0].start == T0 - timedelta(days=1)
    # Weekly: a week apart, genuine occurrences of the schedule.
    assert past[0].start - past[1].start == timedelta(weeks=1)
    # Events older than history_events (3 h by default) were not written.
    assert sink.messages == []


def test_new_runs_appear_while_the_engine_runs() -> None:
    clock, world, engine, _ = make(scenario(recur_every="Day"))
    at(clock, engine, T + timedelta(days=1) - timedelta(minutes=40))
    starts = sorted(r.start for r in world.runs())
    assert starts[-2:] == [T, T + timedelta(days=1)]


def test_a_relative_start_the_recurrence_never_produces_is_refused() -> None:
    with pytest.raises(ScenarioError, match=r"recurEvery 'Week Monday' has no run"):
        make(scenario(recur_every="Week Monday"))  # T0 + 60 min is a Tuesday


@pytest.mark.parametrize(("change", "message"), [
    ({"name": "patch-[bold]x"}, r"name: .* is not a valid Azure resource name"),
    ({"behaviour": {"fail": 2}}, r"behaviour\.fail: 2\.0 is not a fraction"),
    ({"behaviour": {"schema": "xml"}}, r"behaviour\.schema: 'xml' is not one of"),
    ({"behaviour": {"fial": 0.1}}, r"behaviour: unknown key\(s\) 'fial'"),
    ({"start": "tomorrow"}, r"start: 'tomorrow' is neither"),
    ({"subscription": "nope"}, r"subscription: 'nope' is not listed"),
    ({"outcomes": ["exploded"]}, r"outcomes: \['exploded'\]"),
    ({"machines": [{"count": True, "prefix": "x"}]}, r"machines\[0\]\.count: expected an integer"),
])
def test_bad_scenarios_get_errors_naming_the_place(change: dict[str, Any], message: str) -> None:
    data = scenario()
    data["configuration"][0].update(change)
    with pytest.raises(ScenarioError, match=message):
        make(data)


def test_missing_scenario_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario(tmp_path / "absent.toml")


def test_demo_scenario_shows_every_phase_at_start() -> None:
    clock = ManualClock(T0)
    world = World(clock)
    sink = MemorySink()
    ScenarioEngine(world, load_scenario(None), sink)
    runs = world.runs()
    upcoming = [r.start - T0 for r in runs if r.status == "Pending"]
    assert any(timedelta(minutes=10) < d <= timedelta(minutes=40) for d in upcoming)  # cancellable
    assert any(timedelta(0) < d < timedelta(minutes=10) for d in upcoming)  # locked
    assert any(r.status == "InProgress" for r in runs)
    recent = [r for r in runs if r.end > T0 - timedelta(days=1) and r.finished]
    assert {r.status for r in recent} >= {"Completed", "Failed", "Cancelled"}
    assert {r.cancelled_by for r in recent if r.status == "Cancelled"} == {"user", "platform"}
    # A cancel window opening within a couple of minutes: a run 40-45 min ahead, no row yet.
    next_starts = [cfg for cfg in world.configurations()
                   if not any(r.configuration_id == cfg["id"] and r.start > T0 for r in runs)]
    assert next_starts, "a configuration whose next run has no row yet"
    zones = {c["properties"]["maintenanceWindow"]["timeZone"] for c in world.configurations()}
    assert {"W. Europe Standard Time", "Pacific Standard Time", "UTC"} <= zones
    assert any("/" in z for z in zones)  # an IANA name too
    assert len(world.subscriptions) == 2
    machines = {m.id for c in world.configurations() for m in world.machines_of(c["id"])}
    assert len(machines) >= 200
    assert 0 < len(sink.messages) <= 32  # a peek sees the whole queue


# -- issue 14: pre-event spread, overrunning runs, schedule edits ---------------------------
def many(count: int, behaviour: dict[str, Any] | None = None) -> dict[str, Any]:
    data = scenario(behaviour)
    base = data["configuration"][0]
    data["configuration"] = [{**base, "name": f"cfg-{i}"} for i in range(count)]
    return data


def pre_times(data: dict[str, Any]) -> list[datetime]:
    clock, _, engine, sink = make(data)
    at(clock, engine, T - timedelta(minutes=25))
    events = [decode_message(text)[0] for text in sink.messages]
    assert len(events) == len(data["configuration"])
    return [e.event_time for e in events if e.event_time is not None]


def test_pre_events_spread_over_t_minus_40_to_t_minus_30_by_default() -> None:
    times = pre_times(many(12))
    assert len(times) == 12
    assert all(T - timedelta(minutes=40) <= t <= T - timedelta(minutes=29, seconds=59)
               for t in times)
    assert len({t.replace(microsecond=0) for t in times}) > 6  # spread, not one moment
    assert pre_times(many(12)) == times  # the same seed gives the same moments


def test_a_pre_event_range_can_be_given() -> None:
    times = pre_times(many(6, {"pre_event": "T-43m..T-38m"}))
    assert all(T - timedelta(minutes=43) <= t <= T - timedelta(minutes=37, seconds=59)
               for t in times)


def test_a_backwards_pre_event_range_is_an_error() -> None:
    with pytest.raises(ScenarioError, match="range must go forward"):
        parse_scenario(scenario({"pre_event": "T-30m..T-40m"}))


def test_an_overrunning_run_finishes_machines_after_the_window_and_posts_late() -> None:
    clock, world, engine, sink = make(scenario(behaviour={"overrun": 1.0}))
    at(clock, engine, T + timedelta(hours=2, minutes=30))
    run = the_run(world)
    late = [r for r in run.results.values() if r.ended is not None and r.ended > run.end]
    assert late and all(r.window_exceeded for r in late)
    assert all(not r.window_exceeded for r in run.results.values() if r not in late)
    assert run.status == "Completed"
    [post] = decode_message(sink.messages[-1])
    assert post.kind == EventKind.POST
    assert post.end == run.end  # EndDateTime: the scheduled window end
    assert post.event_time is not None and post.event_time > max(r.ended for r in late
                                                                  if r.ended is not None)


def test_no_overrun_keeps_every_machine_inside_the_window() -> None:
    clock, world, engine, _ = make(many(5, {"overrun": 0}))
    at(clock, engine, T + timedelta(hours=2, minutes=30))
    for run in world.runs():
        if run.start == T:
            assert all(r.ended is not None and r.ended <= run.end and not r.window_exceeded
                       for r in run.results.values())


def test_an_overrun_outside_zero_to_one_is_an_error() -> None:
    with pytest.raises(ScenarioError, match="overrun"):
        parse_scenario(scenario({"overrun": 1.5}))


def test_an_edit_through_the_world_moves_the_runs_not_created_yet() -> None:
    clock, world, engine, _ = make(scenario(recur_every="Day"))
    cfg = world.configurations()[0]
    window = dict(cfg["properties"]["maintenanceWindow"])
    start = datetime.strptime(window["startDateTime"], "%Y-%m-%d %H:%M")
    window["startDateTime"] = (start + timedelta(hours=5)).strftime("%Y-%m-%d %H:%M")
    # T is 60 min away: its row does not exist yet, so nothing is cancelled; it just moves.
    assert world.edit_configuration({**cfg, "properties": {**cfg["properties"],
                                                           "maintenanceWindow": window}}) == []
    at(clock, engine, T + timedelta(hours=6))
    starts = sorted(r.start for r in world.runs() if r.start >= T)
    assert starts == [T + timedelta(hours=5)]


def test_a_run_that_never_starts_has_no_row_and_no_events() -> None:
    clock, world, engine, _ = make(scenario(behaviour={"never_starts": True}))
    at(clock, engine, T + timedelta(hours=3))
    assert [r for r in world.runs() if r.start == T] == []
    assert engine.written == []


def test_a_configuration_with_no_machines_has_runs_with_no_machines() -> None:
    clock, world, engine, _ = make(scenario(machines=[]))
    at(clock, engine, T + timedelta(minutes=5))
    run = the_run(world)
    assert run.machine_ids == [] and run.status == "Completed"  # nothing to patch
