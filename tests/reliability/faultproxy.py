"""A TCP proxy in front of a local server that can refuse, drop or stall connections.

The stand-in injects HTTP-level faults itself (429, 5xx, 401, slow, drop), but Azurite is the
real queue emulator and has no fault switch, and "nothing listening" cannot be injected from
inside a server. This proxy sits between a client and any 127.0.0.1 server (TLS passes through
untouched) and is switched at run time:

* ``pass``: forward bytes both ways;
* ``refuse``: the listening socket is closed: connections are refused (the server is gone);
* ``drop``: accept, then close at once (connection reset / dropped);
* ``stall``: accept and never answer (a service slower than any timeout);
* ``http:<status>`` (plain-HTTP targets such as Azurite only): answer every request with that
  status and no body, ``http:<status>:<retry-after>`` adds a ``Retry-After`` header.

It runs its own event loop in a daemon thread; ``close()`` stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

Mode = str  # "pass" | "refuse" | "drop" | "stall" | "http:<status>[:<retry-after>]"


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port`` unless told otherwise."""

    def __init__(self, target_port: int, port: int = 0) -> None:
        self.target_port = target_port
        if not port:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
        self.port = port
        self.mode: Mode = "pass"
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="fault-proxy")
        self._thread.start()
        self._call(self._listen())

    def _call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port,
                                                      reuse_address=True)

    async def _unlisten(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self._cut()  # existing connections go too, like a dead server

    async def _cut(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _switch(self, mode: Mode) -> None:
        if mode == "refuse":
            await self._unlisten()
            return
        await self._listen()
        # A switch reaches the connections already open too (a client's keep-alive
        # connection would otherwise go on as before: passing traffic under a fault, or
        # answering the fault after it cleared): they are cut, as when a server fails
        # over, and the client's next connection meets the new mode.
        await self._cut()

    def set(self, mode: Mode) -> None:
        """Switch the fault (``refuse`` closes the listener, anything else reopens it)."""
        self.mode = mode
        self._call(self._switch(mode))

    def close(self) -> None:
        """Stop listening and end the thread."""
        with contextlib.suppress(Exception):
            self._call(self._unlisten())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.accepted += 1
        try:
            if self.mode == "drop":
                writer.transport.abort()
                return
            if self.mode == "stall":
                await asyncio.sleep(3600)
                return
            if self.mode.startswith("http:"):
                await _answer(reader, writer, self.mode)
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        except (OSError, asyncio.CancelledError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(OSError):
            writer.write_eof()


_REASONS = {401: "Unauthorized", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable"}


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, mode: str) -> None:
    """Answer each request on this connection with the canned status (keep-alive aware)."""
    _, status_text, *rest = mode.split(":")
    status = int(status_text)
    extra = f"Retry-After: {rest[0]}\r\n" if rest else ""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if length:
            await reader.readexactly(length)
        writer.write(
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Server: fault-proxy\r\nx-ms-error-code: InjectedFault\r\n{extra}"
            "Content-Length: 0\r\n\r\n".encode())
        await writer.drain()
