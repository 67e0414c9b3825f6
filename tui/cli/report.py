"""``aumwatch report RUN [--format md|json|html] [--out FILE]``: one run's story.

RUN is the run's correlation id (any casing) or ``CONFIGNAME/yyyyMMddHHmmss`` (the run's UTC
start) when one configuration has that name. The report comes from Resource Graph (the run,
its configuration, its machines) and the local journal (events, cancel attempts, task runs):
see :mod:`services.azure.report`. Markdown goes to stdout unless ``--out``; ``--out`` writes
the file atomically and prints where. An unknown run is one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tui.cli import CliError, add_common

FORMATS = ("md", "json", "html")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from tui.cli.data import add_settings_flags

    parser = subparsers.add_parser(
        "report", help="one run's report (Markdown, JSON or HTML)",
        description="One run's story: its configuration and schedule, the timeline (expected "
        "start, pre-event, cancel window, cancel attempts, task runs, start and end, "
        "post-event), machines, totals and portal links, in UTC and in the configuration's "
        "zone. RUN is the run's correlation id or CONFIGNAME/yyyyMMddHHmmss (UTC start).")
    add_common(parser, json_flag=False)
    add_settings_flags(parser)
    parser.add_argument("run", metavar="RUN",
                        help="correlation id, or CONFIGNAME/yyyyMMddHHmmss")
    parser.add_argument("--format", choices=FORMATS, default="md",
                        help="md (default), json or html (one self-contained file)")
    parser.add_argument("--out", metavar="FILE",
                        help="write the report to FILE (atomically) instead of stdout")
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Handler of ``aumwatch report``."""
    from services.domain.reportrender import render
    from tui.cli.data import _clock, _run, clean, settings_from_args

    settings = settings_from_args(args)
    clock = _clock()

    async def gather() -> Any:
        from services.azure.report import gather_report
        from services.azure.resourcegraph import QueryRunner

        async with QueryRunner.from_settings(settings, clock=clock) as runner:
            return await gather_report(settings, args.run, runner=runner, clock=clock)

    try:
        report = _run(gather)
    except CliError as exc:
        raise CliError(clean(str(exc))) from None
    text = render(report, args.format)
    if not args.out:
        if args.format == "md":
            # Markdown to a terminal: its escapes keep hostile strings inert, but a bare
            # control character must not reach the terminal either (the renderer already
            # shows every one as an escape; this is the last line of defence).
            text = "".join(ch if ch in "\n\t" or ch.isprintable() else clean(ch) for ch in text)
        sys.stdout.write(text)
        return 0
    from services.azure.report import write_atomically

    try:
        path = write_atomically(args.out, text)
    except OSError as exc:
        raise CliError(f"cannot write {clean(args.out)}: {exc.strerror or exc}") from None
    print(f"report written to {clean(str(path))}")
    return 0
