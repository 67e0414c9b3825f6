"""The data commands (configs, runs, machines, config show, doctor) against the stand-in."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.domain.clock import iso_z
from services.standin.runner import render_config, write_private_file
from services.standin.server import StandInServer
from services.standin.world import USER_CANCEL_MESSAGE, MachineResult, World
from tests.standin import NOW, SUB, add_run, config_object
from tui.cli import main

pytestmark = pytest.mark.integration

CONFIG_KEYS = {"id", "name", "resource_group", "subscription_id", "time_zone", "recur_every",
               "duration", "next_start", "next_end", "phase"}
RUN_KEYS = {"correlation_id", "configuration_id", "configuration_name", "run_name", "status",
            "start", "end", "phase", "expected", "cancelled_by", "machines_total",
            "machines_succeeded", "machines_failed"}
MACHINE_KEYS = {"resource_id", "name", "status", "installed", "failed", "pending", "reboot",
                "window_exceeded", "error"}


def write_config(server: StandInServer, path: Path, **extra: str) -> Path:
    info = {"arm_endpoint": server.endpoint, "ca_file": str(server.ca_file),
            "token": server.token, "subscriptions": [SUB],
            "queue_connection_string": extra.get("queue_connection_string", ""),
            "queue_name": extra.get("queue_name", "aum-events")}
    text = render_config(info)
    if not extra.get("queue_connection_string"):
        text = text.split("[queue]")[0]  # no queue: the doctor must say so, not fail
    write_private_file(path, text)
    return path


@pytest.fixture
def scenario(standin_world: World) -> dict[str, Any]:
    daily = config_object("patch-daily")
    daily["properties"]["maintenanceWindow"].update(
        {"recurEvery": "Day", "timeZone": "UTC", "startDateTime": "2026-01-01 12:30"})
    standin_world.add_configuration(config_object("patch-weekly", rg="rg-other"))
    done = add_run(standin_world, daily, NOW - timedelta(hours=23, minutes=30),
                   status="Completed", machines=2, machine_status="Succeeded")
    done.results[done.machine_ids[0]] = MachineResult(
        "Failed", installed=2, failed=1, error_code="KB",
        error_message="KB5034441 failed: 0x80070643\x1b[31m")
    standin_world.upsert_run(done)
    user = add_run(standin_world, daily, NOW - timedelta(days=1, hours=23, minutes=30),
                   status="Cancelled")
    user.error_message = USER_CANCEL_MESSAGE.format(at=iso_z(user.start - timedelta(minutes=20)))
    standin_world.upsert_run(user)
    pending = add_run(standin_world, daily, NOW + timedelta(minutes=30), status="Pending",
                      machines=2)
    return {"done": done, "user": user, "pending": pending}


@pytest.fixture
def cfg(standin: StandInServer, tmp_path: Path) -> Path:
    return write_config(standin, tmp_path / "aumwatch.toml")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_configs_json_has_the_contract_keys_and_next_run_phase(
        scenario: dict[str, Any], cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "configs", "--config", str(cfg), "--json")
    assert code == 0
    items = json.loads(out)
    assert [i["name"] for i in items] == ["patch-daily", "patch-weekly"]
    assert all(CONFIG_KEYS <= set(i) for i in items)
    daily = items[0]
    # The CLI's clock is corrected by the server's Date header (the World is in 2026-03-10).
    assert daily["next_start"] == "2026-03-10T12:30:00Z"
    assert daily["next_end"] == "2026-03-10T15:30:00Z"
    assert daily["phase"] == "cancellable"
    assert items[1]["next_start"] == "2026-03-14T01:00:00Z"  # Saturday 02:00 Amsterdam


def test_configs_table_shows_utc_and_zone_times(
        scenario: dict[str, Any], cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--config", str(cfg), "configs")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("NAME") and "NEXT START (ZONE)" in lines[0]
    weekly = next(line for line in lines if line.startswith("patch-weekly"))
    assert "2026-03-14 01:00Z" in weekly and "2026-03-14 02:00 CET" in weekly


def test_runs_json_merges_observed_and_expected(
        scenario: dict[str, Any], cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "runs", "--config", str(cfg), "--json")
    assert code == 0
    runs = json.loads(out)
    assert all(RUN_KEYS <= set(r) for r in runs)
    by_id = {r["correlation_id"].lower(): r for r in runs}
    done = by_id[scenario["done"].correlation_id.lower()]
    assert done["status"] == "Completed" and done["phase"] == "finished"
    assert (done["machines_total"], done["machines_succeeded"], done["machines_failed"]) == \
        (2, 1, 1)
    assert done["expected"] is False and done["start"] == "2026-03-09T12:30:00Z"
    assert by_id[scenario["user"].correlation_id.lower()]["cancelled_by"] == "user"
    pending = by_id[scenario["pending"].correlation_id.lower()]
    assert pending["expected"] is False and pending["phase"] == "cancellable"
    expected = [r for r in runs if r["expected"]]
    assert expected and all(r["status"] == "Scheduled" for r in expected)
    assert len(by_id) == len(runs)


def test_runs_filter_by_configuration_and_since(
        scenario: dict[str, Any], cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "runs", "--config", str(cfg), "--json",
                           "--configuration", "PATCH-WEEKLY")
    assert code == 0
    runs = json.loads(out)
    assert runs and {r["configuration_name"] for r in runs} == {"patch-weekly"}
    assert all(r["expected"] for r in runs)
    code, out, _ = run_cli(capsys, "runs", "--config", str(cfg), "--json", "--since", "1d",
                           "--configuration", "patch-daily")
    observed = [r for r in json.loads(out) if not r["expected"]]
    assert {r["run_name"] for r in observed} == {"20260309123000", "20260310123000"}


def test_runs_unknown_configuration_is_one_line(
        scenario: dict[str, Any], cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "runs", "--config", str(cfg), "--configuration", "nope")
    assert code == 1 and out == ""
    assert err.strip().count("\n") == 0 and "nope" in err


def test_runs_table(scenario: dict[str, Any], cfg: Path,
                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "runs", "--config", str(cfg))
    assert code == 0
    assert "CANCELLED BY" in out.splitlines()[0]
    assert any("Scheduled (expected)" in line for line in out.splitlines())
    assert "1 ok / 1 failed / 2" in out


def test_machines_json_and_table_escape_untrusted_text(
        scenario: dict[str, Any], cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = scenario["done"].correlation_id
    code, out, _ = run_cli(capsys, "machines", run_id, "--config", str(cfg), "--json")
    assert code == 0
    machines = json.loads(out)
    assert len(machines) == 2 and all(MACHINE_KEYS <= set(m) for m in machines)
    failed = next(m for m in machines if m["status"] == "Failed")
    assert failed["failed"] == 1 and failed["installed"] == 2
    assert failed["error"].startswith("KB5034441 failed")
    code, out, _ = run_cli(capsys, "machines", run_id, "--config", str(cfg))
    assert code == 0 and "\x1b" not in out and "\\x1b[31m" in out


def test_machines_bad_run_id_is_one_line(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "machines", "garbage", "--config", str(cfg))
    assert code == 1 and err.startswith("aumwatch: not a run id")


def test_config_show_masks_the_token_and_names_sources(
        standin: StandInServer, cfg: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUMWATCH_POLL_INTERVAL", "20s")
    code, out, _ = run_cli(capsys, "config", "show", "--config", str(cfg), "--json",
                           "--tenant", "t-flag")
    assert code == 0
    items = {i["name"]: i for i in json.loads(out)}
    assert items["token"] == {"name": "token", "value": "********", "source": "file"}
    assert items["tenant"]["source"] == "flag" and items["poll_interval"]["source"] == "env"
    assert items["cloud"]["source"] == "file" and items["opens_before"]["source"] == "default"
    assert standin.token not in out
    code, out, _ = run_cli(capsys, "config", "show", "--config", str(cfg))
    assert code == 0 and standin.token not in out and "********" in out


def test_expired_token_is_one_line_and_the_next_call_works(
        scenario: dict[str, Any], standin: StandInServer, cfg: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    standin.faults.set("expired-token", count=1, scope="graph")
    code, out, err = run_cli(capsys, "configs", "--config", str(cfg))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "HTTP 401" in err and "Traceback" not in err
    code, out, _ = run_cli(capsys, "configs", "--config", str(cfg), "--json")
    assert code == 0 and len(json.loads(out)) == 2


def test_dropped_connection_is_one_line(
        scenario: dict[str, Any], standin: StandInServer, cfg: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Dropped twice: the query and its one resend (services/azure/transport.py).
    standin.faults.set("drop", count=2, scope="graph")
    code, _, err = run_cli(capsys, "runs", "--config", str(cfg))
    assert code == 1 and err.count("\n") == 1 and "connection failed" in err


def test_debug_shows_the_traceback(
        scenario: dict[str, Any], standin: StandInServer, cfg: Path) -> None:
    from tui.cli import CliError

    standin.faults.set("expired-token", count=1, scope="graph")
    with pytest.raises(CliError):
        main(["configs", "--config", str(cfg), "--debug"])


def test_doctor_reports_skew_missing_queue_and_schedule_lint(
        standin_world: World, scenario: dict[str, Any], cfg: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bad = config_object("patch-bad-zone")
    bad["properties"]["maintenanceWindow"]["timeZone"] = "Mars Standard Time"
    standin_world.add_configuration(bad)
    short = config_object("patch-too-short")
    short["properties"]["maintenanceWindow"]["duration"] = "01:00"
    standin_world.add_configuration(short)
    code, out, _ = run_cli(capsys, "doctor", "--config", str(cfg), "--json")
    checks = json.loads(out)
    by = {}
    for c in checks:
        by.setdefault(c["check"], []).append(c)
    assert by["credentials"][0]["status"] == "ok"
    assert by["resource graph"][0]["status"] == "ok"
    assert "4 maintenance configuration" in by["configurations"][0]["detail"]
    # The stand-in's clock is in 2026-03-10, far from the real one: a skew failure.
    assert by["clock"][0]["status"] == "fail" and by["clock"][0]["fix"]
    assert by["queue"][0]["status"] == "warn"
    assert by["schedule patch-bad-zone"][0]["status"] == "fail"
    assert "Mars" in by["schedule patch-bad-zone"][0]["detail"]
    assert "1:30..3:55" in by["schedule patch-too-short"][0]["detail"]
    assert code == 1  # failures make a non-zero exit
    code, out, _ = run_cli(capsys, "doctor", "--config", str(cfg))
    assert "[FAIL] schedule patch-bad-zone" in out and "fix:" in out


# --- the default demo scenario (stand-in + Azurite) ---------------------------------------


def test_demo_scenario_commands_and_doctor(standin_demo: Any,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(standin_demo.config_path)
    code, out, _ = run_cli(capsys, "configs", "--config", cfg, "--json")
    assert code == 0
    configs = json.loads(out)
    assert configs and all(CONFIG_KEYS <= set(c) for c in configs)
    code, out, _ = run_cli(capsys, "runs", "--config", cfg, "--json")
    assert code == 0
    runs = json.loads(out)
    assert any(not r["expected"] for r in runs) and any(r["expected"] for r in runs)
    observed = next(r for r in runs if not r["expected"] and r["machines_total"])
    code, out, _ = run_cli(capsys, "machines", observed["correlation_id"], "--config", cfg,
                           "--json")
    assert code == 0 and len(json.loads(out)) == observed["machines_total"]
    code, out, _ = run_cli(capsys, "doctor", "--config", cfg, "--json")
    checks = {c["check"]: c for c in json.loads(out) if not c["check"].startswith("schedule")}
    assert checks["clock"]["status"] == "ok"
    assert checks["queue"]["status"] == "ok" and "mode peek" in checks["queue"]["detail"]
    assert checks["configurations"]["status"] == "ok"


# --- maintenance scopes (issue 14, point 8) ---------------------------------------------------


def test_patch_views_show_guest_patching_unless_all_scopes_are_asked_for(
        standin_world: World, scenario: dict[str, Any], cfg: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    host = config_object("host-updates")
    host["properties"]["maintenanceScope"] = "Host"
    host_run = add_run(standin_world, host, NOW - timedelta(hours=2), status="Completed")
    code, out, _ = run_cli(capsys, "configs", "--config", str(cfg), "--json")
    assert code == 0
    scopes = {c["name"]: c["scope"] for c in json.loads(out)}
    assert scopes == {"patch-daily": "InGuestPatch", "patch-weekly": "InGuestPatch"}
    code, out, _ = run_cli(capsys, "configs", "--config", str(cfg), "--json", "--all-scopes")
    assert {c["name"]: c["scope"] for c in json.loads(out)}["host-updates"] == "Host"

    code, out, _ = run_cli(capsys, "runs", "--config", str(cfg), "--json")
    runs = json.loads(out)
    assert host_run.correlation_id.lower() not in {r["correlation_id"].lower() for r in runs}
    assert {r["scope"] for r in runs} == {"InGuestPatch"}
    code, out, _ = run_cli(capsys, "runs", "--config", str(cfg), "--json", "--all-scopes")
    by_id = {r["correlation_id"].lower(): r for r in json.loads(out)}
    assert by_id[host_run.correlation_id.lower()]["scope"] == "Host"
    # The setting does what the flag does.
    monkeypatch.setenv("AUMWATCH_INCLUDE_OTHER_SCOPES", "true")
    code, out, _ = run_cli(capsys, "runs", "--config", str(cfg), "--json")
    assert host_run.correlation_id.lower() in {r["correlation_id"].lower()
                                               for r in json.loads(out)}


def test_machines_json_end_is_each_machines_own_finish_and_null_while_it_runs(
        standin_world: World, scenario: dict[str, Any], cfg: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    pending = scenario["pending"]
    started = pending.start + timedelta(minutes=2)
    pending.results[pending.machine_ids[0]] = MachineResult("InProgress", started=started)
    pending.results[pending.machine_ids[1]] = MachineResult(
        "Succeeded", started=started, ended=started + timedelta(minutes=9))
    standin_world.upsert_run(pending)
    # As in Azure, machine-level rows carry the schedule's start and end (the stand-in learns
    # this on another branch; here the rows are reshaped before the real KQL runs on them).
    tables = standin_world.tables

    def schedule_times() -> dict[str, list[dict[str, Any]]]:
        out = tables()
        for row in out["maintenanceresources"]:
            if row["type"] == "microsoft.maintenance/applyupdates":
                row["properties"]["startDateTime"] = iso_z(pending.start)
                row["properties"]["endDateTime"] = iso_z(pending.end)
        return out

    monkeypatch.setattr(standin_world, "tables", schedule_times)
    code, out, _ = run_cli(capsys, "machines", pending.correlation_id, "--config", str(cfg),
                           "--json")
    assert code == 0
    ends = {m["status"]: m["end"] for m in json.loads(out)}
    assert ends == {"InProgress": None, "Succeeded": iso_z(started + timedelta(minutes=9))}


def test_runs_shows_observed_runs_and_each_configurations_next_expected_run(
        scenario: dict[str, Any], cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Issue 20: dozens of future "Scheduled (expected)" rows came before any real run.
    code, out, err = run_cli(capsys, "runs", "--config", str(cfg), "--json")
    assert code == 0
    runs = json.loads(out)
    expected = [r for r in runs if r["expected"]]
    assert sorted(r["configuration_name"] for r in expected) == ["patch-daily", "patch-weekly"]
    observed = {r["correlation_id"].lower() for r in runs if not r["expected"]}
    assert {s.correlation_id.lower() for s in scenario.values()} <= observed
    code, out, err = run_cli(capsys, "runs", "--config", str(cfg), "--json", "--all")
    every = json.loads(out)
    assert len([r for r in every if r["expected"]]) > len(expected)
    assert {r["correlation_id"] for r in runs} <= {r["correlation_id"] for r in every}
    # The next expected run of each is the earliest one --all lists.
    for name in ("patch-daily", "patch-weekly"):
        first = min((r for r in every if r["expected"] and r["configuration_name"] == name),
                    key=lambda r: r["start"])
        assert first in runs
    code, out, err = run_cli(capsys, "runs", "--config", str(cfg))
    assert sum("(expected)" in line for line in out.splitlines()) == 2
    assert "later expected run(s) not shown (--all shows them)" in err


def test_the_dashboards_prefetch_reads_the_configurations(
        scenario: dict[str, Any], cfg: Path) -> None:
    # Issue 20: the dashboard's first query is sent from a thread before Textual starts.
    from services.settings import load_settings
    from tui.cli.dashboard import Prefetch

    prefetch = Prefetch(load_settings({}, env={}, config_path=cfg)).start()
    fetched = prefetch.result.result(timeout=60)
    assert {c.name for c in fetched.items} >= {"patch-daily", "patch-weekly"}
