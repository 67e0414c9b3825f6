"""Data commands: ``configs``, ``runs``, ``machines``, ``config show``, ``doctor``.

Each prints a table, or with ``--json`` a JSON array whose objects carry the keys of the CLI
contract (times UTC ISO 8601 with ``Z``). Errors are one line (exit 1); ``--debug`` shows the
traceback. Azure SDKs and services are imported inside the handlers so ``--help`` stays fast.

:func:`add_settings_flags` and :func:`settings_from_args` are shared with other commands that
need settings (``cancel``, ``events tail``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

from tui.cli import CliError, add_common

# The output and tenant helpers have modules of their own; the commands import them from here
# too (the names of __all__).
from tui.cli.output import (
    clean,
    fit_widths,
    print_json,
    print_table,
    safe_json,
    shorten_middle,
    terminal_columns,
)
from tui.cli.profiles import one_profile, tenant_cells, tenant_header, tenants_failed

__all__ = ["clean", "fit_widths", "one_profile", "print_json", "print_table", "safe_json",
           "shorten_middle", "tenant_cells", "tenant_header", "tenants_failed",
           "terminal_columns"]


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """Flags that override settings (secrets are deliberately absent: env or file only)."""
    group = parser.add_argument_group("scope and connection")
    group.add_argument("--subscription", action="append", dest="subscriptions",
                       metavar="ID", help="subscription to cover (repeatable; default: all "
                       "visible)")
    group.add_argument("--management-group", action="append", dest="management_groups",
                       metavar="ID", help="management group to cover (repeatable)")
    group.add_argument("--tenant", metavar="NAME",
                       help="with [[tenants]] profiles: only this profile (its name or "
                       "tenant id); without: the Entra ID tenant to sign in to")
    group.add_argument("--cloud", choices=("public", "china", "usgov", "standin"),
                       help="Azure cloud (default public)")


def settings_from_args(args: argparse.Namespace, **extra: Any) -> Any:
    """Settings from ``--config`` and the flags in ``args`` (plus ``extra`` flag values)."""
    from services.settings import SettingsError, load_settings

    flags = {
        "subscriptions": getattr(args, "subscriptions", None),
        "management_groups": getattr(args, "management_groups", None),
        "tenant": getattr(args, "tenant", None),
        "cloud": getattr(args, "cloud", None),
        "read_only": True if getattr(args, "read_only", False) else None,
        **extra,
    }
    try:
        settings = load_settings(flags, config_path=getattr(args, "config", None))
    except SettingsError as exc:
        raise CliError(str(exc)) from exc
    for warning in settings.warnings:
        print(f"aumwatch: warning: {warning}", file=sys.stderr)
    return settings


def _run(coro_factory: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine; a ServiceError becomes a one-line CliError."""
    import asyncio

    from services.domain.errors import ServiceError

    try:
        return asyncio.run(coro_factory())
    except ServiceError as exc:
        raise CliError(str(exc)) from exc


@contextlib.asynccontextmanager
async def signed_in(settings: Any, **runner_options: Any) -> AsyncIterator[tuple[Any, Any]]:
    """The settings' Azure credential and a Resource Graph query runner made with it
    (``runner_options`` go to ``QueryRunner.from_settings``); both closed on the way out."""
    from services.azure.clients import make_async_credential
    from services.azure.resourcegraph import QueryRunner

    credential = make_async_credential(settings)
    try:
        async with QueryRunner.from_settings(settings, credential=credential,
                                             **runner_options) as runner:
            yield credential, runner
    finally:
        await credential.close()


def _utc(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") + "Z" if value is not None else "-"


def _clock() -> Any:
    """The command's clock; the query runner corrects it by the server's ``Date`` skew."""
    from services.domain.clock import SystemClock

    return SystemClock()


# --- configs ---------------------------------------------------------------------------------


def _scope_flags(args: argparse.Namespace) -> dict[str, Any]:
    return {"include_other_scopes": True if getattr(args, "all_scopes", False) else None}


def run_configs(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, **_scope_flags(args))
    clock = _clock()

    async def fetch() -> Any:
        from services.azure.sources import ConfigSource
        from services.azure.tenants import configuration_key, each_profile, merge_fetched

        async def read(profile: Any, runner: Any) -> Any:
            return await ConfigSource(runner).fetch()

        results = await each_profile(settings, read, clock=clock,
                                     what="configurations query")
        return merge_fetched(results, configuration_key, clock=clock)

    fetched = _run(fetch)
    from services.domain.configs import configurations_in_view, next_run_phase
    from services.domain.schedule import ScheduleError, resolve_zone

    now = clock.now()
    rules = settings.window_rules
    shown = configurations_in_view(fetched.items, settings.include_other_scopes)
    items = []
    for config in shown:
        next_phase = next_run_phase(config, now, rules)
        items.append((config, str(next_phase) if next_phase else None))
    if args.json:
        print_json([c.to_json(phase=p) for c, p in items])
        return tenants_failed(fetched.failed)
    rows = []
    for config, phase_text in items:
        local = "-"
        if config.next_start is not None:
            try:
                zone = resolve_zone(config.time_zone)
                local = config.next_start.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
            except ScheduleError:
                local = "?"
        rows.append((*tenant_cells(settings, config), config.name, config.resource_group,
                     config.subscription_id, config.scope,
                     config.recur_every or "-", config.time_zone or "-",
                     _utc(config.next_start), local,
                     phase_text or ("schedule error" if config.schedule_error else "-")))
    print_table((*tenant_header(settings), "NAME", "RESOURCE GROUP", "SUBSCRIPTION", "SCOPE",
                 "RECURRENCE", "ZONE", "NEXT START (UTC)", "NEXT START (ZONE)", "PHASE"), rows)
    for config in shown:
        if config.schedule_error:
            print(f"aumwatch: {clean(config.name)}: {clean(config.schedule_error)}",
                  file=sys.stderr)
    return tenants_failed(fetched.failed)


# --- runs ------------------------------------------------------------------------------------


#: How many of the watched queue's journaled events ``runs`` reads back (the newest).
JOURNAL_EVENTS = 10_000


def journal_facts(settings: Any) -> tuple[dict[str, Any], list[Any]]:
    """What this machine's journal knows of runs: the verified cancels (run key -> when and
    who) and the runs its journaled pre/post events describe.

    Resource Graph lags behind a cancel by seconds to minutes; without these, ``aumwatch
    runs`` right after ``aumwatch cancel`` would show the run as it was, and would not say
    who sent the cancel or which events came. A journal that does not exist yet is no error;
    one that cannot be read is a warning, not a failure.
    """
    from services.azure.journal import Journal, JournalError
    from services.azure.report import event_fact
    from services.domain.runs import run_from_event

    path = settings.journal_path
    if not path.exists():
        return {}, []
    try:
        with Journal(path) as journal:
            # Only this world's and this queue's (issue 22): a stand-in world's run ids repeat
            # in the next, and a queue of the same name on another account is another queue.
            cancels = journal.verified_cancels(settings.world)
            identity = settings.queue_identity
            rows = journal.queue_events(identity, limit=JOURNAL_EVENTS) if identity else []
            events = [run for row in rows if row.correlation_id
                      and (run := run_from_event(event_fact(row))) is not None]
            return cancels, events
    except JournalError as exc:
        print(f"aumwatch: warning: the journal's cancels and events not applied: {clean(exc)}",
              file=sys.stderr)
        return {}, []


def merged_runs(configs: Sequence[Any], observed: Sequence[Any], cancelled: dict[str, Any],
                events: Sequence[Any] = (), *,
                include_other_scopes: bool = False) -> tuple[Any, ...]:
    """What ``runs`` lists: Resource Graph's runs, the schedules' expected runs, the runs the
    journaled events describe and the verified cancels merged by the one merge rule
    (:func:`services.domain.runs.merge_runs`), with each configuration's name and scope, in
    the maintenance scopes asked for."""
    from services.domain.runs import expected_runs, merge_runs, runs_in_view, with_configurations

    merged = merge_runs(observed, expected_runs(configs), events, cancelled=cancelled)
    return runs_in_view(with_configurations(merged, configs), include_other_scopes)


def runs_to_show(runs: Sequence[Any], *, every: bool = False) -> list[Any]:
    """What ``runs`` prints: every observed run and, of the runs only the schedules give, the
    next one of each configuration (``every``: all of them). The order is kept."""
    if every:
        return list(runs)
    first: dict[str, Any] = {}
    for run in runs:
        if run.expected:
            key = run.configuration_id.lower()
            if key not in first or run.start < first[key].start:
                first[key] = run
    kept = {id(run) for run in first.values()}
    return [run for run in runs if not run.expected or id(run) in kept]


def run_runs(args: argparse.Namespace) -> int:
    from services.settings import SettingsError, parse_duration

    try:
        since = parse_duration(args.since, default_unit="d", what="--since")
    except SettingsError as exc:
        raise CliError(str(exc)) from exc
    settings = settings_from_args(args, **_scope_flags(args))
    clock = _clock()

    async def fetch() -> Any:
        from services.azure.sources import ConfigSource, RunSource
        from services.azure.tenants import (
            ProfileResult,
            configuration_key,
            each_profile,
            merge_fetched,
            run_key,
        )

        async def read(profile: Any, runner: Any) -> Any:
            return (await ConfigSource(runner).fetch(),
                    await RunSource(runner).fetch_observed(since))

        results = await each_profile(settings, read, clock=clock, what="runs query")
        configs = merge_fetched([ProfileResult(r.profile, r.value and r.value[0], r.error)
                                 for r in results], configuration_key, clock=clock)
        observed = merge_fetched([ProfileResult(r.profile, r.value and r.value[1], r.error)
                                  for r in results], run_key, clock=clock)
        return configs.items, observed

    configs, observed = _run(fetch)
    cancels, events = journal_facts(settings)
    # The journal's events name runs of any age: only those the asked period covers.
    oldest = clock.now() - since
    events = [e for e in events if e.start >= oldest]
    runs = list(merged_runs(configs, observed.items, cancels, events,
                            include_other_scopes=settings.include_other_scopes))
    if args.configuration:
        from services.domain.configs import find_configurations

        wanted = {c.id.lower() for c in find_configurations(configs, args.configuration)}
        name = args.configuration.strip().lower()
        runs = [r for r in runs if r.configuration_id.lower() in wanted
                or r.configuration_name.lower() == name]
        if not runs and not wanted:
            raise CliError(f"no configuration named {args.configuration!r} is visible")
    from services.domain.runs import run_phase

    shown = runs_to_show(runs, every=args.all)
    hidden = len(runs) - len(shown)
    now = clock.now()
    rules = settings.window_rules
    phased = [(r, str(run_phase(r, now, rules))) for r in shown]
    if args.json:
        print_json([r.to_json(phase=p) for r, p in phased])
        return tenants_failed(observed.failed)
    rows = []
    for run, phase in phased:
        machines = "-"
        if run.machines_total is not None:
            machines = (f"{run.machines_succeeded or 0} ok / {run.machines_failed or 0} failed"
                        f" / {run.machines_total}")
        status = run.status + (" (expected)" if run.expected else "")
        # The run facts of `--json` (services/domain/runfacts.py): the real end once the run
        # ended (else the scheduled one, marked), who cancelled it and who sent the cancel.
        end = _utc(run.ended_at) if run.finished else (
            f"{_utc(run.end)} (sched.)" if run.end is not None else "-")
        cancelled = run.cancelled_by or "-"
        if run.cancel_initiator:
            cancelled += f" ({run.cancel_initiator})"
        rows.append((*tenant_cells(settings, run), run.configuration_name, run.run_name,
                     status, _utc(run.start), end, phase, machines, cancelled))
    print_table((*tenant_header(settings), "CONFIGURATION", "RUN", "STATUS", "START (UTC)",
                 "END (UTC)", "PHASE", "MACHINES", "CANCELLED BY"), rows)
    if hidden:
        print(f"aumwatch: {hidden} later expected run(s) not shown (--all shows them)",
              file=sys.stderr)
    return tenants_failed(observed.failed)


# --- machines --------------------------------------------------------------------------------


def run_machines(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)

    async def fetch() -> Any:
        from services.azure.sources import MachineSource
        from services.azure.tenants import each_profile, merge_fetched
        from tui.cli.runref import resolve_in_tenants

        # CONFIGNAME/yyyyMMddHHmmss or a correlation id: the one resolver (issue 20), asked
        # in every tenant first, so a tenant without that configuration is not "failed".
        correlation_id = await resolve_in_tenants(settings, args.run_id)

        async def read(profile: Any, runner: Any) -> Any:
            return await MachineSource(runner).fetch(correlation_id)

        results = await each_profile(settings, read, what="machines query")
        return merge_fetched(results, lambda m: m.resource_id.lower())

    fetched = _run(fetch)
    if args.json:
        print_json([m.to_json() for m in fetched.items])
        return tenants_failed(fetched.failed)
    rows = [(m.name, m.status, m.installed, m.failed, m.pending, m.reboot,
             {True: "yes", False: "no"}.get(m.window_exceeded) if m.window_exceeded is not None
             else None, m.error) for m in fetched.items]
    print_table(("NAME", "STATUS", "INSTALLED", "FAILED", "PENDING", "REBOOT",
                 "WINDOW EXCEEDED", "ERROR"), rows)
    if not fetched.items:
        print("aumwatch: no machines recorded for this run (yet)", file=sys.stderr)
    return tenants_failed(fetched.failed)


# --- config show -----------------------------------------------------------------------------


def run_config_show(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.json:
        print_json(settings.to_json())
        return 0
    print_table(("SETTING", "VALUE", "SOURCE"), settings.display_items(),
                width=None if args.wide else terminal_columns(), shrink=(1,))
    return 0


# --- doctor ----------------------------------------------------------------------------------

_MARKS = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


def run_doctor_command(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)

    async def check() -> Any:
        from services.azure.doctor import run_doctor

        return await run_doctor(settings)

    checks = _run(check)
    if args.json:
        print_json([c.to_json() for c in checks])
    else:
        for c in checks:
            print(f"[{_MARKS[c.status]}] {clean(c.name)}: {clean(c.detail)}")
            if c.fix and c.status in ("warn", "fail"):
                print(f"       fix: {clean(c.fix)}")
        failed = sum(c.status == "fail" for c in checks)
        warned = sum(c.status == "warn" for c in checks)
        print(f"{failed} problem(s), {warned} warning(s)")
    return 1 if any(c.status == "fail" for c in checks) else 0


# --- registration ----------------------------------------------------------------------------


def add_wide_flag(parser: argparse.ArgumentParser) -> None:
    """``--wide``: print the table whole instead of fitting it to the terminal."""
    parser.add_argument("--wide", action="store_true",
                        help="print every value whole (default: the table fits the "
                        "terminal, long ids shortened in the middle)")


def _add_scope_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--all-scopes", action="store_true",
                        help="also list other maintenance scopes (Host, OSImage, Extension, "
                        "...); default: guest patching (InGuestPatch) only, or the "
                        "include_other_scopes setting")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    configs = subparsers.add_parser("configs", help="list maintenance configurations",
                                    description="Maintenance configurations in scope, with "
                                    "the next start (UTC and the configuration's zone) and "
                                    "the phase of the next run.")
    add_common(configs)
    add_settings_flags(configs)
    _add_scope_flag(configs)
    configs.set_defaults(func=run_configs)

    runs = subparsers.add_parser("runs", help="list recent and upcoming runs",
                                 description="Runs observed in Resource Graph, and the next "
                                 "run each configuration's schedule says is coming "
                                 "(expected); --all lists every expected run.")
    add_common(runs)
    add_settings_flags(runs)
    runs.add_argument("--configuration", metavar="NAME", help="only this configuration")
    runs.add_argument("--since", default="7d", metavar="AGE",
                      help="runs that started within AGE (e.g. 12h, 7d; at most 30d)")
    runs.add_argument("--all", action="store_true",
                      help="also every later expected run (default: the observed runs and "
                      "the next expected run of each configuration)")
    _add_scope_flag(runs)
    runs.set_defaults(func=run_runs)

    machines = subparsers.add_parser("machines", help="machines of one run",
                                     description="Each machine's part in one run: status, "
                                     "patch counts, reboot, window exceeded, first error.")
    add_common(machines)
    add_settings_flags(machines)
    machines.add_argument("run_id", metavar="RUN_ID", help="the run's correlation id, or "
                          "CONFIGNAME/yyyyMMddHHmmss (its UTC start)")
    machines.set_defaults(func=run_machines)

    config = subparsers.add_parser("config", help="show the settings",
                                   description="Settings and where each value came from.")
    add_common(config, json_flag=False)
    config_sub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    config_sub.required = True
    show = config_sub.add_parser("show", help="print every setting with its source "
                                 "(secrets masked)")
    add_common(show)
    add_settings_flags(show)
    add_wide_flag(show)
    show.set_defaults(func=run_config_show)

    doctor = subparsers.add_parser("doctor", help="check the setup and say what to fix",
                                   description="Checks credentials, Resource Graph access, "
                                   "visible configurations, the queue, clock skew, and lints "
                                   "schedules.")
    add_common(doctor)
    add_settings_flags(doctor)
    doctor.set_defaults(func=run_doctor_command)
