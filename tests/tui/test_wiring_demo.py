"""The demo world in the dashboard: the real stand-in (Event Grid, Resource Graph, metrics),
real Azurite and the real SDK clients behind the monitor show a configuration in every
wiring verdict, and the wiring view of the webhook one never shows the webhook's key."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from textual.widgets import DataTable

from services.domain.wiring import VERDICT_SYMBOLS, Verdict
from services.settings import load_settings
from services.standin.runner import SimEnvironment
from tui.app import AumwatchApp
from tui.screens.wiring import WiringView

#: services/standin/scenarios/demo.toml: a configuration per verdict.
DEMO_VERDICTS = {
    "patch-weu-web": Verdict.OK,
    "patch-dev-notopic": Verdict.MISSING,
    "patch-dev-nosub": Verdict.MISSING,
    "patch-dev-preonly": Verdict.PARTIAL,
    "patch-dev-otherq": Verdict.OTHER_ENDPOINT,
    "patch-dev-hook": Verdict.OTHER_ENDPOINT,
    "patch-dev-disabled": Verdict.DISABLED,
    "patch-prod-failing": Verdict.FAILING,
}


async def test_the_demo_world_shows_every_verdict(tmp_path: Path) -> None:
    with SimEnvironment(None, arg_lag=0, config_path=tmp_path / "aumwatch.toml") as env:
        settings = load_settings({"data_dir": str(tmp_path / "data")}, env={},
                                 config_path=env.config_path)
        app = AumwatchApp(settings, clock=env.clock)
        async with app.run_test(size=(140, 50)) as pilot:
            state = app.dashboard.state
            deadline = time.monotonic() + 90
            while state.wiring_fetched_at is None and time.monotonic() < deadline:
                await pilot.pause(0.2)
            assert state.wiring_fetched_at is not None, state.errors
            assert "wiring" not in state.errors
            await pilot.pause()
            table: DataTable[Any] = app.query_one("#configs", DataTable)
            by_name = {c.name: k for k, c in state.configs.items()}
            shown = {name: table.get_cell(by_name[name], "wiring").plain
                     for name in DEMO_VERDICTS}
            assert shown == {name: f"{VERDICT_SYMBOLS[v]} {v}"
                             for name, v in DEMO_VERDICTS.items()}
            assert {state.wiring_of(k).verdict for k in state.configs  # type: ignore[union-attr]
                    } == set(Verdict)
            # The webhook's subscription: its host only, never its path or key.
            state.select_config(by_name["patch-dev-hook"])
            await pilot.press("w")
            await pilot.pause()
            view = app.screen
            assert isinstance(view, WiringView)
            assert "webhook  hooks.example.invalid" in view.text
            assert "code=" not in view.text and "standin-secret" not in view.text
            assert "/api/" not in view.text
            await pilot.press("escape")
