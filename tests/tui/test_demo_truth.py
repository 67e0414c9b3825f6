"""The demo world in the dashboard says nothing false (issue 22, items 4 and 11): the real
stand-in, Azurite and SDK clients behind the monitor, as `aumwatch demo` starts them. Once
every source was read, no post-event is called missing for the runs that were cancelled
(patch-dev-canary by a user, patch-weu-sql by the platform), and their Phase cells, like the
failed patch-dev-daily's, say how they ended."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from textual.widgets import DataTable

from services.settings import load_settings
from services.standin.runner import SimEnvironment
from tui.app import AumwatchApp

EXPECTED = {"patch-dev-canary": "⊘ cancelled", "patch-weu-sql": "⊘ cancelled",
            "patch-dev-daily": "✗ failed"}


async def test_the_demo_start_raises_no_false_alarm_and_marks_each_ending(
        tmp_path: Path) -> None:
    with SimEnvironment(None, arg_lag=0, config_path=tmp_path / "aumwatch.toml") as env:
        settings = load_settings({"data_dir": str(tmp_path / "data")}, env={},
                                 config_path=env.config_path)
        app = AumwatchApp(settings, clock=env.clock)
        async with app.run_test(size=(140, 50)) as pilot:
            dashboard = app.dashboard
            state = dashboard.state
            deadline = time.monotonic() + 90
            while (state.watchdog.waiting_for("missing-pre")
                   or state.queue_depth is None) and time.monotonic() < deadline:
                await pilot.pause(0.2)
            assert not state.watchdog.waiting_for("missing-pre"), state.errors
            for _ in range(3):
                dashboard.tick()
                await pilot.pause()
            by_name = {c.name: k for k, c in state.configs.items()}
            false = [f.message for f in state.findings if f.kind == "missing-post"
                     and f.configuration_name in ("patch-dev-canary", "patch-weu-sql")]
            assert false == []
            table: DataTable[Any] = app.query_one("#runs", DataTable)
            for name, mark in EXPECTED.items():
                state.select_config(by_name[name])
                dashboard.refresh_run_views()
                await pilot.pause()
                ended = [r for r in state.runs_of(by_name[name])
                         if r.finished and r.key in table.rows]
                marks = {table.get_cell(r.key, "phase").plain for r in ended}
                assert mark in marks, (name, marks)
                assert "✓ finished" not in marks
