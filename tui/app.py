"""The aumwatch Textual application (skeleton; the dashboard issue fills it)."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Footer, Header, Static


class AumwatchApp(App[int]):
    TITLE = "aumwatch"
    BINDINGS = [("q", "quit", "Quit")]

    def __init__(self, *, read_only: bool = False) -> None:
        super().__init__()
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("aumwatch: no data source configured yet.", markup=False)
        yield Footer()
