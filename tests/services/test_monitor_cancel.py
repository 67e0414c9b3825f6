"""The dashboard's cancel path refuses when it cannot audit (nothing is sent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.azure.cancel import CancelTarget, Outcome
from services.azure.monitor import Monitor
from services.domain.clock import ManualClock
from services.settings import load_settings

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RUN_ID = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
          "Microsoft.Maintenance/maintenanceConfigurations/nightly/providers/"
          "microsoft.maintenance/applyupdates/20260301120000")


async def test_cancel_is_refused_when_the_journal_cannot_be_opened(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should be")
    settings = load_settings({"data_dir": str(blocker / "aumwatch"), "cloud": "standin",
                              "arm_endpoint": "https://127.0.0.1:9"},
                             env={"AUMWATCH_TOKEN": "not-a-real-token"}, config_path=None)
    monitor = Monitor(settings, ManualClock(T - timedelta(minutes=30)))
    try:
        result = await monitor.cancel(CancelTarget(RUN_ID, "nightly", T))
    finally:
        await monitor.close()
    assert result.outcome is Outcome.REFUSED
    assert str(blocker) in result.message
