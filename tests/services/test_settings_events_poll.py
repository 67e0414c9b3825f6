"""The events queue's own poll interval: default 1 s, floor 0.5 s, file/env like the rest."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from services.settings import (
    DEFAULT_EVENTS_POLL_INTERVAL,
    MIN_POLL_INTERVAL,
    SettingsError,
    load_settings,
)


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.settings._default_config_path",
                        lambda: tmp_path / "absent" / "config.toml")


def test_the_default_is_one_second_and_independent_of_the_graph_poll() -> None:
    settings = load_settings(env={})
    assert settings.events_poll_interval == DEFAULT_EVENTS_POLL_INTERVAL == timedelta(seconds=1)
    assert settings.events_poll_interval < MIN_POLL_INTERVAL  # not tied to the ARG floor
    assert settings.sources["events_poll_interval"] == "default"


def test_read_from_the_queue_section_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[queue]\npoll_interval = "3s"\n', encoding="utf-8")
    path.chmod(0o600)
    settings = load_settings(env={}, config_path=path)
    assert settings.events_poll_interval == timedelta(seconds=3)
    assert settings.sources["events_poll_interval"] == "file"
    assert not settings.warnings  # a known key


def test_the_environment_sets_it_with_fractions() -> None:
    settings = load_settings(env={"AUMWATCH_EVENTS_POLL_INTERVAL": "0.5s"})
    assert settings.events_poll_interval == timedelta(seconds=0.5)
    assert settings.sources["events_poll_interval"] == "env"


@pytest.mark.parametrize("value", ["0.2s", "0", "soon"])
def test_too_fast_or_malformed_is_refused_naming_the_setting(value: str) -> None:
    with pytest.raises(SettingsError, match="AUMWATCH_EVENTS_POLL_INTERVAL"):
        load_settings(env={"AUMWATCH_EVENTS_POLL_INTERVAL": value})
