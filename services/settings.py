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

    [keys]                           # the dashboard's keymap: binding id = keys
    cancel = "ctrl+k"                # ids: see KEY_BINDING_IDS

    [paths]
    data_dir = "/path/for/the/journal"

    [[tasks]]                        # pre/post tasks run by `aumwatch tasks` (file only)
    name = "precheck"                # unique
    on = "pre"                       # pre | post
    configurations = ["prod-*"]      # names or globs, case-insensitive
    command = ["/usr/local/bin/precheck", "--strict"]   # an argument list, never a shell line
    timeout = "5m"                   # 1s..2h
    cancel_on_failure = true         # pre tasks only: cancel the run if this fails in time
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from services.domain.arrivals import ArrivalRules
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
                   "panel.events", "report", "tasks", "wiring", "follow")

SECRET_NAMES = frozenset({"token", "queue_connection_string"})
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
    #: The dashboard's keymap from the ``[keys]`` table: binding id -> keys (``"ctrl+k"``),
    #: only ids of :data:`KEY_BINDING_IDS`.
    keymap: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: The ``[[tasks]]`` of the config file (issue 12); never from the environment or flags.
    tasks: tuple[TaskSpec, ...] = ()
    config_path: Path | None = None
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    warnings: tuple[str, ...] = ()

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
        """True when an events queue is set (connection string, or account URL + name)."""
        return bool(self.queue_name and (self.queue_connection_string or self.queue_account_url))

    @property
    def window_rules(self) -> WindowRules:
        """The cancel-window offsets as the window rules take them."""
        return WindowRules(self.opens_before, self.closes_before)

    @property
    def arrival_rules(self) -> ArrivalRules:
        """The pre-event's documented arrival range (for the event tail's flag)."""
        return ArrivalRules(self.pre_event_earliest, self.pre_event_latest)

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
        return out

    def to_json(self) -> list[dict[str, Any]]:
        """The ``config show --json`` array: name, value (secrets masked), source."""
        out: list[dict[str, Any]] = []
        for name, _text, source in self.display_items():
            value = getattr(self, name)
            if name in SECRET_NAMES:
                shown: Any = MASK if value else None
            elif name == "tasks":
                shown = [task_json(t) for t in value]
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
        if not isinstance(table, dict):
            warnings.append(f"{path}: top-level key {section!r} ignored (expected a [section])")
            continue
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

    if path is not None and any(sources[n] == "file" for n in SECRET_NAMES):
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

    return Settings(
        **values,
        keymap=MappingProxyType(dict(keymap)),
        tasks=tasks,
        config_path=path,
        sources=MappingProxyType(sources),
        warnings=tuple(warnings),
    )


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
