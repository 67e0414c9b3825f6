"""The poll back-off (services/domain/backoff.py): the poller and the watcher pace by it."""

from __future__ import annotations

from datetime import timedelta

from services.domain.backoff import MAX_BACKOFF, Backoff
from services.domain.wiring import WIRING_RETRY


def test_back_off_doubles_per_failure_is_capped_and_resets_on_success() -> None:
    backoff = Backoff(timedelta(seconds=60), timedelta(seconds=2))
    delays = [backoff.next_delay("configs", False) for _ in range(8)]
    assert delays[:3] == [timedelta(seconds=5), timedelta(seconds=10), timedelta(seconds=20)]
    assert delays[-1] == MAX_BACKOFF
    assert backoff.next_delay("events", False, throttled=True) == timedelta(seconds=10)
    assert backoff.next_delay("configs", True) == timedelta(seconds=60)
    assert backoff.next_delay("configs", False) == timedelta(seconds=5)
    assert backoff.next_delay("events", True) == timedelta(seconds=2)


def test_a_runs_answer_starts_the_configs_and_runs_loop_over() -> None:
    backoff = Backoff(timedelta(seconds=60))
    backoff.next_delay("runs", False)
    backoff.next_delay("runs", False)
    assert backoff.failures("runs") == 2
    assert backoff.next_delay("configs", True) == timedelta(seconds=60)
    assert backoff.failures("runs") == 0
    assert backoff.next_delay("runs", False) == timedelta(seconds=5)


def test_the_wiring_has_its_own_slow_cadence() -> None:
    backoff = Backoff(timedelta(seconds=30), wiring_interval=timedelta(minutes=7))
    assert backoff.next_delay("wiring", True) == timedelta(minutes=7)
    assert backoff.next_delay("wiring", False) == WIRING_RETRY
    assert backoff.next_delay("wiring", False) == WIRING_RETRY  # no faster on repeated failures
    assert backoff.next_delay("configs", True) == timedelta(seconds=30)  # the others untouched
    short = Backoff(wiring_interval=timedelta(seconds=40))
    assert short.next_delay("wiring", False) == timedelta(seconds=40)
