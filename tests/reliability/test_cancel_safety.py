"""Cancel safety as properties: over times around every boundary of the window.

The oracle is written here from docs/architecture.md, independently of services.domain.window: for
a run at T
the window is open from T-40 min (inclusive) to min(T-10 min, cutoff) (exclusive). A fake
PUT records the clock at the moment it is called, so "the window was checked earlier but had
closed by the time of sending" would be caught, including with a clock that ticks on every
read.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import ServiceResponseError
from hypothesis import given, settings
from hypothesis import strategies as st

from services.azure.cancel import ArmReply, Canceller, CancelTarget, Outcome
from services.domain.clock import ManualClock
from services.domain.window import WindowRules

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CONFIG_ID = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
             "Microsoft.Maintenance/maintenanceConfigurations/nightly")
RUN_ID = f"{CONFIG_ID}/providers/microsoft.maintenance/applyupdates/20260301120000"
OPENS = T - timedelta(minutes=40)
CLOSES = T - timedelta(minutes=10)

# Times near every boundary: T-40, T-10, a cutoff, T (and the run's end), to the microsecond.
_near = st.integers(-3_000_000, 3_000_000).map(lambda us: timedelta(microseconds=us))
boundary_times = st.one_of(
    st.tuples(st.sampled_from([OPENS, CLOSES, T, T - timedelta(minutes=25),
                               T + timedelta(hours=3)]), _near).map(lambda p: p[0] + p[1]),
    st.integers(-7200, 7200).map(lambda s: T + timedelta(seconds=s)),
)
cutoffs = st.one_of(st.none(), st.tuples(st.sampled_from(
    [OPENS, CLOSES, T - timedelta(minutes=12), T - timedelta(minutes=45), T]), _near)
    .map(lambda p: p[0] + p[1]))


class TickingClock(ManualClock):
    """A manual clock that moves forward ``tick`` on every read."""

    def __init__(self, start: datetime, tick: timedelta) -> None:
        super().__init__(start)
        self.tick = tick

    def now(self) -> datetime:
        value = super().now()
        self.advance(self.tick)
        return value


class RecordingArm:
    def __init__(self, clock: ManualClock, *, lose_answer: bool = False,
                 reaches_service: bool = True, read_status: str | None = None) -> None:
        self.clock = clock
        self.sent_at: list[datetime] = []
        self.status = "Pending"
        self.lose_answer = lose_answer
        self.reaches_service = reaches_service
        self.read_status = read_status
        self.gate: asyncio.Event | None = None

    async def send(self, path: str, api_version: str) -> ArmReply:
        self.sent_at.append(ManualClock.now(self.clock))  # read without ticking
        if self.gate is not None:
            await self.gate.wait()
        if self.reaches_service:
            self.status = "Cancelled"
        if self.lose_answer:
            raise ServiceResponseError("connection reset while reading the answer")
        return ArmReply(200, {"id": RUN_ID, "properties": {"status": self.status}})

    async def read_back(self, path: str, api_version: str) -> ArmReply:
        return ArmReply(200, {"id": RUN_ID, "properties": {
            "status": self.read_status or self.status}})


async def _no_sleep(seconds: float) -> None:
    return None


def _open(at: datetime, cutoff: datetime | None) -> bool:
    closes = min(CLOSES, cutoff) if cutoff is not None else CLOSES
    return OPENS <= at < closes


def _canceller(arm: RecordingArm, clock: ManualClock, read_only: bool = False) -> Canceller:
    return Canceller(arm.send, arm.read_back, None, clock, WindowRules(), read_only,
                     sleep=_no_sleep)


def _check_sent_inside(now: datetime, cutoff: datetime | None, tick: timedelta) -> None:
    clock = TickingClock(now, tick)
    arm = RecordingArm(clock)
    result = asyncio.run(_canceller(arm, clock).cancel(CancelTarget(RUN_ID, "nightly", T,
                                                                    cutoff=cutoff)))
    for sent in arm.sent_at:
        assert _open(sent, cutoff), f"sent at {sent} outside the window (cutoff {cutoff})"
    if not arm.sent_at:
        assert result.outcome is Outcome.REFUSED and "window" in result.message
    if tick == timedelta(0):  # a still clock: sent exactly when open
        assert bool(arm.sent_at) == _open(now, cutoff)


@settings(max_examples=500, deadline=None)
@given(boundary_times, cutoffs)
def test_nothing_is_ever_sent_outside_the_window(now: datetime,
                                                  cutoff: datetime | None) -> None:
    _check_sent_inside(now, cutoff, timedelta(0))


@pytest.mark.parametrize("cutoff", [None, T - timedelta(minutes=12)])
def test_nothing_is_sent_outside_the_window_even_if_time_moves_while_sending(
        cutoff: datetime | None) -> None:
    closes = min(CLOSES, cutoff) if cutoff else CLOSES
    _check_sent_inside(closes - timedelta(microseconds=1), cutoff, timedelta(milliseconds=1))


@settings(max_examples=300, deadline=None)
@given(boundary_times, cutoffs)
def test_with_a_ticking_clock_the_send_is_never_more_than_one_tick_late(
        now: datetime, cutoff: datetime | None) -> None:
    # The PUT leaves within one clock read of a check that found the window open.
    tick = timedelta(milliseconds=1)
    clock = TickingClock(now, tick)
    arm = RecordingArm(clock)
    asyncio.run(_canceller(arm, clock).cancel(CancelTarget(RUN_ID, "nightly", T, cutoff=cutoff)))
    for sent in arm.sent_at:
        assert _open(sent - tick, cutoff)


@settings(max_examples=200, deadline=None)
@given(boundary_times, cutoffs)
def test_read_only_never_sends(now: datetime, cutoff: datetime | None) -> None:
    clock = ManualClock(now)
    arm = RecordingArm(clock)
    result = asyncio.run(_canceller(arm, clock, read_only=True).cancel(
        CancelTarget(RUN_ID, "nightly", T, cutoff=cutoff)))
    assert arm.sent_at == [] and result.outcome is Outcome.REFUSED


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 5), st.integers(0, 1799).map(lambda s: OPENS + timedelta(seconds=s)))
def test_quick_confirmations_send_one_request(confirmations: int, now: datetime) -> None:
    clock = ManualClock(now)
    arm = RecordingArm(clock)
    canceller = _canceller(arm, clock)

    async def go() -> list[Outcome]:
        arm.gate = asyncio.Event()
        tasks = [asyncio.create_task(canceller.cancel(CancelTarget(RUN_ID, "nightly", T)))
                 for _ in range(confirmations)]
        await asyncio.sleep(0)
        arm.gate.set()
        return [r.outcome for r in await asyncio.gather(*tasks)]

    outcomes = asyncio.run(go())
    assert len(arm.sent_at) == 1
    assert outcomes.count(Outcome.VERIFIED) == 1
    assert outcomes.count(Outcome.REFUSED) == confirmations - 1


@settings(max_examples=200, deadline=None)
@given(st.booleans(), st.sampled_from([None, "Pending", "InProgress", "Cancelled", "Completed"]))
def test_a_lost_answer_is_decided_by_reading_back(reached: bool, read_status: str | None) -> None:
    now = OPENS + timedelta(minutes=5)
    clock = ManualClock(now)
    arm = RecordingArm(clock, lose_answer=True, reaches_service=reached, read_status=read_status)
    result = asyncio.run(_canceller(arm, clock).cancel(CancelTarget(RUN_ID, "nightly", T)))
    shown = read_status or ("Cancelled" if reached else "Pending")
    if shown == "Cancelled":
        assert result.outcome is Outcome.VERIFIED
    else:
        # Never claimed cancelled; known not cancelled, since the run was read back.
        assert result.outcome is Outcome.FAILED and shown in result.message
