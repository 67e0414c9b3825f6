"""The cancel confirmation is live (issue 22, item 5): its time left moves with the app's
clock (a manual one here, as a sped-up demo's would jump), and it closes itself, saying why,
when the window closes while it is open. Pilot, no network: data fed as the workers post it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from services.domain.clock import ManualClock
from services.domain.model import Fetched
from services.settings import Settings
from tests.tui.test_app_snapshots import CONFIGS, NOW, SUB, runs
from tui.app import AumwatchApp
from widgets.confirm import ConfirmCancel

START = NOW + timedelta(minutes=25)  # patch-weu-web's run; its cut-off is T-10
CLOSES = START - timedelta(minutes=10)  # 12:15 UTC, 13:15 in its zone (CET)


def make_app(tmp_path: Path) -> AumwatchApp:
    return AumwatchApp(Settings(subscriptions=(SUB,), data_dir=tmp_path),
                       clock=ManualClock(NOW), poll=False)


async def open_dialog(app: AumwatchApp, pilot: Any) -> ConfirmCancel:
    dashboard = app.dashboard
    dashboard.apply_configs(Fetched(CONFIGS, NOW))
    dashboard.apply_runs(Fetched(runs(), NOW))
    await pilot.pause()
    await pilot.press("down", "down")  # patch-weu-web: its cancel window is open
    dashboard.tick()
    await pilot.pause()
    assert dashboard.can_cancel
    await pilot.press("ctrl+x")
    await pilot.pause()
    dialog = app.screen
    assert isinstance(dialog, ConfirmCancel)
    return dialog


def time_left(dialog: ConfirmCancel) -> str:
    return dict(dialog.lines)["Cancel closes in"]


async def test_the_time_left_ticks_with_the_clock_and_focus_stays_on_no(
        tmp_path: Path) -> None:
    app = make_app(tmp_path)
    clock = app.clock
    assert isinstance(clock, ManualClock)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await open_dialog(app, pilot)
        assert time_left(dialog) == "15:00"
        assert app.focused is not None and app.focused.id == "confirm-no"
        for seconds in range(1, 7):  # six seconds: it used to stand still
            clock.advance(timedelta(seconds=1))
            dialog.tick()
            await pilot.pause()
            assert time_left(dialog) == f"14:{60 - seconds:02d}"
        clock.advance(timedelta(minutes=12, seconds=20))  # a sped-up clock jumps
        dialog.tick()
        await pilot.pause()
        assert time_left(dialog) == "02:34"
        assert app.screen is dialog
        assert app.focused is not None and app.focused.id == "confirm-no"


async def test_the_dialog_closes_itself_when_the_window_closes_and_says_why(
        tmp_path: Path) -> None:
    app = make_app(tmp_path)
    clock = app.clock
    assert isinstance(clock, ManualClock)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await open_dialog(app, pilot)
        clock.set(CLOSES - timedelta(seconds=1))
        dialog.tick()
        await pilot.pause()
        assert app.screen is dialog and time_left(dialog) == "00:01"
        clock.set(CLOSES + timedelta(minutes=3))  # past the close, as a sped-up demo gets
        dialog.tick()
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmCancel)
        reason = "cancel window closed at 13:15 CET; nothing was sent"
        assert dialog.closed_reason == reason
        assert [n.title for n in app._notifications if str(n.message) == reason] == ["Cancel"]
        assert app.dashboard._status_data().notice == reason
        state = app.dashboard.state
        assert not state.cancel_in_flight and not state.cancelled  # nothing was sent


async def test_the_dialog_closes_when_the_run_is_cancelled_meanwhile(tmp_path: Path) -> None:
    from dataclasses import replace

    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await open_dialog(app, pilot)
        # Another aumwatch (or the portal) cancelled it: the next poll says so.
        web, past = runs()
        app.dashboard.apply_runs(Fetched((replace(web, status="Cancelled",
                                                  cancelled_by="user"), past), NOW))
        dialog.tick()
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmCancel)
        assert dialog.closed_reason == "the run is cancelled now; nothing was sent"
