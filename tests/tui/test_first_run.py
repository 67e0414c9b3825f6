"""What a new operator sees first (issue 20): at 80x24 the run panel shows clock times, and
the event tail explains its arrival column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Static

from tests.tui.test_app_snapshots import feed, frozen_local_zone, make_app
from tui.panels.events import ARRIVAL_LEGEND, EventsPanel


def visible(app: Any, selector: str) -> str:
    """The part of a one-line Static's text that fits its width (the rest is cut off)."""
    widget = app.query_one(selector, Static)
    return widget.render().plain[:widget.size.width]


__all__ = ["frozen_local_zone"]  # the fixture: "local" times are UTC on any machine


async def test_the_run_panel_shows_clock_times_at_80x24(tmp_path: Path,
                                                        frozen_local_zone: None) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await feed(pilot)
        assert app.screen.has_class("-compact")
        await pilot.press("down", "down")  # patch-weu-web, 25 minutes before its start
        app.dashboard.tick()
        await pilot.pause()
        title = visible(app, "#run-title")
        assert title.startswith("patch-weu-web  start 13:25 CET"), title
        status = visible(app, "#run-status")
        assert "cancel until 12:15 UTC" in status, status


async def test_the_run_panel_says_it_in_full_words_when_there_is_room(
        tmp_path: Path, frozen_local_zone: None) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await feed(pilot)
        await pilot.press("down", "down")
        app.dashboard.tick()
        await pilot.pause()
        assert "cancel window open until 12:15 UTC Tue 10" in visible(app, "#run-status")


async def test_the_event_tail_explains_its_arrival_column(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await feed(pilot)
        panel = app.query_one(EventsPanel)
        assert panel.border_subtitle == ARRIVAL_LEGEND
        assert "T-35m" in ARRIVAL_LEGEND and "-37m" in ARRIVAL_LEGEND
