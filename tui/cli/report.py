"""``aumwatch report RUN [--format md|json|html] [--out FILE]``: one run's story.

RUN is the run's correlation id (any casing) or ``CONFIGNAME/yyyyMMddHHmmss`` (the run's UTC
start) when one configuration has that name. The report comes from Resource Graph (the run,
its configuration, its machines) and the local journal (events, cancel attempts, task runs):
see :mod:`services.azure.report`. Markdown goes to stdout unless ``--out`` (the file, written
atomically) or ``--out-dir`` (a folder; the file is named after the configuration and the
run's start); either prints where. An unknown run is one line on stderr and exit 1.

Run as an aumwatch post task, RUN may be left out: it is then the run the task runs for
(``AUMWATCH_TASK_CORRELATION_ID``), so the task's command is a plain argument list
(``["aumwatch", "report", "--format", "html", "--out-dir", "/srv/reports"]``) with no shell.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tui.cli import CliError, add_common

FORMATS = ("md", "json", "html")
#: The variable aumwatch sets for its tasks (services/domain/tasks.py): RUN's default.
TASK_RUN_VARIABLE = "AUMWATCH_TASK_CORRELATION_ID"


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
    parser.add_argument("run", metavar="RUN", nargs="?",
                        help="correlation id, or CONFIGNAME/yyyyMMddHHmmss (default in an "
                        f"aumwatch task: ${TASK_RUN_VARIABLE})")
    parser.add_argument("--format", choices=FORMATS, default="md",
                        help="md (default), json or html (one self-contained file)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", metavar="FILE",
                       help="write the report to FILE (atomically) instead of stdout")
    where.add_argument("--out-dir", metavar="DIR",
                       help="write it into DIR as <configuration>-<yyyyMMddHHmmss>.<format>")
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Handler of ``aumwatch report``."""
    import os

    from services.domain.reportrender import render
    from tui.cli.data import _clock, _run, clean, settings_from_args

    run_text = args.run or os.environ.get(TASK_RUN_VARIABLE, "")
    if not run_text.strip():
        raise CliError(f"name the run: RUN (a correlation id or CONFIGNAME/yyyyMMddHHmmss), "
                       f"or run this as an aumwatch task (which sets {TASK_RUN_VARIABLE})")
    settings = settings_from_args(args)
    clock = _clock()

    async def gather_with(profile: Any) -> Any:
        import dataclasses

        from services.azure.report import gather_report
        from services.azure.resourcegraph import QueryRunner

        async with QueryRunner.from_settings(profile.settings, clock=clock) as runner:
            report = await gather_report(profile.settings, run_text, runner=runner,
                                         clock=clock)
        if profile.implicit:
            return report
        run = dataclasses.replace(report.run, tenant=profile.name,
                                  tenant_id=report.run.tenant_id or profile.tenant)
        return dataclasses.replace(report, run=run)

    async def gather() -> Any:
        # Issue 19: the run's tenant's profile (its credential), found as `cancel` finds it;
        # a CONFIGNAME/time run: the first profile that can tell of it.
        from services.domain.runid import RunIdError, parse_run_id
        from tui.cli.cancelcmd import _profile_for

        profiles = settings.tenant_profiles()
        if len(profiles) == 1:
            return await gather_with(profiles[0])
        try:
            run_id = parse_run_id(run_text.strip())
        except RunIdError:
            run_id = None
        if run_id is not None:
            profile, _owner = await _profile_for(settings, run_id)
            return await gather_with(profile)
        errors = []
        for profile in profiles:
            try:
                return await gather_with(profile)
            except Exception as exc:  # the next tenant may know it
                errors.append(f"tenant {profile.name}: {exc}")
        raise CliError("; ".join(errors))

    try:
        report = _run(gather)
    except CliError as exc:
        raise CliError(clean(str(exc))) from None
    text = render(report, args.format)
    target = args.out
    if args.out_dir:
        from pathlib import Path

        from services.domain.report import report_file_name
        from services.domain.reportrender import EXTENSIONS

        target = str(Path(args.out_dir) / report_file_name(report, EXTENSIONS[args.format]))
    if not target:
        if args.format == "md":
            # Markdown to a terminal: its escapes keep hostile strings inert, but a bare
            # control character must not reach the terminal either (the renderer already
            # shows every one as an escape; this is the last line of defence).
            text = "".join(ch if ch in "\n\t" or ch.isprintable() else clean(ch) for ch in text)
        sys.stdout.write(text)
        return 0
    from services.azure.report import write_atomically

    try:
        path = write_atomically(target, text)
    except OSError as exc:
        raise CliError(f"cannot write {clean(target)}: {exc.strerror or exc}") from None
    print(f"report written to {clean(str(path))}")
    return 0
