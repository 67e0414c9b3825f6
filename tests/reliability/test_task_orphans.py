"""A task child must not outlive a runner killed between the fork and its exec (issue 22
item 12): ``PR_SET_PDEATHSIG`` set after the runner is already gone never fires, so the
child checks its parent after setting it and exits at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import all_gone

REPO = Path(__file__).resolve().parents[2]

#: The runner's side (argv[1]: the marker file the child writes if it goes on to exec):
#: the guard is made in the runner before the fork, as services/azure/tasks.py makes it;
#: the runner is then killed -9 while the child sits between fork and exec, and only
#: after the runner is gone does the child run the guard.
RUNNER = r'''
import os, signal, sys
from services.azure.tasks import child_guard
marker = sys.argv[1]
guard = child_guard()
parent = os.getpid()
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(write_end)
    os.read(read_end, 1)  # EOF: the runner's files are closed, it is dying
    while os.getppid() == parent:  # ...and reparented once it is gone
        pass
    guard()
    with open(marker, "w") as f:
        f.write(str(os.getpid()))
    devnull = os.open(os.devnull, os.O_WRONLY)  # let the test's read of stdout end
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)"])
os.close(read_end)
print(pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_a_child_whose_runner_died_before_its_guard_ran_exits_before_exec(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "escaped"
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(marker)], cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    child = int(proc.stdout.strip())
    try:
        assert all_gone([child]), "the task child outlived its runner"
        assert not marker.exists()  # it never got as far as its exec
    finally:
        if marker.exists():
            os.kill(int(marker.read_text()), signal.SIGKILL)
