"""Every `aumwatch sim` / `demo` start is a world of its own (issue 22, item 2): its config
file names the world, and its journal rows are written and read under it."""

from __future__ import annotations

import shutil
from pathlib import Path

from services.settings import load_settings
from services.standin.runner import SimEnvironment, render_config, write_private_file


def test_the_sim_config_names_its_world_and_the_settings_read_it(tmp_path: Path) -> None:
    info = {"arm_endpoint": "https://127.0.0.1:9", "ca_file": str(tmp_path / "ca.pem"),
            "token": "t", "subscriptions": ["s"], "world": "sim-0123",
            "queue_connection_string": "UseDevelopmentStorage=true", "queue_name": "aum",
            "data_dir": str(tmp_path)}
    path = tmp_path / "aumwatch.toml"
    write_private_file(path, render_config(info))
    settings = load_settings({}, env={}, config_path=path)
    assert settings.world == "sim-0123"
    assert settings.queue_identity == "http://127.0.0.1:10001/devstoreaccount1/aum#world=sim-0123"


def test_each_sim_start_is_another_world() -> None:
    first, second = SimEnvironment(), SimEnvironment()
    try:
        assert first.world_id != second.world_id
        assert first.data_dir == second.data_dir  # one data directory: the world keeps apart
    finally:
        for env in (first, second):
            shutil.rmtree(env._state_dir, ignore_errors=True)
