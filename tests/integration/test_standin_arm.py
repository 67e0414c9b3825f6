"""The real azure-mgmt-maintenance clients (sync and aio) against the stand-in's ARM side.

Also the server-wide behaviour: authentication, the Date header, faults, the admin endpoint.
"""

from __future__ import annotations

import email.utils
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.rest import HttpRequest
from azure.mgmt.maintenance import MaintenanceManagementClient
from azure.mgmt.resourcegraph.models import QueryRequest

from services.domain.clock import ManualClock, ScaledClock
from services.standin.server import StandInServer
from services.standin.world import World
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

CANCEL_VERSION = "2023-09-01-preview"
CANCEL_BODY = {"properties": {"status": "Cancel"}}


def fill(world: World, count: int, rgs: tuple[str, ...] = ("rg-a", "rg-b")) -> None:
    for i in range(count):
        world.add_configuration(config_object(f"cfg-{i:03d}", rg=rgs[i % len(rgs)]))


def raw(server: StandInServer, method: str, path: str, *, token: str | None = "server",
        body: Any = None) -> tuple[int, dict[str, str], Any]:
    """One HTTPS request without any SDK (urllib), for what the SDKs cannot send."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {server.token if token == 'server' else token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.endpoint + path, data=data, method=method,
                                 headers=headers)
    ctx = ssl.create_default_context(cafile=server.ca_file)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"null")


def send(client: Any, method: str, path: str, version: str = CANCEL_VERSION,
         body: Any = None) -> Any:
    """Send through the SDK client's own pipeline, as the product's cancel does."""
    request = HttpRequest(method, path, params={"api-version": version}, json=body)
    return client._send_request(request)


# -- configurations ----------------------------------------------------------------------
def test_list_in_a_subscription_returns_all_250_configurations(
        standin_world: World, maintenance_client: Any) -> None:
    fill(standin_world, 250)
    names = [c.name for c in maintenance_client.maintenance_configurations.list()]
    assert sorted(names) == [f"cfg-{i:03d}" for i in range(250)]


async def test_aio_list_in_a_subscription(standin_world: World,
                                          aio_maintenance_client: Any) -> None:
    fill(standin_world, 250)
    names = [c.name async for c in aio_maintenance_client.maintenance_configurations.list()]
    assert len(names) == 250


def test_list_in_a_resource_group_returns_only_its_configurations(
        standin_world: World, maintenance_client: Any) -> None:
    fill(standin_world, 10)
    ops = maintenance_client.maintenance_configurations_for_resource_group
    names = sorted(c.name for c in ops.list("RG-A"))  # resource group names ignore case
    assert names == [f"cfg-{i:03d}" for i in range(0, 10, 2)]


def test_get_one_configuration_with_its_maintenance_window(
        standin_world: World, maintenance_client: Any) -> None:
    fill(standin_world, 3)
    cfg = maintenance_client.maintenance_configurations.get("RG-B", "CFG-001")
    assert cfg.name == "cfg-001"
    assert cfg.recur_every == "Week Saturday"
    assert cfg.time_zone == "W. Europe Standard Time"
    assert cfg.duration == "03:00"


def test_get_unknown_configuration_is_404_resource_not_found(
        standin_world: World, maintenance_client: Any) -> None:
    fill(standin_world, 1)
    with pytest.raises(ResourceNotFoundError) as info:
        maintenance_client.maintenance_configurations.get("rg-a", "nope")
    assert info.value.error.code == "ResourceNotFound"


def test_unknown_subscription_is_404(standin: StandInServer) -> None:
    client = MaintenanceManagementClient(StaticTokenCredential(standin.token),
                                         "11111111-1111-4111-8111-111111111111",
                                         **sdk_kwargs(standin))
    with client, pytest.raises(ResourceNotFoundError) as info:
        list(client.maintenance_configurations.list())
    assert info.value.error.code == "SubscriptionNotFound"


def test_next_link_pages_cover_every_configuration(
        standin_world: World, standin_factory: Callable[..., StandInServer]) -> None:
    fill(standin_world, 250)
    server = standin_factory(standin_world, arm_page_size=100, quota_limit=RELAXED_QUOTA)
    path = f"/subscriptions/{SUB}/providers/Microsoft.Maintenance/maintenanceConfigurations"
    pages: list[list[str]] = []
    next_path: str | None = path + "?api-version=2023-04-01"
    while next_path:
        status, _, body = raw(server, "GET", next_path)
        assert status == 200
        pages.append([c["name"] for c in body["value"]])
        link = body.get("nextLink")
        next_path = link[len(server.endpoint):] if link else None
    assert [len(p) for p in pages] == [100, 100, 50]
    assert sorted(n for page in pages for n in page) == [f"cfg-{i:03d}" for i in range(250)]


def test_stable_sdk_pager_does_not_follow_next_link(
        standin_world: World, standin_factory: Callable[..., StandInServer]) -> None:
    # Why lists are one page by default: azure-mgmt-maintenance 2.1.0 ignores nextLink.
    fill(standin_world, 250)
    server = standin_factory(standin_world, arm_page_size=100, quota_limit=RELAXED_QUOTA)
    client = MaintenanceManagementClient(StaticTokenCredential(server.token), SUB,
                                         **sdk_kwargs(server))
    with client:
        assert len(list(client.maintenance_configurations.list())) == 100


def test_paths_are_case_insensitive(standin_world: World, standin: StandInServer) -> None:
    fill(standin_world, 2)
    path = (f"/SUBSCRIPTIONS/{SUB.upper()}/RESOURCEGROUPS/RG-A/PROVIDERS/MICROSOFT.MAINTENANCE/"
            "MAINTENANCECONFIGURATIONS/CFG-000?api-version=2023-04-01")
    status, _, body = raw(standin, "GET", path)
    assert status == 200
    assert body["name"] == "cfg-000"


def test_unknown_api_version_is_400_invalid_api_version(
        standin_world: World, standin: StandInServer) -> None:
    path = f"/subscriptions/{SUB}/providers/Microsoft.Maintenance/maintenanceConfigurations"
    status, _, body = raw(standin, "GET", path + "?api-version=2019-01-01")
    assert status == 400
    assert body["error"]["code"] == "InvalidApiVersionParameter"
    status, _, body = raw(standin, "GET", path)
    assert (status, body["error"]["code"]) == (400, "MissingApiVersionParameter")


# -- authentication and common headers -------------------------------------------------------
def test_wrong_token_is_401_with_arm_envelope(standin_world: World,
                                              standin: StandInServer) -> None:
    client = MaintenanceManagementClient(StaticTokenCredential("not-the-token"), SUB,
                                         **sdk_kwargs(standin))
    with client, pytest.raises(ClientAuthenticationError) as info:
        list(client.maintenance_configurations.list())
    assert info.value.status_code == 401
    assert info.value.error.code == "InvalidAuthenticationToken"
    assert info.value.response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_missing_token_is_401_authentication_failed(standin: StandInServer) -> None:
    path = f"/subscriptions/{SUB}/providers/Microsoft.Maintenance/maintenanceConfigurations"
    status, headers, body = raw(standin, "GET", path + "?api-version=2023-04-01", token=None)
    assert status == 401
    assert body["error"]["code"] == "AuthenticationFailed"
    assert "WWW-Authenticate" in headers


def test_date_header_follows_the_world_clock(standin_world: World, standin: StandInServer,
                                             standin_clock: ManualClock) -> None:
    path = f"/subscriptions/{SUB}/providers/Microsoft.Maintenance/maintenanceConfigurations"
    _, headers, _ = raw(standin, "GET", path + "?api-version=2023-04-01")
    assert email.utils.parsedate_to_datetime(headers["Date"]) == NOW
    assert headers["x-ms-request-id"]
    standin_clock.advance(timedelta(hours=5))
    _, headers, _ = raw(standin, "GET", path + "?api-version=2023-04-01")
    assert email.utils.parsedate_to_datetime(headers["Date"]) == NOW + timedelta(hours=5)


# -- applyUpdates and cancel ---------------------------------------------------------------
def run_path(run: Any) -> str:
    return run.correlation_id


def test_get_apply_update_through_the_sdk(standin_world: World, maintenance_client: Any) -> None:
    run = add_run(standin_world, config_object("weekly"), NOW + timedelta(minutes=30))
    got = maintenance_client.apply_updates.get(
        "rg-patch", "Microsoft.Maintenance", "maintenanceConfigurations", "weekly", run.name)
    assert got.name == run.name
    assert got.status == "Pending"


def test_cancel_inside_the_window_then_visible_in_resource_graph(
        standin_world: World, maintenance_client: Any, graph_client: Any) -> None:
    cfg = config_object("weekly")
    run = add_run(standin_world, cfg, NOW + timedelta(minutes=30), machines=3)
    response = send(maintenance_client, "PUT", run_path(run), body=CANCEL_BODY)
    assert response.status_code == 200
    assert response.json()["properties"]["status"] == "Cancelled"
    got = send(maintenance_client, "GET", run_path(run)).json()
    assert got["properties"]["status"] == "Cancelled"
    query = (
        "maintenanceresources"
        ' | where type =~ "microsoft.maintenance/maintenanceconfigurations/applyupdates"'
        f' | where properties.correlationId has "{cfg["id"].lower()}'
        '/providers/microsoft.maintenance/applyupdates/"'
        " | project name, status = tostring(properties.status),"
        " message = tostring(properties.error.message)")
    rows = graph_client.resources(QueryRequest(query=query, subscriptions=[SUB])).data
    assert rows == [{"name": run.name, "status": "Cancelled",
                     "message": f"Maintenance cancelled using cancellation API at "
                                f"{NOW.strftime('%Y-%m-%dT%H:%M:%SZ')}"}]


async def test_aio_cancel_inside_the_window(standin_world: World,
                                            aio_maintenance_client: Any) -> None:
    run = add_run(standin_world, config_object("weekly"), NOW + timedelta(minutes=11))
    request = HttpRequest("PUT", run_path(run), params={"api-version": "2023-10-01-preview"},
                          json=CANCEL_BODY)
    response = await aio_maintenance_client._send_request(request)
    assert response.status_code == 200
    assert standin_world.get_run(run.correlation_id).status == "Cancelled"


@pytest.mark.parametrize("minutes_before_start", [41, 10, 5])
def test_cancel_outside_the_window_is_400_and_changes_nothing(
        standin_world: World, maintenance_client: Any, minutes_before_start: int) -> None:
    run = add_run(standin_world, config_object("weekly"),
                  NOW + timedelta(minutes=minutes_before_start))
    version = standin_world.version
    response = send(maintenance_client, "PUT", run_path(run), body=CANCEL_BODY)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "CancellationWindowClosed"
    assert standin_world.get_run(run.correlation_id).status == "Pending"
    assert standin_world.version == version


def test_cancel_a_running_run_is_409(standin_world: World, maintenance_client: Any) -> None:
    run = add_run(standin_world, config_object("weekly"), NOW - timedelta(minutes=5),
                  status="InProgress")
    response = send(maintenance_client, "PUT", run_path(run), body=CANCEL_BODY)
    assert response.status_code == 409
    assert "error" in response.json()
    assert standin_world.get_run(run.correlation_id).status == "InProgress"


def test_cancel_an_unknown_run_answers_201_and_creates_a_phantom(
        standin_world: World, maintenance_client: Any, graph_client: Any) -> None:
    # Issue 14: the PUT is a create-or-update, so an id Azure never showed "succeeds".
    cfg = config_object("weekly")
    standin_world.add_configuration(cfg)
    path = f"{cfg['id']}/providers/Microsoft.Maintenance/applyUpdates/20260310123000"
    response = send(maintenance_client, "PUT", path, body=CANCEL_BODY)
    assert response.status_code == 201
    assert response.json()["properties"]["status"] == "Cancelled"
    phantom = standin_world.get_run(path)
    assert phantom is not None and phantom.phantom and phantom.status == "Cancelled"
    assert send(maintenance_client, "GET", path).json()["properties"]["status"] == "Cancelled"
    # Resource Graph never lists it: only ARM knows the phantom.
    rows = graph_client.resources(QueryRequest(
        query="maintenanceresources | project id", subscriptions=[SUB])).data
    assert rows == []


def test_cancel_of_an_unknown_configuration_is_still_404(
        standin_world: World, maintenance_client: Any) -> None:
    cfg = config_object("nowhere")
    path = f"{cfg['id']}/providers/Microsoft.Maintenance/applyUpdates/20260310123000"
    response = send(maintenance_client, "PUT", path, body=CANCEL_BODY)
    assert response.status_code == 404
    assert standin_world.get_run(path) is None


def test_cancel_needs_a_cancel_capable_api_version_and_body(
        standin_world: World, maintenance_client: Any) -> None:
    run = add_run(standin_world, config_object("weekly"), NOW + timedelta(minutes=30))
    old = send(maintenance_client, "PUT", run_path(run), version="2023-04-01", body=CANCEL_BODY)
    assert old.status_code == 400
    other = send(maintenance_client, "PUT", run_path(run), body={"properties": {"status": "Go"}})
    assert other.status_code == 400
    assert other.json()["error"]["code"] == "InvalidRequestContent"
    assert standin_world.get_run(run.correlation_id).status == "Pending"


# -- faults ------------------------------------------------------------------------------
def client_without_retries(server: StandInServer) -> MaintenanceManagementClient:
    return MaintenanceManagementClient(StaticTokenCredential(server.token), SUB,
                                       **sdk_kwargs(server, retry_total=0))


def test_throttle_with_retry_after_is_retried_by_the_sdk(
        standin_world: World, standin: StandInServer, maintenance_client: Any) -> None:
    fill(standin_world, 2)
    standin.faults.set("throttle", count=1, scope="arm", retry_after=0)
    assert len(list(maintenance_client.maintenance_configurations.list())) == 2
    assert standin.faults.active() == []  # the one 429 was served, then the retry succeeded


@pytest.mark.parametrize(("kind", "status", "code"), [
    ("throttle-no-retry-after", 429, "SubscriptionRequestsThrottled"),
    ("error500", 500, "InternalServerError"),
    ("error503", 503, "ServiceUnavailable"),
])
def test_error_faults_reach_the_sdk(standin_world: World, standin: StandInServer,
                                    kind: str, status: int, code: str) -> None:
    standin.faults.set(kind, count=1, scope="arm")
    with client_without_retries(standin) as client:
        with pytest.raises(HttpResponseError) as info:
            list(client.maintenance_configurations.list())
        assert info.value.status_code == status
        assert info.value.error.code == code
        assert list(client.maintenance_configurations.list()) == []  # fault used up


def test_expired_token_fault_is_401(standin_world: World, standin: StandInServer) -> None:
    standin.faults.set("expired-token", count=1)
    with client_without_retries(standin) as client, \
            pytest.raises(ClientAuthenticationError) as info:
        list(client.maintenance_configurations.list())
    assert info.value.error.code == "ExpiredAuthenticationToken"


def test_slow_fault_delays_past_the_read_timeout(standin_world: World,
                                                 standin: StandInServer) -> None:
    standin.faults.set("slow", count=1, delay=2.0)
    with client_without_retries(standin) as client, pytest.raises(ServiceResponseError):
        list(client.maintenance_configurations.list(read_timeout=0.3))


def test_drop_fault_closes_the_connection(standin_world: World,
                                          standin: StandInServer) -> None:
    standin.faults.set("drop", count=1)
    with client_without_retries(standin) as client:
        with pytest.raises((ServiceRequestError, ServiceResponseError)):
            list(client.maintenance_configurations.list())
        assert list(client.maintenance_configurations.list()) == []


def test_graph_scoped_fault_leaves_arm_alone(standin_world: World, standin: StandInServer,
                                             maintenance_client: Any) -> None:
    standin.faults.set("error500", scope="graph")
    assert list(maintenance_client.maintenance_configurations.list()) == []
    assert len(standin.faults.active()) == 1


# -- admin endpoint ------------------------------------------------------------------------
def test_admin_sets_and_clears_faults(standin_world: World, standin: StandInServer) -> None:
    status, _, body = raw(standin, "POST", "/_sim/faults",
                          body={"kind": "error503", "count": 2, "scope": "arm"})
    assert status == 200
    assert body["faults"][0]["kind"] == "error503"
    assert standin.faults.active()[0]["count"] == 2
    status, _, _ = raw(standin, "DELETE", "/_sim/faults")
    assert status == 200
    assert standin.faults.active() == []


def test_admin_refuses_bad_fault_and_wrong_token(standin: StandInServer) -> None:
    status, _, body = raw(standin, "POST", "/_sim/faults", body={"kind": "meteor"})
    assert status == 400
    assert "meteor" in body["error"]["message"]
    status, _, _ = raw(standin, "POST", "/_sim/faults", body={"kind": "drop"}, token="bad")
    assert status == 401
    assert standin.faults.active() == []


def test_admin_shifts_the_clock(standin: StandInServer, standin_clock: ManualClock) -> None:
    status, _, body = raw(standin, "POST", "/_sim/clock", body={"shift_seconds": 90})
    assert status == 200
    assert standin_clock.now() == NOW + timedelta(seconds=90)
    assert body["now"] == (NOW + timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_admin_clock_shift_moves_a_scaled_clock(
        standin_factory: Callable[..., StandInServer]) -> None:
    clock = ScaledClock()
    world = World(clock)
    world.add_subscription(SUB)
    server = standin_factory(world)
    before = clock.now()
    status, headers, _ = raw(server, "POST", "/_sim/clock", body={"shift_seconds": 3600})
    assert status == 200
    served = email.utils.parsedate_to_datetime(headers["Date"])
    assert timedelta(minutes=59) < served - before < timedelta(minutes=61)


async def test_aio_client_sees_a_dropped_connection(standin_world: World,
                                                    standin: StandInServer) -> None:
    from azure.mgmt.maintenance.aio import MaintenanceManagementClient as AioClient

    from tests.standin import AsyncStaticTokenCredential

    # aiohttp's client resends an idempotent request once after a disconnect, so a GET
    # needs two drops in a row before the SDK (retry_total=0) sees the failure.
    standin.faults.set("drop", count=2)
    client = AioClient(AsyncStaticTokenCredential(standin.token), SUB,
                       **sdk_kwargs(standin, retry_total=0))
    async with client:
        with pytest.raises((ServiceRequestError, ServiceResponseError)):
            [c async for c in client.maintenance_configurations.list()]
        assert [c async for c in client.maintenance_configurations.list()] == []
