"""``aumwatch capture``: record what aumwatch reads from a tenant, scrubbed, as JSON files.

A capture turns a field report into a test case: ``aumwatch sim --replay DIR`` serves it as
the stand-in's world (services/standin/replay.py). It holds, as received (raw rows, not
parsed objects):

* ``configs.json``: the Resource Graph rows of the configurations query aumwatch sends
  (:data:`services.domain.configs.CONFIGS_QUERY`);
* ``runs.json``: the rows of the runs query (:func:`services.domain.runs.runs_query`);
* ``machines.json``: for each captured run (newest first, at most ``max_runs``), the rows of
  its machines query (:func:`services.domain.machines.machines_query`);
* ``arm.json``: each configuration's ARM object (a GET through the maintenance client, the
  JSON body as Resource Manager sent it);
* ``queue.json``: a peek of the events queue (message text raw, as stored);
* ``eventgrid.json``: the Event Grid wiring, one object per system topic of a maintenance
  configuration: its Resource Graph row (``topic``), its event subscriptions' REST JSON
  (``subscriptions``; a webhook's URL cut to its host), and the Azure Monitor answers of the
  last 24 h as received (``metrics``: the topic's totals; ``metrics_by_subscription``: the
  delivery metrics split by ``EventSubscriptionName``), so that a replay judges the wiring
  as the tenant did. The manifest names the watched queue (``watched_queue``, scrubbed);
* ``manifest.json``, written last: what, when, aumwatch's version, counts, the queries, what
  was scrubbed (counts per kind), and what could not be read.

Everything passes through one :class:`services.domain.scrub.Scrubber` before a byte is
written: identifiers become consistent pseudonyms across all files, secrets are removed. The
pseudonym table itself is never written.

A part that cannot be read (a configuration's GET refused, the queue unreachable) is noted in
the manifest and the rest is still captured; the configurations and runs queries must work.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from services.azure.resourcegraph import QueryRunner
from services.domain.clock import Clock, SystemClock, iso_z
from services.domain.configs import CONFIGS_QUERY, folded, text_of
from services.domain.errors import ServiceError, service_error
from services.domain.machines import machines_query
from services.domain.runid import RunIdError, parse_configuration_id, parse_run_id
from services.domain.runs import DEFAULT_SINCE, parse_time, runs_query
from services.domain.scrub import Scrubber
from services.domain.wiring import SystemTopic, parse_topic, queue_account_name, webhook_host
from services.settings import Settings

CAPTURE_FORMAT = "aumwatch-capture"
#: 2 added ``eventgrid.json`` and the manifest's ``watched_queue`` (a version 1 capture holds
#: no Event Grid; the replay reads both).
CAPTURE_VERSION = 2
MANIFEST = "manifest.json"
FILES: dict[str, str] = {"configs": "configs.json", "runs": "runs.json",
                         "machines": "machines.json", "arm": "arm.json", "queue": "queue.json",
                         "eventgrid": "eventgrid.json"}
#: Runs whose machines are captured, newest first (one Resource Graph query each).
DEFAULT_MAX_RUNS = 200
#: The most messages one peek returns (Storage Queue service limit).
PEEK_LIMIT = 32


class CaptureError(Exception):
    """A capture that cannot be made or written; the message says why."""


@dataclass
class RawCapture:
    """What was read, before scrubbing."""

    captured_at: datetime
    since: timedelta
    configs: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    machines: list[dict[str, Any]] = field(default_factory=list)  # {"run": id, "rows": [...]}
    arm: list[dict[str, Any]] = field(default_factory=list)
    queue: list[dict[str, Any]] = field(default_factory=list)  # {"id", "inserted_on", "content"}
    queue_depth: int | None = None
    queue_name: str | None = None
    #: One object per system topic: {"topic", "subscriptions", "metrics",
    #: "metrics_by_subscription"} (see the module's docstring).
    eventgrid: list[dict[str, Any]] = field(default_factory=list)
    watched_account: str | None = None  # the watched queue's storage account name
    runs_skipped: int = 0  # runs beyond max_runs, machines not captured
    scope: dict[str, Any] = field(default_factory=dict)  # cloud and how many scopes, no ids
    problems: list[str] = field(default_factory=list)


def check_out_dir(out_dir: Path) -> None:
    """Refuse a directory that already holds files: a capture never overwrites anything."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise CaptureError(f"{out_dir} exists and is not a directory")
        if any(out_dir.iterdir()):
            raise CaptureError(f"{out_dir} is not empty: give a new or empty directory "
                               "(a capture never overwrites files)")


def _run_key(row: dict[str, Any]) -> tuple[str, datetime | None]:
    top = folded(row)
    props = folded(top.get("properties"))
    cid = (text_of(props.get("correlationid")) or text_of(top.get("id"))).strip()
    start = parse_time(props.get("startdatetime"))
    if start is None:
        try:
            start = parse_run_id(cid).start
        except RunIdError:
            start = None
    return cid, start


async def read_tenant(
    settings: Settings,
    *,
    clock: Clock | None = None,
    since: timedelta = DEFAULT_SINCE,
    max_runs: int = DEFAULT_MAX_RUNS,
    queue: bool = True,
    credential: Any = None,
) -> RawCapture:
    """Read everything a capture holds from the tenant in ``settings`` (nothing scrubbed)."""
    from services.azure.clients import make_async_credential

    clock = clock or SystemClock()
    own_credential = credential is None
    credential = credential or make_async_credential(settings)
    try:
        raw = RawCapture(captured_at=clock.now(), since=since, scope={
            "cloud": settings.cloud, "subscriptions": len(settings.subscriptions),
            "management_groups": len(settings.management_groups)})
        async with QueryRunner.from_settings(settings, clock=clock,
                                             credential=credential) as runner:
            raw.configs = list((await runner.query(CONFIGS_QUERY,
                                                   what="configurations query")).rows)
            raw.runs = list((await runner.query(runs_query(since), what="runs query")).rows)
            # The capture's moment is the server's (the runner corrected a SystemClock).
            raw.captured_at = clock.now()
            keyed = sorted((_run_key(row) for row in raw.runs),
                           key=lambda k: (k[1] is not None, k[1] or raw.captured_at),
                           reverse=True)
            seen: set[str] = set()
            for cid, _start in keyed:
                if not cid or cid.lower() in seen:
                    continue
                seen.add(cid.lower())
                if len(raw.machines) >= max_runs:
                    raw.runs_skipped += 1
                    continue
                try:
                    query = machines_query(cid)
                except ServiceError:
                    raw.problems.append(f"run {cid}: not a run id, machines not captured")
                    continue
                result = await runner.query(query, what="machines query")
                raw.machines.append({"run": cid, "rows": list(result.rows)})
            await _read_eventgrid(settings, credential, runner, raw)
        raw.arm = await _read_arm(settings, credential, raw.configs, raw.problems)
        if queue:
            await _peek_queue(settings, credential, raw)
        else:
            raw.problems.append("queue: not captured (--no-queue)")
        return raw
    finally:
        if own_credential and hasattr(credential, "close"):
            await credential.close()


async def _read_arm(settings: Settings, credential: Any, rows: Sequence[dict[str, Any]],
                    problems: list[str]) -> list[dict[str, Any]]:
    """Each configuration's ARM object, as Resource Manager's JSON body."""
    from services.azure.clients import async_maintenance_client

    by_subscription: dict[str, list[tuple[str, str, str]]] = {}
    for row in rows:
        config_id = text_of(folded(row).get("id"))
        try:
            sub, rg, name = parse_configuration_id(config_id)
        except RunIdError:
            problems.append(f"configuration {config_id or '?'}: not a configuration id, "
                            "its ARM object is not captured")
            continue
        by_subscription.setdefault(sub.lower(), []).append((sub, rg, name))
    out: list[dict[str, Any]] = []

    def body_of(pipeline_response: Any, deserialized: Any, headers: Any) -> Any:
        # The body as sent, not the SDK's model: a capture keeps what Azure said.
        return json.loads(pipeline_response.http_response.text())

    for items in by_subscription.values():
        client = async_maintenance_client(settings, credential, items[0][0])
        async with client:
            for _sub, rg, name in items:
                try:
                    body = await client.maintenance_configurations.get(rg, name, cls=body_of)
                except Exception as exc:  # one configuration must not stop the capture
                    problems.append(service_error(exc, what=f"reading configuration {name}")
                                    .message)
                    continue
                if isinstance(body, dict):
                    out.append(body)
    return out


async def _read_eventgrid(settings: Settings, credential: Any, runner: QueryRunner,
                          raw: RawCapture) -> None:
    """The system topics, their event subscriptions and their delivery metrics (24 h before
    the capture's moment). A part that cannot be read is a problem line, never a failure."""
    from services.azure.clients import async_eventgrid_client
    from services.azure.eventgrid import HEALTH_PERIOD, TOPICS_QUERY, send_metrics_request

    raw.watched_account = queue_account_name(settings.queue_connection_string,
                                             settings.queue_account_url)
    raw.queue_name = raw.queue_name or settings.queue_name
    try:
        rows = list((await runner.query(TOPICS_QUERY, what="Event Grid system topics query"))
                    .rows)
    except Exception as exc:  # the rest of the capture is still worth having
        raw.problems.append(service_error(exc, what="Event Grid system topics query").message
                            + ": no Event Grid captured")
        return
    until = raw.captured_at.replace(microsecond=0)
    since = until - HEALTH_PERIOD
    by_subscription: dict[str, list[tuple[dict[str, Any], SystemTopic]]] = {}
    for row in rows:
        topic = parse_topic(row)
        if topic is not None:
            by_subscription.setdefault(topic.subscription_id.lower(), []).append((row, topic))
    for items in by_subscription.values():
        client = async_eventgrid_client(settings, credential, items[0][1].subscription_id,
                                        retry_total=1, retry_status=0, retry_backoff_max=5)
        async with client:
            for row, topic in items:
                entry: dict[str, Any] = {"topic": row, "subscriptions": [], "metrics": None,
                                         "metrics_by_subscription": None}
                raw.eventgrid.append(entry)
                try:
                    pager = client.system_topic_event_subscriptions.list_by_system_topic(
                        topic.resource_group, topic.name)
                    entry["subscriptions"] = [
                        webhook_to_host(model.serialize(keep_readonly=True))
                        async for model in pager]
                except Exception as exc:
                    raw.problems.append(service_error(
                        exc, what=f"reading the event subscriptions of {topic.name}").message)
                    continue
                if not entry["subscriptions"]:
                    continue
                for key, split in (("metrics", False), ("metrics_by_subscription", True)):
                    try:
                        entry[key] = dict(await send_metrics_request(
                            client, topic.id, since, until, per_subscription=split))
                    except Exception as exc:
                        raw.problems.append(service_error(
                            exc, what=f"reading the delivery metrics of {topic.name}").message)


def webhook_to_host(value: Any) -> Any:
    """A copy of a subscription's JSON whose webhook URLs keep only ``https://<host>``: the
    path may name things and the query may hold a key (the scrubber then does the rest)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key.lower() in ("endpointurl", "endpointbaseurl") and isinstance(item, str):
                host = webhook_host(item)
                out[key] = f"https://{host}" if host else None
            else:
                out[key] = webhook_to_host(item)
        return out
    if isinstance(value, list):
        return [webhook_to_host(item) for item in value]
    return value


async def _peek_queue(settings: Settings, credential: Any, raw: RawCapture) -> None:
    if not settings.queue_configured:
        raw.problems.append("queue: not configured, nothing captured")
        return
    from services.azure.clients import settings_queue_client

    try:
        client = settings_queue_client(settings, credential)
    except ValueError as exc:
        raw.problems.append(f"queue: {exc}")
        return
    raw.queue_name = settings.queue_name
    try:
        async with client:
            props = await client.get_queue_properties()
            depth = getattr(props, "approximate_message_count", None)
            raw.queue_depth = depth if isinstance(depth, int) else None
            # A peek changes nothing in the queue (docs/azure.md, "Event Grid -> Storage Queue").
            for message in await client.peek_messages(max_messages=PEEK_LIMIT):
                content = message.content
                if isinstance(content, bytes | bytearray):
                    content = bytes(content).decode("utf-8", "backslashreplace")
                inserted = message.inserted_on
                raw.queue.append({
                    "id": message.id,
                    "inserted_on": iso_z(inserted, fraction=True) if inserted else None,
                    "dequeue_count": message.dequeue_count,
                    "content": "" if content is None else str(content),
                })
    except Exception as exc:  # the rows are still worth keeping
        raw.problems.append(service_error(exc, what="queue peek").message)


def aumwatch_version() -> str:
    """The installed aumwatch's version ("unknown" when not installed as a package)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aumwatch")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class ScrubbedCapture:
    """A capture ready to write: documents by file key, the manifest, and the scrubber
    (whose table stays in memory; tests map pseudonyms back with it)."""

    documents: dict[str, Any]
    manifest: dict[str, Any]
    scrubber: Scrubber


def scrub_capture(raw: RawCapture, *, salt: str | None = None) -> ScrubbedCapture:
    """Scrub every part of ``raw`` with one pseudonym table and build the manifest."""
    scrubber = Scrubber(salt)
    queue_meta = [{k: v for k, v in m.items() if k != "content"} for m in raw.queue]
    contents = [m["content"] for m in raw.queue]
    parts: dict[str, Any] = {"configs": raw.configs, "runs": raw.runs,
                             "machines": raw.machines, "arm": raw.arm,
                             "eventgrid": raw.eventgrid}
    for document in parts.values():
        scrubber.learn(document)
    if raw.watched_account:
        # As an id, so the account gets its pseudonym even where no subscription names it.
        scrubber.learn(f"/providers/Microsoft.Storage/storageAccounts/{raw.watched_account}")
    scrubber.learn(raw.problems)
    for text in contents:
        scrubber.learn_message(text)
    documents = {key: scrubber.scrub(value) for key, value in parts.items()}
    documents["queue"] = [
        {**scrubber.scrub(meta), "content": scrubber.scrub_message(text)}
        for meta, text in zip(queue_meta, contents, strict=True)
    ]
    problems = [scrubber.scrub_text(p) for p in raw.problems]
    machine_rows = sum(len(item.get("rows", [])) for item in raw.machines)
    manifest = {
        "format": CAPTURE_FORMAT,
        "format_version": CAPTURE_VERSION,
        "captured_at": iso_z(raw.captured_at, fraction=True),
        "aumwatch_version": aumwatch_version(),
        "files": dict(FILES),
        "queries": {"configs": CONFIGS_QUERY, "runs": runs_query(raw.since),
                    "machines": "machines_query(<run id>) for each captured run"},
        "since_hours": int(raw.since.total_seconds() // 3600),
        "scope": dict(raw.scope),  # 0 subscriptions and groups: all the identity can see
        "counts": {
            "configs": len(raw.configs),
            "runs": len(raw.runs),
            "machine_runs": len(raw.machines),
            "machine_rows": machine_rows,
            "runs_without_machines": raw.runs_skipped,
            "arm_objects": len(raw.arm),
            "queue_messages": len(raw.queue),
            "queue_depth": raw.queue_depth,
            "system_topics": len(raw.eventgrid),
            "event_subscriptions": sum(len(e["subscriptions"]) for e in raw.eventgrid),
        },
        "scrubbed": scrubber.report(),
        "problems": problems,
        "watched_queue": ({"account": scrubber.scrub_text(raw.watched_account),
                           "queue": raw.queue_name or ""} if raw.watched_account else None),
    }
    return ScrubbedCapture(documents, manifest, scrubber)


def write_capture(capture: ScrubbedCapture, out_dir: Path) -> list[Path]:
    """Write the files, then the manifest last (its presence marks a complete capture).
    Files are readable by the owner only: a scrubbed capture is still a tenant's data."""
    check_out_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = []
    for key, name in FILES.items():
        written.append(_write_json(out_dir / name, capture.documents[key]))
    written.append(_write_json(out_dir / MANIFEST, capture.manifest))
    return written


def _write_json(path: Path, value: Any) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1, ensure_ascii=False)
        handle.write("\n")
    return path


async def capture(settings: Settings, out_dir: Path, *, clock: Clock | None = None,
                  since: timedelta = DEFAULT_SINCE, max_runs: int = DEFAULT_MAX_RUNS,
                  queue: bool = True, salt: str | None = None) -> ScrubbedCapture:
    """Read, scrub and write a capture into ``out_dir`` (new or empty); returns it."""
    check_out_dir(out_dir)  # before reading anything: fail fast
    raw = await read_tenant(settings, clock=clock, since=since, max_runs=max_runs, queue=queue)
    scrubbed = scrub_capture(raw, salt=salt)
    write_capture(scrubbed, out_dir)
    return scrubbed
