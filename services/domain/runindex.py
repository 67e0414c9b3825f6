"""Runs indexed by configuration, with each configuration's current-or-next run cached.

The dashboard shows, per configuration, the run that is running now or starts next. Asking
that of a flat run list costs every run for every configuration; with 5,000 configurations
and 20,000 runs, once a second, it is the dashboard's whole CPU budget. :class:`RunIndex`
keeps the runs of each configuration apart, tells which configurations a change touched, and
caches each answer until it can change: when the chosen run ends (runs only ever become
finished as time moves forward, so until then no other run can take its place) or when the
configuration's runs change.

Pure: no I/O, no clock; ``now`` is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType

from services.domain.model import Run
from services.domain.runs import run_phase
from services.domain.window import Phase, WindowRules


def config_key_of(run: Run) -> str:
    """The key of a run's configuration (its resource id, lower case)."""
    return run.configuration_id.lower()


def next_run_of(runs: Iterable[Run], now: datetime, rules: WindowRules) -> Run | None:
    """The unfinished run with the earliest start (the brute-force definition)."""
    live = [r for r in runs if run_phase(r, now, rules) is not Phase.FINISHED]
    return min(live, key=lambda r: (r.start, r.key)) if live else None


def _unfinished(run: Run, now: datetime) -> bool:
    # Exactly "run_phase(...) is not FINISHED" (RunWindow.phase: finished status, or the end
    # reached), without building a window per run: this runs for every run of a touched
    # configuration.
    return not run.finished and (run.end is None or now < run.end)


class RunIndex:
    """Runs by key and by configuration key; see the module."""

    def __init__(self, rules: WindowRules) -> None:
        self.rules = rules
        self._runs: dict[str, Run] = {}
        self._by_config: dict[str, dict[str, Run]] = {}
        self._event_only: set[str] = set()
        # config key -> (answer, computed at, valid until (None: until the runs change))
        self._next: dict[str, tuple[Run | None, datetime, datetime | None]] = {}

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, key: object) -> bool:
        return key in self._runs

    @property
    def runs(self) -> Mapping[str, Run]:
        """Every run by key (a read-only view)."""
        return MappingProxyType(self._runs)

    @property
    def event_only_keys(self) -> frozenset[str]:
        """Keys of runs only an event announced (not yet seen by Resource Graph)."""
        return frozenset(self._event_only)

    def get(self, key: str) -> Run | None:
        """The run of ``key``, if indexed."""
        return self._runs.get(key)

    def of_config(self, config_key: str) -> list[Run]:
        """The runs of one configuration, newest start first (ties by key)."""
        return sorted(self._by_config.get(config_key, {}).values(),
                      key=lambda r: (r.start, r.key), reverse=True)

    def put(self, run: Run) -> set[str]:
        """Add or replace one run; returns the configuration keys touched (none if equal)."""
        old = self._runs.get(run.key)
        if old is run or old == run:
            return set()
        config = config_key_of(run)
        if old is not None and old.configuration_id == run.configuration_id:
            # Same slot (the common update): swap it in place.
            self._runs[run.key] = run
            self._by_config[config][run.key] = run
            self._next.pop(config, None)
            if run.source == "event":
                self._event_only.add(run.key)
            else:
                self._event_only.discard(run.key)
            return {config}
        touched = set()
        if old is not None:
            touched.add(self._unlink(old))
        self._link(run)
        touched.add(config)
        return touched

    def remove(self, key: str) -> set[str]:
        """Drop one run; returns the configuration keys touched."""
        old = self._runs.pop(key, None)
        if old is None:
            return set()
        self._runs[key] = old  # _unlink expects it present
        return {self._unlink(old)}

    def replace(self, runs: Mapping[str, Run]) -> tuple[set[str], list[Run]]:
        """Make the index hold exactly ``runs`` (keyed by run key).

        Returns the configuration keys whose runs changed and the runs new or changed.
        """
        touched: set[str] = set()
        changed: list[Run] = []
        for key in [k for k in self._runs if k not in runs]:
            touched |= self.remove(key)
        current = self._runs
        for key, run in runs.items():
            if current.get(key) is run:
                continue  # the common case: the same object as last time
            hit = self.put(run)
            if hit:
                touched |= hit
                changed.append(run)
        return touched, changed

    def next_run(self, config_key: str, now: datetime) -> Run | None:
        """The configuration's running or next run (unfinished, earliest start), or None."""
        cached = self._next.get(config_key)
        if cached is not None:
            run, computed_at, valid_until = cached
            if computed_at <= now and (valid_until is None or now < valid_until):
                return run
        live = [r for r in self._by_config.get(config_key, {}).values() if _unfinished(r, now)]
        run = min(live, key=lambda r: (r.start, r.key)) if live else None
        self._next[config_key] = (run, now, run.end if run is not None else None)
        return run

    def _link(self, run: Run) -> None:
        self._runs[run.key] = run
        config = config_key_of(run)
        self._by_config.setdefault(config, {})[run.key] = run
        self._next.pop(config, None)
        if run.source == "event":
            self._event_only.add(run.key)
        else:
            self._event_only.discard(run.key)

    def _unlink(self, run: Run) -> str:
        del self._runs[run.key]
        self._event_only.discard(run.key)
        config = config_key_of(run)
        runs = self._by_config.get(config)
        if runs is not None:
            runs.pop(run.key, None)
            if not runs:
                del self._by_config[config]
        self._next.pop(config, None)
        return config
