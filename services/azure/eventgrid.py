"""The Event Grid wiring of every configuration in scope, read from Azure and cached.

Three reads per refresh (docs/azure.md, "Event Grid wiring"):

* the system topics of maintenance configurations: ONE paged Resource Graph query for all
  subscriptions in scope (:data:`TOPICS_QUERY`), whatever the number of configurations;
* the event subscriptions of each topic: azure-mgmt-eventgrid's async
  ``system_topic_event_subscriptions.list_by_system_topic``, one client per Azure subscription
  id, a bounded number of topics at a time; each model is serialized to its REST JSON and
  parsed by :func:`services.domain.wiring.parse_subscription`;
* the delivery health of each topic with subscriptions: the ARM metrics API
  (``GET {topic id}/providers/Microsoft.Insights/metrics``) sent through the Event Grid
  client's own pipeline (authentication, TLS options, timeouts, logging), as the cancel is
  sent through the maintenance client's (services/azure/cancel.py). Two requests: the topic's
  totals, and the delivery metrics split per event subscription
  (``$filter=EventSubscriptionName eq '*'``), so a verdict counts only the failures of the
  subscriptions to the watched queue. Should the split fail, the verdict falls back to the
  topic's totals and says so.

:class:`WiringSource` caches what it read for ``refresh`` (default 5 min): the dashboard can
ask on every poll and Azure is asked once per refresh. A part that fails (403, 429, 5xx, a
timeout) never fails the whole read: the configuration's :class:`Wiring` carries the error,
and the verdict is made from what was read (a part read earlier is kept and marked stale).
Only a failed topics query fails the snapshot as a whole (:attr:`WiringSnapshot.error`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from services.azure.resourcegraph import parse_retry_after
from services.domain.boundary import WiringSnapshot
from services.domain.clock import Clock, SystemClock, iso_z
from services.domain.errors import ServiceError, kind_for_status, service_error
from services.domain.model import Configuration
from services.domain.wiring import (
    DEFAULT_WIRING_REFRESH,
    HEALTH_METRICS,
    MAINTENANCE_TOPIC_TYPE,
    SUBSCRIPTION_DIMENSION,
    SUBSCRIPTION_HEALTH_METRICS,
    WIRING_RETRY,
    DeliveryHealth,
    EventSubscription,
    QueueTarget,
    SystemTopic,
    Wiring,
    parse_metrics,
    parse_subscription,
    parse_subscription_metrics,
    parse_topic,
    queue_account_name,
    wire,
)

if TYPE_CHECKING:  # pragma: no cover
    from services.azure.resourcegraph import QueryRunner
    from services.settings import Settings

#: The system topics of maintenance configurations, every subscription in scope, one query.
#: ``id`` is a plain string column, so Resource Graph pages it with ``$skipToken``.
TOPICS_QUERY = f"""resources
| where type =~ 'microsoft.eventgrid/systemtopics'
| where properties.topicType =~ '{MAINTENANCE_TOPIC_TYPE}'
| project id, name, type, location, resourceGroup, subscriptionId, properties, identity
| order by id asc"""

#: The api-version of the Azure Monitor metrics API (docs/azure.md, "Event Grid wiring").
METRICS_API_VERSION = "2023-10-01"
#: The period the delivery health covers, in hours of one-hour buckets.
HEALTH_PERIOD = timedelta(hours=24)
DEFAULT_REFRESH = DEFAULT_WIRING_REFRESH
#: How many topics are read at once (subscriptions and metrics): ARM's per-subscription read
#: limits are generous, but a scope with hundreds of topics must not open hundreds of sockets.
DEFAULT_CONCURRENCY = 4
#: After the topics query failed, the next attempt waits this long (at most ``refresh``):
#: the dashboard asks on every poll, and a failing query must not cost a quota slot each time.
FAILED_READ_RETRY = WIRING_RETRY

EventGridFactory = Callable[[str], Any]


def watched_queue(settings: Settings) -> QueueTarget | None:
    """The queue aumwatch watches, as Event Grid names it (account name + queue name).

    The account comes from the ``[queue]`` settings by
    :func:`services.domain.wiring.queue_account_name` (the same function ``setup events``
    uses). None when no queue is configured or its account cannot be told.
    """
    name = (settings.queue_name or "").strip()
    if not name:
        return None
    account = queue_account_name(settings.queue_connection_string, settings.queue_account_url)
    return QueueTarget(account, name) if account else None


@dataclass
class _Part:
    """One read of one topic's part (its subscriptions or its metrics)."""

    value: Any = None
    error: str | None = None
    read_at: datetime | None = None  # when ``value`` was read (it may be older than the error)


@dataclass
class _Cache:
    topics: tuple[SystemTopic, ...] = ()
    subscriptions: dict[str, _Part] = field(default_factory=dict)  # key: topic id, lower-case
    health: dict[str, _Part] = field(default_factory=dict)
    fetched_at: datetime | None = None  # when the last complete read ended
    error: str | None = None            # the last topics query's failure
    attempted_at: datetime | None = None


def _key(resource_id: str) -> str:
    return resource_id.strip().rstrip("/").lower()


class WiringSource:
    """Reads and caches the Event Grid wiring of maintenance configurations.

    ``runner`` is the Resource Graph :class:`~services.azure.resourcegraph.QueryRunner`;
    ``eventgrid_client_factory(subscription_id)`` returns a new async
    ``EventGridManagementClient`` (see :func:`eventgrid_factory`; each read makes its own
    clients and closes them, so a source can be used from any event loop); ``watched`` is
    the queue whose delivery makes a configuration ``ok``. Calls to :meth:`fetch` should not
    overlap (the dashboard calls it from one exclusive worker).
    """

    def __init__(
        self,
        runner: QueryRunner,
        eventgrid_client_factory: EventGridFactory,
        *,
        watched: QueueTarget | None,
        clock: Clock | None = None,
        refresh: timedelta = DEFAULT_REFRESH,
        concurrency: int = DEFAULT_CONCURRENCY,
        part_timeout: timedelta | None = timedelta(seconds=90),
        read_metrics: bool = True,
    ) -> None:
        self.runner = runner
        self._factory = eventgrid_client_factory
        self.watched = watched
        self.clock: Clock = clock or runner.clock or SystemClock()
        self.refresh = refresh
        self.concurrency = max(1, concurrency)
        self.part_timeout = part_timeout
        self.read_metrics = read_metrics
        self._cache = _Cache()
        # Per Azure subscription: ARM said to wait (429 with Retry-After) until then.
        self._throttled_until: dict[str, datetime] = {}
        #: Resource Graph requests this source sent (for tests and the cost benchmark).
        self.graph_requests = 0

    @classmethod
    def from_settings(cls, settings: Settings, runner: QueryRunner, credential: Any, *,
                      clock: Clock | None = None) -> WiringSource:
        """A source with the settings' watched queue and refresh interval."""
        return cls(runner, eventgrid_factory(settings, credential),
                   watched=watched_queue(settings), clock=clock, refresh=settings.wiring_refresh,
                   part_timeout=max(timedelta(seconds=10), settings.request_timeout * 3))

    # -- the public read ----------------------------------------------------------------------
    async def fetch(self, configurations: Sequence[Configuration], *,
                    force: bool = False) -> WiringSnapshot:
        """The wiring of ``configurations``; reads Azure only when the cache is older than
        ``refresh`` (or after a failed read, one minute at the most), or with ``force``.

        Never raises for Azure's answers: a failed topics query gives a snapshot with
        ``error`` (and the previous wirings, when there were any)."""
        now = self.clock.now()
        if force or self._stale(now):
            await self._read(now)
        return self._snapshot(configurations)

    def _stale(self, now: datetime) -> bool:
        cache = self._cache
        if cache.error is not None and cache.attempted_at is not None:
            return now - cache.attempted_at >= min(self.refresh, FAILED_READ_RETRY)
        return cache.fetched_at is None or now - cache.fetched_at >= self.refresh

    def _snapshot(self, configurations: Sequence[Configuration]) -> WiringSnapshot:
        cache = self._cache
        if cache.fetched_at is None:
            return WiringSnapshot(MappingProxyType({}), None, cache.error)
        by_source: dict[str, SystemTopic] = {}
        for found in cache.topics:
            # Azure allows one system topic per source; should there be two, the first by
            # id is shown (the query orders by id).
            by_source.setdefault(found.source_key, found)
        now = self.clock.now()
        wirings: dict[str, Wiring] = {}
        for config in configurations:
            key = _key(config.id)
            topic = by_source.get(key)
            subs: tuple[EventSubscription, ...] = ()
            health: DeliveryHealth | None = None
            sub_part: _Part | None = None
            errors: list[str] = []
            if topic is not None:
                sub_part = cache.subscriptions.get(_key(topic.id))
                if sub_part is not None:
                    subs = sub_part.value or ()
                    if sub_part.error:
                        errors.append(_part_error(sub_part, "event subscriptions"))
                health_part = cache.health.get(_key(topic.id))
                if health_part is not None:
                    health = health_part.value
                    if health_part.error:
                        errors.append(_part_error(health_part, "delivery metrics"))
            sub_unread = (topic is not None and not subs and sub_part is not None
                          and sub_part.error is not None and sub_part.read_at is None)
            wiring = wire(configuration_id=config.id, configuration_name=config.name,
                          topic=topic, subscriptions=subs, health=health,
                          watched=self.watched, now=now,
                          error="; ".join(errors) or None)
            if sub_unread and topic is not None:
                # Nothing is known about the subscriptions: say so rather than "no
                # subscription", which would be a claim about Azure (the verdict stays
                # "missing": no delivery to the watched queue is known).
                wiring = replace(
                    wiring, reason=f"the event subscriptions of system topic {topic.name} "
                    f"could not be read ({wiring.error})")
            wirings[key] = wiring
        return WiringSnapshot(MappingProxyType(wirings), cache.fetched_at, cache.error)

    # -- reading Azure ------------------------------------------------------------------------
    async def _read(self, now: datetime) -> None:
        cache = self._cache
        cache.attempted_at = now
        try:
            result = await self.runner.query(TOPICS_QUERY, what="Event Grid system topics query")
        except Exception as exc:  # mapped to one line; the previous wirings stay
            cache.error = service_error(exc, what="Event Grid system topics query").message
            self.graph_requests += 1
            return
        self.graph_requests += result.requests
        topics = tuple(t for row in result.rows if (t := parse_topic(row)) is not None)
        semaphore = asyncio.Semaphore(self.concurrency)
        clients: dict[str, Any] = {}
        subscriptions: dict[str, _Part] = {}
        health: dict[str, _Part] = {}
        try:
            async def read_topic(topic: SystemTopic) -> None:
                key = _key(topic.id)
                async with semaphore:
                    subscriptions[key] = await self._read_part(
                        topic, clients, cache.subscriptions.get(key), self._read_subscriptions,
                        what=f"reading the event subscriptions of system topic {topic.name}")
                    subs = subscriptions[key].value
                    if self.read_metrics and subs:
                        health[key] = await self._read_part(
                            topic, clients, cache.health.get(key), self._read_health,
                            what=f"reading the delivery metrics of system topic {topic.name}")

            await asyncio.gather(*(read_topic(t) for t in topics))
        finally:
            for client in clients.values():
                try:
                    await client.close()
                except Exception:  # closing a client cannot fail the read
                    pass
        cache.topics = topics
        cache.subscriptions = subscriptions
        cache.health = health
        cache.fetched_at = self.clock.now()
        cache.error = None

    def _client(self, clients: dict[str, Any], subscription_id: str) -> Any:
        key = subscription_id.lower()
        if key not in clients:
            clients[key] = self._factory(subscription_id)
        return clients[key]

    async def _read_part(self, topic: SystemTopic, clients: dict[str, Any],
                         previous: _Part | None,
                         reader: Callable[[Any, SystemTopic], Any], *, what: str) -> _Part:
        """One part of one topic; a failure keeps the previous value, marked with the error."""
        now = self.clock.now()
        sub = topic.subscription_id.lower()
        until = self._throttled_until.get(sub)
        if until is not None and until > now:
            waiting = (f"{what}: throttled by Azure Resource Manager until "
                       f"{until.strftime('%H:%M:%SZ')}; not asked again before then")
            return _Part(previous.value if previous else None, waiting,
                         previous.read_at if previous else None)
        try:
            client = self._client(clients, topic.subscription_id)
            coro = reader(client, topic)
            if self.part_timeout is not None:
                value = await asyncio.wait_for(coro, self.part_timeout.total_seconds())
            else:
                value = await coro
        except Exception as exc:  # one line per part; the rest of the read goes on
            if isinstance(exc, asyncio.TimeoutError | TimeoutError):
                error = ServiceError("timeout", f"{what} timed out")
            else:
                error = service_error(exc, what=what)
            retry_after = error.retry_after
            if error.kind == "throttled" and retry_after is None:
                retry_after = _retry_after_of(exc, now)
            if error.kind == "throttled" and retry_after is not None:
                self._throttled_until[sub] = now + retry_after
            return _Part(previous.value if previous else None, error.message,
                         previous.read_at if previous else None)
        return _Part(value, None, self.clock.now())

    async def _read_subscriptions(self, client: Any,
                                  topic: SystemTopic) -> tuple[EventSubscription, ...]:
        pager = client.system_topic_event_subscriptions.list_by_system_topic(
            topic.resource_group, topic.name)
        out: list[EventSubscription] = []
        async for model in pager:
            out.append(parse_subscription(model.serialize(keep_readonly=True)))
        return tuple(out)

    async def _read_health(self, client: Any, topic: SystemTopic) -> DeliveryHealth:
        until = self.clock.now().replace(microsecond=0)
        since = until - HEALTH_PERIOD
        return await read_delivery_health(client, topic.id, since, until)


def _retry_after_of(exc: BaseException, now: datetime) -> timedelta | None:
    """``Retry-After`` of an SDK error's response, when it has one."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    try:
        value = headers.get("Retry-After") if headers is not None else None
    except AttributeError:
        return None
    return parse_retry_after(value, now)


def _part_error(part: _Part, what: str) -> str:
    if part.read_at is not None:
        return f"{part.error} (showing the {what} read at {part.read_at.strftime('%H:%M:%SZ')})"
    return part.error or ""


def metrics_params(since: datetime, until: datetime, *,
                   per_subscription: bool = False) -> dict[str, str]:
    """The query of the metrics request: every health metric, hourly totals over the period;
    with ``per_subscription``, the delivery metrics split by ``EventSubscriptionName`` (the
    others have no such dimension, and Azure Monitor refuses to split them)."""
    params = {
        "api-version": METRICS_API_VERSION,
        "metricnames": ",".join(SUBSCRIPTION_HEALTH_METRICS if per_subscription
                                else HEALTH_METRICS),
        "timespan": f"{iso_z(since)}/{iso_z(until)}",
        "interval": "PT1H",
        "aggregation": "Total",
    }
    if per_subscription:
        params["$filter"] = f"{SUBSCRIPTION_DIMENSION} eq '*'"
    return params


async def read_delivery_health(client: Any, topic_id: str, since: datetime,
                               until: datetime) -> DeliveryHealth:
    """The topic's delivery health over the period, with the counts per event subscription
    when Azure Monitor splits them (else ``by_subscription`` stays None). Raises
    :class:`ServiceError` when the topic's totals cannot be read."""
    body = await send_metrics_request(client, topic_id, since, until)
    health = parse_metrics(body, since=since, until=until)
    try:
        split = await send_metrics_request(client, topic_id, since, until,
                                           per_subscription=True)
    except ServiceError:
        return health  # judged over the whole topic, as the reason then says
    return replace(health, by_subscription=parse_subscription_metrics(split))


async def send_metrics_request(client: Any, topic_id: str, since: datetime,
                               until: datetime, *,
                               per_subscription: bool = False) -> Mapping[str, Any]:
    """``GET {topic}/providers/Microsoft.Insights/metrics`` through ``client``'s pipeline.

    ``client`` is an async azure-mgmt-eventgrid client (any ARM client's pipeline would do:
    the request goes to the same endpoint with the same token scope). Raises
    :class:`ServiceError` (with ``retry_after`` on a 429) for an error status or a body that is
    not JSON; ``_send_request`` returns error statuses instead of raising.
    """
    from azure.core.rest import HttpRequest

    path = f"/{topic_id.strip('/')}/providers/Microsoft.Insights/metrics"
    request = HttpRequest("GET", path, params=metrics_params(since, until,
                                                             per_subscription=per_subscription))
    response = await client._send_request(request)
    status = int(response.status_code)
    await response.read()
    text = response.text() or ""
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if status >= 400:
        # ``until`` is the reader's "now" (a Retry-After may be an HTTP date).
        raise _http_error(status, body, text, response.headers, "reading the delivery metrics",
                          now=until)
    if not isinstance(body, Mapping):
        raise ServiceError("server", "reading the delivery metrics: the answer is not a JSON "
                           "object", status=status)
    return body


def _http_error(status: int, body: Any, text: str, headers: Mapping[str, str],
                what: str, *, now: datetime) -> ServiceError:
    """A ServiceError for an error status of a raw pipeline call (ARM error envelope)."""
    detail = ""
    # ARM writes ``{"error": {"code", "message"}}``; Azure Monitor's metrics API a flat
    # ``{"code", "message"}``.
    error = body.get("error", body) if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        code, message = error.get("code"), error.get("message")
        detail = f"{code}: {message}" if code and message else str(message or code or "")
    if not detail:
        detail = text
    detail = " ".join(str(detail).split())[:240]
    kind = kind_for_status(status)
    retry_after = None
    if kind == "throttled":
        retry_after = parse_retry_after(headers.get("Retry-After"), now)
    hints = {"forbidden": "the identity needs Reader (or Monitoring Reader) on the topic",
             "throttled": "Azure Resource Manager is throttling; read again later"}
    hint = hints.get(kind)
    message = f"{what} failed (HTTP {status})" + (f": {detail}" if detail else "") \
        + (f" ({hint})" if hint else "")
    return ServiceError(kind, message, status=status, retry_after=retry_after)


def eventgrid_factory(settings: Settings, credential: Any) -> EventGridFactory:
    """A ``subscription_id -> async EventGridManagementClient`` factory for WiringSource.

    One retry of a lost connection and none of an error status: the source reads again at
    the next refresh (and honours a 429's Retry-After itself), while azure-core's default
    (three retries, sleeping whatever Retry-After says) would hold a dashboard refresh or a
    ``subscriptions`` command for minutes on a throttled or stalled endpoint."""
    from services.azure.clients import async_eventgrid_client

    def make(subscription_id: str) -> Any:
        return async_eventgrid_client(settings, credential, subscription_id, retry_total=1,
                                      retry_status=0, retry_backoff_max=5)

    return make


__all__ = [
    "DEFAULT_REFRESH", "HEALTH_PERIOD", "METRICS_API_VERSION", "TOPICS_QUERY",
    "WiringSnapshot", "WiringSource",
    "eventgrid_factory", "metrics_params", "read_delivery_health", "send_metrics_request",
    "watched_queue",
]
