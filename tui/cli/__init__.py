"""``aumwatch`` command line.

Every subcommand lives in a module of this package that exposes ``register(subparsers)``.
Registration only builds argparse parsers; a command imports what it needs (Textual, the
Azure SDKs, the stand-in) inside its handler, so ``aumwatch --help`` and the rule commands
start fast.

Exit codes: 0 success, 1 the command failed (one line on stderr says why), 2 wrong usage,
130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Order is the order shown in --help.
COMMAND_MODULES = (
    "tui.cli.dashboard",  # dashboard (default)
    "tui.cli.data",  # configs, runs, machines, cancel, doctor, config show
    "tui.cli.cancelcmd",  # cancel
    "tui.cli.events",  # events tail | decode
    "tui.cli.schedule",  # schedule next
    "tui.cli.window",  # window
    "tui.cli.standin",  # sim, demo
    "tui.cli.capture",  # capture
    "tui.cli.serve",  # serve
    "tui.cli.tasks",  # tasks (issue 12)
    "tui.cli.subscriptions",  # subscriptions (Event Grid wiring)
    "tui.cli.setup",  # setup events
    "tui.cli.report",  # report (issue 12)
    "tui.cli.preflight",  # preflight (issue 18)
    "tui.cli.watch",  # watch, alerts test (issue 21)
    "tui.cli.completion",  # completion bash|zsh|fish
)

Handler = Callable[[argparse.Namespace], int]

#: The loggers of the Azure SDKs (azure-core, azure-identity, the management clients...).
SDK_LOGGER = "azure"


class _QuietHandler(logging.NullHandler):
    """Marks the handler aumwatch put on the SDK logger (so a second call replaces it)."""


class _DebugHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stderr handler aumwatch puts on the SDK logger under ``--debug``."""


def quiet_sdk_logs(debug: bool = False) -> None:
    """Keep the Azure SDKs' log records off the terminal unless ``debug``.

    Without a handler anywhere, Python prints WARNING records to stderr by itself: without
    ``az login``, azure-identity's warning is a 15-line list of every credential it tried,
    printed before aumwatch's own one-line error that already says what to do. So the SDK
    logger gets a handler that drops everything and does not pass records up. With ``debug``
    the records (from DEBUG up) go to stderr instead.
    """
    logger = logging.getLogger(SDK_LOGGER)
    for handler in list(logger.handlers):
        if isinstance(handler, _QuietHandler | _DebugHandler):
            logger.removeHandler(handler)
    if debug:
        handler = _DebugHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    else:
        logger.addHandler(_QuietHandler())
        logger.setLevel(logging.WARNING)
    logger.propagate = False


def debug_log_to_file(path: Path) -> Path | None:
    """Under ``--debug``, send the SDK's records to ``path`` instead of stderr, and return it.

    The dashboard owns the terminal: records written to stderr would draw over its screen.
    Returns None (and changes nothing) when ``--debug`` is off, or when the file cannot be
    opened (the records then stay on stderr, which is still better than losing them).
    """
    logger = logging.getLogger(SDK_LOGGER)
    debug = [h for h in logger.handlers if isinstance(h, _DebugHandler)]
    if not debug:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        stream = os.fdopen(fd, "a", encoding="utf-8")
    except OSError:
        return None
    for handler in debug:
        logger.removeHandler(handler)
    handler = _DebugHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    return path


class CliError(Exception):
    """A failure to report as one line on stderr with exit status 1."""


def add_common(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    """Options every command takes.

    Their default is SUPPRESS so that a subcommand's parser does not overwrite a value given
    before the subcommand (``aumwatch --config X configs``); the top-level parser sets the
    real defaults (None / False) in :func:`build_parser`.
    """
    parser.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="TOML config file (default: user config dir)")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks on errors")
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def package_version() -> str:
    """aumwatch's version as installed (the package metadata), or "unknown" when the code
    runs from a tree that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aumwatch")
    except PackageNotFoundError:
        return "unknown"


class _VersionAction(argparse.Action):
    """``--version``: reads the package metadata only when asked (not on every start)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(f"aumwatch {package_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The ``aumwatch`` argument parser, every command registered."""
    parser = argparse.ArgumentParser(
        prog="aumwatch",
        description="Live dashboard and scriptable commands for Azure Update Manager "
        "maintenance windows. Without a command, opens the dashboard.",
    )
    parser.add_argument("--version", action=_VersionAction,
                        help="print aumwatch's version and exit")
    add_common(parser, json_flag=False)
    parser.set_defaults(config=None, debug=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a command module not written yet
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aumwatch`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_sdk_logs(bool(getattr(args, "debug", False)))
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        # No subcommand: the dashboard.
        from tui.cli.dashboard import run_dashboard

        func = run_dashboard
    try:
        return func(args)
    except CliError as exc:
        if getattr(args, "debug", False):
            raise
        from tui.cli.output import clean

        # An error may carry Azure's or a queue's text: escaped, never interpreted.
        print(f"aumwatch: {clean(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
