"""WiringSource: one topics query per refresh, the cache, per-part errors, the watched queue.

Unit level: a fake Resource Graph runner and fake Event Grid clients (duck-typed like the
SDK's aio client: a pager of models with ``serialize``, and ``_send_request``). The real
SDK clients against the stand-in are in tests/integration/test_wiring.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus

import pytest

from services.azure.eventgrid import (
    TOPICS_QUERY,
    WiringSource,
    metrics_params,
    watched_queue,
)
from services.azure.resourcegraph import QueryResult
from services.domain.clock import ManualClock
from services.domain.errors import ServiceError
from services.domain.model import Configuration
from services.domain.wiring import (
    HEALTH_METRICS,
    QueueTarget,
    Verdict,
    account_name_from_url,
    queue_account_name,
)
from services.settings import Settings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-ops/providers"
ACCOUNT = f"{RG}/Microsoft.Storage/storageAccounts/opsqueue"
WATCHED = QueueTarget("opsqueue", "aum-events")
PRE = "Microsoft.Maintenance.PreMaintenanceEvent"
POST = "Microsoft.Maintenance.PostMaintenanceEvent"


def config(name: str) -> Configuration:
    return Configuration(id=f"{RG}/Microsoft.Maintenance/maintenanceConfigurations/{name}",
                         name=name, resource_group="rg-ops", subscription_id=SUB)


def topic_row(name: str) -> dict[str, Any]:
    return {"id": f"{RG}/Microsoft.EventGrid/systemTopics/{name}-topic".lower(),
            "name": f"{name}-topic", "resourceGroup": "rg-ops", "subscriptionId": SUB,
            "location": "westeurope",
            "properties": {"source": config(name).id.lower(), "provisioningState": "Succeeded",
                           "topicType": "Microsoft.Maintenance.MaintenanceConfigurations"}}


def queue_sub(name: str, types: list[str] | None = None) -> dict[str, Any]:
    return {"name": name, "properties": {
        "provisioningState": "Succeeded", "eventDeliverySchema": "EventGridSchema",
        "filter": {"includedEventTypes": types if types is not None else [PRE, POST]},
        "destination": {"endpointType": "StorageQueue",
                        "properties": {"resourceId": ACCOUNT, "queueName": "aum-events"}}}}


def metrics_body(**totals: int) -> dict[str, Any]:
    return {"value": [{"name": {"value": name}, "timeseries": [
        {"data": [{"timeStamp": "2026-12-01T10:00:00Z", "total": totals.get(name, 0)}]}]}
        for name in HEALTH_METRICS]}


class FakeRunner:
    """Counts topics queries; answers with the rows it holds (or raises ``error``)."""

    def __init__(self, clock: ManualClock, rows: list[dict[str, Any]]) -> None:
        self.clock = clock
        self.rows = rows
        self.queries: list[str] = []
        self.error: Exception | None = None

    async def query(self, query: str, *, what: str = "") -> QueryResult:
        self.queries.append(query)
        if self.error is not None:
            raise self.error
        return QueryResult(tuple(self.rows), self.clock.now(), None, 1)


@dataclass
class FakeModel:
    body: dict[str, Any]

    def serialize(self, keep_readonly: bool = False) -> dict[str, Any]:
        assert keep_readonly
        return self.body


@dataclass
class FakeResponse:
    status_code: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    async def read(self) -> bytes:
        return self.text().encode()

    def text(self) -> str:
        return json.dumps(self.body) if self.body is not None else ""


class FakeSubscriptions:
    def __init__(self, world: FakeWorld) -> None:
        self.world = world

    def list_by_system_topic(self, resource_group: str, topic: str) -> AsyncIterator[FakeModel]:
        self.world.calls.append(("list", topic))
        failure = self.world.list_errors.get(topic)

        async def pages() -> AsyncIterator[FakeModel]:
            if failure is not None:
                raise failure
            for body in self.world.subscriptions.get(topic, []):
                yield FakeModel(body)

        return pages()


class FakeClient:
    def __init__(self, world: FakeWorld, subscription_id: str) -> None:
        self.world = world
        self.subscription_id = subscription_id
        self.system_topic_event_subscriptions = FakeSubscriptions(world)
        self.closed = False

    async def _send_request(self, request: Any) -> FakeResponse:
        self.world.calls.append(("metrics", request.url))
        self.world.requests.append(request)
        if "EventSubscriptionName" in unquote_plus(request.url):
            return self.world.split_response
        return self.world.metrics_response

    async def close(self) -> None:
        self.closed = True


@dataclass
class FakeWorld:
    subscriptions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    list_errors: dict[str, Exception] = field(default_factory=dict)
    metrics_response: FakeResponse = field(
        default_factory=lambda: FakeResponse(200, metrics_body(DeliverySuccessCount=4)))
    #: The answer to the request split per event subscription: by default, as a service
    #: that cannot split answers (the verdict then rests on the topic's totals).
    split_response: FakeResponse = field(default_factory=lambda: FakeResponse(
        400, {"code": "BadRequest", "message": "dimension not supported"}))
    calls: list[tuple[str, str]] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    clients: list[FakeClient] = field(default_factory=list)

    def factory(self, subscription_id: str) -> FakeClient:
        client = FakeClient(self, subscription_id)
        self.clients.append(client)
        return client


def make_source(names: list[str], world: FakeWorld,
                refresh: timedelta = timedelta(minutes=5)) -> tuple[WiringSource, FakeRunner]:
    clock = ManualClock(NOW)
    runner = FakeRunner(clock, [topic_row(n) for n in names])
    source = WiringSource(runner, world.factory, watched=WATCHED,  # type: ignore[arg-type]
                          clock=clock, refresh=refresh)
    return source, runner


async def test_one_topics_query_for_any_number_of_configurations() -> None:
    names = [f"mc-{i:03}" for i in range(40)]
    world = FakeWorld({f"{n}-topic": [queue_sub("to-queue")] for n in names})
    source, runner = make_source(names, world)
    snapshot = await source.fetch([config(n) for n in names])
    assert runner.queries == [TOPICS_QUERY]
    assert len(snapshot.wirings) == 40
    assert {w.verdict for w in snapshot.wirings.values()} == {Verdict.OK}
    # One client per Azure subscription id, closed after the read.
    assert len(world.clients) == 1 and world.clients[0].closed


async def test_second_fetch_within_refresh_reads_nothing() -> None:
    world = FakeWorld({"mc-a-topic": [queue_sub("q")]})
    source, runner = make_source(["mc-a"], world)
    await source.fetch([config("mc-a")])
    calls = len(world.calls)
    source.clock.advance(timedelta(minutes=4, seconds=59))  # type: ignore[attr-defined]
    again = await source.fetch([config("mc-a"), config("mc-b")])
    assert len(runner.queries) == 1 and len(world.calls) == calls
    # A configuration not asked for the first time is judged from the cached topics.
    assert again.wirings[config("mc-b").id.lower()].verdict is Verdict.MISSING
    source.clock.advance(timedelta(seconds=1))  # type: ignore[attr-defined]
    await source.fetch([config("mc-a")])
    assert len(runner.queries) == 2


async def test_force_reads_again() -> None:
    world = FakeWorld({"mc-a-topic": [queue_sub("q")]})
    source, runner = make_source(["mc-a"], world)
    await source.fetch([config("mc-a")])
    await source.fetch([config("mc-a")], force=True)
    assert len(runner.queries) == 2


async def test_keys_are_lower_case_configuration_ids() -> None:
    world = FakeWorld({"MC-Web-topic": [queue_sub("q")]})
    source, _ = make_source(["MC-Web"], world)
    snapshot = await source.fetch([config("MC-Web")])
    assert list(snapshot.wirings) == [config("MC-Web").id.lower()]
    assert snapshot.get(config("MC-Web").id.upper()) is not None
    assert snapshot.fetched_at == NOW and snapshot.error is None


async def test_failed_subscriptions_read_is_a_part_error_not_a_crash() -> None:
    world = FakeWorld({"mc-b-topic": [queue_sub("q")]},
                      list_errors={"mc-a-topic": ServiceError("forbidden", "HTTP 403 denied")})
    source, _ = make_source(["mc-a", "mc-b"], world)
    snapshot = await source.fetch([config("mc-a"), config("mc-b")])
    broken = snapshot.wirings[config("mc-a").id.lower()]
    assert broken.error == "HTTP 403 denied"
    assert broken.verdict is Verdict.MISSING
    assert "could not be read" in broken.reason and "no event subscription" not in broken.reason
    assert snapshot.wirings[config("mc-b").id.lower()].verdict is Verdict.OK
    assert snapshot.error is None


async def test_a_part_read_before_is_kept_and_marked_stale() -> None:
    world = FakeWorld({"mc-a-topic": [queue_sub("q")]})
    source, _ = make_source(["mc-a"], world)
    await source.fetch([config("mc-a")])
    world.list_errors["mc-a-topic"] = ServiceError("server", "HTTP 503 busy")
    source.clock.advance(timedelta(minutes=5))  # type: ignore[attr-defined]
    wiring = (await source.fetch([config("mc-a")])).wirings[config("mc-a").id.lower()]
    assert wiring.verdict is Verdict.OK
    assert wiring.error is not None and "HTTP 503 busy" in wiring.error
    assert "read at 12:00:00Z" in wiring.error


async def test_failing_metrics_keep_the_structural_verdict_with_an_error() -> None:
    world = FakeWorld({"mc-a-topic": [queue_sub("q", [PRE])]})
    world.metrics_response = FakeResponse(
        500, {"error": {"code": "InternalError", "message": "metrics backend down"}})
    source, _ = make_source(["mc-a"], world)
    wiring = (await source.fetch([config("mc-a")])).wirings[config("mc-a").id.lower()]
    assert wiring.verdict is Verdict.PARTIAL
    assert wiring.health is None
    assert wiring.error is not None
    assert "HTTP 500" in wiring.error and "metrics backend down" in wiring.error


async def test_metrics_error_in_azure_monitors_flat_shape() -> None:
    world = FakeWorld({"mc-a-topic": [queue_sub("q")]})
    world.metrics_response = FakeResponse(403, {"code": "AuthorizationFailed",
                                                "message": "no metrics read"})
    source, _ = make_source(["mc-a"], world)
    wiring = (await source.fetch([config("mc-a")])).wirings[config("mc-a").id.lower()]
    assert wiring.verdict is Verdict.OK
    assert wiring.error is not None
    assert "HTTP 403" in wiring.error and "AuthorizationFailed: no metrics read" in wiring.error


async def test_metrics_failures_make_failing() -> None:
    world = FakeWorld({"mc-a-topic": [queue_sub("q")]})
    world.metrics_response = FakeResponse(200, metrics_body(DeliveryAttemptFailCount=3,
                                                            DeadLetteredCount=1))
    source, _ = make_source(["mc-a"], world)
    wiring = (await source.fetch([config("mc-a")])).wirings[config("mc-a").id.lower()]
    assert wiring.verdict is Verdict.FAILING
    assert wiring.health is not None and wiring.health.failed == 3
    assert wiring.health.since == NOW - timedelta(hours=24) and wiring.health.until == NOW


async def test_metrics_request_shape() -> None:
    world = FakeWorld({"mc-a-topic": [queue_sub("q")]})
    source, _ = make_source(["mc-a"], world)
    await source.fetch([config("mc-a")])
    request, split = world.requests
    assert request.method == "GET" and split.method == "GET"
    topic_id = topic_row("mc-a")["id"]
    assert request.url.split("?")[0] == f"{topic_id}/providers/Microsoft.Insights/metrics"
    assert metrics_params(NOW - timedelta(hours=24), NOW) == {
        "api-version": "2023-10-01", "metricnames": ",".join(HEALTH_METRICS),
        "timespan": "2026-11-30T12:00:00Z/2026-12-01T12:00:00Z", "interval": "PT1H",
        "aggregation": "Total"}
    assert "metricnames=PublishSuccessCount" in request.url
    # The second request splits the delivery metrics per event subscription.
    assert metrics_params(NOW - timedelta(hours=24), NOW, per_subscription=True) == {
        "api-version": "2023-10-01",
        "metricnames": "MatchedEventCount,DeliverySuccessCount,DeliveryAttemptFailCount,"
                       "DroppedEventCount,DeadLetteredCount",
        "timespan": "2026-11-30T12:00:00Z/2026-12-01T12:00:00Z", "interval": "PT1H",
        "aggregation": "Total", "$filter": "EventSubscriptionName eq '*'"}
    assert "$filter=EventSubscriptionName eq '*'" in unquote_plus(split.url)


async def test_failures_are_judged_per_subscription_when_the_metrics_split() -> None:
    # Two subscriptions: the queue's delivered, an old webhook failed. The topic's totals
    # hold the webhook's failures; the split says they are not the queue's.
    hook = {"name": "old-hook", "properties": {
        "provisioningState": "Succeeded",
        "destination": {"endpointType": "WebHook",
                        "properties": {"endpointBaseUrl": "https://h.example/x"}}}}
    world = FakeWorld({"mc-a-topic": [queue_sub("q"), hook]})
    world.metrics_response = FakeResponse(200, metrics_body(DeliverySuccessCount=2,
                                                            DeliveryAttemptFailCount=3))
    split = {"value": [{"name": {"value": name}, "timeseries": [
        {"metadatavalues": [{"name": {"value": "eventsubscriptionname"}, "value": sub}],
         "data": [{"timeStamp": "2026-12-01T10:00:00Z", "total": total}]}
        for sub, total in series]}
        for name, series in (("DeliverySuccessCount", [("Q", 2)]),
                             ("DeliveryAttemptFailCount", [("OLD-HOOK", 3)]))]}
    world.split_response = FakeResponse(200, split)
    source, _ = make_source(["mc-a"], world)
    wiring = (await source.fetch([config("mc-a")])).wirings[config("mc-a").id.lower()]
    assert wiring.verdict is Verdict.OK, wiring.reason
    assert wiring.health is not None and wiring.health.failed == 3
    assert wiring.health.of("q") is not None and wiring.health.of("q").delivered == 2
    # A later read of the same counts: only the topic's period moved (the dashboard redraws
    # nothing for an unchanged wiring).
    source.clock.advance(timedelta(minutes=5))  # type: ignore[attr-defined]
    again = (await source.fetch([config("mc-a")], force=True)).wirings[config("mc-a").id.lower()]
    assert again.health is not None and again.health.since != wiring.health.since
    assert again.health.by_subscription == wiring.health.by_subscription


async def test_no_metrics_read_for_a_topic_without_subscriptions() -> None:
    world = FakeWorld({})
    source, _ = make_source(["mc-a"], world)
    wiring = (await source.fetch([config("mc-a")])).wirings[config("mc-a").id.lower()]
    assert wiring.verdict is Verdict.MISSING and wiring.error is None
    assert [kind for kind, _ in world.calls] == ["list"]


async def test_throttled_part_is_not_asked_before_retry_after() -> None:
    world = FakeWorld({"mc-a-topic": [queue_sub("q")]})
    world.metrics_response = FakeResponse(429, {"error": {"code": "TooManyRequests",
                                                          "message": "slow down"}},
                                          {"Retry-After": "3600"})
    source, _ = make_source(["mc-a"], world, refresh=timedelta(minutes=5))
    first = (await source.fetch([config("mc-a")])).wirings[config("mc-a").id.lower()]
    assert first.error is not None and "HTTP 429" in first.error
    calls = len(world.calls)
    source.clock.advance(timedelta(minutes=5))  # type: ignore[attr-defined]
    second = (await source.fetch([config("mc-a")])).wirings[config("mc-a").id.lower()]
    assert second.error is not None and "throttled" in second.error
    # Everything in that subscription waits for Retry-After (the topics query does not).
    assert len(world.calls) == calls


async def test_failed_topics_query_fails_the_snapshot_and_retries_after_a_minute() -> None:
    world = FakeWorld({"mc-a-topic": [queue_sub("q")]})
    source, runner = make_source(["mc-a"], world)
    good = await source.fetch([config("mc-a")])
    runner.error = ServiceError("forbidden", "Event Grid system topics query failed (HTTP 403)")
    source.clock.advance(timedelta(minutes=5))  # type: ignore[attr-defined]
    bad = await source.fetch([config("mc-a")])
    assert bad.error == "Event Grid system topics query failed (HTTP 403)"
    # The last good wirings stay, with when they were read.
    assert bad.fetched_at == good.fetched_at
    assert bad.wirings[config("mc-a").id.lower()].verdict is Verdict.OK
    source.clock.advance(timedelta(seconds=59))  # type: ignore[attr-defined]
    await source.fetch([config("mc-a")])
    assert len(runner.queries) == 2
    source.clock.advance(timedelta(seconds=1))  # type: ignore[attr-defined]
    runner.error = None
    healed = await source.fetch([config("mc-a")])
    assert len(runner.queries) == 3 and healed.error is None


async def test_first_read_failing_gives_an_empty_snapshot_with_the_error() -> None:
    source, runner = make_source(["mc-a"], FakeWorld())
    runner.error = RuntimeError("boom")
    snapshot = await source.fetch([config("mc-a")])
    assert snapshot.wirings == {} and snapshot.fetched_at is None
    assert snapshot.error is not None and "boom" in snapshot.error


async def test_webhook_key_never_kept() -> None:
    from azure.mgmt.eventgrid.models import (
        EventSubscription,
        WebHookEventSubscriptionDestination,
    )

    secret = "https://hooks.example.com/api/x?code=S3CRET-KEY"
    model = EventSubscription(destination=WebHookEventSubscriptionDestination(endpoint_url=secret))
    body = model.serialize(keep_readonly=True) | {"name": "hook"}
    body["properties"]["provisioningState"] = "Succeeded"
    world = FakeWorld({"mc-a-topic": [body]})
    source, _ = make_source(["mc-a"], world)
    wiring = (await source.fetch([config("mc-a")])).wirings[config("mc-a").id.lower()]
    text = json.dumps(wiring.to_json())
    assert "S3CRET" not in text and "/api/x" not in text
    assert wiring.subscriptions[0].endpoint == "hooks.example.com"
    assert wiring.verdict is Verdict.OTHER_ENDPOINT


@pytest.mark.parametrize(("url", "account"), [
    ("https://opsqueue.queue.core.windows.net", "opsqueue"),
    ("https://opsqueue.queue.core.windows.net/", "opsqueue"),
    ("http://127.0.0.1:10001/devstoreaccount1", "devstoreaccount1"),
    ("http://localhost:10001/devstoreaccount1/", "devstoreaccount1"),
    ("http://[::1]:10001/devstoreaccount1", "devstoreaccount1"),
    ("http://127.0.0.1:10001", None),
    ("not a url", None),
    # An emulator behind a host name (docker compose): the account is the path's first
    # segment, as `setup events` reads it, not the host's first label ("azurite").
    ("http://azurite:10001/devstoreaccount1", "devstoreaccount1"),
    ("https://opsqueue.privatelink.queue.core.windows.net", "opsqueue"),
])
def test_account_name_from_url(url: str, account: str | None) -> None:
    assert account_name_from_url(url) == account


def test_watched_queue_and_setup_events_read_the_same_account() -> None:
    # One function for both: a verdict must judge the queue `setup events` wires.
    settings = Settings(queue_name="aum-events",
                        queue_account_url="http://azurite:10001/devstoreaccount1")
    assert watched_queue(settings) == QueueTarget("devstoreaccount1", "aum-events")
    assert queue_account_name(None, settings.queue_account_url) == "devstoreaccount1"


def test_watched_queue_prefers_the_connection_string() -> None:
    settings = Settings(queue_name="aum-events",
                        queue_account_url="https://other.queue.core.windows.net",
                        queue_connection_string="DefaultEndpointsProtocol=http;"
                        "accountname=devstoreaccount1;AccountKey=k;QueueEndpoint=http://x")
    assert watched_queue(settings) == QueueTarget("devstoreaccount1", "aum-events")
    assert watched_queue(Settings(queue_name="q", queue_account_url="https://acct.queue.x")) \
        == QueueTarget("acct", "q")
    assert watched_queue(Settings(queue_account_url="https://a.queue.x")) is None
    assert watched_queue(Settings(queue_name="q")) is None


async def test_a_part_that_hangs_times_out_as_a_part_error() -> None:
    import asyncio

    world = FakeWorld({"mc-a-topic": [queue_sub("q")], "mc-b-topic": [queue_sub("q")]})

    original = FakeSubscriptions.list_by_system_topic

    def slow_list(self: FakeSubscriptions, resource_group: str,
                  topic: str) -> AsyncIterator[FakeModel]:
        if topic != "mc-a-topic":
            return original(self, resource_group, topic)

        async def pages() -> AsyncIterator[FakeModel]:
            await asyncio.sleep(30)  # far beyond the part's timeout
            yield FakeModel(queue_sub("never"))

        return pages()

    FakeSubscriptions.list_by_system_topic = slow_list  # type: ignore[method-assign]
    try:
        source, _ = make_source(["mc-a", "mc-b"], world)
        source.part_timeout = timedelta(seconds=0.05)
        snapshot = await source.fetch([config("mc-a"), config("mc-b")])
    finally:
        FakeSubscriptions.list_by_system_topic = original  # type: ignore[method-assign]
    hung = snapshot.wirings[config("mc-a").id.lower()]
    assert hung.error == "reading the event subscriptions of system topic mc-a-topic timed out"
    assert snapshot.wirings[config("mc-b").id.lower()].verdict is Verdict.OK
