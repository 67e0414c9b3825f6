"""A compositor whose partial updates start where the change starts, not where the widget does.

Textual (8.2.8, ``textual/_compositor.py``) turns the dirty regions of a frame into spans
``(y, x1, x2)`` and writes, for every widget strip ("chop") a span touches, the strip from the
widget's left edge up to ``x2``. A table cell that changes every second at column 40 of a row
therefore re-sends the 38 unchanged cells to its left, with their colour codes, every second.
:class:`TrimmedCompositor` writes only ``x1..x2`` of such a strip. The cells it no longer sends
were not dirty: the terminal already shows exactly what the compositor would draw there.

A strip holding a character wider (or narrower) than one cell, or a control segment, is sent
as Textual sends it, so a cut never falls inside a wide character.
"""

from __future__ import annotations

from rich.cells import get_character_cell_size
from rich.console import Console
from rich.control import Control
from textual._compositor import ChopsUpdate, Compositor
from textual.strip import Strip


def one_cell_per_character(strip: Strip) -> bool:
    """Whether every character of ``strip`` is one cell wide (cell offset == text offset)."""
    if any(segment.control for segment in strip):
        return False
    text = strip.text
    return (text.isascii() and text.isprintable()) or all(
        get_character_cell_size(character) == 1 for character in text)


class TrimmedChopsUpdate(ChopsUpdate):
    """A partial update that writes each touched strip from ``max(x1, strip start)``."""

    def render_segments(self, console: Console) -> str:
        """The update as terminal data: only the dirty cells of each line (see the module)."""
        out: list[str] = []
        last_y = self.spans[-1][0]
        for y, x1, x2 in self.spans:
            for end, (x, strip) in zip(self.chop_ends[y], self.chops[y].items(), strict=False):
                if strip is None or x >= x2 or end <= x1:
                    continue
                start = x1 if x < x1 and one_cell_per_character(strip) else x
                stop = min(end, x2)
                if (start, stop) != (x, end):
                    strip = strip.crop(start - x, stop - x)
                out.append(Control.move_to(start, y).segment.text)
                out.append(strip.render(console))
            if y != last_y:
                out.append("\n")
        return "".join(out)


class TrimmedCompositor(Compositor):
    """A :class:`Compositor` whose partial updates are :class:`TrimmedChopsUpdate`."""

    def render_partial_update(self) -> ChopsUpdate | None:
        """Textual's partial update, written from the first dirty cell of each span."""
        update = super().render_partial_update()
        if update is None:
            return None
        return TrimmedChopsUpdate(update.chops, update.spans, update.chop_ends)
