"""How a run's phase or outcome looks: a symbol, a word and a colour, so colour is never the
only cue.

The words are the marks of ``services/domain/marks.py`` (a widget takes the plain string): the
window phases of a live run, then how a finished run ended. A finished run never wears the
success mark unless it succeeded.
"""

from __future__ import annotations

from typing import NamedTuple

from rich.text import Text

PHASES = ("upcoming", "cancellable", "locked", "running", "finished")
#: How a finished run ended (``ended``: its end passed, no status says how).
OUTCOMES = ("succeeded", "warnings", "failed", "timed-out", "cancelled", "ended")


class PhaseLook(NamedTuple):
    """The symbol, word and Rich style used to show one phase or outcome."""

    symbol: str
    word: str
    style: str


# Symbols are single-cell and outside emoji ranges so columns stay aligned on any terminal;
# the cancellable phase is the one an operator acts on, so it is upper case and bold. The
# outcomes use the wiring verdicts' vocabulary: ✓ good, ! look at it, ✗ failed, ⊘ stopped.
PHASE_LOOKS: dict[str, PhaseLook] = {
    "upcoming": PhaseLook("◷", "upcoming", "cyan"),
    "cancellable": PhaseLook("●", "CANCELLABLE", "bold yellow"),
    "locked": PhaseLook("■", "locked", "red"),
    "running": PhaseLook("▶", "running", "bold blue"),
    # A bare phase says nothing of the outcome: no success mark, no success colour.
    "finished": PhaseLook("◇", "finished", "dim"),
    "succeeded": PhaseLook("✓", "succeeded", "green"),
    "warnings": PhaseLook("!", "warnings", "dark_orange"),
    "failed": PhaseLook("✗", "failed", "bold red"),
    "timed-out": PhaseLook("✗", "timed out", "bold red"),
    "cancelled": PhaseLook("⊘", "cancelled", "yellow"),
    "ended": PhaseLook("◇", "ended", "dim italic"),
}
UNKNOWN_LOOK = PhaseLook("?", "unknown", "dim")


def phase_label(phase: str) -> Text:
    """Return the label for `phase` (a phase or an outcome mark): e.g. "● CANCELLABLE" in
    bold yellow, "⊘ cancelled" in yellow.

    The symbol and the word carry the meaning on their own (NO_COLOR, monochrome terminals);
    the colour only reinforces it. Matching is case-insensitive; anything that is not a known
    phase or outcome shows as "? unknown".
    """
    key = phase.strip().lower() if isinstance(phase, str) else ""
    look = PHASE_LOOKS.get(key, UNKNOWN_LOOK)
    return Text(f"{look.symbol} {look.word}", style=look.style, no_wrap=True, end="")
