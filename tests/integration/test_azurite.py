"""Azurite as the stand-in runs it: starts on a free port, answers, stops without orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from services.standin import azurite as azurite_module
from services.standin.azurite import Azurite, AzuriteError
from services.standin.events_out import QueueSink

pytestmark = pytest.mark.integration


def gone(pid: int, timeout: float = 10.0) -> bool:
    """True once no process ``pid`` exists (zombies count as gone: they run nothing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def azurite() -> Iterator[Azurite]:
    with Azurite() as server:
        yield server


def test_starts_on_a_free_loopback_port_and_keeps_message_text_raw(azurite: Azurite) -> None:
    assert azurite.running and azurite.port > 0
    assert f"QueueEndpoint=http://127.0.0.1:{azurite.port}/devstoreaccount1;" in (
        azurite.connection_string)
    node = psutil.Process(azurite.pid)
    listening = {c.laddr for c in node.net_connections(kind="tcp") if c.status == "LISTEN"}
    assert ("127.0.0.1", azurite.port) in {(a.ip, a.port) for a in listening}
    sink = QueueSink(azurite.connection_string, "raw-text")
    sink.ensure_queue()
    sink.send("eyJub3QiOiAiZGVjb2RlZCJ9")  # base64 text goes in and comes out as it is
    with QueueClient.from_connection_string(azurite.connection_string, "raw-text") as client:
        [message] = client.peek_messages(max_messages=5)
    assert message.content == "eyJub3QiOiAiZGVjb2RlZCJ9"
    sink.close()


def test_stop_leaves_no_process_behind() -> None:
    server = Azurite().start()
    pid = server.pid
    assert pid is not None
    children = psutil.Process(pid).children(recursive=True)
    server.close()
    assert not server.running
    assert gone(pid)
    assert all(gone(c.pid) for c in children)


def test_restart_keeps_the_port_and_a_sink_recreates_its_queue(azurite: Azurite) -> None:
    sink = QueueSink(azurite.connection_string, "survives")
    sink.ensure_queue()
    sink.send("before")
    port, old_pid = azurite.port, azurite.pid
    assert old_pid is not None
    azurite.restart()
    assert azurite.port == port and azurite.pid != old_pid and gone(old_pid)
    with QueueClient.from_connection_string(azurite.connection_string, "survives") as client:
        with pytest.raises(ResourceNotFoundError):  # in-memory: the queue went with the process
            client.peek_messages()
        sink.send("after")  # the sink creates the queue again and sends
        assert [m.content for m in client.peek_messages(max_messages=5)] == ["after"]
    sink.close()


def test_a_crashed_parent_takes_azurite_with_it(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from services.standin.azurite import Azurite\n"
        "a = Azurite().start()\n"
        "print(a.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=azurite_module.repo_root())
    try:
        assert parent.stdout is not None
        node_pid = int(parent.stdout.readline())
        assert psutil.pid_exists(node_pid)
        os.kill(parent.pid, signal.SIGKILL)  # no atexit, no cleanup: the kernel must do it
        parent.wait(10)
        assert gone(node_pid)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_missing_binary_says_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.delenv("AUMWATCH_AZURITE", raising=False)
    monkeypatch.setattr(azurite_module, "repo_root", lambda: tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AzuriteError, match=r"run `npm ci` \(or `make install`\)"):
        Azurite().start()


def test_explicit_binary_that_does_not_exist_is_named(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("AUMWATCH_AZURITE", str(tmp_path / "nope"))
    with pytest.raises(AzuriteError, match=r"AUMWATCH_AZURITE=.*nope.* is not an executable"):
        Azurite().start()
