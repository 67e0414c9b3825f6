"""The filter box above the configurations: hidden until ``/``, cleared by ``esc``.

It posts :class:`tui.messages.FilterSet`; the screen applies it to the state.
"""

from __future__ import annotations

from textual import on
from textual.widgets import Input

from tui.messages import FilterSet


class FilterBox(Input):
    """The ``#filter`` input."""

    def __init__(self) -> None:
        super().__init__(placeholder="filter configurations (esc clears)", id="filter")

    def on_mount(self) -> None:
        self.display = False

    def open(self) -> None:
        """Show the box and type into it."""
        self.display = True
        self.focus()

    def clear_and_hide(self) -> bool:
        """Empty and hide the box; returns whether it was showing or held a filter."""
        if not self.display and not self.value:
            return False
        self.value = ""
        self.display = False
        return True

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(FilterSet(event.value, done=False))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value:
            self.display = False
        self.post_message(FilterSet(event.value, done=True))
