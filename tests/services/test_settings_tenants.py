"""The config file's [[tenants]] profiles (issue 19): parsed, masked, chosen by --tenant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.settings import MASK, SettingsError, load_settings
from tui.cli import main

TWO = """
[azure]
cloud = "standin"
arm_endpoint = "https://127.0.0.1:4443"
token = "base-token"

[queue]
connection_string = "BASE-SECRET"
name = "base-queue"

[[tenants]]
name = "contoso"
tenant = "11111111-1111-1111-1111-111111111111"
token = "contoso-secret-token"
subscriptions = ["sub-a"]
[tenants.queue]
connection_string = "CONTOSO-QUEUE-SECRET"
name = "contoso-events"

[[tenants]]
name = "fabrikam"
tenant = "22222222-2222-2222-2222-222222222222"
credential = "env:FABRIKAM_"
management_groups = ["mg-f"]
[tenants.queue]
account_url = "https://fab.queue.core.windows.net"
name = "fab-events"
mode = "consume"
"""


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.settings._default_config_path",
                        lambda: tmp_path / "absent" / "config.toml")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def test_profiles_each_bring_their_tenant_credential_scope_and_queue(tmp_path: Path) -> None:
    s = load_settings(env={}, config_path=write(tmp_path / "c.toml", TWO))
    contoso, fabrikam = s.tenant_profiles()
    assert (contoso.name, contoso.tenant) == ("contoso", "11111111-1111-1111-1111-111111111111")
    assert contoso.settings.token == "contoso-secret-token"
    assert contoso.settings.subscriptions == ("sub-a",)
    assert contoso.settings.queue_name == "contoso-events"
    assert contoso.settings.queue_connection_string == "CONTOSO-QUEUE-SECRET"
    assert contoso.settings.profile == "contoso"
    # Nothing secret is inherited from [azure] / [queue]; the cloud settings are.
    assert fabrikam.settings.token is None and fabrikam.settings.credential == "env:FABRIKAM_"
    assert fabrikam.settings.queue_connection_string is None
    assert fabrikam.settings.queue_mode == "consume"
    assert fabrikam.settings.management_groups == ("mg-f",)
    assert fabrikam.settings.arm_endpoint == "https://127.0.0.1:4443"
    assert s.several_tenants


def test_without_tenants_one_implicit_profile_is_the_settings_themselves(
        tmp_path: Path) -> None:
    s = load_settings({"tenant": "t-flag"}, env={},
                      config_path=write(tmp_path / "c.toml", '[azure]\ntenant = "t-file"\n'))
    (only,) = s.tenant_profiles()
    assert only.implicit and only.settings is s and only.tenant == "t-flag"
    assert not s.several_tenants and s.tenant == "t-flag"  # today's --tenant still signs in


@pytest.mark.parametrize("wanted", ["fabrikam", "FABRIKAM", "22222222-2222-2222-2222-222222222222"])
def test_tenant_flag_chooses_a_profile_by_name_or_tenant_id(tmp_path: Path, wanted: str) -> None:
    s = load_settings({"tenant": wanted}, env={}, config_path=write(tmp_path / "c.toml", TWO))
    assert [p.name for p in s.tenant_profiles()] == ["fabrikam"]
    assert s.profile_names == ("contoso", "fabrikam")


def test_an_unknown_tenant_flag_names_the_profiles(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="profiles: contoso, fabrikam"):
        load_settings({"tenant": "nope"}, env={}, config_path=write(tmp_path / "c.toml", TWO))


@pytest.mark.parametrize("body, message", [
    ('[[tenants]]\nname = "a"\ncredential = "password"\n', "credential: expected one of"),
    ('[[tenants]]\nname = "a"\ncredential = "env:"\n', "env needs a prefix"),
    ('[[tenants]]\nname = "a"\n[[tenants]]\nname = "A"\n', "declared twice"),
    ('[[tenants]]\nname = "a"\ncolour = "red"\n', "unknown key"),
    ('[[tenants]]\nname = "a"\ntoken = "x"\ncredential = "cli"\n', "not both"),
    ('[[tenants]]\nname = "a"\n[tenants.queue]\nmode = "eat"\n', "queue.mode"),
])
def test_a_bad_profile_is_refused_naming_it(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env={}, config_path=write(tmp_path / "c.toml", body))


def test_config_show_lists_profiles_with_secrets_masked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "c.toml", TWO)
    assert main(["config", "show", "--config", str(path), "--json"]) == 0
    out = capsys.readouterr().out
    assert "contoso-secret-token" not in out and "CONTOSO-QUEUE-SECRET" not in out
    tenants = next(i for i in json.loads(out) if i["name"] == "tenants")["value"]
    assert [t["name"] for t in tenants] == ["contoso", "fabrikam"]
    assert tenants[0]["token"] == MASK and tenants[0]["queue"]["connection_string"] == MASK
    assert tenants[1]["credential"] == "env:FABRIKAM_"
    assert main(["config", "show", "--config", str(path)]) == 0
    text = capsys.readouterr().out
    assert "contoso (tenant 11111111" in text and "contoso-secret-token" not in text


def test_each_profile_signs_in_its_own_way(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import azure.identity

    from services.azure.clients import StaticTokenCredential, make_credential
    from services.domain.errors import ServiceError

    text = TWO.replace('credential = "env:FABRIKAM_"', 'credential = "cli"').replace(
        'name = "fabrikam"', 'name = "fabrikam"').replace("cloud = \"standin\"", "")
    text = text.replace('arm_endpoint = "https://127.0.0.1:4443"\ntoken = "base-token"', "")
    s = load_settings(env={}, config_path=write(tmp_path / "c.toml", text))
    contoso, fabrikam = s.tenant_profiles()
    assert isinstance(make_credential(contoso.settings), StaticTokenCredential)
    assert isinstance(make_credential(fabrikam.settings), azure.identity.AzureCliCredential)
    env = text.replace('credential = "cli"', 'credential = "env:FAB_"')
    s = load_settings(env={}, config_path=write(tmp_path / "c.toml", env))
    with pytest.raises(ServiceError, match="FAB_CLIENT_ID"):
        make_credential(s.tenant_profiles()[1].settings)
    monkeypatch.setenv("FAB_CLIENT_ID", "app")
    monkeypatch.setenv("FAB_CLIENT_SECRET", "shh")
    assert isinstance(make_credential(s.tenant_profiles()[1].settings),
                      azure.identity.ClientSecretCredential)
    mi = text.replace('credential = "cli"', 'credential = "managed_identity:abc"')
    s = load_settings(env={}, config_path=write(tmp_path / "c.toml", mi))
    assert isinstance(make_credential(s.tenant_profiles()[1].settings),
                      azure.identity.ManagedIdentityCredential)


def test_a_profile_secret_in_a_readable_file_is_warned_about(tmp_path: Path) -> None:
    import os

    if os.name != "posix":
        pytest.skip("file modes are POSIX")
    body = '[[tenants]]\nname = "a"\ntoken = "secret"\n'
    path = tmp_path / "c.toml"
    path.write_text(body, encoding="utf-8")
    path.chmod(0o644)
    s = load_settings(env={}, config_path=path)
    assert any("chmod 600" in w for w in s.warnings)
    path.chmod(0o600)
    assert not load_settings(env={}, config_path=path).warnings


@pytest.mark.parametrize("command", [
    ["configs"], ["runs"], ["machines", "RUN"], ["config", "show"], ["doctor"],
    ["cancel", "RUN"], ["capture", "--out", "d"], ["events", "tail"], ["preflight"],
    ["report", "RUN"], ["setup", "events", "--configuration", "c"], ["subscriptions"],
    ["tasks"], ["dashboard"], ["serve"],
])
def test_every_command_that_reads_azure_takes_tenant(command: list[str]) -> None:
    from tui.cli import build_parser

    args = build_parser().parse_args([*command, "--tenant", "contoso"])
    assert args.tenant == "contoso"


def test_serve_passes_the_tenant_to_each_viewers_dashboard() -> None:
    from tui.serve import dashboard_argv

    argv = dashboard_argv(None, allow_cancel=False, tenant="contoso")
    assert argv[argv.index("--tenant") + 1] == "contoso"
    assert "--tenant" not in dashboard_argv(None, allow_cancel=False)
