"""``aumwatch report`` against the stand-in and a real Azurite queue, end to end: a pre-event
goes through the queue into the journal (``events tail --mode consume``), the run is cancelled
through the real Canceller (``aumwatch cancel``), and the report tells that story."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.azure.journal import Journal
from services.domain.clock import iso_z
from services.domain.events import decode_message
from services.standin.azurite import Azurite
from services.standin.events_out import build_event, encode_message
from services.standin.server import StandInServer
from services.standin.world import SimRun, World
from tests.standin import NOW, SUB, add_run, azure_toml, config_object, pre_event_for
from tui.cli import main

pytestmark = pytest.mark.integration

CONTRACT_KEYS = {"run", "timeline", "events", "cancels", "tasks", "machines"}
RUN_KEYS = {"correlation_id", "configuration_name", "start", "end", "status", "cancelled_by"}


def write_config(server: StandInServer, tmp_path: Path, azurite: Azurite | None = None,
                 queue_name: str = "") -> Path:
    path = tmp_path / "aumwatch.toml"
    text = azure_toml(server)
    if azurite is not None:
        text += ("[queue]\n"
                 f'name = "{queue_name}"\n'
                 'mode = "consume"\n'
                 f'connection_string = "{azurite.connection_string}"\n')
    text += f'[paths]\ndata_dir = "{tmp_path / "data"}"\n'
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def run(standin_world: World) -> SimRun:
    """patch-web (Amsterdam time) runs 30 minutes after the stand-in's now: cancellable."""
    return add_run(standin_world, config_object("patch-web"), NOW + timedelta(minutes=30),
                   machines=2)


@pytest.fixture
def queue_name(azurite: Azurite) -> str:
    import uuid

    from azure.storage.queue import QueueClient

    name = f"q{uuid.uuid4().hex[:12]}"
    QueueClient.from_connection_string(azurite.connection_string, name).create_queue()
    return name


def pre_event_of(run: SimRun) -> dict[str, Any]:
    return pre_event_for(run, "patch-web")


def test_report_of_a_run_with_an_event_and_a_verified_cancel_end_to_end(
    run: SimRun, standin: StandInServer, standin_world: World, azurite: Azurite,
    queue_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from azure.storage.queue import QueueClient

    cfg = write_config(standin, tmp_path, azurite, queue_name)
    QueueClient.from_connection_string(azurite.connection_string, queue_name).send_message(
        encode_message(pre_event_of(run)))
    code, _, err = cli(capsys, "events", "tail", "--config", str(cfg), "--json")
    assert code == 0, err
    code, _, err = cli(capsys, "cancel", run.correlation_id, "--yes", "--config", str(cfg))
    assert code == 0, err
    assert standin_world.get_run(run.correlation_id).status == "Cancelled"

    # Upper-case: ids compare case-insensitively.
    code, out, err = cli(capsys, "report", run.correlation_id.upper(), "--format", "json",
                         "--config", str(cfg))
    assert code == 0, err
    data = json.loads(out)
    assert CONTRACT_KEYS <= set(data) and RUN_KEYS <= set(data["run"])
    assert data["run"]["correlation_id"].lower() == run.correlation_id.lower()
    assert data["run"]["status"] == "Cancelled"
    assert data["run"]["start"] == iso_z(run.start)
    with Journal(tmp_path / "data" / "journal.sqlite3") as journal:
        [audit] = journal.cancel_audit()
    assert audit.outcome == "verified-cancelled"
    # The stand-in's token names its caller as an Entra token does: the audit has a real who.
    assert audit.identity is not None and audit.identity.startswith("operator@contoso.example ")
    # cancelled_by is Azure's classification; cancel_initiator who sent it (issue 22, item 3).
    assert (data["run"]["cancelled_by"], data["run"]["cancel_initiator"]) == (
        "user", audit.identity)
    code, out, err = cli(capsys, "runs", "--json", "--config", str(cfg))
    assert code == 0, err
    [listed] = [r for r in json.loads(out) if r["correlation_id"].lower() ==
                run.correlation_id.lower()]
    assert {k: listed[k] for k in ("status", "end", "cancelled_by", "cancel_initiator",
                                   "pre_event", "post_event")} == \
        {k: data["run"][k] for k in ("status", "end", "cancelled_by", "cancel_initiator",
                                     "pre_event", "post_event")}
    [event] = data["events"]
    assert (event["kind"], event["cancellation_cutoff"]) == (
        "pre", iso_z(run.start - timedelta(minutes=10)))
    [cancel] = data["cancels"]
    assert cancel["outcome"] == "verified-cancelled"
    assert len(data["machines"]) == 2
    whats = [e["what"] for e in data["timeline"]]
    assert whats.index("cancel window opens (T-40m)") < whats.index(
        next(w for w in whats if w.startswith("pre-maintenance event"))) < whats.index(
        next(w for w in whats if w.startswith("cancel attempt by"))) < whats.index(
        "scheduled start")
    assert data["time_zone"] == "W. Europe Standard Time"
    assert data["run"]["start_local"].endswith("+01:00")

    # The short form names the same run; Markdown by default, on stdout.
    code, out, err = cli(capsys, "report", f"PATCH-WEB/{run.start:%Y%m%d%H%M%S}",
                         "--config", str(cfg))
    assert code == 0, err
    assert out.startswith("# Run report: patch-web ")
    assert "| Cancelled; cancelled by" not in out and "Cancelled; cancelled by" in out
    assert "verified-cancelled" in out

    # --out writes the HTML file and says where.
    target = tmp_path / "out" / "report.html"
    code, out, err = cli(capsys, "report", run.correlation_id, "--format", "html", "--out",
                         str(target), "--config", str(cfg))
    assert code == 0, err
    assert out.strip() == f"report written to {target}"
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert not list(target.parent.glob(".*.tmp"))  # no temporary file left behind


def test_report_of_a_run_with_no_events_and_no_journal_comes_from_resource_graph(
    run: SimRun, standin: StandInServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = write_config(standin, tmp_path)
    code, out, err = cli(capsys, "report", run.correlation_id, "--format", "json",
                         "--config", str(cfg))
    assert code == 0, err
    data = json.loads(out)
    assert (data["events"], data["cancels"], data["tasks"]) == ([], [], [])
    assert data["run"]["status"] == "Pending" and data["run"]["cancelled_by"] is None
    assert len(data["machines"]) == 2
    assert any("journal holds nothing" in note for note in data["notes"])
    assert not (tmp_path / "data" / "journal.sqlite3").exists()  # reading created nothing


def test_report_of_a_run_resource_graph_does_not_show_comes_from_the_journal(
    standin: StandInServer, standin_world: World, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = config_object("patch-gone")
    standin_world.add_configuration(config)
    start = NOW - timedelta(hours=3)
    run_id = (f"{config['id']}/providers/microsoft.maintenance/applyupdates/"
              f"{start:%Y%m%d%H%M%S}")
    post = build_event(kind="post", correlation_id=run_id, configuration_id=config["id"],
                       configuration_name="patch-gone", start=start,
                       end=start + timedelta(hours=3), subscription_ids=[SUB],
                       event_time=start + timedelta(minutes=50), status="Succeeded")
    raw = json.dumps(post)
    (tmp_path / "data").mkdir()
    with Journal(tmp_path / "data" / "journal.sqlite3") as journal:
        journal.record_event(decode_message(raw)[0], raw, received_at=NOW)
    cfg = write_config(standin, tmp_path)
    code, out, err = cli(capsys, "report", f"patch-gone/{start:%Y%m%d%H%M%S}",
                         "--format", "json", "--config", str(cfg))
    assert code == 0, err
    data = json.loads(out)
    assert data["run"]["status"] == "Succeeded"
    assert data["run"]["end"] == iso_z(start + timedelta(minutes=50))
    assert data["machines"] == []
    assert any("Resource Graph has no row" in note for note in data["notes"])


def test_report_of_an_unknown_run_is_one_line_and_exit_1(
    run: SimRun, standin: StandInServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = write_config(standin, tmp_path)
    unknown = run.correlation_id[:-14] + "20250101000000"
    code, out, err = cli(capsys, "report", unknown, "--config", str(cfg))
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and err.startswith("aumwatch: unknown run ")
    code, out, err = cli(capsys, "report", "no-such-config/20260310123000", "--config", str(cfg))
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "no configuration named 'no-such-config'" in err
    code, _, err = cli(capsys, "report", "not a run", "--config", str(cfg))
    assert code == 1 and err.count("\n") == 1 and "CONFIGNAME/yyyyMMddHHmmss" in err


def test_the_short_form_is_refused_when_two_configurations_share_the_name(
    standin: StandInServer, standin_world: World, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_run(standin_world, config_object("patch-web", rg="rg-a"), NOW + timedelta(minutes=30))
    add_run(standin_world, config_object("patch-web", rg="rg-b"), NOW + timedelta(minutes=30))
    cfg = write_config(standin, tmp_path)
    code, _, err = cli(capsys, "report", f"patch-web/{NOW + timedelta(minutes=30):%Y%m%d%H%M%S}",
                       "--config", str(cfg))
    assert code == 1
    assert "2 configurations are named 'patch-web'" in err and "correlation id" in err


def test_a_post_task_writes_the_runs_report_without_a_shell(
    standin: StandInServer, standin_world: World, azurite: Azurite, queue_name: str,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's example: a post task ``aumwatch report --format json --out-dir DIR``
    (no RUN: it is the task's run, from AUMWATCH_TASK_CORRELATION_ID), run by
    ``aumwatch tasks --once`` for a post-event that came through the queue."""
    import sys

    from azure.storage.queue import QueueClient

    done = add_run(standin_world, config_object("patch-web"), NOW - timedelta(hours=2),
                   status="Completed", machines=2, machine_status="Succeeded")
    reports = tmp_path / "reports"
    cfg = write_config(standin, tmp_path, azurite, queue_name)
    with cfg.open("a", encoding="utf-8") as handle:
        handle.write("[[tasks]]\n"
                     'name = "report"\n'
                     'on = "post"\n'
                     'configurations = ["patch-*"]\n'
                     f'command = ["{sys.executable}", "-m", "tui", "report", "--config", '
                     f'"{cfg}", "--format", "json", "--out-dir", "{reports}"]\n'
                     'timeout = "60s"\n')
    post = build_event(kind="post", correlation_id=done.correlation_id,
                       configuration_id=done.configuration_id, configuration_name="patch-web",
                       start=done.start, end=done.end, subscription_ids=[SUB],
                       event_time=done.start + timedelta(minutes=50), status="Succeeded")
    QueueClient.from_connection_string(azurite.connection_string, queue_name).send_message(
        encode_message(post))
    code, out, err = cli(capsys, "tasks", "--once", "--config", str(cfg))
    assert code == 0, (out, err)
    [line] = [json.loads(item) for item in out.splitlines() if item.strip()]
    assert (line["task"], line["outcome"], line["exit_code"]) == ("report", "ok", 0), line
    [written] = list(reports.glob("patch-web-*.json"))
    assert written.name == f"patch-web-{done.start:%Y%m%d%H%M%S}.json"
    data = json.loads(written.read_text(encoding="utf-8"))
    assert data["run"]["correlation_id"].lower() == done.correlation_id.lower()
    assert [e["kind"] for e in data["events"]] == ["post"]
    assert len(data["machines"]) == 2
    # The report was written while its own task ran: the journal says so.
    assert [(t["task"], t["outcome"]) for t in data["tasks"]] == [("report", "running")]


def test_report_without_run_outside_a_task_says_how_to_name_it(
    standin: StandInServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AUMWATCH_TASK_CORRELATION_ID", raising=False)
    code, out, err = cli(capsys, "report", "--config", str(write_config(standin, tmp_path)))
    assert (code, out) == (1, "")
    assert "name the run" in err and "AUMWATCH_TASK_CORRELATION_ID" in err
