"""`aumwatch cancel` sends nothing it cannot audit."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.cli import main

RUN_ID = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
          "Microsoft.Maintenance/maintenanceConfigurations/nightly/providers/"
          "microsoft.maintenance/applyupdates/20260301120000")


def test_cancel_without_a_writable_journal_is_refused_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should be")
    monkeypatch.setenv("AUMWATCH_DATA_DIR", str(blocker / "aumwatch"))
    monkeypatch.setenv("AUMWATCH_CLOUD", "standin")
    # Nothing listens on port 9: a request would fail with a network error, not a refusal.
    monkeypatch.setenv("AUMWATCH_ARM_ENDPOINT", "https://127.0.0.1:9")
    monkeypatch.setenv("AUMWATCH_TOKEN", "not-a-real-token")
    monkeypatch.delenv("AUMWATCH_CONFIG", raising=False)
    assert main(["cancel", RUN_ID, "--yes"]) == 1
    err = capsys.readouterr().err
    assert "refused" in err and "audited" in err and str(blocker) in err
