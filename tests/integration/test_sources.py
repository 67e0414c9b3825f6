"""Configuration, run and machine sources against the stand-in, through the real SDK clients."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from services.azure.resourcegraph import Governor, QueryRunner
from services.azure.sources import ConfigSource, MachineSource, RunSource, maintenance_factory
from services.domain.clock import iso_z
from services.domain.errors import ServiceError
from services.domain.events import decode_message
from services.domain.runs import expected_runs, merge_runs, run_from_event
from services.settings import Settings, load_settings
from services.standin.server import StandInServer
from services.standin.world import (
    PLATFORM_CANCEL_MESSAGE,
    MachineResult,
    World,
)
from tests.standin import NOW, SUB, add_run, config_object

pytestmark = pytest.mark.integration


def standin_settings(server: StandInServer, **flags: Any) -> Settings:
    """Settings pointing at ``server`` as `aumwatch sim` would write them."""
    return load_settings(
        {"cloud": "standin", "arm_endpoint": server.endpoint, "ca_file": server.ca_file,
         "subscriptions": [SUB], **flags},
        env={"AUMWATCH_TOKEN": server.token},
    )


@pytest.fixture
async def runner(standin: StandInServer, standin_clock: Any) -> AsyncIterator[QueryRunner]:
    settings = standin_settings(standin)
    async with QueryRunner.from_settings(settings, clock=standin_clock) as r:
        yield r


def populate(world: World) -> dict[str, Any]:
    daily = config_object("patch-daily")
    daily["properties"]["maintenanceWindow"].update(
        {"recurEvery": "Day", "timeZone": "UTC", "startDateTime": "2026-01-01 12:30"})
    broken = config_object("patch-broken")
    broken["properties"]["maintenanceWindow"]["recurEvery"] = "Fortnightly"
    world.add_configuration(broken)
    done = add_run(world, daily, NOW - timedelta(days=1, minutes=-30), status="Completed",
                   machines=3, machine_status="Succeeded")
    done.results[done.machine_ids[1]] = MachineResult(
        "Failed", installed=1, failed=2, error_code="KB", error_message="KB5034441 failed")
    world.upsert_run(done)
    cancelled = add_run(world, daily, NOW - timedelta(days=2, minutes=-30), status="Cancelled")
    cancelled.error_message = PLATFORM_CANCEL_MESSAGE.format(at=iso_z(cancelled.start))
    world.upsert_run(cancelled)
    pending = add_run(world, daily, NOW + timedelta(minutes=30), status="Pending", machines=3)
    return {"daily": daily, "done": done, "cancelled": cancelled, "pending": pending}


async def test_configs_are_listed_with_next_occurrences_and_schedule_errors(
        standin_world: World, runner: QueryRunner) -> None:
    populate(standin_world)
    fetched = await ConfigSource(runner).fetch()
    by_name = {c.name: c for c in fetched.items}
    assert set(by_name) == {"patch-daily", "patch-broken"}
    daily = by_name["patch-daily"]
    assert daily.next_start == NOW + timedelta(minutes=30)
    assert daily.next_end == NOW + timedelta(hours=3, minutes=30)
    assert daily.subscription_id == SUB and daily.resource_group.lower() == "rg-patch"
    assert by_name["patch-broken"].schedule_error and "Fortnightly" in \
        by_name["patch-broken"].schedule_error
    assert by_name["patch-broken"].next_occurrences == ()
    assert fetched.fetched_at == NOW
    assert fetched.skew is not None and abs(fetched.skew) < timedelta(seconds=2)


async def test_one_configuration_is_reread_from_resource_manager(
        standin: StandInServer, standin_world: World, standin_clock: Any,
        runner: QueryRunner) -> None:
    world = populate(standin_world)
    settings = standin_settings(standin)
    from services.azure.clients import make_async_credential

    source = ConfigSource(runner, maintenance_client_factory=maintenance_factory(
        settings, make_async_credential(settings)))
    config = await source.get(world["daily"]["id"])
    assert config.name == "patch-daily" and config.recur_every == "Day"
    assert config.next_start == NOW + timedelta(minutes=30)
    with pytest.raises(ServiceError) as info:
        await source.get(world["daily"]["id"].replace("patch-daily", "nope"))
    assert info.value.kind == "not_found"


async def test_runs_carry_status_counts_and_who_cancelled(
        standin_world: World, runner: QueryRunner) -> None:
    world = populate(standin_world)
    fetched = await RunSource(runner).fetch_observed()
    by_key = {r.key: r for r in fetched.items}
    done = by_key[world["done"].correlation_id.lower()]
    assert done.status == "Completed" and done.machines_total == 3
    assert done.machines_succeeded == 2 and done.machines_failed == 1
    cancelled = by_key[world["cancelled"].correlation_id.lower()]
    assert cancelled.cancelled_by == "platform"
    assert by_key[world["pending"].correlation_id.lower()].status == "Pending"


async def test_runs_merge_observed_with_expected_from_the_schedule(
        standin_world: World, runner: QueryRunner) -> None:
    world = populate(standin_world)
    configs = (await ConfigSource(runner).fetch()).items
    observed = (await RunSource(runner).fetch_observed()).items
    runs = merge_runs(observed, expected_runs(configs))
    keys = [r.key for r in runs]
    assert len(keys) == len(set(keys))  # the pending run is not listed twice
    pending = next(r for r in runs if r.key == world["pending"].correlation_id.lower())
    assert pending.expected is False and pending.source == "arg"
    tomorrow = [r for r in runs if r.start == NOW + timedelta(days=1, minutes=30)]
    assert len(tomorrow) == 1 and tomorrow[0].expected and tomorrow[0].status == "Scheduled"


async def test_machines_of_a_run_join_patch_results(
        standin_world: World, runner: QueryRunner) -> None:
    world = populate(standin_world)
    fetched = await MachineSource(runner).fetch(world["done"].correlation_id.upper())
    assert len(fetched.items) == 3
    failed = [m for m in fetched.items if m.status == "Failed"]
    assert len(failed) == 1 and failed[0].failed == 2 and failed[0].installed == 1
    assert failed[0].error == "KB5034441 failed"
    assert {m.status for m in fetched.items} == {"Succeeded", "Failed"}


async def test_a_bad_run_id_is_a_clear_error(runner: QueryRunner) -> None:
    with pytest.raises(ServiceError) as info:
        await MachineSource(runner).fetch("not-a-run")
    assert info.value.kind == "bad_request" and "run id" in str(info.value)


async def test_thousands_of_configurations_and_runs_are_paged(
        standin_world: World, runner: QueryRunner) -> None:
    for i in range(2500):
        standin_world.add_configuration(config_object(f"cfg-{i:04d}"))
    base = config_object("cfg-0000")
    for n in range(1, 2501):  # a run every 30 min, going back 52 days
        add_run(standin_world, base, NOW - timedelta(minutes=30 * n), status="Completed")
    configs = await ConfigSource(runner).fetch()
    assert len(configs.items) == 2500 and configs.requests == 3
    assert len({c.id.lower() for c in configs.items}) == 2500
    runs = await RunSource(runner).fetch_observed(since=timedelta(days=30))
    assert len(runs.items) == 30 * 48 and runs.requests == 2
    week = await RunSource(runner).fetch_observed(since=timedelta(days=7))
    assert len(week.items) == 7 * 48 and week.requests == 1


async def test_burst_against_the_real_quota_surfaces_no_429(
        standin_world: World, standin_factory: Callable[..., StandInServer],
        standin_clock: Any) -> None:
    for i in range(10):
        standin_world.add_configuration(config_object(f"cfg-{i}"))
    server = standin_factory(standin_world)  # the real 15-per-5-s quota
    governor = Governor()  # real time, as the stand-in's quota
    settings = standin_settings(server)
    async with QueryRunner.from_settings(settings, clock=standin_clock,
                                         governor=governor) as runner:
        source = ConfigSource(runner)
        began = time.monotonic()
        for _ in range(20):
            assert len((await source.fetch()).items) == 10
        elapsed = time.monotonic() - began
    # 20 requests under 15 per 5 s take at least one reset; none surfaced as an error.
    assert elapsed >= 4.0
    assert governor.state.requests >= 20


async def test_expired_token_is_a_clear_error_and_the_next_poll_recovers(
        standin: StandInServer, standin_world: World, runner: QueryRunner) -> None:
    populate(standin_world)
    source = ConfigSource(runner)
    standin.faults.set("expired-token", count=1, scope="graph")
    with pytest.raises(ServiceError) as info:
        await source.fetch()
    assert info.value.kind == "unauthorized"
    assert "\n" not in str(info.value) and "401" in str(info.value)
    assert runner.governor.state.last_error
    assert len((await source.fetch()).items) == 2
    assert runner.governor.state.last_error is None


async def test_dropped_connection_is_a_clear_error_and_the_next_poll_recovers(
        standin: StandInServer, standin_world: World, runner: QueryRunner) -> None:
    populate(standin_world)
    source = ConfigSource(runner)
    # Dropped twice: the query and its one resend (services/azure/transport.py).
    standin.faults.set("drop", count=2, scope="graph")
    with pytest.raises(ServiceError) as info:
        await source.fetch()
    assert info.value.kind == "network"
    assert len((await source.fetch()).items) == 2


async def test_a_query_dropped_once_is_sent_again_and_answers(
        standin: StandInServer, standin_world: World, runner: QueryRunner) -> None:
    # A read-only query whose connection dropped is resent once, as aiohttp resends GETs.
    populate(standin_world)
    standin.faults.set("drop", count=1, scope="graph")
    assert len((await ConfigSource(runner).fetch()).items) == 2
    assert standin.faults.active() == []  # the one drop was spent on the first send


async def test_throttling_without_retry_after_is_absorbed(
        standin: StandInServer, standin_world: World, runner: QueryRunner) -> None:
    populate(standin_world)
    standin.faults.set("throttle-no-retry-after", count=2, scope="graph")
    fetched = await ConfigSource(runner).fetch()
    assert len(fetched.items) == 2
    assert runner.governor.state.throttled == 2


async def test_a_pre_event_adds_its_cutoff_to_the_observed_run(
        standin_world: World, runner: QueryRunner) -> None:
    world = populate(standin_world)
    pending = world["pending"]
    pre = {
        "id": pending.correlation_id, "eventType": "Microsoft.Maintenance.PreMaintenanceEvent",
        "subject": "patch-daily", "topic": pending.configuration_id,
        "eventTime": iso_z(pending.start - timedelta(minutes=35)), "dataVersion": "1.0",
        "metadataVersion": "1",
        "data": {"CorrelationId": pending.correlation_id,
                 "MaintenanceConfigurationId": pending.configuration_id,
                 "StartDateTime": iso_z(pending.start), "EndDateTime": iso_z(pending.end),
                 "CancellationCutOffDateTime": iso_z(pending.start - timedelta(minutes=12)),
                 "ResourceSubscriptionIds": [SUB]},
    }
    events = [r for e in decode_message(json.dumps(pre)) if (r := run_from_event(e))]
    observed = (await RunSource(runner).fetch_observed()).items
    merged = {r.key: r for r in merge_runs(observed, [], events)}
    run = merged[pending.correlation_id.lower()]
    assert run.source == "arg" and run.cutoff == pending.start - timedelta(minutes=12)


# -- rows as Resource Graph really returns them (docs/azure.md, "Resource Graph") -------------
# The stand-in is being taught these shapes on another branch; until then each test reshapes
# the World's table rows itself, so the query still runs through the stand-in's real KQL.


def realistic_rows(world: World, monkeypatch: pytest.MonkeyPatch, *,
                   drop_start_of: str | None = None) -> None:
    """Make ``world.tables()`` answer as Azure does: machine-level rows carry the schedule's
    start and end, patch row ids are lower-case with the ``patchInstallationResults`` segment
    in another casing, and (optionally) one run row has no ``startDateTime``."""
    tables = world.tables

    def reshaped() -> dict[str, list[dict[str, Any]]]:
        out = tables()
        runs = {r.correlation_id.lower(): r for r in world.runs()}
        for row in out["maintenanceresources"]:
            props = row["properties"]
            run = runs.get(str(props.get("correlationId", "")).lower())
            if row["type"] == "microsoft.maintenance/applyupdates" and run is not None:
                props["startDateTime"] = iso_z(run.start)
                props["endDateTime"] = iso_z(run.end)
            if (drop_start_of is not None and row["type"].endswith("/applyupdates")
                    and str(props.get("correlationId", "")).lower() == drop_start_of.lower()):
                props.pop("startDateTime", None)
        for row in out["patchinstallationresources"]:
            machine, _, guid = row["id"].partition("/patchInstallationResults/")
            row["id"] = f"{machine.lower()}/PATCHINSTALLATIONRESULTS/{guid}"
        return out

    monkeypatch.setattr(world, "tables", reshaped)


async def test_a_machines_end_is_its_own_finish_not_the_schedules(
        standin_world: World, runner: QueryRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    start = NOW - timedelta(hours=1)
    run = add_run(standin_world, config_object("patch-now"), start, status="InProgress",
                  machines=2)
    done_at, started_at = start + timedelta(minutes=20), start + timedelta(minutes=5)
    run.results[run.machine_ids[0]] = MachineResult("Succeeded", installed=3,
                                                    started=started_at, ended=done_at)
    run.results[run.machine_ids[1]] = MachineResult("InProgress", started=started_at)
    standin_world.upsert_run(run)
    realistic_rows(standin_world, monkeypatch)
    fetched = await MachineSource(runner).fetch(run.correlation_id)
    by_name = {m.name: m for m in fetched.items}
    done, busy = by_name["patch-now-vm000"], by_name["patch-now-vm001"]
    assert (done.status, done.installed) == ("Succeeded", 3)  # the patch row was joined
    assert done.end == done_at and done.start == started_at
    assert busy.status == "InProgress" and busy.end is None


async def test_patch_rows_join_whatever_the_casing_of_their_ids(
        standin_world: World, runner: QueryRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    world = populate(standin_world)
    realistic_rows(standin_world, monkeypatch)
    fetched = await MachineSource(runner).fetch(world["done"].correlation_id)
    assert {m.status for m in fetched.items} == {"Succeeded", "Failed"}
    assert [m.failed for m in fetched.items if m.status == "Failed"] == [2]


async def test_a_run_row_without_a_start_is_kept_and_dated_by_its_name(
        standin_world: World, runner: QueryRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    world = populate(standin_world)
    done = world["done"]
    realistic_rows(standin_world, monkeypatch, drop_start_of=done.correlation_id)
    fetched = await RunSource(runner).fetch_observed()
    by_key = {r.key: r for r in fetched.items}
    assert done.correlation_id.lower() in by_key
    assert by_key[done.correlation_id.lower()].start == done.start
