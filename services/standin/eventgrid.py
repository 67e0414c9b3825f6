"""Event Grid in the stand-in: system topics and their event subscriptions.

This is the wiring between a maintenance configuration and the queue aumwatch reads
(docs/azure.md "Event Grid wiring"). The state lives in :class:`EventGrid`, built by the
:class:`~services.standin.world.World` (seen here only as a :class:`~services.standin.arm.Host`)
and guarded by its lock; role assignments are :mod:`services.standin.roles`' and the delivery
counts :mod:`services.standin.metrics`'. The HTTP side (in :mod:`services.standin.server`)
calls the ``arm_*`` methods here, which answer ``(status, body, headers)`` in Azure's shapes;
the scenario engine asks :meth:`EventGrid.routes` where an event goes and reports what became
of each delivery (:meth:`EventGrid.record`, per event subscription), so that the metrics count
what the stand-in really delivered or failed.

Stances (the facts and the unconfirmed points are in docs/azure.md):

* PUT and DELETE of a topic or a subscription are long-running as in ARM: 201/200 (PUT) or
  202 (DELETE) with an ``Azure-AsyncOperation`` header and ``Retry-After: 1``; the operation
  is already Succeeded when first polled, and the resource GET answers ``Succeeded`` at once.
* A topic must name an existing configuration as its source; one source has one topic.
* A webhook destination never shows its ``endpointUrl`` (only ``endpointBaseUrl``, the URL
  without its query); ``getFullUrl`` is the one way to read it back.
* Delivery: each event is published to the configuration's topic (if any); every subscription
  whose provisioning state is Succeeded (or the passing Updating), that has not expired,
  whose ``includedEventTypes`` contain the type (null: every type) and whose subject filters
  let the subject (the configuration's name) through matches it (advanced filters are not
  played). A match is delivered to a Storage Queue on the Azurite account
  (``devstoreaccount1``) only; anything else (a webhook, a function, another account, a
  missing queue, an endpoint made broken, a resource identity without a queue-send role)
  fails once and is then dead-lettered (a dead-letter destination is set) or dropped. The
  retry schedule is not played: a failure counts one failed attempt.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from services.domain.clock import iso_z
from services.domain.wiring import id_segment
from services.standin.arm import (
    AZURITE_ACCOUNT,
    Answer,
    Host,
    arm_error,
    copy_json,
    method_not_allowed,
    parse_time,
)
from services.standin.arm import bad_request as _bad
from services.standin.events_out import POST_EVENT_TYPE, PRE_EVENT_TYPE
from services.standin.metrics import MetricResource, Metrics
from services.standin.roles import ROLE_QUEUE_SENDER, RoleAssignments

TOPIC_TYPE = "Microsoft.Maintenance.MaintenanceConfigurations"
TOPIC_RESOURCE_TYPE = "Microsoft.EventGrid/systemTopics"
SUBSCRIPTION_RESOURCE_TYPE = "Microsoft.EventGrid/systemTopics/eventSubscriptions"
#: The event types a maintenance configuration's topic publishes.
EVENT_TYPES: tuple[str, ...] = (PRE_EVENT_TYPE, POST_EVENT_TYPE)
#: Published api-versions of Microsoft.EventGrid the stand-in accepts (the SDK's default:
#: 2025-02-15).
EVENTGRID_API_VERSIONS: frozenset[str] = frozenset({
    "2020-04-01-preview", "2020-06-01", "2020-10-15-preview", "2021-06-01-preview",
    "2021-10-15-preview", "2021-12-01", "2022-06-15", "2023-06-01-preview",
    "2023-12-15-preview", "2024-06-01-preview", "2024-12-15-preview", "2025-02-15",
})
SCHEMAS = {"eventgridschema": "EventGridSchema", "cloudeventschemav1_0": "CloudEventSchemaV1_0"}
_NAME_RE = re.compile(r"[A-Za-z0-9-]{3,64}")
_TOPIC_NAME_RE = re.compile(r"[A-Za-z0-9-]{3,128}")
_QUEUE_RE = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")

#: Ready-made wirings of a configuration (:meth:`EventGrid.wire`; the scenario file's
#: ``wiring``, documented in services/standin/scenario_file.py).
WIRINGS = ("ok", "no-topic", "missing", "pre-only", "post-only", "other-queue", "webhook",
           "function", "disabled", "awaiting", "expired", "failing", "dropping", "identity",
           "identity-no-role")
#: Names the wirings use.
SUBSCRIPTION_NAME = "aumwatch-events"
OTHER_QUEUE = "aum-events-other"
DEAD_LETTER_CONTAINER = "aum-deadletters"
#: A webhook whose query string holds a key (it must never reach any output).
WEBHOOK_URL = "https://hooks.example.invalid/api/maintenance-events?code=standin-secret-key-42"


def schema_word(delivery_schema: str) -> str:
    """The events_out schema name for an ``eventDeliverySchema`` value."""
    return "cloudevents" if delivery_schema == "CloudEventSchemaV1_0" else "eventgrid"


@dataclass
class SystemTopic:
    id: str
    name: str
    location: str
    source: str
    topic_type: str
    tags: dict[str, Any]
    identity: dict[str, Any] | None
    metric_resource_id: str
    changed: datetime
    provisioning_state: str = "Succeeded"

    def arm(self) -> dict[str, Any]:
        """The topic as ARM returns it."""
        out: dict[str, Any] = {
            "id": self.id, "name": self.name, "type": TOPIC_RESOURCE_TYPE,
            "location": self.location, "tags": dict(self.tags),
            "properties": self.properties(),
        }
        if self.identity is not None:
            out["identity"] = dict(self.identity)
        return out

    def properties(self) -> dict[str, Any]:
        return {"provisioningState": self.provisioning_state, "source": self.source,
                "topicType": self.topic_type, "metricResourceId": self.metric_resource_id}

    @property
    def principal_id(self) -> str | None:
        if self.identity and "SystemAssigned" in str(self.identity.get("type", "")):
            return str(self.identity.get("principalId") or "") or None
        return None


@dataclass
class EventSubscription:
    id: str
    topic_id: str
    name: str
    properties: dict[str, Any]  # as stored: the full webhook URL included
    provisioning_state: str = "Succeeded"

    def arm(self) -> dict[str, Any]:
        """The subscription as ARM returns it: a webhook's ``endpointUrl`` is never shown."""
        props = {key: copy_json(value) for key, value in self.properties.items()}
        props["topic"] = self.topic_id
        props["provisioningState"] = self.provisioning_state
        for holder in (props, props.get("deliveryWithResourceIdentity")):
            if isinstance(holder, dict):
                dest = holder.get("destination")
                if isinstance(dest, dict) and dest.get("endpointType") == "WebHook":
                    dest_props = dest.setdefault("properties", {})
                    url = dest_props.pop("endpointUrl", None)
                    if url:
                        dest_props["endpointBaseUrl"] = base_url(str(url))
        return {"id": self.id, "name": self.name, "type": SUBSCRIPTION_RESOURCE_TYPE,
                "properties": props}

    def destination(self) -> tuple[dict[str, Any], bool]:
        """(destination, delivered with the topic's identity)."""
        dwri = self.properties.get("deliveryWithResourceIdentity")
        if isinstance(dwri, dict) and isinstance(dwri.get("destination"), dict):
            return dwri["destination"], True
        dest = self.properties.get("destination")
        return (dest if isinstance(dest, dict) else {}), False

    def has_dead_letter(self) -> bool:
        return bool(self.properties.get("deadLetterDestination")
                    or self.properties.get("deadLetterWithResourceIdentity"))

    def expired(self, at: datetime) -> bool:
        text = self.properties.get("expirationTimeUtc")
        expiry = parse_time(text) if isinstance(text, str) else None
        return expiry is not None and at >= expiry

    def schema(self) -> str:
        return str(self.properties.get("eventDeliverySchema") or "EventGridSchema")

    def subject_matches(self, subject: str) -> bool:
        """Event Grid's subject filters: a prefix and a suffix, without case unless
        ``isSubjectCaseSensitive``."""
        flt = self.properties.get("filter") or {}
        begins = str(flt.get("subjectBeginsWith") or "")
        ends = str(flt.get("subjectEndsWith") or "")
        if flt.get("isSubjectCaseSensitive") is not True:
            subject, begins, ends = subject.lower(), begins.lower(), ends.lower()
        return subject.startswith(begins) and subject.endswith(ends)


@dataclass(frozen=True)
class Route:
    """Where one matched subscription sends an event: a queue, or a failure (with why)."""

    subscription_id: str
    subscription_name: str
    topic_id: str
    schema: str  # eventgrid | cloudevents
    queue: str | None  # the Azurite queue; None: the delivery fails
    failure: str | None
    dead_letter: bool


def base_url(url: str) -> str:
    """A webhook URL without its query string and fragment (where a key may hide)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class EventGrid:
    """Topics and subscriptions of one World; deliveries are counted in ``metrics`` and
    delivery with a topic's identity is checked against ``roles``.

    Only system topics are rows of the Resource Graph tables, so only their changes go
    through ``World.mutate`` (which bumps ``World.version`` and so reloads the tables);
    subscriptions and broken endpoints change under the plain lock."""

    def __init__(self, world: Host, *, roles: RoleAssignments, metrics: Metrics) -> None:
        self.world = world
        self.roles = roles
        self.metrics = metrics
        self._topics: dict[str, SystemTopic] = {}  # id lower -> topic
        self._subs: dict[str, EventSubscription] = {}  # id lower -> subscription
        self._broken: set[str] = set()  # subscription ids (lower) whose endpoint fails
        self._operations: dict[str, dict[str, Any]] = {}

    # -- reads -----------------------------------------------------------------------
    def topics(self, subscription_id: str | None = None,
               resource_group: str | None = None) -> list[SystemTopic]:
        with self.world.lock:
            out = []
            for topic in self._topics.values():
                topic_sub = id_segment(topic.id, "subscriptions").lower()
                if subscription_id and topic_sub != subscription_id.lower():
                    continue
                topic_group = id_segment(topic.id, "resourceGroups").lower()
                if resource_group and topic_group != resource_group.lower():
                    continue
                out.append(topic)
            return sorted(out, key=lambda t: t.id.lower())

    def get_topic(self, topic_id: str) -> SystemTopic | None:
        with self.world.lock:
            return self._topics.get(topic_id.lower().rstrip("/"))

    def topic_for_source(self, source: str) -> SystemTopic | None:
        with self.world.lock:
            return next((t for t in self._topics.values()
                         if t.source.lower() == source.lower()), None)

    def subscriptions_of(self, topic_id: str) -> list[EventSubscription]:
        with self.world.lock:
            prefix = topic_id.lower().rstrip("/") + "/eventsubscriptions/"
            return sorted((s for key, s in self._subs.items() if key.startswith(prefix)),
                          key=lambda s: s.name.lower())

    def get_subscription(self, subscription_id: str) -> EventSubscription | None:
        with self.world.lock:
            return self._subs.get(subscription_id.lower().rstrip("/"))

    def metric_resource(self, resource_id: str) -> MetricResource | None:
        """The topic as the metrics API knows it (None: not a topic of this World)."""
        topic = self.get_topic(resource_id)
        if topic is None:
            return None
        return MetricResource(topic.id, topic.location, TOPIC_RESOURCE_TYPE)

    # -- changes used by the scenario engine and tests ---------------------------------
    def put_topic(self, topic_id: str, body: dict[str, Any]) -> Answer:
        """Create or update a system topic from its ARM body (validated as ARM does)."""
        with self.world.mutate():
            return self._put_topic(topic_id, body)

    def put_subscription(self, subscription_id: str, body: dict[str, Any], *,
                         provisioning_state: str = "Succeeded") -> Answer:
        """Create or update an event subscription from its ARM body."""
        with self.world.lock:
            return self._put_subscription(subscription_id, body, provisioning_state)

    def set_provisioning_state(self, subscription_id: str, state: str) -> None:
        """Put a subscription in another provisioning state (Failed, AwaitingManualAction...)."""
        with self.world.lock:
            sub = self._subs.get(subscription_id.lower())
            if sub is None:
                raise KeyError(subscription_id)
            sub.provisioning_state = state

    def set_broken(self, subscription_id: str, broken: bool = True) -> bool:
        """Make a subscription's endpoint fail every delivery (or work again); False when
        the subscription does not exist."""
        with self.world.lock:
            key = subscription_id.lower().rstrip("/")
            if key not in self._subs:
                return False
            if broken:
                self._broken.add(key)
            else:
                self._broken.discard(key)
            return True

    def broken(self) -> list[str]:
        with self.world.lock:
            return sorted(self._subs[k].id for k in self._broken if k in self._subs)

    def clear_broken(self) -> None:
        with self.world.lock:
            self._broken.clear()

    def wire(self, configuration_id: str, wiring: str = "ok", *, queue: str, account_id: str,
             schema: str = "eventgrid", now: datetime | None = None,
             ) -> tuple[str | None, str | None]:
        """Give a configuration one of the ready-made :data:`WIRINGS`: a system topic
        ``<configuration>-events`` (its resource group and location) and an event
        subscription ``aumwatch-events`` delivering to ``queue`` on ``account_id`` (a storage
        account of the World), made through the same checks as the ARM API. ``schema`` is
        the events_out schema (cloudevents gives CloudEventSchemaV1_0). Returns (topic id,
        subscription id), None where the wiring has none. Raises ValueError when ARM would
        refuse it (e.g. the configuration or the account does not exist). An ``other-queue``
        wiring delivers to :data:`OTHER_QUEUE`, which the caller creates."""
        if wiring not in WIRINGS:
            raise ValueError(f"unknown wiring {wiring!r} (one of {', '.join(WIRINGS)})")
        config = self.world.get_configuration(configuration_id)
        if config is None:
            raise ValueError(f"no configuration {configuration_id}")
        if wiring == "no-topic":
            return None, None
        sub = id_segment(config["id"], "subscriptions")
        group = id_segment(config["id"], "resourceGroups")
        topic_id = (f"/subscriptions/{sub}/resourceGroups/{group}/providers/"
                    f"Microsoft.EventGrid/systemTopics/{config['name']}-events")
        body: dict[str, Any] = {"location": config.get("location") or "westeurope",
                                "properties": {"source": config["id"], "topicType": TOPIC_TYPE}}
        if wiring.startswith("identity"):
            body["identity"] = {"type": "SystemAssigned"}
        status, answer, _ = self.put_topic(topic_id, body)
        if status >= 400:
            raise ValueError(str(answer["error"]["message"]))
        if wiring == "missing":
            return topic_id, None
        types = {"pre-only": [PRE_EVENT_TYPE], "post-only": [POST_EVENT_TYPE]}.get(
            wiring, [PRE_EVENT_TYPE, POST_EVENT_TYPE])
        dest = queue_destination(account_id, OTHER_QUEUE if wiring == "other-queue" else queue)
        if wiring == "webhook":
            dest = {"endpointType": "WebHook", "properties": {"endpointUrl": WEBHOOK_URL}}
        elif wiring == "function":
            dest = {"endpointType": "AzureFunction", "properties": {"resourceId": (
                f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Web"
                "/sites/aum-hooks/functions/OnMaintenanceEvent")}}
        props: dict[str, Any] = {
            "filter": {"includedEventTypes": types},
            "eventDeliverySchema": ("CloudEventSchemaV1_0" if schema == "cloudevents"
                                    else "EventGridSchema"),
            "destination": dest,
        }
        if wiring.startswith("identity"):
            props["deliveryWithResourceIdentity"] = {"identity": {"type": "SystemAssigned"},
                                                     "destination": props.pop("destination")}
        if wiring == "expired":
            at = now if now is not None else self.world.clock.now()
            props["expirationTimeUtc"] = iso_z(at - timedelta(hours=1))
        if wiring == "failing":
            props["deadLetterDestination"] = {
                "endpointType": "StorageBlob",
                "properties": {"resourceId": account_id,
                               "blobContainerName": DEAD_LETTER_CONTAINER}}
        state = {"disabled": "Failed", "awaiting": "AwaitingManualAction"}.get(wiring,
                                                                              "Succeeded")
        sub_id = f"{topic_id}/eventSubscriptions/{SUBSCRIPTION_NAME}"
        status, answer, _ = self.put_subscription(sub_id, {"properties": props},
                                                  provisioning_state=state)
        if status >= 400:
            raise ValueError(str(answer["error"]["message"]))
        if wiring in ("failing", "dropping"):
            self.set_broken(sub_id)
        if wiring == "identity":
            topic = self.get_topic(topic_id)
            assert topic is not None and topic.principal_id is not None
            self.roles.add(account_id, ROLE_QUEUE_SENDER, topic.principal_id)
        return topic_id, sub_id

    # -- routing and metrics -------------------------------------------------------------
    def routes(self, configuration_id: str, event_type: str, at: datetime,
               *, count: bool = True) -> list[Route]:
        """Where an event of ``event_type`` from a configuration goes at ``at``: one route per
        matching subscription. With ``count``, the publish and the matches are counted and each
        route that fails is counted as a failed attempt and a dead-letter or a drop. The
        subject filters are applied to the event's subject, the configuration's name."""
        with self.world.lock:
            topic = self.topic_for_source(configuration_id)
            if topic is None or topic.provisioning_state != "Succeeded":
                return []
            config = self.world.get_configuration(configuration_id)
            subject = str((config or {}).get("name") or configuration_id.rsplit("/", 1)[-1])
            out = []
            for sub in self.subscriptions_of(topic.id):
                # Updating passes by itself: the subscription delivers with its settings of
                # before the update meanwhile (a stance, docs/azure.md "Event Grid wiring").
                if sub.provisioning_state not in ("Succeeded", "Updating") or sub.expired(at):
                    continue
                types = (sub.properties.get("filter") or {}).get("includedEventTypes")
                if types and event_type.lower() not in {str(t).lower() for t in types}:
                    continue
                if not sub.subject_matches(subject):
                    continue
                out.append(self._route(topic, sub))
            if count:
                self.record(topic.id, "PublishSuccessCount", at)
                for route in out:
                    self.record(topic.id, "MatchedEventCount", at,
                                subscription=route.subscription_name)
                if not out:
                    self.record(topic.id, "UnmatchedEventCount", at)
                for route in out:
                    if route.queue is None:
                        self.record_failure(route, at)
            return out

    def _route(self, topic: SystemTopic, sub: EventSubscription) -> Route:
        dest, with_identity = sub.destination()
        raw = dest.get("properties")
        props: dict[str, Any] = raw if isinstance(raw, dict) else {}
        kind = str(dest.get("endpointType") or "")
        failure: str | None = None
        queue: str | None = None
        if sub.id.lower() in self._broken:
            failure = "the endpoint is broken (injected)"
        elif kind != "StorageQueue":
            failure = f"a {kind or 'missing'} endpoint cannot be reached from the stand-in"
        else:
            account = str(props.get("resourceId") or "")
            if account.rstrip("/").rsplit("/", 1)[-1].lower() != AZURITE_ACCOUNT or \
                    self.world.get_storage_account(account) is None:
                failure = f"storage account {account!r} is not the Azurite account"
            elif with_identity and not self.roles.may_send(topic.principal_id, account):
                failure = ("the topic's identity has no role that sends queue messages on "
                           f"{account}")
            else:
                queue = str(props.get("queueName") or "")
        return Route(subscription_id=sub.id, subscription_name=sub.name, topic_id=topic.id,
                     schema=schema_word(sub.schema()), queue=queue, failure=failure,
                     dead_letter=sub.has_dead_letter())

    def record(self, topic_id: str, metric: str, at: datetime, count: int = 1, *,
               subscription: str = "") -> None:
        """Count ``count`` of ``metric`` for a topic at ``at`` (the stand-in's clock), through
        event subscription ``subscription`` (its name) for the per-delivery metrics."""
        self.metrics.record(topic_id, metric, at, count, subscription=subscription)

    def record_failure(self, route: Route, at: datetime) -> None:
        """A delivery that failed: one failed attempt, then a dead-letter or a drop."""
        self.record(route.topic_id, "DeliveryAttemptFailCount", at,
                    subscription=route.subscription_name)
        self.record(route.topic_id,
                    "DeadLetteredCount" if route.dead_letter else "DroppedEventCount", at,
                    subscription=route.subscription_name)

    # -- ARM: system topics ---------------------------------------------------------------
    def _put_topic(self, topic_id: str, body: Any) -> Answer:
        if not isinstance(body, dict):
            return _bad("The request body must be a JSON object.", "InvalidRequestContent")
        name = topic_id.rstrip("/").rsplit("/", 1)[-1]
        if not _TOPIC_NAME_RE.fullmatch(name):
            return _bad(f"System topic name '{name}' is invalid: use 3-128 letters, digits "
                        "and '-'.", "InvalidResourceName")
        props = body.get("properties")
        if not isinstance(props, dict):
            return _bad("The system topic needs its properties (source, topicType).")
        location = body.get("location")
        source = props.get("source")
        topic_type = props.get("topicType")
        if not isinstance(location, str) or not location:
            return _bad("The system topic needs a location.", "LocationRequired")
        if not isinstance(source, str) or not source:
            return _bad("The system topic needs properties.source.")
        if not isinstance(topic_type, str) or not topic_type:
            return _bad("The system topic needs properties.topicType.")
        existing = self._topics.get(topic_id.lower())
        if existing is not None:
            if existing.source.lower() != source.lower() or \
                    existing.topic_type.lower() != topic_type.lower():
                return _bad("The source and the topic type of a system topic cannot be changed.")
        else:
            config = self.world.get_configuration(source)
            if config is None:
                return _bad(f"The source resource '{source}' does not exist or is not "
                            "accessible.", "InvalidRequest")
            if topic_type.lower() != TOPIC_TYPE.lower():
                return _bad(f"Topic type '{topic_type}' does not match the source resource; "
                            f"use '{TOPIC_TYPE}'.")
            other = self.topic_for_source(source)
            if other is not None:
                return _bad(f"Only one system topic is allowed per source. The source "
                            f"'{source}' already has system topic '{other.id}'.")
            allowed = {str(config.get("location") or "").lower(), "global"}
            if location.lower().replace(" ", "") not in allowed:
                return _bad(f"The system topic's location '{location}' must be the source's "
                            f"location '{config.get('location')}' or 'global'.",
                            "LocationNotAvailableForResourceType")
        identity = body.get("identity")
        stored_identity: dict[str, Any] | None = None
        if isinstance(identity, dict) and str(identity.get("type") or "None") != "None":
            stored_identity = dict(identity)
            if "SystemAssigned" in str(identity.get("type")):
                stored_identity["principalId"] = (
                    existing.principal_id if existing and existing.principal_id
                    else str(uuid.uuid5(uuid.NAMESPACE_URL, f"principal|{topic_id.lower()}")))
                stored_identity["tenantId"] = self.world.tenant_id
        elif identity is not None and not isinstance(identity, dict):
            return _bad("identity must be an object.", "InvalidRequestContent")
        rid = existing.id if existing else topic_id.rstrip("/")
        topic = SystemTopic(
            id=rid, name=rid.rsplit("/", 1)[-1], location=location, source=source,
            topic_type=topic_type if existing is None else existing.topic_type,
            tags=dict(body.get("tags") or {}), identity=stored_identity,
            metric_resource_id=(existing.metric_resource_id if existing else
                                str(uuid.uuid5(uuid.NAMESPACE_URL, f"metric|{rid.lower()}"))),
            changed=self.world.clock.now())
        self._topics[rid.lower()] = topic
        return (200 if existing else 201), topic.arm(), {}

    def arm_topic(self, method: str, topic_id: str, body: Any, endpoint: str,
                  api_version: str) -> Answer:
        """GET, PUT or DELETE of ``topic_id`` (already routed and api-version checked)."""
        if method == "GET":
            topic = self.get_topic(topic_id)
            if topic is None:
                return 404, _not_found("systemTopics", topic_id), {}
            return 200, topic.arm(), {}
        if method == "PUT":
            with self.world.mutate():
                status, answer, headers = self._put_topic(topic_id, body)
                if status >= 400:
                    return status, answer, headers
                answer["properties"]["provisioningState"] = (
                    "Creating" if status == 201 else "Updating")
                return status, answer, self._operation(topic_id, endpoint, api_version,
                                                       answer["location"])
        if method == "PATCH":
            with self.world.mutate():
                current = self._topics.get(topic_id.lower().rstrip("/"))
                if current is None:
                    return 404, _not_found("systemTopics", topic_id), {}
                if not isinstance(body, dict):
                    return _bad("The request body must be a JSON object.",
                                "InvalidRequestContent")
                merged = current.arm()
                if body.get("tags") is not None:
                    merged["tags"] = body["tags"]
                if body.get("identity") is not None:
                    merged["identity"] = body["identity"]
                status, answer, headers = self._put_topic(current.id, merged)
                if status >= 400:
                    return status, answer, headers
                answer["properties"]["provisioningState"] = "Updating"
                return 200, answer, self._operation(topic_id, endpoint, api_version,
                                                    answer["location"])
        if method == "DELETE":
            with self.world.mutate():
                topic = self._topics.pop(topic_id.lower().rstrip("/"), None)
                if topic is None:
                    return 204, None, {}
                for sub in self.subscriptions_of(topic.id):
                    self._subs.pop(sub.id.lower(), None)
                    self._broken.discard(sub.id.lower())
                return 202, None, self._operation(topic_id, endpoint, api_version,
                                                  topic.location)
        return method_not_allowed(method)

    def arm_list_topics(self, subscription_id: str, resource_group: str | None) -> Answer:
        return 200, {"value": [t.arm() for t in self.topics(subscription_id, resource_group)]}, {}

    # -- ARM: event subscriptions ----------------------------------------------------------
    def _put_subscription(self, subscription_id: str, body: Any,
                          provisioning_state: str) -> Answer:
        pieces = re.split(r"/eventsubscriptions/", subscription_id.rstrip("/"),
                          flags=re.IGNORECASE)
        topic_id, name = pieces[0], pieces[-1] if len(pieces) == 2 else ""
        topic = self._topics.get(topic_id.lower())
        if topic is None:
            return 404, _not_found("systemTopics", topic_id), {}
        if not _NAME_RE.fullmatch(name):
            return _bad(f"Event subscription name '{name}' is invalid: use 3-64 letters, "
                        "digits and '-'.", "InvalidResourceName")
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            return _bad("The event subscription needs its properties.", "InvalidRequestContent")
        props = copy_json(body["properties"])
        for readonly in ("topic", "provisioningState"):
            props.pop(readonly, None)
        problem = self._check_subscription(topic, props)
        if problem is not None:
            return _bad(problem)
        props.setdefault("eventDeliverySchema", "EventGridSchema")
        props["eventDeliverySchema"] = SCHEMAS[str(props["eventDeliverySchema"]).lower()]
        filt = props.setdefault("filter", {})
        filt.setdefault("subjectBeginsWith", "")
        filt.setdefault("subjectEndsWith", "")
        filt.setdefault("isSubjectCaseSensitive", False)
        filt.setdefault("enableAdvancedFilteringOnArrays", True)
        props.setdefault("labels", [])
        retry = props.setdefault("retryPolicy", {})
        retry.setdefault("maxDeliveryAttempts", 30)
        retry.setdefault("eventTimeToLiveInMinutes", 1440)
        existing = self._subs.get(subscription_id.lower().rstrip("/"))
        rid = existing.id if existing else f"{topic.id}/eventSubscriptions/{name}"
        sub = EventSubscription(id=rid, topic_id=topic.id, name=rid.rsplit("/", 1)[-1],
                                properties=props, provisioning_state=provisioning_state)
        self._subs[rid.lower()] = sub
        # 201 for a create and an update alike: the SDK accepts only 201 here.
        return 201, sub.arm(), {}

    def _check_subscription(self, topic: SystemTopic, props: dict[str, Any]) -> str | None:
        schema = props.get("eventDeliverySchema", "EventGridSchema")
        if not isinstance(schema, str) or schema.lower() not in SCHEMAS:
            return (f"eventDeliverySchema '{schema}' is not supported for a system topic; use "
                    "EventGridSchema or CloudEventSchemaV1_0.")
        filt = props.get("filter")
        if filt is not None and not isinstance(filt, dict):
            return "filter must be an object."
        types = (filt or {}).get("includedEventTypes")
        if types is not None:
            if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
                return "filter.includedEventTypes must be a list of event types."
            known = {t.lower() for t in EVENT_TYPES}
            unknown = [t for t in types if t.lower() not in known]
            if unknown:
                return (f"Event type(s) {', '.join(unknown)} are not supported by topic type "
                        f"{topic.topic_type}; supported: {', '.join(EVENT_TYPES)}.")
        retry = props.get("retryPolicy")
        if retry is not None:
            if not isinstance(retry, dict):
                return "retryPolicy must be an object."
            attempts = retry.get("maxDeliveryAttempts", 30)
            ttl = retry.get("eventTimeToLiveInMinutes", 1440)
            if not isinstance(attempts, int) or not 1 <= attempts <= 30:
                return "retryPolicy.maxDeliveryAttempts must be between 1 and 30."
            if not isinstance(ttl, int) or not 1 <= ttl <= 1440:
                return "retryPolicy.eventTimeToLiveInMinutes must be between 1 and 1440."
        expiry = props.get("expirationTimeUtc")
        if expiry is not None and (not isinstance(expiry, str) or parse_time(expiry) is None):
            return "expirationTimeUtc must be an ISO 8601 time."
        dwri = props.get("deliveryWithResourceIdentity")
        dest = props.get("destination")
        if dwri is not None:
            if dest is not None:
                return "Specify either destination or deliveryWithResourceIdentity, not both."
            if not isinstance(dwri, dict) or not isinstance(dwri.get("destination"), dict):
                return "deliveryWithResourceIdentity needs an identity and a destination."
            identity = dwri.get("identity") or {}
            if not isinstance(identity, dict) or identity.get("type") not in (
                    "SystemAssigned", "UserAssigned"):
                return "deliveryWithResourceIdentity.identity.type must be SystemAssigned or " \
                       "UserAssigned."
            if identity.get("type") == "SystemAssigned" and topic.principal_id is None:
                return (f"The system topic '{topic.name}' has no system-assigned identity; "
                        "enable it before delivering with it.")
            dest = dwri["destination"]
        if not isinstance(dest, dict):
            return "The event subscription needs a destination."
        return self._check_destination(dest)

    def _check_destination(self, dest: dict[str, Any]) -> str | None:
        kind = dest.get("endpointType")
        props = dest.get("properties")
        if not isinstance(props, dict):
            return "destination.properties is required."
        if kind == "StorageQueue":
            account = props.get("resourceId")
            queue = props.get("queueName")
            if not isinstance(account, str) or self.world.get_storage_account(account) is None:
                return f"The storage account '{account}' does not exist."
            if not isinstance(queue, str) or not _QUEUE_RE.fullmatch(queue):
                return f"Queue name '{queue}' is invalid."
            ttl = props.get("queueMessageTimeToLiveInSeconds")
            if ttl is not None and (not isinstance(ttl, int) or (ttl < 1 and ttl != -1)):
                return "queueMessageTimeToLiveInSeconds must be positive or -1."
            return None
        if kind == "WebHook":
            url = props.get("endpointUrl")
            if not isinstance(url, str) or urlsplit(url).scheme != "https" or \
                    not urlsplit(url).netloc:
                return "A webhook destination needs an https endpointUrl."
            return None
        if kind == "AzureFunction":
            fn = props.get("resourceId")
            if not isinstance(fn, str) or "/providers/microsoft.web/sites/" not in fn.lower():
                return "An Azure Function destination needs the function's resourceId."
            return None
        if kind in ("EventHub", "HybridConnection", "ServiceBusQueue", "ServiceBusTopic",
                    "MonitorAlert", "NamespaceTopic", "PartnerDestination"):
            if not props.get("resourceId"):
                return f"A {kind} destination needs a resourceId."
            return None
        return f"Endpoint type '{kind}' is not valid."

    def arm_subscription(self, method: str, subscription_id: str, body: Any, endpoint: str,
                         api_version: str) -> Answer:
        """GET, PUT or DELETE of an event subscription of a system topic."""
        topic_id = subscription_id.rsplit("/", 2)[0]
        topic = self.get_topic(topic_id)
        if topic is None:
            return 404, _not_found("systemTopics", topic_id), {}
        if method == "GET":
            sub = self.get_subscription(subscription_id)
            if sub is None:
                return 404, _not_found("eventSubscriptions", subscription_id), {}
            return 200, sub.arm(), {}
        if method == "PUT":
            with self.world.lock:
                existed = subscription_id.lower().rstrip("/") in self._subs
                status, answer, headers = self._put_subscription(subscription_id, body,
                                                                 "Succeeded")
                if status >= 400:
                    return status, answer, headers
                answer["properties"]["provisioningState"] = "Updating" if existed else "Creating"
                return status, answer, self._operation(subscription_id, endpoint, api_version,
                                                       topic.location)
        if method == "PATCH":
            with self.world.lock:
                current = self._subs.get(subscription_id.lower().rstrip("/"))
                if current is None:
                    return 404, _not_found("eventSubscriptions", subscription_id), {}
                if not isinstance(body, dict):
                    return _bad("The request body must be a JSON object.",
                                "InvalidRequestContent")
                props = copy_json(current.properties)
                for key in ("destination", "filter", "labels", "expirationTimeUtc",
                            "eventDeliverySchema", "retryPolicy", "deadLetterDestination",
                            "deliveryWithResourceIdentity", "deadLetterWithResourceIdentity"):
                    if body.get(key) is not None:
                        props[key] = copy_json(body[key])
                        # One destination: a new one replaces the other form.
                        if key == "destination":
                            props.pop("deliveryWithResourceIdentity", None)
                        if key == "deliveryWithResourceIdentity":
                            props.pop("destination", None)
                status, answer, headers = self._put_subscription(
                    current.id, {"properties": props}, current.provisioning_state)
                if status >= 400:
                    return status, answer, headers
                answer["properties"]["provisioningState"] = "Updating"
                return status, answer, self._operation(subscription_id, endpoint, api_version,
                                                       topic.location)
        if method == "DELETE":
            with self.world.lock:
                sub = self._subs.pop(subscription_id.lower().rstrip("/"), None)
                if sub is None:
                    return 204, None, {}
                self._broken.discard(sub.id.lower())
                return 202, None, self._operation(subscription_id, endpoint, api_version,
                                                  topic.location)
        return method_not_allowed(method)

    def arm_list_subscriptions(self, topic_id: str) -> Answer:
        topic = self.get_topic(topic_id)
        if topic is None:
            return 404, _not_found("systemTopics", topic_id), {}
        return 200, {"value": [s.arm() for s in self.subscriptions_of(topic.id)]}, {}

    def arm_full_url(self, subscription_id: str) -> Answer:
        """``POST .../getFullUrl``: the webhook URL with its query (the one place it shows)."""
        sub = self.get_subscription(subscription_id)
        if sub is None:
            return 404, _not_found("eventSubscriptions", subscription_id), {}
        dest, _ = sub.destination()
        if dest.get("endpointType") != "WebHook":
            return _bad("getFullUrl is supported only for webhook destinations.")
        return 200, {"endpointUrl": (dest.get("properties") or {}).get("endpointUrl")}, {}

    def _operation(self, resource_id: str, endpoint: str, api_version: str,
                   location: str) -> dict[str, str]:
        op = str(uuid.uuid4()).upper()
        now = self.world.clock.now()
        self._operations[op.lower()] = {"id": op, "name": op, "status": "Succeeded",
                                        "startTime": iso_z(now), "endTime": iso_z(now)}
        sub = id_segment(resource_id, "subscriptions")
        loc = location.lower().replace(" ", "") or "global"
        url = (f"{endpoint}/subscriptions/{sub}/providers/Microsoft.EventGrid/locations/{loc}/"
               f"operationsStatus/{op}?api-version={api_version}")
        return {"Azure-AsyncOperation": url, "Retry-After": "1"}

    def arm_operation(self, operation_id: str, subscription_id: str, location: str) -> Answer:
        with self.world.lock:
            op = self._operations.get(operation_id.lower())
        if op is None:
            return 404, arm_error("OperationNotFound",
                                  f"The operation '{operation_id}' was not found."), {}
        body = dict(op)
        body["id"] = (f"/subscriptions/{subscription_id}/providers/Microsoft.EventGrid/"
                      f"locations/{location}/operationsStatus/{op['id']}")
        return 200, body, {}

    # -- Resource Graph rows -------------------------------------------------------------------
    def graph_rows(self) -> list[tuple[SystemTopic, dict[str, Any]]]:
        """(topic, its properties) for the ``resources`` table."""
        with self.world.lock:
            return [(t, t.properties()) for t in self._topics.values()]


def _not_found(kind: str, resource_id: str) -> dict[str, Any]:
    group = id_segment(resource_id, "resourceGroups")
    return arm_error("ResourceNotFound",
                     f"The Resource 'Microsoft.EventGrid/{kind}/"
                     f"{resource_id.rstrip('/').rsplit('/', 1)[-1]}' under resource group "
                     f"'{group}' was not found. For more details please go to "
                     "https://aka.ms/ARMResourceNotFoundFix")


def queue_destination(account_id: str, queue: str, *,
                      ttl_seconds: int | None = 604800) -> dict[str, Any]:
    """A Storage Queue destination object as ARM takes it."""
    props: dict[str, Any] = {"resourceId": account_id, "queueName": queue}
    if ttl_seconds is not None:
        props["queueMessageTimeToLiveInSeconds"] = ttl_seconds
    return {"endpointType": "StorageQueue", "properties": props}
