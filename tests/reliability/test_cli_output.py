"""Hostile strings and secrets through every CLI command, against the stand-in and Azurite.

The stand-in holds a configuration whose name and tags, a run whose error message, a machine
whose error and a queue event whose subject carry Rich/Textual markup, ANSI and OSC escapes
(OSC 52 clipboard write, OSC 8 hyperlink), BEL, C1 controls and a bidi override. Every command
(tables and ``--json``) must write bytes with no ESC, BEL or other C0 control except newline
and tab, no C1 control, and valid JSON that still carries the strings (escaped by JSON).

The same run checks secrets: the stand-in's token and the queue connection string's account
key must appear in no output (stdout, stderr, ``--debug`` tracebacks), no file the commands
wrote (journal database, WAL, logs), and ``config show`` must mask them. The config file is
0600 as written; made group-readable, the CLI warns.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.standin.azurite import ACCOUNT_KEY, Azurite
from services.standin.runner import render_config, write_private_file
from services.standin.server import StandInServer
from services.standin.world import MachineResult, World
from tests.reliability.conftest import Tally
from tests.standin import NOW, SUB, add_run, config_object
from tui.cli import main

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ("[bold red]boom[/] [link=https://evil]x[/link] \x1b[31mred\x1b[0m "
           "\x1b]52;c;cHduZWQ=\x07 \x1b]8;;https://evil/\x1b\\click\x1b]8;;\x1b\\ "
           "\x9b2J \x07 \x00 \r \u202egnp.exe")
# Bytes no output may contain: C0 controls except \t and \n, DEL, and (in UTF-8) C1 controls.
FORBIDDEN = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")



@pytest.fixture
def hostile_world(standin_world: World) -> dict[str, Any]:
    config = config_object("patch-hostile")
    config["name"] = "patch " + HOSTILE
    config["tags"] = {"owner": HOSTILE, HOSTILE[:20]: "x"}
    config["properties"]["maintenanceWindow"].update(
        {"recurEvery": "Day", "timeZone": "UTC", "startDateTime": "2026-01-01 12:30"})
    done = add_run(standin_world, config, NOW - timedelta(hours=23, minutes=30),
                   status="Failed", machines=1, machine_status="Failed")
    done.error_message = HOSTILE
    done.results[done.machine_ids[0]] = MachineResult("Failed", failed=1, error_code="X",
                                                      error_message=HOSTILE)
    standin_world.upsert_run(done)
    weird = add_run(standin_world, config, NOW - timedelta(hours=47, minutes=30),
                    status="Status" + HOSTILE)  # an unknown status, hostile too
    pending = add_run(standin_world, config, NOW + timedelta(minutes=30), status="Pending")
    return {"done": done, "pending": pending, "weird": weird}


@pytest.fixture
async def env(standin: StandInServer, azurite: Azurite, hostile_world: dict[str, Any],
              tmp_path: Path) -> dict[str, Any]:
    from services.azure.eventsource import make_queue_client
    from tests.reliability.test_queue_input import _b64, _event

    name = f"q{uuid.uuid4().hex[:12]}"
    client = make_queue_client(name, connection_string=azurite.connection_string)
    async with client:
        await client.create_queue()
        event = _event("Microsoft.Maintenance.PreMaintenanceEvent", subject=HOSTILE)
        await client.send_message(_b64(json.dumps(event).encode()))
        await client.send_message(_b64(HOSTILE.encode()))  # undecodable, hostile
    data_dir = tmp_path / "data"
    cfg = tmp_path / "aumwatch.toml"
    text = render_config({
        "arm_endpoint": standin.endpoint, "ca_file": str(standin.ca_file),
        "token": standin.token, "subscriptions": [SUB],
        "queue_connection_string": azurite.connection_string, "queue_name": name})
    text += f'\n[paths]\ndata_dir = {json.dumps(str(data_dir))}\n'
    write_private_file(cfg, text)
    return {"cfg": cfg, "data_dir": data_dir, "token": standin.token,
            "secrets": [standin.token.encode(), ACCOUNT_KEY.encode(),
                        azurite.connection_string.encode()], **hostile_world}


def run(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, bytes]:
    code = main(list(argv))
    out, err = capsysbinary.readouterr()
    return code, out, err


def commands(env: dict[str, Any]) -> list[list[str]]:
    cfg = ["--config", str(env["cfg"])]
    done, pending = env["done"].correlation_id, env["pending"].correlation_id
    out: list[list[str]] = []
    for json_flag in ([], ["--json"]):
        out += [["configs", *cfg, *json_flag], ["runs", *cfg, *json_flag],
                ["machines", done, *cfg, *json_flag], ["config", "show", *cfg, *json_flag],
                ["doctor", *cfg, *json_flag], ["events", "tail", *cfg, *json_flag]]
    out.append(["cancel", pending, "--yes", "--json", *cfg])
    # Issue 12: the run report, in its three formats.
    out += [["report", done, "--format", fmt, *cfg] for fmt in ("md", "json", "html")]
    return out


def _clean_bytes(blob: bytes, what: str) -> None:
    match = FORBIDDEN.search(blob)
    assert match is None, f"{what}: control byte {match.group()!r} at {match.start()}: " \
        f"{blob[max(0, match.start() - 40): match.start() + 20]!r}"


def test_hostile_strings_are_literal_and_secrets_absent_in_every_command(
        env: dict[str, Any], capsysbinary: pytest.CaptureFixture[bytes], tally: Tally) -> None:
    outputs: list[bytes] = []
    for argv in commands(env):
        code, out, err = run(capsysbinary, *argv)
        what = "aumwatch " + " ".join(argv[:3])
        assert code in (0, 1), f"{what}: exit {code}: {err!r}"
        assert b"Traceback" not in err, f"{what}: {err!r}"
        _clean_bytes(out, what + " (stdout)")
        _clean_bytes(err, what + " (stderr)")
        if argv[0] == "report":
            assert code == 0, f"{what}: {err!r}"  # a report of a hostile run is written
        if ("--json" in argv or argv[:1] + argv[3:4] == ["report", "json"]) and code == 0:
            text = out.decode()
            items = [json.loads(line) for line in text.splitlines()] if argv[0] == "events" \
                else json.loads(text)
            assert items is not None
        outputs += [out, err]
        tally.add("hostile strings: CLI command outputs", injected=1, survived=1)
    everything = b"".join(outputs)
    # The hostile text reached the output, escaped, in the data commands.
    assert b"[bold red]boom[/]" in everything
    assert b"\\x1b]52" in everything or b"\\u001b]52" in everything
    for secret in env["secrets"]:
        assert secret not in everything
    _no_secret_in_files(env["data_dir"], env["secrets"])
    tally.add("secrets: outputs and files checked", injected=len(outputs), survived=len(outputs))


def _no_secret_in_files(root: Path, secrets: list[bytes]) -> None:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name.startswith("journal") for p in files), files  # the journal was written
    for path in files:
        blob = path.read_bytes()
        for secret in secrets:
            assert secret not in blob, f"a secret is in {path}"


def test_debug_tracebacks_carry_no_secret(env: dict[str, Any], standin: StandInServer) -> None:
    standin.faults.set("expired-token", scope="all")
    try:
        for argv in (["configs", "--debug"], ["cancel", env["pending"].correlation_id, "--yes",
                                              "--debug"]):
            proc = subprocess.run([sys.executable, "-m", "tui", *argv, "--config",
                                   str(env["cfg"])], cwd=ROOT, capture_output=True,
                                  timeout=120)
            assert proc.returncode != 0
            for secret in env["secrets"]:
                assert secret not in proc.stdout + proc.stderr, argv
    finally:
        standin.faults.clear()


def test_config_file_is_0600_and_a_readable_one_is_warned_about(
        env: dict[str, Any], capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    cfg: Path = env["cfg"]
    assert cfg.stat().st_mode & 0o777 == 0o600
    code, _, err = run(capsysbinary, "config", "show", "--config", str(cfg))
    assert code == 0 and b"readable" not in err
    os.chmod(cfg, 0o644)
    code, out, err = run(capsysbinary, "config", "show", "--config", str(cfg))
    assert code == 0 and b"readable by group or others" in err and b"chmod 600" in err
    assert env["token"].encode() not in out + err
