"""The dashboard's data side: one object that polls every source and cancels runs.

The Textual app never touches a client. Its workers call :class:`Monitor`'s coroutines, each
of which returns plain immutable data of the seam (services/domain/boundary.py: a
:class:`~services.domain.boundary.RunsSnapshot`, an
:class:`~services.domain.boundary.EventBatch`, a
:class:`~services.domain.boundary.WiringSnapshot`, a
:class:`~services.domain.boundary.CancelResult`, and after each poll a
:class:`~services.domain.boundary.MonitorStatus`), and post that in a message: the screen never
reads the monitor itself. The monitor:

* builds its clients lazily, on the first poll, after importing the Azure SDKs in a thread
  (an import of azure-mgmt-* takes long enough to be felt; the first frame must not wait);
* shares one Resource Graph :class:`~services.azure.resourcegraph.Governor` (real time: the quota
  is) between the configuration, run and machine queries;
* has its Resource Graph runner measure the clock skew from the servers' ``Date`` header and
  apply it to a :class:`~services.domain.clock.SystemClock` (a test or scenario clock is left
  alone). The runner is the one owner of the correction: it measures against the already
  corrected clock and sets the total; the monitor only reads it (it used to add the total
  again, doubling the skew on every poll);
* records when each source last answered (:meth:`Monitor.status`);
* reads the audit journal's verified cancels with every runs poll (:meth:`poll_runs`), so a
  cancel verified by any aumwatch process sharing the journal shows at the next refresh;
* in peek mode, reads back from the journal the events the queue's consumer took, of this
  very queue only (its full identity: :func:`services.domain.queueid.queue_identity`);
* reads the Event Grid wiring through a cached
  :class:`~services.azure.eventgrid.WiringSource` (its own slow cadence, sharing the
  Resource Graph runner and the credential).

It keeps no dashboard state: runs come back as Resource Graph returned them (observed only)
and events as the queue gave them; :class:`services.domain.dashboard.DashboardState` merges
and remembers.

Nothing here imports Textual. Coroutines raise :class:`~services.domain.errors.ServiceError` (the
worker turns it into a status line); :meth:`poll_events` and :meth:`cancel` never raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from services.azure.resourcegraph import Governor, GovernorState
from services.domain.boundary import (
    SOURCES,
    CancelResult,
    CancelTarget,
    EventBatch,
    Mode,
    MonitorStatus,
    Outcome,
    RunsSnapshot,
    WiringSnapshot,
)
from services.domain.clock import Clock, SystemClock
from services.domain.errors import ServiceError, service_error
from services.domain.model import Configuration, Fetched, Machine
from services.domain.runfacts import VerifiedCancel
from services.domain.tasks import TaskResult
from services.domain.wiring import QueueTarget
from services.settings import Settings

#: How long closing waits for running tasks to stop and be recorded (they get SIGTERM, then
#: SIGKILL after services/azure/tasks.py's grace).
TASK_STOP_WAIT = timedelta(seconds=6)
#: Journaled events read back at the first poll of a dashboard peeking beside a consumer.
JOURNAL_BACKLOG = 500
#: Events remembered as shown (peeked or read back from the journal), so none shows twice.
SHOWN_KEYS_LIMIT = 20_000
__all__ = ["SOURCES", "Monitor"]
#: SDK modules imported off the UI thread before the first client is built. The first
#: three are all the first Resource Graph query needs (GRAPH_SDK_MODULES): the configurations
#: are not kept waiting for the maintenance and queue SDKs.
SDK_MODULES = (
    "azure.core.rest",
    "azure.mgmt.resourcegraph.aio",
    "azure.mgmt.resourcegraph.models",
    "azure.mgmt.maintenance.aio",
    "azure.storage.queue.aio",
)
GRAPH_SDK_MODULES = SDK_MODULES[:3]


def _import_sdks(modules: Sequence[str] = SDK_MODULES) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:  # reported where the client is built, with a clear message
            pass


class Monitor:
    """Polls configurations, runs, machines and events for the dashboard; sends cancels."""

    def __init__(self, settings: Settings, clock: Clock, *, governor: Governor | None = None,
                 apply_skew: bool = True) -> None:
        """``clock`` is the application's clock (phases, ages); ``apply_skew`` lets a
        SystemClock be corrected by the server's Date header."""
        self.settings = settings
        self.clock = clock
        # The quota is counted in real seconds, whatever clock the app shows.
        self.governor = governor or Governor(SystemClock())
        self._apply_skew = apply_skew
        self._lock = asyncio.Lock()
        self._credential: Any = None
        self._runner: Any = None
        self._configs: Any = None
        self._runs: Any = None
        self._machines: Any = None
        self._events: Any = None
        self._events_tried = False
        self._events_error: str | None = None
        self._journal: Any = None
        self._cancel_session: Any = None
        self._wiring: Any = None
        # Issue 12: the declared [[tasks]], run by this dashboard when it may (see
        # _start_tasks); otherwise why not, for the status line.
        self._task_runner: Any = None
        self._runner_lock: Any = None
        self.tasks_refusal: str | None = None
        # Why a consume-mode dashboard with no [[tasks]] peeks instead (another consumer).
        self.consume_refusal: str | None = None
        self._task_results: list[TaskResult] = []
        self._events_poll: asyncio.Future[EventBatch] | None = None
        # Peeking: the events a consumer of the queue (`aumwatch tasks` above all) took are
        # read back from the shared journal (seq: the last row read; keys: the events
        # shown, from either side, so none is shown twice).
        self._follows_journal = False
        self._journal_seq: int | None = None
        self._shown_keys: dict[tuple[str, str], None] = {}
        self.fetched_at: dict[str, datetime | None] = dict.fromkeys(SOURCES)
        self.measured_skew: timedelta | None = None
        self.closed = False
        # Issue 19: with [[tenants]] profiles, one monitor per profile (its own credential,
        # runner, governor, queue and canceller); this one merges them. The last answer of
        # each tenant stands while its next read fails (its error is its own source's).
        self.tenants: dict[str, Monitor] = {}
        self._last: dict[str, dict[str, Fetched[Any]]] = {"configs": {}, "runs": {}}
        self._config_tenant: dict[str, str] = {}  # configuration id (lower) -> profile
        self._configs_by_id: dict[str, Configuration] = {}
        if settings.profiles:
            for profile in settings.tenant_profiles():
                self.tenants[profile.name] = Monitor(profile.settings, clock,
                                                     apply_skew=apply_skew)

    # -- state for the status bar -----------------------------------------------------------
    @property
    def governor_state(self) -> GovernorState:
        """The Resource Graph quota as the governor sees it."""
        return self.governor.state

    @property
    def skew(self) -> timedelta | None:
        """Server time minus local time, as applied to the clock (or measured, if not)."""
        if isinstance(self.clock, SystemClock) and self._apply_skew:
            return self.clock.skew if self.measured_skew is not None else None
        return self.measured_skew

    def status(self) -> MonitorStatus:
        """What the status bar says of the sources now (the screen gets it in a message after
        every poll): when each answered, the quota, the skew, the tasks runner's state."""
        governor = self.governor.state
        if self.tenants:
            children = list(self.tenants.values())
            self.tasks_refusal = next((m.tasks_refusal for m in children if m.tasks_refusal),
                                      None)
            self.consume_refusal = next((m.consume_refusal for m in children
                                         if m.consume_refusal), None)
            states = [m.governor.state for m in self.tenants.values()]
            known = [g.remaining for g in states if g.remaining is not None]
            throttled = [g.throttled_until for g in states if g.throttled_until is not None]
            governor = dataclasses.replace(governor, remaining=min(known) if known else None,
                                           throttled_until=max(throttled, default=None))
            self.measured_skew = next((m.measured_skew for m in self.tenants.values()
                                       if m.measured_skew is not None), None)
        return MonitorStatus(
            fetched_at=dict(self.fetched_at), quota_remaining=governor.remaining,
            throttled_until=governor.throttled_until, skew=self.skew,
            runs_tasks=self.runs_tasks, tasks_refusal=self.tasks_refusal,
            consume_refusal=self.consume_refusal)

    @property
    def queue_configured(self) -> bool:
        if self.tenants:
            return any(m.settings.queue_configured for m in self.tenants.values())
        return self.settings.queue_configured

    # -- lazy clients ------------------------------------------------------------------------
    async def _ensure_graph(self) -> None:
        async with self._lock:
            if self.closed:
                raise ServiceError("config", "the monitor is closed")
            if self._runner is not None:
                return
            await asyncio.to_thread(_import_sdks, GRAPH_SDK_MODULES)
            from services.azure.clients import make_async_credential
            from services.azure.resourcegraph import QueryRunner
            from services.azure.sources import ConfigSource, MachineSource, RunSource

            try:
                if self._credential is None:
                    self._credential = make_async_credential(self.settings)
                runner = QueryRunner.from_settings(
                    self.settings, clock=self.clock, governor=self.governor,
                    credential=self._credential,
                    correct_clock=self._apply_skew and isinstance(self.clock, SystemClock))
            except ServiceError:
                raise
            except Exception as exc:
                raise service_error(exc, what="building the Resource Graph client") from exc
            self._runner = runner
            self._configs = ConfigSource(runner, clock=self.clock)
            self._runs = RunSource(runner, clock=self.clock)
            self._machines = MachineSource(runner, clock=self.clock)

    def _note_skew(self) -> None:
        # The runner measured the total skew (server minus uncorrected local time) and, when
        # allowed, already set it on the SystemClock: read it, never apply it a second time.
        measured = getattr(self._runner, "skew", None)
        if measured is not None:
            self.measured_skew = measured

    # -- polls -------------------------------------------------------------------------------
    async def _each_tenant(self, kind: str, poll: Any) -> Fetched[Any]:
        """``poll(monitor)`` of every tenant's monitor at once, merged: each item tagged with
        its tenant and kept once (the copy of its owning tenant); a failed tenant's last
        answer stands and its error is named in ``failed``. Raises when every tenant
        failed."""
        from services.azure.tenants import (
            ProfileResult,
            configuration_key,
            merge_fetched,
            run_key,
        )
        from services.domain.tenants import failures_line

        names = list(self.tenants)
        answers = await asyncio.gather(*(poll(self.tenants[n]) for n in names),
                                       return_exceptions=True)
        results: list[ProfileResult[Fetched[Any]]] = []
        failed: dict[str, str] = {}
        profiles = {p.name: p for p in self.settings.tenant_profiles()}
        for name, answer in zip(names, answers, strict=True):
            if isinstance(answer, BaseException):
                if isinstance(answer, asyncio.CancelledError):
                    raise answer
                failed[name] = service_error(answer, what=f"{kind} query").message
                last = self._last[kind].get(name)
                if last is not None:
                    results.append(ProfileResult(profiles[name], last))
                continue
            self._last[kind][name] = answer
            results.append(ProfileResult(profiles[name], answer))
        if len(failed) == len(names):
            raise ServiceError("server", failures_line(failed))
        key = configuration_key if kind == "configs" else run_key
        merged = merge_fetched(results, key, clock=self.clock)
        return dataclasses.replace(merged, failed=failed)

    def _tenant_of(self, correlation_or_config_id: str) -> Monitor | None:
        """The monitor of the tenant a run or configuration belongs to (as last read)."""
        text = correlation_or_config_id.lower()
        head = text.split("/providers/microsoft.maintenance/applyupdates/")[0]
        name = self._config_tenant.get(head)
        return self.tenants.get(name) if name is not None else None

    async def poll_configs(self) -> Fetched[Configuration]:
        """Every configuration in scope (one paged Resource Graph query; with profiles, one
        per tenant)."""
        if self.tenants:
            fetched = await self._each_tenant("configs", lambda m: m.poll_configs())
            self._config_tenant = {c.id.lower(): c.tenant for c in fetched.items}
            self._configs_by_id = {c.id.lower(): c for c in fetched.items}
            self.fetched_at["configs"] = self.clock.now()
            return fetched
        await self._ensure_graph()
        try:
            fetched = await self._configs.fetch()
        except Exception as exc:
            raise service_error(exc, what="configurations query") from exc
        finally:
            self._note_skew()
        self.fetched_at["configs"] = self.clock.now()
        self._configs_by_id = {c.id.lower(): c for c in fetched.items}
        return fetched

    async def poll_runs(self) -> RunsSnapshot:
        """The runs Resource Graph shows (observed only: the dashboard's state merges them
        with the schedules, the events and the verified cancels) and the journal's verified
        cancels, read at the same poll (a cancel verified by another aumwatch process shows
        at this refresh, not when Resource Graph catches up)."""
        if self.tenants:
            fetched = await self._each_tenant("runs", lambda m: m.poll_runs_observed())
            self.fetched_at["runs"] = self.clock.now()
            return RunsSnapshot(fetched, self._read_verified_cancels())
        await self._ensure_graph()
        try:
            fetched = await self._runs.fetch_observed()
        except Exception as exc:
            raise service_error(exc, what="runs query") from exc
        finally:
            self._note_skew()
        self.fetched_at["runs"] = self.clock.now()
        cancels = self._read_verified_cancels()
        return RunsSnapshot(fetched, cancels)

    async def poll_runs_observed(self) -> Fetched[Any]:
        """Resource Graph's runs alone (one tenant's monitor, for :meth:`poll_runs`)."""
        await self._ensure_graph()
        try:
            fetched: Fetched[Any] = await self._runs.fetch_observed()
        except Exception as exc:
            raise service_error(exc, what="runs query") from exc
        finally:
            self._note_skew()
        self.fetched_at["runs"] = self.clock.now()
        return fetched

    async def poll_machines(self, correlation_id: str) -> Fetched[Machine]:
        """The machines of one run (with profiles: through its tenant)."""
        if self.tenants:
            owner = self._tenant_of(correlation_id) or next(iter(self.tenants.values()))
            return await owner.poll_machines(correlation_id)
        await self._ensure_graph()
        try:
            return await self._machines.fetch(correlation_id)
        except Exception as exc:
            raise service_error(exc, what="machines query") from exc
        finally:
            self._note_skew()

    async def preflight_source(self) -> Any:
        """A :class:`~services.azure.preflight.PreflightSource` on the monitor's runner
        (issue 18: the dashboard's pre-flight loop)."""
        from services.azure.preflight import PreflightSource

        if self.tenants:  # issue 19: each tenant's read, side by side, as one
            from services.azure.tenants import TenantsPreflight, failed_preflight

            sources: dict[str, Any] = {}
            for name, child in self.tenants.items():
                try:
                    sources[name] = await child.preflight_source()
                except ServiceError as exc:  # its clients cannot be built: its read fails
                    sources[name] = failed_preflight(exc.message, self.clock)
            return TenantsPreflight(sources)
        await self._ensure_graph()
        return PreflightSource(self._runner, rules=self.settings.fit_rules, clock=self.clock,
                               include_other_scopes=self.settings.include_other_scopes)

    @property
    def watched_queue(self) -> QueueTarget | None:
        """The watched queue as Event Grid names it (None: none configured, or unknown)."""
        from services.azure.eventgrid import watched_queue

        return watched_queue(self.settings)

    async def poll_wiring(self, configurations: Sequence[Configuration], *,
                          force: bool = False) -> WiringSnapshot:
        """The Event Grid wiring of ``configurations``: Azure is read once per
        ``[events] wiring_refresh`` (or now, with ``force``), the cache answers otherwise.
        A failed read comes back as the snapshot's ``error``; raises only when the
        clients cannot be built."""
        if self.tenants:
            return await self._tenants_wiring(configurations, force)
        await self._ensure_graph()
        if self._wiring is None:
            # azure-mgmt-eventgrid takes a while to import: not on the UI thread.
            await asyncio.to_thread(_import_sdks, ("azure.mgmt.eventgrid.aio",))
            from services.azure.eventgrid import WiringSource

            try:
                self._wiring = WiringSource.from_settings(self.settings, self._runner,
                                                          self._credential, clock=self.clock)
            except Exception as exc:
                raise service_error(exc, what="building the Event Grid client") from exc
        try:
            snapshot: WiringSnapshot = await self._wiring.fetch(configurations, force=force)
            return snapshot
        except Exception as exc:  # fetch maps Azure's answers itself; this is a bug's net
            raise service_error(exc, what="Event Grid wiring") from exc
        finally:
            self._note_skew()

    async def _tenants_wiring(self, configurations: Sequence[Configuration],
                              force: bool) -> WiringSnapshot:
        """Each tenant's wiring of its own configurations, as one snapshot."""
        names = list(self.tenants)
        answers = await asyncio.gather(
            *(self.tenants[n].poll_wiring([c for c in configurations if c.tenant == n],
                                          force=force) for n in names),
            return_exceptions=True)
        wirings: dict[str, Any] = {}
        errors: list[str] = []
        fetched: list[datetime] = []
        for name, answer in zip(names, answers, strict=True):
            if isinstance(answer, BaseException):
                error = service_error(answer, what="Event Grid wiring").message
                errors.append(f"tenant {name}: {error}")
                continue
            wirings.update(answer.wirings)
            if answer.error:
                errors.append(f"tenant {name}: {answer.error}")
            if answer.fetched_at is not None:
                fetched.append(answer.fetched_at)
        return WiringSnapshot(wirings, min(fetched, default=None),
                              "; ".join(errors) or None)

    async def _tenants_events(self) -> EventBatch | None:
        """Every tenant's queue read at once, as one batch (a failed queue named)."""
        names = [n for n, m in self.tenants.items() if m.settings.queue_configured]
        if not names:
            return None
        answers = await asyncio.gather(*(self.tenants[n].poll_events() for n in names))
        batches = [(n, b) for n, b in zip(names, answers, strict=True) if b is not None]
        if not batches:
            return None
        errors = [f"tenant {n}: {b.error}" for n, b in batches if b.error]
        good = [b for _n, b in batches if b.error is None]
        if good:
            self.fetched_at["events"] = max(b.fetched_at for b in good)
        first = batches[0][1]
        depths = [b.depth for _n, b in batches if b.depth is not None]
        return EventBatch(
            mode=first.mode, fetched_at=max(b.fetched_at for _n, b in batches),
            events=tuple(e for _n, b in batches for e in b.events),
            duplicates=tuple(e for _n, b in batches for e in b.duplicates),
            undecodable=tuple(u for _n, b in batches for u in b.undecodable),
            redelivered=sum(b.redelivered for _n, b in batches),
            depth=sum(depths) if depths else None,
            truncated=any(b.truncated for _n, b in batches),
            warning="; ".join(b.warning for _n, b in batches if b.warning) or None,
            error="; ".join(errors) or None,
            task_results=tuple(t for _n, b in batches for t in b.task_results))

    async def _ensure_events(self) -> Any:
        if self._events is not None or self._events_tried:
            return self._events
        self._events_tried = True
        try:
            await asyncio.to_thread(_import_sdks)
        except BaseException:
            # A poll cancelled here (Ctrl+R restarts the events worker, above all at start-up)
            # must not leave the queue unread for the whole session: the next poll tries again.
            self._events_tried = False
            raise
        from services.azure.clients import make_async_credential, settings_queue_client
        from services.azure.eventsource import EventSource

        settings = self.settings
        try:
            credential = None
            if settings.queue_account_url and not settings.queue_connection_string:
                if self._credential is None:
                    self._credential = make_async_credential(settings)
                credential = self._credential
            queue = settings_queue_client(settings, credential)
            mode: Mode = "consume" if settings.queue_mode == "consume" else "peek"
            hooks: dict[str, Any] = {}
            if settings.tasks:
                runner = self._start_tasks(queue)
                if runner is None:
                    # Consuming without running the tasks would delete the messages their
                    # runner needs: leave them in the queue.
                    mode = "peek"
                else:
                    from services.azure.tasks import TASK_CONCURRENCY

                    # Side by side: the tail keeps moving while a message's tasks run.
                    hooks = {"visibility_timeout": runner.visibility_timeout(),
                             "before_delete": runner.handle,
                             "hook_concurrency": TASK_CONCURRENCY}
            elif mode == "consume" and not self._take_consume_lock(queue):
                # Another process consumes this queue (`aumwatch tasks` above all): taking
                # its messages would keep its tasks from ever running.
                mode = "peek"
            journal = self._open_journal() if mode == "consume" else None
            # A peek sees only what no consumer has taken yet: the rest is in the journal.
            self._follows_journal = mode == "peek"
            self._events = EventSource(queue, clock=self.clock, journal=journal, mode=mode,
                                       identity=settings.queue_identity, **hooks)
        except Exception as exc:
            self._events_error = f"events queue: {exc}"
        return self._events

    def _start_tasks(self, queue: Any) -> Any:
        """The task runner, when this dashboard may run the declared tasks: consume mode, not
        read-only, and no other runner on the queue (services/azure/tasks.py's lock). Else
        None, with the reason in :attr:`tasks_refusal`."""
        import os

        from services.azure.tasks import (
            RunnerLock,
            TaskRunner,
            TasksRefused,
            known_secrets,
            require_consume,
        )

        settings = self.settings
        try:
            require_consume(settings.queue_mode)
            if settings.read_only:
                raise TasksRefused("read-only mode: this dashboard runs no tasks (a pre task "
                                   "may cancel a run); events are peeked and left for "
                                   "`aumwatch tasks`")
            lock = RunnerLock(settings.data_dir, str(queue.url), holder="aumwatch dashboard")
            lock.acquire()
        except TasksRefused as exc:
            self.tasks_refusal = f"tasks not run here: {exc}"
            return None
        except OSError as exc:
            self.tasks_refusal = f"tasks not run here: cannot take the runner lock: {exc}"
            return None
        environ = dict(os.environ)
        if settings.config_path is not None:
            # A post task calling `aumwatch report` reads the same config file.
            environ["AUMWATCH_CONFIG"] = str(settings.config_path)
        try:
            runner = TaskRunner(
                settings.tasks, self._open_journal(), self.clock, rules=settings.window_rules,
                cancel=self.cancel,
                secrets=known_secrets(settings.queue_connection_string, settings.token),
                environ=environ, on_result=self._task_results.append,
                run_statuses=self._run_statuses, world=settings.world)
            runner.recover()
        except Exception as exc:  # no journal: no task may run (each is recorded first)
            lock.release()
            self.tasks_refusal = f"tasks not run here: {exc}"
            return None
        self._runner_lock = lock
        self._task_runner = runner
        return runner

    async def _run_statuses(self, correlation_ids: Any) -> Any:
        """Resource Graph's status of runs, for the task runner's "is this pre task's run
        already cancelled?" (services/azure/tasks.py); raises when it cannot be read."""
        from services.azure.tasks import graph_run_statuses

        await self._ensure_graph()
        return await graph_run_statuses(self._runner)(correlation_ids)

    def _take_consume_lock(self, queue: Any) -> bool:
        """Take the queue's one-consumer lock (services/azure/tasks.py's RunnerLock) for a
        consume-mode dashboard that runs no tasks. False when another process holds it (or
        it cannot be taken), with the reason in :attr:`consume_refusal`."""
        from services.azure.tasks import RunnerLock, TasksRefused

        lock = RunnerLock(self.settings.data_dir, str(queue.url), holder="aumwatch dashboard")
        try:
            lock.acquire()
        except TasksRefused as exc:
            self.consume_refusal = (f"events peeked, not consumed: {exc}; the events it "
                                    "consumed are read from the journal")
            return False
        except OSError as exc:
            self.consume_refusal = ("events peeked, not consumed: cannot take the queue's "
                                    f"consumer lock: {exc}")
            return False
        self._runner_lock = lock
        return True

    @property
    def runs_tasks(self) -> bool:
        """Whether this dashboard runs the declared tasks."""
        if self.tenants:
            return any(m.runs_tasks for m in self.tenants.values())
        return self._task_runner is not None

    async def drain_tasks(self, timeout: float | None = None) -> bool:
        """Wait, at most ``timeout`` seconds, for the messages whose tasks run in the
        background (the event source's hooks) to be recorded and deleted or released. True
        when none is left (also when this dashboard runs no tasks)."""
        drain = getattr(self._events, "drain", None)
        if drain is None:
            return True
        return bool(await drain(timeout))

    async def poll_events(self) -> EventBatch | None:
        """One read of the events queue; None when no queue is configured. Never raises."""
        if self.tenants and not self.closed:
            return await self._tenants_events()
        if not self.settings.queue_configured or self.closed:
            return None
        source = await self._ensure_events()
        now = self.clock.now()
        if source is None:
            return EventBatch(mode="peek", fetched_at=now, error=self._events_error)
        batch: EventBatch
        if self._task_runner is not None:
            # A poll that runs tasks must not be cut short: a refresh restarts the poll
            # worker, and cancelling it would abandon a task mid-run with its claim left
            # "running". The poll runs on by itself; the next caller awaits the same one.
            if self._events_poll is None or self._events_poll.done():
                self._events_poll = asyncio.ensure_future(source.poll())
            batch = await asyncio.shield(self._events_poll)
        else:
            batch = await source.poll()
        if self._follows_journal:
            batch = self._with_journaled(batch)
        if batch.error is None:
            self.fetched_at["events"] = batch.fetched_at
        if self._task_results:
            # Task news travels in the batch: the task runs finished since the last one.
            results, self._task_results = tuple(self._task_results), []
            batch = dataclasses.replace(batch, task_results=results)
        return batch

    def _with_journaled(self, batch: EventBatch) -> EventBatch:
        """``batch`` (a peek) plus the events the queue's consumer journaled since the last
        read: it deletes them once handled, so a peek alone would rarely see a pre-event
        and the watchdog would call it missing. The first read takes the latest
        :data:`JOURNAL_BACKLOG` rows. An event is shown once, whichever side saw it first.

        Only rows of this very queue are read: its full identity (account URL + queue name,
        normalised, and the stand-in world: ``Settings.queue_identity``), never its name
        alone. Rows without an identity (journaled before it was kept) are never read back:
        whose they are cannot be told."""
        from services.azure.journal import JournalError, dedupe_key_text
        from services.domain.boundary import ReceivedEvent
        from services.domain.events import EventDecodeError, decode_message

        identity = self.settings.queue_identity
        if identity is None:
            return batch  # the queue's endpoint cannot be told: nothing is surely ours
        if self._journal is None and not Path(self.settings.journal_path).exists():
            return batch  # no consumer has journaled anything (and peeking creates no journal)
        try:
            journal = self._open_journal()
            if self._journal_seq is None:
                rows = journal.queue_events(identity, JOURNAL_BACKLOG)
            else:
                rows = journal.events_after(self._journal_seq, JOURNAL_BACKLOG,
                                            queue_identity=identity)
        except (JournalError, OSError):
            return batch  # the peek stands alone; the next poll tries again
        if rows:
            self._journal_seq = rows[-1].seq
        elif self._journal_seq is None:
            self._journal_seq = 0
        fresh = [item for item in batch.events if self._first_sight(item.event.dedupe_key)]
        for row in rows:
            try:
                events = decode_message(row.raw_text)
            except (EventDecodeError, ValueError):
                continue  # journaled, so it decoded once; a row that no longer does is skipped
            for event in events:
                if (dedupe_key_text(event.dedupe_key) == row.dedupe_key
                        and self._first_sight(event.dedupe_key)):
                    fresh.append(ReceivedEvent(event, row.received_at, row.message_id, None))
        return dataclasses.replace(batch, events=tuple(fresh))

    def _first_sight(self, key: tuple[str, str]) -> bool:
        if key in self._shown_keys:
            return False
        self._shown_keys[key] = None
        if len(self._shown_keys) > SHOWN_KEYS_LIMIT:  # bounded: drop the oldest
            del self._shown_keys[next(iter(self._shown_keys))]
        return True

    # -- cancel ------------------------------------------------------------------------------
    def verified_cancels(self) -> dict[str, VerifiedCancel]:
        """Run key -> its verified cancel (when, who), from the audit journal, in this view's
        stand-in world only (``[azure] world``; none on real Azure). Empty when there is no
        journal yet or it cannot be read (the dashboard then learns from Resource Graph
        alone)."""
        return self._read_verified_cancels() or {}

    def _read_verified_cancels(self) -> dict[str, VerifiedCancel] | None:
        """As :meth:`verified_cancels`, None when the journal could not be read."""
        path = self.settings.journal_path
        if self._journal is None and not Path(path).exists():
            return None  # reading must not create a journal
        from services.azure.journal import JournalError

        try:
            cancels: dict[str, VerifiedCancel] = self._open_journal().verified_cancels(
                self.settings.world)
        except (JournalError, OSError):
            return None
        return cancels

    def _open_journal(self) -> Any:
        if self._journal is None:
            from services.azure.journal import Journal

            self._journal = Journal(self.settings.journal_path)
        return self._journal

    async def _ensure_canceller(self, correlation_id: str) -> Any:
        if self._cancel_session is not None:
            return self._cancel_session.canceller
        await asyncio.to_thread(_import_sdks)
        from services.azure.cancel import open_canceller
        from services.azure.clients import make_async_credential
        from services.domain.runid import parse_run_id

        if self._credential is None:
            self._credential = make_async_credential(self.settings)
        subscription = parse_run_id(correlation_id).subscription_id
        # Every cancel is audited: without a journal there is no canceller (the caller
        # turns the error into a refusal naming the file).
        journal = self._open_journal()
        self._cancel_session = await open_canceller(self.settings, self._credential,
                                                    subscription, journal, self.clock)
        return self._cancel_session.canceller

    async def cancel(self, target: CancelTarget) -> CancelResult:
        """Cancel ``target`` through :class:`~services.azure.cancel.Canceller`; never raises.
        With profiles, it is sent by the run's tenant's monitor (that tenant's credential)."""
        if self.tenants and not self.settings.read_only:
            owner = self._tenant_of(target.correlation_id)
            if owner is None:
                return CancelResult(Outcome.REFUSED, "refused: the run's tenant is not known "
                                    "(its configuration was not read through any profile)",
                                    target.correlation_id)
            config = self._configs_by_id.get(
                target.correlation_id.lower().split(
                    "/providers/microsoft.maintenance/applyupdates/")[0])
            if config is not None:
                target = dataclasses.replace(target, tenant=config.tenant,
                                             tenant_id=config.tenant_id)
            return await owner.cancel(target)
        if self.settings.read_only:
            return CancelResult(Outcome.REFUSED, "refused: read-only mode: cancelling is "
                                "disabled", target.correlation_id)
        if target.tenant_id is None:
            # Issue 19: the tenant owning the run's subscription, as Resource Graph said
            # (a cancel through a delegation is marked unconfirmed by Microsoft).
            config = self._configs_by_id.get(target.correlation_id.lower().split(
                "/providers/microsoft.maintenance/applyupdates/")[0])
            if config is not None and config.tenant_id:
                target = dataclasses.replace(target, tenant_id=config.tenant_id)
        try:
            canceller = await self._ensure_canceller(target.correlation_id)
        except Exception as exc:
            return CancelResult(Outcome.REFUSED, "refused: "
                                + service_error(exc, what="preparing the cancel").message,
                                target.correlation_id)
        result: CancelResult = await canceller.cancel(target)
        return result

    # -- shutdown ----------------------------------------------------------------------------
    async def close(self) -> None:
        """Close every client, the credential and the journal. Idempotent."""
        if self.closed:
            return
        self.closed = True
        for child in self.tenants.values():
            with contextlib.suppress(Exception):
                await child.close()
        if self._task_runner is not None:
            # End running tasks' process groups and let the poll record them interrupted
            # (a row still left running is recorded so by the next runner's start).
            with contextlib.suppress(Exception):
                self._task_runner.request_stop()
            if self._events_poll is not None and not self._events_poll.done():
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(self._events_poll),
                                           TASK_STOP_WAIT.total_seconds())
            # The tasks running in the background: recorded, their messages released.
            with contextlib.suppress(BaseException):
                await self.drain_tasks(TASK_STOP_WAIT.total_seconds())
        if self._runner_lock is not None:
            self._runner_lock.release()
        for closer in (self._runner, self._cancel_session,
                       getattr(self._events, "queue", None), self._credential):
            if closer is None or not hasattr(closer, "close"):
                continue
            try:
                result = closer.close()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # closing is best effort; the process is going away
                pass
        if self._journal is not None:
            try:
                self._journal.close()
            except Exception:
                pass
