"""``aumwatch schedule next``: the CLI contract (JSON shape, defaults, exit codes 0/1/2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from services.domain.clock import SystemClock
from tui.cli import main

EXAMPLE = [
    "schedule",
    "next",
    "--start",
    "2026-03-01 22:00",
    "--tz",
    "W. Europe Standard Time",
    "--recur",
    "Month Second Tuesday Offset3",
    "--after",
    "2026-03-01T00:00:00Z",
]


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_issue_example_prints_utc_z_times(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, [*EXAMPLE, "--count", "3", "--json"])
    assert (code, err) == (0, "")
    assert json.loads(out) == [
        {"start": "2026-03-13T21:00:00Z", "end": "2026-03-14T00:55:00Z"},
        {"start": "2026-04-17T20:00:00Z", "end": "2026-04-17T23:55:00Z"},
        {"start": "2026-05-15T20:00:00Z", "end": "2026-05-15T23:55:00Z"},
    ]


def test_defaults_are_five_occurrences_of_3_55(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, [*EXAMPLE, "--json"])
    items = json.loads(out)
    assert code == 0 and len(items) == 5
    for item in items:
        start = datetime.fromisoformat(item["start"])
        end = datetime.fromisoformat(item["end"])
        assert (end - start).total_seconds() == 3 * 3600 + 55 * 60


def test_after_is_inclusive_and_accepts_an_offset(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["schedule", "next", "--start", "2026-03-01 22:00", "--tz", "UTC", "--recur", "Day"]
    _, out, _ = run(
        capsys, [*argv, "--after", "2026-03-02T23:00:00+01:00", "--count", "1", "--json"]
    )
    assert json.loads(out) == [{"start": "2026-03-02T22:00:00Z", "end": "2026-03-03T01:55:00Z"}]


def test_after_defaults_to_the_system_clock(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SystemClock, "now", lambda self: datetime(2030, 6, 1, 12, tzinfo=UTC))
    argv = ["schedule", "next", "--start", "2026-03-01 22:00", "--tz", "UTC", "--recur", "Day"]
    _, out, _ = run(capsys, [*argv, "--count", "1", "--json"])
    assert json.loads(out)[0]["start"] == "2030-06-01T22:00:00Z"


def test_duration_and_expiration(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["schedule", "next", "--start", "2026-03-01 22:00", "--tz", "UTC", "--recur", "Day"]
    argv += ["--duration", "01:30", "--expiration", "2026-03-02 22:00", "--json"]
    _, out, _ = run(capsys, [*argv, "--after", "2026-03-01T00:00:00Z"])
    assert json.loads(out) == [
        {"start": "2026-03-01T22:00:00Z", "end": "2026-03-01T23:30:00Z"},
        {"start": "2026-03-02T22:00:00Z", "end": "2026-03-02T23:30:00Z"},
    ]
    _, out, _ = run(capsys, [*argv, "--after", "2026-03-03T00:00:00Z"])
    assert json.loads(out) == []


def test_table_shows_the_rule_utc_and_local_times_and_warnings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, [*EXAMPLE, "--count", "2", "--duration", "05:00"])
    assert code == 0
    assert "every month 3 days after the second Tue at 22:00" in out
    assert "2026-03-13T21:00:00Z" in out and "2026-03-13 22:00 CET" in out
    assert "2026-04-17 22:00 CEST" in out
    assert "warning: duration 5:00 is outside" in out


@pytest.mark.parametrize(
    "change,named",
    [
        (("--recur", "Month Second Tuesday Offset7"), "Offset7"),
        (("--recur", "Month day32"), "day32"),
        (("--tz", "Mars Standard Time"), "Mars Standard Time"),
        (("--start", "01.03.2026 22:00"), "startDateTime"),
        (("--duration", "3h"), "duration"),
        (("--expiration", "soon"), "expirationDateTime"),
        (("--after", "yesterday"), "--after"),
        (("--after", "2026-03-01T00:00"), "--after"),
    ],
)
def test_invalid_input_exits_1_with_one_line(
    capsys: pytest.CaptureFixture[str], change: tuple[str, str], named: str
) -> None:
    argv = list(EXAMPLE)
    if change[0] in argv:
        argv[argv.index(change[0]) + 1] = change[1]
    else:
        argv += list(change)
    code, out, err = run(capsys, [*argv, "--json"])
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1 and named in err


@pytest.mark.parametrize(
    "argv",
    [
        ["schedule"],
        ["schedule", "next", "--tz", "UTC", "--recur", "Day"],
        [*EXAMPLE, "--count", "0"],
        [*EXAMPLE, "--count", "many"],
        [*EXAMPLE, "--bogus"],
    ],
    ids=["no-subcommand", "missing-start", "count-0", "count-nan", "unknown-option"],
)
def test_wrong_usage_exits_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert capsys.readouterr().out == ""
