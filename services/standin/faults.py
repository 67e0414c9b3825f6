"""Fault injection for the stand-in, switchable at run time.

A :class:`Faults` holds a list of active rules. Before handling a request, the server asks
:meth:`Faults.take` for the first rule that matches the request's scope; a rule with a
``count`` is used up after that many requests, one without stays until cleared. Thread-safe:
tests, the scenario engine and the admin endpoint (``POST /_sim/faults``) change it while the
server's thread reads it.

Kinds (what the server does when the rule fires):

* ``throttle``: 429 with ``Retry-After`` (``retry_after`` seconds, default 1) and the
  service's error envelope (azure-core retries it, honouring the header);
* ``throttle-no-retry-after``: 429 without ``Retry-After`` (azure-core does not retry this on
  a POST; the caller must back off itself);
* ``error500`` / ``error503``: 500 InternalServerError / 503 ServiceUnavailable;
* ``slow``: wait ``delay`` seconds (default 5), then answer normally;
* ``drop``: close the connection without answering;
* ``expired-token``: 401 with code ``ExpiredAuthenticationToken``.

The admin endpoint itself is never faulted.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any, Literal

Scope = Literal["graph", "arm", "all"]

KINDS: frozenset[str] = frozenset({
    "throttle", "throttle-no-retry-after", "error500", "error503", "slow", "drop",
    "expired-token",
})
SCOPES: frozenset[str] = frozenset({"graph", "arm", "all"})


@dataclass(frozen=True)
class Fault:
    """One fault the server applies to a request."""

    kind: str
    scope: str = "all"
    retry_after: float | None = None
    delay: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Rule:
    fault: Fault
    remaining: int | None  # None: until cleared


class Faults:
    """The active fault rules; safe to change from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []

    def set(
        self,
        kind: str,
        *,
        count: int | None = None,
        scope: str = "all",
        retry_after: float | None = None,
        delay: float | None = None,
    ) -> Fault:
        """Add a rule: apply ``kind`` to the next ``count`` requests in ``scope`` (all if None).

        Raises ValueError naming the bad argument for an unknown kind or scope, a count below 1
        or a negative delay / retry_after.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r} (known: {', '.join(sorted(KINDS))})")
        if scope not in SCOPES:
            raise ValueError(f"unknown fault scope {scope!r} (known: graph, arm, all)")
        if count is not None and count < 1:
            raise ValueError(f"fault count must be at least 1, not {count}")
        for name, value in (("retry_after", retry_after), ("delay", delay)):
            if value is not None and value < 0:
                raise ValueError(f"fault {name} must not be negative, not {value}")
        fault = Fault(kind=kind, scope=scope, retry_after=retry_after, delay=delay)
        with self._lock:
            self._rules.append(_Rule(fault, count))
        return fault

    def clear(self, scope: str | None = None) -> None:
        """Remove every rule (or only those with exactly this scope)."""
        with self._lock:
            if scope is None:
                self._rules.clear()
            else:
                self._rules = [r for r in self._rules if r.fault.scope != scope]

    def take(self, scope: str) -> Fault | None:
        """The first rule matching a request in ``scope`` ("graph" or "arm"), used once."""
        with self._lock:
            for rule in self._rules:
                if rule.fault.scope not in ("all", scope):
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                return rule.fault
        return None

    def active(self) -> list[dict[str, Any]]:
        """The current rules as JSON objects (for the admin endpoint and logs)."""
        with self._lock:
            return [{**r.fault.to_json(), "count": r.remaining} for r in self._rules]

    def apply_json(self, body: dict[str, Any]) -> None:
        """Apply an admin request: ``{"clear": true}`` and/or ``{"kind": ..., "count": ...}``.

        ``{"faults": [{...}, ...]}`` adds several rules. Raises ValueError on bad input.
        """
        if not isinstance(body, dict):
            raise ValueError("fault request must be a JSON object")
        if body.get("clear"):
            self.clear(body.get("scope") if body.get("kind") is None else None)
        specs = body.get("faults")
        if specs is None:
            specs = [body] if body.get("kind") is not None else []
        if not isinstance(specs, list):
            raise ValueError("'faults' must be a list of objects")
        for spec in specs:
            if not isinstance(spec, dict):
                raise ValueError("each fault must be a JSON object")
            unknown = set(spec) - {"kind", "count", "scope", "retry_after", "delay", "clear"}
            if unknown:
                raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
            self.set(
                str(spec.get("kind")),
                count=_opt_int(spec.get("count"), "count"),
                scope=str(spec.get("scope", "all")),
                retry_after=_opt_float(spec.get("retry_after"), "retry_after"),
                delay=_opt_float(spec.get("delay"), "delay"),
            )


def _opt_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"fault {name} must be an integer, not {value!r}")
    return value


def _opt_float(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"fault {name} must be a number, not {value!r}")
    return float(value)
