"""How a run's phase looks: a symbol, a word and a colour, so colour is never the only cue."""

from __future__ import annotations

from typing import NamedTuple

from rich.text import Text

PHASES = ("upcoming", "cancellable", "locked", "running", "finished")


class PhaseLook(NamedTuple):
    """The symbol, word and Rich style used to show one phase."""

    symbol: str
    word: str
    style: str


# Symbols are single-cell and outside emoji ranges so columns stay aligned on any terminal;
# the cancellable phase is the one an operator acts on, so it is upper case and bold.
PHASE_LOOKS: dict[str, PhaseLook] = {
    "upcoming": PhaseLook("◷", "upcoming", "cyan"),
    "cancellable": PhaseLook("●", "CANCELLABLE", "bold yellow"),
    "locked": PhaseLook("■", "locked", "red"),
    "running": PhaseLook("▶", "running", "bold blue"),
    "finished": PhaseLook("✓", "finished", "green"),
}
UNKNOWN_LOOK = PhaseLook("?", "unknown", "dim")


def phase_label(phase: str) -> Text:
    """Return the label for `phase`: e.g. "● CANCELLABLE" in bold yellow.

    The symbol and the word carry the meaning on their own (NO_COLOR, monochrome terminals);
    the colour only reinforces it. Matching is case-insensitive; anything that is not a known
    phase shows as "? unknown".
    """
    key = phase.strip().lower() if isinstance(phase, str) else ""
    look = PHASE_LOOKS.get(key, UNKNOWN_LOOK)
    return Text(f"{look.symbol} {look.word}", style=look.style, no_wrap=True, end="")
