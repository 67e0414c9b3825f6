"""The dashboard state's Event Grid wiring, on a manual clock (no Textual): what a read
changes, errors kept per source, its own cadence, the run panel's "no pre-event will come"
flag and the watchdog's explanation of a missing pre-event."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from services.domain.boundary import WiringSnapshot
from services.domain.clock import ManualClock
from services.domain.dashboard import NO_PRE_EVENT, DashboardState
from services.domain.model import Fetched
from services.domain.window import WindowRules
from services.domain.wiring import (
    DeliveryHealth,
    QueueTarget,
    Verdict,
    Wiring,
    parse_subscription,
    parse_topic,
    wire,
)
from tests.services.test_dashboard import NOW, SUB, batch, config, config_id, received, run_id

WATCHED = QueueTarget("devstoreaccount1", "aum-events")
ACCOUNT = (f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Storage/"
           f"storageAccounts/devstoreaccount1")
PRE = "Microsoft.Maintenance.PreMaintenanceEvent"
POST = "Microsoft.Maintenance.PostMaintenanceEvent"


#: A read of the wiring, as the monitor returns it.
Snapshot = WiringSnapshot


def _topic(name: str) -> Any:
    topic_id = (f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.EventGrid/"
                f"systemTopics/{name}-topic")
    return parse_topic({
        "id": topic_id, "name": f"{name}-topic", "location": "global",
        "properties": {"source": config_id(name), "provisioningState": "Succeeded",
                       "topicType": "Microsoft.Maintenance.MaintenanceConfigurations"}})


def _sub(name: str, types: list[str], *, queue: str = "aum-events", state: str = "Succeeded",
         endpoint: dict[str, Any] | None = None, **props: Any) -> Any:
    destination = endpoint or {"endpointType": "StorageQueue",
                               "properties": {"resourceId": ACCOUNT, "queueName": queue}}
    return parse_subscription({
        "id": f"x/eventSubscriptions/{name}", "name": name,
        "properties": {"destination": destination, "filter": {"includedEventTypes": types},
                       "eventDeliverySchema": "EventGridSchema", "provisioningState": state,
                       **props}})


def sample_wiring(name: str, verdict: Verdict, now: datetime = NOW, **extra: Any) -> Wiring:
    """A configuration's wiring that judges to ``verdict`` (watched queue: :data:`WATCHED`)."""
    topic = _topic(name)
    health: DeliveryHealth | None = DeliveryHealth(published=4, delivered=4,
                                                   since=now - timedelta(hours=24), until=now)
    subs = [_sub("to-queue", [PRE, POST], **extra)]
    if verdict is Verdict.MISSING:
        topic, subs, health = None, [], None
    elif verdict is Verdict.PARTIAL:
        subs = [_sub("post-only", [POST], **extra)]
    elif verdict is Verdict.OTHER_ENDPOINT:
        subs = [_sub("elsewhere", [PRE, POST], queue="other-queue", **extra)]
    elif verdict is Verdict.DISABLED:
        subs = [_sub("broken", [PRE, POST], state="Failed", **extra)]
    elif verdict is Verdict.FAILING:
        health = DeliveryHealth(published=4, delivered=1, failed=3, dead_lettered=1,
                                since=now - timedelta(hours=24), until=now)
    wiring = wire(configuration_id=config_id(name), configuration_name=name, topic=topic,
                  subscriptions=subs, health=health, watched=WATCHED, now=now)
    assert wiring.verdict is verdict
    return wiring


def snapshot(now: datetime, **verdicts: Verdict) -> Snapshot:
    return Snapshot({config_id(n).lower(): sample_wiring(n, v, now)
                     for n, v in verdicts.items()}, now)


def make_state(clock: ManualClock, **kwargs: Any) -> DashboardState:
    return DashboardState(WindowRules(), clock, watched_queue=WATCHED, **kwargs)


def key(name: str) -> str:
    return config_id(name).lower()


def test_the_first_read_redraws_every_row_and_keeps_each_verdict() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    state.apply_configs(Fetched((config("web", NOW + timedelta(hours=1)),
                                 config("db", NOW + timedelta(hours=2))), NOW))
    assert state.wiring_of(key("web")) is None and state.wiring_fetched_at is None
    change = state.apply_wiring(snapshot(NOW, web=Verdict.OK, db=Verdict.MISSING))
    assert change.configs == {key("web"), key("db")}
    assert change.wiring == {key("web"), key("db")}
    assert state.wiring_fetched_at == NOW
    assert state.wiring_of(key("web")).verdict is Verdict.OK  # type: ignore[union-attr]
    assert state.wiring_of(key("DB").upper()).verdict is Verdict.MISSING  # type: ignore[union-attr]


def test_an_unchanged_wiring_read_later_changes_nothing() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    state.apply_configs(Fetched((config("web", NOW + timedelta(hours=1)),), NOW))
    state.apply_wiring(snapshot(NOW, web=Verdict.FAILING))
    clock.advance(timedelta(minutes=5))
    # Another read: checked_at and the metrics' 24 h period moved, nothing else.
    change = state.apply_wiring(snapshot(clock.now(), web=Verdict.FAILING))
    assert not change


def test_an_unchanged_read_split_per_subscription_changes_nothing() -> None:
    from services.domain.wiring import parse_subscription_metrics

    split = {"value": [{"name": {"value": "DeliveryAttemptFailCount"}, "timeseries": [
        {"metadatavalues": [{"name": {"value": "eventsubscriptionname"},
                             "value": "TO-QUEUE"}],
         "data": [{"timeStamp": "2026-03-10T08:00:00Z", "total": 3.0}]}]}]}

    def read(now: datetime) -> Snapshot:
        health = DeliveryHealth(failed=3, since=now - timedelta(hours=24), until=now,
                                by_subscription=parse_subscription_metrics(split))
        wiring = wire(configuration_id=config_id("web"), configuration_name="web",
                      topic=_topic("web"), subscriptions=[_sub("to-queue", [PRE, POST])],
                      health=health, watched=WATCHED, now=now)
        assert wiring.verdict is Verdict.FAILING
        return Snapshot({key("web"): wiring}, now)

    clock = ManualClock(NOW)
    state = make_state(clock)
    state.apply_configs(Fetched((config("web", NOW + timedelta(hours=1)),), NOW))
    state.apply_wiring(read(NOW))
    clock.advance(timedelta(minutes=5))
    assert not state.apply_wiring(read(clock.now()))


def test_only_the_configuration_whose_verdict_changed_is_redrawn() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    state.apply_configs(Fetched((config("web", NOW + timedelta(hours=1)),
                                 config("db", NOW + timedelta(hours=2))), NOW))
    state.apply_wiring(snapshot(NOW, web=Verdict.PARTIAL, db=Verdict.OK))
    change = state.apply_wiring(snapshot(NOW, web=Verdict.OK, db=Verdict.OK))
    assert change.configs == {key("web")} and change.wiring == {key("web")}


def test_a_detail_change_redraws_the_wiring_view_but_not_the_row() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    state.apply_configs(Fetched((config("web", NOW + timedelta(hours=1)),), NOW))
    state.apply_wiring(snapshot(NOW, web=Verdict.OK))
    retried = sample_wiring("web", Verdict.OK,
                            retryPolicy={"maxDeliveryAttempts": 5,
                                         "eventTimeToLiveInMinutes": 60})
    change = state.apply_wiring(Snapshot({key("web"): retried}, NOW))
    assert change.configs == frozenset()
    assert change.wiring == {key("web")}
    assert change.selection  # the selected configuration's wiring moved


def test_a_failed_first_read_is_an_error_of_its_own_source_and_rows_say_unknown() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    state.apply_configs(Fetched((config("web", NOW + timedelta(hours=1)),), NOW))
    state.set_error("events", "queue gone")
    change = state.apply_wiring(Snapshot({}, None, "Event Grid system topics query failed "
                                         "(HTTP 403)"))
    assert change.status and change.configs == {key("web")}
    assert state.errors["wiring"].startswith("Event Grid system topics query failed")
    assert state.errors["events"] == "queue gone"  # the other sources' errors stand
    assert state.last_error is not None and "HTTP 403" in state.last_error
    assert state.wiring_error is not None and state.wiring_of(key("web")) is None
    # The next good read clears only its own error.
    change = state.apply_wiring(snapshot(NOW, web=Verdict.OK))
    assert change.status and "wiring" not in state.errors and state.errors["events"]


def test_a_failed_later_read_keeps_the_known_wiring() -> None:
    clock = ManualClock(NOW)
    state = make_state(clock)
    state.apply_configs(Fetched((config("web", NOW + timedelta(hours=1)),), NOW))
    good = snapshot(NOW, web=Verdict.OK)
    state.apply_wiring(good)
    clock.advance(timedelta(minutes=5))
    change = state.apply_wiring(Snapshot(good.wirings, NOW, "throttled"))
    assert state.errors["wiring"] == "throttled"
    assert change.configs == frozenset()  # the verdict shown did not change
    assert state.wiring_of(key("web")).verdict is Verdict.OK  # type: ignore[union-attr]


def test_a_run_whose_wiring_has_no_pre_event_subscription_is_flagged_at_once() -> None:
    clock = ManualClock(NOW)
    start = NOW + timedelta(minutes=35)  # inside its cancel window (T-40..T-10)
    state = make_state(clock)
    state.apply_configs(Fetched((config("web", start),), NOW))
    run = state.current_run
    assert run is not None
    assert state.pre_event_warning(run) is None  # wiring not read: no claim
    change = state.apply_wiring(snapshot(NOW, web=Verdict.PARTIAL))
    assert change.selection
    warning = state.pre_event_warning(run)
    assert warning == f"{NO_PRE_EVENT}: no pre-event subscription to the watched queue"
    state.apply_wiring(snapshot(NOW, web=Verdict.OK))
    assert state.pre_event_warning(run) is None


def test_the_flag_names_the_wiring_cause_and_goes_once_the_run_started() -> None:
    clock = ManualClock(NOW)
    start = NOW + timedelta(minutes=35)
    state = make_state(clock)
    state.apply_configs(Fetched((config("web", start),), NOW))
    state.apply_wiring(snapshot(NOW, web=Verdict.MISSING))
    run = state.current_run
    assert state.pre_event_warning(run) == (
        f"{NO_PRE_EVENT}: no Event Grid system topic for this configuration")
    assert state.pre_event_warning(run, start + timedelta(minutes=1)) is None  # running


def test_no_flag_when_a_pre_event_came_anyway() -> None:
    clock = ManualClock(NOW)
    start = NOW + timedelta(minutes=35)
    state = make_state(clock, watch_events=True)
    state.apply_configs(Fetched((config("web", start),), NOW))
    state.apply_wiring(snapshot(NOW, web=Verdict.OTHER_ENDPOINT))
    assert state.pre_event_warning(state.current_run) is not None
    state.apply_events(batch(received("pre", "web", start, NOW)))
    assert state.pre_event_warning(state.current_run) is None


def test_the_watchdog_explains_a_missing_pre_event_by_the_wiring() -> None:
    clock = ManualClock(NOW)
    start = NOW + timedelta(minutes=45)
    state = make_state(clock, watch_events=True)
    state.apply_configs(Fetched((config("web", start), config("db", start)), NOW))
    state.apply_events(batch(depth=0))  # an empty queue: the watchdog judges
    state.apply_runs(Fetched((), NOW))  # once Resource Graph and the journal were read too
    state.learn_cancels({})
    state.apply_wiring(snapshot(NOW, web=Verdict.PARTIAL, db=Verdict.OK))
    clock.set(start - timedelta(minutes=25))
    change = state.tick(clock.now())
    by_run = {f.run_id.lower(): f for f in change.findings}
    web = by_run[run_id("web", start).lower()]
    assert web.kind == "missing-pre"
    assert web.cause == "no pre-event subscription to the watched queue"
    assert web.message.endswith(": no pre-event subscription to the watched queue")
    assert "by T-25" in web.message  # it still says it is late
    db = by_run[run_id("db", start).lower()]
    assert db.cause is None and "subscription" not in db.message
    line = next(e for e in change.events if e.key == web.key)
    assert "no pre-event subscription" in line.payload


def test_the_explanation_follows_the_latest_read() -> None:
    clock = ManualClock(NOW)
    start = NOW + timedelta(minutes=45)
    state = make_state(clock, watch_events=True)
    state.apply_configs(Fetched((config("web", start),), NOW))
    state.apply_events(batch(depth=0))
    state.apply_runs(Fetched((), NOW))
    state.learn_cancels({})
    state.apply_wiring(snapshot(NOW, web=Verdict.MISSING))
    assert state.pre_event_explanation(key("web")) is not None
    state.apply_wiring(snapshot(NOW, web=Verdict.OK))  # someone ran `setup events`
    assert state.pre_event_explanation(key("web")) is None
    clock.set(start - timedelta(minutes=25))
    (finding,) = state.tick(clock.now()).findings
    assert finding.cause is None


def test_an_expired_subscription_is_disabled_and_explained() -> None:
    expired = sample_wiring("web", Verdict.OK)
    sub = replace(expired.subscriptions[0], expiration=NOW - timedelta(minutes=1))
    wiring = wire(configuration_id=config_id("web"), configuration_name="web",
                  topic=expired.topic, subscriptions=[sub], watched=WATCHED, now=NOW)
    assert wiring.verdict is Verdict.DISABLED
    clock = ManualClock(NOW)
    state = make_state(clock)
    state.apply_configs(Fetched((config("web", NOW + timedelta(minutes=35)),), NOW))
    state.apply_wiring(Snapshot({key("web"): wiring}, NOW))
    assert "expired" in (state.pre_event_explanation(key("web")) or "")
