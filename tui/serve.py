"""``aumwatch serve``: the dashboard in a browser, safe enough for a shared jump host.

Built on textual-serve (an aiohttp server; each websocket gets its own app process whose
screen is drawn by xterm.js in the page). What this module adds to it:

* an access token: the page (``/?token=T``) and the websocket (``/ws/T``) need it, compared in
  constant time; a wrong or missing one is a 403 and no process is started;
* a bound on the processes (``max_viewers``): beyond it a 503 and nothing is spawned;
* the viewer's dashboard is started from an argument list (no shell) as the serving user
  would start it, ``--read-only`` unless the server allows cancel, with ``AUMWATCH_SERVED``
  set so that a cancel's audit identity says "via browser" (services/azure/cancel.py);
* a clean end: a closed tab ends its process, and so does the server's shutdown (SIGTERM);
  a process that does not quit when asked is terminated, then killed;
* its own page: no third-party fonts or scripts, security headers, and nothing from Azure in
  the HTML (the dashboard's text only ever reaches the page as terminal bytes for xterm.js).
"""

from __future__ import annotations

import asyncio
import ctypes
import hmac
import html
import ipaddress
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.web_runner import GracefulExit
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from services.azure.cancel import SERVED_ENV

log = logging.getLogger("aumwatch.serve")

DEFAULT_MAX_VIEWERS = 10

#: How long a viewer's dashboard gets to quit when asked, then to die when terminated.
QUIT_GRACE = 5.0

# The page is ours (not textual-serve's template): it loads nothing from another site (the
# token is in its address) and its only variable parts are our own URLs, escaped anyway.
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<title>aumwatch</title>
<link rel="stylesheet" href="{static}css/xterm.css">
<script src="{static}js/textual.js"></script>
<style>
@font-face {{ font-family: "Roboto Mono";
  src: url("{static}fonts/RobotoMono-VariableFont_wght.ttf") format("truetype"); }}
html, body {{ margin: 0; height: 100%; background: #0c181f; overflow: hidden; }}
#terminal {{ position: absolute; inset: 4px; }}
.ended {{ display: none; position: absolute; inset: 0; z-index: 10; align-items: center;
  justify-content: center; background: rgba(12, 24, 31, 0.92); color: #eee;
  font: 16px "Roboto Mono", monospace; }}
body.-closed .ended {{ display: flex; }}
</style>
</head>
<body>
<div class="ended"><p>The dashboard session ended. Reload the page to start a new one.</p></div>
<div id="terminal" class="textual-terminal" data-session-websocket-url="{websocket}"
 data-font-size="{font_size}"></div>
<script src="/focus.js"></script>
</body>
</html>
"""

# Keys typed into the page reach the dashboard only while xterm.js's input has the focus: give
# it the focus once the session is connected (textual.js marks the body "-loaded" then), so
# no click is needed. xterm.js then tells the dashboard the page has the focus. A file of
# its own, since the page's policy allows no inline script.
FOCUS_SCRIPT = """\
(function () {
  "use strict";
  function focusTerminal() {
    if (!document.body.classList.contains("-loaded")) { return false; }
    var input = document.querySelector("#terminal .xterm-helper-textarea");
    if (!input) { return false; }
    input.focus();
    return true;
  }
  if (focusTerminal()) { return; }
  var watch = new MutationObserver(function () {
    if (focusTerminal()) { watch.disconnect(); }
  });
  watch.observe(document.body, { attributes: true, attributeFilter: ["class"] });
})();
"""

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Scripts only from this server; no framing (the page acts with the serving user's rights).
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; "
                                "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                                "connect-src 'self' ws: wss:; object-src 'none'; "
                                "base-uri 'none'; frame-ancestors 'none'"),
}


def is_loopback(host: str) -> bool:
    """True when ``host`` (an address or ``localhost``) is reachable only from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _end_with_server() -> None:  # runs in the child between fork and exec
    # Even a server killed with SIGKILL leaves no dashboard behind: the kernel sends the
    # child SIGTERM, which the dashboard turns into a clean exit (tui/hangup.py).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def dashboard_argv(config: str | None, *, allow_cancel: bool,
                   tenant: str | None = None) -> list[str]:
    """The command each viewer's dashboard runs: `aumwatch dashboard` as the serving user
    (``tenant``: only that profile, issue 19)."""
    argv = [sys.executable, "-m", "tui", "dashboard"]
    if config is not None:
        argv += ["--config", str(Path(config).expanduser().resolve())]
    if tenant:
        argv += ["--tenant", tenant]
    if not allow_cancel:
        argv.append("--read-only")
    return argv


class ViewerProcess(AppService):
    """One viewer's dashboard process: started without a shell, always ended."""

    def __init__(self, argv: Sequence[str], **kwargs: Any) -> None:
        super().__init__(" ".join(argv), **kwargs)
        self.argv = list(argv)

    @property
    def pid(self) -> int | None:
        """The dashboard's process id, once started."""
        return self._process.pid if self._process is not None else None

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        environment = super()._build_environment(width, height)
        environment[SERVED_ENV] = "browser"
        return environment

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Any:
        # An argument list, not textual-serve's shell command: a config path with spaces or
        # quotes stays one argument, and the pid is the dashboard's own (nothing in between).
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._build_environment(width=width, height=height),
            preexec_fn=_end_with_server if sys.platform == "linux" else None,
        )
        assert process.stdin is not None
        self._stdin = process.stdin
        return process

    async def stop(self) -> None:
        """Ask the dashboard to quit; terminate it, then kill it, if it does not."""
        process = self._process
        if self._task is not None:
            try:
                await asyncio.wait_for(super().stop(), QUIT_GRACE)
            except Exception:  # a timeout or anything else: it is ended below
                log.warning("a viewer's dashboard did not quit when asked; terminating it")
                self._task = None
        if process is None:
            return
        try:  # its output has ended; give its own exit the same grace
            await asyncio.wait_for(process.wait(), QUIT_GRACE)
            return
        except TimeoutError:
            pass
        for end in (process.terminate, process.kill):
            try:
                end()
            except ProcessLookupError:
                return
            try:
                await asyncio.wait_for(process.wait(), QUIT_GRACE)
                return
            except TimeoutError:
                continue


class DashboardServer(Server):
    """textual-serve's server with a token, a viewer limit and a clean shutdown."""

    def __init__(self, argv: Sequence[str], *, token: str, host: str = "127.0.0.1",
                 port: int = 8080, max_viewers: int = DEFAULT_MAX_VIEWERS) -> None:
        super().__init__(" ".join(argv), host=host, port=port, title="aumwatch")
        self.argv = list(argv)
        self.token = token
        self.max_viewers = max_viewers
        self.viewers: set[ViewerProcess] = set()
        self._sockets: set[web.WebSocketResponse] = set()

    # -- the token ------------------------------------------------------------------------

    def token_ok(self, given: str | None) -> bool:
        """``given`` is the access token (constant-time comparison)."""
        if not given:
            return False
        return hmac.compare_digest(given.encode("utf-8"), self.token.encode("utf-8"))

    def page_url(self) -> str:
        """The address to open, token included (printed once at start)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/?token={self.token}"

    # -- the web application --------------------------------------------------------------

    async def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._headers])
        app.add_routes([
            web.get("/", self.handle_index, name="index"),
            web.get("/ws/{token}", self.handle_websocket, name="websocket"),
            web.get("/focus.js", self.handle_focus_script, name="focus"),
            web.static("/static", self.statics_path, show_index=False, name="static"),
        ])
        # No download route: the dashboard delivers no files to the browser.
        app.on_startup.append(self.on_startup)
        app.on_shutdown.append(self.on_shutdown)
        return app

    @web.middleware
    async def _headers(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            response = exc
        if not response.prepared:
            response.headers.update(_HEADERS)
        if isinstance(response, web.HTTPException) and not response.prepared:
            raise response
        return response

    def _limit_reached(self) -> web.HTTPServiceUnavailable:
        return web.HTTPServiceUnavailable(
            text=f"aumwatch serve: viewer limit {self.max_viewers} reached "
                 f"({len(self.viewers)} viewers); close another tab and reload.\n")

    async def handle_index(self, request: web.Request) -> web.Response:  # type: ignore[override]
        """The page: a terminal whose websocket carries the token."""
        if not self.token_ok(request.query.get("token")):
            raise web.HTTPForbidden(text="aumwatch serve: a valid access token is needed "
                                         "(the URL printed when the server started).\n")
        if len(self.viewers) >= self.max_viewers:
            raise self._limit_reached()
        # The websocket goes back to the address the browser used (an SSH tunnel may map
        # another local port), with the token in its path: textual.js appends its own query.
        scheme = "wss" if request.secure else "ws"
        websocket = f"{scheme}://{request.host}/ws/{self.token}"
        page = _PAGE.format(static="/static/", websocket=html.escape(websocket, quote=True),
                            font_size=to_int(request.query.get("fontsize", "16"), 16))
        return web.Response(text=page, content_type="text/html")

    async def handle_focus_script(self, request: web.Request) -> web.Response:
        """The page's one script of ours: focus the terminal once connected (no secret in
        it, so like textual-serve's static files it needs no token)."""
        return web.Response(text=FOCUS_SCRIPT, content_type="text/javascript")

    def _same_origin(self, request: web.Request) -> bool:
        # Browsers send Origin on a websocket; another site's page must not drive a viewer.
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        return urlsplit(origin).netloc.lower() == request.host.lower()

    async def handle_websocket(  # type: ignore[override]
            self, request: web.Request) -> web.WebSocketResponse:
        """One viewer: check token, origin and limit BEFORE anything is spawned."""
        if not self.token_ok(request.match_info.get("token")) or not self._same_origin(request):
            raise web.HTTPForbidden(text="aumwatch serve: forbidden\n")
        if len(self.viewers) >= self.max_viewers:
            raise self._limit_reached()
        websocket = web.WebSocketResponse(heartbeat=15)
        viewer = ViewerProcess(self.argv, write_bytes=websocket.send_bytes,
                               write_str=websocket.send_str, close=websocket.close,
                               download_manager=self.download_manager)
        # Counted from here (no await since the check), so the limit holds under a burst.
        self.viewers.add(viewer)
        self._sockets.add(websocket)
        try:
            await websocket.prepare(request)
            await viewer.start(to_int(request.query.get("width", "80"), 80),
                               to_int(request.query.get("height", "24"), 24))
            log.info("viewer started (pid %s); %d of %d", viewer.pid, len(self.viewers),
                     self.max_viewers)
            await self._process_messages(websocket, viewer)
        except asyncio.CancelledError:
            pass
        except Exception:  # one viewer's failure must not take the server down
            log.exception("viewer failed")
        finally:
            await viewer.stop()
            self.viewers.discard(viewer)
            self._sockets.discard(websocket)
            if not websocket.closed:
                await websocket.close()
            log.info("viewer ended (pid %s); %d left", viewer.pid, len(self.viewers))
        return websocket

    # -- start and end --------------------------------------------------------------------

    async def on_startup(self, app: web.Application) -> None:
        """Print the address (with the token) once."""
        print(f"aumwatch serve: open {self.page_url()}", flush=True)
        print(f"aumwatch serve: up to {self.max_viewers} viewers; SIGTERM or Ctrl+C stops "
              "every viewer and the server", flush=True)

    async def on_shutdown(self, app: web.Application) -> None:
        """End every viewer's dashboard and close its websocket."""
        await asyncio.gather(*(viewer.stop() for viewer in list(self.viewers)),
                             return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in list(self._sockets)),
                             return_exceptions=True)

    def request_exit(self) -> None:
        """Stop serving (on SIGTERM / SIGINT)."""
        raise GracefulExit()

    def serve(self, debug: bool = False) -> None:
        """Serve until SIGTERM or SIGINT; every viewer's process is ended before returning."""
        logging.basicConfig(level=logging.INFO, format="aumwatch serve: %(message)s",
                            stream=sys.stderr)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.add_signal_handler(signal.SIGINT, self.request_exit)
        loop.add_signal_handler(signal.SIGTERM, self.request_exit)
        web.run_app(self._make_app(), host=self.host, port=self.port, handle_signals=False,
                    loop=loop, print=None, shutdown_timeout=QUIT_GRACE * 2,
                    # No access log: every page and websocket address holds the token.
                    access_log=None)

