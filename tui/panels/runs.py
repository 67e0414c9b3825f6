"""The runs table: the selected configuration's runs, newest start first.

Highlighting a row (with the table focused) posts :class:`RunChosen`; ``enter`` posts
:class:`RunOpened` (the screen shows the run's machines).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable

from services.domain.dashboard import DashboardState
from services.domain.model import Configuration, Run
from tui.display import format_time, run_label
from tui.messages import RunChosen, RunOpened
from widgets.sanitize import sanitize
from widgets.table import (
    CellTable,
    ordered_keys,
    restore_cursor,
    same_cell,
    sort_text,
    update_row,
)

RUN_COLUMNS = (("phase", "Phase"), ("config", "Configuration"), ("status", "Status"),
               ("start", "Start"), ("end", "End"), ("machines", "OK/Fail/Total"),
               ("cancelled", "Cancelled by"))
COLUMN_KEYS = tuple(key for key, _ in RUN_COLUMNS)

ZoneOf = Callable[[Configuration | None], tzinfo | None]


class RunsPanel(Vertical):
    """The ``#runs-panel`` with its ``#runs`` table."""

    def __init__(self, state: DashboardState, zone_of: ZoneOf, *,
                 tenant_column: bool = False) -> None:
        """``tenant_column`` (issue 19): a Tenant column (last) when several tenants are
        read."""
        super().__init__(id="runs-panel", classes="panel")
        self.state = state
        self.zone_of = zone_of
        self.tenant_column = tenant_column
        self.column_keys = COLUMN_KEYS + (("tenant",) if tenant_column else ())
        self.table: DataTable[Text] = CellTable(id="runs", cursor_type="row")
        for key, label in RUN_COLUMNS:
            self.table.add_column(label, key=key)
        if tenant_column:
            self.table.add_column("Tenant", key="tenant")

    def compose(self) -> ComposeResult:
        yield self.table

    @on(DataTable.RowHighlighted, "#runs")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if not self.table.has_focus:
            return  # the cursor moved because the rows did, not because the operator did
        key = event.row_key.value if event.row_key is not None else None
        if key is not None:
            self.post_message(RunChosen(key))

    @on(DataTable.RowSelected, "#runs")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = event.row_key.value if event.row_key is not None else None
        if key is not None:
            self.post_message(RunOpened(key))

    def show_runs(self, runs: Sequence[Run], now: datetime) -> None:
        """Diff ``runs`` (newest first) into the table."""
        table = self.table
        state = self.state
        wanted = [r.key for r in runs]
        keep = set(wanted)
        with self.app.batch_update():
            for row_key in list(table.rows):
                if row_key.value not in keep:
                    table.remove_row(row_key)
            for run in runs:
                update_row(table, run.key, self.column_keys, self.cells_for(run, now))
            if [k.value for k in ordered_keys(table)] != wanted:
                table.sort("start", key=lambda cell: cell.sort_key, reverse=True)
            if state.selected_run is not None:
                restore_cursor(table, state.selected_run)

    def cells_for(self, run: Run, now: datetime) -> tuple[Text, ...]:
        """The cells of ``run``'s row at ``now``."""
        config = self.state.configs.get(run.configuration_id.lower())
        status = sanitize(run.status, 30) + (" (expected)" if run.expected else "")
        total = run.machines_total
        machines = "–" if total is None else (
            f"{run.machines_succeeded or 0}/{run.machines_failed or 0}/{total}")
        cancelled = run.cancelled_by or ""
        if run.key in self.state.cancel_in_flight:
            status = "cancel in flight…"
        elif self.state.cancel_unconfirmed(run.key, now):
            status = "cancel accepted, confirming…"
        failed_style = "bold red" if (run.machines_failed or 0) else ""
        zone = self.zone_of(config)
        cells: tuple[Text, ...] = (
            run_label(run, now, self.state.rules),
            Text(sanitize(run.configuration_name or "", 40)),
            Text(status, style="bold red" if run.status.lower() == "failed" else ""),
            sort_text(format_time(run.start, zone), run.start),
            end_cell(run, zone),
            Text(machines, style=failed_style),
            Text(cancelled, style="yellow" if cancelled else ""),
        )
        if self.tenant_column:
            tenant = run.tenant or (config.tenant if config is not None else "")
            cells += (Text(sanitize(tenant or run.tenant_id or "–", 24)),)
        return cells

    def tick(self, now: datetime) -> None:
        """Move each row's phase cell with the clock."""
        table = self.table
        index = self.state.index
        for row_key in list(table.rows):
            run = index.get(row_key.value or "")
            if run is None:
                continue
            cell = run_label(run, now, self.state.rules)
            if not same_cell(table.get_cell(row_key, "phase"), cell):
                table.update_cell(row_key, "phase", cell)


def end_cell(run: Run, zone: tzinfo | None) -> Text:
    """The End column, as ``aumwatch runs`` gives it (services/domain/runfacts.py): a run that
    ended shows when it really ended ("–" when nobody knows), never its scheduled end; a run
    still to end shows the scheduled end, dimmed."""
    if run.finished:
        return Text(format_time(run.ended_at, zone) if run.ended_at else "–")
    return Text(format_time(run.end, zone) if run.end else "–", style="dim")
