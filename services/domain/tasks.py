"""Pre and post tasks: which task runs for which event, what it is given, what came of it.

Tasks are declared in the config file only (``[[tasks]]``, read by services/settings.py),
never from queue content. For each maintenance event (pre or post), every task whose ``on``
is the event's kind and one of whose ``configurations`` patterns matches the event's
configuration name runs once (docs/architecture.md "Tasks"). The rules here are pure: no I/O,
no clock of their own.

What a task gets (:func:`task_environment`): the event's JSON on stdin and in a private file,
and these environment variables (times are UTC ISO 8601 with ``Z``; an absent value is an
empty string)::

    AUMWATCH_TASK_NAME                  the task's name from the config file
    AUMWATCH_TASK_EVENT_KIND            pre | post
    AUMWATCH_TASK_EVENT_ID              the event's id
    AUMWATCH_TASK_CORRELATION_ID        the run's correlation id
    AUMWATCH_TASK_CONFIGURATION_NAME    the maintenance configuration's name
    AUMWATCH_TASK_CONFIGURATION_ID      the maintenance configuration's resource id
    AUMWATCH_TASK_START                 the run's start
    AUMWATCH_TASK_END                   the run's end (its window's end)
    AUMWATCH_TASK_CANCELLATION_CUTOFF   the pre-event's cancellation cut-off
    AUMWATCH_TASK_STATUS                the post-event's status
    AUMWATCH_TASK_EVENT_FILE            path of a file holding the event's JSON

Every value is data: the command is an argument list from the config file and no event
string is ever put into it or through a shell.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from services.domain.clock import iso_z
from services.domain.events import EventKind, MaintenanceEvent
from services.domain.runs import RUN_TYPE
from services.domain.window import WindowRules, run_window

#: The events a task can be declared ``on``.
TASK_EVENT_KINDS: tuple[str, ...] = ("pre", "post")
DEFAULT_TASK_TIMEOUT = timedelta(minutes=5)
MIN_TASK_TIMEOUT = timedelta(seconds=1)
#: A pre task has at most the 40 minutes before the run; a post task gets more room, but a
#: task that hangs for hours holds the queue's one runner, so the bound is generous, not open.
MAX_TASK_TIMEOUT = timedelta(hours=2)
#: The most output (stdout and stderr together) kept per task run: its head and its tail.
OUTPUT_LIMIT = 16 * 1024

ENV_PREFIX = "AUMWATCH_TASK_"
#: Names of the variables a task gets (without the prefix), in the order documented above.
TASK_ENV_NAMES: tuple[str, ...] = (
    "NAME", "EVENT_KIND", "EVENT_ID", "CORRELATION_ID", "CONFIGURATION_NAME",
    "CONFIGURATION_ID", "START", "END", "CANCELLATION_CUTOFF", "STATUS", "EVENT_FILE",
)
#: Variables of aumwatch's own environment a task keeps; everything else (the queue's
#: connection string, AZURE_CLIENT_SECRET, tokens, any AUMWATCH_* setting) is left out.
PASSED_ENV: frozenset[str] = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
    "SHELL", "TERM", "SYSTEMROOT", "COMSPEC", "PATHEXT", "WINDIR", "AZURE_CONFIG_DIR",
    "AUMWATCH_CONFIG",
})
PASSED_ENV_PREFIXES: tuple[str, ...] = ("LC_",)


class TaskOutcome(StrEnum):
    """What one task run came to (the ``outcome`` of ``aumwatch tasks``' JSON lines)."""

    OK = "ok"
    FAILED = "failed"  # exited non-zero, or could not be started
    TIMEOUT = "timeout"  # killed at its timeout
    SKIPPED_DUPLICATE = "skipped-duplicate"  # already run (or running) for this run and kind
    INTERRUPTED = "interrupted"  # its runner died or was stopped while it ran; never re-run
    # A pre task whose event is handled only once its run has started (the runner was down,
    # or a backlog): "stop services" or "take a snapshot" then would act on machines being
    # patched, and no pre-check can cancel any more. Recorded, never run.
    SKIPPED_LATE = "skipped-late"
    # A pre task of a run known to be cancelled (:func:`known_cancellation`): it would
    # prepare a run that will never happen. Recorded, never run.
    SKIPPED_CANCELLED = "skipped-cancelled"


class TaskState(StrEnum):
    """The ``state`` column of the journal's task_runs: running, then how it ended."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    SKIPPED_LATE = "skipped-late"
    SKIPPED_CANCELLED = "skipped-cancelled"


@dataclass(frozen=True)
class TaskSpec:
    """One ``[[tasks]]`` entry, validated (see services/settings.py for the errors)."""

    name: str
    on: str  # "pre" | "post"
    configurations: tuple[str, ...]
    command: tuple[str, ...]
    timeout: timedelta = DEFAULT_TASK_TIMEOUT
    cancel_on_failure: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a task needs a name")
        if self.on not in TASK_EVENT_KINDS:
            raise ValueError(f"task {self.name}: on must be pre or post, not {self.on!r}")
        if not self.command:
            raise ValueError(f"task {self.name}: command is empty")
        if not self.configurations:
            raise ValueError(f"task {self.name}: configurations is empty")
        if self.cancel_on_failure and self.on != "pre":
            raise ValueError(f"task {self.name}: cancel_on_failure is for pre tasks only")

    def matches(self, event: MaintenanceEvent) -> bool:
        """Whether this task runs for ``event``: same kind, and a pattern matching the
        configuration's name, case-insensitively like Azure names (fnmatch globs)."""
        if str(event.kind) != self.on or event.kind is EventKind.OTHER:
            return False
        name = (event.configuration_name or "").casefold()
        if not name:
            return False
        return any(fnmatch.fnmatchcase(name, pattern.casefold())
                   for pattern in self.configurations)

    def describe(self) -> str:
        """One line for ``config show``."""
        flags = ", cancel_on_failure" if self.cancel_on_failure else ""
        seconds = int(self.timeout.total_seconds())
        return (f"{self.name}: on {self.on} of {', '.join(self.configurations)}; "
                f"timeout {seconds}s{flags}; command {list(self.command)}")


def tasks_for(tasks: Iterable[TaskSpec], event: MaintenanceEvent) -> list[TaskSpec]:
    """The tasks that run for ``event``, in the order they are declared."""
    return [task for task in tasks if task.matches(event)]


def passed_environment(inherited: Mapping[str, str]) -> dict[str, str]:
    """The safe part of aumwatch's own environment that a child it runs (a task, an alert's
    command route) gets: :data:`PASSED_ENV` and the locale, none of aumwatch's secrets."""
    return {key: value for key, value in inherited.items()
            if key in PASSED_ENV or key.startswith(PASSED_ENV_PREFIXES)}


def task_environment(task: TaskSpec, event: MaintenanceEvent, event_file: str,
                     inherited: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of one task run: the safe part of ``inherited`` (aumwatch's
    own environment, :func:`passed_environment`) plus the ``AUMWATCH_TASK_*`` variables."""
    env = passed_environment(inherited)
    values = {
        "NAME": task.name,
        "EVENT_KIND": str(event.kind),
        "EVENT_ID": event.id,
        "CORRELATION_ID": event.correlation_id,
        "CONFIGURATION_NAME": event.configuration_name or "",
        "CONFIGURATION_ID": event.configuration_id or "",
        "START": iso_z(event.start) or "",
        "END": iso_z(event.end) or "",
        "CANCELLATION_CUTOFF": iso_z(event.cancellation_cutoff) or "",
        "STATUS": event.status or "",
        "EVENT_FILE": event_file,
    }
    for name in TASK_ENV_NAMES:
        # A NUL cannot be passed in an environment value; nothing Azure writes holds one.
        env[ENV_PREFIX + name] = values[name].replace("\x00", "")
    return env


def outcome_of(exit_code: int | None, *, timed_out: bool) -> TaskOutcome:
    """A finished task's outcome from its exit status (None: it could not be started)."""
    if timed_out:
        return TaskOutcome.TIMEOUT
    return TaskOutcome.OK if exit_code == 0 else TaskOutcome.FAILED


# --- the cancel decision -------------------------------------------------------------------


@dataclass(frozen=True)
class CancelDecision:
    """Whether a task's result asks for the run to be cancelled, and a plain sentence why
    (or why not). The Canceller re-checks the window when it sends."""

    cancel: bool
    reason: str
    #: Who the audit names as having started the cancel: "task NAME (exit N)".
    initiator: str | None = None


def initiator_of(task: TaskSpec, outcome: TaskOutcome, exit_code: int | None) -> str:
    """How the cancel audit names a task that started a cancel."""
    if outcome is TaskOutcome.TIMEOUT:
        return f"task {task.name} (timeout)"
    return f"task {task.name} (exit {exit_code if exit_code is not None else '?'})"


def t_minus(start: datetime, now: datetime) -> str:
    """``T-8m`` / ``T+2m`` / ``T-30s``: where ``now`` stands against the run's start."""
    seconds = int((start - now).total_seconds())
    sign = "-" if seconds >= 0 else "+"
    seconds = abs(seconds)
    if seconds >= 60:
        return f"T{sign}{seconds // 60}m"
    return f"T{sign}{seconds}s"


def too_late_for_pre(event: MaintenanceEvent, now: datetime) -> str | None:
    """Why a pre task must not run for ``event`` at ``now``, or None when it may.

    A pre task prepares a run; once the run has started (its event handled late: the runner
    was down, or a backlog) it would act on machines being patched, and a failed pre-check
    could no longer cancel. Post tasks have no such limit (a report is useful at any time).
    """
    if str(event.kind) != "pre" or event.start is None or now < event.start:
        return None
    late = now - event.start
    minutes = int(late.total_seconds() // 60)
    return (f"pre task not run: its run started at {iso_z(event.start)}, {minutes} min before "
            "this pre-event was handled")


#: Run statuses that say a run is cancelled (Azure writes "Cancelled"; "Canceled" is read
#: too, case-insensitively).
CANCELLED_STATUSES = frozenset({"cancelled", "canceled"})


def is_cancelled_status(status: str | None) -> bool:
    """Whether a run status (Resource Graph's, or an event's) says the run is cancelled."""
    return (status or "").strip().casefold() in CANCELLED_STATUSES


def known_cancellation(*, verified_cancel_at: datetime | None, graph_status: str | None,
                       event_status: str | None) -> str | None:
    """Whether a run is known to be cancelled, from the three facts a task runner has about
    it, and which fact says so (a phrase for the task's reason); None when none does.

    * ``verified_cancel_at``: when a cancel of the run was verified (read back as
      Cancelled) in the journal, by any aumwatch process sharing it;
    * ``graph_status``: the run's status in Resource Graph (None: not read, or the run not
      shown yet);
    * ``event_status``: the status the event itself carries in its data.

    The journal's verified cancel comes first: it is aumwatch's own and Resource Graph may
    lag behind it by minutes (docs/azure.md "Resource Graph"). Pure: the facts are read by
    the caller (services/azure/tasks.py).
    """
    if verified_cancel_at is not None:
        return f"a cancel of it was verified at {iso_z(verified_cancel_at)} (journal)"
    if is_cancelled_status(graph_status):
        return f"Resource Graph shows its status {graph_status!s}"
    if is_cancelled_status(event_status):
        return f"the event says its status is {event_status!s}"
    return None


def run_statuses_query(correlation_ids: Iterable[str]) -> str:
    """One Resource Graph query for the status of several runs (ids compared lower-case):
    a task runner reads the runs of its messages at once, not one query per event."""
    keys = sorted({cid.strip().rstrip("/").lower() for cid in correlation_ids if cid.strip()})
    wanted = ", ".join('"' + k.replace("\\", "\\\\").replace('"', '\\"') + '"' for k in keys)
    return f"""maintenanceresources
| where type =~ "{RUN_TYPE}"
| where tolower(tostring(properties.correlationId)) in ({wanted}) or tolower(id) in ({wanted})
| project id, name, properties"""


def cancel_decision(task: TaskSpec, outcome: TaskOutcome, exit_code: int | None,
                    event: MaintenanceEvent, now: datetime,
                    rules: WindowRules | None = None) -> CancelDecision:
    """Whether the run of ``event`` is to be cancelled because ``task`` ended as ``outcome``.

    Only a failed or timed-out ``pre`` task with ``cancel_on_failure`` asks for a cancel, and
    only while the run's window is open at ``now`` (its close is the earlier of T-10 and the
    event's cut-off). Otherwise the reason says plainly what happened ("pre-check failed at
    T-8m: too late to cancel").
    """
    if outcome not in (TaskOutcome.FAILED, TaskOutcome.TIMEOUT):
        return CancelDecision(False, f"task {task.name} {outcome}")
    what = "timed out" if outcome is TaskOutcome.TIMEOUT else "failed"
    if task.on != "pre" or event.kind is not EventKind.PRE:
        return CancelDecision(False, f"{task.on} task {task.name} {what}")
    if not task.cancel_on_failure:
        return CancelDecision(False, f"pre-check {task.name} {what} (cancel_on_failure is "
                              "off: the run goes ahead)")
    if event.start is None:
        return CancelDecision(False, f"pre-check {task.name} {what}, but the event carries no "
                              "start time: the run's cancel window is unknown, not cancelled")
    window = run_window(event.start, cutoff=event.cancellation_cutoff,
                        rules=rules if rules is not None else WindowRules())
    at = t_minus(window.start, now)
    if not window.is_cancellable(now):
        if now < window.opens_at and window.ever_opens:
            why = "the cancel window is not open yet"
        else:
            why = "too late to cancel"
        return CancelDecision(False, f"pre-check {task.name} {what} at {at}: {why}")
    return CancelDecision(True, f"pre-check {task.name} {what} at {at}: cancelling the run",
                          initiator_of(task, outcome, exit_code))


# --- output --------------------------------------------------------------------------------

_SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    # Connection-string and key=value secrets (AccountKey=..., SharedAccessSignature=...).
    re.compile(r"((?:AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd|"
               r"ClientSecret|client_secret|Secret|Token|AccessKey|ApiKey)\s*[=:]\s*)"
               r"[^;&\s\"',]+", re.IGNORECASE),
    # SAS query parameters, the signature above all.
    re.compile(r"((?:^|[?&\s\"';])(?:sig|se|sv|sp|spr|srt|ss|st|skoid|sktid|skt|ske|sks|skv)=)"
               r"[^&\s\"';]+", re.IGNORECASE),
    re.compile(r"(\bBearer\s+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE),
    # A JWT anywhere (an access token printed by `az account get-access-token`).
    re.compile(r"()\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
)
REDACTED = "[REDACTED]"


def scrub_output(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` with secrets replaced by ``[REDACTED]``: every literal value in ``secrets``
    (the queue's connection string, the stand-in's token...) and anything shaped like one
    (connection-string keys, SAS signatures, bearer tokens, JWTs)."""
    for secret in sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


@dataclass(frozen=True)
class BoundedOutput:
    """A task's captured output, cut to its head and tail when too long."""

    text: str
    total_bytes: int
    cut_bytes: int = 0

    @property
    def truncated(self) -> bool:
        return self.cut_bytes > 0


def bound_output(data: bytes, limit: int = OUTPUT_LIMIT) -> BoundedOutput:
    """Decode ``data`` (invalid UTF-8 shown as escapes) keeping at most ``limit`` bytes: the
    first and last halves, with a line saying how much was cut between them."""
    half = limit // 2
    if len(data) <= limit:
        return join_output(data, b"", len(data))
    return join_output(data[:half], data[len(data) - half:], len(data))


def join_output(head: bytes, tail: bytes, total: int) -> BoundedOutput:
    """The output of a task whose first bytes are ``head`` and last bytes ``tail`` out of
    ``total`` (a reader that kept only both ends); the middle, when cut, is said to be."""
    cut = total - len(head) - len(tail)
    head_text = head.decode("utf-8", "backslashreplace")
    tail_text = tail.decode("utf-8", "backslashreplace")
    if cut <= 0:
        return BoundedOutput(head_text + tail_text, total)
    return BoundedOutput(f"{head_text}\n[... {cut} bytes of output cut ...]\n{tail_text}",
                         total, cut)


@dataclass(frozen=True)
class TaskResult:
    """One handled task, as ``aumwatch tasks`` prints it (:meth:`to_json`)."""

    task: str
    correlation_id: str
    event_kind: str
    outcome: TaskOutcome
    exit_code: int | None = None
    cancelled_run: bool = False
    started: datetime | None = None
    ended: datetime | None = None
    configuration: str | None = None
    reason: str | None = None
    output: str | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, object]:
        """The JSON line's object (the contract's keys plus ``configuration`` and
        ``reason``); the output stays in the journal."""
        return {
            "task": self.task,
            "correlation_id": self.correlation_id,
            "event_kind": self.event_kind,
            "outcome": str(self.outcome),
            "exit_code": self.exit_code,
            "cancelled_run": self.cancelled_run,
            "started": iso_z(self.started, fraction=True),
            "ended": iso_z(self.ended, fraction=True),
            "configuration": self.configuration,
            "reason": self.reason,
        }
