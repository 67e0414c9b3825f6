"""Snapshots of the widgets with fixed literal data (pytest-textual-snapshot).

Baselines live in tests/widgets/__snapshots__/; regenerate with `--snapshot-update` after a
deliberate visual change (and review the SVG diff). Textual is pinned exactly, because its
rendering changes between versions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from widgets.confirm import ConfirmCancel
from widgets.countdown import Countdown
from widgets.eventlog import EventLog, EventRow
from widgets.phase import PHASES, phase_label
from widgets.statusbar import SourceAge, StatusBar, StatusData
from widgets.timeline import Timeline, TimelineData

T = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
NOW = T - timedelta(minutes=16, seconds=12)
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)

TIMELINE = TimelineData(
    start=T, end=T + 120 * MIN, opens_at=T - 40 * MIN, closes_at=T - 10 * MIN, now=NOW,
    pre_event_at=T - 33 * MIN, pre_expected=(T - 35 * MIN, T - 30 * MIN),
)
STATUS = StatusData(
    sources=(SourceAge("configs", 12 * SEC), SourceAge("runs", 3 * SEC),
             SourceAge("events", 95 * SEC)),
    quota_remaining=14, queue_mode="peek", queue_depth=32, queue_depth_capped=True,
    clock_skew=0.4 * SEC, read_only=True, paused=False,
    last_error="ResourceGraph 429 [bold red]throttled[/] \x1b[31m retry in 20s",
)
EVENTS = [
    EventRow(T - 33 * MIN, "PreMaintenanceEvent", "weekly-sat", "20260301150000",
             arrival="T-33m"),
    EventRow(T - 33 * MIN, "PreMaintenanceEvent", "weekly-sat", "20260301150000",
             arrival="T-33m", flag="duplicate"),
    EventRow(T - 20 * MIN, "undecodable", "", "[bold red]x[/] \x1b]52;c;ZXZpbA==\x07",
             flag="undecodable"),
    EventRow(T - 18 * MIN, "Watchdog", "monthly-2nd-tue", "20260301160000",
             flag="watchdog"),
]


class PanelApp(App[None]):
    """The run panel as the dashboard will show it, with frozen data."""

    def compose(self) -> ComposeResult:
        with Vertical():
            with Horizontal(id="phases", classes="row"):
                for phase in (*PHASES, "???"):
                    yield Static(phase_label(phase), markup=False, classes="phase")
            yield Timeline(TIMELINE)
            with Horizontal(classes="row"):
                yield Countdown(lambda: NOW, label="cancel closes in", deadline=T - 10 * MIN,
                                large=True)
                yield Countdown(lambda: NOW, label="starts in", deadline=T, classes="small")
            log = EventLog()
            log.add_rows(EVENTS)
            yield log
        yield StatusBar(STATUS)

    CSS = """
    .row { height: auto; }
    .phase { width: auto; margin-right: 2; }
    Timeline { margin: 1 0; }
    Countdown.small { margin-left: 4; }
    """


class ConfirmApp(App[None]):
    def on_mount(self) -> None:
        self.push_screen(ConfirmCancel("Cancel this run?", [
            ("configuration", "weekly-sat [bold red]x[/]"),
            ("run id", "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/"
                       "rg-patch/providers/microsoft.maintenance/maintenanceconfigurations/"
                       "weekly-sat/providers/microsoft.maintenance/applyupdates/20260301150000"),
            ("start (config zone)", "2026-03-01 16:00 CET"),
            ("start (UTC)", "2026-03-01 15:00"),
            ("start (local)", "2026-03-01 10:00 EST"),
            ("time left", "06:12"),
        ]))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_run_panel(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(PanelApp(), terminal_size=size)


def test_confirm_cancel_modal(snap_compare: Any) -> None:
    assert snap_compare(ConfirmApp(), terminal_size=(80, 24))
