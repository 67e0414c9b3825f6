"""``aumwatch schedule next``: the next occurrences of a maintenance window.

The command is the scriptable face of :mod:`services.domain.schedule`: same grammar, same semantics,
same error messages (exit 1, one line on stderr). Times printed are UTC, ISO 8601 with ``Z``.
"""

from __future__ import annotations

import argparse
import json

from services.domain.clock import iso_z
from tui.cli import CliError, add_common

DEFAULT_COUNT = 5


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "schedule",
        help="maintenance-window schedules (next occurrences)",
        description="Work with maintenance-window schedules without touching Azure.",
    )
    commands = parser.add_subparsers(dest="schedule_command", metavar="SUBCOMMAND", required=True)
    nxt = commands.add_parser(
        "next",
        help="list the next occurrences of a window",
        description="List the first N occurrences whose start is at or after --after, as "
        "Azure would run them: the recurrence grammar of recurEvery, wall time in --tz "
        "(a Windows or IANA zone), DST gaps moved forward, ambiguous times taken once.",
        epilog='example: aumwatch schedule next --start "2026-03-01 22:00" '
        '--tz "W. Europe Standard Time" --recur "Month Second Tuesday Offset3" --json',
    )
    add_common(nxt)
    nxt.add_argument(
        "--start",
        required=True,
        metavar='"YYYY-MM-DD hh:mm"',
        help="startDateTime, wall time in --tz",
    )
    nxt.add_argument("--tz", required=True, metavar="NAME", help="timeZone: Windows or IANA name")
    nxt.add_argument(
        "--recur",
        required=True,
        metavar="EXPR",
        help='recurEvery, e.g. "Day", "2Weeks Monday,Thursday", "Month Last Sunday"',
    )
    nxt.add_argument(
        "--duration", default="03:55", metavar="HH:mm", help="window length (default 03:55)"
    )
    nxt.add_argument(
        "--expiration",
        metavar='"YYYY-MM-DD hh:mm"',
        help="expirationDateTime, wall time in --tz (default: never)",
    )
    nxt.add_argument(
        "--after",
        metavar="ISO8601",
        help="list occurrences starting at or after this instant, with Z or an offset "
        "(default: now)",
    )
    nxt.add_argument(
        "--count",
        type=_positive_int,
        default=DEFAULT_COUNT,
        metavar="N",
        help=f"how many occurrences (default {DEFAULT_COUNT})",
    )
    nxt.set_defaults(func=run_schedule_next)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run_schedule_next(args: argparse.Namespace) -> int:
    """Print the next occurrences as JSON (``--json``) or as a table with local times."""
    from services.domain.schedule import ScheduleError, parse_schedule
    from tui.cli.window import parse_cli_time

    try:
        schedule = parse_schedule(args.start, args.tz, args.recur, args.duration, args.expiration)
    except ScheduleError as exc:
        raise CliError(str(exc)) from None
    if args.after is None:
        from services.domain.clock import SystemClock

        after = SystemClock().now()
    else:
        after = parse_cli_time(args.after, "--after")
    occurrences = schedule.next(after, args.count)

    if args.json:
        print(json.dumps([{"start": iso_z(o.start), "end": iso_z(o.end)} for o in occurrences]))
        return 0

    zone_label = args.tz if args.tz == schedule.zone.key else f"{args.tz}, {schedule.zone.key}"
    lines = [f"{schedule.describe()} ({zone_label})"]
    if schedule.expiration is not None:
        lines.append(f"expires {iso_z(schedule.expiration)}")
    if occurrences:
        header = ("#", "start (UTC)", "end (UTC)", "start (local)", "end (local)")
        rows = [
            (
                str(number),
                iso_z(o.start),
                iso_z(o.end),
                f"{o.start.astimezone(schedule.zone):%Y-%m-%d %H:%M %Z}",
                f"{o.end.astimezone(schedule.zone):%Y-%m-%d %H:%M %Z}",
            )
            for number, o in enumerate(occurrences, start=1)
        ]
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
        for row in (header, *rows):
            lines.append(
                "  ".join(
                    cell.ljust(width) for cell, width in zip(row, widths, strict=True)
                ).rstrip()
            )
    else:
        lines.append(f"no occurrence starts at or after {iso_z(after)}")
    lines.extend(f"warning: {warning}" for warning in schedule.warnings())
    print("\n".join(lines))
    return 0
