"""The dashboard's cancel path refuses when it cannot audit (nothing is sent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.azure.monitor import Monitor
from services.domain.boundary import CancelTarget, Outcome
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


async def test_verified_cancels_are_read_back_from_the_journal(tmp_path: Path) -> None:
    from services.azure.journal import AuditOutcome, Journal

    settings = load_settings({"data_dir": str(tmp_path), "cloud": "standin",
                              "arm_endpoint": "https://127.0.0.1:9"},
                             env={"AUMWATCH_TOKEN": "not-a-real-token"}, config_path=None)
    monitor = Monitor(settings, ManualClock(T))
    assert monitor.verified_cancels() == {}  # no journal yet: none, and none created
    assert not settings.journal_path.exists()
    other = RUN_ID.replace("20260301120000", "20260302120000")
    with Journal(settings.journal_path) as journal:
        for run_id, outcome in ((RUN_ID, AuditOutcome.VERIFIED), (other, AuditOutcome.FAILED)):
            seq = journal.begin_cancel(attempted_at=T - timedelta(minutes=20), run_id=run_id,
                                       configuration="nightly", computed_id=False,
                                       identity=None, api_version=None)
            journal.finish_cancel(seq, finished_at=T - timedelta(minutes=19), outcome=outcome)
    try:
        assert {k: v.at for k, v in monitor.verified_cancels().items()} == {
            RUN_ID.lower(): T - timedelta(minutes=19)}
    finally:
        await monitor.close()
