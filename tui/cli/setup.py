"""``aumwatch setup events``: create what is missing so a configuration's pre/post events reach
the watched queue (an Event Grid system topic, an event subscription into the queue delivered
with the topic's identity, and that identity's "Storage Queue Data Message Sender" role).

``--dry-run`` prints the plan, the equivalent ``az`` commands and a Bicep snippet, and changes
nothing. Otherwise the plan is shown and confirmed (or ``--yes``), refused in read-only mode,
each change audited in the journal, and the event subscription read back: exit 0 only once it
reads ``Succeeded`` (or when everything was set up already).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tui.cli import CliError, add_common

EXIT_CODES = """exit status:
  0  set up (the event subscription reads back Succeeded), already set up, or --dry-run
  1  nothing was changed (refused: read-only, not confirmed, no terminal without --yes, the
     queue does not exist, no audit journal), or a change failed; one line on stderr says why
  2  wrong usage
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from tui.cli.data import add_settings_flags

    setup = subparsers.add_parser(
        "setup", help="set up Azure for aumwatch (Event Grid wiring of events)",
        description="Set up what aumwatch needs in Azure.")
    add_common(setup, json_flag=False)
    commands = setup.add_subparsers(dest="setup_command", metavar="WHAT", required=True)
    events = commands.add_parser(
        "events",
        help="wire a configuration's pre/post events to the watched queue",
        description="Create what is missing so that a configuration's pre/post maintenance\n"
        "events reach a Storage Queue: the Event Grid system topic (with a system-assigned\n"
        "identity), an event subscription into the queue delivered with that identity, and\n"
        "the identity's 'Storage Queue Data Message Sender' role on the storage account.\n"
        "What exists and is right is left alone. Defaults: the watched queue (settings\n"
        "[queue]), both event types, any schema (a new subscription gets the Event Grid one).",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common(events, json_flag=False)
    add_settings_flags(events)
    events.add_argument("--configuration", required=True, metavar="NAME",
                        help="the maintenance configuration's name (case-insensitive) or id")
    events.add_argument("--queue-account", metavar="RESOURCE_ID",
                        help="the storage account's resource id (default: the watched "
                        "queue's account, found in Resource Graph)")
    events.add_argument("--queue", metavar="NAME",
                        help="the queue's name (default: the watched queue)")
    events.add_argument("--types", metavar="pre,post", default=None,
                        help="event types to deliver (default pre,post)")
    events.add_argument("--schema", choices=("eventgrid", "cloudevents"), default=None,
                        help="delivery schema (default: an existing subscription keeps its own, "
                        "a new one gets eventgrid; aumwatch reads both)")
    events.add_argument("--dry-run", action="store_true",
                        help="print the plan, az commands and Bicep; change nothing")
    events.add_argument("--yes", "-y", action="store_true",
                        help="do not ask for confirmation")
    events.add_argument("--read-only", action="store_true",
                        help="refuse to change anything (as the read-only setting does)")
    events.set_defaults(func=run_setup_events)


def run_setup_events(args: argparse.Namespace) -> int:
    """Handler of ``aumwatch setup events``."""
    import asyncio

    from services.domain.errors import ServiceError, service_error
    from services.domain.wiring_setup import SetupError, parse_schema, parse_types
    from tui.cli.data import one_profile, settings_from_args

    try:
        types = parse_types(args.types)
        schema = parse_schema(args.schema)
    except SetupError as exc:
        raise CliError(str(exc)) from None
    settings = one_profile(settings_from_args(args), "setup events")
    try:
        return asyncio.run(_setup(args, settings, types, schema))
    except (CliError, KeyboardInterrupt):
        raise
    except (SetupError, ServiceError) as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:  # one line, never a traceback, unless --debug
        if getattr(args, "debug", False):
            raise
        raise CliError(service_error(exc, what="setup events").message) from None


async def _setup(args: argparse.Namespace, settings: Any, types: tuple[str, ...],
                 schema: str | None) -> int:
    from tui.cli.data import signed_in

    async with signed_in(settings, correct_clock=False) as (credential, runner):
        return await _setup_with(args, settings, types, schema, credential, runner)


async def _setup_with(args: argparse.Namespace, settings: Any, types: tuple[str, ...],
                      schema: str | None, credential: Any, runner: Any) -> int:
    from services.azure.clients import async_eventgrid_client
    from services.azure.setup import (
        EventSetup,
        find_account_id,
        resolve_configuration,
        settings_queue_check,
    )
    from services.domain.clock import SystemClock
    from services.domain.wiring import queue_account_name
    from services.domain.wiring_setup import (
        SetupRequest,
        check_account_id,
        delivery_advice,
        plan_setup,
    )

    config = await resolve_configuration(runner, args.configuration)
    queue_name = args.queue or settings.queue_name
    if not queue_name:
        raise CliError("no queue: pass --queue or set [queue] name in the config file")
    if args.queue_account:
        account_id = check_account_id(args.queue_account)
    else:
        account = queue_account_name(settings.queue_connection_string,
                                     settings.queue_account_url)
        if not account:
            raise CliError("no storage account: pass --queue-account RESOURCE_ID or set "
                           "[queue] account_url (or a connection string)")
        account_id = await find_account_id(runner, account)
    request = SetupRequest(configuration_id=config.id, configuration_name=config.name,
                           location=config.location, queue_account_id=account_id,
                           queue_name=queue_name, types=types, schema=schema)
    clock = SystemClock()
    client = async_eventgrid_client(settings, credential, request.subscription_id)
    async with client:
        setup = EventSetup(client, runner, clock=clock,
                           queue_check=settings_queue_check(settings, credential))
        current = await setup.read_current(request)
        plan = plan_setup(request, current, clock.now())
        _print_plan(plan)
        # Right as set up, yet deliveries fail: say what the operator should check, since
        # no change of the wiring would help.
        advice = delivery_advice(request, current, clock.now()) if plan.up_to_date else None
        if args.dry_run:
            _print_equivalents(plan)
            _print_advice(advice)
            return 0
        if plan.up_to_date:
            print("already set up: nothing to change")
            _print_advice(advice)
            return 0
        if plan.blockers:
            raise CliError("; ".join(plan.blockers) + "; nothing was changed")
        return await _apply(args, settings, plan, setup, credential)


async def _apply(args: argparse.Namespace, settings: Any, plan: Any, setup: Any,
                 credential: Any) -> int:
    from services.azure.cancel import credential_identity
    from services.azure.clients import cloud_for
    from services.azure.journal import Journal, JournalError
    from tui.cli.data import clean

    try:
        journal = Journal(settings.journal_path)
    except JournalError as exc:
        raise CliError(f"refused: {exc}; a change is only made when it can be audited; "
                       "nothing was changed") from exc
    try:
        identity = await credential_identity(credential, cloud_for(settings).token_scope)
        if settings.read_only:
            _audit_refusal(journal, setup.clock, identity, plan, "read-only mode")
            raise CliError("refused: read-only mode (settings read_only or --read-only); "
                           "nothing was changed (use --dry-run to see the commands)")
        if not args.yes:
            _confirm(plan, journal, setup.clock, identity)
        setup.journal = journal
        setup.identity = identity
        result = await setup.apply(plan)
    finally:
        journal.close()
    for item in result.results:
        mark = "done" if item.outcome == "succeeded" else item.outcome.upper()
        print(f"  [{mark}] {clean(item.step.summary)}: {clean(item.message)}")
    if result.journal_error:
        print(f"aumwatch: warning: the audit journal could not be written: "
              f"{clean(result.journal_error)}", file=sys.stderr)
    if result.topic_location:
        print(f"system topic location (read back): {clean(result.topic_location)}")
    for item in result.results:
        if item.command:
            print("aumwatch: WARNING: the topic's identity has no role to send to the queue: "
                  "events will fail to deliver until this role assignment exists; ask someone "
                  "who may assign roles on the storage account to run:", file=sys.stderr)
            print(f"  {clean(item.command)}", file=sys.stderr)
    if result.ok:
        print(f"set up: event subscription {clean(plan.subscription_name)} of "
              f"{clean(plan.request.configuration_name)} reads back "
              f"{clean(result.subscription_state)}")
        # Read back through Resource Manager; `subscriptions` and the dashboard find system
        # topics in Resource Graph, which lags behind it (docs/azure.md).
        from services.domain.wiring_setup import Action

        if plan.step(Action.CREATE_TOPIC) is not None:
            print("note: Resource Graph shows a new system topic after a lag (seconds to a "
                  "few minutes): until then `aumwatch subscriptions` may still say missing")
        print("a running dashboard shows the change at its next wiring read ([events] "
              "wiring_refresh), or at once on ctrl+r")
        return 0
    reason = result.error or (f"event subscription {plan.subscription_name} reads back as "
                              f"{result.subscription_state or 'missing'}")
    raise CliError(f"not set up: {clean(reason)}")


def _audit_refusal(journal: Any, clock: Any, identity: str | None, plan: Any,
                   reason: str) -> None:
    from services.azure.journal import JournalError

    try:
        for step in plan.steps:
            journal.begin_change(attempted_at=clock.now(), identity=identity,
                                 action=str(step.action), target=step.target,
                                 detail=step.detail(), outcome="refused", reason=reason)
    except JournalError as exc:
        print(f"aumwatch: warning: the refusal could not be audited: {exc}", file=sys.stderr)


def _confirm(plan: Any, journal: Any, clock: Any, identity: str | None) -> None:
    if not sys.stdin.isatty():
        _audit_refusal(journal, clock, identity, plan, "not confirmed: no terminal, no --yes")
        raise CliError("refused: not a terminal, so the changes cannot be confirmed: pass --yes "
                       "to apply them; nothing was changed")
    print(f"Apply these {len(plan.steps)} change(s)? [y/N] ", end="", file=sys.stderr,
          flush=True)
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        _audit_refusal(journal, clock, identity, plan, "not confirmed")
        raise CliError("not confirmed: nothing was changed")


def _print_plan(plan: Any) -> None:
    from tui.cli.data import clean

    req = plan.request
    print(f"configuration: {clean(req.configuration_name)} ({clean(req.configuration_id)})")
    print(f"queue: {clean(req.queue_name)} in {clean(req.queue_account_id)}")
    schema = (f"the {req.schema} schema" if req.schema
              else f"any schema (a new subscription: {req.new_schema})")
    print(f"events: {', '.join(req.types)} in {schema}")
    for line in plan.satisfied:
        print(f"  [ok] {clean(line)}")
    for step in plan.steps:
        print(f"  [to do] {clean(step.summary)}")
    for line in plan.warnings:
        print(f"aumwatch: warning: {clean(line)}", file=sys.stderr)
    for line in plan.blockers:
        print(f"aumwatch: {clean(line)}", file=sys.stderr)


def _print_advice(advice: str | None) -> None:
    from tui.cli.data import clean

    if advice:
        print(f"but: {clean(advice)}")


def _print_equivalents(plan: Any) -> None:
    from services.domain.wiring_setup import az_commands, bicep
    from tui.cli.data import clean

    if plan.up_to_date:
        print("already set up: nothing to change (dry run)")
        return
    print("\n# Equivalent Azure CLI commands (dry run: nothing was changed)")
    for line in az_commands(plan):
        print(clean(line))
    print("\n// Equivalent Bicep (resource group of the system topic)")
    for line in bicep(plan).splitlines():
        print(clean(line))
