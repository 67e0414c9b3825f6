"""``aumwatch events``: the maintenance-event commands (``decode`` here, ``tail`` apart).

``events decode [FILE]`` decodes one raw queue message (a file, or stdin when FILE is absent
or ``-``) and prints its events. ``events tail`` lives in ``tui.cli.events_tail`` (written
separately); it is registered here when that module exists. That module must keep its heavy
imports (Azure SDK...) inside its handler, like every command module.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from datetime import UTC, datetime
from typing import BinaryIO

from tui.cli import CliError, add_common

TAIL_MODULE = "tui.cli.events_tail"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "events",
        help="decode or follow pre/post maintenance events",
        description="Pre/post maintenance events: decode a raw queue message, or tail a queue.",
    )
    add_common(parser, json_flag=False)
    events_subparsers = parser.add_subparsers(dest="events_command", metavar="SUBCOMMAND")
    events_subparsers.required = True  # `aumwatch events` alone is a usage error (exit 2)

    decode = events_subparsers.add_parser(
        "decode",
        help="decode one raw queue message into events",
        description="Decode one raw queue message (JSON object or list, or base64 of either; "
        "Event Grid or CloudEvents schema) and print its events.",
    )
    add_common(decode)
    decode.add_argument(
        "file", nargs="?", metavar="FILE", help="file holding the message (default: stdin; - too)"
    )
    decode.set_defaults(func=run_decode)

    _register_tail(events_subparsers)


# --- the place for `events tail` ---------------------------------------------------------------


def _register_tail(events_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``events tail`` when ``tui.cli.events_tail`` exists.

    Contract for that module: ``register_tail(events_subparsers)`` adds the ``tail`` parser
    (with ``add_common`` and ``set_defaults(func=...)``) and imports nothing heavy at module
    level.
    """
    try:
        module = importlib.import_module(TAIL_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != TAIL_MODULE:  # the module exists but something it imports is missing
            raise
        return
    module.register_tail(events_subparsers)


# --- `events decode` ---------------------------------------------------------------------------


def _read_message(stream: BinaryIO | None, text_stream: object, name: str) -> bytes | str:
    from services.domain.events import MAX_MESSAGE_CHARS

    # Read one byte/character past the limit so the decoder can say "too large" without this
    # command reading an unbounded file into memory.
    limit = MAX_MESSAGE_CHARS * 4 + 1
    try:
        if stream is not None:
            return stream.read(limit)
        return text_stream.read(limit)  # type: ignore[attr-defined, no-any-return]
    except OSError as exc:
        raise CliError(f"cannot read {name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:  # a text-only stdin (no .buffer) fed bytes that are not UTF-8
        raise CliError(f"{name}: not UTF-8 text") from None


def _read_input(file: str | None) -> tuple[bytes | str, str]:
    if file is None or file == "-":
        buffer = getattr(sys.stdin, "buffer", None)
        return _read_message(buffer, sys.stdin, "stdin"), "stdin"
    try:
        with open(file, "rb") as handle:
            return _read_message(handle, None, file), file
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror or exc}") from None


def _printable(value: object) -> str:
    """An untrusted string made safe for a terminal: control characters (escape sequences
    included) and unpaired surrogates are shown as escapes, never sent raw."""
    if value is None:
        return "-"
    text = str(value)
    out = []
    for char in text:
        if char.isprintable() and not 0xD800 <= ord(char) <= 0xDFFF:
            out.append(char)
        else:
            out.append(char.encode("unicode_escape", "backslashreplace").decode("ascii"))
    return "".join(out)


def _short_time(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def run_decode(args: argparse.Namespace) -> int:
    from services.domain.events import EventDecodeError, decode_items, valid_events

    raw, source = _read_input(args.file)
    try:
        results = decode_items(raw)
        events = valid_events(results)
    except EventDecodeError as exc:
        raise CliError(f"{source}: {exc}") from None
    errors = [item for item in results if isinstance(item, EventDecodeError)]
    for error in errors:  # a list with some bad items: say so, print the good ones
        print(f"aumwatch: {source}: skipped {_printable(error)}", file=sys.stderr)

    if args.json:
        print(json.dumps([event.to_json() for event in events], indent=2))
        return 0

    header = ("KIND", "RUN", "CONFIGURATION", "START", "CUTOFF", "STATUS", "EVENT TIME", "SCHEMA")
    rows = [header]
    for event in events:
        rows.append(
            (
                str(event.kind),
                _printable(event.run_name),
                _printable(event.configuration_name),
                _short_time(event.start),
                _short_time(event.cancellation_cutoff),
                _printable(event.status),
                _short_time(event.event_time),
                event.schema,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    others = [event for event in events if event.kind == "other"]
    for event in others:
        print(f"other event type: {_printable(event.type)}")
    return 0
