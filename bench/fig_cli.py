"""Figure 1: ``aumwatch --help`` and ``aumwatch window ...`` wall time (subprocess, median of
N) against ``python -c pass`` in the same run, and that neither imports Textual or an Azure
SDK (read from ``python -X importtime``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.result import FigureResult, median, percentile

VENV_BIN = Path(sys.executable).parent
#: Packages the rule commands must not load (heavy, and not needed to print help or a phase).
HEAVY = ("textual", "rich", "azure", "duckdb", "aiohttp")

WINDOW_ARGS = ["window", "--start", "2026-03-14T01:00:00Z", "--at", "2026-03-14T00:35:00Z",
               "--json"]


def _aumwatch() -> list[str]:
    script = VENV_BIN / "aumwatch"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "tui"]  # no console script installed: the module entry


def _time(cmd: list[str], runs: int) -> list[float]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    subprocess.run(cmd, capture_output=True, env=env, check=False)  # warm the page cache
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, env=env, check=False)
        out.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: "
                               f"{proc.stderr.decode(errors='replace').strip()[-300:]}")
    return out


def imported_modules(cmd: list[str]) -> list[str]:
    """Top-level names of every module ``cmd`` imported (``-X importtime`` on stderr)."""
    if cmd[0] != sys.executable:
        cmd = [sys.executable, *cmd]  # run the console script through the interpreter
    proc = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True,
                          text=True, check=False)
    names = set()
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        module = line.rsplit("|", 1)[1].strip()
        if module and module != "package":
            names.add(module)
    return sorted(names)


def run(quick: bool) -> FigureResult:
    """Median (and p95) wall time of each command; the heavy packages each one imports."""
    out = FigureResult(1, "CLI start-up: --help and window",
                       "<= 0.25 s median; imports no Textual / Azure SDK")
    runs = 3 if quick else 15
    base = _aumwatch()
    commands = {
        "python_pass": [sys.executable, "-c", "pass"],
        "help": [*base, "--help"],
        "window": [*base, *WINDOW_ARGS],
    }
    samples = {name: _time(cmd, runs) for name, cmd in commands.items()}
    baseline = median(samples["python_pass"])
    for name, values in samples.items():
        out.metrics[f"{name}_median_s"] = median(values)
        out.metrics[f"{name}_p95_s"] = percentile(values, 95)
    for name in ("help", "window"):
        out.metrics[f"{name}_ratio_to_python"] = median(samples[name]) / baseline
        modules = imported_modules(commands[name])
        heavy = sorted({m.split(".")[0] for m in modules if m.split(".")[0] in HEAVY})
        out.metrics[f"{name}_heavy_imports"] = len(heavy)
        out.metrics[f"{name}_modules_imported"] = len(modules)
        if heavy:
            out.notes.append(f"{name} imports {', '.join(heavy)}")
        if median(samples[name]) > 0.25:
            out.notes.append(f"MISSED: {name} median {median(samples[name]):.3f} s > 0.25 s")
    out.notes.append(f"{runs} runs each after one warm-up; command: {' '.join(base)}")
    return out
