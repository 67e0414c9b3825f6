"""Several tenants in one view (issue 19): tagging what each profile read and keeping one
copy of what two profiles both see.

Resource Graph has no tenant parameter: the token decides, and a tenant-scope query also
returns the subscriptions delegated to that tenant through Azure Lighthouse, each row with
the ``tenantId`` that owns it. A subscription seen through two profiles must appear once,
under the tenant that owns it. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class TenantRead:
    """What one profile's read returned: its name, its tenant id and the items."""

    profile: str
    tenant_id: str | None
    items: Sequence[Any]


def tag(items: Iterable[T], profile: str, tenant_id: str | None) -> tuple[T, ...]:
    """``items`` (configurations or runs) marked as read through ``profile``; an item whose
    row named no owning tenant gets the profile's."""
    out: list[T] = []
    for item in items:
        owner = getattr(item, "tenant_id", None) or tenant_id
        out.append(replace(item, tenant=profile, tenant_id=owner))  # type: ignore[type-var]
    return tuple(out)


def delegated(item: Any, profile_tenant: str | None) -> bool:
    """Whether ``item`` was read through a delegation: the tenant owning its subscription is
    not the tenant of the profile it was read through (both known)."""
    owner = getattr(item, "tenant_id", None)
    return bool(owner and profile_tenant and owner.lower() != profile_tenant.lower())


def one_per_owner(reads: Sequence[TenantRead], key: Callable[[Any], str]) -> tuple[Any, ...]:
    """Every profile's items, tagged, each item once: when two profiles return the same item
    (a Lighthouse-delegated subscription), the copy read through the tenant that owns it is
    kept; when none of them owns it, the first profile's. Order: by profile, then as read."""
    chosen: dict[str, Any] = {}
    owned: set[str] = set()
    for read in reads:
        for item in tag(read.items, read.profile, read.tenant_id):
            k = key(item)
            is_owner = not delegated(item, read.tenant_id)
            if k not in chosen or (is_owner and k not in owned):
                chosen[k] = item
                if is_owner:
                    owned.add(k)
    return tuple(chosen.values())


def failures_line(failed: Mapping[str, str]) -> str:
    """One line naming the tenants whose read failed and why."""
    return "; ".join(f"tenant {name}: {message}" for name, message in failed.items())
