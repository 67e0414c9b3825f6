"""TrimmedCompositor: a partial update writes a line from its first dirty cell, not the widget's."""

from __future__ import annotations

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from textual._compositor import ChopsUpdate
from textual.strip import Strip

from widgets.compositor import TrimmedChopsUpdate

BOLD = Style(bold=True)
PLAIN = Style(color="red")


def console() -> Console:
    return Console(color_system="truecolor", force_terminal=True, width=80)


def row(text_before: str, text_after: str) -> Strip:
    """A table-like line: a bold name cell, then plain cells."""
    return Strip([Segment(text_before, BOLD), Segment(text_after, PLAIN)])


def update(strip: Strip, x: int, x1: int, x2: int, cls: type[ChopsUpdate]) -> str:
    """One line (y=0): a widget strip starting at column ``x``, dirty from x1 to x2."""
    end = x + strip.cell_length
    chops = [{0: None, x: strip}] if x else [{0: strip}]
    chop_ends = [[x, end]] if x else [[end]]
    return cls(chops, [(0, x1, x2)], chop_ends).render_segments(console())


def test_a_dirty_cell_mid_line_is_written_from_that_cell() -> None:
    strip = row("patch-weu-web      ", " 05:35  | more cells after it")
    out = update(strip, 2, 21, 29, TrimmedChopsUpdate)
    assert out.startswith("\x1b[1;22H")  # line 1, column 22 (1-based) = x1
    assert "patch-weu-web" not in out
    assert "05:35" in out and "more" not in out
    # Textual's own update re-sends the name cell to the left of the change.
    textual = update(strip, 2, 21, 29, ChopsUpdate)
    assert textual.startswith("\x1b[1;3H") and "patch-weu-web" in textual
    assert len(out) < len(textual)


def test_the_cells_written_are_the_dirty_cells_with_their_style() -> None:
    strip = row("abcdef", "ghijkl")
    out = update(strip, 0, 4, 8, TrimmedChopsUpdate)
    plain = console()
    expected = Strip([Segment("ef", BOLD), Segment("gh", PLAIN)]).render(plain)
    assert out == "\x1b[1;5H" + expected


def test_a_line_with_a_wide_character_is_written_as_textual_does() -> None:
    strip = row("名前-web   ", " 05:35   ")  # "名" and "前" are two cells each
    ours = update(strip, 2, 15, 20, TrimmedChopsUpdate)
    assert ours == update(strip, 2, 15, 20, ChopsUpdate)
    assert ours.startswith("\x1b[1;3H")


def test_a_dirty_span_covering_the_whole_strip_is_unchanged() -> None:
    strip = row("abc", "def")
    assert update(strip, 3, 0, 40, TrimmedChopsUpdate) == update(strip, 3, 0, 40, ChopsUpdate)


def test_a_span_beyond_the_strip_writes_nothing_of_it() -> None:
    strip = row("abc", "def")
    assert update(strip, 0, 6, 10, TrimmedChopsUpdate) == ""
