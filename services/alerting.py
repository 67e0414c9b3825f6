"""Telling findings: each opened or resolved finding is told once per route, across restarts.

:class:`Alerter` takes the changes of a :class:`~services.domain.findings.FindingBook` and,
for each:

1. claims the finding's own state in the journal (route ``""``) and hands it to ``emit``
   (``aumwatch watch`` prints it); a state claimed before, by this or an earlier process, is
   neither printed nor sent again;
2. for each route that takes it, claims (finding, route, state) and only then sends: a
   watcher killed between the claim and the send sends that one at most once, never twice.
   A resolve goes only to the routes that were told of the opening.

A route whose send fails after its retries is a finding of its own (``route-failing``, told
to the other routes, never to itself), resolved by its next delivery.

No secret reaches the journal or ``emit``: findings carry none, and a
:class:`~services.notify.Delivery`'s detail is scrubbed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from services.azure.journal import Journal
from services.domain.clock import Clock
from services.domain.findings import (
    Alert,
    FindingBook,
    Judgement,
    open_outages,
    route_failing,
)
from services.domain.routes import RouteSpec
from services.notify import Delivery, Notifier

#: The journal's route name of a finding's own state.
OWN_STATE = ""
#: A restart finishes the sends of findings told this recently (older ones are history; a
#: route added since does not get every finding ever told).
RESUME_WITHIN = timedelta(hours=1)


class Alerter:
    """See the module. ``report``: told of each delivery (for a one-line stderr note)."""

    def __init__(self, book: FindingBook, journal: Journal, notifier: Notifier,
                 routes: Sequence[RouteSpec], clock: Clock, *,
                 emit: Callable[[Alert], None],
                 report: Callable[[Alert, Delivery], None] | None = None) -> None:
        self.book = book
        self.journal = journal
        self.notifier = notifier
        self.routes = tuple(routes)
        self.clock = clock
        self._emit = emit
        self._report = report
        self._lock = asyncio.Lock()
        self._failing_since: dict[str, datetime] = {}

    async def resume(self) -> list[Alert]:
        """Start from what the journal says was told (a restart): the book learns each
        finding's last state, and the routes an earlier process claimed the finding for but
        never reached (it died in between) are sent to now. Returns those findings."""
        alerts = [Alert.from_json(f) for f in self.journal.alert_findings()]
        self.book.seed(alerts)
        recent = self.clock.now() - RESUME_WITHIN
        async with self._lock:
            for alert in alerts:
                if alert.at >= recent:
                    await self._send(alert)
        return alerts

    async def update(self, judgements: Iterable[Judgement], now: datetime) -> list[Alert]:
        """Apply ``judgements`` to the book and tell what changed; return it."""
        async with self._lock:
            told: list[Alert] = []
            pending = list(self.book.update(judgements, now))
            while pending:
                alert = pending.pop(0)
                if self.journal.claim_alert(finding_key=alert.key, route=OWN_STATE,
                                            state=alert.state, kind=alert.kind,
                                            finding=alert.to_json(), at=now) is None:
                    continue
                told.append(alert)
                self._emit(alert)
                failures = await self._send(alert)
                pending += self.book.update(failures, self.clock.now())
            return told

    async def _send(self, alert: Alert) -> list[Judgement]:
        """Send ``alert`` to every route that takes it; the route-failing judgements."""
        out: list[Judgement] = []
        for route in self.routes:
            if not route.matches(alert):
                continue
            if alert.kind == "route-failing" and alert.key.startswith(
                    f"route-failing:{route.name.lower()}:"):
                continue  # a failing route is not told of itself
            if alert.state == "resolved" and not self.journal.alert_claimed(
                    alert.key, route.name, "open"):
                continue  # it was never told of the opening
            seq = self.journal.claim_alert(finding_key=alert.key, route=route.name,
                                           state=alert.state, kind=alert.kind,
                                           finding=alert.to_json(), at=self.clock.now())
            if seq is None:
                continue
            delivery = await self.notifier.send(route, alert)
            self.journal.finish_alert(seq, outcome="delivered" if delivery.ok else "failed",
                                      at=self.clock.now(), detail=delivery.describe())
            if self._report is not None:
                self._report(alert, delivery)
            if delivery.ok:
                # Resolves its outage, also one an earlier process saw begin.
                self._failing_since.pop(route.name, None)
                out += [Judgement("route-failing", key, False)
                        for key in open_outages(self.book, "route-failing", route.name)]
            elif not delivery.ok:
                since = self._failing_since.setdefault(route.name, self.clock.now())
                out.append(route_failing(route.name, since, delivery.describe()))
        return out
