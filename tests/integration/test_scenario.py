"""The scenario's events reach a real Azurite queue and decode with the product's decoder."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from services.domain.clock import ManualClock
from services.domain.events import EventDecodeError, EventKind, decode_message
from services.standin.azurite import Azurite
from services.standin.events_out import QueueSink
from services.standin.runner import SimEnvironment
from services.standin.scenario import ScenarioEngine
from services.standin.scenario_file import parse_scenario
from services.standin.world import World

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 10, 9, 0, 0, tzinfo=UTC)
T = T0 + timedelta(minutes=50)
SUB = "11111111-1111-4111-8111-111111111111"


def scenario(**behaviour: Any) -> dict[str, Any]:
    return {
        "subscriptions": {"prod": SUB},
        "configuration": [{
            "name": "cfg-int", "subscription": "prod", "resource_group": "rg-int",
            "time_zone": "Pacific Standard Time", "recur_every": "Day", "duration": "01:30",
            "start": "now+50m", "machines": [{"count": 6, "prefix": "int"}],
            "behaviour": behaviour,
        }],
    }



def peek(azurite: Azurite, queue: str) -> list[str]:
    with QueueClient.from_connection_string(azurite.connection_string, queue) as client:
        return [m.content for m in client.peek_messages(max_messages=32)]


def test_pre_and_post_events_arrive_in_azurite_and_decode(azurite: Azurite) -> None:
    clock = ManualClock(T0)
    world = World(clock)
    sink = QueueSink(azurite.connection_string, "scenario-events")
    sink.ensure_queue()
    # A fixed pre-event moment (the default spreads it over T-40..T-30).
    engine = ScenarioEngine(world, parse_scenario(scenario(duplicate=["pre"], malformed=True,
                                                           pre_event="T-35m")),
                            sink)
    clock.set(T - timedelta(minutes=35))
    engine.step()
    [pre_text] = peek(azurite, "scenario-events")
    [pre] = decode_message(pre_text)
    assert pre.kind == EventKind.PRE and pre.start == T
    assert pre.cancellation_cutoff == T - timedelta(minutes=10)
    clock.set(T + timedelta(hours=2))
    engine.step()
    texts = peek(azurite, "scenario-events")
    assert len(texts) == 4  # pre, malformed, duplicate pre, post
    assert texts[2] == pre_text  # a redelivery is the same message
    with pytest.raises(EventDecodeError):
        decode_message(texts[1])
    [post] = decode_message(texts[3])
    assert post.kind == EventKind.POST and post.status == "Succeeded"
    assert post.id == pre.id == world.runs()[-1].correlation_id
    sink.close()


def test_events_written_while_azurite_was_down_arrive_after_its_restart(
    azurite: Azurite,
) -> None:
    clock = ManualClock(T0)
    engine = ScenarioEngine(World(clock), parse_scenario(scenario()),
                            QueueSink(azurite.connection_string, "restarted"))
    azurite.stop()
    try:
        clock.set(T - timedelta(minutes=35))
        engine.step()  # the write fails: kept for later, not lost
        assert engine.written == [] and engine.pending_events == 1
    finally:
        azurite.start()
    engine.step()
    [text] = peek(azurite, "restarted")
    assert decode_message(text)[0].kind == EventKind.PRE
    assert [k for k, _ in engine.written] == ["pre"]


def test_the_environment_plays_the_scenario_on_its_own_clock(tmp_path: Any) -> None:
    # A fixed pre-event moment (the default spreads it over T-40..T-30) and no overrun (by
    # default a run may overrun its window by up to 25 min, drawn per run id, which holds the
    # wall-clock start: the post-event's moment would change from one run of the test to the
    # next).
    data = scenario(pre_event="T-35m", overrun=0)
    with SimEnvironment(parse_scenario(data), step_interval=0.05,
                        config_path=tmp_path / "aumwatch.toml") as env:
        info = env.info()
        assert peek_env(env) == []  # the run is 50 min away: nothing yet
        env.clock.shift(timedelta(minutes=16))  # T-34: the background step writes the pre-event
        texts = wait_for(lambda: peek_env(env), lambda t: len(t) >= 1)
        assert decode_message(texts[0])[0].kind == EventKind.PRE
        # T+96: past the window end (T+90), by which every machine has finished.
        env.clock.shift(timedelta(hours=2, minutes=10))
        texts = wait_for(lambda: peek_env(env), lambda t: len(t) >= 2)
        assert len(texts) >= 2, texts
        assert decode_message(texts[1])[0].kind == EventKind.POST
        assert info["queue_name"] == "aum-events"


def peek_env(env: SimEnvironment) -> list[str]:
    with QueueClient.from_connection_string(env.azurite.connection_string,
                                            env.queue_name) as client:
        return [m.content for m in client.peek_messages(max_messages=32)]


def wait_for(read: Any, done: Any, timeout: float = 10.0) -> Any:
    """Poll ``read()`` until ``done(value)`` (the engine's thread works in real time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_with_the_default_lag_the_installed_world_is_visible_at_once_and_a_cancel_lags(
        tmp_path: Any) -> None:
    from azure.core.rest import HttpRequest
    from azure.mgmt.maintenance import MaintenanceManagementClient
    from azure.mgmt.resourcegraph import ResourceGraphClient
    from azure.mgmt.resourcegraph.models import QueryRequest

    from tests.standin import StaticTokenCredential, sdk_kwargs

    data = scenario()
    data["configuration"][0]["start"] = "now+30m"  # a Pending run, cancellable at once
    with SimEnvironment(parse_scenario(data), step_interval=0.05,
                        config_path=tmp_path / "aumwatch.toml") as env:
        server = env.server
        credential = StaticTokenCredential(server.token)
        graph = ResourceGraphClient(credential, **sdk_kwargs(server))
        arm = MaintenanceManagementClient(credential, SUB, **sdk_kwargs(server))
        query = ('maintenanceresources | where type =~ '
                 '"microsoft.maintenance/maintenanceconfigurations/applyupdates"'
                 ' | where properties.status == "Pending" | project id')

        def pending() -> list[str]:
            return [r["id"] for r in graph.resources(
                QueryRequest(query=query, subscriptions=[SUB])).data]

        with graph, arm:
            [run_id] = pending()  # old news: visible without waiting
            put = arm._send_request(HttpRequest(
                "PUT", run_id, params={"api-version": "2023-09-01-preview"},
                json={"properties": {"status": "Cancel"}}))
            assert put.status_code == 200
            got = arm._send_request(HttpRequest(
                "GET", run_id, params={"api-version": "2023-09-01-preview"})).json()
            assert got["properties"]["status"] == "Cancelled"
            assert pending() == [run_id]  # Resource Graph lags behind ARM
            env.clock.shift(timedelta(seconds=91))
            assert pending() == []
