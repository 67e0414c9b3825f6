"""``aumwatch serve``: the dashboard in a browser (each viewer gets its own dashboard)."""

from __future__ import annotations

import argparse
import sys

from tui.cli import CliError, add_common


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "serve",
        help="serve the dashboard to browsers (read-only, token-protected)",
        description="Serve the dashboard over HTTP: each browser tab gets its own dashboard, "
        "run as you with your settings and Azure credentials. Read-only unless "
        "--allow-cancel; every viewer needs the token printed at start.",
    )
    add_common(parser, json_flag=False)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; another needs "
                             "--allow-remote)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a --host reachable from other machines")
    parser.add_argument("--allow-cancel", action="store_true",
                        help="offer Cancel in served dashboards (confirmed, audited "
                             "'via browser')")
    parser.add_argument("--max-viewers", type=int, default=10, metavar="N",
                        help="at most N dashboards at once (default 10)")
    parser.add_argument("--tenant", metavar="NAME",
                        help="with [[tenants]] profiles: serve only this profile (its name or "
                        "tenant id); without: the Entra ID tenant to sign in to")
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import secrets

    from services.settings import SettingsError, load_settings
    from tui.serve import DashboardServer, dashboard_argv, is_loopback

    if args.max_viewers < 1:
        raise CliError("--max-viewers must be at least 1")
    if not 0 < args.port < 65536:
        raise CliError("--port must be between 1 and 65535")
    if not is_loopback(args.host):
        if not args.allow_remote:
            raise CliError(f"--host {args.host} is reachable from other machines: add "
                           "--allow-remote to mean it, or use an SSH tunnel to 127.0.0.1")
        print(f"aumwatch serve: WARNING: listening on {args.host}: anyone who can reach it "
              "and has the token acts with your Azure credentials; the traffic is plain HTTP",
              file=sys.stderr, flush=True)
    tenant = getattr(args, "tenant", None)
    if tenant is not None and (not tenant.strip() or any(c.isspace() for c in tenant)):
        raise CliError(f"--tenant {tenant!r}: a profile name or tenant id has no spaces")
    config = getattr(args, "config", None)
    try:  # the same settings every viewer's dashboard will load: fail here, once, if bad
        load_settings({"tenant": tenant}, config_path=config)
    except SettingsError as exc:
        raise CliError(str(exc)) from None
    server = DashboardServer(dashboard_argv(config, allow_cancel=args.allow_cancel,
                                            tenant=tenant),
                             token=secrets.token_urlsafe(32), host=args.host, port=args.port,
                             max_viewers=args.max_viewers)
    if args.allow_cancel:
        print("aumwatch serve: Cancel is offered to viewers (confirmed, audited 'via browser')",
              file=sys.stderr, flush=True)
    try:
        server.serve()
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") \
            from None
    return 0
