"""``aumwatch sim`` and ``aumwatch demo``: the local Azure stand-in, alone or with the dashboard.

``sim`` starts the stand-in (HTTPS Resource Manager + Resource Graph), Azurite and the scenario,
writes an aumwatch config file pointing at them, prints exactly one JSON line on stdout when
everything is ready, and runs until SIGINT or SIGTERM (exit 0), stopping Azurite with it.
``--arg-lag SECONDS`` sets Resource Graph's lag (default: 5-90 s a change, as Azure's index lags;
what the scenario holds at start is visible at once).

``demo`` does the same and opens the dashboard on it; quitting the dashboard stops everything.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from typing import TYPE_CHECKING

from tui.cli import CliError, add_common

if TYPE_CHECKING:
    from services.standin.runner import SimEnvironment


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sim = subparsers.add_parser(
        "sim",
        help="run the local Azure stand-in and Azurite (prints one JSON line when ready)",
        description="Start the local Azure stand-in (Resource Manager, Resource Graph) and "
        "Azurite, play a scenario, write an aumwatch config file and print one JSON line "
        "describing them; run until SIGINT/SIGTERM.",
    )
    add_common(sim, json_flag=False)
    _scenario_options(sim)
    sim.add_argument("--write-config", metavar="PATH",
                     help="write the aumwatch config file here (default: a temporary file)")
    sim.add_argument("--replay", metavar="DIR",
                     help="serve a capture (`aumwatch capture --out DIR`) as the world instead "
                     "of a scenario; time moves forward from the capture's moment")
    sim.add_argument("--tenants", type=_tenant_count, default=1, metavar="N",
                     help="play N tenants, each with its own subscriptions, token and queue "
                     "(the config file gets one [[tenants]] profile each; default 1)")
    sim.add_argument("--delegated", action="store_true",
                     help="with --tenants 2 or more: the first tenant's first subscription is "
                     "also delegated to the second (Azure Lighthouse)")
    sim.set_defaults(func=run_sim)

    demo = subparsers.add_parser(
        "demo",
        help="open the dashboard on the local Azure stand-in (no Azure account needed)",
        description="Start the local Azure stand-in and Azurite with a scenario in which every "
        "phase of a maintenance run is visible, and open the dashboard on it.",
    )
    add_common(demo, json_flag=False)
    _scenario_options(demo)
    demo.add_argument("--read-only", action="store_true", help="never offer Cancel")
    demo.add_argument("--tenants", type=_tenant_count, default=2, metavar="N",
                      help="play N tenants (default 2: the dashboard shows a Tenant column)")
    demo.set_defaults(func=run_demo)


def _tenant_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 50:
        raise argparse.ArgumentTypeError(f"must be 1 to 50, not {text}")
    return value


def _scenario_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", metavar="FILE",
                        help="scenario TOML file (default: the built-in demo scenario)")
    parser.add_argument("--speed", type=_speed, default=1.0, metavar="X",
                        help="run the scenario clock X times faster than real time (default 1)")
    parser.add_argument("--arg-lag", type=_arg_lag, default=None, metavar="SECONDS",
                        help="a change shows in Resource Graph SECONDS later (scenario clock; "
                        "0 for none); default: 5-90 s a change, as Azure's index lags")


def _arg_lag(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 86_400:
        raise argparse.ArgumentTypeError(f"must be between 0 and 86400 seconds, not {text}")
    return value


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 10_000:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 10000, not {text}")
    return value


def _environment(args: argparse.Namespace, config_path: str | None) -> SimEnvironment:
    from services.standin.azurite import AzuriteError
    from services.standin.runner import SimEnvironment
    from services.standin.scenario_file import ScenarioError

    try:
        if getattr(args, "replay", None):  # a capture is the world (services/standin/replay.py)
            from services.standin.replay import ReplayEnvironment

            env: SimEnvironment = ReplayEnvironment(args.replay, speed=args.speed,
                                                    config_path=config_path,
                                                    arg_lag=args.arg_lag)
        else:
            env = SimEnvironment(args.scenario, speed=args.speed, config_path=config_path,
                                 arg_lag=args.arg_lag, tenants=getattr(args, "tenants", 1),
                                 delegated=getattr(args, "delegated", False))
    except ScenarioError as exc:
        raise CliError(str(exc)) from None
    try:
        env.start()
    except AzuriteError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"the stand-in could not start: {exc}") from None
    # What of a capture's Event Grid wiring could not be put back (one line each; the text
    # holds the capture's names: cleaned of control characters).
    from tui.cli.data import clean

    for problem in getattr(env, "replay_problems", ()):
        print(f"aumwatch: note: replay: {clean(problem)}", file=sys.stderr)
    return env


def run_sim(args: argparse.Namespace) -> int:
    from services.standin.runner import StopSignals

    env = _environment(args, args.write_config)
    # Armed before the ready line: a signal sent the moment a caller reads it still ends in a
    # clean stop and exit 0, not a KeyboardInterrupt (exit 130) or death by SIGTERM.
    with StopSignals() as signals:
        try:
            sys.stdout.write(json.dumps(env.info()) + "\n")
            sys.stdout.flush()
            signals.wait(env)
        finally:
            env.stop()
    return 0


def run_demo(args: argparse.Namespace) -> int:
    env = _environment(args, None)
    previous = os.environ.get("AUMWATCH_CONFIG")
    try:
        from tui.app import AumwatchApp

        config_file = str(env.config_path)
        # The dashboard reads its settings from this file (AUMWATCH_CONFIG, like a user's).
        os.environ["AUMWATCH_CONFIG"] = config_file
        kwargs: dict[str, object] = {"read_only": args.read_only}
        if "config_path" in inspect.signature(AumwatchApp).parameters:
            kwargs["config_path"] = config_file
        if "clock" in inspect.signature(AumwatchApp).parameters:
            # The scenario's clock (it may run faster than real time): phases follow it.
            kwargs["clock"] = env.clock
        from services.standin.runner import standin_data_dir
        from tui.cli import debug_log_to_file

        log = debug_log_to_file(standin_data_dir() / "debug.log")
        app = AumwatchApp(**kwargs)  # type: ignore[arg-type]
        app.run()
        if log is not None:
            print(f"aumwatch: --debug records were written to {log}", file=sys.stderr)
        return app.return_code or 0
    finally:
        env.stop()
        if previous is None:
            os.environ.pop("AUMWATCH_CONFIG", None)
        else:
            os.environ["AUMWATCH_CONFIG"] = previous
