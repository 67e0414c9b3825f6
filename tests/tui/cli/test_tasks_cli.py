"""``aumwatch tasks`` refusals that need no queue: no tasks, peek mode, a bad interval."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.cli import main

TASK = '[[tasks]]\nname = "t"\non = "pre"\nconfigurations = ["a"]\ncommand = ["x"]\n'


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUMWATCH_CONFIG", "AUMWATCH_QUEUE_MODE", "AUMWATCH_QUEUE_NAME",
                 "AUMWATCH_QUEUE_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)


def run(tmp_path: Path, text: str, *args: str) -> int:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return main(["--config", str(path), "tasks", *args])


def test_without_tasks_it_says_where_to_declare_them(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "", "--once") == 1
    assert "no tasks declared: add [[tasks]]" in capsys.readouterr().err


def test_peek_mode_is_refused_before_anything_is_read(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, '[queue]\nname = "q"\nmode = "peek"\n' + TASK, "--once") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "refused: tasks need queue.mode = \"consume\"" in captured.err


def test_an_interval_below_the_floor_is_refused(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, TASK, "--interval", "0.1") == 1
    assert "--interval must be at least" in capsys.readouterr().err
