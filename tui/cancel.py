"""The dashboard's side of a cancel: what the confirmation names (live: its countdown moves
with the clock, and it closes itself when the window closes) and how its outcome is told to
the operator (the poller sends it: tui/poller.py; the state says whether and why it is
refused: ``DashboardState.refusal``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any

from textual import events
from textual.notifications import SeverityLevel

from services.domain.boundary import CancelResult, CancelTarget, Outcome
from services.domain.dashboard import DashboardState
from services.domain.marks import run_outcome
from services.domain.model import Run
from services.domain.runs import run_phase
from services.domain.window import Phase, run_window
from services.domain.zones import zone_for
from tui.display import format_full
from widgets.confirm import Closed, ConfirmCancel
from widgets.countdown import format_remaining

#: What the confirmation shows now: its lines, or why it closed (see :func:`live_cancel_lines`).
CancelView = list[tuple[str, str]] | Closed


def cancel_lines(state: DashboardState, run: Run) -> list[tuple[str, str]]:
    """What the confirmation names: configuration, run id, start in three zones, time left."""
    config = state.configs.get(run.configuration_id.lower())
    window = run_window(run.start, cutoff=run.cutoff, end=run.end, rules=state.rules)
    lines = [
        ("Configuration", run.configuration_name or "?"),
        ("Run id", run.correlation_id),
        ("Start (config zone)", format_full(run.start, zone_for("config", config))),
        ("Start (UTC)", format_full(run.start, UTC)),
        ("Start (local)", format_full(run.start, None)),
        ("Cancel closes in", format_remaining(window.closes_at - state.clock.now())),
    ]
    # Issue 19: the tenant whose credential sends it; a delegation said plainly.
    if run.tenant:
        lines.insert(2, ("Tenant", f"{run.tenant} ({run.tenant_id or '?'})"))
    if state.delegated(run):
        lines.insert(3 if run.tenant else 2, (
            "Delegation", f"sent from tenant {state.profile_tenants.get(run.tenant)}: Update "
            "Manager's cancel through Azure Lighthouse is unconfirmed by Microsoft"))
    return lines


def closed_text(closes_at: datetime, zone: tzinfo | None) -> str:
    """Why the confirmation closed itself when the window closed while it was open."""
    local = closes_at.astimezone(zone) if zone is not None else closes_at.astimezone()
    return (f"cancel window closed at {local.strftime('%H:%M')} {local.tzname() or ''}"
            .rstrip() + "; nothing was sent")


def cancel_view(state: DashboardState, key: str, zone: tzinfo | None) -> CancelView:
    """The confirmation of run ``key``'s cancel as it stands at the state's clock: its lines
    (the time left ticking), or :class:`~widgets.confirm.Closed` with why, once the cancel
    can no longer be sent: the window closed (its time in ``zone``), the run is gone, or
    anything else holds Cancel back (the state's refusal)."""
    run = state.runs.get(key)
    if run is None:
        return Closed("the run is no longer listed; nothing was sent")
    now = state.clock.now()
    window = run_window(run.start, cutoff=run.cutoff, end=run.end, rules=state.rules)
    phase = run_phase(run, now, state.rules)
    if run.finished:  # a poll showed it ended meanwhile (cancelled elsewhere, ...)
        return Closed(f"the run is {run_outcome(run) or 'finished'} now; nothing was sent")
    if phase is not Phase.CANCELLABLE and now >= window.closes_at:
        return Closed(closed_text(window.closes_at, zone))
    refusal = state.refusal(run, now)
    if refusal is not None:
        return Closed(f"{refusal}; nothing was sent")
    return cancel_lines(state, run)


def live_cancel_lines(state: DashboardState, key: str,
                      zone: tzinfo | None) -> Callable[[], CancelView]:
    """The confirmation's ``refresh``: :func:`cancel_view` of run ``key`` each time."""
    return lambda: cancel_view(state, key, zone)


def target_of(run: Run) -> CancelTarget:
    """The cancel request for ``run``."""
    return CancelTarget(run.correlation_id, run.configuration_name, run.start,
                        cutoff=run.cutoff, computed_id=run.expected,
                        tenant=run.tenant or None, tenant_id=run.tenant_id)


def outcome_toast(result: CancelResult) -> tuple[str, SeverityLevel]:
    """The one line and severity that tell the operator how a cancel ended."""
    outcome = result.outcome.value
    # Accepted is not a failure: Azure said Cancelled and the read-back is still to come.
    severity: SeverityLevel = ("information" if outcome == "verified"
                               else "warning" if outcome in ("refused", "accepted")
                               else "error")
    text = f"cancel {outcome}: {result.message}"
    if result.journal_error:
        text += f" (audit not written: {result.journal_error})"
    return text, severity


class CancelScreenMixin:
    """The dashboard screen's Cancel: the dimmed key saying why, the live confirmation (it
    starts on No, its time left ticks, and it closes itself, saying why, when the window
    closes while it is open), sending through the poller once confirmed, and the outcome.
    Whether Cancel is offered is the state's refusal (``DashboardState.refusal``). Expects the
    screen's ``state``, ``clock``, ``poller``, ``can_cancel``, ``zone_of``, ``show_change``,
    ``show_notice``, ``poll_configs``, ``notify`` and ``app``."""

    def on_key(self, event: events.Key) -> None:
        screen: Any = self
        # A dimmed Cancel key is not run: say why it is dimmed instead of nothing.
        active = screen.app.active_bindings.get(event.key)
        if active is not None and active.binding.action == "cancel_run" and not active.enabled:
            run = screen.state.current_run
            if run is not None and not screen.state.read_only:
                event.stop()
                screen._refused(run)

    def _refused(self, run: Run) -> None:
        screen: Any = self
        reason = screen.state.refusal(run) or "the cancel window of this run is not open"
        screen.notify(f"cannot cancel: {reason}", severity="warning", markup=False)

    def action_cancel_run(self) -> None:
        """Ask to cancel the selected run (only inside its window, never in read-only)."""
        screen: Any = self
        run = screen.state.current_run
        if screen.state.read_only or run is None:
            return
        if not screen.can_cancel:
            screen._refused(run)
            return
        key = run.key
        # Live: the time left moves with the clock; the dialog closes itself, saying why,
        # when the window closes while it is open (issue 22, item 5).
        zone = screen.zone_of(screen.state.configs.get(run.configuration_id.lower()))
        dialog = ConfirmCancel("Cancel this maintenance run?", cancel_lines(screen.state, run),
                               refresh=live_cancel_lines(screen.state, key, zone))

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                screen._confirmed(key)
            elif dialog.closed_reason is not None:
                screen.notify(dialog.closed_reason, title="Cancel", severity="warning",
                              markup=False, timeout=10)
                screen.show_notice(dialog.closed_reason)

        screen.app.push_screen(dialog, answered)

    def _confirmed(self, key: str) -> None:
        screen: Any = self
        change, run = screen.state.confirm_cancel(key, screen.clock.now())
        screen.show_change(change)
        if run is not None:
            screen.poller.send_cancel(target_of(run))

    def cancel_done(self, result: CancelResult) -> None:
        """Tell how a cancel ended, and take its outcome into the state."""
        screen: Any = self
        text, severity = outcome_toast(result)
        screen.notify(text, title="Cancel", severity=severity, markup=False, timeout=10)
        accepted = result.outcome is Outcome.ACCEPTED
        if result.verified:
            screen.app.sub_title = f"cancelled {result.run_id.rsplit('/', 1)[-1]}"
        elif not accepted:
            screen.state.set_error("cancel", text)
        screen.show_change(screen.state.apply_cancel(result))
        if (result.verified or accepted) and screen._poll and screen.monitor is not None:
            # The next poll is what confirms an accepted cancel: ask for it now.
            screen.poll_configs()

