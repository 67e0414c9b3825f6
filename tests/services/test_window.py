"""The cancel window and run phases (services/domain/window.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.domain.window import Phase, RunWindow, WindowRules, run_window

T = datetime(2026, 1, 1, 15, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)
US = timedelta(microseconds=1)


def test_default_rules_open_at_t_minus_40_and_close_at_t_minus_10() -> None:
    window = run_window(T)
    assert window.opens_at == T - 40 * MIN
    assert window.closes_at == T - 10 * MIN
    assert window.start == T and window.end is None and window.cutoff is None


@pytest.mark.parametrize(
    ("at", "phase"),
    [
        (T - 40 * MIN - US, Phase.UPCOMING),
        (T - 40 * MIN, Phase.CANCELLABLE),  # the open is inclusive
        (T - 10 * MIN - US, Phase.CANCELLABLE),
        (T - 10 * MIN, Phase.LOCKED),  # the close is exclusive
        (T - US, Phase.LOCKED),
        (T, Phase.RUNNING),
        (T + timedelta(days=30), Phase.RUNNING),  # no end known: stays running
    ],
)
def test_phase_at_each_boundary_without_cutoff_or_end(at: datetime, phase: Phase) -> None:
    window = run_window(T)
    assert window.phase(at) is phase
    assert window.is_cancellable(at) is (phase is Phase.CANCELLABLE)


def test_cutoff_one_minute_before_start_as_in_the_sample_does_not_extend_the_window() -> None:
    window = run_window(T, cutoff=T - 1 * MIN)
    assert window.closes_at == T - 10 * MIN
    assert window.phase(T - 5 * MIN) is Phase.LOCKED


def test_cutoff_before_t_minus_10_closes_the_window_at_the_cutoff() -> None:
    window = run_window(T, cutoff=T - 25 * MIN)
    assert window.closes_at == T - 25 * MIN
    assert window.phase(T - 25 * MIN - US) is Phase.CANCELLABLE
    assert window.phase(T - 25 * MIN) is Phase.LOCKED
    assert window.phase(T - 15 * MIN) is Phase.LOCKED


def test_cutoff_before_the_open_means_the_window_never_opens() -> None:
    window = run_window(T, cutoff=T - 50 * MIN)
    assert not window.ever_opens
    assert window.closes_at <= window.opens_at
    assert window.phase(T - 60 * MIN) is Phase.UPCOMING
    # Past the cutoff no cancel will ever be honoured: locked, never cancellable.
    assert window.phase(T - 45 * MIN) is Phase.LOCKED
    assert window.phase(T - 40 * MIN) is Phase.LOCKED
    minute = T - 60 * MIN
    while minute < T:
        assert not window.is_cancellable(minute)
        minute += MIN


def test_cutoff_equal_to_the_open_means_the_window_never_opens() -> None:
    window = run_window(T, cutoff=T - 40 * MIN)
    assert not window.ever_opens
    assert window.phase(T - 40 * MIN) is Phase.LOCKED
    assert not window.is_cancellable(T - 40 * MIN)


def test_end_finishes_the_run_at_the_end_inclusive() -> None:
    end = T + timedelta(hours=3, minutes=55)
    window = run_window(T, end=end)
    assert window.phase(end - US) is Phase.RUNNING
    assert window.phase(end) is Phase.FINISHED
    assert window.phase(end + timedelta(days=1)) is Phase.FINISHED


def test_end_equal_to_start_goes_straight_to_finished() -> None:
    assert run_window(T, end=T).phase(T) is Phase.FINISHED


def test_finished_flag_overrides_the_clock() -> None:
    window = run_window(T)
    # A run cancelled inside its window has ended: no longer cancellable.
    assert window.phase(T - 20 * MIN, finished=True) is Phase.FINISHED
    assert not window.is_cancellable(T - 20 * MIN, finished=True)
    assert window.phase(T + MIN, finished=True) is Phase.FINISHED


def test_offsets_are_settings() -> None:
    rules = WindowRules(opens_before=timedelta(minutes=60), closes_before=timedelta(minutes=5))
    window = run_window(T, rules=rules)
    assert window.opens_at == T - 60 * MIN
    assert window.closes_at == T - 5 * MIN
    assert window.phase(T - 60 * MIN) is Phase.CANCELLABLE
    assert window.phase(T - 6 * MIN) is Phase.CANCELLABLE
    assert window.phase(T - 5 * MIN) is Phase.LOCKED


def test_a_cutoff_still_wins_over_custom_offsets_when_earlier() -> None:
    rules = WindowRules(opens_before=timedelta(minutes=60), closes_before=timedelta(0))
    assert run_window(T, cutoff=T - 30 * MIN, rules=rules).closes_at == T - 30 * MIN
    assert run_window(T, cutoff=T + 30 * MIN, rules=rules).closes_at == T


@pytest.mark.parametrize(
    ("opens", "closes"),
    [(timedelta(minutes=40), timedelta(minutes=-1)), (timedelta(minutes=5), timedelta(minutes=10))],
    ids=["negative-close", "opens-after-close"],
)
def test_inconsistent_rules_are_refused(opens: timedelta, closes: timedelta) -> None:
    with pytest.raises(ValueError, match="before"):
        WindowRules(opens_before=opens, closes_before=closes)


def test_times_in_other_zones_are_stored_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    window = run_window(datetime(2026, 1, 1, 17, 0, tzinfo=plus_two))
    assert window.start == T and window.start.tzinfo is UTC
    assert window.phase(datetime(2026, 1, 1, 16, 30, tzinfo=plus_two)) is Phase.CANCELLABLE


@pytest.mark.parametrize("name", ["start", "cutoff", "end", "now"])
def test_naive_datetimes_are_refused(name: str) -> None:
    naive = datetime(2026, 1, 1, 15, 0)
    with pytest.raises(ValueError, match="naive"):
        if name == "start":
            run_window(naive)
        elif name == "cutoff":
            run_window(T, cutoff=naive)
        elif name == "end":
            run_window(T, end=naive + timedelta(hours=1))
        else:
            run_window(T).phase(naive)


def test_end_before_start_is_refused() -> None:
    with pytest.raises(ValueError, match="before start"):
        run_window(T, end=T - MIN)


@pytest.mark.parametrize(
    ("window", "at", "expected"),
    [
        (run_window(T), T - 60 * MIN, ("cancel opens", T - 40 * MIN)),
        (run_window(T), T - 40 * MIN, ("cancel closes", T - 10 * MIN)),  # strictly after now
        (run_window(T), T - 10 * MIN, ("starts", T)),
        (run_window(T, end=T + 60 * MIN), T, ("ends", T + 60 * MIN)),
        (run_window(T), T, None),  # running, no end known
        (run_window(T, end=T + 60 * MIN), T + 60 * MIN, None),
        (run_window(T, cutoff=T - 50 * MIN), T - 60 * MIN, ("cancel closes", T - 50 * MIN)),
    ],
    ids=["to-open", "to-close", "to-start", "to-end", "running-no-end", "ended", "never-opens"],
)
def test_next_boundary(
    window: RunWindow, at: datetime, expected: tuple[str, datetime] | None
) -> None:
    assert window.next_boundary(at) == expected


@pytest.mark.parametrize(
    ("at", "seconds"),
    [(T - 30 * MIN, 1800), (T, 0), (T - SEC / 2, 0), (T + SEC / 2, -1), (T + MIN, -60)],
)
def test_seconds_to_start_rounds_down(at: datetime, seconds: int) -> None:
    assert run_window(T).seconds_to_start(at) == seconds


# --- properties ---------------------------------------------------------------------------

ORDER = list(Phase)
minutes = st.integers(min_value=-600, max_value=600).map(lambda m: timedelta(minutes=m))
instants = st.integers(min_value=-6 * 3600, max_value=6 * 3600).map(
    lambda s: T + timedelta(seconds=s)
)


@st.composite
def windows(draw: st.DrawFn) -> RunWindow:
    closes = draw(st.integers(min_value=0, max_value=120))
    opens = draw(st.integers(min_value=closes, max_value=240))
    rules = WindowRules(
        opens_before=timedelta(minutes=opens), closes_before=timedelta(minutes=closes)
    )
    cutoff = draw(st.none() | minutes.map(lambda d: T + d))
    end = draw(st.none() | st.integers(min_value=0, max_value=600).map(lambda m: T + m * MIN))
    return run_window(T, cutoff=cutoff, end=end, rules=rules)


@settings(max_examples=300, deadline=None)
@given(windows(), st.lists(instants, min_size=2, max_size=20))
def test_phases_never_go_backwards_as_time_moves_forwards(
    window: RunWindow, moments: list[datetime]
) -> None:
    ranks = [ORDER.index(window.phase(t)) for t in sorted(moments)]
    assert ranks == sorted(ranks)


@settings(max_examples=300, deadline=None)
@given(windows(), instants)
def test_cancellable_exactly_inside_the_half_open_window(window: RunWindow, at: datetime) -> None:
    assert window.is_cancellable(at) is (window.opens_at <= at < window.closes_at)
    assert window.closes_at <= window.start


@settings(max_examples=300, deadline=None)
@given(windows(), instants)
def test_next_boundary_is_where_the_phase_next_changes(window: RunWindow, at: datetime) -> None:
    upcoming = window.next_boundary(at)
    if upcoming is None:
        assert window.phase(at) in (Phase.RUNNING, Phase.FINISHED)
        return
    _, when = upcoming
    assert when > at
    assert window.phase(when - US) == window.phase(at)
    assert window.phase(when) != window.phase(at)
