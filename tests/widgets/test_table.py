"""CellTable: writing a cell repaints that cell's region only, unless the column's width moves."""

from __future__ import annotations

from typing import Any

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets._data_table import CellDoesNotExist

from widgets.table import CellTable

COLUMNS = ("name", "when", "phase")


class TableApp(App[None]):
    def __init__(self, rows: int = 5, height: int = 1) -> None:
        super().__init__()
        self.rows = rows
        self.height = height

    def compose(self) -> ComposeResult:
        table: CellTable[Text] = CellTable(id="t", cursor_type="row")
        for key in COLUMNS:
            table.add_column(key.title(), key=key)
        for i in range(self.rows):
            table.add_row(Text(f"config-{i:03d}"), Text("12:34"), Text("scheduled"),
                          key=f"r{i}", height=self.height)
        yield table


def repainted(table: CellTable[Text]) -> set[Region]:
    """The regions the table asked to repaint since the last frame (and clear them)."""
    return set(table._exchange_repaint_regions())


def line_text(table: CellTable[Text], y: int) -> str:
    return "".join(segment.text for segment in table.render_line(y))


async def test_one_cell_write_repaints_that_cell_only_and_shows_it() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(CellTable)
        await pilot.pause()
        repainted(table)
        table.update_cell("r2", "when", Text("12:33"))
        # Row 2 is line 3 (under the header); "when" starts after "name"'s column.
        name_width = table.columns[next(iter(table.columns))].get_render_width(table)
        assert repainted(table) == {Region(name_width, 3, 2 + len("12:34"), 1)}
        assert not table._layout_required
        await pilot.pause()
        assert "12:33" in line_text(table, 3)
        assert table.get_cell("r2", "when").plain == "12:33"


async def test_the_fast_region_is_the_one_datatable_computes() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(CellTable)
        await pilot.pause()
        for row in range(len(table.rows)):
            for column in range(len(table.columns)):
                assert table._cell_region(row, column) \
                    == table._get_cell_region(Coordinate(row, column))


async def test_scrolled_table_repaints_the_cell_where_it_is_on_screen() -> None:
    app = TableApp(rows=40)
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(CellTable)
        await pilot.pause()
        table.scroll_to(y=20, animate=False)
        await pilot.pause()
        assert table.scroll_y == 20
        repainted(table)
        table.update_cell("r0", "phase", Text("running"))  # above the window
        assert repainted(table) == set()
        table.update_cell("r22", "phase", Text("running"))
        (region,) = repainted(table)
        assert region.y == 22 + 1 - 20  # its index + header - scroll
        await pilot.pause()
        assert "running" in line_text(table, 3)
        # The row written while off screen shows its new value once scrolled to.
        table.scroll_to(y=0, animate=False)
        await pilot.pause()
        assert "running" in line_text(table, 1)


async def test_tall_rows_use_datatable_geometry() -> None:
    app = TableApp(rows=3, height=2)
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(CellTable)
        await pilot.pause()
        repainted(table)
        table.update_cell("r2", "phase", Text("running"))
        (region,) = repainted(table)
        assert (region.y, region.height) == (1 + 2 * 2, 2)


async def test_a_wider_value_with_update_width_lays_the_table_out_again() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(CellTable)
        await pilot.pause()
        when = next(k for k in table.columns if k.value == "when")
        assert table.columns[when].content_width == len("12:34")
        repainted(table)
        table.update_cell("r1", "when", Text("ends 1:02:03"), update_width=True)
        # DataTable's own path: the whole table is dirty, widths are measured on idle.
        assert repainted(table) == {Region(0, 0, *table.outer_size)}
        await pilot.pause()
        assert table.columns[when].content_width == len("ends 1:02:03")
        assert "ends 1:02:03" in line_text(table, 2)


async def test_same_width_with_update_width_is_still_one_cell() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(CellTable)
        await pilot.pause()
        repainted(table)
        table.update_cell("r1", "when", Text("09:59"), update_width=True)
        (region,) = repainted(table)
        assert (region.y, region.height) == (2, 1)


async def test_without_update_width_the_column_keeps_its_width() -> None:
    """As DataTable: a longer value is cut to the column, which does not move."""
    app = TableApp()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(CellTable)
        await pilot.pause()
        when = next(k for k in table.columns if k.value == "when")
        table.update_cell("r1", "when", Text("ends 1:02:03"))
        await pilot.pause()
        assert table.columns[when].content_width == len("12:34")


async def test_unknown_cell_raises() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(CellTable)
        await pilot.pause()
        with pytest.raises(CellDoesNotExist):
            table.update_cell("nope", "when", Text("x"))
        with pytest.raises(CellDoesNotExist):
            table.update_cell("r1", "nope", Text("x"))


class EitherTableApp(App[None]):
    """One table, DataTable or CellTable, with 30 rows: to compare their drawings."""

    def __init__(self, cls: type[DataTable[Text]]) -> None:
        super().__init__()
        self.cls = cls

    def compose(self) -> ComposeResult:
        table = self.cls(id="t", cursor_type="row", zebra_stripes=True)
        for key in COLUMNS:
            table.add_column(key.title(), key=key)
        for i in range(30):
            table.add_row(Text(f"config-{i:03d}", style="bold"), Text(f"{i:02d}:00"),
                          Text("scheduled"), key=f"r{i}")
        yield table


async def drawings(cls: type[DataTable[Text]]) -> list[list[Strip]]:
    """The table's lines after each step of one sequence of writes, moves and scrolls."""
    app = EitherTableApp(cls)
    frames: list[list[Strip]] = []
    async with app.run_test(size=(60, 12)) as pilot:
        table = app.query_one(DataTable)

        async def frame() -> None:
            await pilot.pause()
            frames.append([table.render_line(y) for y in range(table.size.height)])

        await frame()
        table.update_cell("r2", "when", Text("01:59"))
        await frame()
        table.move_cursor(row=2, animate=False)
        await frame()
        table.update_cell("r2", "phase", Text("running", style="green"))
        table.update_cell("r3", "when", Text("02:59"))
        await frame()
        table.sort("when", key=lambda cell: cell.plain, reverse=True)
        await frame()
        table.scroll_to(y=15, animate=False)
        table.update_cell("r5", "when", Text("04:59"))
        await frame()
        await pilot.press("down")
        await frame()
    return frames


async def test_celltable_draws_exactly_what_datatable_draws() -> None:
    ours, theirs = await drawings(CellTable), await drawings(DataTable)
    assert len(ours) == len(theirs) == 7
    for step, (mine, reference) in enumerate(zip(ours, theirs, strict=True)):
        assert mine == reference, f"step {step} differs"


async def test_a_write_draws_only_the_written_cell_of_its_row_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[tuple[int, int]] = []
    original = DataTable._render_cell

    def counting(self: DataTable[Text], row: int, column: int, *args: Any,
                 **kwargs: Any) -> Any:
        drawn.append((row, column))
        return original(self, row, column, *args, **kwargs)

    monkeypatch.setattr(DataTable, "_render_cell", counting)
    app = TableApp()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(CellTable)
        await pilot.pause()
        drawn.clear()
        table.update_cell("r2", "when", Text("12:33"))
        await pilot.pause()
        assert [cell for cell in drawn if cell[0] >= 0] == [(2, 1)]
        assert "12:33" in line_text(table, 3)
