"""Resource Graph queries: paging, the quota governor, the server's clock.

:class:`QueryRunner` sends one KQL query over the scope in settings and follows ``$skipToken``
until every row is read. Before each request it asks the :class:`Governor`, which keeps the
identity under Resource Graph's quota (about 15 queries per 5 s per user, docs/azure.md):

* a local sliding window: never more than ``limit`` requests in any ``period``;
* the server's own count: when ``x-ms-user-quota-remaining`` says the quota is (nearly) spent,
  wait until ``x-ms-user-quota-resets-after``;
* on 429: wait ``Retry-After`` (or the resets-after header, or a growing backoff) and resend;
  the SDK's own retries are switched off for these queries, so every request, retried or not,
  passes the governor and a 429 never reaches the operator unless it persists.

The governor waits with an injected ``sleep`` and reads an injected clock, so it is tested
without real sleeps. Its clock should be real time (the quota is), not a scenario clock.

Every response's ``Date`` header gives the clock skew (server minus local) against the
runner's clock, which the window rules can apply.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from services.domain.clock import Clock, SystemClock
from services.domain.errors import ServiceError, service_error
from services.settings import Settings

Sleep = Callable[[float], Awaitable[None]]

#: Resource Graph allows about 15 queries per 5 seconds per identity (docs/azure.md, "Resource
#: Graph").
QUOTA_LIMIT = 15
QUOTA_PERIOD = timedelta(seconds=5)
PAGE_SIZE = 1000
#: ``Date`` has whole seconds: differences below this are noise, not skew.
SKEW_RESOLUTION = timedelta(seconds=2)
#: How many 429s in a row a query absorbs before the error reaches the caller.
MAX_THROTTLED_RETRIES = 6

_RESETS_AFTER = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)\s*$")


def parse_resets_after(value: str | None) -> timedelta | None:
    """``x-ms-user-quota-resets-after`` (``hh:mm:ss``, fractions allowed) as a timedelta."""
    if not value:
        return None
    match = _RESETS_AFTER.match(value)
    if not match:
        return None
    hours, minutes, seconds = int(match[1]), int(match[2]), float(match[3])
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as seconds or as an HTTP date, relative to ``now``."""
    if not value:
        return None
    text = value.strip()
    try:
        return timedelta(seconds=max(0.0, float(text)))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(timedelta(0), when - now)


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP ``Date`` header as an aware UTC datetime (None when absent or malformed)."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # azure-core's headers are case-insensitive; plain dicts in tests may not be.
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, item in headers.items():
            if key.lower() == lowered:
                return item
    return value


@dataclass(frozen=True)
class GovernorState:
    """What the status bar shows about the Resource Graph quota."""

    remaining: int | None  # as the server last said, minus requests sent since
    resets_at: datetime | None
    throttled_until: datetime | None
    last_error: str | None
    requests: int  # sent since the governor was made
    throttled: int  # 429s received


class Governor:
    """Paces Resource Graph requests of one identity; share one per identity.

    ``reserve`` requests of the server's quota are left for the operator's other tools (the
    portal, ``az graph query``): when the server says no more than that remain, the governor
    waits for the reset.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        *,
        limit: int = QUOTA_LIMIT,
        period: timedelta = QUOTA_PERIOD,
        reserve: int = 1,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.clock: Clock = clock or SystemClock()
        self._sleep: Sleep = sleep or asyncio.sleep
        self.limit = limit
        self.period = period
        self.reserve = reserve
        self._lock = threading.Lock()  # loop-agnostic: the dashboard's workers may use several
        self._sent: deque[datetime] = deque()
        self._remaining: int | None = None
        self._resets_at: datetime | None = None
        self._throttled_until: datetime | None = None
        self._throttled_in_a_row = 0
        self._last_error: str | None = None
        self._requests = 0
        self._throttled = 0

    # -- waiting ---------------------------------------------------------------------------
    def _wait_needed(self, now: datetime) -> timedelta:
        waits = [timedelta(0)]
        while self._sent and self._sent[0] <= now - self.period:
            self._sent.popleft()
        if len(self._sent) >= self.limit:
            waits.append(self._sent[0] + self.period - now)
        if self._throttled_until is not None and self._throttled_until > now:
            waits.append(self._throttled_until - now)
        if (
            self._remaining is not None
            and self._remaining <= self.reserve
            and self._resets_at is not None
            and self._resets_at > now
        ):
            waits.append(self._resets_at - now)
        return max(waits)

    async def acquire(self) -> None:
        """Wait until one more request is allowed, then count it as sent."""
        while True:
            with self._lock:
                now = self.clock.now()
                if self._resets_at is not None and now >= self._resets_at:
                    # The server's window has rolled over: its old count no longer binds.
                    self._remaining, self._resets_at = None, None
                wait = self._wait_needed(now)
                if wait <= timedelta(0):
                    self._sent.append(now)
                    self._requests += 1
                    if self._remaining is not None:
                        self._remaining -= 1
                    return
            await self._sleep(wait.total_seconds())

    # -- what the server said --------------------------------------------------------------
    def observe(self, headers: Mapping[str, str]) -> None:
        """Read the quota headers of a successful response."""
        remaining = _header(headers, "x-ms-user-quota-remaining")
        resets = parse_resets_after(_header(headers, "x-ms-user-quota-resets-after"))
        with self._lock:
            now = self.clock.now()
            self._throttled_in_a_row = 0
            self._last_error = None
            if remaining is not None:
                try:
                    self._remaining = int(float(remaining))
                except ValueError:
                    self._remaining = None
            if resets is not None:
                self._resets_at = now + resets

    def throttled(self, headers: Mapping[str, str], message: str | None = None) -> timedelta:
        """Record a 429: back off for Retry-After, else resets-after, else a growing delay
        (1, 2, 4 ... up to the quota period). Returns the backoff chosen."""
        with self._lock:
            now = self.clock.now()
            self._throttled += 1
            self._throttled_in_a_row += 1
            backoff = parse_retry_after(_header(headers, "Retry-After"), now)
            if backoff is None:
                backoff = parse_resets_after(_header(headers, "x-ms-user-quota-resets-after"))
            if backoff is None or backoff <= timedelta(0):
                backoff = min(self.period, timedelta(seconds=2 ** (self._throttled_in_a_row - 1)))
            self._throttled_until = max(self._throttled_until or now, now + backoff)
            self._remaining = 0
            self._resets_at = now + backoff
            self._last_error = message or "throttled by Resource Graph"
            return backoff

    def failed(self, message: str) -> None:
        """Record a failure that was not throttling (shown until the next success)."""
        with self._lock:
            self._last_error = message

    @property
    def state(self) -> GovernorState:
        """A snapshot for the status bar."""
        with self._lock:
            now = self.clock.now()
            until = self._throttled_until if self._throttled_until and self._throttled_until > now \
                else None
            return GovernorState(
                remaining=self._remaining,
                resets_at=self._resets_at,
                throttled_until=until,
                last_error=self._last_error,
                requests=self._requests,
                throttled=self._throttled,
            )


@dataclass(frozen=True)
class QueryResult:
    """All rows of one query, with when it was fetched and what the server's clock said."""

    rows: tuple[dict[str, Any], ...]
    fetched_at: datetime
    skew: timedelta | None
    requests: int


class QueryRunner:
    """Runs KQL against Resource Graph over the settings' scope, paged and governed.

    ``client`` is an ``azure.mgmt.resourcegraph.aio.ResourceGraphClient`` (or anything with an
    async ``resources(query, **kwargs)``); build one with :meth:`from_settings`. ``clock`` is
    the application's clock (fetched_at, skew). ``skew`` is server minus local system time
    from the last ``Date`` header; with ``correct_clock`` a :class:`SystemClock`'s ``skew`` is
    set to it when it is off by two seconds or more (other clocks are never changed).
    """

    def __init__(
        self,
        client: Any,
        *,
        subscriptions: Sequence[str] = (),
        management_groups: Sequence[str] = (),
        clock: Clock | None = None,
        governor: Governor | None = None,
        page_size: int = PAGE_SIZE,
        correct_clock: bool = True,
    ) -> None:
        self.client = client
        # When the clock is a SystemClock, apply the measured skew to it (DESIGN: "the clock
        # may carry a measured skew"), so the window rules run on the server's time.
        self.correct_clock = correct_clock
        self.subscriptions = tuple(subscriptions)
        self.management_groups = tuple(management_groups)
        self.clock: Clock = clock or SystemClock()
        self.governor = governor or Governor()
        self.page_size = page_size
        self.skew: timedelta | None = None
        self._credential: Any = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        governor: Governor | None = None,
        credential: Any = None,
        correct_clock: bool = True,
    ) -> QueryRunner:
        """A runner with its own aio client (SDK retries off: the governor retries).

        ``correct_clock``: apply the skew measured from the ``Date`` header to a SystemClock.
        """
        from services.azure.clients import async_resource_graph_client, make_async_credential

        own_credential = credential is None
        credential = credential or make_async_credential(settings)
        client = async_resource_graph_client(settings, credential, retry_total=0)
        runner = cls(
            client,
            subscriptions=settings.subscriptions,
            management_groups=settings.management_groups,
            clock=clock,
            governor=governor,
            correct_clock=correct_clock,
        )
        if own_credential:
            runner._credential = credential
        return runner

    async def close(self) -> None:
        """Close the client (and the credential when the runner made it)."""
        await self.client.close()
        if self._credential is not None and hasattr(self._credential, "close"):
            await self._credential.close()

    async def __aenter__(self) -> QueryRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _request(self, query: str, skip_token: str | None) -> Any:
        from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions

        options = QueryRequestOptions(
            top=self.page_size, skip_token=skip_token, result_format="objectArray"
        )
        if self.management_groups:
            return QueryRequest(query=query, management_groups=list(self.management_groups),
                                options=options)
        if self.subscriptions:
            return QueryRequest(query=query, subscriptions=list(self.subscriptions),
                                options=options)
        return QueryRequest(query=query, options=options)  # all the identity can see

    def _note_date(self, headers: Mapping[str, str]) -> None:
        server = parse_http_date(_header(headers, "Date"))
        if server is None:
            return
        current = getattr(self.clock, "skew", None)
        measured = server - self.clock.now()
        if isinstance(current, timedelta):
            # A SystemClock already carries a correction: the skew is that plus what remains.
            self.skew = current + measured
            if self.correct_clock and abs(measured) >= SKEW_RESOLUTION:
                self.clock.skew = self.skew  # type: ignore[attr-defined]
        else:
            self.skew = measured

    async def _page(self, query: str, skip_token: str | None, what: str) -> Any:
        """One page, retried on 429 through the governor."""
        attempts = 0
        while True:
            await self.governor.acquire()
            seen: dict[str, Any] = {}

            def hook(response: Any, seen: dict[str, Any] = seen) -> None:
                seen["headers"] = dict(response.http_response.headers)

            try:
                result = await self.client.resources(
                    self._request(query, skip_token), raw_response_hook=hook
                )
            except Exception as exc:  # mapped to one error type below
                error = service_error(exc, what=what)
                headers = _error_headers(exc) or seen.get("headers") or {}
                if headers:
                    self._note_date(headers)
                if error.kind == "throttled" and attempts < MAX_THROTTLED_RETRIES:
                    attempts += 1
                    self.governor.throttled(headers, error.message)
                    continue
                self.governor.failed(error.message)
                raise error from exc
            headers = seen.get("headers") or {}
            self.governor.observe(headers)
            self._note_date(headers)
            return result

    async def query(self, query: str, *, what: str = "Resource Graph query") -> QueryResult:
        """Every row of ``query`` (objectArray), following ``$skipToken``.

        Raises :class:`~services.domain.errors.ServiceError` with a one-line message on failure.
        """
        rows: list[dict[str, Any]] = []
        skip_token: str | None = None
        requests = 0
        seen_tokens: set[str] = set()
        while True:
            result = await self._page(query, skip_token, what)
            requests += 1
            data = getattr(result, "data", None) or []
            if not isinstance(data, list):
                raise ServiceError("server", f"{what}: unexpected result format "
                                   f"({type(data).__name__}, expected a list of rows)")
            rows.extend(row for row in data if isinstance(row, dict))
            skip_token = getattr(result, "skip_token", None)
            if not skip_token:
                break
            if skip_token in seen_tokens:  # a server bug must not loop us forever
                raise ServiceError("server", f"{what}: the server repeated a page token")
            seen_tokens.add(skip_token)
        return QueryResult(tuple(rows), self.clock.now(), self.skew, requests)


def _error_headers(exc: BaseException) -> dict[str, str]:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    try:
        return dict(headers) if headers is not None else {}
    except (TypeError, ValueError):
        return {}

