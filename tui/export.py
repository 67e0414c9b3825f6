"""Export: the dashboard's view (configurations with their Event Grid wiring verdict, the
selected configuration's runs, the event tail) as JSON and CSV files under the data
directory.

A configuration's row is its screen row: its next start, end, phase and mark all come from
the one current-or-next run the configurations table shows (:meth:`DashboardState.next_run`,
``services/domain/runindex.py``), never the schedule's next occurrence beside another run's
phase. Each run and configuration carries ``mark``, the word its Phase cell shows
(``services/domain/marks.py``: ``cancelled``, ``failed``, ``succeeded``, ...)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from services.domain.clock import iso_z
from services.domain.dashboard import DashboardState
from services.domain.marks import mark_of
from services.domain.model import Configuration, Run
from services.domain.runs import run_phase
from services.domain.window import WindowRules
from widgets.eventlog import EventRow

CSV_COLUMNS = ("name", "resource_group", "subscription_id", "time_zone", "recur_every",
               "next_start", "phase", "mark", "wiring")


def _run_facts(run: Run | None, now: datetime, rules: WindowRules) -> dict[str, Any]:
    """``phase`` and ``mark`` of ``run`` at ``now`` (None and None without a run)."""
    if run is None:
        return {"phase": None, "mark": None}
    phase = run_phase(run, now, rules)
    return {"phase": phase.value, "mark": mark_of(run, phase)}


def config_row(config: Configuration, run: Run | None, now: datetime,
               rules: WindowRules) -> dict[str, Any]:
    """A configuration's exported row: the ``configs --json`` object whose next start, end,
    phase and mark are all those of ``run``, its current or next run as the screen shows it
    (None: it has none)."""
    return config.to_json() | {
        "next_start": iso_z(run.start if run is not None else None),
        "next_end": iso_z(run.end if run is not None else None),
    } | _run_facts(run, now, rules)


def _wiring_or_none(state: DashboardState, key: str) -> dict[str, Any] | None:
    """The Wiring column's verdict and why (the ``subscriptions --json`` words), or None
    before the wiring was first read. Endpoints are never exported: only the verdict."""
    wiring = state.wiring_of(key)
    if wiring is None:
        return None
    return {"verdict": str(wiring.verdict), "reason": wiring.reason, "error": wiring.error,
            "checked_at": wiring.to_json()["checked_at"]}


def export_view(state: DashboardState, events: Iterable[EventRow], folder: Path) -> Path:
    """Write ``<folder>/aumwatch-<time>.json`` and ``.csv``; returns the JSON file's path."""
    now = state.clock.now()
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"aumwatch-{now.strftime('%Y%m%dT%H%M%SZ')}"
    rules = state.rules
    configs = [config_row(state.configs[k], state.next_run(k, now), now, rules)
               | {"wiring": _wiring_or_none(state, k)}
               for k in state.config_order(now)]
    selected = state.selected_config
    runs = [r.to_json() | _run_facts(r, now, rules)
            for r in (state.runs_of(selected) if selected else [])]
    rows: list[dict[str, Any]] = [
        {"time": row.time.isoformat(), "kind": row.kind, "configuration": row.configuration,
         "run": row.run, "arrival": row.arrival or None,
         "arrival_flagged": row.arrival_flagged, "flag": row.flag} for row in events]
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps({"exported_at": now.isoformat(), "configurations": configs,
                                     "runs": runs, "events": rows}, indent=2),
                         encoding="utf-8")
    with stem.with_suffix(".csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for item in configs:
            wiring = item["wiring"]
            writer.writerow([item[c] for c in CSV_COLUMNS[:-1]]
                            + [wiring["verdict"] if wiring else ""])
    return json_path
