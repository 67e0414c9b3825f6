"""Settings: precedence flags > env > file > defaults, sources, secrets, validation."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from services.settings import (
    DEFAULT_CANCEL_API_VERSION,
    MASK,
    SettingsError,
    load_settings,
    parse_duration,
)

SECRET_CS = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0LWtleQ=="


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The operator's own ~/.config/aumwatch/config.toml must not leak into these tests.
    monkeypatch.setattr("services.settings._default_config_path",
                        lambda: tmp_path / "absent" / "config.toml")


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return write(tmp_path / "config.toml", """
[azure]
cloud = "standin"
arm_endpoint = "https://127.0.0.1:4443"
ca_file = "/tmp/ca.pem"
token = "file-token"
subscriptions = ["sub-file"]
tenant = "tenant-file"

[queue]
connection_string = "SECRET"
name = "aum-events"
mode = "peek"

[dashboard]
poll_interval = "45s"
""".replace("SECRET", SECRET_CS))


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    s = load_settings(env={}, config_path=write(tmp_path / "empty.toml", ""))
    assert s.cloud == "public" and s.subscriptions == () and s.queue_mode == "peek"
    assert s.poll_interval == timedelta(seconds=30)
    assert s.opens_before == timedelta(minutes=40) and s.closes_before == timedelta(minutes=10)
    assert s.cancel_api_version == DEFAULT_CANCEL_API_VERSION == "2023-09-01-preview"
    assert s.read_only is False
    assert all(s.sources[n] == "default" for n in ("cloud", "poll_interval", "queue_mode"))
    assert s.sources["config_path"] == "flag"


def test_file_values_are_read_and_marked_as_from_the_file(config_file: Path) -> None:
    s = load_settings(env={}, config_path=config_file)
    assert s.cloud == "standin" and s.arm_endpoint == "https://127.0.0.1:4443"
    assert s.token == "file-token" and s.queue_connection_string == SECRET_CS
    assert s.subscriptions == ("sub-file",) and s.poll_interval == timedelta(seconds=45)
    assert s.ca_file == Path("/tmp/ca.pem")
    assert s.sources["token"] == "file" and s.sources["queue_name"] == "file"


def test_environment_beats_the_file_and_flags_beat_both(config_file: Path) -> None:
    env = {"AUMWATCH_TENANT": "tenant-env", "AUMWATCH_SUBSCRIPTIONS": "a, b",
           "AUMWATCH_POLL_INTERVAL": "1m", "AUMWATCH_READ_ONLY": "yes"}
    s = load_settings({"tenant": "tenant-flag"}, env=env, config_path=config_file)
    assert s.tenant == "tenant-flag" and s.sources["tenant"] == "flag"
    assert s.subscriptions == ("a", "b") and s.sources["subscriptions"] == "env"
    assert s.poll_interval == timedelta(minutes=1) and s.sources["poll_interval"] == "env"
    assert s.read_only is True and s.sources["read_only"] == "env"
    assert s.cloud == "standin" and s.sources["cloud"] == "file"


def test_config_path_from_the_environment(config_file: Path) -> None:
    s = load_settings(env={"AUMWATCH_CONFIG": str(config_file)})
    assert s.config_path == config_file and s.sources["config_path"] == "env"
    assert s.queue_name == "aum-events"


def test_default_config_path_may_be_absent() -> None:
    s = load_settings(env={})
    assert s.config_path is None and s.cloud == "public"


def test_an_explicit_config_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(env={}, config_path=tmp_path / "missing.toml")


def test_secrets_are_refused_as_flags() -> None:
    with pytest.raises(SettingsError, match="never as a flag"):
        load_settings({"queue_connection_string": SECRET_CS}, env={})
    with pytest.raises(SettingsError, match="AUMWATCH_TOKEN"):
        load_settings({"token": "t"}, env={})


def test_secrets_from_the_environment_are_accepted() -> None:
    s = load_settings(env={"AUMWATCH_QUEUE_CONNECTION_STRING": SECRET_CS,
                           "AUMWATCH_QUEUE_NAME": "q"})
    assert s.queue_connection_string == SECRET_CS and s.queue_configured


def test_secrets_are_masked_in_config_show(config_file: Path) -> None:
    s = load_settings(env={}, config_path=config_file)
    shown = {name: value for name, value, _ in s.display_items()}
    assert shown["token"] == MASK and shown["queue_connection_string"] == MASK
    as_json = {item["name"]: item for item in s.to_json()}
    assert as_json["token"]["value"] == MASK and as_json["token"]["source"] == "file"
    dumped = repr(s) + str(s.to_json()) + str(s.display_items())
    assert "file-token" not in dumped and "c2VjcmV0LWtleQ" not in dumped


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_group_readable_file_with_secrets_is_warned_about(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[azure]\ntoken = "t"\ncloud = "standin"\n'
                 'arm_endpoint = "https://127.0.0.1:1"\n', mode=0o644)
    s = load_settings(env={}, config_path=path)
    assert any("chmod 600" in w for w in s.warnings)
    path.chmod(0o600)
    assert not load_settings(env={}, config_path=path).warnings


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_readable_file_without_secrets_is_not_warned_about(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[queue]\nname = "q"\n', mode=0o644)
    assert load_settings(env={}, config_path=path).warnings == ()


def test_unknown_keys_are_warned_about(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[azure]\nsubscription = ["typo"]\n')
    s = load_settings(env={}, config_path=path)
    assert any("[azure] subscription" in w for w in s.warnings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AUMWATCH_POLL_INTERVAL": "2s"}, "at least 10s"),
        ({"AUMWATCH_QUEUE_MODE": "drain"}, "peek, consume"),
        ({"AUMWATCH_CLOUD": "mars"}, "public, china, usgov"),
        ({"AUMWATCH_READ_ONLY": "maybe"}, "true or false"),
        ({"AUMWATCH_OPENS_BEFORE": "5m"}, "opens_before"),
        ({"AUMWATCH_CLOUD": "standin"}, "arm_endpoint"),
        ({"AUMWATCH_SUBSCRIPTIONS": "a", "AUMWATCH_MANAGEMENT_GROUPS": "m"}, "not both"),
    ],
)
def test_bad_values_name_what_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env=env)


def test_bad_toml_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "[azure\ncloud = 1")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(env={}, config_path=path)


def test_a_bad_value_in_the_file_names_the_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[dashboard]\npoll_interval = "soon"\n')
    with pytest.raises(SettingsError, match=r"\[dashboard\] poll_interval in .*c.toml"):
        load_settings(env={}, config_path=path)


def test_the_sim_runner_config_shape_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "sim.toml", """
[azure]
cloud = "standin"
arm_endpoint = "https://127.0.0.1:50123"
ca_file = "/tmp/x/ca.pem"
token = "tok"
subscriptions = ["s1", "s2"]
[queue]
connection_string = "UseDevelopmentStorage=true"
name = "aum-events"
mode = "peek"
""")
    s = load_settings(env={}, config_path=path)
    assert s.cloud == "standin" and s.subscriptions == ("s1", "s2") and s.token == "tok"
    assert s.queue_configured and s.warnings == ()


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [("30", "s", timedelta(seconds=30)), ("40m", "s", timedelta(minutes=40)),
     ("7", "d", timedelta(days=7)), ("12h", "d", timedelta(hours=12)),
     (45, "m", timedelta(minutes=45)), ("1w", "s", timedelta(weeks=1))],
)
def test_durations(text: str | int, unit: str, expected: timedelta) -> None:
    assert parse_duration(text, default_unit=unit) == expected


@pytest.mark.parametrize("text", ["", "soon", "-5m", "5 minutes", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(SettingsError):
        parse_duration(text, what="--since")


# -- issue 14 (arrival range, scopes) and issue 10 (the keymap) --------------------------------


def test_the_pre_event_arrival_range_is_a_setting(tmp_path: Path) -> None:
    from services.domain.arrivals import ArrivalRules

    defaults = load_settings(env={})
    assert defaults.arrival_rules == ArrivalRules(timedelta(minutes=40), timedelta(minutes=30))
    path = write(tmp_path / "c.toml", "[events]\npre_event_earliest = 43\n"
                 "pre_event_latest = \"38m\"\n")
    settings = load_settings(config_path=path, env={"AUMWATCH_PRE_EVENT_LATEST": "35"})
    assert settings.arrival_rules == ArrivalRules(timedelta(minutes=43), timedelta(minutes=35))
    assert (settings.sources["pre_event_earliest"], settings.sources["pre_event_latest"]) == (
        "file", "env")
    shown = {name: (value, source) for name, value, source in settings.display_items()}
    assert shown["pre_event_earliest"] == ("43m", "file")


def test_an_arrival_range_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(SettingsError, match="events: pre_event_earliest"):
        load_settings(env={"AUMWATCH_PRE_EVENT_EARLIEST": "20",
                           "AUMWATCH_PRE_EVENT_LATEST": "30"})


def test_other_maintenance_scopes_are_off_by_default() -> None:
    assert load_settings(env={}).include_other_scopes is False
    on = load_settings({"include_other_scopes": True}, env={})
    assert on.include_other_scopes is True and on.sources["include_other_scopes"] == "flag"


def test_the_keys_table_becomes_the_keymap_with_its_source(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[keys]\ncancel = "ctrl+k"\n"panel.events" = "5"\n')
    settings = load_settings(config_path=path, env={})
    assert dict(settings.keymap) == {"cancel": "ctrl+k", "panel.events": "5"}
    assert settings.sources["keymap"] == "file" and settings.warnings == ()
    shown = {name: (value, source) for name, value, source in settings.display_items()}
    assert shown["keymap"] == ("cancel=ctrl+k, panel.events=5", "file")
    as_json = {item["name"]: item for item in settings.to_json()}
    assert as_json["keymap"]["value"] == {"cancel": "ctrl+k", "panel.events": "5"}


def test_no_keys_table_means_the_default_keymap() -> None:
    settings = load_settings(env={})
    assert dict(settings.keymap) == {} and settings.sources["keymap"] == "default"


def test_an_unknown_binding_id_is_a_warning_naming_the_valid_ids(tmp_path: Path) -> None:
    from services.settings import KEY_BINDING_IDS

    path = write(tmp_path / "c.toml", '[keys]\ncancle = "ctrl+k"\nquit = ""\nhelp = "f1"\n')
    settings = load_settings(config_path=path, env={})
    assert dict(settings.keymap) == {"help": "f1"}
    unknown = next(w for w in settings.warnings if "cancle" in w)
    assert "unknown key binding id" in unknown
    assert all(binding_id in unknown for binding_id in KEY_BINDING_IDS)
    assert any("[keys] quit" in w for w in settings.warnings)
