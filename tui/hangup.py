"""A lost terminal ends the dashboard, even when Textual's shutdown hangs.

Textual's driver does not handle SIGHUP: without this an SSH drop kills the process before
any cleanup (the stand-in's Azurite of `aumwatch demo` would be left behind). SIGHUP and
SIGTERM ask the app to exit; a daemon timer ends the process if the clean exit has not
finished within :data:`HANGUP_GRACE_S` (seen under load: the driver's writer thread and
``close()`` waiting on each other once the terminal is gone). Child processes die with it
(the stand-in's Azurite is bound to its parent with PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable

#: Seconds a lost terminal leaves for a clean exit before the process ends itself.
HANGUP_GRACE_S = 5.0
_SIGNALS = ("SIGHUP", "SIGTERM")


class HangupGuard:
    """Watches for a lost terminal; ``exit`` asks the app to exit cleanly."""

    def __init__(self, exit: Callable[[], object], *, headless: bool = False) -> None:
        self._exit = exit
        self.headless = headless  # a headless app (tests) has no terminal to lose
        self._timer: threading.Timer | None = None

    def install(self) -> None:
        """Handle SIGHUP and SIGTERM on the running loop."""
        loop = asyncio.get_running_loop()
        for name in _SIGNALS:
            sig = getattr(signal, name, None)
            if sig is None:
                continue
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.terminal_lost)

    def remove(self) -> None:
        """Stop handling the signals (at unmount)."""
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            for name in _SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None:
                    with contextlib.suppress(Exception):
                        loop.remove_signal_handler(sig)

    def terminal_lost(self) -> None:
        """The terminal is gone (or we were told to stop): exit, and never outlive it."""
        if self._timer is None:
            self._timer = threading.Timer(HANGUP_GRACE_S, os._exit, args=(0,))
            self._timer.daemon = True
            self._timer.start()
        self._exit()

    def check_terminal(self) -> None:
        """The backstop, from the tick: stdin's terminal is gone (SIGHUP normally tells us
        first)."""
        if self.headless:
            return
        stream = sys.__stdin__
        if stream is None:
            return
        try:
            os.tcgetpgrp(stream.fileno())
        except OSError:
            self.terminal_lost()
        except ValueError:
            pass
