"""Issue 22, items 2 and 11c: one journal shared by several worlds and processes.

Every ``aumwatch sim`` / ``demo`` world writes into the same data directory, and two config
files may watch queues of the same name on different storage accounts. Journal rows are keyed
by the queue's full identity and the stand-in world, so nothing of another world ever shows
(the real monitor, the stand-in and Azurite). And a cancel verified by any aumwatch process
sharing the journal shows in an open dashboard at its next runs poll, not only at start-up.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient

from services.azure.journal import AuditOutcome, Journal
from services.azure.monitor import Monitor
from services.domain.boundary import CancelTarget, Outcome
from services.domain.clock import ManualClock
from services.domain.queueid import queue_identity
from services.settings import Settings, load_settings
from services.standin.azurite import Azurite
from services.standin.events_out import encode_message
from services.standin.server import StandInServer
from services.standin.world import SimRun, World
from tests.standin import NOW, add_run, azure_toml, pre_event_for
from tests.tui.test_report_key import daily, make_app, settle

pytestmark = pytest.mark.integration


@pytest.fixture
def run(standin_world: World) -> SimRun:
    """patch-web runs 30 minutes after the stand-in's now: its cancel window is open."""
    return add_run(standin_world, daily("patch-web", "13:30"), NOW + timedelta(minutes=30),
                   machines=1, duration=timedelta(hours=1))


@pytest.fixture
def queue_name(azurite: Azurite) -> Iterator[str]:
    name = f"q{uuid.uuid4().hex[:12]}"
    client = QueueClient.from_connection_string(azurite.connection_string, name)
    client.create_queue()
    yield name
    client.delete_queue()


def world_settings(server: StandInServer, azurite: Azurite, queue_name: str, data_dir: Path,
                   *, world: str | None, mode: str) -> Settings:
    """A config file of one stand-in world (as `aumwatch sim` writes it): the same stand-in,
    Azurite, queue name and data directory for every world; only the world id differs."""
    path = data_dir / f"aumwatch-{world or 'azure'}-{mode}.toml"
    path.write_text(
        azure_toml(server, token=False)
        + (f'world = "{world}"\n' if world else "")
        + "[queue]\n"
        f'name = "{queue_name}"\n'
        f'mode = "{mode}"\n'
        f'connection_string = "{azurite.connection_string}"\n'
        "[paths]\n"
        f'data_dir = "{data_dir}"\n', encoding="utf-8")
    path.chmod(0o600)
    return load_settings({}, env={"AUMWATCH_TOKEN": server.token}, config_path=path)


async def test_two_worlds_sharing_one_journal_see_none_of_each_others_events_or_cancels(
    run: SimRun, standin: StandInServer, standin_clock: ManualClock, azurite: Azurite,
    queue_name: str, tmp_path: Path,
) -> None:
    # World A consumes its queue (journaling the pre-event) and cancels its run (verified).
    QueueClient.from_connection_string(azurite.connection_string, queue_name).send_message(
        encode_message(pre_event_for(run, "patch-web")))
    consumer = Monitor(world_settings(standin, azurite, queue_name, tmp_path, world="sim-a",
                                      mode="consume"), standin_clock)
    try:
        batch = await consumer.poll_events()
        assert batch is not None and batch.mode == "consume" and len(batch.events) == 1
        result = await consumer.cancel(CancelTarget(run.correlation_id, "patch-web", run.start))
        assert result.outcome is Outcome.VERIFIED
    finally:
        await consumer.close()
    assert QueueClient.from_connection_string(
        azurite.connection_string, queue_name).peek_messages() == []  # taken by world A

    # World B: same stand-in, same Azurite, same queue name, same data directory. It peeks:
    # nothing of world A's journal may show, neither the pre-event nor the verified cancel.
    other = Monitor(world_settings(standin, azurite, queue_name, tmp_path, world="sim-b",
                                   mode="peek"), standin_clock)
    # World A again (a second dashboard on A's config file): it sees both.
    same = Monitor(world_settings(standin, azurite, queue_name, tmp_path, world="sim-a",
                                  mode="peek"), standin_clock)
    try:
        seen = await other.poll_events()
        assert seen is not None and seen.events == ()
        assert other.verified_cancels() == {}
        assert (await other.poll_runs()).cancels == {}
        mine = await same.poll_events()
        assert mine is not None
        assert [r.event.correlation_id for r in mine.events] == [run.correlation_id]
        assert set((await same.poll_runs()).cancels or {}) == {run.correlation_id.lower()}
    finally:
        await other.close()
        await same.close()


async def test_a_queue_of_the_same_name_on_another_account_is_another_queue(
    run: SimRun, standin: StandInServer, standin_clock: ManualClock, azurite: Azurite,
    queue_name: str, tmp_path: Path,
) -> None:
    """Two config files of real Azure (no world) watching queues of one name on two storage
    accounts: the events the other account's consumer journaled are not this queue's."""
    from services.domain.events import decode_message

    settings = world_settings(standin, azurite, queue_name, tmp_path, world=None, mode="peek")
    raw = encode_message(pre_event_for(run, "patch-web"))
    elsewhere = queue_identity(queue_name, account_url="https://other.queue.core.windows.net/")
    assert elsewhere is not None and elsewhere != settings.queue_identity
    with Journal(settings.journal_path) as journal:
        journal.record_event(decode_message(raw)[0], raw, received_at=NOW, message_id="m1",
                             source_queue=queue_name, queue_identity=elsewhere)
    monitor = Monitor(settings, standin_clock)
    try:
        batch = await monitor.poll_events()
        assert batch is not None and batch.events == ()
    finally:
        await monitor.close()


async def test_a_cancel_verified_by_another_process_shows_at_the_next_refresh(
    run: SimRun, standin: StandInServer, standin_clock: ManualClock, standin_world: World,
    azurite: Azurite, queue_name: str, tmp_path: Path,
) -> None:
    """Item 11c: `aumwatch cancel` (another process) verifies a cancel while the dashboard is
    open; Resource Graph has not caught up. The dashboard's next runs poll shows it."""
    settings = world_settings(standin, azurite, queue_name, tmp_path, world="sim-a",
                              mode="peek")
    app = make_app(settings, standin_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        key = run.correlation_id.lower()
        assert key in app.dashboard.state.runs and key not in app.dashboard.state.cancelled
        # Another process verified the cancel and journaled it; Resource Graph lags (the
        # stand-in's world still says Pending).
        with Journal(settings.journal_path) as journal:
            seq = journal.begin_cancel(attempted_at=NOW, run_id=run.correlation_id,
                                       configuration="patch-web", computed_id=False,
                                       identity="someone@example.com", api_version=None,
                                       world="sim-a")
            journal.finish_cancel(seq, finished_at=NOW, outcome=AuditOutcome.VERIFIED)
        assert standin_world.get_run(run.correlation_id).status != "Cancelled"
        app.dashboard.poll_configs()  # the next refresh
        await settle(pilot)
        assert key in app.dashboard.state.cancelled
        assert app.dashboard.state.runs[key].status == "Cancelled"
