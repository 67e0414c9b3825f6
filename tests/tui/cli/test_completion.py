"""``aumwatch --version`` and ``aumwatch completion bash|zsh|fish`` (issue 20)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tui.cli import main, package_version
from tui.cli.completion import SHELLS, completion_script


def test_version_is_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"aumwatch {version('aumwatch')}\n"
    assert package_version() == version("aumwatch")


@pytest.mark.parametrize("shell", SHELLS)
def test_each_shell_gets_a_script_naming_every_command(shell: str) -> None:
    script = completion_script(shell)
    for command in ("configs", "runs", "machines", "cancel", "report", "doctor", "serve",
                    "completion", "subscriptions"):
        assert command in script


def _bash_complete(script: Path, words: list[str]) -> list[str]:
    """What bash offers for the last of ``words`` with the script loaded."""
    line = " ".join(words)
    program = (f"source {script}\n"
               f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
               f"COMP_CWORD={len(words) - 1}\nCOMP_LINE={line!r}\nCOMP_POINT=${{#COMP_LINE}}\n"
               "_shtab_aumwatch\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True,
                          timeout=30, check=True)
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_flags_and_choices(tmp_path: Path) -> None:
    script = tmp_path / "aumwatch.bash"
    script.write_text(completion_script("bash"))
    assert _bash_complete(script, ["aumwatch", "rep"]) == ["report"]
    assert set(_bash_complete(script, ["aumwatch", "completion", ""])) == set(SHELLS)
    assert "--configuration" in _bash_complete(script, ["aumwatch", "runs", "--con"])


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_the_script_parses_in_its_shell(shell: str, tmp_path: Path) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    script = tmp_path / f"aumwatch.{shell}"
    script.write_text(completion_script(shell))
    subprocess.run([shell, "-n", str(script)], check=True, timeout=30)


def test_the_command_prints_the_script(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "fish"]) == 0
    assert capsys.readouterr().out == completion_script("fish")
    assert sys.modules.get("shtab") is not None


def test_fish_completes_commands_flags_and_choices(tmp_path: Path) -> None:
    if shutil.which("fish") is None:
        pytest.skip("fish is not installed")
    script = tmp_path / "aumwatch.fish"
    script.write_text(completion_script("fish"))

    def offered(line: str) -> set[str]:
        done = subprocess.run(["fish", "--no-config", "-c",
                               f"source {script}; complete -C {line!r}"],
                              capture_output=True, text=True, timeout=30, check=True)
        return {row.split("\t")[0] for row in done.stdout.splitlines()}

    assert offered("aumwatch rep") == {"report"}
    assert offered("aumwatch completion ") == set(SHELLS)
    assert "--configuration" in offered("aumwatch runs --con")
