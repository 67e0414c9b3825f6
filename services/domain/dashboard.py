"""The dashboard's state, without a screen: what the operator sees, as plain data.

One :class:`DashboardState` owns the configurations, the run index, the one event memory,
the watchdog and its findings, the selection and the filter, the cancels in flight and the
verified ones (and whether and why Cancel is refused: :meth:`DashboardState.refusal`), what
the events queue said about itself, the last error of each source, the monitor's own facts
for the status bar (:class:`~services.domain.boundary.MonitorStatus`), the task runs' news,
and the Event Grid wiring of each configuration with what it says of the pre-events. It
takes only the seam's typed data (services/domain/boundary.py); the poll back-off is the
poller's (tui/poller.py). Each ``apply_*`` method and :meth:`DashboardState.tick` takes a fetch (or
the time) and returns a :class:`Change` naming what moved, so the screen redraws only those
panels (docs/architecture.md, "Data flow").

Runs are merged in one place, by :func:`services.domain.runs.merge_runs`: the runs Resource
Graph returned (observed), the schedules' runs (expected), the runs the events announced and
the verified cancels. A fetch of one source re-merges only what it can have changed.

Pure: no Textual, no Azure SDK, no I/O; time comes from the injected clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from services.domain.arrivals import ArrivalRules, arrival
from services.domain.boundary import (
    CancelResult,
    EventBatch,
    MonitorStatus,
    Outcome,
    RunsSnapshot,
    WiringSnapshot,
)
from services.domain.clock import Clock
from services.domain.configs import in_patch_view
from services.domain.eventmemory import EventArrival, EventMemory
from services.domain.eventtail import EventLine, event_payload, finding_line, short_type
from services.domain.model import Configuration, Fetched, Run
from services.domain.runfacts import VerifiedCancel, cancels_by_run
from services.domain.runindex import RunIndex
from services.domain.runs import cancel_refusal, expected_runs, merge_runs, run_phase
from services.domain.tasks import TaskResult
from services.domain.watchdog import SOURCES, Finding, Watchdog, duplicate_finding
from services.domain.window import Phase, WindowRules
from services.domain.wiring import (
    QueueTarget,
    Wiring,
    missing_pre_explanation,
)

#: Watchdog findings kept for the session's record (each is also an event line).
MAX_FINDINGS = 1_000
#: How long a cancel Azure accepted without a confirming read-back holds Cancel back, unless a
#: poll shows the run's status first (docs/azure.md: Resource Graph lags by minutes).
ACCEPTED_HOLD = timedelta(minutes=10)
#: Why Cancel is not offered while an accepted cancel awaits its confirmation.
ACCEPTED_REASON = ("a cancel of this run was accepted by Azure and is not yet confirmed: "
                   "wait for the next poll")
#: How long a passing notice ("report written to ...") stays in the status bar.
NOTICE_FOR = timedelta(seconds=60)
#: The run panel's flag when a run's wiring cannot deliver its pre-event.
NO_PRE_EVENT = "no pre-event will come"
_FAR = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Notice:
    """A passing message for the operator, as a toast: ``title``, ``severity`` (information,
    warning or error), shown for ``timeout`` seconds."""

    text: str
    title: str = ""
    severity: Literal["information", "warning", "error"] = "information"
    timeout: float = 6.0


@dataclass(frozen=True)
class Change:
    """What one ``apply_*`` or ``tick`` changed.

    ``configs``: keys of the configurations whose row may show something new; ``runs``: runs
    new or changed; ``events``: new lines for the event tail (findings included);
    ``findings``: the new watchdog findings (also toasts); ``selection``: the selected
    configuration or run moved, or what the run panel shows changed; ``status``: the status
    bar's data changed; ``warning``: a one-line warning for a toast; ``wiring``: keys of the
    configurations whose Event Grid wiring changed in anything shown (a wiring view redraws;
    the rows whose verdict changed are also in ``configs``); ``notices``: passing messages
    (task runs' outcomes, whether this dashboard runs the tasks).
    """

    configs: frozenset[str] = frozenset()
    runs: tuple[Run, ...] = ()
    events: tuple[EventLine, ...] = ()
    findings: tuple[Finding, ...] = ()
    selection: bool = False
    status: bool = False
    warning: str | None = None
    wiring: frozenset[str] = frozenset()
    notices: tuple[Notice, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.configs or self.runs or self.events or self.findings
                    or self.selection or self.status or self.warning or self.wiring
                    or self.notices)


def row_sort_key(config: Configuration, run: Run | None) -> tuple[datetime, str, str]:
    """Configurations sort by next start, then name, then id (a total order)."""
    return (run.start if run is not None else _FAR, config.name.lower(), config.id.lower())


class DashboardState:
    """See the module. ``watch_events``: a queue is configured (the watchdog judges only
    then: without a queue every run would miss its events). ``arrival_rules``: the pre-event's
    documented arrival range (settings). ``include_other_scopes``: show configurations and
    runs of every maintenance scope, not only guest patching. ``watched_queue``: the queue
    aumwatch watches, as Event Grid names it (a pre-event subscription to another queue does
    not count). ``tasks``: how many ``[[tasks]]`` are declared (the news of whether this
    dashboard runs them). How often each source is polled is the poller's (tui/poller.py).
    ``sources``: the sources this watcher reads (of :data:`services.domain.watchdog.SOURCES`):
    no finding is raised before each one it depends on has been read once (its ``apply_*``;
    the journal's cancels with a :class:`RunsSnapshot` or :meth:`learn_cancels`); a watcher
    that never reads the wiring or the journal leaves them out."""

    def __init__(self, rules: WindowRules, clock: Clock, *, watch_events: bool = False,
                 queue_mode: str | None = None, read_only: bool = False,
                 memory: EventMemory | None = None,
                 arrival_rules: ArrivalRules | None = None,
                 include_other_scopes: bool = False,
                 watched_queue: QueueTarget | None = None, tasks: int = 0,
                 sources: Collection[str] = SOURCES,
                 profile_tenants: Mapping[str, str | None] | None = None) -> None:
        self.rules = rules
        #: Issue 19: each tenant profile's tenant id, by its name ("" without profiles): the
        #: cancel confirmation names the run's tenant and says when the cancel would go
        #: through a delegation (the run's owning tenant is not its profile's).
        self.profile_tenants: Mapping[str, str | None] = dict(profile_tenants or {})
        self.arrival_rules = arrival_rules if arrival_rules is not None else ArrivalRules()
        self.include_other_scopes = include_other_scopes
        self.clock = clock
        self.watch_events = watch_events
        self.read_only = read_only
        self.configs: dict[str, Configuration] = {}
        self.index = RunIndex(rules)
        self.memory = memory if memory is not None else EventMemory()
        self.watchdog = Watchdog(clock.now(), pre_before=self.arrival_rules.missing_after,
                                 awaits=sources)
        self.findings: deque[Finding] = deque(maxlen=MAX_FINDINGS)
        self.selected_config: str | None = None
        self.selected_run: str | None = None  # chosen, or pinned by a cancel; else the next
        self.filter_text = ""
        self.cancel_in_flight: set[str] = set()
        self.cancelled: dict[str, VerifiedCancel] = {}  # run key -> its verified cancel
        # run key -> (when Azure accepted its cancel, the run's status then): Cancel stays
        # held back until a poll shows another status or ACCEPTED_HOLD passed.
        self.cancel_accepted: dict[str, tuple[datetime, str]] = {}
        self._hidden_configs: set[str] = set()  # keys of configurations of other scopes
        self.queue_mode = queue_mode
        self.queue_depth: int | None = None
        self.queue_capped = False
        self._errors: dict[str, str] = {}  # source -> one line; insertion order = age
        # The monitor's own facts (the status bar's ages, quota, skew), as of its last poll;
        # None: no monitor (nothing polled).
        self.monitor_status: MonitorStatus | None = None
        self.tasks_declared = tasks
        self._tasks_told = False  # whether the tasks' fate here was said once
        self._notice: tuple[str, datetime] | None = None  # the status bar's (text, until)
        self._observed: dict[str, Run] = {}
        self._expected: dict[str, list[Run]] = {}  # config key -> its schedule's runs
        self._expected_keyed: dict[str, Run] | None = None
        # The Event Grid wiring (docs/architecture.md, "Data flow"): per configuration key,
        # when it was last read (None: not yet), and, per configuration key, why its
        # wiring cannot deliver a pre-event (the watchdog's and the run panel's explanation).
        self.watched_queue = watched_queue
        self.wirings: dict[str, Wiring] = {}
        self.wiring_fetched_at: datetime | None = None
        self._pre_explanations: dict[str, str] = {}
        # The sources read at least once (configs, runs, events, wiring): a finding is judged
        # only once every source it depends on was (services/domain/findings.py).
        self.sources_read: set[str] = set()

    # -- reading -------------------------------------------------------------------------------
    def mark_read(self, source: str) -> None:
        """``source`` (of :data:`services.domain.watchdog.SOURCES`) was read once: the
        watchdog's and the findings' gate (issue 22 item 4, issue 21)."""
        self.sources_read.add(source)
        self.watchdog.mark_read(source)

    @property
    def runs(self) -> Mapping[str, Run]:
        """Every run the dashboard knows, by key (read-only)."""
        return self.index.runs

    @property
    def arrivals(self) -> Mapping[str, EventArrival]:
        """First pre/post arrival per run key (read-only)."""
        return self.memory.arrivals

    def runs_of(self, config_key: str) -> list[Run]:
        """The runs of one configuration, newest start first."""
        return self.index.of_config(config_key)

    def next_run(self, config_key: str, now: datetime | None = None) -> Run | None:
        """The configuration's running or next run (not finished), earliest first."""
        return self.index.next_run(config_key, now or self.clock.now())

    def delegated(self, run: Run) -> bool:
        """Whether a cancel of ``run`` would go through a delegation: the tenant owning its
        subscription is not the tenant of the profile it was read through (both known)."""
        profile_tenant = self.profile_tenants.get(run.tenant)
        return bool(run.tenant_id and profile_tenant
                    and run.tenant_id.lower() != profile_tenant.lower())

    def matches(self, config: Configuration) -> bool:
        """Whether ``config`` passes the filter (name, group, subscription, zone, schedule,
        maintenance scope). Issue 19: a word ``tenant:NAME`` keeps the configurations of
        that tenant only (its profile's name or the owning tenant's id); the rest of the
        text filters as before."""
        needle = self.filter_text.strip().lower()
        if not needle:
            return True
        words = needle.split()
        tenants = [w[len("tenant:"):] for w in words if w.startswith("tenant:")]
        if tenants:
            if not any(t and t in (config.tenant.lower(), (config.tenant_id or "").lower())
                       for t in tenants):
                return False
            needle = " ".join(w for w in words if not w.startswith("tenant:"))
            if not needle:
                return True
        haystack = " ".join((config.name, config.resource_group, config.subscription_id,
                             config.time_zone, config.schedule_description or "",
                             config.scope)).lower()
        return needle in haystack

    def sort_key(self, key: str, now: datetime) -> tuple[datetime, str, str]:
        """The configuration's place in the table (see :func:`row_sort_key`)."""
        return row_sort_key(self.configs[key], self.next_run(key, now))

    def config_order(self, now: datetime | None = None) -> list[str]:
        """Keys of the configurations the filter shows, in table order."""
        at = now or self.clock.now()
        shown = [k for k, c in self.configs.items() if self.matches(c)]
        return sorted(shown, key=lambda k: self.sort_key(k, at))

    @property
    def current_run(self) -> Run | None:
        """The run the run panel shows and Cancel acts on: the chosen one, else the
        selected configuration's current or next run."""
        if self.selected_run is not None:
            run = self.index.get(self.selected_run)
            if run is not None:
                return run
        if self.selected_config is None:
            return None
        return self.next_run(self.selected_config)

    def refusal(self, run: Run | None, now: datetime | None = None) -> str | None:
        """Why Cancel is not offered for ``run`` now, None when it is."""
        if run is None:
            return "no run selected"
        if self.read_only:
            return "read-only mode: cancelling is disabled"
        if run.key in self.cancel_in_flight:
            return "a cancel of this run is in flight"
        if self.cancel_unconfirmed(run.key, now):
            return ACCEPTED_REASON
        return cancel_refusal(run, now or self.clock.now(), self.rules)

    def cancel_unconfirmed(self, key: str, now: datetime | None = None) -> bool:
        """Whether Azure accepted a cancel of run ``key`` that no poll has confirmed yet (nor
        contradicted) within :data:`ACCEPTED_HOLD`: it counts as in flight."""
        accepted = self.cancel_accepted.get(key)
        return accepted is not None and (now or self.clock.now()) < accepted[0] + ACCEPTED_HOLD

    def wiring_of(self, config_key: str) -> Wiring | None:
        """The last wiring read of a configuration (None: not read, or not yet known)."""
        return self.wirings.get(config_key.lower())

    @property
    def wiring_error(self) -> str | None:
        """Why the last wiring read failed as a whole, or None."""
        return self._errors.get("wiring")

    def pre_event_explanation(self, config_key: str) -> str | None:
        """Why ``config_key``'s wiring cannot deliver a pre-event to the watched queue, or None
        (it can, or the wiring is not known)."""
        return self._pre_explanations.get(config_key.lower())

    def pre_event_warning(self, run: Run | None, now: datetime | None = None) -> str | None:
        """The run panel's flag for a run that has not started and whose wiring cannot deliver
        its pre-event (e.g. "no pre-event will come: no pre-event subscription to the watched
        queue"), shown at once rather than at the watchdog's deadline; None otherwise (no
        such wiring, a pre-event already arrived, the run started or was cancelled)."""
        if run is None or run.cancelled_by or run.status.lower() == "cancelled":
            return None
        why = self._pre_explanations.get(run.configuration_id.lower())
        if why is None:
            return None
        arrival = self.memory.arrivals.get(run.key)
        if arrival is not None and arrival.pre is not None:
            return None  # it came after all (the wiring changed since it was read)
        phase = run_phase(run, now or self.clock.now(), self.rules)
        if phase not in (Phase.UPCOMING, Phase.CANCELLABLE, Phase.LOCKED):
            return None
        # The conclusion first: a narrow run panel cuts the end of the line.
        return f"{NO_PRE_EVENT}: {why}"

    # -- errors and back-off ---------------------------------------------------------------
    @property
    def errors(self) -> Mapping[str, str]:
        """The current error of each source that has one."""
        return dict(self._errors)

    @property
    def last_error(self) -> str | None:
        """The most recent error still standing (one line), or None."""
        return next(reversed(self._errors.values()), None)

    def set_error(self, source: str, error: str) -> Change:
        """Record ``source``'s error (it stands until that source clears it)."""
        self._errors.pop(source, None)
        self._errors[source] = " ".join(error.split())
        return Change(status=True)

    def clear_error(self, source: str) -> Change:
        """Forget ``source``'s error."""
        return Change(status=self._errors.pop(source, None) is not None)

    def show_notice(self, text: str) -> Change:
        """Say ``text`` in the status bar for :data:`NOTICE_FOR`."""
        self._notice = (text, self.clock.now() + NOTICE_FOR)
        return Change(status=True)

    def notice(self, now: datetime | None = None) -> str | None:
        """The status bar's passing notice now, if one is still shown."""
        if self._notice is None or (now or self.clock.now()) >= self._notice[1]:
            return None
        return self._notice[0]

    # -- selection and filter ---------------------------------------------------------------
    def select_config(self, key: str | None) -> Change:
        """The operator moved to configuration ``key`` (the run panel shows its next run)."""
        if key == self.selected_config:
            return Change()
        self.selected_config = key
        self.selected_run = None
        return Change(selection=True)

    def select_run(self, key: str | None) -> Change:
        """The operator moved to run ``key`` in the runs table."""
        if key is None or key == self.selected_run:
            return Change()
        self.selected_run = key
        return Change(selection=True)

    def set_filter(self, text: str) -> Change:
        """Filter the configurations (every row may come or go)."""
        if text == self.filter_text:
            return Change()
        self.filter_text = text
        return Change(configs=frozenset(self.configs))

    # -- applying fetches -----------------------------------------------------------------
    def apply_configs(self, fetched: Fetched[Configuration]) -> Change:
        """Take a configurations snapshot: the configurations and their schedules' runs.
        Those of other maintenance scopes are hidden unless ``include_other_scopes``."""
        new: dict[str, Configuration] = {}
        hidden: set[str] = set()
        for item in fetched.items:
            if in_patch_view(item.scope, self.include_other_scopes):
                new[item.id.lower()] = item
            else:
                hidden.add(item.id.lower())
        old = self.configs
        changed = {k for k, c in new.items() if (o := old.get(k)) is not c and o != c}
        removed = old.keys() - new.keys()
        self.configs = new
        touched = set(changed | removed)
        rekey: set[str] = set()
        if hidden != self._hidden_configs:
            # Runs Resource Graph showed of a configuration that came or went out of view.
            flipped = hidden ^ self._hidden_configs
            self._hidden_configs = hidden
            rekey |= {k for k, r in self._observed.items()
                      if r.configuration_id.lower() in flipped}
        for key in removed:
            rekey |= {r.key for r in self._expected.pop(key, ())}
        for key in changed:
            before = old.get(key)
            if before is None or (before.id, before.name, before.next_occurrences) != (
                    new[key].id, new[key].name, new[key].next_occurrences):
                rekey |= {r.key for r in self._expected.get(key, ())}
                self._expected[key] = expected_runs([new[key]])
                rekey |= {r.key for r in self._expected[key]}
        if rekey:
            self._expected_keyed = None
        hit, runs = self._remerge(rekey)
        touched |= hit
        selection = self._selection_touched(touched)
        if self.selected_config is None or self.selected_config not in self.configs:
            ordered = self.config_order()  # rare (first snapshot): a full sort is fine
            self.selected_config = ordered[0] if ordered else None
            self.selected_run = None
            selection = True
        self.mark_read("configs")
        status = self.clear_error("configs").status | self._tenant_errors("configs",
                                                                          fetched.failed)
        return Change(configs=frozenset(touched), runs=tuple(runs), selection=selection,
                      status=status)

    def _tenant_errors(self, kind: str, failed: Mapping[str, str]) -> bool:
        """Issue 19: each failed tenant's error as its own source's (``runs:contoso``); the
        errors of tenants that answered again are cleared. True when any changed."""
        changed = False
        prefix = kind + ":"
        for source in [s for s in self._errors if s.startswith(prefix)]:
            if source[len(prefix):] not in failed:
                changed |= self.clear_error(source).status
        for name, message in failed.items():
            text = " ".join(f"{kind} of tenant {name}: {message}".split())
            if self._errors.get(prefix + name) != text:
                self.set_error(prefix + name, text)
                changed = True
        return changed

    def apply_runs(self, snapshot: RunsSnapshot | Fetched[Run]) -> Change:
        """Take a runs poll: Resource Graph's runs (observed only) and the verified cancels
        the journal holds (any aumwatch process's: learnt at this refresh), and merge every
        source. A bare :class:`Fetched` is Resource Graph's runs alone."""
        cancels = None
        if isinstance(snapshot, RunsSnapshot):
            fetched, cancels = snapshot.observed, snapshot.cancels
        else:
            fetched = snapshot
        fresh = self._fresh_cancels(cancels or {})
        old = self._observed
        new = {r.key: r for r in fetched.items}
        self._observed = new
        # Only the rows that are not the very objects of the last snapshot (or are gone) can
        # change a merged run. A poll that changed few is re-merged run by run; one that
        # changed many is merged whole (one pass is cheaper than many small ones).
        keys = {k for k, r in new.items() if old.get(k) is not r} | (old.keys() - new.keys())
        touched, changed = self._remerge(keys | fresh)
        status = self.clear_error("runs").status | self.clear_error("configs").status
        status |= self._tenant_errors("runs", fetched.failed)
        self.mark_read("runs")
        if isinstance(snapshot, RunsSnapshot):
            # The journal was consulted with this poll: none yet or unreadable counts as read
            # too (the cancels known so far stand), so the watchdog is never held back for ever.
            self.mark_read("cancels")
        return Change(configs=frozenset(touched), runs=tuple(changed),
                      selection=self._selection_touched(touched), status=status)

    def apply_events(self, batch: EventBatch) -> Change:
        """Take one read of the events queue: its events are remembered once, the runs they
        name merged, duplicates judged once; the task runs it carries become notices."""
        now = self.clock.now()
        if batch.depth is not None:  # None: not read by this poll; the last one stands
            self.queue_depth = batch.depth
            self.queue_capped = batch.truncated
        self.queue_mode = batch.mode
        lines: list[EventLine] = []
        for received in batch.events:
            event = received.event
            arrived = received.arrived_at
            # A post-event is measured against the scheduled end its EndDateTime carries, not
            # the merged run's end (which the post-event itself moved to its arrival).
            label, flagged = arrival(event, arrived, rules=self.arrival_rules)
            lines.append(EventLine(
                time=arrived, kind=short_type(event.type),
                configuration=event.configuration_name or "",
                run=event.run_name or event.correlation_id.rsplit("/", 1)[-1],
                arrival=label, arrival_flagged=flagged,
                payload=event_payload(received), key=event.id))
        keys = set(self.memory.remember(batch, now))
        # Runs only the events knew, which the memory has now forgotten, go back to what the
        # other sources say of them (nothing, or their schedule's run).
        keys |= {k for k in self.index.event_only_keys if k not in self.memory}
        touched, changed = self._remerge(keys)
        for message in batch.undecodable:
            lines.append(EventLine(
                time=message.inserted_at or message.received_at, kind="undecodable",
                configuration=message.raw_preview, run=message.reason, flag="undecodable",
                payload=f"undecodable message {message.message_id or ''}\nreason: "
                        f"{message.reason}\nraw (escaped): {message.raw_preview}",
                key=message.message_id or ""))
        findings = self._report(duplicate_finding(d.event.id, d.event.type,
                                                  d.event.correlation_id,
                                                  d.event.configuration_name)
                                for d in batch.duplicates)
        lines += [finding_line(f, now) for f in findings]
        if batch.error:
            self.set_error("events", batch.error)
        else:
            self.clear_error("events")
            self.mark_read("events")
        # The status always changes: the queue's depth and mode are on it.
        return Change(configs=frozenset(touched), runs=tuple(changed), events=tuple(lines),
                      findings=tuple(findings),
                      selection=bool(batch.events) or self._selection_touched(touched),
                      status=True, warning=batch.warning,
                      notices=tuple(task_notice(r) for r in batch.task_results))

    def apply_status(self, status: MonitorStatus) -> Change:
        """Take the monitor's own facts after a poll (the status bar's ages, quota, skew) and
        say once whether this dashboard runs the declared tasks, and why not."""
        self.monitor_status = status
        notices: list[Notice] = []
        if status.consume_refusal and not self._tasks_told:
            # consume mode, no tasks here, and another process consumes the queue: peeking.
            self._tasks_told = True
            self.set_error("queue", status.consume_refusal)
            notices.append(Notice(status.consume_refusal, "Events", "warning", 15))
        elif self.tasks_declared and not self._tasks_told:
            if status.tasks_refusal:
                self._tasks_told = True
                self.set_error("tasks", status.tasks_refusal)
                notices.append(Notice(status.tasks_refusal, "Tasks", "warning", 15))
            elif status.runs_tasks:
                self._tasks_told = True
                self.show_notice(f"this dashboard runs the {self.tasks_declared} "
                                 "declared task(s); t: a run's task runs")
        return Change(status=True, notices=tuple(notices))

    def apply_wiring(self, snapshot: WiringSnapshot) -> Change:
        """Take a read of the Event Grid wiring.

        A read that failed as a whole keeps the wiring known so far and records the error
        (status line); parts that failed are inside each :class:`Wiring`. Rows are redrawn
        only where the verdict changed, wiring views only where anything shown changed
        (``checked_at`` and the metrics period move at every read and are not counted).
        """
        before = self.wiring_error
        if snapshot.error or snapshot.fetched_at is not None:
            # Read (a read that failed says the wiring cannot explain anything: a finding
            # then goes without a cause rather than never).
            self.mark_read("wiring")
        if snapshot.error:
            status = self.set_error("wiring", snapshot.error).status
        else:
            status = self.clear_error("wiring").status
        # The read's error is shown in every wiring view, and in each row not read yet.
        failed = frozenset(self.configs) if self.wiring_error != before else frozenset()
        unread = frozenset(k for k in failed if k not in self.wirings)
        if snapshot.fetched_at is None:
            return Change(configs=unread, wiring=failed, status=status)
        new = {k.lower(): w for k, w in snapshot.wirings.items()}
        old = self.wirings
        first = self.wiring_fetched_at is None
        self.wiring_fetched_at = snapshot.fetched_at
        changed = {k for k in new.keys() | old.keys()
                   if _wiring_facts(old.get(k)) != _wiring_facts(new.get(k))}
        verdicts = {k for k in changed
                    if _verdict_of(old.get(k)) != _verdict_of(new.get(k))}
        if first:
            verdicts |= set(self.configs)  # every row leaves "…"
        self.wirings = new
        now = self.clock.now()
        explanations = {}
        for key, wiring in new.items():
            why = missing_pre_explanation(wiring, self.watched_queue, now)
            if why:
                explanations[key] = why
        explained = {k for k in explanations.keys() | self._pre_explanations.keys()
                     if explanations.get(k) != self._pre_explanations.get(k)}
        self._pre_explanations = explanations
        selection = self.selected_config is not None and (
            self.selected_config in explained or self.selected_config in changed)
        return Change(configs=frozenset(k for k in verdicts | unread if k in self.configs),
                      wiring=frozenset(changed) | failed, selection=selection, status=status)

    def confirm_cancel(self, key: str, now: datetime | None = None) -> tuple[Change, Run | None]:
        """The operator confirmed the cancel of run ``key``: everything that holds Cancel
        back is checked again (the window, read-only, a cancel in flight or accepted and
        unconfirmed: never twice at once). Returns the run to send (its cancel now in flight),
        or None with the refusal recorded and told."""
        run = self.index.get(key)
        if run is None:
            return Change(notices=(Notice("the run is no longer listed: nothing sent",
                                          severity="error"),)), None
        refusal = self.refusal(run, now)
        if refusal is not None:
            message = f"refused: {refusal} (checked again after you confirmed)"
            return replace(self.set_error("cancel", message),
                           notices=(Notice(message, severity="error"),)), None
        return self.begin_cancel(run.key), run

    def begin_cancel(self, key: str) -> Change:
        """A confirmed cancel of run ``key`` is being sent."""
        self.cancel_in_flight.add(key)
        return Change(selection=True, configs=self._configs_of([key]))

    def apply_cancel(self, result: CancelResult) -> Change:
        """A cancel finished. A verified one keeps its run Cancelled over lagging Resource
        Graph rows, and the run panel stays on that run until the operator moves."""
        key = result.run_id.lower()
        self.cancel_in_flight.discard(key)
        if result.outcome is Outcome.ACCEPTED:
            # Azure said Cancelled but the read-back was unavailable: not verified, and not
            # to be sent again while a poll may still confirm it (ACCEPTED_HOLD).
            run = self.index.get(key)
            self.cancel_accepted[key] = (self.clock.now(), run.status if run else "")
            return Change(selection=True, configs=self._configs_of([key]), status=True)
        if not result.verified:
            return Change(selection=True, configs=self._configs_of([key]), status=True)
        self.cancel_accepted.pop(key, None)
        showing = self.current_run
        self.cancelled[key] = VerifiedCancel(self.clock.now(),
                                             getattr(result, "initiator", None))
        if showing is not None and showing.key == key:
            self.selected_run = key  # pinned: the next run must not take its place
        touched, changed = self._remerge({key})
        self.clear_error("cancel")
        return Change(configs=frozenset(touched | self._configs_of([key])),
                      runs=tuple(changed), selection=True, status=True)

    def learn_cancels(self, cancels: Mapping[str, VerifiedCancel | datetime]) -> Change:
        """Verified cancels the audit journal holds (this session's, an earlier one's or
        another aumwatch process's): run key -> when and who
        (:class:`~services.domain.runfacts.VerifiedCancel`). The first call, even with none,
        counts as the journal's read."""
        self.mark_read("cancels")
        touched, changed = self._remerge(self._fresh_cancels(cancels))
        return Change(configs=frozenset(touched), runs=tuple(changed),
                      selection=self._selection_touched(touched))

    def _fresh_cancels(self, cancels: Mapping[str, VerifiedCancel | datetime]) -> set[str]:
        """Remember the verified cancels not known yet; their run keys."""
        fresh = {k: at for k, at in cancels_by_run(cancels).items() if k not in self.cancelled}
        self.cancelled.update(fresh)
        return set(fresh)

    def tick(self, now: datetime) -> Change:
        """Time moved to ``now``: accepted cancels past :data:`ACCEPTED_HOLD` stop holding
        Cancel back, and the watchdog judges the deadlines that passed."""
        # check_due reports each finding once already (Watchdog.check marks them).
        expired = [k for k, (at, _) in self.cancel_accepted.items() if now >= at + ACCEPTED_HOLD]
        for key in expired:
            del self.cancel_accepted[key]
        held = Change(selection=True, configs=self._configs_of(expired)) if expired else Change()
        if not self.watch_events or self.queue_capped or self.queue_depth is None:
            # A capped peek cannot see every event: judging missing ones would cry wolf.
            return held
        findings = self.watchdog.check_due(self.index.runs, self.arrivals, now,
                                           self._pre_explanations)
        self.findings.extend(findings)
        if not findings:
            return held
        return Change(events=tuple(finding_line(f, now) for f in findings),
                      findings=tuple(findings), selection=held.selection,
                      configs=held.configs)

    # -- inside ----------------------------------------------------------------------------
    def _expected_by_key(self) -> dict[str, Run]:
        """The schedules' runs by run key (rebuilt only after the schedules changed)."""
        if self._expected_keyed is None:
            self._expected_keyed = {run.key: run for runs in self._expected.values()
                                    for run in runs}
        return self._expected_keyed

    def _merge_one(self, key: str) -> Run | None:
        """``key``'s run merged from every source by the one merge (None: nobody knows it)."""
        observed = self._observed.get(key)
        expected = self._expected_by_key().get(key)
        told = self.memory.get(key)
        if observed is None and expected is None and told is None:
            return None
        cancelled = {key: self.cancelled[key]} if key in self.cancelled else None
        merged = merge_runs(() if observed is None else (observed,),
                            () if expected is None else (expected,),
                            () if told is None else (told,), cancelled=cancelled)
        run = self._named(merged[0])
        return run if self._in_view(run) else None

    def _remerge(self, keys: Collection[str]) -> tuple[set[str], list[Run]]:
        """Merge these runs again and put them in the index; (configs touched, runs changed).

        Few keys are merged one by one; many (a first snapshot, a poll that changed most
        rows) in one pass over every source, which is cheaper than many small merges.
        """
        if len(keys) * 4 > len(self.index) + len(self._observed):
            merged = merge_runs(self._observed.values(), self._expected_by_key().values(),
                                self.memory.runs(), cancelled=self.cancelled, ordered=False)
            named = (self._named(r) for r in merged)
            touched, changed = self.index.replace({r.key: r for r in named if self._in_view(r)})
            self._track(changed)
            self._confirm_accepted(changed)
            return touched, changed
        touched = set()
        changed = []
        for key in keys:
            run = self._merge_one(key)
            if run is None:
                touched |= self.index.remove(key)
                continue
            hit = self.index.put(run)
            if hit:
                touched |= hit
                changed.append(run)
        self._track(changed)
        self._confirm_accepted(changed)
        return touched, changed

    def _named(self, run: Run) -> Run:
        """A run whose source did not name its configuration takes the configuration's name;
        with other scopes shown, its scope too (runs rows seldom carry one; hiding needs none:
        see :meth:`_in_view`)."""
        if run.configuration_name and (run.scope or not self.include_other_scopes):
            return run
        config = self.configs.get(run.configuration_id.lower())
        if config is None:
            return run
        changes: dict[str, Any] = {}
        if not run.configuration_name:
            changes["configuration_name"] = config.name
        if self.include_other_scopes and not run.scope and config.scope:
            changes["scope"] = config.scope
        return replace(run, **changes) if changes else run

    def _in_view(self, run: Run) -> bool:
        """Whether ``run`` is shown: its scope (or its configuration's) is in view."""
        if run.configuration_id.lower() in self._hidden_configs:
            return False
        return in_patch_view(run.scope, self.include_other_scopes)

    def _confirm_accepted(self, runs: Sequence[Run]) -> None:
        # An accepted cancel is settled once a poll shows its run in another status than it
        # had when Azure accepted (Cancelled: confirmed; anything else: the cancel did not
        # take, and Cancel may be offered again if the window is still open).
        if not self.cancel_accepted:
            return
        for run in runs:
            accepted = self.cancel_accepted.get(run.key)
            if accepted is not None and run.status != accepted[1]:
                del self.cancel_accepted[run.key]

    def _track(self, runs: Sequence[Run]) -> None:
        # Only with a queue: without one nothing is ever judged, and the queue would only grow.
        if self.watch_events and runs:
            self.watchdog.track(runs)

    def _report(self, findings: Iterable[Finding]) -> list[Finding]:
        new = self.watchdog.new(findings)
        self.findings.extend(new)
        return new

    def _configs_of(self, run_keys: Iterable[str]) -> frozenset[str]:
        out = set()
        for key in run_keys:
            run = self.index.get(key)
            if run is not None:
                out.add(run.configuration_id.lower())
        return frozenset(out)

    def _selection_touched(self, touched: set[str]) -> bool:
        return self.selected_config is not None and self.selected_config in touched


def _verdict_of(wiring: Wiring | None) -> str | None:
    return None if wiring is None else str(wiring.verdict)


def _wiring_facts(wiring: Wiring | None) -> Wiring | None:
    """``wiring`` without what moves at every read (when it was checked, the metrics'
    period), so two reads of an unchanged wiring compare equal."""
    if wiring is None:
        return None
    health = wiring.health
    if health is not None:
        health = replace(health, since=None, until=None)
    return replace(wiring, checked_at=None, health=health)


def task_notice(result: TaskResult) -> Notice:
    """How a finished task run is told: its outcome, exit code, and whether it cancelled the
    run (else why it ended so); an error toast when it failed, timed out or was
    interrupted."""
    text = f"task {result.task} ({result.event_kind}): {result.outcome}"
    if result.exit_code is not None:
        text += f", exit code {result.exit_code}"
    if result.cancelled_run:
        text += "; it cancelled the run"
    elif result.reason:
        text += f"; {result.reason}"
    failed = str(result.outcome) in ("failed", "timeout", "interrupted")
    return Notice(text, "Tasks", "error" if failed else "information", 15 if failed else 6)
