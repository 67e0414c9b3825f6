"""What the stand-in's fake Azure services share: ARM's answer and error shapes, the storage
account the stand-in delivers to, and :class:`Host`, the little of the World they need.

The services (:mod:`services.standin.eventgrid` for Event Grid topics and subscriptions,
:mod:`services.standin.roles` for role assignments, :mod:`services.standin.metrics` for Azure
Monitor metrics) depend on :class:`Host` only, never on :mod:`services.standin.world`: the
World builds them and hands itself over, so the imports run one way (world -> services).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

from services.domain.clock import Clock

#: ``(status, JSON body or None, extra headers)``: what every ``arm_*`` handler answers.
Answer = tuple[int, Any, dict[str, str]]

#: Azurite's one storage account: the only one the stand-in can deliver to.
AZURITE_ACCOUNT = "devstoreaccount1"
STORAGE_TYPE = "Microsoft.Storage/storageAccounts"


class Host(Protocol):
    """The World as the fake Azure services see it (one lock guards all their state)."""

    clock: Clock
    tenant_id: str

    @property
    def lock(self) -> AbstractContextManager[Any]:
        """The World's lock (re-entrant)."""
        ...

    def mutate(self) -> AbstractContextManager[Any]:
        """Hold the lock for a change that Resource Graph sees (bumps the World's version)."""
        ...

    def get_configuration(self, configuration_id: str) -> dict[str, Any] | None:
        """A maintenance configuration's ARM object, or None."""
        ...

    def get_storage_account(self, account_id: str) -> str | None:
        """The stored id of a storage account, or None."""
        ...


def arm_error(code: str, message: str) -> dict[str, Any]:
    """ARM's error body (world.py and the server use this one too)."""
    return {"error": {"code": code, "message": message}}


def bad_request(message: str, code: str = "InvalidRequest") -> Answer:
    """A 400 in ARM's error shape."""
    return 400, arm_error(code, message), {}


def method_not_allowed(method: str) -> Answer:
    """A 405 for a method the stand-in does not play on a resource."""
    return 405, arm_error("MethodNotAllowed",
                          f"The stand-in does not support {method} on this resource."), {}


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value (dicts and lists; the leaves are immutable)."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 time as ARM writes it (naive means UTC), or None."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def ancestor_or_self(scope: str, resource_id: str) -> bool:
    """Whether ``resource_id`` is ``scope`` or below it (case-insensitive)."""
    scope, resource_id = scope.lower().rstrip("/"), resource_id.lower().rstrip("/")
    return resource_id == scope or resource_id.startswith(scope + "/")


def storage_account_id(subscription_id: str, resource_group: str,
                       name: str = AZURITE_ACCOUNT) -> str:
    """The resource id of a storage account."""
    return (f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/"
            f"{STORAGE_TYPE}/{name}")

