"""The default command: the full-screen dashboard."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import concurrent.futures
    import threading

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


def sdk_modules(settings: Any) -> tuple[str, ...]:
    """The Azure SDK modules the dashboard's first query needs: the credential (unless a
    static token) and Resource Graph. The others (maintenance, queue) are the monitor's to
    import when it first needs them: imported here they would compete with the first
    query's answer and its frame for the interpreter."""
    from services.azure.monitor import GRAPH_SDK_MODULES

    identity = () if settings.token else ("azure.identity.aio",)
    return (*identity, *GRAPH_SDK_MODULES)


class Prefetch:
    """The dashboard's first configurations query, sent from a thread as the process starts:
    the Azure SDK imports and the answer's wait overlap Textual's start and first frame
    instead of following them. The app applies the answer if its own first poll has not
    come yet (:meth:`tui.app.AumwatchApp.take_prefetched`); any failure is left to that poll
    to report. Costs one extra Resource Graph query per start."""

    def __init__(self, settings: Any) -> None:
        # Imported here, not at the top: `aumwatch --help` loads this module too.
        import concurrent.futures
        import threading

        self.settings = settings
        self.result: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.thread: threading.Thread = threading.Thread(
            target=self._run, name="aumwatch-prefetch", daemon=True)

    def start(self) -> Prefetch:
        """Start the thread; returns self.

        aumwatch's own modules the thread uses are imported here first, on the main thread
        (which imports most of them again for the app): the thread then imports only the
        Azure SDKs, which the main thread does not touch while Textual starts, so the two
        never import the same module at the same time."""
        import asyncio  # noqa: F401
        import importlib

        for name in ("services.azure.clients", "services.azure.resourcegraph",
                     "services.azure.sources", "services.azure.monitor"):
            importlib.import_module(name)
        self.thread.start()
        return self

    def _run(self) -> None:
        import asyncio
        import importlib

        try:
            for name in sdk_modules(self.settings):
                importlib.import_module(name)
            fetched = asyncio.run(self._fetch())
        except BaseException as exc:  # the monitor's own first poll says what is wrong
            self.result.set_exception(exc)
        else:
            self.result.set_result(fetched)

    async def _fetch(self) -> Any:
        from services.azure.clients import make_async_credential
        from services.azure.resourcegraph import QueryRunner
        from services.azure.sources import ConfigSource

        credential = make_async_credential(self.settings)
        try:
            async with QueryRunner.from_settings(self.settings, credential=credential,
                                                 correct_clock=False) as runner:
                return await ConfigSource(runner).fetch()
        finally:
            await credential.close()


def run_dashboard(args: argparse.Namespace) -> int:
    from services.settings import SettingsError, load_settings

    flags = {"read_only": True if getattr(args, "read_only", None) else None,
             "poll_interval": getattr(args, "refresh", None),
             "tenant": getattr(args, "tenant", None)}
    try:
        settings = load_settings(flags, config_path=getattr(args, "config", None))
    except SettingsError as exc:
        raise CliError(str(exc)) from None
    prefetch = Prefetch(settings).start()  # before Textual is even imported
    from tui.app import AumwatchApp
    from tui.cli import debug_log_to_file

    log = debug_log_to_file(settings.data_dir / "debug.log")
    app = AumwatchApp(settings, theme=getattr(args, "theme", None),
                      prefetched=prefetch.result)
    app.run()
    if log is not None:
        print(f"aumwatch: --debug records were written to {log}", file=sys.stderr)
    return app.return_code or 0
