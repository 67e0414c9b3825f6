"""``[preflight]`` settings (issue 18): documented defaults, the file, the refresh floor, and
the window-fit rules they make."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from services.domain.preflight import FitRules
from services.settings import SettingsError, load_settings


def test_defaults_are_the_documented_ones() -> None:
    settings = load_settings({}, env={}, config_path=None)
    assert settings.preflight_stale_after == timedelta(days=2)
    assert settings.preflight_refresh == timedelta(minutes=5)
    assert settings.preflight_warn_before == timedelta(minutes=60)
    assert settings.fit_rules == FitRules(10.0, 15.0, 10.0, 15.0, timedelta(days=2))


def test_file_values_and_the_refresh_floor(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[preflight]\nstale_after = "3d"\nrefresh = "10m"\nwarn_before = 90\n'
                    'minutes_per_update = 12\nreboot_linux = "20m"\n', encoding="utf-8")
    settings = load_settings({}, env={}, config_path=path)
    assert not settings.warnings
    assert settings.preflight_refresh == timedelta(minutes=10)
    assert settings.preflight_warn_before == timedelta(minutes=90)
    assert settings.sources["preflight_stale_after"] == "file"
    rules = settings.fit_rules
    assert rules.minutes_per_update == 12 and rules.reboot_linux == 20
    assert rules.stale_after == timedelta(days=3)
    with pytest.raises(SettingsError, match=r"PREFLIGHT_REFRESH: at least 1m"):
        load_settings({}, env={"AUMWATCH_PREFLIGHT_REFRESH": "30s"}, config_path=None)
