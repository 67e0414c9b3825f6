"""Decoding raw queue messages into maintenance events (services/domain/events.py)."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.domain.events import (
    MAX_MESSAGE_CHARS,
    EventDecodeError,
    EventKind,
    MaintenanceEvent,
    decode_items,
    decode_message,
    parse_event_time,
)

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "events"
CONFIG = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/testrg/providers/"
    "Microsoft.Maintenance/maintenanceConfigurations/contosomaintenanceconfiguration"
)
RUN = f"{CONFIG}/providers/microsoft.maintenance/applyupdates/20230509150000"
START = datetime(2023, 5, 9, 15, 0, tzinfo=UTC)
END = datetime(2023, 5, 9, 18, 55, tzinfo=UTC)
CUTOFF = datetime(2023, 5, 9, 14, 59, tzinfo=UTC)
SUB = "00000000-0000-0000-0000-000000000000"
CONTRACT_KEYS = {
    "id", "type", "kind", "schema", "correlation_id", "configuration_id", "configuration_name",
    "run_name", "start", "end", "cancellation_cutoff", "status", "subscription_ids", "event_time",
}



def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sample_json(name: str) -> dict[str, Any]:
    return json.loads(sample(name))


def only(message: str | bytes) -> MaintenanceEvent:
    events = decode_message(message)
    assert len(events) == 1
    return events[0]


# --- the samples ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "schema"),
    [
        ("pre-eventgrid.json", "eventgrid"),
        ("pre-eventgrid-camelcase.json", "eventgrid"),
        ("pre-cloudevents.json", "cloudevents"),
        ("pre-eventgrid.queue-base64.txt", "eventgrid"),
    ],
)
def test_pre_event_samples_decode_to_the_same_normalized_event(name: str, schema: str) -> None:
    event = only(sample(name))
    assert event.kind is EventKind.PRE
    assert event.schema == schema
    assert event.type == "Microsoft.Maintenance.PreMaintenanceEvent"
    assert event.id == RUN
    assert event.correlation_id == RUN
    assert event.configuration_id == CONFIG
    assert event.configuration_name == "contosomaintenanceconfiguration"
    assert event.run_name == "20230509150000"
    assert (event.start, event.end, event.cancellation_cutoff) == (START, END, CUTOFF)
    assert event.status is None
    assert event.subscription_ids == (SUB,)
    assert event.event_time == datetime(2023, 5, 9, 14, 25, 0, 371747, tzinfo=UTC)


@pytest.mark.parametrize("name", ["post-eventgrid.json", "post-eventgrid.queue-plain-array.txt"])
def test_post_event_samples(name: str) -> None:
    event = only(sample(name))
    assert event.kind is EventKind.POST
    assert event.status == "Succeeded"
    assert event.cancellation_cutoff is None
    assert (event.start, event.end) == (START, END)
    assert event.run_name == "20230509150000"


def test_every_sample_file_is_covered() -> None:
    names = {p.name for p in SAMPLES.iterdir() if p.name != "README.md"}
    assert names == {
        "pre-eventgrid.json", "pre-eventgrid-camelcase.json", "pre-cloudevents.json",
        "pre-eventgrid.queue-base64.txt", "post-eventgrid.json",
        "post-eventgrid.queue-plain-array.txt",
    }
    for name in names:
        assert decode_message(sample(name))


def test_pre_and_post_of_one_run_share_the_correlation_id_but_not_the_dedupe_key() -> None:
    pre, post = only(sample("pre-eventgrid.json")), only(sample("post-eventgrid.json"))
    assert pre.correlation_id == post.correlation_id
    assert pre.dedupe_key != post.dedupe_key


def test_dedupe_key_ignores_case_and_redelivery() -> None:
    first = only(sample("pre-eventgrid.json"))
    again = sample_json("pre-eventgrid.json")
    again["id"] = again["id"].upper()
    again["eventType"] = again["eventType"].lower()
    assert only(json.dumps(again)).dedupe_key == first.dedupe_key
    assert first.dedupe_key == (RUN.lower(), "microsoft.maintenance.premaintenanceevent")


def test_to_json_has_exactly_the_contract_keys_with_z_times() -> None:
    out = only(sample("pre-eventgrid.json")).to_json()
    assert set(out) == CONTRACT_KEYS
    assert out["start"] == "2023-05-09T15:00:00Z"
    assert out["cancellation_cutoff"] == "2023-05-09T14:59:00Z"
    assert out["event_time"] == "2023-05-09T14:25:00.371747Z"
    assert out["status"] is None
    assert out["kind"] == "pre" and out["schema"] == "eventgrid"
    assert out["subscription_ids"] == [SUB]
    json.dumps(out)  # serializable as is


def test_raw_data_is_kept_read_only() -> None:
    event = only(sample("pre-eventgrid.json"))
    assert event.data["CancellationCutOffDateTime"] == "2023-05-09T14:59:00Z"
    with pytest.raises(TypeError):
        event.data["Status"] = "x"  # type: ignore[index]


def test_events_are_hashable_and_equal_across_deliveries() -> None:
    a, b = only(sample("pre-eventgrid.json")), only(sample("pre-eventgrid.queue-base64.txt"))
    assert a == b
    assert len({a, b}) == 1


# --- encodings --------------------------------------------------------------------------------


def test_base64_of_a_list_wrapped_at_76_columns_is_accepted() -> None:
    text = base64.encodebytes(sample("post-eventgrid.queue-plain-array.txt")).decode()
    assert "\n" in text.strip()
    assert only(text).kind is EventKind.POST


def test_base64_without_padding_is_accepted() -> None:
    text = base64.b64encode(json.dumps(sample_json("pre-eventgrid.json")).encode()).decode()
    stripped = text.rstrip("=")
    assert stripped != text or len(text) % 4 == 0
    assert only(stripped).kind is EventKind.PRE


def test_str_and_bytes_with_bom_and_whitespace_are_accepted() -> None:
    text = "\ufeff  " + sample("pre-eventgrid.json").decode() + "\n\n"
    assert only(text) == only(text.encode("utf-8"))


def test_offsets_and_missing_zone_in_times_become_utc() -> None:
    event = sample_json("pre-eventgrid.json")
    event["data"]["StartDateTime"] = "2023-05-09T17:00:00+02:00"
    event["data"]["EndDateTime"] = "2023-05-09T18:55:00"  # no zone: UTC
    event["eventTime"] = "2023-05-09 14:25:00.3717473z"
    decoded = only(json.dumps(event))
    assert decoded.start == START and decoded.end == END
    assert decoded.event_time == datetime(2023, 5, 9, 14, 25, 0, 371747, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-05-09T15:55:00.3717473Z", datetime(2023, 5, 9, 15, 55, 0, 371747, tzinfo=UTC)),
        ("2023-05-09T15:55:00.1234567891+01:00",
         datetime(2023, 5, 9, 14, 55, 0, 123456, tzinfo=UTC)),
        ("2023-05-09T15:55Z", datetime(2023, 5, 9, 15, 55, tzinfo=UTC)),
        ("2023-05-09T15:55:00-05:30", datetime(2023, 5, 9, 21, 25, tzinfo=UTC)),
    ],
)
def test_parse_event_time(text: str, expected: datetime) -> None:
    parsed = parse_event_time(text)
    assert parsed == expected and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text", ["2023-05-09", "yesterday", "2023-13-09T15:00:00Z", "", "2023-W19"]
)
def test_parse_event_time_refuses_what_is_not_a_date_and_time(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_event_time(text)


# --- shapes -----------------------------------------------------------------------------------


def test_unknown_event_types_are_kept_as_other() -> None:
    event = {
        "id": "abc", "eventType": "Microsoft.Storage.BlobCreated", "subject": "/blobServices/x",
        "topic": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/a",
        "eventTime": "2023-05-09T15:00:00Z", "data": {"url": "https://x"},
    }
    decoded = only(json.dumps(event))
    assert decoded.kind is EventKind.OTHER
    assert decoded.correlation_id == "abc"  # no CorrelationId: the event id
    assert decoded.configuration_id is None and decoded.configuration_name is None
    assert decoded.run_name is None


def test_other_events_with_non_object_data_are_kept_without_data() -> None:
    event = {"id": "abc", "type": "x.y", "specversion": "1.0", "data": "plain text payload"}
    decoded = only(json.dumps(event))
    assert decoded.kind is EventKind.OTHER and decoded.schema == "cloudevents"
    assert dict(decoded.data) == {}


def test_envelope_keys_are_read_case_insensitively() -> None:
    event = {k.upper(): v for k, v in sample_json("pre-eventgrid.json").items()}
    assert only(json.dumps(event)).kind is EventKind.PRE


def test_mixed_case_data_keys() -> None:
    event = sample_json("pre-eventgrid.json")
    event["data"] = {k.swapcase(): v for k, v in event["data"].items()}
    assert only(json.dumps(event)).cancellation_cutoff == CUTOFF


def test_configuration_falls_back_to_topic_then_subject_then_correlation_id() -> None:
    event = sample_json("pre-eventgrid.json")
    del event["data"]["MaintenanceConfigurationId"]
    assert only(json.dumps(event)).configuration_id == CONFIG  # from the topic
    del event["topic"]
    decoded = only(json.dumps(event))
    assert decoded.configuration_id is None
    assert decoded.configuration_name == "contosomaintenanceconfiguration"  # from the subject
    del event["subject"]
    event["data"]["CorrelationId"] = RUN.replace("contoso", "fabrikam")
    assert only(json.dumps(event)).configuration_name == "fabrikammaintenanceconfiguration"


def test_correlation_id_falls_back_to_the_event_id() -> None:
    event = sample_json("post-eventgrid.json")
    del event["data"]["CorrelationId"]
    decoded = only(json.dumps(event))
    assert decoded.correlation_id == RUN and decoded.run_name == "20230509150000"


def test_null_values_count_as_absent() -> None:
    event = sample_json("pre-eventgrid.json")
    event["data"]["CancellationCutOffDateTime"] = None
    event["data"]["ResourceSubscriptionIds"] = None
    decoded = only(json.dumps(event))
    assert decoded.cancellation_cutoff is None and decoded.subscription_ids == ()


def test_a_list_with_some_invalid_items_decodes_the_valid_ones() -> None:
    good = sample_json("pre-eventgrid.json")
    message = json.dumps([good, {"no": "event"}, 42])
    events = decode_message(message)
    assert len(events) == 1 and events[0].kind is EventKind.PRE
    results = decode_items(message)
    assert [type(r) for r in results] == [MaintenanceEvent, EventDecodeError, EventDecodeError]
    assert "item 2" in str(results[1]) and "item 3" in str(results[2])


def test_a_list_with_no_valid_item_raises_with_the_first_reason() -> None:
    reason = r"no valid event among 2 items; item 1: not an event"
    with pytest.raises(EventDecodeError, match=reason):
        decode_message(json.dumps([{"x": 1}, []]))


def mutated(path: tuple[str, ...], value: Any) -> str:
    event = copy.deepcopy(sample_json("pre-eventgrid.json"))
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(event)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("", "empty message"),
        ("   \n", "empty message"),
        ("{", "message is not valid JSON"),
        ('[{"id": 1', "message is not valid JSON"),
        ("hello world!", "neither JSON nor base64"),
        ("aGVsbG8gd29ybGQ=", "content is not a JSON object or list"),  # base64 of "hello world"
        (base64.b64encode(b"{broken").decode(), "base64 content is not valid JSON"),
        (base64.b64encode(b"\xff\xfe{}").decode(), "content is not UTF-8"),
        ("42", "the message is a number"),
        ('"text"', "the message is a string"),
        ("null", "the message is null"),
        ("[]", "empty list"),
        ("{}", "no eventType"),
        ('{"id": "x", "data": {}}', "no eventType"),
        (mutated(("id",), ""), "has no id"),
        (mutated(("id",), 7), "id is a number"),
        (mutated(("eventType",), None), "has no eventType"),
        (mutated(("eventType",), ["x"]), "eventType is a list"),
        (mutated(("eventTime",), "soon"), "eventTime: not an ISO 8601"),
        (mutated(("data",), [1, 2]), "data of a pre maintenance event is a list"),
        (mutated(("data", "StartDateTime"), 1683644400), "data.StartDateTime is a number"),
        (mutated(("data", "EndDateTime"), "2023-02-30T00:00:00Z"), "data.EndDateTime"),
        (mutated(("data", "ResourceSubscriptionIds"), "one"), "ResourceSubscriptionIds is a str"),
        (mutated(("data", "ResourceSubscriptionIds"), [1]), "expected a list of strings"),
        (mutated(("data", "Status"), True), "data.Status is a boolean"),
        (json.dumps({"id": "x", "type": "t", "specversion": "0.3"}), "specversion"),
        ("[" * 50_000 + "]" * 50_000, "too large|nested too deeply"),
        ("[" * 30_000 + "]" * 30_000, "nested too deeply"),
        ("[" + "1" * 5000 + "]", "not usable JSON"),  # beyond the int digit limit
        ("x" * (MAX_MESSAGE_CHARS + 1), "too large"),
    ],
    ids=lambda v: v[:40] if isinstance(v, str) else None,
)
def test_malformed_messages_raise_with_a_reason(message: str, reason: str) -> None:
    with pytest.raises(EventDecodeError, match=reason):
        decode_message(message)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"{\"id\": \"\xc3\x28\"}", "not UTF-8"),
        (b"x" * (MAX_MESSAGE_CHARS * 4 + 1), "too large: .* bytes"),
    ],
)
def test_malformed_bytes_raise_with_a_reason(message: bytes, reason: str) -> None:
    with pytest.raises(EventDecodeError, match=reason):
        decode_message(message)


def test_non_text_input_raises_decode_error() -> None:
    with pytest.raises(EventDecodeError, match="not a message"):
        decode_message(12345)  # type: ignore[arg-type]


# --- properties: nothing escapes but EventDecodeError -----------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
field_values = json_values | st.sampled_from(
    ["2023-05-09T15:00:00Z", "2023-05-09T15:00:00.3717473Z", "9999-12-31T23:59:59-23:59",
     "0001-01-01T00:00:00+23:59", RUN, CONFIG, "", "1.0",
     "Microsoft.Maintenance.PreMaintenanceEvent"]
)
ENVELOPE_KEYS = ["id", "eventType", "eventTime", "topic", "subject", "type", "time", "source",
                 "specversion", "data", "ID", "EVENTTYPE"]
DATA_KEYS = ["CorrelationId", "MaintenanceConfigurationId", "StartDateTime", "EndDateTime",
             "CancellationCutOffDateTime", "ResourceSubscriptionIds", "Status", "correlationid"]
event_like = st.fixed_dictionaries(
    {},
    optional={
        **{key: field_values for key in ENVELOPE_KEYS},
        "data": json_values | st.dictionaries(st.sampled_from(DATA_KEYS), field_values),
    },
)


def _decodes_or_explains(message: Any) -> None:
    try:
        events = decode_message(message)
    except EventDecodeError as exc:
        assert str(exc)  # always says why
        return
    assert events
    for event in events:
        json.dumps(event.to_json())
        hash(event)
        assert event.dedupe_key


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_any_text_raises_only_decode_error(text: str) -> None:
    _decodes_or_explains(text)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_raise_only_decode_error(data: bytes) -> None:
    _decodes_or_explains(data)


@settings(max_examples=400, deadline=None)
@given(json_values | event_like | st.lists(event_like, max_size=3), st.booleans())
def test_any_json_plain_or_base64_raises_only_decode_error(value: Any, as_base64: bool) -> None:
    text = json.dumps(value)
    if as_base64:
        text = base64.b64encode(text.encode()).decode()
    _decodes_or_explains(text)


@settings(max_examples=300, deadline=None)
@given(event_like)
def test_event_shaped_objects_with_a_valid_envelope_decode_or_explain(
    extra: dict[str, Any],
) -> None:
    event = sample_json("pre-eventgrid.json")
    event.update(extra)
    _decodes_or_explains(json.dumps(event).encode())
