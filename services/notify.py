"""Sending alerts: HTTP routes (webhook, Slack, Teams, PagerDuty), command routes, heartbeats.

HTTP goes through aiohttp, which aumwatch already depends on (the Azure SDKs' async
transport), so alerting adds no dependency. Each send is retried with a doubling back-off
(``attempts`` tries in all) on a network error, a timeout, 429 or 5xx; any other answer is
final. A :class:`Delivery` says what came back, scrubbed of the route's secrets (a receiver
may echo a key; an error may quote the URL): the URLs and keys never reach a log, the
journal or the terminal.

A command route runs its argument list (no shell) with the finding as JSON on stdin, the
way ``aumwatch tasks`` runs a task (its own process group, killed with the watcher, killed
after ``COMMAND_TIMEOUT``); exit 0 is a delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from services.azure.tasks import OutputCapture, child_guard, feed_stdin, signal_group
from services.domain.findings import Alert
from services.domain.routes import RouteSpec, payload, stdin_document
from services.domain.tasks import passed_environment, scrub_output

#: Tries of one send in all (the first and its retries).
DEFAULT_ATTEMPTS = 3
#: The first back-off; doubled at each retry.
DEFAULT_BACKOFF = timedelta(seconds=1)
#: One HTTP call's limit (connect and answer).
HTTP_TIMEOUT = timedelta(seconds=10)
#: How long a command route may run.
COMMAND_TIMEOUT = timedelta(seconds=30)
#: How much of an answer a Delivery keeps.
DETAIL_LIMIT = 300


@dataclass(frozen=True)
class Delivery:
    """What came back from one send (after its retries). ``detail`` is scrubbed."""

    route: str
    ok: bool
    status: int | None
    detail: str
    attempts: int = 1

    def describe(self) -> str:
        """One line: ``delivered (HTTP 202): ...`` or ``failed after 3 tries: ...``."""
        code = f"HTTP {self.status}" if self.status is not None else "no answer"
        head = "delivered" if self.ok else f"failed after {self.attempts} tries"
        return f"{head} ({code}): {self.detail}" if self.detail else f"{head} ({code})"


Sleep = Callable[[float], Awaitable[None]]


class Notifier:
    """Sends findings to routes. ``secrets``: extra values to scrub (every route's own
    secrets are scrubbed anyway)."""

    def __init__(self, routes: Sequence[RouteSpec], *, secrets: Sequence[str] = (),
                 attempts: int = DEFAULT_ATTEMPTS, backoff: timedelta = DEFAULT_BACKOFF,
                 timeout: timedelta = HTTP_TIMEOUT, sleep: Sleep = asyncio.sleep,
                 ca_file: str | None = None) -> None:
        self.routes = tuple(routes)
        self._secrets = [*secrets, *(s for r in self.routes for s in r.secrets)]
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.timeout = timeout
        self._sleep = sleep
        self._session: Any = None
        self._ca_file = ca_file

    def scrub(self, text: str) -> str:
        """``text`` without any secret of the routes."""
        return scrub_output(text, self._secrets)

    def _detail(self, text: str) -> str:
        """``text`` on one line, scrubbed, then cut to :data:`DETAIL_LIMIT` (scrubbed first:
        a cut through a secret would leave its head unredacted)."""
        return self.scrub(" ".join(text.split()))[:DETAIL_LIMIT]

    async def _http(self) -> Any:
        if self._session is None:
            import aiohttp

            connector = None
            if self._ca_file:
                import ssl

                connector = aiohttp.TCPConnector(
                    ssl=ssl.create_default_context(cafile=self._ca_file))
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout.total_seconds()),
                connector=connector)
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
            self._session = None

    async def send(self, route: RouteSpec, alert: Alert, *, test: bool = False) -> Delivery:
        """Send ``alert`` (its present state) to ``route``, retrying as the module says."""
        if route.type == "command":
            return await self._command(route, alert, test=test)
        url = route.target_url
        if not url:
            return Delivery(route.name, False, None, "no url", 0)
        return await self._post(route.name, url, payload(route, alert, test=test))

    async def ping(self, url: str, name: str = "heartbeat") -> Delivery:
        """A heartbeat: one GET of ``url`` (a dead man's switch), retried like a send."""
        return await self._post(name, url, None)

    async def _post(self, name: str, url: str, body: Any) -> Delivery:
        last = Delivery(name, False, None, "", 0)
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                await self._sleep(self.backoff.total_seconds() * 2 ** (attempt - 2))
            status: int | None = None
            try:
                session = await self._http()
                if body is None:
                    request = session.get(url)
                else:
                    request = session.post(url, data=json.dumps(body),
                                           headers={"Content-Type": "application/json"})
                async with request as response:
                    status = response.status
                    text = await response.text(errors="replace")
                    detail = self._detail(text)
            except (TimeoutError, OSError) as exc:
                detail = self._detail(_short(exc))
            except Exception as exc:  # aiohttp's ClientError and friends
                detail = self._detail(_short(exc))
            last = Delivery(name, status is not None and 200 <= status < 300, status, detail,
                            attempt)
            if last.ok or (status is not None and status < 500 and status != 429):
                return last
        return last

    async def _command(self, route: RouteSpec, alert: Alert, *, test: bool) -> Delivery:
        document = stdin_document(alert, test=test)
        last = Delivery(route.name, False, None, "", 0)
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                await self._sleep(self.backoff.total_seconds() * 2 ** (attempt - 2))
            code, detail = await self._run(route.command, document)
            last = Delivery(route.name, code == 0, code, detail, attempt)
            if last.ok:
                return last
        return last

    async def _run(self, argv: Sequence[str], document: bytes) -> tuple[int | None, str]:
        # As a task's: none of aumwatch's secrets (route keys, the queue's connection string,
        # tokens, AZURE_CLIENT_SECRET), only the safe part of its environment.
        env = passed_environment(os.environ)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True,
                preexec_fn=child_guard())
        except OSError as exc:
            return None, self._detail(f"cannot start {argv[0]!r}: {exc.strerror or exc}")
        capture = OutputCapture(DETAIL_LIMIT * 2)
        assert proc.stdout is not None
        reader = asyncio.ensure_future(capture.read(proc.stdout))
        writer = asyncio.ensure_future(feed_stdin(proc, document))
        try:
            try:
                await asyncio.wait_for(proc.wait(), COMMAND_TIMEOUT.total_seconds())
            except TimeoutError:
                signal_group(proc, signal.SIGKILL)
                await proc.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), 1.0)
        finally:
            for pending in (reader, writer):
                if not pending.done():
                    pending.cancel()
                    with contextlib.suppress(BaseException):
                        await pending
        text = bytes(capture.head + capture.tail).decode("utf-8", "replace")
        return proc.returncode, self._detail(text)


def _short(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
