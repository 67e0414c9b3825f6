"""Export: the dashboard's view (configurations with their Event Grid wiring verdict, the
selected configuration's runs, the event tail) as JSON and CSV files under the data
directory."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from services.domain.dashboard import DashboardState
from services.domain.model import Run
from services.domain.runs import run_phase
from services.domain.window import WindowRules
from widgets.eventlog import EventRow

CSV_COLUMNS = ("name", "resource_group", "subscription_id", "time_zone", "recur_every",
               "next_start", "phase", "wiring")


def _phase_or_none(run: Run | None, now: datetime, rules: WindowRules) -> str | None:
    return None if run is None else run_phase(run, now, rules).value


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
    configs = [state.configs[k].to_json(phase=_phase_or_none(state.next_run(k, now), now,
                                                             rules))
               | {"wiring": _wiring_or_none(state, k)}
               for k in state.config_order(now)]
    selected = state.selected_config
    runs = [r.to_json(phase=run_phase(r, now, rules).value)
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
