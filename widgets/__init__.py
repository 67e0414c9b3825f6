"""Reusable Textual widgets that know nothing of Azure: they take plain data.

Names are exported lazily so that importing one light module (e.g. `widgets.sanitize` from
a CLI command) does not pull in Textual and every widget.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConfirmCancel": "widgets.confirm",
    "Countdown": "widgets.countdown",
    "format_remaining": "widgets.countdown",
    "EventLog": "widgets.eventlog",
    "EventRow": "widgets.eventlog",
    "phase_label": "widgets.phase",
    "sanitize": "widgets.sanitize",
    "SourceAge": "widgets.statusbar",
    "StatusBar": "widgets.statusbar",
    "StatusData": "widgets.statusbar",
    "status_lines": "widgets.statusbar",
    "Timeline": "widgets.timeline",
    "TimelineData": "widgets.timeline",
    "timeline_positions": "widgets.timeline",
    "timeline_rows": "widgets.timeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'widgets' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
