"""EventLog: follow mode, "+N new", bounded buffer, burst coalescing, literal rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from textual import on
from textual.app import App, ComposeResult

from widgets.eventlog import EventLog, EventRow, column_widths

T = datetime(2026, 3, 1, 14, 20, tzinfo=UTC)


def rows(count: int, start: int = 0, **fields: object) -> list[EventRow]:
    return [
        EventRow(time=T + timedelta(seconds=i), kind="PreMaintenanceEvent",
                 configuration="cfg-weekly", run=f"run-{i}", key=f"k{i}", **fields)  # type: ignore[arg-type]
        for i in range(start, start + count)
    ]


class LogApp(App[None]):
    def __init__(self, max_rows: int = 2000) -> None:
        super().__init__()
        self.max_rows = max_rows
        self.selected: list[EventRow] = []

    def compose(self) -> ComposeResult:
        yield EventLog(max_rows=self.max_rows)

    @on(EventLog.Selected)
    def _selected(self, message: EventLog.Selected) -> None:
        self.selected.append(message.row)


@pytest.mark.parametrize("width", [0, 20, 40, 78, 118, 300])
def test_column_widths_fit_the_width(width: int) -> None:
    widths = column_widths(width)
    assert all(w >= 0 for w in widths)
    if width >= 60:
        assert sum(widths) + 5 == width


async def test_follow_mode_scrolls_new_rows_into_view() -> None:
    app = LogApp()
    async with app.run_test(size=(80, 24)) as pilot:
        log = app.query_one(EventLog)
        log.add_rows(rows(100))
        await pilot.pause()
        assert log.scroll_offset.y == log.max_scroll_y > 0
        assert log.selected_row is not None and log.selected_row.key == "k99"
        log.add_rows(rows(5, start=100))
        await pilot.pause()
        assert log.scroll_offset.y == log.max_scroll_y
        assert log.pending_new == 0
        assert log.selected_row.key == "k104"
        assert "run-104" in log.render_line(log.size.height - 1).text


async def test_scrolled_away_shows_plus_n_new_instead_of_jumping() -> None:
    app = LogApp()
    async with app.run_test(size=(80, 24)) as pilot:
        log = app.query_one(EventLog)
        log.add_rows(rows(100))
        log.focus()
        await pilot.pause()
        await pilot.press("home")
        assert log.scroll_offset.y == 0

        log.add_rows(rows(7, start=100))
        await pilot.pause()
        assert log.scroll_offset.y == 0  # did not jump
        assert log.pending_new == 7
        assert "▼ +7 new" in log.render_line(0).text
        assert log.selected_row is not None and log.selected_row.key == "k0"

        await pilot.press("end")
        await pilot.pause()
        assert log.scroll_offset.y == log.max_scroll_y
        assert log.pending_new == 0
        assert "new" not in log.render_line(0).text


async def test_f_toggles_follow() -> None:
    app = LogApp()
    async with app.run_test(size=(80, 24)) as pilot:
        log = app.query_one(EventLog)
        log.add_rows(rows(50))
        log.focus()
        await pilot.press("f")
        assert log.follow is False
        log.add_rows(rows(3, start=50))
        await pilot.pause()
        assert log.pending_new == 3
        assert log.scroll_offset.y < log.max_scroll_y
        await pilot.press("f")
        await pilot.pause()
        assert log.follow is True
        assert log.pending_new == 0
        assert log.scroll_offset.y == log.max_scroll_y
        assert log.selected_row is not None and log.selected_row.key == "k52"


async def test_buffer_is_bounded_and_drops_the_oldest() -> None:
    app = LogApp(max_rows=100)
    async with app.run_test(size=(80, 24)) as pilot:
        log = app.query_one(EventLog)
        log.add_rows(rows(60))
        log.add_rows(rows(90, start=60))
        await pilot.pause()
        assert log.row_count == 100
        assert log.dropped == 50
        assert log.rows[0].key == "k50" and log.rows[-1].key == "k149"
        assert log.virtual_size.height == 101  # header + rows


async def test_dropping_rows_keeps_the_row_under_the_cursor() -> None:
    app = LogApp(max_rows=100)
    async with app.run_test(size=(80, 24)) as pilot:
        log = app.query_one(EventLog)
        log.add_rows(rows(100))
        log.focus()
        await pilot.pause()
        await pilot.press("home", *["down"] * 30)
        assert log.selected_row is not None and log.selected_row.key == "k30"
        log.add_rows(rows(10, start=100))
        await pilot.pause()
        assert log.selected_row.key == "k30"


async def test_a_burst_of_500_rows_costs_one_refresh() -> None:
    app = LogApp()
    async with app.run_test(size=(80, 24)) as pilot:
        log = app.query_one(EventLog)
        log.add_rows(rows(50))
        await pilot.pause()
        calls: list[object] = []
        original = log.refresh
        log.refresh = lambda *a, **k: calls.append(a) or original(*a, **k)  # type: ignore[method-assign]
        log.add_rows(rows(1, start=50))
        one = len(calls)
        calls.clear()
        log.add_rows(rows(500, start=51))
        # The same repaint requests for 500 rows as for one (the row repaint, plus the
        # scroll's own), not one per row.
        assert len(calls) == one <= 3
        await pilot.pause()
        assert log.row_count == 551
        assert log.selected_row is not None and log.selected_row.key == "k550"


async def test_untrusted_strings_render_literally() -> None:
    app = LogApp()
    nasty = [
        EventRow(time=T, kind="[bold red]x[/]", configuration="[link=https://e.vil]a[/link]",
                 run="\x1b[31mred\x1b]52;c;ZXZpbA==\x07", flag="undecodable",
                 payload='{"raw": "\\u001b"}'),
    ]
    async with app.run_test(size=(120, 24)) as pilot:
        log = app.query_one(EventLog)
        log.add_rows(nasty)
        await pilot.pause()
        strip = log.render_line(1)
        text = strip.text
        assert "[bold red]x[/]" in text
        assert "[link=https://e.vil]" in text
        assert "\\x1b[31mred" in text
        assert "\x1b" not in text and "\x07" not in text
        assert "✗ undecodable" in text
        assert all(segment.style is None or segment.style.link is None
                   for segment in strip)


async def test_enter_posts_the_selected_row_with_its_payload() -> None:
    app = LogApp()
    async with app.run_test(size=(80, 24)) as pilot:
        log = app.query_one(EventLog)
        log.add_rows(rows(3, payload='{"id": 1}'))
        log.focus()
        await pilot.press("up", "enter")
        await pilot.pause()
        assert [row.key for row in app.selected] == ["k1"]
        assert app.selected[0].payload == '{"id": 1}'


def test_max_rows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        EventLog(max_rows=0)


async def test_scrolling_back_to_the_bottom_clears_the_marker() -> None:
    app = LogApp()
    async with app.run_test(size=(80, 24)) as pilot:
        log = app.query_one(EventLog)
        log.add_rows(rows(100))
        await pilot.pause()
        log.scroll_to(y=10, animate=False, immediate=True)
        log.add_rows(rows(4, start=100))
        assert log.pending_new == 4
        log.scroll_to(y=log.max_scroll_y, animate=False, immediate=True)  # e.g. mouse wheel
        await pilot.pause()
        assert log.pending_new == 0
        assert "new" not in log.render_line(0).text


async def test_clicking_a_row_selects_it() -> None:
    app = LogApp()
    async with app.run_test(size=(80, 24)) as pilot:
        log = app.query_one(EventLog)
        log.add_rows(rows(10))
        await pilot.pause()
        await pilot.click(EventLog, offset=(5, 3))  # header is line 0, so the third row
        assert log.selected_row is not None and log.selected_row.key == "k2"


async def test_the_arrival_label_is_shown_and_marked_when_flagged() -> None:
    app = LogApp()
    on_time = EventRow(time=T, kind="pre", run="r1", arrival="T-35m")
    early = EventRow(time=T, kind="pre", run="r2", arrival="T-45m", arrival_flagged=True)
    async with app.run_test(size=(120, 24)) as pilot:
        log = app.query_one(EventLog)
        log.add_rows([on_time, early])
        await pilot.pause()
        first, second = (log.row_text(i) for i in range(2))
        assert "T-35m" in first and "!" not in first
        assert "T-45m" in second and "off-range" in second
        strip = log.render_line(2)
        marked = [s for s in strip if "T-45m" in s.text]
        assert marked and marked[0].style is not None and marked[0].style.bold
        header = "".join(s.text for s in log.render_line(0))
        assert "arrival" in header and "delay" not in header
