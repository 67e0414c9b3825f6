"""The dashboard's side of the findings (issue 21): the one list judged on the screen's
state, the bell and a terminal notification for a new finding of severity error or worse,
and acknowledgements shared through the journal.

:class:`DashboardAlerts` holds a :class:`~services.domain.findings.FindingBook` judged from
the dashboard's :class:`~services.domain.dashboard.DashboardState` at each tick (the same
rules as ``aumwatch watch``). A new open finding of severity error or worse that nobody
acknowledged is to be told: :func:`notification` builds the bell and OSC 777 / OSC 9
sequences (terminals that support them show a desktop notification, also over SSH). An
acknowledgement (``a``) is a journal row (who, when), so every dashboard on that journal,
``serve``'s included, reads it back and shows it in its event tail; an acknowledged finding is
not notified again. The finding's text came from Azure: control characters and the OSC
separator are taken out before it reaches the terminal.
"""

from __future__ import annotations

import contextlib
import getpass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.domain.eventtail import EventLine
from services.domain.findings import (
    Alert,
    AlertRules,
    FindingBook,
    judge,
    severity_rank,
    state_inputs,
)

if TYPE_CHECKING:
    from services.azure.journal import Journal
    from services.domain.clock import Clock
    from services.domain.dashboard import DashboardState
    from services.settings import Settings

#: Findings of this severity or worse ring the bell and notify the terminal.
NOTIFY_FROM = "error"
#: How often the findings are judged (deadlines are minutes apart; a tick is every second).
JUDGE_EVERY = timedelta(seconds=5)
#: How often other viewers' acknowledgements are read back from the journal.
ACKS_EVERY = timedelta(seconds=5)
#: Kinds the watchdog already writes into the event tail (not written twice).
TAIL_HAS = frozenset({"missing-pre", "missing-post", "duplicate"})


def _clean(text: str, limit: int = 200) -> str:
    """``text`` safe inside an OSC sequence: no control characters, no ``;``."""
    out = "".join(c if c.isprintable() and c != ";" else " " for c in text)
    return " ".join(out.split())[:limit]


def notification(alert: Alert, *, bell: bool) -> str:
    """What is written to the terminal for ``alert``: the bell (when ``bell``), then OSC 777
    (``notify;title;body``: rxvt, foot, Ghostty, WezTerm...) and OSC 9 (iTerm2, Windows
    Terminal, ConEmu)."""
    title = _clean(f"aumwatch {alert.severity}: {alert.kind}", 60)
    body = _clean(alert.summary or alert.kind)
    return ("\a" if bell else "") + f"\x1b]777;notify;{title};{body}\x07\x1b]9;{title}: {body}\x07"


def who_am_i() -> str:
    """The name an acknowledgement is recorded under."""
    with contextlib.suppress(Exception):
        return getpass.getuser()
    return "unknown"


class DashboardAlerts:
    """See the module. ``journal``: an open journal, or None; ``journal_path``: the journal
    to open when it exists (acknowledgements to read) or on the first acknowledgement (a
    dashboard that only looks creates no file). Without either, acknowledgements are local
    to this viewer and not kept."""

    def __init__(self, settings: Settings, clock: Clock, journal: Journal | None, *,
                 journal_path: Path | None = None) -> None:
        self.clock = clock
        self.bell = settings.bell
        self.book = FindingBook(AlertRules(
            missed_after=settings.missed_after, source_down_after=settings.source_down_after,
            pre_before=settings.arrival_rules.missing_after, window=settings.window_rules))
        self.journal = journal
        self.journal_path = journal_path
        self.watching_since = clock.now()
        self.acked: dict[str, tuple[str, datetime]] = {}
        self._ack_seq = 0
        self._acks_read_at: datetime | None = None
        self._judged_at: datetime | None = None
        # Findings standing when the dashboard first sees its sources are shown, not rung:
        # "new" means new while this viewer watches.
        self._primed = False
        self._standing: set[str] = set()

    def judge(self, state: DashboardState, now: datetime, *, force: bool = False
              ) -> list[Alert]:
        """The findings opened or resolved at ``now`` (judged every :data:`JUDGE_EVERY`
        unless ``force``)."""
        if not force and self._judged_at is not None and now - self._judged_at < JUDGE_EVERY:
            return []
        self._judged_at = now
        changes = self.book.update(judge(state_inputs(state, state.sources_read), self.book,
                                         now, watching_since=self.watching_since), now)
        needed = {"configs", "runs"} | ({"events"} if state.watch_events else set())
        if not self._primed and needed <= state.sources_read:
            self._primed = True
            self._standing = {a.key for a in changes}
        else:
            self._standing = set()
        return changes

    def to_notify(self, changes: list[Alert]) -> list[Alert]:
        """The new open findings of severity error or worse nobody acknowledged (not those
        standing when the dashboard first saw its sources)."""
        return [a for a in changes if a.state == "open" and a.key not in self.acked
                and a.key not in self._standing
                and severity_rank(a.severity) >= severity_rank(NOTIFY_FROM)]

    def lines(self, changes: list[Alert], now: datetime) -> list[EventLine]:
        """Event tail lines for the findings of severity error or worse (the rest are shown
        where they belong: the window in the run panel, the wiring in its column), except
        those the watchdog already writes there."""
        out = []
        for alert in changes:
            if (alert.kind in TAIL_HAS and alert.state == "open") or (
                    severity_rank(alert.severity) < severity_rank(NOTIFY_FROM)):
                continue
            verb = "finding" if alert.state == "open" else "resolved"
            out.append(EventLine(
                time=now, kind=f"{verb}: {alert.kind.replace('-', ' ')}",
                configuration=alert.configuration_name or "",
                run=(alert.run_id or "").rsplit("/", 1)[-1], flag="watchdog",
                payload=f"{alert.severity}: {alert.summary}", key=alert.key))
        return out

    def target(self, selected_key: str | None, run_key: str | None) -> list[Alert]:
        """What ``a`` acknowledges: the selected tail line's finding, else the open findings
        of the run on the run panel."""
        open_now = {a.key: a for a in self.book.open}
        if selected_key and selected_key in open_now:
            return [open_now[selected_key]] if selected_key not in self.acked else []
        if run_key is None:
            return []
        return [a for a in open_now.values() if a.key.endswith(f":{run_key}")
                and a.key not in self.acked]

    def acknowledge(self, alerts: list[Alert], who: str, now: datetime) -> list[Alert]:
        """Record ``who`` acknowledging ``alerts``; the ones newly acknowledged."""
        done = []
        for alert in alerts:
            if alert.key in self.acked:
                continue
            journal = self._open_journal(create=True)
            if journal is not None:
                with contextlib.suppress(Exception):  # the journal is a help, not a need
                    journal.acknowledge_alert(finding_key=alert.key, kind=alert.kind,
                                                   who=who, at=now, finding=alert.to_json())
            self.acked[alert.key] = (who, now)
            done.append(alert)
        return done

    def read_acks(self, now: datetime, *, force: bool = False) -> list[EventLine]:
        """Acknowledgements by any viewer since the last read (every :data:`ACKS_EVERY`),
        as event tail lines."""
        if self._open_journal(create=False) is None:
            return []
        if not force and self._acks_read_at is not None and (
                now - self._acks_read_at < ACKS_EVERY):
            return []
        self._acks_read_at = now
        rows: list[Any] = []
        with contextlib.suppress(Exception):
            rows = self.journal.alert_acks(self._ack_seq)  # type: ignore[union-attr]
        out = []
        for seq, key, who, at in rows:
            self._ack_seq = max(self._ack_seq, seq)
            self.acked.setdefault(key, (who, at))
            out.append(ack_line(key, who, at))
        return out


    def _open_journal(self, *, create: bool) -> Journal | None:
        if self.journal is None and self.journal_path is not None and (
                create or self.journal_path.exists()):
            with contextlib.suppress(Exception):
                from services.azure.journal import Journal

                self.journal = Journal(self.journal_path)
        return self.journal

    def close(self) -> None:
        """Close the journal this opened."""
        if self.journal is not None and self.journal_path is not None:
            with contextlib.suppress(Exception):
                self.journal.close()
            self.journal = None


def ack_line(key: str, who: str, at: datetime) -> EventLine:
    """The event tail's line for an acknowledgement."""
    kind, _, rest = key.partition(":")
    return EventLine(time=at, kind=f"acknowledged: {kind.replace('-', ' ')}",
                     configuration=who, run=rest.rsplit("/", 1)[-1], flag="watchdog",
                     payload=f"{key} acknowledged by {who} at {at:%H:%M:%S} UTC", key=key)


class AlertsScreenMixin:
    """What the dashboard screen gains for findings (issue 21): judging the one list after
    each new read and every tick, the bell and terminal notification, and ``a`` to
    acknowledge. Expects the screen's ``alerts`` (:class:`DashboardAlerts`), ``state``,
    ``clock``, ``events_panel``, ``notify`` and ``app``."""

    def _judge_findings(self, now: datetime, *, force: bool = False) -> None:
        """The findings' one list at ``now`` (after new data, and every few ticks): new
        lines in the tail, and the bell and a terminal notification for a new one of
        severity error or worse not acknowledged."""
        screen: Any = self
        lines = screen.alerts.read_acks(now)
        changes = screen.alerts.judge(screen.state, now, force=force)
        lines += screen.alerts.lines(changes, now)
        if lines:
            screen.events_panel.add_lines(lines)
        for alert in screen.alerts.to_notify(changes):
            if alert.kind not in TAIL_HAS:  # the watchdog's own toast says those
                screen.notify(alert.summary, title=f"{alert.kind} ({alert.severity})",
                            severity="error", markup=False)
            driver = getattr(screen.app, "_driver", None)
            if not screen.app.is_headless and driver is not None:
                driver.write(notification(alert, bell=screen.alerts.bell))

    def action_acknowledge(self) -> None:
        """Acknowledge the selected finding: the event tail's selected line, else the open
        findings of the run on the run panel (journaled: every viewer sees who and when)."""
        screen: Any = self
        row = screen.events_panel.event_log.selected_row
        run = screen.state.current_run
        target = screen.alerts.target(row.key if row is not None else None,
                                    run.key if run is not None else None)
        now = screen.clock.now()
        done = screen.alerts.acknowledge(target, who_am_i(), now)
        if not done:
            screen.notify("no open finding to acknowledge here", severity="warning")
            return
        lines = screen.alerts.read_acks(now, force=True)
        if not lines:  # no journal: this viewer's own
            lines = [ack_line(a.key, who_am_i(), now) for a in done]
        screen.events_panel.add_lines(lines)
        screen.notify(f"acknowledged {len(done)} finding(s)", markup=False)
