"""Watchdog rules: missing pre-event by T-25, missing post-event by end + 15, duplicates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.domain.eventmemory import EventArrival
from services.domain.model import Run
from services.domain.watchdog import Watchdog, check_runs, duplicate_finding

T = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CID = ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Maintenance/"
       "maintenanceConfigurations/web/providers/microsoft.maintenance/applyupdates/20260310120000")


def run(**changes: object) -> Run:
    base = dict(correlation_id=CID, configuration_id=CID.split("/providers/microsoft.maint")[0],
                configuration_name="web", run_name="20260310120000", start=T,
                end=T + timedelta(hours=2), status="Pending")
    base.update(changes)
    return Run(**base)  # type: ignore[arg-type]


def kinds(now: datetime, arrivals: dict[str, EventArrival] | None = None, *,
          since: datetime = T - timedelta(hours=2), **changes: object) -> list[str]:
    return [f.kind for f in check_runs([run(**changes)], arrivals or {}, now,
                                       watching_since=since)]


def test_no_pre_event_is_reported_only_from_t_minus_25() -> None:
    assert kinds(T - timedelta(minutes=25, seconds=1)) == []
    assert kinds(T - timedelta(minutes=25)) == ["missing-pre"]


def test_a_pre_event_that_arrived_in_time_silences_it() -> None:
    arrived = {CID.lower(): EventArrival(pre=T - timedelta(minutes=35))}
    assert kinds(T - timedelta(minutes=20), arrived) == []
    late = {CID.lower(): EventArrival(pre=T - timedelta(minutes=24))}
    assert kinds(T - timedelta(minutes=20), late) == ["missing-pre"]


def test_missing_post_event_after_end_plus_15() -> None:
    pre = {CID.lower(): EventArrival(pre=T - timedelta(minutes=35))}
    end = T + timedelta(hours=2)
    assert kinds(end + timedelta(minutes=14), pre, status="Completed") == []
    assert kinds(end + timedelta(minutes=15), pre, status="Completed") == ["missing-post"]
    done = {CID.lower(): EventArrival(pre=T - timedelta(minutes=35), post=end)}
    assert kinds(end + timedelta(minutes=30), done, status="Completed") == []


def test_deadlines_long_before_the_watch_began_are_not_judged() -> None:
    assert kinds(T + timedelta(days=3), since=T + timedelta(days=3), status="Completed") == []


def test_a_run_cancelled_by_the_user_needs_no_events() -> None:
    assert kinds(T - timedelta(minutes=20), status="Cancelled", cancelled_by="user") == []


def test_a_platform_cancelled_run_misses_its_pre_event_but_owes_no_post_event() -> None:
    cancelled = dict(status="Cancelled", cancelled_by="platform")
    assert kinds(T - timedelta(minutes=20), **cancelled) == ["missing-pre"]
    assert kinds(T + timedelta(hours=3), **cancelled) == []
    assert kinds(T + timedelta(hours=3), status="Completed") == ["missing-post"]


def test_watchdog_reports_each_finding_once() -> None:
    dog = Watchdog(T - timedelta(hours=1))
    now = T - timedelta(minutes=20)
    assert [f.kind for f in dog.check([run()], {}, now)] == ["missing-pre"]
    assert dog.check([run()], {}, now + timedelta(minutes=1)) == []
    dup = duplicate_finding("ID-1", "Microsoft.Maintenance.PreMaintenanceEvent", CID, "web")
    assert dog.new([dup]) == [dup]
    assert dog.new([duplicate_finding("id-1", "microsoft.maintenance.premaintenanceevent",
                                      CID, "web")]) == []
    assert "PreMaintenanceEvent" in dup.message and "ID-1" in dup.message


def test_the_missing_pre_event_deadline_follows_the_arrival_range() -> None:
    from services.domain.arrivals import ArrivalRules

    start = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    run = Run("/subscriptions/s/resourcegroups/rg/providers/microsoft.maintenance/"
              "maintenanceconfigurations/mc/providers/microsoft.maintenance/applyupdates/"
              "20260310150000", "c", "mc", "20260310150000", start, status="Pending")
    late_range = ArrivalRules(pre_event_earliest=timedelta(minutes=30),
                              pre_event_latest=timedelta(minutes=15))
    assert late_range.missing_after == timedelta(minutes=10)
    watchdog = Watchdog(start - timedelta(hours=2), pre_before=late_range.missing_after)
    # T-20: inside the configured range, nothing is missing yet.
    assert watchdog.check([run], {}, start - timedelta(minutes=20)) == []
    (finding,) = watchdog.check([run], {}, start - timedelta(minutes=9))
    assert finding.kind == "missing-pre" and "T-10" in finding.message
    assert ArrivalRules().missing_after == timedelta(minutes=25)  # the documented default


def test_a_missing_pre_event_is_explained_by_the_wiring_passed_in() -> None:
    config_key = CID.split("/providers/microsoft.maint")[0].lower()
    why = {config_key: "no pre-event subscription to the watched queue"}
    now = T - timedelta(minutes=25)
    (finding,) = check_runs([run()], {}, now, watching_since=T - timedelta(hours=2),
                            explanations=why)
    assert finding.cause == "no pre-event subscription to the watched queue"
    assert finding.message.endswith(": no pre-event subscription to the watched queue")
    assert "by T-25" in finding.message
    (plain,) = check_runs([run()], {}, now, watching_since=T - timedelta(hours=2))
    assert plain.cause is None and "subscription" not in plain.message
    # The explanation is only for a missing pre-event: a missing post-event has none.
    post = check_runs([run(start=T, end=T + timedelta(hours=1))], {},
                      T + timedelta(hours=1, minutes=15), watching_since=T - timedelta(hours=2),
                      explanations=why)
    assert [f.kind for f in post] == ["missing-post"] and post[0].cause is None
    # check_due passes it through too.
    dog = Watchdog(T - timedelta(hours=2))
    dog.track([run()])
    (due,) = dog.check_due({CID.lower(): run()}, {}, now, why)
    assert due.cause == why[config_key]
