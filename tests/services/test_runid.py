"""Run identity (services/domain/runid.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.domain.runid import (
    RunId,
    RunIdError,
    correlation_id_for,
    expected_run_name,
    parse_configuration_id,
    parse_run_id,
    same_run,
)

CONFIG = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/testrg/providers/"
    "Microsoft.Maintenance/maintenanceConfigurations/contosomaintenanceconfiguration"
)
RUN = f"{CONFIG}/providers/microsoft.maintenance/applyupdates/20230509150000"


def test_parse_run_id_splits_the_sample_correlation_id() -> None:
    run = parse_run_id(RUN)
    assert run.subscription_id == "00000000-0000-0000-0000-000000000000"
    assert run.resource_group == "testrg"
    assert run.configuration_name == "contosomaintenanceconfiguration"
    assert run.run_name == "20230509150000"
    assert run.correlation_id == RUN
    assert run.configuration_id == CONFIG
    assert run.start == datetime(2023, 5, 9, 15, 0, tzinfo=UTC)
    assert str(run) == RUN


def test_parse_run_id_accepts_any_casing_and_keeps_the_original_text() -> None:
    shouting = RUN.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/")
    run = parse_run_id(shouting)
    assert run.correlation_id == shouting
    assert run.resource_group == "TESTRG"
    assert run.key == RUN.lower()


def test_surrounding_whitespace_and_a_trailing_slash_are_ignored() -> None:
    assert parse_run_id(f"  {RUN}/\n") == parse_run_id(RUN)
    assert parse_run_id(f"  {RUN}/\n").correlation_id == RUN


def test_run_ids_compare_and_hash_case_insensitively() -> None:
    lower, upper = parse_run_id(RUN.lower()), parse_run_id(RUN.upper())
    assert lower == upper
    assert hash(lower) == hash(upper)
    assert len({lower, upper}) == 1
    other = parse_run_id(RUN.replace("20230509150000", "20230510150000"))
    assert lower != other


def test_a_run_id_never_equals_a_plain_string() -> None:
    assert parse_run_id(RUN) != RUN


def test_same_run() -> None:
    assert same_run(RUN, RUN.swapcase().replace("/SUBSCRIPTIONS/", "/subscriptions/"))
    assert same_run(RUN, RUN.lower().replace("resourcegroups", "RESOURCEGROUPS"))
    assert not same_run(RUN, RUN.replace("testrg", "otherrg"))
    # Texts that are not run ids compare as case-insensitive strings instead of raising.
    assert same_run("some-event-id", "SOME-EVENT-ID")
    assert not same_run("some-event-id", RUN)


def test_run_name_that_is_not_a_timestamp_is_kept_with_no_start() -> None:
    assert parse_run_id(RUN.replace("20230509150000", "custom-run")).start is None
    assert parse_run_id(RUN.replace("20230509150000", "20231309150000")).start is None  # month 13


def test_directly_built_run_id_derives_its_configuration_id() -> None:
    run = RunId("sub", "rg", "cfg", "20260101150000", "whatever")
    assert run.configuration_id == (
        "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Maintenance/"
        "maintenanceConfigurations/cfg"
    )
    assert run == parse_run_id(correlation_id_for(run.configuration_id, run.start))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (CONFIG, "configuration id, not a run id"),
        (f"{CONFIG}/providers/microsoft.maintenance/applyupdates/", "not a run id"),
        (f"{CONFIG}/providers/microsoft.maintenance/applyupdates/2023 0509", "not a run id"),
        (RUN + "/extra", "not a run id"),
        (RUN.replace("/resourceGroups/testrg", ""), "not a run id"),
        (RUN.replace("Microsoft.Maintenance/maintenanceConfigurations", "Microsoft.Compute/vms"),
         "not a run id"),
        ("subscriptions/x/resourceGroups/y", "not a run id"),
        (RUN + "?api-version=2023-09-01-preview", "not a run id"),
        ("/" + "a" * 5000, "characters long"),
    ],
    ids=["empty", "blank", "config-only", "no-run-name", "space", "extra-segment", "no-rg",
         "wrong-provider", "no-leading-slash", "query-string", "huge"],
)
def test_bad_run_ids_raise_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(RunIdError, match=reason):
        parse_run_id(text)


def test_run_id_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_run_id("nope")


def test_non_text_is_refused_with_run_id_error() -> None:
    with pytest.raises(RunIdError, match="must be text"):
        parse_run_id(None)  # type: ignore[arg-type]


def test_parse_configuration_id() -> None:
    assert parse_configuration_id(CONFIG) == (
        "00000000-0000-0000-0000-000000000000", "testrg", "contosomaintenanceconfiguration"
    )
    with pytest.raises(RunIdError, match="not a maintenance configuration id"):
        parse_configuration_id(RUN)


@pytest.mark.parametrize(
    ("start", "name"),
    [
        (datetime(2023, 5, 9, 15, 0, tzinfo=UTC), "20230509150000"),
        (datetime(2023, 5, 9, 17, 0, tzinfo=timezone(timedelta(hours=2))), "20230509150000"),
        (datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC), "20240229235959"),
        (datetime(2026, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-1))), "20270101003000"),
    ],
    ids=["utc", "offset", "fraction-dropped", "crosses-year"],
)
def test_expected_run_name_is_the_utc_start(start: datetime, name: str) -> None:
    assert expected_run_name(start) == name


def test_expected_run_name_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="naive"):
        expected_run_name(datetime(2023, 5, 9, 15, 0))


def test_correlation_id_for_round_trips_through_parse() -> None:
    start = datetime(2023, 5, 9, 15, 0, tzinfo=UTC)
    computed = correlation_id_for(CONFIG, start)
    assert computed == RUN
    assert parse_run_id(computed).start == start
    assert correlation_id_for(CONFIG + "/", start) == RUN


def test_correlation_id_for_refuses_what_is_not_a_configuration_id() -> None:
    with pytest.raises(RunIdError, match="not a maintenance configuration id"):
        correlation_id_for("/subscriptions/x", datetime(2023, 5, 9, 15, 0, tzinfo=UTC))
