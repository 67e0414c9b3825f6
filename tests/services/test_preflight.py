"""Pre-flight rules (services/domain/preflight.py): scope matching, roster, risks, window fit,
predicted against actual, the JSON contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.domain.configs import configuration_from_row
from services.domain.preflight import (
    ARC_TYPE,
    RISK_CODES,
    VM_TYPE,
    Assessment,
    Assignment,
    Candidate,
    DynamicScope,
    FitRules,
    PastResult,
    Plan,
    World,
    assessment_from_row,
    assignment_from_row,
    candidates_from_rows,
    estimate,
    past_result_from_row,
    plan_from_row,
    preflight,
    run_machine_ids,
    warn_due,
)
from services.domain.runid import correlation_id_for

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SUB = "11111111-1111-1111-1111-111111111111"
OTHER_SUB = "22222222-2222-2222-2222-222222222222"


def vm_id(name: str, rg: str = "rg-web", sub: str = SUB) -> str:
    return (f"/subscriptions/{sub}/resourcegroups/{rg}/providers/"
            f"microsoft.compute/virtualmachines/{name}")


def config_row(name: str, start: str = "2026-03-02 10:00", duration: str = "02:00",
               classifications: list[str] | None = None, reboot: str = "IfRequired"
               ) -> dict[str, Any]:
    cls = classifications if classifications is not None else ["Critical", "Security"]
    return {
        "id": f"/subscriptions/{SUB}/resourceGroups/rg-patch/providers/"
              f"Microsoft.Maintenance/maintenanceConfigurations/{name}",
        "name": name,
        "properties": {
            "maintenanceScope": "InGuestPatch",
            "maintenanceWindow": {"startDateTime": start, "duration": duration,
                                  "timeZone": "UTC", "recurEvery": "Day"},
            "installPatches": {"rebootSetting": reboot,
                               "windowsParameters": {"classificationsToInclude": cls},
                               "linuxParameters": {"classificationsToInclude": cls}},
        },
    }


def plan(name: str = "cfg-a", **kwargs: Any) -> Plan:
    row = config_row(name, **kwargs)
    config = configuration_from_row(row, NOW)
    assert config is not None
    return plan_from_row(row, config)


def candidate(name: str, **kwargs: Any) -> Candidate:
    base: dict[str, Any] = dict(
        id=vm_id(name), name=name, type=VM_TYPE, subscription_id=SUB, resource_group="rg-web",
        location="westeurope", os_type="Windows", power="running",
        patch_mode="AutomaticByPlatform", bypass=True, extension="Succeeded")
    base.update(kwargs)
    return Candidate(**base)


def fresh(machine_id: str, **pending: int) -> Assessment:
    return Assessment(machine_id, NOW - timedelta(hours=3), False, pending)


# -- dynamic scope -------------------------------------------------------------------------
def test_empty_scope_takes_every_machine_of_its_subscription_only() -> None:
    scope = DynamicScope("c", SUB)
    assert scope.matches(candidate("a"))
    assert not scope.matches(candidate("b", subscription_id=OTHER_SUB))


def test_scope_lists_are_case_insensitive_and_each_constrains() -> None:
    scope = DynamicScope("c", SUB.upper(), resource_groups=("RG-WEB",), locations=("West Europe",),
                         os_types=("windows",),
                         resource_types=("Microsoft.Compute/virtualMachines",))
    assert scope.matches(candidate("a"))
    assert not scope.matches(candidate("a", resource_group="rg-db"))
    assert not scope.matches(candidate("a", location="northeurope"))
    assert not scope.matches(candidate("a", os_type="Linux"))
    assert not scope.matches(candidate("a", type=ARC_TYPE))


def test_tags_all_and_any() -> None:
    tags = {"Env": ("Prod",), "tier": ("web", "api")}
    both = candidate("a", tags={"env": "prod", "Tier": "API"})
    one = candidate("b", tags={"env": "prod"})
    none = candidate("c", tags={"env": "dev"})
    all_scope = DynamicScope("c", SUB, tags=tags, tag_operator="All")
    any_scope = DynamicScope("c", SUB, tags=tags, tag_operator="any")
    assert [all_scope.matches(m) for m in (both, one, none)] == [True, False, False]
    assert [any_scope.matches(m) for m in (both, one, none)] == [True, True, False]


def test_assignment_rows_static_and_dynamic() -> None:
    static = assignment_from_row({"properties": {
        "maintenanceConfigurationId": "/x/cfg", "resourceId": vm_id("A").upper()}})
    assert static is not None and static.machine_id == vm_id("a") and static.scope is None
    dynamic = assignment_from_row({"id": "x", "location": "global", "properties": {
        "maintenanceConfigurationId": "/x/cfg", "resourceId": f"/subscriptions/{SUB}",
        "filter": {"resourceTypes": None, "resourceGroups": ["rg-web"], "osTypes": None,
                   "locations": [], "tagSettings": {"tags": {"env": ["prod"]},
                                                    "filterOperator": "Any"}}}})
    assert dynamic is not None and dynamic.scope is not None
    assert dynamic.scope.subscription == SUB
    assert dynamic.scope.resource_groups == ("rg-web",)
    assert dynamic.scope.resource_types == ()
    assert dict(dynamic.scope.tags) == {"env": ("prod",)}
    assert dynamic.scope.tag_operator == "Any"
    assert assignment_from_row({"properties": {}}) is None


def test_candidate_rows_read_vm_and_arc_shapes_and_extensions() -> None:
    vm = {"id": vm_id("Web1"), "name": "web1", "type": "Microsoft.Compute/virtualMachines",
          "location": "westeurope", "resourceGroup": "rg-web", "subscriptionId": SUB,
          "tags": {"env": "prod"},
          "properties": {
              "timeCreated": "2026-01-01T00:00:00Z",
              "storageProfile": {"osDisk": {"osType": "Windows"}},
              "osProfile": {"windowsConfiguration": {"patchSettings": {
                  "patchMode": "AutomaticByOS",
                  "automaticByPlatformSettings": {
                      "bypassPlatformSafetyChecksOnUserSchedule": False}}}},
              "extended": {"instanceView": {"powerState": {"code": "PowerState/deallocated"}}}}}
    arc_id = f"/subscriptions/{SUB}/resourcegroups/rg-arc/providers/{ARC_TYPE}/srv1"
    arc = {"id": arc_id, "name": "srv1", "type": ARC_TYPE, "properties": {
        "osType": "windows", "status": "Disconnected"}}
    ext = {"id": arc_id + "/extensions/WindowsPatchExtension", "name": "WindowsPatchExtension",
           "type": ARC_TYPE + "/extensions", "properties": {"provisioningState": "Failed"}}
    got = {c.name: c for c in candidates_from_rows([vm, arc, ext, {"id": None}])}
    web = got["web1"]
    assert web.id == vm_id("web1") and web.power == "deallocated"
    assert web.patch_mode == "AutomaticByOS" and web.bypass is False
    assert web.os_type == "Windows" and web.extension is None and web.arc_status is None
    assert web.created == datetime(2026, 1, 1, tzinfo=UTC)
    srv = got["srv1"]
    assert srv.arc and srv.os_type == "Windows" and srv.arc_status == "Disconnected"
    assert srv.extension == "Failed" and srv.patch_mode is None and srv.power is None


def test_assessment_and_result_rows() -> None:
    a = assessment_from_row({"id": vm_id("A") + "/patchAssessmentResults/latest", "properties": {
        "rebootPending": True, "lastModifiedDateTime": "2026-03-01T00:00:00Z",
        "availablePatchCountByClassification": {"critical": 2, "security": 0, "other": "x"}}})
    assert a is not None and a.machine_id == vm_id("a") and a.reboot_pending is True
    assert dict(a.pending) == {"critical": 2}
    assert assessment_from_row({"id": vm_id("a") + "/softwarePatches/1"}) is None
    r = past_result_from_row({"id": vm_id("A") + "/patchInstallationResults/g", "properties": {
        "startDateTime": "2026-03-01T00:00:00Z", "lastModifiedDateTime": "2026-03-01T00:30:00Z",
        "installedPatchCount": 6}})
    assert r == PastResult(vm_id("a"), 30.0, 6)
    cid = correlation_id_for(config_row("cfg-a")["id"], NOW)
    assert run_machine_ids([{"properties": {"correlationId": cid, "resourceId": vm_id("A")}},
                            {"properties": {"correlationId": "nonsense"}}]) == {
        cid.lower(): {vm_id("a")}}


# -- window fit ----------------------------------------------------------------------------
def test_estimate_from_constants_counts_installed_classifications_only() -> None:
    p = plan(classifications=["Critical", "ServicePack"])
    a = fresh("m", critical=3, security=5, servicePack=1)
    got = estimate(p, "Windows", a, (), FitRules())
    assert got.minutes == 3 * 10 + 15 + 10  # 3 critical, 1 service pack, reboot reserve
    assert "constants" in got.source
    linux = estimate(p, "Linux", fresh("m", critical=1), (), FitRules(reboot_linux=20))
    assert linux.minutes == 10 + 20
    assert estimate(p, "Windows", fresh("m"), (), FitRules()).minutes == 0  # nothing: no reboot
    never = plan(classifications=["Critical"], reboot="NeverReboot")
    assert estimate(never, "Windows", fresh("m", critical=2), (), FitRules()).minutes == 20


def test_estimate_prefers_the_machines_own_past_durations() -> None:
    history = (PastResult("m", 30.0, 10), PastResult("m", 90.0, 10), PastResult("m", 5.0, 0))
    got = estimate(plan(), "Windows", fresh("m", critical=4), history, FitRules())
    assert got.minutes == 24  # 120 min / 20 updates = 6 min an update
    assert "own past runs" in got.source and "2 result" in got.source


# -- roster and risks ----------------------------------------------------------------------
def world_with(machines: list[Candidate], assessments: dict[str, Assessment],
               extra_assignments: tuple[Assignment, ...] = (), plans: tuple[Plan, ...] = (),
               **kwargs: Any) -> World:
    p = plans or (plan("cfg-a"),)
    cfg = p[0].configuration.id
    return World(plans=p, assignments=(
        Assignment(cfg, scope=DynamicScope(cfg, SUB, resource_groups=("rg-web",))),
        Assignment(cfg, machine_id=vm_id("gone", "rg-old")),
        *extra_assignments), candidates=tuple(machines), assessments=assessments, **kwargs)


def codes(item: Any, name: str) -> list[str]:
    return [r.code for m in item.machines if m.name == name for r in m.risks]


def test_every_risk_code_from_the_data() -> None:
    machines = [
        candidate("ok"),
        candidate("off", power="stopped"),
        candidate("orch", patch_mode="AutomaticByOS", bypass=False),
        candidate("ext", extension="missing"),
        candidate("new", created=datetime(2026, 3, 2, 9, 50, tzinfo=UTC)),
        candidate("never"),
        candidate("stale"),
        candidate("reboot"),
        candidate("big"),
        Candidate(id=f"/subscriptions/{SUB}/resourcegroups/rg-web/providers/{ARC_TYPE}/arc1",
                  name="arc1", type=ARC_TYPE, subscription_id=SUB, resource_group="rg-web",
                  location="westeurope", os_type="Linux", arc_status="Expired",
                  extension="Succeeded"),
        candidate("elsewhere", resource_group="rg-db", id=vm_id("elsewhere", "rg-db")),
    ]
    assessments = {m.id: fresh(m.id) for m in machines if m.name not in ("never",)}
    assessments[vm_id("stale")] = Assessment(vm_id("stale"), NOW - timedelta(days=3), False, {})
    assessments[vm_id("reboot")] = Assessment(vm_id("reboot"), NOW, True, {})
    assessments[vm_id("big")] = fresh(vm_id("big"), critical=20, security=1)
    [item] = preflight(world_with(machines, assessments), NOW)
    assert item.run_start == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert item.window_minutes == 120 and not item.frozen
    by_name = {m.name: m for m in item.machines}
    assert "elsewhere" not in by_name  # outside the scope's resource groups
    assert by_name["gone"].source == "static" and by_name["ok"].source == "dynamic"
    assert codes(item, "ok") == []
    assert codes(item, "gone") == ["deleted"]
    assert codes(item, "off") == ["powered-off"]
    assert codes(item, "arc1") == ["arc-disconnected"]
    assert codes(item, "orch") == ["orchestration"]
    assert codes(item, "ext") == ["extension"]
    assert codes(item, "new") == ["new-vm"]
    assert codes(item, "never") == ["no-assessment"]
    assert codes(item, "stale") == ["stale-assessment"]
    assert codes(item, "reboot") == ["reboot-pending"]
    assert codes(item, "big") == ["window-fit"]
    assert by_name["big"].pending_updates == 21 and by_name["big"].estimated_minutes == 220
    assert by_name["never"].pending_updates is None and by_name["never"].estimated_minutes is None
    every = {r.code for m in item.machines for r in m.risks}
    assert every == set(RISK_CODES) - {"conflict"}
    assert all(r.message and r.fix for m in item.machines for r in m.risks)


def test_conflict_only_when_the_other_window_overlaps() -> None:
    a = plan("cfg-a", start="2026-03-02 10:00")
    overlapping = plan("cfg-b", start="2026-03-02 11:00")
    apart = plan("cfg-c", start="2026-03-02 13:00")
    m = candidate("shared")
    assigns = tuple(Assignment(p.configuration.id, machine_id=m.id)
                    for p in (a, overlapping, apart))
    world = World(plans=(a, overlapping, apart), assignments=assigns, candidates=(m,),
                  assessments={m.id: fresh(m.id)})
    got = {p.configuration_name: p for p in preflight(world, NOW)}
    assert codes(got["cfg-a"], "shared") == ["conflict"]
    assert "cfg-b" in got["cfg-a"].machines[0].risks[0].message
    assert codes(got["cfg-c"], "shared") == []


def test_static_wins_over_dynamic_for_the_same_machine() -> None:
    m = candidate("both")
    p = plan()
    world = world_with([m], {m.id: fresh(m.id)},
                       (Assignment(p.configuration.id, machine_id=m.id),), plans=(p,))
    [item] = preflight(world, NOW)
    assert [(x.name, x.source) for x in item.machines] == [("both", "static"),
                                                           ("gone", "static")]


def test_actual_names_the_left_out_and_the_unexpected() -> None:
    p = plan()
    ok, orch = candidate("ok"), candidate("orch", patch_mode="Manual")
    start = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    cid = correlation_id_for(p.configuration.id, start).lower()
    extra = vm_id("surprise", "rg-x")
    base = world_with([ok, orch], {}, plans=(p,))
    [before] = preflight(base, NOW)
    assert before.actual is None
    no_rows = World(base.plans, base.assignments, base.candidates, run_machines={})
    assert preflight(no_rows, NOW)[0].actual is None
    rows = World(base.plans, base.assignments, base.candidates,
                 run_machines={cid: frozenset({ok.id, extra})})
    [after] = preflight(rows, start - timedelta(minutes=5))
    assert after.frozen
    assert after.actual is not None
    assert after.actual.missing == (vm_id("gone", "rg-old"), orch.id)
    assert after.actual.unexpected == (extra,)


def test_current_run_is_kept_until_it_ends() -> None:
    p = plan()
    world = world_with([candidate("ok")], {}, plans=(p,))
    during = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    config = configuration_from_row(config_row("cfg-a"), during)
    assert config is not None
    world = World((Plan(config, ("Critical",), ("Critical",)),), world.assignments,
                  world.candidates)
    [item] = preflight(world, during)
    assert item.run_start == datetime(2026, 3, 2, 10, 0, tzinfo=UTC) and item.frozen


def test_json_has_exactly_the_contract_keys() -> None:
    m = candidate("off", power="stopped")
    [item] = preflight(world_with([m], {m.id: fresh(m.id, critical=1)}), NOW)
    data = item.to_json()
    assert list(data) == ["configuration_id", "configuration_name", "run_start", "frozen",
                          "window_minutes", "machines", "summary", "actual"]
    assert data["run_start"] == "2026-03-02T10:00:00Z"
    assert set(data["machines"][0]) == {"id", "name", "source", "os", "risks",
                                        "pending_updates", "estimated_minutes"}
    assert set(data["machines"][0]["risks"][0]) == {"code", "message", "fix"}
    assert data["summary"] == {"total": 2, "at_risk": 2,
                               "by_code": {"deleted": 1, "powered-off": 1}}
    assert data["actual"] is None
    assert item.summary_text() == "roster 2 · 2 at risk"


def test_warning_is_due_within_warn_before_of_the_freeze() -> None:
    m = candidate("off", power="stopped")
    world = world_with([m], {m.id: fresh(m.id)})
    freeze = datetime(2026, 3, 2, 9, 20, tzinfo=UTC)
    [early] = preflight(world, freeze - timedelta(minutes=61))
    [late] = preflight(world, freeze - timedelta(minutes=59))
    assert not warn_due(early, freeze - timedelta(minutes=61), timedelta(minutes=60))
    assert warn_due(late, freeze - timedelta(minutes=59), timedelta(minutes=60))
