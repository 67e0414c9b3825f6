"""The dashboard as an operator starts it: ``aumwatch --config FILE`` in a pseudo-terminal.

:class:`DashboardProcess` spawns it with a fixed terminal size, reads everything it draws on
a thread and notes the moment (``time.perf_counter``, same clock as the spawn) each wanted
text first appears in the output: the title for the first frame, a configuration name for
the first frame with data. It is independent of the app's internals: the figures measured
through it hold for whatever tui/app.py draws.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

VENV_BIN = Path(sys.executable).parent
COLUMNS, LINES = 160, 50


def _controlling_terminal() -> None:  # pragma: no cover - runs in the child before exec
    # As a terminal emulator does: a new session whose controlling terminal is the pty
    # (stdin). The app checks its terminal with tcgetpgrp and exits when it has none.
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@dataclass(frozen=True)
class Usage:
    """What the dashboard process used over one measured interval."""

    wall_s: float
    cpu_s: float  # user + system
    drawn_bytes: int  # written to the terminal
    rss_bytes: int  # at the end

    @property
    def cpu_percent(self) -> float:
        """CPU time as a percentage of one core over the interval."""
        return 100.0 * self.cpu_s / self.wall_s

    @property
    def bytes_per_s(self) -> float:
        """Terminal output per second over the interval."""
        return self.drawn_bytes / self.wall_s


class DashboardProcess:
    """One dashboard child process on a pty; ``marks[text]`` = perf_counter of first sight."""

    def __init__(self, config_path: Path, watch: dict[str, bytes], *,
                 env: dict[str, str] | None = None) -> None:
        self.config_path = config_path
        self.watch = dict(watch)
        self.env = env or {}
        self.marks: dict[str, float] = {}
        self.started_at = 0.0
        self.proc: subprocess.Popen[bytes] | None = None
        self._master = -1
        self._seen = threading.Condition()
        self._tail = b""
        self._bytes = 0
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def output_bytes(self) -> int:
        """How much the app has drawn so far (an idle dashboard should draw little)."""
        with self._seen:
            return self._bytes

    def measure(self, interval: float) -> Usage:
        """Sleep ``interval`` seconds and return the process's CPU time (psutil), terminal
        output and RSS over it (the figures of an app left open)."""
        proc = psutil.Process(self.pid)
        drawn = self.output_bytes
        cpu0 = proc.cpu_times()
        t0 = time.perf_counter()
        time.sleep(interval)
        cpu1 = proc.cpu_times()
        wall = time.perf_counter() - t0
        drawn = self.output_bytes - drawn
        rss = proc.memory_info().rss
        used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        return Usage(wall_s=wall, cpu_s=used, drawn_bytes=drawn, rss_bytes=rss)

    def start(self) -> DashboardProcess:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
        script = VENV_BIN / "aumwatch"
        cmd = [str(script)] if script.exists() else [sys.executable, "-m", "tui"]
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS),
               "LINES": str(LINES), "COLORTERM": "truecolor", **self.env}
        env.pop("TEXTUAL", None)  # no devtools
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen([*cmd, "--config", str(self.config_path)],
                                     stdin=slave, stdout=slave, stderr=slave, env=env,
                                     preexec_fn=_controlling_terminal, close_fds=True)
        os.close(slave)
        self._master = master
        self._reader = threading.Thread(target=self._read, name="bench-pty", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self._master], [], [], 0.2)
            except (OSError, ValueError):
                return
            if not ready:
                if self.proc is not None and self.proc.poll() is not None:
                    return
                continue
            try:
                chunk = os.read(self._master, 65536)
            except OSError:
                return
            if not chunk:
                return
            now = time.perf_counter()
            with self._seen:
                self._bytes += len(chunk)
                window = self._tail + chunk
                for name, text in self.watch.items():
                    if name not in self.marks and text in window:
                        self.marks[name] = now
                self._tail = window[-256:]
                self._seen.notify_all()

    def wait_for(self, name: str, timeout: float) -> float | None:
        """Seconds from spawn to the first sight of ``watch[name]``; None on timeout/exit."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while name not in self.marks:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc is not None and self.proc.poll() is not None):
                    return None
                self._seen.wait(min(left, 0.2))
            return self.marks[name] - self.started_at

    def stop(self) -> None:
        """SIGTERM (the app exits cleanly on it), then SIGKILL after 5 s; close the pty."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if self._master >= 0:
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = -1
        if self._reader is not None:
            self._reader.join(2)

    def __enter__(self) -> DashboardProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
