"""A local alert receiver for tests (127.0.0.1 only): records every request, answers with
the statuses it is told (then 200/202), like a webhook or PagerDuty's Events API v2."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    """What a receiver got: (method, path, JSON body or None), in order."""

    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered first, one per request
    echo: str = ""  # a text put in every answer (a receiver echoing a key)

    def bodies(self, path: str | None = None) -> list[Any]:
        return [b for _, p, b in self.requests if path is None or p == path]


@asynccontextmanager
async def receiver(ok_status: int = 200) -> AsyncIterator[tuple[str, Received]]:
    """``(base URL, Received)`` of a receiver serving on 127.0.0.1 until the block ends."""
    got = Received()

    async def handle(request: web.Request) -> web.Response:
        text = await request.text()
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = text
        got.requests.append((request.method, request.path, body))
        status = got.statuses.pop(0) if got.statuses else ok_status
        return web.json_response({"status": "success" if status < 300 else "error",
                                  "message": f"answer {status} {got.echo}".strip()},
                                 status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", got
    finally:
        await runner.cleanup()
