"""The stand-in models pre-flight as Azure does (issue 18): scenario keys, the real tables'
row shapes through its Resource Graph, and who a run takes when it starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.domain.clock import ManualClock
from services.standin.graph import GraphEngine, GraphRequest
from services.standin.scenario import ScenarioEngine
from services.standin.scenario_file import ScenarioError, parse_scenario
from services.standin.world import World

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SUB = "3f2a1c9e-7b4d-4e61-9a0f-2c5d8e7b1a10"


def scenario(machines: list[dict[str, Any]], *, scopes: list[dict[str, Any]] | None = None,
             world_machines: list[dict[str, Any]] | None = None,
             start: str = "now+60m") -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "cfg-a", "subscription": "prod", "resource_group": "rg-patch",
        "recur_every": "Day", "duration": "02:00", "start": start, "machines": machines,
        "behaviour": {"fail": 0.0, "overrun": 0.0}}
    if scopes is not None:
        config["dynamic_scope"] = scopes
    data: dict[str, Any] = {"subscriptions": {"prod": SUB}, "configuration": [config]}
    if world_machines is not None:
        data["machines"] = world_machines
    return data


def play(data: dict[str, Any]) -> tuple[ManualClock, World, ScenarioEngine, GraphEngine]:
    clock = ManualClock(T0)
    world = World(clock)
    engine = ScenarioEngine(world, parse_scenario(data))
    return clock, world, engine, GraphEngine(world)


def rows(graph: GraphEngine, query: str) -> list[dict[str, Any]]:
    return list(graph.execute(GraphRequest(query=query))["data"])


def one(name: str, **keys: Any) -> dict[str, Any]:
    return {"count": 1, "prefix": name, **keys}


def test_unknown_values_are_refused_with_the_place() -> None:
    with pytest.raises(ScenarioError, match=r"power: 'asleep'"):
        parse_scenario(scenario([one("a", power="asleep")]))
    with pytest.raises(ScenarioError, match=r"pending: 'hotfix'"):
        parse_scenario(scenario([one("a", pending={"hotfix": 1})]))
    with pytest.raises(ScenarioError, match=r"assessed"):
        parse_scenario(scenario([one("a", assessed="yesterday")]))
    with pytest.raises(ScenarioError, match=r"tag_operator"):
        parse_scenario(scenario([], scopes=[{"tag_operator": "Some"}]))
    with pytest.raises(ScenarioError, match=r"resource_group"):
        parse_scenario(scenario([], world_machines=[one("w")]))


def test_rows_have_the_real_tables_shapes() -> None:
    _, _, _, graph = play(scenario(
        [one("vm", power="deallocated", patch_mode="AutomaticByOS", bypass=False,
             pending={"critical": 2, "security": 5}, reboot_pending=True, tags={"env": "prod"}),
         one("arc", kind="arc", os="Linux", arc_status="Disconnected", extension="missing",
             assessed="never"),
         one("gone", exists=False)],
        scopes=[{"resource_groups": ["rg-web"], "tags": {"env": ["prod"]},
                 "tag_operator": "Any"}]))
    res = {r["name"]: r for r in rows(graph, "resources | where type !~ "
                                      "'microsoft.maintenance/maintenanceconfigurations'")}
    vm = res["vm-001"]["properties"]
    patch = vm["osProfile"]["windowsConfiguration"]["patchSettings"]
    assert patch["patchMode"] == "AutomaticByOS"
    assert patch["automaticByPlatformSettings"][
        "bypassPlatformSafetyChecksOnUserSchedule"] is False
    assert vm["extended"]["instanceView"]["powerState"]["code"] == "PowerState/deallocated"
    assert res["vm-001"]["tags"] == {"env": "prod"}
    arc = res["arc-001"]
    assert arc["type"] == "microsoft.hybridcompute/machines"
    assert arc["properties"]["status"] == "Disconnected"
    assert arc["properties"]["osType"] == "linux" and "osProfile" not in arc["properties"]
    assert "gone-001" not in res
    assert res["WindowsPatchExtension"]["properties"]["provisioningState"] == "Succeeded"
    assert "LinuxPatchExtension" not in res  # the Arc machine's extension is missing
    [assessment] = rows(graph, "patchassessmentresources | project id, properties")
    assert assessment["id"].endswith("/vm-001/patchAssessmentResults/latest")
    counts = assessment["properties"]["availablePatchCountByClassification"]
    assert counts["critical"] == 2 and counts["security"] == 5 and counts["servicePack"] == 0
    assert assessment["properties"]["rebootPending"] is True
    assigns = rows(graph, "maintenanceresources | where type =~ "
                          "'microsoft.maintenance/configurationassignments' | project id, "
                          "location, properties")
    static = [a for a in assigns if "providers/" in a["properties"]["resourceId"].lower()]
    assert sorted(a["properties"]["resourceId"].rsplit("/", 1)[-1] for a in static) == [
        "arc-001", "gone-001", "vm-001"]
    [dynamic] = [a for a in assigns if a not in static]
    assert dynamic["id"] == dynamic["id"].lower() and dynamic["location"] == "global"
    assert dynamic["properties"]["resourceId"] == f"/subscriptions/{SUB}"
    assert dynamic["properties"]["filter"] == {
        "resourceTypes": None, "resourceGroups": ["rg-web"], "osTypes": None,
        "locations": None, "tagSettings": {"tags": {"env": ["prod"]}, "filterOperator": "Any"}}


def test_a_run_takes_static_and_dynamic_machines_when_it_freezes() -> None:
    clock, world, engine, _ = play(scenario(
        [one("ok"), one("orch", patch_mode="Manual"), one("off", power="stopped"),
         one("ext", extension="Failed"), one("gone", exists=False),
         one("arc", kind="arc", arc_status="Expired")],
        scopes=[{"resource_groups": ["rg-web"], "tags": {"team": ["a", "b"]}}],
        world_machines=[one("dyn", resource_group="rg-web", tags={"team": "B"}),
                        one("other", resource_group="rg-web", tags={"team": "c"}),
                        one("late", resource_group="rg-web", tags={"team": "a"},
                            created="now+50m")]))
    start = T0 + timedelta(minutes=60)
    clock.set(start + timedelta(minutes=1))
    engine.step()
    [run] = [r for r in world.runs() if r.start == start]
    names = sorted(mid.rsplit("/", 1)[-1] for mid in run.machine_ids)
    # Left out: orchestration not Customer Managed, deleted, no scope match, too new.
    assert names == ["arc-001", "dyn-001", "ext-001", "off-001", "ok-001"]
    failed = {mid.rsplit("/", 1)[-1]: res for mid, res in run.results.items()
              if res.status == "Failed"}
    assert sorted(failed) == ["arc-001", "ext-001", "off-001"]
    assert "not running" in (failed["off-001"].error_message or "")
    assert "Expired" in (failed["arc-001"].error_message or "")
