"""aumwatch settings: flags > environment (``AUMWATCH_*``) > TOML config file > defaults.

:func:`load_settings` builds one frozen :class:`Settings` and records, for every value, where
it came from (``flag``, ``env``, ``file`` or ``default``) so ``aumwatch config show`` can print
it. Secrets (the queue connection string, the stand-in's static token) are accepted from the
environment or the config file only, never from a flag: a flag ends up in shell history and in
``ps`` output.

The config file (default ``<user config dir>/aumwatch/config.toml``, or ``--config PATH``, or
``AUMWATCH_CONFIG``)::

    [azure]
    cloud = "public"                 # public | china | usgov | standin
    tenant = "..."
    subscriptions = ["..."]          # or management_groups = ["..."]; neither = all visible
    arm_endpoint = "https://..."     # only to override the cloud's endpoint (stand-in)
    ca_file = "/path/ca.pem"
    request_timeout = "30s"          # connect/read timeout of every HTTP call (1s..10m)
    token = "..."                    # stand-in only (secret)
    include_other_scopes = false     # also show Host, OSImage, Extension... (not only
                                     # InGuestPatch) in patch views
    world = "..."                    # written by `aumwatch sim`: the stand-in world's id
                                     # (its journal rows are kept apart from every other's)

    [queue]
    account_url = "https://acct.queue.core.windows.net"
    name = "aum-events"
    connection_string = "..."        # secret; prefer account_url + Entra ID
    mode = "peek"                    # peek | consume
    poll_interval = "1s"             # how often the dashboard reads the queue (>= 0.5s)

    [dashboard]
    read_only = false
    poll_interval = "30s"
    time_display = "config"          # config | utc | local

    [window]
    opens_before = "40m"
    closes_before = "10m"

    [events]
    pre_event_earliest = "40m"       # a pre-event arriving earlier than T-40 is flagged
    pre_event_latest = "30m"         # ... and one arriving later than T-30 (bare number: min)
    wiring_refresh = "5m"            # how often the Event Grid wiring is read again (>= 1m)

    [cancel]
    api_version = "2023-09-01-preview"

    [preflight]                      # who each run will patch, and what will go wrong
    stale_after = "2d"               # an older assessment is a risk (stale-assessment)
    refresh = "5m"                   # how often the dashboard reads it again (>= 1m)
    warn_before = "60m"              # a finding this long before a risky run's T-40 freeze
    minutes_per_update = "10m"       # window fit: one update (Windows installs one by one)
    minutes_per_service_pack = "15m" # ... a service pack
    reboot_windows = "10m"           # ... kept for the reboot (Windows)
    reboot_linux = "15m"             # ... (Linux)

    [keys]                           # the dashboard's keymap: binding id = keys
    cancel = "ctrl+k"                # ids: see KEY_BINDING_IDS

    [paths]
    data_dir = "/path/for/the/journal"

    [alerts]                         # findings told to someone (`aumwatch watch`)
    missed_after = "15m"             # an expected run with no Resource Graph row this long
                                     # after its start is a missed run
    source_down_after = "10m"        # a source failing this long is a finding
    bell = true                      # the dashboard rings for a new error or worse
    heartbeat_url = "https://..."    # secret; pinged every heartbeat_every by `watch`
    heartbeat_every = "60s"

    [[alerts.routes]]                # where findings go (file; secrets also from the env)
    name = "oncall"                  # unique
    on = ["*"]                       # finding kinds, or ["*"]
    configurations = ["prod-*"]      # names or globs, or ["*"]
    min_severity = "error"           # info < warning < error < critical
    type = "pagerduty"               # webhook | slack | teams | pagerduty | command
    routing_key = "..."              # secret (or AUMWATCH_ROUTE_ONCALL_ROUTING_KEY)
    url = "https://..."              # secret (or AUMWATCH_ROUTE_ONCALL_URL); pagerduty:
                                     # defaults to the Events API v2 endpoint
    command = ["/usr/local/bin/page"]  # type command: an argument list, finding on stdin

    [[tasks]]                        # pre/post tasks run by `aumwatch tasks` (file only)
    name = "precheck"                # unique
    on = "pre"                       # pre | post
    configurations = ["prod-*"]      # names or globs, case-insensitive
    command = ["/usr/local/bin/precheck", "--strict"]   # an argument list, never a shell line
    timeout = "5m"                   # 1s..2h
    cancel_on_failure = true         # pre tasks only: cancel the run if this fails in time

    [[tenants]]                      # issue 19: several tenants in one view (file only)
    name = "contoso"                 # short label: the Tenant column, --tenant, JSON "tenant"
    tenant = "<tenant id>"
    credential = "cli"               # default | cli | env:PREFIX_ | managed_identity:<client id>
    token = "..."                    # stand-in only (secret; instead of credential)
    subscriptions = ["..."]          # or management_groups = ["..."]; neither = all visible
    [tenants.queue]                  # this tenant's own events queue (Lighthouse cannot
    account_url = "https://..."      # delegate queue data access); same keys as [queue]
    name = "aum-events"

Without ``[[tenants]]`` there is one implicit profile: the ``[azure]`` and ``[queue]``
settings, exactly as before. With them, ``[azure] cloud / arm_endpoint / ca_file /
request_timeout / world`` are shared and each profile brings its own tenant, credential,
scope and queue (nothing secret is inherited from ``[azure]`` or ``[queue]``).
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from services.domain.arrivals import ArrivalRules
from services.domain.findings import DEFAULT_MISSED_AFTER, DEFAULT_SOURCE_DOWN_AFTER
from services.domain.preflight import FitRules
from services.domain.queueid import queue_identity
from services.domain.routes import RouteSpec, validate_route_values
from services.domain.tasks import (
    DEFAULT_TASK_TIMEOUT,
    MAX_TASK_TIMEOUT,
    MIN_TASK_TIMEOUT,
    TASK_EVENT_KINDS,
    TaskSpec,
)
from services.domain.window import WindowRules
from services.domain.wiring import DEFAULT_WIRING_REFRESH

ENV_PREFIX = "AUMWATCH_"
CONFIG_ENV = "AUMWATCH_CONFIG"

CLOUDS = ("public", "china", "usgov", "standin")
QUEUE_MODES = ("peek", "consume")
TIME_DISPLAYS = ("config", "utc", "local")

#: The api-version of the cancel PUT (docs/azure.md, "Cancel API"). The one place it lives.
DEFAULT_CANCEL_API_VERSION = "2023-09-01-preview"
DEFAULT_POLL_INTERVAL = timedelta(seconds=30)
#: How long one HTTP call (connect, or waiting for an answer) may take before it fails.
#: azure-core's own default is 300 s, far longer than a poll: a stalled service would freeze
#: the data for minutes without a word (found by the reliability suite).
DEFAULT_REQUEST_TIMEOUT = timedelta(seconds=30)
#: Polling faster than this only burns the Resource Graph quota (about 15 queries per 5 s).
MIN_POLL_INTERVAL = timedelta(seconds=10)
#: How often the dashboard reads the events queue. A peek (or a get) is one cheap Storage
#: call with no quota like Resource Graph's, so once a second is fine and keeps an event's
#: way to the screen under the 1.5 s the operators were promised.
DEFAULT_EVENTS_POLL_INTERVAL = timedelta(seconds=1)
#: Faster than this buys nothing a human sees and only adds Storage transactions.
MIN_EVENTS_POLL_INTERVAL = timedelta(seconds=0.5)
# The window offsets' defaults live in WindowRules (one place for each fact).
DEFAULT_OPENS_BEFORE = WindowRules().opens_before
DEFAULT_CLOSES_BEFORE = WindowRules().closes_before
# The pre-event's documented arrival range lives in ArrivalRules.
DEFAULT_PRE_EVENT_EARLIEST = ArrivalRules().pre_event_earliest
DEFAULT_PRE_EVENT_LATEST = ArrivalRules().pre_event_latest

#: The dashboard's binding ids that the ``[keys]`` table may remap (``id = "keys"``).
KEY_BINDING_IDS = ("quit", "help", "cancel", "pause", "refresh", "zone", "filter",
                   "clear_filter", "export", "panel.configs", "panel.run", "panel.runs",
                   "panel.events", "report", "tasks", "wiring", "preflight",
                   "acknowledge", "follow")

SECRET_NAMES = frozenset({"token", "queue_connection_string", "heartbeat_url"})
#: ``[alerts] heartbeat_every``'s default and floor.
DEFAULT_HEARTBEAT_EVERY = timedelta(seconds=60)
MIN_HEARTBEAT_EVERY = timedelta(seconds=1)
#: How a ``[[tenants]]`` profile signs in (``credential = ...``): DefaultAzureCredential
#: pinned to the tenant, the Azure CLI's login for it, a service principal from environment
#: variables with a prefix (``env:CONTOSO_`` reads CONTOSO_CLIENT_ID, CONTOSO_CLIENT_SECRET or
#: CONTOSO_CLIENT_CERTIFICATE_PATH), a user-assigned managed identity
#: (``managed_identity:<client id>``).
CREDENTIAL_KINDS = ("default", "cli", "env", "managed_identity")
MASK = "********"


class SettingsError(ValueError):
    """A setting is missing, malformed or given where it is not allowed."""


def _default_config_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("aumwatch", appauthor=False)) / "config.toml"


def _default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("aumwatch", appauthor=False))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any, *, default_unit: str = "s", what: str = "duration") -> timedelta:
    """Parse ``30``, ``30s``, ``40m``, ``2h``, ``7d`` or ``1w`` into a timedelta.

    A bare number is in ``default_unit``. Raises :class:`SettingsError` naming ``what``.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise SettingsError(f"{what}: expected a duration such as 30s, 40m or 7d, got {value!r}")
    if isinstance(value, int | float):
        number, unit = float(value), default_unit
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise SettingsError(
                f"{what}: expected a duration such as 30s, 40m or 7d, got {value!r}"
            )
        number, unit = float(match.group(1)), (match.group(2) or default_unit).lower()
    if number < 0:
        raise SettingsError(f"{what}: must not be negative, got {value!r}")
    return timedelta(seconds=number * _UNITS[unit])


def _format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _as_list(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items = [v.strip() for v in value.replace(";", ",").split(",")]
    elif isinstance(value, list | tuple):
        items = [str(v).strip() for v in value]
    else:
        raise SettingsError(f"{what}: expected a list of strings, got {value!r}")
    return tuple(v for v in items if v)


def _as_bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{what}: expected true or false, got {value!r}")


def _as_str(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise SettingsError(f"{what}: expected a string, got {value!r}")
    text = str(value).strip()
    return text or None


def _choice(options: tuple[str, ...]) -> Callable[[Any, str], str]:
    def parse(value: Any, what: str) -> str:
        text = str(value).strip().lower()
        if text not in options:
            raise SettingsError(f"{what}: expected one of {', '.join(options)}, got {value!r}")
        return text

    return parse


def _as_path(value: Any, what: str) -> Path | None:
    text = _as_str(value, what)
    return Path(text).expanduser() if text else None


def _poll_interval(value: Any, what: str) -> timedelta:
    interval = parse_duration(value, default_unit="s", what=what)
    if interval < MIN_POLL_INTERVAL:
        raise SettingsError(
            f"{what}: at least {_format_duration(MIN_POLL_INTERVAL)} "
            f"(Resource Graph allows about 15 queries per 5 s), got {value!r}"
        )
    return interval


def _events_poll_interval(value: Any, what: str) -> timedelta:
    interval = parse_duration(value, default_unit="s", what=what)
    if interval < MIN_EVENTS_POLL_INTERVAL:
        raise SettingsError(
            f"{what}: at least {MIN_EVENTS_POLL_INTERVAL.total_seconds():g}s, got {value!r}")
    return interval


def _request_timeout(value: Any, what: str) -> timedelta:
    timeout = parse_duration(value, default_unit="s", what=what)
    if not timedelta(seconds=0.1) <= timeout <= timedelta(minutes=10):
        raise SettingsError(f"{what}: between 0.1s and 10m, got {value!r}")
    return timeout


def _minutes(value: Any, what: str) -> timedelta:
    return parse_duration(value, default_unit="m", what=what)


#: The floor of ``[events] wiring_refresh``: reading the Event Grid wiring more often costs a
#: Resource Graph query and ARM reads per topic for nothing.
MIN_WIRING_REFRESH = timedelta(minutes=1)


def _wiring_refresh(value: Any, what: str) -> timedelta:
    refresh = parse_duration(value, default_unit="m", what=what)
    if refresh < MIN_WIRING_REFRESH:
        raise SettingsError(f"{what}: at least {_format_duration(MIN_WIRING_REFRESH)}, "
                            f"got {value!r}")
    return refresh


def _heartbeat_every(value: Any, what: str) -> timedelta:
    every = parse_duration(value, default_unit="s", what=what)
    if every < MIN_HEARTBEAT_EVERY:
        raise SettingsError(f"{what}: at least 1s, got {value!r}")
    return every


@dataclass(frozen=True)
class _Spec:
    """How one setting is found: its file location, environment name, parser, default."""

    name: str
    section: str
    key: str
    parse: Callable[[Any, str], Any]
    default: Callable[[], Any]

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


#: The floor of ``[preflight] refresh``: each read costs a few Resource Graph queries.
MIN_PREFLIGHT_REFRESH = timedelta(minutes=1)
_FIT = FitRules()
DEFAULT_PREFLIGHT_STALE_AFTER = _FIT.stale_after
DEFAULT_PREFLIGHT_REFRESH = timedelta(minutes=5)
DEFAULT_PREFLIGHT_WARN_BEFORE = timedelta(minutes=60)


def _preflight_refresh(value: Any, what: str) -> timedelta:
    refresh = parse_duration(value, default_unit="m", what=what)
    if refresh < MIN_PREFLIGHT_REFRESH:
        raise SettingsError(f"{what}: at least {_format_duration(MIN_PREFLIGHT_REFRESH)}, "
                            f"got {value!r}")
    return refresh


def _positive_minutes(value: Any, what: str) -> timedelta:
    minutes = parse_duration(value, default_unit="m", what=what)
    if minutes < timedelta(0):
        raise SettingsError(f"{what}: must not be negative, got {value!r}")
    return minutes


_SPECS: tuple[_Spec, ...] = (
    _Spec("cloud", "azure", "cloud", _choice(CLOUDS), lambda: "public"),
    _Spec("tenant", "azure", "tenant", _as_str, lambda: None),
    _Spec("subscriptions", "azure", "subscriptions", _as_list, tuple),
    _Spec("management_groups", "azure", "management_groups", _as_list, tuple),
    _Spec("arm_endpoint", "azure", "arm_endpoint", _as_str, lambda: None),
    _Spec("ca_file", "azure", "ca_file", _as_path, lambda: None),
    _Spec("token", "azure", "token", _as_str, lambda: None),
    _Spec("request_timeout", "azure", "request_timeout", _request_timeout,
          lambda: DEFAULT_REQUEST_TIMEOUT),
    _Spec("include_other_scopes", "azure", "include_other_scopes", _as_bool, lambda: False),
    _Spec("world", "azure", "world", _as_str, lambda: None),
    _Spec("queue_account_url", "queue", "account_url", _as_str, lambda: None),
    _Spec("queue_name", "queue", "name", _as_str, lambda: None),
    _Spec("queue_connection_string", "queue", "connection_string", _as_str, lambda: None),
    _Spec("queue_mode", "queue", "mode", _choice(QUEUE_MODES), lambda: "peek"),
    _Spec("events_poll_interval", "queue", "poll_interval", _events_poll_interval,
          lambda: DEFAULT_EVENTS_POLL_INTERVAL),
    _Spec("read_only", "dashboard", "read_only", _as_bool, lambda: False),
    _Spec("poll_interval", "dashboard", "poll_interval", _poll_interval,
          lambda: DEFAULT_POLL_INTERVAL),
    _Spec("time_display", "dashboard", "time_display", _choice(TIME_DISPLAYS), lambda: "config"),
    _Spec("opens_before", "window", "opens_before", _minutes, lambda: DEFAULT_OPENS_BEFORE),
    _Spec("closes_before", "window", "closes_before", _minutes, lambda: DEFAULT_CLOSES_BEFORE),
    _Spec("pre_event_earliest", "events", "pre_event_earliest", _minutes,
          lambda: DEFAULT_PRE_EVENT_EARLIEST),
    _Spec("pre_event_latest", "events", "pre_event_latest", _minutes,
          lambda: DEFAULT_PRE_EVENT_LATEST),
    _Spec("cancel_api_version", "cancel", "api_version", _as_str,
          lambda: DEFAULT_CANCEL_API_VERSION),
    _Spec("data_dir", "paths", "data_dir", _as_path, _default_data_dir),
    _Spec("wiring_refresh", "events", "wiring_refresh", _wiring_refresh,
          lambda: DEFAULT_WIRING_REFRESH),
    _Spec("preflight_stale_after", "preflight", "stale_after", _positive_minutes,
          lambda: DEFAULT_PREFLIGHT_STALE_AFTER),
    _Spec("preflight_refresh", "preflight", "refresh", _preflight_refresh,
          lambda: DEFAULT_PREFLIGHT_REFRESH),
    _Spec("preflight_warn_before", "preflight", "warn_before", _positive_minutes,
          lambda: DEFAULT_PREFLIGHT_WARN_BEFORE),
    _Spec("preflight_minutes_per_update", "preflight", "minutes_per_update",
          _positive_minutes, lambda: timedelta(minutes=_FIT.minutes_per_update)),
    _Spec("preflight_minutes_per_service_pack", "preflight", "minutes_per_service_pack",
          _positive_minutes, lambda: timedelta(minutes=_FIT.minutes_per_service_pack)),
    _Spec("preflight_reboot_windows", "preflight", "reboot_windows", _positive_minutes,
          lambda: timedelta(minutes=_FIT.reboot_windows)),
    _Spec("preflight_reboot_linux", "preflight", "reboot_linux", _positive_minutes,
          lambda: timedelta(minutes=_FIT.reboot_linux)),
    _Spec("missed_after", "alerts", "missed_after", _minutes, lambda: DEFAULT_MISSED_AFTER),
    _Spec("source_down_after", "alerts", "source_down_after", _minutes,
          lambda: DEFAULT_SOURCE_DOWN_AFTER),
    _Spec("bell", "alerts", "bell", _as_bool, lambda: True),
    _Spec("heartbeat_url", "alerts", "heartbeat_url", _as_str, lambda: None),
    _Spec("heartbeat_every", "alerts", "heartbeat_every", _heartbeat_every,
          lambda: DEFAULT_HEARTBEAT_EVERY),
)
SETTING_NAMES = tuple(s.name for s in _SPECS)


@dataclass(frozen=True)
class Settings:
    """Every aumwatch setting, resolved. ``sources[name]`` says where each value came from."""

    cloud: str = "public"
    tenant: str | None = None
    subscriptions: tuple[str, ...] = ()
    management_groups: tuple[str, ...] = ()
    arm_endpoint: str | None = None
    ca_file: Path | None = None
    token: str | None = field(default=None, repr=False)
    request_timeout: timedelta = DEFAULT_REQUEST_TIMEOUT
    include_other_scopes: bool = False
    #: The stand-in world this configuration points at (``aumwatch sim`` writes a new id at
    #: every start): the journal's events and cancels are read and written under it, so one
    #: world never shows another's. None on real Azure.
    world: str | None = None
    queue_account_url: str | None = None
    queue_name: str | None = None
    queue_connection_string: str | None = field(default=None, repr=False)
    queue_mode: str = "peek"
    events_poll_interval: timedelta = DEFAULT_EVENTS_POLL_INTERVAL
    read_only: bool = False
    poll_interval: timedelta = DEFAULT_POLL_INTERVAL
    time_display: str = "config"
    opens_before: timedelta = DEFAULT_OPENS_BEFORE
    closes_before: timedelta = DEFAULT_CLOSES_BEFORE
    pre_event_earliest: timedelta = DEFAULT_PRE_EVENT_EARLIEST
    pre_event_latest: timedelta = DEFAULT_PRE_EVENT_LATEST
    cancel_api_version: str = DEFAULT_CANCEL_API_VERSION
    data_dir: Path = field(default_factory=_default_data_dir)
    wiring_refresh: timedelta = DEFAULT_WIRING_REFRESH
    preflight_stale_after: timedelta = DEFAULT_PREFLIGHT_STALE_AFTER
    preflight_refresh: timedelta = DEFAULT_PREFLIGHT_REFRESH
    preflight_warn_before: timedelta = DEFAULT_PREFLIGHT_WARN_BEFORE
    preflight_minutes_per_update: timedelta = timedelta(minutes=_FIT.minutes_per_update)
    preflight_minutes_per_service_pack: timedelta = timedelta(
        minutes=_FIT.minutes_per_service_pack)
    preflight_reboot_windows: timedelta = timedelta(minutes=_FIT.reboot_windows)
    preflight_reboot_linux: timedelta = timedelta(minutes=_FIT.reboot_linux)
    missed_after: timedelta = DEFAULT_MISSED_AFTER
    source_down_after: timedelta = DEFAULT_SOURCE_DOWN_AFTER
    bell: bool = True
    heartbeat_url: str | None = field(default=None, repr=False)
    heartbeat_every: timedelta = DEFAULT_HEARTBEAT_EVERY
    #: The ``[[alerts.routes]]`` (issue 21): the file's, their secrets also from the env.
    alert_routes: tuple[RouteSpec, ...] = ()
    #: The dashboard's keymap from the ``[keys]`` table: binding id -> keys (``"ctrl+k"``),
    #: only ids of :data:`KEY_BINDING_IDS`.
    keymap: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: The ``[[tasks]]`` of the config file (issue 12); never from the environment or flags.
    tasks: tuple[TaskSpec, ...] = ()
    #: How to sign in (issue 19; see :data:`CREDENTIAL_KINDS`): None is the default chain.
    #: Set from a ``[[tenants]]`` profile only.
    credential: str | None = None
    #: The ``[[tenants]]`` profile these settings are for ("" for the implicit one).
    profile: str = ""
    #: The declared ``[[tenants]]`` profiles (after ``--tenant``); empty: one implicit.
    profiles: tuple[Profile, ...] = ()
    #: Every declared profile's name, before ``--tenant`` chose among them.
    profile_names: tuple[str, ...] = ()
    config_path: Path | None = None
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    warnings: tuple[str, ...] = ()

    def tenant_profiles(self) -> tuple[Profile, ...]:
        """The profiles to read: the declared ``[[tenants]]`` (those ``--tenant`` chose), or
        one implicit profile made of these very settings."""
        if self.profiles:
            return self.profiles
        return (Profile(name=self.profile, tenant=self.tenant, settings=self, implicit=True),)

    @property
    def several_tenants(self) -> bool:
        """Whether the config declares ``[[tenants]]`` profiles (the Tenant column shows
        when more than one is read)."""
        return bool(self.profiles)

    @property
    def scope_description(self) -> str:
        """What the queries cover, for humans."""
        if self.management_groups:
            return "management groups " + ", ".join(self.management_groups)
        if self.subscriptions:
            return "subscriptions " + ", ".join(self.subscriptions)
        return "all subscriptions the identity can see"

    @property
    def queue_configured(self) -> bool:
        """True when an events queue is set (connection string, or account URL + name); with
        ``[[tenants]]`` profiles, when any profile has its own."""
        if self.profiles:
            return any(p.settings.queue_configured for p in self.profiles)
        return bool(self.queue_name and (self.queue_connection_string or self.queue_account_url))

    @property
    def queue_identity(self) -> str | None:
        """The watched queue's full identity (account URL + queue name, normalised, and the
        stand-in world): what its journal rows are written and read under. None when no
        queue is configured or its endpoint cannot be told."""
        return queue_identity(self.queue_name, account_url=self.queue_account_url,
                              connection_string=self.queue_connection_string, world=self.world)

    @property
    def window_rules(self) -> WindowRules:
        """The cancel-window offsets as the window rules take them."""
        return WindowRules(self.opens_before, self.closes_before)

    @property
    def arrival_rules(self) -> ArrivalRules:
        """The pre-event's documented arrival range (for the event tail's flag)."""
        return ArrivalRules(self.pre_event_earliest, self.pre_event_latest)

    @property
    def fit_rules(self) -> FitRules:
        """The pre-flight window-fit constants and the assessment age limit."""
        def minutes(value: timedelta) -> float:
            return value.total_seconds() / 60

        return FitRules(
            minutes_per_update=minutes(self.preflight_minutes_per_update),
            minutes_per_service_pack=minutes(self.preflight_minutes_per_service_pack),
            reboot_windows=minutes(self.preflight_reboot_windows),
            reboot_linux=minutes(self.preflight_reboot_linux),
            stale_after=self.preflight_stale_after)

    @property
    def journal_path(self) -> Path:
        """The SQLite journal's file."""
        return self.data_dir / "journal.sqlite3"

    def display_items(self) -> list[tuple[str, str, str]]:
        """``(name, printable value, source)`` for every setting, secrets masked."""
        out = [("config_path", str(self.config_path) if self.config_path else "(none)",
                self.sources.get("config_path", "default"))]
        for spec in _SPECS:
            value = getattr(self, spec.name)
            out.append((spec.name, _display(spec.name, value), self.sources.get(spec.name,
                                                                                "default")))
        keys = ", ".join(f"{k}={v}" for k, v in sorted(self.keymap.items()))
        out.append(("keymap", keys or "(defaults)", self.sources.get("keymap", "default")))
        out.append(("tasks", "; ".join(t.describe() for t in self.tasks) or "(none)",
                    self.sources.get("tasks", "default")))
        out.append(("alert_routes",
                    "; ".join(r.describe() for r in self.alert_routes) or "(none)",
                    self.sources.get("alert_routes", "default")))
        out.append(("tenants", "; ".join(p.describe() for p in self.profiles) or "(none)",
                    self.sources.get("tenants", "default")))
        return out

    @property
    def alert_secrets(self) -> tuple[str, ...]:
        """Every alerting secret (routes' URLs and keys, the heartbeat URL), to scrub."""
        out = [s for r in self.alert_routes for s in r.secrets]
        if self.heartbeat_url:
            out.append(self.heartbeat_url)
        return tuple(out)

    def to_json(self) -> list[dict[str, Any]]:
        """The ``config show --json`` array: name, value (secrets masked), source."""
        out: list[dict[str, Any]] = []
        for name, _text, source in self.display_items():
            value = getattr(self, name, None)
            if name in SECRET_NAMES:
                shown: Any = MASK if value else None
            elif name == "tasks":
                shown = [task_json(t) for t in self.tasks]
            elif name == "alert_routes":
                shown = [r.to_json() for r in self.alert_routes]
            elif name == "tenants":
                shown = [p.to_json() for p in self.profiles]
            elif isinstance(value, timedelta):
                shown = value.total_seconds()
            elif isinstance(value, Path):
                shown = str(value)
            elif isinstance(value, tuple):
                shown = list(value)
            elif isinstance(value, Mapping):
                shown = dict(value)
            else:
                shown = value
            out.append({"name": name, "value": shown, "source": source})
        return out


def _display(name: str, value: Any) -> str:
    if name in SECRET_NAMES:
        return MASK if value else "(not set)"
    if value is None:
        return "(not set)"
    if isinstance(value, timedelta):
        return _format_duration(value)
    if isinstance(value, tuple):
        return ", ".join(value) if value else "(all visible)" if name == "subscriptions" else "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def mask_secret(value: str | None) -> str:
    """How a secret is printed: never any part of it."""
    return MASK if value else "(not set)"


def read_config_file(path: Path) -> tuple[dict[str, Any], list[str]]:
    """Read a TOML config file: ``({section.key: value}, warnings)``.

    Unknown keys are reported as warnings (a typo should not be silently ignored).
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise SettingsError(f"config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    known = {(s.section, s.key) for s in _SPECS}
    values: dict[str, Any] = {}
    warnings: list[str] = []
    for section, table in raw.items():
        if section == "tasks":
            values["tasks"] = table  # validated by parse_tasks, with the file's name
            continue
        if section == "tenants":
            values["tenants"] = table  # validated by parse_profiles
            continue
        if not isinstance(table, dict):
            warnings.append(f"{path}: top-level key {section!r} ignored (expected a [section])")
            continue
        if section == "alerts" and "routes" in table:
            table = dict(table)
            values["alert_routes"] = table.pop("routes")  # validated by parse_routes
        if section == "keys":
            keymap, keymap_warnings = _read_keymap(table, path)
            values["keys"] = keymap
            warnings.extend(keymap_warnings)
            continue
        for key, value in table.items():
            if (section, key) not in known:
                warnings.append(f"{path}: unknown setting [{section}] {key} ignored")
                continue
            values[f"{section}.{key}"] = value
    return values, warnings


def _read_keymap(table: Mapping[str, Any], path: Path) -> tuple[dict[str, str], list[str]]:
    """The ``[keys]`` table: binding id -> keys, only known ids with a non-empty string; a
    warning for anything else (a typo must not be silently ignored)."""
    keymap: dict[str, str] = {}
    warnings: list[str] = []
    for binding_id, keys in table.items():
        if binding_id not in KEY_BINDING_IDS:
            warnings.append(f"{path}: unknown key binding id [keys] {binding_id!r} ignored; "
                            f"valid ids: {', '.join(KEY_BINDING_IDS)}")
        elif not isinstance(keys, str) or not keys.strip():
            warnings.append(f"{path}: [keys] {binding_id}: expected keys such as \"ctrl+k\", "
                            f"got {keys!r}; ignored")
        else:
            keymap[binding_id] = keys.strip()
    return keymap, warnings


def _permission_warning(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        return (
            f"{path} holds secrets and is readable by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
        )
    return None


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_path: str | Path | None = None,
) -> Settings:
    """Resolve every setting: flags > environment > config file > defaults.

    ``flags`` maps setting names to values given on the command line (``None`` means not
    given). ``config_path`` is ``--config``; otherwise ``AUMWATCH_CONFIG``, otherwise the
    default path, which may be absent (an explicitly named file must exist). Raises
    :class:`SettingsError` on a malformed value, naming the setting and where it came from.
    """
    env = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    unknown = set(flags) - set(SETTING_NAMES)
    if unknown:
        raise SettingsError(f"unknown setting(s) given as flags: {', '.join(sorted(unknown))}")
    secret_flags = SECRET_NAMES & set(flags)
    if secret_flags:
        raise SettingsError(
            f"{', '.join(sorted(secret_flags))} is a secret: set it in the environment "
            f"({', '.join(ENV_PREFIX + n.upper() for n in sorted(secret_flags))}) or the "
            "config file, never as a flag"
        )

    # With [[tenants]] profiles, --tenant chooses among them (a name or a tenant id) rather
    # than naming the tenant to sign in to; read below, once the file is known.
    tenant_flag = flags.get("tenant")
    sources: dict[str, str] = {}
    if config_path is not None:
        path: Path | None = Path(config_path).expanduser()
        sources["config_path"] = "flag"
        required = True
    elif env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV]).expanduser()
        sources["config_path"] = "env"
        required = True
    else:
        path = _default_config_path()
        sources["config_path"] = "default"
        required = False

    file_values: dict[str, Any] = {}
    warnings: list[str] = []
    if path is not None and (required or path.exists()):
        file_values, warnings = read_config_file(path)
    elif path is not None:
        path = None  # the default file does not exist: say so rather than name a phantom

    if "tenants" in file_values:
        flags = {k: v for k, v in flags.items() if k != "tenant"}
    values: dict[str, Any] = {}
    for spec in _SPECS:
        if spec.name in flags:
            raw, source, label = flags[spec.name], "flag", "--" + spec.name.replace("_", "-")
        elif env.get(spec.env, "").strip():
            raw, source, label = env[spec.env], "env", spec.env
        elif f"{spec.section}.{spec.key}" in file_values:
            raw, source = file_values[f"{spec.section}.{spec.key}"], "file"
            label = f"[{spec.section}] {spec.key} in {path}"
        else:
            values[spec.name] = spec.default()
            sources[spec.name] = "default"
            continue
        values[spec.name] = spec.parse(raw, label)
        sources[spec.name] = source

    routes = (parse_routes(file_values["alert_routes"], path, env)
              if "alert_routes" in file_values else ())
    sources["alert_routes"] = "file" if routes else "default"
    route_secret_in_file = any(isinstance(t, dict) and ({"url", "routing_key"} & set(t))
                               for t in file_values.get("alert_routes") or ())
    if path is not None and (route_secret_in_file
                             or any(sources[n] == "file" for n in SECRET_NAMES)):
        warning = _permission_warning(path)
        if warning:
            warnings.append(warning)
    if values["subscriptions"] and values["management_groups"]:
        raise SettingsError("set either subscriptions or management_groups, not both")
    try:
        WindowRules(values["opens_before"], values["closes_before"])
    except ValueError as exc:
        raise SettingsError(f"window: {exc}") from None
    try:
        ArrivalRules(values["pre_event_earliest"], values["pre_event_latest"])
    except ValueError as exc:
        raise SettingsError(f"events: {exc}") from None
    keymap = file_values.get("keys") or {}
    sources["keymap"] = "file" if keymap else "default"
    tasks = parse_tasks(file_values["tasks"], path) if "tasks" in file_values else ()
    sources["tasks"] = "file" if tasks else "default"
    if values["cloud"] == "standin" and not values["arm_endpoint"]:
        raise SettingsError("cloud 'standin' needs arm_endpoint (written by `aumwatch sim`)")

    base = Settings(
        **values,
        keymap=MappingProxyType(dict(keymap)),
        tasks=tasks,
        alert_routes=routes,
        config_path=path,
        sources=MappingProxyType(sources),
        warnings=tuple(warnings),
    )
    if "tenants" not in file_values:
        return base
    specs = parse_profiles(file_values["tenants"], path)
    if path is not None and any(spec.get("token") or spec.get("queue_connection_string")
                                for spec in specs) and not any(
            sources[n] == "file" for n in SECRET_NAMES):
        warning = _permission_warning(path)
        if warning:
            warnings.append(warning)
    names = tuple(str(spec["name"]) for spec in specs)
    if tenant_flag is not None:
        specs = select_profiles(specs, str(tenant_flag))
    sources["tenants"] = "file"
    base = replace(base, sources=MappingProxyType(sources), warnings=tuple(warnings),
                   profile_names=names)
    profiles = tuple(_profile(base, spec) for spec in specs)
    return replace(base, profiles=profiles)


def settings_fields() -> tuple[str, ...]:
    """Names of all Settings fields (for tests and ``config show``)."""
    return tuple(f.name for f in fields(Settings))


# --- [[tasks]] (issue 12) --------------------------------------------------------------------

_TASK_KEYS = ("name", "on", "configurations", "command", "timeout", "cancel_on_failure")


def task_json(task: TaskSpec) -> dict[str, Any]:
    """One task as ``config show --json`` prints it."""
    return {"name": task.name, "on": task.on, "configurations": list(task.configurations),
            "command": list(task.command), "timeout": task.timeout.total_seconds(),
            "cancel_on_failure": task.cancel_on_failure}


def parse_tasks(raw: Any, path: Path | None) -> tuple[TaskSpec, ...]:
    """Validate the config file's ``[[tasks]]`` array of tables into task specs.

    Every error names the file, the task (by name, else by position) and the key. The
    command must be an argument list: a string would need a shell to split it, and a shell
    is exactly what event data must never reach.
    """
    where = f"{path}: " if path is not None else ""
    if not isinstance(raw, list):
        raise SettingsError(f"{where}tasks must be an array of tables ([[tasks]]), "
                            f"got {type(raw).__name__}")
    out: list[TaskSpec] = []
    seen: set[str] = set()
    for index, table in enumerate(raw, start=1):
        label = f"{where}[[tasks]] #{index}"
        if not isinstance(table, dict):
            raise SettingsError(f"{label}: expected a table with {', '.join(_TASK_KEYS)}")
        name = table.get("name")
        if not isinstance(name, str) or not name.strip():
            raise SettingsError(f"{label}: name: expected a non-empty string, got {name!r}")
        name = name.strip()
        if not all(c.isprintable() for c in name):
            raise SettingsError(f"{label}: name: control characters are not allowed")
        label = f"{where}task {name!r}"
        if name.casefold() in seen:
            raise SettingsError(f"{label}: name: declared twice (task names must be unique)")
        seen.add(name.casefold())
        unknown = sorted(set(table) - set(_TASK_KEYS))
        if unknown:
            raise SettingsError(f"{label}: unknown key(s) {', '.join(unknown)}; known: "
                                f"{', '.join(_TASK_KEYS)}")
        on = table.get("on")
        if not isinstance(on, str) or on.strip().lower() not in TASK_EVENT_KINDS:
            raise SettingsError(f"{label}: on: expected pre or post, got {on!r}")
        on = on.strip().lower()
        configurations = table.get("configurations")
        if isinstance(configurations, str):
            configurations = [configurations]
        if (not isinstance(configurations, list) or not configurations
                or not all(isinstance(c, str) and c.strip() for c in configurations)):
            raise SettingsError(f"{label}: configurations: expected a non-empty list of "
                                f"configuration names or globs, got {configurations!r}")
        command = table.get("command")
        if isinstance(command, str):
            raise SettingsError(f"{label}: command: expected an argument list such as "
                                f"[\"/usr/bin/precheck\", \"--strict\"], got the string "
                                f"{command!r}; aumwatch never runs a command through a shell")
        if (not isinstance(command, list) or not command
                or not all(isinstance(a, str) for a in command) or not command[0].strip()):
            raise SettingsError(f"{label}: command: expected a non-empty list of strings, "
                                f"got {command!r}")
        if any("\x00" in a for a in command):
            raise SettingsError(f"{label}: command: an argument holds a NUL character")
        timeout = DEFAULT_TASK_TIMEOUT
        if "timeout" in table:
            timeout = parse_duration(table["timeout"], default_unit="s",
                                     what=f"{label}: timeout")
            if not MIN_TASK_TIMEOUT <= timeout <= MAX_TASK_TIMEOUT:
                raise SettingsError(
                    f"{label}: timeout: between {_format_duration(MIN_TASK_TIMEOUT)} and "
                    f"{_format_duration(MAX_TASK_TIMEOUT)}, got {table['timeout']!r}")
        cancel = table.get("cancel_on_failure", False)
        if not isinstance(cancel, bool):
            raise SettingsError(f"{label}: cancel_on_failure: expected true or false, "
                                f"got {cancel!r}")
        if cancel and on != "pre":
            raise SettingsError(f"{label}: cancel_on_failure: only a pre task can cancel the "
                                "run (after the post event there is nothing left to cancel)")
        out.append(TaskSpec(name=name, on=on,
                            configurations=tuple(c.strip() for c in configurations),
                            command=tuple(command), timeout=timeout,
                            cancel_on_failure=cancel))
    return tuple(out)


# --- [[alerts.routes]] (issue 21) -----------------------------------------------------------

_ROUTE_KEYS = ("name", "on", "configurations", "min_severity", "type", "url", "routing_key",
               "command")
_ROUTE_SECRETS = ("url", "routing_key")


def route_env_name(route: str, key: str) -> str:
    """The environment variable that gives route ``route``'s secret ``key``
    (``AUMWATCH_ROUTE_ONCALL_ROUTING_KEY``)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", route).strip("_").upper()
    return f"{ENV_PREFIX}ROUTE_{slug}_{key.upper()}"


def _names(value: Any, label: str, what: str) -> tuple[str, ...]:
    if value is None:
        return ("*",)
    if isinstance(value, str):
        value = [value]
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, str) and v.strip() for v in value)):
        raise SettingsError(f"{label}: {what}: expected a non-empty list of strings, "
                            f"got {value!r}")
    return tuple(v.strip() for v in value)


def parse_routes(raw: Any, path: Path | None,
                 env: Mapping[str, str] | None = None) -> tuple[RouteSpec, ...]:
    """Validate ``[[alerts.routes]]``; a route's ``url`` and ``routing_key`` come from the
    file or from the environment (:func:`route_env_name`, which wins), never from a flag.
    Errors name the file and the route, never a secret's value."""
    env = os.environ if env is None else env
    where = f"{path}: " if path is not None else ""
    if not isinstance(raw, list):
        raise SettingsError(f"{where}alerts.routes must be an array of tables "
                            f"([[alerts.routes]]), got {type(raw).__name__}")
    out: list[RouteSpec] = []
    seen: set[str] = set()
    for index, table in enumerate(raw, start=1):
        label = f"{where}[[alerts.routes]] #{index}"
        if not isinstance(table, dict):
            raise SettingsError(f"{label}: expected a table with {', '.join(_ROUTE_KEYS)}")
        name = table.get("name")
        if not isinstance(name, str) or not name.strip() or not name.isprintable():
            raise SettingsError(f"{label}: name: expected a non-empty printable string")
        name = name.strip()
        label = f"{where}route {name!r}"
        if name.casefold() in seen:
            raise SettingsError(f"{label}: name: declared twice (route names must be unique)")
        seen.add(name.casefold())
        unknown = sorted(set(table) - set(_ROUTE_KEYS))
        if unknown:
            raise SettingsError(f"{label}: unknown key(s) {', '.join(unknown)}; known: "
                                f"{', '.join(_ROUTE_KEYS)}")
        type_ = str(table.get("type", "")).strip().lower()
        on = _names(table.get("on"), label, "on")
        configurations = _names(table.get("configurations"), label, "configurations")
        min_severity = str(table.get("min_severity", "info")).strip().lower()
        why = validate_route_values(name, type_, on, min_severity)
        if why:
            raise SettingsError(f"{label}: {why}")
        secrets: dict[str, str | None] = {}
        for key in _ROUTE_SECRETS:
            from_env = env.get(route_env_name(name, key), "").strip()
            value = from_env or table.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise SettingsError(f"{label}: {key}: expected a non-empty string")
            secrets[key] = value.strip() if isinstance(value, str) else None
        url = secrets["url"]
        if url is not None and not url.lower().startswith(("https://", "http://")):
            raise SettingsError(f"{label}: url: expected an http(s) URL (value not shown)")
        command: tuple[str, ...] = ()
        if type_ == "command":
            cmd = table.get("command")
            if isinstance(cmd, str):
                raise SettingsError(f"{label}: command: expected an argument list, got a "
                                    "string; aumwatch never runs a command through a shell")
            if (not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) for a in cmd)
                    or not cmd[0].strip() or any("\x00" in a for a in cmd)):
                raise SettingsError(f"{label}: command: expected a non-empty list of strings")
            command = tuple(cmd)
        elif "command" in table:
            raise SettingsError(f"{label}: command: only a route of type command has one")
        if type_ in ("webhook", "slack", "teams") and not url:
            raise SettingsError(f"{label}: url: a {type_} route needs one (in the file, or "
                                f"{route_env_name(name, 'url')})")
        if type_ == "pagerduty" and not secrets["routing_key"]:
            raise SettingsError(f"{label}: routing_key: a pagerduty route needs one (in the "
                                f"file, or {route_env_name(name, 'routing_key')})")
        out.append(RouteSpec(name=name, type=type_, on=on, configurations=configurations,
                             min_severity=min_severity, url=url,
                             routing_key=secrets["routing_key"], command=command))
    return tuple(out)


# --- [[tenants]] (issue 19) ------------------------------------------------------------------

_PROFILE_KEYS = ("name", "tenant", "credential", "token", "subscriptions",
                 "management_groups", "queue")
_PROFILE_QUEUE_KEYS = {"account_url": "queue_account_url", "name": "queue_name",
                       "connection_string": "queue_connection_string", "mode": "queue_mode",
                       "poll_interval": "events_poll_interval"}


@dataclass(frozen=True)
class Profile:
    """One tenant to read: its name (the label shown and matched by ``--tenant``), its
    tenant id, and the settings to read it with (its credential, scope and queue on the
    shared cloud settings). ``implicit``: no ``[[tenants]]`` was declared."""

    name: str
    tenant: str | None
    settings: Settings = field(repr=False)
    implicit: bool = False

    @property
    def label(self) -> str:
        """How the profile is named in errors and sources: its name, else its tenant id."""
        return self.name or self.tenant or "default"

    def matches(self, wanted: str) -> bool:
        """Whether ``wanted`` (``--tenant``, ``/tenant:``) names this profile: its name or
        its tenant id, case-insensitively."""
        text = wanted.strip().casefold()
        return bool(text) and text in (self.name.casefold(), (self.tenant or "").casefold())

    def describe(self) -> str:
        """One line for ``config show`` (secrets masked)."""
        s = self.settings
        sign_in = "token " + MASK if s.token else (s.credential or "default")
        queue = (f"{s.queue_account_url or 'connection string ' + MASK}/{s.queue_name}"
                 if s.queue_configured else "no queue")
        return (f"{self.name} (tenant {self.tenant or '-'}, {sign_in}, {s.scope_description}, "
                f"{queue})")

    def to_json(self) -> dict[str, Any]:
        """The profile in ``config show --json`` (secrets masked)."""
        s = self.settings
        return {"name": self.name, "tenant_id": self.tenant,
                "credential": s.credential or ("token" if s.token else "default"),
                "token": MASK if s.token else None,
                "subscriptions": list(s.subscriptions),
                "management_groups": list(s.management_groups),
                "queue": {"account_url": s.queue_account_url, "name": s.queue_name,
                          "connection_string": MASK if s.queue_connection_string else None,
                          "mode": s.queue_mode}}


def _credential_spec(value: Any, label: str) -> str:
    text = _as_str(value, f"{label}: credential") or "default"
    kind, _, detail = text.partition(":")
    kind = kind.strip().lower()
    if kind not in CREDENTIAL_KINDS:
        raise SettingsError(f"{label}: credential: expected one of default, cli, "
                            f"env:PREFIX, managed_identity:CLIENT_ID, got {value!r}")
    if kind in ("env", "managed_identity") and not detail.strip():
        raise SettingsError(f"{label}: credential: {kind} needs "
                            f"{'a prefix (env:CONTOSO_)' if kind == 'env' else 'a client id'}")
    if kind in ("default", "cli") and detail.strip():
        raise SettingsError(f"{label}: credential: {kind} takes nothing after it, "
                            f"got {value!r}")
    return kind + (":" + detail.strip() if detail.strip() else "")


def parse_profiles(raw: Any, path: Path | None) -> list[dict[str, Any]]:
    """Validate the config file's ``[[tenants]]`` into one dict of setting values per
    profile (``name``, ``tenant``, ``credential``, ``token``, the scope and the queue's
    settings). Every error names the file, the profile and the key."""
    where = f"{path}: " if path is not None else ""
    if not isinstance(raw, list) or not raw:
        raise SettingsError(f"{where}tenants must be a non-empty array of tables "
                            "([[tenants]])")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, table in enumerate(raw, start=1):
        label = f"{where}[[tenants]] #{index}"
        if not isinstance(table, dict):
            raise SettingsError(f"{label}: expected a table with {', '.join(_PROFILE_KEYS)}")
        name = table.get("name")
        if not isinstance(name, str) or not name.strip():
            raise SettingsError(f"{label}: name: expected a non-empty string, got {name!r}")
        name = name.strip()
        if not all(c.isprintable() and not c.isspace() for c in name):
            raise SettingsError(f"{label}: name: no spaces or control characters, "
                                f"got {name!r}")
        label = f"{where}tenant profile {name!r}"
        if name.casefold() in seen:
            raise SettingsError(f"{label}: name: declared twice (profile names must be unique)")
        seen.add(name.casefold())
        unknown = sorted(set(table) - set(_PROFILE_KEYS))
        if unknown:
            raise SettingsError(f"{label}: unknown key(s) {', '.join(unknown)}; known: "
                                f"{', '.join(_PROFILE_KEYS)}")
        spec: dict[str, Any] = {
            "name": name,
            "tenant": _as_str(table.get("tenant"), f"{label}: tenant"),
            "token": _as_str(table.get("token"), f"{label}: token"),
            "subscriptions": _as_list(table.get("subscriptions"), f"{label}: subscriptions"),
            "management_groups": _as_list(table.get("management_groups"),
                                          f"{label}: management_groups"),
        }
        if spec["token"] and "credential" in table:
            raise SettingsError(f"{label}: set token (the stand-in) or credential, not both")
        spec["credential"] = (None if spec["token"]
                              else _credential_spec(table.get("credential"), label))
        if spec["subscriptions"] and spec["management_groups"]:
            raise SettingsError(f"{label}: set either subscriptions or management_groups, "
                                "not both")
        queue = table.get("queue", {})
        if not isinstance(queue, dict):
            raise SettingsError(f"{label}: queue: expected a table ([tenants.queue])")
        for key, value in queue.items():
            if key not in _PROFILE_QUEUE_KEYS:
                raise SettingsError(f"{label}: unknown key [tenants.queue] {key}; known: "
                                    f"{', '.join(_PROFILE_QUEUE_KEYS)}")
            setting = _PROFILE_QUEUE_KEYS[key]
            parser = next(s.parse for s in _SPECS if s.name == setting)
            spec[setting] = parser(value, f"{label}: queue.{key}")
        out.append(spec)
    return out


def select_profiles(specs: list[dict[str, Any]], wanted: str) -> list[dict[str, Any]]:
    """The profiles ``--tenant`` names (a profile's name or a tenant id); raises
    :class:`SettingsError` listing the profiles when none matches."""
    text = wanted.strip().casefold()
    chosen = [s for s in specs
              if text in (str(s["name"]).casefold(), str(s.get("tenant") or "").casefold())]
    if not chosen:
        raise SettingsError(f"--tenant {wanted!r}: no [[tenants]] profile has that name or "
                            f"tenant id; profiles: {', '.join(str(s['name']) for s in specs)}")
    return chosen


def _profile(base: Settings, spec: Mapping[str, Any]) -> Profile:
    """The profile's settings: the shared cloud settings with its own tenant, credential,
    scope and queue (nothing secret inherited)."""
    own = {
        "tenant": spec["tenant"], "token": spec["token"], "credential": spec["credential"],
        "subscriptions": spec["subscriptions"],
        "management_groups": spec["management_groups"],
        "queue_account_url": spec.get("queue_account_url"),
        "queue_name": spec.get("queue_name"),
        "queue_connection_string": spec.get("queue_connection_string"),
        "queue_mode": spec.get("queue_mode", "peek"),
        "events_poll_interval": spec.get("events_poll_interval",
                                         base.events_poll_interval),
        "profile": spec["name"], "profiles": (),
    }
    return Profile(name=spec["name"], tenant=spec["tenant"], settings=replace(base, **own))
