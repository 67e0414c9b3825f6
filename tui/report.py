"""The dashboard's report key: the selected run's report, written as Markdown and HTML into
the data directory's ``reports/`` folder (named after the configuration and the run's start).

The run and its configuration are what the dashboard already shows (merged by its state);
the machines are fetched through the monitor (a Resource Graph read) and the journal's facts
read in a thread. Nothing is sent to Azure beyond that read, so it works in read-only mode.
Never raises: a failure comes back as :class:`ReportOutcome` with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.azure.monitor import Monitor
from services.azure.report import read_journal, write_atomically
from services.domain.clock import Clock
from services.domain.errors import ServiceError
from services.domain.model import Configuration, Machine, Run
from services.domain.report import build_report, report_file_name
from services.domain.reportrender import render
from services.domain.runfacts import EventFact
from services.settings import Settings

#: The formats the dashboard writes, the first one named in the status line.
DASHBOARD_FORMATS = ("html", "md")


@dataclass(frozen=True)
class ReportOutcome:
    """Where the report went (``path``: the HTML file), or why it was not written."""

    path: Path | None
    message: str

    @property
    def ok(self) -> bool:
        return self.path is not None


def reports_folder(settings: Settings) -> Path:
    """``<data dir>/reports``."""
    return settings.data_dir / "reports"


def _sign_in_tenant(settings: Settings, run: Run) -> str | None:
    """The tenant the portal links sign in to: the run's profile's (issue 19), else the
    settings'."""
    for profile in settings.profiles:
        if profile.name == run.tenant:
            return profile.tenant
    return settings.tenant


async def write_run_report(settings: Settings, monitor: Monitor | None, clock: Clock,
                           run: Run, config: Configuration | None, *,
                           seen_events: Sequence[EventFact] = ()) -> ReportOutcome:
    """Gather, build and write ``run``'s report; never raises.

    ``seen_events`` are the run's events the dashboard's event memory saw: a peeking
    dashboard journals nothing, and its report must still show what its event tail showed.
    The report merges them with the journal's, one entry per event."""
    try:
        notes: list[str] = []
        machines: tuple[Machine, ...] = ()
        if monitor is not None and not run.expected:
            try:
                machines = (await monitor.poll_machines(run.correlation_id)).items
            except ServiceError as exc:
                notes.append(f"the machines could not be read: {exc}")
        facts = await asyncio.to_thread(read_journal, settings.journal_path,
                                        run.correlation_id)
        report = build_report(
            run.correlation_id, run=run, configuration=config, events=facts.events,
            seen_events=seen_events, cancels=facts.cancels, tasks=facts.tasks, machines=machines,
            rules=settings.window_rules, now=clock.now(), cloud=settings.cloud,
            tenant=_sign_in_tenant(settings, run), notes=[*notes, *facts.notes])
        folder = reports_folder(settings)
        paths = []
        for fmt in DASHBOARD_FORMATS:
            target = folder / report_file_name(report, fmt)
            paths.append(await asyncio.to_thread(write_atomically, target,
                                                 render(report, fmt)))
    except Exception as exc:  # a report is a help: say why it failed, never crash the app
        return ReportOutcome(None, f"report not written: {type(exc).__name__}: {exc}")
    others = ", ".join(f".{p.suffix.lstrip('.')}" for p in paths[1:])
    return ReportOutcome(paths[0], f"report written to {paths[0]} (and {others})")
