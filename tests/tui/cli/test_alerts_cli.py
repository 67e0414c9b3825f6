"""``aumwatch alerts test ROUTE`` and ``config show`` with routes (issue 21), in process, with
a real local receiver."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.receivers import receiver
from tui.cli import main

KEY = "pd-key-SECRET-abcdef0123"
HOOK = "hook-SECRET-path-777777"


def write(tmp_path: Path, base: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
[[alerts.routes]]
name = "hook"
type = "webhook"
url = "{base}/{HOOK}"

[[alerts.routes]]
name = "pd"
type = "pagerduty"
url = "{base}/v2/enqueue"
routing_key = "{KEY}"
""", encoding="utf-8")
    path.chmod(0o600)
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_a_test_notification_says_what_came_back(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with receiver(202) as (base, got):
        cfg = write(tmp_path, base)
        code, out, err = await asyncio.to_thread(run_cli, capsys, "--config", str(cfg),
                                                 "alerts", "test", "hook")
        assert code == 0, err
        assert out.startswith("route hook (webhook) test: delivered (HTTP 202)")
        [body] = got.bodies(f"/{HOOK}")
        assert body["kind"] == "test" and body["test"] is True
        code, out, err = await asyncio.to_thread(run_cli, capsys, "--config", str(cfg),
                                                 "alerts", "test", "pd")
    assert code == 0, err
    assert [line.split(":")[0] for line in out.splitlines()] == [
        "route pd (pagerduty) trigger", "route pd (pagerduty) resolve"]
    actions = [b["event_action"] for b in got.bodies("/v2/enqueue")]
    assert actions == ["trigger", "resolve"]
    assert KEY not in out and HOOK not in out


async def test_a_refused_test_exits_1_and_an_unknown_route_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with receiver(400) as (base, _):
        cfg = write(tmp_path, base)
        code, out, _ = await asyncio.to_thread(run_cli, capsys, "--config", str(cfg),
                                               "alerts", "test", "hook")
    assert code == 1 and "failed after 1 tries (HTTP 400)" in out
    code, _, err = run_cli(capsys, "--config", str(cfg), "alerts", "test", "nope")
    assert code == 1 and "no alert route named 'nope'" in err and "hook, pd" in err


def test_config_show_lists_the_routes_with_their_secrets_masked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write(tmp_path, "https://receiver.test")
    code, out, _ = run_cli(capsys, "config", "show", "--config", str(cfg), "--json")
    assert code == 0
    routes = next(x for x in json.loads(out) if x["name"] == "alert_routes")["value"]
    assert [(r["name"], r["type"], r["url"]) for r in routes] == [
        ("hook", "webhook", "********"), ("pd", "pagerduty", "********")]
    code, text, _ = run_cli(capsys, "config", "show", "--config", str(cfg))
    assert "hook: webhook" in text
    for shown in (out, text):
        assert KEY not in shown and HOOK not in shown


def test_a_routes_answer_reaches_the_terminal_with_its_control_characters_escaped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # What a route answers (here a command's output) is untrusted: an escape sequence in it
    # (a window title, a screen clear) must be printed escaped, never interpreted.
    cfg = tmp_path / "config.toml"
    answer = "import sys; sys.stdout.write(chr(27) + ']0;pwned' + chr(7) + chr(27) + '[2J')"
    cfg.write_text(f"""
[[alerts.routes]]
name = "cmd"
type = "command"
command = [{json.dumps(sys.executable)}, "-c", {json.dumps(answer)}]
""", encoding="utf-8")
    cfg.chmod(0o600)
    code, out, err = run_cli(capsys, "--config", str(cfg), "alerts", "test", "cmd")
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in out
