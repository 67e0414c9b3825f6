"""``aumwatch doctor``: check the setup end to end and say what to fix.

Checks, in order: settings (config file, permissions), credentials (a token for the ARM
scope), Resource Graph access, configurations visible, clock skew against the server, the
events queue (reachable, permission, depth, mode advice; peek only, never a receive), a
lint of every configuration's schedule (unparseable, in-guest limits, expiration passed,
unknown zone), and the Event Grid wiring of each configuration with a run in the next 24 h
(a warning with the exact fix for every verdict that is not ``ok``). Each check is a
:class:`Check` with a status and, when not ok, a fix.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from services.domain.clock import SKEW_WARNING, Clock, SystemClock, iso_z, skew_is_large
from services.domain.errors import ServiceError, service_error
from services.domain.model import Configuration
from services.domain.wiring import HEALTH_METRICS, QueueTarget, Verdict, Wiring
from services.settings import Settings

Status = Literal["ok", "warn", "fail", "skip"]

#: A skew this large fails the check (the warning threshold is the clock's SKEW_WARNING).
SKEW_FAIL = timedelta(seconds=60)
#: What one peek can see (docs/azure.md, "Event Grid -> Storage Queue").
PEEK_LIMIT = 32
#: The wiring is checked for configurations with a run starting (or going on) this soon.
WIRING_HORIZON = timedelta(hours=24)


@dataclass(frozen=True)
class Check:
    """One finding."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"check": self.name, "status": self.status, "detail": self.detail,
                "fix": self.fix}


def check_settings(settings: Settings) -> list[Check]:
    """Where the settings came from, and their warnings (e.g. a readable secrets file)."""
    where = str(settings.config_path) if settings.config_path else "no config file"
    checks = [Check("settings", "ok", f"{where}; scope: {settings.scope_description}; "
                    f"cloud {settings.cloud}")]
    for warning in settings.warnings:
        fix = "chmod 600 the config file" if "chmod" in warning else "fix the config file"
        checks.append(Check("settings", "warn", warning, fix))
    return checks


def lint_configuration(config: Configuration, now: datetime) -> list[Check]:
    """Schedule problems of one configuration."""
    name = f"schedule {config.name}"
    if config.schedule_error:
        fix = ("use a Windows or IANA zone name" if "time zone" in config.schedule_error
               else "correct the maintenance window in the portal or with az maintenance")
        return [Check(name, "fail", config.schedule_error, fix)]
    checks: list[Check] = []
    if config.scope.lower() == "inguestpatch":
        for warning in config.schedule_warnings:
            checks.append(Check(name, "warn", warning,
                                "Azure refuses or skips such in-guest schedules: adjust it"))
    if not config.next_occurrences:
        checks.append(Check(name, "warn",
                            f"no future runs (expiration {config.expiration or 'none'})",
                            "extend expirationDateTime or delete the configuration"))
    elif config.expiration:
        from services.domain.schedule import ScheduleError, parse_schedule

        try:
            schedule = parse_schedule(config.start_date_time, config.time_zone,
                                      config.recur_every, config.duration or None,
                                      config.expiration)
        except ScheduleError:
            schedule = None
        if schedule is not None and schedule.expiration is not None \
                and schedule.expiration - now < timedelta(days=7):
            import humanize

            left = humanize.naturaltime(schedule.expiration, when=now)
            checks.append(Check(name, "warn", f"expires {config.expiration} "
                                f"({config.time_zone}), {left}", "extend expirationDateTime"))
    return checks


def check_skew(skew: timedelta | None, *, replay_of: datetime | None = None) -> Check:
    """Local clock against the server's ``Date`` header.

    ``replay_of``: the server is the stand-in replaying a capture made then (``sim
    --replay``); its clock started at that moment, so its ``Date`` says nothing about this
    machine's clock and a large difference is not checked (aumwatch follows the server's
    clock either way). A plain simulation's clock is checked as Azure's is."""
    if skew is None:
        return Check("clock", "skip", "the server sent no Date header")
    import humanize

    behind = skew > timedelta(0)
    detail = (f"local clock is {humanize.precisedelta(abs(skew), format='%0.0f')} "
              f"{'behind' if behind else 'ahead of'} the server")
    if replay_of is not None and skew_is_large(skew):
        return Check("clock", "skip", f"{detail}: the stand-in replays a capture made at "
                     f"{iso_z(replay_of)} and runs its own clock from there; aumwatch follows "
                     "it, and the local clock is not checked against it")
    if abs(skew) >= SKEW_FAIL:
        return Check("clock", "fail", detail, "sync the clock (NTP); aumwatch corrects for it "
                     "but the cancel window is only minutes wide")
    if skew_is_large(skew):
        return Check("clock", "warn", detail, "sync the clock (NTP)")
    return Check("clock", "ok", f"within {humanize.precisedelta(SKEW_WARNING)} of the server")


_CHAIN_FAILED = "DefaultAzureCredential failed to retrieve a token"
_ATTEMPT = re.compile(r"^\t(\w+Credential): (.*)$", re.MULTILINE)


def no_credential_summary(text: str) -> str | None:
    """One line for DefaultAzureCredential's "none of my credentials worked" error: which
    credentials it tried, and what the Azure CLI one said (the usual way in). None when
    ``text`` is another error. The SDK's own text is a dozen lines with links per credential.
    """
    if not text.startswith(_CHAIN_FAILED):
        return None
    attempts = _ATTEMPT.findall(text)
    if not attempts:
        return "no Azure credential found"
    names = ", ".join(name.removesuffix("Credential") for name, _ in attempts)
    summary = f"no Azure credential found (tried {names})"
    cli = next((said for name, said in attempts if name == "AzureCliCredential"), None)
    if cli:
        said = cli.split(". ")[0].rstrip(".").removeprefix("Azure CLI ")
        summary += f"; Azure CLI: {said}"
    return summary


async def check_credentials(settings: Settings, credential: Any) -> Check:
    """Can we get a token for Resource Manager at all?"""
    from services.azure.clients import cloud_for

    try:
        await credential.get_token(cloud_for(settings).token_scope)
    except Exception as exc:  # any credential failure is reported, not raised
        summary = no_credential_summary(str(getattr(exc, "message", None) or exc))
        detail = summary or service_error(exc, what="getting a token").message
        return Check("credentials", "fail", detail,
                     "run `az login` (with --tenant if needed) or set a managed/workload "
                     "identity; see `aumwatch config show`")
    kind = "static token (stand-in)" if settings.token else "DefaultAzureCredential"
    return Check("credentials", "ok", f"got a token ({kind})")


async def check_queue(settings: Settings, credential: Any) -> list[Check]:
    """Reach the queue with a peek (never a receive) and advise on the mode."""
    if not settings.queue_configured:
        return [Check("queue", "warn", "no events queue configured: pre/post events will not "
                      "be shown", "set [queue] name and account_url (or a connection string "
                      "in the environment)")]
    from services.azure.clients import settings_queue_client

    try:
        client = settings_queue_client(settings, credential)
    except ValueError as exc:
        return [Check("queue", "fail", str(exc), "fix the [queue] settings")]
    checks: list[Check] = []
    try:
        async with client:
            props = await client.get_queue_properties()
            depth = props.approximate_message_count or 0
            await client.peek_messages(max_messages=1)
    except Exception as exc:  # reported as a finding
        error = service_error(exc, what=f"queue {settings.queue_name}")
        fix = {
            "forbidden": "grant Storage Queue Data Reader (peek) or Data Message Processor "
                         "(consume) on the queue",
            "not_found": "create the queue, or fix [queue] name",
            "unauthorized": "check the connection string or the Entra ID login",
        }.get(error.kind, "check the queue URL and the network")
        return [Check("queue", "fail", error.message, fix)]
    import humanize

    count = f"{humanize.intcomma(depth)} message{'' if depth == 1 else 's'}"
    checks.append(Check("queue", "ok", f"queue {settings.queue_name} reachable; "
                        f"about {count}; mode {settings.queue_mode}"))
    if settings.queue_mode == "peek" and depth > PEEK_LIMIT:
        checks.append(Check("queue", "warn", f"{count}: a peek sees only the first "
                            f"{PEEK_LIMIT}, newer events stay invisible",
                            "give aumwatch its own queue and set queue.mode = \"consume\", or "
                            "lower the message time-to-live"))
    if settings.queue_mode == "consume":
        checks.append(Check("queue", "warn", "consume mode deletes messages after journaling "
                            "them", "use it only on a queue no other handler reads"))
    return checks


def runs_soon(configs: Sequence[Configuration], now: datetime,
              horizon: timedelta = WIRING_HORIZON) -> list[tuple[Configuration, datetime]]:
    """Configurations with a run going on or starting within ``horizon``, with that start."""
    out = []
    for config in configs:
        soon = next((start for start, end in config.next_occurrences
                     if end > now and start <= now + horizon), None)
        if soon is not None:
            out.append((config, soon))
    return out


def wiring_fix(wiring: Wiring, watched: QueueTarget | None) -> str:
    """The exact fix for a wiring that is not ``ok`` (commands to run, or what to check)."""
    import shlex

    setup = f"aumwatch setup events --configuration {shlex.quote(wiring.configuration_name)}"
    topic = wiring.topic.name if wiring.topic else "the system topic"
    if wiring.verdict is Verdict.MISSING:
        return f"run `{setup}` (creates the system topic and the subscription to the queue)"
    if wiring.verdict is Verdict.PARTIAL:
        return f"run `{setup} --types pre,post` (adds the missing event type)"
    if wiring.verdict is Verdict.OTHER_ENDPOINT:
        queue = f" --queue {shlex.quote(watched.queue_name)}" if watched else ""
        return (f"run `{setup}{queue}` to subscribe the queue aumwatch watches, or point "
                "[queue] at the queue the events go to")
    if wiring.verdict is Verdict.DISABLED:
        # setup events re-provisions a failed or expired subscription to the watched queue
        # in place (keeping its settings), or adds one: nothing needs deleting first.
        return (f"run `{setup}` (re-provisions the failed or expired subscription to the "
                "queue, clears a subject filter that never matches, or adds one)")
    if wiring.verdict is Verdict.FAILING:
        metrics = (f"see the topic's metrics {', '.join(HEALTH_METRICS[2:])} in Azure Monitor "
                   "(split by EventSubscriptionName)")
        queue_fix = ("check that the queue exists and, for a subscription delivering with "
                     f"{topic}'s managed identity, that the identity has Storage Queue Data "
                     "Message Sender on the storage account")
        # Counts over the whole topic (Azure Monitor did not split them per subscription): a
        # broken endpoint of another subscription fails it too. Split counts are the queue's.
        per_subscription = wiring.health is not None and wiring.health.by_subscription is not None
        others = sorted(s.name for s in wiring.subscriptions if not s.reaches(watched))
        if others and not per_subscription:
            return (f"the counts include the topic's other subscription"
                    f"{'s' if len(others) != 1 else ''} {', '.join(others)}: check "
                    f"{'their endpoints' if len(others) != 1 else 'its endpoint'} first; "
                    f"else {queue_fix}; {metrics}")
        return f"{queue_fix}; {metrics}"
    return f"run `{setup}`"


def check_wiring(soon: Sequence[tuple[Configuration, datetime]], wirings: Any,
                 watched: QueueTarget | None) -> list[Check]:
    """A warning per configuration running soon whose wiring is not ``ok``.

    ``wirings`` is a :class:`services.domain.boundary.WiringSnapshot`."""
    if not soon:
        return [Check("event wiring", "skip", "no configuration runs in the next 24 h")]
    if wirings.error:
        return [Check("event wiring", "warn", wirings.error,
                      "the identity needs Reader on the subscriptions holding the system "
                      "topics; retry with `aumwatch subscriptions`")]
    checks: list[Check] = []
    where = (f"queue {watched.queue_name} of {watched.account_name}" if watched
             else "a Storage Queue (no [queue] configured)")
    for config, start in soon:
        wiring = wirings.get(config.id)
        if wiring is None:
            continue
        when = start.strftime("%Y-%m-%d %H:%MZ")
        if wiring.verdict is not Verdict.OK:
            checks.append(Check(f"event wiring {config.name}", "warn",
                                f"{wiring.symbol} {wiring.verdict}: {wiring.reason}; next run "
                                f"{when}", wiring_fix(wiring, watched)))
        elif wiring.error:
            checks.append(Check(f"event wiring {config.name}", "warn",
                                f"ok from what could be read, but {wiring.error}",
                                "check the identity's Reader role on the system topic"))
    if not checks:
        checks.append(Check("event wiring", "ok", f"{len(soon)} configuration(s) running in "
                            f"the next 24 h deliver pre and post events to {where}"))
    return checks


async def run_doctor(settings: Settings, *, clock: Clock | None = None) -> list[Check]:
    """Run every check; never raises for a failed check (it becomes a ``fail`` finding).
    With ``[[tenants]]`` profiles (issue 19), each profile is checked on its own
    (credential, Resource Graph, queue, ...), its findings named ``check:profile``."""
    clock = clock or SystemClock()
    checks = check_settings(settings)
    if not settings.profiles:
        return checks + await _doctor_profile(settings, clock)
    import asyncio

    profiles = settings.tenant_profiles()
    found = await asyncio.gather(*(_doctor_profile(p.settings, clock) for p in profiles))
    for profile, own in zip(profiles, found, strict=True):
        checks.extend(dataclasses.replace(c, name=f"{c.name}:{profile.name}") for c in own)
    return checks


async def _doctor_profile(settings: Settings, clock: Clock) -> list[Check]:
    """The checks of one tenant (the settings' credential, scope and queue)."""
    from services.azure.clients import make_async_credential
    from services.azure.resourcegraph import QueryRunner
    from services.azure.sources import ConfigSource

    checks: list[Check] = []
    try:
        credential = make_async_credential(settings)
    except ServiceError as exc:
        checks.append(Check("credentials", "fail", exc.message, "fix the settings"))
        return checks
    try:
        credential_check = await check_credentials(settings, credential)
        checks.append(credential_check)
        configs: Sequence[Configuration] = ()
        skew: timedelta | None = None
        wiring_checks: list[Check] = []
        if credential_check.status == "ok":
            runner = QueryRunner.from_settings(settings, clock=clock, credential=credential)
            try:
                fetched = await ConfigSource(runner).fetch()
            except ServiceError as exc:
                fix = {
                    "forbidden": "grant Reader on the subscriptions / management groups",
                    "unauthorized": "sign in again (az login)",
                    "network": "check the network / ARM endpoint",
                }.get(exc.kind, "retry later")
                checks.append(Check("resource graph", "fail", exc.message, fix))
                skew = runner.skew
            else:
                configs, skew = fetched.items, fetched.skew
                checks.append(Check("resource graph", "ok",
                                    f"query answered ({fetched.requests} request(s))"))
                if configs:
                    checks.append(Check("configurations", "ok",
                                        f"{len(configs)} maintenance configuration(s) visible"))
                else:
                    checks.append(Check("configurations", "warn",
                                        "no maintenance configurations visible",
                                        "check the scope (subscriptions) and the Reader role"))
                wiring_checks = await _wiring_checks(settings, runner, credential, configs,
                                                     clock)
                wiring_checks.extend(await _preflight_checks(settings, runner, configs, clock))
            finally:
                await runner.close()
            replay_of = (await standin_replay_of(settings)
                         if settings.cloud == "standin" and skew is not None
                         and skew_is_large(skew) else None)
            checks.append(check_skew(skew, replay_of=replay_of))
        checks.extend(await check_queue(settings, credential))
        now = clock.now()
        for config in configs:
            checks.extend(lint_configuration(config, now))
        checks.extend(wiring_checks)
    finally:
        close = getattr(credential, "close", None)
        if close is not None:
            await close()
    return checks


async def standin_replay_of(settings: Settings) -> datetime | None:
    """When ``settings`` name the stand-in and it replays a capture: the capture's moment
    (its admin ``GET /_sim/clock``). None otherwise, or when it cannot be asked."""
    if settings.cloud != "standin" or not settings.arm_endpoint:
        return None
    import asyncio
    import json
    import ssl
    import urllib.request

    from services.domain.events import parse_event_time

    def ask() -> Any:
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None)
        request = urllib.request.Request(
            f"{str(settings.arm_endpoint).rstrip('/')}/_sim/clock",
            headers={"Authorization": f"Bearer {settings.token or ''}"})
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return json.loads(response.read().decode("utf-8"))

    try:
        body = await asyncio.to_thread(ask)
        text = body.get("replay_of") if isinstance(body, dict) else None
        return parse_event_time(text) if isinstance(text, str) and text else None
    except (OSError, ValueError):
        return None


async def _wiring_checks(settings: Settings, runner: Any, credential: Any,
                         configs: Sequence[Configuration], clock: Clock) -> list[Check]:
    """Read the wiring of the configurations running in the next 24 h (none: no request)."""
    from services.azure.eventgrid import WiringSource, watched_queue
    from services.domain.configs import configurations_in_view

    soon = runs_soon(configurations_in_view(configs, settings.include_other_scopes),
                     clock.now())
    watched = watched_queue(settings)
    if not soon:
        return check_wiring(soon, None, watched)
    source = WiringSource.from_settings(settings, runner, credential, clock=clock)
    snapshot = await source.fetch([config for config, _ in soon])
    return check_wiring(soon, snapshot, watched)


def check_preflight(items: Sequence[Any], now: datetime,
                    horizon: timedelta = WIRING_HORIZON) -> list[Check]:
    """A warning per configuration with a run in the next 24 h and machines at risk
    (``items``: :class:`services.domain.preflight.Preflight`)."""
    checks = []
    for item in items:
        if item.at_risk == 0 or item.run_start > now + horizon:
            continue
        codes = ", ".join(f"{code} {n}" for code, n in item.by_code().items())
        when = item.run_start.strftime("%Y-%m-%d %H:%MZ")
        checks.append(Check(
            f"pre-flight {item.configuration_name}", "warn",
            f"{item.configuration_name}: {item.at_risk} of {len(item.machines)} machine(s) "
            f"at risk for the run at {when} ({codes})",
            "see `aumwatch preflight --configuration "
            f"{item.configuration_name}` for each machine's fix"))
    return checks


async def _preflight_checks(settings: Settings, runner: Any, configs: Sequence[Configuration],
                            clock: Clock) -> list[Check]:
    """Pre-flight of the configurations running in the next 24 h (none: no request)."""
    from services.azure.preflight import PreflightSource

    if not runs_soon(configs, clock.now()):
        return []
    source = PreflightSource(runner, rules=settings.fit_rules, clock=clock,
                             include_other_scopes=settings.include_other_scopes)
    snapshot = await source.read()
    if snapshot.error:
        return [Check("pre-flight", "warn", snapshot.error,
                      "retry with `aumwatch preflight`")]
    return check_preflight(snapshot.items, clock.now())
