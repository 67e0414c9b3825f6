"""The wiring view: one configuration's Event Grid wiring, its verdict and how to fix it.

Opened from the dashboard (``w``) for the selected configuration: the verdict and why, the
system topic, every event subscription with its details, the delivery health over 24 h, the
read error if any, and the fix (``aumwatch setup events ...``). Every string that came from
Azure is drawn literally (``Text``, never markup) and control characters are shown escaped;
a webhook is shown by its host only (the wiring never holds more: docs/azure.md, "Event Grid
wiring"). ``escape`` closes it. The dashboard calls :meth:`WiringView.show` again when a
later read changed the wiring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from services.azure.doctor import wiring_fix
from services.domain.wiring import EventSubscription, QueueTarget, Verdict, Wiring
from tui.panels.configs import WIRING_STYLES
from widgets.sanitize import sanitize

#: Formats a time for the view (the dashboard passes its display zone's).
FormatTime = Callable[[datetime | None], str]

#: The longest Azure string shown on one line (an id is about 250 characters).
MAX_FIELD = 400


@dataclass(frozen=True)
class WiringInfo:
    """What the view shows: the configuration, its wiring (None: not known), when the wiring
    was read, the read's error, and the queue aumwatch watches."""

    configuration_name: str
    wiring: Wiring | None
    read_at: datetime | None
    error: str | None
    watched: QueueTarget | None


def _field(text: Text, label: str, value: str | None, *, indent: int = 2,
           style: str = "") -> None:
    """One ``label  value`` line; ``value`` is untrusted and appended as plain text."""
    text.append(" " * indent + f"{label:<15}", style="dim")
    text.append(sanitize(value, MAX_FIELD) if value else "–", style=style)
    text.append("\n")


def _heading(text: Text, title: str) -> None:
    text.append("\n")
    text.append(title, style="bold")
    text.append("\n")


def _subscription(text: Text, sub: EventSubscription, info: WiringInfo, now: datetime,
                  format_time: FormatTime) -> None:
    text.append("  ")
    text.append(sanitize(sub.name, MAX_FIELD), style="bold")
    if not sub.active(now):
        text.append("  (not delivering)", style="yellow")
    text.append("\n")
    _field(text, "event types", ", ".join(sub.event_types) or "none", indent=4)
    _field(text, "schema", sub.schema, indent=4)
    endpoint = f"{sub.endpoint_type}  {sub.endpoint}" if sub.endpoint else sub.endpoint_type
    reaches = sub.endpoint_type == "storagequeue" and sub.reaches(info.watched)
    _field(text, "endpoint", endpoint, indent=4)
    if sub.endpoint_type == "storagequeue":
        text.append(" " * 19)
        if info.watched is None:
            text.append("(no queue is configured to compare with)", style="dim")
        elif reaches:
            text.append("◀ the queue aumwatch watches", style="green")
        else:
            text.append("not the queue aumwatch watches", style="yellow")
        text.append("\n")
    _field(text, "state", sub.state or "unknown", indent=4,
           style="" if sub.state.lower() == "succeeded" else "yellow")
    expiration = "never" if sub.expiration is None else format_time(sub.expiration)
    if sub.expiration is not None and sub.expiration <= now:
        expiration += "  (expired)"
    _field(text, "expiration", expiration, indent=4)
    _field(text, "dead-letter", sub.dead_letter or "none", indent=4)
    _field(text, "retry", sub.retry or "Event Grid's default", indent=4)
    _field(text, "filters", sub.filters or "none", indent=4)
    _field(text, "identity", "the system topic's managed identity" if sub.with_identity
           else "none (Event Grid's own credentials)", indent=4)


def wiring_text(info: WiringInfo, now: datetime, format_time: FormatTime) -> Text:
    """The whole view as one :class:`Text` (plain data in, literal text out)."""
    text = Text(end="")
    wiring = info.wiring
    text.append("Event Grid wiring of ", style="bold")
    text.append(sanitize(info.configuration_name, 200), style="bold")
    text.append("\n")
    if wiring is None:
        if info.error:
            text.append("? the wiring could not be read", style="bold yellow")
        else:
            text.append("… the wiring has not been read yet", style="dim")
        text.append("\n")
    else:
        text.append(f"{wiring.symbol} {wiring.verdict}",
                    style=WIRING_STYLES.get(wiring.verdict, "bold"))
        text.append("  ")
        text.append(sanitize(wiring.reason, MAX_FIELD))
        text.append("\n")
    watched = info.watched
    _field(text, "watched queue", f"{watched.queue_name} of storage account "
           f"{watched.account_name}" if watched else "none configured ([queue] in the config)",
           indent=0)
    _field(text, "read", format_time(info.read_at) if info.read_at else "not yet", indent=0)
    if wiring is not None:
        _heading(text, "System topic")
        topic = wiring.topic
        if topic is None:
            text.append("  none: no Event Grid system topic has this configuration as its "
                        "source\n", style="yellow")
        else:
            _field(text, "name", topic.name)
            _field(text, "location", topic.location or "unknown")
            _field(text, "state", topic.provisioning_state or "unknown")
            _field(text, "id", topic.id)
        subs = wiring.subscriptions
        _heading(text, f"Event subscriptions ({len(subs)})")
        if not subs:
            text.append("  none\n", style="yellow")
        for sub in subs:
            _subscription(text, sub, info, now, format_time)
        _heading(text, "Delivery health, last 24 h")
        health = wiring.health
        if health is None:
            text.append("  unknown (no metrics read)\n", style="dim")
        else:
            counts = (("published", health.published), ("matched", health.matched),
                      ("delivered", health.delivered), ("failed", health.failed),
                      ("dropped", health.dropped), ("dead-lettered", health.dead_lettered))
            text.append("  ")
            for i, (label, count) in enumerate(counts):
                if i:
                    text.append("  ")
                bad = label in ("failed", "dropped", "dead-lettered") and count > 0
                text.append(f"{label} ")
                text.append(str(count), style="bold red" if bad else "bold")
            text.append("\n")
    error = (wiring.error if wiring is not None else None) or info.error
    if error:
        _heading(text, "Read error")
        text.append("  ")
        text.append(sanitize(error, 2 * MAX_FIELD), style="yellow")
        text.append("\n")
    _heading(text, "Fix")
    text.append("  ")
    if wiring is None:
        text.append("read the wiring again (ctrl+r) or run `aumwatch subscriptions "
                    "--configuration ")
        text.append(sanitize(info.configuration_name, 200))
        text.append("`")
    elif wiring.verdict is Verdict.OK:
        text.append("nothing to fix", style="green")
    else:
        text.append(sanitize(wiring_fix(wiring, watched), 2 * MAX_FIELD))
    text.append("\n")
    return text


class WiringView(ModalScreen[None]):
    """The wiring of one configuration; ``escape`` (or ``q``, ``w``) closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,w", "close", "Close"),
    ]

    DEFAULT_CSS = """
    WiringView { align: center middle; background: $background 60%; }
    WiringView > #wiring-box {
        width: 96%; max-width: 140; height: 90%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    """

    def __init__(self, key: str, info: WiringInfo, now: Callable[[], datetime],
                 format_time: FormatTime) -> None:
        super().__init__()
        self.key = key  # the configuration's key, lower case
        self.info = info
        self._now = now
        self._format_time = format_time
        self.body = Static(self._text(), id="wiring-body", markup=False)

    def _text(self) -> Text:
        return wiring_text(self.info, self._now(), self._format_time)

    def compose(self) -> ComposeResult:
        with Vertical(id="wiring-box"):
            with VerticalScroll(id="wiring-scroll"):
                yield self.body

    def on_mount(self) -> None:
        self.query_one("#wiring-scroll").focus()

    def show(self, info: WiringInfo) -> None:
        """Draw ``info`` (a later read of the same configuration's wiring)."""
        self.info = info
        self.body.update(self._text())

    def action_close(self) -> None:
        """Close the view."""
        self.dismiss(None)
