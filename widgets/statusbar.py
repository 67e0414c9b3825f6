"""The status bar: data age per source, quota/throttle, queue, clock skew, lock, pause, error.

The widget takes a `StatusData` of plain values; `status_lines` (pure) decides what fits:
items carry a priority and the least important are dropped until the line fits the width,
so the bar never wraps at 80 columns. The last error, when there is one, gets a second line
of its own, cut to the width.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from humanize import intcomma
from rich.console import RenderableType
from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

from widgets.sanitize import sanitize

STYLE_WARN = "bold yellow"
STYLE_ALERT = "bold red"
STYLE_PAUSED = "bold reverse yellow"
STYLE_LOCK = "bold magenta"
STYLE_DIM = "dim"
SEPARATOR = " │ "

DEFAULT_STALE_AFTER = timedelta(seconds=60)
ERROR_MAX_LEN = 500


@dataclass(frozen=True)
class SourceAge:
    """How old one source's data is ("configs 12s"); None = never loaded."""

    name: str
    age: timedelta | None
    stale_after: timedelta = DEFAULT_STALE_AFTER

    @property
    def stale(self) -> bool:
        """True when the data is missing or older than `stale_after`."""
        return self.age is None or self.age > self.stale_after


@dataclass(frozen=True)
class StatusData:
    """Everything the status bar can show; every field optional.

    Attributes:
        sources: data age per source, shown in this order.
        quota_remaining: Resource Graph requests left in the current quota window.
        throttled_for: time left until Resource Graph may be queried again (None = not).
        queue_mode: "peek" or "consume".
        queue_depth: messages seen in the queue.
        queue_depth_capped: the peek returned its maximum, so the depth is "at least".
        clock_skew: local clock minus server clock.
        skew_warning: the skew is large enough to warn about (the caller judges it by the
            one threshold in services.domain.clock; the widget only shows the verdict).
        read_only: cancelling is disabled (flag, config or lock).
        paused: refresh paused by the operator.
        last_error: the last error, one line (untrusted text, sanitized here).
        notice: a passing message ("report written to ..."), one line, shown on the second
            line when there is no error (sanitized here too).
    """

    sources: tuple[SourceAge, ...] = field(default_factory=tuple)
    quota_remaining: int | None = None
    throttled_for: timedelta | None = None
    queue_mode: str | None = None
    queue_depth: int | None = None
    queue_depth_capped: bool = False
    clock_skew: timedelta | None = None
    skew_warning: bool = False
    read_only: bool = False
    paused: bool = False
    last_error: str | None = None
    notice: str | None = None


def format_age(age: timedelta | None) -> str:
    """Compact age: "<10s", "20s", "5m", "2h", "3d"; "–" for never.

    Under a minute the age moves in 10-second steps: a data age is read for "fresh or not",
    and a bar whose text changed every second was rewritten to the terminal every second
    (the events source, polled each second, flipped between "0s" and "1s"), the largest
    steady share of what the dashboard draws when nothing happens. Not humanize's words on
    purpose: the bar is one line that must fit 80 columns with every item, and "configs
    12 seconds ago" would push the quota and queue off it."""
    if age is None:
        return "–"
    seconds = max(0, int(age.total_seconds()))
    if seconds < 10:
        return "<10s"
    if seconds < 60:
        return f"{seconds // 10 * 10}s"
    return format_span(age)


def format_span(span: timedelta) -> str:
    """Compact, to the second under a minute: "42s", "5m", "2h", "3d" (how long Resource
    Graph stays throttled: the operator waits for it, so it counts down exactly)."""
    seconds = max(0, int(span.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def format_skew(skew: timedelta) -> str:
    """Signed skew with a tenth of a second: "+2.1s", "-0.4s"; minutes when large."""
    seconds = skew.total_seconds()
    if abs(seconds) >= 120:
        return f"{seconds / 60:+.0f}m"
    return f"{seconds:+.1f}s"


@dataclass(frozen=True)
class _Item:
    priority: float  # lower = more important, kept longest
    text: Text


def _items(data: StatusData) -> list[_Item]:
    """The bar's items in display order, each with its priority."""
    items: list[_Item] = []
    if data.paused:
        items.append(_Item(0, Text("‖ PAUSED", style=STYLE_PAUSED)))
    if data.read_only:
        items.append(_Item(1, Text("■ read-only", style=STYLE_LOCK)))
    for index, source in enumerate(data.sources):
        name = sanitize(source.name, 20)
        style = STYLE_WARN if source.stale else ""
        mark = "!" if source.stale else ""
        # Stale sources matter more than fresh ones; among equals keep the first listed.
        priority = (2 if source.stale else 5) + index * 0.01
        text = Text(f"{name} {format_age(source.age)}{mark}", style=style)
        items.append(_Item(priority, text))
    if data.throttled_for is not None:
        items.append(_Item(3, Text(f"ARG throttled {format_span(data.throttled_for)}",
                                   style=STYLE_ALERT)))
    elif data.quota_remaining is not None:
        low = data.quota_remaining <= 3
        items.append(_Item(4 if low else 8, Text(f"quota {data.quota_remaining}",
                                                 style=STYLE_WARN if low else STYLE_DIM)))
    if data.queue_mode is not None or data.queue_depth is not None:
        mode = sanitize(data.queue_mode or "queue", 10)
        depth = ""
        if data.queue_depth is not None:
            depth = f" {intcomma(data.queue_depth)}{'+' if data.queue_depth_capped else ''}"
        style = STYLE_WARN if data.queue_depth_capped else ""
        items.append(_Item(6, Text(f"{mode}{depth}", style=style)))
    if data.clock_skew is not None:
        warn = data.skew_warning
        items.append(_Item(3.5 if warn else 9, Text(f"skew {format_skew(data.clock_skew)}",
                                                    style=STYLE_WARN if warn else STYLE_DIM)))
    return items


def _drawn(data: StatusData) -> tuple[object, ...]:
    """What `status_lines` draws from `data`, at any width: the items (priority, text,
    styles) and the error. Two data with the same value here draw the same lines."""
    items = tuple((item.priority, item.text.plain, str(item.text.style),
                   tuple(item.text.spans)) for item in _items(data))
    return items, data.last_error, data.notice


def _join(items: list[_Item]) -> Text:
    line = Text(no_wrap=True, end="")
    for index, item in enumerate(items):
        if index:
            line.append(SEPARATOR, style=STYLE_DIM)
        line.append_text(item.text)
    return line


def status_lines(data: StatusData, width: int) -> list[Text]:
    """Lay out `data` in `width` cells: one line of items, plus one for the last error (or,
    without one, the notice).

    Items are dropped least-important first until the line fits; the error line is cut to
    the width with an ellipsis. No returned line is wider than `width`.
    """
    width = max(1, width)
    items = _items(data)
    kept = list(items)
    while kept and _join(kept).cell_len > width:
        kept.remove(max(kept, key=lambda item: item.priority))
    line = _join(kept)
    line.truncate(width, overflow="ellipsis")
    lines = [line]
    if data.last_error:
        error = Text("✗ ", style=STYLE_ALERT, no_wrap=True, end="")
        error.append(sanitize(data.last_error, ERROR_MAX_LEN), style=STYLE_ALERT)
        error.truncate(width, overflow="ellipsis")
        lines.append(error)
    elif data.notice:
        notice = Text("✓ ", style=STYLE_DIM, no_wrap=True, end="")
        notice.append(sanitize(data.notice, ERROR_MAX_LEN))
        notice.truncate(width, overflow="ellipsis")
        lines.append(notice)
    return lines


class StatusBar(Widget):
    """Bottom status bar: call `update_status(StatusData(...))`; it redraws only on change."""

    DEFAULT_CSS = """
    StatusBar {
        dock: bottom;
        height: auto;
        max-height: 2;
        width: 1fr;
        background: $panel;
        padding: 0 1;
    }
    """

    def __init__(
        self,
        data: StatusData | None = None,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._data = data or StatusData()

    @property
    def data(self) -> StatusData:
        """What the bar currently shows."""
        return self._data

    def update_status(self, data: StatusData) -> bool:
        """Show `data`; returns True when what the bar draws changed (and a redraw was
        requested). Data that differs only below the shown grain (an age of 12.3 s and one
        of 12.9 s both read "12s") is stored without a redraw."""
        old, self._data = self._data, data
        if data == old or _drawn(data) == _drawn(old):
            return False
        # The height changes only when the error line appears or goes.
        self.refresh(layout=bool(data.last_error) != bool(old.last_error))
        return True

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return 2 if self._data.last_error else 1

    def render(self) -> RenderableType:
        # Text.join, not Group: each line is a one-line Text without a trailing newline.
        return Text("\n", no_wrap=True, end="").join(status_lines(self._data, self.size.width))

    def plain_lines(self) -> list[str]:
        """The text of each line as drawn at the current width (for tests and export)."""
        return [line.plain for line in status_lines(self._data, self.size.width)]
