"""A danger confirmation dialog that is hard to confirm by accident.

Keys: focus starts on "No". `escape` or `n` answers No. There is no single-key Yes (`y` does
nothing): to confirm, move to "Yes, cancel" with `tab` / `right` and press `enter` (or
`space`), or click it. The dialog names its target through the (label, value) lines, and
every value is drawn literally (untrusted text, no markup).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from widgets.sanitize import sanitize

VALUE_MAX_LEN = 300
LABEL_MAX_LEN = 24


def detail_table(lines: Sequence[tuple[str, str]]) -> Table:
    """The dialog body: "label  value" rows, labels aligned, values literal.

    A long value (a run id is ~200 characters) folds within its column, so the label stays
    beside the start of its value.
    """
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in lines:
        table.add_row(Text(sanitize(label, LABEL_MAX_LEN)),
                      Text(sanitize(value, VALUE_MAX_LEN), overflow="fold"))
    return table


class ConfirmCancel(ModalScreen[bool]):
    """Ask "are you sure?"; dismisses with True only when "Yes, cancel" is pressed.

    Push it with `app.push_screen(ConfirmCancel(...), callback)` or
    `await app.push_screen_wait(...)` from a worker.
    """

    AUTO_FOCUS = "#confirm-no"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "refuse", "No", tooltip="Close without cancelling"),
        Binding("n", "refuse", "No", show=False),
        Binding("left", "app.focus_previous", "Previous", show=False),
        Binding("right", "app.focus_next", "Next", show=False),
    ]

    DEFAULT_CSS = """
    ConfirmCancel {
        align: center middle;
        background: $background 60%;
    }
    ConfirmCancel > #confirm-dialog {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $error;
        background: $surface;
        padding: 0 1;
    }
    ConfirmCancel #confirm-title {
        text-style: bold;
        color: $error;
        margin-bottom: 1;
    }
    ConfirmCancel #confirm-details {
        height: auto;
        margin-bottom: 1;
    }
    ConfirmCancel #confirm-buttons {
        height: auto;
        align-horizontal: right;
    }
    ConfirmCancel Button {
        margin-left: 2;
    }
    """

    def __init__(
        self,
        title: str,
        lines: Sequence[tuple[str, str]],
        *,
        confirm_label: str = "Yes, cancel",
        refuse_label: str = "No",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """Create the dialog.

        Args:
            title: the question, e.g. "Cancel this run?".
            lines: (label, value) pairs naming the target; values are shown literally.
            confirm_label / refuse_label: the button words.
        """
        super().__init__(name=name, id=id, classes=classes)
        self._title = sanitize(title, 120)
        self._lines = tuple((str(label), str(value)) for label, value in lines)
        self._confirm_label = sanitize(confirm_label, 30)
        self._refuse_label = sanitize(refuse_label, 30)

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static(Text(self._title, end=""), id="confirm-title", markup=False)
            yield Static(detail_table(self._lines), id="confirm-details", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button(Content(self._refuse_label), id="confirm-no", variant="primary")
                yield Button(Content(self._confirm_label), id="confirm-yes", variant="error")

    def action_refuse(self) -> None:
        """Answer No."""
        self.dismiss(False)

    @on(Button.Pressed, "#confirm-no")
    def _pressed_no(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(False)

    @on(Button.Pressed, "#confirm-yes")
    def _pressed_yes(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(True)
