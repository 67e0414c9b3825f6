"""Timeline: mark positions for a width, label placement, rendering rows, and the widget."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from textual.app import App, ComposeResult

from widgets.timeline import (
    GLYPH_ARRIVAL,
    GLYPH_CANCELLABLE,
    GLYPH_LOCKED,
    GLYPH_RUNNING,
    Timeline,
    TimelineData,
    place_labels,
    timeline_positions,
    timeline_rows,
)

T = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def make(now: datetime = T - 22 * MIN, **changes: object) -> TimelineData:
    data = TimelineData(
        start=T, end=T + 120 * MIN, opens_at=T - 40 * MIN, closes_at=T - 10 * MIN, now=now,
        pre_expected=(T - 35 * MIN, T - 30 * MIN),
    )
    return replace(data, **changes)  # type: ignore[arg-type]


def test_positions_at_80_columns() -> None:
    pos = timeline_positions(make(), 80)
    assert pos.opens == pos.freeze == 0
    assert pos.start == round(0.6 * 79) == 47
    assert pos.end == 79
    # T-10 is three quarters of the way from T-40 to T.
    assert pos.closes == round(47 * 30 / 40)
    assert pos.now == round(47 * 18 / 40)
    assert pos.now_side == 0
    assert pos.pre_expected == (round(47 * 5 / 40), round(47 * 10 / 40))
    assert pos.pre_event is None and pos.post_event is None


def test_run_half_is_linear_and_a_late_post_event_extends_the_scale() -> None:
    data = make(post_event_at=T + 150 * MIN)
    pos = timeline_positions(data, 100)
    assert pos.post_event == 99
    assert pos.end == pos.start + round(120 / 150 * (99 - pos.start))


@pytest.mark.parametrize(("now", "side", "col"), [(T - 2 * 60 * MIN, -1, 0),
                                                   (T + 5 * 60 * MIN, 1, 39)])
def test_now_off_the_scale_is_pinned_to_the_edge(now: datetime, side: int, col: int) -> None:
    pos = timeline_positions(make(now=now), 40)
    assert (pos.now_side, pos.now) == (side, col)


def test_bad_width_and_bad_data_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="width"):
        timeline_positions(make(), 0)
    with pytest.raises(ValueError, match=r"start .* before end"):
        make(end=T - MIN)
    with pytest.raises(ValueError, match="opens_at <= closes_at <= start"):
        make(closes_at=T + MIN)
    with pytest.raises(ValueError, match="timezone-aware"):
        make(now=datetime(2026, 3, 1, 14, 0))


@settings(max_examples=300, deadline=None)
@given(
    width=st.integers(min_value=1, max_value=300),
    before=st.integers(min_value=0, max_value=40 * 60),
    close_gap=st.integers(min_value=0, max_value=40 * 60),
    run=st.integers(min_value=1, max_value=24 * 3600),
    now=st.integers(min_value=-3 * 3600, max_value=30 * 3600),
    pre=st.one_of(st.none(), st.integers(min_value=-3600, max_value=3600)),
)
def test_positions_stay_in_range_and_in_time_order(
    width: int, before: int, close_gap: int, run: int, now: int, pre: int | None
) -> None:
    sec = timedelta(seconds=1)
    opens = T - before * sec
    closes = min(T, opens + close_gap * sec)
    data = TimelineData(start=T, end=T + run * sec, opens_at=opens, closes_at=closes,
                        now=T + now * sec, pre_event_at=None if pre is None else T + pre * sec)
    pos = timeline_positions(data, width)
    cols = [pos.opens, pos.closes, pos.start, pos.end, pos.now]
    assert all(0 <= c < width for c in cols)
    assert pos.opens <= pos.closes <= pos.start <= pos.end
    rows = timeline_rows(data, width)
    assert [row.cell_len for row in rows] == [width] * 3


def test_rows_show_regions_arrivals_and_now() -> None:
    data = make(pre_event_at=T - 33 * MIN, post_event_at=T + 125 * MIN)
    top, bar, labels = (row.plain for row in timeline_rows(data, 80))
    pos = timeline_positions(data, 80)
    assert bar[pos.opens + 1] == GLYPH_CANCELLABLE
    assert bar[pos.closes] == GLYPH_LOCKED
    assert bar[pos.start + 1] == GLYPH_RUNNING
    assert bar[pos.pre_event] == GLYPH_ARRIVAL and bar[pos.post_event] == GLYPH_ARRIVAL
    assert top[pos.now] == "▼" and top[pos.now + 1 : pos.now + 5] == " now"
    for word in ("freeze", "pre", "close", "start", "end"):
        assert word in labels.split()


def test_labels_never_overlap_and_narrow_widths_keep_the_important_ones() -> None:
    for width in (12, 20, 40, 60, 80, 120, 200):
        placed = place_labels(timeline_positions(make(), width), pre_arrived=False)
        ends = [(begin, begin + len(text)) for begin, text in placed]
        for (_, end_a), (begin_b, _) in itertools.pairwise(ends):
            assert end_a < begin_b, (width, placed)
        assert all(0 <= b and e <= width for b, e in ends)
    narrow = [text for _, text in place_labels(timeline_positions(make(), 20), False)]
    assert "start" in narrow and "close" in narrow
    assert "freeze" not in narrow  # the least important label goes first
    wide = [text for _, text in place_labels(timeline_positions(make(), 120), False)]
    assert {"start", "close", "end", "freeze", "pre?"} <= set(wide)


class TimelineApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Timeline(make(), id="timeline")


async def test_widget_moves_now_marker_and_ignores_unchanged_data() -> None:
    app = TimelineApp()
    async with app.run_test(size=(80, 24)) as pilot:
        timeline = app.query_one(Timeline)
        await pilot.pause()
        width = timeline.size.width
        before = timeline_positions(make(), width).now
        assert timeline.render_line(0).text[before] == "▼"
        # All three rows are drawn, each on its own line.
        assert timeline.size.height == 3
        assert timeline.render_line(1).text.startswith(GLYPH_CANCELLABLE)
        assert "start" in timeline.render_line(2).text.split()

        timeline.set_now(T - 5 * MIN)
        await pilot.pause()
        after = timeline_positions(make(now=T - 5 * MIN), width).now
        assert after > before
        assert timeline.render_line(0).text[after] == "▼"

        refreshes: list[object] = []
        original = timeline.refresh
        timeline.refresh = lambda *a, **k: refreshes.append(1) or original(*a, **k)  # type: ignore[method-assign]
        timeline.update_data(make(now=T - 5 * MIN))
        assert refreshes == []


async def test_now_redraws_only_when_its_cell_changes() -> None:
    app = TimelineApp()
    async with app.run_test(size=(80, 24)) as pilot:
        timeline = app.query_one(Timeline)
        await pilot.pause()
        width = timeline.size.width
        refreshes: list[object] = []
        original = timeline.refresh
        timeline.refresh = lambda *a, **k: refreshes.append(1) or original(*a, **k)  # type: ignore[method-assign]
        column = timeline_positions(make(), width).now
        now = T - 22 * MIN
        # Step a second at a time until the marker's cell changes: only that step redraws.
        for _ in range(600):
            now += timedelta(seconds=1)
            timeline.set_now(now)
            if timeline_positions(make(now=now), width).now != column:
                break
            assert refreshes == []
        assert refreshes == [1]
        assert timeline.data is not None and timeline.data.now == now  # stored every time
        timeline.update_data(make(now=now, pre_event_at=T - 33 * MIN))
        assert refreshes == [1, 1]  # anything but now redraws at once
        await pilot.pause()
        column = timeline_positions(make(now=now), width).now
        assert timeline.render_line(0).text[column] == "▼"
