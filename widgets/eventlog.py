"""A bounded, follow-mode tail of events, drawn line by line (only the visible rows render).

Built on `ScrollView` rather than `DataTable`: dropping the oldest of 2,000 rows must be O(1)
(a `deque`), and a burst of 500 rows must cost one size update and one repaint, which the
Line API gives directly. Row 0 of the widget is a fixed header that also carries the
follow state and the "+N new" marker.

Every string in a row is untrusted: it goes through `sanitize` once, when the row is added,
and is drawn as `rich.text.Text` (never markup).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import var
from textual.scroll_view import ScrollView
from textual.strip import Strip

from widgets.sanitize import sanitize

DEFAULT_MAX_ROWS = 2000
CELL_MAX_LEN = 200

# Known flags get a symbol so the meaning survives without colour.
FLAG_LOOKS: dict[str, tuple[str, str]] = {
    "undecodable": ("✗ undecodable", "bold red"),
    "duplicate": ("≡ duplicate", "yellow"),
    "watchdog": ("! watchdog", "bold yellow"),
    "off-range": ("! off-range", "bold yellow"),
}

TIME_WIDTH = 8
DELAY_WIDTH = 7
FLAG_WIDTH = 13
# The fifth column shows the row's ``arrival``.
HEADERS = ("time", "type", "configuration", "run", "arrival", "flag")


@dataclass(frozen=True)
class EventRow:
    """One event as the log shows it; plain values, all strings untrusted.

    Attributes:
        time: when the event happened (or arrived); shown with the log's time format.
        kind: the event type, or "undecodable".
        configuration: configuration name (or a raw preview for an undecodable message).
        run: run name / id (shown truncated).
        flag: "undecodable", "duplicate", "watchdog" or None; other words are shown as is.
        arrival: when the event arrived relative to its run, already worded by the caller
            (``T-35m`` for a pre-event, ``+4m`` after the end for a post-event).
        arrival_flagged: the arrival is outside the documented range: the label is drawn in
            a warning style and the flag column says "! off-range" (unless the row has a
            flag of its own), so the meaning survives without colour.
        payload: the full event text (JSON or raw) for the app's detail view; never drawn.
        key: the app's identifier for the event, returned with `selected_row`.
    """

    time: datetime
    kind: str
    configuration: str = ""
    run: str = ""
    flag: str | None = None
    payload: str = ""
    key: str = ""
    arrival: str = ""
    arrival_flagged: bool = False


def column_widths(width: int, time_width: int = TIME_WIDTH) -> tuple[int, int, int, int, int, int]:
    """Split `width` cells into (time, type, configuration, run, arrival, flag) column widths.

    One blank cell separates columns. Time, arrival and flag are fixed; the rest is shared
    between type (30%, 6..24), configuration and run. Never returns a negative width.
    """
    fixed = time_width + DELAY_WIDTH + FLAG_WIDTH + 5
    rest = max(0, width - fixed)
    kind = min(24, max(6, rest * 3 // 10)) if rest >= 6 else rest
    rest -= kind
    configuration = rest * 45 // 100
    run = rest - configuration
    return (time_width, kind, configuration, run, DELAY_WIDTH, FLAG_WIDTH)


@dataclass(frozen=True)
class _Entry:
    seq: int
    row: EventRow
    cells: tuple[str, str, str, str, str, str]
    flag_style: str
    arrival_style: str = ""


def _default_time_format(when: datetime) -> str:
    return when.strftime("%H:%M:%S")


class EventLog(ScrollView, can_focus=True):
    """Tail of events with follow mode, a "+N new" marker and a bounded buffer.

    Drive it with `add_rows` (one repaint per call, whatever the count). When the view is at
    the bottom and follow is on, new rows scroll into view; otherwise the header shows
    "+N new" until the user comes back to the bottom (`end`/`G`, scrolling, or `f`).
    `enter` posts `EventLog.Selected`; `selected_row` is the row under the cursor.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "toggle_follow", "Follow", tooltip="Toggle following new events",
                id="follow"),
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up_rows", "Page up", show=False),
        Binding("pagedown", "page_down_rows", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
        Binding("enter", "select", "Show event", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "eventlog--header",
        "eventlog--cursor",
        "eventlog--marker",
    }

    DEFAULT_CSS = """
    EventLog {
        height: 1fr;
        overflow-x: hidden;
        overflow-y: scroll;
        background: $surface;
        & > .eventlog--header { text-style: bold underline; }
        & > .eventlog--cursor { background: $block-cursor-blurred-background; }
        &:focus > .eventlog--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
        }
        & > .eventlog--marker { background: $warning; color: $text; text-style: bold; }
    }
    """

    follow: var[bool] = var(True)
    """Scroll new rows into view when at the bottom."""

    class Selected(Message):
        """The operator pressed enter on a row."""

        def __init__(self, event_log: EventLog, row: EventRow) -> None:
            super().__init__()
            self.event_log = event_log
            self.row = row

        @property
        def control(self) -> EventLog:
            """The log the row belongs to."""
            return self.event_log

    def __init__(
        self,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        time_format: Callable[[datetime], str] = _default_time_format,
        time_width: int = TIME_WIDTH,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """Create the log.

        Args:
            max_rows: rows kept; older rows are dropped (at least 1).
            time_format: turns an event time into its cell text (the app picks the zone).
            time_width: width of the time column.
        """
        if max_rows < 1:
            raise ValueError(f"EventLog max_rows must be at least 1, got {max_rows}")
        super().__init__(name=name, id=id, classes=classes)
        self._entries: deque[_Entry] = deque(maxlen=max_rows)
        self._time_format = time_format
        self._time_width = time_width
        self._seq = 0
        self._cursor: int | None = None
        self._pending = 0
        self._dropped = 0
        self._strip_cache: LRUCache[tuple[int, int, bool], Strip] = LRUCache(256)

    # ----------------------------------------------------------------- public API

    @property
    def max_rows(self) -> int:
        """How many rows are kept."""
        assert self._entries.maxlen is not None
        return self._entries.maxlen

    @property
    def row_count(self) -> int:
        """Rows currently held."""
        return len(self._entries)

    @property
    def rows(self) -> tuple[EventRow, ...]:
        """The rows held, oldest first (e.g. for export)."""
        return tuple(entry.row for entry in self._entries)

    @property
    def pending_new(self) -> int:
        """Rows added since the user scrolled away from the bottom (the "+N new" count)."""
        return self._pending

    @property
    def dropped(self) -> int:
        """Rows dropped from the front because the buffer was full."""
        return self._dropped

    @property
    def cursor_index(self) -> int | None:
        """Index (into `rows`) of the row under the cursor, or None when empty."""
        return self._cursor

    @property
    def selected_row(self) -> EventRow | None:
        """The row under the cursor, or None."""
        if self._cursor is None:
            return None
        return self._entries[self._cursor].row

    @property
    def marker_text(self) -> str:
        """What the header's right end says: "+N new", "follow off", or ""."""
        if self._pending:
            return f"▼ +{self._pending} new"
        if not self.follow:
            return f"follow off ({self._follow_key()})"
        return ""

    def _follow_key(self) -> str:
        """The key that toggles follow now (the app's keymap may have moved it from ``f``)."""
        try:
            active = self.screen.active_bindings
        except Exception:  # not on a screen (yet): the default key
            return "f"
        for key, bound in active.items():
            if bound.node is self and bound.binding.action == "toggle_follow":
                return key
        return "f"

    def add_row(self, row: EventRow) -> None:
        """Add one row (see `add_rows`)."""
        self.add_rows((row,))

    def add_rows(self, rows: Iterable[EventRow]) -> None:
        """Append rows at the bottom: one size update and one repaint for the whole batch."""
        new = [self._entry(row) for row in rows]
        if not new:
            return
        following = self.follow and self._at_bottom()
        cursor_on_last = self._cursor is None or self._cursor == len(self._entries) - 1
        before = len(self._entries)
        self._entries.extend(new)
        dropped = before + len(new) - len(self._entries)
        self._dropped += dropped
        if self._cursor is not None and not (following and cursor_on_last):
            self._cursor = max(0, self._cursor - dropped)
        self._update_virtual_size()
        if following:
            if cursor_on_last:
                self._cursor = len(self._entries) - 1
            self.scroll_end(animate=False, immediate=True, x_axis=False)
            self._pending = 0
        else:
            if dropped:
                # Keep the rows the user is reading in place while the oldest fall off.
                self.scroll_to(y=max(0, self.scroll_offset.y - dropped), animate=False,
                               immediate=True)
            self._pending = min(self._pending + len(new), len(self._entries))
            if self.max_scroll_y == 0:
                self._pending = 0
        self._strip_cache.clear()
        self.refresh()

    def clear(self) -> None:
        """Remove every row."""
        self._entries.clear()
        self._cursor = None
        self._pending = 0
        self._strip_cache.clear()
        self._update_virtual_size()
        self.refresh()

    def set_time_format(self, time_format: Callable[[datetime], str]) -> None:
        """Change how times are shown (e.g. the app's `z` zone toggle); redraws every row."""
        self._time_format = time_format
        self._entries = deque(
            (self._entry(entry.row, entry.seq) for entry in self._entries),
            maxlen=self._entries.maxlen,
        )
        self._strip_cache.clear()
        self.refresh()

    # ---------------------------------------------------------------- internals

    def _entry(self, row: EventRow, seq: int | None = None) -> _Entry:
        if seq is None:
            self._seq += 1
            seq = self._seq
        flag_text, flag_style = "", ""
        flag = row.flag or ("off-range" if row.arrival and row.arrival_flagged else None)
        if flag:
            flag_text, flag_style = FLAG_LOOKS.get(flag, (flag, "bold"))
        try:
            time_text = self._time_format(row.time)
        except (ValueError, TypeError, OverflowError):
            time_text = "?"
        arrival_text, arrival_style = sanitize(row.arrival, CELL_MAX_LEN), ""
        if row.arrival:
            if row.arrival_flagged:
                # Said in words in the flag column too, not by colour alone; the label itself
                # stays whole ("T-1h05m" fills the column).
                arrival_style = "bold yellow"
        cells = (
            sanitize(str(time_text), CELL_MAX_LEN),
            sanitize(row.kind, CELL_MAX_LEN),
            sanitize(row.configuration, CELL_MAX_LEN),
            sanitize(row.run, CELL_MAX_LEN),
            arrival_text,
            sanitize(flag_text, CELL_MAX_LEN),
        )
        return _Entry(seq, row, cells, flag_style, arrival_style)

    def _visible_rows(self) -> int:
        # One line of the viewport is the header.
        return max(1, self.scrollable_content_region.height - 1)

    def _at_bottom(self) -> bool:
        return self.scroll_offset.y >= self.max_scroll_y

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(0, len(self._entries) + 1)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._pending and round(new_value) >= self.max_scroll_y:
            self._pending = 0
            self.refresh_line(0)

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.action_last()
        self.refresh_line(0)

    def _move_cursor(self, index: int) -> None:
        if not self._entries:
            return
        index = min(max(index, 0), len(self._entries) - 1)
        self._cursor = index
        top = self.scroll_offset.y
        visible = self._visible_rows()
        if index < top:
            self.scroll_to(y=index, animate=False, immediate=True)
        elif index >= top + visible:
            self.scroll_to(y=index - visible + 1, animate=False, immediate=True)
        self._strip_cache.clear()
        self.refresh()

    def _cell(self, text: str, width: int, style: str | Style = "") -> Text:
        cell = Text(text, style=style, no_wrap=True, end="")
        cell.truncate(width, overflow="ellipsis", pad=True)
        return cell

    def _line_text(self, cells: tuple[str, ...], widths: tuple[int, ...],
                   styles: tuple[str, ...]) -> Text:
        line = Text(no_wrap=True, end="")
        for index, (text, width, style) in enumerate(zip(cells, widths, styles, strict=True)):
            if index:
                line.append(" ")
            line.append_text(self._cell(text, width, style))
        return line

    def _header_strip(self, width: int) -> Strip:
        header_style = self.get_component_rich_style("eventlog--header")
        widths = column_widths(width, self._time_width)
        line = self._line_text(HEADERS, widths, ("",) * 6)
        line.stylize(header_style)
        marker = self.marker_text
        if marker and len(marker) + 1 < width:
            line.truncate(width - len(marker) - 1, pad=True)
            line.append(" ")
            line.append(marker, self.get_component_rich_style("eventlog--marker"))
        line.truncate(width, pad=True)
        return Strip(list(line.render(self.app.console)), width)

    def _row_strip(self, index: int, width: int) -> Strip:
        is_cursor = index == self._cursor
        entry = self._entries[index]
        cache_key = (entry.seq, width, is_cursor)
        cached = self._strip_cache.get(cache_key)
        if cached is not None:
            return cached
        widths = column_widths(width, self._time_width)
        styles = ("dim", "bold", "", "", entry.arrival_style, entry.flag_style)
        line = self._line_text(entry.cells, widths, styles)
        line.truncate(width, pad=True)
        if is_cursor:
            line.stylize(self.get_component_rich_style("eventlog--cursor"))
        strip = Strip(list(line.render(self.app.console)), width)
        self._strip_cache[cache_key] = strip
        return strip

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            return self._header_strip(width).apply_style(base)
        index = self.scroll_offset.y + y - 1
        if index < 0 or index >= len(self._entries):
            return Strip.blank(width, base)
        return self._row_strip(index, width).apply_style(base)

    def row_text(self, index: int) -> str:
        """The plain text of row `index` as drawn at the current width (for tests/copy)."""
        width = max(1, self.scrollable_content_region.width)
        return self._row_strip(index, width).text

    def header_text(self) -> str:
        """The plain text of the header line at the current width."""
        width = max(1, self.scrollable_content_region.width)
        return self._header_strip(width).text

    # ------------------------------------------------------------------ actions

    def action_toggle_follow(self) -> None:
        """Turn follow mode on (jumping to the newest row) or off."""
        self.follow = not self.follow

    def action_cursor_up(self) -> None:
        """Move the cursor one row up."""
        if self._cursor is not None:
            self._move_cursor(self._cursor - 1)

    def action_cursor_down(self) -> None:
        """Move the cursor one row down."""
        self._move_cursor(0 if self._cursor is None else self._cursor + 1)

    def action_page_up_rows(self) -> None:
        """Move the cursor a page up."""
        if self._cursor is not None:
            self._move_cursor(self._cursor - self._visible_rows())

    def action_page_down_rows(self) -> None:
        """Move the cursor a page down."""
        start = 0 if self._cursor is None else self._cursor
        self._move_cursor(start + self._visible_rows())

    def action_first(self) -> None:
        """Move the cursor to the oldest row."""
        self._move_cursor(0)

    def action_last(self) -> None:
        """Move to the newest row and the bottom (clears the "+N new" marker)."""
        if self._entries:
            self._move_cursor(len(self._entries) - 1)
        self.scroll_end(animate=False, immediate=True, x_axis=False)
        self._pending = 0
        self.refresh()

    def action_select(self) -> None:
        """Post `Selected` for the row under the cursor."""
        row = self.selected_row
        if row is not None:
            self.post_message(self.Selected(self, row))

    def on_click(self, event: events.Click) -> None:
        """Put the cursor on the clicked row."""
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        self._move_cursor(self.scroll_offset.y + offset.y - 1)
