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
                  key: Callable[[Any], str], *, clock: Clock | None = None) -> Fetched[Any]:
    """The profiles' fetches as one: every item tagged with its profile, each once (the
    copy of its owning tenant), the failed tenants in ``failed``. When none answered, it
    was fetched at ``clock``'s now (the system clock without one)."""
    answered = [r for r in results if r.value is not None]
    reads = [TenantRead(r.profile.name, r.profile.tenant, r.value.items)
             for r in answered if r.value is not None]
    items = one_per_owner(reads, key)
    failed = {r.profile.label: r.error or "failed" for r in results if r.value is None}
    values = [r.value for r in answered if r.value is not None]
    if not values:
        from services.domain.clock import SystemClock

        return Fetched((), (clock or SystemClock()).now(), None, 0, failed)
    return Fetched(items, max(v.fetched_at for v in values),
                   next((v.skew for v in values if v.skew is not None), None),
                   sum(v.requests for v in values), failed)


def configuration_key(config: Any) -> str:
    """A configuration's identity across tenants: its id, lower case."""
    return str(config.id).lower()


def run_key(run: Any) -> str:
    """A run's identity across tenants: its correlation id, lower case."""
    return str(run.key)


def failed_preflight(message: str, clock: Clock) -> Any:
    """A pre-flight source whose every read fails with ``message``."""
    from services.azure.preflight import PreflightSnapshot

    class Failed:
        async def read(self) -> PreflightSnapshot:
            return PreflightSnapshot((), clock.now(), error=message)

    return Failed()


class TenantsPreflight:
    """The dashboard's pre-flight read over several tenants (issue 19): each tenant's
    :class:`~services.azure.preflight.PreflightSource` (its own runner) read side by side,
    as one snapshot; a tenant whose read failed is named in ``error``, the others' items
    stand."""

    def __init__(self, sources: dict[str, Any]) -> None:
        self.sources = sources

    async def read(self) -> Any:
        """Every tenant's :meth:`PreflightSource.read`, merged (never raises)."""
        from services.azure.preflight import PreflightSnapshot

        names = list(self.sources)
        snapshots = await asyncio.gather(*(self.sources[n].read() for n in names))
        seen: set[tuple[str, Any]] = set()
        items = []
        for snapshot in snapshots:
            for item in snapshot.items:
                key = (item.configuration_id.lower(), item.run_start)
                if key not in seen:
                    seen.add(key)
                    items.append(item)
        errors = [f"tenant {n}: {s.error}" for n, s in zip(names, snapshots, strict=True)
                  if s.error]
        return PreflightSnapshot(tuple(items), max(s.fetched_at for s in snapshots),
                                 sum(s.requests for s in snapshots),
                                 max(s.seconds for s in snapshots), "; ".join(errors) or None)

    async def fetch(self) -> Any:
        """As :meth:`read` (the pre-flight loop reads; a failure is the snapshot's)."""
        return await self.read()
