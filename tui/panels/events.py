"""The event tail: every event, undecodable message and watchdog finding, newest last.

``enter`` on a row bubbles :class:`widgets.eventlog.EventLog.Selected` to the screen (it shows
the event's JSON).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from textual.app import ComposeResult
from textual.containers import Vertical

from services.domain.eventtail import EventLine
from widgets.eventlog import EventLog, EventRow


def event_row(line: EventLine) -> EventRow:
    """The log's row for one line of the state."""
    return EventRow(time=line.time, kind=line.kind, configuration=line.configuration,
                    run=line.run, flag=line.flag, payload=line.payload, key=line.key,
                    arrival=line.arrival, arrival_flagged=line.arrival_flagged)


#: The panel's legend of the arrival column (on its bottom border; README says the same).
ARRIVAL_LEGEND = "arrival: pre-event T-35m before start · post-event +4m/-37m vs end"


class EventsPanel(Vertical):
    """The ``#events-panel`` with its ``#events`` log."""

    def __init__(self, time_format: Callable[[datetime], str]) -> None:
        super().__init__(id="events-panel", classes="panel")
        self.border_subtitle = ARRIVAL_LEGEND
        self._time_format = time_format
        self.event_log = EventLog(id="events", time_format=time_format)

    def compose(self) -> ComposeResult:
        yield self.event_log

    def add_lines(self, lines: Iterable[EventLine]) -> None:
        """Append lines to the tail."""
        rows = [event_row(line) for line in lines]
        if rows:
            self.event_log.add_rows(rows)

    @property
    def rows(self) -> tuple[EventRow, ...]:
        """Every row the tail holds."""
        return self.event_log.rows

    def set_time_format(self, time_format: Callable[[datetime], str]) -> None:
        """Show times with ``time_format`` from now on."""
        self._time_format = time_format
        self.event_log.set_time_format(time_format)
