"""``aumwatch events tail``: print maintenance events from the queue as they arrive.

Registered by ``tui.cli.events`` through :func:`register_tail`. ``--mode peek`` (default, from
the settings) leaves every message in the queue; ``--mode consume`` deletes each message once
its events are in the local journal (use it only on a queue dedicated to aumwatch); while
another process consumes the queue (``aumwatch tasks`` above all: the queue's lock in the data
directory), it peeks instead and says so on stderr. With
``--json`` each event is one JSON object per line: the event's fields plus ``received_at`` and
``duplicate``; a message that does not decode is ``{"undecodable": true, "reason",
"raw_preview"}``. Without ``--follow`` one poll is made; with it, polls repeat until
interrupted and a failed poll is reported on stderr while the next one tries again.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from typing import Any

from tui.cli import CliError, add_common

MIN_INTERVAL = 1.0


def register_tail(events_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``tail`` subcommand to ``aumwatch events``."""
    from tui.cli.data import add_settings_flags

    tail = events_subparsers.add_parser(
        "tail",
        help="print events from the queue (peek or consume)",
        description="Print pre/post maintenance events from the configured Storage queue. "
        "peek (default) changes nothing in the queue; consume deletes each message once its "
        "events are journaled (only for a queue dedicated to aumwatch).",
    )
    add_common(tail)
    add_settings_flags(tail)
    tail.add_argument("--follow", "-f", action="store_true", help="keep polling until interrupted")
    tail.add_argument("--mode", choices=("peek", "consume"),
                      help="peek (default) or consume (overrides the queue.mode setting)")
    tail.add_argument("--interval", type=float, default=5.0, metavar="SECONDS",
                      help=f"seconds between polls with --follow (default 5, at least "
                      f"{MIN_INTERVAL:g})")
    tail.set_defaults(func=run_tail)


def run_tail(args: argparse.Namespace) -> int:
    """Handler of ``aumwatch events tail``."""
    import asyncio

    from tui.cli.data import settings_from_args

    if args.interval < MIN_INTERVAL:
        raise CliError(f"--interval must be at least {MIN_INTERVAL:g} seconds, "
                       f"got {args.interval:g}")
    settings = settings_from_args(args, queue_mode=args.mode)
    tenant: dict[str, Any] = {}
    if settings.profiles:
        # Issue 19: each tenant has its own queue; the tail reads one.
        profiles = settings.tenant_profiles()
        if len(profiles) > 1:
            raise CliError("events tail reads one tenant's queue: name it with --tenant NAME "
                           f"(profiles: {', '.join(p.name for p in profiles)})")
        profile = profiles[0]
        tenant = {"tenant": profile.name, "tenant_id": profile.tenant}
        settings = dataclasses.replace(profile.settings,
                                       queue_mode=args.mode or profile.settings.queue_mode)
    args.tenant_keys = tenant
    if not settings.queue_configured:
        raise CliError(
            "no events queue configured: set queue.name and queue.account_url in the config "
            "file (or a connection string in AUMWATCH_QUEUE_CONNECTION_STRING or the file)")
    journal = _open_journal(settings)
    try:
        return asyncio.run(_tail(args, settings, journal))
    finally:
        if journal is not None:
            journal.close()


def _open_journal(settings: Any) -> Any:
    from services.azure.journal import Journal, JournalError

    try:
        return Journal(settings.journal_path)
    except JournalError as exc:
        if settings.queue_mode == "consume":
            # Consume mode deletes only what the journal holds: without it, nothing is safe.
            raise CliError(f"{exc} (consume mode needs the journal)") from None
        print(f"aumwatch: warning: {exc}; events are not journaled", file=sys.stderr)
        return None


async def _tail(args: argparse.Namespace, settings: Any, journal: Any) -> int:
    import asyncio

    from services.azure.clients import make_async_credential, settings_queue_client
    from services.azure.eventsource import EventSource
    from services.domain.clock import SystemClock
    from services.domain.errors import ServiceError

    credential = None
    if not settings.queue_connection_string:
        try:
            credential = make_async_credential(settings)
        except ServiceError as exc:
            raise CliError(str(exc)) from None
    stack = contextlib.ExitStack()
    try:
        try:
            queue = settings_queue_client(settings, credential)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        async with queue:
            mode = settings.queue_mode
            if mode == "consume":
                lock = _consumer_lock(settings, str(queue.url))
                if lock is None:
                    mode = "peek"
                else:
                    stack.callback(lock.release)
            source = EventSource(queue, clock=SystemClock(), journal=journal, mode=mode,
                                 identity=settings.queue_identity)
            warned: set[str] = set()
            while True:
                batch = await source.poll()
                # Without --follow a failed poll is the command's error (printed once, exit 1).
                _emit(batch, as_json=args.json, warned=warned, show_error=args.follow,
                      tenant_keys=args.tenant_keys, rules=settings.arrival_rules)
                if not args.follow:
                    if batch.error:
                        raise CliError(batch.error)
                    return 0
                await asyncio.sleep(args.interval)
    finally:
        stack.close()
        if credential is not None:
            await credential.close()


def _consumer_lock(settings: Any, queue_url: str) -> Any:
    """The queue's one-consumer lock (services/azure/tasks.py's RunnerLock), or None, said
    on stderr, when another process (``aumwatch tasks`` above all) consumes the queue: its
    messages are then peeked, never taken from the tasks they are for."""
    from services.azure.tasks import RunnerLock, TasksRefused

    lock = RunnerLock(settings.data_dir, queue_url, holder="aumwatch events tail")
    try:
        lock.acquire()
    except TasksRefused as exc:
        print(f"aumwatch: warning: peeking instead of consuming: {exc}", file=sys.stderr)
        return None
    except OSError as exc:
        print(f"aumwatch: warning: peeking instead of consuming: cannot take the queue's "
              f"consumer lock: {exc}", file=sys.stderr)
        return None
    return lock


#: What a line's time and arrival mean (printed once, above the first line; README,
#: "Scriptable commands", says the same).
LEGEND = ("each line: when the event reached the queue (UTC), its kind, run and "
          "configuration; arrival: a pre-event's lead on its run's start (T-35m), a "
          "post-event's time after (+4m) or before (-37m) the run's scheduled end; "
          "'!' marks an arrival outside the expected range")


def arrival_text(event: Any, arrived_at: Any, rules: Any) -> str | None:
    """``arrival T-35m`` (``!`` appended when unusual), or None for an event with no run
    times (the rule is :func:`services.domain.arrivals.arrival`)."""
    from services.domain.arrivals import arrival

    label, flagged = arrival(event, arrived_at, rules=rules)
    if not label:
        return None
    return f"arrival {label}{' !' if flagged else ''}"


def _emit(batch: Any, *, as_json: bool, warned: set[str], show_error: bool,
          tenant_keys: dict[str, Any] | None = None, rules: Any = None) -> None:
    """Print one poll: events (and flagged duplicates, with --json), undecodables, notes.
    Each line's time is when that event reached the queue, not when this poll read it."""
    from tui.cli.data import clean, safe_json

    if as_json:
        items = [*batch.events, *batch.duplicates]
        items.sort(key=lambda e: e.received_at)
        for item in items:
            print(safe_json({**item.to_json(), **(tenant_keys or {})}))
        for bad in batch.undecodable:
            print(safe_json({**bad.to_json(), **(tenant_keys or {})}))
    else:
        if batch.events and LEGEND not in warned:
            warned.add(LEGEND)  # once, above the first line (like a table's header)
            print(f"# {LEGEND}")
        for item in sorted(batch.events, key=lambda e: e.arrived_at):
            event = item.event
            when = item.arrived_at  # the queue's insertion time (or the event's, if earlier)
            arrived = arrival_text(event, when, rules)
            print("  ".join((
                _hms(when), f"{event.kind:<5}", clean(event.run_name),
                clean(event.configuration_name),
                *([arrived] if arrived else []),
                f"start {_hms(event.start)}",
                f"cutoff {_hms(event.cancellation_cutoff)}" if event.kind == "pre" else
                f"status {clean(event.status)}",
                *([f"type {clean(event.type)}"] if event.kind == "other" else []),
            )))
        for bad in batch.undecodable:
            # raw_preview is already escaped; clean() again costs nothing and guards the rule.
            print(f"{_hms(bad.inserted_at or bad.received_at)}  UNDECODABLE  {clean(bad.reason)}: "
                  f"{clean(bad.raw_preview)}")
    sys.stdout.flush()
    notes = []
    if batch.duplicates and not as_json:
        notes.append(f"{len(batch.duplicates)} duplicate deliver"
                     f"{'y' if len(batch.duplicates) == 1 else 'ies'} not shown again")
    if batch.redelivered:
        notes.append(f"{batch.redelivered} re-delivered message(s) already journaled, removed")
    for note in notes:
        print(f"aumwatch: {note}", file=sys.stderr)
    if batch.warning and batch.warning not in warned:
        warned.add(batch.warning)  # once per run: a follow would repeat it every poll
        # Both may quote the queue service's answer: escaped, never interpreted.
        print(f"aumwatch: warning: {clean(batch.warning)}", file=sys.stderr)
    if batch.error and show_error:
        print(f"aumwatch: {clean(batch.error)}", file=sys.stderr)


def _hms(value: Any) -> str:
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%SZ")
