"""The event tail as plain data: one line per event, undecodable message or watchdog finding,
and when a pre- or post-event is expected to arrive.

Pure: no Textual, no Azure SDK; a batch's events are read by duck typing.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.domain.watchdog import Finding

#: When the pre-event is expected, before the run's start: docs/azure.md says at least
#: 30 minutes ahead; the timeline marks the five minutes before that as its expected slot.
PRE_EVENT_EARLIEST = timedelta(minutes=35)
PRE_EVENT_LATEST = timedelta(minutes=30)


def pre_event_expected(start: datetime) -> tuple[datetime, datetime]:
    """When a run starting at ``start`` should see its pre-event: (earliest, latest)."""
    return start - PRE_EVENT_EARLIEST, start - PRE_EVENT_LATEST


def arrival_delay(kind: str, start: datetime | None, end: datetime | None,
                  arrived: datetime) -> timedelta | None:
    """How late an event arrived (negative: early): a pre-event against the latest moment
    it is expected (:func:`pre_event_expected`), a post-event against the run's end."""
    if kind == "pre" and start is not None:
        return arrived - pre_event_expected(start)[1]
    if kind == "post" and end is not None:
        return arrived - end
    return None


@dataclass(frozen=True)
class EventLine:
    """One line of the event tail as plain data (the view turns it into a row).

    Every string is untrusted (it came from a queue): the view never renders it as markup.
    """

    time: datetime
    kind: str
    configuration: str = ""
    run: str = ""
    delay: timedelta | None = None
    flag: str | None = None
    payload: str = ""
    key: str = ""


def short_type(event_type: str) -> str:
    """``pre``/``post`` for the maintenance event types; any other type as it came."""
    tail = event_type.rsplit(".", 1)[-1]
    return {"PreMaintenanceEvent": "pre", "PostMaintenanceEvent": "post"}.get(tail, event_type)


def event_payload(received: Any) -> str:
    """A received event as indented JSON for the detail view, every odd character escaped."""
    body = received.to_json()
    data = getattr(received.event, "data", None)
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
