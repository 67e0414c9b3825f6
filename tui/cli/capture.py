"""``aumwatch capture --out DIR``: record what aumwatch reads from a tenant, scrubbed.

The files (Resource Graph rows of configurations, runs and machines; the configurations' ARM
objects; a peek of the events queue; a manifest) are described in services/azure/capture.py.
Identifiers are replaced by consistent pseudonyms and secrets are removed before anything is
written; the command prints what it scrubbed (counts per kind, never the originals).
``aumwatch sim --replay DIR`` serves the capture as the stand-in's world.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tui.cli import CliError, add_common
from tui.cli.data import _run, add_settings_flags, one_profile, safe_json, settings_from_args


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "capture", help="record what aumwatch reads from a tenant, scrubbed, for a replay",
        description="Record the Resource Graph rows of configurations, runs and machines, the "
        "configurations' ARM objects and a peek of the events queue into DIR as JSON files. "
        "Subscription and tenant ids, resource groups, names, IP and e-mail addresses become "
        "consistent pseudonyms; secrets and tokens are never written. Replay with "
        "`aumwatch sim --replay DIR`.")
    add_common(parser)
    add_settings_flags(parser)
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="new or empty directory to write the capture into")
    parser.add_argument("--since", default="7d", metavar="AGE",
                        help="runs that started within AGE (e.g. 12h, 7d; at most 30d)")
    parser.add_argument("--max-runs", type=_positive, default=200, metavar="N",
                        help="capture the machines of the N newest runs (one query each; "
                        "default 200)")
    parser.add_argument("--no-queue", action="store_true",
                        help="do not peek at the events queue")
    parser.set_defaults(func=run_capture)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def run_capture(args: argparse.Namespace) -> int:
    from services.azure.capture import CaptureError, capture, check_out_dir
    from services.settings import SettingsError, parse_duration

    try:
        since = parse_duration(args.since, default_unit="d", what="--since")
    except SettingsError as exc:
        raise CliError(str(exc)) from exc
    out = Path(args.out)
    try:
        check_out_dir(out)
    except CaptureError as exc:
        raise CliError(str(exc)) from exc
    settings = one_profile(settings_from_args(args), "capture")

    async def go() -> Any:
        return await capture(settings, out, since=since, max_runs=args.max_runs,
                             queue=not args.no_queue)

    try:
        result = _run(go)
    except CaptureError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"cannot write the capture into {out}: {exc.strerror or exc}") from exc
    manifest = result.manifest
    if args.json:
        sys.stdout.write(safe_json(manifest, indent=2) + "\n")  # the manifest, one object
        return 0
    counts = manifest["counts"]
    print(f"captured into {out}: {counts['configs']} configuration(s), {counts['runs']} run(s), "
          f"machines of {counts['machine_runs']} run(s) ({counts['machine_rows']} row(s)), "
          f"{counts['arm_objects']} ARM object(s), {counts['queue_messages']} queue message(s), "
          f"{counts['system_topics']} Event Grid system topic(s) with "
          f"{counts['event_subscriptions']} event subscription(s)")
    scrubbed = manifest["scrubbed"]
    print("scrubbed: " + ", ".join(f"{kind.replace('_', ' ')} {n}"
                                   for kind, n in scrubbed.items()))
    for problem in manifest["problems"]:
        print(f"aumwatch: note: {problem}", file=sys.stderr)
    return 0
