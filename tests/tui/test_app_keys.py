"""Keys of the dashboard without a network: keymap from the config file, pause, zone, export,
the command palette's actions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from textual.binding import Binding
from textual.widgets import Static

from services.domain.clock import ManualClock
from services.domain.model import Fetched
from services.settings import KEY_BINDING_IDS, load_settings
from tests.tui.test_app_snapshots import CONFIGS, runs
from tui.app import AumwatchApp
from tui.screens.dashboard import DashboardScreen
from widgets.statusbar import StatusBar

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def app_with(tmp_path: Path, config_text: str = "") -> AumwatchApp:
    config = tmp_path / "config.toml"
    config.write_text(config_text + f'\n[paths]\ndata_dir = "{tmp_path}"\n', encoding="utf-8")
    settings = load_settings({}, env={}, config_path=config)
    assert not settings.warnings
    return AumwatchApp(settings, clock=ManualClock(NOW), poll=False)


def test_keys_table_reaches_the_app_through_the_settings(tmp_path: Path) -> None:
    app = app_with(tmp_path, '[keys]\npause = "P"\nzone = "t"\n')
    assert dict(app.settings.keymap) == {"pause": "P", "zone": "t"}
    assert app._keymap == {"pause": "P", "zone": "t"}
    assert app_with(tmp_path)._keymap == {}


def test_the_remappable_ids_are_exactly_the_dashboards_binding_ids() -> None:
    # The settings validate [keys] against KEY_BINDING_IDS: a binding added, renamed or
    # removed on either side must fail here rather than be silently unmappable.
    from widgets.eventlog import EventLog

    ids = [b.id for b in (*AumwatchApp.BINDINGS, *DashboardScreen.BINDINGS, *EventLog.BINDINGS)
           if isinstance(b, Binding) and b.show]
    ids += [b.id for b in (*AumwatchApp.BINDINGS, *DashboardScreen.BINDINGS)
            if isinstance(b, Binding) and not b.show]
    assert None not in ids
    assert set(ids) == set(KEY_BINDING_IDS)
    assert len(KEY_BINDING_IDS) == len(set(KEY_BINDING_IDS))


async def test_remapped_pause_key_pauses_and_the_status_bar_says_so(tmp_path: Path) -> None:
    app = app_with(tmp_path, '[keys]\npause = "P"\n')
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("P")
        await pilot.pause()
        assert app.dashboard.paused and app.query_one(StatusBar).data.paused
        await pilot.press("space")  # the default key no longer pauses
        await pilot.pause()
        assert app.dashboard.paused


async def test_zone_key_cycles_config_utc_local(tmp_path: Path) -> None:
    app = app_with(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        app.dashboard.apply_configs(Fetched(CONFIGS, NOW))
        await pilot.pause()
        key = CONFIGS[0].id.lower()
        table = app.query_one("#configs")
        assert table.get_cell(key, "next").plain.endswith("CET")
        await pilot.press("z")
        await pilot.pause()
        assert app.dashboard.time_mode == "utc"
        assert table.get_cell(key, "next").plain.endswith("UTC")
        await pilot.press("z", "z")
        assert app.dashboard.time_mode == "config"


async def test_export_writes_json_and_csv_to_the_data_dir(tmp_path: Path) -> None:
    app = app_with(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        app.dashboard.apply_configs(Fetched(CONFIGS, NOW))
        app.dashboard.apply_runs(Fetched(runs(), NOW))
        await pilot.press("ctrl+s")
        await pilot.pause()
        files = sorted((tmp_path / "exports").iterdir())
        assert [f.suffix for f in files] == [".csv", ".json"]
        data = json.loads(files[1].read_text())
        assert {c["name"] for c in data["configurations"]} == {c.name for c in CONFIGS}
        assert any(str(files[1]) in str(n.message) for n in app._notifications)


async def test_palette_offers_every_dashboard_action(tmp_path: Path) -> None:
    app = app_with(tmp_path)
    async with app.run_test(size=(120, 40)):
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for wanted in ("Cancel run", "Pause", "Refresh", "Zone", "Filter", "Export", "Help"):
            assert wanted in titles


async def test_palette_says_what_each_dashboard_command_does(tmp_path: Path) -> None:
    # Issue 20: "Export / Export" told nothing; each command's help is more than its title.
    app = app_with(tmp_path)
    async with app.run_test(size=(120, 40)):
        ours = {b.description for b in DashboardScreen.BINDINGS if isinstance(b, Binding)}
        commands = [c for c in app.get_system_commands(app.screen) if c.title in ours]
        assert len(commands) >= 10
        for command in commands:
            assert command.help.lower() != command.title.lower(), command.title
            assert len(command.help.split()) >= 4, command.title


async def test_cancel_is_dimmed_for_a_run_only_computed_from_the_schedule(
        tmp_path: Path) -> None:
    from services.domain.runs import UNSEEN_RUN_REASON

    app = app_with(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        dashboard = app.dashboard
        dashboard.apply_configs(Fetched(CONFIGS, NOW))  # no runs seen in Azure
        await pilot.pause()
        await pilot.press("down", "down")  # patch-weu-web: inside its window at NOW
        dashboard.tick()
        await pilot.pause()
        run = dashboard.current_run
        assert run is not None and run.configuration_name == "patch-weu-web" and run.expected
        assert dashboard.check_action("cancel_run", ()) is None  # shown, dimmed
        status = app.query_one("#run-status", Static).content
        assert UNSEEN_RUN_REASON in str(status)
        await pilot.press("ctrl+x")
        await pilot.pause()
        assert len(app.screen_stack) == 1  # no confirmation: nothing can be sent
        assert any(UNSEEN_RUN_REASON in str(n.message) for n in app._notifications)


async def test_every_key_the_dashboard_shows_is_remappable(tmp_path: Path) -> None:
    # Walk the running dashboard: each binding it shows (footer, help) on any of its widgets
    # carries an id of KEY_BINDING_IDS, so [keys] can move it (issue 20: `f` could not be).
    app = app_with(tmp_path)
    async with app.run_test(size=(120, 40)):
        shown = [(type(node).__name__, binding)
                 for node in (app, *app.screen.walk_children(with_self=True))
                 for bindings in node._bindings.key_to_bindings.values()
                 for binding in bindings if binding.show]
    assert {name for name, _ in shown} >= {"AumwatchApp", "DashboardScreen", "EventLog"}
    unmappable = [(name, b.key, b.action) for name, b in shown if b.id not in KEY_BINDING_IDS]
    assert unmappable == []


async def test_follow_is_remapped_by_the_keys_table(tmp_path: Path) -> None:
    from widgets.eventlog import EventLog

    app = app_with(tmp_path, '[keys]\nfollow = "F"\n')
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.query_one(EventLog)
        log.focus()
        await pilot.press("F")
        await pilot.pause()
        assert not log.follow
        assert log.marker_text == "follow off (F)"
        await pilot.press("f")  # the old key no longer toggles it
        await pilot.pause()
        assert not log.follow
