"""Replaying a capture (``aumwatch capture``) as the stand-in's world: ``aumwatch sim --replay``.

:func:`load_capture` reads and checks a capture directory; :func:`build_world` fills a
:class:`~services.standin.world.World` from it through the World's public methods only:

* each configuration from its ARM object (or, when the GET was not captured, from its
  Resource Graph row in ARM's shape);
* each machine seen in a run's machine rows, assigned to that run's configuration;
* each run from its Resource Graph row (status, start, end, error, last update), with its
  machines' results rebuilt from the machine rows and their patch rows;
* (:func:`build_eventgrid`, capture format 2) each captured system topic and event
  subscription as they were (provisioning state, types, schema, filters, endpoint), and the
  captured delivery metrics of the last 24 h as counts on the World's clock, per event
  subscription: the verdicts of the replay are the tenant's. The watched queue of the
  capture becomes the replay's Azurite queue; any other Storage Queue becomes a storage
  account of the World that the stand-in cannot deliver to. A version 1 capture holds no
  Event Grid: its replay wires every configuration as the scenario engine does (``ok``).

The World then answers the same queries with the same rows (in the World's own row shape),
so ``aumwatch configs|runs|machines`` show what they showed on the tenant, modulo the
pseudonyms.

:class:`ReplayEnvironment` is a :class:`~services.standin.runner.SimEnvironment` whose
clock starts at the capture's moment and whose scenario is made from the captured
schedules: the scenario engine moves time forward from there (a Pending run starts at its
start, its machines finish, new runs appear at T-40 with the captured machines). The
captured queue messages are written into Azurite, in the order they were inserted.

The stand-in imports only the pure rules (services.domain), never the client it stands in for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from services.domain.configs import folded, in_patch_view, text_of
from services.domain.runid import RunIdError, parse_configuration_id, parse_run_id
from services.domain.runs import _count, error_text, parse_time, run_from_row
from services.domain.schedule import ScheduleError, parse_schedule, parse_window
from services.standin.runner import SimEnvironment
from services.standin.scenario_file import Behaviour, ConfigurationSpec, Scenario, ScenarioError
from services.standin.world import (
    MachineResult,
    SimMachine,
    SimRun,
    World,
    parse_resource_id,
)

CAPTURE_FORMAT = "aumwatch-capture"
SUPPORTED_VERSIONS = frozenset({1, 2})
_FILES = ("configs", "runs", "machines", "arm", "queue")
#: Parts a version 1 capture does not have (read as empty when absent).
_OPTIONAL_FILES = ("eventgrid",)
#: The captured metric samples are put this far inside the 24 h a health read covers, at
#: the earliest: a sample of the first (partial) hour stays counted for a while of replay.
_METRICS_MARGIN = timedelta(minutes=30)
_TERMINAL = frozenset({"succeeded", "failed", "completedwithwarnings", "cancelled", "canceled"})
# A machine-level run row's status, as the patch status it stands for (no patch row yet).
_MACHINE_STATUS = {"pending": "NotStarted", "notstarted": "NotStarted",
                   "cancelled": "NotStarted", "canceled": "NotStarted",
                   "inprogress": "InProgress", "completed": "Succeeded",
                   "succeeded": "Succeeded", "failed": "Failed",
                   "completedwithwarnings": "CompletedWithWarnings"}
_WALL_LENGTH = len("YYYY-MM-DD hh:mm")


class ReplayError(ScenarioError):
    """A capture that cannot be replayed; the message names the file and the fault."""


@dataclass(frozen=True)
class Capture:
    """A capture as read from its directory."""

    directory: Path
    manifest: dict[str, Any]
    captured_at: datetime
    configs: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    machines: list[dict[str, Any]]  # {"run": correlation id, "rows": [...]}
    arm: list[dict[str, Any]]
    queue: list[dict[str, Any]]  # {"id", "inserted_on", "content", ...}
    #: {"topic", "subscriptions", "metrics", "metrics_by_subscription"} per system topic
    eventgrid: list[dict[str, Any]] | None = None  # None: not captured (format 1)

    @property
    def watched_queue(self) -> tuple[str, str] | None:
        """(storage account name, queue name) the capturing aumwatch watched, if known."""
        found = self.manifest.get("watched_queue")
        if not isinstance(found, dict):
            return None
        account, queue = text_of(found.get("account")), text_of(found.get("queue"))
        return (account, queue) if account and queue else None


def load_capture(directory: str | Path) -> Capture:
    """Read a capture directory; :class:`ReplayError` says what is missing or malformed."""
    root = Path(directory)
    manifest = _read_json(root / "manifest.json", dict)
    if manifest.get("format") != CAPTURE_FORMAT:
        raise ReplayError(f"{root / 'manifest.json'}: not an aumwatch capture "
                          f"(format {manifest.get('format')!r})")
    if manifest.get("format_version") not in SUPPORTED_VERSIONS:
        raise ReplayError(f"{root / 'manifest.json'}: capture format version "
                          f"{manifest.get('format_version')!r} is not supported by this "
                          "aumwatch (it reads versions 1 and 2)")
    captured_at = parse_time(manifest.get("captured_at"))
    if captured_at is None:
        raise ReplayError(f"{root / 'manifest.json'}: captured_at is missing or not a time")
    files = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    parts: dict[str, list[dict[str, Any]]] = {}
    for key in _FILES + _OPTIONAL_FILES:
        if key in _OPTIONAL_FILES and key not in files:
            continue
        name = files.get(key) or f"{key}.json"
        if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
            raise ReplayError(f"{root / 'manifest.json'}: file name for {key} is not a plain "
                              "file name")
        items = _read_json(root / name, list)
        bad = next((i for i, item in enumerate(items) if not isinstance(item, dict)), None)
        if bad is not None:
            raise ReplayError(f"{root / name}: item {bad} is not a JSON object")
        parts[key] = items
    eventgrid = parts.pop("eventgrid", None)
    return Capture(directory=root, manifest=manifest, captured_at=captured_at,
                   eventgrid=eventgrid, **parts)


def _read_json(path: Path, kind: type) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReplayError(f"{path}: missing (is this an aumwatch capture directory?)") from None
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ReplayError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(value, kind):
        raise ReplayError(f"{path}: expected a JSON {'object' if kind is dict else 'array'}")
    return value


# -- the World -------------------------------------------------------------------------------


def _config_objects(capture: Capture) -> list[dict[str, Any]]:
    """ARM objects of the configurations: the captured GET, else the row in ARM's shape."""
    by_id: dict[str, dict[str, Any]] = {}
    for row in capture.configs:
        top = folded(row)
        config_id = text_of(top.get("id"))
        if not config_id:
            continue
        by_id[config_id.lower()] = {
            "id": config_id,
            "name": text_of(top.get("name")) or config_id.rsplit("/", 1)[-1],
            "type": "Microsoft.Maintenance/maintenanceConfigurations",
            "location": text_of(top.get("location")),
            "tags": top.get("tags") if isinstance(top.get("tags"), dict) else {},
            "properties": top.get("properties") if isinstance(top.get("properties"), dict)
            else {},
        }
    for arm in capture.arm:
        config_id = text_of(arm.get("id"))
        if config_id:
            by_id[config_id.lower()] = dict(arm)
    return list(by_id.values())


def _machine(resource_id: str, patch: Mapping[str, Any], location: str) -> SimMachine:
    parts = parse_resource_id(resource_id)
    arc = "hybridcompute" in resource_id.lower()
    return SimMachine(
        id=resource_id, name=resource_id.rstrip("/").rsplit("/", 1)[-1],
        subscription_id=parts.get("subscriptions", ""),
        resource_group=parts.get("resourcegroups", ""), location=location,
        os_type=text_of(patch.get("ostype")) or "Windows", arc=arc)


def _result(props: Mapping[str, Any], patch: Mapping[str, Any], run_end: datetime
            ) -> MachineResult:
    """A machine's result from its machine-level run row and its patch row (if any)."""
    status = text_of(patch.get("status")) or _MACHINE_STATUS.get(
        text_of(props.get("status")).lower(), "NotStarted")
    details = folded(patch.get("errordetails"))
    # The machine row's start is the schedule's; only a patch row knows the machine's own.
    started = parse_time(patch.get("startdatetime"))
    ended = parse_time(props.get("enddatetime"))
    if ended is not None and ended == run_end:
        # The schedule's end, not the machine's (docs/azure.md, "Resource Graph"): the
        # machine's own finish is its patch row's last change once that is terminal.
        ended = None
    if ended is None and status.lower() in _TERMINAL:
        ended = parse_time(patch.get("lastmodifieddatetime"))
    window_exceeded = patch.get("maintenancewindowexceeded")
    return MachineResult(
        status=status,
        installed=_count(patch.get("installedpatchcount")) or 0,
        failed=_count(patch.get("failedpatchcount")) or 0,
        pending=_count(patch.get("pendingpatchcount")) or 0,
        excluded=_count(patch.get("excludedpatchcount")) or 0,
        reboot_status=text_of(patch.get("rebootstatus")) or "NotNeeded",
        window_exceeded=window_exceeded is True or str(window_exceeded).lower() == "true",
        error_code=text_of(details.get("code")) or None,
        error_message=error_text(patch) or error_text(props),
        started=started,
        ended=ended,
    )


def _runs(capture: Capture, durations: Mapping[str, timedelta]
          ) -> tuple[list[SimRun], dict[str, SimMachine]]:
    machine_rows: dict[str, list[dict[str, Any]]] = {}
    for item in capture.machines:
        of_run = text_of(item.get("run"))
        rows = item.get("rows")
        if of_run and isinstance(rows, list):
            machine_rows[of_run.lower()] = [r for r in rows if isinstance(r, dict)]
    machines: dict[str, SimMachine] = {}
    runs: list[SimRun] = []
    for row in capture.runs:
        # Read as aumwatch reads it (services.domain.runs.run_from_row), so a replay holds
        # exactly the runs the client would have seen.
        parsed = run_from_row(row)
        if parsed is None:
            continue
        try:
            parse_run_id(parsed.correlation_id)
        except RunIdError:
            continue  # the World keys runs by a run id
        props = folded(folded(row).get("properties"))
        cid, config_id, start = parsed.correlation_id, parsed.configuration_id, parsed.start
        end = parsed.end or start + durations.get(
            config_id.lower(), timedelta(hours=3, minutes=55))
        run = SimRun(correlation_id=cid, configuration_id=config_id, start=start, end=end,
                     status=text_of(props.get("status")) or "Pending",
                     error_message=parsed.error, cancelled_by=parsed.cancelled_by)
        for machine_row in machine_rows.get(cid.lower(), []):
            mtop = folded(machine_row)
            mprops = folded(mtop.get("properties"))
            patch = folded(mtop.get("patch"))
            resource_id = text_of(mprops.get("resourceid")) or text_of(mtop.get("machineid"))
            if not resource_id or any(m.lower() == resource_id.lower()
                                      for m in run.machine_ids):
                continue
            known = machines.get(resource_id.lower())
            if known is None:
                known = _machine(resource_id, patch, text_of(mtop.get("location")))
                machines[resource_id.lower()] = known
            run.machine_ids.append(known.id)
            run.results[known.id] = _result(mprops, patch, end)
        run.updated = parse_time(props.get("lastupdatetime"))
        runs.append(run)
    return runs, machines


def _duration(config: Mapping[str, Any]) -> timedelta | None:
    """The configuration's window length, read by the schedule rules (None when they refuse
    its window)."""
    try:
        return parse_window(folded(config.get("properties"))).duration
    except ScheduleError:
        return None


def build_world(capture: Capture, world: World) -> None:
    """Fill ``world`` from ``capture`` (public World methods only). Idempotent: a run the
    World already holds (the scenario engine's) takes the captured state in place, so the
    engine goes on moving that same run forward."""
    world.replay_of = capture.captured_at
    configs = _config_objects(capture)
    durations = {c["id"].lower(): d for c in configs if (d := _duration(c)) is not None}
    runs, machines = _runs(capture, durations)
    subscriptions: list[str] = []
    for config in configs:
        subscriptions.append(parse_resource_id(config["id"]).get("subscriptions", ""))
    subscriptions.extend(m.subscription_id for m in machines.values())
    for sub in dict.fromkeys(s for s in subscriptions if s):
        world.add_subscription(sub)
    for config in configs:
        world.add_configuration(config)
    for machine in machines.values():
        world.add_machine(machine)
    for run in runs:
        for machine_id in run.machine_ids:
            world.assign(machine_id, run.configuration_id)
    for run in runs:
        updated = run.updated  # the captured row's last change
        existing = world.get_run(run.correlation_id)
        if existing is None:
            world.upsert_run(run)  # stamps the World's now: put the captured time back
            existing = run
        with world.mutate():
            existing.configuration_id = run.configuration_id
            existing.start, existing.end = run.start, run.end
            existing.status, existing.error_message = run.status, run.error_message
            existing.cancelled_by = run.cancelled_by
            existing.machine_ids = list(run.machine_ids)
            existing.results = dict(run.results)
            existing.updated = updated or existing.updated


def _destinations(props: dict[str, Any]) -> list[dict[str, Any]]:
    """The destination objects of a subscription's properties (plain or with identity)."""
    out = []
    if isinstance(props.get("destination"), dict):
        out.append(props["destination"])
    with_identity = props.get("deliveryWithResourceIdentity")
    if isinstance(with_identity, dict) and isinstance(with_identity.get("destination"), dict):
        out.append(with_identity["destination"])
    return out


def _replayable_subscription(body: Mapping[str, Any], world: World,
                             watched: tuple[str, str] | None, queue_account_id: str,
                             queue_name: str) -> tuple[dict[str, Any], bool]:
    """The PUT properties of a captured subscription on the replay's World, and whether it
    delivers to the watched queue (now the replay's queue)."""
    props = {k: v for k, v in dict(body.get("properties") or {}).items()
             if k not in ("topic", "provisioningState") and v is not None}
    props = json.loads(json.dumps(props))  # a deep copy
    to_watched = False
    for dest in _destinations(props):
        found = dest.get("properties")
        dprops: dict[str, Any] = found if isinstance(found, dict) else {}
        dest["properties"] = dprops
        kind = text_of(dest.get("endpointType"))
        if kind == "WebHook":
            # The capture kept the host only; ARM takes endpointUrl on a PUT.
            dprops["endpointUrl"] = dprops.pop("endpointBaseUrl", None) or dprops.get(
                "endpointUrl") or "https://webhook.invalid"
        elif kind == "StorageQueue":
            account = text_of(dprops.get("resourceId"))
            name = account.rstrip("/").rsplit("/", 1)[-1]
            if watched is not None and name.lower() == watched[0].lower() and \
                    text_of(dprops.get("queueName")).lower() == watched[1].lower():
                dprops["resourceId"], dprops["queueName"] = queue_account_id, queue_name
                to_watched = True
            elif account and world.get_storage_account(account) is None:
                parts = parse_resource_id(account)
                world.add_storage_account(parts.get("subscriptions", ""),
                                          parts.get("resourcegroups", ""), name)
    return props, to_watched


def build_eventgrid(capture: Capture, world: World, *, queue_account_id: str,
                    queue_name: str) -> list[str]:
    """Put the captured Event Grid wiring into ``world`` (once: the metric samples add up).

    ``queue_account_id``/``queue_name``: the replay's own queue, which stands for the queue
    the capture watched. A subscription to it that delivered with the topic's identity gets
    the queue-sender role (roles are not captured; its captured metrics say whether it
    delivered). Returns what could not be replayed, one line each."""
    from services.standin.roles import ROLE_QUEUE_SENDER

    problems: list[str] = []
    watched = capture.watched_queue
    for entry in capture.eventgrid or []:
        row = entry.get("topic") if isinstance(entry.get("topic"), dict) else {}
        top = folded(row)
        props = folded(top.get("properties"))
        topic_id = text_of(top.get("id"))
        identity = top.get("identity") if isinstance(top.get("identity"), dict) else None
        body: dict[str, Any] = {
            "location": text_of(top.get("location")) or "global",
            "properties": {"source": text_of(props.get("source")),
                           "topicType": text_of(props.get("topictype"))}}
        if identity and "systemassigned" in text_of(folded(identity).get("type")).lower():
            body["identity"] = {"type": "SystemAssigned"}
        status, answer, _ = world.eventgrid.put_topic(topic_id, body)
        if status >= 400:
            problems.append(f"system topic {topic_id}: {answer['error']['message']}")
            continue
        topic = world.eventgrid.get_topic(topic_id)
        assert topic is not None
        for sub in entry.get("subscriptions") or []:
            if not isinstance(sub, dict):
                continue
            name = text_of(sub.get("name")) or text_of(sub.get("id")).rsplit("/", 1)[-1]
            sub_props, to_watched = _replayable_subscription(sub, world, watched,
                                                             queue_account_id, queue_name)
            state = text_of(folded(sub.get("properties")).get("provisioningstate"))
            status, answer, _ = world.eventgrid.put_subscription(
                f"{topic.id}/eventSubscriptions/{name}", {"properties": sub_props},
                provisioning_state=state or "Succeeded")
            if status >= 400:
                problems.append(f"event subscription {name}: {answer['error']['message']}")
                continue
            if to_watched and "deliveryWithResourceIdentity" in sub_props and \
                    topic.principal_id and not world.roles.may_send(topic.principal_id,
                                                                     queue_account_id):
                world.roles.add(queue_account_id, ROLE_QUEUE_SENDER, topic.principal_id)
        _replay_metrics(capture, world, topic.id, entry)
    return problems


def _replay_metrics(capture: Capture, world: World, topic_id: str,
                    entry: Mapping[str, Any]) -> None:
    """Record the captured counts as samples on the World's clock: the per-subscription
    metrics from the split answer, the others from the topic's totals (never both)."""
    from services.domain.wiring import SUBSCRIPTION_DIMENSION, SUBSCRIPTION_HEALTH_METRICS

    split_metrics = {m.lower() for m in SUBSCRIPTION_HEALTH_METRICS}
    earliest = capture.captured_at - timedelta(hours=24) + _METRICS_MARGIN
    latest = capture.captured_at - timedelta(seconds=1)
    has_split = isinstance(entry.get("metrics_by_subscription"), dict)
    for key in ("metrics", "metrics_by_subscription"):
        body = entry.get(key)
        if not isinstance(body, dict):
            continue
        for metric in body.get("value") or []:
            name = text_of(folded(folded(metric).get("name")).get("value"))
            if not name:
                continue
            if key == "metrics" and has_split and name.lower() in split_metrics:
                continue  # counted from the split, per subscription
            for series in folded(metric).get("timeseries") or []:
                subscription = ""
                for item in folded(series).get("metadatavalues") or []:
                    label = folded(folded(item).get("name")).get("value")
                    if text_of(label).lower() == SUBSCRIPTION_DIMENSION.lower():
                        subscription = text_of(folded(item).get("value"))
                for point in folded(series).get("data") or []:
                    total = folded(point).get("total")
                    at = parse_time(folded(point).get("timestamp"))
                    if not isinstance(total, int | float) or total <= 0 or at is None:
                        continue
                    at = min(max(at, earliest), latest)
                    world.metrics.record(topic_id, name, at, round(total),
                                         subscription=subscription)


def replay_world(capture: Capture, clock: Any, *, queue_name: str = "aum-events") -> World:
    """A new World on ``clock`` holding the capture (its Event Grid delivering to
    ``queue_name`` of an Azurite account in the first subscription)."""
    world = World(clock)
    build_world(capture, world)
    if capture.eventgrid is not None and world.subscriptions:
        account = world.add_storage_account(world.subscriptions[0], "rg-aumwatch-replay")
        build_eventgrid(capture, world, queue_account_id=account, queue_name=queue_name)
    return world


# -- the scenario engine ---------------------------------------------------------------------


def replay_scenario(capture: Capture) -> Scenario:
    """A scenario the engine can play on the replayed world: one configuration per captured
    in-guest patching schedule that parses, no machines of its own (the engine uses the
    captured ones assigned in the World), no history (the capture is the history), and no
    events written for the past (the captured queue is the past)."""
    specs: list[ConfigurationSpec] = []
    subscriptions: list[str] = []
    for config in _config_objects(capture):
        try:
            sub, rg, name = parse_configuration_id(config["id"])
        except RunIdError:
            continue
        subscriptions.append(sub)
        props = folded(config.get("properties"))
        scope = text_of(props.get("maintenancescope"))
        if not in_patch_view(scope):
            continue  # the engine plays patch runs only
        window = folded(props.get("maintenancewindow"))
        start = text_of(window.get("startdatetime"))[:_WALL_LENGTH]
        zone = text_of(window.get("timezone")) or "UTC"
        recur = text_of(window.get("recurevery"))
        duration = text_of(window.get("duration")) or "03:55"
        expiration = text_of(window.get("expirationdatetime")) or None
        try:
            parse_schedule(start, zone, recur, duration, expiration)
        except ScheduleError:
            continue  # shown with its error by aumwatch; nothing to play
        specs.append(ConfigurationSpec(
            name=name, subscription_id=sub, resource_group=rg,
            location=text_of(config.get("location")) or "westeurope", time_zone=zone,
            recur_every=recur, duration=duration, start=start, expiration=expiration,
            tags={}, machines=(), behaviour=Behaviour(), history=0, outcomes=(),
            # The captured wiring is put in by build_eventgrid; only a capture without one
            # (format 1) gets the engine's.
            wiring="ok" if capture.eventgrid is None else "no-topic"))
    return Scenario(subscriptions=tuple(dict.fromkeys(subscriptions)),
                    configurations=tuple(specs), seed=0, history_events=timedelta(0),
                    source=str(capture.directory))


class ReplayEnvironment(SimEnvironment):
    """The stand-in serving a capture: its clock starts at the capture's moment, the
    scenario engine moves time forward, and the captured queue messages are in Azurite."""

    def __init__(self, directory: str | Path, **kwargs: Any) -> None:
        self.capture = load_capture(directory)
        #: What of the capture's Event Grid could not be replayed (one line each).
        self.replay_problems: list[str] = []
        super().__init__(replay_scenario(self.capture), **kwargs)
        self.clock.set(self.capture.captured_at)
        # Before the engine starts, so that it plans new runs with the captured machines.
        build_world(self.capture, self.world)

    def start(self) -> ReplayEnvironment:
        """Start everything, put the captured state back over what the engine installed,
        and write the captured queue messages."""
        if self._started:
            return self
        super().start()
        try:
            build_world(self.capture, self.world)
            if self.capture.eventgrid is not None and self.engine is not None:
                self.replay_problems = build_eventgrid(
                    self.capture, self.world,
                    queue_account_id=self.engine.storage_account_id,
                    queue_name=self.queue_name)
            # The capture is the world as it was: on a stand-in whose Resource Graph lags,
            # it must not look like a change made just now (the server settles what exists).
            settle = getattr(self.server, "settle", None)
            if callable(settle):
                settle()
            assert self.sink is not None
            for message in sorted(self.capture.queue,
                                  key=lambda m: str(m.get("inserted_on") or "")):
                content = message.get("content")
                if isinstance(content, str):
                    self.sink.send(content)
        except BaseException:
            self.stop()
            raise
        return self
