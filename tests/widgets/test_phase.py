"""phase_label: word, symbol and colour for every phase; meaning survives without colour."""

from __future__ import annotations

import pytest
from rich.console import Console

from widgets.phase import OUTCOMES, PHASES, phase_label


@pytest.mark.parametrize(
    ("phase", "plain"),
    [
        ("upcoming", "◷ upcoming"),
        ("cancellable", "● CANCELLABLE"),
        ("locked", "■ locked"),
        ("running", "▶ running"),
        ("finished", "◇ finished"),  # a bare phase claims no success
        ("succeeded", "✓ succeeded"),
        ("warnings", "! warnings"),
        ("failed", "✗ failed"),
        ("timed-out", "✗ timed out"),
        ("cancelled", "⊘ cancelled"),
        ("ended", "◇ ended"),
        ("Cancellable", "● CANCELLABLE"),
        ("no-such-phase", "? unknown"),
        ("", "? unknown"),
    ],
)
def test_label_has_symbol_and_word(phase: str, plain: str) -> None:
    assert phase_label(phase).plain == plain


def test_every_phase_looks_different_in_words_and_in_colour() -> None:
    labels = [phase_label(phase) for phase in PHASES]
    assert len({label.plain for label in labels}) == len(PHASES)
    assert len({str(label.style) for label in labels}) == len(PHASES)


def test_only_a_success_wears_the_success_mark_and_colour() -> None:
    success = phase_label("succeeded")
    for other in [*PHASES, *OUTCOMES]:
        if other == "succeeded":
            continue
        label = phase_label(other)
        assert "✓" not in label.plain, other
        assert "green" not in str(label.style), other
    assert str(success.style) == "green"


def test_outcomes_differ_in_words() -> None:
    assert len({phase_label(o).plain for o in OUTCOMES}) == len(OUTCOMES)


def test_cancellable_is_bold() -> None:
    assert "bold" in str(phase_label("cancellable").style)


def test_without_colour_the_label_still_reads_the_same() -> None:
    console = Console(no_color=True, force_terminal=True, width=40)
    with console.capture() as capture:
        console.print(phase_label("locked"))
    output = capture.get()
    assert "■ locked" in output
    assert "\x1b[31m" not in output  # no red foreground code
