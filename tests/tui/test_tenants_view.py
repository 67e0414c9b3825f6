"""Several tenants in the dashboard (issue 19): the stand-in plays two tenants; the dashboard
reads both through its monitor, shows a Tenant column in configurations and runs, filters by
``tenant:NAME``, and shows no Tenant column with one tenant."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable

from services.domain.clock import ManualClock
from services.settings import load_settings
from tests.integration.test_tenants import config_text, two_tenants, write  # noqa: F401
from tui.app import AumwatchApp

pytestmark = pytest.mark.integration


async def wait_for(pilot: Any, condition: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await pilot.pause(0.1)
    assert condition()


async def test_the_dashboard_shows_both_tenants_each_row_under_its_own(
        two_tenants: Any, tmp_path: Path, standin_clock: ManualClock) -> None:  # noqa: F811
    server, a, b, _world = two_tenants
    path = write(tmp_path, config_text(server, a, b))
    settings = load_settings({"data_dir": str(tmp_path / "data")}, env={}, config_path=path)
    app = AumwatchApp(settings, clock=standin_clock)
    async with app.run_test(size=(160, 40)) as pilot:
        state = app.dashboard.state
        await wait_for(pilot, lambda: len(state.configs) == 2)
        configs: DataTable[Any] = app.query_one("#configs", DataTable)
        await wait_for(pilot, lambda: configs.row_count == 2)
        tenant_of = {state.configs[k].name: configs.get_cell(k, "tenant").plain
                     for k in configs.rows}
        assert tenant_of == {"contoso-web": "contoso", "fabrikam-db": "fabrikam"}
        runs: DataTable[Any] = app.query_one("#runs", DataTable)
        by_name = {c.name: k for k, c in state.configs.items()}
        state.select_config(by_name["fabrikam-db"])
        app.dashboard.refresh_run_views()
        await wait_for(pilot, lambda: runs.row_count > 0)
        assert {runs.get_cell(k, "tenant").plain for k in runs.rows} == {"fabrikam"}
        # /tenant:NAME keeps that tenant's configurations only.
        app.dashboard.show_change(state.set_filter("tenant:fabrikam"))
        await wait_for(pilot, lambda: configs.row_count == 1)
        assert [state.configs[k].name for k in configs.rows] == ["fabrikam-db"]
        app.dashboard.show_change(state.set_filter("tenant:contoso web"))
        await wait_for(pilot, lambda: [state.configs[k].name for k in configs.rows]
                       == ["contoso-web"])


async def test_one_tenant_has_no_tenant_column(two_tenants: Any, tmp_path: Path,  # noqa: F811
                                               standin_clock: ManualClock) -> None:
    server, a, b, _world = two_tenants
    path = write(tmp_path, config_text(server, a, b))
    settings = load_settings({"data_dir": str(tmp_path / "data"), "tenant": "contoso"},
                             env={}, config_path=path)
    app = AumwatchApp(settings, clock=standin_clock)
    async with app.run_test(size=(160, 40)) as pilot:
        state = app.dashboard.state
        await wait_for(pilot, lambda: len(state.configs) == 1)
        configs: DataTable[Any] = app.query_one("#configs", DataTable)
        assert "tenant" not in {c.value for c in configs.columns}
        runs: DataTable[Any] = app.query_one("#runs", DataTable)
        assert "tenant" not in {c.value for c in runs.columns}


async def test_the_two_tenant_demo_world_shows_both_tenants_and_their_events(
        tmp_path: Path) -> None:
    from services.standin.runner import SimEnvironment

    with SimEnvironment(None, arg_lag=0, config_path=tmp_path / "aumwatch.toml",
                        data_dir=tmp_path / "data", tenants=2) as env:
        settings = load_settings({"data_dir": str(tmp_path / "data")}, env={},
                                 config_path=env.config_path)
        app = AumwatchApp(settings, clock=env.clock)
        async with app.run_test(size=(160, 50)) as pilot:
            state = app.dashboard.state
            await wait_for(pilot, lambda: {c.tenant for c in state.configs.values()}
                           == {"tenant1", "tenant2"} and state.queue_depth is not None,
                           seconds=60)
            names = {p.name: p for p in settings.tenant_profiles()}

            def event_subscriptions() -> set[str]:
                return {r.configuration_id.split("/")[2].lower() for r in state.memory.runs()}

            # Events of both tenants' queues reach the one view.
            wanted = {names[n].settings.subscriptions[0].lower() for n in names}
            await wait_for(pilot, lambda: wanted <= event_subscriptions(), seconds=60)
            assert not state.errors, state.errors
            for config in state.configs.values():
                owner = names[config.tenant]
                assert config.subscription_id in owner.settings.subscriptions
                assert config.tenant_id == owner.tenant


def test_the_cancel_confirmation_names_the_tenant_and_a_delegation() -> None:
    from datetime import timedelta

    from services.domain.dashboard import DashboardState
    from services.domain.model import Run
    from services.domain.window import WindowRules
    from tests.integration.test_tenants import TENANT_A, TENANT_B
    from tests.standin import NOW
    from tui.cancel import cancel_lines, target_of

    state = DashboardState(WindowRules(), ManualClock(NOW),
                           profile_tenants={"contoso": TENANT_A, "fabrikam": TENANT_B})
    cid = ("/subscriptions/s/resourcegroups/rg/providers/microsoft.maintenance/"
           "maintenanceconfigurations/web/providers/microsoft.maintenance/applyupdates/"
           "20260310123000")
    own = Run(cid, cid.split("/providers/microsoft.maintenance/applyupdates")[0], "web",
              "20260310123000", NOW + timedelta(minutes=30), tenant="fabrikam",
              tenant_id=TENANT_B)
    lines = dict(cancel_lines(state, own))
    assert lines["Tenant"] == f"fabrikam ({TENANT_B})" and "Delegation" not in lines
    assert (target_of(own).tenant, target_of(own).tenant_id) == ("fabrikam", TENANT_B)
    through = Run(own.correlation_id, own.configuration_id, "web", own.run_name, own.start,
                  tenant="contoso", tenant_id=TENANT_B)
    lines = dict(cancel_lines(state, through))
    assert "unconfirmed by Microsoft" in lines["Delegation"] and TENANT_A in lines["Delegation"]
    # One tenant, no profiles and no sign-in tenant: nothing new in the dialog.
    plain = DashboardState(WindowRules(), ManualClock(NOW))
    bare = Run(own.correlation_id, own.configuration_id, "web", own.run_name, own.start)
    assert [k for k, _ in cancel_lines(plain, bare)] == [
        "Configuration", "Run id", "Start (config zone)", "Start (UTC)", "Start (local)",
        "Cancel closes in"]
