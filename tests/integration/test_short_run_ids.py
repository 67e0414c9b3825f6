"""Every command that takes a run takes both forms (issue 20): the correlation id, and the
short ``CONFIGNAME/yyyyMMddHHmmss`` that ``report`` accepts, through one resolver; an
ambiguous short id is refused with the correlation ids it could mean, and nothing is sent."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from services.standin.server import StandInServer
from services.standin.world import SimRun, World
from tests.integration.test_cancel import cli, write_config
from tests.standin import NOW, add_run, config_object

pytestmark = pytest.mark.integration


def short(run: SimRun, name: str) -> str:
    return f"{name}/{run.start:%Y%m%d%H%M%S}"


@pytest.fixture
def cfg(standin: StandInServer, tmp_path: Path) -> Path:
    return write_config(standin, tmp_path)


def test_machines_takes_the_short_id(standin_world: World, cfg: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    run = add_run(standin_world, config_object("nightly"), NOW - timedelta(hours=1),
                  status="Completed", machines=2, machine_status="Succeeded")
    code, by_id, err = cli(capsys, "machines", run.correlation_id, "--json", "--config",
                           str(cfg))
    assert code == 0, err
    code, by_name, err = cli(capsys, "machines", short(run, "NIGHTLY"), "--json", "--config",
                             str(cfg))
    assert code == 0, err
    assert json.loads(by_name) == json.loads(by_id) and len(json.loads(by_id)) == 2


def test_cancel_takes_the_short_id(standin_world: World, cfg: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    run = add_run(standin_world, config_object("nightly"), NOW + timedelta(minutes=30),
                  machines=2)
    code, out, err = cli(capsys, "cancel", short(run, "nightly"), "--yes", "--json",
                         "--config", str(cfg))
    assert code == 0, err
    [item] = json.loads(out)
    assert item["run_id"].lower() == run.correlation_id.lower()
    assert item["outcome"] == "verified"
    assert standin_world.get_run(run.correlation_id).status == "Cancelled"


@pytest.mark.parametrize("command", ["machines", "cancel"])
def test_an_ambiguous_short_id_lists_the_runs_it_could_mean(
        command: str, standin_world: World, cfg: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    a = add_run(standin_world, config_object("patch-web", rg="rg-a"),
                NOW + timedelta(minutes=30))
    b = add_run(standin_world, config_object("patch-web", rg="rg-b"),
                NOW + timedelta(minutes=30))
    code, out, err = cli(capsys, command, short(a, "patch-web"), "--yes", "--config",
                         str(cfg)) if command == "cancel" else \
        cli(capsys, command, short(a, "patch-web"), "--config", str(cfg))
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert "2 configurations are named 'patch-web'" in err
    assert a.correlation_id.lower() in err.lower() and b.correlation_id.lower() in err.lower()
    assert standin_world.get_run(a.correlation_id).status == "Pending"
    assert standin_world.get_run(b.correlation_id).status == "Pending"


def test_an_unknown_short_id_is_one_line(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("machines", "cancel"):
        code, _, err = cli(capsys, command, "nope/20260310123000", "--config", str(cfg))
        assert code == 1 and err.count("\n") == 1
        assert "no configuration named 'nope'" in err
