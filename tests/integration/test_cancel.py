"""Cancel through the real azure-mgmt-maintenance pipeline against the stand-in."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ServiceResponseError

from services.azure.cancel import (
    ArmReply,
    Canceller,
    CancelTarget,
    Outcome,
    maintenance_client_calls,
)
from services.azure.journal import Journal
from services.domain.clock import ManualClock
from services.domain.window import WindowRules
from services.standin.server import StandInServer
from services.standin.world import SimRun, World
from tests.standin import (
    NOW,
    SUB,
    AsyncStaticTokenCredential,
    add_run,
    azure_toml,
    config_object,
    sdk_kwargs,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.sqlite3") as j:
        yield j


@pytest.fixture
def run(standin_world: World) -> SimRun:
    """A run starting 30 minutes after the stand-in's now: its cancel window is open."""
    return add_run(standin_world, config_object("nightly"), NOW + timedelta(minutes=30),
                   machines=2)


def target_of(run: SimRun) -> CancelTarget:
    return CancelTarget(run.correlation_id, "nightly", run.start)


def canceller(client: Any, journal: Journal | None, clock: ManualClock, **kw: Any) -> Canceller:
    send, read_back = maintenance_client_calls(client)
    kw.setdefault("sleep", _no_wait)
    return Canceller(send, read_back, journal, clock, kw.pop("rules", None),
                     kw.pop("read_only", False), kw.pop("api_version", "2023-09-01-preview"),
                     **kw)


async def _no_wait(seconds: float) -> None:
    return None


async def test_cancel_inside_the_window_is_verified_and_visible_via_get(
    aio_maintenance_client: Any, run: SimRun, standin_world: World,
    standin_clock: ManualClock, journal: Journal,
) -> None:
    result = await canceller(aio_maintenance_client, journal, standin_clock).cancel(
        target_of(run))
    assert result.outcome is Outcome.VERIFIED, result.message
    assert (result.http_status, result.run_status) == (200, "Cancelled")
    assert standin_world.get_run(run.correlation_id).status == "Cancelled"
    _, read_back = maintenance_client_calls(aio_maintenance_client)
    reply = await read_back(run.correlation_id, "2023-09-01-preview")
    assert reply.run_status == "Cancelled"
    assert "cancellation API" in reply.body["properties"]["error"]["message"]
    [row] = journal.cancel_audit()
    assert (row.outcome, row.http_status, row.api_version) == (
        "verified-cancelled", 200, "2023-09-01-preview")


async def test_the_sync_client_works_too(
    maintenance_client: Any, run: SimRun, standin_world: World, standin_clock: ManualClock,
) -> None:
    result = await canceller(maintenance_client, None, standin_clock).cancel(target_of(run))
    assert result.outcome is Outcome.VERIFIED, result.message
    assert standin_world.get_run(run.correlation_id).status == "Cancelled"


async def test_outside_the_window_is_refused_locally_and_nothing_changes(
    aio_maintenance_client: Any, run: SimRun, standin_world: World,
    standin_clock: ManualClock, journal: Journal,
) -> None:
    standin_clock.set(run.start - timedelta(minutes=10))
    result = await canceller(aio_maintenance_client, journal, standin_clock).cancel(
        target_of(run))
    assert result.outcome is Outcome.REFUSED and "window is not open" in result.message
    assert result.http_status is None
    assert standin_world.get_run(run.correlation_id).status == "Pending"
    assert journal.cancel_audit()[0].outcome == "refused"


async def test_bypassing_the_local_check_the_services_refusal_is_reported_as_failed(
    aio_maintenance_client: Any, run: SimRun, standin_world: World,
    standin_clock: ManualClock, journal: Journal,
) -> None:
    standin_clock.set(run.start - timedelta(minutes=5))
    lax = WindowRules(opens_before=timedelta(hours=2), closes_before=timedelta(0))
    result = await canceller(aio_maintenance_client, journal, standin_clock,
                             rules=lax).cancel(target_of(run))
    assert result.outcome is Outcome.FAILED
    assert result.http_status == 400
    assert "CancellationWindowClosed" in result.message
    assert standin_world.get_run(run.correlation_id).status == "Pending"
    [row] = journal.cancel_audit()
    assert (row.outcome, row.http_status) == ("failed", 400)


async def test_read_only_never_reaches_the_service(
    aio_maintenance_client: Any, run: SimRun, standin_world: World,
    standin_clock: ManualClock,
) -> None:
    result = await canceller(aio_maintenance_client, None, standin_clock,
                             read_only=True).cancel(target_of(run))
    assert result.outcome is Outcome.REFUSED and "read-only" in result.message
    assert standin_world.get_run(run.correlation_id).status == "Pending"


async def test_double_confirmation_sends_one_request(
    aio_maintenance_client: Any, run: SimRun, standin_clock: ManualClock, journal: Journal,
) -> None:
    send, read_back = maintenance_client_calls(aio_maintenance_client)
    puts: list[str] = []

    async def counting_send(path: str, version: str) -> ArmReply:
        puts.append(path)
        return await send(path, version)

    c = Canceller(counting_send, read_back, journal, standin_clock, sleep=_no_wait)
    first, second = await asyncio.gather(c.cancel(target_of(run)), c.cancel(target_of(run)))
    assert sorted([first.outcome, second.outcome]) == sorted([Outcome.VERIFIED, Outcome.REFUSED])
    assert len(puts) == 1
    assert sorted(r.outcome for r in journal.cancel_audit()) == ["refused", "verified-cancelled"]


async def test_an_answer_lost_after_the_service_cancelled_is_verified_by_reading_back(
    aio_maintenance_client: Any, run: SimRun, standin_clock: ManualClock,
) -> None:
    send, read_back = maintenance_client_calls(aio_maintenance_client)

    async def losing_send(path: str, version: str) -> ArmReply:
        await send(path, version)
        raise ServiceResponseError("connection reset while reading the response")

    c = Canceller(losing_send, read_back, None, standin_clock, sleep=_no_wait)
    result = await c.cancel(target_of(run))
    assert result.outcome is Outcome.VERIFIED and result.http_status is None


async def test_a_dropped_put_is_read_back_and_reported_not_cancelled(
    standin: StandInServer, run: SimRun, standin_world: World, standin_clock: ManualClock,
) -> None:
    from azure.mgmt.maintenance.aio import MaintenanceManagementClient

    client = MaintenanceManagementClient(AsyncStaticTokenCredential(standin.token), SUB,
                                         **sdk_kwargs(standin, retry_total=0))
    async with client:
        # Two drops: aiohttp itself retries an idempotent PUT once on a dropped connection.
        standin.faults.set("drop", count=2, scope="arm")
        result = await canceller(client, None, standin_clock, read_attempts=2).cancel(
            target_of(run))
    assert result.outcome is Outcome.FAILED, result.message
    assert "still shows Pending" in result.message
    assert standin_world.get_run(run.correlation_id).status == "Pending"


async def test_an_api_version_without_cancel_is_a_clear_failure(
    aio_maintenance_client: Any, run: SimRun, standin_clock: ManualClock,
) -> None:
    result = await canceller(aio_maintenance_client, None, standin_clock,
                             api_version="2023-04-01").cancel(target_of(run))
    assert result.outcome is Outcome.FAILED and result.http_status == 400
    assert "InvalidApiVersionParameter" in result.message


# -- the `aumwatch cancel` command ------------------------------------------------------------


def write_config(server: StandInServer, tmp_path: Path, world: str | None = None) -> Path:
    path = tmp_path / "aumwatch.toml"
    path.write_text(
        azure_toml(server)
        + (f'world = "{world}"\n' if world else "")
        + "[paths]\n"
        f'data_dir = "{tmp_path / "data"}"\n',
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from tui.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cfg(standin: StandInServer, tmp_path: Path) -> Path:
    return write_config(standin, tmp_path)


def test_cli_cancel_inside_the_window_exits_0_when_verified(
    run: SimRun, standin_world: World, cfg: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The stand-in's clock is in 2026; the command measures the skew from the Date header.
    code, out, err = cli(capsys, "cancel", run.correlation_id, "--yes", "--json",
                         "--config", str(cfg))
    assert code == 0, err
    [item] = json.loads(out)
    assert (item["outcome"], item["run_status"], item["computed_id"]) == (
        "verified", "Cancelled", False)
    assert standin_world.get_run(run.correlation_id).status == "Cancelled"
    with Journal(tmp_path / "data" / "journal.sqlite3") as journal:
        [row] = journal.cancel_audit()
    assert row.outcome == "verified-cancelled"


def test_cli_cancel_asks_for_the_configuration_name(
    run: SimRun, standin_world: World, cfg: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("weekly\n"))
    code, _, err = cli(capsys, "cancel", run.correlation_id, "--config", str(cfg))
    assert code == 1
    assert "Type the configuration's name" in err and "not confirmed" in err
    # How long the window stays open, in words (exact to the second).
    assert re.search(r"cancellable until \S+ \S+ \(now \S+ \S+: \d+ minutes?[\w ,]* left\)", err)
    assert standin_world.get_run(run.correlation_id).status == "Pending"
    monkeypatch.setattr("sys.stdin", io.StringIO("nightly\n"))
    code, out, err = cli(capsys, "cancel", run.correlation_id, "--config", str(cfg))
    assert code == 0, err
    assert out.startswith("cancelled: run ")
    assert standin_world.get_run(run.correlation_id).status == "Cancelled"


def test_cli_cancel_outside_the_window_is_refused_with_the_reason(
    run: SimRun, standin_world: World, standin_clock: ManualClock, cfg: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    standin_clock.set(run.start - timedelta(minutes=9))
    code, out, err = cli(capsys, "cancel", run.correlation_id, "--config", str(cfg))
    assert code == 1 and out == ""
    assert err.startswith("aumwatch: refused: the cancel window is not open")
    assert err.count("\n") == 1  # one line, no prompt, no traceback
    assert standin_world.get_run(run.correlation_id).status == "Pending"


def test_cli_cancel_read_only_is_refused(
    run: SimRun, standin_world: World, cfg: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = cli(capsys, "cancel", run.correlation_id, "--read-only", "--config",
                       str(cfg))
    assert code == 1 and "read-only" in err
    assert standin_world.get_run(run.correlation_id).status == "Pending"


def test_cli_cancel_of_an_already_cancelled_run_exits_0(
    run: SimRun, standin_world: World, cfg: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    standin_world.cancel(run.correlation_id)
    code, out, _ = cli(capsys, "cancel", run.correlation_id, "--yes", "--config", str(cfg))
    assert code == 0 and "already cancelled" in out


def test_cli_cancel_of_a_bad_id_is_one_line(
    cfg: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = cli(capsys, "cancel", "/subscriptions/x/nope", "--config", str(cfg))
    assert code == 1 and err.startswith("aumwatch: not a run id") and err.count("\n") == 1


# -- a run Azure has not shown us; Azure's answer; the runs list right after (issue 14) -------


class CancelSpy:
    """Counts the cancels that reach the stand-in's World (the PUT handler calls it)."""

    def __init__(self, world: World, after: Any = None) -> None:
        self.calls: list[str] = []
        self._cancel = world.cancel
        self._after = after

    def __call__(self, correlation_id: str) -> Any:
        self.calls.append(correlation_id)
        outcome = self._cancel(correlation_id)
        if self._after is not None:
            self._after()
        return outcome


def daily_config_at(minutes: int) -> dict[str, Any]:
    """A daily configuration whose next run starts ``minutes`` after the stand-in's now."""
    start = NOW + timedelta(minutes=minutes)
    config = config_object("nightly")
    config["properties"]["maintenanceWindow"].update(
        {"recurEvery": "Day", "timeZone": "UTC",
         "startDateTime": start.strftime("2026-01-01 %H:%M")})
    return config


def test_cli_cancel_of_a_run_only_computed_from_the_schedule_sends_nothing(
    standin_world: World, cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = daily_config_at(30)  # inside the window: only the missing sighting stops it
    standin_world.add_configuration(config)
    run_id = (f"{config['id']}/providers/microsoft.maintenance/applyupdates/"
              f"{(NOW + timedelta(minutes=30)).strftime('%Y%m%d%H%M%S')}")
    spy = CancelSpy(standin_world)
    monkeypatch.setattr(standin_world, "cancel", spy)
    code, out, err = cli(capsys, "cancel", run_id, "--yes", "--config", str(cfg))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "not seen in Azure yet" in err
    assert "nothing was sent" in err
    assert spy.calls == [] and standin_world.runs() == []
    with Journal(tmp_path / "data" / "journal.sqlite3") as journal:
        [row] = journal.cancel_audit()
    assert (row.outcome, row.computed_id) == ("refused", True)


def test_cli_cancel_of_a_run_named_by_a_journaled_pre_event_is_sent(
    standin_world: World, cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.domain.clock import iso_z
    from services.domain.events import decode_message

    config = daily_config_at(30)
    standin_world.add_configuration(config)
    start = NOW + timedelta(minutes=30)
    run_id = (f"{config['id']}/providers/microsoft.maintenance/applyupdates/"
              f"{start.strftime('%Y%m%d%H%M%S')}")
    pre = {"id": run_id, "eventType": "Microsoft.Maintenance.PreMaintenanceEvent",
           "subject": "nightly", "topic": config["id"], "eventTime": iso_z(NOW),
           "dataVersion": "1.0", "metadataVersion": "1",
           "data": {"CorrelationId": run_id, "MaintenanceConfigurationId": config["id"],
                    "StartDateTime": iso_z(start),
                    "EndDateTime": iso_z(start + timedelta(hours=3)),
                    "CancellationCutOffDateTime": iso_z(start - timedelta(minutes=10)),
                    "ResourceSubscriptionIds": [SUB]}}
    raw = json.dumps(pre)
    with Journal(tmp_path / "data" / "journal.sqlite3") as journal:
        journal.record_event(decode_message(raw)[0], raw, received_at=NOW)
    spy = CancelSpy(standin_world)
    monkeypatch.setattr(standin_world, "cancel", spy)
    cli(capsys, "cancel", run_id, "--yes", "--json", "--config", str(cfg))
    # Whatever the stand-in answers for a run it has no row for, the request went out.
    assert len(spy.calls) == 1
    with Journal(tmp_path / "data" / "journal.sqlite3") as journal:
        [row] = journal.cancel_audit()
    assert row.computed_id is False and row.outcome != "refused"


@pytest.mark.parametrize("world", [None, "sim-a"])  # real Azure, a stand-in world
def test_cli_runs_right_after_a_verified_cancel_shows_it_cancelled_while_graph_lags(
    run: SimRun, standin_world: World, standin: StandInServer, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, world: str | None,
) -> None:
    cfg = write_config(standin, tmp_path, world)
    # Resource Graph lags behind the cancel: its tables keep the run as it was before.
    # (ARM reads stay current, as in Azure.)
    tables = standin_world.tables
    stale_key = run.correlation_id.lower()

    def lagging() -> dict[str, list[dict[str, Any]]]:
        out = tables()
        for row in out["maintenanceresources"]:
            props = row["properties"]
            if str(props.get("correlationId", "")).lower() == stale_key:
                props["status"] = "Pending"
                props.pop("error", None)
        return out

    monkeypatch.setattr(standin_world, "tables", lagging)
    code, _, err = cli(capsys, "cancel", run.correlation_id, "--yes", "--config", str(cfg))
    assert code == 0, err
    code, out, err = cli(capsys, "runs", "--json", "--config", str(cfg))
    assert code == 0, err
    by_key = {r["correlation_id"].lower(): r for r in json.loads(out)}
    shown = by_key[stale_key]
    assert (shown["status"], shown["cancelled_by"], shown["expected"]) == (
        "Cancelled", "user", False)


def test_cli_cancel_accepted_by_azure_but_not_read_back_exits_3(
    standin: StandInServer, run: SimRun, standin_world: World, cfg: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Azure answers the PUT with the recorded real shape (lower-case id, the configuration's
    # name, a zero lastUpdateTime); after it, every read of the run fails.
    from services.standin.world import CancelOutcome

    def real_shape(correlation_id: str) -> CancelOutcome:
        outcome = World.cancel(standin_world, correlation_id)
        standin.faults.set("error503", scope="arm")
        body = {"id": correlation_id.lower(), "name": "nightly",
                "type": "Microsoft.Maintenance/applyUpdates",
                "properties": {"status": outcome.body["properties"]["status"],
                               "resourceId": run.configuration_id.lower(),
                               "lastUpdateTime": "0001-01-01T00:00:00"}}
        return CancelOutcome(outcome.status, body)

    monkeypatch.setattr(standin_world, "cancel", real_shape)
    monkeypatch.setattr("tui.cli.cancelcmd.READ_ATTEMPTS", 2)
    monkeypatch.setattr("tui.cli.cancelcmd.READ_INTERVAL", timedelta(0))
    code, out, err = cli(capsys, "cancel", run.correlation_id, "--yes", "--config", str(cfg))
    assert code == 3, err
    assert out == "" and err.count("\n") == 1
    assert err.startswith("aumwatch: accepted by Azure, not yet confirmed")
    with Journal(tmp_path / "data" / "journal.sqlite3") as journal:
        [row] = journal.cancel_audit()
    assert (row.outcome, row.http_status) == ("accepted-unconfirmed", 200)


def test_cli_cancel_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    from tui.cli import main

    with pytest.raises(SystemExit):
        main(["cancel", "--help"])
    text = capsys.readouterr().out
    assert "exit status:" in text and "accepted by Azure, not yet confirmed" in text
    assert "not seen in Azure yet" in text


async def test_the_canceller_sends_nothing_for_a_computed_id(
    aio_maintenance_client: Any, standin_world: World, standin_clock: ManualClock,
    journal: Journal, monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = daily_config_at(30)
    standin_world.add_configuration(config)
    start = NOW + timedelta(minutes=30)
    run_id = (f"{config['id']}/providers/microsoft.maintenance/applyupdates/"
              f"{start.strftime('%Y%m%d%H%M%S')}")
    spy = CancelSpy(standin_world)
    monkeypatch.setattr(standin_world, "cancel", spy)
    result = await canceller(aio_maintenance_client, journal, standin_clock).cancel(
        CancelTarget(run_id, "nightly", start, computed_id=True))
    assert result.outcome is Outcome.REFUSED and "not seen in Azure yet" in result.message
    assert spy.calls == [] and standin_world.runs() == []
    assert [(r.outcome, r.computed_id) for r in journal.cancel_audit()] == [("refused", True)]
