"""Smoke test: `aumwatch demo` in a real terminal (tmux): it draws, takes keys, quits cleanly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]

ROOT = Path(__file__).resolve().parents[2]
AUMWATCH = Path(sys.executable).with_name("aumwatch")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True,
                          timeout=20).stdout


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_for(session: str, text: str, timeout: float = 60.0) -> str:
    # Polling a real terminal: there is no event to await, only its screen to read.
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        shown = screen(session)
        if text in shown:
            return shown
        time.sleep(0.3)
    raise AssertionError(f"{text!r} did not appear; the screen shows:\n{shown}")


def descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        child, parent = (int(x) for x in line.split())
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_demo_draws_takes_keys_and_quits_cleanly(tmp_path: Path) -> None:
    session = f"aumwatch-smoke-{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "exit-code"
    env_prefix = f"cd {ROOT} && XDG_DATA_HOME={tmp_path} "
    command = f"{env_prefix}{AUMWATCH} demo; echo $? > {marker}; sleep 60"
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", command)
    try:
        pane_pid = int(tmux("display-message", "-p", "-t", session, "#{pane_pid}").strip())
        # The event tail (a local queue) can name patch-weu-web before the configurations
        # (Resource Graph) are drawn: wait for the table's phase, then check the rest.
        shown = wait_for(session, "CANCELLABLE")
        assert "patch-weu-web" in shown and "Configuration" in shown
        tmux("send-keys", "-t", session, "z")
        wait_for(session, "times: utc")
        tmux("send-keys", "-t", session, "Space")
        wait_for(session, "PAUSED")
        tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), f"the dashboard did not quit:\n{screen(session)}"
        assert marker.read_text().strip() == "0"
        # Only the pane's `sleep` is left: no Azurite, no stand-in, no dashboard.
        left = [p for p in descendants(pane_pid)
                if "sleep" not in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]
        assert left == [], f"processes left behind: {left}"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_a_lost_terminal_ends_the_demo_and_its_children(tmp_path: Path) -> None:
    """An SSH drop hangs up the terminal: the app and Azurite must be gone within seconds."""
    session = f"aumwatch-hup-{uuid.uuid4().hex[:8]}"
    command = f"cd {ROOT} && XDG_DATA_HOME={tmp_path} exec {AUMWATCH} demo"
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", command)
    try:
        pane_pid = int(tmux("display-message", "-p", "-t", session, "#{pane_pid}").strip())
        wait_for(session, "patch-weu-web")
        family = [pane_pid, *descendants(pane_pid)]
        assert len(family) >= 2  # the dashboard and at least Azurite
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    deadline = time.monotonic() + 15
    while any(alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = [p for p in family if alive(p)]
    assert not survivors, f"processes survived the hang-up: {_describe(survivors)}"


def _describe(pids: list[int]) -> str:
    out = []
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            cmd = "?"
        out.append(f"{pid} {cmd[:120]}")
    return "; ".join(out)
