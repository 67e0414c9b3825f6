"""The stand-in's Event Grid model without a server: wiring from a scenario, routing, metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.domain.clock import ManualClock
from services.domain.events import decode_message
from services.standin.eventgrid import OTHER_QUEUE, base_url
from services.standin.events_out import POST_EVENT_TYPE, PRE_EVENT_TYPE, MemorySink
from services.standin.scenario import ScenarioEngine
from services.standin.scenario_file import ScenarioError, load_scenario, parse_scenario
from services.standin.world import World

T0 = datetime(2026, 3, 10, 9, 0, 0, tzinfo=UTC)
SUB = "11111111-1111-4111-8111-111111111111"


def cfg(name: str, wiring: str | None = None, **behaviour: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name, "subscription": "prod", "resource_group": "rg-a", "time_zone": "UTC",
        "recur_every": "Day", "duration": "01:00", "start": "now+50m",
        "machines": [{"count": 2, "prefix": name}],
        "behaviour": {"pre_event": "T-35m", "overrun": 0, **behaviour}}
    if wiring is not None:
        out["wiring"] = wiring
    return out


def make(*configs: dict[str, Any]) -> tuple[ManualClock, World, ScenarioEngine, MemorySink]:
    clock = ManualClock(T0)
    world = World(clock)
    sink = MemorySink()
    data = {"seed": 1, "subscriptions": {"prod": SUB}, "configuration": list(configs)}
    return clock, world, ScenarioEngine(world, parse_scenario(data), sink), sink


def topic_of(world: World, name: str) -> Any:
    config = next(c for c in world.configurations() if c["name"] == name)
    return world.eventgrid.topic_for_source(config["id"])


def test_unknown_wiring_is_a_clear_error() -> None:
    data = {"subscriptions": {"prod": SUB}, "configuration": [cfg("c", "sometimes")]}
    with pytest.raises(ScenarioError, match=r"wiring: 'sometimes' is not one of ok, "):
        parse_scenario(data)


def test_default_wiring_is_a_topic_and_one_subscription_to_the_sink_queue() -> None:
    clock, world, engine, sink = make(cfg("c-default"))
    topic = topic_of(world, "c-default")
    assert topic is not None and topic.name == "c-default-events"
    [sub] = world.eventgrid.subscriptions_of(topic.id)
    props = sub.arm()["properties"]
    assert props["filter"]["includedEventTypes"] == [PRE_EVENT_TYPE, POST_EVENT_TYPE]
    assert props["destination"]["properties"]["queueName"] == sink.queue_name == "aum-events"
    assert props["destination"]["properties"]["resourceId"] == engine.storage_account_id
    assert engine.storage_account_id.endswith(
        "/resourceGroups/rg-aumwatch/providers/Microsoft.Storage/storageAccounts/devstoreaccount1")
    clock.advance(timedelta(minutes=16))
    engine.step()
    [event] = decode_message(sink.messages[0])
    assert event.kind.value == "pre"
    assert world.metrics.totals(topic.id)["DeliverySuccessCount"] == 1


def test_a_missing_queue_is_a_failed_delivery_not_a_retry() -> None:
    clock, world, engine, sink = make(cfg("c-gone", "other-queue"))
    sink.other.pop(OTHER_QUEUE)  # the queue was deleted after the wiring was made
    clock.advance(timedelta(minutes=16))
    engine.step()
    assert engine.pending_events == 0 and sink.messages == []
    totals = world.metrics.totals(topic_of(world, "c-gone").id)
    assert totals["DeliveryAttemptFailCount"] == 1 and totals["DroppedEventCount"] == 1
    assert totals["DeliverySuccessCount"] == 0


def test_plain_json_scenarios_still_write_plain_json_through_an_event_grid_subscription() -> None:
    clock, _, engine, sink = make(cfg("c-plain", schema="plain-json"))
    clock.advance(timedelta(minutes=16))
    engine.step()
    assert sink.messages[0].startswith("{")


def test_webhook_base_url_drops_query_and_fragment() -> None:
    assert base_url("https://h.example/api/x?code=K#frag") == "https://h.example/api/x"


def test_the_demo_world_has_every_verdict() -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    clock = ManualClock(now)
    world = World(clock)
    ScenarioEngine(world, load_scenario(None), MemorySink())
    eg = world.eventgrid
    found: dict[str, str] = {}
    for config in world.configurations():
        topic = eg.topic_for_source(config["id"])
        subs = eg.subscriptions_of(topic.id) if topic else []
        props = [s.arm()["properties"] for s in subs]
        if not subs:
            verdict = "missing"
        elif any(s.provisioning_state != "Succeeded" for s in subs):
            verdict = "disabled"
        elif any(p["destination"]["endpointType"] != "StorageQueue"
                 or p["destination"]["properties"]["queueName"] != "aum-events" for p in props):
            verdict = "other-endpoint"
        elif any(len(p["filter"]["includedEventTypes"]) < 2 for p in props):
            verdict = "partial"
        else:
            totals = eg.metrics.totals(topic.id, since=now - timedelta(hours=24))
            failed = totals["DroppedEventCount"] + totals["DeadLetteredCount"]
            verdict = "failing" if failed else "ok"
        found[config["name"]] = verdict
    assert set(found.values()) == {"ok", "missing", "partial", "other-endpoint", "disabled",
                                   "failing"}
    assert found["patch-weu-web"] == found["patch-ring-2"] == "ok"
    failing = eg.metrics.totals(topic_of(world, "patch-prod-failing").id,
                                since=now - timedelta(hours=24))
    assert failing["DeadLetteredCount"] >= 1 and failing["DeliverySuccessCount"] == 0
    assert world.storage_accounts() == [
        "/subscriptions/3f2a1c9e-7b4d-4e61-9a0f-2c5d8e7b1a10/resourceGroups/rg-aumwatch/"
        "providers/Microsoft.Storage/storageAccounts/devstoreaccount1"]
