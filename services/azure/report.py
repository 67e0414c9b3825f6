"""Gathering a run report: Resource Graph (the run's row, its configuration, its machines) and
the local journal (its events, cancel attempts and task runs), handed to the pure builder
:func:`services.domain.report.build_report`.

Either side may know nothing: a run with no events and no journal rows is reported from
Resource Graph, and a run Resource Graph does not show (yet, or any more: it keeps 30 days)
but the journal knows is reported from the journal. Only a run neither knows is an error
(:class:`~services.domain.errors.ServiceError` ``not_found``).

Reading never creates a journal: a missing file is "nothing journaled". A journal that cannot
be read is a note in the report, not a failure.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.azure.resourcegraph import QueryRunner
from services.azure.sources import ConfigSource, MachineSource
from services.domain.clock import Clock, SystemClock
from services.domain.errors import ServiceError
from services.domain.model import Configuration, Machine, Run
from services.domain.report import (
    ReportError,
    RunReport,
    TaskFact,
    build_report,
    parse_short_form,
)
from services.domain.runfacts import CancelFact, EventFact
from services.domain.runid import (
    RunIdError,
    correlation_id_for,
    expected_run_name,
    parse_configuration_id,
    parse_run_id,
    same_run,
)
from services.domain.runs import parse_time, run_from_row, run_query
from services.domain.tasks import TaskSpec, tasks_for
from services.domain.taskview import TaskViewRow, task_view
from services.settings import Settings


@dataclass(frozen=True)
class JournalFacts:
    """What the journal holds about one run."""

    events: tuple[EventFact, ...] = ()
    cancels: tuple[CancelFact, ...] = ()
    tasks: tuple[TaskFact, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def any(self) -> bool:
        """Whether the journal knows the run at all."""
        return bool(self.events or self.cancels or self.tasks)


def event_fact(row: Any) -> EventFact:
    """An :class:`EventFact` from a journal events row (its ``decoded`` is the event's
    ``to_json()``)."""
    decoded = row.decoded if isinstance(row.decoded, dict) else {}

    def text(key: str) -> str | None:
        value = decoded.get(key)
        return value if isinstance(value, str) and value else None

    return EventFact(
        kind=str(row.kind), event_type=str(row.event_type), event_id=str(row.event_id),
        received_at=row.received_at, event_time=parse_time(decoded.get("event_time")),
        start=parse_time(decoded.get("start")), end=parse_time(decoded.get("end")),
        cutoff=parse_time(decoded.get("cancellation_cutoff")), status=text("status"),
        configuration_id=text("configuration_id"),
        configuration_name=text("configuration_name"),
        duplicate_deliveries=int(row.duplicate_deliveries or 0),
        correlation_id=str(getattr(row, "correlation_id", None) or ""),
    )


def cancel_fact(row: Any) -> CancelFact:
    """A :class:`CancelFact` from a cancel audit row (``initiator`` since schema 2)."""
    return CancelFact(
        attempted_at=row.attempted_at, outcome=str(row.outcome), finished_at=row.finished_at,
        identity=row.identity, initiator=getattr(row, "initiator", None), reason=row.reason,
        http_status=row.http_status, run_status=row.run_status,
    )


def task_fact(row: Any) -> TaskFact:
    """A :class:`TaskFact` from a task-run row (journal ``task_runs``)."""
    return TaskFact(
        task=str(getattr(row, "task", "")), event_kind=str(getattr(row, "event_kind", "")),
        state=str(getattr(row, "state", "")), started_at=getattr(row, "started_at", None),
        ended_at=getattr(row, "ended_at", None), exit_code=getattr(row, "exit_code", None),
        cancelled_run=bool(getattr(row, "cancelled_run", False)),
        detail=getattr(row, "detail", None), output=getattr(row, "output", None),
    )


def read_journal(path: Path, correlation_id: str) -> JournalFacts:
    """The journal's facts about one run; empty when there is no journal file (reading must
    not create one). A read failure comes back as a note."""
    if not Path(path).exists():
        return JournalFacts()
    from services.azure.journal import Journal, JournalError

    try:
        with Journal(path) as journal:
            events = tuple(event_fact(r) for r in journal.events_for_run(correlation_id))
            cancels = tuple(cancel_fact(r) for r in journal.cancel_audit()
                            if same_run(r.run_id, correlation_id))
            tasks = tuple(task_fact(r) for r in journal.task_runs(run_id=correlation_id))
    except (JournalError, OSError) as exc:
        return JournalFacts(notes=(f"the journal could not be read: {exc}",))
    return JournalFacts(events, cancels, tasks)


def journal_run_ids(path: Path, configuration_name: str, run_name: str) -> list[str]:
    """Correlation ids the journal's events name for ``configuration_name`` and ``run_name``
    (for the short form of a run whose configuration Resource Graph no longer shows)."""
    if not Path(path).exists():
        return []
    from services.azure.journal import Journal, JournalError

    found: dict[str, str] = {}
    try:
        with Journal(path) as journal:
            for row in journal.events():
                if not row.correlation_id:
                    continue
                try:
                    run_id = parse_run_id(row.correlation_id)
                except RunIdError:
                    continue
                if (run_id.configuration_name.lower() == configuration_name.lower()
                        and run_id.run_name == run_name):
                    found.setdefault(run_id.key, run_id.correlation_id)
    except (JournalError, OSError):
        return []
    return sorted(found.values())


def resolve_run(text: str, configs: Sequence[Configuration], journal_path: Path) -> str:
    """The correlation id ``text`` names: a correlation id (any casing), or
    ``CONFIGNAME/yyyyMMddHHmmss`` when exactly one configuration of that name is known (to
    Resource Graph, or else to the journal). Raises ServiceError saying what is wrong."""
    try:
        short = parse_short_form(text)
    except ReportError as exc:
        raise ServiceError("bad_request", str(exc)) from None
    if short is None:
        try:
            return parse_run_id(text).correlation_id
        except RunIdError as exc:
            raise ServiceError("bad_request", f"{exc}; or name the run as "
                               "CONFIGNAME/yyyyMMddHHmmss") from None
    name, start = short
    matches = [c for c in configs if c.name.lower() == name.lower()]
    if len(matches) > 1:
        where = ", ".join(sorted(f"{c.resource_group} in {c.subscription_id}" for c in matches))
        ids = " ".join(sorted(correlation_id_for(c.id, start) for c in matches))
        raise ServiceError("bad_request", f"{len(matches)} configurations are named {name!r} "
                           f"({where}): give the run's correlation id, one of: {ids}")
    if matches:
        return correlation_id_for(matches[0].id, start)
    known = journal_run_ids(journal_path, name, expected_run_name(start))
    if len(known) == 1:
        return known[0]
    if len(known) > 1:
        raise ServiceError("bad_request", f"{len(known)} runs named {text.strip()!r} are in "
                           f"the journal: give the run's correlation id, one of: "
                           f"{' '.join(known)}")
    raise ServiceError("not_found", f"no configuration named {name!r} is visible and the "
                       "journal knows no such run")


async def _run_row(runner: QueryRunner, correlation_id: str) -> Run | None:
    result = await runner.query(run_query(correlation_id), what="run query")
    for row in result.rows:
        run = run_from_row(row)
        if run is not None and same_run(run.correlation_id, correlation_id):
            return run
    return None


def _configuration_key(configuration_id: str) -> tuple[str, ...]:
    try:
        return tuple(part.lower() for part in parse_configuration_id(configuration_id))
    except RunIdError:
        return (configuration_id.strip().rstrip("/").lower(),)


def configuration_of(correlation_id: str, configs: Sequence[Configuration]) -> \
        Configuration | None:
    """The configuration a run belongs to (ids compared case-insensitively), if known."""
    wanted = _configuration_key(parse_run_id(correlation_id).configuration_id)
    return next((c for c in configs if _configuration_key(c.id) == wanted), None)


async def gather_report(settings: Settings, run_text: str, *, runner: QueryRunner,
                        clock: Clock | None = None) -> RunReport:
    """Fetch and read everything about the run ``run_text`` names and build its report.

    Raises ServiceError: ``bad_request`` for a text that names no run (or more than one),
    ``not_found`` for a run neither Resource Graph nor the journal knows; a Resource Graph
    failure when the journal does not know the run either.
    """
    clock = clock or runner.clock or SystemClock()
    notes: list[str] = []
    configs: tuple[Configuration, ...] = ()
    graph_error: ServiceError | None = None
    try:
        configs = (await ConfigSource(runner, clock=clock).fetch()).items
    except ServiceError as exc:
        graph_error = exc
    correlation_id = resolve_run(run_text, configs, settings.journal_path)
    run: Run | None = None
    machines: tuple[Machine, ...] = ()
    if graph_error is None:
        try:
            run = await _run_row(runner, correlation_id)
            machines = (await MachineSource(runner, clock=clock).fetch(correlation_id)).items
        except ServiceError as exc:
            graph_error = exc
    facts = read_journal(settings.journal_path, correlation_id)
    notes += facts.notes
    if graph_error is not None:
        if not facts.any:
            raise graph_error
        notes.append(f"Resource Graph could not be read ({graph_error}): this report comes "
                     "from the journal alone")
    elif run is None:
        if not facts.any:
            raise ServiceError("not_found", f"unknown run {correlation_id}: neither Resource "
                               "Graph nor the journal knows it (a run shows in Resource Graph "
                               "from about 40 minutes before its start)")
        notes.append("Resource Graph has no row for this run (not yet, or no longer: it keeps "
                     "30 days): the run is reported from the journal")
    if graph_error is None and not facts.any:
        notes.append("the journal holds nothing about this run (no event, cancel or task)")
    try:
        return build_report(
            correlation_id, run=run, configuration=configuration_of(correlation_id, configs),
            events=facts.events, cancels=facts.cancels, tasks=facts.tasks, machines=machines,
            rules=settings.window_rules, now=clock.now(), cloud=settings.cloud,
            tenant=settings.tenant, notes=notes)
    except ReportError as exc:
        raise ServiceError("bad_request", str(exc)) from None


def write_atomically(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename:
    a reader sees the old file or the whole new one, never a half-written report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def read_task_view(path: Path, correlation_id: str,
                   specs: Sequence[TaskSpec] = ()) -> tuple[TaskViewRow, ...]:
    """One run's task view (:func:`services.domain.taskview.task_view`): the journal's task
    runs, and the declared tasks (``specs``) due for the run's journaled events that have not
    started yet, matched by the tasks' own rule (:func:`services.domain.tasks.tasks_for`).
    Raises JournalError when the journal cannot be read; no journal file: no rows."""
    if not Path(path).exists():
        return ()
    from services.azure.journal import Journal
    from services.domain.events import EventDecodeError, decode_message

    due: list[tuple[str, str]] = []
    with Journal(path) as journal:
        facts = [task_fact(r) for r in journal.task_runs(run_id=correlation_id)]
        if specs:
            for row in journal.events_for_run(correlation_id):
                try:
                    events = decode_message(row.raw_text)
                except EventDecodeError:  # journaled because it decoded; kept safe anyway
                    continue
                for event in events:
                    if not same_run(event.correlation_id or "", correlation_id):
                        continue
                    due += [(task.name, str(event.kind)) for task in tasks_for(specs, event)]
    return task_view(facts, due)
