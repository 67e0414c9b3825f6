"""Sending alerts to a real local receiver: payloads, bounded retries, secrets scrubbed,
PagerDuty trigger then resolve with one dedup_key, a command route with the finding on
stdin (issue 21)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.domain.findings import Alert
from services.domain.routes import RouteSpec, dedup_key
from services.notify import DETAIL_LIMIT, Notifier
from tests.receivers import receiver

T = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ALERT = Alert("run-failed", "run-failed:/subscriptions/s/x/20260310120000", "error",
              "web: the run at 12:00 UTC failed", "web", "/subscriptions/s/X/20260310120000",
              T)
KEY = "pd-routing-key-0123456789"
delays: list[float] = []


async def no_wait(seconds: float) -> None:
    delays.append(seconds)


async def test_a_webhook_gets_the_finding_as_json() -> None:
    async with receiver() as (url, got):
        notifier = Notifier([route := RouteSpec("hook", "webhook", url=url + "/hook")])
        delivery = await notifier.send(route, ALERT)
        await notifier.close()
    assert delivery.ok and delivery.status == 200
    [body] = got.bodies("/hook")
    assert (body["kind"], body["key"], body["state"], body["severity"]) == (
        "run-failed", ALERT.key, "open", "error")


async def test_pagerduty_triggers_then_resolves_with_the_same_dedup_key() -> None:
    async with receiver(202) as (url, got):
        route = RouteSpec("pd", "pagerduty", url=url + "/v2/enqueue", routing_key=KEY)
        notifier = Notifier([route])
        assert (await notifier.send(route, ALERT)).status == 202
        assert (await notifier.send(route, ALERT.__class__(
            **{**ALERT.__dict__, "resolved_at": T + timedelta(minutes=5)}))).ok
        await notifier.close()
    trigger, resolve = got.bodies("/v2/enqueue")
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] == ALERT.key
    assert trigger["routing_key"] == KEY
    assert trigger["payload"]["severity"] == "error"
    assert trigger["payload"]["summary"] == ALERT.summary


def test_a_long_key_fits_pagerdutys_255_characters_stably() -> None:
    long = "missed-run:" + "x" * 400
    assert len(dedup_key(long)) <= 255 and dedup_key(long) == dedup_key(long)


async def test_a_failing_receiver_is_retried_with_back_off_then_given_up() -> None:
    delays.clear()
    async with receiver() as (url, got):
        got.statuses = [500, 503, 500, 500]
        route = RouteSpec("hook", "webhook", url=url + "/h")
        notifier = Notifier([route], sleep=no_wait, attempts=3)
        delivery = await notifier.send(route, ALERT)
        await notifier.close()
    assert not delivery.ok and delivery.attempts == 3 and len(got.requests) == 3
    assert delays == [1.0, 2.0]
    assert "failed after 3 tries (HTTP 500)" in delivery.describe()


async def test_a_retry_that_succeeds_and_a_client_error_that_is_not_retried() -> None:
    async with receiver() as (url, got):
        got.statuses = [429]
        route = RouteSpec("hook", "webhook", url=url + "/h")
        notifier = Notifier([route], sleep=no_wait)
        assert (await notifier.send(route, ALERT)).attempts == 2
        got.statuses = [400]
        refused = await notifier.send(route, ALERT)
        await notifier.close()
    assert (refused.ok, refused.attempts, refused.status) == (False, 1, 400)


async def test_an_answer_echoing_a_secret_is_scrubbed() -> None:
    async with receiver() as (url, got):
        got.echo = f"your key {KEY} at {url}/secret-path-abcdef"
        route = RouteSpec("pd", "pagerduty", url=url + "/secret-path-abcdef", routing_key=KEY)
        delivery = await Notifier([route]).send(route, ALERT)
    assert KEY not in delivery.detail and "secret-path-abcdef" not in delivery.detail
    assert "REDACTED" in delivery.detail


async def test_a_secret_cut_by_the_detail_limit_is_scrubbed_not_left_as_a_prefix() -> None:
    echo = "x" * (DETAIL_LIMIT - 10) + KEY  # the key straddles the cut
    route = RouteSpec("page", "command", command=(sys.executable, "-c", f"print({echo!r})"))
    delivery = await Notifier([route], secrets=[KEY]).send(route, ALERT)
    assert delivery.ok and delivery.detail.startswith("xxx")
    assert KEY[:10] not in delivery.detail
    assert len(delivery.detail) <= DETAIL_LIMIT


async def test_a_dead_receiver_is_a_failed_delivery_not_an_exception() -> None:
    route = RouteSpec("hook", "webhook", url="http://127.0.0.1:9/h")
    delivery = await Notifier([route], sleep=no_wait).send(route, ALERT)
    assert not delivery.ok and delivery.status is None


async def test_a_command_route_gets_the_finding_on_stdin_without_a_shell(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    script = ("import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(sys.stdin.read()); "
              "print('paged')")
    route = RouteSpec("page", "command", command=(sys.executable, "-c", script, str(out)))
    delivery = await Notifier([route]).send(route, ALERT)
    assert delivery.ok and delivery.status == 0 and delivery.detail == "paged"
    assert json.loads(out.read_text())["key"] == ALERT.key
    failing = RouteSpec("page", "command", command=(sys.executable, "-c", "raise SystemExit(4)"))
    result = await Notifier([failing], sleep=no_wait, attempts=2).send(failing, ALERT)
    assert (result.ok, result.status, result.attempts) == (False, 4, 2)


async def test_a_command_route_gets_none_of_aumwatchs_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Like a task (services/domain/tasks.py passed_environment): a command route is the
    # operator's program, and aumwatch's own secrets are not its business.
    monkeypatch.setenv("AUMWATCH_QUEUE_CONNECTION_STRING", "AccountKey=c2VjcmV0")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "client-secret-value")
    monkeypatch.setenv("AUMWATCH_TOKEN", "a-token")
    out = tmp_path / "env.json"
    script = ("import json, os, pathlib, sys; "
              "pathlib.Path(sys.argv[1]).write_text(json.dumps(dict(os.environ)))")
    route = RouteSpec("page", "command", command=(sys.executable, "-c", script, str(out)))
    delivery = await Notifier([route]).send(route, ALERT)
    assert delivery.ok, delivery.detail
    env = json.loads(out.read_text())
    assert "PATH" in env
    assert not {"AUMWATCH_QUEUE_CONNECTION_STRING", "AZURE_CLIENT_SECRET",
                "AUMWATCH_TOKEN"} & env.keys()
