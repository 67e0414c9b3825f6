"""Capture and replay end to end: ``aumwatch capture`` against the stand-in and Azurite, then
the capture served as the stand-in's world gives the same ``configs``, ``runs`` and
``machines`` output, modulo the pseudonyms."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from services.azure.capture import read_tenant, scrub_capture, write_capture
from services.domain.clock import ManualClock, iso_z
from services.domain.runid import parse_run_id
from services.settings import load_settings
from services.standin.azurite import Azurite
from services.standin.events_out import build_event, encode_message
from services.standin.replay import ReplayEnvironment, ReplayError, load_capture, replay_world
from services.standin.runner import render_config, write_private_file
from services.standin.server import StandInServer
from services.standin.world import USER_CANCEL_MESSAGE, MachineResult, World
from tests.standin import NOW, RELAXED_QUOTA, SUB, add_run, config_object
from tui.cli import main

pytestmark = pytest.mark.integration

QUEUE = "aum-capture"
SECRET_IP = "10.20.30.40"
SECRET_EMAIL = "ops.lead@contoso.example"
SAS_SIGNATURE = "c2lnbmF0dXJlU2VjcmV0"
LOG_URL = f"https://acct.blob.core.windows.net/logs/run.txt?sv=2022-11-02&sp=r&sig={SAS_SIGNATURE}"


@pytest.fixture
def tenant(standin_world: World) -> dict[str, Any]:
    """Two configurations; a finished run with a failed machine (an IP and an e-mail in its
    error), a cancelled run, a pending run with two machines."""
    daily = config_object("patch-daily")
    daily["properties"]["maintenanceWindow"].update(
        {"recurEvery": "Day", "timeZone": "UTC", "startDateTime": "2026-01-01 12:30"})
    daily["tags"] = {"owner": SECRET_EMAIL}
    standin_world.add_configuration(config_object("patch-weekly", rg="rg-other"))
    done = add_run(standin_world, daily, NOW - timedelta(hours=23, minutes=30),
                   status="Completed", machines=3, machine_status="Succeeded")
    done.results[done.machine_ids[0]] = MachineResult(
        "Failed", installed=2, failed=1, error_code="KB",
        error_message=f"KB5034441 failed on patch-daily-vm000 ({SECRET_IP}); ask {SECRET_EMAIL}, "
                      f"log {LOG_URL}",
        started=done.start, ended=done.start + timedelta(minutes=42))
    done.results[done.machine_ids[1]] = MachineResult(
        "CompletedWithWarnings", installed=7, pending=1, reboot_status="Completed",
        window_exceeded=True, started=done.start, ended=done.end)
    standin_world.upsert_run(done)
    user = add_run(standin_world, daily, NOW - timedelta(days=1, hours=23, minutes=30),
                   status="Cancelled")
    user.error_message = USER_CANCEL_MESSAGE.format(at=iso_z(user.start - timedelta(minutes=20)))
    standin_world.upsert_run(user)
    pending = add_run(standin_world, daily, NOW + timedelta(minutes=30), status="Pending",
                      machines=2)
    return {"daily": daily, "done": done, "user": user, "pending": pending}


def write_config(server: StandInServer, path: Path, subscriptions: list[str],
                 azurite: Azurite | None = None) -> Path:
    info = {"arm_endpoint": server.endpoint, "ca_file": str(server.ca_file),
            "token": server.token, "subscriptions": subscriptions,
            "queue_connection_string": azurite.connection_string if azurite else "",
            "queue_name": QUEUE}
    text = render_config(info)
    if azurite is None:
        text = text.split("[queue]")[0]
    write_private_file(path, text)
    return path


@pytest.fixture
def events(azurite: Azurite, tenant: dict[str, Any]) -> Iterator[list[str]]:
    """The pending run's pre-event (base64, as Event Grid writes it) and a plain one in the
    queue the capture peeks at."""
    pending, daily = tenant["pending"], tenant["daily"]
    event = build_event(kind="pre", correlation_id=pending.correlation_id,
                        configuration_id=daily["id"], configuration_name=daily["name"],
                        start=pending.start, end=pending.end, subscription_ids=[SUB],
                        event_time=NOW - timedelta(minutes=5))
    texts = [encode_message(event), encode_message(event, "plain-json")]
    client = QueueClient.from_connection_string(azurite.connection_string, QUEUE)
    with client:
        client.create_queue()
        for text in texts:
            client.send_message(text)
        yield texts
        client.delete_queue()


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def originals(tenant: dict[str, Any]) -> list[str]:
    done = tenant["done"]
    names = [mid.rsplit("/", 1)[-1] for mid in done.machine_ids + tenant["pending"].machine_ids]
    return [SUB, "rg-patch", "rg-other", "patch-daily", "patch-weekly", SECRET_IP,
            SECRET_EMAIL, *names]


def capture_files_text(directory: Path) -> str:
    text = ""
    for path in sorted(directory.iterdir()):
        text += path.read_text(encoding="utf-8")
        if path.name == "queue.json":
            for message in json.loads(path.read_text(encoding="utf-8")):
                try:
                    text += base64.b64decode(message["content"], validate=True).decode()
                except ValueError:
                    pass
    return text


def test_capture_writes_scrubbed_files_and_says_what_it_scrubbed(
        tenant: dict[str, Any], standin: StandInServer, azurite: Azurite, events: list[str],
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(standin, tmp_path / "aumwatch.toml", [SUB], azurite)
    out = tmp_path / "capture"
    code = main(["capture", "--out", str(out), "--config", str(cfg)])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "arm.json", "configs.json", "eventgrid.json", "machines.json", "manifest.json",
        "queue.json", "runs.json"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "aumwatch-capture"
    assert manifest["counts"]["configs"] == 2
    assert manifest["counts"]["runs"] == 3
    assert manifest["counts"]["machine_runs"] == 3
    assert manifest["counts"]["machine_rows"] == 5  # 3 + 0 (cancelled, none) + 2
    assert manifest["counts"]["arm_objects"] == 2
    assert manifest["counts"]["queue_messages"] == 2
    scrubbed = manifest["scrubbed"]
    assert scrubbed["subscription"] == 1
    assert scrubbed["resource_group"] == 2
    assert scrubbed["configuration"] == 2
    assert scrubbed["machine"] == 3  # the pending run has two of the same machines
    assert scrubbed["ip"] == 1 and scrubbed["email"] == 1
    # Nothing identifying, no secret of the connection, in any file or on stdout.
    written = capture_files_text(out) + stdout
    for original in originals(tenant):
        assert original.lower() not in written.lower(), original
    assert standin.token not in written
    assert "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq" not in written
    assert SAS_SIGNATURE not in written
    assert scrubbed["secrets"] >= 1
    # The configurations and runs queries project the tenant id (issue 19): one, scrubbed.
    from services.standin.world import TENANT_ID

    assert TENANT_ID.lower() not in written.lower()
    assert "scrubbed: subscription 1, tenant 1, resource group 2, configuration 2, machine 3" \
        in stdout
    # The rows are raw: the runs query's rows, ids still well-formed run ids.
    runs = json.loads((out / "runs.json").read_text())
    for row in runs:
        parsed = parse_run_id(row["properties"]["correlationId"])
        assert parsed.configuration_name.startswith("mc-")
        assert parsed.run_name == row["name"]
    # --json prints the manifest; a second capture has other pseudonyms (its own salt).
    code = main(["capture", "--out", str(tmp_path / "again"), "--config", str(cfg),
                 "--no-queue", "--json"])
    again = json.loads(capsys.readouterr().out)
    assert code == 0 and again["counts"]["queue_messages"] == 0
    assert again["scrubbed"] == {**scrubbed, "secrets": again["scrubbed"]["secrets"]}
    assert "queue: not captured (--no-queue)" in again["problems"]
    assert json.loads((tmp_path / "again" / "configs.json").read_text())[0]["subscriptionId"] \
        != json.loads((out / "configs.json").read_text())[0]["subscriptionId"]
    # Queue messages keep their form: base64 stays base64 of the scrubbed event.
    queue = json.loads((out / "queue.json").read_text())
    first = json.loads(base64.b64decode(queue[0]["content"]))
    assert first["subject"].startswith("mc-")
    assert first["id"] == json.loads(queue[1]["content"])["id"]


def test_capture_refuses_a_directory_that_holds_files(
        standin: StandInServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(standin, tmp_path / "aumwatch.toml", [SUB])
    out = tmp_path / "full"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code = main(["capture", "--out", str(out), "--config", str(cfg), "--no-queue"])
    _, err = capsys.readouterr()
    assert code == 1
    assert "not empty" in err and err.count("\n") == 1
    assert (out / "keep.txt").read_text() == "mine"


class Unscrub:
    """Maps pseudonyms in a text back to the originals (the capture's table, in memory)."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = {k.lower(): v for k, v in table.items()}
        keys = sorted(self.table, key=len, reverse=True)
        self.pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, keys)) + r")(?![\w-])",
                                  re.IGNORECASE)

    def __call__(self, value: Any) -> Any:
        text = self.pattern.sub(lambda m: self.table[m.group(1).lower()], json.dumps(value))
        return json.loads(text.lower())


def test_capture_replay_round_trip_gives_the_same_configs_runs_and_machines(
        tenant: dict[str, Any], standin: StandInServer,
        standin_factory: Callable[..., StandInServer], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(standin, tmp_path / "original.toml", [SUB])
    run_ids = [tenant[k].correlation_id for k in ("done", "user", "pending")]
    before = {
        "configs": cli_json(capsys, "configs", "--config", str(cfg)),
        "runs": cli_json(capsys, "runs", "--config", str(cfg)),
        **{rid: cli_json(capsys, "machines", rid, "--config", str(cfg)) for rid in run_ids},
    }
    assert before["runs"] and any(m for rid in run_ids for m in before[rid])

    settings = load_settings({}, config_path=cfg)
    raw = asyncio.run(read_tenant(settings, clock=ManualClock(NOW), queue=False))
    captured = scrub_capture(raw)
    out = tmp_path / "capture"
    write_capture(captured, out)

    capture = load_capture(out)
    world = replay_world(capture, ManualClock(NOW))
    replayed = standin_factory(world, quota_limit=RELAXED_QUOTA)
    cfg2 = write_config(replayed, tmp_path / "replay.toml", list(world.subscriptions))
    scrubber = captured.scrubber
    after = {
        "configs": cli_json(capsys, "configs", "--config", str(cfg2)),
        "runs": cli_json(capsys, "runs", "--config", str(cfg2)),
        **{rid: cli_json(capsys, "machines", scrubber.scrub_text(rid), "--config", str(cfg2))
           for rid in run_ids},
    }
    # The replay shows pseudonyms, never the originals...
    shown = json.dumps(list(after.values())).lower()  # (keyed by the original run ids)
    for original in originals(tenant):
        assert original.lower() not in shown, original
    # ...and, mapped back, exactly what the tenant showed (less the secret, never written).
    unscrub = Unscrub(scrubber.table())
    for key, value in before.items():
        expected = json.dumps(value).replace(LOG_URL, LOG_URL.split("?")[0] + "?REDACTED")
        assert unscrub(after[key]) == json.loads(expected.lower()), key


def test_replay_environment_serves_the_capture_and_moves_time_forward(
        tenant: dict[str, Any], standin: StandInServer, azurite: Azurite, events: list[str],
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(standin, tmp_path / "aumwatch.toml", [SUB], azurite)
    out = tmp_path / "capture"
    settings = load_settings({}, config_path=cfg)
    raw = asyncio.run(read_tenant(settings, clock=ManualClock(NOW)))
    captured = scrub_capture(raw)
    write_capture(captured, out)
    pending_id = captured.scrubber.scrub_text(tenant["pending"].correlation_id)

    with ReplayEnvironment(out, step_interval=0.2) as env:
        info = env.info()
        assert abs(env.clock.now() - NOW) < timedelta(minutes=1)  # the capture's moment
        # The captured queue messages are in the replay's Azurite, scrubbed, in order.
        with QueueClient.from_connection_string(info["queue_connection_string"],
                                                info["queue_name"]) as client:
            texts = [m.content for m in client.peek_messages(max_messages=32)]
        assert texts == [m["content"] for m in json.loads((out / "queue.json").read_text())]
        runs = cli_json(capsys, "runs", "--config", info["config_file"])
        pending = next(r for r in runs if r["correlation_id"].lower() == pending_id.lower())
        assert pending["status"] == "Pending" and pending["machines_total"] == 2
        # The scenario engine moves the captured schedule forward: the run starts.
        env.clock.shift(timedelta(minutes=31))
        assert env.engine is not None
        env.engine.step()
        run = env.world.get_run(pending_id)
        assert run is not None and run.status == "InProgress"
        assert sorted(run.results) == sorted(run.machine_ids) and len(run.machine_ids) == 2
        # And the next day's run appears at its T-40 with the machines the capture showed
        # in this configuration's runs (three: the finished run had one more).
        env.clock.shift(timedelta(hours=23, minutes=30))
        env.engine.step()
        next_id = pending_id[:-14] + (tenant["pending"].start + timedelta(days=1)).strftime(
            "%Y%m%d%H%M%S")
        upcoming = env.world.get_run(next_id)
        assert upcoming is not None and upcoming.status == "Pending"
        assert len(upcoming.machine_ids) == 3
        assert {m.lower() for m in run.machine_ids} < {m.lower() for m in upcoming.machine_ids}


def test_replay_of_a_directory_that_is_no_capture_is_one_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ReplayError, match=r"manifest\.json: missing"):
        load_capture(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "aumwatch-capture", "format_version": 1,'
                                            ' "captured_at": "2026-03-10T12:00:00Z"}')
    (tmp_path / "configs.json").write_text("[1]")
    with pytest.raises(ReplayError, match=r"configs\.json: item 0 is not a JSON object"):
        load_capture(tmp_path)
    code = main(["sim", "--replay", str(tmp_path)])
    _, err = capsys.readouterr()
    assert code == 1 and "configs.json" in err and err.count("\n") == 1


def test_sim_replay_command_serves_the_capture_until_sigterm(
        tenant: dict[str, Any], standin: StandInServer, azurite: Azurite, events: list[str],
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import signal
    import subprocess
    import sys

    import psutil

    from services.standin.azurite import repo_root

    cfg = write_config(standin, tmp_path / "aumwatch.toml", [SUB], azurite)
    before = {"configs": cli_json(capsys, "configs", "--config", str(cfg)),
              "runs": cli_json(capsys, "runs", "--config", str(cfg))}
    settings = load_settings({}, config_path=cfg)
    captured = scrub_capture(asyncio.run(read_tenant(settings, clock=ManualClock(NOW))))
    out = tmp_path / "capture"
    write_capture(captured, out)

    proc = subprocess.Popen([sys.executable, "-m", "tui", "sim", "--replay", str(out)],
                            cwd=repo_root(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.communicate(timeout=30)[1]
        info = json.loads(line)
        children = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        assert info["subscriptions"] == [captured.scrubber.pseudonym(SUB)]
        # The replay runs on its own clock from the capture's moment (nothing happens in
        # the seconds between): the same output, modulo the pseudonyms.
        unscrub = Unscrub(captured.scrubber.table())
        for command in ("configs", "runs"):
            after = cli_json(capsys, command, "--config", info["config_file"])
            assert unscrub(after) == json.loads(json.dumps(before[command]).lower()), command
        with QueueClient.from_connection_string(info["queue_connection_string"],
                                                info["queue_name"]) as client:
            assert len(client.peek_messages(max_messages=32)) == len(events)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert not [p for p in children if psutil.pid_exists(p)
                    and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_replay_reads_rows_as_resource_graph_returns_them(tmp_path: Path) -> None:
    """Lower-case ids, patch rows ``<machine>/patchInstallationResults/<guid>``, machine rows
    with the schedule's times: each machine's own finish comes from its patch row once
    terminal, and is unknown while it runs."""
    cid = ("/subscriptions/5c0bbed0-0000-4000-8000-000000000001/resourcegroups/rg-001/providers/"
           "microsoft.maintenance/maintenanceconfigurations/mc-001/providers/"
           "microsoft.maintenance/applyupdates/20260310110000")
    config_id = cid.split("/providers/microsoft.maintenance/applyupdates/")[0]
    start, end = "2026-03-10T11:00:00Z", "2026-03-10T14:00:00Z"
    vm = "/subscriptions/5c0bbed0-0000-4000-8000-000000000001/resourcegroups/rg-001/providers/" \
         "microsoft.compute/virtualmachines/vm-{}"

    def machine_row(n: int, status: str, patch: dict[str, Any] | None) -> dict[str, Any]:
        return {"id": f"{vm.format(n)}/providers/microsoft.maintenance/applyupdates/x",
                "machineId": vm.format(n),
                "properties": {"correlationId": cid, "resourceId": vm.format(n),
                               "status": status, "startDateTime": start, "endDateTime": end},
                "patch": patch}

    done = {"status": "Succeeded", "installedPatchCount": 4, "rebootStatus": "Completed",
            "startDateTime": "2026-03-10T11:00:05Z",
            "lastModifiedDateTime": "2026-03-10T11:47:00Z", "maintenanceWindowExceeded": False}
    running = {"status": "InProgress", "installedPatchCount": 1,
               "startDateTime": "2026-03-10T11:00:05Z", "lastModifiedDateTime": None}
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"format": "aumwatch-capture", "format_version": 1, "captured_at": iso_z(NOW)}))
    parts = {
        "configs": [], "arm": [], "queue": [],
        "runs": [{"id": cid, "name": "20260310110000", "properties": {
            "correlationId": cid, "maintenanceConfigurationId": config_id,
            "status": "InProgress", "startDateTime": start, "endDateTime": end,
            "lastUpdateTime": "2026-03-10T11:47:00Z"}}],
        "machines": [{"run": cid, "rows": [machine_row(1, "Completed", done),
                                           machine_row(2, "InProgress", running),
                                           machine_row(3, "Pending", None)]}],
    }
    for key, value in parts.items():
        (tmp_path / f"{key}.json").write_text(json.dumps(value))
    world = replay_world(load_capture(tmp_path), ManualClock(NOW))
    run = world.get_run(cid)
    assert run is not None and run.status == "InProgress"
    results = [run.results[m] for m in run.machine_ids]
    assert [r.status for r in results] == ["Succeeded", "InProgress", "NotStarted"]
    assert [iso_z(r.ended) if r.ended else None for r in results] == [
        "2026-03-10T11:47:00Z", None, None]
    assert results[0].installed == 4 and results[0].reboot_status == "Completed"
    assert iso_z(run.updated) == "2026-03-10T11:47:00Z"


# -- issue 22 item 8: the capture holds the Event Grid wiring; the replay judges it the same ---
def test_replay_keeps_the_captured_wiring_and_its_failing_verdict(
        tenant: dict[str, Any], standin: StandInServer, standin_world: World, azurite: Azurite,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from services.domain.events import PRE_EVENT_TYPE
    from services.standin.eventgrid import WEBHOOK_URL

    daily, weekly = tenant["daily"]["id"], config_object("patch-weekly", rg="rg-other")["id"]
    account = standin_world.add_storage_account(SUB, "rg-aumwatch")
    # patch-daily: its queue subscription's endpoint fails (dead-lettered); patch-weekly:
    # delivered fine, beside an old webhook subscription on its topic that fails.
    standin_world.eventgrid.wire(daily, "failing", queue=QUEUE, account_id=account)
    weekly_topic, weekly_sub = standin_world.eventgrid.wire(weekly, "ok", queue=QUEUE,
                                                            account_id=account)
    assert weekly_topic is not None and weekly_sub is not None
    status, _, _ = standin_world.eventgrid.put_subscription(
        f"{weekly_topic}/eventSubscriptions/old-hook", {"properties": {"destination": {
            "endpointType": "WebHook", "properties": {"endpointUrl": WEBHOOK_URL}}}})
    assert status == 201
    at = NOW - timedelta(hours=2)
    for config in (daily, weekly):
        for route in standin_world.eventgrid.routes(config, PRE_EVENT_TYPE, at):
            if route.failure is None:
                standin_world.eventgrid.record(route.topic_id, "DeliverySuccessCount", at,
                                               subscription=route.subscription_name)
    cfg = write_config(standin, tmp_path / "aumwatch.toml", [SUB], azurite)
    before = {w["configuration_name"]: w for w in
              cli_json(capsys, "subscriptions", "--config", str(cfg))}
    assert before["patch-daily"]["verdict"] == "failing"
    assert before["patch-weekly"]["verdict"] == "ok"

    settings = load_settings({}, config_path=cfg)
    captured = scrub_capture(asyncio.run(read_tenant(settings, clock=ManualClock(NOW),
                                                     queue=False)))
    out = tmp_path / "capture"
    write_capture(captured, out)
    # Scrubbed: the webhook keeps its host only, the key and path never reach a file.
    text = capture_files_text(out)
    assert "standin-secret-key-42" not in text and "/api/maintenance-events" not in text
    assert "hooks.example.invalid" in text
    daily_topic = standin_world.eventgrid.topic_for_source(daily)
    assert daily_topic is not None
    for original in (SUB, "patch-daily", "patch-weekly", "devstoreaccount1",
                     daily_topic.metric_resource_id):
        assert original.lower() not in text.lower(), original
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["system_topics"] == 2
    assert manifest["counts"]["event_subscriptions"] == 3

    with ReplayEnvironment(out, step_interval=0.2) as env:
        assert env.replay_problems == []
        info = env.info()
        after = {captured.scrubber.table()[w["configuration_name"].lower()]: w
                 for w in cli_json(capsys, "subscriptions", "--config", info["config_file"])}
        for name in ("patch-daily", "patch-weekly"):
            assert after[name]["verdict"] == before[name]["verdict"], after[name]
            assert after[name]["health"]["failed"] == before[name]["health"]["failed"]
        assert "through subscription aumwatch-events" in after["patch-daily"]["reason"]
        assert "OLD-HOOK" in after["patch-weekly"]["reason"]
        # doctor on the replay: its clock is the capture's, months behind this machine's,
        # and that is no clock problem of this machine.
        code = main(["doctor", "--config", info["config_file"], "--json"])
        checks = json.loads(capsys.readouterr().out)
        [clock] = [c for c in checks if c["check"] == "clock"]
        assert clock["status"] == "skip", clock
        assert "the stand-in replays a capture made at 2026-03-10T12:00:00Z" in clock["detail"]
        assert code == 0 or any(c["status"] == "fail" and c["check"] != "clock" for c in checks)
