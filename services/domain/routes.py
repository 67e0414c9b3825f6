"""Alert routes (``[[alerts.routes]]``): which findings go where, and what each receiver gets.

A route names the finding kinds it takes (``on``; ``["*"]`` for all), the configurations
(names or globs, case-insensitive; ``["*"]`` for all), the least severity it takes and where
to send: ``webhook`` (a generic JSON POST of the finding and its state), ``slack`` and
``teams`` (their incoming webhooks: ``text``; Teams workflows get an Adaptive Card too),
``pagerduty`` (Events API v2: trigger, then resolve with the same ``dedup_key``) or
``command`` (an argument list, the finding as JSON on stdin; never a shell).

The URLs and routing keys are secrets: a :class:`RouteSpec` never shows them in ``repr``,
``describe`` or ``to_json`` (docs: "never logged, never journaled").

Pure: payloads are built here; sending is :mod:`services.notify`.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.domain.findings import KINDS, SEVERITIES, Alert, severity_rank

ROUTE_TYPES = ("webhook", "slack", "teams", "pagerduty", "command")
#: PagerDuty's Events API v2 endpoint (a route's ``url`` replaces it: a proxy, a test receiver).
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
#: PagerDuty's limits (Events API v2): dedup_key and summary lengths.
DEDUP_KEY_MAX = 255
SUMMARY_MAX = 1024
MASK = "********"


@dataclass(frozen=True)
class RouteSpec:
    """One ``[[alerts.routes]]`` table, validated (see the module)."""

    name: str
    type: str
    on: tuple[str, ...] = ("*",)
    configurations: tuple[str, ...] = ("*",)
    min_severity: str = "info"
    url: str | None = field(default=None, repr=False)
    routing_key: str | None = field(default=None, repr=False)
    command: tuple[str, ...] = ()

    @property
    def target_url(self) -> str | None:
        """Where an HTTP route posts (PagerDuty's endpoint unless ``url`` is set)."""
        if self.type == "pagerduty":
            return self.url or PAGERDUTY_EVENTS_URL
        return self.url

    @property
    def secrets(self) -> tuple[str, ...]:
        """The route's secrets (to scrub from anything shown)."""
        return tuple(s for s in (self.url, self.routing_key) if s)

    def matches(self, alert: Alert) -> bool:
        """Whether this route takes ``alert`` (kind, configuration, severity)."""
        if "*" not in self.on and alert.kind not in self.on:
            return False
        if severity_rank(alert.severity) < severity_rank(self.min_severity):
            return False
        if "*" in self.configurations:
            return True
        name = (alert.configuration_name or "").casefold()
        return any(fnmatch.fnmatchcase(name, pattern.casefold())
                   for pattern in self.configurations)

    def describe(self) -> str:
        """One line for ``config show`` (secrets masked)."""
        target = " ".join(self.command) if self.type == "command" else (
            "url " + (MASK if self.url else "(PagerDuty)" if self.type == "pagerduty"
                      else "(not set)"))
        if self.type == "pagerduty":
            target += " routing_key " + (MASK if self.routing_key else "(not set)")
        return (f"{self.name}: {self.type} on {','.join(self.on)} for "
                f"{','.join(self.configurations)} from {self.min_severity}: {target}")

    def to_json(self) -> dict[str, Any]:
        """``config show --json``'s route object (secrets masked)."""
        return {"name": self.name, "type": self.type, "on": list(self.on),
                "configurations": list(self.configurations),
                "min_severity": self.min_severity,
                "url": MASK if self.url else None,
                "routing_key": MASK if self.routing_key else None,
                "command": list(self.command)}


def validate_route_values(name: str, type_: str, on: tuple[str, ...],
                          min_severity: str) -> str | None:
    """Why these route values are wrong, or None."""
    if type_ not in ROUTE_TYPES:
        return f"type: expected one of {', '.join(ROUTE_TYPES)}, got {type_!r}"
    unknown = [k for k in on if k != "*" and k not in KINDS]
    if unknown:
        return f"on: unknown finding kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}"
    if min_severity not in SEVERITIES:
        return f"min_severity: expected one of {', '.join(SEVERITIES)}, got {min_severity!r}"
    return None


def finding_document(alert: Alert, *, test: bool = False) -> dict[str, Any]:
    """The finding as JSON (the webhook body, a command's stdin)."""
    document = {"source": "aumwatch", **alert.to_json()}
    if test:
        document["test"] = True
    return document


def text_of(alert: Alert) -> str:
    """The one line a chat receiver shows."""
    mark = "RESOLVED" if alert.state == "resolved" else alert.severity.upper()
    return f"[aumwatch {mark}] {alert.kind}: {alert.summary}"


def payload(route: RouteSpec, alert: Alert, *, test: bool = False) -> Mapping[str, Any]:
    """The JSON body ``route`` sends for ``alert`` (not for a command: its stdin is
    :func:`finding_document`)."""
    if route.type == "slack":
        return {"text": text_of(alert)}
    if route.type == "teams":
        text = text_of(alert)
        return {"text": text, "type": "message", "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {"type": "AdaptiveCard", "version": "1.4",
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "body": [{"type": "TextBlock", "text": text, "wrap": True}]}}]}
    if route.type == "pagerduty":
        body: dict[str, Any] = {
            "routing_key": route.routing_key or "",
            "event_action": "resolve" if alert.state == "resolved" else "trigger",
            "dedup_key": dedup_key(alert.key)}
        if alert.state == "open":
            body["payload"] = {
                "summary": (("TEST: " if test else "") + alert.summary)[:SUMMARY_MAX]
                or alert.kind,
                "source": "aumwatch", "severity": alert.severity,
                "timestamp": alert.to_json()["at"], "component": alert.configuration_name,
                "class": alert.kind,
                "custom_details": finding_document(alert, test=test)}
        return body
    return finding_document(alert, test=test)


def dedup_key(key: str) -> str:
    """A finding's key within PagerDuty's 255 characters (a long key keeps its end, which
    holds the run's stamp, behind a stable hash of the whole)."""
    if len(key) <= DEDUP_KEY_MAX:
        return key
    import hashlib

    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return f"{digest}:{key[-(DEDUP_KEY_MAX - 17):]}"


def stdin_document(alert: Alert, *, test: bool = False) -> bytes:
    """A command route's stdin."""
    return (json.dumps(finding_document(alert, test=test)) + "\n").encode("utf-8")
