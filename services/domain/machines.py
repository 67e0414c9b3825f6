"""The machines of one run: ``maintenanceresources`` machine rows joined with
``patchinstallationresources`` (status, installed / failed / pending, reboot, window exceeded,
first error), in one paged query.

A machine that has not started has no patch row yet: its status comes from the machine-level
run row alone. Rows are untrusted and read defensively, as in :mod:`services.domain.runs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.domain.configs import folded, text_of
from services.domain.errors import ServiceError
from services.domain.model import Machine
from services.domain.runid import RunIdError, parse_run_id
from services.domain.runs import _count, error_text, parse_time

MACHINE_RUN_TYPE = "microsoft.maintenance/applyupdates"


def _kql_string(text: str) -> str:
    """A KQL double-quoted string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def machines_query(correlation_id: str) -> str:
    """The machines of one run. Raises ServiceError when ``correlation_id`` is no run id."""
    try:
        run_id = parse_run_id(correlation_id)
    except RunIdError as exc:
        raise ServiceError("bad_request", str(exc)) from None
    wanted = _kql_string(run_id.key)
    return f"""maintenanceresources
| where type =~ "{MACHINE_RUN_TYPE}"
| where tolower(tostring(properties.correlationId)) == {wanted}
| extend machineId = tolower(tostring(properties.resourceId))
| project id, machineId, properties
| join kind=leftouter (
    patchinstallationresources
    | where tolower(tostring(properties.maintenanceRunId)) == {wanted}
    | extend machineId = tolower(tostring(split(id, "/patchInstallationResults/")[0]))
    | project machineId, patch = properties
  ) on machineId
| order by machineId asc"""


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def machine_from_row(row: Mapping[str, Any]) -> Machine | None:
    """A Machine from one joined row; None when the row names no machine."""
    top = folded(row)
    props = folded(top.get("properties"))
    patch = folded(top.get("patch"))
    resource_id = text_of(props.get("resourceid")) or text_of(top.get("machineid"))
    if not resource_id:
        return None
    # The patch row knows the outcome; the run row only the scheduling status.
    status = text_of(patch.get("status")) or text_of(props.get("status")) or "Unknown"
    return Machine(
        resource_id=resource_id,
        name=resource_id.rstrip("/").rsplit("/", 1)[-1],
        status=status,
        installed=_count(patch.get("installedpatchcount")),
        failed=_count(patch.get("failedpatchcount")),
        pending=_count(patch.get("pendingpatchcount")),
        reboot=text_of(patch.get("rebootstatus")) or None,
        window_exceeded=_bool(patch.get("maintenancewindowexceeded")),
        error=error_text(patch) or error_text(props),
        correlation_id=text_of(props.get("correlationid")),
        start=parse_time(patch.get("startdatetime")) or parse_time(props.get("startdatetime")),
        end=parse_time(props.get("enddatetime")),
    )


