"""`aumwatch setup events` against the stand-in's Event Grid and a real Azurite queue.

The stand-in delivers an event only through an enabled event subscription whose identity may
send to the queue, so "the next pre-event reaches the queue" proves the whole wiring.
"""

from __future__ import annotations

import io
import json
import shlex
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from services.azure.journal import Journal
from services.domain.events import EventKind, decode_message
from services.standin.runner import SimEnvironment
from services.standin.scenario_file import parse_scenario
from tui.cli import main

pytestmark = pytest.mark.integration

SUB = "11111111-1111-4111-8111-111111111111"


def configuration(name: str, start: str, wiring: str) -> dict[str, Any]:
    return {
        "name": name, "subscription": "prod", "resource_group": "rg-int",
        "time_zone": "UTC", "recur_every": "Day", "duration": "01:30", "start": start,
        "machines": [{"count": 2, "prefix": name}], "wiring": wiring,
        # A fixed pre-event moment and no overrun: the moment the event is due is known.
        "behaviour": {"pre_event": "T-35m", "overrun": 0},
    }


class Recorder:
    """Records every non-GET call that reaches the stand-in's Event Grid handlers."""

    def __init__(self, env: SimEnvironment) -> None:
        self.calls: list[tuple[str, str]] = []
        # The server's entry points for writes: topics, subscriptions, role assignments.
        for service, attr in ((env.world.eventgrid, "arm_topic"),
                              (env.world.eventgrid, "arm_subscription"),
                              (env.world.roles, "arm_role")):
            original = getattr(service, attr)
            setattr(service, attr, self._wrap(attr, original))

    def _wrap(self, attr: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def call(method: str, *args: Any, **kwargs: Any) -> Any:
            if method != "GET":
                self.calls.append((method, f"{attr}:{args[0] if args else ''}"))
            return original(method, *args, **kwargs)
        return call

    @property
    def writes(self) -> list[tuple[str, str]]:
        return list(self.calls)


Sim = tuple[SimEnvironment, Path, Recorder]


def start_sim(tmp_path: Path, arg_lag: float | None) -> Iterator[Sim]:
    data = {
        "subscriptions": {"prod": SUB},
        "configuration": [
            configuration("cfg-bare", "now+50m", "no-topic"),
            # Far away: its own events cannot mix with cfg-bare's during the test.
            configuration("cfg-pre", "now+5h", "pre-only"),
            configuration("cfg-hook", "now+6h", "webhook"),
        ],
    }
    cfg = tmp_path / "aumwatch.toml"
    with SimEnvironment(parse_scenario(data), step_interval=0.05, config_path=cfg,
                        arg_lag=arg_lag, data_dir=tmp_path / "data") as env:
        yield env, cfg, Recorder(env)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    """Resource Graph without lag: configurations a test adds are visible at once."""
    yield from start_sim(tmp_path, 0)


@pytest.fixture
def sim_lagging(tmp_path: Path) -> Iterator[Sim]:
    """The realistic Resource Graph lag: a second run must find what the first created
    through Resource Manager, not wait for the index."""
    yield from start_sim(tmp_path, None)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def config_id(env: SimEnvironment, name: str) -> str:
    [cid] = [c["id"] for c in env.world.configurations() if c["name"] == name]
    return str(cid)


def peek(env: SimEnvironment) -> list[str]:
    with QueueClient.from_connection_string(env.azurite.connection_string,
                                            env.queue_name) as client:
        return [m.content for m in client.peek_messages(max_messages=32)]


def wait_for(read: Callable[[], Any], done: Callable[[Any], bool],
             timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    with Journal(tmp_path / "data" / "journal.sqlite3") as journal:
        return journal.change_audit()


def test_dry_run_changes_nothing_and_prints_az_and_bicep(
        sim: Sim, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    env, cfg, recorder = sim
    code, out, err = run(capsys, "setup", "events", "--config", str(cfg),
                         "--configuration", "CFG-BARE", "--dry-run")
    assert code == 0, err
    assert recorder.writes == []
    assert env.world.eventgrid.topic_for_source(config_id(env, "cfg-bare")) is None
    assert "[to do] create system topic" in out
    assert "az eventgrid system-topic create" in out and "--mi-system-assigned" in out
    assert "az rest --method put" in out
    assert "az role assignment create" in out
    assert "resource topic 'Microsoft.EventGrid/systemTopics@" in out
    assert "resource queueSender 'Microsoft.Authorization/roleAssignments@" in out
    assert "AccountKey" not in out + err  # the queue's connection string stays secret
    assert not (tmp_path / "data" / "journal.sqlite3").exists() or audit(tmp_path) == []


def test_setup_creates_the_wiring_and_the_next_pre_event_reaches_the_queue(
        sim_lagging: Sim, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    env, cfg, recorder = sim_lagging
    cid = config_id(env, "cfg-bare")
    assert peek(env) == []
    code, out, err = run(capsys, "setup", "events", "--config", str(cfg),
                         "--configuration", "cfg-bare", "--yes")
    assert code == 0, err
    assert "reads back Succeeded" in out
    assert "Resource Graph shows a new system topic after a lag" in out
    topic = env.world.eventgrid.topic_for_source(cid)
    assert topic is not None and topic.principal_id
    [sub] = env.world.eventgrid.subscriptions_of(topic.id)
    assert sub.name == "aumwatch"
    assert [m for m, _ in recorder.writes] == ["PUT", "PUT", "PUT"]
    rows = audit(tmp_path)
    assert [r["action"] for r in rows] == ["create-system-topic", "assign-role",
                                           "create-event-subscription"]
    assert all(r["outcome"] == "succeeded" and r["finished_at"] for r in rows)
    assert rows[2]["target"].endswith("/eventSubscriptions/aumwatch")
    # The audit names the identity that got the role (the plan could not know it).
    assert json.loads(rows[1]["detail"])["properties"]["principalId"] == topic.principal_id

    # T-34: the stand-in publishes the pre-event at T-35, through the new subscription.
    env.clock.shift(timedelta(minutes=16))
    texts = wait_for(lambda: peek(env), lambda t: len(t) >= 1)
    assert len(texts) == 1, texts
    [event] = decode_message(texts[0])
    assert event.kind == EventKind.PRE
    assert event.configuration_id.lower() == cid.lower()
    # Resource Graph has caught up by now (its lag runs on the stand-in's clock): the
    # verdict of the configuration is ok.
    code, out, err = run(capsys, "subscriptions", "--config", str(cfg),
                         "--configuration", "cfg-bare", "--json")
    assert code == 0, err
    [wiring] = json.loads(out)
    assert wiring["verdict"] == "ok", wiring
    assert wiring["subscriptions"][0]["state"] == "Succeeded"

    # A second run: nothing to change, nothing sent.
    before = recorder.writes
    code, out, err = run(capsys, "setup", "events", "--config", str(cfg),
                         "--configuration", "cfg-bare", "--yes")
    assert code == 0, err
    assert "already set up" in out
    assert recorder.writes == before
    assert len(audit(tmp_path)) == 3


def test_partial_pre_only_wiring_is_completed(
        sim: Sim, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    env, cfg, recorder = sim
    cid = config_id(env, "cfg-pre")
    topic = env.world.eventgrid.topic_for_source(cid)
    assert topic is not None
    [before] = env.world.eventgrid.subscriptions_of(topic.id)
    code, out, err = run(capsys, "setup", "events", "--config", str(cfg),
                         "--configuration", "cfg-pre", "--yes")
    assert code == 0, err
    assert f"update event subscription {before.name}: add post events" in out
    assert "Resource Graph shows a new system topic" not in out  # no topic was made
    # Only that: it delivers with Event Grid's own access, so no identity and no role.
    assert [m for m, _ in recorder.writes] == ["PUT"]
    [after] = env.world.eventgrid.subscriptions_of(topic.id)  # updated in place
    assert after.name == before.name
    types = after.arm()["properties"]["filter"]["includedEventTypes"]
    assert {t.lower() for t in types} == {"microsoft.maintenance.premaintenanceevent",
                                          "microsoft.maintenance.postmaintenanceevent"}
    assert [r["action"] for r in audit(tmp_path)] == ["update-event-subscription"]
    # Its next run's pre- and post-events both reach the queue now (T+2h: the run is over).
    env.clock.shift(timedelta(hours=7))
    texts = wait_for(lambda: peek(env), lambda t: len(t) >= 2)
    kinds = [e.kind for text in texts for e in decode_message(text)
             if (e.configuration_id or "").lower() == cid.lower()]
    assert kinds == [EventKind.PRE, EventKind.POST]


def test_read_only_refuses_and_sends_nothing(
        sim: Sim, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    env, cfg, recorder = sim
    code, _, err = run(capsys, "setup", "events", "--config", str(cfg),
                       "--configuration", "cfg-bare", "--yes", "--read-only")
    assert code == 1
    assert "read-only" in err and "nothing was changed" in err
    assert recorder.writes == []
    assert env.world.eventgrid.topic_for_source(config_id(env, "cfg-bare")) is None
    rows = audit(tmp_path)
    assert rows and {r["outcome"] for r in rows} == {"refused"}
    assert {r["reason"] for r in rows} == {"read-only mode"}


def test_no_terminal_without_yes_refuses(
        sim: Sim, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, cfg, recorder = sim
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # not a TTY, even if it says yes
    code, _, err = run(capsys, "setup", "events", "--config", str(cfg),
                       "--configuration", "cfg-bare")
    assert code == 1
    assert "not a terminal" in err and "--yes" in err
    assert recorder.writes == []


def test_a_missing_queue_is_said_and_nothing_is_sent(
        sim: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    _, cfg, recorder = sim
    code, _, err = run(capsys, "setup", "events", "--config", str(cfg),
                       "--configuration", "cfg-bare", "--queue", "no-such-queue", "--yes")
    assert code == 1
    assert "queue no-such-queue does not exist" in err
    assert recorder.writes == []


def test_unknown_and_ambiguous_configurations(
        sim: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    env, cfg, _ = sim
    code, _, err = run(capsys, "setup", "events", "--config", str(cfg),
                       "--configuration", "nope", "--dry-run")
    assert code == 1 and "no maintenance configuration named 'nope'" in err
    # The same name in another resource group: the error lists both ids.
    import copy

    first = config_id(env, "cfg-bare")
    other = copy.deepcopy(next(c for c in env.world.configurations()
                               if c["name"] == "cfg-bare"))
    other["id"] = other["id"].replace("/rg-int/", "/rg-other/")
    env.world.add_configuration(other)
    code, _, err = run(capsys, "setup", "events", "--config", str(cfg),
                       "--configuration", "cfg-bare", "--dry-run")
    assert code == 1 and "ambiguous" in err
    assert first in err and other["id"] in err
    # A full id picks one.
    code, out, err = run(capsys, "setup", "events", "--config", str(cfg),
                         "--configuration", other["id"], "--dry-run")
    assert code == 0, err
    assert f"({other['id']})" in out


def test_hostile_configuration_name_is_quoted_and_printed_literally(
        sim: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    env, cfg, recorder = sim
    import copy

    # No '/' or whitespace: an ARM id segment cannot hold them.
    hostile = "x';touch${IFS}pwned;echo$(id)`id`&|<>[bold]boom[/]"
    other = copy.deepcopy(next(c for c in env.world.configurations()
                               if c["name"] == "cfg-bare"))
    other["id"] = other["id"].rsplit("/", 1)[0] + "/" + hostile
    other["name"] = hostile
    env.world.add_configuration(other)
    code, out, err = run(capsys, "setup", "events", "--config", str(cfg),
                         "--configuration", hostile, "--dry-run")
    assert code == 0, err
    assert f"configuration: {hostile} (" in out  # literally, markup and all
    [create] = [line for line in out.splitlines()
                if line.startswith("az eventgrid system-topic create")]
    assert shlex.quote(other["id"]) in create
    words = shlex.split(create)
    assert words[words.index("--source") + 1] == other["id"]
    assert recorder.writes == []


def test_a_forbidden_role_assignment_prints_the_command_and_the_rest_is_set_up(
        sim: Sim, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    env, cfg, _ = sim
    grid = env.world.eventgrid
    roles = env.world.roles
    real_arm_role = roles.arm_role

    def forbidden(method: str, scope: str, name: str, body: Any) -> Any:
        if method == "PUT":  # as ARM answers a caller without roleAssignments/write
            return 403, {"error": {"code": "AuthorizationFailed", "message": "The client "
                                   "does not have authorization to perform action "
                                   "'Microsoft.Authorization/roleAssignments/write'."}}, {}
        return real_arm_role(method, scope, name, body)

    roles.arm_role = forbidden  # type: ignore[method-assign]
    code, out, err = run(capsys, "setup", "events", "--config", str(cfg),
                         "--configuration", "cfg-bare", "--yes")
    assert code == 0, err  # the subscription reads back Succeeded: the contract's exit 0
    assert "[FAILED] assign Storage Queue Data Message Sender" in out
    topic = grid.topic_for_source(config_id(env, "cfg-bare"))
    assert topic is not None and topic.principal_id
    assert "events will fail to deliver until this role assignment exists" in err
    [command] = [line.strip() for line in err.splitlines()
                 if line.strip().startswith("az role assignment create")]
    words = shlex.split(command)
    assert words[words.index("--assignee-object-id") + 1] == topic.principal_id
    assert words[words.index("--role") + 1] == "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a"
    assert words[words.index("--scope") + 1].endswith("/storageAccounts/devstoreaccount1")
    outcomes = {r["action"]: r["outcome"] for r in audit(tmp_path)}
    assert outcomes == {"create-system-topic": "succeeded", "assign-role": "failed",
                        "create-event-subscription": "succeeded"}


class _Terminal(io.StringIO):
    """Typed answers on what claims to be a terminal."""

    def isatty(self) -> bool:
        return True


def test_on_a_terminal_anything_but_yes_changes_nothing(
        sim: Sim, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    _, cfg, recorder = sim
    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    code, _, err = run(capsys, "setup", "events", "--config", str(cfg),
                       "--configuration", "cfg-bare")
    assert code == 1
    assert "Apply these 3 change(s)? [y/N]" in err and "not confirmed" in err
    assert recorder.writes == []
    assert {r["reason"] for r in audit(tmp_path)} == {"not confirmed"}
    monkeypatch.setattr("sys.stdin", _Terminal("yes\n"))
    code, out, err = run(capsys, "setup", "events", "--config", str(cfg),
                         "--configuration", "cfg-bare")
    assert code == 0, err
    assert "reads back Succeeded" in out
    assert len(recorder.writes) == 3


def test_an_existing_topic_without_identity_gets_one_by_patch_and_keeps_its_subscription(
        sim: Sim, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    env, cfg, recorder = sim
    with QueueClient.from_connection_string(env.azurite.connection_string,
                                            "second-queue") as client:
        client.create_queue()
    cid = config_id(env, "cfg-pre")
    topic = env.world.eventgrid.topic_for_source(cid)
    assert topic is not None and topic.principal_id is None
    [existing] = env.world.eventgrid.subscriptions_of(topic.id)
    code, out, err = run(capsys, "setup", "events", "--config", str(cfg),
                         "--configuration", "cfg-pre", "--queue", "second-queue", "--yes")
    assert code == 0, err
    assert "update system topic cfg-pre-events: give it a system-assigned identity" in out
    assert [m for m, _ in recorder.writes] == ["PATCH", "PUT", "PUT"]
    after = env.world.eventgrid.get_topic(topic.id)
    assert after is not None and after.principal_id
    names = sorted(s.name for s in env.world.eventgrid.subscriptions_of(topic.id))
    assert names == sorted(["aumwatch", existing.name])  # the other queue's one is left alone
    assert [r["action"] for r in audit(tmp_path)] == [
        "update-system-topic", "assign-role", "create-event-subscription"]


def test_a_webhook_key_never_reaches_output_or_journal(
        sim: Sim, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from services.standin.eventgrid import WEBHOOK_URL

    _, cfg, _ = sim
    key = WEBHOOK_URL.split("code=", 1)[1]
    outputs = []
    for extra in (["--dry-run"], ["--yes"]):
        code, out, err = run(capsys, "setup", "events", "--config", str(cfg),
                             "--configuration", "cfg-hook", *extra)
        assert code == 0, err
        outputs.append(out + err)
    assert "create event subscription aumwatch" in outputs[0]  # the webhook one is left alone
    journal = (tmp_path / "data" / "journal.sqlite3").read_bytes()
    for text in outputs:
        assert key not in text and "maintenance-events" not in text
    assert key.encode() not in journal


# -- issue 22 item 9: per-subscription delivery health, and what to do when nothing can change --
def subscriptions_json(capsys: pytest.CaptureFixture[str], cfg: Path,
                       name: str) -> dict[str, Any]:
    code, out, err = run(capsys, "subscriptions", "--config", str(cfg), "--configuration", name,
                         "--json")
    assert code == 0, err
    [wiring] = json.loads(out)
    return dict(wiring)


def test_an_old_broken_subscription_on_the_topic_does_not_fail_the_queues_verdict(
        sim: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    from services.domain.events import PRE_EVENT_TYPE
    from services.standin.eventgrid import WEBHOOK_URL

    env, cfg, _ = sim
    cid = config_id(env, "cfg-bare")
    code, _, err = run(capsys, "setup", "events", "--config", str(cfg),
                         "--configuration", "cfg-bare", "--yes")
    assert code == 0, err
    grid = env.world.eventgrid
    topic = grid.topic_for_source(cid)
    assert topic is not None
    # An old webhook subscription on the same topic fails every delivery, then is deleted:
    # its failures stay in the topic's 24 h counts.
    hook_id = f"{topic.id}/eventSubscriptions/old-hook"
    status, answer, _ = grid.put_subscription(hook_id, {"properties": {"destination": {
        "endpointType": "WebHook", "properties": {"endpointUrl": WEBHOOK_URL}}}})
    assert status == 201, answer
    at = env.clock.now() - timedelta(minutes=5)
    routes = grid.routes(cid, PRE_EVENT_TYPE, at)  # counts the publish, match and failure
    assert {r.subscription_name: r.failure is None for r in routes} == {
        "aumwatch": True, "old-hook": False}
    grid.record(topic.id, "DeliverySuccessCount", at, subscription="aumwatch")
    assert grid.arm_subscription("DELETE", hook_id, None, "https://x", "2025-02-15")[0] == 202

    wiring = subscriptions_json(capsys, cfg, "cfg-bare")
    assert wiring["verdict"] == "ok", wiring
    assert "not counted: 1 failed deliveries through subscription OLD-HOOK" in wiring["reason"]
    assert wiring["health"]["failed"] == 1  # the topic's own total is still shown


def test_setup_on_a_failing_configuration_says_what_to_check(
        sim: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    from services.domain.events import PRE_EVENT_TYPE

    env, cfg, recorder = sim
    cid = config_id(env, "cfg-bare")
    code, out, err = run(capsys, "setup", "events", "--config", str(cfg),
                         "--configuration", "cfg-bare", "--yes")
    assert code == 0, err
    grid = env.world.eventgrid
    topic = grid.topic_for_source(cid)
    assert topic is not None
    [sub] = grid.subscriptions_of(topic.id)
    assert grid.set_broken(sub.id)  # the queue's endpoint fails (a firewall, say)
    at = env.clock.now() - timedelta(minutes=5)
    for minutes in (0, 1, 2):
        grid.routes(cid, PRE_EVENT_TYPE, at + timedelta(minutes=minutes))
    assert subscriptions_json(capsys, cfg, "cfg-bare")["verdict"] == "failing"

    before = recorder.writes
    code, out, err = run(capsys, "setup", "events", "--config", str(cfg),
                         "--configuration", "cfg-bare", "--yes")
    assert code == 0, err
    assert recorder.writes == before
    assert "already set up: nothing to change" in out
    advice = out.split("already set up: nothing to change", 1)[1]
    assert (f"delivery to queue {env.queue_name} failed 3 times in 24 h through subscription "
            "aumwatch (3 dropped, 0 dead-lettered)") in advice
    assert "check that queue" in advice and "network rules" in advice
    assert "Storage Queue Data Message Sender" in advice  # it delivers with the identity


# -- issue 22 item 10: a subject filter that never matches ------------------------------------
def test_a_never_matching_subject_filter_is_judged_and_setup_clears_it(
        sim: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    from services.domain.events import PRE_EVENT_TYPE

    env, cfg, _ = sim
    cid = config_id(env, "cfg-bare")
    code, _, err = run(capsys, "setup", "events", "--config", str(cfg),
                       "--configuration", "cfg-bare", "--yes")
    assert code == 0, err
    grid = env.world.eventgrid
    topic = grid.topic_for_source(cid)
    assert topic is not None
    [sub] = grid.subscriptions_of(topic.id)
    # The recorded real answer's filter: events (subject: the configuration's name) never pass.
    props = {**sub.properties, "filter": {**sub.properties["filter"],
                                          "subjectBeginsWith": "SomeRandomText1",
                                          "subjectEndsWith": "SomeRandomText2"}}
    assert grid.put_subscription(sub.id, {"properties": props})[0] == 201
    assert grid.routes(cid, PRE_EVENT_TYPE, env.clock.now(), count=False) == []
    wiring = subscriptions_json(capsys, cfg, "cfg-bare")
    assert wiring["verdict"] == "disabled", wiring
    assert "never matches 'cfg-bare'" in wiring["reason"]

    code, out, err = run(capsys, "setup", "events", "--config", str(cfg),
                         "--configuration", "cfg-bare", "--yes")
    assert code == 0, err
    assert "clear its subject filter" in out
    [after] = grid.subscriptions_of(topic.id)
    assert after.properties["filter"]["subjectBeginsWith"] == ""
    assert after.properties["filter"]["subjectEndsWith"] == ""
    assert [r.subscription_name for r in grid.routes(cid, PRE_EVENT_TYPE, env.clock.now(),
                                                     count=False)] == ["aumwatch"]
    assert subscriptions_json(capsys, cfg, "cfg-bare")["verdict"] == "ok"
