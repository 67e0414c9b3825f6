"""One function per fact of a run (services/domain/runfacts.py) and the views that show them:
status, who cancelled it, its end, its events (issue 22, items 3 and 6)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.azure.cancel import token_identity
from services.domain.clock import ManualClock, iso_z
from services.domain.dashboard import DashboardState
from services.domain.model import Fetched, Run
from services.domain.report import TaskFact, build_report
from services.domain.reportrender import render
from services.domain.runfacts import (
    CancelFact,
    EventFact,
    VerifiedCancel,
    cancel_initiator,
    cancelled_by,
    initiator_of,
    run_end,
    run_events,
)
from services.domain.runs import merge_runs, run_from_event
from services.domain.window import WindowRules
from services.settings import load_settings
from services.standin.server import STANDIN_UPN, standin_token
from tests.services.test_dashboard import batch, config, observed, received, run_id
from tui.export import export_view
from tui.report import write_run_report

T = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
NOW = T - timedelta(minutes=30)
SCHEDULED_END = T + timedelta(hours=1)


def row(status: str, *, last_update: datetime | None = None,
        end: datetime | None = SCHEDULED_END, error: str | None = None) -> Run:
    from services.domain.runs import cancelled_by_from_error

    return Run(run_id("mc", T), "cfg", "mc", "20260310130000", T, end, status, source="arg",
               last_update=last_update, error=error,
               cancelled_by=cancelled_by_from_error(error),
               scheduled_end=None if status in ("Completed", "Failed", "Cancelled") else end)


# --- the end --------------------------------------------------------------------------------


def test_the_end_is_the_post_events_time_first() -> None:
    assert run_end("Completed", post_event_at=T + timedelta(minutes=20),
                   row_end=SCHEDULED_END, row_last_update=T + timedelta(minutes=25),
                   scheduled_end=SCHEDULED_END) == T + timedelta(minutes=20)


def test_the_end_is_never_the_scheduled_end_of_a_run_that_ended() -> None:
    # Resource Graph's row still carries the scheduled end: its last update says when.
    assert run_end("Completed", row_end=SCHEDULED_END, row_last_update=T + timedelta(minutes=25),
                   scheduled_end=SCHEDULED_END) == T + timedelta(minutes=25)
    # An end after the row's last change has not happened yet when the row was written.
    assert run_end("Cancelled", row_end=SCHEDULED_END,
                   row_last_update=T - timedelta(minutes=30)) == T - timedelta(minutes=30)
    # An end the row reports that is neither: Resource Graph's real end.
    assert run_end("Failed", row_end=T + timedelta(minutes=40),
                   row_last_update=T + timedelta(minutes=41),
                   scheduled_end=SCHEDULED_END) == T + timedelta(minutes=40)


def test_the_end_is_none_while_the_run_has_not_ended_or_nobody_knows() -> None:
    assert run_end("InProgress", row_end=SCHEDULED_END, scheduled_end=SCHEDULED_END) is None
    assert run_end("Pending", post_event_at=None) is None
    assert run_end("Completed", row_end=SCHEDULED_END, scheduled_end=SCHEDULED_END) is None
    assert run_end("Cancelled", verified_cancel_at=NOW) == NOW  # before Resource Graph agrees


def test_the_merge_puts_a_completed_rows_real_end_in_every_json_view() -> None:
    (merged,) = merge_runs([row("Completed", last_update=T + timedelta(minutes=25))], [],
                           [run_from_event(EventFact("pre", "pre", "e1", NOW, T - timedelta(
                               minutes=35), start=T, end=SCHEDULED_END,
                               correlation_id=run_id("mc", T)))])
    data = merged.to_json()
    assert (data["end"], data["scheduled_end"], data["pre_event"], data["post_event"]) == (
        iso_z(T + timedelta(minutes=25)), iso_z(SCHEDULED_END),
        iso_z(T - timedelta(minutes=35)), None)


# --- who cancelled --------------------------------------------------------------------------


def test_cancelled_by_is_azures_classification_and_null_unless_cancelled() -> None:
    verified = VerifiedCancel(NOW, "task precheck (exit 3)")
    assert cancelled_by("Pending", None, verified) == "user"  # the verified cancel wins
    assert cancelled_by("Cancelled", "platform", None) == "platform"
    assert cancelled_by("Failed", "platform", None) is None  # not cancelled: null
    assert cancelled_by("Cancelled", None, None) is None  # nothing says how
    assert cancel_initiator("Pending", verified) == "task precheck (exit 3)"
    assert cancel_initiator("Completed", None) is None


def test_the_initiator_is_the_task_else_the_audited_identity() -> None:
    assert initiator_of("ops@contoso.example", "task precheck (exit 3)") == \
        "task precheck (exit 3)"
    assert initiator_of("ops@contoso.example via browser", None) == \
        "ops@contoso.example via browser"
    assert initiator_of(None, None) is None
    fact = CancelFact(NOW, "verified-cancelled", identity=None, initiator=None)
    assert (fact.sender, fact.who) == (None, "unknown")


def test_a_task_cancel_says_user_and_the_task_in_runs_and_in_the_report() -> None:
    # Before: runs said cancelled_by "user", the report "task precheck-fail (exit 3)".
    cancel = CancelFact(NOW, "verified-cancelled", NOW + timedelta(seconds=2),
                        identity="host oid=1", initiator="task precheck-fail (exit 3)")
    stale = row("Pending", last_update=NOW - timedelta(minutes=5))
    (listed,) = merge_runs([stale], [], cancelled={stale.correlation_id: VerifiedCancel(
        NOW + timedelta(seconds=2), cancel.sender)})
    report = build_report(stale.correlation_id, run=stale, configuration=None,
                          cancels=[cancel], now=NOW + timedelta(minutes=1))
    keys = ("status", "end", "cancelled_by", "cancel_initiator")
    assert {k: listed.to_json()[k] for k in keys} == \
        {k: report.to_json()["run"][k] for k in keys} == {
            "status": "Cancelled", "end": iso_z(NOW + timedelta(seconds=2)),
            "cancelled_by": "user", "cancel_initiator": "task precheck-fail (exit 3)"}


@dataclass(frozen=True)
class Result:
    run_id: str
    verified: bool = True
    run_status: str | None = "Cancelled"
    outcome: str = "verified"
    initiator: str | None = "ops@contoso.example oid=42"


def test_a_dashboard_cancel_says_user_and_who_in_the_state_the_export_and_the_report(
        tmp_path: Path) -> None:
    # Before: the table said "user", the report "cancelled by unknown".
    clock = ManualClock(NOW)
    state = DashboardState(WindowRules(), clock)
    state.apply_configs(Fetched((config("mc", T),), NOW))
    state.apply_runs(Fetched((observed("mc", T),), NOW))
    key = run_id("mc", T).lower()
    state.select_config(config("mc").id.lower())
    state.apply_cancel(Result(run_id("mc", T)))
    run = state.runs[key]
    assert (run.cancelled_by, run.cancel_initiator) == ("user", "ops@contoso.example oid=42")
    exported = json.loads(export_view(state, [], tmp_path).read_text(encoding="utf-8"))
    [item] = [r for r in exported["runs"] if r["correlation_id"].lower() == key]
    cancel = CancelFact(NOW, "verified-cancelled", NOW, identity="ops@contoso.example oid=42")
    report = build_report(run.correlation_id, run=run, configuration=None, cancels=[cancel],
                          now=NOW)
    for data in (item, report.to_json()["run"], run.to_json()):
        assert (data["cancelled_by"], data["cancel_initiator"]) == (
            "user", "ops@contoso.example oid=42")
    assert "cancelled by unknown" not in render(report, "md")


# --- events ---------------------------------------------------------------------------------


def test_the_events_of_a_run_are_one_per_event_from_every_source() -> None:
    pre = EventFact("pre", "pre", "E1", NOW, NOW - timedelta(seconds=5))
    again = EventFact("pre", "pre", "e1", NOW + timedelta(seconds=3), NOW - timedelta(seconds=5),
                      duplicate_deliveries=1)
    post = EventFact("post", "post", "e2", T + timedelta(minutes=30), T + timedelta(minutes=29))
    assert run_events([post, pre], [again]) == (
        EventFact("pre", "pre", "E1", NOW, NOW - timedelta(seconds=5), duplicate_deliveries=1),
        post)


async def test_a_report_written_from_a_peeking_dashboard_shows_the_events_it_saw(
        tmp_path: Path) -> None:
    # Before: "No pre/post event of this run is in the journal" while the tail showed it.
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n', encoding="utf-8")
    settings = load_settings({}, env={}, config_path=config_file)
    clock = ManualClock(NOW)
    state = DashboardState(WindowRules(), clock, watch_events=True, queue_mode="peek")
    state.apply_configs(Fetched((config("mc", T),), NOW))
    state.apply_events(batch(received("pre", "mc", T, NOW - timedelta(minutes=5))))
    key = run_id("mc", T).lower()
    run = state.runs[key]
    outcome = await write_run_report(settings, None, clock, run, state.configs.get(
        config("mc").id.lower()), seen_events=state.memory.events_of(key))
    assert outcome.ok, outcome.message
    assert outcome.path is not None
    text = outcome.path.with_suffix(".md").read_text(encoding="utf-8")
    assert "No pre/post event" not in text
    assert "pre-maintenance event" in text
    assert not (tmp_path / "journal.sqlite3").exists()  # peeking journals nothing


# --- the report's timeline ------------------------------------------------------------------


def test_a_skipped_task_is_shown_skipped_not_started() -> None:
    skipped = TaskFact("snapshot", "pre", "skipped-duplicate", started_at=NOW, ended_at=NOW,
                       detail="already run for this run")
    ran = TaskFact("check", "pre", "ok", started_at=NOW, ended_at=NOW + timedelta(seconds=4),
                   exit_code=0)
    report = build_report(run_id("mc", T), run=row("Pending"), configuration=None,
                          tasks=[skipped, ran], now=NOW)
    whats = [e.what for e in report.timeline if e.kind == "task"]
    assert "task snapshot (pre) started" not in whats
    assert "task snapshot (pre) skipped-duplicate: already run for this run" in whats
    assert "task check (pre) started" in whats


def test_run_ended_is_the_real_end_not_the_scheduled_one() -> None:
    # Resource Graph's Completed row still carries the scheduled end; it changed last at
    # T+25m, when the run ended (no post-event came).
    done = row("Completed", last_update=T + timedelta(minutes=25))
    report = build_report(done.correlation_id, run=done, configuration=None,
                          now=T + timedelta(hours=2))
    [ended] = [e for e in report.timeline if e.what.startswith("run ended")]
    assert ended.time == T + timedelta(minutes=25)
    assert report.to_json()["run"]["end"] == iso_z(T + timedelta(minutes=25))
    assert all(e.time != SCHEDULED_END for e in report.timeline if e.kind == "run")


# --- the stand-in's token -------------------------------------------------------------------


def test_the_standins_token_names_its_caller_like_an_entra_token() -> None:
    token = standin_token("72f988bf-86f1-41af-91ab-2d7cd011db47")
    who = token_identity(token)
    assert who is not None and who.startswith(f"{STANDIN_UPN} oid=")
    assert token != standin_token("72f988bf-86f1-41af-91ab-2d7cd011db47")  # unguessable
