"""ConfirmCancel: starts on No, escape/n say No, y does nothing, Yes needs a deliberate move."""

from __future__ import annotations

from rich.console import Console
from textual.app import App
from textual.widgets import Button, Static

from widgets.confirm import ConfirmCancel, detail_table

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
