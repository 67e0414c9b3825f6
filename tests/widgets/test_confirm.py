"""ConfirmCancel: starts on No, escape/n say No, y does nothing, Yes needs a deliberate move."""

from __future__ import annotations

from textual.app import App
from textual.widgets import Button, Static

from widgets.confirm import ConfirmCancel, detail_text

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


def test_detail_text_aligns_labels_and_keeps_values_literal() -> None:
    text = detail_text(LINES)
    lines = text.plain.split("\n")
    assert lines[0] == "configuration  [bold red]weekly[/] \\x1b[31m"
    assert lines[3] == "time left      06:12"


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
