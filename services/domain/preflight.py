"""Pre-flight: who a configuration's next run will patch, and what will go wrong (issue 18).

Pure rules over plain data: Resource Graph rows in, a :class:`Preflight` per configuration out.
No I/O; "now" is passed in. The facts and their sources are in docs/azure.md ("Pre-flight").

* The roster: the configuration's static assignments (one machine each) plus every candidate
  machine (Azure VMs and Arc machines) that one of its dynamic scopes matches. A dynamic scope
  matches on subscription, resource groups, locations, OS types, resource types and tags; an
  empty list is no constraint; every comparison ignores case. Tags ``All``: every listed key
  has one of its values; ``Any``: at least one does (a stance: the docs do not spell it out).
* Risks (:data:`RISK_CODES`), each with a one-line message and the fix.
* Window fit: the pending updates of the classifications the configuration installs, times
  the per-update minutes (service packs their own), plus the reboot reserve, against the
  window; the machine's own past runs (minutes per installed update over 30 days of results)
  replace the constants when they exist. The estimate says where it came from.
* Predicted against actual: once the run's machine rows exist, which predicted machines are
  missing and which machines in it were not predicted.

Rows are untrusted: a missing or wrongly typed field yields "unknown", never a crash and
never a risk that the data does not show.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from services.domain.configs import folded, text_of
from services.domain.model import Configuration
from services.domain.runid import RunIdError, correlation_id_for, parse_run_id
from services.domain.runs import parse_time

VM_TYPE = "microsoft.compute/virtualmachines"
ARC_TYPE = "microsoft.hybridcompute/machines"
MACHINE_TYPES = (VM_TYPE, ARC_TYPE)
ASSIGNMENT_TYPE = "microsoft.maintenance/configurationassignments"
MACHINE_RUN_TYPE = "microsoft.maintenance/applyupdates"
#: The patch extension's names (Azure VMs and Arc machines; lower-case).
PATCH_EXTENSIONS = ("windowspatchextension", "linuxpatchextension", "linuxosupdateextension")
#: The summary row of a machine's latest assessment ends with this (lower-case).
ASSESSMENT_SEGMENT = "/patchassessmentresults/latest"
PATCH_RESULTS_SEGMENT = "/patchinstallationresults/"

#: Every risk code, in the order they are listed.
RISK_CODES = ("deleted", "powered-off", "arc-disconnected", "orchestration", "extension",
              "new-vm", "no-assessment", "stale-assessment", "reboot-pending", "window-fit",
              "conflict")
#: Azure's assessment classification keys (``availablePatchCountByClassification``).
CLASSIFICATIONS = ("critical", "security", "updateRollup", "featurePack", "servicePack",
                   "definition", "tools", "updates", "other")
#: A machine's machines and dynamic scopes are frozen this long before the start.
FREEZE_BEFORE = timedelta(minutes=40)
#: A VM created less than this before the start may miss the trigger (scheduled-patching).
NEW_VM_BEFORE = timedelta(minutes=15)


# -- queries (one paged query per kind; ids projected so Resource Graph pages them) ----------
CANDIDATES_QUERY = f"""resources
| where type =~ "{VM_TYPE}" or type =~ "{ARC_TYPE}"
    or ((type =~ "{VM_TYPE}/extensions" or type =~ "{ARC_TYPE}/extensions")
        and tolower(name) in ("{'", "'.join(PATCH_EXTENSIONS)}"))
| project id, name, type, location, resourceGroup, subscriptionId, properties, tags
| order by id asc"""

ASSIGNMENTS_QUERY = f"""maintenanceresources
| where type =~ "{ASSIGNMENT_TYPE}"
| project id, location, properties
| order by id asc"""

ASSESSMENTS_QUERY = """patchassessmentresources
| where tolower(id) endswith "/patchassessmentresults/latest"
| project id, properties
| order by id asc"""

DURATIONS_QUERY = """patchinstallationresources
| where todatetime(properties.lastModifiedDateTime) > ago(30d)
| where tostring(properties.status) in~ ("Succeeded", "Failed", "CompletedWithWarnings")
| project id, properties
| order by id asc"""

#: Machine rows of runs that may be current (a guest-patching window is at most 3:55 long).
RUN_MACHINES_QUERY = f"""maintenanceresources
| where type =~ "{MACHINE_RUN_TYPE}"
| where todatetime(properties.startDateTime) > ago(6h)
| project id, properties
| order by id asc"""


# -- settings ------------------------------------------------------------------------------
@dataclass(frozen=True)
class FitRules:
    """The window-fit constants (workflow-update-manager; the docs disagree, so settings) and
    the assessment's age limit."""

    minutes_per_update: float = 10.0
    minutes_per_service_pack: float = 15.0
    reboot_windows: float = 10.0
    reboot_linux: float = 15.0
    stale_after: timedelta = timedelta(days=2)


# -- inputs --------------------------------------------------------------------------------
@dataclass(frozen=True)
class DynamicScope:
    """One dynamic-scope assignment of a configuration (one per subscription)."""

    configuration_id: str
    subscription: str
    resource_groups: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    os_types: tuple[str, ...] = ()
    resource_types: tuple[str, ...] = ()
    tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    tag_operator: str = "All"

    @cached_property
    def _folded(self) -> tuple[frozenset[str], ...]:
        """The lists lower-cased once (locations without spaces: "West Europe")."""
        return (frozenset(g.lower() for g in self.resource_groups),
                frozenset(_squash(x) for x in self.locations),
                frozenset(o.lower() for o in self.os_types),
                frozenset(t.lower() for t in self.resource_types))

    @cached_property
    def _tag_sets(self) -> tuple[tuple[str, frozenset[str]], ...]:
        return tuple((k.lower(), frozenset(v.lower() for v in vs)) for k, vs in self.tags.items())

    def matches(self, machine: Candidate) -> bool:
        """Whether the scope selects ``machine`` (see the module docstring)."""
        if machine.subscription_id.lower() != self.subscription.lower():
            return False
        groups, locations, os_types, types = self._folded
        if groups and machine.resource_group.lower() not in groups:
            return False
        if locations and _squash(machine.location) not in locations:
            return False
        if os_types and machine.os_type.lower() not in os_types:
            return False
        if types and machine.type.lower() not in types:
            return False
        if not self.tags:
            return True
        have = {k.lower(): v.lower() for k, v in machine.tags.items()}
        hits = [have.get(key) in values if values else key in have
                for key, values in self._tag_sets]
        return any(hits) if self.tag_operator.lower() == "any" else all(hits)


def _squash(text: str) -> str:
    return text.replace(" ", "").lower()


@dataclass(frozen=True)
class Assignment:
    """A configuration assignment: static (``machine_id``) or dynamic (``scope``)."""

    configuration_id: str
    machine_id: str | None = None  # lower-case
    scope: DynamicScope | None = None


@dataclass(frozen=True)
class Candidate:
    """A machine of the world (an Azure VM or an Arc machine) as Resource Graph shows it.
    None means "not known" (and never raises a risk)."""

    id: str  # lower-case
    name: str
    type: str  # lower-case
    subscription_id: str
    resource_group: str
    location: str
    os_type: str
    tags: Mapping[str, str] = field(default_factory=dict)
    power: str | None = None  # "running", "stopped", "deallocated"... (VMs)
    arc_status: str | None = None  # Connected | Disconnected | Error | Expired (Arc)
    patch_mode: str | None = None
    bypass: bool | None = None
    extension: str | None = None  # provisioning state of the patch extension; None: none seen
    created: datetime | None = None

    @property
    def arc(self) -> bool:
        return self.type == ARC_TYPE


@dataclass(frozen=True)
class Assessment:
    """The latest assessment summary of a machine."""

    machine_id: str  # lower-case
    assessed_at: datetime | None
    reboot_pending: bool | None
    pending: Mapping[str, int] = field(default_factory=dict)  # classification key -> count


@dataclass(frozen=True)
class PastResult:
    """One finished patch result of a machine (30 days)."""

    machine_id: str  # lower-case
    minutes: float
    installed: int


@dataclass(frozen=True)
class Plan:
    """A configuration with what pre-flight needs beyond :class:`Configuration`."""

    configuration: Configuration
    windows_classifications: tuple[str, ...] = ()  # empty: every classification
    linux_classifications: tuple[str, ...] = ()
    reboot_setting: str = "IfRequired"


# -- outputs -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Risk:
    code: str
    message: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "fix": self.fix}


@dataclass(frozen=True)
class Estimate:
    minutes: int
    source: str  # where it came from, in words


@dataclass(frozen=True)
class RosterMachine:
    id: str  # lower-case
    name: str
    source: str  # "static" | "dynamic"
    os: str
    risks: tuple[Risk, ...] = ()
    pending_updates: int | None = None
    estimate: Estimate | None = None
    candidate: Candidate | None = None  # None: the machine no longer exists
    assessed_at: datetime | None = None

    @property
    def estimated_minutes(self) -> int | None:
        return self.estimate.minutes if self.estimate else None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "source": self.source, "os": self.os,
            "risks": [r.to_json() for r in self.risks],
            "pending_updates": self.pending_updates,
            "estimated_minutes": self.estimated_minutes,
        }


@dataclass(frozen=True)
class Actual:
    """Predicted against the run's own machine rows."""

    missing: tuple[str, ...]
    unexpected: tuple[str, ...]

    def to_json(self) -> dict[str, list[str]]:
        return {"missing": list(self.missing), "unexpected": list(self.unexpected)}


@dataclass(frozen=True)
class Preflight:
    """One configuration's current or next run, its roster and risks."""

    configuration_id: str
    configuration_name: str
    run_start: datetime
    run_end: datetime
    frozen: bool
    machines: tuple[RosterMachine, ...]
    actual: Actual | None = None

    @property
    def window_minutes(self) -> int:
        return int((self.run_end - self.run_start).total_seconds() // 60)

    @property
    def freeze_at(self) -> datetime:
        return self.run_start - FREEZE_BEFORE

    @property
    def correlation_id(self) -> str:
        return correlation_id_for(self.configuration_id, self.run_start)

    @property
    def at_risk(self) -> int:
        return sum(1 for m in self.machines if m.risks)

    def by_code(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for machine in self.machines:
            for risk in machine.risks:
                counts[risk.code] = counts.get(risk.code, 0) + 1
        return {code: counts[code] for code in RISK_CODES if code in counts}

    def summary_text(self) -> str:
        """``roster 42 · 3 at risk``."""
        return f"roster {len(self.machines)} · {self.at_risk} at risk"

    def to_json(self) -> dict[str, Any]:
        return {
            "configuration_id": self.configuration_id,
            "configuration_name": self.configuration_name,
            "run_start": self.run_start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "frozen": self.frozen,
            "window_minutes": self.window_minutes,
            "machines": [m.to_json() for m in self.machines],
            "summary": {"total": len(self.machines), "at_risk": self.at_risk,
                        "by_code": self.by_code()},
            "actual": self.actual.to_json() if self.actual else None,
        }


# -- rows -> inputs ------------------------------------------------------------------------
def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(s for v in value if (s := text_of(v).strip()))


def _segment(resource_id: str, key: str) -> str:
    parts = [p for p in resource_id.split("/") if p]
    for name, value in zip(parts[0::2], parts[1::2], strict=False):
        if name.lower() == key:
            return value
    return ""


def assignment_from_row(row: Mapping[str, Any]) -> Assignment | None:
    """A ``configurationassignments`` row; None when it names no configuration or target."""
    props = folded(folded(row).get("properties"))
    config_id = text_of(props.get("maintenanceconfigurationid")).strip()
    target = text_of(props.get("resourceid")).strip()
    if not config_id or not target:
        return None
    if "providers/" not in target.lower():
        flt = folded(props.get("filter"))
        tag_settings = folded(flt.get("tagsettings"))
        raw_tags = tag_settings.get("tags")
        tags = ({str(k): _strings(v) for k, v in raw_tags.items()}
                if isinstance(raw_tags, Mapping) else {})
        subscription = _segment(target, "subscriptions") or target.strip("/")
        return Assignment(config_id, scope=DynamicScope(
            configuration_id=config_id, subscription=subscription,
            resource_groups=_strings(flt.get("resourcegroups")),
            locations=_strings(flt.get("locations")),
            os_types=_strings(flt.get("ostypes")),
            resource_types=_strings(flt.get("resourcetypes")),
            tags=tags,
            tag_operator=text_of(tag_settings.get("filteroperator")) or "All"))
    return Assignment(config_id, machine_id=target.lower())


def candidates_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[Candidate]:
    """Machines (and their patch extensions' states) from :data:`CANDIDATES_QUERY` rows."""
    machines: dict[str, dict[str, Any]] = {}
    extensions: dict[str, str] = {}
    for row in rows:
        top = folded(row)
        rid = text_of(top.get("id")).strip().lower()
        rtype = text_of(top.get("type")).strip().lower()
        if not rid:
            continue
        if rtype in MACHINE_TYPES:
            machines[rid] = top
        elif rtype.endswith("/extensions") and "/extensions/" in rid:
            owner = rid.split("/extensions/")[0]
            state = text_of(folded(top.get("properties")).get("provisioningstate")) or "Unknown"
            # A machine with two patch extensions is as good as its worst one.
            if extensions.get(owner, "Succeeded") == "Succeeded":
                extensions[owner] = state
    out = []
    for rid, top in machines.items():
        candidate = _candidate(rid, top, extensions.get(rid))
        out.append(candidate)
    return out


def _candidate(rid: str, top: Mapping[str, Any], extension: str | None) -> Candidate:
    props = folded(top.get("properties"))
    rtype = text_of(top.get("type")).lower()
    os_profile = folded(props.get("osprofile"))
    storage = folded(props.get("storageprofile"))
    os_type = (text_of(props.get("ostype")) or text_of(folded(storage.get("osdisk"))
               .get("ostype")))
    patch: Mapping[str, Any] = {}
    for key in ("windowsconfiguration", "linuxconfiguration"):
        conf = folded(os_profile.get(key))
        if conf:
            patch = folded(conf.get("patchsettings"))
            if not os_type:
                os_type = "Windows" if key.startswith("windows") else "Linux"
    patch_mode = text_of(patch.get("patchmode")) or None
    bypass_raw = folded(patch.get("automaticbyplatformsettings")).get(
        "bypassplatformsafetychecksonuserschedule")
    bypass = bypass_raw if isinstance(bypass_raw, bool) else None
    power = None
    code = text_of(folded(folded(folded(props.get("extended")).get("instanceview"))
                          .get("powerstate")).get("code"))
    if code:
        power = code.split("/", 1)[-1].lower()
    arc_status = text_of(props.get("status")) or None if rtype == ARC_TYPE else None
    tags_raw = top.get("tags")
    tags = ({str(k): text_of(v) for k, v in tags_raw.items()}
            if isinstance(tags_raw, Mapping) else {})
    return Candidate(
        id=rid, name=text_of(top.get("name")) or rid.rsplit("/", 1)[-1], type=rtype,
        subscription_id=text_of(top.get("subscriptionid")) or _segment(rid, "subscriptions"),
        resource_group=text_of(top.get("resourcegroup")) or _segment(rid, "resourcegroups"),
        location=text_of(top.get("location")),
        os_type=os_type.capitalize() if os_type else "",
        tags=tags, power=power, arc_status=arc_status, patch_mode=patch_mode, bypass=bypass,
        extension=extension, created=parse_time(props.get("timecreated")),
    )


def assessment_from_row(row: Mapping[str, Any]) -> Assessment | None:
    """A latest-assessment summary row; None when it is not one."""
    top = folded(row)
    rid = text_of(top.get("id")).lower()
    if not rid.endswith(ASSESSMENT_SEGMENT):
        return None
    props = folded(top.get("properties"))
    counts = folded(props.get("availablepatchcountbyclassification"))
    pending: dict[str, int] = {}
    for key in CLASSIFICATIONS:
        value = counts.get(key.lower())
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            pending[key] = value
    reboot = props.get("rebootpending")
    return Assessment(
        machine_id=rid[: -len(ASSESSMENT_SEGMENT)],
        assessed_at=parse_time(props.get("lastmodifieddatetime")),
        reboot_pending=reboot if isinstance(reboot, bool) else None,
        pending=pending)


def past_result_from_row(row: Mapping[str, Any]) -> PastResult | None:
    """A finished patch result with its duration; None without both times."""
    top = folded(row)
    rid = text_of(top.get("id")).lower()
    if PATCH_RESULTS_SEGMENT not in rid:
        return None
    props = folded(top.get("properties"))
    start = parse_time(props.get("startdatetime"))
    end = parse_time(props.get("lastmodifieddatetime"))
    installed = props.get("installedpatchcount")
    if start is None or end is None or end < start:
        return None
    return PastResult(rid.split(PATCH_RESULTS_SEGMENT)[0], (end - start).total_seconds() / 60,
                      installed if isinstance(installed, int) and installed > 0 else 0)


def run_machine_ids(rows: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """Run key (lower-case correlation id) -> machine ids (lower-case), from machine rows."""
    out: dict[str, set[str]] = {}
    for row in rows:
        props = folded(folded(row).get("properties"))
        try:
            key = parse_run_id(text_of(props.get("correlationid"))).key
        except RunIdError:
            continue
        machine = text_of(props.get("resourceid")).strip().lower()
        if machine:
            out.setdefault(key, set()).add(machine)
    return out


def plan_from_row(row: Mapping[str, Any], configuration: Configuration) -> Plan:
    """The classifications and reboot setting of a configuration row (``installPatches``)."""
    props = folded(folded(row).get("properties"))
    install = folded(props.get("installpatches"))
    windows = folded(install.get("windowsparameters"))
    linux = folded(install.get("linuxparameters"))
    return Plan(configuration,
                windows_classifications=_strings(windows.get("classificationstoinclude")),
                linux_classifications=_strings(linux.get("classificationstoinclude")),
                reboot_setting=text_of(install.get("rebootsetting")) or "IfRequired")


# -- the rules -----------------------------------------------------------------------------
def current_or_next(config: Configuration, now: datetime) -> tuple[datetime, datetime] | None:
    """The run pre-flight is about: the one in progress (or frozen) at ``now``, or the next."""
    for start, end in config.next_occurrences:
        if end > now:
            return start, end
    return None


def pending_installed(plan: Plan, os_type: str, assessment: Assessment) -> int:
    """Pending updates of the classifications ``plan`` installs on a machine of ``os_type``.
    No classification listed: every one counts (stance)."""
    listed = (plan.linux_classifications if os_type.lower() == "linux"
              else plan.windows_classifications)
    wanted = {c.lower() for c in listed}
    return sum(n for key, n in assessment.pending.items() if not wanted or key.lower() in wanted)


def estimate(plan: Plan, os_type: str, assessment: Assessment, history: Sequence[PastResult],
             rules: FitRules) -> Estimate:
    """How long the machine's installation will take (see the module docstring)."""
    pending = pending_installed(plan, os_type, assessment)
    own = [r for r in history if r.installed > 0]
    if own:
        rate = sum(r.minutes for r in own) / sum(r.installed for r in own)
        return Estimate(math.ceil(pending * rate),
                        f"own past runs: {len(own)} result(s) in 30 days, "
                        f"{rate:.1f} min an update (reboots included)")
    listed = (plan.linux_classifications if os_type.lower() == "linux"
              else plan.windows_classifications)
    wanted = {c.lower() for c in listed}
    packs = (assessment.pending.get("servicePack", 0)
             if not wanted or "servicepack" in wanted else 0)
    minutes = (pending - packs) * rules.minutes_per_update + packs * rules.minutes_per_service_pack
    reboot = 0.0
    if pending and plan.reboot_setting.lower() != "neverreboot":
        reboot = rules.reboot_linux if os_type.lower() == "linux" else rules.reboot_windows
    return Estimate(math.ceil(minutes + reboot),
                    f"constants: {rules.minutes_per_update:g} min an update "
                    f"({rules.minutes_per_service_pack:g} a service pack) + "
                    f"{reboot:g} min reboot reserve")


def _risk(code: str, message: str, fix: str) -> Risk:
    return Risk(code, message, fix)


def machine_risks(
    candidate: Candidate,
    assessment: Assessment | None,
    fit: Estimate | None,
    *,
    run_start: datetime,
    window_minutes: int,
    now: datetime,
    rules: FitRules,
    conflicts: Sequence[str] = (),
) -> tuple[Risk, ...]:
    """Every risk the data shows for one existing machine of a run starting at ``run_start``."""
    risks: list[Risk] = []
    if not candidate.arc and candidate.power is not None and candidate.power != "running":
        risks.append(_risk(
            "powered-off", f"the VM is {candidate.power}: a machine that is off is not patched",
            "start it at least 15 min before the run (a pre-event task can do it)"))
    if candidate.arc and candidate.arc_status is not None \
            and candidate.arc_status.lower() != "connected":
        risks.append(_risk(
            "arc-disconnected", f"the Arc agent is {candidate.arc_status}",
            "reconnect the Connected Machine agent (azcmagent show / azcmagent connect)"))
    if not candidate.arc and (candidate.patch_mode or candidate.bypass is not None) and (
            (candidate.patch_mode or "").lower() != "automaticbyplatform"
            or candidate.bypass is not True):
        risks.append(_risk(
            "orchestration",
            f"patch orchestration is not Customer Managed Schedules (patchMode "
            f"{candidate.patch_mode or 'unset'}, bypass {candidate.bypass}): the run skips it",
            "set patchMode AutomaticByPlatform and bypassPlatformSafetyChecksOnUserSchedule "
            "true (Customer Managed Schedules)"))
    if candidate.extension is not None and candidate.extension.lower() != "succeeded":
        state = "missing" if candidate.extension.lower() == "missing" else candidate.extension
        risks.append(_risk(
            "extension", f"the patch extension is {state}",
            "reinstall the patch extension (remove it; the next assessment installs it)"))
    if candidate.created is not None and candidate.created > run_start - NEW_VM_BEFORE:
        risks.append(_risk(
            "new-vm", "created less than 15 min before the start: it may miss the trigger",
            "check it after the run, or run a one-time update for it"))
    if assessment is None:
        risks.append(_risk(
            "no-assessment", "never assessed: its pending updates are unknown",
            "run an assessment (Check for updates) or enable periodic assessment"))
    elif assessment.assessed_at is not None and now - assessment.assessed_at > rules.stale_after:
        age = now - assessment.assessed_at
        risks.append(_risk(
            "stale-assessment", f"last assessed {_age(age)} ago",
            "enable periodic assessment or run Check for updates"))
    if assessment is not None and assessment.reboot_pending:
        risks.append(_risk(
            "reboot-pending", "a reboot is pending from an earlier installation",
            "reboot it before the run"))
    if fit is not None and fit.minutes > window_minutes:
        risks.append(_risk(
            "window-fit", f"about {fit.minutes} min of updates for a {window_minutes} min window",
            "lengthen the window, or install fewer classifications on it"))
    if conflicts:
        risks.append(_risk(
            "conflict", f"also in {', '.join(conflicts)}, whose window overlaps: only one "
            "schedule is triggered", "remove it from one of the configurations"))
    return tuple(risks)


def _age(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours // 24} d {hours % 24} h" if hours >= 24 else f"{hours} h"


@dataclass(frozen=True)
class World:
    """Everything one pre-flight read gathered (plain data)."""

    plans: tuple[Plan, ...]
    assignments: tuple[Assignment, ...]
    candidates: tuple[Candidate, ...]
    assessments: Mapping[str, Assessment] = field(default_factory=dict)
    history: Mapping[str, tuple[PastResult, ...]] = field(default_factory=dict)
    run_machines: Mapping[str, frozenset[str]] | None = None  # None: not read


def rosters(world: World) -> dict[str, dict[str, str]]:
    """Configuration id (lower) -> {machine id (lower): source}; static wins over dynamic.
    Static assignments to machines that no longer exist are included."""
    out: dict[str, dict[str, str]] = {}
    for a in world.assignments:
        if a.machine_id is not None:
            out.setdefault(a.configuration_id.lower(), {})[a.machine_id] = "static"
    for a in world.assignments:
        if a.scope is None:
            continue
        members = out.setdefault(a.configuration_id.lower(), {})
        for c in world.candidates:
            if c.id not in members and a.scope.matches(c):
                members[c.id] = "dynamic"
    return out


def _overlaps(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def preflight(world: World, now: datetime, rules: FitRules | None = None) -> list[Preflight]:
    """One :class:`Preflight` per configuration with a current or next run, by name."""
    rules = rules or FitRules()
    candidates = {c.id: c for c in world.candidates}
    members = rosters(world)
    runs: dict[str, tuple[datetime, datetime]] = {}
    for plan in world.plans:
        run = current_or_next(plan.configuration, now)
        if run is not None:
            runs[plan.configuration.id.lower()] = run
    names = {p.configuration.id.lower(): p.configuration.name for p in world.plans}
    out = []
    for plan in world.plans:
        cfg = plan.configuration
        key = cfg.id.lower()
        if key not in runs:
            continue
        start, end = runs[key]
        window = int((end - start).total_seconds() // 60)
        machines = []
        for machine_id, source in sorted(members.get(key, {}).items()):
            candidate = candidates.get(machine_id)
            if candidate is None:
                machines.append(RosterMachine(
                    id=machine_id, name=machine_id.rsplit("/", 1)[-1], source=source, os="",
                    risks=(_risk("deleted", "assigned, but the machine no longer exists",
                                 "remove the assignment (or restore the machine)"),)))
                continue
            assessment = world.assessments.get(machine_id)
            fit = (estimate(plan, candidate.os_type, assessment,
                            world.history.get(machine_id, ()), rules)
                   if assessment is not None else None)
            conflicts = sorted(
                names[other] for other, roster in members.items()
                if other != key and machine_id in roster and other in runs
                and _other_overlaps(world, other, (start, end), now))
            risks = machine_risks(candidate, assessment, fit, run_start=start,
                                  window_minutes=window, now=now, rules=rules,
                                  conflicts=conflicts)
            machines.append(RosterMachine(
                id=machine_id, name=candidate.name, source=source, os=candidate.os_type,
                risks=risks,
                pending_updates=(pending_installed(plan, candidate.os_type, assessment)
                                 if assessment is not None else None),
                estimate=fit, candidate=candidate,
                assessed_at=assessment.assessed_at if assessment else None))
        machines.sort(key=lambda m: (m.name.lower(), m.id))
        actual = None
        if world.run_machines is not None:
            try:
                in_run = world.run_machines.get(correlation_id_for(cfg.id, start).lower())
            except RunIdError:  # an id Azure would not give (no run of it can be matched)
                in_run = None
            if in_run is not None:
                predicted = {m.id for m in machines}
                actual = Actual(missing=tuple(sorted(predicted - in_run)),
                                unexpected=tuple(sorted(in_run - predicted)))
        out.append(Preflight(cfg.id, cfg.name, start, end, now >= start - FREEZE_BEFORE,
                             tuple(machines), actual))
    out.sort(key=lambda p: (p.configuration_name.lower(), p.configuration_id.lower()))
    return out


def _other_overlaps(world: World, other: str, run: tuple[datetime, datetime],
                    now: datetime) -> bool:
    for plan in world.plans:
        if plan.configuration.id.lower() == other:
            return any(_overlaps(run, occ) for occ in plan.configuration.next_occurrences
                       if occ[1] > now)
    return False


def warn_due(item: Preflight, now: datetime, warn_before: timedelta) -> bool:
    """Whether a finding is due: machines at risk and less than ``warn_before`` to T-40."""
    return item.at_risk > 0 and not item.frozen and item.freeze_at - now < warn_before
