"""The machines of one run: ``maintenanceresources`` machine rows joined with
``patchinstallationresources`` (status, installed / failed / pending, reboot, window exceeded,
first error), in one paged query.

A machine that has not started has no patch row yet: its status comes from the machine-level
run row alone. Rows are untrusted and read defensively, as in :mod:`services.domain.runs`.

Times (docs/azure.md, "Resource Graph"): a machine-level ``applyupdates`` row carries the
*schedule's* start and end, not the machine's. A machine's own start is its patch row's
``startDateTime``, and its own finish the patch row's ``lastModifiedDateTime`` once that row's
status is terminal (None while it runs). Patch row ids are
``<machine id>/patchInstallationResults/<guid>`` in whatever casing Resource Graph returns:
both sides are lower-cased before splitting or joining.
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
#: The separator between a machine id and its patch result in a patch row's id (lower-case).
PATCH_RESULTS_SEGMENT = "/patchinstallationresults/"
#: Patch statuses after which a machine's part in the run is over.
TERMINAL_PATCH_STATUSES = frozenset({"succeeded", "failed", "completedwithwarnings",
                                     "completed", "cancelled", "canceled", "skipped"})


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
    | extend machineId = tostring(split(tolower(id), "{PATCH_RESULTS_SEGMENT}")[0])
    | project machineId, patchId = id, patch = properties
  ) on machineId
| order by machineId asc"""


def machine_id_of_patch(patch_id: str) -> str:
    """The (lower-case) machine id a patch row's id belongs to; "" when it names none.

    ``<machine id>/patchInstallationResults/<guid>`` comes back in any casing, so the id is
    lower-cased before it is split (the join key is lower-case on both sides).
    """
    lowered = patch_id.strip().lower()
    head, found, _ = lowered.partition(PATCH_RESULTS_SEGMENT)
    return head.rstrip("/") if found else ""


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
    resource_id = (text_of(props.get("resourceid")) or text_of(top.get("machineid"))
                   or machine_id_of_patch(text_of(top.get("patchid"))))
    if not resource_id:
        return None
    # The patch row knows the outcome; the run row only the scheduling status.
    patch_status = text_of(patch.get("status"))
    status = patch_status or text_of(props.get("status")) or "Unknown"
    # The machine-level run row's start/end are the schedule's: only the patch row says when
    # this machine started and, once its status is terminal, when it finished.
    finished = patch_status.lower() in TERMINAL_PATCH_STATUSES
    end = parse_time(patch.get("lastmodifieddatetime")) if finished else None
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
        start=parse_time(patch.get("startdatetime")),
        end=end,
    )


