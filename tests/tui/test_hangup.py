"""A lost terminal ends the dashboard even when Textual's shutdown hangs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The app's clean exit is replaced by one that never finishes (what Textual's shutdown does
# when the terminal is gone and its writer thread deadlocks): the grace timer must end it.
SCRIPT = """
import time
import tui.hangup as hangup
hangup.HANGUP_GRACE_S = 0.5
guard = hangup.HangupGuard(lambda: None)
guard.terminal_lost()
time.sleep(30)
print("outlived the terminal")
"""


def test_a_hung_shutdown_after_a_hangup_still_ends_the_process() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert "outlived" not in result.stdout
    assert result.returncode == 0, result.stderr
