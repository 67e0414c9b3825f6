"""The plan of ``aumwatch setup events``: what to create so a configuration's pre/post events
reach a queue, and the equivalent ``az`` commands and Bicep (pure).

A configuration's events reach a Storage Queue through an Event Grid system topic whose source
is the configuration, and an event subscription on it naming the event types, the schema and
the queue (docs/azure.md, "Event Grid wiring"). aumwatch delivers with the topic's
system-assigned identity (``deliveryWithResourceIdentity``), so that identity needs the
"Storage Queue Data Message Sender" role on the storage account.

:func:`plan_setup` compares what exists (:class:`Current`) with what is asked
(:class:`SetupRequest`) and returns only the missing steps: running it on its own result
plans nothing. Each step carries the ARM REST body (camelCase JSON) that the Azure side sends
and that :func:`az_commands` and :func:`bicep` print. Nothing here does I/O.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shlex
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.domain.events import POST_EVENT_TYPE, PRE_EVENT_TYPE
from services.domain.wiring import (
    MAINTENANCE_TOPIC_TYPE,
    DeliveryHealth,
    EventSubscription,
    QueueTarget,
    SystemTopic,
    account_name_from_connection_string,
    account_name_from_url,
    id_segment,
    parse_subscription,
    valid_account_name,
)

#: Built-in role "Storage Queue Data Message Sender" (Azure built-in roles reference).
QUEUE_SENDER_ROLE_ID = "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a"
QUEUE_SENDER_ROLE_NAME = "Storage Queue Data Message Sender"
#: Roles that let an identity add queue messages: the sender role, and "Storage Queue Data
#: Contributor" (which includes it).
SENDING_ROLE_IDS = frozenset({QUEUE_SENDER_ROLE_ID, "974c5e8b-45b9-4653-ba55-5f855dd0fb88"})
#: api-version of role assignments (GET / PUT ``{scope}/providers/Microsoft.Authorization/...``).
ROLE_ASSIGNMENTS_API_VERSION = "2022-04-01"
#: api-version printed in ``az rest`` and Bicep (azure-mgmt-eventgrid 10.4.0's default).
EVENTGRID_API_VERSION = "2025-02-15"

#: ``--types`` words and the event types they stand for.
EVENT_TYPE_NAMES: Mapping[str, str] = {"pre": PRE_EVENT_TYPE, "post": POST_EVENT_TYPE}
#: ``--schema`` words and Event Grid's ``eventDeliverySchema`` values.
SCHEMA_VALUES: Mapping[str, str] = {"eventgrid": "EventGridSchema",
                                    "cloudevents": "CloudEventSchemaV1_0"}
#: The name of the event subscription aumwatch creates (alphanumerics only: the REST
#: reference allows letters and digits, 3 to 100 of them).
SUBSCRIPTION_NAME = "aumwatch"


class SetupError(ValueError):
    """A request that cannot be planned (bad --types, --schema, --queue-account...)."""


class Action(StrEnum):
    """What a step does (the ``action`` column of the change audit)."""

    CREATE_TOPIC = "create-system-topic"
    UPDATE_TOPIC = "update-system-topic"      # add its identity, or re-provision a failed one
    CREATE_SUBSCRIPTION = "create-event-subscription"
    UPDATE_SUBSCRIPTION = "update-event-subscription"
    ASSIGN_ROLE = "assign-role"


@dataclass(frozen=True)
class SetupRequest:
    """What the operator asked for, with the defaults already resolved."""

    configuration_id: str
    configuration_name: str
    location: str
    queue_account_id: str
    queue_name: str
    types: tuple[str, ...] = ("pre", "post")
    # None: any schema will do (aumwatch reads both); an existing subscription keeps its own
    # and a new one gets the Event Grid schema. A schema asked for explicitly is enforced.
    schema: str | None = None

    @property
    def new_schema(self) -> str:
        """The schema a subscription this request creates is given."""
        return self.schema or "eventgrid"

    @property
    def subscription_id(self) -> str:
        return id_segment(self.configuration_id, "subscriptions")

    @property
    def resource_group(self) -> str:
        return id_segment(self.configuration_id, "resourceGroups")

    @property
    def watched(self) -> QueueTarget:
        return QueueTarget(account_name_of(self.queue_account_id), self.queue_name)

    @property
    def queue_scope(self) -> str:
        """The queue's own resource id (the narrowest scope a role can be assigned at)."""
        return queue_resource_id(self.queue_account_id, self.queue_name)


@dataclass(frozen=True)
class Current:
    """What exists now, as read from Azure.

    ``role``: whether the topic's identity may send to the queue (True / False), or None when
    it could not be checked (no identity yet, or the read was refused). ``queue_exists``: None
    when it could not be checked.
    """

    topic: SystemTopic | None = None
    subscriptions: tuple[EventSubscription, ...] = ()
    role: bool | None = None
    role_note: str | None = None
    queue_exists: bool | None = None
    queue_note: str | None = None
    #: The REST JSON of each subscription (by lower-case name): an update keeps what aumwatch
    #: does not manage (dead-letter, retry, labels, other filters, queue message TTL).
    bodies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: The topic's delivery health over the last 24 h (per subscription when Azure Monitor
    #: split it), or None when it was not or could not be read.
    health: DeliveryHealth | None = None


@dataclass(frozen=True)
class Step:
    """One change: its action, the resource it PUTs, a sentence, and the REST body."""

    action: Action
    target: str
    summary: str
    body: Mapping[str, Any] = field(default_factory=dict)

    def detail(self) -> str:
        """The body as compact JSON, for the audit's ``detail`` column (holds no secret)."""
        return json.dumps(self.body, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Plan:
    """The missing steps, in order, and what is already right."""

    request: SetupRequest
    topic_name: str
    topic_id: str
    subscription_name: str
    steps: tuple[Step, ...]
    satisfied: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    blockers: tuple[str, ...] = ()    # reasons not to apply (the queue does not exist)
    principal_id: str | None = None   # the topic's identity, when it exists already

    @property
    def up_to_date(self) -> bool:
        """Nothing to change ("already set up")."""
        return not self.steps

    @property
    def resource_group(self) -> str:
        return id_segment(self.topic_id, "resourceGroups")

    @property
    def topic_subscription_id(self) -> str:
        return id_segment(self.topic_id, "subscriptions")

    def step(self, action: Action) -> Step | None:
        """The step doing ``action``, if planned."""
        return next((s for s in self.steps if s.action is action), None)


# -- inputs ------------------------------------------------------------------------------------
def parse_types(text: str | None) -> tuple[str, ...]:
    """``--types`` ("pre,post", "pre", "post") as a tuple in pre, post order."""
    if text is None:
        return ("pre", "post")
    words = {w.strip().lower() for w in text.split(",") if w.strip()}
    unknown = sorted(words - set(EVENT_TYPE_NAMES))
    if unknown or not words:
        raise SetupError(f"--types takes pre, post or pre,post (got {text!r})")
    return tuple(k for k in ("pre", "post") if k in words)


def parse_schema(text: str | None) -> str | None:
    """``--schema`` (eventgrid | cloudevents); None when not given (any schema will do)."""
    if text is None:
        return None
    value = text.strip().lower()
    if value not in SCHEMA_VALUES:
        raise SetupError(f"--schema takes eventgrid or cloudevents (got {text!r})")
    return value


def account_name_of(account_id: str) -> str:
    """The last segment of a storage account's resource id."""
    return account_id.strip().rstrip("/").rsplit("/", 1)[-1]


def check_account_id(account_id: str) -> str:
    """A ``--queue-account`` value: a storage account resource id, else :class:`SetupError`."""
    text = account_id.strip().rstrip("/")
    parts = text.strip("/").split("/")
    ok = (len(parts) == 8 and parts[0].lower() == "subscriptions"
          and parts[2].lower() == "resourcegroups" and parts[4].lower() == "providers"
          and parts[5].lower() == "microsoft.storage"
          and parts[6].lower() == "storageaccounts" and valid_account_name(parts[7].lower()))
    if not ok:
        raise SetupError("--queue-account takes a storage account resource id: /subscriptions/"
                         "<id>/resourceGroups/<rg>/providers/Microsoft.Storage/storageAccounts/"
                         "<name>")
    return "/" + "/".join(parts)


def queue_resource_id(account_id: str, queue_name: str) -> str:
    """``<account id>/queueServices/default/queues/<queue>`` (the az CLI's endpoint form)."""
    return f"{account_id.rstrip('/')}/queueservices/default/queues/{queue_name}"


def topic_name_for(configuration_name: str, configuration_id: str) -> str:
    """The name aumwatch gives a new system topic: the configuration's name made safe
    (letters, digits, hyphens; 3-128 characters), and a short hash of its id so that two
    names that clean up alike stay apart."""
    cleaned = re.sub(r"[^A-Za-z0-9-]+", "-", configuration_name).strip("-")
    cleaned = re.sub(r"-{2,}", "-", cleaned)[:100] or "mc"
    digest = hashlib.sha256(configuration_id.strip().rstrip("/").lower().encode()).hexdigest()
    return f"{cleaned}-events-{digest[:6]}"


def role_assignment_name(scope: str, principal_id: str, role_id: str) -> str:
    """A stable GUID for the role assignment, so that a retried PUT names the same one."""
    key = "|".join((scope.lower(), principal_id.lower(), role_id.lower()))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"aumwatch:{key}"))


def role_definition_id(subscription_id: str, role_id: str = QUEUE_SENDER_ROLE_ID) -> str:
    return (f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/"
            f"roleDefinitions/{role_id}")


def role_allows_sending(assignments: Sequence[Mapping[str, Any]], principal_id: str,
                        queue_scope: str) -> bool:
    """Whether one of the role assignments (REST JSON of a list) lets ``principal_id`` send to
    the queue: a sending role at the queue or at a scope above it (account, group, subscription).
    """
    target = queue_scope.strip().rstrip("/").lower()
    for item in assignments:
        props = item.get("properties") if isinstance(item.get("properties"), Mapping) else item
        if not isinstance(props, Mapping):
            continue
        if str(props.get("principalId", "")).lower() != principal_id.lower():
            continue
        role = str(props.get("roleDefinitionId", "")).rstrip("/").rsplit("/", 1)[-1].lower()
        scope = str(props.get("scope", "")).strip().rstrip("/").lower()
        if role in SENDING_ROLE_IDS and scope and (target == scope
                                                   or target.startswith(scope + "/")
                                                   or scope == "/"):
            return True
    return False


# -- the plan ----------------------------------------------------------------------------------
def topic_body(location: str, configuration_id: str) -> dict[str, Any]:
    """PUT body of the system topic (with a system-assigned identity)."""
    return {
        "location": location,
        "identity": {"type": "SystemAssigned"},
        "properties": {"source": configuration_id, "topicType": MAINTENANCE_TOPIC_TYPE},
    }


def subscription_body(request: SetupRequest, types: Sequence[str], *,
                      with_identity: bool = True) -> dict[str, Any]:
    """PUT body of the event subscription: the types, the schema, the queue, delivered with
    the topic's system-assigned identity (or, ``with_identity=False``, with Event Grid's own
    access, as a subscription being updated may already do)."""
    destination = {
        "endpointType": "StorageQueue",
        "properties": {"resourceId": request.queue_account_id, "queueName": request.queue_name},
    }
    delivery: dict[str, Any] = (
        {"deliveryWithResourceIdentity": {"identity": {"type": "SystemAssigned"},
                                          "destination": destination}}
        if with_identity else {"destination": destination})
    return {
        "properties": {
            **delivery,
            "filter": {"includedEventTypes": [EVENT_TYPE_NAMES[t] for t in types]},
            "eventDeliverySchema": SCHEMA_VALUES[request.new_schema],
        },
    }


#: Properties a subscription's GET returns that a PUT does not take.
_READ_ONLY_PROPERTIES = frozenset({"provisioningstate", "topic"})


def updated_subscription_body(existing: Mapping[str, Any] | None, request: SetupRequest,
                              types: Sequence[str], *, with_identity: bool,
                              now: datetime) -> dict[str, Any]:
    """PUT body updating an existing subscription: its own properties (REST JSON) with the
    event types and the schema set, read-only properties dropped, and a past expiration
    removed. Without its JSON, a body like :func:`subscription_body`'s."""
    raw = existing.get("properties") if isinstance(existing, Mapping) else None
    if not isinstance(raw, Mapping) or not raw:
        return subscription_body(request, types, with_identity=with_identity)
    props = {k: copy.deepcopy(v) for k, v in raw.items()
             if k.lower() not in _READ_ONLY_PROPERTIES and v is not None}
    found = props.get("filter")
    old_filter: dict[str, Any] = dict(found) if isinstance(found, Mapping) else {}
    current = parse_subscription(existing) if isinstance(existing, Mapping) else None
    if current is not None and not current.subject_matches(request.configuration_name):
        # Its subject filter never lets this configuration's events through (their subject
        # is the configuration's name): the update clears it, as _why_update says.
        for key in list(old_filter):
            if key.lower() in ("subjectbeginswith", "subjectendswith"):
                old_filter[key] = ""
    props["filter"] = {**old_filter,
                       "includedEventTypes": [EVENT_TYPE_NAMES[t] for t in types]}
    if request.schema is not None:
        props["eventDeliverySchema"] = SCHEMA_VALUES[request.schema]
    expiry = props.get("expirationTimeUtc")
    if isinstance(expiry, str):
        try:
            when = datetime.fromisoformat(expiry.replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not None and when <= now:
            del props["expirationTimeUtc"]
    return {"properties": props}


def role_body(request: SetupRequest, principal_id: str | None) -> dict[str, Any]:
    """PUT body of the role assignment (``principalId`` empty until the identity exists)."""
    return {
        "properties": {
            "roleDefinitionId": role_definition_id(id_segment(request.queue_account_id,
                                                            "subscriptions")),
            "principalId": principal_id or "",
            "principalType": "ServicePrincipal",
        },
    }


def plan_setup(request: SetupRequest, current: Current, now: datetime) -> Plan:
    """The steps missing between ``current`` and ``request`` (none when all is right)."""
    steps: list[Step] = []
    satisfied: list[str] = []
    warnings: list[str] = []
    blockers: list[str] = []
    watched = request.watched
    topic = current.topic

    # Which subscriptions already deliver a requested type, in the requested schema, to the
    # queue: "right" ones are left alone.
    def right(sub: EventSubscription) -> bool:
        return (sub.active(now) and sub.reaches(watched)
                and sub.subject_matches(request.configuration_name)
                and (request.schema is None or sub.schema == request.schema))

    covered = {k for s in current.subscriptions if right(s) for k in s.event_types}
    missing_types = [t for t in request.types if t not in covered]
    subscription_step: Step | None = None
    uses_identity = any(right(s) and s.with_identity for s in current.subscriptions)

    if topic is None:
        topic_name = topic_name_for(request.configuration_name, request.configuration_id)
        topic_id = (f"/subscriptions/{request.subscription_id}/resourceGroups/"
                    f"{request.resource_group}/providers/Microsoft.EventGrid/systemTopics/"
                    f"{topic_name}")
    else:
        topic_name, topic_id = topic.name, topic.id

    if missing_types:
        candidates = [s for s in current.subscriptions if s.reaches(watched)]
        candidates.sort(key=lambda s: (-len(set(s.event_types) & set(request.types)),
                                       s.name.lower() != SUBSCRIPTION_NAME, s.name.lower()))
        if candidates:
            chosen = candidates[0]
            keep = [k for k in chosen.event_types if k in EVENT_TYPE_NAMES]
            types: tuple[str, ...] = tuple(k for k in ("pre", "post")
                                           if k in set(keep) | set(request.types))
            name = chosen.name
            why = _why_update(chosen, request, now)
            # Keep how it delivers (one that works with Event Grid's own access needs no
            # identity and no role) and everything else it has: the change stays the one the
            # summary names.
            subscription_step = Step(
                Action.UPDATE_SUBSCRIPTION, f"{topic_id}/eventSubscriptions/{name}",
                f"update event subscription {name}: {why}",
                updated_subscription_body(current.bodies.get(name.lower()), request, types,
                                          with_identity=chosen.with_identity, now=now))
            uses_identity = chosen.with_identity
        else:
            taken = {s.name.lower() for s in current.subscriptions}
            name = next(n for n in (SUBSCRIPTION_NAME, *(f"{SUBSCRIPTION_NAME}{i}"
                                                         for i in range(2, 100)))
                        if n not in taken)
            types = request.types
            subscription_step = Step(
                Action.CREATE_SUBSCRIPTION, f"{topic_id}/eventSubscriptions/{name}",
                f"create event subscription {name}: {', '.join(types)} events in the "
                f"{request.new_schema} schema to queue {request.queue_name} of "
                f"{watched.account_name}, delivered with the topic's identity",
                subscription_body(request, types))
            uses_identity = True
    else:
        names = sorted({s.name for s in current.subscriptions if right(s)})
        satisfied.append(f"event subscription {', '.join(names)} delivers "
                         f"{', '.join(request.types)} events"
                         + (f" in the {request.schema} schema" if request.schema else "")
                         + " to "
                         f"queue {request.queue_name}")
        name = names[0] if names else SUBSCRIPTION_NAME

    if topic is None:
        steps.append(Step(
            Action.CREATE_TOPIC, topic_id,
            f"create system topic {topic_name} in {request.resource_group} "
            f"({request.location or 'no location'}) for configuration "
            f"{request.configuration_name}, with a system-assigned identity",
            topic_body(request.location, request.configuration_id)))
    else:
        state = (topic.provisioning_state or "").lower()
        reasons = []
        if uses_identity and not topic.principal_id:
            reasons.append("give it a system-assigned identity")
        if state and state != "succeeded":
            reasons.append(f"re-provision it (state {topic.provisioning_state})")
        if reasons:
            if state and state != "succeeded":
                # Re-provisioning is a PUT of the whole topic (its tags are not kept).
                body = topic_body(topic.location or request.location, request.configuration_id)
                reasons.append("its tags are not kept")
            else:
                body = {"identity": {"type": "SystemAssigned"}}  # a PATCH: the rest stays
            steps.append(Step(Action.UPDATE_TOPIC, topic_id,
                              f"update system topic {topic.name}: {', '.join(reasons)}", body))
        else:
            satisfied.append(f"system topic {topic.name} exists"
                             + (" with a system-assigned identity" if topic.principal_id else ""))
    principal = topic.principal_id if topic is not None else None
    if uses_identity:
        if current.role is True and principal:
            satisfied.append(f"the topic's identity may send to queue {request.queue_name} "
                             f"({QUEUE_SENDER_ROLE_NAME})")
        else:
            # Before the subscription: its first delivery needs the role.
            steps.append(Step(
                Action.ASSIGN_ROLE, request.queue_account_id,
                f"assign {QUEUE_SENDER_ROLE_NAME} on storage account {watched.account_name} to "
                + (f"the topic's identity ({principal})" if principal
                   else "the identity the topic is given above"),
                role_body(request, principal)))
            if current.role is None and current.role_note:
                warnings.append(current.role_note)
    if subscription_step is not None:
        steps.append(subscription_step)

    if current.queue_exists is False:
        blockers.append(current.queue_note or f"queue {request.queue_name} does not exist in "
                        f"storage account {watched.account_name}: create it first")
    elif current.queue_exists is None and current.queue_note:
        warnings.append(current.queue_note)
    return Plan(request=request, topic_name=topic_name, topic_id=topic_id,
                subscription_name=name, steps=tuple(steps), satisfied=tuple(satisfied),
                warnings=tuple(warnings), blockers=tuple(blockers), principal_id=principal)


def _why_update(sub: EventSubscription, request: SetupRequest, now: datetime) -> str:
    reasons = []
    missing = [t for t in request.types if t not in sub.event_types]
    if missing:
        reasons.append(f"add {', '.join(missing)} events")
    if request.schema is not None and sub.schema != request.schema:
        # The update API takes eventDeliverySchema, but whether the service accepts a change
        # of it is unconfirmed (docs/azure.md): say what to do if it refuses.
        reasons.append(f"deliver in the {request.schema} schema (not {sub.schema}; should Azure "
                       "refuse to change it, delete the subscription and run this again)")
    if not sub.active(now):
        state = sub.state or "unknown"
        if state.lower() == "succeeded":
            state = "expired"
        reasons.append(f"re-provision it (state {state})")
    if not sub.subject_matches(request.configuration_name):
        reasons.append(f"clear its subject filter ({sub.subject_filter_text()}: never matches "
                       f"{request.configuration_name!r}, the subject of its events)")
    return ", ".join(reasons) or "rewrite it"


def delivery_advice(request: SetupRequest, current: Current, now: datetime) -> str | None:
    """What the operator should check when the wiring is right (nothing to change) but
    deliveries to the queue failed in the last 24 h; None when none failed (or the health is
    unknown). Only the subscriptions that deliver to the queue count, when Azure Monitor split
    the counts per subscription; otherwise the topic's counts, said as such."""
    health = current.health
    if health is None:
        return None
    ours = [s for s in current.subscriptions
            if s.active(now) and s.reaches(request.watched)
            and s.subject_matches(request.configuration_name)]
    if not ours:
        return None
    queue = f"queue {request.queue_name}"
    if health.by_subscription is not None:
        failing = [(s.name, h) for s in ours if (h := health.of(s.name)) is not None
                   and h.failing]
        if not failing:
            return None
        what = "; ".join(f"delivery to {queue} failed {h.failed} time"
                         f"{'s' if h.failed != 1 else ''} in 24 h through subscription {name} "
                         f"({h.dropped} dropped, {h.dead_lettered} dead-lettered)"
                         for name, h in failing)
    elif health.failing:
        what = (f"the system topic counts {health.failed} failed, {health.dropped} dropped and "
                f"{health.dead_lettered} dead-lettered deliveries in 24 h (over all its "
                "subscriptions)")
    else:
        return None
    identity = any(s.with_identity for s in ours)
    checks = [f"that {queue} exists in storage account {request.watched.account_name}",
              "that the account's network rules let Event Grid in (allow trusted Microsoft "
              "services)"]
    if identity:
        checks.append(f"that the topic's identity still holds {QUEUE_SENDER_ROLE_NAME} on it")
    return (f"{what}: nothing here can be changed by aumwatch; check {', '.join(checks)}. "
            "Failures before a fix stay in the 24 h count until they age out: `aumwatch "
            "subscriptions` shows the counts again")


# -- equivalent commands -----------------------------------------------------------------------
def _q(value: str) -> str:
    return shlex.quote(value)


def az_commands(plan: Plan) -> list[str]:
    """The ``az`` commands doing the plan's steps, each one shell-safe line.

    ``az eventgrid system-topic event-subscription create`` has no option for delivery with
    the topic's identity (azure-cli issue 26910), so the subscription is PUT with ``az rest``.
    A role assignment for a topic created in the same plan reads the topic's principal id with
    ``az eventgrid system-topic show`` when it runs.
    """
    req = plan.request
    out: list[str] = []
    topic_args = (f"--name {_q(plan.topic_name)} --resource-group {_q(plan.resource_group)} "
                  f"--subscription {_q(plan.topic_subscription_id)}")
    for step in plan.steps:
        if step.action is Action.UPDATE_TOPIC and "properties" not in step.body:
            out.append(f"az eventgrid system-topic update {topic_args} --mi-system-assigned")
        elif step.action in (Action.CREATE_TOPIC, Action.UPDATE_TOPIC):
            location = str(step.body.get("location") or "")
            out.append(f"az eventgrid system-topic create {topic_args} "
                       f"--location {_q(location)} --topic-type {_q(MAINTENANCE_TOPIC_TYPE)} "
                       f"--source {_q(req.configuration_id)} --mi-system-assigned")
        elif step.action in (Action.CREATE_SUBSCRIPTION, Action.UPDATE_SUBSCRIPTION):
            body = json.dumps(step.body, separators=(",", ":"))
            url = f"{step.target}?api-version={EVENTGRID_API_VERSION}"
            out.append(f"az rest --method put --url {_q(url)} --body {_q(body)}")
        elif step.action is Action.ASSIGN_ROLE:
            if plan.principal_id:
                assignee = _q(plan.principal_id)
            else:
                assignee = ('"$(az eventgrid system-topic show ' + topic_args
                            + ' --query identity.principalId --output tsv)"')
            out.append(f"az role assignment create --assignee-object-id {assignee} "
                       f"--assignee-principal-type ServicePrincipal "
                       f"--role {_q(QUEUE_SENDER_ROLE_ID)} --scope {_q(req.queue_account_id)}")
    return out


def _bicep_string(value: str) -> str:
    """A Bicep single-quoted string literal (backslash, quote, ``${`` and controls escaped)."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == "$":
            out.append("\\$")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\u{{{ord(ch):X}}}")
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


_BICEP_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _bicep_value(value: Any, depth: int) -> str:
    """A JSON value as a Bicep expression (objects and arrays over several lines)."""
    pad = "  " * depth
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        body = [f"{pad}  {k if _BICEP_KEY.match(str(k)) else _bicep_string(str(k))}: "
                f"{_bicep_value(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + "\n".join(body) + f"\n{pad}}}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        return ("[\n" + "\n".join(f"{pad}  {_bicep_value(v, depth + 1)}" for v in value)
                + f"\n{pad}]")
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    return _bicep_string(str(value))


def bicep(plan: Plan) -> str:
    """A Bicep snippet (resource-group scope: the topic's group) for exactly the missing parts.

    A part that exists already is declared ``existing`` when a missing part refers to it. A
    storage account in another resource group is referenced with ``scope: resourceGroup(...)``.
    """
    if not plan.steps:
        return ""
    req = plan.request
    s = _bicep_string
    lines: list[str] = []
    topic_step = plan.step(Action.CREATE_TOPIC) or plan.step(Action.UPDATE_TOPIC)
    sub_step = plan.step(Action.CREATE_SUBSCRIPTION) or plan.step(Action.UPDATE_SUBSCRIPTION)
    role_step = plan.step(Action.ASSIGN_ROLE)
    api = EVENTGRID_API_VERSION
    if topic_step is not None:
        location = str(topic_step.body.get("location") or "")
        if topic_step.action is Action.UPDATE_TOPIC:
            # Bicep declares the whole topic: copy its tags in, or deploying removes them.
            lines.append("// An existing topic: add its tags here, or the deployment removes "
                         "them.")
        lines += [
            f"resource topic 'Microsoft.EventGrid/systemTopics@{api}' = {{",
            f"  name: {s(plan.topic_name)}",
            f"  location: {s(location)}",
            "  identity: {",
            "    type: 'SystemAssigned'",
            "  }",
            "  properties: {",
            f"    source: {s(req.configuration_id)}",
            f"    topicType: {s(MAINTENANCE_TOPIC_TYPE)}",
            "  }",
            "}",
        ]
    elif sub_step is not None or role_step is not None:
        lines += [
            f"resource topic 'Microsoft.EventGrid/systemTopics@{api}' existing = {{",
            f"  name: {s(plan.topic_name)}",
            "}",
        ]
    if sub_step is not None:
        lines += [
            "",
            f"resource eventSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@"
            f"{api}' = {{",
            "  parent: topic",
            f"  name: {s(plan.subscription_name)}",
            f"  properties: {_bicep_value(sub_step.body['properties'], 1)}",
        ]
        if role_step is not None and _same_group(plan):
            # The first delivery needs the role: create it before the subscription.
            lines.append("  dependsOn: [queueSender]")
        lines.append("}")
    if role_step is not None:
        account_rg = id_segment(req.queue_account_id, "resourceGroups")
        account_sub = id_segment(req.queue_account_id, "subscriptions")
        account_name = account_name_of(req.queue_account_id)
        same_group = (account_rg.lower() == plan.resource_group.lower()
                      and account_sub.lower() == plan.topic_subscription_id.lower())
        role_def = ("subscriptionResourceId('Microsoft.Authorization/roleDefinitions', "
                    f"{s(QUEUE_SENDER_ROLE_ID)})")
        if same_group:
            principal = "topic.identity.principalId"
            lines += ["", "// Storage Queue Data Message Sender for the topic's identity."]
        else:
            # A role assignment is deployed at its account's resource group: a second
            # deployment there, given the topic's principal id.
            principal = "topicPrincipalId"
            lines += [
                "",
                f"// --- deploy the rest in resource group {account_rg} of subscription "
                f"{account_sub} ---",
                "// Storage Queue Data Message Sender for the topic's identity.",
                "param topicPrincipalId string",
            ]
        lines += [
            "resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {",
            f"  name: {s(account_name)}",
            "}",
            "",
            f"resource queueSender 'Microsoft.Authorization/roleAssignments@"
            f"{ROLE_ASSIGNMENTS_API_VERSION}' = {{",
            "  scope: account",
            # A resource's name must be known when the deployment starts: the topic's id
            # is, its principal id is not.
            f"  name: guid(account.id, {'topic.id' if same_group else principal}, "
            f"{s(QUEUE_SENDER_ROLE_ID)})",
            "  properties: {",
            f"    roleDefinitionId: {role_def}",
            f"    principalId: {principal}",
            "    principalType: 'ServicePrincipal'",
            "  }",
            "}",
        ]
    return "\n".join(lines) + "\n"


def _same_group(plan: Plan) -> bool:
    account = plan.request.queue_account_id
    return (id_segment(account, "resourceGroups").lower() == plan.resource_group.lower()
            and id_segment(account, "subscriptions").lower()
            == plan.topic_subscription_id.lower())


__all__ = [
    "EVENTGRID_API_VERSION", "EVENT_TYPE_NAMES", "QUEUE_SENDER_ROLE_ID", "QUEUE_SENDER_ROLE_NAME",
    "ROLE_ASSIGNMENTS_API_VERSION", "SCHEMA_VALUES", "SENDING_ROLE_IDS", "SUBSCRIPTION_NAME",
    "Action", "Current", "Plan", "SetupError", "SetupRequest", "Step",
    "account_name_from_connection_string", "account_name_from_url", "account_name_of",
    "az_commands", "bicep", "check_account_id", "delivery_advice", "parse_schema",
    "parse_types", "plan_setup",
    "queue_resource_id", "role_allows_sending", "role_assignment_name", "role_body",
    "role_definition_id", "subscription_body", "topic_body", "topic_name_for",
    "updated_subscription_body", "valid_account_name",
]
