"""The real azure-mgmt-resourcegraph clients (sync and aio) against the stand-in's ARG side."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.mgmt.resourcegraph import ResourceGraphClient
from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions

from services.standin.server import StandInServer
from services.standin.world import World
from tests.standin import (
    NOW,
    RELAXED_QUOTA,
    SUB,
    AsyncStaticTokenCredential,
    StaticTokenCredential,
    add_run,
    config_object,
    sdk_kwargs,
)

pytestmark = pytest.mark.integration

OTHER_SUB = "00000000-0000-4000-8000-000000000002"
RUNS_TYPE = "microsoft.maintenance/maintenanceconfigurations/applyupdates"


def docs_sample_query(configuration_id: str) -> str:
    """The runs-of-one-configuration query from Microsoft's docs."""
    return (f'maintenanceresources | where type =~ "{RUNS_TYPE}" | where properties.correlationId'
            f' has "{configuration_id}/providers/microsoft.maintenance/applyupdates/"'
            " | order by name desc")


def weekly_runs(world: World, config: dict[str, Any], count: int) -> list[Any]:
    """``count`` completed runs, one a week, the last one a week before NOW."""
    return [add_run(world, config, NOW - timedelta(weeks=count - i), status="Completed")
            for i in range(count)]


def query(client: Any, text: str, **options: Any) -> tuple[Any, dict[str, str]]:
    """Run one query; return the SDK's QueryResponse and the HTTP response headers."""
    seen: dict[str, str] = {}

    def hook(response: Any) -> None:
        seen.update(response.http_response.headers)

    opts = QueryRequestOptions(**options) if options else None
    result = client.resources(QueryRequest(query=text, subscriptions=[SUB], options=opts),
                              raw_response_hook=hook)
    return result, seen


# -- the documented sample ---------------------------------------------------------------
def test_docs_sample_query_returns_the_runs_of_one_configuration(
        standin_world: World, graph_client: Any) -> None:
    mine = config_object("weekly")
    runs = weekly_runs(standin_world, mine, 4)
    weekly_runs(standin_world, config_object("other"), 3)
    # ARG's `has` ignores case; operators paste ids in any case.
    result, _ = query(graph_client, docs_sample_query(mine["id"].lower()))
    assert [row["name"] for row in result.data] == sorted((r.name for r in runs), reverse=True)
    assert {row["properties"]["maintenanceConfigurationId"] for row in result.data} == {mine["id"]}
    assert result.total_records == 4
    assert result.result_truncated == "false"
    assert result.skip_token is None


async def test_aio_docs_sample_query(standin_world: World, aio_graph_client: Any) -> None:
    mine = config_object("weekly")
    weekly_runs(standin_world, mine, 2)
    result = await aio_graph_client.resources(
        QueryRequest(query=docs_sample_query(mine["id"]), subscriptions=[SUB]))
    assert result.count == 2
    assert all(row["properties"]["status"] == "Completed" for row in result.data)


def test_projection_extend_and_join(standin_world: World, graph_client: Any) -> None:
    cfg = config_object("weekly")
    run = add_run(standin_world, cfg, NOW + timedelta(minutes=30), machines=2)
    text = (
        "maintenanceresources"
        ' | where type =~ "microsoft.maintenance/applyupdates"'
        " | extend runId = tolower(tostring(properties.correlationId)),"
        " status = tostring(properties.status)"
        " | project runId, machine = tostring(properties.resourceId), status"
        " | join kind=leftouter (maintenanceresources"
        f'   | where type =~ "{RUNS_TYPE}"'
        "   | project runKey = tolower(id), runStatus = tostring(properties.status))"
        "   on $left.runId == $right.runKey"
        " | project machine, status, runStatus | order by machine asc")
    result, _ = query(graph_client, text)
    assert [row["machine"].rsplit("/", 1)[-1] for row in result.data] == [
        "weekly-vm000", "weekly-vm001"]
    assert {(row["status"], row["runStatus"]) for row in result.data} == {("Pending", "Pending")}
    assert run.status == "Pending"


def test_now_reads_the_world_clock(standin_world: World, graph_client: Any) -> None:
    standin_world.add_configuration(config_object("weekly"))
    result, _ = query(graph_client, "resources | project t = now() | take 1")
    assert result.data == [{"t": NOW.strftime("%Y-%m-%dT%H:%M:%SZ")}]


def test_only_the_requested_subscriptions_are_searched(standin_world: World,
                                                       graph_client: Any) -> None:
    standin_world.add_subscription(OTHER_SUB)
    standin_world.add_configuration(config_object("mine"))
    standin_world.add_configuration(config_object("theirs", sub=OTHER_SUB))
    text = "resources | project name | order by name asc"
    mine = graph_client.resources(QueryRequest(query=text, subscriptions=[SUB.upper()]))
    both = graph_client.resources(QueryRequest(query=text, subscriptions=[SUB, OTHER_SUB]))
    assert [r["name"] for r in mine.data] == ["mine"]
    assert [r["name"] for r in both.data] == ["mine", "theirs"]


# -- paging ------------------------------------------------------------------------------
@pytest.fixture
def world_2500(standin_world: World) -> World:
    cfg = config_object("hourly")
    for i in range(2500):
        add_run(standin_world, cfg, NOW - timedelta(hours=i + 1), status="Completed")
    return standin_world


def test_skip_token_pages_over_2500_rows(world_2500: World, graph_client: Any) -> None:
    text = f'maintenanceresources | where type =~ "{RUNS_TYPE}" | order by name desc'
    names: list[str] = []
    counts: list[int] = []
    token: str | None = None
    while True:
        result, _ = query(graph_client, text, skip_token=token) if token else \
            query(graph_client, text)
        counts.append(result.count)
        names.extend(row["name"] for row in result.data)
        assert result.total_records == 2500
        token = result.skip_token
        if token is None:
            break
    assert counts == [1000, 1000, 500]
    assert names == sorted(names, reverse=True)
    assert len(set(names)) == 2500


def test_top_option_sets_the_page_size(world_2500: World, graph_client: Any) -> None:
    text = f'maintenanceresources | where type =~ "{RUNS_TYPE}" | order by name asc'
    first, _ = query(graph_client, text, top=100)
    assert first.count == 100
    assert first.skip_token
    second, _ = query(graph_client, text, top=100, skip_token=first.skip_token)
    assert second.data[0]["name"] > first.data[-1]["name"]


@pytest.mark.parametrize("limit", ["take 5", "limit 5", "top 5 by name desc"])
def test_a_limited_query_gets_no_skip_token(world_2500: World, graph_client: Any,
                                            limit: str) -> None:
    result, _ = query(graph_client, f"maintenanceresources | {limit}")
    assert result.count == 5
    assert result.skip_token is None
    assert result.result_truncated == "false"


def test_a_limit_above_a_page_is_truncated_without_token(world_2500: World,
                                                         graph_client: Any) -> None:
    result, _ = query(graph_client, "maintenanceresources | take 2000")
    assert result.count == 1000
    assert result.skip_token is None
    assert result.result_truncated == "true"


def test_skip_token_of_another_query_is_refused(world_2500: World, graph_client: Any) -> None:
    first, _ = query(graph_client, "maintenanceresources | order by name asc")
    with pytest.raises(HttpResponseError) as info:
        query(graph_client, "maintenanceresources | order by name desc",
              skip_token=first.skip_token)
    assert info.value.status_code == 400


def test_table_result_format(standin_world: World, graph_client: Any) -> None:
    weekly_runs(standin_world, config_object("weekly"), 2)
    result, _ = query(graph_client,
                      f'maintenanceresources | where type =~ "{RUNS_TYPE}" | extend n = 1'
                      " | project name, status = tostring(properties.status), n, properties"
                      " | order by name asc", result_format="table")
    assert [(c["name"], c["type"]) for c in result.data["columns"]] == [
        ("name", "string"), ("status", "string"), ("n", "integer"), ("properties", "object")]
    assert [row[1:3] for row in result.data["rows"]] == [["Completed", 1], ["Completed", 1]]
    assert isinstance(result.data["rows"][0][3], dict)


def test_tables_are_cached_until_the_world_changes(standin_world: World,
                                                   standin: StandInServer,
                                                   graph_client: Any) -> None:
    standin_world.add_configuration(config_object("a"))
    for _ in range(3):
        query(graph_client, "resources | count")
    assert standin.graph_table_loads == 1
    standin_world.add_configuration(config_object("b"))
    result, _ = query(graph_client, "resources | count")
    assert result.data == [{"Count": 2}]
    assert standin.graph_table_loads == 2


# -- errors ------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "detail"), [
    ("resources | wherex name", "ParserFailure"),
    ("storageresources | take 1", "UnknownTable"),
    (".show tables", "UnsupportedQuery"),
    ("resources | project nosuchcolumn", "FailedToExecuteQuery"),
    ("resources | evaluate bag_unpack(properties)", "UnsupportedQuery"),
])
def test_invalid_query_is_400_with_args_error_shape(standin_world: World, graph_client: Any,
                                                    text: str, detail: str) -> None:
    with pytest.raises(HttpResponseError) as info:
        query(graph_client, text)
    assert info.value.status_code == 400
    error = info.value.response.json()["error"]
    assert error["code"] == "BadRequest"
    assert [d["code"] for d in error["details"]] == ["InvalidQuery", detail]
    # the server is still fine afterwards
    assert query(graph_client, "resources | count")[0].data == [{"Count": 0}]


# -- quota -------------------------------------------------------------------------------
def test_sixteenth_query_in_a_burst_is_429_with_quota_headers(
        standin_world: World, standin_factory: Callable[..., StandInServer]) -> None:
    server = standin_factory(standin_world)  # the real 15-per-5-s quota
    with ResourceGraphClient(StaticTokenCredential(server.token), **sdk_kwargs(server)) as client:
        remaining = [int(query(client, "resources | count")[1]["x-ms-user-quota-remaining"])
                     for _ in range(15)]
        with pytest.raises(HttpResponseError) as info:
            query(client, "resources | count")
    assert remaining == list(range(14, -1, -1))
    headers = info.value.response.headers
    assert info.value.status_code == 429
    assert info.value.response.json()["error"]["code"] == "RateLimiting"
    assert headers["x-ms-user-quota-remaining"] == "0"
    assert re.fullmatch(r"00:00:0[1-5]", headers["x-ms-user-quota-resets-after"])
    assert "Retry-After" not in headers  # as ARG: back off from resets-after


def test_quota_window_resets(standin_world: World,
                             standin_factory: Callable[..., StandInServer]) -> None:
    server = standin_factory(standin_world, quota_limit=2, quota_window=0.3)
    with ResourceGraphClient(StaticTokenCredential(server.token), **sdk_kwargs(server)) as client:
        query(client, "resources | count")
        query(client, "resources | count")
        with pytest.raises(HttpResponseError):
            query(client, "resources | count")
        time.sleep(0.35)  # the quota runs on real time by design: the SDK waits in real time
        _, headers = query(client, "resources | count")
    assert headers["x-ms-user-quota-remaining"] == "1"


def test_every_answer_has_quota_date_and_request_id(standin_world: World,
                                                    graph_client: Any) -> None:
    _, headers = query(graph_client, "resources | count")
    assert int(headers["x-ms-user-quota-remaining"]) == RELAXED_QUOTA - 1
    assert re.fullmatch(r"\d\d:\d\d:\d\d", headers["x-ms-user-quota-resets-after"])
    assert email.utils.parsedate_to_datetime(headers["Date"]) == NOW
    assert headers["x-ms-request-id"]


# -- faults ------------------------------------------------------------------------------
def test_graph_throttle_with_retry_after_is_retried(standin_world: World,
                                                    standin: StandInServer,
                                                    graph_client: Any) -> None:
    standin.faults.set("throttle", count=1, scope="graph", retry_after=0)
    result, _ = query(graph_client, "resources | count")
    assert result.data == [{"Count": 0}]
    assert standin.faults.active() == []


def test_graph_throttle_without_retry_after_is_not_retried(standin_world: World,
                                                           standin: StandInServer,
                                                           graph_client: Any) -> None:
    standin.faults.set("throttle-no-retry-after", count=1, scope="graph")
    with pytest.raises(HttpResponseError) as info:
        query(graph_client, "resources | count")
    assert info.value.status_code == 429
    assert info.value.response.headers["x-ms-user-quota-remaining"] == "0"
    assert query(graph_client, "resources | count")[0].count == 1


async def test_aio_graph_query_sees_one_dropped_connection(standin_world: World,
                                                           standin: StandInServer) -> None:
    from azure.mgmt.resourcegraph.aio import ResourceGraphClient as AioClient

    # A query is a POST: neither aiohttp nor azure-core resends it after a disconnect.
    standin.faults.set("drop", count=1, scope="graph")
    client = AioClient(AsyncStaticTokenCredential(standin.token),
                       **sdk_kwargs(standin, retry_total=0))
    async with client:
        with pytest.raises((ServiceRequestError, ServiceResponseError)):
            await client.resources(QueryRequest(query="resources | count"))
        result = await client.resources(QueryRequest(query="resources | count"))
    assert result.data == [{"Count": 0}]


def test_slow_graph_answer_arrives_after_the_delay(standin_world: World,
                                                   standin: StandInServer,
                                                   graph_client: Any) -> None:
    standin.faults.set("slow", count=1, scope="graph", delay=0.4)
    started = time.monotonic()
    result, _ = query(graph_client, "resources | count")
    assert time.monotonic() - started >= 0.4
    assert result.data == [{"Count": 0}]
