"""The wiring's own poll loop in the dashboard, with a unit-level fake monitor and a recording
scheduler (no network, no timers): it starts once the configurations are known, re-arms on
its own slow cadence (not with the runs), retries a failed read after a minute while the
other sources go on, and ctrl+r forces a read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from services.domain.boundary import MonitorStatus, RunsSnapshot
from services.domain.clock import ManualClock
from services.domain.model import Configuration, Fetched
from services.domain.wiring import WIRING_RETRY, Verdict
from services.settings import Settings
from tests.services.test_dashboard import NOW, config, config_id
from tests.services.test_dashboard_wiring_state import Snapshot, sample_wiring
from tui.app import AumwatchApp
from tui.messages import ConfigsFetched, RunsFetched


class FakeMonitor:
    """What the dashboard asks of a monitor, answering from literals and recording the
    wiring reads (a unit-level stand-in: the real one is tested against the stand-in)."""

    def __init__(self, configs: Sequence[Configuration]) -> None:
        self.configs = tuple(configs)
        self.wiring_calls: list[tuple[tuple[str, ...], bool]] = []
        self.wiring_error: str | None = None

    def status(self) -> MonitorStatus:
        return MonitorStatus(fetched_at={"configs": NOW, "runs": NOW}, quota_remaining=10)

    async def poll_configs(self) -> Fetched[Configuration]:
        return Fetched(self.configs, NOW)

    async def poll_runs(self) -> RunsSnapshot:
        return RunsSnapshot(Fetched((), NOW))

    async def poll_wiring(self, configurations: Sequence[Configuration], *,
                          force: bool = False) -> Snapshot:
        self.wiring_calls.append((tuple(c.name for c in configurations), force))
        if self.wiring_error:
            return Snapshot({}, None, self.wiring_error)
        return Snapshot({c.id.lower(): sample_wiring(c.name, Verdict.PARTIAL)
                         for c in configurations}, NOW)

    async def close(self) -> None:
        return None


def make(tmp_path: Path) -> tuple[AumwatchApp, FakeMonitor,
                                  list[tuple[str, timedelta, Callable[[], object]]]]:
    monitor = FakeMonitor((config("web", NOW + timedelta(hours=1)),
                           config("db", NOW + timedelta(hours=2))))
    armed: list[tuple[str, timedelta, Callable[[], object]]] = []
    settings = Settings(subscriptions=("s",), data_dir=tmp_path,
                        wiring_refresh=timedelta(minutes=7))
    app = AumwatchApp(settings, clock=ManualClock(NOW), poll=False,
                      monitor=monitor,  # type: ignore[arg-type]
                      scheduler=lambda name, delay, callback: armed.append(
                          (name, delay, callback)))
    return app, monitor, armed


def names(armed: list[tuple[str, timedelta, Any]]) -> list[tuple[str, timedelta]]:
    return [(name, delay) for name, delay, _ in armed]


async def test_the_wiring_loop_starts_after_the_configurations_on_its_own_cadence(
        tmp_path: Path) -> None:
    app, monitor, armed = make(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        dashboard = app.dashboard
        dashboard.post_message(RunsFetched(RunsSnapshot(Fetched((), NOW))))
        await pilot.pause()
        assert ("wiring", timedelta(0)) not in names(armed)  # no configurations yet
        dashboard.post_message(ConfigsFetched(Fetched(monitor.configs, NOW)))
        await pilot.pause()
        assert names(armed).count(("wiring", timedelta(0))) == 1
        wiring_arm = next(a for a in armed if a[0] == "wiring")
        armed.clear()
        wiring_arm[2]()  # the timer fires: one read, of the known configurations
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert monitor.wiring_calls == [(("web", "db"), False)]
        assert names(armed) == [("wiring", timedelta(minutes=7))]
        state = dashboard.state
        assert state.wiring_of(config_id("web").lower()).verdict is Verdict.PARTIAL  # type: ignore[union-attr]
        # Further configuration polls do not start another loop or read the wiring.
        armed.clear()
        dashboard.post_message(ConfigsFetched(Fetched(monitor.configs, NOW)))
        dashboard.post_message(RunsFetched(RunsSnapshot(Fetched((), NOW))))
        await pilot.pause()
        assert all(name != "wiring" for name, _ in names(armed))
        assert len(monitor.wiring_calls) == 1


async def test_a_failed_read_is_retried_after_a_minute_and_ctrl_r_forces_a_read(
        tmp_path: Path) -> None:
    app, monitor, armed = make(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        dashboard = app.dashboard
        dashboard.post_message(ConfigsFetched(Fetched(monitor.configs, NOW)))
        await pilot.pause()
        monitor.wiring_error = "Event Grid system topics query failed (HTTP 403)"
        next(a for a in armed if a[0] == "wiring")[2]()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert ("wiring", WIRING_RETRY) in names(armed)
        assert dashboard.state.errors["wiring"].endswith("(HTTP 403)")
        assert "HTTP 403" in (dashboard.last_error or "")
        monitor.wiring_error = None
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert monitor.wiring_calls[-1] == (("web", "db"), True)
        assert "wiring" not in dashboard.state.errors
