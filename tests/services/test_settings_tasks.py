"""The config file's [[tasks]] (issue 12): validated, file-only, listed by config show."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from services.settings import SettingsError, load_settings
from tui.cli import main

GOOD = """
[[tasks]]
name = "precheck"
on = "pre"
configurations = ["prod-*", "Web"]
command = ["/usr/local/bin/precheck", "--strict"]
timeout = "90s"
cancel_on_failure = true

[[tasks]]
name = "report"
on = "post"
configurations = ["*"]
command = ["aumwatch", "report", "x"]
"""


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_tasks_are_read_from_the_config_file(tmp_path: Path) -> None:
    settings = load_settings(env={}, config_path=config(tmp_path, GOOD))
    pre, post = settings.tasks
    assert (pre.name, pre.on, pre.configurations, pre.command) == (
        "precheck", "pre", ("prod-*", "Web"), ("/usr/local/bin/precheck", "--strict"))
    assert pre.timeout == timedelta(seconds=90) and pre.cancel_on_failure
    assert post.timeout == timedelta(minutes=5) and not post.cancel_on_failure
    assert settings.sources["tasks"] == "file"
    assert not settings.warnings


def test_no_tasks_without_the_file_even_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings(env={"AUMWATCH_TASKS": "[{}]"}, config_path=config(tmp_path, ""))
    assert settings.tasks == ()


@pytest.mark.parametrize(("body", "message"), [
    ('name = "t"\non = "pre"\nconfigurations = ["a"]\ncommand = "precheck --strict"',
     "task 't': command: expected an argument list"),
    ('name = "t"\non = "post"\nconfigurations = ["a"]\ncommand = ["x"]\n'
     'cancel_on_failure = true', "task 't': cancel_on_failure: only a pre task"),
    ('name = "t"\non = "during"\nconfigurations = ["a"]\ncommand = ["x"]',
     "task 't': on: expected pre or post"),
    ('name = "t"\non = "pre"\nconfigurations = []\ncommand = ["x"]',
     "task 't': configurations: expected a non-empty list"),
    ('name = "t"\non = "pre"\nconfigurations = ["a"]\ncommand = ["x"]\ntimeout = "3h"',
     "task 't': timeout: between 1s and 2h"),
    ('name = "t"\non = "pre"\nconfigurations = ["a"]\ncommand = ["x"]\ntimeout = "soon"',
     "task 't': timeout: expected a duration"),
    ('name = "t"\non = "pre"\nconfigurations = ["a"]\ncommand = ["x"]\n'
     'cancel_on_failure = "yes"', "task 't': cancel_on_failure: expected true or false"),
    ('name = "t"\non = "pre"\nconfigurations = ["a"]\ncommand = ["x"]\nshell = true',
     "task 't': unknown key(s) shell"),
    ('on = "pre"\nconfigurations = ["a"]\ncommand = ["x"]', "[[tasks]] #1: name"),
    ('name = "t"\non = "pre"\nconfigurations = ["a"]\ncommand = []',
     "task 't': command: expected a non-empty list"),
])
def test_a_bad_task_is_refused_naming_the_task_and_the_key(tmp_path: Path, body: str,
                                                           message: str) -> None:
    path = config(tmp_path, "[[tasks]]\n" + body + "\n")
    with pytest.raises(SettingsError) as info:
        load_settings(env={}, config_path=path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_task_names_are_unique(tmp_path: Path) -> None:
    one = '[[tasks]]\nname = "T"\non = "pre"\nconfigurations = ["a"]\ncommand = ["x"]\n'
    with pytest.raises(SettingsError, match="declared twice"):
        load_settings(env={}, config_path=config(tmp_path, one + one.replace('"T"', '"t"')))


def test_a_tasks_table_instead_of_an_array_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"array of tables \(\[\[tasks\]\]\)"):
        load_settings(env={}, config_path=config(tmp_path, '[tasks]\nname = "t"\n'))


def test_config_show_lists_the_tasks(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUMWATCH_CONFIG", "AUMWATCH_QUEUE_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)
    path = config(tmp_path, GOOD)
    assert main(["--config", str(path), "config", "show", "--json"]) == 0
    items = {i["name"]: i for i in json.loads(capsys.readouterr().out)}
    assert items["tasks"]["source"] == "file"
    assert [t["name"] for t in items["tasks"]["value"]] == ["precheck", "report"]
    assert items["tasks"]["value"][0]["command"] == ["/usr/local/bin/precheck", "--strict"]
    assert items["tasks"]["value"][0]["cancel_on_failure"] is True
    assert main(["--config", str(path), "config", "show"]) == 0
    table = capsys.readouterr().out
    assert "precheck: on pre of prod-*, Web" in table
