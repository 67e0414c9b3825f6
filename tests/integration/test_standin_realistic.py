"""The stand-in behaving as Azure does (issue 14), through the real SDK clients: Resource Graph
lag, ids as Resource Graph returns them, machine and patch rows, the recorded cancel answer,
the create-or-update PUT, schedule edits, and Resource Graph's query limits."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.mgmt.maintenance import MaintenanceManagementClient
from azure.mgmt.resourcegraph import ResourceGraphClient
from azure.mgmt.resourcegraph.models import QueryRequest

from services.domain.clock import ManualClock
from services.domain.configs import CONFIGS_QUERY
from services.domain.machines import machines_query
from services.domain.runs import runs_query
from services.standin.lag import ArgLag
from services.standin.scenario import ScenarioEngine
from services.standin.scenario_file import parse_scenario
from services.standin.server import StandInServer
from services.standin.world import (
    PLATFORM_CANCEL_MESSAGE,
    MachineResult,
    World,
    patch_result_guid,
)
from tests.standin import (
    NOW,
    RELAXED_QUOTA,
    SUB,
    StaticTokenCredential,
    add_run,
    config_object,
    sdk_kwargs,
)

pytestmark = pytest.mark.integration

CANCEL_BODY = {"properties": {"status": "Cancel"}}
RUN_TYPE = "microsoft.maintenance/maintenanceconfigurations/applyupdates"


class Clients:
    """The sync SDK clients of one stand-in server."""

    def __init__(self, server: StandInServer) -> None:
        self.server = server
        credential = StaticTokenCredential(server.token)
        self.arm = MaintenanceManagementClient(credential, SUB, **sdk_kwargs(server))
        self.graph = ResourceGraphClient(credential, **sdk_kwargs(server))

    def send(self, method: str, path: str, body: Any = None,
             version: str = "2023-09-01-preview") -> Any:
        return self.arm._send_request(HttpRequest(method, path, params={"api-version": version},
                                                  json=body))

    def rows(self, query: str) -> list[dict[str, Any]]:
        return list(self.graph.resources(QueryRequest(query=query, subscriptions=[SUB])).data)

    def run_status(self, correlation_id: str) -> str | None:
        rows = self.rows(f'maintenanceresources | where type =~ "{RUN_TYPE}"'
                         f' | where tolower(tostring(properties.correlationId)) == '
                         f'"{correlation_id.lower()}" | project status = properties.status')
        return rows[0]["status"] if rows else None

    def close(self) -> None:
        self.arm.close()
        self.graph.close()


@pytest.fixture
def clients_for() -> Iterator[Callable[[StandInServer], Clients]]:
    made: list[Clients] = []

    def make(server: StandInServer) -> Clients:
        made.append(Clients(server))
        return made[-1]

    yield make
    for c in made:
        c.close()


# -- Resource Graph lag --------------------------------------------------------------------
def test_a_cancel_shows_at_once_in_arm_and_only_after_the_lag_in_resource_graph(
        standin_world: World, standin_clock: ManualClock, standin_realistic: StandInServer,
        clients_for: Callable[[StandInServer], Clients]) -> None:
    run = add_run(standin_world, config_object("weekly"), NOW + timedelta(minutes=30),
                  machines=2)
    standin_realistic.settle()  # the setup is old news; the cancel below is not
    c = clients_for(standin_realistic)
    assert c.run_status(run.correlation_id) == "Pending"
    answer = c.send("PUT", run.correlation_id, CANCEL_BODY)
    assert answer.status_code == 200
    assert c.send("GET", run.correlation_id).json()["properties"]["status"] == "Cancelled"
    assert c.run_status(run.correlation_id) == "Pending"  # Resource Graph has not caught up
    standin_clock.advance(timedelta(seconds=4.9))  # the lag is at least 5 s
    assert c.run_status(run.correlation_id) == "Pending"
    standin_clock.advance(timedelta(seconds=85.1))  # and at most 90 s
    assert c.run_status(run.correlation_id) == "Cancelled"


def test_a_fixed_lag_is_exact(standin_world: World, standin_clock: ManualClock,
                              standin_factory: Callable[..., StandInServer],
                              clients_for: Callable[[StandInServer], Clients]) -> None:
    run = add_run(standin_world, config_object("weekly"), NOW + timedelta(minutes=30))
    server = standin_factory(standin_world, quota_limit=RELAXED_QUOTA, arg_lag=30)
    c = clients_for(server)
    assert c.run_status(run.correlation_id) == "Pending"  # there before the server: visible
    assert c.send("PUT", run.correlation_id, CANCEL_BODY).status_code == 200
    standin_clock.advance(timedelta(seconds=29))
    assert c.run_status(run.correlation_id) == "Pending"
    standin_clock.advance(timedelta(seconds=1))
    assert c.run_status(run.correlation_id) == "Cancelled"


def test_a_new_run_is_absent_from_resource_graph_until_its_lag_passed(
        standin_world: World, standin_clock: ManualClock,
        standin_factory: Callable[..., StandInServer],
        clients_for: Callable[[StandInServer], Clients]) -> None:
    server = standin_factory(standin_world, quota_limit=RELAXED_QUOTA, arg_lag=20)
    c = clients_for(server)
    run = add_run(standin_world, config_object("weekly"), NOW + timedelta(minutes=35))
    assert c.send("GET", run.correlation_id).status_code == 200  # ARM: at once
    assert c.run_status(run.correlation_id) is None
    standin_clock.advance(timedelta(seconds=20))
    assert c.run_status(run.correlation_id) == "Pending"


def test_the_default_lag_is_reproducible_from_its_seed() -> None:
    key = ("maintenanceresources", "/subscriptions/x/run")
    lag = ArgLag(seed=7)
    delays = {lag.delay(key, NOW + timedelta(seconds=s)) for s in range(200)}
    assert all(timedelta(seconds=5) <= d <= timedelta(seconds=90) for d in delays)
    assert len(delays) > 100  # drawn, not constant
    assert ArgLag(seed=7).delay(key, NOW) == lag.delay(key, NOW)
    assert ArgLag(seed=8).delay(key, NOW) != lag.delay(key, NOW)


# -- ids, machine rows and patch rows as Resource Graph returns them -------------------------
def machines_world(world: World, clock: ManualClock) -> Any:
    cfg = config_object("weekly")
    run = add_run(world, cfg, NOW - timedelta(minutes=30), status="InProgress", machines=2,
                  machine_status="InProgress")
    done, running = run.machine_ids
    with world.mutate():
        run.results[done] = MachineResult(status="Succeeded", installed=4,
                                          started=run.start,
                                          ended=NOW - timedelta(minutes=12))
        run.results[running] = MachineResult(status="InProgress", started=run.start)
    return run, done, running


def test_maintenance_resource_ids_are_lower_case_and_patch_ids_mixed(
        standin_world: World, standin_clock: ManualClock, standin: StandInServer,
        clients_for: Callable[[StandInServer], Clients]) -> None:
    run, done, running = machines_world(standin_world, standin_clock)
    c = clients_for(standin)
    ids = [r["id"] for r in c.rows("maintenanceresources | project id")]
    assert ids and all(i == i.lower() for i in ids)
    patches = c.rows("patchinstallationresources | project id, name, properties")
    assert len(patches) == 2
    by_machine = {p["id"].split("/patchInstallationResults/")[0]: p for p in patches}
    assert set(by_machine) == {done.lower(), running.lower()}
    guid = patch_result_guid(run.correlation_id, done)
    assert by_machine[done.lower()]["id"] == f"{done.lower()}/patchInstallationResults/{guid}"
    assert re.fullmatch(r"[0-9a-f-]{36}", by_machine[done.lower()]["name"])
    assert by_machine[done.lower()]["properties"]["lastModifiedDateTime"] == \
        (NOW - timedelta(minutes=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert by_machine[running.lower()]["properties"]["lastModifiedDateTime"] is None


def test_machine_run_rows_carry_the_schedule_times_not_the_machine_times(
        standin_world: World, standin_clock: ManualClock, standin: StandInServer,
        clients_for: Callable[[StandInServer], Clients]) -> None:
    run, _, _ = machines_world(standin_world, standin_clock)
    c = clients_for(standin)
    rows = c.rows('maintenanceresources | where type =~ "microsoft.maintenance/applyupdates"'
                  ' | project properties')
    assert len(rows) == 2
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    for row in rows:
        assert row["properties"]["startDateTime"] == run.start.strftime(fmt)
        assert row["properties"]["endDateTime"] == run.end.strftime(fmt)


def test_the_clients_machines_query_joins_every_machine_over_mixed_casing(
        standin_world: World, standin_clock: ManualClock, standin: StandInServer,
        clients_for: Callable[[StandInServer], Clients]) -> None:
    run, done, running = machines_world(standin_world, standin_clock)
    rows = clients_for(standin).rows(machines_query(run.correlation_id))
    assert [r["machineId"] for r in rows] == sorted([done.lower(), running.lower()])
    assert all(r["patch"] is not None for r in rows)


# -- the cancel PUT ----------------------------------------------------------------------
def test_cancel_answers_in_the_recorded_real_shape(
        standin_world: World, standin: StandInServer,
        clients_for: Callable[[StandInServer], Clients]) -> None:
    cfg = config_object("Weekly-Web")
    run = add_run(standin_world, cfg, NOW + timedelta(minutes=30))
    answer = clients_for(standin).send("PUT", run.correlation_id, CANCEL_BODY)
    assert answer.status_code == 200
    assert answer.json() == {
        "properties": {"status": "Cancelled", "resourceId": cfg["id"],
                       "lastUpdateTime": "0001-01-01T00:00:00"},
        "id": run.correlation_id.lower(),
        "name": "Weekly-Web",
        "type": "Microsoft.Maintenance/applyUpdates",
    }


def test_a_put_on_a_run_id_azure_never_showed_answers_201_and_the_real_run_goes_ahead(
        standin_world: World, standin_clock: ManualClock, standin: StandInServer,
        clients_for: Callable[[StandInServer], Clients]) -> None:
    data = {"seed": 1, "subscriptions": {"prod": SUB}, "configuration": [{
        "name": "cfg-daily", "subscription": "prod", "resource_group": "rg-a",
        "time_zone": "UTC", "recur_every": "Day", "duration": "01:00", "start": "now+2h",
        "machines": [{"count": 2, "prefix": "vm"}]}]}
    engine = ScenarioEngine(standin_world, parse_scenario(data))
    c = clients_for(standin)
    start = NOW + timedelta(hours=2)
    cfg_id = standin_world.configurations()[0]["id"]
    computed = f"{cfg_id}/providers/Microsoft.Maintenance/applyUpdates/{start:%Y%m%d%H%M%S}"
    # Two hours ahead no run exists yet: a cancel "computed from the schedule" still succeeds.
    answer = c.send("PUT", computed, CANCEL_BODY)
    assert answer.status_code == 201
    assert answer.json()["properties"]["status"] == "Cancelled"
    assert standin_world.get_run(computed).phantom
    assert c.run_status(computed) is None  # Resource Graph never showed it
    # ... and the real run appears at T-40 and runs.
    standin_clock.set(start + timedelta(minutes=5))
    engine.step()
    assert c.send("GET", computed).json()["properties"]["status"] == "InProgress"
    assert c.run_status(computed) == "InProgress"


# -- schedule edits ------------------------------------------------------------------------
def shifted(window: dict[str, Any], hours: int) -> dict[str, Any]:
    start = datetime.strptime(window["startDateTime"], "%Y-%m-%d %H:%M")
    return {**window, "startDateTime": (start + timedelta(hours=hours)).strftime(
        "%Y-%m-%d %H:%M")}


def test_a_schedule_edit_cancels_the_run_within_40_minutes_and_the_engine_follows_it(
        standin_world: World, standin_clock: ManualClock, standin: StandInServer,
        clients_for: Callable[[StandInServer], Clients]) -> None:
    data = {"seed": 1, "subscriptions": {"prod": SUB}, "configuration": [{
        "name": "cfg-daily", "subscription": "prod", "resource_group": "rg-a",
        "time_zone": "UTC", "recur_every": "Day", "duration": "01:00", "start": "now+30m",
        "machines": [{"count": 2, "prefix": "vm"}]}]}
    engine = ScenarioEngine(standin_world, parse_scenario(data))
    c = clients_for(standin)
    cfg = standin_world.configurations()[0]
    soon = next(r for r in standin_world.runs() if r.start == NOW + timedelta(minutes=30))
    assert soon.status == "Pending"
    edited = {"location": cfg["location"], "properties": {
        **cfg["properties"],
        "maintenanceWindow": shifted(cfg["properties"]["maintenanceWindow"], 3)}}
    answer = c.send("PUT", cfg["id"], edited, version="2023-04-01")
    assert answer.status_code == 200
    assert c.send("GET", cfg["id"], version="2023-04-01").json()["properties"][
        "maintenanceWindow"]["startDateTime"] == edited["properties"]["maintenanceWindow"][
        "startDateTime"]
    got = c.send("GET", soon.correlation_id).json()["properties"]
    assert got["status"] == "Cancelled"
    assert got["error"]["message"] == PLATFORM_CANCEL_MESSAGE.format(
        at=NOW.strftime("%Y-%m-%dT%H:%M:%SZ"))
    # The engine leaves the cancelled run alone and plays the new schedule: 3 h later.
    standin_clock.set(NOW + timedelta(hours=4))
    engine.step()
    starts = sorted(r.start for r in standin_world.runs() if r.start > NOW)
    assert starts == [NOW + timedelta(minutes=30), NOW + timedelta(hours=3, minutes=30)]
    assert soon.status == "Cancelled"
    new = standin_world.get_run(f"{cfg['id']}/providers/microsoft.maintenance/applyupdates/"
                                f"{NOW + timedelta(hours=3, minutes=30):%Y%m%d%H%M%S}")
    assert new is not None and new.status in ("InProgress", "Completed")


def test_an_edit_more_than_40_minutes_ahead_cancels_nothing(
        standin_world: World, standin: StandInServer,
        clients_for: Callable[[StandInServer], Clients]) -> None:
    run = add_run(standin_world, config_object("weekly"), NOW + timedelta(minutes=41))
    cfg = standin_world.get_configuration(run.configuration_id)
    assert cfg is not None
    answer = clients_for(standin).send("PUT", cfg["id"], {"properties": cfg["properties"]},
                                       version="2023-04-01")
    assert answer.status_code == 200
    assert run.status == "Pending"


def test_a_configuration_put_with_a_bad_schedule_is_400_and_changes_nothing(
        standin_world: World, standin: StandInServer,
        clients_for: Callable[[StandInServer], Clients]) -> None:
    cfg = config_object("weekly")
    standin_world.add_configuration(cfg)
    bad = {"properties": {"maintenanceWindow": {**cfg["properties"]["maintenanceWindow"],
                                                "recurEvery": "Fortnightly"}}}
    answer = clients_for(standin).send("PUT", cfg["id"], bad, version="2023-04-01")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "InvalidParameter"
    assert standin_world.get_configuration(cfg["id"]) is cfg


# -- Resource Graph's query limits ----------------------------------------------------------
def join(n: int, table: str = "resources") -> str:
    return " ".join(f"| join kind=leftouter ({table} | project id) on id" for _ in range(n))


@pytest.mark.parametrize(("text", "detail"), [
    (f"resources {join(4)}", "JoinLimitExceeded"),
    (f"maintenanceresources {join(2, 'patchinstallationresources')}", "JoinLimitExceeded"),
    ("resources | mv-expand a = properties.a | mv-expand b = properties.b"
     " | mv-expand c = properties.c | mv-expand d = properties.d", "MvExpandLimitExceeded"),
    ("union resources, maintenanceresources, patchinstallationresources,"
     " (resources | take 1)", "UnionLimitExceeded"),
    ("resources | lookup (maintenanceresources | project id) on id", "UnsupportedOperator"),
    ("resources | project-rename rid = id", "UnsupportedOperator"),
    ("resources | join kind=leftanti (resources) on id", "UnsupportedJoinFlavor"),
])
def test_what_resource_graph_refuses_is_refused_with_its_error_shape(
        standin_world: World, graph_client: Any, text: str, detail: str) -> None:
    with pytest.raises(HttpResponseError) as info:
        graph_client.resources(QueryRequest(query=text, subscriptions=[SUB]))
    assert info.value.status_code == 400
    error = info.value.response.json()["error"]
    assert error["code"] == "BadRequest"
    assert [d["code"] for d in error["details"]] == ["InvalidQuery", detail]


@pytest.mark.parametrize("text", [
    f"resources {join(3)}",
    f"maintenanceresources {join(1, 'patchinstallationresources')}"
    f" {join(2, 'maintenanceresources')}",
    "resources | mv-expand a = properties.a | mv-expand b = properties.b"
    " | mv-expand c = properties.c",
    "union resources, maintenanceresources, patchinstallationresources",
])
def test_queries_at_the_limits_pass(standin_world: World, graph_client: Any,
                                    text: str) -> None:
    graph_client.resources(QueryRequest(query=text, subscriptions=[SUB]))


def test_the_clients_own_queries_pass(standin_world: World, graph_client: Any) -> None:
    run = add_run(standin_world, config_object("weekly"), NOW - timedelta(hours=1),
                  status="Completed", machines=1, machine_status="Succeeded")
    for text in (CONFIGS_QUERY, runs_query(), machines_query(run.correlation_id)):
        assert graph_client.resources(QueryRequest(query=text, subscriptions=[SUB])).data


def test_ids_can_be_kept_as_stored(standin_clock: ManualClock,
                                   standin_factory: Callable[..., StandInServer],
                                   clients_for: Callable[[StandInServer], Clients]) -> None:
    world = World(standin_clock, azure_ids=False)
    world.add_subscription(SUB)
    run = add_run(world, config_object("Weekly"), NOW - timedelta(minutes=5),
                  status="InProgress", machines=1, machine_status="InProgress")
    c = clients_for(standin_factory(world, quota_limit=RELAXED_QUOTA))
    ids = {r["id"] for r in c.rows(f'maintenanceresources | where type =~ "{RUN_TYPE}"'
                                   " | project id")}
    assert ids == {run.correlation_id}
    [patch] = c.rows("patchinstallationresources | project id")
    assert patch["id"].startswith(f"{run.machine_ids[0]}/patchInstallationResults/")
