"""``aumwatch preflight`` and doctor's pre-flight warning against the stand-in (issue 18):
a scenario with static and dynamic machines in every risk state, before and after the run
starts, through the real Resource Graph client."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.standin.scenario import ScenarioEngine
from services.standin.scenario_file import parse_scenario
from services.standin.server import StandInServer
from services.standin.world import World
from tests.integration.test_data_commands import run_cli, write_config
from tests.standin import NOW, SUB
from tui.cli import main

pytestmark = pytest.mark.integration

MAIN_START = NOW + timedelta(minutes=60)


def one(prefix: str, **keys: Any) -> dict[str, Any]:
    return {"count": 1, "prefix": prefix, **keys}


def scenario() -> dict[str, Any]:
    def config(name: str, start: str, machines: list[dict[str, Any]],
               **extra: Any) -> dict[str, Any]:
        return {"name": name, "subscription": "prod", "resource_group": "rg-patch",
                "time_zone": "UTC", "recur_every": "Day", "duration": "02:00", "start": start,
                "machines": machines, "behaviour": {"fail": 0.0, "overrun": 0.0}, **extra}

    shared = one("shared", resource_group="rg-shared")
    return {
        "subscriptions": {"prod": SUB},
        "configuration": [
            config("cfg-main", "now+60m", [
                one("ok"), one("off", power="stopped"),
                one("orch", patch_mode="AutomaticByOS", bypass=False),
                one("ext", extension="Failed"), one("never", assessed="never"),
                one("stale", assessed="now-3d"), one("reboot", reboot_pending=True),
                one("big", pending={"critical": 20, "security": 3, "other": 9}),
                one("gone", exists=False),
                one("arc", kind="arc", os="Linux", arc_status="Disconnected"),
                shared],
                dynamic_scope=[{"resource_groups": ["rg-dyn"], "tags": {"team": ["a"]}}]),
            config("cfg-overlap", "now+90m", [shared]),
            config("cfg-soon", "now+10m", [one("fresh", created="now"), one("steady")]),
        ],
        "machines": [
            one("dyn", resource_group="rg-dyn", tags={"team": "A"}),
            one("dynoff", resource_group="rg-dyn", tags={"team": "a"}, power="deallocated"),
            one("other", resource_group="rg-dyn", tags={"team": "b"}),
        ],
    }


def machine_id(name: str, rg: str = "rg-patch", arc: bool = False) -> str:
    provider = "microsoft.hybridcompute/machines" if arc else "microsoft.compute/virtualmachines"
    return f"/subscriptions/{SUB}/resourcegroups/{rg}/providers/{provider}/{name}-001"


def preflight_json(capsys: pytest.CaptureFixture[str], cfg: Path, *extra: str
                   ) -> dict[str, dict[str, Any]]:
    code, out, err = run_cli(capsys, "preflight", "--config", str(cfg), "--json", *extra)
    assert code == 0, err
    return {item["configuration_name"]: item for item in json.loads(out)}


def risks(item: dict[str, Any]) -> dict[str, list[str]]:
    return {m["name"]: [r["code"] for r in m["risks"]] for m in item["machines"]}


def test_roster_risks_and_actual_before_and_after_the_run(
        standin: StandInServer, standin_world: World, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    engine = ScenarioEngine(standin_world, parse_scenario(scenario()))
    cfg = write_config(standin, tmp_path / "aumwatch.toml")

    before = preflight_json(capsys, cfg)
    main_item = before["cfg-main"]
    assert main_item["run_start"] == MAIN_START.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert main_item["frozen"] is False and main_item["window_minutes"] == 120
    assert main_item["actual"] is None
    assert risks(main_item) == {
        "arc-001": ["arc-disconnected"], "big-001": ["window-fit"], "dyn-001": [],
        "dynoff-001": ["powered-off"], "ext-001": ["extension"], "gone-001": ["deleted"],
        "never-001": ["no-assessment"], "off-001": ["powered-off"], "ok-001": [],
        "orch-001": ["orchestration"], "reboot-001": ["reboot-pending"],
        "shared-001": ["conflict"], "stale-001": ["stale-assessment"]}
    machines = {m["name"]: m for m in main_item["machines"]}
    assert machines["dyn-001"]["source"] == "dynamic" and machines["ok-001"]["source"] == "static"
    assert machines["gone-001"]["source"] == "static"
    assert all(m["id"] == m["id"].lower() for m in main_item["machines"])
    assert machines["arc-001"]["id"] == machine_id("arc", arc=True)
    # Critical + Security installed (not "other"): 23 updates * 10 min + 10 min reboot.
    assert machines["big-001"]["pending_updates"] == 23
    assert machines["big-001"]["estimated_minutes"] == 240
    assert machines["never-001"]["pending_updates"] is None
    assert machines["ok-001"]["os"] == "Windows" and machines["arc-001"]["os"] == "Linux"
    assert main_item["summary"] == {"total": 13, "at_risk": 11, "by_code": {
        "deleted": 1, "powered-off": 2, "arc-disconnected": 1, "orchestration": 1,
        "extension": 1, "no-assessment": 1, "stale-assessment": 1, "reboot-pending": 1,
        "window-fit": 1, "conflict": 1}}
    assert risks(before["cfg-overlap"]) == {"shared-001": ["conflict"]}
    soon = before["cfg-soon"]
    assert soon["frozen"] is True and risks(soon) == {"fresh-001": ["new-vm"], "steady-001": []}
    # Its run exists already (T-40 passed): the new VM missed it.
    assert soon["actual"] == {"missing": [machine_id("fresh")], "unexpected": []}

    standin_world.clock.set(MAIN_START + timedelta(minutes=1))  # type: ignore[attr-defined]
    engine.step()
    after = preflight_json(capsys, cfg, "--configuration", "CFG-MAIN")
    assert list(after) == ["cfg-main"]
    assert after["cfg-main"]["frozen"] is True
    # Left out by the run: the VM not on Customer Managed Schedules, the deleted machine.
    assert after["cfg-main"]["actual"] == {
        "missing": sorted([machine_id("gone"), machine_id("orch")]), "unexpected": []}

    code, out, _ = run_cli(capsys, "preflight", "--config", str(cfg))
    assert code == 0
    assert "cfg-main" in out and "[orchestration]" in out and "fix:" in out
    assert f"missing: {machine_id('orch')}" in out
    assert "estimate: 240 min for 23 update(s), constants: 10 min an update" in out


def test_doctor_warns_for_configurations_at_risk_and_errors_are_one_line(
        standin: StandInServer, standin_world: World, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    ScenarioEngine(standin_world, parse_scenario(scenario()))
    cfg = write_config(standin, tmp_path / "aumwatch.toml")
    code, out, _ = run_cli(capsys, "doctor", "--config", str(cfg))
    lines = [line for line in out.splitlines() if "at risk" in line]
    assert any(line.startswith("[WARN]") and "cfg-main" in line for line in lines)
    assert any("cfg-soon" in line for line in lines)
    code, out, err = run_cli(capsys, "preflight", "--config", str(cfg), "--configuration",
                             "nope")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    standin.stop()
    assert main(["preflight", "--config", str(cfg), "--json"]) == 1
    _, err = capsys.readouterr()
    assert err.startswith("aumwatch: ") and len(err.strip().splitlines()) == 1
