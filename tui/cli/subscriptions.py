"""``aumwatch subscriptions``: the Event Grid wiring of every configuration, and its verdict.

``--json`` prints a JSON array with the fixed keys of issue 11's contract (one object per
configuration: ``configuration_id``, ``configuration_name``, ``verdict``, ``system_topic``,
``subscriptions``, ``health``; see :meth:`services.domain.wiring.Wiring.to_json`); without it,
a table. Every string from Azure goes through the data commands' safe writers
(:func:`tui.cli.data.clean`, :func:`tui.cli.data.safe_json`): names are printed literally,
control characters escaped. A webhook endpoint is only ever its host (the path and query may
hold a key).

Exit status: 0 when everything was read; 1 when the read failed as a whole (one line on
stderr), when ``--configuration`` matches nothing, or when a part (a topic's subscriptions or
its metrics) could not be read: the output is still printed, each such failure named on
stderr and in the ``error`` key.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from tui.cli import CliError, add_common
from tui.cli.data import (
    _add_scope_flag,
    _clock,
    _run,
    _scope_flags,
    add_settings_flags,
    add_wide_flag,
    clean,
    print_json,
    print_table,
    settings_from_args,
    signed_in,
    tenants_failed,
    terminal_columns,
)

HEADERS = ("CONFIGURATION", "VERDICT", "SYSTEM TOPIC", "SUBSCRIPTION", "EVENTS", "SCHEMA",
           "ENDPOINT", "STATE", "HEALTH (24 H)")


#: The columns narrowed (middle shortened) to fit the terminal: names, ids, endpoints, health.
FITTED_COLUMNS = (0, 2, 3, 4, 6, 8)


def health_text(health: Any) -> str:
    """The 24-hour delivery counts in a few words; ``unknown`` when they could not be read."""
    if health is None:
        return "unknown"
    return (f"{health.delivered} delivered, {health.failed} failed, {health.dropped} dropped, "
            f"{health.dead_lettered} dead-lettered")


def table_rows(wirings: Sequence[Any]) -> list[tuple[Any, ...]]:
    """One row per event subscription; a configuration without any gets one row of dashes.
    The configuration's columns are written on its first row only."""
    rows: list[tuple[Any, ...]] = []
    for wiring in wirings:
        head = (wiring.configuration_name, f"{wiring.symbol} {wiring.verdict}",
                wiring.topic.name if wiring.topic else None)
        health = health_text(wiring.health) if wiring.topic else None
        if not wiring.subscriptions:
            rows.append((*head, None, None, None, None, None, health))
            continue
        for i, sub in enumerate(wiring.subscriptions):
            first = i == 0
            rows.append((*(head if first else ("", "", "")), sub.name,
                         ",".join(sub.event_types) or None, sub.schema,
                         f"{sub.endpoint_type}: {sub.endpoint}" if sub.endpoint
                         else sub.endpoint_type,
                         sub.state or None, health if first else ""))
    return rows


def run_subscriptions(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, **_scope_flags(args))
    clock = _clock()

    async def fetch_one(profile: Any) -> Any:
        from services.azure.eventgrid import WiringSource
        from services.azure.sources import ConfigSource
        from services.domain.tenants import tag

        async with signed_in(profile.settings, clock=clock) as (credential, runner):
            configs = tag((await ConfigSource(runner).fetch()).items, profile.name,
                          profile.tenant)
            chosen = _chosen(configs, settings, args.configuration, missing_ok=True)
            source = WiringSource.from_settings(profile.settings, runner, credential,
                                                clock=clock)
            return chosen, await source.fetch(chosen)

    async def fetch() -> Any:
        # Issue 19: each profile's configurations and wiring with its own credential; one
        # failing is named (exit 4), the others are listed.
        import asyncio

        profiles = settings.tenant_profiles()
        answers = await asyncio.gather(*(fetch_one(p) for p in profiles),
                                       return_exceptions=True)
        picked: dict[str, tuple[bool, Any]] = {}  # key -> (read by its owner, configuration)
        wirings: dict[str, Any] = {}
        failed: dict[str, str] = {}
        for profile, answer in zip(profiles, answers, strict=True):
            if isinstance(answer, BaseException) or answer[1].error:
                if profile.implicit:
                    if isinstance(answer, BaseException):
                        raise answer
                    raise CliError(answer[1].error)
                failed[profile.label] = (str(answer) if isinstance(answer, BaseException)
                                         else answer[1].error)
                continue
            # A configuration seen through two profiles (a delegation) is judged by the
            # profile of the tenant that owns it: against that tenant's queue.
            for config in answer[0]:
                key = config.id.lower()
                own = bool(config.tenant_id and profile.tenant
                           and config.tenant_id.lower() == profile.tenant.lower())
                if key in picked and (picked[key][0] or not own):
                    continue
                picked[key] = (own, config)
                wiring = answer[1].get(config.id)
                if wiring is not None:
                    wirings[key] = wiring
                else:
                    wirings.pop(key, None)
        chosen = [config for _, config in picked.values()]
        if args.configuration and not chosen and not failed:
            raise CliError(f"no configuration named {args.configuration!r} is visible")
        return chosen, wirings, failed

    chosen, found, failed = _run(fetch)
    from services.azure.eventgrid import watched_queue

    if watched_queue(settings) is None:
        print("aumwatch: warning: no watched queue known ([queue] name and account_url or "
              "connection string): a subscription to any Storage Queue counts as ok",
              file=sys.stderr)
    wirings = [found[c.id.lower()] for c in chosen if c.id.lower() in found]
    tenant_of = {c.id.lower(): c for c in chosen}
    if args.json:
        print_json([{**w.to_json(),
                     "tenant": tenant_of[w.configuration_id.lower()].tenant or None,
                     "tenant_id": tenant_of[w.configuration_id.lower()].tenant_id}
                    for w in wirings])
    else:
        print_table(HEADERS, table_rows(wirings), shrink=FITTED_COLUMNS,
                    width=None if args.wide else terminal_columns())
        if wirings:
            print()  # the verdicts' reasons are prose under the table, not part of it
        for wiring in wirings:
            print(f"{clean(wiring.configuration_name)}: {wiring.symbol} {wiring.verdict}: "
                  f"{clean(wiring.reason)}")
    for wiring in [w for w in wirings if w.error]:
        print(f"aumwatch: {clean(wiring.configuration_name)}: {clean(wiring.error)}",
              file=sys.stderr)
    if failed:
        return tenants_failed(failed)
    return 1 if [w for w in wirings if w.error] else 0


def _chosen(configs: Sequence[Any], settings: Any, wanted: str | None, *,
            missing_ok: bool = False) -> list[Any]:
    """The configurations to show: every one in view, or the one ``--configuration`` names
    (a name, case-insensitively, or a full id; any maintenance scope when named)."""
    from services.domain.configs import configurations_in_view, find_configurations

    if wanted:
        found = find_configurations(configs, wanted)
        if not found and not missing_ok:
            raise CliError(f"no configuration named {wanted!r} is visible")
        return found
    return configurations_in_view(configs, settings.include_other_scopes)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "subscriptions", help="the Event Grid wiring of each configuration, with a verdict",
        description="For each maintenance configuration: its Event Grid system topic, the "
        "event subscriptions on it (event types, schema, endpoint, state), delivery health "
        "over 24 h, and a verdict: ok, missing, partial, other-endpoint, disabled, failing.",
        epilog="Exit status: 0 all read; 1 the read failed, --configuration matched nothing, "
        "or a topic's subscriptions or metrics could not be read (output still printed).")
    add_common(parser)
    add_settings_flags(parser)
    parser.add_argument("--configuration", metavar="NAME",
                        help="only this configuration (name, case-insensitive, or full id)")
    _add_scope_flag(parser)
    add_wide_flag(parser)
    parser.set_defaults(func=run_subscriptions)
