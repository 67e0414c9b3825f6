"""The plan of `aumwatch setup events` and its az / Bicep text (pure, no Azure)."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta

import pytest

from services.domain.events import POST_EVENT_TYPE, PRE_EVENT_TYPE
from services.domain.wiring import EventSubscription, SystemTopic
from services.domain.wiring_setup import (
    QUEUE_SENDER_ROLE_ID,
    Action,
    Current,
    SetupError,
    SetupRequest,
    account_name_from_connection_string,
    account_name_from_url,
    az_commands,
    bicep,
    check_account_id,
    parse_schema,
    parse_types,
    plan_setup,
    role_allows_sending,
    role_assignment_name,
    topic_name_for,
)

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
SUB = "11111111-1111-4111-8111-111111111111"
CFG = (f"/subscriptions/{SUB}/resourceGroups/rg-prod/providers/Microsoft.Maintenance/"
       "maintenanceConfigurations/mc-web")
ACCOUNT = (f"/subscriptions/{SUB}/resourceGroups/rg-ops/providers/Microsoft.Storage/"
           "storageAccounts/opsqueues")
PRINCIPAL = "0e2b6a4c-1111-4222-8333-444455556666"


def request(**changes: object) -> SetupRequest:
    values: dict[str, object] = dict(configuration_id=CFG, configuration_name="mc-web",
                                     location="westeurope", queue_account_id=ACCOUNT,
                                     queue_name="aum-events")
    values.update(changes)
    return SetupRequest(**values)  # type: ignore[arg-type]


def topic(principal: str | None = PRINCIPAL, state: str = "Succeeded") -> SystemTopic:
    return SystemTopic(id=f"/subscriptions/{SUB}/resourceGroups/rg-prod/providers/"
                       "Microsoft.EventGrid/systemTopics/mc-web-topic", name="mc-web-topic",
                       resource_group="rg-prod", subscription_id=SUB, source=CFG,
                       location="westeurope", provisioning_state=state, principal_id=principal)


def sub(name: str = "aumwatch", types: tuple[str, ...] = ("pre", "post"),
        schema: str = "eventgrid", queue: str = "aum-events", account: str = ACCOUNT,
        state: str = "Succeeded", identity: bool = True,
        expiration: datetime | None = None) -> EventSubscription:
    return EventSubscription(name=name, event_types=types, schema=schema,
                             endpoint_type="storagequeue", endpoint=f"{account}/queues/{queue}",
                             queue_account_id=account, queue_name=queue, state=state,
                             with_identity=identity, expiration=expiration)


def test_nothing_wired_plans_topic_then_role_then_subscription() -> None:
    plan = plan_setup(request(), Current(queue_exists=True), NOW)
    assert [s.action for s in plan.steps] == [Action.CREATE_TOPIC, Action.ASSIGN_ROLE,
                                               Action.CREATE_SUBSCRIPTION]
    topic_body = plan.steps[0].body
    assert topic_body["identity"] == {"type": "SystemAssigned"}
    assert topic_body["location"] == "westeurope"
    assert topic_body["properties"] == {"source": CFG, "topicType":
                                        "Microsoft.Maintenance.MaintenanceConfigurations"}
    assert plan.topic_id.endswith(f"/systemTopics/{plan.topic_name}")
    assert plan.resource_group == "rg-prod"
    body = plan.steps[2].body["properties"]
    assert body["filter"]["includedEventTypes"] == [PRE_EVENT_TYPE, POST_EVENT_TYPE]
    assert body["eventDeliverySchema"] == "EventGridSchema"
    delivery = body["deliveryWithResourceIdentity"]
    assert delivery["identity"] == {"type": "SystemAssigned"}
    assert delivery["destination"] == {"endpointType": "StorageQueue", "properties": {
        "resourceId": ACCOUNT, "queueName": "aum-events"}}
    assert plan.subscription_name == "aumwatch"
    assert plan.steps[1].body["properties"]["roleDefinitionId"].endswith(QUEUE_SENDER_ROLE_ID)
    assert not plan.up_to_date


def test_everything_right_plans_nothing() -> None:
    current = Current(topic=topic(), subscriptions=(sub(),), role=True, queue_exists=True)
    plan = plan_setup(request(), current, NOW)
    assert plan.up_to_date and plan.steps == ()
    assert len(plan.satisfied) == 3
    assert az_commands(plan) == [] and bicep(plan) == ""


def test_the_plan_of_the_result_of_a_plan_is_empty() -> None:
    # After the first run, what exists is what the plan's bodies described.
    from services.domain.wiring import parse_subscription

    first = plan_setup(request(), Current(queue_exists=True), NOW)
    created = parse_subscription({"name": first.subscription_name,
                                  "properties": {**first.steps[2].body["properties"],
                                                 "provisioningState": "Succeeded"}})
    again = plan_setup(request(), Current(topic=topic(), subscriptions=(created,), role=True,
                                          queue_exists=True), NOW)
    assert again.up_to_date


def test_pre_only_subscription_is_completed_in_place() -> None:
    current = Current(topic=topic(), subscriptions=(sub(name="prehook", types=("pre",)),),
                      role=True, queue_exists=True)
    plan = plan_setup(request(), current, NOW)
    [step] = plan.steps
    assert step.action is Action.UPDATE_SUBSCRIPTION
    assert step.target.endswith("/eventSubscriptions/prehook")
    assert step.body["properties"]["filter"]["includedEventTypes"] == [PRE_EVENT_TYPE,
                                                                       POST_EVENT_TYPE]
    assert "add post events" in step.summary


def test_update_keeps_delivery_without_identity_and_needs_no_role() -> None:
    current = Current(topic=topic(principal=None),
                      subscriptions=(sub(name="prehook", types=("pre",), identity=False),))
    plan = plan_setup(request(), current, NOW)
    [step] = plan.steps
    assert step.action is Action.UPDATE_SUBSCRIPTION
    props = step.body["properties"]
    assert "deliveryWithResourceIdentity" not in props
    assert props["destination"]["properties"]["queueName"] == "aum-events"
    text = bicep(plan)
    assert "deliveryWithResourceIdentity" not in text and "    destination: {" in text
    assert "queueSender" not in text


def test_requesting_pre_only_is_satisfied_by_a_pre_only_subscription() -> None:
    current = Current(topic=topic(), subscriptions=(sub(types=("pre",)),), role=True)
    assert plan_setup(request(types=("pre",)), current, NOW).up_to_date


def test_any_schema_will_do_unless_one_is_asked_for() -> None:
    # aumwatch reads both schemas: by default a working CloudEvents subscription is left as is.
    current = Current(topic=topic(), subscriptions=(sub(schema="cloudevents"),), role=True)
    assert plan_setup(request(), current, NOW).up_to_date
    # A pre-only CloudEvents subscription gets post added, and keeps its schema.
    pre_only = Current(topic=topic(), subscriptions=(sub(types=("pre",), schema="cloudevents"),),
                       role=True)
    [step] = plan_setup(request(), pre_only, NOW).steps
    assert step.action is Action.UPDATE_SUBSCRIPTION and "schema" not in step.summary
    # A new subscription gets the Event Grid schema.
    [create] = [s for s in plan_setup(request(), Current(topic=topic(), role=True), NOW).steps
                if s.action is Action.CREATE_SUBSCRIPTION]
    assert create.body["properties"]["eventDeliverySchema"] == "EventGridSchema"


def test_an_explicit_other_schema_is_rewritten_with_a_note() -> None:
    current = Current(topic=topic(), subscriptions=(sub(schema="cloudevents"),), role=True)
    [step] = plan_setup(request(schema="eventgrid"), current, NOW).steps
    assert step.action is Action.UPDATE_SUBSCRIPTION
    assert step.body["properties"]["eventDeliverySchema"] == "EventGridSchema"
    assert "should Azure refuse" in step.summary
    cloud = plan_setup(request(schema="cloudevents"),
                       Current(topic=topic(), subscriptions=(sub(),), role=True), NOW)
    assert cloud.steps[0].body["properties"]["eventDeliverySchema"] == "CloudEventSchemaV1_0"


def test_expired_or_failed_subscription_is_reprovisioned() -> None:
    expired = sub(expiration=NOW - timedelta(days=1))
    [step] = plan_setup(request(), Current(topic=topic(), subscriptions=(expired,), role=True),
                        NOW).steps
    assert step.action is Action.UPDATE_SUBSCRIPTION and "expired" in step.summary
    failed = sub(state="Failed")
    [step] = plan_setup(request(), Current(topic=topic(), subscriptions=(failed,), role=True),
                        NOW).steps
    assert "state Failed" in step.summary


def test_subscription_to_another_queue_is_left_and_a_new_one_created() -> None:
    other = sub(name="aumwatch", queue="someone-elses")
    plan = plan_setup(request(), Current(topic=topic(), subscriptions=(other,), role=True), NOW)
    [step] = plan.steps
    assert step.action is Action.CREATE_SUBSCRIPTION
    assert plan.subscription_name == "aumwatch2"  # the name in use is not overwritten


def test_topic_without_identity_gets_one_and_the_role() -> None:
    plan = plan_setup(request(), Current(topic=topic(principal=None)), NOW)
    assert [s.action for s in plan.steps] == [Action.UPDATE_TOPIC, Action.ASSIGN_ROLE,
                                               Action.CREATE_SUBSCRIPTION]
    assert "system-assigned identity" in plan.steps[0].summary
    assert plan.steps[0].body == {"identity": {"type": "SystemAssigned"}}  # a PATCH
    assert az_commands(plan)[0].startswith("az eventgrid system-topic update --name "
                                           "mc-web-topic ")
    assert az_commands(plan)[0].endswith(" --mi-system-assigned")


def test_failed_topic_is_put_again() -> None:
    plan = plan_setup(request(), Current(topic=topic(state="Failed"), subscriptions=(sub(),),
                                         role=True), NOW)
    [step] = plan.steps
    assert step.action is Action.UPDATE_TOPIC and "state Failed" in step.summary
    assert step.body["properties"]["source"] == CFG
    assert az_commands(plan)[0].startswith("az eventgrid system-topic create ")


def test_update_keeps_what_aumwatch_does_not_manage() -> None:
    existing = {
        "name": "prehook",
        "properties": {
            "topic": "/subscriptions/x/...", "provisioningState": "Succeeded",
            "destination": {"endpointType": "StorageQueue", "properties": {
                "resourceId": ACCOUNT, "queueName": "aum-events",
                "queueMessageTimeToLiveInSeconds": -1}},
            "filter": {"includedEventTypes": [PRE_EVENT_TYPE], "subjectBeginsWith": "mc-"},
            "deadLetterDestination": {"endpointType": "StorageBlob", "properties": {
                "resourceId": ACCOUNT, "blobContainerName": "dead"}},
            "retryPolicy": {"maxDeliveryAttempts": 5, "eventTimeToLiveInMinutes": 60},
            "labels": ["team-ops"],
            "expirationTimeUtc": "2026-03-01T00:00:00Z",
            "eventDeliverySchema": "EventGridSchema",
        },
    }
    from services.domain.wiring import parse_subscription

    current = Current(topic=topic(), subscriptions=(parse_subscription(existing),),
                      role=True, bodies={"prehook": existing})
    [step] = plan_setup(request(), current, NOW).steps
    props = step.body["properties"]
    assert "topic" not in props and "provisioningState" not in props
    assert "expirationTimeUtc" not in props  # it had passed: the update revives it
    assert props["filter"] == {"includedEventTypes": [PRE_EVENT_TYPE, POST_EVENT_TYPE],
                               "subjectBeginsWith": "mc-"}
    assert props["deadLetterDestination"] == existing["properties"]["deadLetterDestination"]
    assert props["retryPolicy"] == {"maxDeliveryAttempts": 5, "eventTimeToLiveInMinutes": 60}
    assert props["labels"] == ["team-ops"]
    assert props["destination"]["properties"]["queueMessageTimeToLiveInSeconds"] == -1
    text = bicep(plan_setup(request(), current, NOW))
    assert "blobContainerName: 'dead'" in text and "queueMessageTimeToLiveInSeconds: -1" in text
    assert "'team-ops'" in text


def test_missing_role_alone_is_planned() -> None:
    current = Current(topic=topic(), subscriptions=(sub(),), role=False)
    [step] = plan_setup(request(), current, NOW).steps
    assert step.action is Action.ASSIGN_ROLE
    assert step.body["properties"]["principalId"] == PRINCIPAL


def test_subscription_without_identity_needs_no_role() -> None:
    # Delivered with Event Grid's own access (the classic way): right as it is.
    current = Current(topic=topic(principal=None), subscriptions=(sub(identity=False),))
    assert plan_setup(request(), current, NOW).up_to_date


def test_missing_queue_blocks() -> None:
    plan = plan_setup(request(), Current(queue_exists=False), NOW)
    assert plan.blockers and "does not exist" in plan.blockers[0]


def test_types_and_schema_parsing() -> None:
    assert parse_types(None) == ("pre", "post")
    assert parse_types("post, PRE") == ("pre", "post")
    assert parse_types("pre") == ("pre",)
    for bad in ("", "pre,during", "all"):
        with pytest.raises(SetupError):
            parse_types(bad)
    assert parse_schema("CloudEvents") == "cloudevents"
    with pytest.raises(SetupError):
        parse_schema("custom")


def test_account_names() -> None:
    assert account_name_from_url("https://opsqueues.queue.core.windows.net") == "opsqueues"
    assert account_name_from_url("http://127.0.0.1:10001/devstoreaccount1") == "devstoreaccount1"
    assert account_name_from_url("https://example.com/") is None
    conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=c2VjcmV0;"
            "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;")
    assert account_name_from_connection_string(conn) == "devstoreaccount1"
    assert account_name_from_connection_string("nonsense") is None
    assert check_account_id(ACCOUNT + "/") == ACCOUNT
    with pytest.raises(SetupError):
        check_account_id("/subscriptions/x/resourceGroups/y/providers/Microsoft.Web/sites/z")


def test_topic_names_are_safe_and_distinct() -> None:
    a = topic_name_for("web prod;$(rm -rf ~)", CFG)
    b = topic_name_for("web_prod", CFG + "x")
    assert set(a) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
    assert a != b and 3 <= len(a) <= 128
    assert topic_name_for("mc-web", CFG) == topic_name_for("mc-web", CFG.upper())


def test_role_check_accepts_sender_or_contributor_at_or_above_the_queue() -> None:
    queue = f"{ACCOUNT}/queueservices/default/queues/aum-events"

    def assignment(role: str, scope: str, principal: str = PRINCIPAL) -> dict[str, object]:
        return {"properties": {"principalId": principal, "scope": scope,
                               "roleDefinitionId": f"/subscriptions/{SUB}/providers/"
                               f"Microsoft.Authorization/roleDefinitions/{role}"}}

    assert role_allows_sending([assignment(QUEUE_SENDER_ROLE_ID, ACCOUNT)], PRINCIPAL, queue)
    assert role_allows_sending([assignment("974c5e8b-45b9-4653-ba55-5f855dd0fb88",
                                           f"/subscriptions/{SUB}")], PRINCIPAL, queue)
    assert role_allows_sending([assignment(QUEUE_SENDER_ROLE_ID, queue.upper())], PRINCIPAL,
                               queue)
    # Reader is not enough; another principal's role does not count; a sibling account's
    # scope is not above this queue.
    assert not role_allows_sending([assignment("acdd72a7-3385-48ef-bd42-f606fba81ae7",
                                               ACCOUNT)], PRINCIPAL, queue)
    assert not role_allows_sending([assignment(QUEUE_SENDER_ROLE_ID, ACCOUNT, "other")],
                                   PRINCIPAL, queue)
    assert not role_allows_sending([assignment(QUEUE_SENDER_ROLE_ID, ACCOUNT + "2")],
                                   PRINCIPAL, queue)
    assert role_assignment_name(ACCOUNT, PRINCIPAL, QUEUE_SENDER_ROLE_ID) == \
        role_assignment_name(ACCOUNT.upper(), PRINCIPAL, QUEUE_SENDER_ROLE_ID)


def test_az_commands_for_a_full_setup() -> None:
    plan = plan_setup(request(), Current(queue_exists=True), NOW)
    create, role, rest = az_commands(plan)
    words = shlex.split(create)
    assert words[:4] == ["az", "eventgrid", "system-topic", "create"]
    assert words[words.index("--source") + 1] == CFG
    assert words[words.index("--topic-type") + 1] == \
        "Microsoft.Maintenance.MaintenanceConfigurations"
    assert words[words.index("--location") + 1] == "westeurope"
    assert "--mi-system-assigned" in words
    # The principal of a topic created in the same plan is read when the command runs.
    assert role.startswith("az role assignment create --assignee-object-id "
                           '"$(az eventgrid system-topic show ')
    assert f"--role {QUEUE_SENDER_ROLE_ID}" in role and f"--scope {ACCOUNT}" in role
    words = shlex.split(rest)
    assert words[:4] == ["az", "rest", "--method", "put"]
    assert words[words.index("--url") + 1].startswith(plan.topic_id + "/eventSubscriptions/")
    import json

    body = json.loads(words[words.index("--body") + 1])
    assert body == plan.steps[2].body


def test_az_role_command_names_a_known_principal() -> None:
    plan = plan_setup(request(), Current(topic=topic(), subscriptions=(sub(),), role=False),
                      NOW)
    [role] = az_commands(plan)
    assert shlex.split(role)[shlex.split(role).index("--assignee-object-id") + 1] == PRINCIPAL


def test_hostile_configuration_name_is_quoted_for_the_shell() -> None:
    name = "x'; touch /tmp/pwned; echo '$(id)`id`[bold]"
    cfg = (f"/subscriptions/{SUB}/resourceGroups/rg-prod/providers/Microsoft.Maintenance/"
           f"maintenanceConfigurations/{name}")
    plan = plan_setup(request(configuration_id=cfg, configuration_name=name),
                      Current(queue_exists=True), NOW)
    for line in az_commands(plan):
        words = shlex.split(line)  # parses: every quote is balanced
        assert "touch" not in words and ";" not in words
    create = shlex.split(az_commands(plan)[0])
    assert create[create.index("--source") + 1] == cfg
    text = bicep(plan)
    assert "source: '/subscriptions/" in text
    assert "\\'; touch /tmp/pwned; echo \\'\\$(id)`id`[bold]'" in text


def test_bicep_declares_exactly_the_missing_parts() -> None:
    full = bicep(plan_setup(request(), Current(queue_exists=True), NOW))
    assert "resource topic 'Microsoft.EventGrid/systemTopics@" in full
    assert "existing" not in full.split("resource account")[0]
    assert "resource eventSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@" \
        in full
    assert "resource queueSender 'Microsoft.Authorization/roleAssignments@2022-04-01'" in full
    assert "principalId: topicPrincipalId" in full  # the account is in another group
    role_only = bicep(plan_setup(request(), Current(topic=topic(), subscriptions=(sub(),),
                                                    role=False), NOW))
    assert "resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' existing" in role_only
    assert "eventSubscription" not in role_only and "queueSender" in role_only
    same_group = ACCOUNT.replace("rg-ops", "rg-prod")
    together = bicep(plan_setup(request(queue_account_id=same_group),
                                Current(queue_exists=True), NOW))
    assert "principalId: topic.identity.principalId" in together
    assert "dependsOn: [queueSender]" in together


# -- issue 22 items 9 and 10 ------------------------------------------------------------------
def test_a_never_matching_subject_filter_is_cleared_by_the_update() -> None:
    from services.domain.wiring import parse_subscription

    existing = {"name": "aumwatch", "properties": {
        "provisioningState": "Succeeded",
        "destination": {"endpointType": "StorageQueue", "properties": {
            "resourceId": ACCOUNT, "queueName": "aum-events"}},
        "filter": {"includedEventTypes": [PRE_EVENT_TYPE, POST_EVENT_TYPE],
                   "subjectBeginsWith": "SomeRandomText1", "subjectEndsWith": "SomeRandomText2",
                   "isSubjectCaseSensitive": False},
        "eventDeliverySchema": "EventGridSchema"}}
    current = Current(topic=topic(), subscriptions=(parse_subscription(existing),),
                      role=True, queue_exists=True, bodies={"aumwatch": existing})
    [step] = plan_setup(request(), current, NOW).steps
    assert step.action is Action.UPDATE_SUBSCRIPTION
    assert "clear its subject filter" in step.summary and "'mc-web'" in step.summary
    assert step.body["properties"]["filter"] == {
        "includedEventTypes": [PRE_EVENT_TYPE, POST_EVENT_TYPE], "subjectBeginsWith": "",
        "subjectEndsWith": "", "isSubjectCaseSensitive": False}


def test_delivery_advice_only_for_the_queues_own_failures() -> None:
    from services.domain.wiring import DeliveryHealth
    from services.domain.wiring_setup import delivery_advice

    ours = sub()
    split = DeliveryHealth(failed=4, dropped=4, by_subscription=(
        ("AUMWATCH", DeliveryHealth(failed=4, dropped=4)),))
    current = Current(topic=topic(), subscriptions=(ours,), role=True, queue_exists=True,
                      health=split)
    assert plan_setup(request(), current, NOW).up_to_date
    advice = delivery_advice(request(), current, NOW)
    assert advice is not None and advice.startswith(
        "delivery to queue aum-events failed 4 times in 24 h through subscription aumwatch "
        "(4 dropped, 0 dead-lettered): nothing here can be changed by aumwatch; check that "
        "queue aum-events exists in storage account opsqueues")
    others = DeliveryHealth(failed=4, by_subscription=(("OLD", DeliveryHealth(failed=4)),))
    quiet = Current(topic=topic(), subscriptions=(ours,), role=True, health=others)
    assert delivery_advice(request(), quiet, NOW) is None
    assert delivery_advice(request(), Current(topic=topic(), subscriptions=(ours,)), NOW) is None
    # Counts over the whole topic: said as such.
    topic_wide = Current(topic=topic(), subscriptions=(ours,), health=DeliveryHealth(failed=1))
    text = delivery_advice(request(), topic_wide, NOW)
    assert text is not None and "over all its subscriptions" in text
