"""Pure rules of pre/post tasks (services/domain/tasks.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.domain.events import EventKind, MaintenanceEvent
from services.domain.tasks import (
    ENV_PREFIX,
    TASK_ENV_NAMES,
    TaskOutcome,
    TaskResult,
    TaskSpec,
    bound_output,
    cancel_decision,
    outcome_of,
    scrub_output,
    task_environment,
    tasks_for,
)

START = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
CONFIG_ID = ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Maintenance/"
             "maintenanceConfigurations/Prod-Web")
RUN_ID = CONFIG_ID + "/providers/microsoft.maintenance/applyupdates/20260310130000"


def event(kind: EventKind = EventKind.PRE, name: str | None = "Prod-Web",
          start: datetime | None = START, cutoff: datetime | None = None) -> MaintenanceEvent:
    return MaintenanceEvent(
        id="e1", type=f"Microsoft.Maintenance.{kind.title()}MaintenanceEvent", kind=kind,
        schema="eventgrid", correlation_id=RUN_ID, configuration_id=CONFIG_ID,
        configuration_name=name, run_name="20260310130000", start=start,
        end=START + timedelta(hours=3) if start else None, cancellation_cutoff=cutoff,
        status=None, subscription_ids=("s",), event_time=None)


def spec(**kw: object) -> TaskSpec:
    values: dict[str, object] = {"name": "precheck", "on": "pre",
                                 "configurations": ("prod-*",), "command": ("/bin/true",)}
    values.update(kw)
    return TaskSpec(**values)  # type: ignore[arg-type]


def test_tasks_match_kind_and_name_globs_case_insensitively_in_declared_order() -> None:
    a = spec(name="a", configurations=("PROD-*",))
    b = spec(name="b", configurations=("other", "prod-web"))
    c = spec(name="c", configurations=("staging-*",))
    post = spec(name="post", on="post", configurations=("*",))
    assert [t.name for t in tasks_for([a, b, c, post], event())] == ["a", "b"]
    assert [t.name for t in tasks_for([a, post], event(EventKind.POST))] == ["post"]
    assert tasks_for([spec(configurations=("*",))], event(EventKind.OTHER)) == []
    assert tasks_for([spec(configurations=("*",))], event(name=None)) == []


def test_a_spec_rejects_cancel_on_failure_on_a_post_task_and_empty_parts() -> None:
    with pytest.raises(ValueError, match="pre tasks only"):
        spec(on="post", cancel_on_failure=True)
    with pytest.raises(ValueError, match="command is empty"):
        spec(command=())
    with pytest.raises(ValueError, match="on must be pre or post"):
        spec(on="during")


def test_the_environment_carries_the_event_as_data_and_drops_secrets() -> None:
    inherited = {"PATH": "/usr/bin", "HOME": "/home/op", "LANG": "C.UTF-8", "LC_ALL": "C",
                 "AUMWATCH_QUEUE_CONNECTION_STRING": "AccountKey=abc", "AUMWATCH_TOKEN": "t",
                 "AZURE_CLIENT_SECRET": "s", "GITHUB_TOKEN": "g", "AUMWATCH_CONFIG": "/c.toml"}
    hostile = "$(touch x);rm -rf / [bold]"
    env = task_environment(spec(), event(name=hostile, cutoff=START - timedelta(minutes=10)),
                           "/tmp/e.json", inherited)
    assert {k for k in env if not k.startswith(ENV_PREFIX)} == {
        "PATH", "HOME", "LANG", "LC_ALL", "AUMWATCH_CONFIG"}
    assert {k[len(ENV_PREFIX):] for k in env if k.startswith(ENV_PREFIX)} == set(TASK_ENV_NAMES)
    assert env["AUMWATCH_TASK_CONFIGURATION_NAME"] == hostile
    assert env["AUMWATCH_TASK_CORRELATION_ID"] == RUN_ID
    assert env["AUMWATCH_TASK_CONFIGURATION_ID"] == CONFIG_ID
    assert env["AUMWATCH_TASK_START"] == "2026-03-10T13:00:00Z"
    assert env["AUMWATCH_TASK_END"] == "2026-03-10T16:00:00Z"
    assert env["AUMWATCH_TASK_CANCELLATION_CUTOFF"] == "2026-03-10T12:50:00Z"
    assert env["AUMWATCH_TASK_EVENT_KIND"] == "pre"
    assert env["AUMWATCH_TASK_EVENT_FILE"] == "/tmp/e.json"
    assert env["AUMWATCH_TASK_STATUS"] == ""


def test_outcome_of_exit_status() -> None:
    assert outcome_of(0, timed_out=False) is TaskOutcome.OK
    assert outcome_of(2, timed_out=False) is TaskOutcome.FAILED
    assert outcome_of(None, timed_out=False) is TaskOutcome.FAILED
    assert outcome_of(-9, timed_out=True) is TaskOutcome.TIMEOUT


@pytest.mark.parametrize(("at", "cancel", "reason"), [
    (START - timedelta(minutes=30), True, "pre-check precheck failed at T-30m: cancelling"),
    (START - timedelta(minutes=8), False, "pre-check precheck failed at T-8m: too late to "
                                          "cancel"),
    (START - timedelta(minutes=10), False, "at T-10m: too late to cancel"),
    (START - timedelta(minutes=50), False, "at T-50m: the cancel window is not open yet"),
    (START + timedelta(minutes=2), False, "at T+2m: too late to cancel"),
])
def test_the_cancel_decision_follows_the_window(at: datetime, cancel: bool, reason: str) -> None:
    decision = cancel_decision(spec(cancel_on_failure=True), TaskOutcome.FAILED, 4, event(), at)
    assert decision.cancel is cancel
    assert reason in decision.reason
    assert decision.initiator == ("task precheck (exit 4)" if cancel else None)


def test_the_cutoff_closes_the_window_early_and_a_timeout_counts_as_a_failure() -> None:
    ev = event(cutoff=START - timedelta(minutes=20))
    late = cancel_decision(spec(cancel_on_failure=True), TaskOutcome.TIMEOUT, None, ev,
                           START - timedelta(minutes=15))
    assert not late.cancel and late.reason == ("pre-check precheck timed out at T-15m: too "
                                               "late to cancel")
    early = cancel_decision(spec(cancel_on_failure=True), TaskOutcome.TIMEOUT, None, ev,
                            START - timedelta(minutes=25))
    assert early.cancel and early.initiator == "task precheck (timeout)"


def test_no_cancel_without_cancel_on_failure_for_success_or_for_post_tasks() -> None:
    at = START - timedelta(minutes=30)
    assert not cancel_decision(spec(), TaskOutcome.FAILED, 1, event(), at).cancel
    assert not cancel_decision(spec(cancel_on_failure=True), TaskOutcome.OK, 0, event(),
                               at).cancel
    assert not cancel_decision(spec(on="post"), TaskOutcome.FAILED, 1,
                               event(EventKind.POST), at).cancel
    no_start = cancel_decision(spec(cancel_on_failure=True), TaskOutcome.FAILED, 1,
                               event(start=None), at)
    assert not no_start.cancel and "no start time" in no_start.reason


def test_scrub_output_removes_secrets_of_every_shape() -> None:
    conn = ("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=QUJDREVGR0g=;"
            "EndpointSuffix=core.windows.net")
    text = (f"conn {conn}\nurl https://a.queue.core.windows.net/q?sv=2024&sig=SiGnAtUrE%3D\n"
            "Authorization: Bearer abc.def-ghi\ntoken eyJhbGciOi.eyJzdWIiOiIx.c2lnbmF0\n"
            "literal my-very-secret\nplain text stays")
    out = scrub_output(text, ["my-very-secret"])
    for secret in ("QUJDREVGR0g", "SiGnAtUrE", "abc.def-ghi", "eyJhbGciOi", "my-very-secret"):
        assert secret not in out
    assert "plain text stays" in out and "AccountName=acct" in out


def test_bound_output_keeps_head_and_tail_and_says_what_was_cut() -> None:
    small = bound_output(b"hello", limit=100)
    assert (small.text, small.truncated) == ("hello", False)
    data = b"A" * 60 + b"M" * 1000 + b"Z" * 60
    big = bound_output(data, limit=100)
    assert big.text.startswith("A" * 50) and big.text.endswith("Z" * 50)
    assert "[... 1020 bytes of output cut ...]" in big.text
    assert big.cut_bytes == 1020 and big.total_bytes == 1120
    assert bound_output(b"\xff\xfe ok").text == "\\xff\\xfe ok"


def test_a_result_prints_the_contract_keys() -> None:
    result = TaskResult(task="t", correlation_id=RUN_ID, event_kind="pre",
                        outcome=TaskOutcome.SKIPPED_DUPLICATE, started=START, ended=START)
    doc = result.to_json()
    assert doc["outcome"] == "skipped-duplicate" and doc["cancelled_run"] is False
    assert {"task", "correlation_id", "event_kind", "outcome", "exit_code", "cancelled_run",
            "started", "ended"} <= set(doc)


def test_a_pre_task_is_too_late_once_its_run_has_started() -> None:
    from services.domain.tasks import too_late_for_pre

    assert too_late_for_pre(event(), START - timedelta(minutes=1)) is None
    reason = too_late_for_pre(event(), START + timedelta(minutes=179))
    assert reason is not None and "2026-03-10T13:00:00Z" in reason and "179 min" in reason
    assert too_late_for_pre(event(), START) is not None  # at the start itself: patching begins
    # A post task has no such limit, and an event without a start cannot be judged late.
    assert too_late_for_pre(event(EventKind.POST), START + timedelta(hours=5)) is None
    assert too_late_for_pre(event(start=None), START + timedelta(hours=5)) is None


# --- a run known to be cancelled (issue 22 item 1) -----------------------------------------


def test_known_cancellation_names_the_fact_that_says_so_journal_first() -> None:
    from services.domain.tasks import known_cancellation

    verified = START - timedelta(minutes=5)
    assert known_cancellation(verified_cancel_at=None, graph_status=None,
                              event_status=None) is None
    assert known_cancellation(verified_cancel_at=None, graph_status="Pending",
                              event_status="Succeeded") is None
    assert known_cancellation(verified_cancel_at=verified, graph_status="Pending",
                              event_status=None) == (
        "a cancel of it was verified at 2026-03-10T12:55:00Z (journal)")
    assert known_cancellation(verified_cancel_at=None, graph_status="Cancelled",
                              event_status=None) == "Resource Graph shows its status Cancelled"
    assert known_cancellation(verified_cancel_at=None, graph_status=None,
                              event_status=" canceled ") == (
        "the event says its status is  canceled ")


def test_outcome_and_state_skipped_cancelled_is_a_contract_value() -> None:
    from services.domain.tasks import TaskState

    assert str(TaskOutcome.SKIPPED_CANCELLED) == "skipped-cancelled"
    assert str(TaskState.SKIPPED_CANCELLED) == "skipped-cancelled"


def test_one_query_reads_the_status_of_several_runs_lower_case_and_quoted() -> None:
    from services.domain.tasks import run_statuses_query

    query = run_statuses_query([RUN_ID, RUN_ID.upper(), 'x"y'])
    assert query.count(f'"{RUN_ID.lower()}"') == 2  # once per side of the `or`, deduplicated
    assert '"x\\"y"' in query
    assert "maintenanceresources" in query and "applyupdates" in query
