"""Running the operator's pre and post tasks for maintenance events (docs/architecture.md
"Tasks").

A :class:`TaskRunner` is handed each consumed message's decoded events (it is the event
source's ``before_delete`` hook, so the message is deleted only once its task runs are
recorded). For every task the config file declares for an event:

* the task is **claimed** in the journal first, keyed by (run, event kind, task): a key
  already there (a duplicate delivery, a run left interrupted) means the task does not run
  and the result is ``skipped-duplicate``;
* the tasks of one (run, event kind) are handled by one message at a time, in the declared
  order: a second delivery handled side by side waits, then finds them claimed;
* a ``pre`` task of a run known to be cancelled (a verified cancel in the journal, Resource
  Graph's status, the event's status: services/domain/tasks.py, ``known_cancellation``) is
  recorded ``skipped-cancelled`` and not run;
* a ``pre`` task whose event is handled only after its run has started is recorded
  ``skipped-late`` and not run (services/domain/tasks.py, ``too_late_for_pre``);
* it runs with ``asyncio.create_subprocess_exec`` from its argument list (no shell), in its
  own process group (a timeout or a stop kills the whole group), with the event's JSON on
  stdin and in a private file (on Linux it dies with the runner: :func:`child_guard`), and
  a minimal environment (services/domain/tasks.py says
  which variables it keeps; no secret of aumwatch's own reaches it);
* its stdout and stderr are captured together, bounded (head and tail, the cut said), and
  scrubbed of secrets before they reach the journal or anything printed;
* a failed or timed-out ``pre`` task with ``cancel_on_failure`` cancels the run while its
  window is open, through the :class:`services.azure.cancel.Canceller` only (which re-checks
  the window at send time, verifies and audits, here with the task as initiator); the run is
  recorded as cancelled only when the cancel is verified.

At start (:meth:`TaskRunner.recover`) rows left ``running`` by a runner that died are
recorded ``interrupted`` and are not run again. :class:`RunnerLock` keeps one runner per
queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from services.azure.cancel import CancelResult, CancelTarget
from services.azure.eventsource import EventSource, Postponed
from services.azure.journal import Journal, JournalError, TaskRunRow
from services.domain.clock import Clock, ensure_utc, iso_z
from services.domain.events import MaintenanceEvent
from services.domain.tasks import (
    OUTPUT_LIMIT,
    TaskOutcome,
    TaskResult,
    TaskSpec,
    TaskState,
    cancel_decision,
    is_cancelled_status,
    join_output,
    known_cancellation,
    outcome_of,
    run_statuses_query,
    scrub_output,
    task_environment,
    tasks_for,
    too_late_for_pre,
)
from services.domain.window import WindowRules

#: Reads Resource Graph's status of several runs in one query: {run key (lower-case):
#: status} for the runs it shows; raises when it cannot be read (:func:`graph_run_statuses`).
RunStatusRead = Callable[[Sequence[str]], Awaitable[Mapping[str, str]]]
#: Sends one cancel (a :meth:`services.azure.cancel.Canceller.cancel`, possibly chosen per
#: subscription).
CancelFn = Callable[[CancelTarget], Awaitable[CancelResult]]
ResultSink = Callable[[TaskResult], None]
#: Brings the runner's clock to the server's time for one event's run (``aumwatch tasks``
#: measures the skew from Resource Manager's ``Date`` header, as ``aumwatch cancel`` does).
ClockSync = Callable[[MaintenanceEvent], Awaitable[None]]

#: How long a stopped task's group gets between SIGTERM and SIGKILL.
STOP_GRACE = timedelta(seconds=3)
#: How long a clock correction (one Resource Manager GET) may take before a task goes on.
CLOCK_SYNC_TIMEOUT = 10.0
#: How many messages' tasks ``aumwatch tasks`` and a dashboard run side by side (the event
#: source's ``hook_concurrency``): one slow pre-check must not hold back the pre-checks of
#: other configurations whose cancel windows close meanwhile.
TASK_CONCURRENCY = 8
#: How long a Resource Graph read of run statuses (or its failure) is reused: the messages
#: of one poll share one query, and a failing Resource Graph is not asked again per task.
GRAPH_STATUS_TTL = 30.0
#: How long one such read may take before the tasks go on without it.
GRAPH_STATUS_TIMEOUT = 10.0
#: How long a read waits for the other messages of its poll to ask for their runs too.
GRAPH_GATHER = 0.05
#: Seconds a received message stays hidden, renewed by the event source while its tasks
#: run: after a runner dies, its message's remaining tasks wait at most this long.
VISIBILITY_TIMEOUT = 60
#: How long the output readers may outlive the task (a child left holding the pipe).
READER_GRACE = 2.0
#: Environment variables whose values are secrets wherever they appear in a task's output.
SECRET_ENV = ("AUMWATCH_QUEUE_CONNECTION_STRING", "AUMWATCH_TOKEN", "AZURE_CLIENT_SECRET",
              "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY",
              "AZURE_CLIENT_CERTIFICATE_PASSWORD")


class TasksRefused(Exception):
    """Tasks cannot run in this set-up; the message says why and what to do."""


def known_secrets(*values: str | None, environ: Mapping[str, str] | None = None) -> list[str]:
    """Literal secret values to scrub from task output: ``values`` (the settings' connection
    string and token), the parts of a connection string that are keys, and the secret
    environment variables of :data:`SECRET_ENV`."""
    env = os.environ if environ is None else environ
    out: list[str] = []
    for value in (*values, *(env.get(name) for name in SECRET_ENV)):
        if not value:
            continue
        out.append(value)
        for part in value.split(";"):
            key, _, item = part.partition("=")
            if item and key.strip().lower() in ("accountkey", "sharedaccesssignature",
                                               "sharedaccesskey"):
                out.append(item.strip())
    return out


def event_document(event: MaintenanceEvent) -> str:
    """The JSON a task gets on stdin and in its event file: the decoded event (the CLI's
    contract fields) plus its raw ``data`` object."""
    doc: dict[str, Any] = dict(event.to_json())
    doc["data"] = dict(event.data)
    return json.dumps(doc, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and not ours to judge
    return True


#: prctl option: the signal a process gets when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1
#: How a task child whose runner died before its guard ran exits (nobody reads it).
ORPHAN_EXIT = 125


def _resolve_prctl() -> Callable[[int, int], int] | None:
    """libc's ``prctl``, resolved in the runner (never in a forked child: an import or a
    library load there widens the gap the guard closes). None off Linux or without libc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl: Callable[[int, int], int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _resolve_prctl()


def child_guard(parent_pid: int | None = None,
                prctl: Callable[[int, int], int] | None = _PRCTL) -> Callable[[], None]:
    """The ``preexec_fn`` of a task: in the forked child, before exec, have it killed when
    the runner dies (even by SIGKILL), then check that the runner still lives, and exit at
    once if it does not.

    ``parent_pid`` is the runner's pid, read before the fork (default: this process). The
    check after ``PR_SET_PDEATHSIG`` closes the race the signal alone leaves open: a runner
    killed between the fork and the prctl call never sends it, and the child, now the
    child of another process, would run its task on its own, unrecorded (issue 22 item 12).
    The function does no import and no allocation worth the name in the child.
    """
    parent = os.getpid() if parent_pid is None else parent_pid

    def guard() -> None:
        if prctl is not None:
            try:
                prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            except Exception:  # the getppid check below still holds
                pass
        if os.getppid() != parent:
            os._exit(ORPHAN_EXIT)

    return guard


class OutputCapture:
    """Reads a stream keeping only its first and last ``limit // 2`` bytes."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        self._half = limit // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    async def read(self, stream: asyncio.StreamReader) -> None:
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                return
            self.total += len(chunk)
            room = self._half - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            if chunk:
                self.tail += chunk
                if len(self.tail) > self._half:
                    del self.tail[:len(self.tail) - self._half]


class RunStatuses:
    """Resource Graph's status of the runs whose pre tasks are about to run, read for many
    runs in one query: the asks that come within :data:`GRAPH_GATHER` of each other (the
    messages of one poll) share it, and a read is reused for :data:`GRAPH_STATUS_TTL`
    seconds. A failed or slow read (:data:`GRAPH_STATUS_TIMEOUT`) is remembered as long:
    its reason is the answer, and the caller judges on the journal and the event alone."""

    def __init__(self, read: RunStatusRead, *, ttl: float = GRAPH_STATUS_TTL,
                 timeout: float = GRAPH_STATUS_TIMEOUT, gather: float = GRAPH_GATHER) -> None:
        self._read = read
        self._ttl = ttl
        self._timeout = timeout
        self._gather = gather
        #: run key -> (loop time read, status; None: Resource Graph does not show the run)
        self._known: dict[str, tuple[float, str | None]] = {}
        self._failed: tuple[float, str] | None = None
        self._wanted: set[str] = set()
        self._pending: asyncio.Future[None] | None = None
        #: How many queries were sent (for the tests and the docs' claim of one per poll).
        self.reads = 0

    def prefetch(self, correlation_ids: Sequence[str]) -> None:
        """Start reading the runs not known yet, without waiting: called as a message's
        hook starts, so the messages of one poll share a query even when their tasks then
        await other things (a clock correction) before they ask."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for correlation_id in correlation_ids:
            key = run_key(correlation_id)
            hit = self._known.get(key)
            if hit is None or now - hit[0] >= self._ttl:
                self._wanted.add(key)
        fresh_failure = self._failed is not None and now - self._failed[0] < self._ttl
        if self._wanted and self._pending is None and not fresh_failure:
            self._pending = asyncio.ensure_future(self._fetch())

    async def status(self, correlation_id: str) -> tuple[str | None, str | None]:
        """(Resource Graph's status of the run or None, None) when read; (None, why) when
        Resource Graph could not be read."""
        key = run_key(correlation_id)
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            hit = self._known.get(key)
            if hit is not None and now - hit[0] < self._ttl:
                return hit[1], None
            if self._failed is not None and now - self._failed[0] < self._ttl:
                return None, self._failed[1]
            self._wanted.add(key)
            if self._pending is None:
                self._pending = asyncio.ensure_future(self._fetch())
            await asyncio.shield(self._pending)

    async def _fetch(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(self._gather)  # the other messages of the poll ask too
        finally:
            keys, self._wanted = sorted(self._wanted), set()
            self._pending = None
        self.reads += 1
        try:
            found = await asyncio.wait_for(self._read(keys), self._timeout)
        except TimeoutError:
            self._failed = (loop.time(), f"no answer within {self._timeout:g}s")
            return
        except Exception as exc:  # judged without it (the class docstring)
            text = " ".join(str(exc).split())[:200] or type(exc).__name__
            self._failed = (loop.time(), text)
            return
        at = loop.time()
        statuses = {run_key(k): v for k, v in found.items()}
        for key in keys:
            self._known[key] = (at, statuses.get(key))


def graph_run_statuses(runner: Any) -> RunStatusRead:
    """A :data:`RunStatusRead` over a :class:`services.azure.resourcegraph.QueryRunner`."""
    from services.domain.runs import run_from_row

    async def read(correlation_ids: Sequence[str]) -> Mapping[str, str]:
        result = await runner.query(run_statuses_query(correlation_ids),
                                    what="run status query")
        out: dict[str, str] = {}
        for row in result.rows:
            run = run_from_row(row)
            if run is not None:
                out[run_key(run.correlation_id)] = run.status
        return out

    return read


class TaskRunner:
    """Runs the declared tasks for decoded events (see the module docstring).

    ``cancel`` sends a cancel through a Canceller (None: no cancel is possible, a
    cancel_on_failure task's failure is only reported). ``on_result`` is called with every
    handled task's :class:`TaskResult`, in order. ``environ`` is aumwatch's own environment,
    from which a task keeps only the safe variables. ``sync_clock`` (optional) corrects the
    clock against the server before a failed cancel_on_failure task's window is judged: a
    local clock minutes off would otherwise call an open window closed (or the reverse).
    ``run_statuses`` (optional) reads Resource Graph's status of runs: a pre task of a run
    known to be cancelled (:func:`services.domain.tasks.known_cancellation`: a verified
    cancel in the journal, Resource Graph's status, the event's own status) is recorded
    ``skipped-cancelled`` and not run; without it, or when Resource Graph cannot be read,
    the journal and the event decide alone and the task's reason says so.
    """

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        journal: Journal,
        clock: Clock,
        *,
        rules: WindowRules | None = None,
        cancel: CancelFn | None = None,
        secrets: Sequence[str] = (),
        environ: Mapping[str, str] | None = None,
        on_result: ResultSink | None = None,
        output_limit: int = OUTPUT_LIMIT,
        sync_clock: ClockSync | None = None,
        run_statuses: RunStatusRead | None = None,
        world: str | None = None,
    ) -> None:
        self.tasks = tuple(tasks)
        self._world = world  # the stand-in world whose verified cancels count (None: Azure)
        self._statuses = RunStatuses(run_statuses) if run_statuses is not None else None
        self._journal = journal
        self._clock = clock
        self._rules = rules if rules is not None else WindowRules()
        self._cancel = cancel
        self._secrets = tuple(secrets)
        self._environ = dict(os.environ if environ is None else environ)
        self._on_result = on_result
        self._limit = output_limit
        self._sync_clock = sync_clock
        self._stopping = False
        self._running: dict[int, asyncio.subprocess.Process] = {}
        #: (run key, event kind) -> [its lock, how many handlers hold or wait for it].
        self._sequences: dict[tuple[str, str], list[Any]] = {}
        self.results: list[TaskResult] = []

    @property
    def stopping(self) -> bool:
        return self._stopping

    def visibility_timeout(self) -> int:
        """Seconds a received message stays hidden: :data:`VISIBILITY_TIMEOUT`, whatever the
        tasks' timeouts. The event source renews it while the message's tasks run, so a
        message whose runner died comes back within it, for its remaining tasks to run
        before their run starts (not after every task's timeout, as a timeout covering
        them all would)."""
        return VISIBILITY_TIMEOUT

    # -- start and stop ------------------------------------------------------------------------
    def recover(self) -> list[TaskResult]:
        """Record as ``interrupted`` the task runs a dead runner left ``running``; they are
        not run again. Returns their results (also passed to ``on_result``)."""
        rows = self._journal.mark_interrupted_task_runs(
            ended_at=ensure_utc(self._clock.now()), is_alive=_pid_alive)
        return [self._emit(_result_of_row(row, TaskOutcome.INTERRUPTED,
                                          self._run_id_as_sent(row.run_id)))
                for row in rows]

    def _run_id_as_sent(self, key: str) -> str:
        """The run's id as its events spell it (task_runs keys runs lower-case; the JSON
        lines keep the event's case, as every other line does), else ``key``."""
        try:
            for item in self._journal.events_for_run(key):
                if item.correlation_id and run_key(item.correlation_id) == run_key(key):
                    return str(item.correlation_id)
        except Exception:  # the key is the same run, only in lower case
            pass
        return key

    def request_stop(self) -> None:
        """Stop: start no further task, and end the running ones' process groups (SIGTERM,
        then SIGKILL after :data:`STOP_GRACE`); they are recorded ``interrupted``."""
        self._stopping = True
        for proc in list(self._running.values()):
            signal_group(proc, signal.SIGTERM)
        if self._running:
            asyncio.get_running_loop().call_later(
                STOP_GRACE.total_seconds(), self._kill_remaining)

    def _kill_remaining(self) -> None:
        for proc in list(self._running.values()):
            signal_group(proc, signal.SIGKILL)

    # -- the before_delete hook ----------------------------------------------------------------
    async def handle(self, events: tuple[MaintenanceEvent, ...]) -> bool:
        """Run the tasks of one message's events; True when every task run is recorded
        (finished, interrupted or skipped), so the message may be deleted. Stopping before
        the last raises :class:`~services.azure.eventsource.Postponed`: the message goes
        back to the queue at once and the rest runs after a restart (their keys are
        unclaimed). A journal failure propagates: the message then stays in the queue."""
        if self._statuses is not None:
            self._prefetch_statuses(events)
        for event in events:
            todo = tasks_for(self.tasks, event)
            if not todo:
                continue
            async with self._in_sequence(event):
                for task in todo:
                    if self._stopping:
                        raise Postponed("stopping before every task of the message ran")
                    await self.run_one(task, event)
        return True

    def _prefetch_statuses(self, events: tuple[MaintenanceEvent, ...]) -> None:
        """Start the Resource Graph read of the runs of ``events`` whose pre tasks will ask
        for it (not those the event or the journal already says are cancelled)."""
        assert self._statuses is not None
        try:
            verified = self._journal.verified_cancels(self._world)
        except JournalError:
            verified = {}
        self._statuses.prefetch([
            event.correlation_id for event in events
            if any(task.on == "pre" for task in tasks_for(self.tasks, event))
            and not is_cancelled_status(event.status)
            and run_key(event.correlation_id) not in verified])

    @contextlib.asynccontextmanager
    async def _in_sequence(self, event: MaintenanceEvent) -> AsyncIterator[None]:
        """Hold the (run, event kind) of ``event`` while its tasks are handled: a second
        delivery of the event handled side by side waits until the first has claimed (and
        run) every task, in the declared order, then finds each claimed and runs nothing.
        Without it, the copy found the first task claimed and went on to claim and run the
        second while the first still ran (issue 22 item 13)."""
        key = (run_key(event.correlation_id), str(event.kind))
        entry = self._sequences.get(key)
        if entry is None:
            entry = self._sequences[key] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                self._sequences.pop(key, None)

    async def run_one(self, task: TaskSpec, event: MaintenanceEvent) -> TaskResult:
        """Claim, run and record one task for one event."""
        if task.cancel_on_failure:
            await self._correct_clock(event)  # its times and window on the server's clock
        started = ensure_utc(self._clock.now())
        seq = self._journal.claim_task_run(
            run_id=event.correlation_id, event_kind=str(event.kind), task=task.name,
            configuration=event.configuration_name, started_at=started, pid=os.getpid())
        if seq is None:
            return self._emit(self._skipped(task, event, started))
        note: str | None = None
        if task.on == "pre":
            known, note = await self._known_cancelled(event)
            if known is not None:
                now = ensure_utc(self._clock.now())
                why = f"pre task not run: the run is cancelled ({known})"
                self._journal.finish_task_run(seq, state=str(TaskState.SKIPPED_CANCELLED),
                                              ended_at=now, detail=why)
                return self._emit(TaskResult(
                    task=task.name, correlation_id=event.correlation_id,
                    event_kind=str(event.kind), outcome=TaskOutcome.SKIPPED_CANCELLED,
                    started=started, ended=now, configuration=event.configuration_name,
                    reason=why))
        late = too_late_for_pre(event, started)
        if late is not None:
            late = _with_note(late, note)
            self._journal.finish_task_run(seq, state=str(TaskState.SKIPPED_LATE),
                                          ended_at=started, detail=late)
            return self._emit(TaskResult(
                task=task.name, correlation_id=event.correlation_id,
                event_kind=str(event.kind), outcome=TaskOutcome.SKIPPED_LATE, started=started,
                ended=started, configuration=event.configuration_name, reason=late))
        try:
            exit_code, timed_out, interrupted, output = await self._execute(task, event)
        except Exception as exc:  # the claim must still be finished, never left "running"
            exit_code, timed_out, interrupted = None, False, False
            output = self._scrub(f"aumwatch could not run the task: {type(exc).__name__}: "
                                 f"{exc}")
        outcome = (TaskOutcome.INTERRUPTED if interrupted
                   else outcome_of(exit_code, timed_out=timed_out))
        if task.cancel_on_failure and outcome in (TaskOutcome.FAILED, TaskOutcome.TIMEOUT):
            await self._correct_clock(event)  # the window is judged on the server's time
        ended = ensure_utc(self._clock.now())
        reason: str | None = None
        cancelled = False
        if outcome is TaskOutcome.INTERRUPTED:
            reason = "stopped while running (SIGTERM/SIGINT); not re-run"
        else:
            decision = cancel_decision(task, outcome, exit_code, event, ended, self._rules)
            reason = decision.reason
            if decision.cancel:
                cancelled, reason = await self._cancel_run(event, decision.reason,
                                                           decision.initiator)
                ended = ensure_utc(self._clock.now())
            reason = _with_note(reason, note)
        self._journal.finish_task_run(
            seq, state=str(outcome), ended_at=ended, exit_code=exit_code, output=output,
            detail=reason, cancelled_run=cancelled)
        return self._emit(TaskResult(
            task=task.name, correlation_id=event.correlation_id, event_kind=str(event.kind),
            outcome=outcome, exit_code=exit_code, cancelled_run=cancelled, started=started,
            ended=ended, configuration=event.configuration_name, reason=reason,
            output=output))

    # -- internals -----------------------------------------------------------------------------
    async def _known_cancelled(self, event: MaintenanceEvent) -> tuple[str | None, str | None]:
        """(Which fact says the event's run is cancelled, or None; a note for the task's
        reason when a fact could not be part of the judgement)."""
        notes: list[str] = []
        verified = None
        try:
            verified = self._journal.verified_cancels(self._world).get(
                run_key(event.correlation_id))
        except JournalError as exc:  # judged on the other facts; the reason says so
            notes.append(f"the journal's verified cancels could not be read ({exc})")
        graph: str | None = None
        # Resource Graph is asked only when the journal and the event have not decided, and
        # not at all without a reader (no credential: said once at start-up).
        if (verified is None and not is_cancelled_status(event.status)
                and self._statuses is not None):
            graph, error = await self._statuses.status(event.correlation_id)
            if error is not None:
                notes.append(f"Resource Graph's status of the run could not be read ({error}): "
                             "judged on the journal and the event only")
        found = known_cancellation(verified_cancel_at=verified.at if verified else None,
                                   graph_status=graph,
                                   event_status=event.status)
        return found, (None if found is not None or not notes else "; ".join(notes))

    def _skipped(self, task: TaskSpec, event: MaintenanceEvent, now: Any) -> TaskResult:
        earlier = [r for r in self._journal.task_runs(event.correlation_id)
                   if r.task == task.name and r.event_kind == str(event.kind)]
        if earlier:
            row = earlier[0]
            why = (f"already handled for this run and event kind ({row.state}, started "
                   f"{iso_z(row.started_at, fraction=True)}); not run again")
        else:
            why = "already handled for this run and event kind; not run again"
        return TaskResult(task=task.name, correlation_id=event.correlation_id,
                          event_kind=str(event.kind), outcome=TaskOutcome.SKIPPED_DUPLICATE,
                          started=now, ended=now, configuration=event.configuration_name,
                          reason=why)

    async def _execute(self, task: TaskSpec,
                       event: MaintenanceEvent) -> tuple[int | None, bool, bool, str]:
        """Run the task: (exit code, timed out, interrupted, scrubbed bounded output)."""
        document = event_document(event).encode("utf-8")
        with tempfile.TemporaryDirectory(prefix="aumwatch-task-") as private:
            # The directory is 0700 (mkdtemp): only this user reads the event file.
            event_file = Path(private) / "event.json"
            fd = os.open(event_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(document)
            env = task_environment(task, event, str(event_file), self._environ)
            try:
                proc = await asyncio.create_subprocess_exec(
                    *task.command, stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                    env=env, start_new_session=True, preexec_fn=child_guard())
            except OSError as exc:
                message = f"cannot start {task.command[0]!r}: {exc.strerror or exc}"
                return None, False, False, self._scrub(message)
            self._running[proc.pid] = proc
            capture = OutputCapture(self._limit)
            assert proc.stdout is not None
            reader = asyncio.ensure_future(capture.read(proc.stdout))
            writer = asyncio.ensure_future(feed_stdin(proc, document))
            timed_out = False
            try:
                try:
                    await asyncio.wait_for(proc.wait(), task.timeout.total_seconds())
                except TimeoutError:
                    timed_out = True
                    signal_group(proc, signal.SIGKILL)
                    await proc.wait()
                # A grandchild may still hold the pipe open: read a little longer, then stop.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(reader), READER_GRACE)
            finally:
                self._running.pop(proc.pid, None)
                for pending in (reader, writer):
                    if not pending.done():
                        pending.cancel()
                        with contextlib.suppress(BaseException):
                            await pending
            interrupted = self._stopping and not timed_out and proc.returncode != 0
            bounded = join_output(bytes(capture.head), bytes(capture.tail), capture.total)
            exit_code = proc.returncode
            if exit_code is not None and exit_code < 0:
                # Killed by a signal: say which, keep the negative code (asyncio's convention).
                bounded_text = bounded.text + f"\n[killed by signal {-exit_code}]"
            else:
                bounded_text = bounded.text
            if timed_out:
                bounded_text += f"\n[timed out after {task.timeout.total_seconds():g}s: " \
                    "its process group was killed]"
            return exit_code, timed_out, interrupted, self._scrub(bounded_text)

    async def _correct_clock(self, event: MaintenanceEvent) -> None:
        # A failed measurement leaves the clock as it was (the Canceller re-checks the window
        # at send time anyway).
        if self._sync_clock is not None:
            with contextlib.suppress(Exception):
                # Bounded: an unreachable Resource Manager must not hold up a pre-check.
                await asyncio.wait_for(self._sync_clock(event), CLOCK_SYNC_TIMEOUT)

    def _scrub(self, text: str) -> str:
        return scrub_output(text, self._secrets)

    async def _cancel_run(self, event: MaintenanceEvent, why: str,
                          initiator: str | None) -> tuple[bool, str]:
        """Cancel the event's run through the Canceller; (verified, reason)."""
        if self._cancel is None:
            return False, f"{why}; but no cancel is possible here (no Canceller)"
        assert event.start is not None  # the decision is never to cancel without a start
        target = CancelTarget(event.correlation_id, event.configuration_name or "",
                              event.start, cutoff=event.cancellation_cutoff,
                              computed_id=False, initiator=initiator)
        try:
            result = await self._cancel(target)
        except Exception as exc:  # a failed cancel is reported, never the runner's end
            return False, self._scrub(f"{why}; the cancel failed: {exc}")
        verdict = "cancelled (verified)" if result.verified else f"not cancelled ({result.outcome})"
        return result.verified, self._scrub(f"{why}: {verdict}: {result.message}")

    def _emit(self, result: TaskResult) -> TaskResult:
        self.results.append(result)
        if self._on_result is not None:
            self._on_result(result)
        return result


async def feed_stdin(proc: asyncio.subprocess.Process, document: bytes) -> None:
    """Write the event to the task's stdin and close it; a task that does not read its
    stdin (or exits first) is fine."""
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(document)
        await proc.stdin.drain()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, RuntimeError):
        proc.stdin.close()


def signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _with_note(reason: str | None, note: str | None) -> str | None:
    if note is None:
        return reason
    return note if not reason else f"{reason}; {note}"


def run_key(correlation_id: str) -> str:
    """A run id as runs are compared (case-insensitively, as the journal keys them)."""
    return correlation_id.strip().rstrip("/").lower()


def _result_of_row(row: TaskRunRow, outcome: TaskOutcome, correlation_id: str) -> TaskResult:
    return TaskResult(task=row.task, correlation_id=correlation_id, event_kind=row.event_kind,
                      outcome=outcome, exit_code=row.exit_code, cancelled_run=row.cancelled_run,
                      started=row.started_at, ended=row.ended_at, configuration=row.configuration,
                      reason=row.detail)


# --- one runner per queue --------------------------------------------------------------------


class RunnerLock:
    """An exclusive lock file in the data directory, keyed by the queue: one consumer of a
    queue at a time (``aumwatch tasks``, a dashboard in consume mode, ``aumwatch events tail
    --mode consume``), so that no consumer deletes the messages whose tasks another one
    runs. The holder's pid and name (``holder``) are written in it, to name it in the
    refusal."""

    def __init__(self, data_dir: Path, queue_url: str, holder: str = "aumwatch tasks") -> None:
        self.queue_url = queue_url.split("?")[0]
        digest = hashlib.sha256(self.queue_url.lower().encode()).hexdigest()[:16]
        self.path = Path(data_dir) / f"tasks-{digest}.lock"
        self.holder = holder
        self._file: TextIO | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`TasksRefused` naming the process that holds it."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Held open until release: the flock lives as long as the file stays open.
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            pid, _, name = handle.read().strip().partition(" ")
            handle.close()
            raise TasksRefused(
                f"another {_clean_holder(name) or 'aumwatch tasks'} (pid {pid or '?'}) "
                f"already consumes queue {self.queue_url} (lock {self.path}); one runner per "
                "queue, so that each task runs once") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {self.holder}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None

    def __enter__(self) -> RunnerLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _clean_holder(name: str) -> str:
    """The holder's name as read from the lock file: printable, short (the file is ours, but
    it is text on disk)."""
    return "".join(ch for ch in name if ch.isprintable())[:60].strip()


def require_consume(mode: str) -> None:
    """Tasks need consume mode: refuse peek, saying why."""
    if mode != "consume":
        raise TasksRefused(
            "tasks need queue.mode = \"consume\" on a queue dedicated to aumwatch: in peek "
            "mode messages stay in the queue for every reader, so nothing guarantees one "
            "runner handles each event once, and nothing is deleted once its tasks are "
            "recorded; set [queue] mode = \"consume\" (or AUMWATCH_QUEUE_MODE=consume) with a "
            "queue only aumwatch reads")


# --- the queue loop ------------------------------------------------------------------------


async def run_queue(
    source: EventSource,
    runner: TaskRunner,
    *,
    once: bool,
    stop: asyncio.Event,
    interval: float,
    on_error: Callable[[str], None],
) -> bool:
    """Poll ``source`` (an EventSource in consume mode whose ``before_delete`` is
    ``runner.handle``) until ``stop`` is set, or, with ``once``, until a poll finds the queue
    empty and no message's tasks still run. Failed polls go to ``on_error`` (the next poll
    tries again; with ``once`` the loop stops taking messages). Returns False when a poll (or
    a message's tasks in the background) failed in ``once`` mode.

    With a source that runs its hooks side by side (``hook_concurrency`` above 1), polling
    goes on while tasks run, so new messages start their tasks at once; nothing new means a
    sleep of ``interval``. On stop (``runner.request_stop()`` ends the running tasks, which
    are recorded interrupted) and at the end of ``once``, the running hooks are awaited."""
    ok = True
    while not stop.is_set():
        batch = await source.poll()
        if batch.error:
            on_error(batch.error)
        if runner.stopping or stop.is_set():
            break
        if once and batch.error:
            ok = False
            break
        busy = bool(batch.events or batch.duplicates or batch.undecodable
                    or batch.redelivered)
        if busy:
            continue  # more may be waiting: read again at once
        if once and not source.in_flight:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    if source.in_flight:
        # Tasks still run: wait for them to be recorded (a stop has ended their process
        # groups already) and for their messages to be deleted or released.
        await source.drain()
    late = source.take_hook_error()
    if late is not None:
        on_error(late)
        ok = False
    # A stop is a clean end whatever the last polls said (the exit code is 0).
    return True if runner.stopping or stop.is_set() else ok
