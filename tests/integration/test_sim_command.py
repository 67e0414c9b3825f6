"""`aumwatch sim` as a user runs it: one JSON line, a live endpoint, a clean exit on a signal."""

from __future__ import annotations

import json
import os
import selectors
import signal
import ssl
import stat
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from azure.storage.queue import QueueClient

from services.domain.events import EventDecodeError, decode_message
from services.standin.azurite import repo_root
from tests.processes import all_gone

pytestmark = pytest.mark.integration

KEYS = {"config_file", "arm_endpoint", "ca_file", "token", "subscriptions",
        "queue_connection_string", "queue_name"}


def aumwatch(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tui", *args], cwd=repo_root(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_line(proc: subprocess.Popen[str], timeout: float = 60.0) -> str:
    """The first stdout line, or fail with stderr when the process ends or takes too long."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            proc.kill()
            pytest.fail("no line from `aumwatch sim` in time")
    line = proc.stdout.readline()
    if not line:
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"`aumwatch sim` exited {proc.returncode}: {err}")
    return line


def family(proc: subprocess.Popen[str]) -> list[int]:
    return [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]



@pytest.fixture
def sim(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any], list[int]]]:
    proc = aumwatch("sim", "--write-config", str(tmp_path / "standin.toml"))
    try:
        line = read_line(proc)
        yield proc, json.loads(line), family(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_prints_one_json_line_then_serves_until_sigterm(
    sim: tuple[subprocess.Popen[str], dict[str, Any], list[int]], tmp_path: Path,
) -> None:
    proc, info, children = sim
    assert set(info) == KEYS
    assert info["config_file"] == str(tmp_path / "standin.toml")
    assert info["arm_endpoint"].startswith("https://127.0.0.1:")
    assert len(info["subscriptions"]) == 2
    # Azurite is a child of the command.
    assert any("azurite" in " ".join(psutil.Process(p).cmdline()) for p in children)

    # The config file: private, and pointing at the same things as the line.
    config_path = Path(info["config_file"])
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    config = tomllib.loads(config_path.read_text())
    # Each start is a world of its own (issue 22): its journal rows stay apart from others'.
    assert config["azure"].pop("world").startswith("sim-")
    assert config["azure"] == {"cloud": "standin", "arm_endpoint": info["arm_endpoint"],
                               "ca_file": info["ca_file"], "token": info["token"],
                               "subscriptions": info["subscriptions"]}
    assert config["queue"] == {"connection_string": info["queue_connection_string"],
                               "name": info["queue_name"], "mode": "peek"}

    # The endpoint answers with the scenario's configurations.
    sub = info["subscriptions"][0]
    request = urllib.request.Request(
        f"{info['arm_endpoint']}/subscriptions/{sub}/providers/Microsoft.Maintenance/"
        "maintenanceConfigurations?api-version=2023-04-01",
        headers={"Authorization": f"Bearer {info['token']}"})
    context = ssl.create_default_context(cafile=info["ca_file"])
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        body = json.load(response)
    assert len(body["value"]) >= 3

    # The demo scenario's recent events are already in the queue and decode.
    with QueueClient.from_connection_string(info["queue_connection_string"],
                                            info["queue_name"]) as client:
        texts = [m.content for m in client.peek_messages(max_messages=32)]
    decodable = [t for t in texts if _decodes(t)]
    assert decodable and len(decodable) == len(texts) - 1  # the demo has one malformed message

    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out == ""  # exactly one line in all: nothing after it
    assert all_gone(children)


def test_sigint_stops_it_too(
    sim: tuple[subprocess.Popen[str], dict[str, Any], list[int]],
) -> None:
    proc, _, children = sim
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert all_gone(children)


def test_a_bad_scenario_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[subscriptions]\nprod = "x"\n[[configuration]]\nname = "a b"\n')
    proc = aumwatch("sim", "--scenario", str(bad))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and out == ""
    assert err.count("\n") == 1 and "is not a valid Azure resource name" in err


def test_a_bad_speed_is_a_usage_error_before_anything_starts() -> None:
    proc = aumwatch("sim", "--speed", "0")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and out == ""
    assert "--speed: must be above 0" in err


def _decodes(text: str) -> bool:
    try:
        return bool(decode_message(text))
    except EventDecodeError:
        return False


def test_the_config_file_is_what_the_settings_loader_reads(
    sim: tuple[subprocess.Popen[str], dict[str, Any], list[int]],
) -> None:
    from services.settings import load_settings

    _, info, _ = sim
    settings = load_settings(env={}, config_path=info["config_file"])
    assert settings.arm_endpoint == info["arm_endpoint"]
    assert str(settings.ca_file) == info["ca_file"]
    assert settings.token == info["token"]
    assert settings.queue_connection_string == info["queue_connection_string"]
    assert settings.queue_name == info["queue_name"] and settings.queue_mode == "peek"
    # The stand-in's journal, exports and reports live apart from real Azure's.
    from services.settings import Settings
    from services.standin.runner import standin_data_dir

    assert settings.data_dir == standin_data_dir()
    assert settings.data_dir != Settings().data_dir


def test_demo_opens_the_dashboard_on_the_stand_in_and_leaves_nothing_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tui.app
    from tui.cli import build_parser

    seen: dict[str, Any] = {}

    class FakeApp:
        """Stands in for the dashboard: records what it was given, quits at once."""

        return_code = 0

        def __init__(self, **kwargs: Any) -> None:
            seen["kwargs"] = kwargs

        def run(self) -> None:
            path = Path(os.environ["AUMWATCH_CONFIG"])
            seen["config"] = tomllib.loads(path.read_text())
            seen["path"] = path
            seen["azurite"] = [p.pid for p in psutil.Process().children(recursive=True)
                               if "azurite" in " ".join(p.cmdline())]

    monkeypatch.setattr(tui.app, "AumwatchApp", FakeApp)
    monkeypatch.setenv("AUMWATCH_CONFIG", "/the/user/config.toml")
    args = build_parser().parse_args(["demo", "--read-only"])
    assert args.func(args) == 0
    assert os.environ["AUMWATCH_CONFIG"] == "/the/user/config.toml"  # restored afterwards
    assert seen["kwargs"]["read_only"] is True
    assert seen["config"]["azure"]["cloud"] == "standin"
    assert seen["azurite"] and all_gone(seen["azurite"])
    assert not seen["path"].exists()  # the temporary config went with the stand-in


def test_a_bad_arg_lag_is_a_usage_error_before_anything_starts() -> None:
    proc = aumwatch("sim", "--arg-lag", "-5")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and out == ""
    assert "--arg-lag: must be between 0 and 86400 seconds" in err


def test_arg_lag_is_an_option_of_sim_and_demo() -> None:
    from tui.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["sim", "--arg-lag", "0"]).arg_lag == 0.0
    assert parser.parse_args(["demo", "--arg-lag", "12.5"]).arg_lag == 12.5
    assert parser.parse_args(["sim"]).arg_lag is None  # the realistic default
