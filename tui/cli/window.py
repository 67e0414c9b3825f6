"""``aumwatch window``: the phase of a run's cancel window at a given moment."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta

from services.domain.clock import iso_z
from tui.cli import CliError, add_common


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "window",
        help="phase of a run's cancel window at a moment",
        description="Tell where a run starting at --start stands at --at: upcoming, "
        "cancellable, locked, running or finished. Times are ISO 8601 with Z or an offset.",
    )
    add_common(parser)
    parser.add_argument("--start", required=True, metavar="ISO", help="the run's start (T)")
    parser.add_argument(
        "--cutoff", metavar="ISO", help="the pre-event's CancellationCutOffDateTime, if known"
    )
    parser.add_argument(
        "--end", metavar="ISO", help="the run's end; without it a started run stays running"
    )
    parser.add_argument("--at", metavar="ISO", help="the moment to evaluate (default: now)")
    parser.add_argument(
        "--opens-before",
        type=float,
        metavar="MIN",
        help="minutes before the start the cancel window opens (default: [window] opens_before "
        "of the config file, else 40)",
    )
    parser.add_argument(
        "--closes-before",
        type=float,
        metavar="MIN",
        help="minutes before the start the cancel window closes (default: [window] "
        "closes_before of the config file, else 10)",
    )
    parser.set_defaults(func=run_window_command)


def parse_cli_time(text: str, option: str) -> datetime:
    """An ISO 8601 time given on the command line, as aware UTC; naive times are refused
    (local or UTC would be a guess)."""
    candidate = text.strip()
    if candidate[-1:] in ("z", "Z"):
        candidate = candidate[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        raise CliError(
            f"{option} {text!r} is not an ISO 8601 time (e.g. 2026-01-01T15:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        raise CliError(f"{option} {text!r} has no time zone: add Z (UTC) or an offset like +01:00")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise CliError(f"{option} {text!r} is out of range") from None


def _duration(seconds: int) -> str:
    """Exact to the second, in words: "20 minutes", "1 hour, 5 minutes and 3 seconds"."""
    import humanize  # lazily: light, but only the text output needs it

    return humanize.precisedelta(timedelta(seconds=abs(seconds)))


def run_window_command(args: argparse.Namespace) -> int:
    from services.domain.window import run_window

    start = parse_cli_time(args.start, "--start")
    cutoff = None if args.cutoff is None else parse_cli_time(args.cutoff, "--cutoff")
    end = None if args.end is None else parse_cli_time(args.end, "--end")
    if args.at is None:
        from services.domain.clock import SystemClock

        at = SystemClock().now()
    else:
        at = parse_cli_time(args.at, "--at")

    from services.settings import SettingsError, load_settings

    try:
        flags = {
            "opens_before": None
            if args.opens_before is None
            else timedelta(minutes=args.opens_before),
            "closes_before": None
            if args.closes_before is None
            else timedelta(minutes=args.closes_before),
        }
    except (ValueError, OverflowError) as exc:
        raise CliError(str(exc)) from None
    try:
        # The flags win over the config file's [window] (and AUMWATCH_CONFIG), which wins over
        # the defaults: the same offsets the dashboard and `tasks` use. A --config that does
        # not exist fails here, as it does for every command.
        settings = load_settings(flags, config_path=getattr(args, "config", None))
    except SettingsError as exc:
        raise CliError(str(exc)) from None
    for warning in settings.warnings:  # as every command says them (a readable secrets file)
        print(f"aumwatch: warning: {warning}", file=sys.stderr)
    try:
        window = run_window(start, cutoff=cutoff, end=end, rules=settings.window_rules)
    except (ValueError, OverflowError) as exc:
        raise CliError(str(exc)) from None

    phase = window.phase(at)
    seconds_to_start = window.seconds_to_start(at)
    if args.json:
        print(
            json.dumps(
                {
                    "phase": str(phase),
                    "cancellable": window.is_cancellable(at),
                    "opens_at": iso_z(window.opens_at),
                    "closes_at": iso_z(window.closes_at),
                    "seconds_to_start": seconds_to_start,
                }
            )
        )
        return 0

    lines = [
        f"phase        {phase}",
        f"cancellable  {'yes' if window.is_cancellable(at) else 'no'}"
        + ("" if window.ever_opens else " (the cutoff is before the window opens: never)"),
        f"opens at     {iso_z(window.opens_at)}",
        f"closes at    {iso_z(window.closes_at)}",
        f"starts at    {iso_z(window.start)} ({_relative(seconds_to_start)})",
    ]
    if window.end is not None:
        lines.append(f"ends at      {iso_z(window.end)}")
    upcoming = window.next_boundary(at)
    if upcoming is not None:
        label, when = upcoming
        lines.append(
            f"next         {label} at {iso_z(when)} "
            f"(in {_duration(int((when - at).total_seconds()))})"
        )
    print("\n".join(lines))
    return 0


def _relative(seconds_to_start: int) -> str:
    if seconds_to_start >= 0:
        return f"in {_duration(seconds_to_start)}"
    return f"{_duration(-seconds_to_start)} ago"
