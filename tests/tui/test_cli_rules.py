"""The scriptable rule commands: ``aumwatch window`` and ``aumwatch events decode``."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tui.cli import main

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "events"
T = "2026-01-01T15:00:00Z"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def window_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = run(capsys, "window", "--start", T, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


# --- window -----------------------------------------------------------------------------------


def test_window_json_inside_the_cancel_window(capsys: pytest.CaptureFixture[str]) -> None:
    assert window_json(capsys, "--at", "2026-01-01T14:30:00Z") == {
        "phase": "cancellable",
        "cancellable": True,
        "opens_at": "2026-01-01T14:20:00Z",
        "closes_at": "2026-01-01T14:50:00Z",
        "seconds_to_start": 1800,
    }


@pytest.mark.parametrize(
    ("at", "phase", "cancellable"),
    [
        ("2026-01-01T14:19:59Z", "upcoming", False),
        ("2026-01-01T14:20:00Z", "cancellable", True),
        ("2026-01-01T14:49:59Z", "cancellable", True),
        ("2026-01-01T14:50:00Z", "locked", False),
        ("2026-01-01T15:00:00Z", "running", False),
        ("2026-01-02T15:00:00Z", "running", False),  # no --end: stays running
    ],
)
def test_window_phase_at_boundaries(
    capsys: pytest.CaptureFixture[str], at: str, phase: str, cancellable: bool
) -> None:
    out = window_json(capsys, "--at", at)
    assert (out["phase"], out["cancellable"]) == (phase, cancellable)


def test_window_with_end_finishes(capsys: pytest.CaptureFixture[str]) -> None:
    out = window_json(capsys, "--end", "2026-01-01T18:55:00Z", "--at", "2026-01-01T18:55:00Z")
    assert out["phase"] == "finished"
    assert out["seconds_to_start"] == -(3 * 3600 + 55 * 60)


def test_window_cutoff_before_t_minus_10_moves_the_close(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = window_json(capsys, "--cutoff", "2026-01-01T14:35:00Z", "--at", "2026-01-01T14:40:00Z")
    assert out["closes_at"] == "2026-01-01T14:35:00Z"
    assert out["phase"] == "locked"


def test_window_cutoff_at_t_minus_1_keeps_t_minus_10(capsys: pytest.CaptureFixture[str]) -> None:
    out = window_json(capsys, "--cutoff", "2026-01-01T14:59:00Z", "--at", "2026-01-01T14:55:00Z")
    assert out["closes_at"] == "2026-01-01T14:50:00Z"
    assert out["phase"] == "locked"


def test_window_offsets_given_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    out = window_json(
        capsys, "--opens-before", "60", "--closes-before", "5", "--at", "2026-01-01T14:54:00Z"
    )
    assert out["opens_at"] == "2026-01-01T14:00:00Z"
    assert out["closes_at"] == "2026-01-01T14:55:00Z"
    assert out["cancellable"] is True


def test_window_reads_the_config_files_window_section(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUMWATCH_CONFIG", raising=False)
    config = tmp_path / "config.toml"
    config.write_text('[window]\nopens_before = "60m"\ncloses_before = "5m"\n', encoding="utf-8")
    out = window_json(capsys, "--config", str(config), "--at", "2026-01-01T14:54:00Z")
    assert out["opens_at"] == "2026-01-01T14:00:00Z"
    assert out["closes_at"] == "2026-01-01T14:55:00Z"
    assert out["cancellable"] is True
    # A flag still wins over the file, one offset at a time.
    out = window_json(
        capsys, "--config", str(config), "--closes-before", "10", "--at", "2026-01-01T14:54:00Z"
    )
    assert out["opens_at"] == "2026-01-01T14:00:00Z"
    assert out["closes_at"] == "2026-01-01T14:50:00Z"
    assert out["cancellable"] is False


def test_window_reads_the_config_named_by_the_environment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[window]\nopens_before = 60\n", encoding="utf-8")
    monkeypatch.setenv("AUMWATCH_CONFIG", str(config))
    assert window_json(capsys, "--at", "2026-01-01T14:54:00Z")["opens_at"] == (
        "2026-01-01T14:00:00Z"
    )


def test_window_with_a_missing_config_file_exits_1_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.toml"
    code, out, err = run(
        capsys, "window", "--config", str(missing), "--start", T, "--at", T, "--json"
    )
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1 and "does not exist" in err and str(missing) in err


def test_window_with_an_invalid_window_section_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[window]\nopens_before = "5m"\n', encoding="utf-8")
    code, out, err = run(capsys, "window", "--config", str(config), "--start", T, "--at", T)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "at least closes_before" in err


def test_window_times_with_offsets_are_printed_in_utc(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "window", "--start", "2026-01-01T16:00:00+01:00", "--at", "2026-01-01T14:30:00Z",
        "--json",
    )
    assert code == 0
    assert json.loads(out)["opens_at"] == "2026-01-01T14:20:00Z"


def test_window_at_defaults_to_now_from_the_system_clock(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from services.domain import clock

    monkeypatch.setattr(
        clock.SystemClock, "now", lambda self: datetime(2026, 1, 1, 14, 45, tzinfo=UTC)
    )
    out = window_json(capsys)
    assert out["seconds_to_start"] == 900 and out["phase"] == "cancellable"


def test_window_human_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "window", "--start", T, "--at", "2026-01-01T14:30:00Z")
    assert code == 0 and err == ""
    assert "phase        cancellable" in out
    # Durations in words, still exact to the second (humanize).
    assert "next         cancel closes at 2026-01-01T14:50:00Z (in 20 minutes)" in out
    assert "starts at    2026-01-01T15:00:00Z (in 30 minutes)" in out


def test_window_human_text_says_when_the_window_never_opens(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        capsys, "window", "--start", T, "--cutoff", "2026-01-01T14:00:00Z",
        "--at", "2026-01-01T14:30:00Z",
    )
    assert code == 0
    assert "never" in out and "phase        locked" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--start", "tomorrow", "--at", T], "--start 'tomorrow' is not an ISO 8601 time"),
        (["--start", "2026-01-01T15:00:00", "--at", T], "has no time zone"),
        (["--start", T, "--at", "2026-01-01 14:00"], "--at '2026-01-01 14:00' has no time zone"),
        (["--start", T, "--end", "2026-01-01T14:00:00Z", "--at", T], "before start"),
        (["--start", T, "--closes-before", "-5", "--at", T], "must not be negative"),
        (["--start", T, "--opens-before", "5", "--at", T], "at least closes_before"),
        (["--start", T, "--opens-before", "nan", "--at", T], "NaN"),
    ],
)
def test_window_invalid_input_exits_1_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "window", *argv, "--json")
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize(
    "argv",
    [["window", "--at", T], ["window", "--start"], ["window", "--start", T, "--bogus"],
     ["window", "--start", T, "--opens-before", "forty"]],
)
def test_window_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, _ = run(capsys, *argv)
    assert code == 2 and out == ""


# --- events decode ----------------------------------------------------------------------------


def decode(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stdin: bytes | None,
    *argv: str,
) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    return run(capsys, "events", "decode", *argv)


@pytest.mark.parametrize(
    "name",
    sorted(p.name for p in SAMPLES.glob("*") if p.name != "README.md") if SAMPLES.is_dir() else [],
)
def test_decode_each_sample_file(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, err = run(capsys, "events", "decode", str(SAMPLES / name), "--json")
    assert code == 0, err
    events = json.loads(out)
    assert len(events) == 1
    assert events[0]["run_name"] == "20230509150000"
    assert events[0]["kind"] == ("pre" if name.startswith("pre") else "post")
    assert events[0]["start"] == "2023-05-09T15:00:00Z"


def test_decode_reads_stdin_when_no_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    message = (SAMPLES / "pre-eventgrid.queue-base64.txt").read_bytes()
    code, out, _ = decode(capsys, monkeypatch, message, "--json")
    assert code == 0
    assert json.loads(out)[0]["cancellation_cutoff"] == "2023-05-09T14:59:00Z"


def test_decode_reads_stdin_for_dash(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = decode(capsys, monkeypatch, (SAMPLES / "pre-cloudevents.json").read_bytes(),
                          "-", "--json")
    assert code == 0 and json.loads(out)[0]["schema"] == "cloudevents"


def test_decode_reads_a_text_only_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO((SAMPLES / "post-eventgrid.json").read_text()))
    code, out, _ = run(capsys, "events", "decode", "--json")
    assert code == 0 and json.loads(out)[0]["status"] == "Succeeded"


def test_decode_text_only_stdin_with_bad_utf8_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.TextIOWrapper(io.BytesIO(b"\xff\xfe{}"), encoding="utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO())
    monkeypatch.setattr("sys.stdin.read", stream.read)
    code, out, err = run(capsys, "events", "decode")
    assert code == 1 and out == "" and "not UTF-8" in err


def test_decode_json_has_exactly_the_contract_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "events", "decode", str(SAMPLES / "pre-eventgrid.json"), "--json")
    assert code == 0
    assert set(json.loads(out)[0]) == {
        "id", "type", "kind", "schema", "correlation_id", "configuration_id",
        "configuration_name", "run_name", "start", "end", "cancellation_cutoff", "status",
        "subscription_ids", "event_time",
    }


def test_decode_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "events", "decode", str(SAMPLES / "pre-eventgrid.json"))
    assert code == 0
    header, row = out.splitlines()
    assert header.split()[:3] == ["KIND", "RUN", "CONFIGURATION"]
    assert row.split()[:3] == ["pre", "20230509150000", "contosomaintenanceconfiguration"]


def test_decode_table_escapes_terminal_control_sequences(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    event = json.loads((SAMPLES / "post-eventgrid.json").read_text())
    event["data"]["Status"] = "\x1b[2J\x1b]0;pwned\x07Succeeded"
    code, out, _ = decode(capsys, monkeypatch, json.dumps(event).encode())
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[2J" in out


def test_decode_list_with_a_bad_item_prints_the_good_ones_and_warns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = json.loads((SAMPLES / "pre-eventgrid.json").read_text())
    message = json.dumps([{"nope": 1}, good]).encode()
    code, out, err = decode(capsys, monkeypatch, message, "--json")
    assert code == 0
    assert [e["kind"] for e in json.loads(out)] == ["pre"]
    assert "skipped item 1: not an event" in err


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (b"", "stdin: empty message"),
        (b"not an event at all", "stdin: neither JSON nor base64"),
        (b"{\"id\": ", "stdin: message is not valid JSON"),
        (base64.b64encode(b"[1, 2]"), "no valid event among 2 items"),
        (b"\xff\xfe", "not UTF-8"),
        (b"x" * (64 * 1024 * 4 + 10), "too large"),
    ],
)
def test_decode_undecodable_input_exits_1_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stdin: bytes,
    message: str,
) -> None:
    code, out, err = decode(capsys, monkeypatch, stdin, "--json")
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1 and message in err


def test_decode_missing_file_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "events", "decode", str(tmp_path / "absent.json"))
    assert code == 1 and out == ""
    assert "cannot read" in err and "No such file" in err


def test_decode_directory_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "events", "decode", str(tmp_path))
    assert code == 1 and out == "" and "cannot read" in err


@pytest.mark.parametrize(
    "argv", [["events"], ["events", "bogus"], ["events", "decode", "a", "b"]]
)
def test_events_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, _ = run(capsys, *argv)
    assert code == 2 and out == ""


def test_an_error_carrying_outside_text_is_printed_escaped(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # A command's one-line error may quote Azure's or a queue's text (a queue's error, a
    # configuration's name): a control sequence in it is shown escaped, never interpreted.
    from tui.cli import CliError, data

    def failing(*_: Any, **__: Any) -> Any:
        raise CliError("queue said \x1b]0;owned\x07\x1b[2J\x9b31m no")

    monkeypatch.setattr(data, "settings_from_args", failing)
    code = main(["configs"])
    err = capsys.readouterr().err
    assert code == 1 and "queue said" in err
    assert "\x1b" not in err and "\x9b" not in err and "\x07" not in err
