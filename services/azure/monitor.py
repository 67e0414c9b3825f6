"""The dashboard's data side: one object that polls every source and cancels runs.

The Textual app never touches a client. Its workers call :class:`Monitor`'s coroutines, each
of which returns plain immutable data (a :class:`~services.domain.model.Fetched`, an
:class:`~services.azure.eventsource.EventBatch`, a
:class:`~services.azure.cancel.CancelResult`), and post
that in a message. The monitor:

* builds its clients lazily, on the first poll, after importing the Azure SDKs in a thread
  (an import of azure-mgmt-* takes long enough to be felt; the first frame must not wait);
* shares one Resource Graph :class:`~services.azure.resourcegraph.Governor` (real time: the quota
  is) between the configuration, run and machine queries;
* has its Resource Graph runner measure the clock skew from the servers' ``Date`` header and
  apply it to a :class:`~services.domain.clock.SystemClock` (a test or scenario clock is left
  alone). The runner is the one owner of the correction: it measures against the already
  corrected clock and sets the total; the monitor only reads it (it used to add the total
  again, doubling the skew on every poll);
* records when each source last answered (``ages``);
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
import importlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from services.azure.cancel import CancelResult, CancelTarget, Outcome
from services.azure.eventsource import EventBatch, Mode
from services.azure.resourcegraph import Governor, GovernorState
from services.domain.clock import Clock, SystemClock
from services.domain.errors import ServiceError, service_error
from services.domain.model import Configuration, Fetched, Machine, Run
from services.domain.wiring import QueueTarget
from services.settings import Settings

#: How long closing waits for running tasks to stop and be recorded (they get SIGTERM, then
#: SIGKILL after services/azure/tasks.py's grace).
TASK_STOP_WAIT = timedelta(seconds=6)
#: Journaled events read back at the first poll of a dashboard peeking beside a consumer.
JOURNAL_BACKLOG = 500
#: Events remembered as shown (peeked or read back from the journal), so none shows twice.
SHOWN_KEYS_LIMIT = 20_000
#: Source names, in the order the status bar lists them.
SOURCES = ("configs", "runs", "events")
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
        self._canceller: Any = None
        self._maintenance: Any = None
        self._wiring: Any = None
        # Issue 12: the declared [[tasks]], run by this dashboard when it may (see
        # _start_tasks); otherwise why not, for the status line.
        self._task_runner: Any = None
        self._runner_lock: Any = None
        self.tasks_refusal: str | None = None
        # Why a consume-mode dashboard with no [[tasks]] peeks instead (another consumer).
        self.consume_refusal: str | None = None
        self._task_results: list[Any] = []
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

    def ages(self, now: datetime | None = None) -> dict[str, timedelta | None]:
        """How old each source's data is (None: never fetched)."""
        at = now or self.clock.now()
        return {name: (at - when if when is not None else None)
                for name, when in self.fetched_at.items()}

    @property
    def queue_configured(self) -> bool:
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
    async def poll_configs(self) -> Fetched[Configuration]:
        """Every configuration in scope (one paged Resource Graph query)."""
        await self._ensure_graph()
        try:
            fetched = await self._configs.fetch()
        except Exception as exc:
            raise service_error(exc, what="configurations query") from exc
        finally:
            self._note_skew()
        self.fetched_at["configs"] = self.clock.now()
        return fetched

    async def poll_runs(self) -> Fetched[Run]:
        """The runs Resource Graph shows (observed only: the dashboard's state merges them
        with the schedules, the events and the verified cancels)."""
        await self._ensure_graph()
        try:
            fetched = await self._runs.fetch_observed()
        except Exception as exc:
            raise service_error(exc, what="runs query") from exc
        finally:
            self._note_skew()
        self.fetched_at["runs"] = self.clock.now()
        return fetched

    async def poll_machines(self, correlation_id: str) -> Fetched[Machine]:
        """The machines of one run."""
        await self._ensure_graph()
        try:
            return await self._machines.fetch(correlation_id)
        except Exception as exc:
            raise service_error(exc, what="machines query") from exc
        finally:
            self._note_skew()

    @property
    def watched_queue(self) -> QueueTarget | None:
        """The watched queue as Event Grid names it (None: none configured, or unknown)."""
        from services.azure.eventgrid import watched_queue

        return watched_queue(self.settings)

    async def poll_wiring(self, configurations: Sequence[Configuration], *,
                          force: bool = False) -> Any:
        """The Event Grid wiring of ``configurations`` (a
        :class:`~services.azure.eventgrid.WiringSnapshot`): Azure is read once per
        ``[events] wiring_refresh`` (or now, with ``force``), the cache answers otherwise.
        A failed read comes back as the snapshot's ``error``; raises only when the
        clients cannot be built."""
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
            return await self._wiring.fetch(configurations, force=force)
        except Exception as exc:  # fetch maps Azure's answers itself; this is a bug's net
            raise service_error(exc, what="Event Grid wiring") from exc
        finally:
            self._note_skew()

    async def _ensure_events(self) -> Any:
        if self._events is not None or self._events_tried:
            return self._events
        self._events_tried = True
        await asyncio.to_thread(_import_sdks)
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
                                       **hooks)
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
                environ=environ, on_result=self._task_results.append)
            runner.recover()
        except Exception as exc:  # no journal: no task may run (each is recorded first)
            lock.release()
            self.tasks_refusal = f"tasks not run here: {exc}"
            return None
        self._runner_lock = lock
        self._task_runner = runner
        return runner

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
        return self._task_runner is not None

    async def drain_tasks(self, timeout: float | None = None) -> bool:
        """Wait, at most ``timeout`` seconds, for the messages whose tasks run in the
        background (the event source's hooks) to be recorded and deleted or released. True
        when none is left (also when this dashboard runs no tasks)."""
        drain = getattr(self._events, "drain", None)
        if drain is None:
            return True
        return bool(await drain(timeout))

    def take_task_results(self) -> list[Any]:
        """The task results (services.domain.tasks.TaskResult) since the last call."""
        results, self._task_results = self._task_results, []
        return results

    async def poll_events(self) -> EventBatch | None:
        """One read of the events queue; None when no queue is configured. Never raises."""
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
        return batch

    def _with_journaled(self, batch: EventBatch) -> EventBatch:
        """``batch`` (a peek) plus the events the queue's consumer journaled since the last
        read: it deletes them once handled, so a peek alone would rarely see a pre-event
        and the watchdog would call it missing. The first read takes the latest
        :data:`JOURNAL_BACKLOG` rows. An event is shown once, whichever side saw it first."""
        import dataclasses

        from services.azure.eventsource import ReceivedEvent
        from services.azure.journal import JournalError, dedupe_key_text
        from services.domain.events import EventDecodeError, decode_message

        if self._journal is None and not Path(self.settings.journal_path).exists():
            return batch  # no consumer has journaled anything (and peeking creates no journal)
        try:
            journal = self._open_journal()
            if self._journal_seq is None:
                rows = journal.events(limit=JOURNAL_BACKLOG)
            else:
                rows = journal.events_after(self._journal_seq, JOURNAL_BACKLOG)
        except (JournalError, OSError):
            return batch  # the peek stands alone; the next poll tries again
        if rows:
            self._journal_seq = rows[-1].seq
        elif self._journal_seq is None:
            self._journal_seq = 0
        fresh = [item for item in batch.events if self._first_sight(item.event.dedupe_key)]
        queue_name = (self.settings.queue_name or "").lower()
        for row in rows:
            if (row.source_queue or "").lower() != queue_name:
                continue  # another queue's events, journaled in the same data directory
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
    def verified_cancels(self) -> dict[str, datetime]:
        """Run key -> when its cancel was verified, from the audit journal (so a restart
        right after a cancel still shows the run Cancelled). Empty when there is no journal
        yet or it cannot be read (the dashboard then learns from Resource Graph alone)."""
        path = self.settings.journal_path
        if self._journal is None and not Path(path).exists():
            return {}  # reading must not create a journal
        from services.azure.journal import JournalError

        try:
            cancels: dict[str, datetime] = self._open_journal().verified_cancels()
        except (JournalError, OSError):
            return {}
        return cancels

    def _open_journal(self) -> Any:
        if self._journal is None:
            from services.azure.journal import Journal

            self._journal = Journal(self.settings.journal_path)
        return self._journal

    async def _ensure_canceller(self, correlation_id: str) -> Any:
        if self._canceller is not None:
            return self._canceller
        await asyncio.to_thread(_import_sdks)
        from services.azure.cancel import Canceller, credential_identity, maintenance_client_calls
        from services.azure.clients import (
            CANCEL_CLIENT_OPTIONS,
            async_maintenance_client,
            cloud_for,
            make_async_credential,
        )
        from services.domain.runid import parse_run_id

        if self._credential is None:
            self._credential = make_async_credential(self.settings)
        subscription = parse_run_id(correlation_id).subscription_id
        # Every cancel is audited: without a journal there is no canceller (the caller
        # turns the error into a refusal naming the file).
        journal = self._open_journal()
        self._maintenance = async_maintenance_client(self.settings, self._credential,
                                                     subscription, **CANCEL_CLIENT_OPTIONS)
        send, read_back = maintenance_client_calls(self._maintenance)
        identity = await credential_identity(self._credential, cloud_for(self.settings)
                                             .token_scope)
        self._canceller = Canceller(
            send, read_back, journal, self.clock, self.settings.window_rules,
            read_only=self.settings.read_only, api_version=self.settings.cancel_api_version,
            identity=identity)
        return self._canceller

    async def cancel(self, target: CancelTarget) -> CancelResult:
        """Cancel ``target`` through :class:`~services.azure.cancel.Canceller`; never raises."""
        if self.settings.read_only:
            return CancelResult(Outcome.REFUSED, "refused: read-only mode: cancelling is "
                                "disabled", target.correlation_id)
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
        for closer in (self._runner, self._maintenance,
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
