"""The scenario engine: plays a scenario (:mod:`services.standin.scenario_file`) into the
World on the World's clock, and writes the runs' events.

Lifecycle of one run starting at T (times on the World's clock, all planned when the run
appears, so stepping late or twice gives the same result):

* T-40: the schedule-level run row appears, Pending; the machines are frozen then. Stance
  (docs/azure.md): Azure creates the run when it freezes the machines, so no row exists
  days ahead; a client sees only the schedule's expected runs until T-40;
* platform cancel (if any): Cancelled with the platform message, no pre-event;
* ``pre_event`` (default somewhere in T-40..T-30, drawn per run from the seed, as the docs
  give a range and no fixed minute): the pre-event, CancellationCutOffDateTime = ``cutoff``
  (a pre-event set earlier than T-40 creates the run at that moment);
* T: the run and its machines go InProgress;
* each machine finishes at its own time within the window (counts, reboot status, errors);
  in an overrunning run (chance ``overrun``, default 0.2) about 10% of the machines finish
  2-25 min after the window end, with ``maintenanceWindowExceeded``;
* when the last machine is done: Completed (or Failed when every machine failed) and the
  post-event (Status ``Succeeded`` or ``failed_status``): its ``EndDateTime`` is the
  scheduled window end, its event time the actual end (after the window for an overrun).

A schedule edit (the configuration replaced in the World, e.g. by the stand-in's ARM PUT) is
followed on the next step: runs not created yet come from the new schedule, counted from the
edit; a run created already stays (the World cancels it when the edit came less than 40
minutes before its start).

A run cancelled by anyone (a user through the stand-in's API, the platform) stops there and
gets no post-event. Events are written once each (except the deliberate duplicates); an event
the sink could not take (Azurite down) is retried on the next step.
"""

from __future__ import annotations

import logging
import random
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta

from services.domain.clock import iso_z
from services.domain.runid import correlation_id_for
from services.domain.schedule import (
    Occurrence,
    Schedule,
    ScheduleError,
    parse_schedule,
    resolve_zone,
)
from services.domain.wiring import id_segment
from services.standin.eventgrid import OTHER_QUEUE, Route
from services.standin.events_out import (
    DEFAULT_QUEUE_NAME,
    MALFORMED_MESSAGE,
    POST_EVENT_TYPE,
    PRE_EVENT_TYPE,
    EventSink,
    QueueMissing,
    build_event,
    encode_message,
)
from services.standin.scenario_file import (
    DEFAULT_STORAGE_GROUP,
    ConfigurationSpec,
    MachineGroup,
    Scenario,
    ScenarioError,
    parse_relative,
)
from services.standin.world import (
    PLATFORM_CANCEL_MESSAGE,
    USER_CANCEL_MESSAGE,
    MachineResult,
    SimMachine,
    SimRun,
    SimScope,
    World,
    configuration_object,
    configuration_schedule,
)

log = logging.getLogger(__name__)


APPEARS_BEFORE = timedelta(minutes=40)  # the run row appears and machines freeze at T-40
NEW_VM_BEFORE = timedelta(minutes=15)  # a VM created later than T-15 misses the trigger
USER_CANCEL_BEFORE = timedelta(minutes=20)  # when a synthesised "cancelled-user" run was cancelled
_WALL_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")
_TICK = timedelta(microseconds=1)
_NEVER = Occurrence(datetime.max.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
_PERIOD_RE = re.compile(r"\s*(\d*)\s*(hour|day|week|month)s?\b", re.IGNORECASE)



@dataclass
class _MachinePlan:
    machine_id: str
    finish: datetime
    result: MachineResult  # the final result, applied at `finish`


@dataclass
class _Action:
    at: datetime
    kind: str  # appear | cancel | pre | pre-dup | malformed | start | machine | complete | post...
    machine: _MachinePlan | None = None
    done: bool = False


@dataclass
class _RunPlan:
    spec: ConfigurationSpec
    correlation_id: str
    start: datetime
    end: datetime
    fate: str
    actions: list[_Action] = field(default_factory=list)
    run: SimRun | None = None
    final_status: str = "Completed"
    finished: bool = False  # every action applied
    sent_at: dict[str, datetime] = field(default_factory=dict)  # event kind -> its eventTime


@dataclass
class _Outgoing:
    key: tuple[str, str, str]  # (kind, correlation id, event subscription id)
    at: datetime
    text: str
    queue: str
    route: Route | None = None
    counted: bool = True  # counts in the topic's metrics (not a redelivery or a stray)


@dataclass
class _Config:
    spec: ConfigurationSpec
    schedule: Schedule
    arm: dict[str, Any]
    cursor: datetime  # occurrences starting after this are not materialised yet
    known: set[str] = field(default_factory=set)
    upcoming: Occurrence | None = None  # the next occurrence after the cursor, once known


def _lead(spec: ConfigurationSpec) -> timedelta:
    """How long before its start a run of ``spec`` is planned: T-40, or its earliest
    pre-event if that comes earlier."""
    return max(APPEARS_BEFORE, spec.behaviour.pre_event or timedelta(0))


def _ceil_minute(value: datetime) -> datetime:
    floored = value.replace(second=0, microsecond=0)
    return floored if floored == value else floored + timedelta(minutes=1)


def _wall(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


class ScenarioEngine:
    """Plays a :class:`Scenario` into a :class:`World`, writing events to an :class:`EventSink`.

    Creating the engine installs the scenario (subscriptions, configurations, machines,
    assignments) and synthesises the history at the clock's current time. :meth:`step`
    advances everything to the clock's now; :meth:`start` runs it on a background thread.
    """

    def __init__(self, world: World, scenario: Scenario, sink: EventSink | None = None) -> None:
        self.world = world
        self.scenario = scenario
        self.sink = sink
        #: The queue the default wiring delivers to (the sink's own queue).
        self.queue_name = getattr(sink, "queue_name", None) or DEFAULT_QUEUE_NAME
        self.storage_account_id = ""
        self.started_at = world.clock.now()
        self._configs: list[_Config] = []
        self._plans: dict[str, _RunPlan] = {}
        self._outbox: list[_Outgoing] = []
        self._written: set[tuple[str, str, str]] = set()
        self._written_log: list[tuple[str, str]] = []
        self._step_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self._install()
        self.step(self.started_at)

    # -- installation --------------------------------------------------------------------
    def _install(self) -> None:
        t0 = self.started_at
        for sub in self.scenario.subscriptions:
            self.world.add_subscription(sub)
        storage = self.scenario.storage_account
        if storage is not None:
            self.storage_account_id = self.world.add_storage_account(
                storage.subscription_id, storage.resource_group, location=storage.location)
        elif self.scenario.subscriptions:
            self.storage_account_id = self.world.add_storage_account(
                self.scenario.subscriptions[0], DEFAULT_STORAGE_GROUP)
        for group in self.scenario.machines:  # the world's machines without an assignment
            for n in range(1, group.count + 1):
                self.world.add_machine(self._machine(None, group, n))
        for spec in self.scenario.configurations:
            where = f"{self.scenario.source}: configuration {spec.name}"
            schedule, window = self._schedule_for(spec, t0, where)
            arm = self._arm_object(spec, window)
            self.world.add_configuration(arm)
            for group in spec.machines:
                for n in range(1, group.count + 1):
                    machine = self._machine(spec, group, n)
                    self.world.add_machine(machine)
                    self.world.assign(machine.id, spec.id)
            for scope in spec.dynamic_scopes:
                self.world.add_scope(SimScope(
                    configuration_id=spec.id, subscription_id=scope.subscription_id,
                    resource_groups=scope.resource_groups, locations=scope.locations,
                    os_types=scope.os_types, resource_types=scope.resource_types,
                    tags=dict(scope.tags), tag_operator=scope.tag_operator))
            self._wire(spec, t0)
            self._configs.append(_Config(spec, schedule, arm, cursor=t0))
            self._seed_history(self._configs[-1], t0)

    def _schedule_for(
        self, spec: ConfigurationSpec, t0: datetime, where: str
    ) -> tuple[Schedule, dict[str, str | None]]:
        try:
            zone = resolve_zone(spec.time_zone)
        except ScheduleError as exc:
            raise ScenarioError(f"{where}: {exc}") from exc
        recur = spec.recur_every
        relative = parse_relative(spec.start, f"{where}.start")
        target: datetime | None = None
        if relative is None:
            if not _WALL_RE.fullmatch(spec.start):
                raise ScenarioError(
                    f"{where}.start: {spec.start!r} is neither 'now±<duration>' nor a wall time "
                    "'YYYY-MM-DD hh:mm'")
            start_wall = spec.start
        else:
            target = _ceil_minute(t0 + relative)
            local = target.astimezone(zone)
            recur = recur.replace("{weekday}", local.strftime("%A")).replace(
                "{day}", f"day{local.day}")
            match = _PERIOD_RE.match(recur)
            if match is None:
                raise ScenarioError(f"{where}.recur_every: {recur!r} does not start with a period")
            n = int(match.group(1) or 1)
            unit = match.group(2).lower()
            # Anchor the schedule whole periods earlier so that past runs are real occurrences
            # (and weekly/monthly interval counting keeps the target on its cycle).
            back = n * (spec.history + 2)
            step = {"hour": relativedelta(hours=back), "day": relativedelta(days=back),
                    "week": relativedelta(weeks=back), "month": relativedelta(months=back)}[unit]
            start_wall = _wall(local.replace(tzinfo=None) - step)
        expiration = None
        if spec.expiration is not None:
            rel = parse_relative(spec.expiration, f"{where}.expiration")
            expiration = (_wall((_ceil_minute(t0 + rel)).astimezone(zone).replace(tzinfo=None))
                          if rel is not None else spec.expiration)
        try:
            schedule = parse_schedule(start_wall, spec.time_zone, recur, spec.duration, expiration)
        except ScheduleError as exc:
            raise ScenarioError(f"{where}: {exc}") from exc
        if target is not None:
            hit = schedule.next(target - timedelta(seconds=1))
            if not hit or hit[0].start != target:
                local = target.astimezone(zone)
                raise ScenarioError(
                    f"{where}.start: {spec.start} is {local:%A %Y-%m-%d %H:%M} in "
                    f"{spec.time_zone}, when recurEvery {recur!r} has no run; use '{{weekday}}' "
                    "or '{day}' in recur_every to follow the start")
        window = {
            "startDateTime": start_wall,
            "expirationDateTime": expiration,
            "duration": spec.duration,
            "timeZone": spec.time_zone,
            "recurEvery": recur,
        }
        return schedule, window

    def _wire(self, spec: ConfigurationSpec, t0: datetime) -> None:
        """Create the configuration's Event Grid wiring as ``spec.wiring`` says
        (scenario_file.py, "Wiring"), through the same checks as the ARM API."""
        if spec.wiring == "other-queue" and self.sink is not None:
            self.sink.create_queue(OTHER_QUEUE)
        try:
            # With several tenants each configuration's events go to its own tenant's queue,
            # so the wiring a tenant's profile reads names that tenant's queue (issue 19).
            queue = getattr(self.sink, "queue_of", {}).get(spec.subscription_id.lower(),
                                                         self.queue_name)
            self.world.eventgrid.wire(
                spec.id, spec.wiring, queue=queue, account_id=self.storage_account_id,
                schema=spec.behaviour.schema, now=t0)
        except ValueError as exc:
            raise ScenarioError(f"{self.scenario.source}: configuration {spec.name}: "
                                f"wiring {spec.wiring}: {exc}") from exc

    @staticmethod
    def _arm_object(spec: ConfigurationSpec, window: dict[str, str | None]) -> dict[str, Any]:
        return configuration_object(spec.subscription_id, spec.resource_group, spec.name,
                                    window, location=spec.location, tags=dict(spec.tags))

    def _machine(self, spec: ConfigurationSpec | None, group: MachineGroup,
                 n: int) -> SimMachine:
        sub = group.subscription_id or (spec.subscription_id if spec else "")
        rg = group.resource_group or (spec.resource_group if spec else "")
        name = f"{group.prefix}-{n:03d}"
        provider = ("Microsoft.HybridCompute/machines" if group.arc
                    else "Microsoft.Compute/virtualMachines")
        where = f"{self.scenario.source}: machine {name}"
        return SimMachine(
            id=f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider}/{name}",
            name=name, subscription_id=sub, resource_group=rg,
            location=group.location or (spec.location if spec else "westeurope"),
            os_type=group.os, arc=group.arc,
            power=group.power, arc_status=group.arc_status if group.arc else None,
            patch_mode=group.patch_mode, bypass=group.bypass, extension=group.extension,
            created=self._at(group.created, f"{where}.created"),
            pending=dict(group.pending),
            assessed=self._at(group.assessed, f"{where}.assessed"),
            reboot_pending=group.reboot_pending, tags=dict(group.tags), exists=group.exists,
        )

    def _at(self, form: str | None, where: str) -> datetime | None:
        """A checked time form (scenario_file._time_form) on the engine's start clock."""
        if form is None:
            return None
        relative = parse_relative(form, where)
        if relative is not None:
            return self.started_at + relative
        return datetime.strptime(form, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)

    def _seed_history(self, cfg: _Config, t0: datetime) -> None:
        """Materialise the live runs (row already there at t0) and ``history`` finished ones."""
        spec = cfg.spec
        picked = []
        finished = 0
        before = t0 + _lead(spec) + _TICK
        while True:
            occ = cfg.schedule.previous(before)
            if occ is None:
                break
            if occ.end <= t0:
                if finished >= spec.history:
                    break
                finished += 1
            picked.append(occ)
            before = occ.start
        finished_seen = 0
        for occ in picked:  # newest first: outcomes apply to finished runs in that order
            fate = None
            if occ.end <= t0:
                if finished_seen < len(spec.outcomes):
                    fate = spec.outcomes[finished_seen]
                finished_seen += 1
            self._plan(cfg, occ.start, occ.end, fate)
        cfg.cursor = max((o.start for o in picked), default=before)

    # -- planning ------------------------------------------------------------------------
    def _plan(self, cfg: _Config, start: datetime, end: datetime, fate: str | None) -> None:
        spec, b = cfg.spec, cfg.spec.behaviour
        cid = correlation_id_for(spec.id, start)
        if cid.lower() in cfg.known:
            return
        cfg.known.add(cid.lower())
        if fate is None and b.never_starts:
            return  # a run that never happens: no row, no events (the schedule still says it)
        if fate is None:
            fate = "cancelled-platform" if b.platform_cancel is not None else "completed"
        plan = _RunPlan(spec, cid, start, end, fate)
        acts = plan.actions
        appear = _Action(start - APPEARS_BEFORE, "appear")
        acts.append(appear)
        if fate == "cancelled-platform":
            before = b.platform_cancel if b.platform_cancel is not None else timedelta(minutes=30)
            acts.append(_Action(start - before, "cancel-platform"))
        elif fate == "cancelled-user":
            acts.append(_Action(start - USER_CANCEL_BEFORE, "cancel-user"))
        if b.pre_event is not None and fate != "cancelled-platform":
            pre_at = start - b.pre_event
            if b.pre_event_spread > timedelta(0):
                # Each run's pre-event comes at its own moment in the range, from the seed.
                rng = random.Random(f"{self.scenario.seed}:{cid.lower()}:pre")
                pre_at += timedelta(seconds=int(
                    rng.uniform(0, b.pre_event_spread.total_seconds())))
            # A pre-event earlier than T-40 (an older doc revision says T-43) needs the run:
            # it then exists from the pre-event on.
            appear.at = min(appear.at, pre_at)
            acts.append(_Action(pre_at, "pre"))
            if "pre" in b.duplicate:
                acts.append(_Action(pre_at + timedelta(minutes=1), "pre-dup"))
            if b.malformed:
                acts.append(_Action(pre_at + timedelta(seconds=30), "malformed"))
        acts.append(_Action(start, "start"))
        # The rest (machines, completion, post-event) is planned when the run appears, from
        # the machines assigned at that moment.
        acts.sort(key=lambda a: a.at)
        self._plans[cid.lower()] = plan

    def _plan_machines(self, plan: _RunPlan, machines: Sequence[SimMachine]) -> None:
        b = plan.spec.behaviour
        rng = random.Random(f"{self.scenario.seed}:{plan.correlation_id.lower()}")
        n = len(machines)
        if plan.fate == "failed":
            n_fail = n
        elif plan.fate == "succeeded":
            n_fail = 0
        else:
            n_fail = b.fail_count if b.fail_count is not None else round(b.fail_fraction * n)
        failing = set(rng.sample(range(n), min(n_fail, n)))
        # An overrunning run: a few machines (about 10%, at least one) finish 2-25 min after
        # the window end; their patch rows say maintenanceWindowExceeded.
        over_rng = random.Random(f"{self.scenario.seed}:{plan.correlation_id.lower()}:overrun")
        overrunning: set[int] = set()
        if n and over_rng.random() < b.overrun:
            overrunning = set(over_rng.sample(range(n), max(1, round(n * 0.1))))
        window = plan.end - plan.start
        lo, hi = b.finish
        last = plan.start + timedelta(minutes=1)
        down: set[int] = set()
        for i, m in enumerate(machines):
            finish = plan.start + timedelta(
                seconds=int(window.total_seconds() * rng.uniform(lo, hi)) + 30)
            finish = min(finish, plan.end)
            if i in overrunning:
                finish = plan.end + timedelta(seconds=over_rng.randint(120, 1500))
            last = max(last, finish)
            windows = m.os_type == "Windows"
            why = m.unreachable()
            if why is not None:
                down.add(i)
                # Off, disconnected or a broken extension: Failed at the start, with an error.
                result = MachineResult(status="Failed", reboot_status="NotNeeded",
                                       pending=sum(m.pending.values()),
                                       error_code="MachineUnreachable", error_message=why)
                result.started = result.ended = plan.start + timedelta(seconds=30)
                last = max(last, result.ended)
                plan.actions.append(_Action(result.ended, "machine",
                                            _MachinePlan(m.id, result.ended, result)))
                continue
            if i in failing:
                result = MachineResult(
                    status="Failed", installed=rng.randint(0, 6), failed=rng.randint(1, 3),
                    pending=rng.randint(0, 4), reboot_status="NotNeeded",
                    error_code="PatchInstallationFailed", error_message=b.fail_message)
            else:
                warn = rng.random() < 0.08
                result = MachineResult(
                    status="CompletedWithWarnings" if warn else "Succeeded",
                    installed=rng.randint(1, 28), failed=0,
                    pending=rng.randint(1, 3) if warn else 0,
                    excluded=rng.randint(0, 2),
                    reboot_status=("Completed" if windows and rng.random() < 0.6
                                   else "NotNeeded"))
            result.started = plan.start
            result.ended = finish
            result.window_exceeded = i in overrunning
            plan.actions.append(_Action(finish, "machine", _MachinePlan(m.id, finish, result)))
        all_failed = n > 0 and len(failing | down) >= n
        plan.final_status = "Failed" if all_failed else "Completed"
        complete_at = last + timedelta(seconds=20)
        plan.actions.append(_Action(complete_at, "complete"))
        plan.actions.append(_Action(complete_at + timedelta(seconds=5), "post"))
        if "post" in b.duplicate:
            plan.actions.append(_Action(complete_at + timedelta(minutes=2), "post-dup"))
        plan.actions.sort(key=lambda a: a.at)

    # -- stepping ------------------------------------------------------------------------
    def step(self, now: datetime | None = None) -> int:
        """Apply every transition due by ``now`` (default: the clock's now) and send the due
        events. Idempotent; returns how many transitions and events were applied."""
        with self._step_lock:
            now = now if now is not None else self.world.clock.now()
            applied = 0
            for cfg in self._configs:
                self._follow_edit(cfg, now)
                self._materialise(cfg, now)
            with self.world.lock:
                changed = 0
                for plan in sorted(self._plans.values(), key=lambda p: p.start):
                    if not plan.finished:
                        changed += self._advance(plan, now)
                if changed:
                    # Only a real change bumps the version: readers (Resource Graph) reload
                    # and compare the World's rows on each new version.
                    self.world.version += 1
            return changed + applied + self._flush()

    def _follow_edit(self, cfg: _Config, now: datetime) -> None:
        """Follow a configuration replaced in the World (an ARM PUT): runs not created yet
        come from the new schedule. A run already created (from T-40) stays as it is: the
        World cancelled it if the edit came less than 40 minutes before its start. Stance: an
        occurrence of the new schedule that starts within 40 minutes of the edit does not run
        (its machines could not be frozen at T-40)."""
        current = self.world.get_configuration(cfg.spec.id)
        if current is None or current is cfg.arm:
            return
        cfg.arm = current
        try:
            schedule = configuration_schedule(current)
        except (ScheduleError, ValueError) as exc:
            self.last_error = f"configuration {cfg.spec.name}: new schedule ignored: {exc}"
            log.warning("scenario: %s", self.last_error)
            return
        cfg.schedule = schedule
        for key, plan in list(self._plans.items()):
            if plan.spec is cfg.spec and plan.run is None:
                del self._plans[key]
                cfg.known.discard(key)
        created = [p.start for p in self._plans.values() if p.spec is cfg.spec]
        edited = self.world.configuration_changed_at(cfg.spec.id) or now
        cfg.cursor = max([edited + APPEARS_BEFORE, *created])
        cfg.upcoming = None

    def _materialise(self, cfg: _Config, now: datetime) -> None:
        """Plan the occurrences whose T-40 has come (new runs while the engine runs)."""
        horizon = now + _lead(cfg.spec)
        while True:
            if cfg.upcoming is None:
                # The first occurrence after the cursor (found once, not on every step).
                upcoming = next(iter(cfg.schedule.occurrences(cfg.cursor + _TICK)), None)
                cfg.upcoming = upcoming if upcoming is not None else _NEVER
            if cfg.upcoming is _NEVER or cfg.upcoming.start > horizon:
                return
            self._plan(cfg, cfg.upcoming.start, cfg.upcoming.end, None)
            cfg.cursor, cfg.upcoming = cfg.upcoming.start, None

    def _advance(self, plan: _RunPlan, now: datetime) -> int:
        applied = 0
        while True:
            # "appear" adds the machine actions, so look for the next due one afresh each time.
            due = next((a for a in plan.actions if not a.done), None)
            if due is None:
                plan.finished = True
                return applied
            if due.at > now:
                return applied
            applied += self._apply(plan, due)
            due.done = True

    def _apply(self, plan: _RunPlan, action: _Action) -> int:
        world, at = self.world, action.at
        if action.kind == "appear":
            # Static plus dynamic, evaluated now (the freeze); a VM not on Customer Managed
            # Schedules or created less than 15 min before the start gets no row at all
            # (README "Pre-flight").
            machines = [m for m in world.machines_of(plan.spec.id)
                        if m.customer_managed
                        and (m.created is None or m.created <= plan.start - NEW_VM_BEFORE)]
            plan.run = SimRun(
                correlation_id=plan.correlation_id, configuration_id=plan.spec.id,
                start=plan.start, end=plan.end, status="Pending",
                machine_ids=[m.id for m in machines],
                results={m.id: MachineResult() for m in machines},
            )
            world.upsert_run(plan.run)
            plan.run.updated = at
            self._plan_machines(plan, machines)
            return 1
        run = plan.run
        assert run is not None
        if run.status == "Cancelled":
            # Cancelled (by a user through the API, or the platform): nothing more happens;
            # already written events stay written.
            return 0
        if action.kind in ("cancel-platform", "cancel-user"):
            by = action.kind.removeprefix("cancel-")
            message = PLATFORM_CANCEL_MESSAGE if by == "platform" else USER_CANCEL_MESSAGE
            run.status, run.cancelled_by = "Cancelled", by
            run.error_message = message.format(at=iso_z(at))
        elif action.kind in ("pre", "pre-dup"):
            # A redelivery is the same event again, eventTime included.
            self._emit(plan, "pre", at, plan.sent_at.setdefault("pre", at), copy=action.kind)
        elif action.kind == "malformed":
            # A stray message that is no event: it lands where the pre-event's queue routes go.
            for route in self.world.eventgrid.routes(plan.spec.id, PRE_EVENT_TYPE, at,
                                                     count=False):
                if route.queue is not None:
                    self._queue(("malformed", plan.correlation_id.lower(),
                                 route.subscription_id.lower()), at, MALFORMED_MESSAGE,
                                route.queue, route, counted=False)
        elif action.kind == "start":
            run.status = "InProgress"
            for result in run.results.values():
                result.status, result.started = "InProgress", at
        elif action.kind == "machine":
            assert action.machine is not None
            run.results[action.machine.machine_id] = action.machine.result
        elif action.kind == "complete":
            run.status = plan.final_status
        elif action.kind in ("post", "post-dup"):
            status = "Succeeded" if plan.final_status == "Completed" else (
                plan.spec.behaviour.failed_status)
            self._emit(plan, "post", at, plan.sent_at.setdefault("post", at), copy=action.kind,
                       status=status)
        run.updated = at
        return 1

    # -- events --------------------------------------------------------------------------
    def _emit(self, plan: _RunPlan, kind: str, at: datetime, event_time: datetime, *,
              copy: str, status: str | None = None) -> None:
        spec, b = plan.spec, plan.spec.behaviour
        run = plan.run
        assert run is not None
        subs = sorted({self._sub_of(mid) for mid in run.machine_ids} or {spec.subscription_id})
        first = not copy.endswith("-dup")  # a redelivery is not published again
        event_type = PRE_EVENT_TYPE if kind == "pre" else POST_EVENT_TYPE
        # Event Grid delivers the event only through the topic's enabled subscriptions that
        # include its type, each in its own schema to its own queue (eventgrid.py).
        for route in self.world.eventgrid.routes(spec.id, event_type, at, count=first):
            if route.queue is None:
                continue  # a failed delivery, counted by routes()
            schema = route.schema
            if schema == "eventgrid" and b.schema == "plain-json":
                schema = "plain-json"  # the older plain-text encoding of the same schema
            event = build_event(
                kind=kind, correlation_id=plan.correlation_id, configuration_id=spec.id,
                configuration_name=spec.name, start=plan.start, end=plan.end,
                subscription_ids=subs, event_time=event_time + timedelta(milliseconds=371),
                cutoff=plan.start - b.cutoff, status=status, schema=schema)
            self._queue((copy, plan.correlation_id.lower(), route.subscription_id.lower()), at,
                        encode_message(event, schema), route.queue, route, counted=first)

    @staticmethod
    def _sub_of(machine_id: str) -> str:
        return id_segment(machine_id, "subscriptions")

    def _queue(self, key: tuple[str, str, str], at: datetime, text: str, queue: str,
               route: Route | None = None, *, counted: bool = True) -> None:
        if key in self._written or any(o.key == key for o in self._outbox):
            return
        if at < self.started_at - self.scenario.history_events:
            self._written.add(key)  # long past: as if consumed before we looked
            if route is not None and counted:
                self.world.eventgrid.record(route.topic_id, "DeliverySuccessCount", at,
                                            subscription=route.subscription_name)
            return
        self._outbox.append(_Outgoing(key, at, text, queue, route, counted))

    def _flush(self) -> int:
        """Send queued events in time order; stop at the first failure (retried next step)."""
        sent = 0
        self._outbox.sort(key=lambda o: o.at)
        while self._outbox:
            item = self._outbox[0]
            eg = self.world.eventgrid
            if self.sink is not None:
                try:
                    self.sink.send_to(item.queue, item.text)  # its own queue: send()
                except QueueMissing:
                    # Event Grid cannot deliver to a queue that does not exist: a failed
                    # delivery (dead-lettered or dropped), never retried by the engine.
                    self._outbox.pop(0)
                    self._written.add(item.key)
                    if item.route is not None and item.counted:
                        eg.record_failure(item.route, item.at)
                    continue
                except Exception as exc:  # the sink is I/O (Azurite may be down): retry later
                    self.last_error = f"event write failed: {exc}"
                    log.warning("scenario: %s", self.last_error)
                    break
            self._outbox.pop(0)
            self._written.add(item.key)
            self._written_log.append((item.key[0], item.key[1]))
            if item.route is not None and item.counted:
                eg.record(item.route.topic_id, "DeliverySuccessCount", item.at,
                          subscription=item.route.subscription_name)
            sent += 1
        return sent

    @property
    def written(self) -> list[tuple[str, str]]:
        """(kind, correlation id) of every message written, in order (kind: pre, pre-dup,
        post, post-dup, malformed)."""
        return list(self._written_log)

    @property
    def pending_events(self) -> int:
        """Events due but not written yet (the sink failed)."""
        return len(self._outbox)

    def plan_status(self, correlation_id: str) -> str | None:
        """The run's current status, or None when the engine does not know the run."""
        plan = self._plans.get(correlation_id.lower())
        return plan.run.status if plan is not None and plan.run is not None else None

    def runs(self) -> list[tuple[str, datetime, str]]:
        """(correlation id, start, fate) of every planned run, by start."""
        return sorted(((p.correlation_id, p.start, p.fate) for p in self._plans.values()),
                      key=lambda r: r[1])

    # -- background thread ---------------------------------------------------------------
    def start(self, interval: float = 0.5) -> None:
        """Call :meth:`step` every ``interval`` real seconds on a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(interval,),
                                        name="aumwatch-scenario", daemon=True)
        self._thread.start()

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.step()
            except Exception:  # keep the stand-in alive; the failure is logged
                log.exception("scenario step failed")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background thread (if any) and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
