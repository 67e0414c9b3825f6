"""``aumwatch cancel RUN_ID [--yes]``: cancel one maintenance run, verified.

The run is looked up first: ARM GET of the run (its start and status), whether Azure has
shown it (its Resource Graph row, or one of its events in the local journal), and the
pre-event's cancellation cutoff from the journal. A run Azure has not shown is never sent: its
id is only computed from the schedule, and the cancel PUT is a create-or-update that could
create a run and "succeed" while the real one goes ahead (docs/azure.md, "Cancel API"). The
operator confirms by typing the configuration's name (unless ``--yes``). The cancel itself is
:class:`services.azure.cancel.Canceller`: refused locally for an unseen run, outside the
window, in read-only mode or while another cancel of the run is in flight; verified by reading
the run back; audited.

Exit codes are :data:`EXIT_CODES` (also in ``--help``). ``--json`` prints ``[{"run_id",
"configuration_name", "outcome", "message", "http_status", "run_status", "computed_id"}]``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tui.cli import CliError, add_common

#: A skew smaller than this is noise (the ``Date`` header has whole seconds).
_SKEW_NOISE = timedelta(seconds=2)
#: Exit status when Azure answered the PUT with the run Cancelled but reading it back failed:
#: not a failure, not yet a confirmation (look again with ``aumwatch runs``).
EXIT_ACCEPTED = 3
#: How often and how far apart the run is read back after the PUT.
READ_ATTEMPTS = 5
READ_INTERVAL = timedelta(seconds=2)

EXIT_CODES = f"""exit status:
  0  the run is cancelled, verified by reading it back (or it already was)
  1  nothing was cancelled, or whether it was is unknown: refused before sending (the run
     not seen in Azure yet, outside its cancel window, read-only, no audit journal, not
     confirmed), refused by Azure, or sent and not seen Cancelled; one line on stderr says
     which
  2  wrong usage
  {EXIT_ACCEPTED}  accepted by Azure, not yet confirmed: Azure answered the cancel with the run
     Cancelled but reading it back failed; check with `aumwatch runs` before acting again
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from tui.cli.data import add_settings_flags

    parser = subparsers.add_parser(
        "cancel",
        help="cancel one run (inside its cancel window), verified",
        description="Cancel one maintenance run by its correlation id. Asks you to type the "
        "configuration's name unless --yes. Only a run Azure has shown (its Resource Graph "
        "row, or a pre-event in the journal) is ever sent; a run only computed from the "
        "schedule is refused. Exit 0 only when the run is verified Cancelled.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common(parser)
    add_settings_flags(parser)
    parser.add_argument("run_id", metavar="RUN_ID", help="the run's correlation id, or "
                        "CONFIGNAME/yyyyMMddHHmmss (its UTC start)")
    parser.add_argument("--yes", "-y", action="store_true",
                        help="do not ask for confirmation")
    parser.add_argument("--read-only", action="store_true",
                        help="refuse to send (as the read-only setting does)")
    parser.set_defaults(func=run_cancel)


@dataclass(frozen=True)
class _Lookup:
    start: datetime
    cutoff: datetime | None
    computed_id: bool
    status: str | None
    skew: timedelta | None
    #: The tenant owning the run's subscription, as its Resource Graph row says.
    owner: str | None = None


def run_cancel(args: argparse.Namespace) -> int:
    """Handler of ``aumwatch cancel``."""
    import asyncio

    from services.domain.report import ReportError, parse_short_form
    from tui.cli.data import settings_from_args

    try:
        short = parse_short_form(args.run_id) is not None
    except ReportError as exc:
        raise CliError(str(exc)) from None
    # A correlation id is checked before anything is read; a short id once the
    # configurations are (the one resolver of report, machines and cancel).
    run_id = None if short else _cancellable(args.run_id)
    settings = settings_from_args(args)
    try:
        return asyncio.run(_cancel(args, settings, run_id))
    except CliError:
        raise
    except Exception as exc:  # one line, never a traceback, unless --debug
        if getattr(args, "debug", False):
            raise
        from services.domain.errors import service_error

        raise CliError(service_error(exc, what="cancel").message) from None


def _cancellable(correlation_id: str) -> Any:
    """The parsed run id, if it names a run whose cancel window can be known."""
    from services.domain.runid import RunIdError, parse_run_id

    try:
        run_id = parse_run_id(correlation_id)
    except RunIdError as exc:
        raise CliError(str(exc)) from None
    if run_id.start is None:
        raise CliError(f"run name {run_id.run_name!r} is not a yyyyMMddHHmmss start time, so "
                       "its cancel window cannot be known")
    return run_id


async def _cancel(args: argparse.Namespace, settings: Any, run_id: Any) -> int:
    from tui.cli.data import signed_in
    from tui.cli.runref import resolve_in_tenants

    if run_id is None:  # CONFIGNAME/yyyyMMddHHmmss: the one resolver, in each tenant
        run_id = _cancellable(await resolve_in_tenants(settings, args.run_id))
    profile, owner = await _profile_for(settings, run_id)
    async with signed_in(profile.settings, correct_clock=False) as (credential, runner):
        return await _cancel_with(args, profile.settings, run_id, credential, runner,
                                  profile=profile, owner=owner)


async def _profile_for(settings: Any, run_id: Any) -> tuple[Any, str | None]:
    """Issue 19: the profile whose credential sends the cancel, and the tenant owning the
    run's subscription (None: not known). One profile (none declared, or ``--tenant``): that
    one. Several: the one whose subscriptions list the run's, else the ones whose Resource
    Graph shows the run, the owning tenant's first (a delegation's only when no profile of
    the owner sees it)."""
    from services.azure.tenants import each_profile
    from services.domain.runs import run_query

    profiles = settings.tenant_profiles()
    if len(profiles) == 1:
        return profiles[0], None
    sub = run_id.subscription_id.lower()
    listed = [p for p in profiles if sub in {s.lower() for s in p.settings.subscriptions}]
    if len(listed) == 1:
        return listed[0], listed[0].tenant

    async def look(profile: Any, runner: Any) -> Any:
        return await runner.query(run_query(run_id.correlation_id), what="run lookup")

    seen: list[tuple[Any, str | None]] = []
    for result in await each_profile(settings, look, what="run lookup"):
        if result.value is not None and result.value.rows:
            row = result.value.rows[0]
            owner = str(row.get("tenantId") or "") or None if isinstance(row, dict) else None
            seen.append((result.profile, owner))
    for profile, owner in seen:
        if owner and profile.tenant and owner.lower() == profile.tenant.lower():
            return profile, owner
    if seen:
        return seen[0]
    raise CliError(f"no tenant profile shows run {run_id.run_name!r} in Resource Graph; "
                   "name the tenant with --tenant NAME")


async def _cancel_with(args: argparse.Namespace, settings: Any, run_id: Any, credential: Any,
                       runner: Any, *, profile: Any = None, owner: str | None = None) -> int:
    from services.azure.cancel import open_canceller
    from services.azure.journal import Journal, JournalError
    from services.domain.boundary import CancelTarget
    from services.domain.clock import SystemClock

    try:
        journal = Journal(settings.journal_path)
    except JournalError as exc:
        # Every cancel is audited: with no journal there is no cancel.
        raise CliError(f"refused: {exc}; a cancel is only sent when it can be audited") from exc
    try:
        # Judged on Azure's time: the skew is set once the run's read-back measured it.
        clock = SystemClock()
        session = await open_canceller(settings, credential, run_id.subscription_id, journal,
                                       clock, read_attempts=READ_ATTEMPTS,
                                       read_interval=READ_INTERVAL,
                                       profile=None if profile is None or profile.implicit
                                       else profile)
        async with session:
            lookup = await _look_up(session.read_back, run_id, settings, journal, runner)
            # "Already cancelled" only for a run Azure has shown: an unseen id that reads back
            # Cancelled is no news about the real run, and is refused below like any other.
            if (lookup.status is not None and not lookup.computed_id
                    and lookup.status.lower() in ("cancelled", "canceled")):
                return _report(args, run_id, "verified", "the run is already cancelled",
                               None, lookup.status, lookup.computed_id)
            clock.skew = lookup.skew or timedelta(0)
            target = CancelTarget(run_id.correlation_id, run_id.configuration_name,
                                  lookup.start, lookup.cutoff, lookup.computed_id,
                                  tenant=settings.profile or None,
                                  tenant_id=lookup.owner or owner or settings.tenant)
            from services.domain.window import run_window

            window = run_window(lookup.start, cutoff=lookup.cutoff, rules=settings.window_rules)
            # Only ask when a cancel could be sent: otherwise let the Canceller refuse (and
            # audit the refusal) without making the operator type anything.
            if (not args.yes and window.is_cancellable(clock.now())
                    and not settings.read_only and not lookup.computed_id):
                _confirm(run_id, window, clock.now(), lookup.computed_id,
                         tenant=_tenant_line(session.canceller, target))
            result = await session.canceller.cancel(target)
    finally:
        journal.close()
    if result.journal_error:
        print(f"aumwatch: warning: the audit journal could not be written: "
              f"{result.journal_error}", file=sys.stderr)
    return _report(args, run_id, str(result.outcome), result.message, result.http_status,
                   result.run_status, lookup.computed_id,
                   tenant=(settings.profile or None, target.tenant_id))


async def _look_up(read_back: Any, run_id: Any, settings: Any, journal: Any,
                   runner: Any) -> _Lookup:
    """The run's start (ARM, else its name), the pre-event's cutoff (journal), its status, and
    whether Azure has shown it: a Resource Graph row or a journaled event carrying its id. An
    ARM GET is no such proof: a run is only seen once Azure itself has named it."""
    from services.azure.journal import JournalError
    from services.domain.runs import parse_time
    from tui.cli.data import clean

    reply = await read_back(run_id.correlation_id, settings.cancel_api_version)
    skew = skew_from(reply.server_date)
    start: datetime = run_id.start
    status: str | None = None
    known, owner = await _in_resource_graph(runner, run_id)
    if reply.ok:
        status = reply.run_status
        props = reply.body.get("properties", {}) if isinstance(reply.body, dict) else {}
        start = parse_time(props.get("startDateTime")) or start
    elif reply.status != 404:
        raise CliError(f"cannot read run {clean(run_id.run_name)}: HTTP {reply.status}: "
                       f"{clean(reply.error_text)}")
    cutoff = None
    if journal is not None:
        try:
            for row in journal.events_for_run(run_id.correlation_id):
                known = True
                value = row.decoded.get("cancellation_cutoff")
                if value:
                    cutoff = parse_time(value)
        except JournalError as exc:
            print(f"aumwatch: warning: {exc}", file=sys.stderr)
    return _Lookup(start, cutoff, not known, status, skew, owner)


def skew_from(server_date: datetime | None) -> timedelta | None:
    """Server time minus the uncorrected local time, from a reply's ``Date`` header; None when
    there is none or the difference is noise (``aumwatch tasks`` corrects its clock so too)."""
    from services.domain.clock import SystemClock

    if server_date is None:
        return None
    measured = server_date - SystemClock().now()
    return measured if abs(measured) >= _SKEW_NOISE else None


async def _in_resource_graph(runner: Any, run_id: Any) -> tuple[bool, str | None]:
    """Whether Resource Graph holds a row for the run (a failed query is a one-line error),
    and the tenant owning its subscription as the row says (issue 19; None: not said)."""
    from services.domain.runs import run_from_row, run_query

    result = await runner.query(run_query(run_id.correlation_id), what="run lookup")
    for row in result.rows:
        run = run_from_row(row)
        if run is not None and run.key == run_id.key:
            return True, run.tenant_id
    return False, None


def _tenant_line(canceller: Any, target: Any) -> str | None:
    """The confirmation's tenant line (issue 19): which tenant's credential sends it, and
    whether it goes through a delegation (unconfirmed by Microsoft). None: one tenant."""
    if canceller.tenant is None:
        return None
    line = (f"  tenant {canceller.tenant} ({target.tenant_id or canceller.tenant_id or '-'});"
            f" sent with its credential")
    if canceller._delegated(target):
        line += (f"\n  THROUGH A DELEGATION from tenant {canceller.tenant_id}: Update "
                 "Manager's cancel through Azure Lighthouse is unconfirmed by Microsoft")
    return line


def _confirm(run_id: Any, window: Any, now: datetime, computed: bool, *,
             tenant: str | None = None) -> None:
    import humanize

    from tui.cli.data import clean

    name = run_id.configuration_name
    # Whole seconds: ``now`` carries the measured clock skew, fractions of a second would
    # read as "19 minutes and 59.62 seconds".
    remaining = max(window.closes_at - now, timedelta(0))
    left = humanize.precisedelta(timedelta(seconds=int(remaining.total_seconds())))
    lines = [
        f"Cancel run {clean(run_id.run_name)} of configuration {clean(name)!r}?",
        f"  starts {_hms(window.start)}; cancellable until {_hms(window.closes_at)} "
        f"(now {_hms(now)}: {left} left)",
    ]
    if tenant:
        lines.extend(clean(part) for part in tenant.split("\n"))
    if computed:
        lines.append("  the run id is COMPUTED from the schedule: no pre-event or Azure record "
                     "has named this run yet")
    lines.append("Type the configuration's name to confirm (anything else aborts): ")
    print("\n".join(lines[:-1]), file=sys.stderr)
    print(lines[-1], end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if answer.strip().casefold() != name.casefold():
        raise CliError(f"not confirmed (expected {clean(name)!r}): nothing was sent")


def _report(args: argparse.Namespace, run_id: Any, outcome: str, message: str,
            http_status: int | None, run_status: str | None, computed: bool, *,
            tenant: tuple[str | None, str | None] = (None, None)) -> int:
    from tui.cli.data import clean
    from tui.cli.output import safe_json

    if args.json:
        print(safe_json([{
            "run_id": run_id.correlation_id,
            "configuration_name": run_id.configuration_name,
            "outcome": outcome,
            "message": message,
            "http_status": http_status,
            "run_status": run_status,
            "computed_id": computed,
            "tenant": tenant[0],
            "tenant_id": tenant[1],
        }], indent=2))
    if outcome == "verified":
        if not args.json:
            print(f"cancelled: run {clean(run_id.run_name)} of {clean(run_id.configuration_name)}"
                  f" ({clean(message)})")
        return 0
    text = clean(message)
    if outcome == "accepted":
        print(f"aumwatch: {text}", file=sys.stderr)
        return EXIT_ACCEPTED
    if outcome == "refused":
        text += "; nothing was sent"
    if args.json:
        print(f"aumwatch: {text}", file=sys.stderr)
        return 1
    raise CliError(text if text.startswith(outcome) else f"{outcome}: {text}")


def _hms(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ")
