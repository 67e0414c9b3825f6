"""Which run a command means: a correlation id, or the short ``CONFIGNAME/yyyyMMddHHmmss``
that ``report``, ``machines`` and ``cancel`` all take (issue 20), across tenant profiles."""

from __future__ import annotations

from typing import Any

from tui.cli import CliError
from tui.cli.output import clean


async def resolve_run_text(settings: Any, runner: Any, text: str, *,
                           clock: Any = None) -> str:
    """The correlation id ``text`` names: a correlation id, or ``CONFIGNAME/yyyyMMddHHmmss``
    (its configuration found in Resource Graph, else in the journal). The one resolver of
    ``report``, ``machines`` and ``cancel`` (:func:`services.azure.report.resolve_run`); an
    ambiguous short id raises a ServiceError listing the correlation ids it could mean."""
    from services.azure.report import resolve_run
    from services.azure.sources import ConfigSource
    from services.domain.errors import ServiceError
    from services.domain.report import ReportError, parse_short_form

    configs: tuple[Any, ...] = ()
    try:
        short = parse_short_form(text) is not None
    except ReportError:
        short = False  # resolve_run says what is wrong with it
    if short:
        try:
            configs = (await ConfigSource(runner, clock=clock).fetch()).items
        except ServiceError:
            configs = ()  # the journal may still know the run
    return resolve_run(text, configs, settings.journal_path)


async def resolve_in_tenants(settings: Any, text: str) -> str:
    """The correlation id ``text`` names, looked up with each tenant profile's own sign-in
    (one profile: just that one). A tenant that does not know the run is not an error; one
    line when no tenant, or more than one, knows it.

    Raises:
        CliError: no tenant knows the run, or several know different runs by that name.
    """
    from services.azure.report import resolve_run
    from services.domain.errors import ServiceError
    from services.domain.report import ReportError, parse_short_form
    from tui.cli.data import signed_in

    try:
        short = parse_short_form(text) is not None
    except ReportError:
        short = True  # each tenant's resolver says what is wrong with it
    if not short:  # a correlation id names itself: no tenant needs to be asked
        try:
            return resolve_run(text, (), settings.journal_path)
        except ServiceError as exc:
            raise CliError(clean(str(exc))) from None
    found: set[str] = set()
    error: str | None = None
    for profile in settings.tenant_profiles():
        try:
            async with signed_in(profile.settings, correct_clock=False) as (_, runner):
                found.add(await resolve_run_text(profile.settings, runner, text))
        except (ServiceError, CliError) as exc:
            error = clean(str(exc))
    if len(found) == 1:
        return found.pop()
    if found:
        raise CliError(f"run {text!r} is ambiguous across tenants: " + ", ".join(sorted(found)))
    raise CliError(error or f"no run {text!r} found")
