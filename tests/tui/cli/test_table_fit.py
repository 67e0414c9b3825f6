"""Tables fit the terminal: long ids shortened in the middle, keeping their end; ``--wide``
prints them whole; JSON is untouched (issue 20: ``config show`` was about 330 columns)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tui.cli import main
from tui.cli.data import fit_widths, shorten_middle

QUEUE_ID = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-aumwatch/"
            "providers/Microsoft.Storage/storageAccounts/aumwatchevents")


def test_shorten_middle_keeps_more_of_the_end() -> None:
    short = shorten_middle(QUEUE_ID, 40)
    assert len(short) == 40 and short.count("…") == 1
    assert short.endswith("Accounts/aumwatchevents") and len(short.split("…")[1]) == 26
    assert short.startswith("/subscri")
    assert shorten_middle("short", 40) == "short"


def test_fit_widths_takes_from_the_widest_shrinkable_column_only() -> None:
    headers = ("SETTING", "VALUE", "SOURCE")
    assert fit_widths(headers, [20, 200, 7], 80, shrink=(1,)) == [20, 49, 7]
    # Never below the floor: the table may then stay wider than asked.
    assert fit_widths(headers, [20, 200, 7], 20, shrink=(1,)) == [20, 10, 7]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    subs = ", ".join(f'"{i:08d}-0000-0000-0000-000000000000"' for i in range(8))
    path = tmp_path / "config.toml"
    path.write_text(f'[azure]\nsubscriptions = [{subs}]\n[paths]\ndata_dir = "{tmp_path}"\n',
                    encoding="utf-8")
    return path


def test_config_show_fits_the_terminal_and_wide_prints_it_whole(
        config: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["config", "show", "--config", str(config)]) == 0
    whole = capsys.readouterr().out
    assert max(len(line) for line in whole.splitlines()) > 300
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["config", "show", "--config", str(config)]) == 0
    fitted = capsys.readouterr().out
    assert all(len(line) <= 80 for line in fitted.splitlines()), fitted
    subscriptions = next(line for line in fitted.splitlines() if line.startswith("subscr"))
    assert "…" in subscriptions and subscriptions.rstrip().endswith("file")
    assert main(["config", "show", "--config", str(config), "--wide"]) == 0
    assert capsys.readouterr().out == whole
    assert main(["config", "show", "--config", str(config), "--json"]) == 0
    fitted_json = capsys.readouterr().out
    monkeypatch.delenv("COLUMNS")
    assert main(["config", "show", "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(fitted_json)
