"""The dashboard's key bindings. Their ids are the ``[keys]`` keymap's contract
(services/settings.py ``KEY_BINDING_IDS``); the app applies the keymap to them."""

from __future__ import annotations

from textual.binding import Binding

DASHBOARD_BINDINGS: tuple[Binding, ...] = (
    # The App's global keys, repeated first so the footer lists them first.
    Binding("q", "app.quit", "Quit", id="quit"),
    Binding("question_mark,f1", "app.help", "Help", id="help"),
    Binding("ctrl+x", "cancel_run", "Cancel run", id="cancel", priority=True,
            tooltip="Cancel the selected run (only inside its cancel window)"),
    Binding("space", "toggle_pause", "Pause", id="pause"),
    Binding("p", "preflight", "Pre-flight", show=False, id="preflight",
            tooltip="The selected configuration's next run: the machines it will patch, "
            "their risks and fixes"),
    Binding("ctrl+r", "refresh", "Refresh", id="refresh"),
    Binding("z", "cycle_zone", "Zone", id="zone"),
    Binding("slash", "filter", "Filter", id="filter"),
    Binding("escape", "clear_filter", "Clear filter", show=False, id="clear_filter"),
    Binding("ctrl+s", "export", "Export", id="export"),
    Binding("w", "show_wiring", "Wiring", id="wiring",
            tooltip="The selected configuration's Event Grid wiring, health and fix"),
    Binding("1", "panel('configs')", "Configs", show=False, id="panel.configs"),
    Binding("2", "panel('run')", "Run", show=False, id="panel.run"),
    Binding("3", "panel('runs')", "Runs", show=False, id="panel.runs"),
    Binding("4", "panel('events')", "Events", show=False, id="panel.events"),
    # Not in the footer (it is full at 80 columns); in the help panel and the palette.
    Binding("r", "report", "Run report", show=False, id="report",
            tooltip="Write the selected run's report (HTML and Markdown) into the data "
            "directory's reports folder"),
    Binding("a", "acknowledge", "Acknowledge", show=False, id="acknowledge",
            tooltip="Acknowledge the selected finding (the event tail's line, else the "
            "run's findings): recorded with who and when, shown to every viewer"),
    Binding("t", "tasks", "Task runs", show=False, id="tasks",
            tooltip="The selected run's pre/post task runs, with their output"),
)
