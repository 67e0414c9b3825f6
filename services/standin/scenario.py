"""Scenarios for the stand-in, and the engine that plays them on the World's clock.

A scenario is a TOML file (the default one is ``services/standin/scenarios/demo.toml``; the format
is also described in ``services/standin/scenarios/README.md``)::

    seed = 7                      # machine results and finish times are drawn from it
    history_events = "3h"         # write the events of past runs that happened this recently

    [subscriptions]               # alias = subscription id
    prod = "3f2a1c9e-7b4d-4e61-9a0f-2c5d8e7b1a10"

    [[configuration]]
    name = "patch-weu-web"        # letters, digits, '-', '_', '.'
    subscription = "prod"         # an alias above (or a subscription id)
    resource_group = "rg-patch-weu"
    location = "westeurope"       # default "westeurope"
    time_zone = "W. Europe Standard Time"   # Windows or IANA name
    recur_every = "Week {weekday}"          # Azure's recurEvery; see "Relative starts"
    duration = "03:00"            # "HH:mm", default "03:55"
    start = "now+25m"             # "now±<duration>" or a wall time "YYYY-MM-DD hh:mm"
    expiration = "now+90d"        # optional, same forms
    tags = { owner = "ops" }      # optional, shown as configuration tags
    history = 3                   # finished runs to synthesise before the live ones
    outcomes = ["failed", "completed"]      # of those finished runs, newest first

    [[configuration.machines]]
    count = 40
    prefix = "weu-web"            # machines are <prefix>-001, <prefix>-002, ...
    kind = "vm"                   # vm | arc
    os = "Windows"                # Windows | Linux
    resource_group = "rg-web"     # default: the configuration's; also subscription, location

    [configuration.behaviour]     # applies to every run that is not history
    fail = 0.1                    # fraction of machines that fail (or fail_count = 3)
    fail_message = "KB5034441 failed: 0x80070643"
    platform_cancel = "T-30m"     # the platform cancels (and the pre-event is never delivered)
    pre_event = "T-35m"           # when the pre-event is written, or "never"
    cutoff = "T-10m"              # the pre-event's CancellationCutOffDateTime
    duplicate = ["pre"]           # events delivered twice ("pre", "post")
    malformed = true              # one undecodable message follows the pre-event
    schema = "eventgrid"          # eventgrid | cloudevents | plain-json
    failed_status = "Failed"      # post-event Status of a failed run (only Succeeded is documented)
    finish = [0.05, 0.6]          # machines finish between these fractions of the window

Durations are written like ``90s``, ``25m``, ``1h30m``, ``2d``. Outcomes: ``completed`` (the
behaviour's failures apply), ``succeeded`` (no machine fails), ``failed`` (every machine
fails), ``cancelled-user`` (cancelled at T-20 through the API), ``cancelled-platform``.

Relative starts. ``start = "now+25m"`` means "this schedule has a run at engine start + 25 min
(rounded up to the minute)". The engine writes a real ``startDateTime`` in the configuration's
zone a few periods earlier, so that the past runs (history) are genuine occurrences, and checks
that the schedule does produce a run at that instant. ``{weekday}`` (e.g. ``Tuesday``) and
``{day}`` (e.g. ``day14``) in ``recur_every`` are replaced by that run's local weekday / day of
month, so ``"Week {weekday}"`` and ``"Month {day}"`` follow the start. A negative start
(``now-30m``) places a run that is already running (or finished, if the window is short).

Lifecycle of one run starting at T (times on the World's clock, all planned when the run
appears, so stepping late or twice gives the same result):

* T-40: the schedule-level run row appears, Pending; the machines are frozen then;
* platform cancel (if any): Cancelled with the platform message, no pre-event;
* T-35 (``pre_event``): the pre-event, CancellationCutOffDateTime = ``cutoff``;
* T: the run and its machines go InProgress;
* each machine finishes at its own time within the window (counts, reboot status, errors);
* when the last machine is done: Completed (or Failed when every machine failed) and the
  post-event (Status ``Succeeded`` or ``failed_status``).

A run cancelled by anyone (a user through the stand-in's API, the platform) stops there and
gets no post-event. Events are written once each (except the deliberate duplicates); an event
the sink could not take (Azurite down) is retried on the next step.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
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
from services.standin.events_out import (
    MALFORMED_MESSAGE,
    SCHEMAS,
    EventSink,
    build_event,
    encode_message,
)
from services.standin.world import (
    PLATFORM_CANCEL_MESSAGE,
    USER_CANCEL_MESSAGE,
    MachineResult,
    SimMachine,
    SimRun,
    World,
    configuration_object,
)

log = logging.getLogger(__name__)

DEMO_SCENARIO = "demo.toml"
APPEARS_BEFORE = timedelta(minutes=40)  # the run row appears and machines freeze at T-40
USER_CANCEL_BEFORE = timedelta(minutes=20)  # when a synthesised "cancelled-user" run was cancelled
OUTCOMES = ("completed", "succeeded", "failed", "cancelled-user", "cancelled-platform")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_DURATION_RE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_RELATIVE_RE = re.compile(r"now\s*(?:([+-])\s*(\S+))?", re.IGNORECASE)
_T_RE = re.compile(r"T\s*(?:([+-])\s*(\S+))?")
_WALL_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")
_TICK = timedelta(microseconds=1)
_NEVER = Occurrence(datetime.max.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
_PERIOD_RE = re.compile(r"\s*(\d*)\s*(hour|day|week|month)s?\b", re.IGNORECASE)


class ScenarioError(ValueError):
    """A scenario that cannot be played; the message names the file, the place and the fault."""


# --------------------------------------------------------------------------- the format


@dataclass(frozen=True)
class MachineGroup:
    count: int
    prefix: str
    arc: bool = False
    os: str = "Windows"
    resource_group: str | None = None
    subscription_id: str | None = None
    location: str | None = None


@dataclass(frozen=True)
class Behaviour:
    fail_fraction: float = 0.0
    fail_count: int | None = None
    fail_message: str = "Failed to install 1 update: 0x80070643 (ERROR_INSTALL_FAILURE)"
    platform_cancel: timedelta | None = None  # how long before T the platform cancels
    pre_event: timedelta | None = timedelta(minutes=35)  # before T; None: never delivered
    cutoff: timedelta = timedelta(minutes=10)  # before T
    duplicate: frozenset[str] = frozenset()
    malformed: bool = False
    schema: str = "eventgrid"
    failed_status: str = "Failed"
    finish: tuple[float, float] = (0.05, 0.6)


@dataclass(frozen=True)
class ConfigurationSpec:
    name: str
    subscription_id: str
    resource_group: str
    location: str
    time_zone: str
    recur_every: str
    duration: str
    start: str
    expiration: str | None
    tags: Mapping[str, str]
    machines: tuple[MachineGroup, ...]
    behaviour: Behaviour
    history: int
    outcomes: tuple[str, ...]

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Maintenance/maintenanceConfigurations/{self.name}"
        )


@dataclass(frozen=True)
class Scenario:
    subscriptions: tuple[str, ...]
    configurations: tuple[ConfigurationSpec, ...]
    seed: int = 0
    history_events: timedelta = timedelta(hours=3)
    source: str = "<scenario>"


def parse_duration(text: str, where: str) -> timedelta:
    """``90s``, ``25m``, ``1h30m``, ``2d`` -> timedelta (non-negative)."""
    match = _DURATION_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or not any(match.groups()):
        raise ScenarioError(f"{where}: {text!r} is not a duration like '25m', '1h30m' or '2d'")
    d, h, m, s = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=d, hours=h, minutes=m, seconds=s)


def parse_before_t(text: str, where: str) -> timedelta:
    """``T-35m`` -> 35 minutes (how long before T). ``T+5m`` gives a negative value."""
    match = _T_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ScenarioError(f"{where}: {text!r} is not a time relative to the run like 'T-35m'")
    if match.group(1) is None:
        return timedelta(0)
    delta = parse_duration(match.group(2), where)
    return delta if match.group(1) == "-" else -delta


def parse_relative(text: str, where: str) -> timedelta | None:
    """``now+25m`` -> +25 min, ``now-2h`` -> -2 h; None when ``text`` is not relative."""
    match = _RELATIVE_RE.fullmatch(text.strip())
    if match is None:
        return None
    if match.group(1) is None:
        return timedelta(0)
    delta = parse_duration(match.group(2), where)
    return delta if match.group(1) == "+" else -delta


class _Table:
    """A TOML table being read: typed getters with errors naming the place; unknown keys fail."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ScenarioError(f"{where}: expected a table, got {type(data).__name__}")
        self.data = data
        self.where = where
        self.used: set[str] = set()

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise ScenarioError(f"{self.where}: missing required key '{key}'")
            return default
        value = self.data[key]
        # bool is an int in Python; a count of `true` is a mistake, not 1.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise ScenarioError(f"{self.where}.{key}: expected {_kind_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            raise ScenarioError(
                f"{self.where}.{key}: expected {_kind_name(kind)}, got {type(value).__name__}"
            )
        return value

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ScenarioError(f"{self.where}: unknown key(s) {', '.join(map(repr, unknown))}")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "text", int: "an integer", float: "a number", bool: "true/false",
             list: "a list", dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _behaviour(data: Any, where: str) -> Behaviour:
    t = _Table(data if data is not None else {}, where)
    fail = float(t.get("fail", (int, float), 0.0))
    if not 0.0 <= fail <= 1.0:
        raise ScenarioError(f"{where}.fail: {fail} is not a fraction between 0 and 1")
    fail_count = t.get("fail_count", int, None)
    if fail_count is not None and fail_count < 0:
        raise ScenarioError(f"{where}.fail_count: must not be negative")
    platform = t.get("platform_cancel", (bool, str), False)
    platform_cancel: timedelta | None
    if platform is True:
        platform_cancel = timedelta(minutes=30)
    elif platform is False:
        platform_cancel = None
    else:
        platform_cancel = parse_before_t(platform, f"{where}.platform_cancel")
    pre = t.get("pre_event", (bool, str), "T-35m")
    pre_event: timedelta | None
    if pre is False or (isinstance(pre, str) and pre.strip().lower() == "never"):
        pre_event = None
    elif pre is True:
        pre_event = timedelta(minutes=35)
    else:
        pre_event = parse_before_t(pre, f"{where}.pre_event")
    if platform_cancel is not None:
        pre_event = None  # Azure cancels by itself only when it could not deliver the pre-event
    cutoff = parse_before_t(t.get("cutoff", str, "T-10m"), f"{where}.cutoff")
    duplicate = t.get("duplicate", list, [])
    bad = [d for d in duplicate if d not in ("pre", "post")]
    if bad:
        raise ScenarioError(f"{where}.duplicate: {bad!r}: only 'pre' and 'post' can be duplicated")
    schema = t.get("schema", str, "eventgrid")
    if schema not in SCHEMAS:
        raise ScenarioError(f"{where}.schema: {schema!r} is not one of {', '.join(SCHEMAS)}")
    finish = t.get("finish", list, [0.05, 0.6])
    if (
        len(finish) != 2
        or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in finish)
        or not 0.0 <= finish[0] <= finish[1] <= 1.0
    ):
        raise ScenarioError(f"{where}.finish: expected [low, high] with 0 <= low <= high <= 1")
    behaviour = Behaviour(
        fail_fraction=fail,
        fail_count=fail_count,
        fail_message=t.get("fail_message", str, Behaviour.fail_message),
        platform_cancel=platform_cancel,
        pre_event=pre_event,
        cutoff=cutoff,
        duplicate=frozenset(duplicate),
        malformed=t.get("malformed", bool, False),
        schema=schema,
        failed_status=t.get("failed_status", str, "Failed"),
        finish=(float(finish[0]), float(finish[1])),
    )
    t.done()
    return behaviour


def _machines(data: Any, where: str, aliases: Mapping[str, str]) -> tuple[MachineGroup, ...]:
    if not isinstance(data, list):
        raise ScenarioError(f"{where}: expected a list of [[...machines]] tables")
    groups = []
    for i, item in enumerate(data):
        w = f"{where}[{i}]"
        t = _Table(item, w)
        count = t.get("count", int)
        if not 0 <= count <= 3000:  # docs/azure.md: 3,000 machines per schedule
            raise ScenarioError(f"{w}.count: {count} is not between 0 and 3000")
        prefix = t.get("prefix", str)
        if not _NAME_RE.fullmatch(prefix):
            raise ScenarioError(f"{w}.prefix: {prefix!r} is not a valid machine name prefix")
        kind = t.get("kind", str, "vm").lower()
        if kind not in ("vm", "arc"):
            raise ScenarioError(f"{w}.kind: {kind!r} is not 'vm' or 'arc'")
        os_name = t.get("os", str, "Windows")
        if os_name.lower() not in ("windows", "linux"):
            raise ScenarioError(f"{w}.os: {os_name!r} is not 'Windows' or 'Linux'")
        sub = t.get("subscription", str, None)
        groups.append(MachineGroup(
            count=count, prefix=prefix, arc=kind == "arc", os=os_name.capitalize(),
            resource_group=t.get("resource_group", str, None),
            subscription_id=aliases.get(sub, sub) if sub else None,
            location=t.get("location", str, None),
        ))
        t.done()
    return tuple(groups)


def parse_scenario(data: Mapping[str, Any], source: str = "<scenario>") -> Scenario:
    """Validate a scenario given as parsed TOML. Raises :class:`ScenarioError`."""
    top = _Table(dict(data), source)
    aliases_raw = top.get("subscriptions", dict)
    aliases: dict[str, str] = {}
    for alias, sub_id in aliases_raw.items():
        if not isinstance(sub_id, str) or not sub_id.strip():
            raise ScenarioError(f"{source}.subscriptions.{alias}: expected a subscription id")
        aliases[alias] = sub_id.strip()
    if not aliases:
        raise ScenarioError(f"{source}.subscriptions: at least one subscription is needed")
    configs: list[ConfigurationSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(top.get("configuration", list, [])):
        w = f"{source}.configuration[{i}]"
        t = _Table(item, w)
        name = t.get("name", str)
        w = f"{source}.configuration[{i}] ({name})"
        t.where = w
        if not _NAME_RE.fullmatch(name):
            raise ScenarioError(
                f"{w}.name: {name!r} is not a valid Azure resource name "
                "(letters, digits, '-', '_', '.')")
        sub = t.get("subscription", str)
        sub_id = aliases.get(sub, sub)
        if sub_id not in aliases.values():
            raise ScenarioError(f"{w}.subscription: {sub!r} is not listed in [subscriptions]")
        rg = t.get("resource_group", str)
        if not _NAME_RE.fullmatch(rg):
            raise ScenarioError(f"{w}.resource_group: {rg!r} is not a valid resource group name")
        history = t.get("history", int, 0)
        if not 0 <= history <= 200:
            raise ScenarioError(f"{w}.history: {history} is not between 0 and 200")
        outcomes = tuple(t.get("outcomes", list, []))
        bad = [o for o in outcomes if o not in OUTCOMES]
        if bad:
            raise ScenarioError(f"{w}.outcomes: {bad!r}: each must be one of {', '.join(OUTCOMES)}")
        tags = t.get("tags", dict, {})
        if not all(isinstance(v, str) for v in tags.values()):
            raise ScenarioError(f"{w}.tags: tag values must be text")
        spec = ConfigurationSpec(
            name=name,
            subscription_id=sub_id,
            resource_group=rg,
            location=t.get("location", str, "westeurope"),
            time_zone=t.get("time_zone", str, "UTC"),
            recur_every=t.get("recur_every", str),
            duration=t.get("duration", str, "03:55"),
            start=t.get("start", str),
            expiration=t.get("expiration", str, None),
            tags=dict(tags),
            machines=_machines(t.get("machines", list, []), f"{w}.machines", aliases),
            behaviour=_behaviour(t.get("behaviour", dict, None), f"{w}.behaviour"),
            history=history,
            outcomes=outcomes,
        )
        t.done()
        if spec.id.lower() in seen:
            raise ScenarioError(f"{w}: a configuration with this name already exists in {rg}")
        seen.add(spec.id.lower())
        configs.append(spec)
    history_events = parse_duration(top.get("history_events", str, "3h"),
                                    f"{source}.history_events")
    scenario = Scenario(
        subscriptions=tuple(dict.fromkeys(aliases.values())),
        configurations=tuple(configs),
        seed=top.get("seed", int, 0),
        history_events=history_events,
        source=source,
    )
    top.done()
    return scenario


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Read a scenario file; ``None`` is the packaged demo scenario."""
    if path is None:
        package = resources.files("services.standin.scenarios")
        text = package.joinpath(DEMO_SCENARIO).read_text("utf-8")
        source = DEMO_SCENARIO
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"cannot read scenario {source}: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from exc
    return parse_scenario(data, source)


# --------------------------------------------------------------------------- the engine


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
    key: tuple[str, str]
    at: datetime
    text: str


@dataclass
class _Config:
    spec: ConfigurationSpec
    schedule: Schedule
    arm: dict[str, Any]
    cursor: datetime  # occurrences starting after this are not materialised yet
    known: set[str] = field(default_factory=set)
    upcoming: Occurrence | None = None  # the next occurrence after the cursor, once known


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
        self.started_at = world.clock.now()
        self._configs: list[_Config] = []
        self._plans: dict[str, _RunPlan] = {}
        self._outbox: list[_Outgoing] = []
        self._written: set[tuple[str, str]] = set()
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

    @staticmethod
    def _arm_object(spec: ConfigurationSpec, window: dict[str, str | None]) -> dict[str, Any]:
        return configuration_object(spec.subscription_id, spec.resource_group, spec.name,
                                    window, location=spec.location, tags=dict(spec.tags))

    @staticmethod
    def _machine(spec: ConfigurationSpec, group: MachineGroup, n: int) -> SimMachine:
        sub = group.subscription_id or spec.subscription_id
        rg = group.resource_group or spec.resource_group
        name = f"{group.prefix}-{n:03d}"
        provider = ("Microsoft.HybridCompute/machines" if group.arc
                    else "Microsoft.Compute/virtualMachines")
        return SimMachine(
            id=f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider}/{name}",
            name=name, subscription_id=sub, resource_group=rg,
            location=group.location or spec.location, os_type=group.os, arc=group.arc,
        )

    def _seed_history(self, cfg: _Config, t0: datetime) -> None:
        """Materialise the live runs (row already there at t0) and ``history`` finished ones."""
        spec = cfg.spec
        picked = []
        finished = 0
        before = t0 + APPEARS_BEFORE + _TICK
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
        if fate is None:
            fate = "cancelled-platform" if b.platform_cancel is not None else "completed"
        plan = _RunPlan(spec, cid, start, end, fate)
        acts = plan.actions
        acts.append(_Action(start - APPEARS_BEFORE, "appear"))
        if fate == "cancelled-platform":
            before = b.platform_cancel if b.platform_cancel is not None else timedelta(minutes=30)
            acts.append(_Action(start - before, "cancel-platform"))
        elif fate == "cancelled-user":
            acts.append(_Action(start - USER_CANCEL_BEFORE, "cancel-user"))
        if b.pre_event is not None and fate != "cancelled-platform":
            pre_at = start - b.pre_event
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
        window = plan.end - plan.start
        lo, hi = b.finish
        last = plan.start + timedelta(minutes=1)
        for i, m in enumerate(machines):
            finish = plan.start + timedelta(
                seconds=int(window.total_seconds() * rng.uniform(lo, hi)) + 30)
            finish = min(finish, plan.end)
            last = max(last, finish)
            windows = m.os_type == "Windows"
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
            plan.actions.append(_Action(finish, "machine", _MachinePlan(m.id, finish, result)))
        all_failed = n > 0 and len(failing) >= n
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
                self._materialise(cfg, now)
            with self.world.mutate():
                for plan in sorted(self._plans.values(), key=lambda p: p.start):
                    if not plan.finished:
                        applied += self._advance(plan, now)
            applied += self._flush()
            return applied

    def _materialise(self, cfg: _Config, now: datetime) -> None:
        """Plan the occurrences whose T-40 has come (new runs while the engine runs)."""
        horizon = now + APPEARS_BEFORE
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
            machines = world.machines_of(plan.spec.id)
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
            self._queue(("malformed", plan.correlation_id.lower()), at, MALFORMED_MESSAGE)
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
        event = build_event(
            kind=kind, correlation_id=plan.correlation_id, configuration_id=spec.id,
            configuration_name=spec.name, start=plan.start, end=plan.end,
            subscription_ids=subs, event_time=event_time + timedelta(milliseconds=371),
            cutoff=plan.start - b.cutoff, status=status, schema=b.schema)
        self._queue((copy, plan.correlation_id.lower()), at, encode_message(event, b.schema))

    @staticmethod
    def _sub_of(machine_id: str) -> str:
        return machine_id.split("/")[2]

    def _queue(self, key: tuple[str, str], at: datetime, text: str) -> None:
        if key in self._written or any(o.key == key for o in self._outbox):
            return
        if at < self.started_at - self.scenario.history_events:
            self._written.add(key)  # long past: as if consumed before we looked
            return
        self._outbox.append(_Outgoing(key, at, text))

    def _flush(self) -> int:
        """Send queued events in time order; stop at the first failure (retried next step)."""
        sent = 0
        self._outbox.sort(key=lambda o: o.at)
        while self._outbox:
            item = self._outbox[0]
            if self.sink is not None:
                try:
                    self.sink.send(item.text)
                except Exception as exc:  # the sink is I/O (Azurite may be down): retry later
                    self.last_error = f"event write failed: {exc}"
                    log.warning("scenario: %s", self.last_error)
                    break
            self._outbox.pop(0)
            self._written.add(item.key)
            self._written_log.append(item.key)
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
