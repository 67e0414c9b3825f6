"""doctor's wiring check: which configurations it looks at and the fix for each verdict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

from services.azure.doctor import check_wiring, runs_soon, wiring_fix
from services.domain.boundary import WiringSnapshot
from services.domain.model import Configuration
from services.domain.wiring import DeliveryHealth, QueueTarget, SystemTopic, Verdict, Wiring

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SUB = "00000000-0000-0000-0000-000000000001"
WATCHED = QueueTarget("opsqueue", "aum-events")


def config(name: str, *starts: timedelta) -> Configuration:
    return Configuration(
        id=f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Maintenance/"
           f"maintenanceConfigurations/{name}",
        name=name, resource_group="rg", subscription_id=SUB, scope="InGuestPatch",
        next_occurrences=tuple((NOW + s, NOW + s + timedelta(hours=2)) for s in starts))


def wiring(cfg: Configuration, verdict: Verdict, error: str | None = None) -> Wiring:
    topic = SystemTopic(id=cfg.id + "-topic", name=f"{cfg.name}-topic", resource_group="rg",
                        subscription_id=SUB, source=cfg.id)
    return Wiring(cfg.id, cfg.name, verdict, f"reason for {verdict}", topic=topic,
                  health=DeliveryHealth(failed=2) if verdict is Verdict.FAILING else None,
                  error=error)


def snapshot(*wirings: Wiring, error: str | None = None) -> WiringSnapshot:
    return WiringSnapshot(MappingProxyType({w.configuration_id.lower(): w for w in wirings}),
                          NOW, error)


def test_runs_soon_takes_runs_going_on_or_starting_within_24_hours() -> None:
    going_on = config("going-on", -timedelta(hours=1))
    tomorrow = config("tomorrow", timedelta(hours=23, minutes=59))
    later = config("later", timedelta(hours=24, minutes=1))
    none = config("none")
    assert [c.name for c, _ in runs_soon([going_on, tomorrow, later, none], NOW)] == [
        "going-on", "tomorrow"]


@pytest.mark.parametrize(("verdict", "expected"), [
    (Verdict.MISSING, "`aumwatch setup events --configuration 'mc web'`"),
    (Verdict.PARTIAL, "`aumwatch setup events --configuration 'mc web' --types pre,post`"),
    (Verdict.OTHER_ENDPOINT,
     "`aumwatch setup events --configuration 'mc web' --queue aum-events`"),
    (Verdict.DISABLED, "`aumwatch setup events --configuration 'mc web'`"),
    (Verdict.FAILING, "Storage Queue Data Message Sender"),
])
def test_every_verdict_has_its_exact_fix(verdict: Verdict, expected: str) -> None:
    fix = wiring_fix(wiring(config("mc web"), verdict), WATCHED)
    assert expected in fix


def test_disabled_fix_is_setup_events_alone() -> None:
    # setup events re-provisions a failed or expired subscription in place: the fix must
    # not tell the operator to delete it first (and lose its settings).
    fix = wiring_fix(wiring(config("mc"), Verdict.DISABLED), WATCHED)
    assert "delete" not in fix and "re-provisions" in fix


def test_failing_fix_points_at_another_subscription_on_the_topic_first() -> None:
    from dataclasses import replace

    from services.domain.wiring import EventSubscription

    ours = EventSubscription("to-queue", endpoint_type="storagequeue",
                             queue_account_id="/x/storageAccounts/opsqueue",
                             queue_name="aum-events", state="Succeeded")
    hook = EventSubscription("to-hook", endpoint_type="webhook", endpoint="h.example",
                             state="Succeeded")
    failing = replace(wiring(config("mc"), Verdict.FAILING), subscriptions=(ours, hook))
    fix = wiring_fix(failing, WATCHED)
    assert fix.startswith("the counts include the topic's other subscription to-hook")
    assert "Storage Queue Data Message Sender" in fix  # the queue's own causes next
    alone = wiring_fix(replace(failing, subscriptions=(ours,)), WATCHED)
    assert "other subscription" not in alone
    # Counts split per subscription are the queue's own: the others are not blamed.
    from services.domain.wiring import DeliveryHealth

    split = replace(failing, health=DeliveryHealth(failed=2, by_subscription=(
        ("TO-QUEUE", DeliveryHealth(failed=2)),)))
    assert "other subscription" not in wiring_fix(split, WATCHED)


def test_failing_fix_names_the_metrics() -> None:
    fix = wiring_fix(wiring(config("mc"), Verdict.FAILING), WATCHED)
    for metric in ("DeliveryAttemptFailCount", "DroppedEventCount", "DeadLetteredCount"):
        assert metric in fix


def test_a_warning_per_configuration_running_soon_that_is_not_ok() -> None:
    ok, missing, idle = (config("ok", timedelta(hours=1)), config("bad", timedelta(hours=2)),
                         config("idle", timedelta(days=3)))
    soon = runs_soon([ok, missing, idle], NOW)
    checks = check_wiring(soon, snapshot(wiring(ok, Verdict.OK),
                                         wiring(missing, Verdict.MISSING),
                                         wiring(idle, Verdict.MISSING)), WATCHED)
    assert [(c.name, c.status) for c in checks] == [("event wiring bad", "warn")]
    assert "missing" in checks[0].detail and "2026-12-01 14:00Z" in checks[0].detail
    assert checks[0].fix is not None and "setup events --configuration bad" in checks[0].fix


def test_all_ok_is_one_ok_line() -> None:
    ok = config("ok", timedelta(hours=1))
    checks = check_wiring(runs_soon([ok], NOW), snapshot(wiring(ok, Verdict.OK)), WATCHED)
    assert [(c.name, c.status) for c in checks] == [("event wiring", "ok")]
    assert "aum-events" in checks[0].detail


def test_a_part_error_on_an_ok_wiring_is_a_warning() -> None:
    ok = config("ok", timedelta(hours=1))
    checks = check_wiring(runs_soon([ok], NOW),
                          snapshot(wiring(ok, Verdict.OK, error="metrics failed (HTTP 403)")),
                          WATCHED)
    assert [(c.name, c.status) for c in checks] == [("event wiring ok", "warn")]
    assert "HTTP 403" in checks[0].detail


def test_failed_read_is_one_warning_and_nothing_running_is_a_skip() -> None:
    ok = config("ok", timedelta(hours=1))
    checks = check_wiring(runs_soon([ok], NOW), snapshot(error="topics query failed"), WATCHED)
    assert [(c.name, c.status, c.detail) for c in checks] == [
        ("event wiring", "warn", "topics query failed")]
    assert [c.status for c in check_wiring([], None, WATCHED)] == ["skip"]
