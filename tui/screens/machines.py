"""The machines of one run: per-machine status, patch counts, reboot, its own finish, first
error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.binding import Binding, BindingType

from services.domain.model import Fetched, Machine
from tui.messages import MachinesFetched
from tui.screens.runtable import RunTableScreen
from widgets.sanitize import sanitize

#: Fetches the machines of one run (by correlation id).
FetchMachines = Callable[[str], Awaitable[Fetched[Machine]]]

COLUMNS = (("machine", "Machine"), ("status", "Status"), ("installed", "Inst"),
           ("failed", "Fail"), ("pending", "Pend"), ("reboot", "Reboot"),
           ("finished", "Finished"), ("error", "First error"))


_STATUS_STYLE = {"succeeded": "green", "completed": "green", "failed": "bold red",
                 "inprogress": "blue", "cancelled": "yellow", "canceled": "yellow"}


def _count(value: int | None) -> Text:
    return Text("–" if value is None else str(value), justify="right")


#: Formats a machine's finish for the table (the dashboard passes its display zone's).
FormatTime = Callable[[datetime], str]


def _utc(when: datetime) -> str:
    return when.strftime("%a %d %H:%M UTC")


def machine_cells(machine: Machine, format_time: FormatTime = _utc) -> tuple[Text, ...]:
    """One table row for ``machine`` (untrusted strings drawn literally). Its finish is its
    own (the patch row's last change once terminal), blank while it runs: the machine-level
    run row only carries the schedule's times (docs/azure.md, "Resource Graph")."""
    status = sanitize(machine.status, 30)
    failed = _count(machine.failed)
    if machine.failed:
        failed.stylize("bold red")
    return (
        Text(sanitize(machine.name, 60)),
        Text(status, style=_STATUS_STYLE.get(status.lower(), "")),
        _count(machine.installed),
        failed,
        _count(machine.pending),
        Text(sanitize(machine.reboot or "", 20)),
        Text("" if machine.end is None else format_time(machine.end)),
        Text(sanitize(machine.error or "", 200), style="red" if machine.error else ""),
    )


class MachinesScreen(RunTableScreen):
    """Pushed by ``enter`` on a run; ``escape`` goes back, ``ctrl+r`` reloads. ``fetch``
    reads the machines (None: there is no data source)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "back", "Back", id="machines.back"),
        Binding("ctrl+r", "reload", "Refresh", id="machines.refresh"),
    ]

    DEFAULT_CSS = """
    MachinesScreen #machines-title { height: 1; text-style: bold; padding: 0 1;
                                     background: $panel; }
    MachinesScreen #machines-summary { height: 1; padding: 0 1; }
    MachinesScreen DataTable { height: 1fr; }
    """
    ID_PREFIX = "machines"
    WAITING = "loading machines…"
    COLUMNS = COLUMNS

    def __init__(self, correlation_id: str, title: str,
                 fetch: FetchMachines | None = None, format_time: FormatTime = _utc) -> None:
        super().__init__(correlation_id, title)
        self._format_time = format_time
        self._fetch_machines = fetch
        self.machines: tuple[Machine, ...] = ()

    def reload(self) -> None:
        """Fetch the machines again."""
        self._fetch()

    @work(exclusive=True, exit_on_error=False, group="machines")
    async def _fetch(self) -> None:
        fetch = self._fetch_machines
        if fetch is None:
            self.post_message(MachinesFetched(self.correlation_id, None, "no data source"))
            return
        try:
            fetched = await fetch(self.correlation_id)
        except Exception as exc:  # shown on the screen; the app keeps running
            self.post_message(MachinesFetched(self.correlation_id, None, str(exc)))
            return
        self.post_message(MachinesFetched(self.correlation_id, fetched))

    @on(MachinesFetched)
    def _show(self, message: MachinesFetched) -> None:
        message.stop()
        if message.fetched is None:
            self.show_error(message.error)
            return
        self.show_machines(message.fetched.items)

    def show_machines(self, machines: tuple[Machine, ...]) -> None:
        """Diff ``machines`` into the table (keyed by resource id)."""
        self.machines = machines
        self.diff_rows({m.resource_id.lower(): machine_cells(m, self._format_time)
                        for m in machines})
        ok = sum(1 for m in machines if m.status.lower() in ("succeeded", "completed"))
        failed = sum(1 for m in machines if m.status.lower() == "failed")
        self.show_summary(f"{len(machines)} machines: {ok} succeeded, {failed} failed, "
                          f"{len(machines) - ok - failed} other")
