"""The loose ends between the dashboard's parts, without a network: the skew verdict on the
status bar, the arrival label in the export, a cancel Azure accepted but did not confirm, and
the maintenance scope in the run panel."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from textual.widgets import Static

from services.domain.boundary import CancelResult, MonitorStatus, Outcome
from services.domain.clock import SKEW_WARNING, ManualClock
from services.domain.dashboard import ACCEPTED_HOLD, ACCEPTED_REASON, DashboardState
from services.domain.model import Fetched
from services.domain.window import WindowRules
from services.settings import Settings
from tests.tui.test_app_snapshots import CONFIGS, NOW, SUB, events, run_id, runs
from tui.app import AumwatchApp
from tui.messages import CancelDone
from tui.status import status_data

WEB_START = NOW + timedelta(minutes=25)  # patch-weu-web's run: inside its window at NOW


def status_of(skew: timedelta | None) -> Any:
    state = DashboardState(WindowRules(), ManualClock(NOW))
    state.apply_status(MonitorStatus(fetched_at={"configs": NOW, "runs": NOW},
                                     quota_remaining=10, skew=skew))
    return status_data(state, queue_configured=False, poll_interval=timedelta(seconds=60),
                       paused=False)


def test_the_status_bar_warns_of_a_large_skew_by_the_one_threshold() -> None:
    assert status_of(None).skew_warning is False
    assert status_of(SKEW_WARNING - timedelta(seconds=1)).skew_warning is False
    large = status_of(SKEW_WARNING)
    assert large.skew_warning is True and large.clock_skew == -SKEW_WARNING
    assert status_of(-SKEW_WARNING * 2).skew_warning is True  # either sign


def make_app(tmp_path: Path, **settings: Any) -> AumwatchApp:
    return AumwatchApp(Settings(subscriptions=(SUB,), data_dir=tmp_path, **settings),
                       clock=ManualClock(NOW), poll=False)


async def test_the_export_writes_each_events_arrival_label_and_flag(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        app.dashboard.apply_configs(Fetched(CONFIGS, NOW))
        app.dashboard.apply_events(events())
        await pilot.press("ctrl+s")
        await pilot.pause()
        exported = json.loads(next((tmp_path / "exports").glob("*.json")).read_text())
        pre, undecodable = exported["events"]
        assert (pre["kind"], pre["arrival"], pre["arrival_flagged"]) == ("pre", "T-35m", False)
        assert undecodable["arrival"] is None and undecodable["flag"] == "undecodable"


async def test_a_cancel_accepted_but_not_confirmed_is_not_offered_again(
        tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        dashboard = app.dashboard
        dashboard.apply_configs(Fetched(CONFIGS, NOW))
        dashboard.apply_runs(Fetched(runs(), NOW))
        await pilot.pause()
        await pilot.press("down", "down")  # patch-weu-web
        dashboard.tick()
        await pilot.pause()
        run = dashboard.current_run
        assert run is not None and run.start == WEB_START and dashboard.can_cancel
        message = "accepted by Azure, not yet confirmed: the read-back was unavailable"
        dashboard.post_message(CancelDone(CancelResult(
            Outcome.ACCEPTED, message, run_id("patch-weu-web", WEB_START), 200, "Cancelled")))
        await pilot.pause()
        toast = [n for n in app._notifications if message in str(n.message)]
        assert len(toast) == 1 and toast[0].severity == "warning"
        assert not dashboard.can_cancel
        assert dashboard.check_action("cancel_run", ()) is None  # shown, dimmed
        status = str(app.query_one("#run-status", Static).content)
        assert "cancel accepted by Azure, confirming…" in status
        await pilot.press("ctrl+x")
        await pilot.pause()
        assert len(app.screen_stack) == 1  # no confirmation: nothing can be sent
        assert any(ACCEPTED_REASON in str(n.message) for n in app._notifications)
        # No poll confirmed it within the hold: Cancel is offered again (window still open).
        app.clock.advance(ACCEPTED_HOLD)  # type: ignore[attr-defined]
        dashboard.tick()
        await pilot.pause()
        assert dashboard.can_cancel
        assert "confirming" not in str(app.query_one("#run-status", Static).content)


async def test_the_run_panel_names_the_scope_only_when_other_scopes_are_shown(
        tmp_path: Path) -> None:
    scoped = tuple(replace(c, scope="InGuestPatch") for c in CONFIGS)
    for include, shown in ((False, False), (True, True)):
        app = make_app(tmp_path, include_other_scopes=include)
        async with app.run_test(size=(120, 40)) as pilot:
            app.dashboard.apply_configs(Fetched(scoped, NOW))
            app.dashboard.apply_runs(Fetched(runs(), NOW))
            await pilot.pause()
            title = str(app.query_one("#run-title", Static).content)
            assert ("scope InGuestPatch" in title) is shown, title
