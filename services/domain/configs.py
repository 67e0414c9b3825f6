"""Maintenance configurations: one Resource Graph query for the whole scope, paged.

Each configuration's next occurrences come from the schedule rules
(:mod:`services.domain.schedule`).
A configuration whose schedule does not parse is still listed, with the error. A single
configuration can be re-read authoritatively from Resource Manager (azure-mgmt-maintenance),
since Resource Graph can lag by minutes.

Rows are untrusted: any missing or wrongly typed field yields an empty value, never a crash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from services.domain.model import Configuration
from services.domain.runid import RunIdError, parse_configuration_id
from services.domain.schedule import ScheduleError, parse_window
from services.domain.window import Phase, WindowRules, run_window

CONFIG_TYPE = "microsoft.maintenance/maintenanceconfigurations"

#: All maintenance configurations in scope. ``id`` is projected (a non-dynamic column) so ARG
#: returns ``$skipToken``; ordered so pages are stable.
CONFIGS_QUERY = f"""resources
| where type =~ "{CONFIG_TYPE}"
| project id, name, resourceGroup, subscriptionId, tenantId, location, properties, tags
| order by id asc"""

#: How many upcoming occurrences each configuration carries.
DEFAULT_OCCURRENCES = 3
#: The maintenance scope of guest patching (Update Manager's schedules). Resource Graph holds
#: configurations and runs of other scopes too (Host, OSImage, Extension, SQLDB, ...), in the
#: same tables (docs/azure.md, "Resource Graph").
GUEST_PATCH_SCOPE = "InGuestPatch"


def folded(value: Any) -> dict[str, Any]:
    """A JSON object with lower-cased keys (ARG and ARM disagree on casing); {} if not one."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k).lower(): v for k, v in value.items()}


def text_of(value: Any) -> str:
    """A string field, or "" when missing or not a string/number."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def configuration_from_row(
    row: Mapping[str, Any], now: datetime, *, occurrences: int = DEFAULT_OCCURRENCES
) -> Configuration | None:
    """Build a Configuration from a Resource Graph row or an ARM object (None without an id).

    ``next_occurrences`` starts with the occurrence in progress at ``now``, if any, then the
    following ones.
    """
    top = folded(row)
    config_id = text_of(top.get("id")).strip()
    if not config_id:
        return None
    props = folded(top.get("properties"))
    window = folded(props.get("maintenancewindow")) or props  # ARM nests it; some shapes don't
    subscription, resource_group, name = "", "", text_of(top.get("name"))
    try:
        subscription, resource_group, parsed_name = parse_configuration_id(config_id)
        name = name or parsed_name
    except RunIdError:
        pass
    subscription = text_of(top.get("subscriptionid")) or subscription
    resource_group = text_of(top.get("resourcegroup")) or resource_group
    tags_raw = top.get("tags")
    tags = {str(k): text_of(v) for k, v in tags_raw.items()} if isinstance(tags_raw, Mapping) \
        else {}

    schedule_error: str | None = None
    description: str | None = None
    warnings: tuple[str, ...] = ()
    upcoming: list[tuple[datetime, datetime]] = []
    try:
        schedule = parse_window(window)
    except ScheduleError as exc:
        schedule_error = str(exc)
    else:
        description = schedule.describe()
        warnings = tuple(schedule.warnings())
        current = schedule.previous(now)
        if current is not None and current.end > now and occurrences > 0:
            upcoming.append((current.start, current.end))
        for occurrence in schedule.next(now, max(0, occurrences - len(upcoming))):
            if occurrence.start >= now:  # `previous` already gave one starting exactly before
                upcoming.append((occurrence.start, occurrence.end))

    expiration = text_of(window.get("expirationdatetime")) or None
    return Configuration(
        id=config_id,
        name=name or config_id.rsplit("/", 1)[-1],
        resource_group=resource_group,
        subscription_id=subscription,
        location=text_of(top.get("location")),
        scope=text_of(props.get("maintenancescope")),
        time_zone=text_of(window.get("timezone")),
        recur_every=text_of(window.get("recurevery")),
        duration=text_of(window.get("duration")),
        start_date_time=text_of(window.get("startdatetime")),
        expiration=expiration,
        tags=MappingProxyType(tags),
        schedule_error=schedule_error,
        schedule_description=description,
        schedule_warnings=warnings,
        tenant_id=text_of(top.get("tenantid")) or None,
        next_occurrences=tuple(upcoming),
    )


def in_patch_view(scope: str, include_other_scopes: bool = False) -> bool:
    """Whether something of maintenance scope ``scope`` belongs in a patch-related view:
    guest patching always; other scopes only when asked for. An unknown (empty) scope is
    kept, since hiding what cannot be classified would hide it for good."""
    if include_other_scopes or not scope.strip():
        return True
    return scope.strip().lower() == GUEST_PATCH_SCOPE.lower()


def configurations_in_view(configs: Sequence[Configuration],
                           include_other_scopes: bool = False) -> list[Configuration]:
    """The configurations a patch-related view shows (see :func:`in_patch_view`)."""
    return [c for c in configs if in_patch_view(c.scope, include_other_scopes)]


def next_run_phase(config: Configuration, now: datetime, rules: WindowRules) -> Phase | None:
    """The phase of the configuration's next (or current) run, None when it has none."""
    if not config.next_occurrences:
        return None
    start, end = config.next_occurrences[0]
    return run_window(start, end=end, rules=rules).phase(now)


def find_configurations(configs: Sequence[Configuration], name: str) -> list[Configuration]:
    """Configurations whose name (or id) matches ``name``, case-insensitively."""
    wanted = name.strip().lower()
    return [c for c in configs if c.name.lower() == wanted or c.id.lower() == wanted]
