"""Process checks shared by the tests that start `aumwatch` subprocesses."""

from __future__ import annotations

import time

import psutil


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def all_gone(pids: list[int], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Whether every process in ``pids`` has ended (zombies count as ended) within
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(interval)
    return False
