"""`aumwatch sim` catches its stop signals before it prints the ready line (the CI race)."""

from __future__ import annotations

import argparse
import io
import os
import signal
from typing import Any

import pytest

from services.standin.runner import StopSignals
from tui.cli import standin


class _Env:
    """What run_sim needs of a SimEnvironment, and a record of stop()."""

    stopped = False

    def __init__(self) -> None:
        self.stops = 0

    def info(self) -> dict[str, Any]:
        return {"arm_endpoint": "https://127.0.0.1:1"}

    def stop(self) -> None:
        self.stops += 1


class _SignalOnWrite(io.StringIO):
    """A stdout whose reader signals the process the moment the ready line is written."""

    def __init__(self, signum: int) -> None:
        super().__init__()
        self.signum = signum

    def flush(self) -> None:
        super().flush()
        if self.getvalue():
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_sent_as_soon_as_the_line_is_read_stops_cleanly(
    monkeypatch: pytest.MonkeyPatch, signum: int,
) -> None:
    env = _Env()
    monkeypatch.setattr(standin, "_environment", lambda args, path: env)
    out = _SignalOnWrite(signum)
    monkeypatch.setattr("sys.stdout", out)
    before = signal.getsignal(signum)

    assert standin.run_sim(argparse.Namespace(write_config=None)) == 0

    assert out.getvalue().count("\n") == 1
    assert env.stops == 1
    assert signal.getsignal(signum) is before  # the previous handler is back


def test_stop_signals_keeps_the_first_signal_and_restores_handlers() -> None:
    before = signal.getsignal(signal.SIGINT)
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.wait() == signal.SIGTERM
    assert signal.getsignal(signal.SIGINT) is before
