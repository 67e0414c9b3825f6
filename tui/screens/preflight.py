"""The pre-flight view (``p``) and its poll loop (issue 18).

:class:`PreflightPoller` is an invisible widget of the dashboard screen: it reads the
pre-flight (one paged Resource Graph query per kind, :mod:`services.azure.preflight`) once at
start and then every ``[preflight] refresh`` (``ctrl+r`` forces a read), and posts
:class:`PreflightFetched` with the immutable snapshot; a failed read is the snapshot's
``error`` and is tried again after a minute. While the dashboard is paused a due read waits.

:class:`PreflightView` shows one configuration's current or next run: when it starts and
freezes, the roster, each machine's risks with the fix, pending updates and the estimate with
where it came from, and, once the run exists, which predicted machines it left out.
``enter`` on a machine shows its details; ``escape`` closes. Every string from Azure is drawn
literally (``Text``, never markup).

:func:`due_warnings` says which runs deserve a finding: machines at risk and less than
``[preflight] warn_before`` before the T-40 freeze.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import DataTable, Static

from services.azure.preflight import PreflightSnapshot
from services.domain.preflight import Preflight, RosterMachine, warn_due
from widgets.sanitize import sanitize

#: A failed read is tried again this soon (not after the whole refresh).
RETRY_AFTER = timedelta(minutes=1)
#: While paused, a due read asks again this often.
PAUSED_RETRY = timedelta(seconds=1)

FormatTime = Callable[[datetime], str]


class PreflightFetched(Message):
    """A pre-flight read finished (its ``error`` says whether it failed)."""

    def __init__(self, snapshot: PreflightSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class PreflightPoller(Widget):
    """Reads the pre-flight with ``fetch`` every ``refresh`` (see the module docstring)."""

    DEFAULT_CSS = "PreflightPoller { display: none; }"

    def __init__(self, fetch: Callable[[], Awaitable[PreflightSnapshot]] | None, *,
                 refresh: timedelta, paused: Callable[[], bool],
                 now: Callable[[], datetime]) -> None:
        super().__init__(id="preflight-poller")
        self._fetch = fetch
        self._now = now
        self.refresh_every = refresh
        self._paused = paused
        self._timer: Timer | None = None
        self.started = False

    def start(self) -> None:
        """Read now, then on the cadence."""
        self.started = True
        self.poll()

    def _arm(self, delay: timedelta) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(max(0.05, delay.total_seconds()), self._due,
                                     name="preflight")

    def _due(self) -> None:
        if self._paused():
            self._arm(PAUSED_RETRY)
        else:
            self.poll()

    @work(exclusive=True, exit_on_error=False, group="preflight")
    async def poll(self) -> None:
        """Read once and post the snapshot; arm the next read."""
        fetch = self._fetch
        if fetch is None:
            return
        try:
            snapshot = await fetch()
        except Exception as exc:  # read() keeps errors in the snapshot; this is a net
            snapshot = PreflightSnapshot((), self._now(), error=str(exc))
        self.post_message(PreflightFetched(snapshot))
        self._arm(RETRY_AFTER if snapshot.error else self.refresh_every)


def due_warnings(snapshot: PreflightSnapshot, now: datetime, warn_before: timedelta
                 ) -> list[Preflight]:
    """The runs whose machines at risk deserve a finding now."""
    return [item for item in snapshot.items if warn_due(item, now, warn_before)]


def warning_text(item: Preflight, now: datetime) -> str:
    """The finding's words."""
    minutes = max(0, int((item.freeze_at - now).total_seconds() // 60))
    codes = ", ".join(f"{code} {n}" for code, n in item.by_code().items())
    return (f"{item.configuration_name}: {item.at_risk} of {len(item.machines)} machine(s) at "
            f"risk, {minutes} min before the run freezes ({codes}); p: pre-flight")


def machine_details(machine: RosterMachine, format_time: FormatTime) -> str:
    """Everything known about one roster machine, as plain lines."""
    lines = [f"id        {machine.id}", f"source    {machine.source}",
             f"os        {machine.os or '-'}"]
    c = machine.candidate
    if c is not None:
        lines.append(f"location  {c.location or '-'}   resource group {c.resource_group}")
        if c.arc:
            lines.append(f"arc agent {c.arc_status or 'unknown'}")
        else:
            lines.append(f"power     {c.power or 'unknown'}   patch mode "
                         f"{c.patch_mode or 'unknown'}   bypass {c.bypass}")
        lines.append(f"extension {c.extension or 'not seen'}")
        if c.created is not None:
            lines.append(f"created   {format_time(c.created)}")
        if c.tags:
            lines.append("tags      " + ", ".join(f"{k}={v}" for k, v in sorted(c.tags.items())))
    assessed = format_time(machine.assessed_at) if machine.assessed_at else "never"
    lines.append(f"assessed  {assessed}")
    pending = "unknown" if machine.pending_updates is None else str(machine.pending_updates)
    lines.append(f"pending   {pending} update(s) of the classifications it installs")
    if machine.estimate is not None:
        lines.append(f"estimate  {machine.estimate.minutes} min ({machine.estimate.source})")
    lines.append("")
    if not machine.risks:
        lines.append("no risk found")
    for risk in machine.risks:
        lines.append(f"[{risk.code}] {risk.message}")
        lines.append(f"    fix: {risk.fix}")
    return "\n".join(lines)


class PreflightView(ModalScreen[None]):
    """One configuration's pre-flight; ``escape`` (or ``q``, ``p``) closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,p", "close", "Close"),
    ]

    DEFAULT_CSS = """
    PreflightView { align: center middle; background: $background 60%; }
    PreflightView > #preflight-box {
        width: 96%; max-width: 160; height: 94%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    PreflightView #preflight-head { height: auto; }
    PreflightView #preflight-machines { height: 1fr; }
    PreflightView #preflight-risk { height: auto; max-height: 4; color: $text-muted; }
    """

    COLUMNS = ("machine", "source", "os", "risks", "pending", "estimate")

    def __init__(self, key: str, name: str, item: Preflight | None, error: str | None,
                 format_time: FormatTime, now: Callable[[], datetime]) -> None:
        super().__init__()
        self.key = key  # the configuration's key, lower case
        self.configuration_name = name
        self._format_time = format_time
        self._now = now
        self.item = item
        self.error = error
        self.head = Static(Text(""), id="preflight-head", markup=False)
        self.table: DataTable[Text | str] = DataTable(id="preflight-machines",
                                                      cursor_type="row")
        self.risk_line = Static(Text(""), id="preflight-risk", markup=False)

    def compose(self) -> ComposeResult:
        with Vertical(id="preflight-box"):
            yield self.head
            yield self.table
            yield self.risk_line

    def on_mount(self) -> None:
        self.table.add_columns(*self.COLUMNS)
        self.show(self.item, self.error)
        self.table.focus()

    @property
    def text(self) -> str:
        """The head and the table as plain text (tests)."""
        rows = [" ".join(str(c) for c in self.table.get_row_at(i))
                for i in range(self.table.row_count)]
        return "\n".join([str(self.head.content), *rows])

    def show(self, item: Preflight | None, error: str | None = None) -> None:
        """Draw ``item`` (a later read of the same configuration)."""
        self.item, self.error = item, error
        self.head.update(self._head())
        table = self.table
        cursor = table.cursor_row
        table.clear()
        for machine in self._machines():
            codes = ", ".join(r.code for r in machine.risks) or "-"
            table.add_row(
                Text(sanitize(machine.name, 60)), machine.source,
                Text(sanitize(machine.os, 10) or "-"),
                Text(codes, style="bold red" if machine.risks else "green"),
                "?" if machine.pending_updates is None else str(machine.pending_updates),
                "?" if machine.estimated_minutes is None else f"{machine.estimated_minutes}m",
                key=machine.id)
        if table.row_count:
            table.move_cursor(row=min(max(cursor, 0), table.row_count - 1))
        self._show_risk()

    def _machines(self) -> Iterable[RosterMachine]:
        if self.item is None:
            return ()
        # Machines at risk first, then by name.
        return sorted(self.item.machines, key=lambda m: (not m.risks, m.name.lower()))

    def _head(self) -> Text:
        text = Text(f"Pre-flight  {sanitize(self.configuration_name, 80)}", style="bold")
        item = self.item
        if item is None:
            text.append("\n")
            text.append(sanitize(self.error, 300) if self.error else
                        "no current or next run known (yet)", style="dim")
            return text
        now = self._now()
        freeze = ("frozen (machines fixed at T-40)" if item.frozen else
                  f"freezes {self._format_time(item.freeze_at)}")
        text.append(f"\nrun {self._format_time(item.run_start)}, {item.window_minutes} min "
                    f"window, {freeze}\n")
        text.append(item.summary_text(), style="bold red" if item.at_risk else "bold green")
        if item.by_code():
            text.append("  " + ", ".join(f"{c} {n}" for c, n in item.by_code().items()))
        if item.actual is not None:
            text.append(f"\nin the run: {len(item.actual.missing)} predicted missing, "
                        f"{len(item.actual.unexpected)} not predicted")
            if item.actual.missing:
                names = ", ".join(m.rsplit("/", 1)[-1] for m in item.actual.missing[:6])
                text.append(f" (missing: {sanitize(names, 200)})", style="yellow")
        if self.error:
            text.append(f"\nlast read failed: {sanitize(self.error, 200)}", style="red")
        elif now - item.run_start > timedelta(0) and item.actual is None:
            text.append("\nthe run's machine rows are not in Resource Graph yet", style="dim")
        text.append("\nenter: a machine's details and fixes · esc: close", style="dim")
        return text

    def _selected(self) -> RosterMachine | None:
        if self.item is None or not self.table.row_count:
            return None
        row = self.table.coordinate_to_cell_key(self.table.cursor_coordinate).row_key.value
        return next((m for m in self.item.machines if m.id == row), None)

    def _show_risk(self) -> None:
        machine = self._selected()
        if machine is None or not machine.risks:
            self.risk_line.update(Text(""))
            return
        first = machine.risks[0]
        self.risk_line.update(Text(f"{sanitize(first.message, 200)} · fix: "
                                   f"{sanitize(first.fix, 200)}", no_wrap=False))

    @on(DataTable.RowHighlighted, "#preflight-machines")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_risk()

    @on(DataTable.RowSelected, "#preflight-machines")
    def _selected_row(self, event: DataTable.RowSelected) -> None:
        from tui.screens.event_detail import EventDetail

        event.stop()
        machine = self._selected()
        if machine is not None:
            self.app.push_screen(EventDetail(
                f"{machine.name} ({self.configuration_name})",
                machine_details(machine, self._format_time)))

    def action_close(self) -> None:
        """Close the view."""
        self.dismiss(None)


class PreflightScreenMixin:
    """What the dashboard screen gains for pre-flight: its poll loop, the run panel's
    "roster 42 · 3 at risk", the ``p`` view and the findings before a risky run freezes.

    Kept here so the dashboard screen only calls :meth:`_init_preflight` (in ``__init__``),
    yields :attr:`preflight_poller`, starts it with the other loops and forces it on
    ``ctrl+r``. Expects the screen's ``settings``, ``clock``, ``monitor``, ``state``,
    ``run_panel``, ``paused``, ``format_time``, ``notify`` and ``app``.
    """

    preflight: PreflightSnapshot | None
    preflight_poller: PreflightPoller

    def _init_preflight(self) -> None:
        screen: Any = self
        monitor = screen.monitor
        fetch = None
        if monitor is not None:
            async def fetch() -> PreflightSnapshot:
                source = await monitor.preflight_source()
                return await source.read()
        self.preflight = None
        self._preflight_warned: set[tuple[str, datetime]] = set()
        self.preflight_poller = PreflightPoller(
            fetch, refresh=screen.settings.preflight_refresh,
            paused=lambda: bool(screen.paused), now=screen.clock.now)
        screen.run_panel.roster = self.roster_text

    def roster_text(self, run: Any) -> str | None:
        """``roster 42 · 3 at risk`` for ``run`` when pre-flight is about that run."""
        if self.preflight is None or run is None:
            return None
        item = self.preflight.for_configuration(run.configuration_id)
        if item is None or item.run_start != run.start:
            return None
        return item.summary_text()

    def on_preflight_fetched(self, message: PreflightFetched) -> None:
        """Keep the snapshot (a failed read keeps the last good items), redraw the run
        panel, refresh an open view, and raise the findings that came due."""
        screen: Any = self
        message.stop()
        snapshot = message.snapshot
        if snapshot.error and self.preflight is not None:
            snapshot = PreflightSnapshot(self.preflight.items, self.preflight.fetched_at,
                                         error=snapshot.error)
        self.preflight = snapshot
        screen._offer_cancel(screen.run_panel.show_run())
        for view in screen.app.screen_stack:
            if isinstance(view, PreflightView):
                view.show(snapshot.for_configuration(view.key), snapshot.error)
        now = screen.clock.now()
        for item in due_warnings(snapshot, now, screen.settings.preflight_warn_before):
            key = (item.configuration_id.lower(), item.run_start)
            if key in self._preflight_warned:
                continue
            self._preflight_warned.add(key)
            screen.notify(warning_text(item, now), title="pre-flight", severity="warning",
                          markup=False, timeout=15)

    def action_preflight(self) -> None:
        """Open the selected configuration's pre-flight (machines, risks, fixes, estimate)."""
        screen: Any = self
        key = screen.state.selected_config
        if key is None or key not in screen.state.configs:
            screen.notify("no configuration selected", severity="information")
            return
        config = screen.state.configs[key]
        snapshot = self.preflight
        item = snapshot.for_configuration(key) if snapshot is not None else None
        error = snapshot.error if snapshot is not None else "reading the pre-flight…"
        screen.app.push_screen(PreflightView(
            key, config.name, item, error,
            lambda when: screen.format_time(when, config), screen.clock.now))
