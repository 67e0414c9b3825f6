"""The dashboard under faults, hostile strings and hostile terminals (Pilot).

Every stand-in fault shows in the status bar within one poll as one line, and clears by
itself on the next poll after the fault is gone; a configuration name full of markup and
escape sequences is shown literally; resize storms and a 40x12 terminal do not crash it.
(Losing the TTY is covered by tests/tui/test_smoke_tmux.py.)
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable

from services.azure.eventsource import make_queue_client
from services.azure.monitor import Monitor
from services.azure.resourcegraph import Governor
from services.domain.clock import ManualClock, SystemClock
from services.standin.azurite import Azurite
from services.standin.server import StandInServer
from services.standin.world import World
from tests.reliability.conftest import Tally
from tests.reliability.test_cli_output import HOSTILE
from tests.tui.test_app import daily, make_settings, no_wait, settle
from tui.app import AumwatchApp
from widgets.statusbar import StatusBar

pytestmark = pytest.mark.integration

FAULTS = ["throttle", "throttle-no-retry-after", "error500", "error503", "slow", "drop",
          "expired-token"]


@pytest.fixture
async def queue(azurite: Azurite) -> AsyncIterator[Any]:
    client = make_queue_client(f"q{uuid.uuid4().hex[:12]}",
                               connection_string=azurite.connection_string)
    async with client:
        await client.create_queue()
        yield client


@pytest.fixture
def app(standin_world: World, standin: StandInServer, standin_clock: ManualClock,
        tmp_path: Path, queue: Any, azurite: Azurite) -> AumwatchApp:
    hostile = daily("patch-hostile", "12:30")
    hostile["name"] = "patch " + HOSTILE
    standin_world.add_configuration(hostile)
    standin_world.add_configuration(daily("patch-later", "14:00"))
    settings = make_settings(standin, tmp_path, queue, azurite, request_timeout="1s")
    monitor = Monitor(settings, standin_clock, governor=Governor(SystemClock(), sleep=no_wait))
    return AumwatchApp(settings, clock=standin_clock, monitor=monitor)


@pytest.mark.parametrize("kind", FAULTS)
async def test_a_fault_shows_in_the_status_bar_and_clears_on_the_next_poll(
        app: AumwatchApp, standin: StandInServer, kind: str, tally: Tally) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.query_one(StatusBar).data.last_error is None
        standin.faults.set(kind, scope="all", retry_after=0.1, delay=3)
        app.dashboard.poll_configs()
        await settle(pilot)
        error = app.query_one(StatusBar).data.last_error
        standin.faults.clear()
        assert error is not None and "\n" not in error and "Traceback" not in error, error
        app.dashboard.poll_configs()
        await settle(pilot)
        assert app.query_one(StatusBar).data.last_error is None
        assert app.is_running
    tally.add("dashboard: fault shown, then cleared", injected=1, survived=1)


async def test_hostile_configuration_name_is_shown_literally(app: AumwatchApp) -> None:
    async with app.run_test(size=(200, 40)) as pilot:
        await settle(pilot)
        table = next(t for t in app.query(DataTable) if t.row_count >= 2)
        cells = [c.plain if hasattr(c, "plain") else str(c)
                 for row in range(table.row_count) for c in table.get_row_at(row)]
        shown = next(c for c in cells if "patch [bold red]" in c)
        assert "[bold red]boom[/]" in shown and "\x1b" not in shown and "\x07" not in shown


async def test_resize_storm_and_a_40x12_terminal_do_not_crash(app: AumwatchApp,
                                                              tally: Tally) -> None:
    rng = random.Random(1)
    async with app.run_test(size=(40, 12)) as pilot:
        await settle(pilot)
        for _ in range(60):
            await pilot.resize_terminal(rng.randint(10, 220), rng.randint(4, 70))
            if rng.random() < 0.3:
                await pilot.pause()
        await pilot.resize_terminal(40, 12)
        await settle(pilot)
        await pilot.press("down", "down", "enter", "escape")
        await pilot.pause()
        assert app.is_running
    tally.add("terminal: resize storm (60 sizes) and 40x12", injected=61, survived=61)
