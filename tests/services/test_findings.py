"""The one list of findings (issue 21): each kind opens when its rule says, resolves when it
clears, is judged only once its sources were read, and never opens twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.domain.eventmemory import EventArrival
from services.domain.findings import (
    SEVERITIES,
    Alert,
    AlertRules,
    FindingBook,
    Inputs,
    judge,
    route_failing,
    severity_rank,
)
from services.domain.model import Configuration, Run

T = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CONFIG_ID = ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Maintenance/"
             "maintenanceConfigurations/web")
CID = CONFIG_ID + "/providers/microsoft.maintenance/applyupdates/20260310120000"
ALL = ("configs", "runs", "events", "wiring")
NO_EVENTS = ("configs", "runs", "wiring")


def run(**changes: object) -> Run:
    base = dict(correlation_id=CID, configuration_id=CONFIG_ID, configuration_name="web",
                run_name="20260310120000", start=T, end=T + timedelta(hours=2),
                status="Scheduled", expected=True, source="schedule")
    base.update(changes)
    return Run(**base)  # type: ignore[arg-type]


def observed(**changes: object) -> Run:
    return run(**{"status": "InProgress", "expected": False, "source": "arg",
                  "machines_total": 3, "machines_failed": 0, **changes})


CONFIG = Configuration(id=CONFIG_ID, name="web", resource_group="rg", subscription_id="s",
                       location="westeurope", time_zone="UTC")


def step(book: FindingBook, now: datetime, runs: list[Run], *, read: tuple[str, ...] = NO_EVENTS,
         arrivals: dict[str, EventArrival] | None = None, errors: dict[str, str] | None = None,
         wiring: dict[str, tuple[str, str]] | None = None,
         since: datetime = T - timedelta(hours=2)) -> list[tuple[str, str]]:
    inputs = Inputs(runs=runs, configs={CONFIG_ID.lower(): CONFIG}, arrivals=arrivals or {},
                    read=read, errors=errors or {}, wiring=wiring or {})
    changes = book.update(judge(inputs, book, now, watching_since=since), now)
    return [(a.kind, a.state) for a in changes]


def test_severities_are_pagerdutys_names_in_order() -> None:
    assert SEVERITIES == ("info", "warning", "error", "critical")
    assert severity_rank("info") < severity_rank("warning") < severity_rank("error") \
        < severity_rank("critical")


def test_a_run_with_no_resource_graph_row_is_missed_after_15_min_and_resolves_on_showing() -> None:
    book = FindingBook()
    pre = {CID.lower(): EventArrival(pre=T - timedelta(minutes=35))}
    assert step(book, T + timedelta(minutes=14), [run()], arrivals=pre) == []
    assert step(book, T + timedelta(minutes=15), [run()], arrivals=pre) == [
        ("missed-run", "open")]
    assert step(book, T + timedelta(minutes=16), [run()], arrivals=pre) == []  # once
    assert step(book, T + timedelta(minutes=20), [observed()], arrivals=pre) == [
        ("missed-run", "resolved")]
    assert book.open == []


def test_missed_after_is_a_setting() -> None:
    book = FindingBook(AlertRules(missed_after=timedelta(minutes=5)))
    assert step(book, T + timedelta(minutes=5), [run()], read=("configs", "runs")) == [
        ("missed-run", "open")]


def test_nothing_is_judged_before_every_source_it_needs_was_read() -> None:
    book = FindingBook()
    late = T + timedelta(minutes=30)
    assert step(book, late, [run()], read=("configs",)) == []
    assert step(book, late, [run()], read=("configs", "runs")) == [("missed-run", "open")]
    # missing-pre needs the events read too.
    book = FindingBook()
    pending = observed(status="Pending", machines_total=None)
    assert step(book, T - timedelta(minutes=20), [pending], read=("configs", "runs")) == [
        ("window-open", "open")]
    assert ("missing-pre", "open") in step(book, T - timedelta(minutes=19), [pending], read=ALL)


def test_a_late_pre_event_resolves_missing_pre() -> None:
    book = FindingBook()
    pending = observed(status="Pending", machines_total=None)
    assert ("missing-pre", "open") in step(book, T - timedelta(minutes=25), [pending],
                                           read=ALL)
    late = {CID.lower(): EventArrival(pre=T - timedelta(minutes=22))}
    assert step(book, T - timedelta(minutes=21), [pending], arrivals=late, read=ALL) == [
        ("missing-pre", "resolved")]
    assert step(book, T - timedelta(minutes=20), [pending], arrivals=late, read=ALL) == []


def test_a_late_pre_event_seen_before_the_deadline_was_judged_opens_nothing() -> None:
    book = FindingBook()
    late = {CID.lower(): EventArrival(pre=T - timedelta(minutes=22))}
    pending = observed(status="Pending", machines_total=None)
    changes = step(book, T - timedelta(minutes=21), [pending], arrivals=late, read=ALL)
    assert ("missing-pre", "open") not in changes


def test_a_failed_run_and_failed_machines() -> None:
    book = FindingBook()
    end = T + timedelta(hours=1)
    assert step(book, end, [observed(status="Failed", machines_failed=3, end=end)]) == [
        ("run-failed", "open")]
    other = FindingBook()
    assert step(other, end, [observed(status="Completed", machines_failed=1, end=end)]) == [
        ("machines-failed", "open")]


def test_an_empty_run_and_an_overrun() -> None:
    book = FindingBook()
    assert step(book, T + timedelta(minutes=5), [observed(machines_total=0)]) == [
        ("empty-run", "open")]
    book = FindingBook()
    late = T + timedelta(hours=2, minutes=1)
    assert step(book, late, [observed()]) == [("overrun", "open")]
    assert step(book, late, [observed(status="Succeeded")]) == [("overrun", "resolved")]


def test_the_cancel_window_opening_is_info_and_closes() -> None:
    book = FindingBook()
    pending = observed(status="Pending", machines_total=None)
    changes = book.update(judge(Inputs([pending], {}, {}, ("configs", "runs")), book,
                                T - timedelta(minutes=39), watching_since=T), T)
    assert [(a.kind, a.severity) for a in changes] == [("window-open", "info")]
    assert step(book, T - timedelta(minutes=9), [pending], read=("configs", "runs")) == [
        ("window-open", "resolved")]


def test_wiring_matters_with_a_run_in_the_next_24_hours() -> None:
    book = FindingBook()
    bad = {CONFIG_ID.lower(): ("missing", "no system topic")}
    far = run(start=T + timedelta(days=2), end=T + timedelta(days=2, hours=2))
    assert step(book, T, [far], wiring=bad) == []
    soon = run(start=T + timedelta(hours=3), end=T + timedelta(hours=5))
    assert step(book, T, [soon], wiring=bad) == [("wiring", "open")]
    ok = {CONFIG_ID.lower(): ("ok", "")}
    assert step(book, T, [soon], wiring=ok) == [("wiring", "resolved")]


def test_a_source_failing_longer_than_source_down_after() -> None:
    book = FindingBook(AlertRules(source_down_after=timedelta(minutes=5)))
    down = {"runs": "HTTP 503"}
    assert step(book, T, [], errors=down) == []
    assert step(book, T + timedelta(minutes=4), [], errors=down) == []
    assert step(book, T + timedelta(minutes=5), [], errors=down) == [("source-down", "open")]
    assert step(book, T + timedelta(minutes=6), []) == [("source-down", "resolved")]
    # A later outage is a finding of its own.
    step(book, T + timedelta(minutes=7), [], errors=down)
    assert step(book, T + timedelta(minutes=12), [], errors=down) == [("source-down", "open")]


def test_a_route_failing_is_a_finding() -> None:
    book = FindingBook()
    assert [a.kind for a in book.update([route_failing("pd", T, "HTTP 500")], T)] == [
        "route-failing"]
    assert [a.state for a in book.update([route_failing("pd", T, None)], T)] == ["resolved"]


def test_seeded_findings_are_neither_opened_again_nor_forgotten() -> None:
    book = FindingBook()
    step(book, T + timedelta(minutes=15), [run()], read=("configs", "runs"))
    [alert] = book.open
    again = FindingBook()
    again.seed([Alert.from_json(alert.to_json())])
    assert step(again, T + timedelta(minutes=16), [run()], read=("configs", "runs")) == []
    assert step(again, T + timedelta(minutes=17), [observed()], read=("configs", "runs")) == [
        ("missed-run", "resolved")]


def test_the_json_line_has_the_contract_keys() -> None:
    book = FindingBook()
    step(book, T + timedelta(minutes=15), [run()], read=("configs", "runs"))
    line = book.open[0].to_json()
    assert {"kind", "key", "severity", "summary", "configuration_name", "run_id", "state",
            "at"} <= set(line)
    assert (line["key"], line["state"], line["at"]) == (
        f"missed-run:{CID.lower()}", "open", "2026-03-10T12:15:00Z")


def test_the_state_records_each_source_read_once() -> None:
    from dataclasses import replace

    from services.domain.boundary import EventBatch
    from services.domain.clock import ManualClock
    from services.domain.dashboard import DashboardState
    from services.domain.findings import state_inputs
    from services.domain.model import Fetched
    from services.domain.window import WindowRules

    state = DashboardState(WindowRules(), ManualClock(T), watch_events=True)
    assert state_inputs(state, state.sources_read).read == set()
    state.apply_configs(Fetched(items=(CONFIG,), fetched_at=T))
    state.apply_runs(Fetched(items=(), fetched_at=T))
    failed = EventBatch(mode="peek", fetched_at=T, error="HTTP 503")
    state.apply_events(failed)
    assert state.sources_read == {"configs", "runs"}
    state.apply_events(replace(failed, error=None, depth=0))
    assert state.sources_read == {"configs", "runs", "events"}


def test_an_outage_seen_by_an_earlier_process_goes_on_and_resolves_under_its_key() -> None:
    book = FindingBook(AlertRules(source_down_after=timedelta(minutes=5)))
    down = {"runs": "HTTP 503"}
    step(book, T, [], errors=down)
    assert step(book, T + timedelta(minutes=5), [], errors=down) == [("source-down", "open")]
    again = FindingBook(AlertRules(source_down_after=timedelta(minutes=5)))  # a restart
    again.seed(book.open)
    assert step(again, T + timedelta(minutes=30), [], errors=down) == []  # not a new outage
    assert step(again, T + timedelta(minutes=31), []) == [("source-down", "resolved")]
    assert again.open == []
