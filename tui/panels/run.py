"""The run panel: the current run's title, timeline, countdown to its next boundary, a status
line (phase, the cancel window, why Cancel is not offered), a warning line when the
configuration's Event Grid wiring cannot deliver the run's pre-event (at once, not at the
watchdog's deadline) and the Cancel button.

The button posts :class:`CancelRequested`; the screen asks for confirmation and sends.
Whether Cancel is offered, and why not, is the state's decision
(:meth:`~services.domain.dashboard.DashboardState.refusal`): the panel is told it and only
shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from services.domain.dashboard import NO_PRE_EVENT, DashboardState
from services.domain.eventmemory import EventArrival
from services.domain.model import Configuration, Run
from services.domain.runs import run_phase
from services.domain.window import Phase, RunWindow, run_window
from tui.display import BOUNDARY_WORDS, format_clock, phase_mark_label, show
from tui.messages import CancelRequested
from widgets.countdown import Countdown
from widgets.sanitize import sanitize
from widgets.timeline import Timeline, TimelineData

ZoneOf = Callable[[Configuration | None], tzinfo | None]


class RunPanel(Horizontal):
    """The ``#run-panel``: shows :attr:`DashboardState.current_run`."""

    def __init__(self, state: DashboardState, zone_of: ZoneOf) -> None:
        super().__init__(id="run-panel", classes="panel")
        self.state = state
        self.zone_of = zone_of
        # Held, not queried: the screen may write to them before they are mounted.
        now = state.clock.now
        self.title = Static(Text("no run selected"), id="run-title", markup=False)
        self.timeline = Timeline(id="timeline")
        self.status = Static(Text(""), id="run-status", markup=False)
        self.wiring = Static(Text(""), id="run-wiring", markup=False)
        self.big = Countdown(now, large=True, id="big-countdown", idle_text="no deadline")
        self.small = Countdown(now, id="small-countdown", idle_text="no deadline")
        self.button = Button("Cancel run", id="cancel-button", variant="error", disabled=True)
        #: "roster 42 · 3 at risk" for a run (pre-flight, issue 18), None when not known.
        self.roster: Callable[[Run], str | None] = lambda run: None

    def compose(self) -> ComposeResult:
        with Vertical(id="run-left"):
            yield self.title
            yield self.timeline
            yield self.status
            yield self.wiring
        with Vertical(id="run-right"):
            yield self.big
            yield self.small
            yield self.button

    def on_mount(self) -> None:
        if self.state.read_only:
            self.button.display = False

    @on(Button.Pressed, "#cancel-button")
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(CancelRequested())

    def window(self, run: Run) -> RunWindow:
        """``run``'s cancel window under the state's rules."""
        return run_window(run.start, cutoff=run.cutoff, end=run.end, rules=self.state.rules)

    def show_run(self, refusal: str | None = None) -> None:
        """Draw title and timeline of the current run; ``refusal``: why Cancel is not
        offered for it (None: it is)."""
        run = self.state.current_run
        title = self.title
        timeline = self.timeline
        if run is None:
            show(title, Text("no run selected", style="dim"))
            timeline.update_data(None)
            show(self.status, Text(""))
        else:
            config = self.state.configs.get(run.configuration_id.lower())
            text = Text(sanitize(run.configuration_name or "?", 60), style="bold")
            # The start right after the name: at 80 columns the line is cut at the panel's
            # edge, and the time matters more than the run's name or how it is known.
            text.append(f"  start {format_clock(run.start, self.zone_of(config))}")
            roster = self.roster(run)
            if roster:
                text.append(f"  {roster}", style="bold red" if " 0 at risk" not in roster
                            else "green")
            text.append(f"  run {sanitize(run.run_name, 40)}")
            if run.expected:
                text.append("  (computed from the schedule)", style="dim")
            if self.state.include_other_scopes and run.scope:
                # Only then can it be anything but guest patching: worth naming.
                text.append(f"  scope {sanitize(run.scope, 20)}", style="dim")
            show(title, text)
            timeline.update_data(self.timeline_data(run))
        self.tick(refusal=refusal)

    def timeline_data(self, run: Run) -> TimelineData | None:
        """What the timeline draws for ``run`` (None when its times cannot be drawn)."""
        window = self.window(run)
        end = run.end if run.end is not None and run.end > run.start else \
            run.start + timedelta(hours=1)
        arrival = self.state.arrivals.get(run.key, EventArrival())
        start = window.start
        try:
            return TimelineData(
                start=start, end=end, opens_at=min(window.opens_at, window.closes_at),
                closes_at=window.closes_at, now=self.state.clock.now(),
                pre_event_at=arrival.pre, post_event_at=arrival.post,
                pre_expected=self.state.arrival_rules.pre_event_range(start))
        except ValueError:
            return None

    def tick(self, now: datetime | None = None, refusal: str | None = None) -> None:
        """Countdown, status line and Cancel of the current run; ``refusal``: why Cancel is
        not offered (None: it is)."""
        state = self.state
        run = state.current_run
        now = now or state.clock.now()
        big = self.big
        small = self.small
        allowed = run is not None and refusal is None
        warning = state.pre_event_warning(run, now)
        # A compact screen has no line to spare: the warning takes the status line's place
        # after the phase (the countdown beside it still says when the window opens).
        compact = self.screen.has_class("-compact") if self.is_attached else False
        show(self.wiring, Text("") if compact else self._wiring_line(warning))
        if run is None:
            big.set_target("", None)
            small.set_target("", None)
        else:
            self.timeline.set_now(now)
            window = self.window(run)
            phase = run_phase(run, now, state.rules)
            boundary = None if phase is Phase.FINISHED else window.next_boundary(now)
            if boundary is None:
                big.set_target("", None)
                small.set_target("", None)
            else:
                label = BOUNDARY_WORDS.get(boundary[0], boundary[0])
                big.set_target(label, boundary[1])
                small.set_target(label, boundary[1])
            show(self.status,
                 self._status_line(run, phase, window, refusal,
                                   warning if compact else None))
        button = self.button
        if button.disabled == allowed:
            button.disabled = not allowed

    def _compact(self) -> bool:
        """The screen is compact (80x24): each line says its time in fewer words."""
        return self.screen.has_class("-compact") if self.is_attached else False

    @staticmethod
    def _wiring_line(warning: str | None) -> Text:
        if warning is None:
            return Text("")
        # One line: cut with an ellipsis rather than wrapped out of sight.
        return Text(f"⚠ {sanitize(warning, 200)}", style="bold red", no_wrap=True,
                    overflow="ellipsis")

    def _status_line(self, run: Run, phase: Phase, window: RunWindow,
                     refusal: str | None, warning: str | None = None) -> Text:
        line = phase_mark_label(run, phase)
        zone = self.zone_of(None)
        busy = (run.key in self.state.cancel_in_flight
                or self.state.cancel_unconfirmed(run.key))
        if warning is not None and not busy:
            # Too narrow for the cause: the conclusion, and where the cause is.
            line.append(f"  ⚠ {NO_PRE_EVENT}, w: why", style="bold red")
            return line
        if run.key in self.state.cancel_in_flight:
            line.append("  cancel in flight…", style="bold")
        elif self.state.cancel_unconfirmed(run.key):
            line.append("  cancel accepted by Azure, confirming…", style="bold yellow")
        elif phase is Phase.CANCELLABLE and refusal is not None and not self.state.read_only:
            # Inside the window and still not offered (a run Azure has not shown us): say why.
            line.append(f"  cancel not offered: {refusal}", style="yellow")
        elif phase is Phase.CANCELLABLE:
            line.append(f"  {'cancel' if self._compact() else 'cancel window open'} until "
                        f"{format_clock(window.closes_at, zone)}")
        elif phase is Phase.UPCOMING and window.ever_opens:
            line.append(f"  {'cancel' if self._compact() else 'cancel window'} opens "
                        f"{format_clock(window.opens_at, zone)}")
        if run.cancelled_by:
            # "⊘ cancelled by user" once it shows as cancelled, not "cancelled" twice; then who
            # sent the cancel (an audited identity or a task: untrusted text, sanitized and
            # never markup), as every view shows it.
            said = line.plain.endswith("cancelled")
            who = f" ({sanitize(run.cancel_initiator, 80)})" if run.cancel_initiator else ""
            line.append(f" by {run.cancelled_by}{who}" if said else
                        f"  cancelled by {run.cancelled_by}{who}", style="yellow")
        return line
