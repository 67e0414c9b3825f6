"""The runs panel's End column says what `aumwatch runs` says (issue 22): the real end of a
run that ended, never its scheduled end; the scheduled end, dimmed, for a run still to end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.domain.model import Run
from tui.panels.runs import end_cell

CID = ("/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg/providers/"
       "Microsoft.Maintenance/maintenanceConfigurations/mc")
START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SCHEDULED_END = START + timedelta(hours=3)


def run(status: str, ended_at: datetime | None = None) -> Run:
    return Run(correlation_id=f"{CID}/providers/microsoft.maintenance/applyupdates/"
               "20260310120000", configuration_id=CID, configuration_name="mc",
               run_name="20260310120000", start=START, end=SCHEDULED_END, status=status,
               ended_at=ended_at)


def test_a_run_that_ended_shows_its_real_end() -> None:
    cell = end_cell(run("Succeeded", START + timedelta(minutes=47)), UTC)
    assert "12:47" in cell.plain and "15:00" not in cell.plain


def test_a_cancelled_run_with_no_known_end_never_shows_the_scheduled_end() -> None:
    assert end_cell(run("Cancelled"), UTC).plain == "–"


def test_a_run_still_to_end_shows_the_scheduled_end_dimmed() -> None:
    cell = end_cell(run("InProgress"), UTC)
    assert "15:00" in cell.plain and cell.style == "dim"
