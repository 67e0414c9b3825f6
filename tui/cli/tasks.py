"""``aumwatch tasks [--once]``: run the config file's pre/post tasks for the queue's events.

Headless and fit for systemd: one JSON line per handled task on stdout (``task``,
``correlation_id``, ``event_kind``, ``outcome`` = ok | failed | timeout | skipped-duplicate |
interrupted | skipped-late (a pre task whose run had already started) | skipped-cancelled
(a pre task whose run is known to be cancelled), ``exit_code``,
``cancelled_run``, ``started``, ``ended``, plus ``configuration`` and ``reason``);
diagnostics, one line each, on stderr. ``--once`` handles what is in the queue now and exits
0, or 1 when a task failed or timed out (or a poll failed); without it, the queue is polled
until SIGTERM or SIGINT, which stop taking messages, end the running tasks' process groups,
record them interrupted, and exit 0. The tasks of different messages run side by side (up to
services/azure/tasks.py's ``TASK_CONCURRENCY`` messages at once), and ``--once`` waits for
the running ones before it exits.

Tasks need consume mode on a queue dedicated to aumwatch and one runner per queue (a lock
file in the data directory); the command refuses otherwise, saying why. The runner itself is
services/azure/tasks.py. A cancel_on_failure task's window is judged on Azure's clock: before
it runs and when it fails, the clock's skew is measured from Resource Manager's ``Date``
header, as ``aumwatch cancel`` does. Whether a pre task's run is already cancelled is read
from the journal, the event and Resource Graph (one query for the runs of a poll; without a
credential, or when it cannot be read, the journal and the event decide alone).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tui.cli import CliError, add_common
from tui.cli.data import clean, one_profile, safe_json, settings_from_args

MIN_INTERVAL = 0.5


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``aumwatch tasks``."""
    from tui.cli.data import add_settings_flags

    parser = subparsers.add_parser(
        "tasks",
        help="run the configured pre/post tasks for queue events (headless)",
        description="Run the [[tasks]] of the config file for each pre/post maintenance event "
        "read from the queue, each task once per run and event kind, and cancel a run whose "
        "cancel_on_failure pre task fails inside its cancel window. Needs consume mode on a "
        "queue dedicated to aumwatch. Prints one JSON line per handled task.",
    )
    add_common(parser, json_flag=False)
    add_settings_flags(parser)
    parser.add_argument("--once", action="store_true",
                        help="handle what is in the queue now, then exit (1 if a task failed)")
    parser.add_argument("--interval", type=float, default=None, metavar="SECONDS",
                        help="seconds between polls of an empty queue (default: the "
                        "queue.poll_interval setting)")
    parser.add_argument("--read-only", action="store_true",
                        help="run the tasks but never send a cancel")
    parser.set_defaults(func=run_tasks)


def run_tasks(args: argparse.Namespace) -> int:
    """Handler of ``aumwatch tasks``."""
    import asyncio

    from services.azure.journal import Journal, JournalError
    from services.azure.tasks import TasksRefused, require_consume

    if args.interval is not None and args.interval < MIN_INTERVAL:
        raise CliError(f"--interval must be at least {MIN_INTERVAL:g} seconds")
    # Issue 19: each tenant has its own queue (and credential for the cancels): one runner
    # per tenant, named with --tenant.
    settings = one_profile(settings_from_args(args), "tasks")
    if not settings.tasks:
        where = settings.config_path or "the config file"
        raise CliError(f"no tasks declared: add [[tasks]] tables to {where} (tasks come from "
                       "the config file only)")
    try:
        require_consume(settings.queue_mode)
    except TasksRefused as exc:
        raise CliError(f"refused: {exc}") from None
    if not settings.queue_configured:
        raise CliError("no events queue configured: set queue.name and queue.account_url in "
                       "the config file (or a connection string in "
                       "AUMWATCH_QUEUE_CONNECTION_STRING or the file)")
    try:
        journal = Journal(settings.journal_path)
    except JournalError as exc:
        raise CliError(f"{exc} (tasks are recorded in the journal before they run)") from None
    try:
        return asyncio.run(_serve(args, settings, journal))
    except TasksRefused as exc:
        raise CliError(f"refused: {exc}") from None
    finally:
        journal.close()


async def _serve(args: argparse.Namespace, settings: Any, journal: Any) -> int:
    import asyncio
    import os
    import signal

    from services.azure.clients import make_async_credential, settings_queue_client
    from services.azure.eventsource import EventSource
    from services.azure.resourcegraph import QueryRunner
    from services.azure.tasks import (
        TASK_CONCURRENCY,
        RunnerLock,
        TaskRunner,
        graph_run_statuses,
        known_secrets,
        run_queue,
    )
    from services.domain.clock import SystemClock
    from services.domain.errors import ServiceError

    clock = SystemClock()
    credential = None
    try:
        credential = make_async_credential(settings)
    except ServiceError as exc:
        if not settings.queue_connection_string:
            raise CliError(str(exc)) from None
        if any(task.cancel_on_failure for task in settings.tasks):
            # Said once at start, not first when a pre-check fails inside its window.
            print(f"aumwatch: warning: no Azure credential ({clean(str(exc))}): a failed "
                  "cancel_on_failure pre-check cannot cancel its run", file=sys.stderr,
                  flush=True)
        if any(task.on == "pre" for task in settings.tasks):
            print("aumwatch: warning: no Azure credential: whether a pre task's run is "
                  "cancelled is judged on the journal and the event only, not on Resource "
                  "Graph", file=sys.stderr, flush=True)
    cancels = _Cancels(settings, credential, journal, clock)
    graph = None
    if credential is not None and any(task.on == "pre" for task in settings.tasks):
        # One Resource Graph query per poll's runs: is a pre task's run already cancelled?
        try:
            graph = QueryRunner.from_settings(settings, clock=clock, credential=credential)
        except Exception as exc:  # the journal and the event still decide
            print(f"aumwatch: warning: no Resource Graph client ({clean(str(exc))}): whether "
                  "a pre task's run is cancelled is judged on the journal and the event only",
                  file=sys.stderr, flush=True)
    environ = dict(os.environ)
    if settings.config_path is not None:
        # A post task calling `aumwatch report` reads the same config file.
        environ["AUMWATCH_CONFIG"] = str(settings.config_path)
    failed: list[Any] = []

    def emit(result: Any) -> None:
        print(safe_json({**result.to_json(), "tenant": settings.profile or None,
                         "tenant_id": settings.tenant}), flush=True)
        if result.outcome in ("failed", "timeout"):
            failed.append(result)
        if result.outcome != "ok":
            print(f"aumwatch: task {clean(result.task)} {result.outcome} for run "
                  f"{clean(result.correlation_id)}: {clean(result.reason)}", file=sys.stderr,
                  flush=True)

    runner = TaskRunner(
        settings.tasks, journal, clock, rules=settings.window_rules, cancel=cancels.cancel,
        secrets=known_secrets(settings.queue_connection_string, settings.token),
        environ=environ, on_result=emit, sync_clock=cancels.sync_clock,
        run_statuses=graph_run_statuses(graph) if graph is not None else None,
        world=settings.world)
    try:
        try:
            queue = settings_queue_client(settings, credential)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        async with queue:
            with RunnerLock(settings.data_dir, str(queue.url)):
                runner.recover()
                source = EventSource(queue, clock=clock, journal=journal, mode="consume",
                                     visibility_timeout=runner.visibility_timeout(),
                                     before_delete=runner.handle,
                                     hook_concurrency=TASK_CONCURRENCY,
                                     identity=settings.queue_identity)
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()

                def on_signal() -> None:
                    if not stop.is_set():
                        print("aumwatch: stopping: no further messages; ending running tasks",
                              file=sys.stderr, flush=True)
                    stop.set()
                    runner.request_stop()

                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, on_signal)
                interval = (args.interval if args.interval is not None
                            else settings.events_poll_interval.total_seconds())
                ok = await run_queue(
                    source, runner, once=args.once, stop=stop, interval=interval,
                    on_error=lambda text: print(f"aumwatch: {clean(text)}", file=sys.stderr,
                                                flush=True))
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
                if stop.is_set():
                    return 0
    finally:
        await cancels.close()
        if graph is not None:
            await graph.close()
        if credential is not None:
            await credential.close()
    if args.once and (failed or not ok):
        return 1
    return 0


class _Cancels:
    """One Canceller per subscription, made on first need (a run's id names its
    subscription); every cancel goes through it. It also corrects the runner's clock (a
    SystemClock shared with the Canceller) from Resource Manager's ``Date`` header before a
    failed pre-check's window is judged, as ``aumwatch cancel`` does."""

    def __init__(self, settings: Any, credential: Any, journal: Any, clock: Any) -> None:
        self._settings = settings
        self._credential = credential
        self._journal = journal
        self._clock = clock
        self._clients: dict[str, Any] = {}
        self._cancellers: dict[str, Any] = {}
        self._read_backs: dict[str, Any] = {}
        self._identity: str | None = None

    async def _canceller_for(self, correlation_id: str) -> tuple[Any, Any] | str:
        """The Canceller of the run's subscription and its ``read_back``, or a refusal's
        reason."""
        from services.azure.cancel import open_canceller
        from services.domain.runid import RunIdError, parse_run_id

        try:
            subscription = parse_run_id(correlation_id).subscription_id
        except RunIdError as exc:
            return f"refused: {exc}"
        if self._credential is None:
            return "refused: no Azure credential to cancel with"
        key = subscription.lower()
        canceller = self._cancellers.get(key)
        if canceller is None:
            session = await open_canceller(self._settings, self._credential, subscription,
                                           self._journal, self._clock, identity=self._identity)
            self._clients[key] = session.client
            self._identity = session.identity
            canceller = session.canceller
            self._cancellers[key] = canceller
            self._read_backs[key] = session.read_back
        return canceller, self._read_backs[key]

    async def cancel(self, target: Any) -> Any:
        from services.azure.cancel import CancelResult, Outcome

        found = await self._canceller_for(target.correlation_id)
        if isinstance(found, str):
            return CancelResult(Outcome.REFUSED, found, target.correlation_id)
        return await found[0].cancel(target)

    async def sync_clock(self, event: Any) -> None:
        """Set the clock's skew from a GET of the event's run (its ``Date`` header)."""
        from datetime import timedelta

        from services.domain.clock import SystemClock
        from tui.cli.cancelcmd import skew_from

        if not isinstance(self._clock, SystemClock):
            return  # a test's or scenario's clock is left alone
        found = await self._canceller_for(event.correlation_id)
        if isinstance(found, str):
            return
        reply = await found[1](event.correlation_id, self._settings.cancel_api_version)
        if reply.server_date is not None:
            self._clock.skew = skew_from(reply.server_date) or timedelta(0)

    async def close(self) -> None:
        for client in self._clients.values():
            try:
                await client.__aexit__(None, None, None)
            except Exception:  # closing must not mask the command's own outcome
                pass
        self._clients.clear()
