"""The stand-in's state: subscriptions, configurations, machines, runs.

One :class:`World` is shared by the HTTPS server (which reads it for ARM and Resource Graph
answers and changes it on cancel) and the scenario engine (which moves runs through their
lifecycle on the stand-in's clock). All access goes through its lock; ``version`` grows on
every change to what the Resource Graph tables hold, so readers can cache them.

Run-level statuses follow ARM's ApplyUpdate ``status`` values: Pending (from T-40),
InProgress, Completed, Failed (every machine failed), Cancelled. Machine-level results follow
``patchinstallationresources``: NotStarted, InProgress, Failed, Succeeded,
CompletedWithWarnings.

Stances on how Azure behaves (docs/azure.md lists the facts behind them):

* Resource Graph rows (:meth:`World.tables`) carry ids as Resource Graph returns them: the
  ``id`` of every ``maintenanceresources`` row is lower-case; a patch row's id is
  ``<machine id, lower-case>/patchInstallationResults/<guid>`` (mixed casing, so a client
  must lower-case before splitting or joining). ``azure_ids=False`` keeps the ids as stored
  (for tests that compare ids literally).
* A machine-level ``microsoft.maintenance/applyupdates`` row carries the *schedule's* start
  and end; the machine's own finish is its patch row's ``lastModifiedDateTime``, set once the
  machine's status is terminal and null while it runs.
* The cancel PUT answers in the shape recorded from the real service: 200 with ``name`` the
  configuration's name, the id all lower-case, ``lastUpdateTime`` the zero date.
* The applyUpdates PUT is a create-or-update: on a run id the World does not know (under an
  existing configuration) it answers 201 and creates a *phantom* run, already Cancelled, that
  an ARM GET returns but Resource Graph never lists; the run the schedule really produces
  (same id or not) goes ahead and replaces it. Only the client's own guard (cancel only a run
  Azure has shown) keeps an operator from trusting such a 201.
* Editing a configuration (:meth:`World.edit_configuration`, the ARM PUT) less than 40
  minutes before a run's start cancels that run, with the platform's error text.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.domain.clock import Clock, iso_z
from services.domain.schedule import Schedule, ScheduleError, parse_schedule
from services.standin.arm import AZURITE_ACCOUNT, arm_error, storage_account_id
from services.standin.eventgrid import EventGrid
from services.standin.lag import STAMP
from services.standin.metrics import Metrics
from services.standin.roles import RoleAssignments

TENANT_ID = "72f988bf-0000-4000-8000-000000000000"
USER_CANCEL_MESSAGE = "Maintenance cancelled using cancellation API at {at}"
PLATFORM_CANCEL_MESSAGE = "Maintenance cancelled due to internal platform failure at {at}"
#: ``lastUpdateTime`` of the recorded real cancel answer (docs/azure.md "Cancel API").
ZERO_TIME = "0001-01-01T00:00:00"
#: An edit this close to a run's start (or closer) cancels that run.
EDIT_FREEZE = timedelta(minutes=40)
_RUN_SEGMENT = "/providers/microsoft.maintenance/applyupdates/"

RUN_TYPE = "microsoft.maintenance/maintenanceconfigurations/applyupdates"
MACHINE_RUN_TYPE = "microsoft.maintenance/applyupdates"
ASSIGNMENT_TYPE = "microsoft.maintenance/configurationassignments"
CONFIG_TYPE = "microsoft.maintenance/maintenanceconfigurations"
SYSTEM_TOPIC_TYPE = "microsoft.eventgrid/systemtopics"
STORAGE_ACCOUNT_TYPE = "microsoft.storage/storageaccounts"


def run_name_for(start: datetime) -> str:
    return start.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def start_from_run_name(name: str) -> datetime | None:
    """The UTC start encoded in a run name ``yyyyMMddHHmmss``; None when it is not one."""
    try:
        return datetime.strptime(name, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def patch_result_guid(correlation_id: str, machine_id: str) -> str:
    """The (stable) guid of a machine's patchInstallationResults row for one run."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{correlation_id.lower()}|{machine_id.lower()}"))


def configuration_schedule(arm_object: dict[str, Any]) -> Schedule:
    """The schedule of a configuration's ARM object (its ``properties.maintenanceWindow``);
    ScheduleError when the window is missing or does not parse."""
    props = arm_object.get("properties")
    window = props.get("maintenanceWindow") if isinstance(props, dict) else None
    if not isinstance(window, dict):
        raise ScheduleError("the configuration has no properties.maintenanceWindow")
    return parse_schedule(str(window.get("startDateTime") or ""),
                          str(window.get("timeZone") or ""),
                          str(window.get("recurEvery") or ""),
                          str(window.get("duration") or ""),
                          window.get("expirationDateTime"))


def parse_resource_id(resource_id: str) -> dict[str, str]:
    """Split ``/subscriptions/S/resourceGroups/G/...`` into its parts (lower-case keys)."""
    parts = [p for p in resource_id.split("/") if p]
    out: dict[str, str] = {}
    for key, value in zip(parts[0::2], parts[1::2], strict=False):
        out.setdefault(key.lower(), value)
    return out


#: Azure's assessment classification keys (``availablePatchCountByClassification``).
ASSESSMENT_CLASSIFICATIONS = ("critical", "security", "updateRollup", "featurePack",
                              "servicePack", "definition", "tools", "updates", "other")


def scope_filter(scope: SimScope) -> dict[str, Any]:
    """A dynamic scope's ``properties.filter`` as recorded: every key present, null where
    unset."""
    return {
        "resourceTypes": list(scope.resource_types) or None,
        "resourceGroups": list(scope.resource_groups) or None,
        "osTypes": list(scope.os_types) or None,
        "locations": list(scope.locations) or None,
        "tagSettings": ({"tags": {k: list(v) for k, v in scope.tags.items()},
                         "filterOperator": scope.tag_operator} if scope.tags else None),
    }


def configuration_object(subscription_id: str, resource_group: str, name: str,
                         window: dict[str, Any], *, location: str = "westeurope",
                         tags: dict[str, Any] | None = None) -> dict[str, Any]:
    """A maintenance configuration (in-guest patching) as ARM returns it; ``window`` is its
    ``maintenanceWindow`` (startDateTime, expirationDateTime, duration, timeZone,
    recurEvery)."""
    return {
        "id": f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/"
              f"Microsoft.Maintenance/maintenanceConfigurations/{name}",
        "name": name,
        "type": "Microsoft.Maintenance/maintenanceConfigurations",
        "location": location,
        "tags": dict(tags or {}),
        "properties": {
            "namespace": "Microsoft.Maintenance",
            "extensionProperties": {"InGuestPatchMode": "User"},
            "maintenanceScope": "InGuestPatch",
            "maintenanceWindow": window,
            "visibility": "Custom",
            "installPatches": {
                "rebootSetting": "IfRequired",
                "windowsParameters": {"classificationsToInclude": ["Critical", "Security"],
                                      "kbNumbersToExclude": [], "kbNumbersToInclude": []},
                "linuxParameters": {"classificationsToInclude": ["Critical", "Security"],
                                    "packageNameMasksToExclude": [],
                                    "packageNameMasksToInclude": []},
            },
        },
    }


@dataclass
class SimMachine:
    id: str
    name: str
    subscription_id: str
    resource_group: str
    location: str = "westeurope"
    os_type: str = "Linux"
    arc: bool = False  # Azure Arc machine (microsoft.hybridcompute/machines) vs Azure VM
    # Pre-flight state (issue 18; services/standin/README.md "Pre-flight"):
    power: str = "running"  # running | stopped | deallocated (VMs)
    arc_status: str | None = "Connected"  # Connected | Disconnected | Expired | None (Arc)
    patch_mode: str = "AutomaticByPlatform"  # VMs; Arc machines have no patchSettings
    bypass: bool = True  # bypassPlatformSafetyChecksOnUserSchedule
    extension: str = "Succeeded"  # the patch extension's state, or "missing"
    created: datetime | None = None  # None: long ago
    pending: dict[str, int] = field(default_factory=dict)  # classification -> count
    assessed: datetime | None = None  # the latest assessment; None: never assessed
    reboot_pending: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    exists: bool = True  # False: deleted, only its assignments remain

    @property
    def type(self) -> str:
        if self.arc:
            return "microsoft.hybridcompute/machines"
        return "microsoft.compute/virtualmachines"

    @property
    def customer_managed(self) -> bool:
        """Arc machines need nothing; a VM needs AutomaticByPlatform + bypass true."""
        return self.arc or (self.patch_mode.lower() == "automaticbyplatform" and self.bypass)

    def unreachable(self) -> str | None:
        """Why a run's installation fails on the machine before it starts (off, disconnected,
        a broken patch extension), or None."""
        if not self.arc and self.power.lower() != "running":
            return f"The VM is not running (PowerState/{self.power.lower()})."
        if self.arc and (self.arc_status or "Connected").lower() != "connected":
            return f"The Arc machine is {self.arc_status}: the agent cannot be reached."
        if self.extension.lower() != "succeeded":
            return f"The patch extension is {self.extension}: no update was installed."
        return None


@dataclass(frozen=True)
class SimScope:
    """A dynamic-scope assignment: one per configuration and subscription."""

    configuration_id: str
    subscription_id: str
    resource_groups: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    os_types: tuple[str, ...] = ()
    resource_types: tuple[str, ...] = ()
    tags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tag_operator: str = "All"

    def selects(self, m: SimMachine) -> bool:
        """Whether the scope takes ``m`` now (every list optional; case ignored)."""
        def ok(value: str, allowed: tuple[str, ...]) -> bool:
            return not allowed or value.lower().replace(" ", "") in {
                a.lower().replace(" ", "") for a in allowed}

        if not (m.exists and m.subscription_id.lower() == self.subscription_id.lower()
                and ok(m.resource_group, self.resource_groups) and ok(m.location, self.locations)
                and ok(m.os_type, self.os_types) and ok(m.type, self.resource_types)):
            return False
        if not self.tags:
            return True
        lowered = {k.lower(): v.lower() for k, v in m.tags.items()}
        found = [lowered.get(k.lower()) in {v.lower() for v in vs} for k, vs in self.tags.items()]
        return any(found) if self.tag_operator.lower() == "any" else all(found)


@dataclass
class MachineResult:
    status: str = "NotStarted"
    installed: int = 0
    failed: int = 0
    pending: int = 0
    excluded: int = 0
    reboot_status: str = "NotNeeded"
    window_exceeded: bool = False
    error_code: str | None = None
    error_message: str | None = None
    started: datetime | None = None
    ended: datetime | None = None


@dataclass
class SimRun:
    correlation_id: str
    configuration_id: str
    start: datetime
    end: datetime
    status: str = "Pending"
    error_message: str | None = None
    cancelled_by: str | None = None  # "user" | "platform"
    machine_ids: list[str] = field(default_factory=list)
    results: dict[str, MachineResult] = field(default_factory=dict)
    updated: datetime | None = None
    phantom: bool = False  # created by a PUT on an unknown id: ARM sees it, Resource Graph not

    @property
    def name(self) -> str:
        return self.correlation_id.rsplit("/", 1)[-1]

    @property
    def finished(self) -> bool:
        return self.status in ("Completed", "Failed", "Cancelled")


@dataclass(frozen=True)
class CancelOutcome:
    """What the ARM cancel PUT answers: an HTTP status and a JSON body."""

    status: int
    body: dict[str, Any]


class World:
    """Mutable stand-in state behind one lock."""

    def __init__(
        self,
        clock: Clock,
        *,
        cancel_opens_before: timedelta = timedelta(minutes=40),
        cancel_closes_before: timedelta = timedelta(minutes=10),
        tenant_id: str = TENANT_ID,
        azure_ids: bool = True,
    ) -> None:
        self.clock = clock
        self.azure_ids = azure_ids
        self.cancel_opens_before = cancel_opens_before
        self.cancel_closes_before = cancel_closes_before
        self.tenant_id = tenant_id
        self.lock = threading.RLock()
        self.version = 0
        self.subscriptions: list[str] = []
        #: Issue 19: the tenant owning each subscription (lower case); the rest are
        #: ``tenant_id``'s. Rows carry their subscription's owner as ``tenantId``.
        self.subscription_tenants: dict[str, str] = {}
        self._configs: dict[str, dict[str, Any]] = {}
        self._machines: dict[str, SimMachine] = {}
        self._assignments: dict[str, list[str]] = {}  # config id (lower) -> machine ids
        self._scopes: dict[tuple[str, str], SimScope] = {}  # (config id, sub) lower -> scope
        self._runs: dict[str, SimRun] = {}
        # When each configuration, machine and assignment last changed (Resource Graph lag
        # counts from there; a run's own stamp is its ``updated``).
        self._stamps: dict[str, datetime] = {}
        self._storage: dict[str, tuple[str, str]] = {}  # account id (lower) -> (id, location)
        #: When this World replays a capture (services/standin/replay.py): the moment it was
        #: captured, which its clock started from. None for a simulation.
        self.replay_of: datetime | None = None
        #: The Azure services the World plays besides Maintenance and Resource Graph: role
        #: assignments, Azure Monitor metrics, Event Grid (topics and subscriptions).
        self.roles = RoleAssignments(self)
        self.metrics = Metrics(self)
        self.eventgrid = EventGrid(self, roles=self.roles, metrics=self.metrics)
        self.metrics.resolve = self.eventgrid.metric_resource

    # -- changes -------------------------------------------------------------------------
    @contextmanager
    def mutate(self) -> Iterator[World]:
        """Hold the lock for a change and bump ``version`` afterwards."""
        with self.lock:
            yield self
            self.version += 1

    def add_subscription(self, subscription_id: str) -> None:
        with self.mutate():
            if subscription_id.lower() not in (s.lower() for s in self.subscriptions):
                self.subscriptions.append(subscription_id)

    def add_configuration(self, arm_object: dict[str, Any]) -> None:
        """Add or replace a configuration given as its ARM JSON object (``id`` required)."""
        with self.mutate():
            self._configs[arm_object["id"].lower()] = arm_object
            self._stamps[arm_object["id"].lower()] = self.clock.now()

    def edit_configuration(self, arm_object: dict[str, Any]) -> list[SimRun]:
        """Replace a configuration as an ARM PUT does, and apply Azure's rule for edits: a run
        of it that starts within :data:`EDIT_FREEZE` from now (and has not started) is
        cancelled with the platform's message. Returns the runs it cancelled. The scenario
        engine notices the new object and follows the new schedule from then on."""
        with self.mutate():
            now = self.clock.now()
            cfg_id = arm_object["id"].lower()
            self._configs[cfg_id] = arm_object
            self._stamps[cfg_id] = now
            cancelled = []
            for run in self._runs.values():
                if (run.configuration_id.lower() == cfg_id and not run.finished
                        and run.status == "Pending" and now < run.start
                        and run.start - now < EDIT_FREEZE):
                    run.status, run.cancelled_by = "Cancelled", "platform"
                    run.error_message = PLATFORM_CANCEL_MESSAGE.format(at=iso_z(now))
                    run.updated = now
                    cancelled.append(run)
            return cancelled

    def add_storage_account(self, subscription_id: str, resource_group: str,
                            name: str = AZURITE_ACCOUNT, *, location: str = "westeurope",
                            ) -> str:
        """Add a storage account (Azurite's ``devstoreaccount1`` by default: the one the
        stand-in delivers events to); returns its resource id."""
        rid = storage_account_id(subscription_id, resource_group, name)
        with self.mutate():
            self._storage[rid.lower()] = (rid, location)
            self._stamps[rid.lower()] = self.clock.now()
        return rid

    def get_storage_account(self, account_id: str) -> str | None:
        """The stored id of a storage account (any casing of its id), or None."""
        with self.lock:
            found = self._storage.get(account_id.lower().rstrip("/"))
            return found[0] if found else None

    def storage_accounts(self) -> list[str]:
        with self.lock:
            return sorted(rid for rid, _ in self._storage.values())

    def add_machine(self, machine: SimMachine) -> None:
        with self.mutate():
            self._machines[machine.id.lower()] = machine
            self._stamps[machine.id.lower()] = self.clock.now()

    def add_scope(self, scope: SimScope) -> None:
        """Add a dynamic-scope assignment (replacing the configuration's scope of that
        subscription)."""
        with self.mutate():
            key = (scope.configuration_id.lower(), scope.subscription_id.lower())
            self._scopes[key] = scope
            self._stamps["scope|" + "|".join(key)] = self.clock.now()

    def assign(self, machine_id: str, configuration_id: str) -> None:
        with self.mutate():
            ids = self._assignments.setdefault(configuration_id.lower(), [])
            if machine_id not in ids:
                ids.append(machine_id)
                self._stamps[f"{machine_id.lower()}|{configuration_id.lower()}"] = \
                    self.clock.now()

    def upsert_run(self, run: SimRun) -> None:
        with self.mutate():
            run.updated = self.clock.now()
            self._runs[run.correlation_id.lower()] = run

    # -- reads ---------------------------------------------------------------------------
    def configurations(
        self, subscription_id: str | None = None, resource_group: str | None = None
    ) -> list[dict[str, Any]]:
        with self.lock:
            out = []
            for cfg in self._configs.values():
                parts = parse_resource_id(cfg["id"])
                sub = parts.get("subscriptions", "").lower()
                group = parts.get("resourcegroups", "").lower()
                if subscription_id and sub != subscription_id.lower():
                    continue
                if resource_group and group != resource_group.lower():
                    continue
                out.append(cfg)
            return sorted(out, key=lambda c: c["id"].lower())

    def get_configuration(self, configuration_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self._configs.get(configuration_id.lower())

    def configuration_changed_at(self, configuration_id: str) -> datetime | None:
        """When the configuration was last added or replaced (the World's clock)."""
        with self.lock:
            return self._stamps.get(configuration_id.lower())

    def machines_of(self, configuration_id: str) -> list[SimMachine]:
        """The machines a run of the configuration takes now: its static assignments (that
        still exist) plus what its dynamic scopes select now."""
        with self.lock:
            ids = self._assignments.get(configuration_id.lower(), [])
            out = {i.lower(): self._machines[i.lower()] for i in ids
                   if i.lower() in self._machines and self._machines[i.lower()].exists}
            for (cfg_id, _), scope in self._scopes.items():
                if cfg_id != configuration_id.lower():
                    continue
                for key, m in self._machines.items():
                    if key not in out and scope.selects(m):
                        out[key] = m
            return list(out.values())

    def get_run(self, correlation_id: str) -> SimRun | None:
        with self.lock:
            return self._runs.get(correlation_id.lower())

    def runs(self) -> list[SimRun]:
        with self.lock:
            return list(self._runs.values())

    # -- the cancel rule, as the service enforces it ------------------------------------
    def cancel(self, correlation_id: str) -> CancelOutcome:
        """Apply a user cancel to a run, enforcing the service-side window."""
        with self.lock:
            now = self.clock.now()
            run = self._runs.get(correlation_id.lower())
            if run is None:
                cfg_id = correlation_id.lower().split(_RUN_SEGMENT)[0]
                cfg = self._configs.get(cfg_id)
                if cfg is None:
                    return CancelOutcome(404, arm_error(
                        "ResourceNotFound",
                        f"The maintenance configuration for '{correlation_id}' was not found."))
                # A create-or-update: an unknown id is created, and the answer is a success.
                phantom = self._phantom(cfg, correlation_id, now)
                self._runs[phantom.correlation_id.lower()] = phantom
                self.version += 1
                return CancelOutcome(201, self.cancel_answer(phantom))
            if run.status == "Cancelled":
                return CancelOutcome(200, self.cancel_answer(run))
            if run.finished or now >= run.start:
                return CancelOutcome(409, arm_error(
                    "MaintenanceAlreadyStarted",
                    f"Maintenance run {run.name} has already started or finished "
                    f"(status {run.status}) and can no longer be cancelled."))
            opens = run.start - self.cancel_opens_before
            closes = run.start - self.cancel_closes_before
            if now < opens or now >= closes:
                return CancelOutcome(400, arm_error(
                    "CancellationWindowClosed",
                    f"Maintenance run {run.name} can be cancelled only between {iso_z(opens)} "
                    f"and {iso_z(closes)}; it is {iso_z(now)}."))
            run.status = "Cancelled"
            run.cancelled_by = "user"
            run.error_message = USER_CANCEL_MESSAGE.format(at=iso_z(now))
            run.updated = now
            self.version += 1
            return CancelOutcome(200, self.cancel_answer(run))

    def _phantom(self, cfg: dict[str, Any], correlation_id: str, now: datetime) -> SimRun:
        name = correlation_id.rsplit("/", 1)[-1]
        start = start_from_run_name(name) or now
        duration = timedelta(0)
        window = cfg.get("properties", {}).get("maintenanceWindow", {})
        hours, _, minutes = str(window.get("duration") or "").partition(":")
        if hours.isdigit() and minutes.isdigit():
            duration = timedelta(hours=int(hours), minutes=int(minutes))
        return SimRun(correlation_id=f"{cfg['id']}/providers/Microsoft.Maintenance/"
                                     f"applyUpdates/{name}",
                      configuration_id=cfg["id"], start=start, end=start + duration,
                      status="Cancelled", cancelled_by="user",
                      error_message=USER_CANCEL_MESSAGE.format(at=iso_z(now)),
                      updated=now, phantom=True)

    def cancel_answer(self, run: SimRun) -> dict[str, Any]:
        """The body of a successful cancel PUT, in the shape recorded from the real service
        (docs/azure.md "Cancel API"): the configuration's name, the run id lower-case, the
        zero ``lastUpdateTime``."""
        cfg = self._configs.get(run.configuration_id.lower())
        cfg_name = cfg["name"] if cfg else run.configuration_id.rsplit("/", 1)[-1]
        return {
            "properties": {"status": run.status, "resourceId": run.configuration_id,
                           "lastUpdateTime": ZERO_TIME},
            "id": run.correlation_id.lower(),
            "name": cfg_name,
            "type": "Microsoft.Maintenance/applyUpdates",
        }

    def apply_update_object(self, run: SimRun) -> dict[str, Any]:
        """The ARM object for a run, as ``GET .../applyUpdates/{name}`` returns it."""
        return {
            "id": run.correlation_id,
            "name": run.name,
            "type": "Microsoft.Maintenance/applyUpdates",
            "properties": {
                "status": run.status,
                "resourceId": run.configuration_id,
                "lastUpdateTime": iso_z(run.updated or run.start),
                "startDateTime": iso_z(run.start),
                "endDateTime": iso_z(run.end),
                **({"error": {"message": run.error_message}} if run.error_message else {}),
            },
        }

    # -- Resource Graph tables -----------------------------------------------------------
    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Rows of ``resources``, ``maintenanceresources`` and ``patchinstallationresources``,
        as they are now (Resource Graph's lag is applied by the server, see
        :mod:`services.standin.lag`).

        Each row has ARG's common columns (id, name, type, tenantId, location, resourceGroup,
        subscriptionId, properties, tags); ``properties`` and ``tags`` are JSON objects.
        """
        return self._tables(stamped=False)

    def stamped_tables(self) -> dict[str, list[dict[str, Any]]]:
        """:meth:`tables` with each row's last change time under ``lag.STAMP`` (a datetime,
        or None when unknown)."""
        return self._tables(stamped=True)

    def _tables(self, *, stamped: bool) -> dict[str, list[dict[str, Any]]]:
        def stamp(row: dict[str, Any], at: datetime | None) -> dict[str, Any]:
            if stamped:
                row[STAMP] = at
            return row

        with self.lock:
            resources: list[dict[str, Any]] = []
            maint: list[dict[str, Any]] = []
            patches: list[dict[str, Any]] = []
            for cfg in self._configs.values():
                resources.append(stamp(self._row(
                    cfg["id"], CONFIG_TYPE, cfg.get("location", ""), cfg.get("properties", {}),
                    cfg.get("tags", {}), name=cfg.get("name")),
                    self._stamps.get(cfg["id"].lower())))
            for topic, props in self.eventgrid.graph_rows():
                row = self._row(topic.id, SYSTEM_TOPIC_TYPE, topic.location, props,
                                dict(topic.tags), name=topic.name)
                row["identity"] = dict(topic.identity) if topic.identity else None
                resources.append(stamp(row, topic.changed))
            for rid, location in self._storage.values():
                row = self._row(rid, STORAGE_ACCOUNT_TYPE, location, {
                    "provisioningState": "Succeeded", "primaryLocation": location,
                    "statusOfPrimary": "available", "minimumTlsVersion": "TLS1_2",
                    "primaryEndpoints": {
                        kind: f"https://{rid.rsplit('/', 1)[-1]}.{kind}.core.windows.net/"
                        for kind in ("blob", "queue", "table", "file")},
                }, {})
                row["kind"] = "StorageV2"
                row["sku"] = {"name": "Standard_LRS", "tier": "Standard"}
                resources.append(stamp(row, self._stamps.get(rid.lower())))
            assessments: list[dict[str, Any]] = []
            for m in self._machines.values():
                if not m.exists:
                    continue
                at = self._stamps.get(m.id.lower())
                resources.append(stamp(self._row(m.id, m.type, m.location,
                                                 self._machine_properties(m), dict(m.tags),
                                                 name=m.name), at))
                if m.extension.lower() != "missing":
                    resources.append(stamp(self._extension_row(m), at))
                if m.assessed is not None:
                    assessments.append(stamp(self._assessment_row(m), at))
            for (cfg_id, sub), scope in self._scopes.items():
                scoped_cfg = self._configs.get(cfg_id)
                if scoped_cfg is None:
                    continue
                aid = (f"/subscriptions/{scope.subscription_id}/providers/"
                       f"Microsoft.Maintenance/configurationAssignments/{scoped_cfg['name']}")
                row = self._row(aid, ASSIGNMENT_TYPE, "global", {
                    "maintenanceConfigurationId": scoped_cfg["id"],
                    "resourceId": f"/subscriptions/{scope.subscription_id}",
                    "filter": scope_filter(scope)}, {})
                row["subscriptionId"] = scope.subscription_id
                maint.append(stamp(row, self._stamps.get(f"scope|{cfg_id}|{sub}")))
            for cfg_id, machine_ids in self._assignments.items():
                assigned_cfg = self._configs.get(cfg_id)
                if assigned_cfg is None:
                    continue
                for mid in machine_ids:
                    assigned = self._machines.get(mid.lower())
                    if assigned is None:
                        continue
                    aid = (f"{assigned.id}/providers/Microsoft.Maintenance/"
                           f"configurationAssignments/{assigned_cfg['name']}")
                    maint.append(stamp(self._row(aid, ASSIGNMENT_TYPE, assigned.location, {
                        "maintenanceConfigurationId": assigned_cfg["id"],
                        "resourceId": assigned.id}, {}),
                        self._stamps.get(f"{mid.lower()}|{cfg_id}")))
            for run in self._runs.values():
                if run.phantom:
                    continue
                maint.append(stamp(self._run_row(run), run.updated))
                for mid in run.machine_ids:
                    target = self._machines.get(mid.lower())
                    res = run.results.get(mid) or MachineResult()
                    maint.append(stamp(self._machine_run_row(run, mid, target, res),
                                       run.updated))
                    if target is not None and res.status != "NotStarted":
                        patches.append(stamp(self._patch_row(run, target, res), run.updated))
            if self.azure_ids:
                for row in maint:
                    row["id"] = row["id"].lower()
            return {
                "resources": resources,
                "maintenanceresources": maint,
                "patchinstallationresources": patches,
                "patchassessmentresources": assessments,
            }

    @staticmethod
    def _machine_properties(m: SimMachine) -> dict[str, Any]:
        """A machine's ``properties`` in the real shapes: a VM's osProfile patch settings,
        storage profile, instance view power state, timeCreated; an Arc machine's lower-case
        osType and agent status, and no patchSettings."""
        created = iso_z(m.created) if m.created is not None else "2024-01-15T09:30:00Z"
        if m.arc:
            props: dict[str, Any] = {"osType": m.os_type.lower(), "osName": m.os_type.lower(),
                                     "provisioningState": "Succeeded", "agentVersion": "1.48"}
            if m.arc_status is not None:
                props["status"] = m.arc_status
            return props
        conf = "windowsConfiguration" if m.os_type == "Windows" else "linuxConfiguration"
        return {
            "provisioningState": "Succeeded",
            "timeCreated": created,
            "storageProfile": {"osDisk": {"osType": m.os_type}},
            "osProfile": {"computerName": m.name, conf: {"patchSettings": {
                "patchMode": m.patch_mode, "assessmentMode": "AutomaticByPlatform",
                "automaticByPlatformSettings": {
                    "bypassPlatformSafetyChecksOnUserSchedule": m.bypass}}}},
            "extended": {"instanceView": {"powerState": {
                "code": f"PowerState/{m.power.lower()}",
                "displayStatus": f"VM {m.power.lower()}"}}},
        }

    def _extension_row(self, m: SimMachine) -> dict[str, Any]:
        name = "WindowsPatchExtension" if m.os_type == "Windows" else "LinuxPatchExtension"
        return self._row(f"{m.id}/extensions/{name}", f"{m.type}/extensions", m.location, {
            "publisher": "Microsoft.CPlat.Core", "type": name,
            "provisioningState": m.extension}, {}, name=name)

    def _assessment_row(self, m: SimMachine) -> dict[str, Any]:
        counts = {key: int(m.pending.get(key, 0)) for key in ASSESSMENT_CLASSIFICATIONS}
        rid = f"{m.id.lower() if self.azure_ids else m.id}/patchAssessmentResults/latest"
        return self._row(rid, f"{m.type}/patchassessmentresults", m.location, {
            "status": "Succeeded", "startedBy": "Platform", "osType": m.os_type,
            "rebootPending": m.reboot_pending,
            "lastModifiedDateTime": iso_z(m.assessed),
            "startDateTime": iso_z(m.assessed),
            "availablePatchCountByClassification": counts,
        }, {}, name="latest")

    def _row(self, rid: str, rtype: str, location: str, props: dict[str, Any],
             tags: dict[str, Any], *, name: str | None = None) -> dict[str, Any]:
        parts = parse_resource_id(rid)
        return {
            "id": rid,
            "name": name or rid.rsplit("/", 1)[-1],
            "type": rtype,
            "tenantId": self.subscription_tenants.get(
                parts.get("subscriptions", "").lower(), self.tenant_id),
            "location": location,
            "resourceGroup": parts.get("resourcegroups", "").lower(),
            "subscriptionId": parts.get("subscriptions", ""),
            "properties": props,
            "tags": tags,
        }

    def _run_row(self, run: SimRun) -> dict[str, Any]:
        results = [run.results.get(mid) or MachineResult() for mid in run.machine_ids]
        summary = {
            "total": len(results),
            "succeeded": sum(r.status in ("Succeeded", "CompletedWithWarnings") for r in results),
            "failed": sum(r.status == "Failed" for r in results),
            "inProgress": sum(r.status == "InProgress" for r in results),
            "notStarted": sum(r.status == "NotStarted" for r in results),
        }
        props: dict[str, Any] = {
            "correlationId": run.correlation_id,
            "maintenanceConfigurationId": run.configuration_id,
            "status": run.status,
            "startDateTime": iso_z(run.start),
            "endDateTime": iso_z(run.end),
            "lastUpdateTime": iso_z(run.updated),
            "resourceUpdateSummary": summary,
        }
        if run.error_message:
            props["error"] = {"message": run.error_message}
        row = self._row(run.correlation_id, RUN_TYPE, "", props, {}, name=run.name)
        return row

    def _machine_run_row(self, run: SimRun, mid: str, m: SimMachine | None,
                         res: MachineResult) -> dict[str, Any]:
        rid = f"{mid}/providers/microsoft.maintenance/applyupdates/{run.name}"
        status = {"NotStarted": "Pending", "Succeeded": "Completed",
                  "CompletedWithWarnings": "Completed"}.get(res.status, res.status)
        if run.status == "Cancelled" and res.status == "NotStarted":
            status = "Cancelled"
        props = {
            "correlationId": run.correlation_id,
            "maintenanceConfigurationId": run.configuration_id,
            "resourceId": mid,
            "status": status,
            # The schedule's times, not the machine's (docs/azure.md "Resource Graph").
            "startDateTime": iso_z(run.start),
            "endDateTime": iso_z(run.end),
        }
        return self._row(rid, MACHINE_RUN_TYPE, m.location if m else "", props, {}, name=run.name)

    def _patch_row(self, run: SimRun, m: SimMachine, res: MachineResult) -> dict[str, Any]:
        guid = patch_result_guid(run.correlation_id, m.id)
        machine_part = m.id.lower() if self.azure_ids else m.id
        rid = f"{machine_part}/patchInstallationResults/{guid}"
        terminal = res.status in ("Succeeded", "Failed", "CompletedWithWarnings")
        props: dict[str, Any] = {
            "status": res.status,
            "startedBy": "Platform",
            "maintenanceRunId": run.correlation_id,
            "installedPatchCount": res.installed,
            "failedPatchCount": res.failed,
            "pendingPatchCount": res.pending,
            "excludedPatchCount": res.excluded,
            "maintenanceWindowExceeded": res.window_exceeded,
            "rebootStatus": res.reboot_status,
            "osType": m.os_type,
            "startDateTime": iso_z(res.started),
            # The machine's own finish once it is done; null while it runs.
            "lastModifiedDateTime": iso_z(res.ended) if terminal else None,
        }
        if res.error_message:
            props["errorDetails"] = {"code": res.error_code or "PatchFailed",
                                     "message": res.error_message, "details": []}
        return self._row(rid, f"{m.type}/patchinstallationresults", m.location, props, {},
                         name=guid)
