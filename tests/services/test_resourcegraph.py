"""The Resource Graph governor and query runner, with a fake clock and a fake client."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError

from services.azure.resourcegraph import (
    Governor,
    QueryRunner,
    parse_resets_after,
    parse_retry_after,
)
from services.domain.clock import ManualClock
from services.domain.errors import ServiceError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeSleep:
    """Advances the manual clock instead of sleeping; records each wait."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))


def make_governor(**kwargs: Any) -> tuple[Governor, ManualClock, FakeSleep]:
    clock = ManualClock(T0)
    sleep = FakeSleep(clock)
    return Governor(clock, sleep, **kwargs), clock, sleep


def max_in_any_window(times: list[datetime], period: timedelta) -> int:
    return max(sum(1 for t in times if start <= t < start + period) for start in times)


class FakeResponse:
    """Enough of an azure-core HttpResponse for HttpResponseError."""

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status_code = status
        self.headers = headers
        self.reason = "Too Many Requests" if status == 429 else "Error"
        self.content_type = "application/json"

    def text(self, encoding: str | None = None) -> str:
        return '{"error": {"code": "RateLimiting", "message": "Please provide below info"}}'

    def body(self) -> bytes:
        return self.text().encode()


class FakeHook:
    def __init__(self, headers: dict[str, str]) -> None:
        self.http_response = type("R", (), {"headers": headers})()


class FakePage:
    def __init__(self, data: list[dict[str, Any]], skip_token: str | None) -> None:
        self.data = data
        self.skip_token = skip_token


class FakeClient:
    """Serves ``rows`` in pages; a server-side quota of ``quota`` per ``period`` on ``clock``.

    ``script`` can inject failures: a callable per call index returning an exception or None.
    """

    def __init__(self, clock: ManualClock, rows: int, *, quota: int = 15,
                 period: timedelta = timedelta(seconds=5),
                 script: Callable[[int], Exception | None] | None = None,
                 headers: Callable[[], dict[str, str]] | None = None,
                 quota_headers: bool = True) -> None:
        self.clock = clock
        self.rows = [{"id": f"r{i}"} for i in range(rows)]
        self.quota = quota
        self.period = period
        self.script = script
        self.extra_headers = headers
        self.quota_headers = quota_headers
        self.calls: list[datetime] = []
        self.requests: list[Any] = []

    def _quota_headers(self) -> dict[str, str]:
        if not self.quota_headers:
            return {}
        now = self.clock.now()
        recent = [t for t in self.calls if t > now - self.period]
        remaining = max(0, self.quota - len(recent))
        reset = (recent[0] + self.period - now) if recent else self.period
        secs = reset.total_seconds()
        return {"x-ms-user-quota-remaining": str(remaining),
                "x-ms-user-quota-resets-after": f"00:00:{secs:06.3f}"}

    async def resources(self, request: Any, raw_response_hook: Any = None) -> FakePage:
        index = len(self.calls)
        now = self.clock.now()
        self.calls.append(now)
        self.requests.append(request)
        recent = [t for t in self.calls if t > now - self.period]
        if len(recent) > self.quota:
            raise HttpResponseError(response=FakeResponse(429, self._quota_headers()))
        failure = self.script(index) if self.script else None
        if failure is not None:
            raise failure
        start = int(request.options.skip_token or 0)
        size = request.options.top
        chunk = self.rows[start : start + size]
        token = str(start + size) if start + size < len(self.rows) else None
        headers = self._quota_headers()
        if self.extra_headers:
            headers.update(self.extra_headers())
        if raw_response_hook:
            raw_response_hook(FakeHook(headers))
        return FakePage(chunk, token)

    async def close(self) -> None:
        return None


def test_resets_after_and_retry_after_headers_are_parsed() -> None:
    assert parse_resets_after("00:00:04") == timedelta(seconds=4)
    assert parse_resets_after("01:02:03.5") == timedelta(hours=1, minutes=2, seconds=3.5)
    assert parse_resets_after("soon") is None
    assert parse_retry_after("7", T0) == timedelta(seconds=7)
    assert parse_retry_after("Sun, 01 Mar 2026 12:00:09 GMT", T0) == timedelta(seconds=9)
    assert parse_retry_after("garbage", T0) is None


async def test_governor_never_sends_more_than_the_limit_in_any_period() -> None:
    governor, clock, _ = make_governor(limit=15)
    sent = []
    for _ in range(100):
        await governor.acquire()
        sent.append(clock.now())
    assert max_in_any_window(sent, timedelta(seconds=5)) == 15
    # and it does not wait more than needed: 100 requests in about 6 windows
    assert clock.now() - T0 <= timedelta(seconds=35)


async def test_governor_does_not_wait_while_quota_is_left() -> None:
    governor, clock, sleep = make_governor()
    governor.observe({"x-ms-user-quota-remaining": "10",
                      "x-ms-user-quota-resets-after": "00:00:05"})
    await governor.acquire()
    assert sleep.waits == [] and clock.now() == T0


async def test_governor_waits_for_the_reset_when_the_server_says_quota_is_spent() -> None:
    governor, clock, _ = make_governor(reserve=1)
    governor.observe({"x-ms-user-quota-remaining": "1",
                      "x-ms-user-quota-resets-after": "00:00:03"})
    await governor.acquire()
    assert clock.now() == T0 + timedelta(seconds=3)


async def test_429_with_retry_after_backs_off_that_long() -> None:
    governor, clock, _ = make_governor()
    backoff = governor.throttled({"Retry-After": "7"})
    assert backoff == timedelta(seconds=7)
    assert governor.state.throttled_until == T0 + timedelta(seconds=7)
    await governor.acquire()
    assert clock.now() == T0 + timedelta(seconds=7)
    assert governor.state.throttled_until is None


async def test_429_without_retry_after_uses_resets_after_then_a_growing_backoff() -> None:
    governor, _, _ = make_governor()
    assert governor.throttled({"x-ms-user-quota-resets-after": "00:00:02"}) == timedelta(seconds=2)
    assert governor.throttled({}) == timedelta(seconds=2)  # second in a row: 2 s
    assert governor.throttled({}) == timedelta(seconds=4)
    assert governor.throttled({}) == timedelta(seconds=5)  # capped at the quota period
    governor.observe({})
    assert governor.throttled({}) == timedelta(seconds=1)  # a success resets the backoff


async def test_runner_follows_skip_tokens_and_reads_every_row() -> None:
    clock = ManualClock(T0)
    client = FakeClient(clock, rows=2500)
    runner = QueryRunner(client, subscriptions=["s1"], clock=clock,
                         governor=Governor(clock, FakeSleep(clock)))
    result = await runner.query("resources | project id")
    assert len(result.rows) == 2500
    assert result.requests == 3
    assert [r.options.skip_token for r in client.requests] == [None, "1000", "2000"]
    assert client.requests[0].subscriptions == ["s1"]
    assert client.requests[0].options.result_format == "objectArray"


async def test_runner_over_many_pages_never_exceeds_the_quota_and_hides_no_rows() -> None:
    clock = ManualClock(T0)
    client = FakeClient(clock, rows=40_500, quota=15)
    governor = Governor(clock, FakeSleep(clock))
    runner = QueryRunner(client, clock=clock, governor=governor)
    result = await runner.query("resources | project id")
    assert len(result.rows) == 40_500 and result.requests == 41
    assert max_in_any_window(client.calls, timedelta(seconds=5)) <= 15
    assert governor.state.throttled == 0


async def test_runner_paces_by_the_servers_remaining_count_below_the_local_limit() -> None:
    # Another tool of the same user spends part of the quota: the server's count binds.
    clock = ManualClock(T0)
    client = FakeClient(clock, rows=12_000, quota=5)
    governor = Governor(clock, FakeSleep(clock), reserve=0)
    result = await QueryRunner(client, clock=clock, governor=governor).query("q")
    assert len(result.rows) == 12_000
    assert max_in_any_window(client.calls, timedelta(seconds=5)) <= 5
    assert governor.state.throttled == 0


async def test_runner_absorbs_429s_when_the_server_sends_no_quota_headers() -> None:
    clock = ManualClock(T0)
    client = FakeClient(clock, rows=12_000, quota=5, quota_headers=False)
    governor = Governor(clock, FakeSleep(clock))
    result = await QueryRunner(client, clock=clock, governor=governor).query("q")
    assert len(result.rows) == 12_000
    assert governor.state.throttled > 0  # they happened, and none reached the caller


async def test_runner_retries_a_429_without_retry_after() -> None:
    clock = ManualClock(T0)

    def script(i: int) -> Exception | None:
        if i == 0:
            return HttpResponseError(response=FakeResponse(429, {}))
        return None

    client = FakeClient(clock, rows=10, script=script)
    sleep = FakeSleep(clock)
    runner = QueryRunner(client, clock=clock, governor=Governor(clock, sleep))
    result = await runner.query("q")
    assert len(result.rows) == 10
    assert len(client.calls) == 2
    assert sleep.waits == [1.0]


async def test_persistent_throttling_surfaces_as_one_throttled_error() -> None:
    clock = ManualClock(T0)
    client = FakeClient(clock, rows=10,
                        script=lambda i: HttpResponseError(response=FakeResponse(429, {})))
    runner = QueryRunner(client, clock=clock, governor=Governor(clock, FakeSleep(clock)))
    with pytest.raises(ServiceError) as info:
        await runner.query("q")
    assert info.value.kind == "throttled"
    assert "\n" not in str(info.value)
    assert runner.governor.state.last_error


async def test_network_error_is_mapped_and_the_next_query_recovers() -> None:
    clock = ManualClock(T0)
    client = FakeClient(
        clock, rows=3, script=lambda i: ServiceRequestError("connection reset") if i == 0 else None
    )
    runner = QueryRunner(client, clock=clock, governor=Governor(clock, FakeSleep(clock)))
    with pytest.raises(ServiceError) as info:
        await runner.query("q", what="configurations query")
    assert info.value.kind == "network"
    assert str(info.value).startswith("configurations query")
    assert len((await runner.query("q")).rows) == 3
    assert runner.governor.state.last_error is None


async def test_unauthorized_is_mapped_with_a_hint() -> None:
    clock = ManualClock(T0)
    client = FakeClient(clock, rows=3,
                        script=lambda i: HttpResponseError(response=FakeResponse(401, {})))
    runner = QueryRunner(client, clock=clock, governor=Governor(clock, FakeSleep(clock)))
    with pytest.raises(ServiceError) as info:
        await runner.query("q")
    assert info.value.kind == "unauthorized" and "HTTP 401" in str(info.value)


async def test_clock_skew_is_measured_from_the_date_header() -> None:
    clock = ManualClock(T0)
    client = FakeClient(clock, rows=1,
                        headers=lambda: {"Date": "Sun, 01 Mar 2026 12:00:42 GMT"})
    runner = QueryRunner(client, clock=clock, governor=Governor(clock, FakeSleep(clock)))
    result = await runner.query("q")
    assert result.skew == timedelta(seconds=42)
    assert result.fetched_at == T0


async def test_management_group_scope_is_sent_instead_of_subscriptions() -> None:
    clock = ManualClock(T0)
    client = FakeClient(clock, rows=1)
    runner = QueryRunner(client, management_groups=["mg1"], clock=clock,
                         governor=Governor(clock, FakeSleep(clock)))
    await runner.query("q")
    assert client.requests[0].management_groups == ["mg1"]
    assert client.requests[0].subscriptions is None


async def test_a_system_clock_is_corrected_by_the_measured_skew() -> None:
    from email.utils import format_datetime

    from services.domain.clock import SystemClock

    clock = SystemClock()
    ahead = format_datetime(clock.now() + timedelta(minutes=3), usegmt=True)
    manual = ManualClock(T0)  # the governor's clock; the runner's is the system clock
    client = FakeClient(manual, rows=1, headers=lambda: {"Date": ahead})
    runner = QueryRunner(client, clock=clock, governor=Governor(manual, FakeSleep(manual)))
    result = await runner.query("q")
    assert result.skew is not None
    assert abs(result.skew - timedelta(minutes=3)) < timedelta(seconds=2)
    assert clock.skew == result.skew  # the window rules now run on the server's time
    uncorrected = SystemClock()
    runner = QueryRunner(client, clock=uncorrected, governor=Governor(manual, FakeSleep(manual)),
                         correct_clock=False)
    await runner.query("q")
    assert uncorrected.skew == timedelta(0)
