"""Machine rows: each machine's own times, and patch rows joined whatever their casing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.domain.machines import machine_from_row, machine_id_of_patch, machines_query

VM = ("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1")
CID = ("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Maintenance/"
       "maintenanceConfigurations/cfg/providers/microsoft.maintenance/applyupdates/"
       "20260310150000")
T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
SCHEDULE_END = T + timedelta(hours=3)


def row(patch: dict[str, Any] | None) -> dict[str, Any]:
    """A joined row: the machine-level run row carries the schedule's start and end."""
    return {
        "id": f"{VM}/providers/microsoft.maintenance/applyupdates/20260310150000",
        "machineId": VM.lower(),
        "properties": {"resourceId": VM, "correlationId": CID, "status": "InProgress",
                       "startDateTime": "2026-03-10T15:00:00Z",
                       "endDateTime": "2026-03-10T18:00:00Z"},
        "patch": patch,
    }


@pytest.mark.parametrize("status", ["Succeeded", "Failed", "CompletedWithWarnings"])
def test_a_finished_machine_ends_at_its_patch_rows_last_change(status: str) -> None:
    machine = machine_from_row(row({"status": status,
                                    "startDateTime": "2026-03-10T15:04:00Z",
                                    "lastModifiedDateTime": "2026-03-10T15:21:30Z"}))
    assert machine is not None
    assert machine.end == T + timedelta(minutes=21, seconds=30) != SCHEDULE_END
    assert machine.start == T + timedelta(minutes=4)


@pytest.mark.parametrize("status", ["InProgress", "NotStarted"])
def test_a_running_machine_has_no_end_yet(status: str) -> None:
    machine = machine_from_row(row({"status": status, "startDateTime": "2026-03-10T15:04:00Z",
                                    "lastModifiedDateTime": "2026-03-10T15:10:00Z"}))
    assert machine is not None and machine.end is None
    assert machine.to_json()["end"] is None


def test_a_machine_without_a_patch_row_has_neither_start_nor_end() -> None:
    # The schedule's times on the machine-level row are not this machine's.
    machine = machine_from_row(row(None))
    assert machine is not None and machine.status == "InProgress"
    assert (machine.start, machine.end) == (None, None)


@pytest.mark.parametrize("patch_id", [
    f"{VM}/patchInstallationResults/1b2c3d4e-0000-4000-8000-000000000001",
    f"{VM.lower()}/patchinstallationresults/1b2c3d4e-0000-4000-8000-000000000001",
    f"{VM.upper()}/PATCHINSTALLATIONRESULTS/1B2C3D4E-0000-4000-8000-000000000001",
])
def test_a_patch_rows_machine_is_found_in_any_casing(patch_id: str) -> None:
    assert machine_id_of_patch(patch_id) == VM.lower()


def test_a_patch_id_without_the_segment_names_no_machine() -> None:
    assert machine_id_of_patch(f"{VM}/something/else") == ""


def test_the_query_lower_cases_patch_ids_before_splitting_them() -> None:
    query = machines_query(CID)
    assert 'split(tolower(id), "/patchinstallationresults/")' in query
    assert "patchInstallationResults/" not in query
