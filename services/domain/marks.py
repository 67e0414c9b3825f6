"""The one mark a view shows for a run: its window phase until it finished, then how it ended.

A finished run is not a success: "finished" says only that nothing more will happen. Every
view that shows a run's phase (the runs, configurations and run panels, the export, and so
``aumwatch serve``) shows :func:`run_mark` instead, so a cancelled or failed run never wears a
success mark. Marks (their symbol, word and colour are drawn by ``widgets/phase.py``):

============  ===============================================================================
mark          when
============  ===============================================================================
upcoming,     the run's window phase (``services/domain/window.py``) while it has not
cancellable,  finished
locked,
running
succeeded     status Succeeded, or Completed with no failed machine
warnings      status CompletedWithWarnings, or Completed / Succeeded with failed machines
failed        status Failed
timed-out     status Timeout
cancelled     cancelled by anyone: status Cancelled / Canceled, or Azure's classification of
              who cancelled it (user or platform), or a cancel verified by aumwatch
ended         its end passed but no status says how it ended (Resource Graph has not caught
              up, or the run was only ever expected): no outcome is claimed
============  ===============================================================================

Pure: no I/O, no clock; ``now`` is passed in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from services.domain.model import Run
from services.domain.runs import run_phase
from services.domain.window import Phase, WindowRules

Outcome = Literal["succeeded", "warnings", "failed", "timed-out", "cancelled"]
Mark = Literal["upcoming", "cancellable", "locked", "running", "succeeded", "warnings",
               "failed", "timed-out", "cancelled", "ended"]

#: Every mark, in the order a run goes through them (the outcomes last).
MARKS: tuple[Mark, ...] = ("upcoming", "cancellable", "locked", "running", "succeeded",
                           "warnings", "failed", "timed-out", "cancelled", "ended")
#: The run statuses of a cancelled run (Azure writes "Cancelled"; both spellings are read).
CANCELLED_STATUSES = frozenset({"cancelled", "canceled"})
_LIVE: dict[Phase, Mark] = {Phase.UPCOMING: "upcoming", Phase.CANCELLABLE: "cancellable",
                            Phase.LOCKED: "locked", Phase.RUNNING: "running"}
_OUTCOME_OF_STATUS: dict[str, Outcome] = {
    "succeeded": "succeeded", "completed": "succeeded",
    "completedwithwarnings": "warnings",
    "failed": "failed",
    "timeout": "timed-out",
    "cancelled": "cancelled", "canceled": "cancelled",
}


def is_cancelled(run: Run) -> bool:
    """Whether ``run`` was cancelled, by anyone (its status, or who cancelled it)."""
    return run.cancelled_by is not None or run.status.lower() in CANCELLED_STATUSES


def run_outcome(run: Run) -> Outcome | None:
    """How ``run`` ended by its status, None while no status says it ended."""
    if is_cancelled(run):
        return "cancelled"
    outcome = _OUTCOME_OF_STATUS.get(run.status.strip().lower())
    if outcome == "succeeded" and (run.machines_failed or 0) > 0:
        return "warnings"  # "Completed" with failed machines is no clean success
    return outcome


def mark_of(run: Run, phase: Phase) -> Mark:
    """The mark of ``run`` in ``phase`` (its phase now, as :func:`run_phase` gives it)."""
    live = _LIVE.get(phase)
    if live is not None:
        return live
    return run_outcome(run) or "ended"


def run_mark(run: Run, now: datetime, rules: WindowRules) -> Mark:
    """The mark every view shows for ``run`` at ``now`` (see the module)."""
    return mark_of(run, run_phase(run, now, rules))
