"""The SQLite journal: events seen (deduplicated), undecodable messages, the cancel audit."""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.azure.journal import (
    SCHEMA_VERSION,
    AuditOutcome,
    Journal,
    JournalError,
    RecordStatus,
)
from services.domain.events import decode_message
from services.domain.runfacts import VerifiedCancel

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "events"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    with Journal(tmp_path / "j.sqlite3") as j:
        yield j


def _sample(name: str) -> tuple[str, object]:
    raw = (SAMPLES / name).read_text(encoding="utf-8")
    return raw, decode_message(raw)[0]


def test_new_event_is_journaled_with_raw_text_and_decoded_json(journal: Journal) -> None:
    raw, event = _sample("pre-eventgrid.queue-base64.txt")
    status = journal.record_event(event, raw, received_at=T0, message_id="m1", source_queue="q")
    assert status is RecordStatus.NEW
    [row] = journal.events()
    assert row.raw_text == raw
    assert row.decoded == event.to_json()
    assert row.received_at == T0
    assert (row.message_id, row.source_queue, row.kind) == ("m1", "q", "pre")
    assert journal.has_event(event.dedupe_key)


def test_same_message_seen_again_changes_nothing(journal: Journal) -> None:
    raw, event = _sample("pre-eventgrid.queue-base64.txt")
    journal.record_event(event, raw, received_at=T0, message_id="m1")
    again = journal.record_event(event, raw, received_at=T0 + timedelta(seconds=5), message_id="m1")
    assert again is RecordStatus.SEEN
    [row] = journal.events()
    assert row.duplicate_deliveries == 0
    assert row.received_at == T0


def test_same_event_from_another_message_is_a_duplicate_and_stored_once(journal: Journal) -> None:
    raw, event = _sample("pre-eventgrid.queue-base64.txt")
    camel_raw, camel = _sample("pre-eventgrid-camelcase.json")
    assert camel.dedupe_key == event.dedupe_key
    journal.record_event(event, raw, received_at=T0, message_id="m1")
    status = journal.record_event(camel, camel_raw, received_at=T0, message_id="m2")
    assert status is RecordStatus.DUPLICATE
    [row] = journal.events()
    assert row.duplicate_deliveries == 1
    assert row.message_id == "m1"


def test_pre_and_post_of_one_run_are_two_events(journal: Journal) -> None:
    pre_raw, pre = _sample("pre-eventgrid.json")
    post_raw, post = _sample("post-eventgrid.json")
    assert pre.id.lower() == post.id.lower()
    journal.record_event(pre, pre_raw, received_at=T0, message_id="m1")
    assert journal.record_event(post, post_raw, received_at=T0, message_id="m2") is RecordStatus.NEW
    assert [r.kind for r in journal.events()] == ["pre", "post"]


def test_undecodable_message_is_kept_once_per_message(journal: Journal) -> None:
    assert journal.record_undecodable("not json {", "not JSON", received_at=T0, message_id="x")
    assert not journal.record_undecodable("not json {", "not JSON", received_at=T0, message_id="x")
    assert journal.record_undecodable("other", "not JSON", received_at=T0)
    assert not journal.record_undecodable("other", "not JSON", received_at=T0)
    rows = journal.undecodable()
    assert [(r.raw_text, r.reason, r.message_id) for r in rows] == [
        ("not json {", "not JSON", "x"), ("other", "not JSON", None)]


def test_cancel_audit_row_is_written_before_and_finished_after(journal: Journal) -> None:
    run_id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Maintenance/" \
        "maintenanceConfigurations/mc/providers/microsoft.maintenance/applyupdates/20260301124000"
    seq = journal.begin_cancel(attempted_at=T0, run_id=run_id, configuration="mc",
                               computed_id=True, identity="ops@contoso.com",
                               api_version="2023-09-01-preview")
    [pending] = journal.cancel_audit()
    assert (pending.outcome, pending.finished_at) == ("sent", None)
    journal.finish_cancel(seq, finished_at=T0 + timedelta(seconds=3),
                          outcome=AuditOutcome.VERIFIED, http_status=200, run_status="Cancelled")
    [row] = journal.cancel_audit()
    assert row.outcome == "verified-cancelled"
    assert (row.http_status, row.run_status, row.computed_id) == (200, "Cancelled", True)
    assert (row.identity, row.run_id, row.configuration) == ("ops@contoso.com", run_id, "mc")
    assert row.api_version == "2023-09-01-preview"
    assert row.finished_at == T0 + timedelta(seconds=3)


def test_refusal_is_audited_with_its_reason(journal: Journal) -> None:
    journal.begin_cancel(attempted_at=T0, run_id="r", configuration=None, computed_id=False,
                         identity=None, api_version=None, outcome=AuditOutcome.REFUSED,
                         reason="read-only mode")
    [row] = journal.cancel_audit()
    assert (row.outcome, row.reason, row.finished_at) == ("refused", "read-only mode", T0)


def test_finishing_an_unknown_attempt_is_an_error(journal: Journal) -> None:
    with pytest.raises(JournalError, match="no cancel attempt #42"):
        journal.finish_cancel(42, finished_at=T0, outcome=AuditOutcome.FAILED)


def test_no_column_anywhere_holds_a_token(tmp_path: Path) -> None:
    # The audit API takes no token argument at all; check the file for good measure.
    secret = "eyJhbGciOiJub25lIn0.eyJ1cG4iOiJvcHNAY29udG9zby5jb20ifQ."
    path = tmp_path / "j.sqlite3"
    with Journal(path) as journal:
        journal.begin_cancel(attempted_at=T0, run_id="r", configuration="mc", computed_id=False,
                             identity="ops@contoso.com", api_version="v")
        columns = {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(cancel_audit)")}
    assert not any("token" in c or "secret" in c for c in columns)
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert secret.encode() not in data
    assert b"ops@contoso.com" in data


def test_file_is_in_wal_mode_with_the_current_schema_version(journal: Journal) -> None:
    assert journal.journal_mode == "wal"
    assert journal.schema_version == SCHEMA_VERSION


def test_reopening_keeps_rows_and_schema(tmp_path: Path) -> None:
    raw, event = _sample("pre-eventgrid.json")
    with Journal(tmp_path / "j.sqlite3") as first:
        first.record_event(event, raw, received_at=T0, message_id="m1")
    with Journal(tmp_path / "j.sqlite3") as second:
        assert second.record_event(event, raw, received_at=T0, message_id="m1") is RecordStatus.SEEN
        assert len(second.events()) == 1


def test_a_version_1_file_is_upgraded_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    from services.azure import journal as journal_module

    path = tmp_path / "j.sqlite3"
    conn = sqlite3.connect(path)
    for statement in journal_module._MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO cancel_audit (attempted_at, run_id, computed_id, outcome)"
        " VALUES ('2026-03-01T12:00:00+00:00', 'run-1', 0, 'verified')"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Journal(path) as upgraded:
        assert upgraded.schema_version == SCHEMA_VERSION == 5
        assert [r.run_id for r in upgraded.cancel_audit()] == ["run-1"]
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    columns = {r[1] for r in conn.execute("PRAGMA table_info(cancel_audit)")}
    conn.close()
    assert {"task_runs", "change_audit"} <= tables
    assert {"initiator", "world"} <= columns


def test_a_version_2_file_gains_queue_identities_and_its_old_rows_belong_to_no_queue(
        tmp_path: Path) -> None:
    """Issue 22: rows journaled before the identity was kept cannot be told apart by account
    or world, so no view reads them back (they stay in the file, for the report and dedupe)."""
    from services.azure import journal as journal_module

    raw, _ = _sample("pre-eventgrid.json")
    path = tmp_path / "j.sqlite3"
    conn = sqlite3.connect(path)
    for migration in journal_module._MIGRATIONS[:2]:
        for statement in migration:
            conn.execute(statement)
    conn.execute(
        "INSERT INTO events (dedupe_key, event_id, event_type, kind, correlation_id, raw_text,"
        " decoded_json, received_at, source_queue) VALUES ('k', 'e', 't', 'pre', 'r', ?, '{}',"
        " '2026-03-01T12:00:00+00:00', 'aum-events')", (raw,))
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with Journal(path) as upgraded:
        assert upgraded.schema_version == SCHEMA_VERSION
        assert [r.queue_identity for r in upgraded.events()] == [None]
        assert upgraded.queue_events("https://a.queue.core.windows.net/aum-events") == []
        assert upgraded.events_after(0, queue_identity="x") == []


def test_queue_events_are_those_of_one_queue_identity(tmp_path: Path) -> None:
    raw, event = _sample("pre-eventgrid.json")
    raw2, other = _sample("post-eventgrid.json")
    with Journal(tmp_path / "j.sqlite3") as journal:
        journal.record_event(event, raw, received_at=T0, message_id="m1",
                             source_queue="q", queue_identity="https://a.queue.x/q")
        journal.record_event(other, raw2, received_at=T0, message_id="m2",
                             source_queue="q", queue_identity="https://b.queue.x/q")
        assert [r.event_id for r in journal.queue_events("https://a.queue.x/q")] == [event.id]
        assert [r.event_id for r in journal.events_after(0, queue_identity="https://b.queue.x/q")
                ] == [other.id]
        assert len(journal.events_after(0)) == 2


def test_verified_cancels_are_those_of_one_world(journal: Journal) -> None:
    for world, run in ((None, "/run-azure"), ("sim-1", "/run-one"), ("sim-2", "/run-two")):
        seq = journal.begin_cancel(attempted_at=T0, run_id=run, configuration=None,
                                   computed_id=False, identity=None, api_version=None,
                                   world=world)
        journal.finish_cancel(seq, finished_at=T0, outcome=AuditOutcome.VERIFIED)
    assert set(journal.verified_cancels()) == {"/run-azure"}
    assert set(journal.verified_cancels("sim-1")) == {"/run-one"}
    assert set(journal.verified_cancels("sim-2")) == {"/run-two"}


def test_a_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(JournalError, match="newer than this aumwatch understands"):
        Journal(path)


def _schema_pages(tmp_path: Path) -> int:
    """How many SQLite pages an empty journal of the current schema takes."""
    with Journal(tmp_path / "empty.sqlite3") as empty:
        return int(empty._connection().execute("PRAGMA page_count").fetchone()[0])


def test_full_disk_is_reported_as_a_journal_error(tmp_path: Path) -> None:
    raw, event = _sample("pre-eventgrid.json")
    # One page beyond what the empty schema takes.
    with Journal(tmp_path / "j.sqlite3", max_pages=_schema_pages(tmp_path) + 1) as journal:
        big = raw + " " * 200_000  # far beyond 8 pages
        with pytest.raises(JournalError, match="disk is full"):
            journal.record_event(event, big, received_at=T0, message_id="m1")
        # Nothing half-written, and the journal still works for what fits.
        assert journal.events() == []
        assert journal.record_event(event, raw, received_at=T0, message_id="m1") is RecordStatus.NEW


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_file_is_reported_as_a_journal_error(tmp_path: Path) -> None:
    raw, event = _sample("pre-eventgrid.json")
    path = tmp_path / "j.sqlite3"
    Journal(path).close()
    for p in tmp_path.iterdir():
        p.chmod(0o444)
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(JournalError, match=r"read-only|cannot open"):
            journal = Journal(path)
            journal.record_event(event, raw, received_at=T0, message_id="m1")
    finally:
        tmp_path.chmod(0o755)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_unwritable_directory_is_reported_as_a_journal_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        with pytest.raises(JournalError, match=re.escape(str(locked))):
            Journal(locked / "sub" / "j.sqlite3")
    finally:
        locked.chmod(0o755)


def test_concurrent_writers_from_threads_record_each_event_once(journal: Journal) -> None:
    raw, event = _sample("pre-eventgrid.json")
    statuses: list[RecordStatus] = []
    barrier = threading.Barrier(8)

    def write(n: int) -> None:
        barrier.wait()
        statuses.append(journal.record_event(event, raw, received_at=T0, message_id=f"m{n}"))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == sorted([RecordStatus.NEW] + [RecordStatus.DUPLICATE] * 7)
    assert journal.events()[0].duplicate_deliveries == 7


def test_naive_received_at_is_refused(journal: Journal) -> None:
    raw, event = _sample("pre-eventgrid.json")
    with pytest.raises(ValueError, match="naive"):
        journal.record_event(event, raw, received_at=datetime(2026, 1, 1), message_id="m")


def test_parent_that_is_a_file_is_reported_as_a_journal_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(JournalError, match="cannot create its directory"):
        Journal(blocker / "j.sqlite3")


def test_events_of_one_run_are_found_ignoring_case(journal: Journal) -> None:
    pre_raw, pre = _sample("pre-eventgrid.json")
    journal.record_event(pre, pre_raw, received_at=T0, message_id="m1")
    [row] = journal.events_for_run(pre.correlation_id.upper())
    assert row.kind == "pre"
    assert journal.events_for_run(pre.correlation_id[:-1] + "9") == []


def test_events_limit_returns_the_latest_oldest_first(journal: Journal) -> None:
    pre_raw, pre = _sample("pre-eventgrid.json")
    post_raw, post = _sample("post-eventgrid.json")
    cf_raw, cf = _sample("pre-cloudevents.json")
    for n, (raw, ev) in enumerate([(pre_raw, pre), (post_raw, post), (cf_raw, cf)]):
        journal.record_event(ev, raw, received_at=T0, message_id=f"m{n}")
    kinds = [e.seq for e in journal.events(limit=2)]
    assert kinds == [r.seq for r in journal.events()][-2:]
    assert journal.events(limit=0) == []


def test_verified_cancels_are_read_back_by_run_key_with_when_they_were_verified(
        journal: Journal) -> None:
    run_id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Maintenance/" \
        "maintenanceConfigurations/mc/providers/microsoft.maintenance/applyupdates/20260301124000"
    other = run_id.replace("20260301124000", "20260302124000")
    outcomes = [(run_id, AuditOutcome.FAILED, 1), (run_id, AuditOutcome.VERIFIED, 2),
                (run_id, AuditOutcome.VERIFIED, 5), (other, AuditOutcome.UNKNOWN, 3),
                (other, AuditOutcome.ACCEPTED, 4)]
    for rid, outcome, minutes in outcomes:
        seq = journal.begin_cancel(attempted_at=T0, run_id=rid, configuration="mc",
                                   computed_id=False, identity=None, api_version=None)
        journal.finish_cancel(seq, finished_at=T0 + timedelta(minutes=minutes), outcome=outcome)
    journal.begin_cancel(attempted_at=T0, run_id=other, configuration=None, computed_id=True,
                         identity=None, api_version=None, outcome=AuditOutcome.REFUSED)
    # Only a cancel read back as Cancelled counts; the latest verification wins.
    assert journal.verified_cancels() == {
        run_id.lower(): VerifiedCancel(T0 + timedelta(minutes=5))}


def test_no_verified_cancels_in_a_new_journal(journal: Journal) -> None:
    assert journal.verified_cancels() == {}
