"""A label and the time left to a stored deadline, ticking once a second from an injected clock."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta

from rich.console import Group, RenderableType
from rich.style import Style
from rich.text import Text
from textual.app import RenderResult
from textual.geometry import Region, Size
from textual.message import Message
from textual.renderables.digits import DIGITS as BIG_DIGIT_CHARS
from textual.renderables.digits import Digits as BigDigits
from textual.strip import Strip
from textual.timer import Timer
from textual.visual import Visual, VisualType, visualize
from textual.widgets import Static

from widgets.compositor import one_cell_per_character
from widgets.sanitize import sanitize

LABEL_MAX_LEN = 60


def format_remaining(delta: timedelta) -> str:
    """Format a time left compactly: "06:12" under an hour, "1:02:03" under a day, "2d 4h".

    Seconds are rounded up, so "00:00" appears only once the deadline is reached and a
    window that closes in 0.3 s still reads "00:01". A negative delta reads "00:00".
    """
    seconds = max(0, math.ceil(delta.total_seconds()))
    if seconds < 3600:
        minutes, secs = divmod(seconds, 60)
        return f"{minutes:02d}:{secs:02d}"
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        return f"{hours}:{minutes:02d}:{secs:02d}"
    days, rest = divmod(seconds, 86400)
    return f"{days}d {rest // 3600}h"


def _require_aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")


class Countdown(Static):
    """Shows "<label> <time left>", e.g. "cancel closes in 06:12".

    The deadline is stored; the text is recomputed from `now()` once a second (and on
    `tick()`), and the widget is refreshed only when the text changes, and then only in the
    cells whose drawing changed (a tick from 06:12 to 06:11 repaints the last big digit, not
    the label and the other digits). With `large=True` the time is drawn with 3-line digits
    under the label (4 lines in all) for the run panel.
    """

    DEFAULT_CSS = """
    Countdown {
        height: auto;
        width: auto;
    }
    Countdown.-expired {
        color: $text-muted;
    }
    """

    class Reached(Message):
        """Posted once when the displayed deadline is reached, so the app can move on."""

        def __init__(self, countdown: Countdown, label: str, deadline: datetime) -> None:
            super().__init__()
            self.countdown = countdown
            self.label = label
            self.deadline = deadline

        @property
        def control(self) -> Countdown:
            """The countdown that reached its deadline."""
            return self.countdown

    def __init__(
        self,
        now: Callable[[], datetime],
        *,
        label: str = "",
        deadline: datetime | None = None,
        large: bool = False,
        idle_text: str = "",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """Create a countdown.

        Args:
            now: The app's clock; the widget never reads the system time itself.
            label: Words before the time, e.g. "cancel closes in".
            deadline: Timezone-aware deadline, or None for nothing to count down to.
            large: Draw the time with big digits under the label.
            idle_text: What to show while there is no deadline.
        """
        super().__init__("", markup=False, name=name, id=id, classes=classes)
        self._now = now
        self._label = ""
        self._deadline: datetime | None = None
        self._large = large
        self._idle_text = sanitize(idle_text, LABEL_MAX_LEN)
        self._shown: str | None = None
        self._shown_shape: tuple[object, ...] | None = None
        self._reached_posted = False
        self._timer: Timer | None = None
        # Whether set_target was called since the own timer last fired (see _own_tick).
        self._driven = False
        # What render() shows, and the lines it was last drawn as (size and base style
        # they were drawn at): the previous frame to diff a digits-only change against.
        self._drawing: VisualType = Text("")
        self._drawn: tuple[Size, Style, list[Strip]] | None = None
        self.set_target(label, deadline)

    @property
    def label(self) -> str:
        """The current (sanitized) label."""
        return self._label

    @property
    def deadline(self) -> datetime | None:
        """The stored deadline, or None."""
        return self._deadline

    @property
    def text(self) -> str:
        """The plain text currently shown, e.g. "cancel closes in 06:12"."""
        return self._shown or ""

    def render(self) -> RenderResult:
        """The countdown as last set by :meth:`update`."""
        return self._drawing

    def render_line(self, y: int) -> Strip:
        """Line ``y``: the lines :meth:`update` drew to find what changed, while they are
        current (same size and style), so a tick draws the time once rather than twice."""
        drawn = self._drawn
        if drawn is not None and drawn[0] == self.size \
                and drawn[1] == self.visual_style.rich_style:
            lines = drawn[2]
            return lines[y] if 0 <= y < len(lines) else Strip.blank(drawn[0].width, drawn[1])
        return super().render_line(y)

    def update(self, content: VisualType = "", *, layout: bool = True) -> None:
        """Show ``content`` (as :meth:`Static.update`).

        Without ``layout`` (the caller knows the size does not change) only the cells whose
        drawing differs from the current one are repainted; otherwise the whole widget.
        """
        previous, self._drawing = self._drawing, content
        size = self.size
        if layout or not self.is_mounted or not size.area:
            self._drawn = None
            self.refresh(layout=layout)
            return
        style = self.visual_style.rich_style
        drawn = self._drawn
        # The previous content at this size and style is what the screen shows (a resize or
        # a style change repaints the whole widget anyway).
        before = drawn[2] if drawn is not None and drawn[:2] == (size, style) \
            else self._lines(previous, size)
        after = self._lines(content, size)
        self._drawn = (size, style, after)
        regions = changed_cells(before, after, size.width)
        if regions:
            self.refresh(*regions)

    def _lines(self, content: VisualType, size: Size) -> list[Strip]:
        """``content`` drawn as this widget draws it (as Widget._render_content does)."""
        visual = visualize(self, content, markup=False)
        return Visual.to_strips(self, visual, size.width, size.height, self.visual_style)

    def on_mount(self) -> None:
        self._timer = self.set_interval(1.0, self._own_tick)
        self.tick()

    def _own_tick(self) -> None:
        """The widget's own once-a-second tick, standing in for a parent that stopped.

        A parent that sets the target every second (the run panel's tick does) already
        ticks the widget; a second timer at another phase of the second would repaint it in
        a frame of its own. So the own timer skips a second in which set_target was called.
        """
        if self._driven:
            self._driven = False
            return
        self.tick()

    def set_target(self, label: str, deadline: datetime | None) -> None:
        """Count down to `deadline` (timezone-aware) under `label`; None shows the idle text.

        Raises:
            ValueError: `deadline` is naive.
        """
        if deadline is not None:
            _require_aware(deadline, "Countdown deadline")
        changed = (label, deadline) != (self._label, self._deadline)
        self._label = sanitize(label, LABEL_MAX_LEN)
        self._deadline = deadline
        if changed:
            self._reached_posted = False
        self._driven = True
        self.tick()

    def current_text(self) -> str:
        """The text the countdown should show at `now()`."""
        return self._text_at(self._now())

    def _text_at(self, now: datetime) -> str:
        if self._deadline is None:
            return self._idle_text
        remaining = format_remaining(self._deadline - now)
        return f"{self._label} {remaining}" if self._label else remaining

    def tick(self) -> None:
        """Recompute the text from the clock; refresh only when it changed.

        Called by the widget's own one-second timer; tests (and an app that moved its clock)
        may call it directly. It never raises on a bad clock value: it shows "--:--".
        """
        try:
            now = self._now()
            text = self._text_at(now)
            reached = self._deadline is not None and now >= self._deadline
        except (TypeError, ValueError, OverflowError):
            # A naive or broken clock must not kill the timer callback.
            text, reached = f"{self._label} --:--".strip(), False
        self.set_class(reached, "-expired")
        if text != self._shown:
            # A layout pass is needed only when the size can change: another length
            # ("59:59" -> "1:00:00"), label or kind of drawing (big digits or letters).
            # A tick that only changes digits is a repaint of this widget alone.
            shape = self._shape(text)
            relayout = shape != self._shown_shape
            self._shown, self._shown_shape = text, shape
            self.update(self._renderable(text), layout=relayout)
        # Before mounting there is nobody to tell; on_mount ticks again.
        if reached and not self._reached_posted and self.is_mounted:
            assert self._deadline is not None
            self._reached_posted = True
            self.post_message(self.Reached(self, self._label, self._deadline))

    def _shape(self, text: str) -> tuple[object, ...]:
        """What the widget's size depends on: every glyph of the big-digit font and of
        plain text is as wide as any other of the same kind, so the length, the label and
        whether the time is drawn in big digits decide it."""
        return (len(text), self._label, self._deadline is None,
                self._large and all(char in BIG_DIGIT_CHARS for char in text[len(self._label):]
                                    .strip()))

    def _renderable(self, text: str) -> RenderableType:
        if not self._large or self._deadline is None:
            return Text(text, no_wrap=True, overflow="ellipsis", end="")
        remaining = text[len(self._label) :].strip() if self._label else text
        if all(char in BIG_DIGIT_CHARS for char in remaining):
            time_part: RenderableType = BigDigits(remaining, style="bold")
        else:
            # "2d 4h" has letters the big-digit font cannot draw.
            time_part = Text(remaining, style="bold", no_wrap=True)
        return Group(Text(self._label, style="bold", no_wrap=True), time_part)


def changed_cells(before: list[Strip], after: list[Strip], width: int) -> list[Region]:
    """The cells (one region per line) where ``after`` draws differently from ``before``.

    A line holding a character that is not one cell wide is compared as a whole line.
    """
    regions: list[Region] = []
    for y in range(max(len(before), len(after))):
        old = before[y] if y < len(before) else Strip([])
        new = after[y] if y < len(after) else Strip([])
        if old == new:
            continue
        old_cells, new_cells = _cells(old), _cells(new)
        if old_cells is None or new_cells is None:
            regions.append(Region(0, y, width, 1))
            continue
        length = max(len(old_cells), len(new_cells))
        old_cells += [None] * (length - len(old_cells))
        new_cells += [None] * (length - len(new_cells))
        diff = [x for x in range(length) if old_cells[x] != new_cells[x]]
        if diff:
            regions.append(Region(diff[0], y, diff[-1] - diff[0] + 1, 1))
    return regions


def _cells(strip: Strip) -> list[tuple[str, Style | None] | None] | None:
    """Each cell of ``strip`` as (character, style); None when a character is not one cell."""
    if not one_cell_per_character(strip):
        return None
    return [(character, segment.style) for segment in strip for character in segment.text]
