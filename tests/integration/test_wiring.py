"""Reading the Event Grid wiring from the stand-in through the real SDK clients (issue 11).

The wiring is created through the stand-in's ARM API with the real azure-mgmt-eventgrid
client (as an operator's ``az eventgrid ...`` would); a broken endpoint and a failed
provisioning are set on the stand-in's world (what Azure would do by itself). The
:class:`WiringSource` then reads it with the aio SDK clients, the Resource Graph runner and
the metrics request through the Event Grid client's pipeline.
"""

from __future__ import annotations

import functools
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.azure.clients import AsyncStaticTokenCredential
from services.azure.eventgrid import WiringSource, eventgrid_factory
from services.azure.resourcegraph import QueryRunner
from services.azure.sources import ConfigSource
from services.domain.clock import ManualClock
from services.domain.wiring import QueueTarget, Verdict
from services.settings import load_settings
from services.standin.runner import render_config, write_private_file
from services.standin.server import StandInServer
from services.standin.world import World
from tests.standin import SUB, config_object, sdk_kwargs
from tui.cli import main

pytestmark = pytest.mark.integration

PRE = "Microsoft.Maintenance.PreMaintenanceEvent"
POST = "Microsoft.Maintenance.PostMaintenanceEvent"
RG = "rg-patch"
QUEUE = "aum-events"
WATCHED = QueueTarget("devstoreaccount1", QUEUE)
SECRET = "S3CRET-webhook-key"
WEBHOOK = f"https://hooks.example.com/api/maintenance?code={SECRET}"
HOSTILE = "[bold red]mc-\x1b[31mevil\u202e\x9b[2J"
# A fake key: the subscriptions command never opens the queue, it only needs its account name.
CONNECTION_STRING = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                     "AccountKey=a2V5;QueueEndpoint=http://127.0.0.1:9/devstoreaccount1")


class GraphCounter:
    """Counts the Resource Graph requests the stand-in answers (its handler wrapped on this
    instance, as bench/standin.py's CountingServer does)."""

    def __init__(self, server: StandInServer) -> None:
        self.count = 0
        self._lock = threading.Lock()
        original = server._graph_query

        @functools.wraps(original)
        async def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.count += 1
            return await original(*args, **kwargs)

        server._graph_query = counted  # type: ignore[method-assign]


@pytest.fixture
def eventgrid(standin: StandInServer) -> Iterator[Any]:
    """The sync SDK client, as an operator's tooling would create the wiring."""
    from azure.mgmt.eventgrid import EventGridManagementClient

    from services.azure.clients import StaticTokenCredential

    client = EventGridManagementClient(StaticTokenCredential(standin.token), SUB,
                                       **sdk_kwargs(standin))
    with client:
        yield client


def add_config(world: World, name: str) -> str:
    obj = config_object(name, rg=RG)
    world.add_configuration(obj)
    return str(obj["id"])


def create_topic(client: Any, config_id: str, name: str) -> str:
    from azure.mgmt.eventgrid.models import SystemTopic

    topic = client.system_topics.begin_create_or_update(
        RG, name, SystemTopic(location="westeurope", source=config_id,
                              topic_type="Microsoft.Maintenance.MaintenanceConfigurations"),
    ).result()
    return str(topic.id)


def create_subscription(client: Any, topic: str, name: str, *, types: list[str] | None = None,
                        destination: Any = None, schema: str = "EventGridSchema") -> str:
    from azure.mgmt.eventgrid.models import (
        EventSubscription,
        EventSubscriptionFilter,
        StorageQueueEventSubscriptionDestination,
    )

    if destination is None:
        destination = StorageQueueEventSubscriptionDestination(
            resource_id=f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/"
                        "Microsoft.Storage/storageAccounts/devstoreaccount1",
            queue_name=QUEUE)
    sub = client.system_topic_event_subscriptions.begin_create_or_update(
        RG, topic, name, EventSubscription(
            destination=destination,
            filter=EventSubscriptionFilter(included_event_types=types or [PRE, POST]),
            event_delivery_schema=schema),
    ).result()
    return str(sub.id)


@pytest.fixture
def wired(standin_world: World, eventgrid: Any) -> dict[str, str]:
    """One configuration in each verdict (names = verdicts), plus a hostile name; returns
    name -> configuration id."""
    from azure.mgmt.eventgrid.models import WebHookEventSubscriptionDestination

    world = standin_world
    world.add_storage_account(SUB, RG)
    ids = {name: add_config(world, name) for name in (
        "ok", "missing", "partial", "other-endpoint", "disabled", "failing", HOSTILE)}
    for name in ("ok", "partial", "other-endpoint", "disabled", "failing"):
        create_topic(eventgrid, ids[name], f"{name}-topic")
    create_subscription(eventgrid, "ok-topic", "to-queue")
    create_subscription(eventgrid, "partial-topic", "pre-only", types=[PRE])
    create_subscription(eventgrid, "other-endpoint-topic", "hook",
                        destination=WebHookEventSubscriptionDestination(endpoint_url=WEBHOOK))
    disabled = create_subscription(eventgrid, "disabled-topic", "to-queue")
    world.eventgrid.set_provisioning_state(disabled, "Failed")
    failing = create_subscription(eventgrid, "failing-topic", "to-queue")
    world.eventgrid.set_broken(failing)
    # What the scenario engine does when the configuration's pre-event fires: route it
    # through the topic; the broken endpoint counts a failed attempt and a drop.
    routes = world.eventgrid.routes(ids["failing"], PRE, world.clock.now())
    assert routes and routes[0].failure
    world.clock.advance(timedelta(minutes=1))  # type: ignore[attr-defined]
    create_topic(eventgrid, ids[HOSTILE], "hostile-topic")
    create_subscription(eventgrid, "hostile-topic", "hostile-sub")
    return ids


def source_for(server: StandInServer, clock: ManualClock, **kwargs: Any) -> WiringSource:
    settings = load_settings({"cloud": "standin", "arm_endpoint": server.endpoint,
                              "ca_file": str(server.ca_file), "subscriptions": [SUB]},
                             env={"AUMWATCH_TOKEN": server.token}, config_path=None)
    credential = AsyncStaticTokenCredential(server.token)
    runner = QueryRunner.from_settings(settings, clock=clock, credential=credential,
                                       correct_clock=False)
    return WiringSource(runner, eventgrid_factory(settings, credential), watched=WATCHED,
                        clock=clock, **kwargs)


async def configurations(source: WiringSource) -> Any:
    return (await ConfigSource(source.runner, clock=source.clock).fetch()).items


async def test_every_verdict_is_detected(standin: StandInServer, standin_clock: ManualClock,
                                        wired: dict[str, str]) -> None:
    source = source_for(standin, standin_clock)
    async with source.runner:
        snapshot = await source.fetch(await configurations(source))
    assert snapshot.error is None
    verdicts = {w.configuration_name: w.verdict for w in snapshot.wirings.values()}
    for name in ("ok", "missing", "partial", "other-endpoint", "disabled", "failing"):
        assert verdicts[name] is Verdict(name), (name, snapshot.wirings[wired[name].lower()].error)
    ok = snapshot.wirings[wired["ok"].lower()]
    assert ok.error is None and ok.health is not None
    (sub,) = ok.subscriptions
    assert (sub.event_types, sub.schema, sub.endpoint_type, sub.state) == (
        ("pre", "post"), "eventgrid", "storagequeue", "Succeeded")
    assert sub.endpoint.lower().endswith("/storageaccounts/devstoreaccount1/queues/aum-events")
    failing = snapshot.wirings[wired["failing"].lower()]
    assert failing.health is not None
    assert failing.health.failed == 1 and failing.health.dropped == 1
    assert failing.health.published == 1
    hook = snapshot.wirings[wired["other-endpoint"].lower()].subscriptions[0]
    assert hook.endpoint == "hooks.example.com"


async def test_topics_are_one_graph_request_per_refresh(
        standin: StandInServer, standin_clock: ManualClock, wired: dict[str, str],
        standin_world: World) -> None:
    # Many more configurations than topics: the count must not follow either.
    for i in range(40):
        add_config(standin_world, f"extra-{i:02}")
    counter = GraphCounter(standin)
    source = source_for(standin, standin_clock, refresh=timedelta(minutes=5))
    async with source.runner:
        configs = await configurations(source)
        assert len(configs) >= 47
        counter.count = 0
        await source.fetch(configs)
        assert counter.count == 1
        assert source.graph_requests == 1
        # Within the refresh: no request at all, and the same verdicts.
        standin_clock.advance(timedelta(minutes=4))
        again = await source.fetch(configs)
        assert counter.count == 1
        assert again.wirings[wired["ok"].lower()].verdict is Verdict.OK
        standin_clock.advance(timedelta(minutes=1))
        await source.fetch(configs)
        assert counter.count == 2


async def test_a_failing_metrics_call_keeps_the_structural_verdict(
        standin: StandInServer, standin_clock: ManualClock, wired: dict[str, str],
        standin_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(topic_id: str, query: dict[str, str]) -> Any:
        return 503, {"code": "ServiceUnavailable", "message": "metrics are resting"}, {}

    monkeypatch.setattr(standin_world.metrics, "answer", unavailable)
    source = source_for(standin, standin_clock)
    async with source.runner:
        snapshot = await source.fetch(await configurations(source))
    assert snapshot.error is None
    ok = snapshot.wirings[wired["ok"].lower()]
    assert ok.verdict is Verdict.OK and ok.health is None
    assert ok.error is not None and "HTTP 503" in ok.error and "metrics are resting" in ok.error
    partial = snapshot.wirings[wired["partial"].lower()]
    assert partial.verdict is Verdict.PARTIAL and partial.error is not None
    # Without metrics the broken endpoint cannot be seen: the structure says ok.
    assert snapshot.wirings[wired["failing"].lower()].verdict is Verdict.OK


async def test_a_throttled_subscription_list_is_a_part_error(
        standin: StandInServer, standin_clock: ManualClock, wired: dict[str, str]) -> None:
    source = source_for(standin, standin_clock, concurrency=1)
    async with source.runner:
        configs = await configurations(source)
        standin.faults.set("throttle", scope="arm", retry_after=600)
        snapshot = await source.fetch(configs)
    standin.faults.clear()
    assert snapshot.error is None
    errors = {w.configuration_name: w.error for w in snapshot.wirings.values() if w.topic}
    assert errors and all(e and ("HTTP 429" in e or "throttled" in e) for e in errors.values())
    assert snapshot.wirings[wired["missing"].lower()].verdict is Verdict.MISSING


# --- every wiring of the scenario engine (what `aumwatch sim` plays) ----------------------

#: The scenario file's ``wiring`` values (services/standin/scenario_file.py) and the verdict
#: each must get once the engine has delivered a run's events through it.
SCENARIO_VERDICTS = {
    "ok": Verdict.OK, "no-topic": Verdict.MISSING, "missing": Verdict.MISSING,
    "pre-only": Verdict.PARTIAL, "post-only": Verdict.PARTIAL,
    "other-queue": Verdict.OTHER_ENDPOINT, "webhook": Verdict.OTHER_ENDPOINT,
    "function": Verdict.OTHER_ENDPOINT, "disabled": Verdict.DISABLED,
    "awaiting": Verdict.DISABLED, "expired": Verdict.DISABLED, "failing": Verdict.FAILING,
    "dropping": Verdict.FAILING, "identity": Verdict.OK, "identity-no-role": Verdict.FAILING,
}


async def test_every_scenario_wiring_gets_its_verdict(
        standin: StandInServer, standin_world: World, standin_clock: ManualClock,
        azurite: Any) -> None:
    from services.standin.events_out import QueueSink
    from services.standin.scenario import ScenarioEngine
    from services.standin.scenario_file import WIRINGS, parse_scenario

    assert set(SCENARIO_VERDICTS) == set(WIRINGS)
    queue = f"q{uuid.uuid4().hex[:10]}"
    configs = [{"name": f"w-{wiring}", "subscription": "main", "resource_group": RG,
                "time_zone": "UTC", "recur_every": "Day", "duration": "01:00",
                "start": "now+50m", "wiring": wiring,
                "behaviour": {"pre_event": "T-35m", "overrun": 0}}
               for wiring in SCENARIO_VERDICTS]
    sink = QueueSink(azurite.connection_string, queue)
    sink.ensure_queue()
    try:
        engine = ScenarioEngine(standin_world, parse_scenario(
            {"seed": 3, "subscriptions": {"main": SUB},
             "storage_account": {"resource_group": "rg-aumwatch"},
             "configuration": configs}), sink)
        standin_clock.advance(timedelta(minutes=16))  # every pre-event is due
        engine.step()
        standin_clock.advance(timedelta(hours=2))  # every post-event is due
        engine.step()
        standin_clock.advance(timedelta(minutes=1))
    finally:
        sink.close()
    source = source_for(standin, standin_clock)
    source.watched = QueueTarget("devstoreaccount1", queue)
    async with source.runner:
        snapshot = await source.fetch(await configurations(source))
    assert snapshot.error is None
    got = {w.configuration_name[2:]: w.verdict for w in snapshot.wirings.values()
           if w.configuration_name.startswith("w-")}
    assert got == SCENARIO_VERDICTS
    assert all(w.error is None for w in snapshot.wirings.values())
    failing = next(w for w in snapshot.wirings.values() if w.configuration_name == "w-failing")
    assert failing.health is not None and failing.health.dead_lettered == 2
    ok = next(w for w in snapshot.wirings.values() if w.configuration_name == "w-ok")
    assert ok.health is not None and ok.health.delivered >= 1 and not ok.health.failing


# --- the command ---------------------------------------------------------------------------


@pytest.fixture
def cfg(standin: StandInServer, tmp_path: Path) -> Path:
    path = tmp_path / "aumwatch.toml"
    write_private_file(path, render_config({
        "arm_endpoint": standin.endpoint, "ca_file": str(standin.ca_file),
        "token": standin.token, "subscriptions": [SUB],
        "queue_connection_string": CONNECTION_STRING, "queue_name": QUEUE}))
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


CONTRACT = {"configuration_id", "configuration_name", "verdict", "system_topic",
            "subscriptions", "health"}
SUB_KEYS = {"name", "event_types", "schema", "endpoint_type", "endpoint", "state"}


def test_subscriptions_json_has_the_contract_and_no_webhook_key(
        wired: dict[str, str], cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "subscriptions", "--config", str(cfg), "--json",
                             "--debug")
    assert code == 0, err
    items = json.loads(out)
    assert all(CONTRACT <= set(i) for i in items)
    by_name = {i["configuration_name"]: i for i in items}
    for name in ("ok", "missing", "partial", "other-endpoint", "disabled", "failing"):
        assert by_name[name]["verdict"] == name
    assert by_name["missing"]["system_topic"] is None
    assert by_name["missing"]["subscriptions"] == []
    ok = by_name["ok"]
    assert set(ok["health"]) >= {"delivered", "failed", "dropped", "dead_lettered"}
    (sub,) = ok["subscriptions"]
    assert SUB_KEYS <= set(sub)
    assert sub["event_types"] == ["pre", "post"] and sub["endpoint_type"] == "storagequeue"
    hook = by_name["other-endpoint"]["subscriptions"][0]
    assert hook["endpoint_type"] == "webhook" and hook["endpoint"] == "hooks.example.com"
    # Neither the output nor the SDK's debug log (stderr) holds the key or the URL's path.
    for text in (out, err):
        assert SECRET not in text and "/api/maintenance" not in text


def test_subscriptions_table_and_debug_log_hold_no_webhook_key(
        wired: dict[str, str], cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "subscriptions", "--config", str(cfg), "--debug")
    assert code == 0, err
    assert "hooks.example.com" in out
    assert "azure" in err  # the SDK's debug records did reach stderr
    for text in (out, err):
        assert SECRET not in text and "/api/maintenance" not in text
    lines = out.splitlines()
    assert lines[0].startswith("CONFIGURATION") and "VERDICT" in lines[0]
    assert any(line.startswith("missing") and "✗ missing" in line for line in lines)


def test_hostile_names_print_literally(wired: dict[str, str], cfg: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "subscriptions", "--config", str(cfg))
    assert code == 0
    # Markup stays text, control characters are shown escaped, never written raw.
    assert "[bold red]mc-\\x1b[31mevil\\u202e\\x9b[2J" in out
    for raw in ("\x1b", "\u202e", "\x9b"):
        assert raw not in out
    code, out, _ = run_cli(capsys, "subscriptions", "--config", str(cfg), "--json")
    assert code == 0
    assert "\x1b" not in out and "\u202e" not in out and "\x9b" not in out
    names = {i["configuration_name"] for i in json.loads(out)}
    assert HOSTILE in names


def test_configuration_filter_by_name_or_id(wired: dict[str, str], cfg: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "subscriptions", "--config", str(cfg), "--json",
                           "--configuration", "PARTIAL")
    assert code == 0
    assert [i["verdict"] for i in json.loads(out)] == ["partial"]
    code, out, _ = run_cli(capsys, "subscriptions", "--config", str(cfg), "--json",
                           "--configuration", wired["ok"].upper())
    assert [i["configuration_name"] for i in json.loads(out)] == ["ok"]
    code, _, err = run_cli(capsys, "subscriptions", "--config", str(cfg),
                           "--configuration", "nope")
    assert code == 1 and "no configuration named 'nope'" in err


def test_a_part_error_exits_1_with_the_output_printed(
        wired: dict[str, str], cfg: Path, standin_world: World,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(topic_id: str, query: dict[str, str]) -> Any:
        return 403, {"code": "AuthorizationFailed", "message": "no metrics for you"}, {}

    monkeypatch.setattr(standin_world.metrics, "answer", forbidden)
    code, out, err = run_cli(capsys, "subscriptions", "--config", str(cfg), "--json",
                             "--configuration", "ok")
    assert code == 1
    (item,) = json.loads(out)
    assert item["verdict"] == "ok" and item["health"] is None
    assert "HTTP 403" in item["error"] and "HTTP 403" in err


def test_doctor_warns_with_the_fix(wired: dict[str, str], cfg: Path, standin_world: World,
                                   standin_clock: ManualClock,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    # config_object's configurations run Saturday 02:00 Amsterdam (01:00Z, 2026-03-14): move
    # the stand-in's clock (the CLI follows it by the Date header) to 13 h before that run,
    # and deliver one more pre-event into the broken endpoint within the last 24 h.
    standin_clock.set(standin_clock.now().replace(day=13, hour=12))
    standin_world.eventgrid.routes(wired["failing"], PRE, standin_clock.now())
    standin_clock.advance(timedelta(minutes=1))
    _, out, _ = run_cli(capsys, "doctor", "--config", str(cfg), "--json")
    checks = {c["check"]: c for c in json.loads(out) if c["check"].startswith("event wiring")}
    assert "event wiring ok" not in checks
    fixes = {
        "missing": "`aumwatch setup events --configuration missing`",
        "partial": "`aumwatch setup events --configuration partial --types pre,post`",
        "other-endpoint": "`aumwatch setup events --configuration other-endpoint --queue "
                          "aum-events`",
        "disabled": "`aumwatch setup events --configuration disabled`",
        "failing": "DeliveryAttemptFailCount",
    }
    for name, fix in fixes.items():
        check = checks[f"event wiring {name}"]
        assert check["status"] == "warn" and name in check["detail"]
        assert fix in check["fix"], check
    assert "next run 2026-03-14 01:00Z" in checks["event wiring missing"]["detail"]
    _, out, _ = run_cli(capsys, "doctor", "--config", str(cfg))
    assert "[WARN] event wiring partial" in out and "fix: run `aumwatch setup events" in out


def test_without_a_watched_queue_any_storage_queue_counts_and_it_says_so(
        wired: dict[str, str], standin: StandInServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "no-queue.toml"
    text = render_config({"arm_endpoint": standin.endpoint, "ca_file": str(standin.ca_file),
                          "token": standin.token, "subscriptions": [SUB],
                          "queue_connection_string": "", "queue_name": ""})
    write_private_file(path, text.split("[queue]")[0])
    code, out, err = run_cli(capsys, "subscriptions", "--config", str(path), "--json",
                             "--configuration", "ok")
    assert code == 0
    assert [i["verdict"] for i in json.loads(out)] == ["ok"]
    assert "no watched queue known" in err


# --- the demo world (`aumwatch sim` / `aumwatch demo`) ------------------------------------

DEMO_VERDICTS = {
    "patch-weu-web": "ok", "patch-dev-notopic": "missing", "patch-dev-nosub": "missing",
    "patch-dev-preonly": "partial", "patch-dev-otherq": "other-endpoint",
    "patch-dev-hook": "other-endpoint", "patch-dev-disabled": "disabled",
    "patch-prod-failing": "failing",
}


def test_the_demo_world_shows_every_verdict(standin_demo: Any,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(standin_demo.config_path)
    code, out, err = run_cli(capsys, "subscriptions", "--config", cfg, "--json")
    assert code == 0, err
    got = {i["configuration_name"]: i["verdict"] for i in json.loads(out)}
    assert {name: got.get(name) for name in DEMO_VERDICTS} == DEMO_VERDICTS
    assert set(got.values()) == {str(v) for v in Verdict}
    assert "?code=" not in out
    # doctor warns about each of them for its wiring, and for nothing else (the demo's
    # machines at risk are pre-flight's warnings: tests/integration/test_preflight.py).
    code, out, err = run_cli(capsys, "doctor", "--config", cfg, "--json")
    checks = json.loads(out)
    wiring_warned = {c["check"].removeprefix("event wiring ") for c in checks
                     if c["check"].startswith("event wiring ") and c["status"] == "warn"}
    assert wiring_warned == {n for n, v in DEMO_VERDICTS.items() if v != "ok"}
    others = [c for c in checks if c["status"] != "ok" and not c["check"].startswith(
        ("event wiring", "pre-flight")) and any(n in c["check"] for n in DEMO_VERDICTS)]
    assert others == []
    # Each of them has a run in the next 24 h: doctor warns about every one that is not ok.
    _, out, _ = run_cli(capsys, "doctor", "--config", cfg, "--json")
    warned = {c["check"].removeprefix("event wiring ") for c in json.loads(out)
              if c["check"].startswith("event wiring") and c["status"] == "warn"}
    assert warned >= {n for n, v in DEMO_VERDICTS.items() if v != "ok"}
    assert "patch-weu-web" not in warned


def test_the_table_fits_the_terminal_and_wide_prints_it_whole(
        wired: dict[str, str], cfg: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 20: the table was about 270 columns wide. Fitted, ids keep their end.
    code, whole, _ = run_cli(capsys, "subscriptions", "--config", str(cfg))
    assert code == 0
    table = whole.split("\n\n")[0].splitlines()
    assert max(len(line) for line in table) > 120
    monkeypatch.setenv("COLUMNS", "120")
    code, fitted, _ = run_cli(capsys, "subscriptions", "--config", str(cfg))
    assert code == 0
    rows = fitted.splitlines()[:len(table)]
    assert all(len(line) <= 120 for line in rows), max(rows, key=len)
    assert "…" in fitted
    ok = next(line for line in rows if line.startswith("ok "))
    assert "✓ ok" in ok
    code, wide, _ = run_cli(capsys, "subscriptions", "--config", str(cfg), "--wide")
    assert wide == whole
    code, json_fitted, _ = run_cli(capsys, "subscriptions", "--config", str(cfg), "--json")
    monkeypatch.delenv("COLUMNS")
    code, json_whole, _ = run_cli(capsys, "subscriptions", "--config", str(cfg), "--json")
    assert json.loads(json_fitted) == json.loads(json_whole)
