"""Reading several tenants (issue 19): one Resource Graph read per profile and kind, each
profile with its own credential, :class:`~services.azure.resourcegraph.QueryRunner` and
governor (the quota is per identity), side by side; one tenant failing does not stop the
others (its error is kept under its name).

Without ``[[tenants]]`` there is one implicit profile, read exactly as before: its failure
is raised, not kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from services.domain.clock import Clock
from services.domain.errors import service_error
from services.domain.model import Fetched
from services.domain.tenants import TenantRead, one_per_owner
from services.settings import Profile, Settings

T = TypeVar("T")

#: Exit status of a command that printed what it could while some tenants failed.
EXIT_TENANTS_FAILED = 4


@dataclass(frozen=True)
class ProfileResult(Generic[T]):
    """One profile's answer: its value, or the one-line error of its failure."""

    profile: Profile
    value: T | None = None
    error: str | None = None


async def each_profile(settings: Settings,
                       work: Callable[[Profile, Any], Awaitable[T]], *,
                       clock: Clock | None = None,
                       what: str = "Resource Graph read") -> list[ProfileResult[T]]:
    """Run ``work(profile, runner)`` for every profile at once, each with a runner signed in
    with its own credential. A declared profile's failure is kept as its result's error; the
    implicit profile's is raised (a config without profiles behaves as before)."""

    async def one(profile: Profile) -> ProfileResult[T]:
        from services.azure.resourcegraph import QueryRunner

        try:
            async with QueryRunner.from_settings(profile.settings, clock=clock) as runner:
                return ProfileResult(profile, await work(profile, runner))
        except Exception as exc:
            if profile.implicit:
                raise
            return ProfileResult(profile, error=service_error(exc, what=what).message)

    return list(await asyncio.gather(*(one(p) for p in settings.tenant_profiles())))


def merge_fetched(results: Sequence[ProfileResult[Fetched[Any]]],
                  key: Callable[[Any], str]) -> Fetched[Any]:
    """The profiles' fetches as one: every item tagged with its profile, each once (the
    copy of its owning tenant), the failed tenants in ``failed``."""
    answered = [r for r in results if r.value is not None]
    reads = [TenantRead(r.profile.name, r.profile.tenant, r.value.items)
             for r in answered if r.value is not None]
    items = one_per_owner(reads, key)
    failed = {r.profile.label: r.error or "failed" for r in results if r.value is None}
    values = [r.value for r in answered if r.value is not None]
    if not values:
        from datetime import UTC, datetime

        return Fetched((), datetime.now(UTC), None, 0, failed)
    return Fetched(items, max(v.fetched_at for v in values),
                   next((v.skew for v in values if v.skew is not None), None),
                   sum(v.requests for v in values), failed)


def configuration_key(config: Any) -> str:
    """A configuration's identity across tenants: its id, lower case."""
    return str(config.id).lower()


def run_key(run: Any) -> str:
    """A run's identity across tenants: its correlation id, lower case."""
    return str(run.key)
