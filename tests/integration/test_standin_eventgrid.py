"""The stand-in's Event Grid (issue 11) through the real SDK clients, Resource Graph and Azurite.

System topics and event subscriptions go through azure-mgmt-eventgrid's aio client (its
long-running PUT/DELETE pollers included); role assignments and metrics through the same
client's authenticated pipeline (``_send_request``), as REST calls; deliveries through the
scenario engine into a real Azurite queue.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.storage.queue import QueueClient

from services.domain.clock import ManualClock, iso_z
from services.standin.azurite import Azurite
from services.standin.eventgrid import (
    OTHER_QUEUE,
    TOPIC_TYPE,
    WEBHOOK_URL,
    WIRINGS,
)
from services.standin.events_out import POST_EVENT_TYPE, PRE_EVENT_TYPE, QueueSink
from services.standin.roles import ROLE_QUEUE_SENDER
from services.standin.scenario import ScenarioEngine
from services.standin.scenario_file import parse_scenario
from services.standin.server import StandInServer
from services.standin.world import World
from tests.standin import NOW, SUB, config_object

pytestmark = pytest.mark.integration

RG = "rg-patch"
ACCOUNT = (f"/subscriptions/{SUB}/resourceGroups/rg-aumwatch/providers/"
           "Microsoft.Storage/storageAccounts/devstoreaccount1")
METRIC_NAMES = ("PublishSuccessCount,MatchedEventCount,DeliverySuccessCount,"
                "DeliveryAttemptFailCount,DroppedEventCount,DeadLetteredCount")


def topic_id(name: str, rg: str = RG) -> str:
    return (f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.EventGrid/"
            f"systemTopics/{name}")


@pytest.fixture
def eg(aio_eventgrid_client: Any) -> Any:
    """The Event Grid client (tests/standin.py's), by a short name."""
    return aio_eventgrid_client


@pytest.fixture
def wired_world(standin_world: World) -> World:
    """A configuration ``cfg-a`` and the Azurite account in the World."""
    standin_world.add_configuration(config_object("cfg-a", RG))
    standin_world.add_storage_account(SUB, "rg-aumwatch")
    return standin_world


async def rest(client: Any, method: str, url: str, body: Any = None) -> tuple[int, Any, str]:
    """A REST call through the SDK client's authenticated pipeline: (status, JSON, text)."""
    request = HttpRequest(method, url, json=body) if body is not None else HttpRequest(method, url)
    response = await client._send_request(request)
    text = response.text()
    return response.status_code, (json.loads(text) if text else None), text


async def make_topic(eg: Any, name: str = "cfg-a-events", source: str | None = None,
                     identity: bool = False) -> Any:
    from azure.mgmt.eventgrid.models import IdentityInfo, SystemTopic

    topic = SystemTopic(location="westeurope",
                        source=source or config_object("cfg-a", RG)["id"],
                        topic_type=TOPIC_TYPE,
                        identity=IdentityInfo(type="SystemAssigned") if identity else None)
    poller = await eg.system_topics.begin_create_or_update(RG, name, topic, polling_interval=0)
    return await poller.result()


def queue_subscription(queue: str, types: list[str] | None = None, *,
                       schema: str = "EventGridSchema", identity: bool = False,
                       dead_letter: bool = False) -> Any:
    from azure.mgmt.eventgrid.models import (
        DeliveryWithResourceIdentity,
        EventSubscription,
        EventSubscriptionFilter,
        EventSubscriptionIdentity,
        StorageBlobDeadLetterDestination,
        StorageQueueEventSubscriptionDestination,
    )

    dest = StorageQueueEventSubscriptionDestination(resource_id=ACCOUNT, queue_name=queue,
                                                    queue_message_time_to_live_in_seconds=3600)
    dwri = None
    if identity:
        dwri = DeliveryWithResourceIdentity(
            identity=EventSubscriptionIdentity(type="SystemAssigned"), destination=dest)
    return EventSubscription(
        destination=None if identity else dest, delivery_with_resource_identity=dwri,
        filter=EventSubscriptionFilter(included_event_types=types or [PRE_EVENT_TYPE,
                                                                      POST_EVENT_TYPE]),
        event_delivery_schema=schema,
        dead_letter_destination=StorageBlobDeadLetterDestination(
            resource_id=ACCOUNT, blob_container_name="dead") if dead_letter else None)


async def make_subscription(eg: Any, topic: str, name: str, body: Any) -> Any:
    poller = await eg.system_topic_event_subscriptions.begin_create_or_update(
        RG, topic, name, body, polling_interval=0)
    return await poller.result()


# -- system topics ----------------------------------------------------------------------------
async def test_system_topic_create_read_list_delete_through_the_sdk_pollers(
        wired_world: World, eg: Any) -> None:
    created = await make_topic(eg, identity=True)
    assert created.provisioning_state == "Succeeded"
    assert created.source == config_object("cfg-a", RG)["id"]
    assert created.topic_type == TOPIC_TYPE and created.location == "westeurope"
    assert created.identity.type == "SystemAssigned"
    assert uuid.UUID(created.identity.principal_id) and created.metric_resource_id
    got = await eg.system_topics.get(RG, "cfg-a-events")
    assert got.id == topic_id("cfg-a-events") and got.provisioning_state == "Succeeded"
    assert [t.name async for t in eg.system_topics.list_by_resource_group(RG)] == ["cfg-a-events"]
    assert [t.name async for t in eg.system_topics.list_by_subscription()] == ["cfg-a-events"]
    assert [t.name async for t in eg.system_topics.list_by_resource_group("rg-other")] == []
    again = await make_topic(eg, identity=True)  # create-or-update of the same topic: 200
    assert again.identity.principal_id == created.identity.principal_id
    from azure.mgmt.eventgrid.models import SystemTopicUpdateParameters

    poller = await eg.system_topics.begin_update(
        RG, "cfg-a-events", SystemTopicUpdateParameters(tags={"owner": "ops"}),
        polling_interval=0)
    assert (await poller.result()).tags == {"owner": "ops"}
    poller = await eg.system_topics.begin_delete(RG, "cfg-a-events", polling_interval=0)
    await poller.result()
    with pytest.raises(ResourceNotFoundError):
        await eg.system_topics.get(RG, "cfg-a-events")


async def test_put_answers_as_arm_does_a_long_running_operation(
        wired_world: World, eg: Any, standin: StandInServer) -> None:
    body = {"location": "westeurope", "properties": {
        "source": config_object("cfg-a", RG)["id"], "topicType": TOPIC_TYPE}}
    status, answer, _ = await rest(eg, "PUT", f"{topic_id('t-raw')}?api-version=2025-02-15",
                                   body)
    assert status == 201 and answer["properties"]["provisioningState"] == "Creating"
    request = HttpRequest("GET", f"{topic_id('t-raw')}?api-version=2025-02-15")
    response = await eg._send_request(request)
    assert response.json()["properties"]["provisioningState"] == "Succeeded"
    # The PUT's Azure-AsyncOperation URL answers the operation's status.
    put = await eg._send_request(HttpRequest(
        "PUT", f"{topic_id('t-raw')}?api-version=2025-02-15", json=body))
    status_url = put.headers["Azure-AsyncOperation"]
    assert status_url.startswith(standin.endpoint) and "/operationsStatus/" in status_url
    op = await eg._send_request(HttpRequest("GET", status_url))
    assert op.status_code == 200 and op.json()["status"] == "Succeeded"


async def test_topic_validation_follows_arm(wired_world: World, eg: Any) -> None:
    missing = config_object("cfg-gone", RG)["id"]
    with pytest.raises(HttpResponseError) as err:
        await make_topic(eg, "gone-events", source=missing)
    assert err.value.status_code == 400 and err.value.error.code == "InvalidRequest"
    await make_topic(eg)
    with pytest.raises(HttpResponseError) as err:
        await make_topic(eg, "second-events")
    assert err.value.status_code == 400 and "one system topic" in str(err.value.message)
    status, answer, _ = await rest(eg, "GET", f"{topic_id('cfg-a-events')}?api-version=2030-01-01")
    assert status == 400 and answer["error"]["code"] == "InvalidApiVersionParameter"
    for version in ("2022-06-15", "2023-12-15-preview", "2024-06-01-preview", "2025-02-15"):
        status, _, _ = await rest(eg, "GET", f"{topic_id('cfg-a-events')}?api-version={version}")
        assert status == 200, version


# -- event subscriptions ----------------------------------------------------------------------
async def test_event_subscription_crud_with_its_fields(wired_world: World, eg: Any) -> None:
    await make_topic(eg)
    made = await make_subscription(eg, "cfg-a-events", "to-queue",
                                   queue_subscription("aum-events", [PRE_EVENT_TYPE],
                                                      schema="CloudEventSchemaV1_0",
                                                      dead_letter=True))
    assert made.provisioning_state == "Succeeded"
    got = await eg.system_topic_event_subscriptions.get(RG, "cfg-a-events", "to-queue")
    assert got.filter.included_event_types == [PRE_EVENT_TYPE]
    assert got.event_delivery_schema == "CloudEventSchemaV1_0"
    assert got.destination.endpoint_type == "StorageQueue"
    assert got.destination.resource_id == ACCOUNT and got.destination.queue_name == "aum-events"
    assert got.destination.queue_message_time_to_live_in_seconds == 3600
    assert got.dead_letter_destination.blob_container_name == "dead"
    assert got.retry_policy.max_delivery_attempts == 30
    assert got.retry_policy.event_time_to_live_in_minutes == 1440
    names = [s.name async for s in
             eg.system_topic_event_subscriptions.list_by_system_topic(RG, "cfg-a-events")]
    assert names == ["to-queue"]
    # Create-or-update again (an idempotent set-up), then an update of its filter only.
    again = await make_subscription(eg, "cfg-a-events", "to-queue",
                                    queue_subscription("aum-events", [PRE_EVENT_TYPE]))
    assert again.provisioning_state == "Succeeded"
    assert again.event_delivery_schema == "EventGridSchema"
    from azure.mgmt.eventgrid.models import (
        EventSubscriptionFilter,
        EventSubscriptionUpdateParameters,
    )

    update = EventSubscriptionUpdateParameters(filter=EventSubscriptionFilter(
        included_event_types=[PRE_EVENT_TYPE, POST_EVENT_TYPE]))
    poller = await eg.system_topic_event_subscriptions.begin_update(
        RG, "cfg-a-events", "to-queue", update, polling_interval=0)
    updated = await poller.result()
    assert updated.filter.included_event_types == [PRE_EVENT_TYPE, POST_EVENT_TYPE]
    assert updated.destination.queue_name == "aum-events"
    poller = await eg.system_topic_event_subscriptions.begin_delete(
        RG, "cfg-a-events", "to-queue", polling_interval=0)
    await poller.result()
    with pytest.raises(ResourceNotFoundError):
        await eg.system_topic_event_subscriptions.get(RG, "cfg-a-events", "to-queue")


async def test_a_webhook_url_key_is_never_read_back_except_by_get_full_url(
        wired_world: World, eg: Any) -> None:
    from azure.mgmt.eventgrid.models import EventSubscription, WebHookEventSubscriptionDestination

    await make_topic(eg)
    secret = "https://hooks.example.invalid/api/events?code=TOPSECRET-123&clientId=x"
    body = EventSubscription(destination=WebHookEventSubscriptionDestination(endpoint_url=secret))
    made = await make_subscription(eg, "cfg-a-events", "to-hook", body)
    got = await eg.system_topic_event_subscriptions.get(RG, "cfg-a-events", "to-hook")
    for sub in (made, got):
        assert sub.destination.endpoint_url is None
        assert sub.destination.endpoint_base_url == "https://hooks.example.invalid/api/events"
    url = f"{topic_id('cfg-a-events')}/eventSubscriptions?api-version=2025-02-15"
    _, _, listed = await rest(eg, "GET", url)
    _, _, single = await rest(eg, "GET", url.replace("?", "/to-hook?"))
    assert "TOPSECRET" not in listed and "TOPSECRET" not in single
    full = await eg.system_topic_event_subscriptions.get_full_url(RG, "cfg-a-events", "to-hook")
    assert full.endpoint_url == secret


async def test_event_subscription_validation(wired_world: World, eg: Any) -> None:
    await make_topic(eg)
    bad_type = queue_subscription("aum-events", ["Microsoft.Storage.BlobCreated"])
    with pytest.raises(HttpResponseError) as err:
        await make_subscription(eg, "cfg-a-events", "bad-type", bad_type)
    assert err.value.status_code == 400
    # Delivery with the topic's identity needs the topic to have one.
    with pytest.raises(HttpResponseError) as err:
        await make_subscription(eg, "cfg-a-events", "no-identity",
                                queue_subscription("aum-events", identity=True))
    assert err.value.status_code == 400 and "identity" in str(err.value.message)
    with pytest.raises(ResourceNotFoundError):
        await make_subscription(eg, "no-such-topic", "x-sub", queue_subscription("aum-events"))


# -- Resource Graph -----------------------------------------------------------------------------
async def test_topic_and_storage_account_rows_in_resource_graph(
        wired_world: World, eg: Any, aio_graph_client: Any) -> None:
    from azure.mgmt.resourcegraph.models import QueryRequest

    created = await make_topic(eg, identity=True)
    query = ("resources | where type =~ 'microsoft.eventgrid/systemtopics' "
             "or type =~ 'microsoft.storage/storageaccounts' | order by type asc")
    result = await aio_graph_client.resources(QueryRequest(subscriptions=[SUB], query=query))
    topic, account = result.data
    assert topic["type"] == "microsoft.eventgrid/systemtopics"
    assert topic["id"] == topic_id("cfg-a-events") and topic["name"] == "cfg-a-events"
    assert topic["properties"]["source"] == config_object("cfg-a", RG)["id"]
    assert topic["properties"]["topicType"] == TOPIC_TYPE
    assert topic["identity"]["principalId"] == created.identity.principal_id
    assert topic["subscriptionId"] == SUB and topic["resourceGroup"] == RG
    assert topic["location"] == "westeurope"
    assert account["type"] == "microsoft.storage/storageaccounts"
    assert account["name"] == "devstoreaccount1" and account["id"] == ACCOUNT


# -- role assignments -----------------------------------------------------------------------------
async def test_role_assignments_put_and_list_by_principal(wired_world: World, eg: Any) -> None:
    principal = (await make_topic(eg, identity=True)).identity.principal_id
    base = f"{ACCOUNT}/providers/Microsoft.Authorization/roleAssignments"
    flt = f"$filter=principalId eq '{principal}'"
    status, answer, _ = await rest(eg, "GET", f"{base}?api-version=2022-04-01&{flt}")
    assert status == 200 and answer == {"value": []}
    role = (f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
            f"{ROLE_QUEUE_SENDER}")
    name = str(uuid.uuid4())
    body = {"properties": {"roleDefinitionId": role, "principalId": principal,
                           "principalType": "ServicePrincipal"}}
    status, answer, _ = await rest(eg, "PUT", f"{base}/{name}?api-version=2022-04-01", body)
    assert status == 201
    assert answer["name"] == name and answer["type"] == "Microsoft.Authorization/roleAssignments"
    assert answer["properties"]["scope"] == ACCOUNT
    assert answer["properties"]["roleDefinitionId"] == role
    # Listed at its scope and at a child scope (inherited), filtered by principal.
    for scope in (ACCOUNT, f"{ACCOUNT}/queueServices/default/queues/aum-events"):
        url = f"{scope}/providers/Microsoft.Authorization/roleAssignments"
        status, answer, _ = await rest(eg, "GET", f"{url}?api-version=2022-04-01&{flt}")
        assert [a["name"] for a in answer["value"]] == [name], scope
    other = f"$filter=principalId eq '{uuid.uuid4()}'"
    _, answer, _ = await rest(eg, "GET", f"{base}?api-version=2022-04-01&{other}")
    assert answer["value"] == []
    # The same role for the same principal at the same scope again: 409.
    status, answer, _ = await rest(eg, "PUT", f"{base}/{uuid.uuid4()}?api-version=2022-04-01",
                                   body)
    assert status == 409 and answer["error"]["code"] == "RoleAssignmentExists"
    bad = {"properties": {"roleDefinitionId": role.replace(ROLE_QUEUE_SENDER, str(uuid.uuid4())),
                          "principalId": principal}}
    status, answer, _ = await rest(eg, "PUT", f"{base}/{uuid.uuid4()}?api-version=2022-04-01",
                                   bad)
    assert status == 400 and answer["error"]["code"] == "RoleDefinitionDoesNotExist"


# -- metrics ---------------------------------------------------------------------------------------
async def test_metrics_answer_in_azure_monitor_shape(wired_world: World, eg: Any) -> None:
    await make_topic(eg)
    start, end = NOW - timedelta(hours=24), NOW
    url = (f"{topic_id('cfg-a-events')}/providers/Microsoft.Insights/metrics?api-version="
           f"2023-10-01&metricnames={METRIC_NAMES}&timespan={iso_z(start)}/{iso_z(end)}"
           "&interval=PT1H&aggregation=Total")
    status, answer, _ = await rest(eg, "GET", url)
    assert status == 200
    assert answer["interval"] == "PT1H"
    assert answer["namespace"] == "Microsoft.EventGrid/systemTopics"
    assert answer["resourceregion"] == "westeurope"
    assert [v["name"]["value"] for v in answer["value"]] == METRIC_NAMES.split(",")
    for value in answer["value"]:
        assert value["unit"] == "Count"
        data = value["timeseries"][0]["data"]
        assert len(data) == 24 and data[0]["timeStamp"] == iso_z(start)
        assert all(point["total"] == 0.0 for point in data)
    status, answer, _ = await rest(eg, "GET", url.replace("DroppedEventCount", "NoSuchMetric"))
    assert status == 400 and answer["code"] == "BadRequest"
    assert "NoSuchMetric" in answer["message"]


async def test_metrics_split_by_event_subscription_as_azure_monitor_does(
        wired_world: World, eg: Any) -> None:
    """``$filter=EventSubscriptionName eq '*'``: one series per subscription, named in
    ``metadatavalues`` (upper case); a metric without the dimension cannot be split."""
    await make_topic(eg)
    topic = topic_id("cfg-a-events")
    at = NOW - timedelta(hours=2)
    wired_world.metrics.record(topic, "DeliverySuccessCount", at, 3, subscription="to-queue")
    wired_world.metrics.record(topic, "DeliveryAttemptFailCount", at, 2, subscription="old-hook")
    wired_world.metrics.record(topic, "PublishSuccessCount", at, 5)
    start, end = NOW - timedelta(hours=24), NOW
    base = (f"{topic}/providers/Microsoft.Insights/metrics?api-version=2023-10-01"
            f"&timespan={iso_z(start)}/{iso_z(end)}&interval=PT1H&aggregation=Total")
    split = "&$filter=EventSubscriptionName%20eq%20%27*%27"
    status, answer, _ = await rest(
        eg, "GET", f"{base}&metricnames=DeliverySuccessCount,DeliveryAttemptFailCount{split}")
    assert status == 200, answer
    series = {v["name"]["value"]: {
        ts["metadatavalues"][0]["value"]: sum(p["total"] for p in ts["data"])
        for ts in v["timeseries"]} for v in answer["value"]}
    assert series == {"DeliverySuccessCount": {"TO-QUEUE": 3.0},
                      "DeliveryAttemptFailCount": {"OLD-HOOK": 2.0}}
    [meta] = answer["value"][0]["timeseries"][0]["metadatavalues"]
    assert meta["name"]["value"] == "eventsubscriptionname"
    # One subscription only, by name (any case).
    one = "&$filter=EventSubscriptionName%20eq%20%27To-Queue%27"
    status, answer, _ = await rest(eg, "GET", f"{base}&metricnames=DeliverySuccessCount{one}")
    assert status == 200 and len(answer["value"][0]["timeseries"]) == 1
    # Without the filter: one series, every subscription summed.
    status, answer, _ = await rest(eg, "GET", f"{base}&metricnames=DeliverySuccessCount")
    assert [ts["metadatavalues"] for ts in answer["value"][0]["timeseries"]] == [[]]
    # PublishSuccessCount has no such dimension: the split is refused.
    status, answer, _ = await rest(eg, "GET", f"{base}&metricnames=PublishSuccessCount{split}")
    assert status == 400 and answer["code"] == "BadRequest"
    assert "dimension" in answer["message"]


# -- delivery through subscriptions (scenario engine + Azurite) ------------------------------------
def peek(azurite: Azurite, queue: str) -> list[dict[str, Any]]:
    with QueueClient.from_connection_string(azurite.connection_string, queue) as client:
        try:
            texts = [m.content for m in client.peek_messages(max_messages=32)]
        except ResourceNotFoundError:
            return []
    return [json.loads(base64.b64decode(t)) for t in texts]


def configuration(name: str, wiring: str, **behaviour: Any) -> dict[str, Any]:
    return {"name": name, "subscription": "main", "resource_group": RG, "time_zone": "UTC",
            "recur_every": "Day", "duration": "01:00", "start": "now+50m", "wiring": wiring,
            "machines": [{"count": 2, "prefix": name}],
            "behaviour": {"pre_event": "T-35m", "overrun": 0, **behaviour}}


@contextmanager
def play(world: World, azurite: Azurite, *configs: dict[str, Any]
         ) -> Iterator[tuple[ScenarioEngine, str]]:
    """A scenario engine for ``configs`` writing to a new queue: (engine, queue name)."""
    queue = f"q{uuid.uuid4().hex[:10]}"
    data = {"seed": 5, "subscriptions": {"main": SUB},
            "storage_account": {"resource_group": "rg-aumwatch"},
            "configuration": list(configs)}
    sink = QueueSink(azurite.connection_string, queue)
    sink.ensure_queue()
    try:
        yield ScenarioEngine(world, parse_scenario(data), sink), queue
    finally:
        sink.close()


def by_config(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for event in events:
        kind = event.get("eventType") or event.get("type")
        out.setdefault(event["subject"], []).append("pre" if kind == PRE_EVENT_TYPE else "post")
    return out


def finish(clock: ManualClock, engine: ScenarioEngine) -> None:
    clock.advance(timedelta(minutes=16))  # T-34: every pre-event is due
    engine.step()
    clock.advance(timedelta(hours=2))  # every run done, every post-event due
    engine.step()


async def test_events_go_only_through_enabled_subscriptions_of_their_type(
        standin_world: World, standin_clock: ManualClock, azurite: Azurite) -> None:
    with play(standin_world, azurite,
              configuration("c-ok", "ok"),
              configuration("c-ce", "ok", schema="cloudevents"),
              configuration("c-pre", "pre-only"), configuration("c-post", "post-only"),
              configuration("c-notopic", "no-topic"),
              configuration("c-nosub", "missing"),
              configuration("c-disabled", "disabled"),
              configuration("c-awaiting", "awaiting"),
              configuration("c-expired", "expired"),
              configuration("c-other", "other-queue"),
              configuration("c-hook", "webhook")) as (engine, queue):
        finish(standin_clock, engine)
        events = peek(azurite, queue)
        assert by_config(events) == {"c-ok": ["pre", "post"], "c-ce": ["pre", "post"],
                                     "c-pre": ["pre"], "c-post": ["post"]}
        schemas = {e["subject"]: "specversion" in e for e in events}
        assert schemas == {"c-ok": False, "c-ce": True, "c-pre": False, "c-post": False}
        assert by_config(peek(azurite, OTHER_QUEUE)) == {"c-other": ["pre", "post"]}
        eg = standin_world.eventgrid
        hook = eg.topic_for_source(next(c["id"] for c in standin_world.configurations()
                                        if c["name"] == "c-hook"))
        assert hook is not None
        totals = eg.metrics.totals(hook.id)
        assert totals["MatchedEventCount"] == 2 and totals["DeliveryAttemptFailCount"] == 2
        assert totals["DroppedEventCount"] == 2 and totals["DeliverySuccessCount"] == 0
        # The webhook's key never shows in what the topic's subscription reads back as.
        [sub] = eg.subscriptions_of(hook.id)
        assert WEBHOOK_URL not in json.dumps(sub.arm()) and "code=" not in json.dumps(sub.arm())


async def test_deleting_the_subscription_stops_its_events(
        standin_world: World, standin_clock: ManualClock, azurite: Azurite, eg: Any) -> None:
    with play(standin_world, azurite, configuration("c-del", "ok")) as (engine, queue):
        poller = await eg.system_topic_event_subscriptions.begin_delete(
            RG, "c-del-events", "aumwatch-events", polling_interval=0)
        await poller.result()
        finish(standin_clock, engine)
        assert peek(azurite, queue) == []
        totals = standin_world.metrics.totals(topic_id("c-del-events"))
        assert totals["PublishSuccessCount"] == 2 and totals["MatchedEventCount"] == 0
        assert totals["UnmatchedEventCount"] == 2


async def test_a_subscription_made_through_the_sdk_delivers_the_next_event(
        standin_world: World, standin_clock: ManualClock, azurite: Azurite, eg: Any) -> None:
    with play(standin_world, azurite, configuration("c-new", "no-topic")) as (engine, queue):
        source = next(c["id"] for c in standin_world.configurations())
        await make_topic(eg, "c-new-topic", source=source)
        await make_subscription(eg, "c-new-topic", "to-watched",
                                queue_subscription(queue, [PRE_EVENT_TYPE]))
        finish(standin_clock, engine)
        assert by_config(peek(azurite, queue)) == {"c-new": ["pre"]}


def admin(server: StandInServer, method: str, body: Any = None) -> Any:
    context = ssl.create_default_context(cafile=server.ca_file)
    request = urllib.request.Request(
        f"{server.endpoint}/_sim/broken-endpoints", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {server.token}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        return json.loads(response.read())


async def test_a_broken_endpoint_shows_as_failed_and_dead_lettered_deliveries(
        standin_world: World, standin_clock: ManualClock, azurite: Azurite, eg: Any,
        standin: StandInServer) -> None:
    with play(standin_world, azurite, configuration("c-brk", "ok"),
              configuration("c-fail", "failing"),
              configuration("c-drop", "dropping")) as (engine, queue):
        sub_id = f"{topic_id('c-brk-events')}/eventSubscriptions/aumwatch-events"
        assert admin(standin, "POST", {"event_subscription": sub_id, "broken": True}) == {
            "broken": sorted([sub_id, f"{topic_id('c-fail-events')}/eventSubscriptions/"
                                      "aumwatch-events",
                              f"{topic_id('c-drop-events')}/eventSubscriptions/"
                              "aumwatch-events"])}
        start = standin_clock.now()
        finish(standin_clock, engine)
        assert peek(azurite, queue) == []
        url = (f"{topic_id('{}')}/providers/Microsoft.Insights/metrics?api-version=2023-10-01"
               f"&metricnames={METRIC_NAMES}&timespan={iso_z(start - timedelta(hours=23))}/"
               f"{iso_z(standin_clock.now())}&interval=PT1H&aggregation=Total")

        async def totals(topic: str) -> dict[str, float]:
            status, answer, _ = await rest(eg, "GET", url.replace("{}", topic))
            assert status == 200
            return {v["name"]["value"]: sum(p["total"] for p in v["timeseries"][0]["data"])
                    for v in answer["value"]}

        # c-brk has no dead-letter destination (dropped); c-fail has one (dead-lettered).
        assert await totals("c-brk-events") == {
            "PublishSuccessCount": 2, "MatchedEventCount": 2, "DeliverySuccessCount": 0,
            "DeliveryAttemptFailCount": 2, "DroppedEventCount": 2, "DeadLetteredCount": 0}
        fail = await totals("c-fail-events")
        assert fail["DeliveryAttemptFailCount"] == 2 and fail["DeadLetteredCount"] == 2
        assert fail["DroppedEventCount"] == 0 and fail["DeliverySuccessCount"] == 0
        assert (await totals("c-drop-events"))["DroppedEventCount"] == 2
        # Mended through the admin endpoint: the next day's events arrive.
        admin(standin, "DELETE")
        assert admin(standin, "GET") == {"broken": []}
        standin_clock.advance(timedelta(hours=22))
        engine.step()
        finish(standin_clock, engine)
        assert sorted(by_config(peek(azurite, queue))) == ["c-brk", "c-drop", "c-fail"]


async def test_delivery_with_the_topic_identity_needs_the_queue_sender_role(
        standin_world: World, standin_clock: ManualClock, azurite: Azurite, eg: Any) -> None:
    with play(standin_world, azurite, configuration("c-id", "identity"),
              configuration("c-norole", "identity-no-role")) as (engine, queue):
        standin_clock.advance(timedelta(minutes=16))
        engine.step()
        assert by_config(peek(azurite, queue)) == {"c-id": ["pre"]}
        norole = standin_world.metrics.totals(topic_id("c-norole-events"))
        assert norole["DeliveryAttemptFailCount"] == 1 and norole["DroppedEventCount"] == 1
        # Granting the role (at the resource group, a parent scope) lets the post-event through.
        topic = await eg.system_topics.get(RG, "c-norole-events")
        scope = f"/subscriptions/{SUB}/resourceGroups/rg-aumwatch"
        role = (f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
                f"{ROLE_QUEUE_SENDER}")
        status, _, _ = await rest(
            eg, "PUT", f"{scope}/providers/Microsoft.Authorization/roleAssignments/"
                       f"{uuid.uuid4()}?api-version=2022-04-01",
            {"properties": {"roleDefinitionId": role,
                            "principalId": topic.identity.principal_id}})
        assert status == 201
        standin_clock.advance(timedelta(hours=2))
        engine.step()
        assert by_config(peek(azurite, queue)) == {"c-id": ["pre", "post"], "c-norole": ["post"]}


# -- ready-made wirings, read back through the SDK ----------------------------------------------
@pytest.mark.parametrize("wiring", WIRINGS)
async def test_every_ready_made_wiring_reads_back_through_the_sdk(
        wired_world: World, eg: Any, wiring: str) -> None:
    config = config_object("cfg-a", RG)
    topic, sub = wired_world.eventgrid.wire(config["id"], wiring, queue="aum-events",
                                            account_id=ACCOUNT)
    topics = [t async for t in eg.system_topics.list_by_subscription()]
    if wiring == "no-topic":
        assert topics == [] and topic is None and sub is None
        return
    assert [t.id for t in topics] == [topic] and topics[0].source == config["id"]
    subs = [s async for s in
            eg.system_topic_event_subscriptions.list_by_system_topic(RG, "cfg-a-events")]
    if wiring == "missing":
        assert subs == [] and sub is None
        return
    [got] = subs
    assert got.id == sub and got.name == "aumwatch-events"
    expected_state = {"disabled": "Failed", "awaiting": "AwaitingManualAction"}.get(
        wiring, "Succeeded")
    assert got.provisioning_state == expected_state
    types = {"pre-only": [PRE_EVENT_TYPE], "post-only": [POST_EVENT_TYPE]}.get(
        wiring, [PRE_EVENT_TYPE, POST_EVENT_TYPE])
    assert got.filter.included_event_types == types
    dest = (got.delivery_with_resource_identity.destination if wiring.startswith("identity")
            else got.destination)
    kind = {"webhook": "WebHook", "function": "AzureFunction"}.get(wiring, "StorageQueue")
    assert dest.endpoint_type == kind
    if kind == "StorageQueue":
        assert dest.resource_id == ACCOUNT
        assert dest.queue_name == (OTHER_QUEUE if wiring == "other-queue" else "aum-events")
    if kind == "WebHook":
        assert dest.endpoint_url is None and "code=" not in dest.endpoint_base_url
    assert (got.dead_letter_destination is not None) == (wiring == "failing")
    assert (got.expiration_time_utc is not None) == (wiring == "expired")
    broken = wired_world.eventgrid.broken()
    assert broken == ([sub] if wiring in ("failing", "dropping") else [])
