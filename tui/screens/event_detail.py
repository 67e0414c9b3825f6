"""A modal that shows one event's JSON (or an undecodable message's raw preview), literally."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from widgets.sanitize import sanitize

#: The most characters shown (a queue message holds at most 64 KiB).
DETAIL_MAX_CHARS = 70_000


def escaped_lines(text: str) -> Text:
    """``text`` line by line, every control character shown as an escape, never markup."""
    lines = [sanitize(line, DETAIL_MAX_CHARS) for line in text[:DETAIL_MAX_CHARS].split("\n")]
    return Text("\n".join(lines), end="")


class EventDetail(ModalScreen[None]):
    """The event under the cursor: ``escape``/``q``/``enter`` close it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,enter", "close", "Close"),
    ]

    DEFAULT_CSS = """
    EventDetail { align: center middle; background: $background 60%; }
    EventDetail > #detail-box {
        width: 90%; max-width: 120; height: 80%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    EventDetail #detail-title { text-style: bold; }
    """

    def __init__(self, title: str, payload: str) -> None:
        super().__init__()
        self._title = sanitize(title, 200)
        self._payload = payload

    def compose(self) -> ComposeResult:
        with Vertical(id="detail-box"):
            yield Static(Text(self._title), id="detail-title", markup=False)
            with VerticalScroll(id="detail-scroll"):
                yield Static(escaped_lines(self._payload), id="detail-body", markup=False)

    def on_mount(self) -> None:
        self.query_one("#detail-scroll").focus()

    def action_close(self) -> None:
        """Close the detail view."""
        self.dismiss(None)
