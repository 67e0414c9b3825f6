"""A danger confirmation dialog that is hard to confirm by accident.

Keys: focus starts on "No". `escape` or `n` answers No. There is no single-key Yes (`y` does
nothing): to confirm, move to "Yes, cancel" with `tab` / `right` and press `enter` (or
`space`), or click it. The dialog names its target through the (label, value) lines, and
every value is drawn literally (untrusted text, no markup).

A live dialog (``refresh``) asks for its lines again every ``refresh_every`` seconds (and at
each :meth:`ConfirmCancel.tick`), so a countdown in them moves with the caller's clock; when
the answer is :class:`Closed` the dialog closes itself, answering No, and keeps the reason
in ``closed_reason`` for the caller to tell the operator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
#: How often a live dialog asks for its lines again, in seconds.
REFRESH_EVERY = 1.0


@dataclass(frozen=True)
class Closed:
    """A live dialog's answer when what it asks about can no longer be done (``reason``:
    one line for the operator, e.g. "cancel window closed at 12:20 UTC; nothing was sent")."""

    reason: str


#: A live dialog's source: its (label, value) lines now, or :class:`Closed`.
Refresh = Callable[[], "Sequence[tuple[str, str]] | Closed"]


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
        refresh: Refresh | None = None,
        refresh_every: float = REFRESH_EVERY,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """Create the dialog.

        Args:
            title: the question, e.g. "Cancel this run?".
            lines: (label, value) pairs naming the target; values are shown literally.
            confirm_label / refuse_label: the button words.
            refresh: makes the dialog live (see the module): the lines now, or
                :class:`Closed` to close it; ``refresh_every``: how often, in seconds.
        """
        super().__init__(name=name, id=id, classes=classes)
        self._title = sanitize(title, 120)
        self._lines = _plain(lines)
        self._refresh = refresh
        self._refresh_every = refresh_every
        #: Why the dialog closed itself (None: the operator answered).
        self.closed_reason: str | None = None
        self._confirm_label = sanitize(confirm_label, 30)
        self._refuse_label = sanitize(refuse_label, 30)

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static(Text(self._title, end=""), id="confirm-title", markup=False)
            yield Static(detail_table(self._lines), id="confirm-details", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button(Content(self._refuse_label), id="confirm-no", variant="primary")
                yield Button(Content(self._confirm_label), id="confirm-yes", variant="error")

    def on_mount(self) -> None:
        if self._refresh is not None:
            self.set_interval(self._refresh_every, self.tick, name="confirm-refresh")

    @property
    def lines(self) -> tuple[tuple[str, str], ...]:
        """The (label, value) lines shown now."""
        return self._lines

    def tick(self) -> None:
        """Ask the live dialog's source again: redraw changed lines, or close on
        :class:`Closed` (answering No). Never raises; focus stays where it is."""
        if self._refresh is None or self.closed_reason is not None or not self.is_attached:
            return
        try:
            answer = self._refresh()
        except Exception as exc:  # a timer callback must not take the app down
            answer = Closed(f"the dialog could not be updated ({type(exc).__name__}); "
                            "nothing was sent")
        if isinstance(answer, Closed):
            if self.app.screen is not self:
                return  # another screen on top (help, palette): close once it is gone
            self.closed_reason = answer.reason
            self.dismiss(False)
            return
        lines = _plain(answer)
        if lines != self._lines:
            self._lines = lines
            self.query_one("#confirm-details", Static).update(detail_table(lines))

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


def _plain(lines: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(label), str(value)) for label, value in lines)
