"""The real azure-mgmt-maintenance clients (sync and aio) against the stand-in's ARM side."""

from __future__ import annotations

from typing import Any

import pytest

from services.sim.world import World
from tests.integration.conftest import SUB

pytestmark = pytest.mark.integration


def config_object(name: str, rg: str = "rg-patch", sub: str = SUB) -> dict[str, Any]:
    """A maintenance configuration as ARM returns it."""
    return {
        "id": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Maintenance/"
              f"maintenanceConfigurations/{name}",
        "name": name,
        "type": "Microsoft.Maintenance/maintenanceConfigurations",
        "location": "westeurope",
        "tags": {},
        "properties": {
            "maintenanceScope": "InGuestPatch",
            "visibility": "Custom",
            "maintenanceWindow": {
                "startDateTime": "2026-01-01 02:00", "expirationDateTime": None,
                "duration": "03:00", "timeZone": "W. Europe Standard Time",
                "recurEvery": "Week Saturday",
            },
            "installPatches": {"rebootSetting": "IfRequired"},
            "extensionProperties": {"InGuestPatchMode": "User"},
        },
    }


def test_list_configurations_in_a_subscription(standin_world: World,
                                               maintenance_client: Any) -> None:
    for i in range(3):
        standin_world.add_configuration(config_object(f"cfg-{i}"))
    names = sorted(c.name for c in maintenance_client.maintenance_configurations.list())
    assert names == ["cfg-0", "cfg-1", "cfg-2"]
