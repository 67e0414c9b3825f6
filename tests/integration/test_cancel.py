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


def write_config(server: StandInServer, tmp_path: Path) -> Path:
    path = tmp_path / "aumwatch.toml"
    path.write_text(
        "[azure]\n"
        'cloud = "standin"\n'
        f'arm_endpoint = "{server.endpoint}"\n'
        f'ca_file = "{server.ca_file}"\n'
        f'token = "{server.token}"\n'
        f'subscriptions = ["{SUB}"]\n'
        "[paths]\n"
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
