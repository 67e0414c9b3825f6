"""``[alerts]`` and ``[[alerts.routes]]`` (issue 21): defaults, validation, secrets from the
file or the environment only, masked wherever settings are shown."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from services.settings import SettingsError, load_settings, route_env_name

HOOK = "https://hooks.example.test/services/T000/B000/hook-secret-123456"
KEY = "pd-routing-key-abcdef123456"


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


ROUTES = f"""
[alerts]
missed_after = "20m"
heartbeat_url = "https://hb.example.test/ping/hb-secret-999999"

[[alerts.routes]]
name = "chat"
type = "slack"
url = "{HOOK}"
on = ["run-failed", "missed-run"]

[[alerts.routes]]
name = "on-call"
type = "pagerduty"
min_severity = "error"
configurations = ["prod-*"]
"""


def test_defaults() -> None:
    settings = load_settings(env={}, config_path=None)
    assert settings.missed_after == timedelta(minutes=15)
    assert settings.heartbeat_every == timedelta(seconds=60)
    assert settings.bell is True and settings.alert_routes == ()


def test_routes_read_with_a_key_from_the_environment_and_masked_everywhere(
        tmp_path: Path) -> None:
    path = write(tmp_path, ROUTES)
    env = {route_env_name("on-call", "routing_key"): KEY}
    assert route_env_name("on-call", "routing_key") == "AUMWATCH_ROUTE_ON_CALL_ROUTING_KEY"
    settings = load_settings(env=env, config_path=path)
    chat, pd = settings.alert_routes
    assert (chat.type, chat.url, chat.on) == ("slack", HOOK, ("run-failed", "missed-run"))
    assert (pd.routing_key, pd.target_url, pd.min_severity) == (
        KEY, "https://events.pagerduty.com/v2/enqueue", "error")
    assert settings.missed_after == timedelta(minutes=20)
    shown = json.dumps(settings.to_json()) + repr(settings) + repr(settings.display_items())
    for secret in (HOOK, KEY, "hb-secret-999999"):
        assert secret not in shown
    routes = next(x for x in settings.to_json() if x["name"] == "alert_routes")["value"]
    assert [r["name"] for r in routes] == ["chat", "on-call"]
    assert routes[1]["routing_key"] == "********"


def test_a_pagerduty_route_without_a_key_is_an_error_naming_where_to_put_it(
        tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="AUMWATCH_ROUTE_ON_CALL_ROUTING_KEY"):
        load_settings(env={}, config_path=write(tmp_path, ROUTES))


@pytest.mark.parametrize(("extra", "message"), [
    ('type = "email"', "type: expected one of"),
    ('type = "webhook"\nurl = "https://x.test/h"\non = ["run-fail"]', "unknown finding kind"),
    ('type = "webhook"\nurl = "https://x.test/h"\nmin_severity = "high"', "min_severity"),
    ('type = "command"\ncommand = "page --now"', "never runs a command through a shell"),
    ('type = "webhook"\nurl = "ftp://x.test/secret-value-1"', "value not shown"),
])
def test_a_bad_route_is_named(tmp_path: Path, extra: str, message: str) -> None:
    path = write(tmp_path, f'[[alerts.routes]]\nname = "r"\n{extra}\n')
    with pytest.raises(SettingsError, match=message) as caught:
        load_settings(env={}, config_path=path)
    assert "secret-value-1" not in str(caught.value)


def test_a_route_secret_in_a_readable_file_is_warned_of(tmp_path: Path) -> None:
    path = write(tmp_path, f'[[alerts.routes]]\nname = "h"\ntype = "webhook"\nurl = "{HOOK}"\n',
                 mode=0o644)
    settings = load_settings(env={}, config_path=path)
    assert any("chmod 600" in w for w in settings.warnings)
