"""Several tenants in one view (issue 19), end to end: the stand-in plays two tenants (each
its own subscription and token, refused with 403 outside it), aumwatch reads both with its
real SDK clients, lists each configuration and run under the right tenant, keeps listing one
tenant when the other's token is broken (exit 4 naming it), and sends a cancel with the
run's own tenant's token."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.azure.cancel import Canceller, maintenance_client_calls
from services.azure.journal import Journal
from services.azure.monitor import Monitor
from services.domain.boundary import CancelTarget, Outcome
from services.domain.clock import ManualClock
from services.domain.dashboard import DashboardState
from services.settings import load_settings
from services.standin.server import STANDIN_UPN, SimTenant, StandInServer
from services.standin.world import World
from tests.standin import (
    NOW,
    RELAXED_QUOTA,
    AsyncStaticTokenCredential,
    add_run,
    config_object,
    sdk_kwargs,
)

pytestmark = pytest.mark.integration

SUB_A = "00000000-0000-4000-8000-0000000000aa"
SUB_B = "00000000-0000-4000-8000-0000000000bb"
TENANT_A = "aaaaaaaa-1111-4111-8111-111111111111"
TENANT_B = "bbbbbbbb-2222-4222-8222-222222222222"


@pytest.fixture
def two_tenants(standin_clock: ManualClock,
                standin_factory: Callable[..., StandInServer]
                ) -> tuple[StandInServer, SimTenant, SimTenant, World]:
    world = World(standin_clock)
    for sub in (SUB_A, SUB_B):
        world.add_subscription(sub)
    add_run(world, config_object("contoso-web", sub=SUB_A), NOW + timedelta(hours=5))
    add_run(world, config_object("fabrikam-db", sub=SUB_B), NOW + timedelta(minutes=30),
            machines=1)
    server = standin_factory(world, quota_limit=RELAXED_QUOTA, arg_lag=0)
    a = server.add_tenant(TENANT_A, [SUB_A])
    b = server.add_tenant(TENANT_B, [SUB_B])
    return server, a, b, world


def config_text(server: StandInServer, a: SimTenant, b: SimTenant, *,
                b_token: str | None = None) -> str:
    return ("[azure]\n"
            'cloud = "standin"\n'
            f'arm_endpoint = "{server.endpoint}"\n'
            f'ca_file = "{server.ca_file}"\n'
            "\n[[tenants]]\n"
            'name = "contoso"\n'
            f'tenant = "{TENANT_A}"\n'
            f'token = "{a.token}"\n'
            "\n[[tenants]]\n"
            'name = "fabrikam"\n'
            f'tenant = "{TENANT_B}"\n'
            f'token = "{b_token or b.token}"\n')


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "aumwatch.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUMWATCH_DATA_DIR", str(tmp_path / "data"))


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    from tui.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else None, captured.err


def test_configs_and_runs_list_both_tenants_each_under_its_own(
        two_tenants: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server, a, b, _world = two_tenants
    path = write(tmp_path, config_text(server, a, b))
    code, configs, err = run_cli(capsys, "configs", "--config", str(path), "--json")
    assert code == 0, err
    assert {(c["name"], c["tenant"], c["tenant_id"]) for c in configs} == {
        ("contoso-web", "contoso", TENANT_A), ("fabrikam-db", "fabrikam", TENANT_B)}
    code, runs, err = run_cli(capsys, "runs", "--config", str(path), "--json")
    assert code == 0, err
    by_config = {(r["configuration_name"], r["tenant"], r["tenant_id"]) for r in runs}
    assert ("contoso-web", "contoso", TENANT_A) in by_config
    assert ("fabrikam-db", "fabrikam", TENANT_B) in by_config
    assert {r["tenant"] for r in runs} == {"contoso", "fabrikam"}
    # --tenant NAME (or a tenant id) reads that profile only.
    code, only, _err = run_cli(capsys, "configs", "--config", str(path), "--json",
                               "--tenant", TENANT_B)
    assert code == 0 and [c["name"] for c in only] == ["fabrikam-db"]
    # The table has a TENANT column when several tenants are read.
    from tui.cli import main

    assert main(["configs", "--config", str(path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("TENANT") and any(line.startswith("fabrikam ") for line in table)


def test_a_broken_token_leaves_the_other_tenant_listed_and_exit_4_names_it(
        two_tenants: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server, a, b, _world = two_tenants
    path = write(tmp_path, config_text(server, a, b, b_token="not-a-token"))
    for command in ("configs", "runs"):
        code, rows, err = run_cli(capsys, command, "--config", str(path), "--json")
        assert code == 4, err
        assert rows and {r["tenant"] for r in rows} == {"contoso"}
        assert "tenant fabrikam failed" in err and "contoso" not in err


async def test_the_dashboard_state_keeps_one_tenant_while_the_other_fails(
        two_tenants: Any, tmp_path: Path) -> None:
    server, a, b, _world = two_tenants
    path = write(tmp_path, config_text(server, a, b))
    clock = ManualClock(NOW)
    settings = load_settings({"data_dir": str(tmp_path / "data")}, env={}, config_path=path)
    state = DashboardState(settings.window_rules, clock)
    monitor = Monitor(settings, clock)
    try:
        state.apply_configs(await monitor.poll_configs())
        assert {c.tenant for c in state.configs.values()} == {"contoso", "fabrikam"}
        # fabrikam's token stops working: contoso keeps updating, fabrikam's last rows stay,
        # and the error is fabrikam's own source's.
        server.tenants.pop(b.token)
        fetched = await monitor.poll_configs()
        assert set(fetched.failed) == {"fabrikam"}
        state.apply_configs(fetched)
        assert {c.tenant for c in state.configs.values()} == {"contoso", "fabrikam"}
        assert set(state.errors) == {"configs:fabrikam"}
        assert "fabrikam" in state.errors["configs:fabrikam"]
        snapshot = await monitor.poll_runs()
        assert set(snapshot.observed.failed) == {"fabrikam"}
        state.apply_runs(snapshot)
        assert "runs:fabrikam" in state.errors
        preflight = await (await monitor.preflight_source()).read()
        assert preflight.error is not None and "tenant fabrikam" in preflight.error
        assert "contoso" not in preflight.error
        server.tenants[b.token] = b  # it answers again: its errors clear
        state.apply_configs(await monitor.poll_configs())
        state.apply_runs(await monitor.poll_runs())
        assert not [s for s in state.errors if s.endswith(":fabrikam")]
        preflight = await (await monitor.preflight_source()).read()
        assert preflight.error is None and preflight.requests >= 2 * 6  # six kinds each
    finally:
        await monitor.close()


def test_a_token_is_refused_outside_its_tenants_subscriptions(two_tenants: Any) -> None:
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.maintenance import MaintenanceManagementClient

    from tests.standin import StaticTokenCredential

    server, a, _b, _world = two_tenants
    with MaintenanceManagementClient(StaticTokenCredential(a.token), SUB_B,
                                     **sdk_kwargs(server)) as client:
        with pytest.raises(HttpResponseError) as caught:
            list(client.maintenance_configurations.list())
    assert caught.value.status_code == 403
    assert caught.value.error is not None and caught.value.error.code == "AuthorizationFailed"
    with MaintenanceManagementClient(StaticTokenCredential(a.token), SUB_A,
                                     **sdk_kwargs(server)) as client:
        assert [c.name for c in client.maintenance_configurations.list()] == ["contoso-web"]


async def test_a_cancel_of_the_second_tenants_run_is_sent_with_its_token_and_verified(
        two_tenants: Any, tmp_path: Path, standin_clock: ManualClock) -> None:
    server, a, b, world = two_tenants
    path = write(tmp_path, config_text(server, a, b))
    settings = load_settings({"data_dir": str(tmp_path / "data")}, env={}, config_path=path)
    monitor = Monitor(settings, standin_clock)
    (run,) = [r for r in world.runs() if r.configuration_id.split("/")[2] == SUB_B]
    try:
        await monitor.poll_configs()
        result = await monitor.cancel(CancelTarget(run.correlation_id, "fabrikam-db",
                                                   run.start))
    finally:
        await monitor.close()
    # contoso's token is refused on fabrikam's subscription: only fabrikam's could send it.
    assert result.outcome is Outcome.VERIFIED, result.message
    assert world.get_run(run.correlation_id).status == "Cancelled"
    assert "tenant fabrikam" in result.message and "unconfirmed" not in result.message
    with Journal(settings.journal_path) as journal:
        (row,) = journal.cancel_audit()
    assert (row.tenant, row.tenant_id, row.delegated) == ("fabrikam", TENANT_B, False)
    # Each tenant's stand-in token names its caller as an Entra token does (issue 22 item 3).
    assert row.identity is not None and STANDIN_UPN in row.identity


async def test_a_cancel_through_a_delegation_is_marked_unconfirmed_by_microsoft(
        two_tenants: Any, tmp_path: Path, standin_clock: ManualClock) -> None:
    from azure.mgmt.maintenance.aio import MaintenanceManagementClient

    server, _a, _b, world = two_tenants
    # A service provider's tenant sees fabrikam's subscription through Lighthouse.
    provider = server.add_tenant("cccccccc-3333-4333-8333-333333333333", [],
                                 delegated=[SUB_B])
    (run,) = [r for r in world.runs() if r.configuration_id.split("/")[2] == SUB_B]
    async with MaintenanceManagementClient(AsyncStaticTokenCredential(provider.token), SUB_B,
                                           **sdk_kwargs(server)) as client:
        send, read_back = maintenance_client_calls(client)

        async def no_wait(seconds: float) -> None:
            return None

        with Journal(tmp_path / "j.sqlite3") as journal:
            canceller = Canceller(send, read_back, journal, standin_clock, sleep=no_wait,
                                  tenant="provider", tenant_id=provider.tenant_id)
            result = await canceller.cancel(CancelTarget(
                run.correlation_id, "fabrikam-db", run.start, tenant="provider",
                tenant_id=TENANT_B))
            (row,) = journal.cancel_audit()
    assert result.outcome is Outcome.VERIFIED, result.message
    assert "unconfirmed by Microsoft" in result.message and "tenant provider" in result.message
    assert (row.tenant, row.tenant_id, row.delegated) == ("provider", TENANT_B, True)


def test_doctor_checks_each_profile_and_names_the_failing_one(
        two_tenants: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server, a, b, _world = two_tenants
    path = write(tmp_path, config_text(server, a, b, b_token="not-a-token"))
    code, checks, _err = run_cli(capsys, "doctor", "--config", str(path), "--json")
    assert code == 1
    status = {c["check"]: c["status"] for c in checks}
    assert status["credentials:contoso"] == "ok" and status["resource graph:contoso"] == "ok"
    assert status["resource graph:fabrikam"] == "fail"
    assert "queue:contoso" in status and "queue:fabrikam" in status


def test_aumwatch_cancel_finds_the_runs_tenant_and_sends_with_its_token(
        two_tenants: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server, a, b, world = two_tenants
    path = write(tmp_path, config_text(server, a, b))
    (run,) = [r for r in world.runs() if r.configuration_id.split("/")[2] == SUB_B]
    # (The command judges the window on the stand-in's time: its Date header.)
    code, rows, err = run_cli(capsys, "cancel", run.correlation_id, "--config", str(path),
                              "--yes", "--json")
    assert code == 0, err
    (row,) = rows
    assert (row["outcome"], row["tenant"], row["tenant_id"]) == ("verified", "fabrikam",
                                                                 TENANT_B)
    assert world.get_run(run.correlation_id).status == "Cancelled"


def test_sim_plays_two_tenants_each_with_its_subscriptions_token_and_queue(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from services.standin.runner import SimEnvironment

    with SimEnvironment(None, arg_lag=0, config_path=tmp_path / "aumwatch.toml",
                        data_dir=tmp_path / "data", tenants=2, delegated=True) as env:
        settings = load_settings(env={}, config_path=env.config_path)
        one, two = settings.tenant_profiles()
        # tenant2's token also sees tenant1's first subscription (Lighthouse) ...
        lent = one.settings.subscriptions[0]
        assert env.info()["tenants"][1]["delegated"] == [lent]
        assert lent in two.settings.subscriptions
        assert (one.name, two.name) == ("tenant1", "tenant2")
        assert one.settings.token != two.settings.token and one.tenant != two.tenant
        assert set(one.settings.subscriptions) & set(two.settings.subscriptions) == {
            one.settings.subscriptions[0]}
        assert one.settings.queue_name != two.settings.queue_name
        assert [t["name"] for t in env.info()["tenants"]] == ["tenant1", "tenant2"]
        code, configs, err = run_cli(capsys, "configs", "--config", str(env.config_path),
                                     "--json", "--all-scopes")
        assert code == 0, err
        # ... yet each configuration is listed once, under the tenant that owns it.
        assert len({c["id"].lower() for c in configs}) == len(configs)
        code, through, err = run_cli(capsys, "configs", "--config", str(env.config_path),
                                     "--json", "--all-scopes", "--tenant", "tenant2")
        assert code == 0, err
        lent_rows = [c for c in through if c["subscription_id"] == lent]
        assert lent_rows and {(c["tenant"], c["tenant_id"]) for c in lent_rows} == {
            ("tenant2", one.tenant)}  # read through tenant2, owned by tenant1
        for config in configs:
            owner = one if config["subscription_id"] in one.settings.subscriptions else two
            assert (config["tenant"], config["tenant_id"]) == (owner.name, owner.tenant)
        assert {c["tenant"] for c in configs} == {"tenant1", "tenant2"}
        # Each queue holds the events of its own tenant's subscriptions only.
        from azure.storage.queue import QueueClient

        for profile in (one, two):
            queue = QueueClient.from_connection_string(
                profile.settings.queue_connection_string or "", profile.settings.queue_name
                or "")
            texts = [m.content for m in queue.peek_messages(max_messages=32)]
            assert texts, profile.name
            from services.domain.events import EventDecodeError, decode_message

            owned = {s.lower() for s in profile.settings.subscriptions}
            decoded = 0
            for text in texts:
                try:
                    events = decode_message(text)
                except EventDecodeError:
                    continue  # the demo also writes a malformed message, on purpose
                for event in events:
                    decoded += 1
                    assert str(event.configuration_id).split("/")[2].lower() in owned
            assert decoded, profile.name
        # events tail reads one tenant's queue, named with --tenant; its lines name it.
        from tui.cli import main

        assert main(["events", "tail", "--config", str(env.config_path), "--json"]) == 1
        assert "--tenant" in capsys.readouterr().err
        assert main(["events", "tail", "--config", str(env.config_path), "--json",
                     "--tenant", "tenant2"]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert lines and {(r["tenant"], r["tenant_id"]) for r in lines} == {
            ("tenant2", two.tenant)}
        # Each tenant's Event Grid wiring names its own queue, the one its profile watches:
        # the demo world's verdicts are the same with two tenants as with one (before, the
        # second tenant's configurations read "other-endpoint" on every screen).
        from tests.integration.test_wiring import DEMO_VERDICTS

        code, out, err = run_cli(capsys, "subscriptions", "--config", str(env.config_path),
                                 "--json")
        assert code == 0, err
        got = {i["configuration_name"]: i["verdict"] for i in out}
        assert {name: got.get(name) for name in DEMO_VERDICTS} == DEMO_VERDICTS


async def test_without_profiles_a_cancel_of_a_delegated_subscription_is_marked_too(
        two_tenants: Any, tmp_path: Path, standin_clock: ManualClock,
        capsys: pytest.CaptureFixture[str]) -> None:
    server, _a, _b, world = two_tenants
    # One sign-in (tenant A, no [[tenants]]) that sees fabrikam's subscription: the rows
    # say tenant B owns it.
    path = write(tmp_path, ("[azure]\n" 'cloud = "standin"\n'
                            f'arm_endpoint = "{server.endpoint}"\n'
                            f'ca_file = "{server.ca_file}"\n'
                            f'token = "{server.token}"\n'
                            f'tenant = "{TENANT_A}"\n'))
    settings = load_settings({"data_dir": str(tmp_path / "data")}, env={}, config_path=path)
    (run,) = [r for r in world.runs() if r.configuration_id.split("/")[2] == SUB_B]
    monitor = Monitor(settings, standin_clock)
    try:
        fetched = await monitor.poll_configs()
        assert {(c.name, c.tenant, c.tenant_id) for c in fetched.items} == {
            ("contoso-web", "", TENANT_A), ("fabrikam-db", "", TENANT_B)}
        result = await monitor.cancel(CancelTarget(run.correlation_id, "fabrikam-db",
                                                   run.start))
    finally:
        await monitor.close()
    assert result.outcome is Outcome.VERIFIED, result.message
    assert "unconfirmed by Microsoft" in result.message
    with Journal(settings.journal_path) as journal:
        (row,) = journal.cancel_audit()
    assert (row.tenant, row.tenant_id, row.delegated) == (None, TENANT_B, True)


def test_aumwatch_cancel_through_a_delegation_says_it_is_unconfirmed(
        two_tenants: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server, _a, _b, world = two_tenants
    path = write(tmp_path, ("[azure]\n" 'cloud = "standin"\n'
                            f'arm_endpoint = "{server.endpoint}"\n'
                            f'ca_file = "{server.ca_file}"\n'
                            f'token = "{server.token}"\n'
                            f'tenant = "{TENANT_A}"\n'))
    (run,) = [r for r in world.runs() if r.configuration_id.split("/")[2] == SUB_B]
    code, rows, err = run_cli(capsys, "cancel", run.correlation_id, "--config", str(path),
                              "--yes", "--json")
    assert code == 0, err
    (row,) = rows
    assert row["outcome"] == "verified" and row["tenant_id"] == TENANT_B
    assert "unconfirmed by Microsoft" in row["message"]


def test_a_tenants_token_cannot_drive_the_stand_in(two_tenants: Any) -> None:
    import urllib.error
    import urllib.request

    server, a, _b, _world = two_tenants
    import ssl

    context = ssl.create_default_context(cafile=server.ca_file)
    for token, expected in ((a.token, 403), (server.token, 200)):
        request = urllib.request.Request(f"{server.endpoint}/_sim/clock",
                                         headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, context=context) as reply:
                status = reply.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status == expected


def test_machines_by_short_run_id_across_tenants_reads_the_owning_tenant_only(
        two_tenants: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The tenant that has no configuration of that name is not "failed" (exit 4): it just
    # does not hold the run. A short id no tenant knows is one clear error (exit 1).
    from services.standin.world import run_name_for

    server, a, b, _world = two_tenants
    path = write(tmp_path, config_text(server, a, b))
    short = f"fabrikam-db/{run_name_for(NOW + timedelta(minutes=30))}"
    code, machines, err = run_cli(capsys, "machines", short, "--config", str(path), "--json")
    assert code == 0, err
    assert len(machines) == 1 and machines[0]["tenant"] == "fabrikam"
    assert "failed" not in err
    code, _rows, err = run_cli(capsys, "machines", "nowhere-db/20260310123000",
                               "--config", str(path), "--json")
    assert code == 1
    assert "no configuration named 'nowhere-db'" in err and "tenant" not in err.split(":")[0]
