"""The local journal: every maintenance event seen, every undecodable message, every cancel.

One SQLite file in the user data directory (``platformdirs``), in WAL mode so a dashboard
and a second ``aumwatch`` process can read and write it at the same time. It is the record
that lets consume mode delete a queue message safely (the message's events are committed here
first) and the audit trail of cancel attempts.

What it never holds: tokens, connection strings or any other secret. A cancel row names the
caller only as far as the token's claims say (user principal name, object id, app id); the
token itself is never passed in.

Every SQLite failure (disk full, read-only file or directory, a corrupt or newer file) is
raised as :class:`JournalError` with a one-line message the caller can show; the journal is
safe to use from several threads (one connection behind a lock).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from services.domain.events import MaintenanceEvent
from services.domain.runfacts import VerifiedCancel, initiator_of

SCHEMA_VERSION = 5
#: The ``alert_deliveries`` route of an acknowledgement (who: its ``detail``).
ACK_ROUTE = "@ack"
JOURNAL_FILE_NAME = "journal.sqlite3"

# One entry per schema version: the statements that take a file from version N-1 to N.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            dedupe_key TEXT NOT NULL UNIQUE,
            event_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            kind TEXT NOT NULL,
            correlation_id TEXT,
            raw_text TEXT NOT NULL,
            decoded_json TEXT NOT NULL,
            received_at TEXT NOT NULL,
            message_id TEXT,
            source_queue TEXT,
            duplicate_deliveries INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX events_correlation ON events (correlation_id)",
        """CREATE TABLE undecodable (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            message_key TEXT NOT NULL UNIQUE,
            message_id TEXT,
            source_queue TEXT,
            raw_text TEXT NOT NULL,
            reason TEXT NOT NULL,
            received_at TEXT NOT NULL
        )""",
        """CREATE TABLE cancel_audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            attempted_at TEXT NOT NULL,
            finished_at TEXT,
            identity TEXT,
            run_id TEXT NOT NULL,
            configuration TEXT,
            computed_id INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            reason TEXT,
            api_version TEXT,
            http_status INTEGER,
            run_status TEXT
        )""",
    ),
    (
        # Issue 12: who started a cancel when it was not a person at the keyboard
        # ("task precheck (exit 3)"); NULL for a manual cancel.
        "ALTER TABLE cancel_audit ADD COLUMN initiator TEXT",
        # Issue 12: one row per (run, event kind, task), written before the task starts so a
        # crash leaves "running" behind, which a restart turns into "interrupted" and never
        # re-runs. The UNIQUE key is what makes a task run exactly once per event.
        """CREATE TABLE task_runs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL,
            event_kind TEXT NOT NULL,
            task TEXT NOT NULL,
            configuration TEXT,
            state TEXT NOT NULL,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            exit_code INTEGER,
            output TEXT,
            cancelled_run INTEGER NOT NULL DEFAULT 0,
            detail TEXT,
            pid INTEGER,
            UNIQUE (run_id, event_kind, task)
        )""",
        "CREATE INDEX task_runs_run ON task_runs (run_id)",
        # Issue 11: changes aumwatch makes to Azure other than a cancel (the Event Grid set-up),
        # written before the change is sent and finished with its outcome, like cancel_audit.
        """CREATE TABLE change_audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            attempted_at TEXT NOT NULL,
            finished_at TEXT,
            identity TEXT,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            detail TEXT,
            outcome TEXT NOT NULL,
            reason TEXT
        )""",
    ),
    (
        # Issue 22: rows are keyed by the queue's full identity (services/domain/queueid.py:
        # account URL + queue name, normalised, and the stand-in world), not its name alone.
        # Rows written before have none (NULL) and are never read back into a view: which
        # account or world they came from is not known.
        "ALTER TABLE events ADD COLUMN queue_identity TEXT",
        "CREATE INDEX events_queue_identity ON events (queue_identity, seq)",
        "ALTER TABLE undecodable ADD COLUMN queue_identity TEXT",
        # The stand-in world a cancel was sent in (NULL: real Azure, or written before).
        "ALTER TABLE cancel_audit ADD COLUMN world TEXT",
    ),
    (
        # Issue 21: each finding's state (route '') and each send of it to a route, claimed
        # before it is sent: the UNIQUE key makes a send happen once per (finding, route,
        # state) across restarts. ``finding`` is the finding's JSON line; ``detail`` what the
        # receiver answered, scrubbed. Never a URL or a key.
        """CREATE TABLE alert_deliveries (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            finding_key TEXT NOT NULL,
            route TEXT NOT NULL,
            state TEXT NOT NULL,
            kind TEXT NOT NULL,
            claimed_at TEXT NOT NULL,
            outcome TEXT NOT NULL,
            finished_at TEXT,
            detail TEXT,
            finding TEXT NOT NULL,
            UNIQUE (finding_key, route, state)
        )""",
    ),
    (
        # Issue 19: the tenant a cancel was sent for (the [[tenants]] profile's name, the
        # tenant owning the run's subscription) and whether it went through a delegation
        # (the profile's tenant is not the owner: not confirmed by Microsoft).
        "ALTER TABLE cancel_audit ADD COLUMN tenant TEXT",
        "ALTER TABLE cancel_audit ADD COLUMN tenant_id TEXT",
        "ALTER TABLE cancel_audit ADD COLUMN delegated INTEGER NOT NULL DEFAULT 0",
    ),
)


class JournalError(Exception):
    """The journal could not be opened, read or written; the message says why and where."""


class RecordStatus(StrEnum):
    """What :meth:`Journal.record_event` found."""

    NEW = "new"  # first time this event (id, type) is journaled
    SEEN = "seen"  # already journaled from this very message (a re-peek or a re-delivery)
    DUPLICATE = "duplicate"  # already journaled from another message (at-least-once delivery)


class AuditOutcome(StrEnum):
    """Outcome column of the cancel audit."""

    REFUSED = "refused"
    SENT = "sent"  # written before the PUT; stays so only if the process died meanwhile
    VERIFIED = "verified-cancelled"
    ACCEPTED = "accepted-unconfirmed"  # Azure answered Cancelled; not read back yet
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class JournaledEvent:
    """One row of the events table."""

    seq: int
    dedupe_key: str
    event_id: str
    event_type: str
    kind: str
    correlation_id: str | None
    raw_text: str
    decoded: dict[str, Any]
    received_at: datetime
    message_id: str | None
    source_queue: str | None
    duplicate_deliveries: int
    #: The queue's full identity (services/domain/queueid.py); None for a row written before
    #: journals kept it.
    queue_identity: str | None = None


@dataclass(frozen=True)
class UndecodableRow:
    """One row of the undecodable-messages table."""

    seq: int
    message_id: str | None
    source_queue: str | None
    raw_text: str
    reason: str
    received_at: datetime


@dataclass(frozen=True)
class CancelAuditRow:
    """One row of the cancel audit."""

    seq: int
    attempted_at: datetime
    finished_at: datetime | None
    identity: str | None
    run_id: str
    configuration: str | None
    computed_id: bool
    outcome: str
    reason: str | None
    api_version: str | None
    http_status: int | None
    run_status: str | None
    #: Who started the cancel when it was not a person: "task precheck (exit 3)".
    initiator: str | None = None
    #: Issue 19: the profile it was sent with, the tenant owning the run's subscription,
    #: and whether it went through a delegation (unconfirmed by Microsoft).
    tenant: str | None = None
    tenant_id: str | None = None
    delegated: bool = False


@dataclass(frozen=True)
class TaskRunRow:
    """One row of the task_runs table: one task for one (run, event kind)."""

    seq: int
    run_id: str
    event_kind: str
    task: str
    configuration: str | None
    state: str  # running | ok | failed | timeout | interrupted (services.domain.tasks)
    started_at: datetime
    ended_at: datetime | None
    exit_code: int | None
    output: str | None
    cancelled_run: bool
    detail: str | None
    pid: int | None


def default_journal_path() -> Path:
    """``journal.sqlite3`` in the user data directory (created on first use)."""
    import platformdirs  # only here: the path is computed once, when a journal is opened

    return platformdirs.user_data_path("aumwatch", appauthor=False) / JOURNAL_FILE_NAME


def dedupe_key_text(key: object) -> str:
    """The events table's unique key for an event's dedupe key.

    Ids compare case-insensitively (docs/architecture.md "Run identity"); event types are matched
    the same
    way so that ``microsoft.maintenance.premaintenanceevent`` is the same type.
    """
    if isinstance(key, str):
        parts: Sequence[object] = (key,)
    elif isinstance(key, Sequence):
        parts = key
    else:
        parts = (str(key),)
    return "\x1f".join(str(p).lower() for p in parts)


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} (a time zone is required)")
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _describe(exc: sqlite3.Error) -> str:
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "disk is full" in lowered or "database or disk is full" in lowered:
        return "the disk is full (database or disk is full)"
    if "readonly" in lowered or "read-only" in lowered:
        return "the journal file or its directory is read-only"
    if "unable to open" in lowered:
        return "cannot open the file (missing directory or no permission)"
    if "not a database" in lowered or "malformed" in lowered:
        return "the file is not a usable SQLite database"
    return text


class Journal:
    """The SQLite journal (see the module docstring).

    ``max_pages`` caps the file size in SQLite pages (``PRAGMA max_page_count``); beyond it a
    write fails exactly as on a full disk. Tests use it to simulate one.
    """

    def __init__(self, path: Path | str | None = None, *, max_pages: int | None = None) -> None:
        self.path = Path(path) if path is not None else default_journal_path()
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(
                f"journal {self.path}: cannot create its directory ({exc.strerror or exc})"
            ) from exc
        with self._errors("open"):
            # check_same_thread=False: the lock below serialises use from workers.
            conn = sqlite3.connect(
                self.path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
            self._conn = conn
            conn.execute("PRAGMA busy_timeout = 10000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise JournalError(f"journal {self.path}: cannot switch to WAL mode ({mode})")
            # FULL: a committed event survives a power cut, which consume mode relies on
            # before it deletes the queue message.
            conn.execute("PRAGMA synchronous = FULL")
            if max_pages is not None:
                conn.execute(f"PRAGMA max_page_count = {int(max_pages)}")
            self._migrate(conn)

    # -- plumbing --------------------------------------------------------------------------
    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except JournalError:
            self._close_on_open_failure(action)
            raise
        except sqlite3.Error as exc:
            self._close_on_open_failure(action)
            raise JournalError(f"journal {self.path}: cannot {action}: {_describe(exc)}") from exc

    def _close_on_open_failure(self, action: str) -> None:
        if action == "open" and self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        """One committed write transaction, or nothing at all."""
        with self._lock, self._errors(action):
            conn = self._connection()
            # IMMEDIATE: take the write lock up front so another process cannot slip a
            # conflicting row in between our read and our write.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT (disk full): leave no transaction open.
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"journal {self.path}: it is closed")
        return self._conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path}: schema version {version} is newer than this aumwatch "
                f"understands ({SCHEMA_VERSION}); upgrade aumwatch or use another --journal"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _MIGRATIONS[target - 1]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        """The file's schema version (``PRAGMA user_version``)."""
        with self._lock, self._errors("read"):
            return int(self._connection().execute("PRAGMA user_version").fetchone()[0])

    @property
    def journal_mode(self) -> str:
        """SQLite's journal mode for the file (``wal``)."""
        with self._lock, self._errors("read"):
            return str(self._connection().execute("PRAGMA journal_mode").fetchone()[0])

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- events ----------------------------------------------------------------------------
    def record_event(
        self,
        event: MaintenanceEvent,
        raw_text: str,
        *,
        received_at: datetime,
        message_id: str | None = None,
        source_queue: str | None = None,
        queue_identity: str | None = None,
    ) -> RecordStatus:
        """Journal one decoded event and commit; tell whether it was new.

        A second sighting from the same queue message (a re-peek, or a consume-mode
        re-delivery after a crash) changes nothing; one from another message counts a
        duplicate delivery on the first row. ``queue_identity`` is the queue's full identity
        (:func:`services.domain.queueid.queue_identity`): what a peeking view reads back by.
        """
        key = dedupe_key_text(event.dedupe_key)
        decoded = json.dumps(dict(event.to_json()), sort_keys=True, default=str)
        with self._write("record an event") as conn:
            row = conn.execute(
                "SELECT message_id FROM events WHERE dedupe_key = ?", (key,)
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO events (dedupe_key, event_id, event_type, kind, correlation_id,"
                    " raw_text, decoded_json, received_at, message_id, source_queue,"
                    " queue_identity) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, event.id, event.type, str(event.kind), event.correlation_id, raw_text,
                     decoded, _iso(received_at), message_id, source_queue, queue_identity),
                )
                return RecordStatus.NEW
            if message_id is not None and row[0] == message_id:
                return RecordStatus.SEEN
            conn.execute(
                "UPDATE events SET duplicate_deliveries = duplicate_deliveries + 1"
                " WHERE dedupe_key = ?",
                (key,),
            )
            return RecordStatus.DUPLICATE

    def has_event(self, dedupe_key: object) -> bool:
        """Whether an event with this dedupe key is journaled."""
        with self._lock, self._errors("read"):
            row = self._connection().execute(
                "SELECT 1 FROM events WHERE dedupe_key = ?", (dedupe_key_text(dedupe_key),)
            ).fetchone()
            return row is not None

    def events(self, limit: int | None = None) -> list[JournaledEvent]:
        """Journaled events, oldest first (the last ``limit`` when given)."""
        if limit is not None and limit <= 0:
            return []
        if limit is None:
            return self._events("", ())
        rows = self._events(" ORDER BY seq DESC LIMIT ?", (limit,), ordered=True)
        return rows[::-1]

    def queue_events(self, queue_identity: str, limit: int = 500) -> list[JournaledEvent]:
        """The last ``limit`` events journaled from the queue ``queue_identity``, oldest
        first. Rows of another queue (same name, another account or world) and rows without
        an identity (written before journals kept it) are never among them."""
        if limit <= 0:
            return []
        rows = self._events(" WHERE queue_identity = ? ORDER BY seq DESC LIMIT ?",
                            (queue_identity, limit), ordered=True)
        return rows[::-1]

    def events_after(self, seq: int, limit: int = 500, *,
                     queue_identity: str | None = None) -> list[JournaledEvent]:
        """Journaled events recorded after row ``seq``, oldest first, at most ``limit`` (a
        dashboard following what another process consumed); with ``queue_identity``, only
        that queue's."""
        if queue_identity is None:
            return self._events(" WHERE seq > ? ORDER BY seq LIMIT ?", (seq, max(limit, 0)),
                                ordered=True)
        return self._events(" WHERE seq > ? AND queue_identity = ? ORDER BY seq LIMIT ?",
                            (seq, queue_identity, max(limit, 0)), ordered=True)

    def events_for_run(self, correlation_id: str) -> list[JournaledEvent]:
        """Journaled events of one run (ids compared case-insensitively), oldest first."""
        return self._events(" WHERE lower(correlation_id) = lower(?)",
                            (correlation_id.strip().rstrip("/"),))

    def _events(self, tail: str, params: tuple[Any, ...], *,
                ordered: bool = False) -> list[JournaledEvent]:
        sql = (
            "SELECT seq, dedupe_key, event_id, event_type, kind, correlation_id, raw_text,"
            " decoded_json, received_at, message_id, source_queue, duplicate_deliveries,"
            " queue_identity FROM events" + tail + ("" if ordered else " ORDER BY seq")
        )
        with self._lock, self._errors("read"):
            rows = self._connection().execute(sql, params).fetchall()
        return [
            JournaledEvent(
                seq=r[0], dedupe_key=r[1], event_id=r[2], event_type=r[3], kind=r[4],
                correlation_id=r[5], raw_text=r[6], decoded=json.loads(r[7]),
                received_at=_parse_iso(r[8]), message_id=r[9], source_queue=r[10],
                duplicate_deliveries=r[11], queue_identity=r[12],
            )
            for r in rows
        ]

    # -- undecodable messages --------------------------------------------------------------
    def record_undecodable(
        self,
        raw_text: str,
        reason: str,
        *,
        received_at: datetime,
        message_id: str | None = None,
        source_queue: str | None = None,
        queue_identity: str | None = None,
    ) -> bool:
        """Journal a message that did not decode and commit; False when it already was.

        A message is recognised by its queue message id, or by a hash of its text when it has
        none, so a re-peek or a re-delivery is journaled once.
        """
        if message_id is not None:
            message_key = f"id:{queue_identity or source_queue or ''}:{message_id}"
        else:
            digest = hashlib.sha256(raw_text.encode("utf-8", "surrogatepass")).hexdigest()
            message_key = f"sha256:{digest}"
        with self._write("record an undecodable message") as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO undecodable (message_key, message_id, source_queue,"
                " raw_text, reason, received_at, queue_identity) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (message_key, message_id, source_queue, raw_text, reason, _iso(received_at),
                 queue_identity),
            )
            return cursor.rowcount == 1

    def undecodable(self) -> list[UndecodableRow]:
        """Journaled undecodable messages, oldest first."""
        with self._lock, self._errors("read"):
            rows = self._connection().execute(
                "SELECT seq, message_id, source_queue, raw_text, reason, received_at"
                " FROM undecodable ORDER BY seq"
            ).fetchall()
        return [
            UndecodableRow(seq=r[0], message_id=r[1], source_queue=r[2], raw_text=r[3],
                           reason=r[4], received_at=_parse_iso(r[5]))
            for r in rows
        ]

    # -- cancel audit ----------------------------------------------------------------------
    def begin_cancel(
        self,
        *,
        attempted_at: datetime,
        run_id: str,
        configuration: str | None,
        computed_id: bool,
        identity: str | None,
        api_version: str | None,
        outcome: AuditOutcome = AuditOutcome.SENT,
        reason: str | None = None,
        initiator: str | None = None,
        world: str | None = None,
        tenant: str | None = None,
        tenant_id: str | None = None,
        delegated: bool = False,
    ) -> int:
        """Write an audit row for a cancel attempt and commit; return its row number.

        Written *before* the request goes out (outcome ``sent``) so that even a crash
        mid-request leaves a trace; :meth:`finish_cancel` records the outcome. A refusal is
        written whole, with ``outcome=REFUSED`` and its reason. ``initiator`` names who
        started it when it was not a person ("task precheck (exit 3)"); ``world`` the
        stand-in world it was sent in (``[azure] world``; None on real Azure).
        """
        finished = _iso(attempted_at) if outcome is AuditOutcome.REFUSED else None
        with self._write("record a cancel attempt") as conn:
            cursor = conn.execute(
                "INSERT INTO cancel_audit (attempted_at, finished_at, identity, run_id,"
                " configuration, computed_id, outcome, reason, api_version, initiator, world,"
                " tenant, tenant_id, delegated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_iso(attempted_at), finished, identity, run_id, configuration,
                 int(computed_id), str(outcome), reason, api_version, initiator,
                 (world or "").strip() or None, tenant or None, tenant_id or None,
                 int(delegated)),
            )
            return int(cursor.lastrowid or 0)

    def finish_cancel(
        self,
        seq: int,
        *,
        finished_at: datetime,
        outcome: AuditOutcome,
        reason: str | None = None,
        http_status: int | None = None,
        run_status: str | None = None,
    ) -> None:
        """Record the outcome of the attempt written by :meth:`begin_cancel`."""
        with self._write("record a cancel outcome") as conn:
            cursor = conn.execute(
                "UPDATE cancel_audit SET finished_at = ?, outcome = ?, reason = ?,"
                " http_status = ?, run_status = ? WHERE seq = ?",
                (_iso(finished_at), str(outcome), reason, http_status, run_status, seq),
            )
            if cursor.rowcount != 1:
                raise JournalError(f"journal {self.path}: no cancel attempt #{seq} to finish")

    def verified_cancels(self, world: str | None = None) -> dict[str, VerifiedCancel]:
        """Runs whose cancel was verified (read back as Cancelled) in ``world`` (None: real
        Azure, i.e. rows sent in no stand-in world): run key (lower-case) -> when it was
        verified and who or what sent it (:func:`services.domain.runfacts.initiator_of`), the
        latest when several were. A stand-in world's run ids repeat from one world to the
        next: another world's cancel must never mark a run here.

        For :func:`services.domain.runs.merge_runs`: Resource Graph lags, and a verified cancel
        must win over its older rows (docs/azure.md, "Resource Graph").
        """
        world = (world or "").strip() or None
        with self._lock, self._errors("read"):
            rows = self._connection().execute(
                "SELECT run_id, finished_at, attempted_at, identity, initiator FROM cancel_audit"
                " WHERE outcome = ? AND world IS ?",
                (str(AuditOutcome.VERIFIED), world),
            ).fetchall()
        out: dict[str, VerifiedCancel] = {}
        for run_id, finished_at, attempted_at, identity, initiator in rows:
            key = str(run_id).strip().rstrip("/").lower()
            at = _parse_iso(finished_at or attempted_at)
            if key not in out or at > out[key].at:
                out[key] = VerifiedCancel(at, initiator_of(identity, initiator))
        return out

    def cancel_audit(self) -> list[CancelAuditRow]:
        """Every audited cancel attempt, oldest first."""
        with self._lock, self._errors("read"):
            rows = self._connection().execute(
                "SELECT seq, attempted_at, finished_at, identity, run_id, configuration,"
                " computed_id, outcome, reason, api_version, http_status, run_status,"
                " initiator, tenant, tenant_id, delegated FROM cancel_audit ORDER BY seq"
            ).fetchall()
        return [
            CancelAuditRow(
                seq=r[0], attempted_at=_parse_iso(r[1]),
                finished_at=_parse_iso(r[2]) if r[2] else None, identity=r[3], run_id=r[4],
                configuration=r[5], computed_id=bool(r[6]), outcome=r[7], reason=r[8],
                api_version=r[9], http_status=r[10], run_status=r[11], initiator=r[12],
                tenant=r[13], tenant_id=r[14], delegated=bool(r[15]),
            )
            for r in rows
        ]

    # -- alerts (issue 21) -----------------------------------------------------------------
    def claim_alert(self, *, finding_key: str, route: str, state: str, kind: str,
                    finding: dict[str, Any], at: datetime) -> int | None:
        """Claim one (finding, route, state) before it is sent (route ``""``: the finding's
        own state, as printed): insert a ``sending`` row and commit; return its row number,
        or None when it was claimed before (by this or an earlier process): do not send."""
        with self._write("record an alert") as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO alert_deliveries (finding_key, route, state, kind,"
                " claimed_at, outcome, finding) VALUES (?, ?, ?, ?, ?, 'sending', ?)",
                (finding_key, route, state, kind, _iso(at), json.dumps(finding)))
            if cursor.rowcount != 1:
                return None
            return int(cursor.lastrowid or 0)

    def finish_alert(self, seq: int, *, outcome: str, at: datetime,
                     detail: str | None = None) -> None:
        """Record how the send claimed as ``seq`` ended (``detail`` already scrubbed)."""
        with self._write("record an alert outcome") as conn:
            conn.execute("UPDATE alert_deliveries SET outcome = ?, finished_at = ?, detail = ?"
                         " WHERE seq = ?", (outcome, _iso(at), detail, seq))

    def alert_claimed(self, finding_key: str, route: str, state: str) -> bool:
        """Whether (finding, route, state) was claimed."""
        with self._lock, self._errors("read the alerts"):
            row = self._connection().execute(
                "SELECT 1 FROM alert_deliveries WHERE finding_key = ? AND route = ? AND"
                " state = ?", (finding_key, route, state)).fetchone()
        return row is not None

    def alert_findings(self, limit: int = 20_000) -> list[dict[str, Any]]:
        """The last state of each finding told (its JSON line), oldest first: what a
        restarted watcher starts from."""
        with self._lock, self._errors("read the alerts"):
            rows = self._connection().execute(
                "SELECT finding_key, state, finding FROM alert_deliveries WHERE route = ''"
                " ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
        last: dict[str, dict[str, Any]] = {}
        for key, state, finding in rows:
            if key not in last or state == "resolved":
                last[key] = json.loads(finding)
        return list(reversed(last.values()))

    def acknowledge_alert(self, *, finding_key: str, kind: str, who: str, at: datetime,
                          finding: dict[str, Any]) -> bool:
        """Record that ``who`` acknowledged the finding (once: False when it already was).
        Kept as the finding's ``@ack`` row, so every dashboard on this journal sees it."""
        seq = self.claim_alert(finding_key=finding_key, route=ACK_ROUTE, state="ack",
                               kind=kind, finding=finding, at=at)
        if seq is None:
            return False
        self.finish_alert(seq, outcome="acknowledged", at=at, detail=who)
        return True

    def alert_acks(self, after_seq: int = 0) -> list[tuple[int, str, str, datetime]]:
        """Acknowledgements after row ``after_seq``: (seq, finding key, who, when)."""
        with self._lock, self._errors("read the alerts"):
            rows = self._connection().execute(
                "SELECT seq, finding_key, detail, claimed_at FROM alert_deliveries WHERE"
                " route = ? AND seq > ? ORDER BY seq", (ACK_ROUTE, after_seq)).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2] or "?"), _parse_iso(r[3])) for r in rows]

    def alert_deliveries(self) -> list[dict[str, Any]]:
        """Every claimed send, oldest first (route, finding key, state, outcome, detail)."""
        with self._lock, self._errors("read the alerts"):
            rows = self._connection().execute(
                "SELECT route, finding_key, state, kind, outcome, detail, claimed_at"
                " FROM alert_deliveries ORDER BY seq").fetchall()
        return [{"route": r[0], "finding_key": r[1], "state": r[2], "kind": r[3],
                 "outcome": r[4], "detail": r[5], "claimed_at": r[6]} for r in rows]

    # -- task runs (issue 12) ----------------------------------------------------------------
    def claim_task_run(
        self,
        *,
        run_id: str,
        event_kind: str,
        task: str,
        configuration: str | None,
        started_at: datetime,
        pid: int | None = None,
    ) -> int | None:
        """Claim one task for one (run, event kind) before it starts: insert a ``running``
        row and commit; return its row number, or None when the key is already journaled
        (a duplicate delivery, or a run interrupted earlier): the task must not run.

        ``pid`` is the process that runs the task, so a later runner can tell a row left
        ``running`` by a dead process (:meth:`mark_interrupted_task_runs`). Run ids compare
        case-insensitively, as everywhere (docs/architecture.md "Run identity").
        """
        key = run_id.strip().rstrip("/").lower()
        with self._write("record a task run") as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO task_runs (run_id, event_kind, task, configuration,"
                " state, started_at, pid) VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (key, event_kind.lower(), task, configuration, _iso(started_at), pid),
            )
            if cursor.rowcount != 1:
                return None
            return int(cursor.lastrowid or 0)

    def finish_task_run(
        self,
        seq: int,
        *,
        state: str,
        ended_at: datetime,
        exit_code: int | None = None,
        output: str | None = None,
        detail: str | None = None,
        cancelled_run: bool = False,
    ) -> None:
        """Record how the task run claimed as ``seq`` ended (``output`` already bounded and
        scrubbed of secrets by the caller; ``cancelled_run`` only for a verified cancel)."""
        with self._write("record a task outcome") as conn:
            cursor = conn.execute(
                "UPDATE task_runs SET state = ?, ended_at = ?, exit_code = ?, output = ?,"
                " detail = ?, cancelled_run = ? WHERE seq = ?",
                (str(state), _iso(ended_at), exit_code, output, detail, int(cancelled_run),
                 seq),
            )
            if cursor.rowcount != 1:
                raise JournalError(f"journal {self.path}: no task run #{seq} to finish")

    def mark_interrupted_task_runs(
        self,
        *,
        ended_at: datetime,
        is_alive: Callable[[int], bool],
        detail: str = "its runner stopped while it ran (crash or kill); not re-run",
    ) -> list[TaskRunRow]:
        """Turn the rows left ``running`` by a process that is gone (``is_alive(pid)`` is
        False, or no pid was recorded) into ``interrupted``; return them as they are now.

        They are never run again: a task that may have done half its work is reported, not
        repeated behind the operator's back.
        """
        with self._write("mark interrupted task runs") as conn:
            rows = conn.execute(
                "SELECT seq, pid FROM task_runs WHERE state = 'running'").fetchall()
            dead = [seq for seq, pid in rows if pid is None or not is_alive(int(pid))]
            for seq in dead:
                conn.execute(
                    "UPDATE task_runs SET state = 'interrupted', ended_at = ?, detail = ?"
                    " WHERE seq = ? AND state = 'running'", (_iso(ended_at), detail, seq))
        if not dead:
            return []
        wanted = set(dead)
        return [row for row in self.task_runs() if row.seq in wanted]

    def task_runs(self, run_id: str | None = None) -> list[TaskRunRow]:
        """Journaled task runs, oldest first; only one run's when ``run_id`` is given (ids
        compared case-insensitively)."""
        sql = ("SELECT seq, run_id, event_kind, task, configuration, state, started_at,"
               " ended_at, exit_code, output, cancelled_run, detail, pid FROM task_runs")
        params: tuple[Any, ...] = ()
        if run_id is not None:
            sql += " WHERE run_id = ?"
            params = (run_id.strip().rstrip("/").lower(),)
        with self._lock, self._errors("read"):
            rows = self._connection().execute(sql + " ORDER BY seq", params).fetchall()
        return [
            TaskRunRow(
                seq=r[0], run_id=r[1], event_kind=r[2], task=r[3], configuration=r[4],
                state=r[5], started_at=_parse_iso(r[6]),
                ended_at=_parse_iso(r[7]) if r[7] else None, exit_code=r[8], output=r[9],
                cancelled_run=bool(r[10]), detail=r[11], pid=r[12],
            )
            for r in rows
        ]

    # -- change audit (issue 11: Event Grid set-up) ------------------------------------------
    def begin_change(self, *, attempted_at: datetime, identity: str | None, action: str,
                     target: str, detail: str | None = None, outcome: str = "sent",
                     reason: str | None = None) -> int:
        """Write a change_audit row before the change is sent (like :meth:`begin_cancel`);
        a refusal (``outcome="refused"``) is written whole. Returns the row number."""
        finished = _iso(attempted_at) if outcome == "refused" else None
        with self._write("record a change") as conn:
            cursor = conn.execute(
                "INSERT INTO change_audit (attempted_at, finished_at, identity, action, target,"
                " detail, outcome, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (_iso(attempted_at), finished, identity, action, target, detail, outcome,
                 reason),
            )
            return int(cursor.lastrowid or 0)

    def finish_change(self, seq: int, *, finished_at: datetime, outcome: str,
                      reason: str | None = None) -> None:
        """Record the outcome of the change written by :meth:`begin_change`."""
        with self._write("record a change outcome") as conn:
            cursor = conn.execute(
                "UPDATE change_audit SET finished_at = ?, outcome = ?, reason = ? WHERE seq = ?",
                (_iso(finished_at), outcome, reason, seq),
            )
            if cursor.rowcount != 1:
                raise JournalError(f"journal {self.path}: no change #{seq} to finish")

    def change_audit(self) -> list[dict[str, Any]]:
        """Every audited change, oldest first, as dicts named like the table's columns."""
        columns = ("seq", "attempted_at", "finished_at", "identity", "action", "target",
                   "detail", "outcome", "reason")
        with self._lock, self._errors("read"):
            rows = self._connection().execute(
                f"SELECT {', '.join(columns)} FROM change_audit ORDER BY seq").fetchall()
        return [dict(zip(columns, row, strict=True)) for row in rows]
