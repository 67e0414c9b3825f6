"""``aumwatch preflight``: who each configuration's current or next run will patch, and what
will go wrong (issue 18).

``--json`` prints a JSON array, one object per configuration that has a current or next run
(the current one from T-40 until it ends), with the keys of issue 18's contract
(:meth:`services.domain.preflight.Preflight.to_json`); without it, a table of the machines at
risk per configuration with each risk's fix. Strings from Azure go through the data commands'
safe writers. Exit status 0; 1 with one line on stderr on an error (or when
``--configuration`` matches nothing).
"""

from __future__ import annotations

import argparse
from typing import Any

from tui.cli import CliError, add_common
from tui.cli.data import (
    _add_scope_flag,
    _clock,
    _run,
    _scope_flags,
    add_settings_flags,
    clean,
    print_json,
    settings_from_args,
    tenants_failed,
)


def run_preflight(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, **_scope_flags(args))
    clock = _clock()

    async def fetch() -> Any:
        from services.azure.preflight import PreflightSource
        from services.azure.tenants import each_profile

        async def read(profile: Any, runner: Any) -> Any:
            source = PreflightSource(runner, rules=settings.fit_rules, clock=clock,
                                     include_other_scopes=settings.include_other_scopes
                                     or bool(args.configuration))
            return await source.fetch()

        # Issue 19: one read per profile, each with its credential.
        return await each_profile(settings, read, clock=clock, what="pre-flight read")

    results = _run(fetch)
    failed = {r.profile.label: r.error or "failed" for r in results if r.value is None}
    tenant_of: dict[int, Any] = {}
    items = []
    for result in results:
        for item in (result.value.items if result.value is not None else ()):
            tenant_of[id(item)] = result.profile
            items.append(item)
    if args.configuration:
        wanted = args.configuration.strip().lower()
        items = [p for p in items if wanted in (p.configuration_name.lower(),
                                                p.configuration_id.lower())]
        if not items:
            raise CliError(f"no configuration named {args.configuration!r} has a current or "
                           "next run")
    if args.json:
        print_json([{**p.to_json(), "tenant": tenant_of[id(p)].name or None,
                     "tenant_id": tenant_of[id(p)].tenant} for p in items])
        return tenants_failed(failed)
    for item in items:
        state = "frozen" if item.frozen else f"freezes {item.freeze_at:%Y-%m-%d %H:%MZ}"
        print(f"{clean(item.configuration_name)}: run {item.run_start:%Y-%m-%d %H:%MZ} "
              f"({item.window_minutes} min, {state}): {item.summary_text()}")
        for machine in item.machines:
            for risk in machine.risks:
                print(f"  {clean(machine.name)} [{risk.code}] {clean(risk.message)}")
                print(f"      fix: {clean(risk.fix)}")
                if risk.code == "window-fit" and machine.estimate is not None:
                    print(f"      estimate: {machine.estimate.minutes} min for "
                          f"{machine.pending_updates} update(s), {machine.estimate.source}")
        if item.actual is not None:
            print(f"  in the run: {len(item.actual.missing)} predicted machine(s) missing, "
                  f"{len(item.actual.unexpected)} not predicted")
            for machine_id in item.actual.missing:
                print(f"    missing: {clean(machine_id)}")
            for machine_id in item.actual.unexpected:
                print(f"    not predicted: {clean(machine_id)}")
    return tenants_failed(failed)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "preflight", help="who each run will patch, and what will go wrong",
        description="For each configuration's current or next run: the machines it will "
        "patch (static assignments and dynamic scopes), the risks of each (powered-off, "
        "arc-disconnected, orchestration, extension, new-vm, no-assessment, stale-assessment, "
        "reboot-pending, window-fit, conflict, deleted) with the fix, and once the run exists "
        "which predicted machines it left out.",
        epilog="Exit status: 0 read; 1 the read failed or --configuration matched nothing.")
    add_common(parser)
    add_settings_flags(parser)
    parser.add_argument("--configuration", metavar="NAME",
                        help="only this configuration (name, case-insensitive, or full id)")
    _add_scope_flag(parser)
    parser.set_defaults(func=run_preflight)
