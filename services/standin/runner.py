"""The whole local Azure stand-in in one object: what `aumwatch sim` and `aumwatch demo` run.

:class:`SimEnvironment` starts, in order: the scenario clock (a :class:`ScaledClock`, offset
and speed settable for tests), the :class:`World`, Azurite (a child process) and its events
queue, the scenario engine (which installs the scenario, synthesises history and then steps
on a background thread) and the HTTPS :class:`StandInServer` (Resource Graph lag on by
default, see :mod:`services.standin.lag`); then it writes an aumwatch
config file (TOML, mode 0600) pointing at all of it. :meth:`SimEnvironment.stop` undoes
everything in reverse order, and is also registered with ``atexit`` so that an exception or
Ctrl-C leaves no Azurite behind. :class:`StopSignals` catches SIGINT/SIGTERM/SIGHUP, armed
before the ready line.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from services.domain.clock import ScaledClock
from services.standin.azurite import Azurite
from services.standin.events_out import DEFAULT_QUEUE_NAME, QueueSink
from services.standin.lag import ArgLag
from services.standin.scenario import ScenarioEngine
from services.standin.scenario_file import Scenario, load_scenario
from services.standin.world import World

CONFIG_FILE_NAME = "aumwatch.toml"


def _toml_string(value: str) -> str:
    # A JSON string (ASCII, \uXXXX escapes) is also a valid TOML basic string.
    return json.dumps(value, ensure_ascii=True)


def render_config(info: dict[str, Any]) -> str:
    """The aumwatch config file (TOML) that points the service layer at the stand-in (and,
    when ``info`` has a ``data_dir``, keeps aumwatch's data there; with a ``world``, names
    the stand-in world, so its journal rows stay apart from every other world's)."""
    subs = ", ".join(_toml_string(s) for s in info["subscriptions"])
    return (
        "# Written by `aumwatch sim`: points aumwatch at the local Azure stand-in.\n"
        "# Valid only while that process runs (the token and ports change every start).\n"
        "[azure]\n"
        'cloud = "standin"\n'
        f"arm_endpoint = {_toml_string(info['arm_endpoint'])}\n"
        f"ca_file = {_toml_string(info['ca_file'])}\n"
        f"token = {_toml_string(info['token'])}\n"
        f"subscriptions = [{subs}]\n"
        + ("" if not info.get("world") else (
            "# This world's id: the journal's events and cancels of every other world (they\n"
            "# share the data directory) stay out of its views.\n"
            f"world = {_toml_string(str(info['world']))}\n"))
        + "\n"
        "[queue]\n"
        f"connection_string = {_toml_string(info['queue_connection_string'])}\n"
        f"name = {_toml_string(info['queue_name'])}\n"
        'mode = "peek"\n'
        + ("" if not info.get("data_dir") else (
            "\n"
            "# The stand-in's journal, exports and reports stay apart from real Azure's: a\n"
            "# demo's cancel audit and events must never mix with an operator's own.\n"
            "[paths]\n"
            f"data_dir = {_toml_string(str(info['data_dir']))}\n"))
        + ("" if not info.get("tenants") else render_tenants(
            info["tenants"], info["queue_connection_string"]))
    )


_SUBSCRIPTION = re.compile(r"/subscriptions/([0-9a-fA-F-]{36})/")


def _queue_for(text: str, queue_of: dict[str, str]) -> str | None:
    """The queue of the tenant whose subscription an event message (base64 JSON) is
    about; None when it names none."""
    try:
        decoded = base64.b64decode(text, validate=False).decode("utf-8", "replace")
    except (ValueError, binascii.Error):
        decoded = text
    match = _SUBSCRIPTION.search(decoded) or _SUBSCRIPTION.search(text)
    return queue_of.get(match.group(1).lower()) if match else None


def render_tenants(tenants: list[dict[str, Any]], connection_string: str) -> str:
    """The ``[[tenants]]`` profiles of a several-tenant stand-in (issue 19)."""
    out = []
    for t in tenants:
        # A delegated subscription is listed too, as a Lighthouse operator would.
        subs = ", ".join(_toml_string(s)
                         for s in [*t["subscriptions"], *t.get("delegated", ())])
        out.append(
            "\n[[tenants]]\n"
            f"name = {_toml_string(t['name'])}\n"
            f"tenant = {_toml_string(t['tenant_id'])}\n"
            f"token = {_toml_string(t['token'])}\n"
            f"subscriptions = [{subs}]\n"
            "[tenants.queue]\n"
            f"connection_string = {_toml_string(connection_string)}\n"
            f"name = {_toml_string(t['queue_name'])}\n")
    return "".join(out)


def standin_data_dir() -> Path:
    """Where the stand-in's sessions keep aumwatch's data (journal, exports, reports): a
    ``standin`` folder inside aumwatch's usual data directory, so it persists after the demo
    (a report written there can still be read) but never mixes with real Azure's."""
    import platformdirs

    return Path(platformdirs.user_data_dir("aumwatch", appauthor=False)) / "standin"


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (it holds a token and a key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    os.replace(tmp, path)


class SimEnvironment:
    """The stand-in server, Azurite and the scenario engine, started and stopped together."""

    def __init__(
        self,
        scenario: Scenario | str | Path | None = None,
        *,
        speed: float = 1.0,
        offset: timedelta = timedelta(0),
        config_path: str | Path | None = None,
        queue_name: str = DEFAULT_QUEUE_NAME,
        token: str | None = None,
        step_interval: float = 0.5,
        azurite_binary: str | None = None,
        server_options: dict[str, Any] | None = None,
        arg_lag: float | None = None,
        data_dir: str | Path | None = None,
        tenants: int = 1,
        delegated: bool = False,
    ) -> None:
        """``data_dir``: where the config file it writes keeps aumwatch's journal, exports
        and reports (default :func:`standin_data_dir`, apart from real Azure's).
        ``tenants`` (issue 19): above 1, the world's subscriptions are shared out among that
        many tenants, each with its own token and queue, and the config file has one
        ``[[tenants]]`` profile each. ``delegated``: the first tenant's first subscription is
        also delegated to the second (Azure Lighthouse): its token sees it too."""
        if not 1 <= tenants <= 50:
            raise ValueError(f"tenants must be 1 to 50, not {tenants}")
        self.tenant_count = tenants
        self.delegated = delegated and tenants > 1
        self.sim_tenants: list[dict[str, Any]] = []
        if speed <= 0:
            raise ValueError(f"speed must be positive, not {speed}")
        # Load (and so validate) the scenario before anything is started.
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.clock = ScaledClock(speed=speed, offset=offset)
        self.world = World(self.clock)
        self.queue_name = queue_name
        self.step_interval = step_interval
        self._token = token
        self._server_options = dict(server_options or {})
        # Resource Graph lag: None is the realistic default (5-90 s a change, drawn from the
        # scenario's seed so a run repeats); a number is a fixed lag (0: none). The world the
        # scenario installs at start is visible at once; only later changes lag.
        self._server_options.setdefault(
            "arg_lag", ArgLag(seed=self.scenario.seed) if arg_lag is None else arg_lag)
        self._state_dir = Path(tempfile.mkdtemp(prefix="aumwatch-sim-"))
        # Every start is a new world: its own identity in the shared journal (issue 22).
        self.world_id = f"sim-{uuid.uuid4().hex[:16]}"
        self.config_path = Path(config_path) if config_path else self._state_dir / CONFIG_FILE_NAME
        self.data_dir = Path(data_dir) if data_dir else standin_data_dir()
        self.azurite = Azurite(binary=azurite_binary)
        self.sink: QueueSink | None = None
        self.engine: ScenarioEngine | None = None
        self.server: Any = None  # StandInServer (imported lazily: it needs the sim extra)
        self._stopped = threading.Event()
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> SimEnvironment:
        """Start everything; on any failure, stop what was started and re-raise."""
        if self._started:
            return self
        self._started = True
        atexit.register(self.stop)
        try:
            from services.standin.server import StandInServer

            self.azurite.start()
            self.sink = QueueSink(self.azurite.connection_string, self.queue_name)
            self.sink.ensure_queue()
            if self.tenant_count > 1:
                self._plan_tenants()  # before the engine writes its first event
            self.engine = ScenarioEngine(self.world, self.scenario, self.sink)
            server_dir = self._state_dir / "server"
            server_dir.mkdir(mode=0o700, exist_ok=True)
            self.server = StandInServer(self.world, token=self._token, state_dir=server_dir,
                                        **self._server_options)
            self.server.start()
            for index, tenant in enumerate(self.sim_tenants):
                lent = (self.sim_tenants[0]["subscriptions"][:1]
                        if self.delegated and index == 1 else [])
                tenant["delegated"] = list(lent)
                tenant["token"] = self.server.add_tenant(
                    tenant["tenant_id"], tenant["subscriptions"], delegated=lent).token
            self.engine.start(self.step_interval)
            write_private_file(self.config_path, render_config(
                {**self.info(), "data_dir": str(self.data_dir), "world": self.world_id}))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the engine, the server and Azurite, and remove temporary files. Idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if self.engine is not None:
            self.engine.stop()
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server.stop()
        if self.sink is not None:
            with contextlib.suppress(Exception):
                self.sink.close()
        self.azurite.close()
        shutil.rmtree(self._state_dir, ignore_errors=True)

    def _plan_tenants(self) -> None:
        """Share the scenario's subscriptions out among the tenants (round robin), each with
        its own queue (its token comes when the server starts); events go to the queue of
        their subscription's tenant."""
        assert self.sink is not None
        subs = list(self.scenario.subscriptions)
        queue_of: dict[str, str] = {}
        for index in range(self.tenant_count):
            tenant_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"aumwatch-sim-tenant-{index + 1}"))
            owned = subs[index::self.tenant_count]
            queue = self.queue_name if index == 0 else f"{self.queue_name}-t{index + 1}"
            self.sink.create_queue(queue)
            queue_of.update({s.lower(): queue for s in owned})
            self.sim_tenants.append({"name": f"tenant{index + 1}", "tenant_id": tenant_id,
                                     "token": "", "subscriptions": owned,
                                     "queue_name": queue})
        self.sink.queue_of = queue_of  # each tenant's wiring names its queue
        # Messages written straight to the first queue (not through a subscription) still
        # reach their subscription's tenant.
        self.sink.route = lambda text: _queue_for(text, queue_of)

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def __enter__(self) -> SimEnvironment:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- facts ---------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """What `aumwatch sim` prints as its JSON line (and the config file holds)."""
        if self.server is None:
            raise RuntimeError("the stand-in is not started")
        return {
            "config_file": str(self.config_path),
            "arm_endpoint": self.server.endpoint,
            "ca_file": str(self.server.ca_file),
            "token": self.server.token,
            "subscriptions": list(self.world.subscriptions),
            "queue_connection_string": self.azurite.connection_string,
            "queue_name": self.queue_name,
            **({"tenants": [dict(t) for t in self.sim_tenants]} if self.sim_tenants else {}),
        }


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP caught from ``__enter__`` until ``__exit__``.

    Arm it *before* telling anyone the process is ready: a signal that arrives between the
    ready line and a late ``signal.signal`` call would otherwise kill the process with the
    default action (a KeyboardInterrupt and exit 130, or death by SIGTERM) and skip the clean
    stop. Signals stay caught while the caller cleans up, so a second Ctrl-C does not cut the
    stop short; the previous handlers come back on exit.
    """

    def __init__(self) -> None:
        self.received = threading.Event()
        self.signum = 0
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if not self.signum:
            self.signum = signum
        self.received.set()

    def __enter__(self) -> StopSignals:
        wanted = [signal.SIGINT, signal.SIGTERM]
        if hasattr(signal, "SIGHUP"):
            wanted.append(signal.SIGHUP)
        for sig in wanted:
            self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous.clear()

    def wait(self, env: SimEnvironment | None = None) -> int:
        """Block until a caught signal (its number) or until ``env`` stops by itself (0)."""
        while not self.received.wait(0.2):
            if env is not None and env.stopped:
                break
        return self.signum

