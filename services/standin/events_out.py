"""Pre/post maintenance events as Azure delivers them, and writing them to a queue.

The shapes follow docs/azure.md and the shared sample events (copied in tests/data/events): the
event ``id`` is the run's correlation id (the same on the pre and the post event),
``topic``/``source`` is the configuration id, ``subject`` the configuration name, ``data``
keys PascalCase.

Message text, per ``schema``:

* ``eventgrid`` (default): base64 of one Event Grid event, as Event Grid writes it today;
* ``cloudevents``: base64 of one CloudEvents 1.0 event;
* ``plain-json``: the Event Grid event as plain JSON text (an older documented behaviour).

Only ``Succeeded`` is documented for the post event's ``Status``. For a run that failed the
stand-in writes ``failed_status`` (default ``"Failed"``, an undocumented value a reader must
show as it is rather than trust): a scenario can set it to ``"Succeeded"`` to model Azure
reporting success for a run whose machines failed.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from services.domain.clock import iso_z

PRE_EVENT_TYPE = "Microsoft.Maintenance.PreMaintenanceEvent"
POST_EVENT_TYPE = "Microsoft.Maintenance.PostMaintenanceEvent"
SCHEMAS = ("eventgrid", "cloudevents", "plain-json")
#: The queue the stand-in writes events to unless told otherwise (the "watched" queue).
DEFAULT_QUEUE_NAME = "aum-events"
# A queue message that is not an event at all (a test of "keep and show raw, never drop"),
# with markup-like text in it: a reader must not render it as markup.
MALFORMED_MESSAGE = '{"eventType": "Microsoft.Maintenance.PreMaintenanceEvent", "data": [bold]'


def _iso_event_time(value: datetime) -> str:
    # Event Grid writes seven fractional digits ("2023-05-09T14:25:00.3717473Z").
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}0Z"


def build_event(
    *,
    kind: str,
    correlation_id: str,
    configuration_id: str,
    configuration_name: str,
    start: datetime,
    end: datetime,
    subscription_ids: Sequence[str],
    event_time: datetime,
    cutoff: datetime | None = None,
    status: str | None = None,
    schema: str = "eventgrid",
) -> dict[str, Any]:
    """One event as a JSON-ready dict. ``kind`` is ``"pre"`` or ``"post"``."""
    if kind not in ("pre", "post"):
        raise ValueError(f"event kind must be 'pre' or 'post', not {kind!r}")
    if schema not in SCHEMAS:
        raise ValueError(f"event schema must be one of {', '.join(SCHEMAS)}, not {schema!r}")
    data: dict[str, Any] = {
        "CorrelationId": correlation_id,
        "MaintenanceConfigurationId": configuration_id,
        "StartDateTime": iso_z(start),
        "EndDateTime": iso_z(end),
    }
    if kind == "pre":
        data["CancellationCutOffDateTime"] = iso_z(cutoff if cutoff is not None else start)
    data["ResourceSubscriptionIds"] = list(subscription_ids)
    if kind == "post":
        data["Status"] = status or "Succeeded"
    event_type = PRE_EVENT_TYPE if kind == "pre" else POST_EVENT_TYPE
    if schema == "cloudevents":
        return {
            "id": correlation_id,
            "source": configuration_id,
            "subject": configuration_name,
            "data": data,
            "type": event_type,
            "time": _iso_event_time(event_time),
            "specversion": "1.0",
        }
    return {
        "id": correlation_id,
        "topic": configuration_id,
        "subject": configuration_name,
        "data": data,
        "eventType": event_type,
        "eventTime": _iso_event_time(event_time),
        "dataVersion": "1.0",
        "metadataVersion": "1",
    }


def encode_message(event: dict[str, Any], schema: str = "eventgrid") -> str:
    """The queue message text for ``event``: base64 JSON, or plain JSON for ``plain-json``."""
    text = json.dumps(event)
    if schema == "plain-json":
        return text
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


class QueueMissing(LookupError):
    """The queue a delivery names does not exist (Event Grid counts a failed delivery)."""


class EventSink(Protocol):
    """Where the scenario engine writes queue message texts. ``send`` (to the sink's own
    queue) raises on failure; ``send_to`` writes to any queue of the same account (its own
    through ``send``) and raises :class:`QueueMissing` when that queue does not exist."""

    def send(self, text: str) -> None: ...

    def send_to(self, queue_name: str, text: str) -> None: ...

    def create_queue(self, queue_name: str) -> None: ...


class MemorySink:
    """Collects message texts in a list (unit tests); ``fail`` makes sends raise. Messages
    for other queues go to ``other[queue name]`` (a queue exists once created or written)."""

    def __init__(self, queue_name: str = DEFAULT_QUEUE_NAME) -> None:
        self.queue_name = queue_name
        self.messages: list[str] = []
        self.other: dict[str, list[str]] = {}
        self.fail = False
        self._lock = threading.Lock()

    def send(self, text: str) -> None:
        if self.fail:
            raise ConnectionError("memory sink set to fail")
        with self._lock:
            self.messages.append(text)

    def send_to(self, queue_name: str, text: str) -> None:
        if queue_name == self.queue_name:
            self.send(text)
            return
        if self.fail:
            raise ConnectionError("memory sink set to fail")
        with self._lock:
            if queue_name not in self.other:
                raise QueueMissing(queue_name)
            self.other[queue_name].append(text)

    def create_queue(self, queue_name: str) -> None:
        with self._lock:
            if queue_name != self.queue_name:
                self.other.setdefault(queue_name, [])

    def decoded(self) -> list[Any]:
        """Messages decoded back to JSON (base64 or plain); undecodable ones as raw text."""
        out: list[Any] = []
        for text in list(self.messages):
            try:
                out.append(json.loads(text))
                continue
            except ValueError:
                pass
            try:
                out.append(json.loads(base64.b64decode(text, validate=True)))
            except ValueError:
                out.append(text)
        return out


class QueueSink:
    """Writes raw message texts to an Azure Storage queue (Azurite in the stand-in).

    The client has no message encode policy, so the text goes on the wire exactly as given
    (the base64 is ours, as Event Grid's is). A missing queue (Azurite restarted, its
    in-memory state gone) is created again and the send retried once. The SDK does not
    retry (its back-off starts at 15 s): the engine retries a failed event on its next step.
    """

    def __init__(self, connection_string: str, queue_name: str) -> None:
        self.queue_name = queue_name
        self._connection_string = connection_string
        self._client = self._make_client(queue_name)
        self._others: dict[str, Any] = {}
        self._lock = threading.Lock()
        #: Issue 19 (``aumwatch sim --tenants N``): message text -> the queue of the tenant
        #: whose subscription it is about (None: this queue).
        self.route: Any = None
        #: Issue 19: subscription id (lower case) -> its tenant's queue, for the Event Grid
        #: wiring of that tenant's configurations (empty: every one delivers to this queue).
        self.queue_of: dict[str, str] = {}

    def _make_client(self, queue_name: str) -> Any:
        from azure.storage.queue import QueueClient

        return QueueClient.from_connection_string(
            self._connection_string, queue_name, retry_total=0, connection_timeout=5,
            read_timeout=10)

    def _other(self, queue_name: str) -> Any:
        with self._lock:
            client = self._others.get(queue_name)
            if client is None:
                client = self._others[queue_name] = self._make_client(queue_name)
            return client

    def send_to(self, queue_name: str, text: str) -> None:
        """Write to another queue of the account; never creates it (Event Grid does not):
        a missing queue raises :class:`QueueMissing`."""
        from azure.core.exceptions import ResourceNotFoundError

        if queue_name == self.queue_name and self.route is not None:
            queue_name = self.route(text) or queue_name
        if queue_name == self.queue_name:
            self.send(text)
            return
        try:
            self._other(queue_name).send_message(text)
        except ResourceNotFoundError as exc:
            raise QueueMissing(queue_name) from exc

    def create_queue(self, queue_name: str) -> None:
        """Create another queue of the account (if it does not exist)."""
        from azure.core.exceptions import ResourceExistsError

        if queue_name == self.queue_name:
            self.ensure_queue()
            return
        try:
            self._other(queue_name).create_queue()
        except ResourceExistsError:
            pass

    def ensure_queue(self) -> None:
        """Create the queue if it does not exist."""
        from azure.core.exceptions import ResourceExistsError

        try:
            self._client.create_queue()
        except ResourceExistsError:
            pass

    def send(self, text: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with self._lock:
            try:
                self._client.send_message(text)
            except ResourceNotFoundError:
                self.ensure_queue()
                self._client.send_message(text)

    def close(self) -> None:
        self._client.close()
        for client in self._others.values():
            client.close()
