"""The dashboard's report key (Pilot) against the stand-in: it writes the selected run's report
into the data directory's reports folder and says where, in read-only mode too."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.worker import WorkerCancelled

from services.azure.journal import Journal
from services.azure.monitor import Monitor
from services.azure.resourcegraph import Governor
from services.domain.clock import ManualClock, SystemClock
from services.domain.events import decode_message
from services.settings import Settings, load_settings
from services.standin.server import StandInServer
from services.standin.world import SimRun, World
from tests.standin import NOW, SUB, add_run, config_object, pre_event_for
from tui.app import AumwatchApp
from widgets.statusbar import StatusBar

pytestmark = pytest.mark.integration

SIZE = (120, 40)


def daily(name: str, at: str) -> dict[str, Any]:
    config = config_object(name)
    config["properties"]["maintenanceWindow"].update(
        {"recurEvery": "Day", "timeZone": "W. Europe Standard Time",
         "startDateTime": f"2026-01-01 {at}", "duration": "02:00"})
    return config


@pytest.fixture
def run(standin_world: World) -> SimRun:
    """patch-web runs at 12:30 UTC (13:30 Amsterdam), 30 minutes after the stand-in's now."""
    return add_run(standin_world, daily("patch-web", "13:30"), NOW + timedelta(minutes=30),
                   machines=3, duration=timedelta(hours=2))


def make_settings(server: StandInServer, tmp_path: Path, **flags: Any) -> Settings:
    return load_settings(
        {"cloud": "standin", "arm_endpoint": server.endpoint, "ca_file": server.ca_file,
         "subscriptions": [SUB], "data_dir": str(tmp_path), **flags},
        env={"AUMWATCH_TOKEN": server.token}, config_path=None)


async def no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


def make_app(settings: Settings, clock: ManualClock) -> AumwatchApp:
    monitor = Monitor(settings, clock, governor=Governor(SystemClock(), sleep=no_wait))
    return AumwatchApp(settings, clock=clock, monitor=monitor)


async def settle(pilot: Any) -> None:
    for _ in range(3):
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerCancelled:
            continue
        await pilot.pause()


def journal_pre_event(tmp_path: Path, run: SimRun) -> None:
    event = pre_event_for(run, "patch-web")
    raw = json.dumps(event)
    with Journal(tmp_path / "journal.sqlite3") as journal:
        journal.record_event(decode_message(raw)[0], raw, received_at=NOW)


@pytest.mark.parametrize("read_only", [True, False])
async def test_the_report_key_writes_the_selected_runs_report_and_says_where(
    run: SimRun, standin: StandInServer, standin_clock: ManualClock, standin_world: World,
    tmp_path: Path, read_only: bool,
) -> None:
    journal_pre_event(tmp_path, run)
    settings = make_settings(standin, tmp_path, read_only=read_only)
    app = make_app(settings, standin_clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        current = app.dashboard.current_run
        assert current is not None and current.key == run.correlation_id.lower()
        await pilot.press("r")
        await settle(pilot)
        html_path = tmp_path / "reports" / f"patch-web-{run.start:%Y%m%d%H%M%S}.html"
        md_path = html_path.with_suffix(".md")
        assert html_path.exists() and md_path.exists()
        notice = app.query_one(StatusBar).data.notice
        assert notice == f"report written to {html_path} (and .md)"
        assert app.dashboard.last_error is None
    text = md_path.read_text(encoding="utf-8")
    assert "# Run report: patch-web " in text
    assert "pre-maintenance event" in text  # from the journal
    assert text.count("| [patch-web-vm") == 3  # the machines, from Resource Graph
    assert "13:30:00 CET" in text  # the configuration's zone
    # Nothing was sent to Azure: the run is as it was.
    assert standin_world.get_run(run.correlation_id).status == "Pending"


async def test_the_report_key_without_a_run_says_so_and_writes_nothing(
    standin: StandInServer, standin_clock: ManualClock, tmp_path: Path,
) -> None:
    app = make_app(make_settings(standin, tmp_path), standin_clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.dashboard.current_run is None
        await pilot.press("r")
        await settle(pilot)
        assert not (tmp_path / "reports").exists()
        assert app.query_one(StatusBar).data.notice is None


async def test_a_report_that_cannot_be_written_is_an_error_in_the_status_bar(
    run: SimRun, standin: StandInServer, standin_clock: ManualClock, tmp_path: Path,
) -> None:
    (tmp_path / "reports").write_text("a file where the folder should be", encoding="utf-8")
    app = make_app(make_settings(standin, tmp_path), standin_clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        error = app.dashboard.last_error
        assert error is not None and error.startswith("report not written: ")
        assert app.query_one(StatusBar).data.last_error == error
