"""Countdown widget: text follows the injected clock, redraws only on change, posts Reached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console
from textual import on
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.renderables.digits import Digits as BigDigits

from widgets.countdown import Countdown

T = datetime(2026, 3, 1, 14, 50, tzinfo=UTC)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


class CountdownApp(App[None]):
    def __init__(self, clock: FakeClock, large: bool = False) -> None:
        super().__init__()
        self.clock = clock
        self.large = large
        self.reached: list[str] = []

    def compose(self) -> ComposeResult:
        yield Countdown(self.clock, label="cancel closes in", deadline=T, large=self.large)

    @on(Countdown.Reached)
    def _reached(self, message: Countdown.Reached) -> None:
        self.reached.append(message.label)


def big_digit_lines(text: str) -> list[str]:
    lines = Console(width=40).render_lines(BigDigits(text, style="bold"), pad=False)
    return ["".join(segment.text for segment in line).rstrip() for line in lines]


def screen_text(widget: Countdown) -> list[str]:
    region = Region(0, 0, widget.size.width, widget.size.height)
    return [strip.text.rstrip() for strip in widget.render_lines(region)]


async def test_text_follows_the_injected_clock() -> None:
    clock = FakeClock(T - timedelta(minutes=6, seconds=12))
    app = CountdownApp(clock)
    async with app.run_test(size=(80, 24)) as pilot:
        countdown = app.query_one(Countdown)
        await pilot.pause()
        assert countdown.text == "cancel closes in 06:12"
        assert screen_text(countdown) == ["cancel closes in 06:12"]

        clock.advance(seconds=12)
        countdown.tick()
        await pilot.pause()
        assert screen_text(countdown) == ["cancel closes in 06:00"]

        countdown.set_target("starts in", clock.now + timedelta(hours=1, minutes=2, seconds=3))
        await pilot.pause()
        assert screen_text(countdown) == ["starts in 1:02:03"]


async def test_redraws_only_when_the_text_changes() -> None:
    clock = FakeClock(T - timedelta(minutes=5))
    app = CountdownApp(clock)
    async with app.run_test(size=(80, 24)):
        countdown = app.query_one(Countdown)
        updates: list[object] = []
        original = countdown.update
        countdown.update = lambda *a, **k: updates.append(a) or original(*a, **k)  # type: ignore[method-assign]
        clock.advance(seconds=0.2)  # 4:59.8 left still reads 05:00 (rounded up)
        countdown.tick()
        assert updates == []
        clock.advance(seconds=1)
        countdown.tick()
        assert len(updates) == 1
        assert countdown.text == "cancel closes in 04:59"


async def test_reaching_the_deadline_posts_once_and_reads_zero() -> None:
    clock = FakeClock(T - timedelta(seconds=1))
    app = CountdownApp(clock)
    async with app.run_test(size=(80, 24)) as pilot:
        countdown = app.query_one(Countdown)
        await pilot.pause()
        assert app.reached == []
        clock.advance(seconds=1)
        countdown.tick()
        countdown.tick()
        await pilot.pause()
        assert countdown.text == "cancel closes in 00:00"
        assert countdown.has_class("-expired")
        assert app.reached == ["cancel closes in"]


async def test_no_deadline_shows_idle_text_and_naive_deadline_is_refused() -> None:
    clock = FakeClock(T)
    app = CountdownApp(clock)
    async with app.run_test(size=(80, 24)) as pilot:
        countdown = app.query_one(Countdown)
        countdown.set_target("nothing", None)
        await pilot.pause()
        assert countdown.text == ""
        with pytest.raises(ValueError, match="timezone-aware"):
            countdown.set_target("x", datetime(2026, 3, 1, 15, 0))


async def test_label_is_literal_and_control_characters_are_escaped() -> None:
    clock = FakeClock(T - timedelta(minutes=1))
    app = CountdownApp(clock)
    async with app.run_test(size=(80, 24)) as pilot:
        countdown = app.query_one(Countdown)
        countdown.set_target("[bold red]x[/] \x1b[31m", T)
        await pilot.pause()
        assert screen_text(countdown) == ["[bold red]x[/] \\x1b[31m 01:00"]


async def test_large_variant_uses_big_digits_and_fits_80x24() -> None:
    clock = FakeClock(T - timedelta(minutes=6, seconds=12))
    app = CountdownApp(clock, large=True)
    async with app.run_test(size=(80, 24)) as pilot:
        countdown = app.query_one(Countdown)
        await pilot.pause()
        lines = screen_text(countdown)
        assert lines[0] == "cancel closes in"
        assert len(lines) == 4  # label + three rows of digits
        assert countdown.size.width <= 80
        # Days cannot be drawn with the digit font; they fall back to bold text.
        countdown.set_target("starts in", T + timedelta(days=2, hours=4))
        await pilot.pause()
        assert screen_text(countdown)[:2] == ["starts in", "2d 4h"]


async def test_a_digit_tick_repaints_without_layout_and_a_new_shape_relayouts() -> None:
    clock = FakeClock(T - timedelta(minutes=6, seconds=12))
    app = CountdownApp(clock, large=True)
    async with app.run_test(size=(80, 24)) as pilot:
        countdown = app.query_one(Countdown)
        await pilot.pause()
        layouts: list[bool] = []
        original = countdown.update
        countdown.update = (  # type: ignore[method-assign]
            lambda *a, **k: layouts.append(k["layout"]) or original(*a, **k))
        clock.advance(seconds=1)
        countdown.tick()  # 06:11: same width, same label
        assert layouts == [False]
        countdown.set_target("starts in", clock.now + timedelta(hours=1))  # "1:00:00"
        assert layouts == [False, True]
        clock.advance(seconds=1)
        countdown.tick()  # "59:59": shorter
        assert layouts == [False, True, True]
        await pilot.pause()
        assert screen_text(countdown)[0] == "starts in"


async def test_a_digit_tick_repaints_only_the_cells_of_the_changed_digit() -> None:
    clock = FakeClock(T - timedelta(minutes=6, seconds=12))
    app = CountdownApp(clock, large=True)
    async with app.run_test(size=(80, 24)) as pilot:
        countdown = app.query_one(Countdown)
        await pilot.pause()
        before = screen_text(countdown)
        countdown._exchange_repaint_regions()
        clock.advance(seconds=1)
        countdown.tick()  # 06:12 -> 06:11: only the last big digit (3 cells wide) changes
        regions = set(countdown._exchange_repaint_regions())
        assert regions, "the changed digit must be repainted"
        assert all(region.y in (1, 2, 3) and region.height == 1 for region in regions)
        last_digit = BigDigits.get_width("06:1")
        assert all(region.x >= last_digit and region.right <= last_digit + 3
                   for region in regions)
        await pilot.pause()
        after = screen_text(countdown)
        assert after[0] == before[0] == "cancel closes in"
        assert after != before
        assert after == ["cancel closes in", *big_digit_lines("06:11")]


async def test_a_one_line_tick_repaints_the_changed_characters_only() -> None:
    clock = FakeClock(T - timedelta(minutes=6, seconds=12))
    app = CountdownApp(clock)
    async with app.run_test(size=(80, 24)) as pilot:
        countdown = app.query_one(Countdown)
        await pilot.pause()
        countdown._exchange_repaint_regions()
        clock.advance(seconds=3)
        countdown.tick()  # "06:12" -> "06:09": the last two characters
        assert set(countdown._exchange_repaint_regions()) == {
            Region(len("cancel closes in 06:"), 0, 2, 1)}
        await pilot.pause()
        assert screen_text(countdown) == ["cancel closes in 06:09"]


async def test_a_new_shape_repaints_the_whole_widget() -> None:
    clock = FakeClock(T - timedelta(minutes=6, seconds=12))
    app = CountdownApp(clock)
    async with app.run_test(size=(80, 24)) as pilot:
        countdown = app.query_one(Countdown)
        await pilot.pause()
        countdown._exchange_repaint_regions()
        countdown.set_target("starts in", clock.now + timedelta(hours=1, minutes=2))
        assert set(countdown._exchange_repaint_regions()) == {
            Region(0, 0, *countdown.outer_size)}
        await pilot.pause()
        assert screen_text(countdown) == ["starts in 1:02:00"]


async def test_own_timer_stands_aside_while_a_parent_sets_the_target_each_second() -> None:
    clock = FakeClock(T - timedelta(minutes=6, seconds=12))
    app = CountdownApp(clock)
    async with app.run_test(size=(80, 24)):
        countdown = app.query_one(Countdown)
        countdown.set_target("cancel closes in", T)  # the parent's tick
        clock.advance(seconds=1)
        countdown._own_tick()  # same second as the parent's tick: left to the parent
        assert countdown.text == "cancel closes in 06:12"
        countdown._own_tick()  # no set_target since: the parent stopped, the timer ticks
        assert countdown.text == "cancel closes in 06:11"
        clock.advance(seconds=1)
        countdown._own_tick()
        assert countdown.text == "cancel closes in 06:10"


async def test_a_ticked_countdown_draws_exactly_as_a_fresh_one() -> None:
    # A tick's lines are drawn once (for the diff) and then shown as they are: they must be
    # the very strips, styles included, that a countdown drawn from scratch shows.
    clock = FakeClock(T - timedelta(minutes=6, seconds=12))
    app = CountdownApp(clock, large=True)
    async with app.run_test(size=(80, 24)) as pilot:
        ticked = app.query_one(Countdown)
        await pilot.pause()
        for _ in range(3):
            clock.advance(seconds=1)
            ticked.tick()
            await pilot.pause()
        assert ticked._drawn is not None  # the last tick took the diff path
        fresh = Countdown(clock, label="cancel closes in", deadline=T, large=True)
        await app.mount(fresh)
        await pilot.pause()
        assert fresh.size == ticked.size
        height = ticked.size.height
        assert [ticked.render_line(y) for y in range(height)] == \
            [fresh.render_line(y) for y in range(height)]
        assert screen_text(ticked)[1:] == big_digit_lines("06:09")
