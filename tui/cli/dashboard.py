"""The default command: the full-screen dashboard."""

from __future__ import annotations

import argparse
import sys

from tui.cli import CliError, add_common


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("dashboard", help="open the dashboard (the default)")
    add_common(parser, json_flag=False)
    add_dashboard_options(parser)
    parser.add_argument("--tenant", metavar="NAME",
                        help="with [[tenants]] profiles: only this profile (its name or "
                        "tenant id); without: the Entra ID tenant to sign in to")
    parser.set_defaults(func=run_dashboard)


def add_dashboard_options(parser: argparse.ArgumentParser) -> None:
    """--read-only, --refresh and --theme (shared with `aumwatch demo`)."""
    parser.add_argument("--read-only", action="store_true", default=None,
                        help="never offer Cancel (the key and button are absent)")
    parser.add_argument("--refresh", metavar="INTERVAL",
                        help="poll interval, e.g. 30s or 1m (at least 10s)")
    parser.add_argument("--theme", metavar="NAME",
                        help="Textual theme, e.g. aumwatch-high-contrast, textual-light")


def run_dashboard(args: argparse.Namespace) -> int:
    from services.settings import SettingsError, load_settings

    flags = {"read_only": True if getattr(args, "read_only", None) else None,
             "poll_interval": getattr(args, "refresh", None),
             "tenant": getattr(args, "tenant", None)}
    try:
        settings = load_settings(flags, config_path=getattr(args, "config", None))
    except SettingsError as exc:
        raise CliError(str(exc)) from None
    from tui.app import AumwatchApp
    from tui.cli import debug_log_to_file

    log = debug_log_to_file(settings.data_dir / "debug.log")
    app = AumwatchApp(settings, theme=getattr(args, "theme", None))
    app.run()
    if log is not None:
        print(f"aumwatch: --debug records were written to {log}", file=sys.stderr)
    return app.return_code or 0
