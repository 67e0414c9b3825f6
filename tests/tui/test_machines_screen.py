"""The machines screen: each machine's own finish, blank while it runs; names drawn literally."""

from __future__ import annotations

from datetime import UTC, datetime

from textual.app import App
from textual.widgets import DataTable

from services.domain.model import Fetched, Machine
from tui.screens.machines import MachinesScreen

RUN = ("/subscriptions/s/resourcegroups/rg/providers/microsoft.maintenance/"
       "maintenanceconfigurations/mc/providers/microsoft.maintenance/applyupdates/20260310150000")
FINISHED_AT = datetime(2026, 3, 10, 15, 42, tzinfo=UTC)


async def _fetch(correlation_id: str) -> Fetched[Machine]:
    assert correlation_id == RUN
    return Fetched((
        Machine("/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/"
                "virtualmachines/vm-done", "vm-done", "Succeeded", installed=3, failed=0,
                pending=0, start=datetime(2026, 3, 10, 15, 1, tzinfo=UTC), end=FINISHED_AT),
        Machine("/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/"
                "virtualmachines/vm-busy", "[bold]vm-busy[/]", "InProgress",
                start=datetime(2026, 3, 10, 15, 2, tzinfo=UTC), end=None),
    ), FINISHED_AT)


class MachinesApp(App[None]):
    def on_mount(self) -> None:
        self.push_screen(MachinesScreen(RUN, "Machines of mc", _fetch,
                                        format_time=lambda when: when.strftime("%H:%M:%SZ")))


async def test_a_machine_shows_its_own_finish_and_a_running_one_none() -> None:
    app = MachinesApp()
    async with app.run_test(size=(120, 20)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        assert table.row_count == 2
        rows = {str(table.get_cell_at((i, 0))): str(table.get_cell_at((i, 6)))
                for i in range(table.row_count)}
        assert rows["vm-done"] == "15:42:00Z"
        # Still running: no finish, not the schedule's window end.
        assert rows["[bold]vm-busy[/]"] == ""  # the name is shown literally, not as markup
