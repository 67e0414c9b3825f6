"""The wheel as an operator installs it (issue 20): built from this tree, installed into a
fresh virtual environment with the locked versions, run with no credentials and no config.

It checks what only an installed copy can show: the console script, ``--version`` from the
package metadata, the data files the commands read at run time (the demo scenario, the
dashboard's stylesheet, the browser page's static files), and that ``doctor`` without
credentials says what is wrong in one line per problem, with no SDK noise.
"""

from __future__ import annotations

import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "lock.txt"


def _pip(python: Path, *args: str, cwd: Path) -> None:
    subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "-q", *args],
                   cwd=cwd, check=True, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the built wheel, the fresh environment's bin directory)."""
    work = tmp_path_factory.mktemp("wheel")
    dist = work / "dist"
    # The same pins as `make install` (lock.txt as constraints), so the build and the
    # install resolve to the versions already in the pip cache: no fresh downloads.
    _pip(Path(sys.executable), "wheel", "--no-deps", "-c", str(LOCK), "-w", str(dist),
         str(ROOT), cwd=work)
    (wheel,) = dist.glob("aumwatch-*.whl")
    env_dir = work / "env"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    _pip(python, "install", "-c", str(LOCK), str(wheel), cwd=work)
    return wheel, env_dir / "bin"


def _run(bin_dir: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``aumwatch ARGS`` as a new user would run it: no Azure variables, no config, no
    az login, away from the source tree (so nothing is imported from it)."""
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".data")}
    return subprocess.run([str(bin_dir / "aumwatch"), *args], cwd=home, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_wheel_holds_every_file_read_at_run_time(installed: tuple[Path, Path]) -> None:
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "services/standin/scenarios/demo.toml" in names
    assert "tui/app.tcss" in names
    # Only aumwatch's own three packages: no tests, bench or docs at the top level.
    tops = {n.split("/")[0] for n in names if not n.startswith("aumwatch-")}
    assert tops == {"services", "tui", "widgets"}


def test_version_help_and_a_rule_command(installed: tuple[Path, Path], tmp_path: Path) -> None:
    _, bin_dir = installed
    version = _run(bin_dir, "--version", home=tmp_path)
    assert version.returncode == 0, version.stderr
    assert re.fullmatch(r"aumwatch \d+\.\d+\.\d+\S*\n", version.stdout)

    helped = _run(bin_dir, "--help", home=tmp_path)
    assert helped.returncode == 0, helped.stderr
    for command in ("runs", "doctor", "completion", "report", "serve"):
        assert command in helped.stdout

    nxt = _run(bin_dir, "schedule", "next", "--start", "2026-03-01 22:00", "--tz",
               "W. Europe Standard Time", "--recur", "Month Second Tuesday Offset3",
               "--count", "2", "--after", "2026-03-01T00:00:00Z", "--json", home=tmp_path)
    assert nxt.returncode == 0, nxt.stderr
    assert '"2026-03-13T21:00:00Z"' in nxt.stdout  # 2nd Tuesday + 3 days, 22:00 CET
    assert nxt.stderr == ""

    script = _run(bin_dir, "completion", "bash", home=tmp_path)
    assert script.returncode == 0 and "complete " in script.stdout


def test_the_data_files_load_from_the_installed_copy(installed: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    _, bin_dir = installed
    probe = (
        "import pathlib, tui, services\n"
        "from services.standin.scenario_file import load_scenario\n"
        "from tui.serve import DashboardServer\n"
        "assert 'site-packages' in tui.__file__, tui.__file__\n"
        "assert load_scenario().configurations\n"
        "assert (pathlib.Path(tui.__file__).parent / 'app.tcss').is_file()\n"
        "server = DashboardServer(['aumwatch'], token='t')\n"
        "assert (pathlib.Path(server.statics_path) / 'js' / 'textual.js').is_file()\n"
    )
    done = subprocess.run([str(bin_dir / "python"), "-c", probe], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_doctor_without_credentials(installed: tuple[Path, Path], tmp_path: Path) -> None:
    _, bin_dir = installed
    doctor = _run(bin_dir, "doctor", home=tmp_path)
    assert doctor.returncode == 1
    assert doctor.stderr == ""  # no SDK log records, no traceback
    lines = doctor.stdout.splitlines()
    for line in lines:  # every line is a finding, its fix or the summary
        assert re.match(r"\[(ok  |WARN|FAIL|skip)\] \w|       fix: |\d+ problem", line), line
    (credentials,) = [line for line in lines if line.startswith("[FAIL] credentials")]
    assert "no Azure credential found (tried " in credentials
    assert "https://" not in credentials  # the SDK's troubleshooting links stay out
    assert lines[-1].startswith("1 problem(s)")
