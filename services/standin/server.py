"""The stand-in's HTTPS server: Resource Manager (maintenance) and Resource Graph.

It speaks the real wire protocol so the real SDK clients (azure-mgmt-maintenance,
azure-mgmt-resourcegraph; sync and aio) work unchanged with ``base_url=server.endpoint``,
``connection_verify=server.ca_file`` and a credential returning ``server.token``.

Routes (paths and names case-insensitive, as ARM's are):

* ``GET /subscriptions/{s}/providers/Microsoft.Maintenance/maintenanceConfigurations``
* ``GET /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Maintenance/``
  ``maintenanceConfigurations``
* ``GET|PUT .../maintenanceConfigurations/{name}`` (PUT creates or replaces it: a schedule
  edit, which cancels a run starting less than 40 minutes later, see :mod:`.world`)
* ``GET|PUT .../maintenanceConfigurations/{mc}/providers/Microsoft.Maintenance/applyUpdates/{run}``
  (PUT ``{"properties":{"status":"Cancel"}}`` cancels, through :meth:`World.cancel`; as a
  create-or-update, on an unknown run id it answers 201 and creates a phantom run)
* ``POST /providers/Microsoft.ResourceGraph/resources`` (KQL through :mod:`services.standin.graph`)
* Event Grid (:mod:`services.standin.eventgrid`): ``GET .../providers/Microsoft.EventGrid/``
  ``systemTopics`` (by subscription or resource group), ``GET|PUT|DELETE .../systemTopics/{t}``,
  ``GET .../systemTopics/{t}/eventSubscriptions``, ``GET|PUT|DELETE .../eventSubscriptions/{n}``,
  ``POST .../eventSubscriptions/{n}/getFullUrl``, ``GET /subscriptions/{s}/providers/``
  ``Microsoft.EventGrid/locations/{l}/operationsStatus/{id}`` (the long-running operations)
* Role assignments (:mod:`services.standin.roles`):
  ``GET {scope}/providers/Microsoft.Authorization/roleAssignments[?$filter=principalId eq '..']``,
  ``GET|PUT|DELETE {scope}/providers/Microsoft.Authorization/roleAssignments/{guid}``
* ``GET {system topic id}/providers/Microsoft.Insights/metrics`` (Azure Monitor metrics,
  :mod:`services.standin.metrics`; ``$filter=EventSubscriptionName eq '*'`` splits by
  event subscription)
* admin, same token, never faulted: ``GET|POST|DELETE /_sim/faults``, ``GET|POST /_sim/clock``
  (``{"now", "replay_of"}``: the capture's moment when replaying one, else null),
  ``GET|POST|DELETE /_sim/broken-endpoints`` (an event subscription whose endpoint fails)

Its bearer token (unless one is given) is shaped like an Entra access token: a JWT whose
claims name a caller (``upn`` ``operator@contoso.example``, an ``oid``, ``tid``, ``appid``),
so what aumwatch reads of it for the cancel audit (``token_identity``) is a real who; its
signature is random (nothing verifies it: the server compares the whole token).

Every answer carries ``Date`` from the World's clock (clients measure skew from it) and
``x-ms-request-id``. Resource Graph answers carry ``x-ms-user-quota-remaining`` and
``x-ms-user-quota-resets-after``; the quota (15 queries per 5 s per token by default) runs on
real time, because the SDK waits in real time. A quota 429 has no ``Retry-After`` (as ARG:
clients back off from the resets-after header; azure-core does not retry such a POST).

List paging: api-version 2023-04-01's list result has no ``nextLink`` and the stable SDK's
pager never follows one (its ``extract_data`` returns no continuation), so by default a list
is one page. ``arm_page_size`` turns on ``nextLink`` pages (``$skiptoken``) for callers that
follow links themselves; the stable SDK would then see only the first page.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import email.utils
import hmac
import json
import re
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from services.domain.clock import iso_z
from services.domain.schedule import ScheduleError
from services.standin.eventgrid import EVENTGRID_API_VERSIONS
from services.standin.faults import Fault, Faults
from services.standin.lag import ArgLag
from services.standin.metrics import METRICS_API_VERSIONS
from services.standin.roles import AUTHORIZATION_API_VERSIONS
from services.standin.world import World, arm_error, configuration_schedule

#: api-versions of Microsoft.Maintenance the stand-in accepts; the cancel-capable subset.
MAINTENANCE_API_VERSIONS: frozenset[str] = frozenset({
    "2023-04-01", "2023-09-01-preview", "2023-10-01-preview", "2025-10-01-preview",
    "2026-02-01-preview", "2025-11-01",
})
CANCEL_API_VERSIONS: frozenset[str] = MAINTENANCE_API_VERSIONS - {"2023-04-01"}
#: api-versions of Microsoft.ResourceGraph/resources the stand-in accepts.
GRAPH_API_VERSIONS: frozenset[str] = frozenset({
    "2019-04-01", "2020-04-01-preview", "2021-03-01", "2021-06-01-preview", "2022-10-01",
    "2024-04-01",
})
DEFAULT_QUOTA_LIMIT = 15
#: Who the stand-in's own token says its caller is (the demo operator).
STANDIN_UPN = "operator@contoso.example"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def standin_token(tenant_id: str, *, upn: str = STANDIN_UPN, now: float | None = None) -> str:
    """A bearer token shaped like an Entra ID access token (``header.claims.signature``,
    base64url): the claims an Azure client may read for an audit (``upn``, ``oid``, ``tid``,
    ``appid``, ``iat``/``exp``) and a random signature, so it is also unguessable."""
    issued = int(time.time() if now is None else now)
    header = {"typ": "JWT", "alg": "RS256", "kid": "standin"}
    claims = {
        "aud": "https://management.azure.com/", "iss": f"https://sts.windows.net/{tenant_id}/",
        "iat": issued, "nbf": issued, "exp": issued + 10 * 365 * 86400,
        "tid": tenant_id, "oid": str(uuid.uuid4()), "upn": upn, "unique_name": upn,
        "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",  # the Azure CLI's public client id
        "name": "Stand-in Operator", "scp": "user_impersonation",
    }
    parts = (json.dumps(header, separators=(",", ":")).encode(),
             json.dumps(claims, separators=(",", ":")).encode(), secrets.token_bytes(32))
    return ".".join(_b64url(p) for p in parts)


DEFAULT_QUOTA_WINDOW = 5.0

_CFG = (r"/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)"
        r"/providers/microsoft\.maintenance/maintenanceconfigurations")
_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("list_sub", re.compile(
        r"^/subscriptions/(?P<sub>[^/]+)/providers/microsoft\.maintenance/maintenanceconfigurations$")),
    ("list_rg", re.compile(rf"^{_CFG}$")),
    ("get_cfg", re.compile(rf"^{_CFG}/(?P<name>[^/]+)$")),
    ("apply_update", re.compile(
        rf"^{_CFG}/(?P<name>[^/]+)/providers/microsoft\.maintenance/applyupdates/(?P<run>[^/]+)$")),
]
_GRAPH_PATH = "/providers/microsoft.resourcegraph/resources"
_SUB = r"/subscriptions/(?P<sub>[^/]+)"
_RG = _SUB + r"/resourcegroups/(?P<rg>[^/]+)"
_TOPIC = _RG + r"/providers/microsoft\.eventgrid/systemtopics/(?P<topic>[^/]+)"
_EG_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(pattern, re.IGNORECASE)) for name, pattern in (
        ("topics_sub", rf"^{_SUB}/providers/microsoft\.eventgrid/systemtopics$"),
        ("topics_rg", rf"^{_RG}/providers/microsoft\.eventgrid/systemtopics$"),
        ("topic", rf"^{_TOPIC}$"),
        ("subs", rf"^{_TOPIC}/eventsubscriptions$"),
        ("sub", rf"^{_TOPIC}/eventsubscriptions/(?P<name>[^/]+)$"),
        ("full_url", rf"^{_TOPIC}/eventsubscriptions/(?P<name>[^/]+)/getfullurl$"),
        ("operation", rf"^{_SUB}/providers/microsoft\.eventgrid/locations/(?P<loc>[^/]+)"
                      r"/operationsstatus/(?P<op>[^/]+)$"),
    )
]
_ROLE_ROUTE = re.compile(r"^(?P<scope>/subscriptions/[^/]+(?:/.*?)?)"
                         r"/providers/microsoft\.authorization/roleassignments"
                         r"(?:/(?P<name>[^/]+))?$", re.IGNORECASE)
_METRICS_ROUTE = re.compile(r"^(?P<res>/subscriptions/.+)/providers/microsoft\.insights/metrics$",
                            re.IGNORECASE)


class Quota:
    """ARG's per-user query quota: ``limit`` queries per fixed ``window`` seconds, real time."""

    def __init__(self, limit: int = DEFAULT_QUOTA_LIMIT, window: float = DEFAULT_QUOTA_WINDOW,
                 ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"quota needs limit >= 1 and window > 0, not {limit}/{window}")
        self.limit = limit
        self.window = window
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, int]] = {}  # key -> (window start, used)

    def consume(self, key: str) -> tuple[bool, int, float]:
        """Count one query; return (allowed, remaining after it, seconds until the reset)."""
        now = time.monotonic()
        with self._lock:
            start, used = self._state.get(key, (now, 0))
            if now - start >= self.window:
                start, used = now, 0
            allowed = used < self.limit
            if allowed:
                used += 1
            self._state[key] = (start, used)
            return allowed, self.limit - used, max(0.0, start + self.window - now)


def _hhmmss(seconds: float) -> str:
    # Rounded up, as a client waiting this long must find the window reset.
    total = int(-(-seconds // 1))
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


@dataclass
class _Answer:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass(frozen=True)
class SimTenant:
    """One tenant the stand-in plays (issue 19): its id, token and subscriptions."""

    tenant_id: str
    token: str = field(repr=False)
    owned: frozenset[str]
    delegated: frozenset[str] = frozenset()

    @property
    def visible(self) -> frozenset[str]:
        """The subscriptions its token reaches (lower case)."""
        return self.owned | self.delegated

    @property
    def object_id(self) -> str:
        """The signed-in principal's object id, as ARM names it in a 403."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, "aumwatch-standin/" + self.tenant_id))


class StandInServer:
    """The HTTPS stand-in, run on its own event loop in a background thread.

    ``quota_limit``/``quota_window`` set the Resource Graph quota (real ARG: 15 per 5 s);
    tests that are not about the quota raise the limit. ``arm_page_size`` pages maintenance
    lists with ``nextLink`` (off by default, see the module docstring).

    ``arg_lag``: how long a change takes to show in Resource Graph (:mod:`services.standin.lag`):
    None (the default) draws 5-90 s per change, as the real index lags; a number is a fixed lag
    in seconds (0: every change visible at once); or an :class:`ArgLag`. ARM reads are always
    current. What the World holds when the server starts is visible at once; call
    :meth:`settle` to make later additions visible at once too (e.g. a test's setup).
    """

    def __init__(
        self,
        world: World,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        faults: Faults | None = None,
        state_dir: Path | None = None,
        quota_limit: int = DEFAULT_QUOTA_LIMIT,
        quota_window: float = DEFAULT_QUOTA_WINDOW,
        arm_page_size: int | None = None,
        arg_lag: float | ArgLag | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the stand-in listens on loopback only, not {host!r}")
        if arm_page_size is not None and arm_page_size < 1:
            raise ValueError(f"arm_page_size must be at least 1, not {arm_page_size}")
        self.world = world
        self.host = host
        self.port = port
        self.token = token or standin_token(world.tenant_id)
        self.faults = faults or Faults()
        self.quota = Quota(quota_limit, quota_window)
        self.arm_page_size = arm_page_size
        self.arg_lag = ArgLag.of(arg_lag)
        self._own_state_dir = state_dir is None
        self.state_dir = (Path(state_dir) if state_dir
                          else Path(tempfile.mkdtemp(prefix="aumwatch-sim-")))
        self.endpoint = ""
        self.ca_file = ""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._stopped = False
        self._graph: Any = None
        #: Issue 19: the tenants it plays, by token (see :meth:`add_tenant`); the server's
        #: own ``token`` stays the operator's, seeing every subscription.
        self.tenants: dict[str, SimTenant] = {}

    def add_tenant(self, tenant_id: str, subscriptions: Sequence[str], *,
                   token: str | None = None, delegated: Sequence[str] = ()) -> SimTenant:
        """Play one more tenant: ``subscriptions`` are its own (rows show it as their
        ``tenantId``), ``delegated`` are other tenants' it sees through Lighthouse. Its token
        is refused (403) outside them. Returns the tenant (its ``token``)."""
        # Shaped like an Entra token of that tenant (``tid``), so a cancel sent with it is
        # audited with a real who, as with the stand-in's own token.
        tenant = SimTenant(tenant_id, token or standin_token(tenant_id),
                           frozenset(s.lower() for s in subscriptions),
                           frozenset(s.lower() for s in delegated))
        with self.world.lock:
            for sub in tenant.owned:
                self.world.subscription_tenants[sub] = tenant_id
            self.world.version += 1  # the rows' tenantId changed: Resource Graph reloads
        self.settle()
        self.tenants[tenant.token] = tenant
        return tenant

    def _tenant_of(self, request: Any) -> SimTenant | None:
        value = request.headers.get("Authorization", "").partition(" ")[2].strip()
        return self.tenants.get(value)

    @property
    def graph_table_loads(self) -> int:
        """How often the Resource Graph tables were loaded from the World (cache check)."""
        return self._graph.loads if self._graph is not None else 0

    def settle(self) -> None:
        """Make every change so far visible to Resource Graph at once (no lag for them)."""
        if self._graph is not None:
            self._graph.settle()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start serving; returns once the server accepts connections (raises if it cannot)."""
        if self._thread is not None:
            raise RuntimeError("the stand-in server is already started")
        from services.standin import certs
        from services.standin.graph import GraphEngine

        tls = certs.generate(self.state_dir)
        self.ca_file = str(tls.ca_file)
        self._graph = GraphEngine(self.world, scratch_dir=str(self.state_dir), lag=self.arg_lag)
        self._thread = threading.Thread(target=self._serve, args=(tls.ssl_context,),
                                        name="aumwatch-standin", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._startup_error is not None:
            self._thread.join(timeout=5)
            raise RuntimeError(f"the stand-in server did not start: {self._startup_error}") \
                from self._startup_error
        if not self._ready.is_set():
            raise RuntimeError("the stand-in server did not start within 30 s")

    def stop(self) -> None:
        """Stop serving and join the thread; safe to call more than once."""
        if self._stopped:
            return
        self._stopped = True
        loop, stop_event = self._loop, self._stop_event
        if loop is not None and stop_event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop_event.set)
            except RuntimeError:  # loop already closed between the check and the call
                pass
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self._graph is not None:
            self._graph.close()
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> StandInServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _serve(self, ssl_context: Any) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ssl_context))
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._startup_error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _main(self, ssl_context: Any) -> None:
        from aiohttp import web

        self._stop_event = asyncio.Event()
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A short grace: a "slow" fault must not hold stop() for its whole delay.
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               shutdown_timeout=0.5)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, ssl_context=ssl_context)
            await site.start()
            server = site._server  # aiohttp exposes the bound port only here
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.endpoint = f"https://{host}:{self.port}"
            self._ready.set()
            if self._stopped:  # stop() raced start()
                return
            await self._stop_event.wait()
        finally:
            await runner.cleanup()

    # -- request handling ------------------------------------------------------------------
    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        request_id = str(uuid.uuid4())
        path = request.path.rstrip("/").lower() or "/"
        try:
            if path.startswith("/_sim/"):
                answer = await self._admin(request, path)
            else:
                scope = "graph" if path == _GRAPH_PATH else "arm"
                answer = await self._with_faults(request, path, scope)
        except _Dropped:
            # Close without answering: the client sees the connection go away. aiohttp then
            # finds nothing to write to and drops the placeholder response quietly.
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=204)
        except Exception as exc:  # never let a bug become an HTML 500 page
            answer = _Answer(500, arm_error("InternalServerError",
                                            f"The stand-in failed: {type(exc).__name__}: {exc}"),
                             {})
        headers = {
            "Date": email.utils.format_datetime(self.world.clock.now().astimezone(UTC),
                                                usegmt=True),
            "x-ms-request-id": request_id,
            "x-ms-correlation-request-id": request.headers.get("x-ms-client-request-id",
                                                               request_id),
            **answer.headers,
        }
        if answer.body is None:
            return web.Response(status=answer.status, headers=headers)
        return web.Response(status=answer.status, headers=headers,
                            text=json.dumps(answer.body), content_type="application/json")

    async def _with_faults(self, request: Any, path: str, scope: str) -> _Answer:
        fault = self.faults.take(scope)
        if fault is not None:
            answer = await self._apply_fault(fault, scope)
            if answer is not None:
                return answer
        denied = self._check_token(request)
        if denied is not None:
            return denied
        tenant = self._tenant_of(request)
        if scope == "graph":
            return await self._graph_query(request, tenant)
        if tenant is not None:
            match = re.match(r"^/subscriptions/([^/]+)", path)
            if match and match.group(1).lower() not in tenant.visible:
                return _Answer(403, arm_error(
                    "AuthorizationFailed",
                    f"The client with object id '{tenant.object_id}' does not have "
                    f"authorization to perform action over scope '{request.path}' or the "
                    "scope is invalid. If access was recently granted, please refresh your "
                    "credentials."), {})
        return await self._arm(request, path)

    async def _apply_fault(self, fault: Fault, scope: str) -> _Answer | None:
        kind = fault.kind
        if kind == "slow":
            await asyncio.sleep(fault.delay if fault.delay is not None else 5.0)
            return None
        if kind == "drop":
            raise _Dropped
        if kind in ("throttle", "throttle-no-retry-after"):
            headers: dict[str, str] = {}
            if kind == "throttle":
                ra = fault.retry_after if fault.retry_after is not None else 1.0
                headers["Retry-After"] = str(int(ra)) if ra == int(ra) else str(ra)
            if scope == "graph":
                headers["x-ms-user-quota-remaining"] = "0"
                headers["x-ms-user-quota-resets-after"] = _hhmmss(fault.retry_after or 1.0)
                return _Answer(429, _throttled_body(), headers)
            return _Answer(429, arm_error(
                "SubscriptionRequestsThrottled",
                "Number of requests for this subscription exceeded the limit. Please try again "
                "later (injected fault)."), headers)
        if kind == "error500":
            return _Answer(500, arm_error("InternalServerError",
                                          "Encountered internal server error (injected fault)."),
                           {})
        if kind == "error503":
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(int(fault.retry_after))
            return _Answer(503, arm_error("ServiceUnavailable",
                                          "The service is temporarily unavailable (injected "
                                          "fault)."), headers)
        if kind == "expired-token":
            now = self.world.clock.now()
            body = arm_error(
                "ExpiredAuthenticationToken",
                f"The access token expiry UTC time '{_arm_time(now - timedelta(minutes=5))}' is "
                f"earlier than current UTC time '{_arm_time(now)}'.")
            return _Answer(401, body, {"WWW-Authenticate": self._challenge(
                "invalid_token", "The access token has expired.")})
        return None

    def _challenge(self, error: str, description: str) -> str:
        return (f'Bearer authorization_uri="https://login.microsoftonline.com/'
                f'{self.world.tenant_id}", error="{error}", error_description="{description}"')

    def _check_token(self, request: Any) -> _Answer | None:
        header = request.headers.get("Authorization", "")
        if not header:
            return _Answer(401, arm_error(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing."),
                {"WWW-Authenticate": self._challenge(
                    "invalid_token",
                    "The authentication failed because of missing 'Authorization' header.")})
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip() in self.tenants:
            return None
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(),
                                                                 self.token.encode()):
            return _Answer(401, arm_error(
                "InvalidAuthenticationToken",
                "The access token is invalid."),
                {"WWW-Authenticate": self._challenge("invalid_token",
                                                     "The access token is invalid.")})
        return None

    # -- admin -----------------------------------------------------------------------------
    async def _admin(self, request: Any, path: str) -> _Answer:
        denied = self._check_token(request)
        if denied is None and self._tenant_of(request) is not None:
            # A tenant's token reads its tenant; only the operator's drives the stand-in.
            return _Answer(403, arm_error("AuthorizationFailed",
                                          "A tenant's token cannot use /_sim/."), {})
        if denied is not None:
            return denied
        if path == "/_sim/faults":
            if request.method == "GET":
                return _Answer(200, {"faults": self.faults.active()}, {})
            if request.method == "DELETE":
                self.faults.clear()
                return _Answer(200, {"faults": []}, {})
            if request.method == "POST":
                body, bad = await _json_body(request)
                if bad is not None:
                    return bad
                try:
                    self.faults.apply_json(body)
                except ValueError as exc:
                    return _Answer(400, arm_error("InvalidFault", str(exc)), {})
                return _Answer(200, {"faults": self.faults.active()}, {})
        if path == "/_sim/clock":
            if request.method == "GET":
                # replay_of: the capture's moment when the World replays one (its clock
                # started there), so that doctor does not take the gap for a local fault.
                return _Answer(200, {"now": iso_z(self.world.clock.now()),
                                     "replay_of": iso_z(self.world.replay_of)}, {})
            if request.method == "POST":
                body, bad = await _json_body(request)
                if bad is not None:
                    return bad
                try:
                    self._move_clock(body)
                except ValueError as exc:
                    return _Answer(400, arm_error("InvalidClockChange", str(exc)), {})
                return _Answer(200, {"now": iso_z(self.world.clock.now())}, {})
        if path == "/_sim/broken-endpoints":
            return await self._admin_broken(request)
        if path in ("/_sim/faults", "/_sim/clock"):
            return _Answer(405, arm_error("MethodNotAllowed",
                                          f"{request.method} is not allowed on {path}."), {})
        return _Answer(404, arm_error("NotFound", f"No admin endpoint {path}."), {})

    async def _admin_broken(self, request: Any) -> _Answer:
        """``GET`` lists the event subscriptions whose endpoint is broken; ``POST
        {"event_subscription": "<id>", "broken": true|false}`` breaks (or mends) one;
        ``DELETE`` mends them all."""
        eg = self.world.eventgrid
        if request.method == "GET":
            return _Answer(200, {"broken": eg.broken()}, {})
        if request.method == "DELETE":
            eg.clear_broken()
            return _Answer(200, {"broken": []}, {})
        if request.method != "POST":
            return _Answer(405, arm_error("MethodNotAllowed",
                                          f"{request.method} is not allowed here."), {})
        body, bad = await _json_body(request)
        if bad is not None:
            return bad
        target = body.get("event_subscription") if isinstance(body, dict) else None
        broken = body.get("broken", True) if isinstance(body, dict) else None
        if not isinstance(target, str) or not isinstance(broken, bool):
            return _Answer(400, arm_error(
                "InvalidRequest", 'expected {"event_subscription": "<id>", "broken": true}'),
                {})
        if not eg.set_broken(target, broken):
            return _Answer(404, arm_error("NotFound",
                                          f"No event subscription {target}."), {})
        return _Answer(200, {"broken": eg.broken()}, {})

    def _move_clock(self, body: Any) -> None:
        """``{"shift_seconds": n}`` moves the clock by n seconds; ``{"set": iso}`` sets it."""
        if not isinstance(body, dict) or not ({"shift_seconds", "set"} & set(body)):
            raise ValueError("clock change needs 'shift_seconds' (number) or 'set' (ISO time)")
        clock: Any = self.world.clock
        if "set" in body:
            try:
                value = datetime.fromisoformat(str(body["set"]).replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"'set' is not an ISO 8601 time: {body['set']!r}") from None
            if value.tzinfo is None:
                raise ValueError("'set' needs a time zone (e.g. a trailing Z)")
            if not hasattr(clock, "set"):
                raise ValueError("this clock cannot be set")
            clock.set(value)
        if "shift_seconds" in body:
            shift = body["shift_seconds"]
            if isinstance(shift, bool) or not isinstance(shift, int | float):
                raise ValueError(f"'shift_seconds' must be a number, not {shift!r}")
            delta = timedelta(seconds=shift)
            if hasattr(clock, "shift"):
                clock.shift(delta)
            elif hasattr(clock, "advance"):
                clock.advance(delta)
            else:
                raise ValueError("this clock cannot be moved")

    # -- Resource Graph --------------------------------------------------------------------
    async def _graph_query(self, request: Any, tenant: SimTenant | None = None) -> _Answer:
        from services.standin.graph import GraphQueryError, GraphRequest

        allowed, remaining, resets = self.quota.consume(request.headers.get("Authorization", ""))
        quota_headers = {"x-ms-user-quota-remaining": str(max(remaining, 0)),
                         "x-ms-user-quota-resets-after": _hhmmss(resets)}
        if not allowed:
            return _Answer(429, _throttled_body(), quota_headers)
        if request.method != "POST":
            return _Answer(405, arm_error("MethodNotAllowed",
                                          "Resource Graph queries are sent with POST."),
                           quota_headers)
        version = request.query.get("api-version")
        bad_version = _check_api_version(version, GRAPH_API_VERSIONS,
                                         "Microsoft.ResourceGraph/resources")
        if bad_version is not None:
            bad_version.headers.update(quota_headers)
            return bad_version
        body, bad = await _json_body(request)
        if bad is not None:
            bad.headers.update(quota_headers)
            return bad
        try:
            graph_request = GraphRequest.from_json(body)
            if tenant is not None:
                # The token decides what Resource Graph shows: its tenant's subscriptions
                # and those delegated to it, whatever the body asks.
                asked = {s.lower() for s in graph_request.subscriptions}
                seen = (tenant.visible & asked) if asked else tenant.visible
                graph_request = dataclasses.replace(
                    graph_request, subscriptions=tuple(sorted(seen)) or ("-none-",),
                    management_groups=())
            result = await asyncio.to_thread(self._graph.execute, graph_request)
        except GraphQueryError as exc:
            return _Answer(400, exc.body(), quota_headers)
        return _Answer(200, result, quota_headers)

    # -- Resource Manager ------------------------------------------------------------------
    async def _arm(self, request: Any, path: str) -> _Answer:
        # The metrics and role assignments of a resource first: their paths hold its id.
        if path.endswith("/providers/microsoft.insights/metrics"):
            return await self._metrics(request)
        if "/providers/microsoft.authorization/roleassignments" in path:
            return await self._role_assignments(request)
        if "/providers/microsoft.eventgrid/" in path:
            return await self._eventgrid(request)
        route, match = _route(path)
        if route is None or match is None:
            return _unknown_resource_type(request.path)
        version = request.query.get("api-version")
        refused = self._refuse(version, MAINTENANCE_API_VERSIONS, "Microsoft.Maintenance",
                               match.group("sub"))
        if refused is not None:
            return refused
        sub = match.group("sub")
        method = request.method
        reads = {"x-ms-ratelimit-remaining-subscription-reads": "11999"}
        if route in ("list_sub", "list_rg"):
            if method != "GET":
                return _method_not_allowed(method)
            rg = match.group("rg") if route == "list_rg" else None
            configs = self.world.configurations(sub, rg)
            return self._page(request, configs, reads)
        if route == "get_cfg":
            if method == "PUT":
                return await self._put_configuration(request, path, match)
            if method != "GET":
                return _method_not_allowed(method)
            cfg = self.world.get_configuration(path)
            if cfg is None:
                return _Answer(404, _cfg_not_found(match), {})
            return _Answer(200, cfg, reads)
        # applyUpdates on a configuration: the run's correlation id is exactly this path.
        cfg_path = path.split("/providers/microsoft.maintenance/applyupdates/")[0]
        if self.world.get_configuration(cfg_path) is None:
            return _Answer(404, _cfg_not_found(match), {})
        if method == "GET":
            with self.world.lock:
                run = self.world.get_run(path)
                if run is None:
                    return _Answer(404, arm_error(
                        "ResourceNotFound",
                        f"The Resource 'Microsoft.Maintenance/applyUpdates/{match.group('run')}' "
                        f"under resource group '{match.group('rg')}' was not found."), {})
                return _Answer(200, self.world.apply_update_object(run), reads)
        if method == "PUT":
            return await self._cancel(request, path, version or "")
        return _method_not_allowed(method)

    # -- Event Grid (eventgrid.py), role assignments (roles.py), metrics (metrics.py) ----
    async def _eventgrid(self, request: Any) -> _Answer:
        original = request.path.rstrip("/")
        route, match = _route(original, _EG_ROUTES)
        if route is None or match is None:
            return _unknown_resource_type(request.path)
        version = request.query.get("api-version")
        refused = self._refuse(version, EVENTGRID_API_VERSIONS, "Microsoft.EventGrid",
                               match.group("sub"))
        if refused is not None:
            return refused
        sub = match.group("sub")
        eg = self.world.eventgrid
        method = request.method
        reads = {"x-ms-ratelimit-remaining-subscription-reads": "11999"}
        writes = {"x-ms-ratelimit-remaining-subscription-writes": "1199"}
        if route in ("topics_sub", "topics_rg", "subs", "operation") and method != "GET":
            return _method_not_allowed(method)
        if route == "topics_sub":
            return _Answer(*eg.arm_list_topics(sub, None))
        if route == "topics_rg":
            return _Answer(*eg.arm_list_topics(sub, match.group("rg")))
        if route == "operation":
            return _Answer(*eg.arm_operation(match.group("op"), sub, match.group("loc")))
        topic_id = re.split(r"/eventsubscriptions", original, flags=re.IGNORECASE)[0]
        if route == "subs":
            return _Answer(*eg.arm_list_subscriptions(topic_id))
        body: Any = None
        if method in ("PUT", "POST", "PATCH"):
            body, bad = await _json_body(request)
            if bad is not None:
                return bad
        if route == "full_url":
            if method != "POST":
                return _method_not_allowed(method)
            return _Answer(*eg.arm_full_url(original.rsplit("/", 1)[0]))
        if route == "topic":
            status, answer, headers = eg.arm_topic(method, original, body, self.endpoint,
                                                   version or "")
        else:
            status, answer, headers = eg.arm_subscription(method, original, body,
                                                          self.endpoint, version or "")
        extra = reads if method == "GET" else writes
        return _Answer(status, answer, {**headers, **(extra if status < 400 else {})})

    async def _role_assignments(self, request: Any) -> _Answer:
        match = _ROLE_ROUTE.match(request.path.rstrip("/"))
        if match is None:
            return _unknown_resource_type(request.path)
        version = request.query.get("api-version")
        bad_version = _check_api_version(version, AUTHORIZATION_API_VERSIONS,
                                         "Microsoft.Authorization")
        if bad_version is not None:
            return bad_version
        scope = match.group("scope")
        roles = self.world.roles
        name = match.group("name")
        if name is None:
            if request.method != "GET":
                return _method_not_allowed(request.method)
            return _Answer(*roles.arm_list(scope, request.query.get("$filter")))
        body: Any = None
        if request.method == "PUT":
            body, bad = await _json_body(request)
            if bad is not None:
                return bad
        return _Answer(*roles.arm_role(request.method, scope, name, body))

    async def _metrics(self, request: Any) -> _Answer:
        match = _METRICS_ROUTE.match(request.path.rstrip("/"))
        if match is None or request.method != "GET":
            return _method_not_allowed(request.method)
        version = request.query.get("api-version")
        bad_version = _check_api_version(version, METRICS_API_VERSIONS, "Microsoft.Insights")
        if bad_version is not None:
            return bad_version
        query = {key.lower(): value for key, value in request.query.items()}
        return _Answer(*self.world.metrics.answer(match.group("res"), query))

    async def _put_configuration(self, request: Any, path: str,
                                 match: re.Match[str]) -> _Answer:
        """Create or replace a configuration (the schedule edit). Its maintenanceWindow must
        parse as a schedule; an edit less than 40 minutes before a run cancels that run."""
        body, bad = await _json_body(request)
        if bad is not None:
            return bad
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            return _Answer(400, arm_error(
                "InvalidParameter", "The maintenance configuration needs its properties."), {})
        props = body["properties"]
        try:
            configuration_schedule(body)
        except (ScheduleError, ValueError) as exc:
            return _Answer(400, arm_error("InvalidParameter",
                                          f"The maintenance window is not valid: {exc}"), {})
        existing = self.world.get_configuration(path)
        # Keep the id's casing as first created; a new one takes the request's casing.
        rid = existing["id"] if existing else request.path.rstrip("/")
        name = existing["name"] if existing else rid.rsplit("/", 1)[-1]
        stored = {
            "id": rid, "name": name, "type": "Microsoft.Maintenance/maintenanceConfigurations",
            "location": body.get("location") or (existing or {}).get("location", "westeurope"),
            "tags": dict(body.get("tags") or {}),
            "properties": props,
        }
        self.world.edit_configuration(stored)
        writes = {"x-ms-ratelimit-remaining-subscription-writes": "1199"}
        return _Answer(200 if existing else 201, stored, writes)

    async def _cancel(self, request: Any, path: str, version: str) -> _Answer:
        writes = {"x-ms-ratelimit-remaining-subscription-writes": "1199"}
        if version not in CANCEL_API_VERSIONS:
            return _Answer(400, arm_error(
                "InvalidApiVersionParameter",
                f"Cancelling a maintenance run is not available in api-version '{version}'. "
                f"Use one of: {', '.join(sorted(CANCEL_API_VERSIONS))}."), {})
        body, bad = await _json_body(request)
        if bad is not None:
            return bad
        props = body.get("properties") if isinstance(body, dict) else None
        status = props.get("status") if isinstance(props, dict) else None
        if not isinstance(status, str) or status.lower() != "cancel":
            return _Answer(400, arm_error(
                "InvalidRequestContent",
                "Only a cancel can be sent to an existing maintenance run: the body must be "
                '{"properties":{"status":"Cancel"}}.'), {})
        outcome = self.world.cancel(path)
        return _Answer(outcome.status, outcome.body, writes if outcome.status < 400 else {})

    def _refuse(self, version: str | None, known: frozenset[str], namespace: str,
                sub: str) -> _Answer | None:
        """ARM's answer to a request under ``/subscriptions/{sub}`` it refuses before routing
        it (an unknown api-version of ``namespace``, then an unknown subscription), or None."""
        bad_version = _check_api_version(version, known, namespace)
        if bad_version is not None:
            return bad_version
        if not self._subscription_known(sub):
            return _Answer(404, arm_error("SubscriptionNotFound",
                                          f"The subscription '{sub}' could not be found."), {})
        return None

    def _subscription_known(self, sub: str) -> bool:
        sub = sub.lower()
        if any(s.lower() == sub for s in self.world.subscriptions):
            return True
        return bool(self.world.configurations(sub))

    def _page(self, request: Any, items: list[dict[str, Any]],
              headers: dict[str, str]) -> _Answer:
        size = self.arm_page_size
        if size is None:
            return _Answer(200, {"value": items}, headers)
        token = request.query.get("$skiptoken") or request.query.get("$skipToken")
        offset = 0
        if token:
            try:
                offset = int(base64.urlsafe_b64decode(token.encode()).decode())
            except (binascii.Error, ValueError):
                return _Answer(400, arm_error("InvalidSkipToken",
                                              "The $skiptoken is not valid."), {})
        page = items[offset:offset + size]
        body: dict[str, Any] = {"value": page}
        if offset + size < len(items):
            next_token = base64.urlsafe_b64encode(str(offset + size).encode()).decode()
            body["nextLink"] = (f"{self.endpoint}{request.path}?api-version="
                                f"{request.query.get('api-version')}&$skiptoken={next_token}")
        return _Answer(200, body, headers)


class _Dropped(Exception):
    """Raised to close a connection without an answer (the ``drop`` fault)."""


def _route(path: str, routes: list[tuple[str, re.Pattern[str]]] = _ROUTES,
           ) -> tuple[str | None, re.Match[str] | None]:
    """The first of ``routes`` whose pattern matches ``path``: (its name, the match)."""
    for name, pattern in routes:
        match = pattern.match(path)
        if match:
            return name, match
    return None, None


def _check_api_version(version: str | None, known: frozenset[str], what: str) -> _Answer | None:
    if not version:
        return _Answer(400, arm_error(
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests."), {})
    if version not in known:
        return _Answer(400, arm_error(
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid for {what}. The supported versions are "
            f"'{','.join(sorted(known))}'."), {})
    return None


def _unknown_resource_type(path: str) -> _Answer:
    """ARM's 404 for a path that names no resource type it knows."""
    return _Answer(404, arm_error(
        "InvalidResourceType", f"The resource type could not be found for the path '{path}'."),
        {})


def _method_not_allowed(method: str) -> _Answer:
    return _Answer(405, arm_error("MethodNotAllowed",
                                  f"The stand-in does not support {method} on this resource."),
                   {})


def _cfg_not_found(match: re.Match[str]) -> dict[str, Any]:
    return arm_error(
        "ResourceNotFound",
        f"The Resource 'Microsoft.Maintenance/maintenanceConfigurations/{match.group('name')}' "
        f"under resource group '{match.group('rg')}' was not found. For more details please go "
        "to https://aka.ms/ARMResourceNotFoundFix")


def _throttled_body() -> dict[str, Any]:
    return {"error": {
        "code": "RateLimiting",
        "message": "Client application has been throttled and should not attempt to repeat the "
                   "request until an amount of time has elapsed. Please see "
                   "https://aka.ms/resourcegraph-throttling for help.",
    }}


def _arm_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%m/%d/%Y %H:%M:%S")


async def _json_body(request: Any) -> tuple[Any, _Answer | None]:
    raw = await request.read()
    try:
        return json.loads(raw or b"null"), None
    except ValueError as exc:
        return None, _Answer(400, arm_error("InvalidRequestContent",
                                            f"The request content is not valid JSON: {exc}"), {})
