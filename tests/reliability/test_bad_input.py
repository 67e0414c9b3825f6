"""Bad input at scale: the queue decoder, the schedule parser and Resource Graph rows.

Only the module's own error type may escape the decoder (EventDecodeError) and the schedule
parser (ScheduleError); the row builders never raise at all, and whatever they build can be
turned into JSON and table cells. Each property runs in two sizes: a CI-sized one (unmarked)
and one with thousands of cases (``@pytest.mark.slow``). The existing tests in
tests/services already cover a few hundred examples of the plain text/binary decoder inputs;
these add structured, near-valid inputs (real samples mutated, base64 wrapping, deep JSON) and
the schedule fields one by one.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.domain.configs import configuration_from_row
from services.domain.events import EventDecodeError, decode_message
from services.domain.machines import machine_from_row
from services.domain.runs import run_from_row
from services.domain.schedule import ScheduleError, parse_window
from tests.reliability.conftest import Tally
from tui.cli.data import clean

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "events"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CI_EXAMPLES = 300
SLOW_EXAMPLES = 5000

# -- strategies ------------------------------------------------------------------------------
hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "null", "[bold]x[/]", "\x1b]52;c;aGk=\x07", "\x1b[2J", "\x00",
                     "\ud800", "9" * 400, "x" * 100_000, "2026-02-30T25:61:00Z", "-1", "NaN",
                     "Week Fortnightly", "Month Sixth Sunday Offset7", "P1D", "25:00"]),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    hostile_text)
json_like = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=20)


def _sample_events() -> list[dict[str, Any]]:
    out = []
    for path in sorted(SAMPLES.glob("*.json")):
        try:
            value = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


SAMPLE_EVENTS = _sample_events()


@st.composite
def mutated_events(draw: st.DrawFn) -> str:
    """A real sample with fields removed, retyped or replaced, as JSON, maybe base64."""
    event = json.loads(json.dumps(draw(st.sampled_from(SAMPLE_EVENTS)))) if SAMPLE_EVENTS \
        else {"eventType": "x"}
    for _ in range(draw(st.integers(0, 4))):
        target = event
        data = event.get("data")
        if isinstance(data, dict) and draw(st.booleans()):
            target = data
        if not target:
            break
        key = draw(st.sampled_from(sorted(target)))
        if draw(st.booleans()):
            del target[key]
        else:
            target[key] = draw(json_like)
    if draw(st.booleans()):
        event = [event] * draw(st.integers(0, 3))  # type: ignore[assignment]
    text = json.dumps(event)
    wrap = draw(st.sampled_from(["plain", "base64", "base64-cut", "bytes-bad-utf8"]))
    if wrap == "base64":
        return base64.b64encode(text.encode()).decode()
    if wrap == "base64-cut":
        encoded = base64.b64encode(text.encode()).decode()
        return encoded[: draw(st.integers(0, len(encoded)))]
    if wrap == "bytes-bad-utf8":
        return text[:-1] + "\udcff"
    return text


windows = st.fixed_dictionaries({}, optional={
    "startDateTime": st.one_of(hostile_text, st.just("2026-01-01 02:00"), json_like),
    "timeZone": st.one_of(hostile_text, st.sampled_from(
        ["UTC", "W. Europe Standard Time", "America/New_York", "Etc/GMT+12", "utc"]), json_like),
    "recurEvery": st.one_of(hostile_text, st.sampled_from(
        ["Day", "3Days", "Week Saturday", "Month day31", "Month Last Sunday Offset-6",
         "Month Fifth Friday", "6Hours", "Week Monday,Tuesday", "0Days", "99999Weeks"]),
        st.from_regex(r"\A\d{0,6}(Day|Days|Week|Weeks|Month|Months|Hour|Hours)"
                      r"( [A-Za-z0-9,\-]{0,20}){0,3}\Z", fullmatch=True),
        json_like),
    "duration": st.one_of(hostile_text, st.sampled_from(["03:00", "00:00", "99:99", "23:59"]),
                          json_like),
    "expirationDateTime": st.one_of(hostile_text, st.just("2025-01-01 00:00"), json_like),
})


# -- properties ------------------------------------------------------------------------------
def _decoder_property(message: str, tally: Tally | None = None) -> None:
    try:
        events = decode_message(message)
    except EventDecodeError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
    else:
        for event in events:
            json.dumps(event.to_json())  # every decoded event can be shown and exported


def _schedule_property(window: dict[str, Any]) -> None:
    try:
        schedule = parse_window(window)
    except ScheduleError as exc:
        assert str(exc)
        return
    schedule.describe()
    schedule.next(NOW, 3)
    schedule.previous(NOW)


def _row_property(row: Any) -> None:
    config = configuration_from_row(row, NOW)
    if config is not None:
        json.dumps(config.to_json(), default=str)
        [clean(v) for v in (config.name, config.recur_every, config.time_zone)]
    run = run_from_row(row)
    if run is not None:
        json.dumps(run.to_json(), default=str)
        clean(run.status)
    machine = machine_from_row(row)
    if machine is not None:
        json.dumps(machine.to_json(), default=str)
        clean(machine.error)


arg_rows = st.one_of(
    json_like,
    st.fixed_dictionaries({"id": st.one_of(hostile_text, st.just(
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Maintenance/"
        "maintenanceConfigurations/c"), json_like)}, optional={
        "name": json_like, "tags": json_like, "resourceGroup": json_like,
        "properties": st.one_of(json_like, st.fixed_dictionaries({}, optional={
            "maintenanceWindow": windows, "status": hostile_text, "startDateTime": json_like,
            "resourceId": hostile_text, "correlationId": hostile_text, "error": json_like,
            "maintenanceScope": json_like})),
        "patch": json_like,
    }),
)

_FAST = settings(max_examples=CI_EXAMPLES, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_SLOW = settings(max_examples=SLOW_EXAMPLES, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_FAST
@given(mutated_events())
def test_decoder_only_raises_its_own_error_on_mutated_samples(message: str) -> None:
    _decoder_property(message)


@_FAST
@given(windows)
def test_schedule_parser_only_raises_its_own_error(window: dict[str, Any]) -> None:
    _schedule_property(window)


@_FAST
@given(arg_rows)
def test_malformed_rows_never_raise_and_always_export(row: Any) -> None:
    _row_property(row)


@pytest.mark.slow
@_SLOW
@given(st.one_of(mutated_events(), st.text(max_size=2000)))
def test_decoder_fuzz_at_scale(message: str) -> None:
    _decoder_property(message)


@pytest.mark.slow
@_SLOW
@given(windows)
def test_schedule_fuzz_at_scale(window: dict[str, Any]) -> None:
    _schedule_property(window)


@pytest.mark.slow
@_SLOW
@given(arg_rows)
def test_malformed_rows_at_scale(row: Any) -> None:
    _row_property(row)


def test_huge_strings_are_handled_quickly(tally: Tally) -> None:
    huge = "A" * 2_000_000
    row = {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Maintenance/"
                 "maintenanceConfigurations/" + huge,
           "properties": {"maintenanceWindow": {"startDateTime": huge, "timeZone": huge,
                                                "recurEvery": huge}}}
    config = configuration_from_row(row, NOW)
    assert config is not None and config.schedule_error
    assert len(config.schedule_error) < 2000  # the error names the part, not the whole input
    with pytest.raises(EventDecodeError):
        decode_message("{" + huge)
    tally.add("bad input: huge strings", injected=2, survived=2)


def test_every_schedule_occurrence_is_aware_utc() -> None:
    schedule = parse_window({"startDateTime": "2026-03-29 02:30", "timeZone":
                             "W. Europe Standard Time", "recurEvery": "Day"})
    for occurrence in schedule.next(NOW, 30):
        assert occurrence.start.utcoffset() == timedelta(0)
