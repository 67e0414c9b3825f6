"""How the dashboard writes times and countdowns, and rewrites a one-line Static cheaply."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, tzinfo

from rich.text import Text
from textual.widgets import Static

from services.domain.marks import mark_of, run_mark
from services.domain.model import Run
from services.domain.window import Phase, WindowRules
from widgets.countdown import format_remaining
from widgets.phase import phase_label
from widgets.table import same_cell

#: What the run panel's countdown says before each boundary of a run's window.
BOUNDARY_WORDS = {"cancel opens": "cancel opens in", "cancel closes": "cancel closes in",
                  "starts": "starts in", "ends": "ends in"}


def format_time(when: datetime | None, zone: tzinfo | None) -> str:
    """``when`` in ``zone`` (None: the local zone), e.g. ``"Sat 14 14:25 CET"``."""
    if when is None:
        return "–"
    local = when.astimezone(zone) if zone is not None else when.astimezone()
    return local.strftime("%a %d %H:%M ") + (local.tzname() or "")


def clock_time(when: datetime, mode: str) -> str:
    """``when`` as ``HH:MM:SS`` (the event tail's times): local time in the ``local`` display
    mode, else UTC."""
    local = when.astimezone() if mode == "local" else when.astimezone(UTC)
    return local.strftime("%H:%M:%S")


def format_clock(when: datetime | None, zone: tzinfo | None) -> str:
    """``when`` in ``zone`` with the clock time first, e.g. ``"14:25 CET Sat 14"``: where a
    line is cut at the panel's edge (80 columns), the day goes, never the time."""
    if when is None:
        return "–"
    local = when.astimezone(zone) if zone is not None else when.astimezone()
    return f"{local:%H:%M} {local.tzname() or ''} {local:%a %d}".replace("  ", " ")


def format_full(when: datetime, zone: tzinfo | None) -> str:
    """``when`` with its date, for the cancel confirmation (``"2026-03-10 12:30 UTC"``)."""
    local = when.astimezone(zone) if zone is not None else when.astimezone()
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or "")


def table_remaining(delta: timedelta) -> str:
    """Time left as the configurations table shows it: to the second under an hour
    ("06:12"), to the minute under a day ("5h 07m"), else "2d 4h" (rounded up, as
    :func:`widgets.countdown.format_remaining`). A far-away row then changes once a minute
    or an hour, not every second: an idle dashboard redraws only the imminent rows."""
    seconds = max(0, math.ceil(delta.total_seconds()))
    if seconds < 3600 or seconds >= 86400:
        return format_remaining(delta)
    hours, minutes = divmod(math.ceil(seconds / 60), 60)
    if hours >= 24:  # the last minute before a day, rounded up
        return "1d 0h"
    return f"{hours}h {minutes:02d}m"


def countdown_text(run: Run, now: datetime) -> str:
    """The table's "In" cell: time to the start, or to the end while it runs."""
    if now < run.start:
        return table_remaining(run.start - now)
    if run.end is not None and now < run.end:
        return f"ends {table_remaining(run.end - now)}"
    return ""


def run_label(run: Run, now: datetime, rules: WindowRules) -> Text:
    """The Phase cell of ``run`` at ``now``: its window phase while it is live, then how it
    ended ("⊘ cancelled", "✗ failed", "✓ succeeded", ...; :func:`services.domain.marks.run_mark`).
    Every panel draws a run's phase with this (or :func:`phase_mark_label`)."""
    return phase_label(run_mark(run, now, rules))


def phase_mark_label(run: Run, phase: Phase) -> Text:
    """:func:`run_label` for a caller that already has the run's phase."""
    return phase_label(mark_of(run, phase))


def show(widget: Static, text: Text) -> None:
    """Put ``text`` in a one-line Static only when it differs from what it shows, without a
    layout pass (the run panel's lines have fixed sizes in app.tcss): the tick rewrites the
    same status line every second."""
    shown = widget.content
    if isinstance(shown, Text) and same_cell(shown, text):
        return
    widget.update(text, layout=False)
