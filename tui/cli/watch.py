"""``aumwatch watch`` (headless alerting) and ``aumwatch alerts test ROUTE``.

``watch`` polls like the dashboard (the same :class:`~services.azure.monitor.Monitor` and
:class:`~services.domain.dashboard.DashboardState`, on the same cadences and back-off),
judges the findings (:mod:`services.domain.findings`), sends them to the
``[[alerts.routes]]`` once per finding and route across restarts (:mod:`services.alerting`),
prints each finding as one flushed JSON line (``kind``, ``key``, ``severity``, ``summary``,
``configuration_name``, ``run_id``, ``state``, ``at``), pings ``[alerts] heartbeat_url``
every ``heartbeat_every``, and exits 0 on SIGTERM or SIGINT. It only looks: the queue is
peeked (what a consumer such as ``aumwatch tasks`` took is read back from the journal), no
task runs and nothing is cancelled. Deliveries that fail are one
line on stderr each (what came back, secrets scrubbed). A systemd unit:
docs/architecture.md "Running the watcher under systemd"; the design: docs/architecture.md
"Alerts".

``alerts test ROUTE`` sends one test notification to the route (a PagerDuty route gets a
trigger, then its resolve) and prints what came back; exit 0 when it was delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from services.domain.backoff import Backoff
from tui.cli import CliError, add_common
from tui.cli.output import clean

if TYPE_CHECKING:
    from services.alerting import Alerter
    from services.azure.monitor import Monitor
    from services.domain.clock import Clock
    from services.domain.dashboard import DashboardState
    from services.domain.findings import Alert
    from services.notify import Delivery
    from services.settings import Settings

#: How often the findings are judged between polls (deadlines pass on their own).
JUDGE_EVERY = timedelta(seconds=1)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    watch = subparsers.add_parser(
        "watch", help="headless: judge findings, send alerts, print each as a JSON line",
        description="Poll like the dashboard without a screen; send each finding to the "
        "[[alerts.routes]] once (across restarts); print each finding as one JSON line; "
        "ping [alerts] heartbeat_url; exit 0 on SIGTERM.")
    add_common(watch, json_flag=False)
    watch.add_argument("--refresh", metavar="INTERVAL",
                       help="poll interval, e.g. 30s or 1m (at least 10s)")
    watch.set_defaults(func=run_watch)

    alerts = subparsers.add_parser("alerts", help="alert routes: send a test notification")
    add_common(alerts, json_flag=False)
    sub = alerts.add_subparsers(dest="alerts_command", metavar="COMMAND", required=True)
    test = sub.add_parser("test", help="send one test notification to ROUTE and say what "
                          "came back")
    add_common(test, json_flag=False)
    test.add_argument("route", metavar="ROUTE", help="a [[alerts.routes]] name")
    test.set_defaults(func=run_alerts_test)


def _settings(args: argparse.Namespace, **flags: Any) -> Settings:
    from services.settings import SettingsError, load_settings

    try:
        return load_settings(flags, config_path=getattr(args, "config", None))
    except SettingsError as exc:
        raise CliError(str(exc)) from None


def _line(text: str) -> None:
    # What came back from a route (its answer, a command's output) is untrusted text.
    sys.stderr.write(f"aumwatch watch: {clean(text)}\n")
    sys.stderr.flush()


def emit(alert: Alert) -> None:
    """Print one finding as a JSON line, flushed at once (a supervisor that kills the
    watcher still has every line printed)."""
    sys.stdout.write(json.dumps(alert.to_json()) + "\n")
    sys.stdout.flush()


def run_watch(args: argparse.Namespace) -> int:
    settings = _settings(args, poll_interval=getattr(args, "refresh", None))
    for warning in settings.warnings:
        _line(warning)
    from services.domain.clock import SystemClock

    return asyncio.run(watch(settings, SystemClock()))


class Watch:
    """The watcher's loops around one state (see the module)."""

    def __init__(self, settings: Settings, clock: Clock, monitor: Monitor,
                 state: DashboardState, alerter: Alerter) -> None:
        self.settings = settings
        self.clock = clock
        self.monitor = monitor
        self.state = state
        self.alerter = alerter
        self.read = state.sources_read  # the sources read at least once (the rules' gate)
        # The dashboard's pacing rule (services/domain/backoff.py), on the same cadences.
        self.backoff = Backoff(settings.poll_interval, settings.events_poll_interval,
                               settings.wiring_refresh)
        self.watching_since = clock.now()
        self.stop = asyncio.Event()
        self._duplicates: list[Any] = []

    async def judge(self) -> None:
        """Judge every rule now and tell what changed."""
        from services.domain.findings import judge, judgement_of, state_inputs

        now = self.clock.now()
        self.state.tick(now)
        judgements = judge(state_inputs(self.state, self.read), self.alerter.book, now,
                           watching_since=self.watching_since)
        judgements += [judgement_of(f) for f in self._duplicates]
        self._duplicates.clear()
        await self.alerter.update(judgements, now)

    async def _wait(self, delay: timedelta) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), max(0.05, delay.total_seconds()))

    async def configs_loop(self) -> None:
        """Configurations then runs, like the dashboard's first loop."""
        from services.domain.errors import ServiceError

        while not self.stop.is_set():
            source = "configs"
            throttled = False
            ok = True
            try:
                self.state.apply_configs(await self.monitor.poll_configs())
                source = "runs"
                self.state.apply_runs(await self.monitor.poll_runs())
            except Exception as exc:
                ok = False
                throttled = isinstance(exc, ServiceError) and exc.kind == "throttled"
                self.state.set_error(source, str(exc))
            await self.judge()
            await self._wait(self.backoff.next_delay("configs" if ok else source, ok, throttled))

    async def events_loop(self) -> None:
        """The events queue, like the dashboard's second loop."""
        while not self.stop.is_set():
            batch = await self.monitor.poll_events()
            ok = batch is None or batch.error is None
            if batch is not None:
                change = self.state.apply_events(batch)
                self._duplicates += [f for f in change.findings if f.kind == "duplicate"]
            await self.judge()
            await self._wait(self.backoff.next_delay("events", ok))

    async def wiring_loop(self) -> None:
        """The Event Grid wiring, once the configurations are known."""
        while not self.stop.is_set() and "configs" not in self.read:
            await self._wait(timedelta(seconds=0.5))
        while not self.stop.is_set():
            ok = True
            try:
                snapshot = await self.monitor.poll_wiring(tuple(self.state.configs.values()))
                self.state.apply_wiring(snapshot)
                ok = snapshot.error is None
            except Exception as exc:
                ok = False
                self.state.set_error("wiring", str(exc))
            await self._wait(self.backoff.next_delay("wiring", ok))

    async def tick_loop(self) -> None:
        """Deadlines pass between polls: judge every second."""
        while not self.stop.is_set():
            await self._wait(JUDGE_EVERY)
            await self.judge()

    async def heartbeat_loop(self, url: str) -> None:
        """Ping the dead man's switch now and every ``heartbeat_every``."""
        while not self.stop.is_set():
            delivery = await self.alerter.notifier.ping(url)
            if not delivery.ok:
                _line(f"heartbeat {delivery.describe()}")
            await self._wait(self.settings.heartbeat_every)


async def watch(settings: Settings, clock: Clock) -> int:
    """Run the watcher until SIGTERM/SIGINT; 0."""
    from services.alerting import Alerter
    from services.azure.eventgrid import watched_queue
    from services.azure.journal import Journal, JournalError
    from services.azure.monitor import Monitor
    from services.domain.dashboard import DashboardState
    from services.domain.findings import AlertRules, FindingBook
    from services.domain.watchdog import read_sources
    from services.notify import Notifier

    try:
        journal = Journal(settings.journal_path)
    except JournalError as exc:
        raise CliError(str(exc)) from None
    # The watcher only looks: it peeks (reading back from the journal what a consumer, such
    # as `aumwatch tasks`, took), never deletes a message, never runs a task, never cancels.
    from dataclasses import replace

    monitor = Monitor(replace(settings, queue_mode="peek", tasks=(), read_only=True), clock)
    state = DashboardState(
        settings.window_rules, clock, watch_events=settings.queue_configured,
        queue_mode=settings.queue_mode if settings.queue_configured else None,
        read_only=True, arrival_rules=settings.arrival_rules,
        include_other_scopes=settings.include_other_scopes,
        watched_queue=watched_queue(settings),
        # Every source the watchdog depends on is read here: the journal's cancels come with
        # each runs poll, the wiring has its loop.
        sources=read_sources(journal=True, wiring=True))
    rules = AlertRules(missed_after=settings.missed_after,
                       source_down_after=settings.source_down_after,
                       pre_before=settings.arrival_rules.missing_after,
                       window=settings.window_rules)
    notifier = Notifier(settings.alert_routes, secrets=settings.alert_secrets)

    def report(alert: Alert, delivery: Delivery) -> None:
        if not delivery.ok:
            _line(f"route {delivery.route}: {alert.key} ({alert.state}): "
                  f"{delivery.describe()}")

    alerter = Alerter(FindingBook(rules), journal, notifier, settings.alert_routes, clock,
                      emit=emit, report=report)
    runner = Watch(settings, clock, monitor, state, alerter)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.stop.set)
    tasks: list[asyncio.Task[None]] = []
    try:
        await alerter.resume()
        with contextlib.suppress(Exception):  # the journal is a help, not a need
            state.learn_cancels(monitor.verified_cancels())
        tasks = [asyncio.create_task(runner.configs_loop()),
                 asyncio.create_task(runner.wiring_loop()),
                 asyncio.create_task(runner.tick_loop())]
        if settings.queue_configured:
            tasks.append(asyncio.create_task(runner.events_loop()))
        if settings.heartbeat_url:
            tasks.append(asyncio.create_task(runner.heartbeat_loop(settings.heartbeat_url)))
        stopped = asyncio.create_task(runner.stop.wait())
        done, _ = await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopped and task.exception() is not None:
                raise CliError(notifier.scrub(f"the watcher stopped: {task.exception()}"))
    finally:
        runner.stop.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await monitor.close()
        await notifier.close()
        journal.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0


def run_alerts_test(args: argparse.Namespace) -> int:
    settings = _settings(args)
    route = next((r for r in settings.alert_routes
                  if r.name.casefold() == str(args.route).casefold()), None)
    if route is None:
        known = ", ".join(r.name for r in settings.alert_routes) or "none are configured"
        raise CliError(f"no alert route named {args.route!r} ([[alerts.routes]]: {known})")
    return asyncio.run(_test_route(settings, route))


async def _test_route(settings: Settings, route: Any) -> int:
    from dataclasses import replace

    from services.domain.clock import SystemClock
    from services.domain.findings import Alert
    from services.notify import Notifier

    now = SystemClock().now()
    alert = Alert("test", f"test:{route.name.lower()}:{int(now.timestamp())}",
                  "critical" if route.min_severity == "critical" else "error",
                  f"aumwatch test notification for route {route.name}", None, None, now)
    notifier = Notifier([route], secrets=settings.alert_secrets)
    try:
        sent = [await notifier.send(route, alert, test=True)]
        if route.type == "pagerduty" and sent[0].ok:
            sent.append(await notifier.send(route, replace(alert, resolved_at=now), test=True))
    finally:
        await notifier.close()
    for what, delivery in zip(("trigger", "resolve") if route.type == "pagerduty"
                              else ("test",), sent, strict=False):
        print(f"route {clean(route.name)} ({route.type}) {what}: {clean(delivery.describe())}",
              flush=True)
    return 0 if all(d.ok for d in sent) else 1
