"""The Event Grid wiring of a maintenance configuration, and its verdict (pure).

A configuration's pre/post events reach a queue only through an Event Grid *system topic*
whose source is the configuration, and an *event subscription* on that topic naming the event
types, a schema and an endpoint (docs/azure.md, "Event Grid wiring"). This module turns the
REST shapes of those resources (camelCase JSON, as ARM, Resource Graph and the SDK models'
``serialize()`` give them) and the topic's Azure Monitor metrics into plain dataclasses, and
judges each configuration with one of six fixed verdicts (:class:`Verdict`).

Secrets: a webhook URL may carry a key in its query string. Only its host is ever kept; the
full URL never leaves :func:`parse_subscription`.

Delivery health is judged per event subscription when the metrics were read split by their
``EventSubscriptionName`` dimension (:func:`parse_subscription_metrics`): failures of another
subscription on the same topic (an old broken webhook) never make the watched queue's
verdict ``failing``. Subject filters are judged against the events' subject, the
configuration's name (docs/azure.md); advanced filters cannot be judged, and the reason says
so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from services.domain.clock import iso_z
from services.domain.events import POST_EVENT_TYPE, PRE_EVENT_TYPE, parse_event_time

#: ``properties.topicType`` of a maintenance configuration's system topic.
MAINTENANCE_TOPIC_TYPE = "Microsoft.Maintenance.MaintenanceConfigurations"
#: Resource type of a system topic (Resource Graph writes it lower-case).
SYSTEM_TOPIC_TYPE = "Microsoft.EventGrid/systemTopics"

#: How often the wiring is read again by default (settings: ``[events] wiring_refresh``): it
#: changes when someone sets it up, not from one poll to the next.
DEFAULT_WIRING_REFRESH = timedelta(minutes=5)
#: After a failed read, the next one waits this long (at most the refresh interval): a
#: failing read must not cost a quota slot at every poll.
WIRING_RETRY = timedelta(minutes=1)

#: The dimension of a system topic's delivery metrics that names the event subscription.
SUBSCRIPTION_DIMENSION = "EventSubscriptionName"
#: The delivery metrics that carry it (Azure Monitor refuses a split of the others).
SUBSCRIPTION_HEALTH_METRICS = (
    "MatchedEventCount",
    "DeliverySuccessCount",
    "DeliveryAttemptFailCount",
    "DroppedEventCount",
    "DeadLetteredCount",
)
#: Provisioning states that pass by themselves: the subscription keeps delivering with its
#: settings of before the update, so it is judged as it reads (never ``disabled``).
TRANSIENT_STATES = frozenset({"updating"})

#: The Azure Monitor metrics of a system topic that the health reads (docs/azure.md).
HEALTH_METRICS = (
    "PublishSuccessCount",
    "MatchedEventCount",
    "DeliverySuccessCount",
    "DeliveryAttemptFailCount",
    "DroppedEventCount",
    "DeadLetteredCount",
)


class Verdict(StrEnum):
    """The fixed verdicts of ``aumwatch subscriptions --json`` (issue 11's contract)."""

    OK = "ok"                          # pre and post delivered to the watched queue
    MISSING = "missing"                # no system topic or no event subscription
    PARTIAL = "partial"                # only pre or only post reaches the watched queue
    OTHER_ENDPOINT = "other-endpoint"  # subscribed, but not to the watched queue
    DISABLED = "disabled"              # no subscription is Succeeded and unexpired
    FAILING = "failing"                # failed or dropped deliveries in the last 24 h


#: A symbol per verdict, so a verdict never depends on colour alone.
VERDICT_SYMBOLS: Mapping[Verdict, str] = {
    Verdict.OK: "✓",
    Verdict.MISSING: "✗",
    Verdict.PARTIAL: "◐",
    Verdict.OTHER_ENDPOINT: "↪",
    Verdict.DISABLED: "⊘",
    Verdict.FAILING: "!",
}

_EVENT_KINDS = {PRE_EVENT_TYPE.lower(): "pre", POST_EVENT_TYPE.lower(): "post"}
_SCHEMAS = {"eventgridschema": "eventgrid", "cloudeventschemav1_0": "cloudevents",
            "custominputschema": "custom"}
_ENDPOINT_TYPES = {"storagequeue": "storagequeue", "webhook": "webhook",
                   "azurefunction": "azurefunction"}


@dataclass(frozen=True)
class QueueTarget:
    """The queue aumwatch watches: its storage account's name and the queue's name.

    Event Grid names a queue by the account's resource id; aumwatch knows the account by its
    URL or connection string. Account names are globally unique, so the name is enough to match.
    """

    account_name: str
    queue_name: str

    def matches(self, account_resource_id: str | None, queue_name: str | None) -> bool:
        """Whether a Storage Queue destination is this queue (names compare case-insensitively)."""
        if not account_resource_id or not queue_name:
            return False
        account = account_resource_id.rstrip("/").rsplit("/", 1)[-1]
        return (account.lower() == self.account_name.lower()
                and queue_name.lower() == self.queue_name.lower())


#: Storage account names: 3-24 lower-case letters and digits (so also safe in a query).
_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")


def account_name_from_url(url: str | None) -> str | None:
    """The storage account name of a queue endpoint URL (``https://NAME.queue.core...``, a
    private-link or sovereign-cloud host too), or of an emulator URL whose path starts with it
    (Azurite's ``http://127.0.0.1:10001/NAME``). None when neither gives a valid name."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
    except ValueError:
        return None
    label = host.split(".", 1)[0]
    if ".queue." in f".{host}." and _ACCOUNT_NAME.match(label):
        return label
    first = parts.path.strip("/").split("/", 1)[0].lower()
    return first if _ACCOUNT_NAME.match(first) else None


def account_name_from_connection_string(text: str | None) -> str | None:
    """``AccountName`` of a Storage connection string (else the name in its queue endpoint).

    Only the name is read; nothing of the string is ever put in a message.
    """
    if not text:
        return None
    fields: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    name = fields.get("accountname", "").lower()
    if _ACCOUNT_NAME.match(name):
        return name
    return account_name_from_url(fields.get("queueendpoint"))


def queue_account_name(connection_string: str | None, account_url: str | None) -> str | None:
    """The storage account of the watched queue, from the ``[queue]`` settings: the connection
    string's (which the event source prefers too), else the account URL's. The one place
    the dashboard's verdicts, ``subscriptions``, ``doctor`` and ``setup events`` learn it."""
    return (account_name_from_connection_string(connection_string)
            or account_name_from_url(account_url))


def valid_account_name(name: str) -> bool:
    """Storage account names are 3-24 lower-case letters and digits (so safe in a query)."""
    return bool(_ACCOUNT_NAME.match(name))


@dataclass(frozen=True)
class SystemTopic:
    """An Event Grid system topic whose source is a maintenance configuration."""

    id: str
    name: str
    resource_group: str
    subscription_id: str
    source: str
    location: str = ""
    provisioning_state: str = ""
    principal_id: str | None = None  # its system-assigned identity, when it has one

    @property
    def source_key(self) -> str:
        """The configuration id it belongs to, for case-insensitive lookups."""
        return self.source.strip().rstrip("/").lower()


@dataclass(frozen=True)
class EventSubscription:
    """One event subscription on a system topic. ``endpoint`` never holds a secret."""

    name: str
    id: str = ""
    event_types: tuple[str, ...] = ("pre", "post")  # "pre" / "post", or an unknown type as is
    schema: str = "eventgrid"          # eventgrid | cloudevents | custom | other as written
    endpoint_type: str = "other"       # storagequeue | webhook | azurefunction | other
    endpoint: str = ""                 # queue: <account id>/queues/<name>; webhook: host only
    queue_account_id: str | None = None
    queue_name: str | None = None
    state: str = ""                    # provisioningState as Azure writes it
    expiration: datetime | None = None
    dead_letter: str | None = None     # the dead-letter container, or None
    retry: str | None = None           # "30 attempts, 1440 min", or None
    filters: str | None = None         # advanced filters and subject filters, summarised
    with_identity: bool = False        # delivered with the topic's managed identity
    subject_begins: str = ""           # filter.subjectBeginsWith
    subject_ends: str = ""             # filter.subjectEndsWith
    subject_case_sensitive: bool = False  # filter.isSubjectCaseSensitive (default false)
    advanced_filters: int = 0          # how many advanced filters (never judged)

    def active(self, now: datetime) -> bool:
        """Succeeded (or being updated) and not expired: Event Grid delivers through it."""
        if self.state.lower() != "succeeded" and self.state.lower() not in TRANSIENT_STATES:
            return False
        return self.expiration is None or self.expiration > now

    def subject_matches(self, subject: str) -> bool:
        """Whether the subject filters let an event with ``subject`` through (Event Grid:
        a prefix and a suffix, both when both are set; without case unless
        ``isSubjectCaseSensitive``). Advanced filters are not judged here."""
        if not self.subject_case_sensitive:
            subject = subject.lower()
            begins, ends = self.subject_begins.lower(), self.subject_ends.lower()
        else:
            begins, ends = self.subject_begins, self.subject_ends
        return subject.startswith(begins) and subject.endswith(ends)

    def subject_filter_text(self) -> str:
        """The subject filters in words (for a reason)."""
        parts = []
        if self.subject_begins:
            parts.append(f"begins with {self.subject_begins!r}")
        if self.subject_ends:
            parts.append(f"ends with {self.subject_ends!r}")
        return " and ".join(parts) or "no subject filter"

    def reaches(self, watched: QueueTarget | None) -> bool:
        """Whether it delivers to the watched queue (any Storage Queue when none is known)."""
        if self.endpoint_type != "storagequeue":
            return False
        if watched is None:
            return True
        return watched.matches(self.queue_account_id, self.queue_name)

    def to_json(self) -> dict[str, Any]:
        """The object of the contract's ``subscriptions`` array, plus documented extras."""
        return {
            "name": self.name,
            "event_types": list(self.event_types),
            "schema": self.schema,
            "endpoint_type": self.endpoint_type,
            "endpoint": self.endpoint,
            "state": self.state,
            # extras
            "expiration": iso_z(self.expiration),
            "dead_letter": self.dead_letter,
            "retry": self.retry,
            "filters": self.filters,
            "with_identity": self.with_identity,
        }


@dataclass(frozen=True)
class DeliveryHealth:
    """Delivery counts of a system topic over a period (Azure Monitor metrics, totals)."""

    published: int = 0
    matched: int = 0
    delivered: int = 0
    failed: int = 0          # failed delivery attempts (a retried event counts each time)
    dropped: int = 0
    dead_lettered: int = 0
    since: datetime | None = None
    until: datetime | None = None
    #: The same counts per event subscription (name as Azure Monitor writes it, any case),
    #: when the metrics were read split by ``EventSubscriptionName``; None when they were not.
    by_subscription: tuple[tuple[str, DeliveryHealth], ...] | None = None

    @property
    def failing(self) -> bool:
        """Events were lost or had to be retried."""
        return self.failed > 0 or self.dropped > 0 or self.dead_lettered > 0

    def of(self, subscription_name: str) -> DeliveryHealth | None:
        """The counts of one event subscription (names compare without case): zero counts
        when the split was read and names none for it, None when no split was read."""
        if self.by_subscription is None:
            return None
        wanted = subscription_name.lower()
        found = [h for name, h in self.by_subscription if name.lower() == wanted]
        return found[0] if found else DeliveryHealth()

    def to_json(self) -> dict[str, Any]:
        """The contract's ``health`` object, plus documented extras."""
        return {
            "delivered": self.delivered,
            "failed": self.failed,
            "dropped": self.dropped,
            "dead_lettered": self.dead_lettered,
            # extras
            "published": self.published,
            "matched": self.matched,
            "since": iso_z(self.since),
            "until": iso_z(self.until),
            "by_subscription": None if self.by_subscription is None else {
                name: {"delivered": h.delivered, "failed": h.failed, "dropped": h.dropped,
                       "dead_lettered": h.dead_lettered, "matched": h.matched}
                for name, h in self.by_subscription},
        }


@dataclass(frozen=True)
class Wiring:
    """What aumwatch knows about one configuration's wiring, and the verdict on it."""

    configuration_id: str
    configuration_name: str
    verdict: Verdict
    reason: str
    topic: SystemTopic | None = None
    subscriptions: tuple[EventSubscription, ...] = ()
    health: DeliveryHealth | None = None
    # A part that could not be read (subscriptions or metrics): the verdict is then made
    # from what was read, and this says what is missing from it.
    error: str | None = None
    checked_at: datetime | None = None

    @property
    def symbol(self) -> str:
        """The verdict's symbol (words and a symbol, never colour alone)."""
        return VERDICT_SYMBOLS[self.verdict]

    def covers(self, kind: str, watched: QueueTarget | None, now: datetime) -> bool:
        """Whether an active subscription delivers ``kind`` ("pre"/"post") to the watched
        queue (its subject filter letting the configuration's events through)."""
        return any(s.active(now) and s.reaches(watched) and kind in s.event_types
                   and s.subject_matches(self.configuration_name)
                   for s in self.subscriptions)

    def to_json(self) -> dict[str, Any]:
        """One element of ``aumwatch subscriptions --json`` (fixed keys, then extras)."""
        return {
            "configuration_id": self.configuration_id,
            "configuration_name": self.configuration_name,
            "verdict": str(self.verdict),
            "system_topic": self.topic.id if self.topic else None,
            "subscriptions": [s.to_json() for s in self.subscriptions],
            "health": self.health.to_json() if self.health else None,
            # extras
            "reason": self.reason,
            "error": self.error,
            "checked_at": iso_z(self.checked_at),
        }


# -- parsing the REST shapes ------------------------------------------------------------------
def _get(mapping: Any, *path: str) -> Any:
    """``mapping[path[0]][path[1]]...`` with keys matched case-insensitively; None if absent."""
    current = mapping
    for key in path:
        if not isinstance(current, Mapping):
            return None
        if key in current:
            current = current[key]
            continue
        lowered = key.lower()
        current = next((v for k, v in current.items() if str(k).lower() == lowered), None)
    return current


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def id_segment(resource_id: str, name: str) -> str:
    """The segment after ``name`` in a resource id (``resourceGroups`` -> the group), or ""."""
    parts = resource_id.strip("/").split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower() == name.lower():
            return parts[i + 1]
    return ""


def parse_topic(row: Mapping[str, Any]) -> SystemTopic | None:
    """A system topic from a Resource Graph row or an ARM object; None if it is not one of a
    maintenance configuration (another topic type, or no source)."""
    properties = _get(row, "properties") or {}
    topic_type = _text(_get(properties, "topicType"))
    source = _text(_get(properties, "source"))
    if topic_type.lower() != MAINTENANCE_TOPIC_TYPE.lower() or not source:
        return None
    topic_id = _text(_get(row, "id"))
    identity = _get(row, "identity")
    principal = _get(identity, "principalId") if isinstance(identity, Mapping) else None
    return SystemTopic(
        id=topic_id,
        name=_text(_get(row, "name")) or topic_id.rstrip("/").rsplit("/", 1)[-1],
        resource_group=_text(_get(row, "resourceGroup")) or id_segment(topic_id, "resourceGroups"),
        subscription_id=(_text(_get(row, "subscriptionId"))
                         or id_segment(topic_id, "subscriptions")),
        source=source,
        location=_text(_get(row, "location")),
        provisioning_state=_text(_get(properties, "provisioningState")),
        principal_id=_text(principal) or None,
    )


def webhook_host(url: str | None) -> str:
    """Only the host (and port) of a webhook URL: its path and query may hold a key."""
    if not url:
        return ""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return ""
    return f"{host}:{port}" if host and port else host


def _event_types(included: Any) -> tuple[str, ...]:
    # No includedEventTypes filter means every event type of the topic: both.
    if not included:
        return ("pre", "post")
    out: list[str] = []
    for value in included if isinstance(included, list) else [included]:
        kind = _EVENT_KINDS.get(_text(value).lower(), _text(value))
        if kind not in out:
            out.append(kind)
    return tuple(out)


def _retry(policy: Any) -> str | None:
    if not isinstance(policy, Mapping):
        return None
    attempts = _get(policy, "maxDeliveryAttempts")
    ttl = _get(policy, "eventTimeToLiveInMinutes")
    parts = []
    if attempts is not None:
        parts.append(f"{attempts} attempts")
    if ttl is not None:
        parts.append(f"{ttl} min")
    return ", ".join(parts) or None


def _dead_letter(destination: Any) -> str | None:
    if not isinstance(destination, Mapping):
        return None
    props = _get(destination, "properties") or destination
    account = _text(_get(props, "resourceId"))
    container = _text(_get(props, "blobContainerName"))
    if not account and not container:
        return _text(_get(destination, "endpointType")) or None
    return f"{account}/blobServices/default/containers/{container}" if container else account


def _filters(flt: Any) -> str | None:
    if not isinstance(flt, Mapping):
        return None
    parts = []
    begins = _text(_get(flt, "subjectBeginsWith"))
    ends = _text(_get(flt, "subjectEndsWith"))
    if begins:
        parts.append(f"subject begins with {begins!r}")
    if ends:
        parts.append(f"subject ends with {ends!r}")
    advanced = _get(flt, "advancedFilters")
    if isinstance(advanced, list) and advanced:
        parts.append(f"{len(advanced)} advanced filter{'s' if len(advanced) != 1 else ''}")
    return "; ".join(parts) or None


def _time_or_none(value: Any) -> datetime | None:
    text = _text(value)
    if not text:
        return None
    try:
        return parse_event_time(text)
    except ValueError:
        return None


def parse_subscription(obj: Mapping[str, Any]) -> EventSubscription:
    """An event subscription from its REST JSON (ARM GET or the SDK model's ``serialize()``).

    The destination may sit at ``properties.destination`` or, for delivery with the topic's
    managed identity, at ``properties.deliveryWithResourceIdentity.destination``.
    """
    properties = _get(obj, "properties") or {}
    with_identity = False
    destination = _get(properties, "destination")
    if not isinstance(destination, Mapping):
        destination = _get(properties, "deliveryWithResourceIdentity", "destination")
        with_identity = isinstance(destination, Mapping)
    destination = destination if isinstance(destination, Mapping) else {}
    dest_props = _get(destination, "properties") or {}
    raw_type = _text(_get(destination, "endpointType"))
    endpoint_type = _ENDPOINT_TYPES.get(raw_type.lower(), "other")
    account_id: str | None = None
    queue: str | None = None
    if endpoint_type == "storagequeue":
        account_id = _text(_get(dest_props, "resourceId")) or None
        queue = _text(_get(dest_props, "queueName")) or None
        endpoint = f"{account_id or '?'}/queues/{queue or '?'}"
    elif endpoint_type == "webhook":
        # GET returns endpointBaseUrl; a create body (or an old API) may hold endpointUrl.
        endpoint = webhook_host(_text(_get(dest_props, "endpointBaseUrl"))
                                or _text(_get(dest_props, "endpointUrl")))
    else:
        endpoint = _text(_get(dest_props, "resourceId"))
        if not endpoint and raw_type:
            endpoint = raw_type
    raw_schema = _text(_get(properties, "eventDeliverySchema"))
    schema = _SCHEMAS.get(raw_schema.lower(), raw_schema.lower()) if raw_schema else "eventgrid"
    sub_id = _text(_get(obj, "id"))
    flt = _get(properties, "filter")
    advanced = _get(flt, "advancedFilters")
    case_sensitive = _get(flt, "isSubjectCaseSensitive")
    return EventSubscription(
        name=_text(_get(obj, "name")) or sub_id.rstrip("/").rsplit("/", 1)[-1],
        id=sub_id,
        event_types=_event_types(_get(properties, "filter", "includedEventTypes")),
        schema=schema,
        endpoint_type=endpoint_type,
        endpoint=endpoint,
        queue_account_id=account_id,
        queue_name=queue,
        state=_text(_get(properties, "provisioningState")),
        expiration=_time_or_none(_get(properties, "expirationTimeUtc")),
        dead_letter=_dead_letter(_get(properties, "deadLetterDestination")
                                 or _get(properties, "deadLetterWithResourceIdentity",
                                         "deadLetterDestination")),
        retry=_retry(_get(properties, "retryPolicy")),
        filters=_filters(flt),
        with_identity=with_identity,
        subject_begins=_text(_get(flt, "subjectBeginsWith")),
        subject_ends=_text(_get(flt, "subjectEndsWith")),
        subject_case_sensitive=case_sensitive is True
        or (isinstance(case_sensitive, str) and case_sensitive.lower() == "true"),
        advanced_filters=len(advanced) if isinstance(advanced, list) else 0,
    )


def _series_total(series: Any) -> float:
    total = 0.0
    for point in _get(series, "data") or []:
        value = _get(point, "total")
        if isinstance(value, int | float):
            total += value
    return total


def _dimension_value(series: Any, dimension: str) -> str | None:
    for item in _get(series, "metadatavalues") or []:
        name = _get(item, "name")
        label = _get(name, "value") if isinstance(name, Mapping) else name
        if _text(label).lower() == dimension.lower():
            return _text(_get(item, "value"))
    return None


def _health_from(totals: Mapping[str, int], since: datetime | None,
                 until: datetime | None) -> DeliveryHealth:
    count = lambda name: totals.get(name.lower(), 0)  # noqa: E731
    return DeliveryHealth(
        published=count("PublishSuccessCount"),
        matched=count("MatchedEventCount"),
        delivered=count("DeliverySuccessCount"),
        failed=count("DeliveryAttemptFailCount"),
        dropped=count("DroppedEventCount"),
        dead_lettered=count("DeadLetteredCount"),
        since=since,
        until=until,
    )


def parse_metrics(body: Mapping[str, Any], *, since: datetime | None = None,
                  until: datetime | None = None) -> DeliveryHealth:
    """Totals of a metrics response (``GET {topic}/providers/Microsoft.Insights/metrics``).

    Each metric's ``timeseries[].data[].total`` values are summed; a missing metric counts 0.
    """
    totals: dict[str, int] = {}
    for metric in _get(body, "value") or []:
        name = _text(_get(metric, "name", "value")).lower()
        total = sum(_series_total(series) for series in _get(metric, "timeseries") or [])
        totals[name] = totals.get(name, 0) + round(total)
    return _health_from(totals, since, until)


def parse_subscription_metrics(body: Mapping[str, Any],
                               ) -> tuple[tuple[str, DeliveryHealth], ...]:
    """The counts per event subscription of a metrics response split by
    ``EventSubscriptionName`` (``$filter=EventSubscriptionName eq '*'``): each time series
    names its subscription in ``metadatavalues``; a series naming none is left out. The
    counts carry no period: it is the topic's health's (``DeliveryHealth.since/until``)."""
    per: dict[str, dict[str, int]] = {}
    spelled: dict[str, str] = {}
    for metric in _get(body, "value") or []:
        name = _text(_get(metric, "name", "value")).lower()
        for series in _get(metric, "timeseries") or []:
            sub = _dimension_value(series, SUBSCRIPTION_DIMENSION)
            if not sub:
                continue
            spelled.setdefault(sub.lower(), sub)
            totals = per.setdefault(sub.lower(), {})
            totals[name] = totals.get(name, 0) + round(_series_total(series))
    # No period: two reads of the same counts compare equal (the dashboard's change test).
    return tuple((spelled[key], _health_from(per[key], None, None)) for key in sorted(per))


# -- the verdict ------------------------------------------------------------------------------
def judge(
    *,
    topic: SystemTopic | None,
    subscriptions: Sequence[EventSubscription],
    health: DeliveryHealth | None,
    watched: QueueTarget | None,
    now: datetime,
    subject: str | None = None,
) -> tuple[Verdict, str]:
    """The verdict on one configuration's wiring, with a sentence saying why.

    Order: ``missing`` (no topic or no subscription), ``disabled`` (none delivers: not
    Succeeded, expired, or a subject filter that never lets the configuration's events
    through), ``other-endpoint`` (delivering ones, none to the watched queue), ``partial``
    (the watched queue gets only pre or only post), ``failing`` (wired, but deliveries failed,
    were dropped or dead-lettered in the period: through the subscriptions to the watched
    queue when the metrics are split per subscription, else over the whole topic), else
    ``ok``. The structural verdicts come first: they mean the watched queue cannot get an
    event at all, whatever the metrics say.

    ``subject`` is the events' subject, the configuration's name (docs/azure.md): subject
    filters are judged against it. Advanced filters are not judged: a verdict that rests on
    a subscription with them says so in its reason ("cannot judge"). ``Updating`` is a
    passing state: such a subscription is judged as it reads, with a note.
    """
    if topic is None:
        return Verdict.MISSING, "no Event Grid system topic for this configuration"
    if not subscriptions:
        return Verdict.MISSING, f"system topic {topic.name} has no event subscription"
    filtered = [s for s in subscriptions if s.active(now) and subject is not None
                and not s.subject_matches(subject)]
    active = [s for s in subscriptions if s.active(now) and s not in filtered]
    if not active:
        states = sorted({_inactive_state(s, now, subject) for s in subscriptions})
        return Verdict.DISABLED, f"no subscription is delivering ({', '.join(states)})"
    ours = [s for s in active if s.reaches(watched)]
    notes = _notes(ours, filtered, watched)
    if not ours:
        where = (f"queue {watched.queue_name} of {watched.account_name}" if watched
                 else "a Storage Queue")
        targets = ", ".join(sorted({s.endpoint or s.endpoint_type for s in active}))
        return Verdict.OTHER_ENDPOINT, f"events go to {targets}, not to {where}{notes}"
    kinds = {k for s in ours for k in s.event_types}
    if "pre" not in kinds or "post" not in kinds:
        missing = "pre" if "pre" not in kinds else "post"
        return Verdict.PARTIAL, (f"no {missing}-event subscription to the watched queue"
                                 f"{notes}")
    queue = (f"queue {watched.queue_name}" if watched else "the queue")
    if health is not None and health.by_subscription is not None:
        failing = [(s, h) for s in ours if (h := health.of(s.name)) is not None and h.failing]
        if failing:
            return Verdict.FAILING, "; ".join(
                f"delivery to {queue} failed {h.failed} time{'s' if h.failed != 1 else ''} "
                f"in 24 h through subscription {s.name} ({h.dropped} dropped, "
                f"{h.dead_lettered} dead-lettered)" for s, h in failing) + notes
        others = _other_failures(health, ours)
        return Verdict.OK, ("pre and post events are delivered to the watched queue"
                            f"{notes}{others}")
    if health is not None and health.failing:
        # The metrics are the topic's: another subscription on it (a broken webhook) counts
        # too, and the operator must know the failures may not be the watched queue's.
        others_names = sorted(s.name for s in active if not s.reaches(watched))
        shared = (f" (counted over the whole topic, with its other subscription"
                  f"{'s' if len(others_names) != 1 else ''} {', '.join(others_names)})"
                  if others_names else "")
        return Verdict.FAILING, (
            f"{health.failed} failed, {health.dropped} dropped, "
            f"{health.dead_lettered} dead-lettered deliveries in the last 24 h{shared}{notes}")
    return Verdict.OK, f"pre and post events are delivered to the watched queue{notes}"


def _notes(ours: Sequence[EventSubscription], filtered: Sequence[EventSubscription],
           watched: QueueTarget | None) -> str:
    """What the verdict could not judge or leaves aside, as a tail of its reason."""
    notes = []
    advanced = sorted(s.name for s in ours if s.advanced_filters)
    if advanced:
        notes.append(f"cannot judge the advanced filters of subscription "
                     f"{', '.join(advanced)}: they may drop events")
    updating = sorted(s.name for s in ours if s.state.lower() in TRANSIENT_STATES)
    if updating:
        notes.append(f"subscription {', '.join(updating)} is being updated")
    blocked = [s for s in filtered if s.reaches(watched)]
    for sub in sorted(blocked, key=lambda s: s.name.lower()):
        notes.append(f"subscription {sub.name} to the watched queue never matches: its "
                     f"subject filter {sub.subject_filter_text()}")
    return "".join(f"; {n}" for n in notes)


def _other_failures(health: DeliveryHealth, ours: Sequence[EventSubscription]) -> str:
    """A note on failures of the topic's other subscriptions (not the watched queue's)."""
    mine = {s.name.lower() for s in ours}
    others = [(name, h) for name, h in health.by_subscription or ()
              if name.lower() not in mine and h.failing]
    if not others:
        return ""
    return "; not counted: " + ", ".join(
        f"{h.failed} failed deliveries through subscription {name}" for name, h in others)


def _inactive_state(sub: EventSubscription, now: datetime, subject: str | None) -> str:
    if sub.active(now) and subject is not None and not sub.subject_matches(subject):
        return (f"{sub.name}: subject filter {sub.subject_filter_text()} never matches "
                f"{subject!r}")
    if sub.state.lower() == "succeeded" and sub.expiration is not None and sub.expiration <= now:
        return "expired"
    return sub.state or "unknown state"


def wire(
    *,
    configuration_id: str,
    configuration_name: str,
    topic: SystemTopic | None,
    subscriptions: Iterable[EventSubscription] = (),
    health: DeliveryHealth | None = None,
    watched: QueueTarget | None,
    now: datetime,
    error: str | None = None,
) -> Wiring:
    """Build a :class:`Wiring` with its verdict."""
    subs = tuple(sorted(subscriptions, key=lambda s: s.name.lower()))
    verdict, reason = judge(topic=topic, subscriptions=subs, health=health, watched=watched,
                            now=now, subject=configuration_name)
    if error:
        reason = f"{reason} ({error})"
    return Wiring(configuration_id=configuration_id, configuration_name=configuration_name,
                  verdict=verdict, reason=reason, topic=topic, subscriptions=subs,
                  health=health, error=error, checked_at=now)


def missing_pre_explanation(wiring: Wiring | None, watched: QueueTarget | None,
                            now: datetime) -> str | None:
    """Why a pre-event cannot arrive, from the wiring, or None when the wiring allows it.

    The watchdog adds this to a missing pre-event ("no pre-event subscription") so the
    operator sees the cause, not only the lateness.
    """
    if wiring is None:
        return None
    if wiring.covers("pre", watched, now):
        return None
    if wiring.error and wiring.topic is not None and not wiring.subscriptions:
        # The topic's subscriptions could not be read (403, 5xx, throttled): nothing is
        # known of them, and "no pre-event will come" would be a claim about Azure.
        return None
    if wiring.verdict in (Verdict.MISSING, Verdict.DISABLED, Verdict.OTHER_ENDPOINT):
        return wiring.reason
    return "no pre-event subscription to the watched queue"


__all__ = [
    "DEFAULT_WIRING_REFRESH", "HEALTH_METRICS", "MAINTENANCE_TOPIC_TYPE",
    "SUBSCRIPTION_DIMENSION", "SUBSCRIPTION_HEALTH_METRICS", "SYSTEM_TOPIC_TYPE",
    "TRANSIENT_STATES", "VERDICT_SYMBOLS", "WIRING_RETRY",
    "DeliveryHealth", "EventSubscription", "QueueTarget", "SystemTopic", "Verdict", "Wiring",
    "account_name_from_connection_string", "account_name_from_url", "id_segment", "judge",
    "missing_pre_explanation", "parse_metrics", "parse_subscription",
    "parse_subscription_metrics", "parse_topic",
    "queue_account_name", "valid_account_name", "webhook_host", "wire",
]
