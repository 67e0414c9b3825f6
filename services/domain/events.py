"""Decoding raw queue messages into normalized maintenance events.

A queue message from Event Grid is, today, base64 of one event's JSON; an older doc says plain
JSON; either may hold one event (an object) or a list of them (docs/azure.md). The event itself is
in the Event Grid schema (``eventType``, ``eventTime``, ``topic``) or CloudEvents 1.0
(``specversion``, ``type``, ``time``, ``source``). Keys of ``data`` come PascalCase in current
docs and camelCase in older ones, so every key is read case-insensitively (the envelope's too:
it costs nothing and a hand-written test message is then still understood).

Rules we define:

* Unknown event types are kept, with kind ``other``.
* A known field with the wrong type (a number where a time is expected, a time that does not
  parse) makes that event invalid: the message says which field. ``null`` counts as absent.
* A list with some valid and some invalid items decodes to the valid ones; the invalid ones
  are reported by :func:`decode_items` (and the CLI prints them on stderr). A list with no
  valid item raises, with the first item's reason.
* :func:`decode_message` never raises anything but :class:`EventDecodeError`, whatever it is
  given (the queue is untrusted input).

Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal

from services.domain.clock import iso_z
from services.domain.runid import RunIdError, parse_configuration_id, parse_run_id

# An Azure Storage queue message holds at most 64 KiB; anything larger is not from Event Grid.
MAX_MESSAGE_CHARS = 64 * 1024

PRE_EVENT_TYPE = "Microsoft.Maintenance.PreMaintenanceEvent"
POST_EVENT_TYPE = "Microsoft.Maintenance.PostMaintenanceEvent"

Schema = Literal["eventgrid", "cloudevents"]


class EventDecodeError(ValueError):
    """A message (or one item of it) that is not a maintenance event; the text says why."""


class EventKind(StrEnum):
    """What an event announces."""

    PRE = "pre"
    POST = "post"
    OTHER = "other"


def _kind_of(event_type: str) -> EventKind:
    lowered = event_type.lower()
    if lowered == PRE_EVENT_TYPE.lower():
        return EventKind.PRE
    if lowered == POST_EVENT_TYPE.lower():
        return EventKind.POST
    return EventKind.OTHER


@dataclass(frozen=True)
class MaintenanceEvent:
    """One decoded event. Times are aware UTC; absent values are None."""

    id: str
    type: str
    kind: EventKind
    schema: Schema
    correlation_id: str
    configuration_id: str | None
    configuration_name: str | None
    run_name: str | None
    start: datetime | None
    end: datetime | None
    cancellation_cutoff: datetime | None
    status: str | None
    subscription_ids: tuple[str, ...]
    event_time: datetime | None
    # The raw ``data`` object, read-only, for a "show me the JSON" view. Left out of equality
    # and hashing: two deliveries of one event are the same event.
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), compare=False)

    @property
    def dedupe_key(self) -> tuple[str, str]:
        """(event id, event type), lower-case: Event Grid delivers at least once."""
        return self.id.lower(), self.type.lower()

    def to_json(self) -> dict[str, Any]:
        """The event as the CLI contract prints it (times UTC ISO with ``Z``, null if absent)."""
        return {
            "id": self.id,
            "type": self.type,
            "kind": str(self.kind),
            "schema": self.schema,
            "correlation_id": self.correlation_id,
            "configuration_id": self.configuration_id,
            "configuration_name": self.configuration_name,
            "run_name": self.run_name,
            "start": iso_z(self.start, fraction=True),
            "end": iso_z(self.end, fraction=True),
            "cancellation_cutoff": iso_z(self.cancellation_cutoff, fraction=True),
            "status": self.status,
            "subscription_ids": list(self.subscription_ids),
            "event_time": iso_z(self.event_time, fraction=True),
        }


# --- times -----------------------------------------------------------------------------------

# Require a full date and a time of day: fromisoformat alone would also take a bare date, week
# dates and the basic format, none of which Azure writes.
_TIME_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_event_time(text: str) -> datetime:
    """Parse an ISO 8601 time as Azure writes it (``2023-05-09T15:55:00.3717473Z``, with or
    without ``Z`` or an offset) into aware UTC. No offset means UTC. Raises ValueError."""
    stripped = text.strip()
    if len(stripped) > 64 or _TIME_SHAPE.match(stripped) is None:
        raise ValueError(f"not an ISO 8601 date and time: {stripped[:64]!r}")
    # Python 3.11 accepts more than 6 fraction digits, older parsers do not: trim to be sure.
    normalized = _LONG_FRACTION.sub(r"\1", stripped)
    if normalized[-1:] in ("z", "Z"):
        normalized = normalized[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(normalized)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not an ISO 8601 date and time: {stripped!r} ({exc})") from None


# --- envelope and data -----------------------------------------------------------------------


def _folded(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Keys lower-cased; on a clash (``Status`` and ``status``) the first non-null wins."""
    result: dict[str, Any] = {}
    for key, value in mapping.items():
        folded = key.lower()
        if result.get(folded) is None:
            result[folded] = value
    return result


def _text(fields: Mapping[str, Any], key: str, where: str, label: str) -> str | None:
    value = fields.get(key.lower())
    if value is None:
        return None
    if not isinstance(value, str):
        raise EventDecodeError(f"{where}{label} is {_json_type(value)}, expected a string")
    return value


def _time(fields: Mapping[str, Any], key: str, where: str, label: str) -> datetime | None:
    value = _text(fields, key, where, label)
    if value is None:
        return None
    try:
        return parse_event_time(value)
    except ValueError as exc:
        raise EventDecodeError(f"{where}{label}: {exc}") from None


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else type(value).__name__


def _configuration_name(configuration_id: str | None) -> str | None:
    if configuration_id is None:
        return None
    try:
        return parse_configuration_id(configuration_id)[2]
    except RunIdError:
        return None


def _decode_event(raw: object, where: str = "") -> MaintenanceEvent:
    """One event object -> MaintenanceEvent. ``where`` prefixes messages ("item 2: ")."""
    if not isinstance(raw, dict):
        raise EventDecodeError(f"{where}not an event: {_json_type(raw)}, expected a JSON object")
    envelope = _folded(raw)

    schema: Schema
    if "specversion" in envelope:
        schema = "cloudevents"
        type_key, time_key, source_key = "type", "time", "source"
        version = envelope["specversion"]
        if not isinstance(version, str) or not version.startswith("1."):
            raise EventDecodeError(
                f"{where}unsupported CloudEvents specversion {version!r} (expected 1.0)"
            )
    elif "eventtype" in envelope:
        schema = "eventgrid"
        type_key, time_key, source_key = "eventType", "eventTime", "topic"
    else:
        raise EventDecodeError(
            f"{where}not an event: no eventType (Event Grid) or specversion (CloudEvents)"
        )

    event_id = _text(envelope, "id", where, "id")
    if not event_id or not event_id.strip():
        raise EventDecodeError(f"{where}not an event: it has no id")
    event_type = _text(envelope, type_key, where, type_key)
    if not event_type or not event_type.strip():
        raise EventDecodeError(f"{where}not an event: it has no {type_key}")
    event_time = _time(envelope, time_key, where, time_key)
    source = _text(envelope, source_key, where, source_key)
    subject = _text(envelope, "subject", where, "subject")

    raw_data = envelope.get("data")
    kind = _kind_of(event_type)
    if raw_data is None:
        raw_data = {}
    if not isinstance(raw_data, dict):
        if kind is not EventKind.OTHER:
            raise EventDecodeError(
                f"{where}data of a {kind} maintenance event is {_json_type(raw_data)}, "
                "expected a JSON object"
            )
        # Someone else's event with a non-object payload: keep the event, not the payload.
        raw_data = {}
    data = _folded(raw_data)
    d = f"{where}data."

    correlation_id = _text(data, "CorrelationId", d, "CorrelationId") or event_id
    configuration_id = _text(data, "MaintenanceConfigurationId", d, "MaintenanceConfigurationId")
    if configuration_id is None and _configuration_name(source) is not None:
        # The topic / source of a maintenance event is the configuration's id.
        configuration_id = source

    run_name: str | None = None
    run_configuration_name: str | None = None
    try:
        run = parse_run_id(correlation_id)
        run_name, run_configuration_name = run.run_name, run.configuration_name
    except RunIdError:
        pass
    # The subject names the configuration only on maintenance events; elsewhere it is
    # whatever the publisher chose.
    subject_name = subject.strip() if kind is not EventKind.OTHER and subject else None
    configuration_name = (
        _configuration_name(configuration_id) or subject_name or run_configuration_name
    )

    subscription_ids: tuple[str, ...] = ()
    raw_subscriptions = data.get("resourcesubscriptionids")
    if raw_subscriptions is not None:
        if not isinstance(raw_subscriptions, list) or not all(
            isinstance(item, str) for item in raw_subscriptions
        ):
            raise EventDecodeError(
                f"{d}ResourceSubscriptionIds is {_json_type(raw_subscriptions)}, "
                "expected a list of strings"
            )
        subscription_ids = tuple(raw_subscriptions)

    return MaintenanceEvent(
        id=event_id,
        type=event_type,
        kind=kind,
        schema=schema,
        correlation_id=correlation_id,
        configuration_id=configuration_id,
        configuration_name=configuration_name,
        run_name=run_name,
        start=_time(data, "StartDateTime", d, "StartDateTime"),
        end=_time(data, "EndDateTime", d, "EndDateTime"),
        cancellation_cutoff=_time(
            data, "CancellationCutOffDateTime", d, "CancellationCutOffDateTime"
        ),
        status=_text(data, "Status", d, "Status"),
        subscription_ids=subscription_ids,
        event_time=event_time,
        data=MappingProxyType(dict(raw_data)),
    )


# --- the message ------------------------------------------------------------------------------


def _to_text(message: str | bytes) -> str:
    if isinstance(message, bytes | bytearray | memoryview):
        raw = bytes(message)
        if len(raw) > MAX_MESSAGE_CHARS * 4:  # refuse before decoding megabytes
            raise EventDecodeError(f"message too large: {len(raw)} bytes")
        try:
            message = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EventDecodeError(f"not UTF-8 text (bad byte at position {exc.start})") from None
    elif not isinstance(message, str):
        raise EventDecodeError(f"not a message: {type(message).__name__}, expected text or bytes")
    if len(message) > MAX_MESSAGE_CHARS:
        raise EventDecodeError(
            f"message too large: {len(message)} characters (at most {MAX_MESSAGE_CHARS})"
        )
    return message.lstrip("\ufeff").strip()


def _loads(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise EventDecodeError(f"{what} is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise EventDecodeError(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # e.g. an integer beyond the interpreter's digit limit
        raise EventDecodeError(f"{what} is not usable JSON: {exc}") from None


_BASE64_ALPHABET = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def _from_base64(text: str) -> str:
    # Tools wrap base64 at 76 columns: line breaks are fine, spaces inside are not.
    compact = text.replace("\r", "").replace("\n", "")
    if not compact or _BASE64_ALPHABET.fullmatch(compact) is None:
        raise EventDecodeError("neither JSON nor base64 text")
    if len(compact) % 4:
        compact += "=" * (-len(compact) % 4)  # tolerate stripped padding
    try:
        payload = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise EventDecodeError("neither JSON nor valid base64 text") from None
    try:
        return payload.decode("utf-8").lstrip("\ufeff").strip()
    except UnicodeDecodeError:
        raise EventDecodeError(
            "neither JSON nor base64 of JSON: as base64, its content is not UTF-8 text"
        ) from None


def _parse_payload(text: str) -> Any:
    if not text:
        raise EventDecodeError("empty message")
    if text[0] in "{[":
        return _loads(text, "message")
    try:
        return json.loads(text)  # a bare JSON scalar: rejected below with a clear reason
    except (ValueError, RecursionError):
        pass
    decoded = _from_base64(text)
    if not decoded or decoded[0] not in "{[":
        raise EventDecodeError(
            "neither JSON nor base64 of JSON: as base64, its content is not a JSON object or list"
        )
    return _loads(decoded, "base64 content")


def decode_items(message: str | bytes) -> list[MaintenanceEvent | EventDecodeError]:
    """Decode a message into one result per event it holds: the event, or why it is invalid.

    Raises :class:`EventDecodeError` (only) when the message as a whole is unusable: too
    large, not UTF-8, neither JSON nor base64 of JSON, not an object or a list, an empty list.
    """
    try:
        payload = _parse_payload(_to_text(message))
        if isinstance(payload, dict):
            return [_decode_event(payload)]
        if isinstance(payload, list):
            if not payload:
                raise EventDecodeError("empty list: the message holds no event")
            results: list[MaintenanceEvent | EventDecodeError] = []
            for index, item in enumerate(payload, start=1):
                try:
                    results.append(_decode_event(item, f"item {index}: "))
                except EventDecodeError as exc:
                    results.append(exc)
            return results
        raise EventDecodeError(
            f"not an event: the message is {_json_type(payload)}, expected a JSON object or list"
        )
    except EventDecodeError:
        raise
    except RecursionError:
        raise EventDecodeError("message is nested too deeply") from None
    except Exception as exc:  # a bug here must not take down a reader of untrusted queues
        raise EventDecodeError(f"undecodable message ({type(exc).__name__}: {exc})") from exc


def valid_events(results: list[MaintenanceEvent | EventDecodeError]) -> list[MaintenanceEvent]:
    """The events among :func:`decode_items`' results; raises :class:`EventDecodeError` (the
    first item's reason) when there is none."""
    events = [item for item in results if isinstance(item, MaintenanceEvent)]
    if events:
        return events
    errors = [item for item in results if isinstance(item, EventDecodeError)]
    if not errors:
        raise EventDecodeError("no event in the message")
    if len(errors) == 1:
        raise errors[0]
    raise EventDecodeError(f"no valid event among {len(errors)} items; {errors[0]}")


def decode_message(message: str | bytes) -> list[MaintenanceEvent]:
    """Decode a raw queue message (JSON object or list, or base64 of either) into events.

    Invalid items of a list are skipped when at least one item is valid (see
    :func:`decode_items` to learn about them); otherwise raises :class:`EventDecodeError`,
    the only exception this function raises, with a message that says why.
    """
    return valid_events(decode_items(message))
