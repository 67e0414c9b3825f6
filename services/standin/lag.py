"""Resource Graph lag: what a Resource Graph query sees is the World as it was a little while ago.

Resource Graph is an index fed from Resource Manager; a change shows there some time after it
happened (docs/azure.md "Resource Graph": most within about 30 s, no stated upper bound),
while an ARM read (GET of one resource) is current. The stand-in models it per row:

* every Resource Graph row (a configuration, a machine, an assignment, a run, a machine's run
  row, a patch row) keeps the versions it went through, each with the time it *changed* (the
  World's stamp for it: a run's ``updated``, the time a configuration or machine was added)
  and the time it becomes *visible* (changed + a lag);
* a query sees, for each row, its newest version that is visible by now (a row not visible
  yet is absent; a removed row disappears once its removal is visible);
* :class:`ArgLag` chooses each change's lag: fixed, or (the default) drawn between 5 and 90 s
  of the stand-in's clock from a seeded generator keyed by the row and the change time, so a
  replay gives the same lags.

What exists when the server starts is old news: it is visible at once (:meth:`LaggedView.settle`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

#: The key of a row: (table, lower-case id).
RowKey = tuple[str, str]
#: The column a World's stamped tables carry each row's change time in (never loaded).
STAMP = "_changedAt"
DEFAULT_LOW = 5.0
DEFAULT_HIGH = 90.0


@dataclass(frozen=True)
class ArgLag:
    """How long a change takes to reach Resource Graph, in seconds of the stand-in's clock.

    ``fixed`` set: every change takes exactly that long (0: no lag at all). Otherwise each
    change draws its lag uniformly in ``[low, high]`` from ``seed``, the row and the change
    time.
    """

    fixed: float | None = None
    low: float = DEFAULT_LOW
    high: float = DEFAULT_HIGH
    seed: int = 0

    def __post_init__(self) -> None:
        if self.fixed is not None and self.fixed < 0:
            raise ValueError(f"the Resource Graph lag cannot be negative, not {self.fixed}")
        if not 0 <= self.low <= self.high:
            raise ValueError(f"the lag range needs 0 <= low <= high, not {self.low}..{self.high}")

    @classmethod
    def of(cls, value: float | ArgLag | None) -> ArgLag:
        """``None``: the realistic default; a number: that fixed lag; an ArgLag: itself."""
        if value is None:
            return cls()
        if isinstance(value, ArgLag):
            return value
        return cls(fixed=float(value))

    @property
    def none(self) -> bool:
        """True when changes are visible at once (the fast path: no versions kept)."""
        return self.fixed == 0

    def delay(self, key: RowKey, changed_at: datetime) -> timedelta:
        """The lag of one change of one row (the same inputs always give the same lag)."""
        if self.fixed is not None:
            return timedelta(seconds=self.fixed)
        rng = random.Random(f"{self.seed}|{key[0]}|{key[1]}|{changed_at.isoformat()}")
        return timedelta(seconds=rng.uniform(self.low, self.high))

    def describe(self) -> str:
        """One phrase for logs and the README: ``none``, ``30 s`` or ``5-90 s (seed 0)``."""
        if self.none:
            return "none"
        if self.fixed is not None:
            return f"{self.fixed:g} s"
        return f"{self.low:g}-{self.high:g} s (seed {self.seed})"


def compact_json(row: dict[str, Any]) -> str:
    """The default encoding of a row: compact JSON."""
    return json.dumps(row, separators=(",", ":"), default=str)


@dataclass
class _Version:
    changed_at: datetime
    visible_at: datetime
    text: str | None  # the encoded row; None: the row was removed


@dataclass
class LaggedView:
    """The versions of every Resource Graph row, and the tables as visible at an instant.

    Rows are kept encoded by ``encode`` (the Resource Graph engine passes the very line it
    loads into DuckDB, so a row is serialised once per change, and equal text means no
    change)."""

    lag: ArgLag
    encode: Callable[[dict[str, Any]], str] = compact_json
    _versions: dict[RowKey, list[_Version]] = field(default_factory=dict)
    _last_text: dict[RowKey, str] = field(default_factory=dict)

    def observe(self, stamped: dict[str, list[dict[str, Any]]], now: datetime) -> None:
        """Record what changed since the last observation. ``stamped`` is the World's tables
        with each row's change time under :data:`STAMP` (taken out here); a row whose stamp
        is missing, in the future or older than its last version counts as changed now."""
        seen: set[RowKey] = set()
        for table, rows in stamped.items():
            for row in rows:
                stamp = row.pop(STAMP, None)
                key = (table, str(row.get("id", "")).lower())
                seen.add(key)
                text = self.encode(row)
                if self._last_text.get(key) == text:
                    continue
                self._last_text[key] = text
                self._add(key, text, stamp, now)
        for key in [k for k in self._last_text if k not in seen]:
            del self._last_text[key]
            self._add(key, None, None, now)

    def _add(self, key: RowKey, text: str | None, stamp: datetime | None,
             now: datetime) -> None:
        versions = self._versions.setdefault(key, [])
        previous = versions[-1].changed_at if versions else None
        changed = stamp if (isinstance(stamp, datetime) and stamp <= now
                            and (previous is None or stamp >= previous)) else now
        versions.append(_Version(changed, changed + self.lag.delay(key, changed), text))

    def settle(self) -> None:
        """Make every version recorded so far visible now (a world loaded at start is old)."""
        for key, versions in list(self._versions.items()):
            last = versions[-1]
            if last.text is None:
                del self._versions[key]
            else:
                self._versions[key] = [_Version(last.changed_at, last.changed_at, last.text)]

    def tables(self, now: datetime, names: tuple[str, ...]
               ) -> tuple[dict[str, list[str]], datetime | None]:
        """The rows (encoded) visible at ``now`` by table, and when the view changes next
        (None: not until the World changes). Versions hidden behind a newer visible one are
        dropped."""
        out: dict[str, list[str]] = {name: [] for name in names}
        upcoming: datetime | None = None
        for key, versions in list(self._versions.items()):
            shown = None
            for i in range(len(versions) - 1, -1, -1):
                if versions[i].visible_at <= now:
                    shown = i
                    break
            if shown is not None and shown > 0:
                del versions[:shown]
                shown = 0
            for version in versions[(shown + 1) if shown is not None else 0:]:
                if version.visible_at > now and (upcoming is None
                                                 or version.visible_at < upcoming):
                    upcoming = version.visible_at
            if shown is None:
                continue
            text = versions[0].text
            if text is None:
                if len(versions) == 1:
                    del self._versions[key]
                continue
            out.setdefault(key[0], []).append(text)
        return out, upcoming
