"""Diffing rows into a DataTable: one equality rule for every table of the app.

A cell is a :class:`rich.text.Text` (drawn literally, never as markup); a row is redrawn only
in the cells whose text, style, spans or sort key changed. Repainting a cell is the costly
part of a DataTable update, and a poll usually changes few cells of few rows.

:class:`CellTable` is the DataTable the app's tables use: writing one cell repaints that
cell's region only. Textual's own ``update_cell`` repaints the whole widget, so a countdown
cell ticking once a second re-sent every visible row of the table to the terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.style import Style
from rich.text import Text
from textual._types import SegmentLines
from textual.cache import LRUCache
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.render import measure
from textual.widgets import DataTable
from textual.widgets._data_table import (
    CellDoesNotExist,
    CellType,
    ColumnKey,
    RowKey,
    default_cell_formatter,
)


class SortText(Text):
    """A table cell that also carries the value the table sorts on."""

    sort_key: Any = None


class CellTable(DataTable[CellType]):
    """A DataTable whose ``update_cell`` repaints only the cell it wrote.

    The cell-only path applies whenever the write cannot change the column's width: always
    without ``update_width`` (the table keeps the width, as DataTable does), and with it when
    the new content is exactly as wide as the column. Any other width-changing write takes
    DataTable's own path (column widths re-measured on idle, the table laid out again).

    Repainting a row after a write: DataTable keys every render cache by a counter that
    any write moves, so the row's other cells would all be drawn again. Drawn cells are
    also kept here keyed by the cell's value (the object itself) and everything else the
    drawing depends on, so only the written cell is drawn anew.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Before DataTable's __init__: its watchers already clear the caches.
        self._drawn_cells: LRUCache[tuple[Any, ...], tuple[Any, SegmentLines]] = \
            LRUCache(4096)
        super().__init__(*args, **kwargs)
        # While every row is one line high, a row's y is its index (no O(rows) sum).
        self._single_line_rows = True

    def _render_cell(self, row_index: int, column_index: int, base_style: Style,
                     width: int, cursor: bool = False, hover: bool = False) -> SegmentLines:
        """DataTable's cell drawing, reused while the cell's value and looks are the same."""
        if row_index < 0 or column_index < 0:  # header and row labels: DataTable's caches
            return super()._render_cell(row_index, column_index, base_style, width,
                                        cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        row = self.rows.get(row_key) if row_key is not None else None
        value = self._data[row_key].get(column_key) if row is not None \
            and row_key is not None and column_key is not None else None
        if row is None or row.auto_height:  # auto: its height is measured while drawing
            return super()._render_cell(row_index, column_index, base_style, width,
                                        cursor, hover)
        # Every input of DataTable._render_cell but the update counter: the position (the
        # drawing carries it as mouse metadata), size, styles, cursor and hover state.
        key = (row_index, column_index, row_key, column_key, id(value), base_style, width,
               row.height, cursor, hover, self.show_cursor, self._show_hover_cursor,
               self._pseudo_class_state, self.fixed_rows, self.fixed_columns,
               self.cell_padding, self.cursor_foreground_priority,
               self.cursor_background_priority)
        drawn = self._drawn_cells.get(key)
        if drawn is not None and drawn[0] is value:
            return drawn[1]
        lines = super()._render_cell(row_index, column_index, base_style, width, cursor,
                                     hover)
        self._drawn_cells[key] = (value, lines)  # the value is held: its id stays unique
        return lines

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._drawn_cells.clear()

    def notify_style_update(self) -> None:
        """Styles changed (theme, CSS): nothing drawn before can be reused."""
        self._drawn_cells.clear()
        super().notify_style_update()

    def add_row(self, *cells: CellType, height: int | None = 1, key: str | None = None,
                label: Any = None) -> RowKey:
        """Add a row at the bottom (as DataTable.add_row); notes rows taller than a line."""
        if height != 1:
            self._single_line_rows = False
        return super().add_row(*cells, height=height, key=key, label=label)

    def update_cell(self, row_key: RowKey | str, column_key: ColumnKey | str,
                    value: CellType, *, update_width: bool = False) -> None:
        """Write one cell; repaint only its region unless the column's width changes.

        Raises:
            CellDoesNotExist: No cell has these keys.
        """
        row_key = RowKey(row_key) if isinstance(row_key, str) else row_key
        column_key = ColumnKey(column_key) if isinstance(column_key, str) else column_key
        row_index = self._row_locations.get(row_key)
        column_index = self._column_locations.get(column_key)
        if row_index is None or column_index is None:
            raise CellDoesNotExist(
                f"No cell exists for row_key={row_key!r}, column_key={column_key!r}.")
        if update_width and not self._same_width(row_key, column_key, value):
            super().update_cell(row_key, column_key, value, update_width=True)
            return
        # The region is taken before the update count moves: the row order DataTable
        # caches per update count stays valid, so a write does not rebuild it.
        region = self._cell_region(row_index, column_index)
        self._data[row_key][column_key] = value
        # Every render cache of DataTable is keyed by this count: bumping it is what makes
        # the repainted lines show the new value (and a row scrolled in later, too).
        self._update_count += 1
        if region is not None:
            self._refresh_region(region)

    def _same_width(self, row_key: RowKey, column_key: ColumnKey, value: CellType) -> bool:
        """Whether ``value`` is exactly as wide as its (auto-width) column's content."""
        column = self.columns[column_key]
        if not column.auto_width:
            return True  # a fixed width never follows the content
        height = self.rows[row_key].height
        width = measure(self.app.console,
                        default_cell_formatter(value, wrap=height != 1, height=height), 1)
        return bool(width == column.content_width)

    def _cell_region(self, row_index: int, column_index: int) -> Region | None:
        """The cell's region in the table's virtual (scrollable) space; None when its row
        is off screen (the common case of a bulk write, so that is checked first)."""
        if not self._single_line_rows:
            return self._get_cell_region(Coordinate(row_index, column_index))
        header = self.header_height if self.show_header else 0
        window = self.window_region  # what DataTable's own region refresh tests against
        if not window.y <= row_index + header < window.bottom:
            return None
        columns = self.ordered_columns
        x = self._row_label_column_width + sum(
            column.get_render_width(self) for column in columns[:column_index])
        return Region(x, row_index + header, columns[column_index].get_render_width(self), 1)


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
