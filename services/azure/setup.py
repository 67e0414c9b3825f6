"""``aumwatch setup events`` against Azure: resolve the configuration and the queue's account,
read what exists, and apply a :class:`~services.domain.wiring_setup.Plan` step by step, each
audited in the journal's ``change_audit`` (written before the request, finished with its
outcome), then read the event subscription back.

What exists is read from Resource Manager where it matters (a second run right after the
first must see what the first created, and Resource Graph lags: docs/azure.md): the topic
is found in Resource Graph by its source, else by the name aumwatch gives it with an ARM GET,
and is then re-read with an ARM GET; the event subscriptions, role assignments and the queue
are read directly. The plan itself is pure (:mod:`services.domain.wiring_setup`).
"""

from __future__ import annotations

import asyncio
import json
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from services.azure.eventgrid import HEALTH_PERIOD, TOPICS_QUERY, read_delivery_health
from services.azure.resourcegraph import QueryRunner
from services.domain.clock import Clock, SystemClock
from services.domain.errors import ServiceError, service_error
from services.domain.model import Configuration
from services.domain.wiring import (
    DeliveryHealth,
    EventSubscription,
    SystemTopic,
    parse_subscription,
    parse_topic,
)
from services.domain.wiring_setup import (
    ROLE_ASSIGNMENTS_API_VERSION,
    Action,
    Current,
    Plan,
    SetupError,
    SetupRequest,
    Step,
    role_allows_sending,
    role_assignment_name,
    topic_name_for,
    valid_account_name,
)

#: How often, and how far apart, the event subscription is read back after its PUT.
READ_ATTEMPTS = 10
READ_INTERVAL = timedelta(seconds=2)


def account_query(account_name: str) -> str:
    """Resource Graph query for a storage account by name (names are 3-24 [a-z0-9]: checked,
    so the name is safe inside the query)."""
    if not valid_account_name(account_name):
        raise SetupError(f"{account_name!r} is not a storage account name")
    return ("resources | where type =~ 'microsoft.storage/storageaccounts'"
            f" and name =~ '{account_name}'"
            " | project id, name, resourceGroup, subscriptionId, location")


def match_configuration(configs: Sequence[Configuration], wanted: str) -> Configuration:
    """The configuration named ``wanted`` (case-insensitive) or with that id.

    A name found in several subscriptions or groups is ambiguous: the error lists the ids so
    the operator can pass one.
    """
    key = wanted.strip()
    if key.startswith("/"):
        by_id = [c for c in configs if c.id.rstrip("/").lower() == key.rstrip("/").lower()]
        if by_id:
            return by_id[0]
        raise SetupError(f"no maintenance configuration with id {key} in scope")
    by_name = [c for c in configs if c.name.casefold() == key.casefold()]
    if not by_name:
        raise SetupError(f"no maintenance configuration named {key!r} in scope (see "
                         "`aumwatch configs`)")
    if len(by_name) > 1:
        ids = "; ".join(sorted(c.id for c in by_name))
        raise SetupError(f"configuration name {key!r} is ambiguous: pass one of these ids to "
                         f"--configuration: {ids}")
    return by_name[0]


async def resolve_configuration(runner: QueryRunner, wanted: str) -> Configuration:
    """Find the configuration with the existing source (one Resource Graph query)."""
    from services.azure.sources import ConfigSource

    fetched = await ConfigSource(runner).fetch()
    return match_configuration(fetched.items, wanted)


async def find_account_id(runner: QueryRunner, account_name: str) -> str:
    """The resource id of a storage account, found in Resource Graph by its name."""
    result = await runner.query(account_query(account_name), what="storage account lookup")
    ids = sorted({str(r.get("id")) for r in result.rows if r.get("id")})
    if not ids:
        raise SetupError(f"storage account {account_name} was not found in Resource Graph (in "
                         "the subscriptions in scope): pass its resource id with "
                         "--queue-account")
    return ids[0]


@dataclass
class StepResult:
    """What happened to one step."""

    step: Step
    outcome: str          # succeeded | failed | refused
    message: str
    command: str | None = None  # the az command to run by hand (a refused role assignment)


@dataclass
class ApplyResult:
    """The outcome of :meth:`EventSetup.apply`."""

    results: list[StepResult] = field(default_factory=list)
    subscription_state: str | None = None
    topic_location: str | None = None
    error: str | None = None
    journal_error: str | None = None  # an outcome that could not be written to the audit

    @property
    def ok(self) -> bool:
        """The subscription read back ``Succeeded`` and no step other than a refused role
        assignment failed (that one leaves a warning and the command to run)."""
        if self.error is not None or (self.subscription_state or "").lower() != "succeeded":
            return False
        return all(r.outcome == "succeeded" or r.step.action is Action.ASSIGN_ROLE
                   for r in self.results)


QueueCheck = Callable[[str, str], Any]  # (account name, queue name) -> awaitable (bool|None, note)


class EventSetup:
    """Reads and changes one configuration's Event Grid wiring through azure-mgmt-eventgrid.

    ``client`` is an async ``EventGridManagementClient`` for the topic's subscription (its
    pipeline also sends the role-assignment requests, which are plain ARM calls).
    ``queue_check`` answers whether the queue exists (see :func:`settings_queue_check`).
    """

    def __init__(self, client: Any, runner: QueryRunner, *, clock: Clock | None = None,
                 queue_check: QueueCheck | None = None, journal: Any = None,
                 identity: str | None = None, read_attempts: int = READ_ATTEMPTS,
                 read_interval: timedelta = READ_INTERVAL) -> None:
        self.client = client
        self.runner = runner
        self.clock: Clock = clock or SystemClock()
        self.queue_check = queue_check
        self.journal = journal
        self.identity = identity
        self.read_attempts = read_attempts
        self.read_interval = read_interval

    # -- reading -----------------------------------------------------------------------------
    async def read_current(self, request: SetupRequest) -> Current:
        """The topic, its subscriptions, the role of its identity and the queue, as they are."""
        topic = await self._find_topic(request)
        subscriptions: tuple[EventSubscription, ...] = ()
        bodies: dict[str, dict[str, Any]] = {}
        if topic is not None:
            bodies = await self._subscriptions(topic)
            subscriptions = tuple(parse_subscription(b) for b in bodies.values())
        role: bool | None = None
        role_note: str | None = None
        if topic is not None and topic.principal_id:
            role, role_note = await self._role(topic.principal_id, request)
        exists: bool | None = None
        queue_note: str | None = None
        if self.queue_check is not None:
            exists, queue_note = await self.queue_check(request.watched.account_name,
                                                        request.queue_name)
        health: DeliveryHealth | None = None
        if topic is not None and subscriptions:
            until = self.clock.now().replace(microsecond=0)
            try:
                health = await read_delivery_health(self.client, topic.id,
                                                    until - HEALTH_PERIOD, until)
            except ServiceError:
                health = None  # the plan does not need it; the advice is then left out
        return Current(topic=topic, subscriptions=subscriptions, role=role,
                       role_note=role_note, queue_exists=exists, queue_note=queue_note,
                       bodies=bodies, health=health)

    async def _find_topic(self, request: SetupRequest) -> SystemTopic | None:
        key = request.configuration_id.strip().rstrip("/").lower()
        # The wiring source's query of every maintenance system topic, filtered by source
        # here: no configuration id is ever put inside a query.
        result = await self.runner.query(TOPICS_QUERY, what="system topics query")
        found = [t for row in result.rows if (t := parse_topic(row)) and t.source_key == key]
        if found:
            chosen = sorted(found, key=lambda t: t.id.lower())[0]
            rg, name = chosen.resource_group, chosen.name
        else:
            # Resource Graph lags: a topic created a moment ago (by the last run) is only
            # visible to Resource Manager. Look for the name aumwatch would have given it.
            rg = request.resource_group
            name = topic_name_for(request.configuration_name, request.configuration_id)
        return await self._get_topic(rg, name)

    async def _get_topic(self, resource_group: str, name: str) -> SystemTopic | None:
        try:
            model = await self.client.system_topics.get(resource_group, name)
        except Exception as exc:
            if _status(exc) == 404:
                return None
            raise service_error(exc, what=f"reading system topic {name}") from exc
        return parse_topic(_rest(model))

    async def _subscriptions(self, topic: SystemTopic) -> dict[str, dict[str, Any]]:
        """The topic's subscriptions as REST JSON, by lower-case name (kept whole so that an
        update keeps what aumwatch does not manage; a webhook's full URL is never in it)."""
        try:
            pager = self.client.system_topic_event_subscriptions.list_by_system_topic(
                topic.resource_group, topic.name)
            out: dict[str, dict[str, Any]] = {}
            async for model in pager:
                body = _rest(model)
                out[str(body.get("name") or "").lower()] = body
            return out
        except Exception as exc:
            raise service_error(exc, what=f"listing event subscriptions of {topic.name}") from exc

    async def _role(self, principal_id: str, request: SetupRequest) -> tuple[bool | None,
                                                                              str | None]:
        path = (f"{request.queue_account_id}/providers/Microsoft.Authorization/roleAssignments")
        params = {"api-version": ROLE_ASSIGNMENTS_API_VERSION,
                  "$filter": f"principalId eq '{principal_id}'"}
        status, body, text = await self._call("GET", path, params)
        if status == 200 and isinstance(body, dict):
            items = body.get("value") if isinstance(body.get("value"), list) else []
            return role_allows_sending(items or [], principal_id, request.queue_scope), None
        return None, (f"could not read the role assignments of storage account "
                      f"{request.watched.account_name} (HTTP {status}: {_error_text(body, text)})"
                      ": the role assignment is planned; if it exists, Azure says so")

    async def _call(self, method: str, path: str, params: dict[str, str],
                    body: Any = None) -> tuple[int, Any, str]:
        """One ARM request through the client's pipeline; never raises on an error status."""
        from azure.core.rest import HttpRequest

        request = HttpRequest(method, path, params=params, json=body)
        try:
            response = await self.client._send_request(request)
        except Exception as exc:
            raise service_error(exc, what=f"{method} {path.rsplit('/', 1)[-1]}") from exc
        text = response.text() if callable(getattr(response, "text", None)) else ""
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return int(response.status_code), parsed, text or ""

    # -- applying ----------------------------------------------------------------------------
    async def apply(self, plan: Plan) -> ApplyResult:
        """Send the plan's steps in order (topic, role, subscription), audit each, and read the
        subscription back. Stops at the first failure other than a refused role assignment."""
        out = ApplyResult()
        principal = plan.principal_id
        for step in plan.steps:
            if step.action is Action.ASSIGN_ROLE and principal:
                # The plan could not know the identity of a topic it creates: audit the
                # body as sent, naming the principal that gets the role.
                from services.domain.wiring_setup import role_body

                step = replace(step, body=role_body(plan.request, principal))
            seq = self._begin(step)
            try:
                if step.action in (Action.CREATE_TOPIC, Action.UPDATE_TOPIC):
                    result, principal, out.topic_location = await self._put_topic(plan, step)
                elif step.action is Action.ASSIGN_ROLE:
                    result = await self._assign_role(plan, step, principal)
                else:
                    result, out.subscription_state = await self._put_subscription(plan, step)
            except ServiceError as exc:
                result = StepResult(step, "failed", str(exc))
            except Exception as exc:  # an SDK error not mapped above: one line, audited
                result = StepResult(step, "failed", str(service_error(exc, what=step.summary)))
            self._finish(seq, result, out)
            out.results.append(result)
            if result.outcome != "succeeded" and step.action is not Action.ASSIGN_ROLE:
                out.error = result.message
                return out
        if plan.step(Action.CREATE_SUBSCRIPTION) is None and plan.step(
                Action.UPDATE_SUBSCRIPTION) is None:
            out.subscription_state = await self._read_state(plan)
        return out

    def _begin(self, step: Step) -> int | None:
        if self.journal is None:
            return None
        return int(self.journal.begin_change(
            attempted_at=self.clock.now(), identity=self.identity, action=str(step.action),
            target=step.target, detail=step.detail()))

    def _finish(self, seq: int | None, result: StepResult, out: ApplyResult) -> None:
        if self.journal is None or seq is None:
            return
        from services.azure.journal import JournalError

        try:
            self.journal.finish_change(seq, finished_at=self.clock.now(),
                                       outcome=result.outcome, reason=result.message)
        except JournalError as exc:
            # The change was made: say the audit row is incomplete, do not hide the change.
            out.journal_error = str(exc)

    async def _put_topic(self, plan: Plan, step: Step) -> tuple[StepResult, str | None,
                                                                 str | None]:
        from azure.mgmt.eventgrid.models import SystemTopic as TopicModel
        from azure.mgmt.eventgrid.models import SystemTopicUpdateParameters

        try:
            if "properties" in step.body:  # create, or re-provision: the whole topic
                poller = await self.client.system_topics.begin_create_or_update(
                    plan.resource_group, plan.topic_name, TopicModel.deserialize(dict(step.body)))
            else:  # add the identity: a PATCH keeps the rest (its tags)
                poller = await self.client.system_topics.begin_update(
                    plan.resource_group, plan.topic_name,
                    SystemTopicUpdateParameters.deserialize(dict(step.body)))
            await poller.result()
        except Exception as exc:
            raise service_error(exc, what=f"creating system topic {plan.topic_name}") from exc
        # Read it back: its identity's principal id is what the role assignment needs.
        topic = await self._get_topic(plan.resource_group, plan.topic_name)
        if topic is None:
            return (StepResult(step, "failed", f"system topic {plan.topic_name} was not found "
                               "after it was created"), None, None)
        state = topic.provisioning_state or "unknown"
        if state.lower() != "succeeded":
            return (StepResult(step, "failed", f"system topic {topic.name} is {state}"),
                    topic.principal_id, topic.location)
        if not topic.principal_id:
            return (StepResult(step, "failed", f"system topic {topic.name} has no "
                               "system-assigned identity after the update"), None, topic.location)
        return (StepResult(step, "succeeded", f"system topic {topic.name} is Succeeded in "
                           f"{topic.location or '?'} (identity {topic.principal_id})"),
                topic.principal_id, topic.location)

    async def _assign_role(self, plan: Plan, step: Step, principal: str | None) -> StepResult:
        from services.domain.wiring_setup import QUEUE_SENDER_ROLE_ID, role_body

        command = role_command(plan, principal)
        if not principal:
            return StepResult(step, "failed", "the topic has no identity to give the role to",
                              command)
        request = plan.request
        name = role_assignment_name(request.queue_account_id, principal, QUEUE_SENDER_ROLE_ID)
        path = (f"{request.queue_account_id}/providers/Microsoft.Authorization/roleAssignments/"
                f"{name}")
        status, body, text = await self._call(
            "PUT", path, {"api-version": ROLE_ASSIGNMENTS_API_VERSION},
            role_body(request, principal))
        if status in (200, 201):
            return StepResult(step, "succeeded", "role assigned")
        code = _error_code(body)
        if status == 409 and code.lower() == "roleassignmentexists":
            return StepResult(step, "succeeded", "the role assignment exists already")
        if status == 403:
            return StepResult(step, "failed", "not allowed to assign roles on the storage "
                              f"account (HTTP 403: {_error_text(body, text)})", command)
        return StepResult(step, "failed", f"role assignment failed (HTTP {status}: "
                          f"{_error_text(body, text)})", command)

    async def _put_subscription(self, plan: Plan, step: Step) -> tuple[StepResult, str | None]:
        from azure.mgmt.eventgrid.models import EventSubscription as SubscriptionModel

        name = step.target.rsplit("/", 1)[-1]
        model = SubscriptionModel.deserialize(dict(step.body))
        try:
            poller = await self.client.system_topic_event_subscriptions.begin_create_or_update(
                plan.resource_group, plan.topic_name, name, model)
            await poller.result()
        except Exception as exc:
            raise service_error(exc, what=f"writing event subscription {name}") from exc
        state = await self._read_state(plan, name)
        if (state or "").lower() == "succeeded":
            return StepResult(step, "succeeded", f"event subscription {name} is Succeeded"), state
        return (StepResult(step, "failed", f"event subscription {name} reads back as "
                           f"{state or 'missing'}"), state)

    async def _read_state(self, plan: Plan, name: str | None = None) -> str | None:
        """The subscription's provisioningState, read until it is terminal (or attempts end)."""
        name = name or plan.subscription_name
        state: str | None = None
        for attempt in range(max(1, self.read_attempts)):
            if attempt:
                await asyncio.sleep(self.read_interval.total_seconds())
            try:
                model = await self.client.system_topic_event_subscriptions.get(
                    plan.resource_group, plan.topic_name, name)
            except Exception as exc:
                if _status(exc) == 404:
                    state = None
                    continue
                raise service_error(exc, what=f"reading event subscription {name}") from exc
            state = parse_subscription(_rest(model)).state or None
            if (state or "").lower() in ("succeeded", "failed", "canceled", "cancelled",
                                         "deleting"):
                return state
        return state


def role_command(plan: Plan, principal: str | None) -> str:
    """The ``az role assignment create`` line for the plan (the principal filled in when
    known)."""

    from services.domain.wiring_setup import az_commands

    role_step = plan.step(Action.ASSIGN_ROLE)
    steps = (role_step,) if role_step is not None else ()
    lines = az_commands(replace(plan, steps=steps, principal_id=principal or plan.principal_id))
    return lines[0] if lines else ""


def settings_queue_check(settings: Any, credential: Any) -> QueueCheck:
    """A queue check using the settings' queue credentials: it only answers for the account
    the settings name (another account's queue is not checked, and says so)."""
    from services.domain.wiring import queue_account_name

    own = queue_account_name(settings.queue_connection_string, settings.queue_account_url)

    async def check(account_name: str, queue_name: str) -> tuple[bool | None, str | None]:
        if not own or own.lower() != account_name.lower():
            return None, (f"queue {queue_name} of storage account {account_name} not checked: "
                          "the queue settings are for another account")
        from services.azure.clients import queue_service_kwargs
        from services.azure.eventsource import make_queue_client

        try:
            client = make_queue_client(
                queue_name, connection_string=settings.queue_connection_string,
                account_url=None if settings.queue_connection_string
                else settings.queue_account_url,
                credential=credential, **queue_service_kwargs(settings))
        except ValueError as exc:
            return None, f"queue {queue_name} not checked: {exc}"
        try:
            async with client:
                await client.get_queue_properties()
        except Exception as exc:
            if type(exc).__name__ == "ResourceNotFoundError" or _status(exc) == 404:
                return False, (f"queue {queue_name} does not exist in storage account "
                               f"{account_name}: create it first (az storage queue create "
                               f"--name {shlex.quote(queue_name)} --account-name "
                               f"{account_name} --auth-mode login)")
            error = service_error(exc, what=f"queue {queue_name}")
            return None, f"queue {queue_name} not checked: {error}"
        return True, None

    return check


def _rest(model: Any) -> dict[str, Any]:
    """An SDK model as its REST JSON (camelCase, read-only fields kept)."""
    value = model.serialize(keep_readonly=True)
    return value if isinstance(value, dict) else {}


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _error_code(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("code", "")) if isinstance(error, dict) else ""


def _error_text(body: Any, text: str) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        return " ".join(f"{code or ''}: {message or ''}".split())[:240]
    return " ".join(text.split())[:240] or "no details"


__all__ = [
    "READ_ATTEMPTS", "READ_INTERVAL", "TOPICS_QUERY", "ApplyResult", "EventSetup", "QueueCheck",
    "StepResult", "account_query", "find_account_id", "match_configuration",
    "resolve_configuration", "role_command", "settings_queue_check",
]
