"""The alert journal (issue 21): a (finding, route, state) is claimed once across
processes, a restart reads back each finding's last state, and a version 2 file upgrades."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.azure import journal as journal_module
from services.azure.journal import SCHEMA_VERSION, Journal

T = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
FINDING = {"kind": "missed-run", "key": "missed-run:x", "severity": "critical",
           "summary": "web: did not happen", "configuration_name": "web", "run_id": "x",
           "state": "open", "at": "2026-03-10T12:15:00Z"}


def test_a_send_is_claimed_once_even_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal(path) as first:
        seq = first.claim_alert(finding_key="missed-run:x", route="pd", state="open",
                                kind="missed-run", finding=FINDING, at=T)
        assert seq is not None
        first.finish_alert(seq, outcome="delivered", at=T, detail="HTTP 202")
    with Journal(path) as second:  # a restarted watcher
        assert second.claim_alert(finding_key="missed-run:x", route="pd", state="open",
                                  kind="missed-run", finding=FINDING, at=T) is None
        assert second.alert_claimed("missed-run:x", "pd", "open")
        assert second.claim_alert(finding_key="missed-run:x", route="pd", state="resolved",
                                  kind="missed-run", finding=FINDING, at=T) is not None
        [open_row, resolved_row] = second.alert_deliveries()
    assert (open_row["outcome"], open_row["detail"]) == ("delivered", "HTTP 202")
    assert resolved_row["outcome"] == "sending"


def test_each_findings_last_state_is_read_back(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite3") as journal:
        journal.claim_alert(finding_key="missed-run:x", route="", state="open",
                            kind="missed-run", finding=FINDING, at=T)
        other = {**FINDING, "key": "run-failed:y", "kind": "run-failed"}
        journal.claim_alert(finding_key="run-failed:y", route="", state="open",
                            kind="run-failed", finding=other, at=T)
        journal.claim_alert(finding_key="missed-run:x", route="", state="resolved",
                            kind="missed-run", finding={**FINDING, "state": "resolved"},
                            at=T + timedelta(minutes=3))
        states = {f["key"]: f["state"] for f in journal.alert_findings()}
    assert states == {"missed-run:x": "resolved", "run-failed:y": "open"}


def test_a_version_2_file_gains_the_alert_table(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    conn = sqlite3.connect(path)
    for migration in journal_module._MIGRATIONS[:2]:
        for statement in migration:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with Journal(path) as upgraded:
        assert upgraded.schema_version == SCHEMA_VERSION == 5
        assert upgraded.alert_deliveries() == []
