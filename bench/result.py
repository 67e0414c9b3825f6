"""What one figure reports: a status, numeric metrics, targets and notes (JSON-ready)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "pending", "error"]


@dataclass
class FigureResult:
    """One figure's outcome.

    ``metrics`` hold numbers only (seconds, bytes, counts, ratios; booleans as 0/1), so the JSON
    can be compared run to run. ``pending`` means the figure cannot be measured yet (``reason``
    says why); ``error`` means the harness failed (``reason`` is the error).
    """

    id: int
    title: str
    target: str
    status: Status = "ok"
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    reason: str | None = None
    seconds: float = 0.0  # how long measuring this figure took

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def median(values: Sequence[float]) -> float:
    """The median; NaN for no values (so a missing sample shows instead of crashing)."""
    return float(statistics.median(values)) if values else math.nan


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile by linear interpolation between closest ranks (NaN if empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))
