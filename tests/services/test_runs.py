"""Run rows read defensively, who cancelled, and the merge of observed/expected/event runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.domain.model import Run
from services.domain.runs import cancelled_by_from_error, merge_runs, run_from_row, run_phase
from services.domain.window import WindowRules

CFG = ("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Maintenance/"
       "maintenanceConfigurations/cfg")
T = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
CID = f"{CFG}/providers/microsoft.maintenance/applyupdates/20260310150000"


def run(source: str = "arg", cid: str = CID, **kw: Any) -> Run:
    base: dict[str, Any] = {"correlation_id": cid, "configuration_id": CFG,
                            "configuration_name": "cfg", "run_name": "20260310150000",
                            "start": T, "end": T + timedelta(hours=3), "source": source}
    base.update(kw)
    return Run(**base)


@pytest.mark.parametrize(
    ("text", "who"),
    [("Maintenance cancelled using cancellation API at 2026-03-10T14:40:00Z", "user"),
     ("maintenance CANCELED using the cancellation api", "user"),
     ("Maintenance cancelled due to internal platform failure at ...", "platform"),
     ("Maintenance schedule canceled due to internal platform failure", "platform"),
     ("KB123 failed", None), (None, None), ("", None)],
)
def test_who_cancelled_is_read_loosely_from_the_error(text: str | None, who: str | None) -> None:
    assert cancelled_by_from_error(text) == who


@pytest.mark.parametrize(
    "row",
    [{}, {"properties": None}, {"properties": "x"}, {"id": 5, "properties": {"status": 3}},
     {"properties": {"correlationId": ["x"], "startDateTime": 12}}],
)
def test_unusable_rows_are_skipped_not_fatal(row: dict[str, Any]) -> None:
    assert run_from_row(row) is None


def test_a_row_with_only_an_id_falls_back_to_the_run_name_for_its_start() -> None:
    parsed = run_from_row({"id": CID.upper(), "properties": {"status": "InProgress",
                                                               "resourceUpdateSummary": "bad"}})
    assert parsed is not None
    assert parsed.start == T and parsed.status == "InProgress"
    assert parsed.configuration_name.lower() == "cfg" and parsed.machines_total is None


def test_wrongly_typed_fields_become_none() -> None:
    parsed = run_from_row({"properties": {
        "CorrelationId": CID, "StartDateTime": "2026-03-10T15:00:00.1234567Z",
        "endDateTime": "not a time", "status": None,
        "resourceUpdateSummary": {"total": "4", "succeeded": True, "failed": 1.0},
        "error": {"details": [{"message": "Maintenance cancelled using cancellation API"}]}}})
    assert parsed is not None
    assert parsed.start == T.replace(microsecond=123456) and parsed.end is None
    assert parsed.status == "Unknown"
    assert (parsed.machines_total, parsed.machines_succeeded, parsed.machines_failed) == \
        (4, None, 1)
    assert parsed.cancelled_by == "user"


def test_merge_keys_case_insensitively_and_observed_wins_over_expected() -> None:
    observed = run(status="Pending")
    expected = run("schedule", cid=CID.upper(), status="Scheduled", expected=True)
    later = run("schedule", cid=CID.replace("20260310150000", "20260311150000"),
                start=T + timedelta(days=1), expected=True, status="Scheduled")
    merged = merge_runs([observed], [expected, later])
    assert merged == (later, observed)


def test_events_fill_cutoff_and_finish_without_overriding_arg() -> None:
    observed = run(status="InProgress", end=None)
    pre = run("event", cid=CID.lower(), status="Pending", cutoff=T - timedelta(minutes=12))
    post = run("event", status="Succeeded", end=T + timedelta(hours=1))
    (merged,) = merge_runs([observed], [], [pre, post])
    assert merged.source == "arg"
    assert merged.cutoff == T - timedelta(minutes=12)
    assert merged.status == "Succeeded" and merged.end == T + timedelta(hours=1)


def test_events_alone_make_a_run_and_pre_plus_post_combine() -> None:
    pre = run("event", status="Pending", cutoff=T - timedelta(minutes=1))
    post = run("event", status="Succeeded")
    (merged,) = merge_runs([], [], [post, pre])
    assert merged.status == "Succeeded" and merged.cutoff == T - timedelta(minutes=1)


def test_phase_uses_cutoff_and_status() -> None:
    rules = WindowRules()
    with_cutoff = run(status="Pending", cutoff=T - timedelta(minutes=20))
    assert str(run_phase(with_cutoff, T - timedelta(minutes=15), rules)) == "locked"
    assert str(run_phase(run(status="Pending"), T - timedelta(minutes=15), rules)) == \
        "cancellable"
    assert str(run_phase(run(status="Cancelled"), T - timedelta(minutes=15), rules)) == \
        "finished"


def test_run_json_has_the_contract_keys_in_utc_z() -> None:
    # ``end`` is the run's real end (runfacts.run_end): a Completed row ended at its end.
    (merged,) = merge_runs([run(status="Completed", machines_total=3)], [])
    data = merged.to_json(phase="finished")
    assert data["start"] == "2026-03-10T15:00:00Z" and data["end"] == "2026-03-10T18:00:00Z"
    assert {"correlation_id", "configuration_id", "configuration_name", "run_name", "status",
            "start", "end", "phase", "expected", "cancelled_by", "cancel_initiator",
            "machines_total", "machines_succeeded", "machines_failed", "scheduled_end",
            "pre_event", "post_event"} <= set(data)


def test_a_verified_cancel_wins_over_an_older_resource_graph_row() -> None:


    start = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    cid = ("/subscriptions/s/resourcegroups/rg/providers/microsoft.maintenance/"
           "maintenanceconfigurations/mc/providers/microsoft.maintenance/applyupdates/"
           "20260310150000")
    stale = Run(cid, "c", "mc", "20260310150000", start, status="Pending")
    verified_at = start - timedelta(minutes=30)
    (merged,) = merge_runs([stale], [], cancelled={cid.upper(): verified_at})
    assert (merged.status, merged.cancelled_by, merged.expected) == ("Cancelled", "user", False)
    (plain,) = merge_runs([stale], [])
    assert plain.status == "Pending"


def test_a_verified_cancel_applies_to_a_run_known_only_from_the_schedule() -> None:


    start = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    cid = ("/subscriptions/s/resourcegroups/rg/providers/microsoft.maintenance/"
           "maintenanceconfigurations/mc/providers/microsoft.maintenance/applyupdates/"
           "20260310150000")
    expected = Run(cid, "c", "mc", "20260310150000", start, status="Scheduled", expected=True)
    (merged,) = merge_runs([], [expected], cancelled={cid: start})
    assert merged.status == "Cancelled" and not merged.expected


def test_a_post_event_ends_the_run_when_it_was_raised_not_at_the_window_end() -> None:
    from pathlib import Path

    from services.domain.events import decode_message
    from services.domain.runs import run_from_event

    text = (Path(__file__).parents[1] / "data" / "events" / "post-eventgrid.json").read_bytes()
    [event] = decode_message(text)
    # The sample: raised at 15:55, EndDateTime (the scheduled end) 18:55.
    ended = run_from_event(event)
    assert ended is not None and ended.status == "Succeeded"
    assert ended.end == event.event_time != event.end
    observed = Run(event.correlation_id, event.configuration_id or "", "c", "20230509150000",
                   event.start or T, end=event.end, status="InProgress")
    (merged,) = merge_runs([observed], [], [ended])
    assert merged.status == "Succeeded" and merged.end == event.event_time


def test_a_pre_event_keeps_the_scheduled_end_as_the_expected_end() -> None:
    from pathlib import Path

    from services.domain.events import decode_message
    from services.domain.runs import run_from_event

    text = (Path(__file__).parents[1] / "data" / "events" / "pre-eventgrid.json").read_bytes()
    [event] = decode_message(text)
    pre = run_from_event(event)
    assert pre is not None and pre.end == event.end and pre.status == "Pending"


def test_runs_take_their_configurations_name_and_scope() -> None:
    from services.domain.configs import configuration_from_row
    from services.domain.runs import runs_in_view, with_configurations

    host_cfg = CFG.replace("/cfg", "/hosts")
    rows = [{"id": CFG, "properties": {"maintenanceScope": "InGuestPatch"}},
            {"id": host_cfg, "properties": {"maintenanceScope": "Host"}}]
    configs = [c for row in rows if (c := configuration_from_row(row, T))]
    guest = run(configuration_name="")
    host = run(cid=CID.replace("/cfg/", "/hosts/"), configuration_id=host_cfg)
    orphan = run(cid=CID.replace("/cfg/", "/gone/"), configuration_id=CFG.replace("/cfg",
                                                                                  "/gone"))
    filled = with_configurations([guest, host, orphan], configs)
    assert [(r.configuration_name, r.scope) for r in filled] == [
        ("cfg", "InGuestPatch"), ("cfg", "Host"), ("cfg", "")]
    # Guest patching by default; a run whose scope is unknown is not hidden.
    assert [r.scope for r in runs_in_view(filled)] == ["InGuestPatch", ""]
    assert len(runs_in_view(filled, include_other_scopes=True)) == 3


def test_a_run_row_carries_its_scope_when_resource_graph_gives_one() -> None:
    parsed = run_from_row({"id": CID, "properties": {"maintenanceScope": "InGuestPatch"}})
    assert parsed is not None and parsed.scope == "InGuestPatch"
    assert parsed.to_json()["scope"] == "InGuestPatch"


def test_the_run_query_keeps_rows_without_a_start() -> None:
    from services.domain.runs import runs_query

    assert "isnull(todatetime(properties.startDateTime))" in runs_query()
