"""The Event Grid wiring model: parsing the REST shapes and the six verdicts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.domain.wiring import (
    DeliveryHealth,
    QueueTarget,
    Verdict,
    missing_pre_explanation,
    parse_metrics,
    parse_subscription,
    parse_subscription_metrics,
    parse_topic,
    webhook_host,
    wire,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-ops/providers"
CFG = f"{RG}/Microsoft.Maintenance/maintenanceConfigurations/mc-web"
ACCOUNT = f"{RG}/Microsoft.Storage/storageAccounts/opsqueue"
TOPIC_ID = f"{RG}/Microsoft.EventGrid/systemTopics/mc-web-topic"
TOPIC_TYPE = "Microsoft.Maintenance.MaintenanceConfigurations"
WATCHED = QueueTarget(account_name="OpsQueue", queue_name="aum-events")
PRE = "Microsoft.Maintenance.PreMaintenanceEvent"
POST = "Microsoft.Maintenance.PostMaintenanceEvent"


def topic_row(**overrides: Any) -> dict[str, Any]:
    row = {
        "id": TOPIC_ID, "name": "mc-web-topic", "type": "microsoft.eventgrid/systemtopics",
        "resourceGroup": "rg-ops", "subscriptionId": SUB, "location": "westeurope",
        "identity": {"type": "SystemAssigned", "principalId": "p-1"},
        "properties": {"source": CFG, "topicType": TOPIC_TYPE,
                       "provisioningState": "Succeeded"},
    }
    row.update(overrides)
    return row


def queue_sub(name: str = "to-queue", types: list[str] | None = None, *, queue: str = "aum-events",
              account: str = ACCOUNT, state: str = "Succeeded", schema: str = "EventGridSchema",
              **props: Any) -> dict[str, Any]:
    return {
        "id": f"{TOPIC_ID}/eventSubscriptions/{name}", "name": name,
        "properties": {
            "destination": {"endpointType": "StorageQueue",
                            "properties": {"resourceId": account, "queueName": queue,
                                           "queueMessageTimeToLiveInSeconds": 604800}},
            "filter": {"includedEventTypes": types if types is not None else [PRE, POST]},
            "eventDeliverySchema": schema, "provisioningState": state, **props,
        },
    }


def verdict_of(subs: list[dict[str, Any]], health: DeliveryHealth | None = None,
               topic: dict[str, Any] | None = None) -> Verdict:
    parsed_topic = parse_topic(topic or topic_row())
    return wire(configuration_id=CFG, configuration_name="mc-web", topic=parsed_topic,
                subscriptions=[parse_subscription(s) for s in subs], health=health,
                watched=WATCHED, now=NOW).verdict


def test_a_topic_row_of_a_maintenance_configuration_is_read() -> None:
    topic = parse_topic(topic_row())
    assert topic is not None
    assert (topic.name, topic.resource_group) == ("mc-web-topic", "rg-ops")
    assert topic.subscription_id == SUB
    assert topic.source_key == CFG.lower()
    assert topic.principal_id == "p-1"


def test_a_topic_of_another_type_is_not_a_configurations_topic() -> None:
    row = topic_row(properties={"source": ACCOUNT,
                                "topicType": "Microsoft.Storage.StorageAccounts"})
    assert parse_topic(row) is None


def test_every_verdict() -> None:
    assert verdict_of([queue_sub()]) is Verdict.OK
    assert verdict_of([]) is Verdict.MISSING
    assert wire(configuration_id=CFG, configuration_name="mc-web", topic=None, watched=WATCHED,
                now=NOW).verdict is Verdict.MISSING
    assert verdict_of([queue_sub(types=[PRE])]) is Verdict.PARTIAL
    assert verdict_of([queue_sub(types=[POST])]) is Verdict.PARTIAL
    assert verdict_of([queue_sub(queue="someone-elses")]) is Verdict.OTHER_ENDPOINT
    assert verdict_of([queue_sub(state="Failed")]) is Verdict.DISABLED
    expired = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
    assert verdict_of([queue_sub(expirationTimeUtc=expired)]) is Verdict.DISABLED
    assert verdict_of([queue_sub()], DeliveryHealth(delivered=3, failed=2)) is Verdict.FAILING
    assert verdict_of([queue_sub()], DeliveryHealth(delivered=3, dropped=1)) is Verdict.FAILING
    assert verdict_of([queue_sub()], DeliveryHealth(delivered=3)) is Verdict.OK


def test_pre_and_post_from_two_subscriptions_is_ok() -> None:
    assert verdict_of([queue_sub("pre", [PRE]), queue_sub("post", [POST])]) is Verdict.OK


def test_no_type_filter_means_both_types() -> None:
    sub = queue_sub()
    del sub["properties"]["filter"]
    assert parse_subscription(sub).event_types == ("pre", "post")
    assert verdict_of([sub]) is Verdict.OK


def test_the_watched_queue_matches_by_account_name_and_queue_case_insensitively() -> None:
    assert verdict_of([queue_sub(queue="AUM-Events", account=ACCOUNT.upper())]) is Verdict.OK
    other_account = ACCOUNT.replace("opsqueue", "opsqueue2")
    assert verdict_of([queue_sub(account=other_account)]) is Verdict.OTHER_ENDPOINT


def test_structural_verdicts_come_before_failing() -> None:
    bad = DeliveryHealth(failed=10)
    assert verdict_of([queue_sub(types=[PRE])], bad) is Verdict.PARTIAL
    assert verdict_of([queue_sub(queue="x")], bad) is Verdict.OTHER_ENDPOINT


def test_failing_says_when_the_topics_counts_include_other_subscriptions() -> None:
    # The metrics are per topic: a broken webhook beside the queue's subscription makes the
    # topic fail, and the reason must not let that pass for the watched queue's failures.
    hook = {"name": "hook", "properties": {
        "destination": {"endpointType": "WebHook",
                        "properties": {"endpointBaseUrl": "https://h.example/x"}},
        "provisioningState": "Succeeded"}}
    wiring = wire(configuration_id=CFG, configuration_name="mc-web",
                  topic=parse_topic(topic_row()),
                  subscriptions=[parse_subscription(queue_sub()), parse_subscription(hook)],
                  health=DeliveryHealth(failed=2), watched=WATCHED, now=NOW)
    assert wiring.verdict is Verdict.FAILING
    assert "other subscription hook" in wiring.reason
    alone = wire(configuration_id=CFG, configuration_name="mc-web",
                 topic=parse_topic(topic_row()), subscriptions=[parse_subscription(queue_sub())],
                 health=DeliveryHealth(failed=2), watched=WATCHED, now=NOW)
    assert "other subscription" not in alone.reason


def test_a_webhook_keeps_only_its_host() -> None:
    secret = "code=SuperSecretKey123"
    sub = {
        "name": "hook",
        "properties": {"destination": {"endpointType": "WebHook", "properties": {
            "endpointUrl": f"https://func.example.net:8443/api/hook?{secret}",
            "endpointBaseUrl": "https://func.example.net:8443/api/hook"}},
            "provisioningState": "Succeeded"},
    }
    parsed = parse_subscription(sub)
    assert parsed.endpoint_type == "webhook"
    assert parsed.endpoint == "func.example.net:8443"
    assert "SuperSecret" not in json.dumps(parsed.to_json())
    assert "/api/hook" not in json.dumps(parsed.to_json())
    assert webhook_host("not a url") == ""
    assert webhook_host("https://user:pw@h.example/x?k=1") == "h.example"


def test_delivery_with_the_topics_identity_is_read() -> None:
    sub = queue_sub()
    dest = sub["properties"].pop("destination")
    sub["properties"]["deliveryWithResourceIdentity"] = {"identity": {"type": "SystemAssigned"},
                                                         "destination": dest}
    parsed = parse_subscription(sub)
    assert parsed.with_identity and parsed.endpoint == f"{ACCOUNT}/queues/aum-events"
    assert verdict_of([sub]) is Verdict.OK


def test_schema_endpoint_types_and_details() -> None:
    sub = queue_sub(schema="CloudEventSchemaV1_0",
                    retryPolicy={"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440},
                    deadLetterDestination={"endpointType": "StorageBlob", "properties": {
                        "resourceId": ACCOUNT, "blobContainerName": "dead"}})
    parsed = parse_subscription(sub)
    assert parsed.schema == "cloudevents"
    assert parsed.retry == "30 attempts, 1440 min"
    assert parsed.dead_letter == f"{ACCOUNT}/blobServices/default/containers/dead"
    fn = parse_subscription({"name": "fn", "properties": {"destination": {
        "endpointType": "AzureFunction", "properties": {"resourceId": "/x/functions/f"}}}})
    assert (fn.endpoint_type, fn.endpoint) == ("azurefunction", "/x/functions/f")
    hub = parse_subscription({"name": "hub", "properties": {"destination": {
        "endpointType": "EventHub", "properties": {"resourceId": "/x/eventhubs/h"}}}})
    assert (hub.endpoint_type, hub.endpoint) == ("other", "/x/eventhubs/h")


def test_metrics_totals() -> None:
    body = {"value": [
        {"name": {"value": "DeliverySuccessCount"}, "timeseries": [
            {"data": [{"timeStamp": "2026-12-01T10:00:00Z", "total": 3.0},
                      {"timeStamp": "2026-12-01T11:00:00Z"}]}]},
        {"name": {"value": "DeliveryAttemptFailCount"}, "timeseries": [
            {"data": [{"total": 2.0}, {"total": 1.0}]}]},
        {"name": {"value": "DeadLetteredCount"}, "timeseries": []},
    ]}
    health = parse_metrics(body)
    assert (health.delivered, health.failed, health.dropped, health.dead_lettered) == (3, 3, 0, 0)
    assert health.failing


def test_the_contract_keys() -> None:
    w = wire(configuration_id=CFG, configuration_name="mc-web", topic=parse_topic(topic_row()),
             subscriptions=[parse_subscription(queue_sub())], health=DeliveryHealth(delivered=1),
             watched=WATCHED, now=NOW)
    out = w.to_json()
    assert list(out)[:6] == ["configuration_id", "configuration_name", "verdict", "system_topic",
                             "subscriptions", "health"]
    assert out["verdict"] == "ok" and out["system_topic"] == TOPIC_ID
    assert {"name", "event_types", "schema", "endpoint_type", "endpoint", "state"} <= set(
        out["subscriptions"][0])
    assert out["subscriptions"][0]["event_types"] == ["pre", "post"]
    assert {"delivered", "failed", "dropped", "dead_lettered"} <= set(out["health"])


@pytest.mark.parametrize(("subs", "expected"), [
    ([], "has no event subscription"),
    ([queue_sub(types=[POST])], "no pre-event subscription to the watched queue"),
    ([queue_sub(types=[PRE])], None),
])
def test_the_watchdog_explanation(subs: list[dict[str, Any]], expected: str | None) -> None:
    w = wire(configuration_id=CFG, configuration_name="mc-web", topic=parse_topic(topic_row()),
             subscriptions=[parse_subscription(s) for s in subs], watched=WATCHED, now=NOW)
    explanation = missing_pre_explanation(w, WATCHED, NOW)
    if expected is None:
        assert explanation is None
    else:
        assert explanation is not None and expected in explanation


def test_no_explanation_when_the_subscriptions_could_not_be_read() -> None:
    # A 403 on the topic's subscriptions says nothing about them: the run panel and the
    # watchdog must not claim "no pre-event will come".
    unread = wire(configuration_id=CFG, configuration_name="mc-web",
                  topic=parse_topic(topic_row()), subscriptions=[], watched=WATCHED, now=NOW,
                  error="reading the event subscriptions of system topic t failed (HTTP 403)")
    assert missing_pre_explanation(unread, WATCHED, NOW) is None
    # Without a topic (read by the one query that did answer) the cause stays certain.
    no_topic = wire(configuration_id=CFG, configuration_name="mc-web", topic=None,
                    watched=WATCHED, now=NOW, error="something else")
    assert missing_pre_explanation(no_topic, WATCHED, NOW) is not None


# -- issue 22 item 9: delivery health per event subscription ----------------------------------
def split_body(**per_sub: dict[str, float]) -> dict[str, Any]:
    """A metrics answer split by EventSubscriptionName, as Azure Monitor writes it."""
    metrics: dict[str, list[dict[str, Any]]] = {}
    for sub, counts in per_sub.items():
        for metric, total in counts.items():
            metrics.setdefault(metric, []).append({
                "metadatavalues": [{"name": {"value": "eventsubscriptionname",
                                             "localizedValue": "eventsubscriptionname"},
                                    "value": sub.upper()}],
                "data": [{"timeStamp": "2026-12-01T10:00:00Z", "total": total}]})
    return {"value": [{"name": {"value": m}, "timeseries": ts} for m, ts in metrics.items()]}


def test_metrics_split_per_subscription_are_read() -> None:
    body = split_body(**{"to-queue": {"DeliverySuccessCount": 4.0},
                         "old-hook": {"DeliveryAttemptFailCount": 3.0,
                                      "DroppedEventCount": 3.0}})
    per = dict(parse_subscription_metrics(body))
    assert set(per) == {"TO-QUEUE", "OLD-HOOK"}
    assert per["TO-QUEUE"].delivered == 4 and not per["TO-QUEUE"].failing
    assert (per["OLD-HOOK"].failed, per["OLD-HOOK"].dropped) == (3, 3)


def test_an_old_broken_subscription_does_not_make_the_watched_queue_fail() -> None:
    # The topic's 24 h failures come from another (old, broken) subscription: the watched
    # queue's own subscription delivered everything.
    per = parse_subscription_metrics(split_body(
        **{"to-queue": {"DeliverySuccessCount": 4.0},
           "old-hook": {"DeliveryAttemptFailCount": 3.0, "DroppedEventCount": 3.0}}))
    health = DeliveryHealth(delivered=4, failed=3, dropped=3, by_subscription=per)
    wiring = wire(configuration_id=CFG, configuration_name="mc-web",
                  topic=parse_topic(topic_row()), subscriptions=[parse_subscription(queue_sub())],
                  health=health, watched=WATCHED, now=NOW)
    assert wiring.verdict is Verdict.OK
    assert "not counted: 3 failed deliveries through subscription OLD-HOOK" in wiring.reason


def test_failures_of_the_watched_queues_subscription_say_which_and_how_many() -> None:
    per = parse_subscription_metrics(split_body(
        **{"to-queue": {"DeliveryAttemptFailCount": 5.0, "DeadLetteredCount": 2.0}}))
    wiring = wire(configuration_id=CFG, configuration_name="mc-web",
                  topic=parse_topic(topic_row()), subscriptions=[parse_subscription(queue_sub())],
                  health=DeliveryHealth(failed=5, dead_lettered=2, by_subscription=per),
                  watched=WATCHED, now=NOW)
    assert wiring.verdict is Verdict.FAILING
    assert wiring.reason == ("delivery to queue aum-events failed 5 times in 24 h through "
                             "subscription to-queue (0 dropped, 2 dead-lettered)")
    assert wiring.to_json()["health"]["by_subscription"]["TO-QUEUE"]["failed"] == 5


# -- issue 22 item 10: subject filters, advanced filters, Updating ---------------------------
#: Recorded real answer of a subscription's filter (Microsoft's recordings).
NEVER = {"includedEventTypes": [PRE, POST], "subjectBeginsWith": "SomeRandomText1",
         "subjectEndsWith": "SomeRandomText2"}


def test_a_subject_filter_that_never_matches_the_configuration_is_not_ok() -> None:
    wiring = wire(configuration_id=CFG, configuration_name="mc-web",
                  topic=parse_topic(topic_row()),
                  subscriptions=[parse_subscription(queue_sub(filter=NEVER))],
                  health=None, watched=WATCHED, now=NOW)
    assert wiring.verdict is Verdict.DISABLED
    assert "'SomeRandomText1'" in wiring.reason and "never matches 'mc-web'" in wiring.reason
    assert not wiring.covers("pre", WATCHED, NOW)
    assert missing_pre_explanation(wiring, WATCHED, NOW) == wiring.reason


def test_subject_filters_match_as_event_grid_does() -> None:
    def verdict(flt: dict[str, Any]) -> Verdict:
        return verdict_of([queue_sub(filter={"includedEventTypes": [PRE, POST], **flt})])

    assert verdict({"subjectBeginsWith": "MC-", "subjectEndsWith": "WEB"}) is Verdict.OK
    assert verdict({"subjectBeginsWith": "MC-", "isSubjectCaseSensitive": True}) is (
        Verdict.DISABLED)
    assert verdict({"subjectBeginsWith": "mc-", "isSubjectCaseSensitive": True}) is Verdict.OK
    assert verdict({"subjectEndsWith": "-db"}) is Verdict.DISABLED
    assert verdict({"subjectBeginsWith": "", "subjectEndsWith": ""}) is Verdict.OK


def test_a_never_matching_pre_subscription_beside_a_post_one_is_partial() -> None:
    pre = queue_sub("pre", [PRE], filter={"includedEventTypes": [PRE],
                                          "subjectBeginsWith": "other-config"})
    post = queue_sub("post", [POST])
    wiring = wire(configuration_id=CFG, configuration_name="mc-web",
                  topic=parse_topic(topic_row()),
                  subscriptions=[parse_subscription(pre), parse_subscription(post)],
                  health=None, watched=WATCHED, now=NOW)
    assert wiring.verdict is Verdict.PARTIAL
    assert "subscription pre to the watched queue never matches" in wiring.reason


def test_advanced_filters_cannot_be_judged_and_the_reason_says_so() -> None:
    advanced = {"includedEventTypes": [PRE, POST], "advancedFilters": [
        {"operatorType": "StringContains", "key": "data.MaintenanceConfigurationId",
         "values": ["prod"]}]}
    wiring = wire(configuration_id=CFG, configuration_name="mc-web",
                  topic=parse_topic(topic_row()),
                  subscriptions=[parse_subscription(queue_sub(filter=advanced))],
                  health=None, watched=WATCHED, now=NOW)
    assert wiring.verdict is Verdict.OK
    assert "cannot judge the advanced filters of subscription to-queue" in wiring.reason
    plain = wire(configuration_id=CFG, configuration_name="mc-web",
                 topic=parse_topic(topic_row()), subscriptions=[parse_subscription(queue_sub())],
                 health=None, watched=WATCHED, now=NOW)
    assert "cannot judge" not in plain.reason


def test_updating_is_transient_not_disabled() -> None:
    wiring = wire(configuration_id=CFG, configuration_name="mc-web",
                  topic=parse_topic(topic_row()),
                  subscriptions=[parse_subscription(queue_sub(state="Updating"))],
                  health=None, watched=WATCHED, now=NOW)
    assert wiring.verdict is Verdict.OK
    assert "being updated" in wiring.reason
    assert verdict_of([queue_sub(state="Failed")]) is Verdict.DISABLED
