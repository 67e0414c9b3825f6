"""The dashboard's side of a cancel: what the confirmation names and how its outcome is told
to the operator (the poller sends it: tui/poller.py; the state says whether and why it is
refused: ``DashboardState.refusal``)."""

from __future__ import annotations

from datetime import UTC

from textual.notifications import SeverityLevel

from services.domain.boundary import CancelResult, CancelTarget
from services.domain.dashboard import DashboardState
from services.domain.model import Run
from services.domain.window import run_window
from services.domain.zones import zone_for
from tui.display import format_full
from widgets.countdown import format_remaining


def cancel_lines(state: DashboardState, run: Run) -> list[tuple[str, str]]:
    """What the confirmation names: configuration, run id, start in three zones, time left."""
    config = state.configs.get(run.configuration_id.lower())
    window = run_window(run.start, cutoff=run.cutoff, end=run.end, rules=state.rules)
    return [
        ("Configuration", run.configuration_name or "?"),
        ("Run id", run.correlation_id),
        ("Start (config zone)", format_full(run.start, zone_for("config", config))),
        ("Start (UTC)", format_full(run.start, UTC)),
        ("Start (local)", format_full(run.start, None)),
        ("Cancel closes in", format_remaining(window.closes_at - state.clock.now())),
    ]


def target_of(run: Run) -> CancelTarget:
    """The cancel request for ``run``."""
    return CancelTarget(run.correlation_id, run.configuration_name, run.start,
                        cutoff=run.cutoff, computed_id=run.expected)


def outcome_toast(result: CancelResult) -> tuple[str, SeverityLevel]:
    """The one line and severity that tell the operator how a cancel ended."""
    outcome = result.outcome.value
    # Accepted is not a failure: Azure said Cancelled and the read-back is still to come.
    severity: SeverityLevel = ("information" if outcome == "verified"
                               else "warning" if outcome in ("refused", "accepted")
                               else "error")
    text = f"cancel {outcome}: {result.message}"
    if result.journal_error:
        text += f" (audit not written: {result.journal_error})"
    return text, severity
