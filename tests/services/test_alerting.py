"""Telling findings once per route across restarts (issue 21), with a real journal and a
real local receiver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.alerting import Alerter
from services.azure.journal import Journal
from services.domain.clock import ManualClock
from services.domain.findings import Alert, FindingBook, Judgement
from services.domain.routes import RouteSpec
from services.notify import Notifier
from tests.receivers import receiver

T = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
OPEN = Judgement("run-failed", "run-failed:x", True, "web: failed", "web", "X")
MISSED = Judgement("missed-run", "missed-run:y", True, "web: did not happen", "web", "Y")
RESOLVED = Judgement("missed-run", "missed-run:y", False)


async def no_wait(seconds: float) -> None:
    return None


def alerter(path: Path, routes: list[RouteSpec], clock: ManualClock,
            printed: list[Alert]) -> Alerter:
    return Alerter(FindingBook(), Journal(path), Notifier(routes, sleep=no_wait), routes,
                   clock, emit=printed.append)


async def test_a_restart_tells_nothing_twice_and_resolves_what_it_told(tmp_path: Path) -> None:
    clock = ManualClock(T)
    printed: list[Alert] = []
    async with receiver() as (url, got):
        routes = [RouteSpec("hook", "webhook", url=url + "/hook"),
                  RouteSpec("pd", "pagerduty", url=url + "/pd", routing_key="k" * 32,
                            on=("missed-run",))]
        first = alerter(tmp_path / "j.sqlite3", routes, clock, printed)
        await first.resume()
        await first.update([OPEN, MISSED], T)
        await first.update([OPEN, MISSED], T + timedelta(seconds=5))  # nothing new
        first.journal.close()
        second = alerter(tmp_path / "j.sqlite3", routes, clock, printed)  # a restart
        await second.resume()
        await second.update([OPEN, MISSED], T + timedelta(minutes=1))
        await second.update([RESOLVED], T + timedelta(minutes=2))
        await second.update([RESOLVED], T + timedelta(minutes=3))
        second.journal.close()
        await first.notifier.close()
        await second.notifier.close()
    assert [(a.key, a.state) for a in printed] == [
        ("run-failed:x", "open"), ("missed-run:y", "open"), ("missed-run:y", "resolved")]
    hooks = [(b["key"], b["state"]) for b in got.bodies("/hook")]
    assert hooks == [("run-failed:x", "open"), ("missed-run:y", "open"),
                     ("missed-run:y", "resolved")]
    pd = [(b["dedup_key"], b["event_action"]) for b in got.bodies("/pd")]
    assert pd == [("missed-run:y", "trigger"), ("missed-run:y", "resolve")]


async def test_a_failing_route_is_a_finding_told_to_the_others(tmp_path: Path) -> None:
    clock = ManualClock(T)
    printed: list[Alert] = []
    async with receiver() as (url, got):
        routes = [RouteSpec("broken", "webhook", url="http://127.0.0.1:9/x"),
                  RouteSpec("hook", "webhook", url=url + "/hook")]
        told = alerter(tmp_path / "j.sqlite3", routes, clock, printed)
        await told.update([OPEN], T)
        await told.notifier.close()
        told.journal.close()
    kinds = [(a.kind, a.state) for a in printed]
    assert kinds == [("run-failed", "open"), ("route-failing", "open")]
    assert [b["kind"] for b in got.bodies("/hook")] == ["run-failed", "route-failing"]
    assert "broken" in printed[1].summary and "127.0.0.1:9/x" not in printed[1].summary


async def test_a_send_claimed_by_a_process_that_died_is_not_sent_again(tmp_path: Path) -> None:
    clock = ManualClock(T)
    path = tmp_path / "j.sqlite3"
    with Journal(path) as dead:  # claimed (and maybe sent) just before a kill -9
        alert = Alert("run-failed", "run-failed:x", "error", "web: failed", "web", "X", T)
        dead.claim_alert(finding_key=alert.key, route="", state="open", kind=alert.kind,
                         finding=alert.to_json(), at=T)
        dead.claim_alert(finding_key=alert.key, route="hook", state="open", kind=alert.kind,
                         finding=alert.to_json(), at=T)
    printed: list[Alert] = []
    async with receiver() as (url, got):
        routes = [RouteSpec("hook", "webhook", url=url + "/hook"),
                  RouteSpec("chat", "slack", url=url + "/chat")]
        again = alerter(path, routes, clock, printed)
        await again.resume()  # "chat" was never reached: it is now; "hook" is not re-sent
        await again.update([OPEN], T + timedelta(seconds=1))
        await again.notifier.close()
        again.journal.close()
    assert got.bodies("/hook") == [] and len(got.bodies("/chat")) == 1
    assert printed == []


async def test_a_route_that_delivers_again_resolves_its_outage(tmp_path: Path) -> None:
    clock = ManualClock(T)
    printed: list[Alert] = []
    async with receiver() as (url, got):
        got.statuses = [500, 500, 500]  # the first send fails after its 3 tries
        routes = [RouteSpec("hook", "webhook", url=url + "/hook")]
        told = alerter(tmp_path / "j.sqlite3", routes, clock, printed)
        await told.update([OPEN], T)
        await told.update([MISSED], T + timedelta(minutes=1))  # delivered: the route is back
        await told.notifier.close()
        told.journal.close()
    assert [(a.kind, a.state) for a in printed] == [
        ("run-failed", "open"), ("route-failing", "open"), ("missed-run", "open"),
        ("route-failing", "resolved")]
