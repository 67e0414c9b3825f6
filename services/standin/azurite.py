"""Azurite, the real Storage Queue server, as a child process of the stand-in.

:class:`Azurite` finds the ``azurite-queue`` binary (pinned in ``package.json``, installed by
``npm ci``), starts it on 127.0.0.1 and a free port with the flags docs/azure.md requires, waits
until it answers HTTP (a probe, not a fixed sleep) and stops it again. It can be stopped and
started on the same port (reliability tests restart it mid-tail; its in-memory queues are then
empty and must be created again).

No orphans: the process runs in its own process group and the whole group is signalled on
stop; on Linux the child also gets ``PR_SET_PDEATHSIG`` so the kernel kills it if the Python
process dies without cleaning up (SIGKILL, a crash). Every started instance is stopped at
interpreter exit as well (``atexit``). Note that the death signal follows the *thread* that
started the child: start Azurite from a thread that lives as long as it should.

The account is Azurite's well-known development account; its key is published by Microsoft
(https://learn.microsoft.com/azure/storage/common/storage-use-azurite) and grants nothing
outside this local process.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType

ACCOUNT_NAME = "devstoreaccount1"
# The published, well-known Azurite development key (not a secret).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
ENV_BINARY = "AUMWATCH_AZURITE"
BINARY_NAME = "azurite-queue"

# --skipApiVersionCheck: the SDK speaks a newer API version than Azurite accepts;
# --disableTelemetry: else it calls out; --extentMemoryLimit: else in-memory mode reserves
# half the machine's memory.
_FLAGS = (
    "--skipApiVersionCheck",
    "--disableTelemetry",
    "--inMemoryPersistence",
    "--extentMemoryLimit",
    "64",
    "--silent",
)
_PR_SET_PDEATHSIG = 1


class AzuriteError(RuntimeError):
    """Azurite could not be found, started or reached; the message says what to do."""


def repo_root() -> Path:
    """The source checkout this package runs from (where ``node_modules`` lives)."""
    return Path(__file__).resolve().parents[2]


def find_binary() -> str:
    """Locate ``azurite-queue``: ``$AUMWATCH_AZURITE``, ``node_modules/.bin``, then ``PATH``."""
    explicit = os.environ.get(ENV_BINARY)
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise AzuriteError(f"{ENV_BINARY}={explicit!r} is not an executable file")
        return explicit
    for base in (repo_root(), Path.cwd()):
        candidate = base / "node_modules" / ".bin" / BINARY_NAME
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    on_path = shutil.which(BINARY_NAME)
    if on_path:
        return on_path
    raise AzuriteError(
        f"{BINARY_NAME} not found: run `npm ci` (or `make install`) in the aumwatch checkout, "
        f"or set {ENV_BINARY} to the azurite-queue executable"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def connection_string(host: str, port: int) -> str:
    """The explicit devstoreaccount1 connection string for a queue endpoint on ``host:port``."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"QueueEndpoint=http://{host}:{port}/{ACCOUNT_NAME};"
    )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_running: weakref.WeakSet[Azurite] = weakref.WeakSet()
_running_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    with _running_lock:
        instances = list(_running)
    for instance in instances:
        instance.stop()


class Azurite:
    """One ``azurite-queue`` child process on 127.0.0.1 (a context manager)."""

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        binary: str | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.binary = binary
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: str | None = None
        self._log: Path | None = None

    # -- facts ---------------------------------------------------------------------------
    @property
    def connection_string(self) -> str:
        if not self.port:
            raise AzuriteError("Azurite has not been started yet (no port)")
        return connection_string(self.host, self.port)

    @property
    def queue_endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/{ACCOUNT_NAME}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> Azurite:
        """Start Azurite (on the same port as before when restarted) and wait until it answers."""
        if self.running:
            return self
        binary = self.binary or find_binary()
        if self._workdir is None:
            # Azurite may write debug/metadata files into its cwd: keep them out of the repo.
            self._workdir = tempfile.mkdtemp(prefix="aumwatch-azurite-")
        self._log = Path(self._workdir) / "azurite.log"
        fixed_port = bool(self.port)
        attempts = 1 if fixed_port else 3
        last_error = ""
        for _ in range(attempts):
            if not fixed_port:
                self.port = free_port(self.host)
            last_error = self._spawn(binary)
            if not last_error:
                with _running_lock:
                    _running.add(self)
                return self
        raise AzuriteError(last_error)

    def _spawn(self, binary: str) -> str:
        """Start one process and wait for it; return "" when ready, else why it failed."""
        args = [binary, "--queueHost", self.host, "--queuePort", str(self.port), *_FLAGS]
        assert self._log is not None and self._workdir is not None
        log = open(self._log, "wb")  # the child writes to it; our handle is closed below
        try:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._workdir,
                start_new_session=True,  # its own process group: stop() signals the group
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError as exc:
            return f"cannot run {binary}: {exc}"
        finally:
            log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                output = self._log.read_text(errors="replace").strip().splitlines()
                tail = output[-1] if output else "no output"
                self._proc = None
                return f"Azurite exited during start-up on port {self.port}: {tail}"
            if self._answers():
                return ""
            time.sleep(0.05)
        self._kill()
        return f"Azurite did not answer on {self.host}:{self.port} within {self.startup_timeout:g}s"

    def _answers(self) -> bool:
        """True when an Azurite queue service answers HTTP on our port."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=1.0)
        try:
            conn.request("GET", f"/{ACCOUNT_NAME}?comp=list")
            response = conn.getresponse()
            response.read()
            # Any answer from Azurite (an auth error is expected) means it serves requests.
            return "azurite" in (response.getheader("Server") or "").lower()
        except OSError:
            return False
        finally:
            conn.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        with _running_lock:
            _running.discard(self)
        self._kill(timeout)

    def _kill(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        # Whatever is left in the group (node may have spawned helpers) goes now.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)

    def restart(self) -> Azurite:
        """Stop and start again on the same port (queues are empty afterwards)."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and remove the working directory."""
        self.stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
