"""Messages of the dashboard. Each carries immutable data only: the seam's types
(services/domain/boundary.py) and the domain's.

Workers (tui/poller.py) fetch through :class:`services.azure.monitor.Monitor` and post a
fetch message, then the monitor's own facts (:class:`StatusFetched`); the dashboard screen's
``@on`` handlers apply each to the state and redraw the panels its change names
(docs/architecture.md "The seam"). Panels post intent messages (a configuration or a run
chosen, cancel requested); they never change the state themselves.
"""

from __future__ import annotations

from textual.message import Message

from services.domain.boundary import (
    CancelResult,
    EventBatch,
    MonitorStatus,
    RunsSnapshot,
    WiringSnapshot,
)
from services.domain.model import Configuration, Fetched, Machine
from tui.report import ReportOutcome


class ConfigsFetched(Message):
    """A poll of the configurations succeeded."""

    def __init__(self, fetched: Fetched[Configuration]) -> None:
        super().__init__()
        self.fetched = fetched


class RunsFetched(Message):
    """A poll of the runs succeeded: Resource Graph's runs and the journal's verified
    cancels."""

    def __init__(self, snapshot: RunsSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class StatusFetched(Message):
    """The monitor's own facts after a poll: when each source answered, the quota, the skew,
    whether this dashboard runs the declared tasks."""

    def __init__(self, status: MonitorStatus) -> None:
        super().__init__()
        self.status = status


class EventsFetched(Message):
    """A poll of the events queue finished (its ``error`` says whether it failed)."""

    def __init__(self, batch: EventBatch) -> None:
        super().__init__()
        self.batch = batch


class WiringFetched(Message):
    """A read of the Event Grid wiring finished (its ``error`` says whether it failed)."""

    def __init__(self, snapshot: WiringSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class MachinesFetched(Message):
    """The machines of one run."""

    def __init__(self, correlation_id: str, fetched: Fetched[Machine] | None,
                 error: str | None = None) -> None:
        super().__init__()
        self.correlation_id = correlation_id
        self.fetched = fetched
        self.error = error


class PollFailed(Message):
    """A poll failed; ``throttled`` asks for a longer backoff."""

    def __init__(self, source: str, error: str, *, throttled: bool = False) -> None:
        super().__init__()
        self.source = source
        self.error = error
        self.throttled = throttled


class CancelDone(Message):
    """A cancel attempt finished, whatever its outcome."""

    def __init__(self, result: CancelResult) -> None:
        super().__init__()
        self.result = result


class ConfigChosen(Message):
    """The operator moved to a configuration (``key``: its id, lower case; None: none)."""

    def __init__(self, key: str | None) -> None:
        super().__init__()
        self.key = key


class RunChosen(Message):
    """The operator moved to a run in the runs table (``key``: its correlation id, lower)."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key


class RunOpened(Message):
    """The operator asked for a run's machines (``enter`` on it)."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key


class CancelRequested(Message):
    """The operator asked to cancel the run the run panel shows."""


class FilterSet(Message):
    """The filter text changed (``done``: the operator pressed enter)."""

    def __init__(self, text: str, *, done: bool) -> None:
        super().__init__()
        self.text = text
        self.done = done


class ReportWritten(Message):
    """The report key's work finished (``outcome.path`` None: not written, and why)."""

    def __init__(self, outcome: ReportOutcome) -> None:
        super().__init__()
        self.outcome = outcome
