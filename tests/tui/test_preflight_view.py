"""The dashboard's pre-flight (issue 18): the run panel's roster line, the ``p`` view and a
machine's details at 80x24 and 160x50, the finding before a risky run freezes, ``space``
pauses. No network: the app is fed the message its pre-flight worker would post."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from services.azure.preflight import PreflightSnapshot
from services.domain.preflight import (
    VM_TYPE,
    Assessment,
    Assignment,
    Candidate,
    Plan,
    World,
    preflight,
)
from tests.tui.test_app_snapshots import CONFIGS, NOW, SUB, feed, make_app
from tui.screens.event_detail import EventDetail
from tui.screens.preflight import PreflightFetched, PreflightView
from widgets.statusbar import StatusBar


def vm(name: str, **kwargs: Any) -> Candidate:
    base: dict[str, Any] = dict(
        id=f"/subscriptions/{SUB}/resourcegroups/rg-web/providers/{VM_TYPE}/{name}",
        name=name, type=VM_TYPE, subscription_id=SUB, resource_group="rg-web",
        location="westeurope", os_type="Windows", power="running",
        patch_mode="AutomaticByPlatform", bypass=True, extension="Succeeded")
    base.update(kwargs)
    return Candidate(**base)


def snapshot() -> PreflightSnapshot:
    web = (vm("web-ok"), vm("web-off", power="deallocated"),
           vm("web-[bold]x[/]", patch_mode="Manual", bypass=False))
    db = vm("db-off", power="stopped")
    machines = (*web, db)
    plans = tuple(Plan(c) for c in CONFIGS)
    assignments = (*(Assignment(CONFIGS[0].id, machine_id=m.id) for m in web),
                   Assignment(CONFIGS[2].id, machine_id=db.id))
    assessed = {m.id: Assessment(m.id, NOW - timedelta(hours=1), False, {"critical": 2})
                for m in machines}
    items = preflight(World(plans, assignments, machines, assessed), NOW)
    return PreflightSnapshot(tuple(items), NOW, requests=6)


def key_of(name: str) -> str:
    return next(c.id.lower() for c in CONFIGS if c.name == name)


@pytest.mark.parametrize("size", [(80, 24), (160, 50)])
async def test_roster_line_view_and_machine_details(tmp_path: Path,
                                                    size: tuple[int, int]) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        await feed(pilot)
        dash = app.dashboard
        dash.show_change(dash.state.select_config(key_of("patch-weu-web")))
        await pilot.pause()
        title = app.query_one("#run-title", Static)
        assert "roster" not in str(title.content)  # nothing read yet
        dash.post_message(PreflightFetched(snapshot()))
        await pilot.pause()
        assert "roster 3 · 2 at risk" in str(title.content)
        assert title.region.width > 0 and title.region.height > 0

        await pilot.press("p")
        await pilot.pause()
        view = app.screen
        assert isinstance(view, PreflightView)
        text = view.text
        assert "patch-weu-web" in text and "roster 3 · 2 at risk" in text
        assert "powered-off" in text and "orchestration" in text
        assert "web-[bold]x[/]" in text  # Azure's strings literally, never markup
        assert view.table.region.height >= 3  # the machines are on screen
        # Machines at risk first; the risk line gives the first one's fix.
        assert "fix:" in str(view.risk_line.content)
        await pilot.press("enter")
        await pilot.pause()
        detail = app.screen
        assert isinstance(detail, EventDetail)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, PreflightView)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is dash


async def test_machine_details_name_the_fix_and_the_estimate(tmp_path: Path) -> None:
    from tui.screens.preflight import machine_details

    item = next(p for p in snapshot().items if p.configuration_name == "patch-weu-web")
    off = next(m for m in item.machines if m.name == "web-off")
    text = machine_details(off, lambda when: when.strftime("%H:%M"))
    assert "[powered-off]" in text and "fix: start it" in text
    assert "estimate  30 min (constants" in text and "power     deallocated" in text


async def test_a_finding_when_a_risky_run_nears_its_freeze(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await feed(pilot)
        app.dashboard.post_message(PreflightFetched(snapshot()))
        await pilot.pause()
        toasts = [n for n in app._notifications if n.title == "pre-flight"]
        # patch-pst-db freezes in 2 min (inside warn_before); patch-weu-web froze already.
        assert len(toasts) == 1 and "patch-pst-db" in str(toasts[0].message)
        assert "at risk" in str(toasts[0].message)
        app.dashboard.post_message(PreflightFetched(snapshot()))  # the next read: not again
        await pilot.pause()
        assert len([n for n in app._notifications if n.title == "pre-flight"]) == 1


async def test_a_failed_read_keeps_the_last_roster(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await feed(pilot)
        dash = app.dashboard
        dash.show_change(dash.state.select_config(key_of("patch-weu-web")))
        dash.post_message(PreflightFetched(snapshot()))
        dash.post_message(PreflightFetched(PreflightSnapshot((), NOW, error="throttled")))
        await pilot.pause()
        assert "roster 3 · 2 at risk" in str(app.query_one("#run-title", Static).content)
        assert dash.preflight is not None and dash.preflight.error == "throttled"


async def test_space_pauses_and_p_opens_pre_flight(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await feed(pilot)
        await pilot.press("space")
        await pilot.pause()
        assert app.dashboard.paused and app.query_one(StatusBar).data.paused
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, PreflightView)
        assert "reading the pre-flight" in app.screen.text
        assert app.dashboard.paused


async def test_a_machines_os_from_azure_is_shown_literally(tmp_path: Path) -> None:
    # The OS type comes from Azure: a DataTable parses a plain str cell as markup, so
    # "[b]W[/b]" would lose its brackets and turn bold.
    from textual.widgets._data_table import default_cell_formatter

    machine = vm("web-os", os_type="[b]W[/b]")
    items = preflight(World(tuple(Plan(c) for c in CONFIGS),
                            (Assignment(CONFIGS[0].id, machine_id=machine.id),),
                            (machine,), {}), NOW)
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await feed(pilot)
        dash = app.dashboard
        dash.show_change(dash.state.select_config(key_of("patch-weu-web")))
        dash.post_message(PreflightFetched(PreflightSnapshot(tuple(items), NOW)))
        await pilot.pause()
        await pilot.press("p")
        await pilot.pause()
        view = app.screen
        assert isinstance(view, PreflightView)
        cell = view.table.get_row_at(0)[2]
        assert str(default_cell_formatter(cell)) == "[b]W[/b]"
