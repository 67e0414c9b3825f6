"""Diffing rows into a DataTable: one equality rule for every table of the app.

A cell is a :class:`rich.text.Text` (drawn literally, never as markup); a row is redrawn only
in the cells whose text, style, spans or sort key changed. Repainting a cell is the costly
part of a DataTable update, and a poll usually changes few cells of few rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable


class SortText(Text):
    """A table cell that also carries the value the table sorts on."""

    sort_key: Any = None


def sort_text(text: str, sort_key: Any, style: str = "") -> SortText:
    """A one-line cell showing ``text`` and sorting on ``sort_key``."""
    cell = SortText(text, style=style, no_wrap=True, end="")
    cell.sort_key = sort_key
    return cell


def same_cell(old: object, new: Text) -> bool:
    """Whether ``old`` draws and sorts exactly like ``new`` (the one equality rule)."""
    return (isinstance(old, Text) and old.plain == new.plain and old.style == new.style
            and old.spans == new.spans
            and getattr(old, "sort_key", None) == getattr(new, "sort_key", None))


def update_row(table: DataTable[Any], key: str, columns: Sequence[str],
               cells: Sequence[Text], drawn: Sequence[Text] | None = None) -> bool:
    """Add the row ``key``, or write only its cells that differ.

    ``drawn``: the cells the row was last drawn with, when the caller keeps them (cheaper
    than reading them back from the table). Returns True when the row was added.
    """
    if key not in table.rows:
        table.add_row(*cells, key=key)
        return True
    old_cells = drawn if drawn is not None else [table.get_cell(key, c) for c in columns]
    for column, old, cell in zip(columns, old_cells, cells, strict=True):
        if not same_cell(old, cell):
            table.update_cell(key, column, cell)
    return False


def ordered_keys(table: DataTable[Any]) -> list[Any]:
    """The row keys in the order the table shows them."""
    return [table.coordinate_to_cell_key(Coordinate(i, 0)).row_key
            for i in range(table.row_count)]


def column_key(table: DataTable[Any], name: str) -> Any:
    """The column key named ``name``, or None."""
    for key in table.columns:
        if key.value == name:
            return key
    return None


def restore_cursor(table: DataTable[Any], key: str | None) -> None:
    """Put the cursor back on row ``key`` (after a sort or an insert moved it)."""
    if key is None or key not in table.rows:
        return
    index = table.get_row_index(key)
    if table.cursor_row != index:
        table.move_cursor(row=index, animate=False)
