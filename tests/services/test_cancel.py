"""Canceller rules with fake ARM calls and a manual clock (no network, no sleeps)."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.core.exceptions import ServiceRequestError, ServiceResponseError

from services.azure.cancel import (
    ArmReply,
    Canceller,
    CancelTarget,
    Outcome,
    token_identity,
)
from services.azure.journal import Journal
from services.domain.clock import ManualClock
from services.domain.window import WindowRules

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CONFIG_ID = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
             "Microsoft.Maintenance/maintenanceConfigurations/nightly")
RUN_ID = f"{CONFIG_ID}/providers/microsoft.maintenance/applyupdates/20260301120000"


class FakeArm:
    """Stands in for the PUT and the GET of one run."""

    def __init__(self, status: str = "Pending") -> None:
        self.status = status
        self.puts: list[tuple[str, str]] = []
        self.gets = 0
        self.put_reply: ArmReply | None = None  # None: accept and cancel
        self.put_raises: Exception | None = None
        self.cancel_before_raising = False  # the PUT reached the service, the answer was lost
        self.get_raises: Exception | None = None
        self.gate: asyncio.Event | None = None

    def _obj(self) -> ArmReply:
        return ArmReply(200, {"id": RUN_ID, "properties": {"status": self.status}})

    async def send(self, path: str, api_version: str) -> ArmReply:
        self.puts.append((path, api_version))
        if self.gate is not None:
            await self.gate.wait()
        if self.put_raises is not None:
            if self.cancel_before_raising:
                self.status = "Cancelled"
            raise self.put_raises
        if self.put_reply is not None:
            return self.put_reply
        self.status = "Cancelled"
        return self._obj()

    async def read_back(self, path: str, api_version: str) -> ArmReply:
        self.gets += 1
        if self.get_raises is not None:
            raise self.get_raises
        return self._obj()


class FakeSleep:
    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))


def make(arm: FakeArm, clock: ManualClock, journal: Journal | None = None, **kw) -> Canceller:
    return Canceller(arm.send, arm.read_back, journal, clock, WindowRules(),
                     kw.pop("read_only", False), "2023-09-01-preview",
                     sleep=FakeSleep(clock), **kw)


def target(cutoff: datetime | None = None, computed: bool = False) -> CancelTarget:
    return CancelTarget(RUN_ID, "nightly", T, cutoff, computed)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    with Journal(tmp_path / "j.sqlite3") as j:
        yield j


@pytest.mark.parametrize(
    ("at", "cutoff", "sent"),
    [
        (T - timedelta(minutes=40), None, True),  # the open is inclusive
        (T - timedelta(minutes=40, seconds=1), None, False),
        (T - timedelta(minutes=10, seconds=1), None, True),
        (T - timedelta(minutes=10), None, False),  # the close is exclusive
        (T - timedelta(minutes=5), None, False),
        (T + timedelta(minutes=1), None, False),
        (T - timedelta(minutes=20), T - timedelta(minutes=20), False),  # an earlier cutoff
        (T - timedelta(minutes=21), T - timedelta(minutes=20), True),
        (T - timedelta(minutes=11), T - timedelta(minutes=1), True),  # a later cutoff is ignored
        (T - timedelta(minutes=10), T - timedelta(minutes=1), False),
    ],
    ids=["T-40 allowed", "before T-40", "T-10-1s allowed", "T-10 refused", "locked",
         "running", "at earlier cutoff", "before earlier cutoff", "later cutoff ignored",
         "T-10 with later cutoff"],
)
async def test_window_is_checked_at_the_moment_of_sending(
    at: datetime, cutoff: datetime | None, sent: bool
) -> None:
    arm = FakeArm()
    result = await make(arm, ManualClock(at)).cancel(target(cutoff))
    assert bool(arm.puts) is sent
    if sent:
        assert result.outcome is Outcome.VERIFIED
    else:
        assert result.outcome is Outcome.REFUSED
        assert "cancel window is not open" in result.message


async def test_cutoff_before_the_open_refuses_saying_it_never_opens() -> None:
    arm = FakeArm()
    result = await make(arm, ManualClock(T - timedelta(minutes=45))).cancel(
        target(T - timedelta(minutes=50)))
    assert result.outcome is Outcome.REFUSED and "never opens" in result.message
    assert arm.puts == []


async def test_read_only_never_sends_and_is_audited(journal: Journal) -> None:
    arm = FakeArm()
    clock = ManualClock(T - timedelta(minutes=30))
    result = await make(arm, clock, journal, read_only=True).cancel(target())
    assert result.outcome is Outcome.REFUSED and "read-only" in result.message
    assert arm.puts == [] and arm.gets == 0
    [row] = journal.cancel_audit()
    assert (row.outcome, row.run_id) == ("refused", RUN_ID)
    assert "read-only" in (row.reason or "")


async def test_two_concurrent_cancels_send_one_request(journal: Journal) -> None:
    arm = FakeArm()
    arm.gate = asyncio.Event()
    canceller = make(arm, ManualClock(T - timedelta(minutes=30)), journal)
    first = asyncio.create_task(canceller.cancel(target()))
    await asyncio.sleep(0)  # let the first reach the PUT
    assert canceller.in_flight(RUN_ID.upper())  # ids compare case-insensitively
    second = await canceller.cancel(target())
    arm.gate.set()
    first_result = await first
    assert second.outcome is Outcome.REFUSED and "already in flight" in second.message
    assert first_result.outcome is Outcome.VERIFIED
    assert len(arm.puts) == 1
    assert sorted(r.outcome for r in journal.cancel_audit()) == ["refused", "verified-cancelled"]
    assert not canceller.in_flight(RUN_ID)


async def test_a_finished_attempt_releases_the_run(journal: Journal) -> None:
    arm = FakeArm()
    arm.put_reply = ArmReply(409, {"error": {"code": "Conflict", "message": "busy"}})
    canceller = make(arm, ManualClock(T - timedelta(minutes=30)), journal)
    assert (await canceller.cancel(target())).outcome is Outcome.FAILED
    arm.put_reply = None
    assert (await canceller.cancel(target())).outcome is Outcome.VERIFIED
    assert len(arm.puts) == 2


async def test_put_and_read_back_use_the_run_path_and_api_version() -> None:
    arm = FakeArm()
    result = await make(arm, ManualClock(T - timedelta(minutes=30))).cancel(target())
    assert arm.puts == [(RUN_ID, "2023-09-01-preview")]
    assert (result.outcome, result.http_status, result.run_status) == (
        Outcome.VERIFIED, 200, "Cancelled")


async def test_service_refusal_is_failed_with_its_message_and_not_read_back() -> None:
    arm = FakeArm()
    arm.put_reply = ArmReply(400, {"error": {"code": "CancellationWindowClosed",
                                             "message": "too late"}})
    result = await make(arm, ManualClock(T - timedelta(minutes=30))).cancel(target())
    assert result.outcome is Outcome.FAILED
    assert result.http_status == 400
    assert "CancellationWindowClosed: too late" in result.message
    assert arm.gets == 0


async def test_lost_answer_is_reconciled_by_reading_back_as_cancelled(journal: Journal) -> None:
    arm = FakeArm()
    arm.put_raises = ServiceResponseError("connection reset by peer")
    arm.cancel_before_raising = True
    result = await make(arm, ManualClock(T - timedelta(minutes=30)), journal).cancel(target())
    assert result.outcome is Outcome.VERIFIED and result.run_status == "Cancelled"
    assert result.http_status is None
    [row] = journal.cancel_audit()
    assert row.outcome == "verified-cancelled"


async def test_lost_request_read_back_as_pending_is_failed_after_bounded_reads() -> None:
    arm = FakeArm()
    arm.put_raises = ServiceRequestError("connection refused")
    clock = ManualClock(T - timedelta(minutes=30))
    canceller = make(arm, clock, read_attempts=3, read_interval=timedelta(seconds=2))
    result = await canceller.cancel(target())
    assert result.outcome is Outcome.FAILED
    assert "still shows Pending" in result.message and "connection" in result.message
    assert arm.gets == 3
    assert clock.now() == T - timedelta(minutes=30) + timedelta(seconds=4)


async def test_lost_request_and_failed_read_back_is_unknown_never_guessed(
    journal: Journal,
) -> None:
    arm = FakeArm()
    arm.put_raises = ServiceResponseError("timed out reading response")
    arm.get_raises = ServiceRequestError("network unreachable")
    result = await make(arm, ManualClock(T - timedelta(minutes=30)), journal,
                        read_attempts=2).cancel(target())
    assert result.outcome is Outcome.UNKNOWN
    assert "unknown" in result.message
    assert journal.cancel_audit()[0].outcome == "unknown"


async def test_server_error_is_reconciled_by_reading_back() -> None:
    arm = FakeArm()
    arm.put_reply = ArmReply(503, None, "Service Unavailable")
    result = await make(arm, ManualClock(T - timedelta(minutes=30))).cancel(target())
    assert result.outcome is Outcome.FAILED and result.http_status == 503
    assert arm.gets >= 1


async def test_accepted_but_never_seen_cancelled_is_unknown() -> None:
    arm = FakeArm()
    arm.put_reply = ArmReply(200, {"properties": {"status": "Cancelled"}})  # status not applied
    result = await make(arm, ManualClock(T - timedelta(minutes=30)), read_attempts=4).cancel(
        target())
    assert result.outcome is Outcome.UNKNOWN
    assert "still shows Pending" in result.message
    assert arm.gets == 4


async def test_read_back_stops_early_when_the_run_has_started() -> None:
    arm = FakeArm(status="InProgress")
    arm.put_raises = ServiceResponseError("reset")
    result = await make(arm, ManualClock(T - timedelta(minutes=30)), read_attempts=5).cancel(
        target())
    assert result.outcome is Outcome.FAILED and result.run_status == "InProgress"
    assert arm.gets == 1


async def test_audit_records_identity_computed_id_and_api_version(journal: Journal) -> None:
    arm = FakeArm()
    clock = ManualClock(T - timedelta(minutes=30))
    await make(arm, clock, journal, identity="ops@contoso.com").cancel(target())
    [row] = journal.cancel_audit()
    assert row.identity == "ops@contoso.com"
    assert row.computed_id is False
    assert (row.api_version, row.http_status, row.run_status) == (
        "2023-09-01-preview", 200, "Cancelled")
    assert row.attempted_at == clock.now()


async def test_unwritable_journal_refuses_the_cancel_without_sending(
    journal: Journal,
) -> None:
    journal.close()
    arm = FakeArm()
    result = await make(arm, ManualClock(T - timedelta(minutes=30)), journal).cancel(target())
    assert result.outcome is Outcome.REFUSED
    assert "audit journal cannot be written" in result.message
    assert result.journal_error is not None and "closed" in result.journal_error
    assert arm.puts == []


class SlowJournal(Journal):
    """A journal whose audit write takes ``delay`` on the clock (a slow fsync)."""

    def __init__(self, path: Path, clock: ManualClock, delay: timedelta) -> None:
        super().__init__(path)
        self._clock, self._delay = clock, delay

    def begin_cancel(self, **kwargs):  # type: ignore[no-untyped-def]
        seq = super().begin_cancel(**kwargs)
        self._clock.advance(self._delay)
        return seq


async def test_window_closing_during_the_audit_write_refuses_without_sending(
    tmp_path: Path,
) -> None:
    clock = ManualClock(T - timedelta(minutes=10, seconds=1))
    arm = FakeArm()
    with SlowJournal(tmp_path / "j.sqlite3", clock, timedelta(seconds=2)) as journal:
        result = await make(arm, clock, journal).cancel(target())
        [row] = journal.cancel_audit()
    assert result.outcome is Outcome.REFUSED and "window is not open" in result.message
    assert arm.puts == []
    assert row.outcome == "refused"


async def test_not_a_run_id_is_refused_without_sending() -> None:
    arm = FakeArm()
    bad = CancelTarget(CONFIG_ID, "nightly", T)
    result = await make(arm, ManualClock(T - timedelta(minutes=30))).cancel(bad)
    assert result.outcome is Outcome.REFUSED and "configuration id, not a run id" in result.message
    assert arm.puts == []


def _jwt(claims: dict) -> str:
    def enc(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return f"{enc({'alg': 'RS256'})}.{enc(claims)}.signature"


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"upn": "ops@contoso.com", "oid": "o-1"}, "ops@contoso.com oid=o-1"),
        ({"unique_name": "live.com#me@x.org"}, "live.com#me@x.org"),
        ({"appid": "a-1", "oid": "o-2"}, "oid=o-2 appid=a-1"),
        ({"aud": "https://management.azure.com"}, None),
        ({"upn": "evil\x1b[31m"}, "evil?[31m"),
    ],
)
def test_token_identity_reads_claims_without_verifying(claims: dict, expected: str | None) -> None:
    assert token_identity(_jwt(claims)) == expected


@pytest.mark.parametrize("token", ["opaque-static-token", "a.!!!.c", "a." + "W10" + ".c"])
def test_token_identity_of_a_non_jwt_is_none(token: str) -> None:
    assert token_identity(token) is None


# -- a run Azure has not shown us, and Azure's own answer to the PUT (issue 14, 4 and 9) -------


async def test_a_run_only_computed_from_the_schedule_is_refused_and_nothing_is_sent(
    journal: Journal,
) -> None:
    arm = FakeArm()
    clock = ManualClock(T - timedelta(minutes=30))  # inside the window: only the id is wrong
    result = await make(arm, clock, journal).cancel(target(computed=True))
    assert result.outcome is Outcome.REFUSED and "not seen in Azure yet" in result.message
    assert arm.puts == [] and arm.gets == 0
    [row] = journal.cancel_audit()
    assert (row.outcome, row.computed_id, row.http_status) == ("refused", True, None)
    assert "not seen in Azure yet" in (row.reason or "")


def real_answer(status: int, *, run_id: str = RUN_ID, capitalised: bool = False) -> ArmReply:
    """The recorded real answer to a cancel: lower-case id, the configuration's name, a zero
    lastUpdateTime (docs/azure.md, "Cancel API")."""
    props = {"status": "Cancelled", "resourceId": CONFIG_ID.lower(),
             "lastUpdateTime": "0001-01-01T00:00:00"}
    body = {"id": run_id.lower(), "name": "nightly", "type": "Microsoft.Maintenance/applyUpdates"}
    body["Properties" if capitalised else "properties"] = (
        {"Status": "Cancelled"} if capitalised else props)
    return ArmReply(status, body)


@pytest.mark.parametrize("status", [200, 201])
async def test_an_answer_of_cancelled_is_accepted_when_the_read_back_is_unavailable(
    journal: Journal, status: int,
) -> None:
    arm = FakeArm()
    arm.put_reply = real_answer(status)
    arm.get_raises = ServiceRequestError("connection refused")
    result = await make(arm, ManualClock(T - timedelta(minutes=30)), journal,
                        read_attempts=2).cancel(target())
    assert result.outcome is Outcome.ACCEPTED, result.message
    assert result.message.startswith("accepted by Azure, not yet confirmed")
    assert (result.http_status, result.run_status) == (status, "Cancelled")
    assert not result.verified
    [row] = journal.cancel_audit()
    assert (row.outcome, row.http_status) == ("accepted-unconfirmed", status)


async def test_property_names_of_the_answer_are_read_in_any_casing() -> None:
    arm = FakeArm()
    arm.put_reply = real_answer(200, capitalised=True)
    arm.get_raises = ServiceRequestError("connection refused")
    result = await make(arm, ManualClock(T - timedelta(minutes=30)), read_attempts=1).cancel(
        target())
    assert result.outcome is Outcome.ACCEPTED


@pytest.mark.parametrize("status", [200, 201])
async def test_an_answer_of_cancelled_is_confirmed_by_the_read_back(status: int) -> None:
    arm = FakeArm()
    arm.put_reply = real_answer(status)
    arm.status = "Cancelled"
    result = await make(arm, ManualClock(T - timedelta(minutes=30))).cancel(target())
    assert result.outcome is Outcome.VERIFIED and result.http_status == status


@pytest.mark.parametrize("status", [200, 201])
async def test_an_answer_contradicted_by_the_read_back_is_not_a_success(status: int) -> None:
    # A create-or-update may answer 201 for an object it just made while the real run (read
    # back) still shows Pending: checked exactly like a 200.
    arm = FakeArm()
    arm.put_reply = real_answer(status)
    result = await make(arm, ManualClock(T - timedelta(minutes=30)), read_attempts=2).cancel(
        target())
    assert result.outcome is Outcome.UNKNOWN and result.run_status == "Pending"
    assert "reads back as Pending" in result.message


async def test_an_answer_naming_another_run_is_no_evidence() -> None:
    arm = FakeArm()
    other = RUN_ID.replace("20260301120000", "20260302120000")
    arm.put_reply = real_answer(201, run_id=other)
    arm.get_raises = ServiceRequestError("connection refused")
    result = await make(arm, ManualClock(T - timedelta(minutes=30)), read_attempts=1).cancel(
        target())
    assert result.outcome is Outcome.UNKNOWN


async def test_a_run_that_reads_back_as_missing_after_a_201_is_not_cancelled() -> None:
    arm = FakeArm()
    arm.put_reply = real_answer(201)

    async def missing(path: str, api_version: str) -> ArmReply:
        return ArmReply(404, {"error": {"code": "NotFound", "message": "no such run"}})

    arm.read_back = missing  # type: ignore[method-assign]
    c = Canceller(arm.send, missing, None, ManualClock(T - timedelta(minutes=30)),
                  sleep=FakeSleep(ManualClock(T)))
    result = await c.cancel(target())
    assert result.outcome is Outcome.UNKNOWN and result.run_status == "not found"
