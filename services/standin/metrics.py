"""Azure Monitor metrics in the stand-in (``GET {resource}/providers/Microsoft.Insights/metrics``).

The counts are what the stand-in really did: Event Grid (:mod:`services.standin.eventgrid`)
records each publish, match, delivery and failure here, on the World's clock, and the metrics
API answers hourly (or any other interval's) totals in Azure Monitor's shape.

Dimensions, as Azure Monitor plays them: the delivery metrics of a system topic
(:data:`SUBSCRIPTION_METRICS`) carry an ``EventSubscriptionName`` dimension. A request with
``$filter=EventSubscriptionName eq '*'`` gets one time series per event subscription, each
naming it in ``metadatavalues`` (``{"name": {"value": "eventsubscriptionname"}, "value":
"<NAME>"}``); ``eq 'NAME'`` (``or``-ed) keeps those subscriptions only. Event Grid writes the
dimension's values in upper case, and so does the stand-in (names are compared without case).
A filter on a dimension that a requested metric does not have is refused with a 400, as
Azure Monitor does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.domain.clock import iso_z
from services.standin.arm import Answer, Host, parse_time

METRICS_API_VERSIONS: frozenset[str] = frozenset({
    "2018-01-01", "2019-07-01", "2021-05-01", "2023-10-01", "2024-02-01",
})

#: Metrics of a system topic (name -> the name Azure Monitor shows).
METRICS: dict[str, str] = {
    "PublishSuccessCount": "Published Events",
    "PublishFailCount": "Publish Failed Events",
    "UnmatchedEventCount": "Unmatched Events",
    "MatchedEventCount": "Matched Events",
    "DeliverySuccessCount": "Delivered Events",
    "DeliveryAttemptFailCount": "Delivery Failed Events",
    "DroppedEventCount": "Dropped Events",
    "DeadLetteredCount": "Dead Lettered Events",
}
#: The dimension naming the event subscription a delivery went through.
SUBSCRIPTION_DIMENSION = "EventSubscriptionName"
#: The metrics that have it (per delivery, not per publish).
SUBSCRIPTION_METRICS = frozenset({"MatchedEventCount", "DeliverySuccessCount",
                                  "DeliveryAttemptFailCount", "DroppedEventCount",
                                  "DeadLetteredCount"})
_INTERVALS: dict[str, timedelta] = {
    "PT1M": timedelta(minutes=1), "PT5M": timedelta(minutes=5),
    "PT15M": timedelta(minutes=15), "PT30M": timedelta(minutes=30),
    "PT1H": timedelta(hours=1), "PT6H": timedelta(hours=6), "PT12H": timedelta(hours=12),
    "P1D": timedelta(days=1),
}
_CLAUSE = re.compile(r"^\s*(\w+)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class MetricResource:
    """A resource that has metrics: its id as stored, region and resource type."""

    id: str
    location: str
    namespace: str


@dataclass
class _Samples:
    # metric -> [(when, event subscription name or "")]
    counts: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)


def _bad(message: str) -> Answer:
    return 400, {"code": "BadRequest", "message": message}, {}


class _BadFilter(ValueError):
    """A ``$filter`` the stand-in does not play (answered with a 400)."""


def _dimension_filter(text: str | None) -> tuple[str | None, set[str] | None]:
    """``(dimension, wanted values or None for '*')`` of a ``$filter``; (None, None) without
    one. Raises :class:`_BadFilter` for a filter the stand-in does not play."""
    if not text or not text.strip():
        return None, None
    dimension: str | None = None
    values: set[str] = set()
    for clause in re.split(r"\s+or\s+", text.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.match(clause)
        if match is None:
            raise _BadFilter(f"Invalid $filter '{text}': the stand-in plays `Dim eq 'value'` "
                             "clauses joined by `or`.")
        name, value = match.group(1), match.group(2)
        if dimension is not None and name.lower() != dimension.lower():
            raise _BadFilter(f"Invalid $filter '{text}': one dimension at a time.")
        dimension = name
        values.add(value.lower())
    return dimension, (None if "*" in values else values)


class Metrics:
    """The metric samples of one World and the metrics API over them.

    ``resolve(resource_id)`` tells which resource has metrics (None: the API answers 404);
    the World wires it to Event Grid's system topics."""

    def __init__(self, host: Host,
                 resolve: Callable[[str], MetricResource | None] | None = None) -> None:
        self.host = host
        self.resolve: Callable[[str], MetricResource | None] = resolve or (lambda _: None)
        self._samples: dict[str, _Samples] = {}  # resource id lower -> samples

    def record(self, resource_id: str, metric: str, at: datetime, count: int = 1, *,
               subscription: str = "") -> None:
        """Count ``count`` of ``metric`` for a resource at ``at`` (the stand-in's clock),
        through event subscription ``subscription`` for the per-delivery metrics."""
        if count <= 0:
            return
        with self.host.lock:
            samples = self._samples.setdefault(resource_id.lower(), _Samples())
            samples.counts.setdefault(metric, []).extend([(at, subscription)] * count)

    def totals(self, resource_id: str, since: datetime | None = None, *,
               subscription: str | None = None) -> dict[str, int]:
        """Each metric's total for a resource (since ``since``; through one event subscription
        when ``subscription`` is given), for tests and the admin view."""
        with self.host.lock:
            samples = self._samples.get(resource_id.lower(), _Samples())
            return {name: sum(1 for t, sub in samples.counts.get(name, [])
                              if (since is None or t >= since)
                              and (subscription is None
                                   or sub.lower() == subscription.lower()))
                    for name in METRICS}

    def answer(self, resource_id: str, query: dict[str, str]) -> Answer:
        """``GET {resource}/providers/Microsoft.Insights/metrics``: Azure Monitor's answer,
        counted from what the stand-in did, on its clock. ``query`` has lower-case keys.
        Errors are Azure Monitor's flat ``{"code", "message"}``."""
        resource = self.resolve(resource_id)
        if resource is None:
            return 404, {"code": "ResourceNotFound",
                         "message": f"The resource '{resource_id}' was not found."}, {}
        names = [n.strip() for n in (query.get("metricnames") or
                                     "PublishSuccessCount").split(",") if n.strip()]
        by_lower = {n.lower(): n for n in METRICS}
        unknown = [n for n in names if n.lower() not in by_lower]
        if unknown:
            return _bad(f"Failed to find metric configuration for provider: Microsoft.EventGrid, "
                        f"resource Type: systemTopics, metric: {unknown[0]}, Valid metrics: "
                        f"{','.join(METRICS)}")
        interval_text = (query.get("interval") or "PT1M").upper()
        interval = _INTERVALS.get(interval_text)
        if interval is None:
            return _bad(f"Invalid interval '{query.get('interval')}'.")
        try:
            dimension, wanted = _dimension_filter(query.get("$filter"))
        except _BadFilter as exc:
            return _bad(str(exc))
        if dimension is not None:
            if dimension.lower() != SUBSCRIPTION_DIMENSION.lower():
                return _bad(f"Metric dimension '{dimension}' is not valid for this resource; "
                            f"valid: {SUBSCRIPTION_DIMENSION}.")
            without = [n for n in names if by_lower[n.lower()] not in SUBSCRIPTION_METRICS]
            if without:
                return _bad(f"Metric: {by_lower[without[0].lower()]} does not support requested "
                            f"dimension combination: {dimension.lower()}.")
        now = self.host.clock.now()
        span = query.get("timespan")
        if span:
            first, _, last = span.partition("/")
            start, end = parse_time(first), parse_time(last)
            if start is None or end is None or end <= start:
                return _bad(f"Invalid timespan '{span}'.")
        else:
            start, end = now - timedelta(hours=1), now
        aggregations = {a.strip().lower() for a in
                        (query.get("aggregation") or "Total").split(",") if a.strip()}
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        first_bucket = epoch + ((start - epoch) // interval) * interval
        buckets = []
        t = first_bucket
        while t < end:
            buckets.append(t)
            t += interval

        def series(times: list[datetime], metadata: list[dict[str, Any]]) -> dict[str, Any]:
            data = []
            for bucket in buckets:
                n = sum(1 for s in times if bucket <= s < bucket + interval)
                point: dict[str, Any] = {"timeStamp": iso_z(bucket)}
                if "total" in aggregations:
                    point["total"] = float(n)
                if "count" in aggregations:
                    point["count"] = float(n)
                data.append(point)
            return {"metadatavalues": metadata, "data": data}

        with self.host.lock:
            samples = self._samples.get(resource.id.lower(), _Samples())
            value = []
            for wanted_name in names:
                metric = by_lower[wanted_name.lower()]
                seen = [(s, sub) for s, sub in samples.counts.get(metric, []) if start <= s < end]
                if dimension is None:
                    timeseries = [series([s for s, _ in seen], [])]
                else:
                    # One series per subscription that has data in the span (Azure Monitor
                    # leaves out a dimension value with nothing to show).
                    subs = sorted({sub.upper() for _, sub in seen if sub})
                    if wanted is not None:
                        subs = [s for s in subs if s.lower() in wanted]
                    timeseries = [series(
                        [s for s, sub in seen if sub.upper() == name],
                        [{"name": {"value": SUBSCRIPTION_DIMENSION.lower(),
                                   "localizedValue": SUBSCRIPTION_DIMENSION.lower()},
                          "value": name}]) for name in subs]
                value.append({
                    "id": f"{resource.id}/providers/Microsoft.Insights/metrics/{metric}",
                    "type": "Microsoft.Insights/metrics",
                    "name": {"value": metric, "localizedValue": METRICS[metric]},
                    "displayDescription": f"{METRICS[metric]} of the system topic.",
                    "unit": "Count",
                    "timeseries": timeseries,
                    "errorCode": "Success",
                })
        return 200, {
            "cost": len(buckets) * len(names),
            "timespan": f"{iso_z(start)}/{iso_z(end)}",
            "interval": interval_text,
            "value": value,
            "namespace": resource.namespace,
            "resourceregion": resource.location,
        }, {}
