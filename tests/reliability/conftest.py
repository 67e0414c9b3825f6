"""Fixtures of the reliability suite (the stand-in and Azurite come from tests/conftest.py):
a tally of what was injected, survived and lost.

The tally is printed at the end of the run (``-rA`` not needed) and is the source of the
table in docs/reliability.md.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

_TALLY: dict[str, Counter[str]] = {}


class Tally:
    """Counts per area: ``injected`` faults or inputs, ``survived`` (handled as designed),
    ``lost`` (data lost or a crash)."""

    def add(self, area: str, *, injected: int = 0, survived: int = 0, lost: int = 0) -> None:
        counter = _TALLY.setdefault(area, Counter())
        counter["injected"] += injected
        counter["survived"] += survived
        counter["lost"] += lost


@pytest.fixture(scope="session")
def tally() -> Tally:
    return Tally()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _TALLY:
        return
    terminalreporter.section("reliability tally")
    terminalreporter.write_line(f"{'area':<48} {'injected':>9} {'survived':>9} {'lost':>5}")
    for area in sorted(_TALLY):
        c = _TALLY[area]
        terminalreporter.write_line(
            f"{area:<48} {c['injected']:>9} {c['survived']:>9} {c['lost']:>5}")

