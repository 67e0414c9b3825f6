"""The scenario file: the TOML format the stand-in plays, parsed and validated.

:func:`load_scenario` reads a file, :func:`parse_scenario` validates parsed TOML; both raise
:class:`ScenarioError` naming the file, the place and the fault. Playing a scenario on the
clock is :mod:`services.standin.scenario` (the engine).

A scenario is a TOML file (the default one is ``services/standin/scenarios/demo.toml``; the format
is also described in ``services/standin/scenarios/README.md``)::

    seed = 7                      # machine results and finish times are drawn from it
    history_events = "3h"         # write the events of past runs that happened this recently

    [subscriptions]               # alias = subscription id
    prod = "3f2a1c9e-7b4d-4e61-9a0f-2c5d8e7b1a10"

    [storage_account]             # where Azurite's account devstoreaccount1 "is" (optional)
    subscription = "prod"         # default: the first subscription
    resource_group = "rg-aumwatch"                # default "rg-aumwatch"
    location = "westeurope"       # default "westeurope"

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
    wiring = "ok"                 # its Event Grid wiring, see "Wiring" below

    [[configuration.machines]]
    count = 40
    prefix = "weu-web"            # machines are <prefix>-001, <prefix>-002, ...
    kind = "vm"                   # vm | arc
    os = "Windows"                # Windows | Linux
    resource_group = "rg-web"     # default: the configuration's; also subscription, location
    power = "running"             # pre-flight state (see "Machines" below)

    [[configuration.dynamic_scope]]   # machines the run takes by filter, evaluated at T-40
    subscription = "prod"         # default: the configuration's
    resource_groups = ["rg-web"]  # each list optional: empty = no constraint
    locations = ["westeurope"]
    os_types = ["Windows"]
    resource_types = ["Microsoft.Compute/virtualMachines"]
    tags = { env = ["prod"] }     # key -> list of values
    tag_operator = "All"          # All | Any

    [configuration.behaviour]     # applies to every run that is not history
    fail = 0.1                    # fraction of machines that fail (or fail_count = 3)
    fail_message = "KB5034441 failed: 0x80070643"
    platform_cancel = "T-30m"     # the platform cancels (and the pre-event is never delivered)
    pre_event = "T-40m..T-30m"    # when the pre-event is written: a time, a range (each run
                                  # draws its moment from the seed; the default), or "never"
    cutoff = "T-10m"              # the pre-event's CancellationCutOffDateTime
    duplicate = ["pre"]           # events delivered twice ("pre", "post")
    malformed = true              # one undecodable message follows the pre-event
    schema = "eventgrid"          # eventgrid | cloudevents | plain-json
    failed_status = "Failed"      # post-event Status of a failed run (only Succeeded is documented)
    finish = [0.05, 0.6]          # machines finish between these fractions of the window
    overrun = 0.2                 # chance that a run overruns: a few of its machines finish
                                  # after the window end (maintenanceWindowExceeded)
    never_starts = false          # true: its runs never happen (no Resource Graph row and
                                  # no event at all); the schedule still says they should

A configuration with no ``[[configuration.machines]]`` has runs with no machines.

Durations are written like ``90s``, ``25m``, ``1h30m``, ``2d``. Outcomes: ``completed`` (the
behaviour's failures apply), ``succeeded`` (no machine fails), ``failed`` (every machine
fails), ``cancelled-user`` (cancelled at T-20 through the API), ``cancelled-platform``.

Machines. Besides ``count``, ``prefix``, ``kind``, ``os`` and where they are, a machine
table sets what pre-flight reads (issue 18; services/standin/README.md, "Pre-flight"):
``power`` ("running" default, "stopped", "deallocated"), ``arc_status`` ("Connected" default,
"Disconnected", "Expired"; Arc), ``patch_mode`` (default "AutomaticByPlatform"), ``bypass``
(default true), ``extension`` ("Succeeded" default, "Failed", "missing"), ``created`` (a time
form: ``now-10m`` or a UTC wall time ``YYYY-MM-DD hh:mm``; default long ago), ``pending``
(classification -> count with Azure's keys ``critical``, ``security``, ``updateRollup``,
``featurePack``, ``servicePack``, ``definition``, ``tools``, ``updates``, ``other``),
``assessed`` (a time form or "never"; default ``now-3h``), ``reboot_pending`` (default false),
``tags`` (a table), ``exists`` (default true; false: deleted, only the assignment remains). A
machine is its subscription + resource group + name: two groups that name the same machine
make one machine assigned twice. Top-level ``[[machines]]`` (same keys; ``resource_group``
required, ``subscription`` default the first, ``location`` default "westeurope") are machines
of the world with no static assignment, for dynamic scopes to find.

Wiring. Events reach a queue only through an Event Grid system topic of the configuration and
an event subscription on it (services/standin/eventgrid.py). The engine creates them when it
installs the scenario (topic ``<configuration>-events`` in the configuration's resource group
and location; subscription ``aumwatch-events``; the watched queue is the one the engine writes
to, ``aum-events`` in ``aumwatch sim``), as ``wiring`` says:

* ``ok`` (default): pre and post, the behaviour's schema, to the watched queue;
* ``no-topic``: no system topic (no events at all); ``missing``: a topic, no subscription;
* ``pre-only`` / ``post-only``: the subscription includes one event type;
* ``other-queue``: to the queue ``aum-events-other`` (created) on the same account;
* ``webhook``: a webhook whose URL holds a key (``?code=...``); ``function``: an Azure
  Function; neither can be reached locally, so each delivery fails (and is dropped);
* ``disabled``: the subscription's provisioning state is ``Failed``; ``awaiting``:
  ``AwaitingManualAction``; ``expired``: its ``expirationTimeUtc`` passed an hour before the
  engine started (events before that were delivered);
* ``failing``: the watched queue, but its endpoint is broken: every delivery fails and is
  dead-lettered (a dead-letter destination is set); ``dropping``: the same without a
  dead-letter destination (dropped);
* ``identity``: the topic has a system-assigned identity, the subscription delivers with it,
  and the identity holds "Storage Queue Data Message Sender" on the account;
  ``identity-no-role``: the same without the role assignment (every delivery fails).

Relative starts. ``start = "now+25m"`` means "this schedule has a run at engine start + 25 min
(rounded up to the minute)". The engine writes a real ``startDateTime`` in the configuration's
zone a few periods earlier, so that the past runs (history) are genuine occurrences, and checks
that the schedule does produce a run at that instant. ``{weekday}`` (e.g. ``Tuesday``) and
``{day}`` (e.g. ``day14``) in ``recur_every`` are replaced by that run's local weekday / day of
month, so ``"Week {weekday}"`` and ``"Month {day}"`` follow the start. A negative start
(``now-30m``) places a run that is already running (or finished, if the window is short).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from services.standin.eventgrid import WIRINGS
from services.standin.events_out import SCHEMAS

DEMO_SCENARIO = "demo.toml"
OUTCOMES = ("completed", "succeeded", "failed", "cancelled-user", "cancelled-platform")
DEFAULT_STORAGE_GROUP = "rg-aumwatch"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_DURATION_RE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_RELATIVE_RE = re.compile(r"now\s*(?:([+-])\s*(\S+))?", re.IGNORECASE)
_T_RE = re.compile(r"T\s*(?:([+-])\s*(\S+))?")


class ScenarioError(ValueError):
    """A scenario that cannot be played; the message names the file, the place and the fault."""



POWER_STATES = ("running", "stopped", "deallocated")
ARC_STATUSES = ("Connected", "Disconnected", "Expired")
EXTENSION_STATES = ("Succeeded", "Failed", "missing")
PENDING_KEYS = ("critical", "security", "updateRollup", "featurePack", "servicePack",
                "definition", "tools", "updates", "other")
TAG_OPERATORS = ("All", "Any")
#: Default age of a machine's latest assessment ("a few hours ago").
DEFAULT_ASSESSED = "now-3h"


@dataclass(frozen=True)
class MachineGroup:
    count: int
    prefix: str
    arc: bool = False
    os: str = "Windows"
    resource_group: str | None = None
    subscription_id: str | None = None
    location: str | None = None
    # Pre-flight state (issue 18): see the module docstring, "Machines".
    power: str = "running"
    arc_status: str = "Connected"
    patch_mode: str = "AutomaticByPlatform"
    bypass: bool = True
    extension: str = "Succeeded"
    created: str | None = None  # a time form; None: long ago
    pending: tuple[tuple[str, int], ...] = ()
    assessed: str | None = DEFAULT_ASSESSED  # a time form; None: never
    reboot_pending: bool = False
    tags: tuple[tuple[str, str], ...] = ()
    exists: bool = True


@dataclass(frozen=True)
class DynamicScopeSpec:
    """A ``[[configuration.dynamic_scope]]``: one subscription's filter."""

    subscription_id: str
    resource_groups: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    os_types: tuple[str, ...] = ()
    resource_types: tuple[str, ...] = ()
    tags: tuple[tuple[str, tuple[str, ...]], ...] = ()
    tag_operator: str = "All"


@dataclass(frozen=True)
class Behaviour:
    fail_fraction: float = 0.0
    fail_count: int | None = None
    fail_message: str = "Failed to install 1 update: 0x80070643 (ERROR_INSTALL_FAILURE)"
    platform_cancel: timedelta | None = None  # how long before T the platform cancels
    # Before T; None: never delivered. With a spread, each run's pre-event falls somewhere
    # in [T - pre_event, T - pre_event + spread] (docs/azure.md: between T-40 and T-30).
    pre_event: timedelta | None = timedelta(minutes=40)
    pre_event_spread: timedelta = timedelta(minutes=10)
    cutoff: timedelta = timedelta(minutes=10)  # before T
    duplicate: frozenset[str] = frozenset()
    malformed: bool = False
    schema: str = "eventgrid"
    failed_status: str = "Failed"
    finish: tuple[float, float] = (0.05, 0.6)
    overrun: float = 0.2  # chance that a run has machines finishing after the window end
    never_starts: bool = False  # its runs never happen: no run row, no events (issue 21)


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
    wiring: str = "ok"
    dynamic_scopes: tuple[DynamicScopeSpec, ...] = ()

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Maintenance/maintenanceConfigurations/{self.name}"
        )


@dataclass(frozen=True)
class StorageAccountSpec:
    """Where the Azurite account (devstoreaccount1) is in the stand-in's ARM world."""

    subscription_id: str
    resource_group: str = DEFAULT_STORAGE_GROUP
    location: str = "westeurope"


@dataclass(frozen=True)
class Scenario:
    subscriptions: tuple[str, ...]
    configurations: tuple[ConfigurationSpec, ...]
    seed: int = 0
    history_events: timedelta = timedelta(hours=3)
    source: str = "<scenario>"
    storage_account: StorageAccountSpec | None = None  # None: the first subscription's
    machines: tuple[MachineGroup, ...] = ()  # top-level [[machines]]: no static assignment


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
    pre = t.get("pre_event", (bool, str), "T-40m..T-30m")
    pre_event: timedelta | None
    spread = timedelta(0)
    if pre is False or (isinstance(pre, str) and pre.strip().lower() == "never"):
        pre_event = None
    elif pre is True:
        pre_event, spread = timedelta(minutes=40), timedelta(minutes=10)
    elif ".." in pre:
        first, _, last = pre.partition("..")
        pre_event = parse_before_t(first, f"{where}.pre_event")
        latest = parse_before_t(last, f"{where}.pre_event")
        if latest > pre_event:
            raise ScenarioError(f"{where}.pre_event: {pre!r}: the range must go forward in "
                                "time, like 'T-40m..T-30m'")
        spread = pre_event - latest
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
    overrun = float(t.get("overrun", (int, float), Behaviour.overrun))
    if not 0.0 <= overrun <= 1.0:
        raise ScenarioError(f"{where}.overrun: {overrun} is not a fraction between 0 and 1")
    behaviour = Behaviour(
        fail_fraction=fail,
        fail_count=fail_count,
        fail_message=t.get("fail_message", str, Behaviour.fail_message),
        platform_cancel=platform_cancel,
        pre_event=pre_event,
        pre_event_spread=spread if pre_event is not None else timedelta(0),
        cutoff=cutoff,
        duplicate=frozenset(duplicate),
        malformed=t.get("malformed", bool, False),
        schema=schema,
        failed_status=t.get("failed_status", str, "Failed"),
        finish=(float(finish[0]), float(finish[1])),
        overrun=overrun,
        never_starts=t.get("never_starts", bool, False),
    )
    t.done()
    return behaviour


def _time_form(value: str, where: str, *, never: bool = False) -> str | None:
    """Check a time form (``now±<duration>`` or a UTC wall time ``YYYY-MM-DD hh:mm``; with
    ``never``, also "never", returned as None)."""
    text = value.strip()
    if never and text.lower() == "never":
        return None
    if parse_relative(text, where) is None and not re.fullmatch(
            r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", text):
        raise ScenarioError(f"{where}: {value!r} is not a time like 'now-10m' or "
                            "'2026-03-01 08:00' (UTC)" + (" or 'never'" if never else ""))
    return text


def _one_of(value: str, options: tuple[str, ...], where: str) -> str:
    for option in options:
        if value.lower() == option.lower():
            return option
    raise ScenarioError(f"{where}: {value!r} is not one of {', '.join(options)}")


def _preflight_keys(t: _Table, w: str) -> dict[str, Any]:
    """The pre-flight keys of a machine table (issue 18), validated."""
    pending = t.get("pending", dict, {})
    for key, count in pending.items():
        if key not in PENDING_KEYS:
            raise ScenarioError(f"{w}.pending: {key!r} is not one of {', '.join(PENDING_KEYS)}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ScenarioError(f"{w}.pending.{key}: expected a count (0 or more)")
    tags = t.get("tags", dict, {})
    if not all(isinstance(v, str) for v in tags.values()):
        raise ScenarioError(f"{w}.tags: tag values must be text")
    created = t.get("created", str, None)
    return dict(
        power=_one_of(t.get("power", str, "running"), POWER_STATES, f"{w}.power"),
        arc_status=_one_of(t.get("arc_status", str, "Connected"), ARC_STATUSES,
                           f"{w}.arc_status"),
        patch_mode=t.get("patch_mode", str, "AutomaticByPlatform"),
        bypass=t.get("bypass", bool, True),
        extension=_one_of(t.get("extension", str, "Succeeded"), EXTENSION_STATES,
                          f"{w}.extension"),
        created=_time_form(created, f"{w}.created") if created is not None else None,
        pending=tuple(sorted(pending.items())),
        assessed=_time_form(t.get("assessed", str, DEFAULT_ASSESSED), f"{w}.assessed",
                            never=True),
        reboot_pending=t.get("reboot_pending", bool, False),
        tags=tuple(sorted(tags.items())),
        exists=t.get("exists", bool, True),
    )


def _dynamic_scopes(data: Any, where: str, aliases: Mapping[str, str],
                    default_sub: str) -> tuple[DynamicScopeSpec, ...]:
    if not isinstance(data, list):
        raise ScenarioError(f"{where}: expected a list of [[configuration.dynamic_scope]]")
    scopes = []
    for i, item in enumerate(data):
        w = f"{where}[{i}]"
        t = _Table(item, w)
        sub = t.get("subscription", str, None)
        sub_id = aliases.get(sub, sub) if sub else default_sub

        def texts(key: str, t: _Table = t, w: str = w) -> tuple[str, ...]:
            values = t.get(key, list, [])
            if not all(isinstance(v, str) for v in values):
                raise ScenarioError(f"{w}.{key}: expected a list of text")
            return tuple(values)

        tags: list[tuple[str, tuple[str, ...]]] = []
        for key, values in t.get("tags", dict, {}).items():
            listed = [values] if isinstance(values, str) else values
            if not isinstance(listed, list) or not all(isinstance(v, str) for v in listed):
                raise ScenarioError(f"{w}.tags.{key}: expected a list of values")
            tags.append((key, tuple(listed)))
        scopes.append(DynamicScopeSpec(
            subscription_id=sub_id, resource_groups=texts("resource_groups"),
            locations=texts("locations"), os_types=texts("os_types"),
            resource_types=texts("resource_types"), tags=tuple(tags),
            tag_operator=_one_of(t.get("tag_operator", str, "All"), TAG_OPERATORS,
                                 f"{w}.tag_operator")))
        t.done()
    return tuple(scopes)


def _machines(data: Any, where: str, aliases: Mapping[str, str], *,
              top_level: bool = False) -> tuple[MachineGroup, ...]:
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
        if top_level and not sub:
            sub = next(iter(aliases.values()))
        groups.append(MachineGroup(
            count=count, prefix=prefix, arc=kind == "arc", os=os_name.capitalize(),
            resource_group=t.get("resource_group", str, ... if top_level else None),
            subscription_id=aliases.get(sub, sub) if sub else None,
            location=t.get("location", str, "westeurope" if top_level else None),
            **_preflight_keys(t, w),
        ))
        t.done()
    return tuple(groups)


def _storage_account(data: Any, where: str, aliases: Mapping[str, str]) -> StorageAccountSpec:
    t = _Table(data, where)
    sub = t.get("subscription", str, None)
    sub_id = aliases.get(sub, sub) if sub else next(iter(aliases.values()))
    if sub_id not in aliases.values():
        raise ScenarioError(f"{where}.subscription: {sub!r} is not listed in [subscriptions]")
    group = t.get("resource_group", str, DEFAULT_STORAGE_GROUP)
    if not _NAME_RE.fullmatch(group):
        raise ScenarioError(f"{where}.resource_group: {group!r} is not a valid resource group "
                            "name")
    spec = StorageAccountSpec(sub_id, group, t.get("location", str, "westeurope"))
    t.done()
    return spec


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
        wiring = t.get("wiring", str, "ok")
        if wiring not in WIRINGS:
            raise ScenarioError(f"{w}.wiring: {wiring!r} is not one of {', '.join(WIRINGS)}")
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
            wiring=wiring,
            dynamic_scopes=_dynamic_scopes(t.get("dynamic_scope", list, []),
                                           f"{w}.dynamic_scope", aliases, sub_id),
        )
        t.done()
        if spec.id.lower() in seen:
            raise ScenarioError(f"{w}: a configuration with this name already exists in {rg}")
        seen.add(spec.id.lower())
        configs.append(spec)
    history_events = parse_duration(top.get("history_events", str, "3h"),
                                    f"{source}.history_events")
    storage = _storage_account(top.get("storage_account", dict, {}),
                               f"{source}.storage_account", aliases)
    scenario = Scenario(
        subscriptions=tuple(dict.fromkeys(aliases.values())),
        configurations=tuple(configs),
        seed=top.get("seed", int, 0),
        history_events=history_events,
        source=source,
        storage_account=storage,
        machines=_machines(top.get("machines", list, []), f"{source}.machines", aliases,
                           top_level=True),
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
