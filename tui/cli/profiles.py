"""The commands' side of several tenants (issue 19): the one profile a single-tenant command
works on, the exit status naming the tenants that failed, and the Tenant column."""

from __future__ import annotations

import sys
from typing import Any

from tui.cli import CliError
from tui.cli.output import clean


def one_profile(settings: Any, what: str) -> Any:
    """The settings of the one tenant a command works on (issue 19): with several
    ``[[tenants]]`` profiles it must be named with ``--tenant``; without profiles, the
    settings themselves."""
    if not settings.profiles:
        return settings
    profiles = settings.tenant_profiles()
    if len(profiles) > 1:
        raise CliError(f"{what} works on one tenant: name it with --tenant NAME (profiles: "
                       f"{', '.join(p.name for p in profiles)})")
    return profiles[0].settings


def tenants_failed(failed: dict[str, str] | Any) -> int:
    """Say which tenants failed (stderr) and return the exit status: 4 when any did (the
    command printed what the others answered), else 0."""
    from services.azure.tenants import EXIT_TENANTS_FAILED

    for name, message in dict(failed or {}).items():
        print(f"aumwatch: tenant {clean(name)} failed: {clean(message)}", file=sys.stderr)
    if failed:
        print(f"aumwatch: {len(failed)} tenant(s) failed: {', '.join(clean(n) for n in failed)}",
              file=sys.stderr)
        return EXIT_TENANTS_FAILED
    return 0


def tenant_cells(settings: Any, item: Any) -> tuple[str, ...]:
    """The TENANT cell of a table row when several tenants are read, else nothing."""
    return (item.tenant or "-",) if len(settings.tenant_profiles()) > 1 else ()


def tenant_header(settings: Any) -> tuple[str, ...]:
    """The TENANT column's header when several tenants are read, else nothing."""
    return ("TENANT",) if len(settings.tenant_profiles()) > 1 else ()
