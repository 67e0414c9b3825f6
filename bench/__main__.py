"""``python -m bench [--quick] [--only 1,4] [--out DIR]``: run the figures, write JSON, print
a table. ``--quick`` runs every figure at tiny sizes (the smoke mode CI runs)."""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.machine import machine_info
from bench.result import FigureResult

RESULTS = Path(__file__).resolve().parent / "results"

#: Figure number -> module (each has ``run(quick) -> FigureResult``), in the issue's order.
FIGURES: dict[int, str] = {
    1: "bench.fig_cli",
    2: "bench.fig_startup",
    3: "bench.fig_events",
    4: "bench.fig_graph",
    5: "bench.fig_refresh",
    6: "bench.fig_idle",
    7: "bench.fig_cancel",
    8: "bench.fig_soak",
    9: "bench.fig_demo",
    10: "bench.fig_serve",
    11: "bench.fig_preflight",
    12: "bench.fig_tenants",
}
#: Figures that can measure another source tree's dashboard (``--tree``).
TREE_FIGURES = frozenset({9})


def run_figure(number: int, quick: bool, tree: Path | None = None) -> FigureResult:
    """One figure; a harness failure becomes an ``error`` result, never a crash of the run.
    ``tree`` goes only to the figures in ``TREE_FIGURES``."""
    t0 = time.perf_counter()
    try:
        module = importlib.import_module(FIGURES[number])
        if tree is not None and number in TREE_FIGURES:
            result: FigureResult = module.run(quick, tree)
        else:
            result = module.run(quick)
    except Exception as exc:
        result = FigureResult(number, FIGURES[number], "", status="error",
                              reason=f"{type(exc).__name__}: {exc}")
        result.notes.append(traceback.format_exc(limit=-3))
    result.seconds = time.perf_counter() - t0
    return result


def _fmt(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value)}"
    return f"{value:.4g}"


def table(results: list[FigureResult]) -> str:
    """A plain-text table: one block per figure, one line per metric."""
    lines = []
    for r in results:
        lines.append(f"[{r.id}] {r.title}  ({r.status}, {r.seconds:.1f} s)  target: {r.target}")
        if r.reason:
            lines.append(f"    reason: {r.reason}")
        for name, value in r.metrics.items():
            lines.append(f"    {name:<48} {_fmt(value):>14}")
        for note in r.notes:
            if "Traceback" not in note:
                lines.append(f"    - {note}")
    return "\n".join(lines)


def write_results(doc: dict[str, Any], out_dir: Path) -> Path:
    """``<out_dir>/<timestamp>.json`` and ``latest.json``; returns the timestamped path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = doc["started_at"].replace(":", "").replace("-", "")
    path = out_dir / f"{stamp}{'-quick' if doc['quick'] else ''}.json"
    text = json.dumps(doc, indent=2, allow_nan=True) + "\n"
    path.write_text(text, encoding="utf-8")
    (out_dir / "latest.json").write_text(text, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, short intervals: a smoke run in well under a minute")
    parser.add_argument("--only", metavar="N[,N...]",
                        help="only these figures, e.g. 1,4,7")
    parser.add_argument("--out", type=Path, default=RESULTS, metavar="DIR",
                        help=f"where to write the JSON (default {RESULTS})")
    parser.add_argument("--tree", type=Path, metavar="PATH",
                        help="figure 9 only: measure the dashboard of this source tree "
                             "(run with this venv), e.g. a worktree of the code before a change")
    args = parser.parse_args(argv)
    numbers = list(FIGURES)
    if args.only:
        try:
            numbers = [int(x) for x in args.only.split(",") if x.strip()]
        except ValueError:
            parser.error(f"--only takes figure numbers like 1,4,7, not {args.only!r}")
        unknown = [n for n in numbers if n not in FIGURES]
        if unknown:
            parser.error(f"no figure {unknown[0]} (figures are 1-{len(FIGURES)})")
    if args.tree is not None and set(numbers) - TREE_FIGURES:
        parser.error("--tree measures another tree's dashboard in figure 9 only: add --only 9 "
                     "(run the other figures from that tree's own checkout)")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    results = []
    for number in numbers:
        print(f"figure {number} ...", file=sys.stderr, flush=True)
        results.append(run_figure(number, args.quick, args.tree))
    doc = {
        "started_at": started,
        "quick": args.quick,
        "tree": str(args.tree.resolve()) if args.tree is not None else None,
        "total_seconds": time.perf_counter() - t0,
        "machine": machine_info(),
        "figures": {str(r.id): r.to_json() for r in results},
    }
    path = write_results(doc, args.out)
    print(table(results))
    print(f"\nresults: {path} (and latest.json); {doc['total_seconds']:.0f} s in all")
    return 1 if any(r.status == "error" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
