"""The configurations table: one row per configuration, sorted by next start.

Rows are diffed in place (only changed cells are written, the table re-sorted only when the
order changed). Each row's next-run and phase cells change at known moments (the boundaries
of its next run's window): a heap of those moments lets the one-second tick redraw only the
rows whose moment passed, and the countdown cells only of the rows on screen.

The Wiring column shows each configuration's Event Grid verdict as a symbol and a word (never
colour alone): "…" until the wiring is first read, "?" when it could not be read.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable

from services.domain.dashboard import DashboardState, row_sort_key
from services.domain.model import Configuration, Run
from services.domain.window import run_window
from services.domain.wiring import VERDICT_SYMBOLS, Verdict, Wiring
from tui.display import countdown_text, format_time, run_label
from tui.messages import ConfigChosen
from widgets.sanitize import sanitize
from widgets.table import CellTable, column_key, restore_cursor, sort_text, update_row

# The columns an operator acts on come first, so they stay visible at 80 columns.
CONFIG_COLUMNS = (("name", "Configuration"), ("next", "Next start"), ("countdown", "In"),
                  ("phase", "Next run"), ("wiring", "Wiring"), ("recurrence", "Recurrence"),
                  ("zone", "Zone"), ("scope", "RG / subscription"))
COLUMN_KEYS = tuple(key for key, _ in CONFIG_COLUMNS)
COUNTDOWN = COLUMN_KEYS.index("countdown")
WIRING = COLUMN_KEYS.index("wiring")
#: Below this terminal width the Wiring column uses short words, so that the columns before
#: it and the verdict itself fit in 80 columns ("↪ other-endpoint" would be cut).
NARROW_WIDTH = 100
WIRING_SHORT = {Verdict.OTHER_ENDPOINT: "other"}
#: The Wiring column's fixed width (its cells change after the rows are drawn, and an auto
#: width would keep the width of the first "…"): the longest cell, wide and narrow.
WIRING_WIDTH = max(len(f"{s} {v}") for v, s in VERDICT_SYMBOLS.items())
WIRING_NARROW_WIDTH = max(len(f"{s} {WIRING_SHORT.get(v, str(v))}")
                          for v, s in VERDICT_SYMBOLS.items())
#: Colour only adds to the symbol and the word.
WIRING_STYLES = {Verdict.OK: "green", Verdict.MISSING: "bold red", Verdict.PARTIAL: "yellow",
                 Verdict.OTHER_ENDPOINT: "yellow", Verdict.DISABLED: "red",
                 Verdict.FAILING: "bold red"}
#: Shown while the wiring has not been read yet, and when it could not be read.
WIRING_PENDING = "…"
WIRING_UNKNOWN = "?"


def wiring_text(wiring: Wiring | None, *, failed: bool = False, narrow: bool = False) -> Text:
    """The Wiring cell: the verdict's symbol and word (``narrow``: a shorter word where one
    is long), or :data:`WIRING_PENDING` / :data:`WIRING_UNKNOWN` (``failed``) without one."""
    if wiring is None:
        return Text(WIRING_UNKNOWN if failed else WIRING_PENDING, style="dim")
    verdict = wiring.verdict
    word = WIRING_SHORT.get(verdict, str(verdict)) if narrow else str(verdict)
    return Text(f"{wiring.symbol} {word}", style=WIRING_STYLES.get(verdict, ""))
#: Removing more rows than this at once: rebuild the table (each remove_row is O(rows)).
REBUILD_ABOVE = 64
NEXT_LABELS = {"config": "Next start", "utc": "Next (UTC)", "local": "Next (local)"}

ZoneOf = Callable[[Configuration | None], tzinfo | None]


class ConfigsPanel(Vertical):
    """The ``#configs-panel`` with its ``#configs`` table; posts :class:`ConfigChosen`."""

    def __init__(self, state: DashboardState, zone_of: ZoneOf, *,
                 tenant_column: bool = False) -> None:
        """``tenant_column`` (issue 19): several tenants are read, so a Tenant column (last,
        so the columns an operator acts on keep their place) names each row's."""
        super().__init__(id="configs-panel", classes="panel")
        self.state = state
        self.tenant_column = tenant_column
        self.column_keys = COLUMN_KEYS + (("tenant",) if tenant_column else ())
        self.zone_of = zone_of
        # The table as drawn: row order, each row's next run, configuration, cells and sort
        # key, and a heap of (moment its next/phase cells change, config key) for the tick.
        self._order: list[str] = []
        self._shown_next: dict[str, Run | None] = {}
        self._drawn: dict[str, Configuration] = {}
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._sort_keys: dict[str, tuple[datetime, str, str]] = {}
        self._boundaries: list[tuple[datetime, str]] = []
        self._boundary_of: dict[str, datetime] = {}
        self._narrow = False
        self._next_label = NEXT_LABELS["config"]
        self.table: DataTable[Text] = CellTable(id="configs", cursor_type="row")
        self._add_columns()

    def _add_columns(self) -> None:
        for key, label in CONFIG_COLUMNS:
            if key == "wiring":
                self.table.add_column(label, key=key, width=WIRING_NARROW_WIDTH if self._narrow
                                      else WIRING_WIDTH)
            else:
                self.table.add_column(self._next_label if key == "next" else label, key=key)
        if self.tenant_column:
            self.table.add_column("Tenant", key="tenant")

    def compose(self) -> ComposeResult:
        yield self.table

    def on_mount(self) -> None:
        # Countdowns are written for the rows on screen only: scrolling shows fresh ones.
        self.watch(self.table, "scroll_y", self._scrolled, init=False)
        self.on_resize()

    def on_resize(self) -> None:
        narrow = self.app.size.width < NARROW_WIDTH
        if narrow != self._narrow:
            self._narrow = narrow
            with contextlib.suppress(Exception):  # a handler must not take the app down
                self._rebuild()

    def _rebuild(self) -> None:
        """Columns and rows again (same order and cells; the Wiring column's width and
        words follow the terminal's width)."""
        table = self.table
        with self.app.batch_update():
            table.clear(columns=True)
            self._add_columns()
            for key in self._order:
                cells = self._cells[key]
                cells = (*cells[:WIRING], self.wiring_cell(key), *cells[WIRING + 1:])
                self._cells[key] = cells
                table.add_row(*cells, key=key)
            restore_cursor(table, self.state.selected_config)

    def wiring_cell(self, key: str) -> Text:
        """The Wiring cell of configuration ``key`` as the state knows it now."""
        state = self.state
        return wiring_text(state.wiring_of(key), failed=state.wiring_error is not None,
                           narrow=self._narrow)

    @property
    def order(self) -> list[str]:
        """Configuration keys in the order the table shows them."""
        return list(self._order)

    @on(DataTable.RowHighlighted, "#configs")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        key = event.row_key.value if event.row_key is not None else None
        self.post_message(ConfigChosen(key))

    # -- drawing -------------------------------------------------------------------------------
    def refresh_rows(self, keys: Iterable[str] | None = None, *, redraw: bool = False) -> None:
        """Diff configurations into the table, sorted by next start (then name).

        ``keys``: only these configurations' data or runs changed; a row whose configuration
        and next run are the same as drawn is skipped unless ``redraw`` (its phase moved).
        None: every row is redrawn (filter, time zone).
        """
        state = self.state
        table = self.table
        now = state.clock.now()
        everything = keys is None
        todo = list(state.configs) + [k for k in self._order if k not in state.configs] \
            if everything else list(keys or ())
        gone: list[str] = []
        added: list[tuple[tuple[datetime, str, str], str, tuple[Text, ...]]] = []
        reorder = everything
        with self.app.batch_update():
            for key in todo:
                config = state.configs.get(key)
                if config is None or not state.matches(config):
                    if key in self._shown_next:
                        gone.append(key)
                    continue
                run = state.next_run(key, now)
                if not (everything or redraw) and self._drawn.get(key) is config \
                        and key in self._shown_next and _same_run(self._shown_next[key], run) \
                        and self._cells[key][WIRING] == self.wiring_cell(key):
                    continue  # e.g. a past run of it changed: nothing this row shows did
                cells = self.cells_for(config, now, run)
                sort_key = row_sort_key(config, run)
                if key not in self._shown_next:
                    added.append((sort_key, key, cells))
                else:
                    update_row(table, key, self.column_keys, cells, self._cells.get(key))
                    reorder = reorder or self._sort_keys.get(key) != sort_key
                self._cells[key] = cells
                self._shown_next[key] = run
                self._drawn[key] = config
                self._sort_keys[key] = sort_key
                self._schedule_boundary(key, run, now)
            # New rows go in in order: the table highlights the first row it gets, and that
            # must be the first row shown (else the selection jumps to an arbitrary one).
            added.sort(key=lambda item: item[0])
            for _, key, cells in added:
                table.add_row(*cells, key=key)
                self._order.append(key)
            reorder = reorder or bool(added)
            if gone:
                self._remove_rows(table, gone)
            if reorder:
                order = sorted(self._sort_keys, key=self._sort_keys.__getitem__)
                if order != self._order:
                    table.sort("next", key=lambda cell: cell.sort_key)
                    self._order = order
            restore_cursor(table, state.selected_config)
            self._follow_hidden_selection()
            self.tick_countdowns(now)

    def _follow_hidden_selection(self) -> None:
        """When the selected configuration left the table (the filter hides it, or it is gone
        from Azure), the selection moves to the row under the cursor (none when the table is
        empty): ``w``, ``r``, ``t`` and Cancel must act on the row the operator sees, not on
        one the filter hid."""
        table = self.table
        selected = self.state.selected_config
        if selected is None or selected in table.rows:
            return
        key = None
        if table.row_count:
            row = min(max(table.cursor_row, 0), table.row_count - 1)
            key = table.ordered_rows[row].key.value
        self.post_message(ConfigChosen(key))

    def cells_for(self, config: Configuration, now: datetime,
                  run: Run | None = None) -> tuple[Text, ...]:
        """The cells of ``config``'s row at ``now`` (``run``: its current or next run)."""
        if config.schedule_error:
            recurrence = Text(f"⚠ {sanitize(config.schedule_error, 40)}", style="red")
        else:
            recurrence = Text(sanitize(config.schedule_description or config.recur_every, 40))
        scope = f"{config.resource_group} / {config.subscription_id[:8]}"
        sort_key = row_sort_key(config, run)
        if run is None:
            next_text = sort_text("–", sort_key)
            countdown = Text("")
            phase = Text("–", style="dim")
        else:
            next_text = sort_text(format_time(run.start, self.zone_of(config)), sort_key)
            countdown = Text(countdown_text(run, now))
            phase = run_label(run, now, self.state.rules)
        cells: tuple[Text, ...] = (
            Text(sanitize(config.name, 32), style="bold"),
            next_text,
            countdown,
            phase,
            self.wiring_cell(config.id.lower()),
            recurrence,
            Text(sanitize(config.time_zone, 24)),
            Text(sanitize(scope, 48)),
        )
        if self.tenant_column:
            cells += (Text(sanitize(config.tenant or config.tenant_id or "–", 24)),)
        return cells

    def set_zone_label(self, mode: str) -> None:
        """Name the zone the next-start column is shown in."""
        table = self.table
        column = table.columns.get(column_key(table, "next"))
        self._next_label = NEXT_LABELS.get(mode, NEXT_LABELS["config"])
        if column is not None:
            column.label = Text(self._next_label)
            table.refresh()

    # -- the tick ------------------------------------------------------------------------------
    def tick(self, now: datetime) -> None:
        """Redraw the rows whose phase or next run changes now, and the countdowns on screen."""
        due = self._due_rows(now)
        if due:
            self.refresh_rows(due, redraw=True)
        else:
            self.tick_countdowns(now)

    def visible_keys(self) -> list[str]:
        """Keys of the rows on screen (with one row of margin each side)."""
        table = self.table
        top = max(0, int(table.scroll_y) - 1)
        return self._order[top:top + table.size.height + 2]

    def tick_countdowns(self, now: datetime) -> None:
        """The per-second countdown text, for the rows on screen only."""
        table = self.table
        for key in self.visible_keys():
            run = self._shown_next.get(key)
            text = countdown_text(run, now) if run is not None else ""
            cells = self._cells.get(key)
            if cells is not None and cells[COUNTDOWN].plain != text:
                cell = Text(text)
                self._cells[key] = (*cells[:COUNTDOWN], cell, *cells[COUNTDOWN + 1:])
                table.update_cell(key, "countdown", cell)

    def _scrolled(self) -> None:
        with contextlib.suppress(Exception):  # a watcher must not take the app down
            self.tick_countdowns(self.state.clock.now())

    def _schedule_boundary(self, key: str, run: Run | None, now: datetime) -> None:
        """Queue the next moment this row's next-run or phase cells change."""
        at: datetime | None = None
        if run is not None:
            window = run_window(run.start, cutoff=run.cutoff, end=run.end,
                                rules=self.state.rules)
            boundary = window.next_boundary(now)
            at = boundary[1] if boundary is not None else None
        if at is None:
            self._boundary_of.pop(key, None)
        elif self._boundary_of.get(key) != at:
            self._boundary_of[key] = at
            heapq.heappush(self._boundaries, (at, key))

    def _due_rows(self, now: datetime) -> set[str]:
        """Rows whose queued boundary passed (stale heap entries are skipped)."""
        due: set[str] = set()
        heap = self._boundaries
        while heap and heap[0][0] <= now:
            at, key = heapq.heappop(heap)
            if self._boundary_of.get(key) == at:
                del self._boundary_of[key]
                due.add(key)
        if len(heap) > 4 * len(self._boundary_of) + 1024:  # mostly stale: compact it
            self._boundaries = [(at, k) for k, at in self._boundary_of.items()]
            heapq.heapify(self._boundaries)
        return due

    def _remove_rows(self, table: DataTable[Text], gone: list[str]) -> None:
        for key in gone:
            self._cells.pop(key, None)
            self._shown_next.pop(key, None)
            self._drawn.pop(key, None)
            self._sort_keys.pop(key, None)
            self._boundary_of.pop(key, None)
        dropped = set(gone)
        self._order = [k for k in self._order if k not in dropped]
        if len(gone) <= REBUILD_ABOVE:
            for key in gone:
                table.remove_row(key)
            return
        # Each remove_row renumbers every row after it: rebuild instead (same cells).
        rows = {k: table.get_row(k) for k in self._order}
        table.clear()
        for key in self._order:
            table.add_row(*rows[key], key=key)


def _same_run(a: Run | None, b: Run | None) -> bool:
    return a is b or (a is not None and b is not None and a == b)

