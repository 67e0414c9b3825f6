"""Figure 9: the dashboard on the demo world, left alone for 60 s: CPU and terminal output.

The demo world (``services/standin/scenarios/demo.toml``) has a run in progress, a run whose
cancel window is open (its countdown ticking every second), others in every phase, and an
event tail the scenario keeps writing to. This is what an operator leaves open during a
window, so its cost is the dashboard's steady cost with everything on screen moving.

Why not ``aumwatch demo`` itself: it runs the stand-in (HTTPS server, Resource Graph through
duckdb-kql, the scenario engine, the queue writer) inside the dashboard's process, so its CPU
would be mostly the stand-in's. Here the same world is served by a separately started
``aumwatch sim`` (its own process, with Azurite its child), and the dashboard is
``aumwatch --config <the file sim wrote>`` in a pty (160x50, the pty its controlling
terminal), exactly as an operator would run it against Azure. Only the dashboard process is
measured (psutil CPU time, user + system; it starts no children), and every byte it writes
to the terminal is counted.

``--tree PATH`` (``python -m bench.fig_demo --tree PATH`` or ``python -m bench --only 9
--tree PATH``) runs the dashboard from another source tree with this venv (``PYTHONPATH``
set to that tree, ahead of this checkout's editable install), so a tree from before a change
and one after it are measured in the same session against the same stand-in (``aumwatch
sim`` always runs from this checkout: the world stays the same, only the dashboard differs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from bench.dashboard import DashboardProcess
from bench.result import FigureResult

REPO = Path(__file__).resolve().parents[1]
#: A configuration name of the demo scenario: its row on screen means the data is there.
DATA_MARK = b"patch-weu-web"
TITLE_MARK = b"aumwatch"
SIM_READY_S = 90.0
DATA_TIMEOUT_S = 45.0
CPU_TARGET_PERCENT = 1.2  # issue 20 (it was 1.5 before)
BYTES_TARGET_PER_S = 1024.0


@contextlib.contextmanager
def standin_sim(scratch: Path, env: dict[str, str]) -> Iterator[dict[str, Any]]:
    """``aumwatch sim`` from this checkout, in its own process; yields its JSON line."""
    config = scratch / "sim.toml"
    errors = scratch / "sim.stderr"
    # stderr to a file, not a pipe nobody drains while we measure (a full pipe blocks sim).
    with errors.open("w", encoding="utf-8") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tui", "sim", "--write-config", str(config)],
            cwd=REPO, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
    try:
        line = _read_line(proc, SIM_READY_S)
        if not line:
            tail = errors.read_text(encoding="utf-8", errors="replace")[-600:].strip()
            raise RuntimeError(f"aumwatch sim printed nothing within {SIM_READY_S:g} s: "
                               f"{tail or '(no error output)'}")
        yield json.loads(line)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # sim stops Azurite and exits 0 on it
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line of ``proc``, or "" when it exits or ``timeout`` passes."""
    import selectors

    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if selector.select(0.5):
                return proc.stdout.readline().strip()
            if proc.poll() is not None:
                return ""
        return ""
    finally:
        selector.close()


def _tree_commit(tree: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.stdout.strip() or "?"


def run(quick: bool, tree: Path | None = None) -> FigureResult:
    """CPU % of one core and terminal bytes/s over 60 s (quick: 5 s) after the dashboard
    shows the demo world and settles 5 s (quick: 2 s). ``tree``: measure that source tree's
    dashboard (default: this checkout)."""
    out = FigureResult(9, "Demo world, left open: dashboard CPU and terminal output",
                       f"<= {CPU_TARGET_PERCENT:g}% of one core; <= 1 KB/s to the terminal")
    interval = 5.0 if quick else 60.0
    settle = 2.0 if quick else 5.0
    tree = tree.resolve() if tree is not None else REPO
    if not (tree / "tui" / "__main__.py").is_file():
        raise RuntimeError(f"{tree} is not an aumwatch source tree (no tui/__main__.py)")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        private = {"XDG_DATA_HOME": str(scratch / "xdg-data"),
                   "XDG_CONFIG_HOME": str(scratch / "xdg-config")}
        with standin_sim(scratch, private) as sim:
            config = Path(sim["config_file"])
            env = {**private, "PYTHONPATH": str(tree)}
            with DashboardProcess(config, {"title": TITLE_MARK, "data": DATA_MARK},
                                  env=env) as app:
                if app.wait_for("data", DATA_TIMEOUT_S) is None:
                    out.status = "pending"
                    out.reason = ("the dashboard never showed the demo world's configurations "
                                  f"within {DATA_TIMEOUT_S:g} s")
                    return out
                shown_after = app.wait_for("data", 0.0) or 0.0
                time.sleep(settle)
                children = len(psutil.Process(app.pid).children(recursive=True))
                usage = app.measure(interval)
    percent = usage.cpu_percent
    per_s = usage.bytes_per_s
    out.metrics.update({
        "interval_s": usage.wall_s,
        "cpu_s": usage.cpu_s,
        "cpu_percent_of_one_core": percent,
        "terminal_bytes_per_s": per_s,
        "rss_bytes": usage.rss_bytes,
        "data_shown_after_s": shown_after,
        "dashboard_children": children,
    })
    where = "this checkout" if tree == REPO else str(tree)
    out.notes.append(f"dashboard from {where} (commit {_tree_commit(tree)}) against "
                     f"`aumwatch sim` (demo scenario, real time) from this checkout; measured "
                     f"{interval:g} s after {settle:g} s settling; pty 160x50")
    if percent > CPU_TARGET_PERCENT:
        out.notes.append(f"MISSED: {percent:.2f}% > {CPU_TARGET_PERCENT:g}% of one core")
    if per_s > BYTES_TARGET_PER_S:
        out.notes.append(f"MISSED: {per_s / 1024:.2f} KB/s > 1 KB/s to the terminal")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.fig_demo [--quick] [--tree PATH]``: figure 9 alone, as a table."""
    parser = argparse.ArgumentParser(prog="python -m bench.fig_demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 s instead of 60 s")
    parser.add_argument("--tree", type=Path, metavar="PATH",
                        help="the source tree whose dashboard is measured (default: this one)")
    args = parser.parse_args(argv)
    from bench.__main__ import table

    t0 = time.perf_counter()
    result = run(args.quick, args.tree)
    result.seconds = time.perf_counter() - t0
    print(table([result]))
    print(json.dumps(result.to_json()))
    return 0 if result.status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
