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

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
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


class Doc:
    """The view's lines: free lines and ``label  value`` fields, each indented. Rendered as
    rows whose wrapped continuation keeps its indent (a long resource id wraps inside its
    value column); :attr:`plain` is the same text, one string (tests, search)."""

    def __init__(self) -> None:
        self._lines: list[tuple[int, str | None, Text]] = []

    def line(self, *parts: str | tuple[str, str], indent: int = 0) -> None:
        """A free line of ``parts`` (a part is a literal string, or (string, style))."""
        text = Text()
        for part in parts:
            if isinstance(part, tuple):
                text.append(part[0], style=part[1])
            else:
                text.append(part)
        self._lines.append((indent, None, text))

    def field(self, label: str, value: str | None, *, indent: int = 2, style: str = "") -> None:
        """One ``label  value`` line; ``value`` is untrusted and kept as plain text."""
        self._lines.append((indent, label, Text(sanitize(value, MAX_FIELD) if value else "–",
                                                style=style)))

    def heading(self, title: str) -> None:
        self.line()
        self.line((title, "bold"))

    @property
    def plain(self) -> str:
        """The text of every line, a field as ``label`` padded to its column, then its value."""
        out = []
        for indent, label, text in self._lines:
            head = "" if label is None else f"{label:<{LABEL_WIDTH}}"
            out.append(" " * indent + head + text.plain)
        return "\n".join(out)

    def renderable(self) -> RenderableType:
        """Rows for a Static: a field is a two-column grid (label, folded value)."""
        rows: list[RenderableType] = []
        for indent, label, text in self._lines:
            if label is None:
                rows.append(Padding(text, (0, 0, 0, indent)))
                continue
            grid = Table.grid()
            grid.add_column(width=indent + LABEL_WIDTH, no_wrap=True)
            grid.add_column(overflow="fold")
            grid.add_row(Text(" " * indent + label, style="dim"), text)
            rows.append(grid)
        return Group(*rows)


#: The label column of a field.
LABEL_WIDTH = 15


def _subscription(doc: Doc, sub: EventSubscription, info: WiringInfo, now: datetime,
                  format_time: FormatTime) -> None:
    # A subject filter that never lets this configuration's events (subject: its name)
    # through delivers nothing either.
    delivering = sub.active(now) and sub.subject_matches(info.configuration_name)
    doc.line((sanitize(sub.name, MAX_FIELD), "bold"),
             *((("  (not delivering)", "yellow"),) if not delivering else ()), indent=2)
    doc.field("event types", ", ".join(sub.event_types) or "none", indent=4)
    doc.field("schema", sub.schema, indent=4)
    endpoint = f"{sub.endpoint_type}  {sub.endpoint}" if sub.endpoint else sub.endpoint_type
    doc.field("endpoint", endpoint, indent=4)
    if sub.endpoint_type == "storagequeue":
        if info.watched is None:
            doc.field("", "(no queue is configured to compare with)", indent=4, style="dim")
        elif sub.reaches(info.watched):
            doc.field("", "◀ the queue aumwatch watches", indent=4, style="green")
        else:
            doc.field("", "not the queue aumwatch watches", indent=4, style="yellow")
    doc.field("state", sub.state or "unknown", indent=4,
              style="" if sub.state.lower() == "succeeded" else "yellow")
    expiration = "never" if sub.expiration is None else format_time(sub.expiration)
    if sub.expiration is not None and sub.expiration <= now:
        expiration += "  (expired)"
    doc.field("expiration", expiration, indent=4)
    doc.field("dead-letter", sub.dead_letter or "none", indent=4)
    doc.field("retry", sub.retry or "Event Grid's default", indent=4)
    doc.field("filters", sub.filters or "none", indent=4)
    doc.field("identity", "the system topic's managed identity" if sub.with_identity
              else "none (Event Grid's own credentials)", indent=4)


def wiring_doc(info: WiringInfo, now: datetime, format_time: FormatTime) -> Doc:
    """The whole view (plain data in, literal text out)."""
    doc = Doc()
    wiring = info.wiring
    doc.line(("Event Grid wiring of ", "bold"),
             (sanitize(info.configuration_name, 200), "bold"))
    if wiring is None:
        doc.line(("? the wiring could not be read", "bold yellow") if info.error
                 else ("… the wiring has not been read yet", "dim"))
    else:
        doc.line((f"{wiring.symbol} {wiring.verdict}",
                  WIRING_STYLES.get(wiring.verdict, "bold")),
                 "  ", sanitize(wiring.reason, MAX_FIELD))
    watched = info.watched
    doc.field("watched queue", f"{watched.queue_name} of storage account "
              f"{watched.account_name}" if watched else "none configured ([queue] in the "
              "config)", indent=0)
    doc.field("read", format_time(info.read_at) if info.read_at else "not yet", indent=0)
    if wiring is not None:
        doc.heading("System topic")
        topic = wiring.topic
        if topic is None:
            doc.line(("none: no Event Grid system topic has this configuration as its source",
                      "yellow"), indent=2)
        else:
            doc.field("name", topic.name)
            doc.field("location", topic.location or "unknown")
            doc.field("state", topic.provisioning_state or "unknown")
            doc.field("id", topic.id)
        subs = wiring.subscriptions
        doc.heading(f"Event subscriptions ({len(subs)})")
        if not subs:
            doc.line(("none", "yellow"), indent=2)
        for sub in subs:
            _subscription(doc, sub, info, now, format_time)
        doc.heading("Delivery health, last 24 h")
        health = wiring.health
        if health is None:
            doc.line(("unknown (no metrics read)", "dim"), indent=2)
        else:
            counts = (("published", health.published), ("matched", health.matched),
                      ("delivered", health.delivered), ("failed", health.failed),
                      ("dropped", health.dropped), ("dead-lettered", health.dead_lettered))
            parts: list[str | tuple[str, str]] = []
            for i, (label, count) in enumerate(counts):
                bad = label in ("failed", "dropped", "dead-lettered") and count > 0
                parts += ["  " if i else "", f"{label} ",
                          (str(count), "bold red" if bad else "bold")]
            doc.line(*parts, indent=2)
            # Per event subscription, when Azure Monitor split the counts (the verdict rests
            # on the watched queue's subscriptions only).
            for name, per in health.by_subscription or ():
                bad = per.failing
                doc.line(("through ", "dim"), (sanitize(name, MAX_FIELD), "bold"),
                         f"  delivered {per.delivered}  failed ",
                         (str(per.failed), "bold red" if per.failed else "bold"),
                         f"  dropped {per.dropped}  dead-lettered {per.dead_lettered}",
                         *((("  ✗", "red"),) if bad else ()), indent=4)
    error = (wiring.error if wiring is not None else None) or info.error
    if error:
        doc.heading("Read error")
        doc.line((sanitize(error, 2 * MAX_FIELD), "yellow"), indent=2)
    doc.heading("Fix")
    if wiring is None:
        doc.line("read the wiring again (ctrl+r) or run `aumwatch subscriptions "
                 "--configuration ", sanitize(info.configuration_name, 200), "`", indent=2)
    elif wiring.verdict is Verdict.OK:
        doc.line(("nothing to fix", "green"), indent=2)
    else:
        doc.line(sanitize(wiring_fix(wiring, watched), 2 * MAX_FIELD), indent=2)
    return doc


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
        self.doc = self._doc()
        self.body = Static(self.doc.renderable(), id="wiring-body", markup=False)

    def _doc(self) -> Doc:
        return wiring_doc(self.info, self._now(), self._format_time)

    @property
    def text(self) -> str:
        """What the view shows, as plain text."""
        return self.doc.plain

    def compose(self) -> ComposeResult:
        with Vertical(id="wiring-box"):
            with VerticalScroll(id="wiring-scroll"):
                yield self.body

    def on_mount(self) -> None:
        self.query_one("#wiring-scroll").focus()

    def show(self, info: WiringInfo) -> None:
        """Draw ``info`` (a later read of the same configuration's wiring)."""
        self.info = info
        self.doc = self._doc()
        self.body.update(self.doc.renderable())

    def action_close(self) -> None:
        """Close the view."""
        self.dismiss(None)
