"""The stand-in's Resource Graph lag (services/standin/lag.py), on plain rows."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.standin.lag import STAMP, ArgLag, LaggedView

T = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
NAMES = ("maintenanceresources",)


def rows(*items: tuple[str, str, datetime | None]) -> dict[str, list[dict[str, Any]]]:
    return {"maintenanceresources": [{"id": rid, "properties": {"status": status},
                                      STAMP: stamp} for rid, status, stamp in items]}


def visible(view: LaggedView, now: datetime) -> dict[str, str]:
    tables, _ = view.tables(now, NAMES)
    found = [json.loads(line) for line in tables["maintenanceresources"]]
    return {r["id"]: r["properties"]["status"] for r in found}


def test_a_change_shows_after_its_fixed_lag_counted_from_its_stamp() -> None:
    view = LaggedView(ArgLag(fixed=30))
    view.observe(rows(("/A", "Pending", T)), T)
    view.settle()
    # Changed at T+10 (its stamp), observed only at T+25: visible at T+40.
    view.observe(rows(("/A", "Cancelled", T + timedelta(seconds=10))), T + timedelta(seconds=25))
    assert visible(view, T + timedelta(seconds=39)) == {"/A": "Pending"}
    _, upcoming = view.tables(T + timedelta(seconds=39), NAMES)
    assert upcoming == T + timedelta(seconds=40)
    assert visible(view, T + timedelta(seconds=40)) == {"/A": "Cancelled"}


def test_a_newer_visible_version_hides_an_older_one_still_lagging() -> None:
    lag = ArgLag(seed=1)
    view = LaggedView(lag)
    view.observe(rows(("/A", "Pending", T)), T)
    view.settle()
    view.observe(rows(("/A", "InProgress", T)), T)
    view.observe(rows(("/A", "Completed", T + timedelta(seconds=1))), T + timedelta(seconds=1))
    seen = [visible(view, T + timedelta(seconds=s))["/A"] for s in range(0, 100)]
    order = ["Pending", "InProgress", "Completed"]
    assert seen[-1] == "Completed"
    assert all(order.index(a) <= order.index(b) for a, b in itertools.pairwise(seen))


def test_a_removed_row_disappears_after_the_lag_and_a_missing_stamp_counts_from_now() -> None:
    view = LaggedView(ArgLag(fixed=5))
    view.observe(rows(("/A", "Pending", T), ("/B", "Pending", None)), T)
    view.settle()
    view.observe(rows(("/B", "Pending", None)), T + timedelta(seconds=10))
    assert visible(view, T + timedelta(seconds=14)) == {"/A": "Pending", "/B": "Pending"}
    assert visible(view, T + timedelta(seconds=15)) == {"/B": "Pending"}


def test_lag_values_are_checked() -> None:
    with pytest.raises(ValueError):
        ArgLag(fixed=-1)
    with pytest.raises(ValueError):
        ArgLag(low=10, high=5)
    assert ArgLag.of(0).none and not ArgLag.of(None).none
    assert ArgLag.of(12).delay(("t", "x"), T) == timedelta(seconds=12)
