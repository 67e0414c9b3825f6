"""Snapshots of the dashboard with a frozen clock and literal data (no network).

The app is started with ``poll=False`` and fed the same messages its workers would post, so
every pixel is deterministic. Update baselines with ``pytest --snapshot-update`` after
looking at the diff (``snapshot_report.html``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.domain.boundary import EventBatch, ReceivedEvent, UndecodableMessage
from services.domain.clock import ManualClock
from services.domain.events import decode_message
from services.domain.model import Configuration, Fetched, Run
from services.settings import Settings
from services.standin.events_out import build_event, encode_message
from tui.app import AumwatchApp

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SUB = "3f2a1c9e-7b4d-4e61-9a0f-2c5d8e7b1a10"


def config_id(name: str) -> str:
    return (f"/subscriptions/{SUB}/resourceGroups/rg-patch/providers/Microsoft.Maintenance/"
            f"maintenanceConfigurations/{name}")


def run_id(name: str, start: datetime) -> str:
    return (f"{config_id(name)}/providers/microsoft.maintenance/applyupdates/"
            f"{start.strftime('%Y%m%d%H%M%S')}")


def config(name: str, start: datetime, zone: str, words: str) -> Configuration:
    return Configuration(
        id=config_id(name), name=name, resource_group="rg-patch", subscription_id=SUB,
        time_zone=zone, recur_every="Day", duration="02:00", schedule_description=words,
        next_occurrences=((start, start + timedelta(hours=2)),))


CONFIGS = (
    config("patch-weu-web", NOW + timedelta(minutes=25), "W. Europe Standard Time",
           "every week on Tue at 13:25"),
    config("patch-utc-arc", NOW + timedelta(minutes=5), "UTC", "every day at 12:05"),
    config("patch-pst-db", NOW + timedelta(minutes=42), "Pacific Standard Time",
           "every day at 05:42"),
    config("patch-cet-app", NOW - timedelta(minutes=30), "Europe/Berlin", "every day at 12:30"),
)


def runs() -> tuple[Run, ...]:
    start = NOW + timedelta(minutes=25)
    past = start - timedelta(days=1)
    return (
        Run(run_id("patch-weu-web", start), config_id("patch-weu-web"), "patch-weu-web",
            start.strftime("%Y%m%d%H%M%S"), start, start + timedelta(hours=2), "Pending",
            machines_total=60, cutoff=start - timedelta(minutes=10)),
        Run(run_id("patch-weu-web", past), config_id("patch-weu-web"), "patch-weu-web",
            past.strftime("%Y%m%d%H%M%S"), past, past + timedelta(hours=2), "Completed",
            machines_total=60, machines_succeeded=57, machines_failed=3),
    )


def events() -> EventBatch:
    start = NOW + timedelta(minutes=25)
    raw = encode_message(build_event(
        kind="pre", correlation_id=run_id("patch-weu-web", start),
        configuration_id=config_id("patch-weu-web"), configuration_name="patch-weu-web",
        start=start, end=start + timedelta(hours=2), subscription_ids=[SUB],
        event_time=NOW - timedelta(minutes=10)))
    event = decode_message(raw)[0]
    arrived = NOW - timedelta(minutes=9)
    return EventBatch(
        mode="peek", fetched_at=NOW, depth=3,
        events=(ReceivedEvent(event, arrived, "m1", arrived),),
        undecodable=(UndecodableMessage("message is not valid JSON", "[bold red]boom[/]",
                                        NOW - timedelta(minutes=1), "m2",
                                        NOW - timedelta(minutes=1)),))


@pytest.fixture
def frozen_local_zone() -> Iterator[None]:
    """The "local" times shown are UTC, whatever the machine's zone."""
    import os

    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def make_app(tmp_path: Path) -> AumwatchApp:
    # No queue in the settings: the watchdog stays quiet, so no toast races the screenshot.
    settings = Settings(subscriptions=(SUB,), data_dir=tmp_path)
    return AumwatchApp(settings, clock=ManualClock(NOW), poll=False)


async def feed(pilot: Any) -> None:
    app: AumwatchApp = pilot.app
    app.dashboard.apply_configs(Fetched(CONFIGS, NOW))
    app.dashboard.apply_runs(Fetched(runs(), NOW))
    app.dashboard.apply_events(events())
    app.dashboard.tick()
    await pilot.pause()


def test_main_screen_80x24(snap_compare: Any, tmp_path: Path, frozen_local_zone: None) -> None:
    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=feed)


def test_main_screen_120x40(snap_compare: Any, tmp_path: Path,
                            frozen_local_zone: None) -> None:
    assert snap_compare(make_app(tmp_path), terminal_size=(120, 40), run_before=feed)


def test_cancel_modal(snap_compare: Any, tmp_path: Path, frozen_local_zone: None) -> None:
    async def open_modal(pilot: Any) -> None:
        await feed(pilot)
        await pilot.press("down", "down")  # patch-weu-web: its cancel window is open
        pilot.app.dashboard.tick()
        await pilot.pause()
        await pilot.press("ctrl+x")
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=(120, 40), run_before=open_modal)
