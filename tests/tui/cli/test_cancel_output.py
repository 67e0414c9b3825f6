"""``aumwatch cancel --json``: what Azure answered reaches the terminal with its control
characters escaped (C1 ones too: U+009B is a one-byte CSI on some terminals)."""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

import pytest

from tui.cli.cancelcmd import _report


def test_a_refused_cancels_json_escapes_control_characters_from_azure(
        capsys: pytest.CaptureFixture[str]) -> None:
    run_id = SimpleNamespace(correlation_id="/subscriptions/s/run/20261207120000",
                             configuration_name="cfg\x9b2J")
    code = _report(argparse.Namespace(json=True), run_id, "refused", "denied \x9b2J\x1b[0m",
                   403, None, False)
    out, err = capsys.readouterr()
    assert code == 1
    assert "\x9b" not in out and "\x1b" not in out
    assert "\x9b" not in err and "\x1b" not in err
    [doc] = json.loads(out)
    assert doc["message"] == "denied \x9b2J\x1b[0m" and doc["configuration_name"] == "cfg\x9b2J"
