"""The event tail as plain data: one line per event, undecodable message or watchdog finding.

When an event arrived relative to its run, and whether that is unusual, is
:mod:`services.domain.arrivals`' rule (the state words each line's ``arrival`` with it).

Pure: no Textual, no Azure SDK.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime

from services.domain.boundary import ReceivedEvent
from services.domain.watchdog import Finding


@dataclass(frozen=True)
class EventLine:
    """One line of the event tail as plain data (the view turns it into a row).

    ``arrival``: when a pre/post event arrived relative to its run (``T-35m``, ``+4m``),
    ``arrival_flagged``: outside the documented range (:func:`services.domain.arrivals.arrival`).
    Every string is untrusted (it came from a queue): the view never renders it as markup.
    """

    time: datetime
    kind: str
    configuration: str = ""
    run: str = ""
    arrival: str = ""
    arrival_flagged: bool = False
    flag: str | None = None
    payload: str = ""
    key: str = ""


def short_type(event_type: str) -> str:
    """``pre``/``post`` for the maintenance event types; any other type as it came."""
    tail = event_type.rsplit(".", 1)[-1]
    return {"PreMaintenanceEvent": "pre", "PostMaintenanceEvent": "post"}.get(tail, event_type)


def event_payload(received: ReceivedEvent) -> str:
    """A received event as indented JSON for the detail view, every odd character escaped."""
    body = received.to_json()
    data = received.event.data
    if data:
        with contextlib.suppress(TypeError, ValueError):
            body["data"] = json.loads(json.dumps(dict(data), default=str))
    # ensure_ascii: every control or odd character is a visible \\u escape.
    return json.dumps(body, indent=2, ensure_ascii=True, default=str)


def finding_line(finding: Finding, now: datetime) -> EventLine:
    """A watchdog finding as a line of the event tail."""
    return EventLine(time=now, kind=f"watchdog: {finding.kind.replace('-', ' ')}",
                     configuration=finding.configuration_name,
                     run=finding.run_id.rsplit("/", 1)[-1], flag="watchdog",
                     payload=finding.message, key=finding.key)
