"""The dashboard sends its first configurations query before Textual draws (issue 20: the
first frame with configurations waited for the SDK imports and the query after the first
frame)."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

from services.azure.monitor import GRAPH_SDK_MODULES
from services.domain.clock import ManualClock
from services.domain.model import Fetched
from services.settings import Settings
from tests.tui.test_app_snapshots import CONFIGS, NOW
from tui.app import AumwatchApp
from tui.cli.dashboard import Prefetch, sdk_modules


def test_the_first_querys_modules_only() -> None:
    signed_in = sdk_modules(Settings())
    assert signed_in == ("azure.identity.aio", *GRAPH_SDK_MODULES)
    # A static token (the stand-in) needs no azure-identity.
    assert sdk_modules(Settings(token="t", cloud="standin")) == GRAPH_SDK_MODULES


def test_a_failed_prefetch_is_an_exception_for_the_app_to_ignore(tmp_path: Path) -> None:
    # cloud "standin" without its token: the credential cannot be made.
    prefetch = Prefetch(Settings(cloud="standin", data_dir=tmp_path)).start()
    prefetch.thread.join(timeout=120)
    assert prefetch.result.exception() is not None


async def test_the_app_shows_the_prefetched_configurations(tmp_path: Path) -> None:
    done: concurrent.futures.Future[Fetched] = concurrent.futures.Future()
    app = AumwatchApp(Settings(data_dir=tmp_path), clock=ManualClock(NOW), poll=False,
                      prefetched=done)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await app.take_prefetched(_resolved(Fetched(CONFIGS, NOW)))
        await pilot.pause()
        assert len(app.dashboard.state.configs) == len(CONFIGS)
        # Once the dashboard has configurations (its own poll came first), a late prefetch
        # is dropped: its answer is older.
        assert not await app.take_prefetched(_resolved(Fetched(CONFIGS[:1], NOW)))
        assert len(app.dashboard.state.configs) == len(CONFIGS)
        failed: concurrent.futures.Future[Fetched] = concurrent.futures.Future()
        failed.set_exception(RuntimeError("no token"))
        assert not await app.take_prefetched(failed)


def _resolved(value: Fetched) -> concurrent.futures.Future[Fetched]:
    future: concurrent.futures.Future[Fetched] = concurrent.futures.Future()
    future.set_result(value)
    return future
