"""A one-glance horizontal timeline of a run, from the scope freeze (T-40) to its end.

Three rows::

     ┄┄┄┄┄  ▼ now
    ━━━━━━━━━━━◆━━━━━━━━━━━━───────────═══════════════════════════════
    freeze     pre         close      start                         end

Row 0 holds the expected pre-event interval (dim ┄) and the "now" marker; row 1 the bar,
whose glyph says the phase of each stretch (━ cancellable, ─ locked, ═ running, · after the
end) and ◆ where a pre/post event actually arrived; row 2 the labels, placed by priority
and dropped when they would collide (narrow terminals keep the bar and the most important
words).

The scale is piecewise linear: the stretch before the start (where the operator can act)
always gets `pre_fraction` of the width, the run the rest, so a four-hour run does not
squeeze the 30-minute cancel window into three cells.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

DEFAULT_PRE_FRACTION = 0.6

# Label priority, most important first: the operator's question is "can I still cancel".
LABEL_PRIORITY = ("start", "close", "pre", "end", "freeze", "post")

GLYPH_CANCELLABLE = "━"
GLYPH_LOCKED = "─"
GLYPH_RUNNING = "═"
GLYPH_AFTER = "·"
GLYPH_ARRIVAL = "◆"
GLYPH_EXPECTED = "┄"

STYLE_CANCELLABLE = "bold yellow"
STYLE_LOCKED = "red"
STYLE_RUNNING = "blue"
STYLE_AFTER = "dim"
STYLE_ARRIVAL = "bold green"
STYLE_EXPECTED = "dim"
STYLE_NOW = "bold reverse"


def _require_aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"TimelineData.{what} must be timezone-aware, got {value.isoformat()}")


@dataclass(frozen=True)
class TimelineData:
    """The instants a timeline shows; all timezone-aware.

    Attributes:
        start, end: the run's maintenance window.
        opens_at: when cancelling becomes possible (T-40, the scope freeze).
        closes_at: when cancelling stops being possible (cancel close).
        now: the app clock's current time.
        pre_event_at / post_event_at: actual arrival of the pre/post event, if any.
        pre_expected: the interval the pre-event is expected in (e.g. T-35..T-30), if known.
        freeze_at: the scope freeze when it differs from `opens_at`.
    """

    start: datetime
    end: datetime
    opens_at: datetime
    closes_at: datetime
    now: datetime
    pre_event_at: datetime | None = None
    post_event_at: datetime | None = None
    pre_expected: tuple[datetime, datetime] | None = None
    freeze_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end", "opens_at", "closes_at", "now"):
            _require_aware(getattr(self, name), name)
        for name in ("pre_event_at", "post_event_at", "freeze_at"):
            value = getattr(self, name)
            if value is not None:
                _require_aware(value, name)
        if self.pre_expected is not None:
            _require_aware(self.pre_expected[0], "pre_expected[0]")
            _require_aware(self.pre_expected[1], "pre_expected[1]")
            if self.pre_expected[0] > self.pre_expected[1]:
                raise ValueError("TimelineData.pre_expected must be (earliest, latest)")
        if not self.start < self.end:
            raise ValueError(f"TimelineData: start {self.start} must be before end {self.end}")
        if not self.opens_at <= self.closes_at <= self.start:
            raise ValueError(
                "TimelineData: need opens_at <= closes_at <= start, got "
                f"{self.opens_at}, {self.closes_at}, {self.start}"
            )

    @property
    def origin(self) -> datetime:
        """The left edge of the scale: the earlier of the freeze and the window opening."""
        return min(self.opens_at, self.freeze_at or self.opens_at)

    @property
    def scale_end(self) -> datetime:
        """The right edge of the scale: the end, or a post-event that arrived after it."""
        if self.post_event_at is not None and self.post_event_at > self.end:
            return self.post_event_at
        return self.end


@dataclass(frozen=True)
class TimelinePositions:
    """Column (0-based, within the width) of every mark; None when the mark is absent.

    `now_side` is -1 when now is before the scale, 1 when after, 0 when on it.
    """

    width: int
    freeze: int
    opens: int
    closes: int
    start: int
    end: int
    now: int
    now_side: int
    pre_event: int | None
    post_event: int | None
    pre_expected: tuple[int, int] | None


def timeline_positions(
    data: TimelineData, width: int, pre_fraction: float = DEFAULT_PRE_FRACTION
) -> TimelinePositions:
    """Compute the column of every mark of `data` on a bar `width` cells wide.

    Raises:
        ValueError: `width` < 1 or `pre_fraction` outside (0, 1).
    """
    if width < 1:
        raise ValueError(f"timeline width must be at least 1, got {width}")
    if not 0.0 < pre_fraction < 1.0:
        raise ValueError(f"pre_fraction must be between 0 and 1, got {pre_fraction}")
    last = width - 1
    start_col = round(pre_fraction * last)
    origin, scale_end = data.origin, data.scale_end
    pre_span = (data.start - origin).total_seconds()
    run_span = (scale_end - data.start).total_seconds()

    def col(when: datetime) -> int:
        if when <= origin:
            return 0
        if when >= scale_end:
            return last
        if when < data.start:
            # pre_span > 0 here: origin < when < start.
            return round((when - origin).total_seconds() / pre_span * start_col)
        run_part = (when - data.start).total_seconds() / run_span
        return start_col + round(run_part * (last - start_col))

    now_side = -1 if data.now < origin else (1 if data.now > scale_end else 0)
    expected = None
    if data.pre_expected is not None:
        expected = (col(data.pre_expected[0]), col(data.pre_expected[1]))
    return TimelinePositions(
        width=width,
        freeze=col(data.freeze_at or data.opens_at),
        opens=col(data.opens_at),
        closes=col(data.closes_at),
        start=start_col if pre_span > 0 else 0,
        end=col(data.end),
        now=col(data.now),
        now_side=now_side,
        pre_event=None if data.pre_event_at is None else col(data.pre_event_at),
        post_event=None if data.post_event_at is None else col(data.post_event_at),
        pre_expected=expected,
    )


def place_labels(
    positions: TimelinePositions, pre_arrived: bool = True
) -> list[tuple[int, str]]:
    """Place the mark labels on one row of `positions.width` cells, most important first.

    A label starts at its mark, or ends at it when it would run off the right edge; a label
    that would touch another (one blank cell between) is dropped. Returns (column, text)
    pairs sorted by column.
    """
    width = positions.width
    wanted: dict[str, tuple[int, str]] = {
        "start": (positions.start, "start"),
        "close": (positions.closes, "close"),
        "end": (positions.end, "end"),
        "freeze": (positions.freeze, "freeze"),
    }
    if positions.pre_event is not None:
        wanted["pre"] = (positions.pre_event, "pre" if pre_arrived else "pre?")
    elif positions.pre_expected is not None:
        wanted["pre"] = (positions.pre_expected[0], "pre?")
    if positions.post_event is not None:
        wanted["post"] = (positions.post_event, "post")

    taken: list[tuple[int, int]] = []  # half-open [from, to) cell spans, gap included
    placed: list[tuple[int, str]] = []
    for key in LABEL_PRIORITY:
        if key not in wanted:
            continue
        mark, text = wanted[key]
        if len(text) > width:
            continue
        for begin in (mark, mark - len(text) + 1):
            begin = min(max(begin, 0), width - len(text))
            span = (begin - 1, begin + len(text) + 1)
            if all(span[1] <= other[0] or span[0] >= other[1] for other in taken):
                taken.append((begin, begin + len(text)))
                placed.append((begin, text))
                break
    return sorted(placed)


def timeline_rows(
    data: TimelineData, width: int, pre_fraction: float = DEFAULT_PRE_FRACTION
) -> list[Text]:
    """Render `data` as three `Text` rows, each exactly `width` cells (see module docstring)."""
    pos = timeline_positions(data, width, pre_fraction)

    top = [" "] * width
    top_styles: list[str] = [""] * width
    if pos.pre_expected is not None:
        for c in range(pos.pre_expected[0], pos.pre_expected[1] + 1):
            top[c], top_styles[c] = GLYPH_EXPECTED, STYLE_EXPECTED
    marker = {-1: "◀", 0: "▼", 1: "▶"}[pos.now_side]
    top[pos.now], top_styles[pos.now] = marker, STYLE_NOW
    word = " now"
    if pos.now + len(word) < width:
        for i, char in enumerate(word, start=pos.now + 1):
            top[i], top_styles[i] = char, "bold"
    elif pos.now - len(word) >= 0:
        for i, char in enumerate("now ", start=pos.now - len(word)):
            top[i], top_styles[i] = char, "bold"

    bar = Text(no_wrap=True, end="")
    for c in range(width):
        if pos.pre_event == c or pos.post_event == c:
            bar.append(GLYPH_ARRIVAL, STYLE_ARRIVAL)
        elif c < pos.closes:
            bar.append(GLYPH_CANCELLABLE, STYLE_CANCELLABLE)
        elif c < pos.start:
            bar.append(GLYPH_LOCKED, STYLE_LOCKED)
        elif c <= pos.end:
            bar.append(GLYPH_RUNNING, STYLE_RUNNING)
        else:
            bar.append(GLYPH_AFTER, STYLE_AFTER)
    if pos.now_side == 0:
        bar.stylize("reverse", pos.now, pos.now + 1)

    labels = [" "] * width
    for begin, text in place_labels(pos, pre_arrived=data.pre_event_at is not None):
        labels[begin : begin + len(text)] = list(text)

    top_text = Text(no_wrap=True, end="")
    for char, style in zip(top, top_styles, strict=True):
        top_text.append(char, style)
    return [top_text, bar, Text("".join(labels), no_wrap=True, end="")]


class Timeline(Widget):
    """The run timeline widget: give it a `TimelineData` (or None to show nothing)."""

    DEFAULT_CSS = """
    Timeline {
        height: 3;
        width: 1fr;
    }
    """

    def __init__(
        self,
        data: TimelineData | None = None,
        *,
        pre_fraction: float = DEFAULT_PRE_FRACTION,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._data = data
        self._pre_fraction = pre_fraction

    @property
    def data(self) -> TimelineData | None:
        """What the timeline currently shows."""
        return self._data

    def update_data(self, data: TimelineData | None) -> None:
        """Show `data`; refreshes only when what is drawn changes.

        A new `now` alone moves the marker by a cell every few seconds or minutes (a
        two-hour scale on 100 cells: one cell a minute), so it redraws only when the
        marker's cell or side changes; the data is stored either way.
        """
        old, self._data = self._data, data
        if self._drawn_differently(old, data):
            self.refresh()

    def set_now(self, now: datetime) -> None:
        """Move the "now" marker (e.g. from the app's one-second tick)."""
        if self._data is not None:
            self.update_data(replace(self._data, now=now))

    def _drawn_differently(self, old: TimelineData | None, new: TimelineData | None) -> bool:
        if old is None or new is None:
            return old is not new
        if old == new:
            return False
        if replace(old, now=new.now) != new:
            return True  # something other than the marker moved
        width = self.size.width
        if width < 1:
            return False  # not laid out yet: the first render uses the stored data
        before = timeline_positions(old, width, self._pre_fraction)
        after = timeline_positions(new, width, self._pre_fraction)
        return (before.now, before.now_side) != (after.now, after.now_side)

    def render(self) -> RenderableType:
        width = self.size.width
        if self._data is None or width < 1:
            return Text("")
        # Text.join, not Group: each row is a one-line Text without a trailing newline.
        return Text("\n", no_wrap=True, end="").join(
            timeline_rows(self._data, width, self._pre_fraction)
        )
