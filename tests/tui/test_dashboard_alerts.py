"""The dashboard's findings (issue 21): a new finding of severity error or worse rings the bell
and notifies the terminal (OSC 777 / OSC 9, hostile text neutralised); ``a`` acknowledges it,
journaled, so another viewer on the same journal shows who and when and does not notify it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.azure.journal import Journal
from services.domain.clock import ManualClock
from services.domain.dashboard import DashboardState
from services.domain.findings import Alert
from services.domain.model import Fetched, Run
from services.settings import load_settings
from tests.tui.test_app_snapshots import CONFIGS, config_id, run_id
from tui.alerts import DashboardAlerts, notification
from tui.app import AumwatchApp

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
START = NOW - timedelta(minutes=50)


def failed_run() -> Run:
    return Run(run_id("patch-weu-web", START), config_id("patch-weu-web"), "patch-weu-web",
               START.strftime("%Y%m%d%H%M%S"), START, START + timedelta(minutes=40), "Failed",
               machines_total=3, machines_failed=3, last_update=NOW - timedelta(minutes=5))


def settings(tmp_path: Path, text: str = "") -> object:
    config = tmp_path / "config.toml"
    config.write_text(text + f'\n[paths]\ndata_dir = "{tmp_path}"\n', encoding="utf-8")
    return load_settings({}, env={}, config_path=config)


def test_the_notification_has_the_bell_and_both_osc_forms_and_no_hostile_bytes() -> None:
    alert = Alert("run-failed", "run-failed:x", "error",
                  "web\x1b]0;pwned\x07; the run failed\nrm -rf", "web", "x", NOW)
    text = notification(alert, bell=True)
    assert text.startswith("\a\x1b]777;notify;aumwatch error: run-failed;")
    assert "\x1b]9;aumwatch error: run-failed: " in text
    body = text[1:].replace("\x1b]777;", "").replace("\x1b]9;", "").replace("\x07", "")
    assert "\x1b" not in body and "\n" not in body and "pwned" in body
    assert text.count(";") == 4  # only the separators of OSC 777 (3) and OSC 9 (1)
    assert not notification(alert, bell=False).startswith("\a")


def test_an_acknowledgement_reaches_another_viewer_which_does_not_notify_it(
        tmp_path: Path) -> None:
    conf = settings(tmp_path)
    clock = ManualClock(NOW)
    views = []
    with Journal(tmp_path / "journal.sqlite3") as one, Journal(
            tmp_path / "journal.sqlite3") as other:
        for journal in (one, other):
            state = DashboardState(conf.window_rules, clock)  # type: ignore[attr-defined]
            state.apply_configs(Fetched(CONFIGS, NOW))
            state.apply_runs(Fetched((), NOW))
            view = DashboardAlerts(conf, clock, journal)  # type: ignore[arg-type]
            # What stands when the sources are first read is shown, not rung.
            standing = view.judge(state, NOW)
            assert sorted(a.kind for a in standing) == ["missed-run", "window-open"]
            assert view.to_notify(standing) == []
            state.apply_runs(Fetched((failed_run(),), NOW))
            views.append((view, state))
        (first, first_state), (second, second_state) = views
        changes = first.judge(first_state, NOW + timedelta(seconds=5))
        [told] = first.to_notify(changes)
        assert told.kind == "run-failed"
        assert "finding: run failed" in [line.kind for line in first.lines(changes, NOW)]
        assert first.acknowledge(first.target(told.key, None), "alice", NOW) == [told]
        [line] = second.read_acks(NOW + timedelta(seconds=1))
        assert (line.kind, line.configuration) == ("acknowledged: run failed", "alice")
        assert second.to_notify(second.judge(second_state, NOW + timedelta(seconds=5))) == []


async def test_a_new_failure_notifies_and_a_acknowledges_it_in_the_tail(tmp_path: Path) -> None:
    app = AumwatchApp(settings(tmp_path), clock=ManualClock(NOW), poll=False)  # type: ignore[arg-type]
    async with app.run_test(size=(140, 40)) as pilot:
        screen = app.dashboard
        screen.apply_configs(Fetched(CONFIGS, NOW))
        screen.apply_runs(Fetched((), NOW))
        assert not app._notifications  # what stood at start is in the tail, not rung
        screen.apply_runs(Fetched((failed_run(),), NOW))
        await pilot.pause()
        kinds = [r.kind for r in screen.events_panel.rows]
        assert "finding: run failed" in kinds and "finding: missed run" in kinds
        assert any("run-failed" in (n.title or "") for n in app._notifications)
        log = screen.events_panel.event_log
        log.focus()
        log.action_last()
        while log.selected_row is not None and log.selected_row.kind != "finding: run failed":
            log.action_cursor_up()
        key = log.selected_row.key if log.selected_row is not None else None
        await pilot.press("a")
        await pilot.pause()
        assert screen.events_panel.rows[-1].kind == "acknowledged: run failed"
        assert list(screen.alerts.acked) == [key]
