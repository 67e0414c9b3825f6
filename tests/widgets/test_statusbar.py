"""StatusBar: what it shows, what it drops to fit, and that it redraws only on change."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from textual.app import App, ComposeResult

from widgets.statusbar import SourceAge, StatusBar, StatusData, format_age, status_lines

S = timedelta(seconds=1)

FULL = StatusData(
    sources=(SourceAge("configs", 12 * S), SourceAge("runs", 3 * S), SourceAge("events", 1 * S)),
    quota_remaining=14,
    queue_mode="peek",
    queue_depth=32,
    queue_depth_capped=True,
    clock_skew=2.1 * S,
    read_only=True,
    paused=True,
    last_error="ARG 503 [bold red]boom[/] \x1b[31m" + "x" * 300,
)


@pytest.mark.parametrize(("age", "text"), [(None, "–"), (0 * S, "<10s"), (9.9 * S, "<10s"),
                                           (12 * S, "10s"), (59 * S, "50s"), (125 * S, "2m"),
                                           (7300 * S, "2h"), (3 * 86400 * S, "3d")])
def test_format_age(age: timedelta | None, text: str) -> None:
    assert format_age(age) == text


def test_everything_shows_when_there_is_room() -> None:
    line, error = (text.plain for text in status_lines(FULL, 200))
    for part in ("‖ PAUSED", "■ read-only", "configs 10s", "runs <10s", "events <10s", "quota 14",
                 "peek 32+", "skew +2.1s"):
        assert part in line
    assert error.startswith("✗ ARG 503 [bold red]boom[/] \\x1b[31m")
    assert "\x1b" not in error


@pytest.mark.parametrize("width", [20, 40, 60, 78, 80, 100])
def test_lines_never_exceed_the_width_and_drop_the_least_important(width: int) -> None:
    lines = status_lines(FULL, width)
    assert all(line.cell_len <= width for line in lines)
    first = lines[0].plain
    if width >= 40:
        assert "PAUSED" in first and "read-only" in first
    if width < 100:
        assert "skew" not in first  # least important goes first


def test_stale_sources_are_marked_in_words_and_colour_and_kept_first() -> None:
    data = StatusData(sources=(SourceAge("configs", 3 * S), SourceAge("runs", 3 * S),
                               SourceAge("events", None)), quota_remaining=10)
    [line] = status_lines(data, 200)
    assert "events –!" in line.plain
    start = line.plain.index("events")
    assert any("yellow" in str(span.style) for span in line.spans if span.start == start)
    [narrow] = status_lines(data, 12)
    assert narrow.plain == "events –!"


def test_throttled_replaces_quota_and_queue_depth_is_exact_when_not_capped() -> None:
    data = StatusData(quota_remaining=0, throttled_for=42 * S, queue_mode="consume",
                      queue_depth=5)
    [line] = status_lines(data, 80)
    assert "ARG throttled 42s" in line.plain and "quota" not in line.plain
    assert "consume 5" in line.plain and "5+" not in line.plain


class BarApp(App[None]):
    def compose(self) -> ComposeResult:
        yield StatusBar(FULL)


async def test_bar_fits_80_columns_and_redraws_only_on_change() -> None:
    app = BarApp()
    async with app.run_test(size=(80, 24)) as pilot:
        bar = app.query_one(StatusBar)
        await pilot.pause()
        assert bar.size.height == 2
        lines = [bar.render_line(y).text for y in range(2)]
        assert bar.region.width == 80 and bar.size.width == 78  # one cell of padding each side
        assert all(len(line) <= bar.size.width for line in lines)
        assert lines[1].endswith("…")  # the long error is cut, not wrapped
        assert "PAUSED" in lines[0] and "[bold red]boom[/]" in lines[1]

        assert bar.update_status(replace(FULL)) is False
        assert bar.update_status(replace(FULL, last_error=None)) is True
        await pilot.pause()
        assert bar.size.height == 1
        assert "boom" not in bar.render_line(0).text


async def test_an_age_change_below_the_shown_grain_stores_without_redrawing() -> None:
    app = BarApp()
    async with app.run_test(size=(120, 24)) as pilot:
        bar = app.query_one(StatusBar)
        await pilot.pause()
        refreshes: list[object] = []
        original = bar.refresh
        bar.refresh = lambda *a, **k: refreshes.append(1) or original(*a, **k)  # type: ignore[method-assign]
        configs, runs, events = FULL.sources
        finer = replace(FULL, sources=(replace(configs, age=19.9 * S), runs, events))
        assert bar.update_status(finer) is False  # 19.9 s still reads "10s"
        assert bar.data is finer and refreshes == []
        later = replace(FULL, sources=(replace(configs, age=20 * S), runs, events))
        assert bar.update_status(later) is True
        assert refreshes == [1]
        await pilot.pause()
        assert "configs 20s" in bar.render_line(0).text


def test_the_skew_is_highlighted_by_the_callers_verdict_not_by_its_size() -> None:
    # The threshold lives in services.domain.clock; the bar only shows the verdict it is given.
    quiet = StatusData(clock_skew=30 * S, skew_warning=False)
    loud = StatusData(clock_skew=30 * S, skew_warning=True)
    [plain] = status_lines(quiet, 200)
    [warned] = status_lines(loud, 200)
    assert plain.plain == warned.plain == "skew +30.0s"
    assert any("yellow" in str(span.style) for span in warned.spans)
    assert not any("yellow" in str(span.style) for span in plain.spans)
    # A warned skew outranks the queue when space is short; a quiet one goes first.
    both = StatusData(clock_skew=30 * S, skew_warning=True, queue_mode="peek", queue_depth=3)
    assert "skew" in status_lines(both, 14)[0].plain
    assert "skew" not in status_lines(replace(both, skew_warning=False), 14)[0].plain


def test_a_deep_queue_reads_with_thousands_separators() -> None:
    [line] = status_lines(StatusData(queue_mode="peek", queue_depth=12345,
                                     queue_depth_capped=True), 200)
    assert line.plain == "peek 12,345+"
