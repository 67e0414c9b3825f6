"""The default command: the full-screen dashboard."""

from __future__ import annotations

import argparse

from tui.cli import add_common


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("dashboard", help="open the dashboard (the default)")
    add_common(parser, json_flag=False)
    parser.add_argument("--read-only", action="store_true", help="never offer Cancel")
    parser.set_defaults(func=run_dashboard)


def run_dashboard(args: argparse.Namespace) -> int:
    from tui.app import AumwatchApp

    app = AumwatchApp(read_only=getattr(args, "read_only", False))
    app.run()
    return app.return_code or 0
