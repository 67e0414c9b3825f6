"""What the per-run table screens share (the machines of a run, its task runs): a title line,
a summary line, one row table diffed by key, and the footer; ``escape`` goes back and
``ctrl+r`` reads again. Every string is drawn as plain text, never as markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from widgets.sanitize import sanitize
from widgets.table import update_row


class RunTableScreen(Screen[None]):
    """A screen of one run's rows. Subclasses set :attr:`ID_PREFIX` (the widgets' ids:
    ``PREFIX-title``, ``PREFIX-summary``, ``PREFIX-table``), :attr:`WAITING` (the summary
    until the first read) and :attr:`COLUMNS`, and implement :meth:`reload`."""

    ID_PREFIX: ClassVar[str]
    WAITING: ClassVar[str]
    COLUMNS: ClassVar[Sequence[tuple[str, str]]]

    def __init__(self, correlation_id: str, title: str) -> None:
        super().__init__()
        self.correlation_id = correlation_id
        self._title = title

    def compose(self) -> ComposeResult:
        prefix = self.ID_PREFIX
        yield Static(Text(sanitize(self._title, 300)), id=f"{prefix}-title", markup=False)
        yield Static(Text(self.WAITING), id=f"{prefix}-summary", markup=False)
        table: DataTable[Text] = DataTable(id=f"{prefix}-table", cursor_type="row",
                                           zebra_stripes=True)
        for key, label in self.COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.reload()
        self.after_mount()

    def after_mount(self) -> None:
        """Called once mounted, after the first read started (Textual calls every class's
        ``on_mount``, so subclasses add theirs here instead)."""

    def action_back(self) -> None:
        """Back to the dashboard."""
        self.dismiss(None)

    def action_reload(self) -> None:
        """Read the rows again."""
        self.reload()

    def reload(self) -> None:
        """Start a read of the rows (a worker that posts what it read)."""
        raise NotImplementedError

    def show_error(self, error: str | None) -> None:
        """Say in the summary line that a read failed."""
        self.query_one(f"#{self.ID_PREFIX}-summary", Static).update(
            Text(f"✗ {sanitize(error or 'failed', 300)}", style="bold red"))

    def show_summary(self, text: str) -> None:
        """Replace the summary line."""
        self.query_one(f"#{self.ID_PREFIX}-summary", Static).update(Text(text))

    def diff_rows(self, rows: Mapping[str, tuple[Text, ...]]) -> None:
        """Make the table hold exactly ``rows`` (key -> cells), in that order for new rows,
        redrawing only what changed."""
        table: DataTable[Text] = self.query_one(DataTable)
        keys = tuple(key for key, _ in self.COLUMNS)
        with self.app.batch_update():
            for key in [k.value for k in table.rows
                        if k.value is not None and k.value not in rows]:
                table.remove_row(key)
            for key, cells in rows.items():
                update_row(table, key, keys, cells)
