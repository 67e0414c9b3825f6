"""ConfirmCancel: starts on No, escape/n say No, y does nothing, Yes needs a deliberate move."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from textual.app import App
from textual.widgets import Button, Static

from widgets.confirm import Closed, ConfirmCancel, detail_table

LINES = [
    ("configuration", "[bold red]weekly[/] \x1b[31m"),
    ("run id", "/subscriptions/0000/.../applyupdates/20260301150000"),
    ("start (UTC)", "2026-03-01 15:00"),
    ("time left", "06:12"),
]


class HostApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.answers: list[bool | None] = []

    def on_mount(self) -> None:
        self.push_screen(ConfirmCancel("Cancel this run?", LINES), self.answers.append)


def test_details_align_labels_and_keep_values_literal() -> None:
    console = Console(width=100, no_color=True)
    with console.capture() as capture:
        console.print(detail_table([*LINES, ("long", "x" * 120)]))
    lines = [line.rstrip() for line in capture.get().splitlines()]
    assert lines[0] == "configuration  [bold red]weekly[/] \\x1b[31m"
    assert lines[3] == "time left      06:12"
    # A long value folds inside its column instead of pushing below its label.
    assert lines[4].startswith("long           xxxx")
    assert lines[5].startswith("               xxxx")


async def test_focus_starts_on_no_and_escape_answers_no() -> None:
    app = HostApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ConfirmCancel)
        assert app.focused is not None and app.focused.id == "confirm-no"
        await pilot.press("escape")
        await pilot.pause()
        assert app.answers == [False]


async def test_y_and_enter_do_not_confirm() -> None:
    app = HostApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("y")
        await pilot.pause()
        assert app.answers == []
        assert isinstance(app.screen, ConfirmCancel)
        await pilot.press("enter")  # enter on the focused "No"
        await pilot.pause()
        assert app.answers == [False]


async def test_moving_to_yes_and_pressing_enter_confirms() -> None:
    app = HostApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("right")
        assert app.focused is not None and app.focused.id == "confirm-yes"
        await pilot.press("enter")
        await pilot.pause()
        assert app.answers == [True]


async def test_n_answers_no() -> None:
    app = HostApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        assert app.answers == [False]


async def test_values_render_literally_and_fit_80x24() -> None:
    app = HostApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        details = app.screen.query_one("#confirm-details", Static)
        rendered = "\n".join(details.render_line(y).text for y in range(details.size.height))
        assert "[bold red]weekly[/] \\x1b[31m" in rendered
        dialog = app.screen.query_one("#confirm-dialog")
        assert dialog.region.right <= 80 and dialog.region.bottom <= 24
        buttons = [str(button.label) for button in app.screen.query(Button)]
        assert buttons == ["No", "Yes, cancel"]


class LiveApp(App[None]):
    """A live dialog whose source the test drives: a list of answers, the last repeated."""

    def __init__(self, answers: list[Any], refresh_every: float = 60.0) -> None:
        super().__init__()
        self.answers_given = answers
        self.asked = 0
        self.answers: list[bool | None] = []
        self.dialog = ConfirmCancel("Cancel this run?", LINES, refresh=self.source,
                                    refresh_every=refresh_every)

    def source(self) -> Any:
        self.asked += 1
        return self.answers_given[min(self.asked, len(self.answers_given)) - 1]

    def on_mount(self) -> None:
        self.push_screen(self.dialog, self.answers.append)


def shown(app: App[Any]) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_a_live_dialog_redraws_its_lines_and_keeps_focus_on_no() -> None:
    later = [*LINES[:3], ("time left", "06:06")]
    app = LiveApp([later])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "06:12" in shown(app)
        app.dialog.tick()
        await pilot.pause()
        assert app.dialog.lines[-1] == ("time left", "06:06")
        assert "06:06" in shown(app) and "06:12" not in shown(app)
        assert app.focused is not None and app.focused.id == "confirm-no"
        assert app.answers == [] and isinstance(app.screen, ConfirmCancel)


async def test_a_live_dialog_closes_itself_answering_no_and_keeps_the_reason() -> None:
    reason = "cancel window closed at 12:15 UTC; nothing was sent"
    app = LiveApp([LINES, Closed(reason)])
    async with app.run_test(size=(80, 24)) as pilot:
        app.dialog.tick()
        await pilot.pause()
        assert isinstance(app.screen, ConfirmCancel)
        app.dialog.tick()
        await pilot.pause()
        assert app.answers == [False]
        assert app.dialog.closed_reason == reason
        assert not isinstance(app.screen, ConfirmCancel)


async def test_a_live_dialog_asks_again_by_itself() -> None:
    app = LiveApp([LINES], refresh_every=0.01)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(200):  # the dialog's own timer; bounded, no fixed sleep
            if app.asked >= 2:
                break
            await pilot.pause(0.01)
        assert app.asked >= 2


async def test_an_answered_dialog_is_not_live() -> None:
    app = LiveApp([Closed("never used")])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("escape")
        await pilot.pause()
        app.dialog.tick()  # e.g. a timer that fires once more: nothing to close
        await pilot.pause()
        assert app.answers == [False] and app.dialog.closed_reason is None
