"""How the commands print: one-line clean text (control characters and markup-like text
neutralised), tables that fit the terminal (ids shortened in the middle, ``--wide`` whole)
and JSON that never fails on an odd value."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import unicodedata
from collections.abc import Sequence
from typing import Any


def clean(value: Any) -> str:
    """A value for a terminal cell: text from Azure is untrusted, so control characters
    (escape sequences) are shown escaped, never interpreted."""
    if value is None:
        return "-"
    text = str(value)
    return "".join(
        ch if unicodedata.category(ch)[0] != "C" else ch.encode("unicode_escape").decode()
        for ch in text
    )


#: A column shortened to fit the terminal keeps at least this many characters.
MIN_FITTED_COLUMN = 10
_GAP = 2


def shorten_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters: its middle replaced by ``…``, keeping more of
    the end (the part of an Azure id that names the thing) than of the start."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    end = (width - 1) * 2 // 3
    start = width - 1 - end
    return text[:start] + "…" + (text[-end:] if end else "")


def terminal_columns() -> int | None:
    """The width to fit tables into: the terminal's (or ``COLUMNS``); None when stdout is no
    terminal and ``COLUMNS`` is unset (a pipe or a file gets every character)."""

    if "COLUMNS" not in os.environ and not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def fit_widths(headers: Sequence[str], widths: Sequence[int], limit: int,
               shrink: Sequence[int]) -> list[int]:
    """Column widths whose table is at most ``limit`` wide, taken one character at a time
    from the widest of the ``shrink`` columns (never below its header or
    :data:`MIN_FITTED_COLUMN`). The table can stay wider when that is not enough."""
    fitted = list(widths)
    excess = sum(fitted) + _GAP * (len(fitted) - 1) - limit
    floors = {i: max(len(headers[i]), MIN_FITTED_COLUMN) for i in shrink}
    while excess > 0:
        room = [i for i in shrink if fitted[i] > floors[i]]
        if not room:
            break
        widest = max(room, key=lambda i: fitted[i])
        fitted[widest] -= 1
        excess -= 1
    return fitted


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *,
                width: int | None = None, shrink: Sequence[int] = ()) -> None:
    """A plain aligned table on stdout. With ``width``, the ``shrink`` columns are narrowed
    (each cell shortened in the middle) until the table fits in ``width`` characters."""
    cells = [[clean(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    if width is not None and shrink:
        widths = fit_widths(headers, widths, width, shrink)
        cells = [[shorten_middle(c, w) for c, w in zip(row, widths, strict=True)]
                 for row in cells]
    gap = " " * _GAP
    print(gap.join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        print(gap.join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# JSON escapes C0 controls itself, but with ensure_ascii=False it writes C1 controls (U+009B
# is a one-byte CSI on some terminals), bidi overrides and line separators raw: `--json` on a
# terminal would obey them (found by the reliability suite). They can only occur inside JSON
# strings, so a \uXXXX escape keeps the document valid and the value unchanged.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def safe_json(value: Any, *, indent: int | None = None) -> str:
    """JSON text safe to write to a terminal: non-ASCII kept readable, control and format
    characters escaped as ``\\uXXXX``."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def print_json(items: Sequence[dict[str, Any]]) -> None:
    sys.stdout.write(safe_json(list(items), indent=2))
    sys.stdout.write("\n")
