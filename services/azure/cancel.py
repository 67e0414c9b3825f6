"""Cancel one maintenance run, safely, and know for sure whether it worked.

docs/architecture.md "Cancel": the cancel is ``PUT {correlationId}?api-version=<v>`` with body
``{"properties":{"status":"Cancel"}}``, sent through the maintenance client's own pipeline
(authentication, retries, logging apply; the stable SDK has no typed call for it). A
:class:`Canceller`:

* refuses locally, with a reason, a run Azure has not shown us (its id only computed from the
  schedule: the PUT is a create-or-update and could create a run and "succeed" while the real
  one goes ahead, docs/azure.md "Cancel API"), when the app is read-only, when a cancel of the
  same run is already in flight (two quick confirmations send one request), or when the
  cancel window is not open at the moment of sending (re-checked against the clock right
  before the PUT);
* takes a success answer (200 or 201, checked alike) whose body is this run with status
  ``Cancelled`` as the first evidence, and the read-back of the run as the confirmation: when
  the read-back itself is unavailable after such an answer, the outcome is ``accepted`` (Azure
  accepted the cancel; not yet confirmed), never a failure; a PUT whose answer was lost
  (network error, 5xx) is decided by the read-back alone, never guessed;
* writes every attempt to the audit journal (a ``sent`` row before the PUT, its outcome after),
  with the caller's identity as far as the token's claims say; never the token.

The HTTP calls are injected (:data:`ArmCall`), so the rules are tested with fakes and the
same code drives the SDK's sync or aio client (:func:`maintenance_client_calls`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import inspect
import json
import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from services.azure.journal import AuditOutcome, Journal, JournalError
from services.domain.boundary import CancelResult, CancelTarget, Outcome
from services.domain.clock import Clock, ensure_utc
from services.domain.errors import service_error
from services.domain.runfacts import initiator_of
from services.domain.runid import RunIdError, parse_run_id
from services.domain.runs import UNSEEN_RUN_REASON
from services.domain.window import RunWindow, WindowRules, run_window
from services.settings import DEFAULT_CANCEL_API_VERSION, Profile, Settings

CANCEL_BODY: dict[str, Any] = {"properties": {"status": "Cancel"}}
_CANCELLED = frozenset({"cancelled", "canceled"})
# Statuses from which our cancel can no longer turn the run into Cancelled: stop reading back.
_SETTLED = frozenset({"inprogress", "completed", "succeeded", "failed", "completedwithwarnings"})


@dataclass(frozen=True)
class ArmReply:
    """An HTTP answer from Resource Manager: status, parsed JSON body (None if not JSON)."""

    status: int
    body: Any = None
    text: str = ""
    #: The server's ``Date`` header, to measure clock skew against it (None when absent).
    server_date: datetime | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def run_status(self) -> str | None:
        """``properties.status`` of an applyUpdates object, when the body is one (property
        names are not case-sensitive: the docs write ``Properties``/``Status`` too)."""
        props = _field(self.body, "properties")
        status = _field(props, "status")
        return status if isinstance(status, str) else None

    @property
    def resource_id(self) -> str | None:
        """The ``id`` of the object in the body (Azure writes a run's id lower-case)."""
        value = _field(self.body, "id")
        return value if isinstance(value, str) else None

    def says_cancelled(self, correlation_id: str) -> bool:
        """Whether this is a success answer (200 or 201 alike) whose body is the run
        ``correlation_id`` with status Cancelled: Azure's own word that the cancel took.

        The recorded real answer names the configuration in ``name`` and may carry a zero
        ``lastUpdateTime``: only ``id`` and ``properties.status`` are relied on.
        """
        if not self.ok or (self.run_status or "").lower() not in _CANCELLED:
            return False
        return self.resource_id is not None and _key(self.resource_id) == _key(correlation_id)

    @property
    def error_text(self) -> str:
        """The ARM error envelope's ``code: message`` (or the start of the raw body)."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            err = self.body["error"]
            code, message = err.get("code"), err.get("message")
            if message:
                return f"{code}: {message}" if code else str(message)
        text = " ".join(self.text.split())
        return text[:200] if text else f"HTTP {self.status}"


#: ``(path, api_version) -> reply``. Raises on transport failure only, never on an error status.
ArmCall = Callable[[str, str], Awaitable[ArmReply]]
Sleep = Callable[[float], Awaitable[None]]


_AUDIT = {
    Outcome.VERIFIED: AuditOutcome.VERIFIED,
    Outcome.ACCEPTED: AuditOutcome.ACCEPTED,
    Outcome.REFUSED: AuditOutcome.REFUSED,
    Outcome.FAILED: AuditOutcome.FAILED,
    Outcome.UNKNOWN: AuditOutcome.UNKNOWN,
}


def token_identity(token: str) -> str | None:
    """Who a bearer token says its caller is, read from the JWT payload WITHOUT verifying it.

    Only for the audit (the service verifies the token). Returns e.g.
    ``"ops@contoso.com oid=..."`` or ``"appid=..."``; None when the token is not a JWT or names
    nobody. The token itself is not kept.
    """
    parts = token.split(".")
    if len(parts) < 2:
        return None
    segment = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(segment.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    if not isinstance(claims, dict):
        return None
    words: list[str] = []
    name = claims.get("upn") or claims.get("unique_name") or claims.get("preferred_username")
    if isinstance(name, str) and name:
        words.append(name)
    for claim in ("oid", "appid"):
        value = claims.get(claim)
        if isinstance(value, str) and value:
            words.append(f"{claim}={value}")
    # Claims are untrusted text headed for a file and a terminal: keep them printable, short.
    text = " ".join(words)
    text = "".join(c if c.isprintable() else "?" for c in text)[:300]
    return text or None


#: Set to "browser" by `aumwatch serve` in the environment of each dashboard it serves: the
#: audit identity of that dashboard's cancels then says they came through a browser.
SERVED_ENV = "AUMWATCH_SERVED"


def audit_identity(identity: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """``identity`` as the journal records it: `` via browser`` appended in a served dashboard.

    A served dashboard acts with the serving user's credentials for whoever holds the page,
    so its audit line must not read like the user's own terminal.
    """
    env = os.environ if environ is None else environ
    if env.get(SERVED_ENV) != "browser":
        return identity
    return f"{identity or 'unknown'} via browser"


async def credential_identity(credential: Any, scope: str) -> str | None:
    """The audit identity for a (sync or async) azure-identity credential; None if unknown.

    In a dashboard served by `aumwatch serve` it ends with " via browser" (:func:`audit_identity`).
    """
    try:
        token = credential.get_token(scope)
        if inspect.isawaitable(token):
            token = await token
        identity = token_identity(token.token)
    except Exception:  # the identity is best-effort; the cancel itself will report auth errors
        identity = None
    return audit_identity(identity)


def maintenance_client_calls(client: Any) -> tuple[ArmCall, ArmCall]:
    """``(send, read_back)`` for an azure-mgmt-maintenance client, sync or ``aio``.

    ``send`` PUTs the cancel body and ``read_back`` GETs the run, both through the client's
    pipeline via ``_send_request`` (which returns error statuses instead of raising).
    """
    is_async = ".aio" in type(client).__module__

    async def call(method: str, path: str, api_version: str, body: Any = None) -> ArmReply:
        from azure.core.rest import HttpRequest

        request = HttpRequest(method, path, params={"api-version": api_version}, json=body)
        if is_async:
            response = await client._send_request(request)
        else:  # a sync pipeline would block the event loop
            response = await asyncio.to_thread(client._send_request, request)
        text = response.text() if callable(getattr(response, "text", None)) else ""
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return ArmReply(status=int(response.status_code), body=parsed, text=text or "",
                        server_date=_http_date(response.headers.get("Date")))

    async def send(path: str, api_version: str) -> ArmReply:
        return await call("PUT", path, api_version, CANCEL_BODY)

    async def read_back(path: str, api_version: str) -> ArmReply:
        return await call("GET", path, api_version)

    return send, read_back


class CancelSession:
    """A :class:`Canceller` opened by :func:`open_canceller`, with the maintenance client it
    sends through (``read_back`` reads a run through the same client) and the audit identity.
    Close it (or use ``async with``) to close the client."""

    def __init__(self, canceller: Canceller, read_back: ArmCall, client: Any) -> None:
        self.canceller = canceller
        self.read_back = read_back
        self.client = client

    @property
    def identity(self) -> str | None:
        """Who the cancels are audited as."""
        return self.canceller.identity

    async def close(self) -> None:
        """Close the maintenance client; never raises."""
        try:
            await self.client.__aexit__(None, None, None)
        except Exception:  # closing must not mask the caller's own outcome
            pass

    async def __aenter__(self) -> CancelSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def open_canceller(settings: Settings, credential: Any, subscription_id: str,
                         journal: Journal | None, clock: Clock, *,
                         identity: str | None = None, read_attempts: int = 5,
                         read_interval: timedelta = timedelta(seconds=2),
                         profile: Profile | None = None) -> CancelSession:
    """The one way to open a :class:`Canceller` (the dashboard's monitor, ``aumwatch cancel``
    and ``aumwatch tasks`` all do): an async maintenance client for ``subscription_id`` with
    the cancel's client options, its send and read-back calls, the audit identity (read from
    ``credential``'s token unless ``identity`` is given), the settings' window rules,
    read-only flag, api-version and stand-in world. ``profile`` (issue 19; default: the
    one ``settings`` are for) names the tenant in the results and the audit: ``settings``
    and ``credential`` must be that profile's. Raises what building the client raises."""
    from services.azure.clients import (
        CANCEL_CLIENT_OPTIONS,
        async_maintenance_client,
        cloud_for,
    )

    client = async_maintenance_client(settings, credential, subscription_id,
                                      **CANCEL_CLIENT_OPTIONS)
    await client.__aenter__()
    try:
        send, read_back = maintenance_client_calls(client)
        if identity is None:
            identity = await credential_identity(credential, cloud_for(settings).token_scope)
        canceller = Canceller(send, read_back, journal, clock, settings.window_rules,
                              settings.read_only, settings.cancel_api_version,
                              identity=identity, read_attempts=read_attempts,
                              read_interval=read_interval, world=settings.world,
                              tenant=(profile.name if profile else settings.profile) or None,
                              tenant_id=profile.tenant if profile else settings.tenant)
    except BaseException:
        with contextlib.suppress(Exception):
            await client.__aexit__(None, None, None)
        raise
    return CancelSession(canceller, read_back, client)


class Canceller:
    """Sends cancels (see the module docstring). Safe to share between tasks and threads."""

    def __init__(
        self,
        send: ArmCall,
        read_back: ArmCall,
        journal: Journal | None,
        clock: Clock,
        rules: WindowRules | None = None,
        read_only: bool = False,
        api_version: str = DEFAULT_CANCEL_API_VERSION,
        *,
        identity: str | None = None,
        read_attempts: int = 5,
        read_interval: timedelta = timedelta(seconds=2),
        sleep: Sleep = asyncio.sleep,
        world: str | None = None,
        tenant: str | None = None,
        tenant_id: str | None = None,
    ) -> None:
        if read_attempts < 1:
            raise ValueError(f"read_attempts must be at least 1, got {read_attempts}")
        self._send = send
        self._read_back = read_back
        self._journal = journal
        self._clock = clock
        self._rules = rules if rules is not None else WindowRules()
        self.read_only = read_only
        self.api_version = api_version
        self.identity = identity
        #: The stand-in world the cancels are audited under (``[azure] world``).
        self.world = world
        #: Issue 19: the profile whose credential sends the cancels and its tenant id.
        self.tenant = tenant or None
        self.tenant_id = tenant_id or None
        self._read_attempts = read_attempts
        self._read_interval = read_interval
        self._sleep = sleep
        # A threading lock, not an asyncio one: the dashboard may cancel from worker threads
        # running their own event loops.
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()

    def in_flight(self, correlation_id: str) -> bool:
        """Whether a cancel of this run is being sent or verified right now."""
        with self._lock:
            return _key(correlation_id) in self._in_flight

    def _delegated(self, target: CancelTarget) -> bool:
        """Whether the cancel goes through a delegation: the run's subscription belongs to
        another tenant than the credential's (Lighthouse)."""
        return bool(target.tenant_id and self.tenant_id
                    and target.tenant_id.lower() != self.tenant_id.lower())

    async def cancel(self, target: CancelTarget) -> CancelResult:
        """Cancel ``target`` if the rules allow it now; never raises for a failed attempt.
        With a tenant, the result names it; through a delegation, it says Microsoft does
        not confirm that Update Manager supports it."""
        result = await self._cancel(target)
        if self.tenant is None and not self._delegated(target):
            return result
        owner = target.tenant_id or self.tenant_id
        said = f"{result.message} (tenant {self.tenant or owner}"
        said += f", {owner})" if owner and self.tenant else ")"
        if self._delegated(target):
            said += (f"; sent through a delegation from tenant {self.tenant_id}: Update "
                     "Manager's cancel through Azure Lighthouse is unconfirmed by Microsoft")
        return dataclasses.replace(result, message=said)

    async def _cancel(self, target: CancelTarget) -> CancelResult:
        run_id = target.correlation_id
        try:
            parse_run_id(run_id)
        except RunIdError as exc:
            return self._refuse(target, f"{exc}")
        if target.computed_id:
            # Before anything else: no clock, window or lock makes an unseen id safe to PUT.
            return self._refuse(target, UNSEEN_RUN_REASON)
        if self.read_only:
            return self._refuse(target, "read-only mode: cancelling is disabled")
        key = _key(run_id)
        with self._lock:
            if key in self._in_flight:
                busy = True
            else:
                busy = False
                self._in_flight.add(key)
        if busy:
            return self._refuse(target, "a cancel of this run is already in flight")
        try:
            result = await self._attempt(target)
            return replace(result, initiator=initiator_of(self.identity, target.initiator))
        finally:
            with self._lock:
                self._in_flight.discard(key)

    # -- the attempt -------------------------------------------------------------------------
    async def _attempt(self, target: CancelTarget) -> CancelResult:
        window = run_window(target.start, cutoff=target.cutoff, rules=self._rules)
        now = ensure_utc(self._clock.now())
        closed = self._closed_reason(window, now)
        if closed is not None:
            return self._refuse(target, closed)
        seq, journal_error = self._audit_begin(target, now)
        if journal_error is not None:
            # Every cancel that reaches Azure is audited: with no audit there is no cancel.
            return CancelResult(Outcome.REFUSED, "refused: the audit journal cannot be written "
                                f"({journal_error}); fix it, then try again",
                                target.correlation_id, journal_error=journal_error)
        # The audit write (an fsync) takes time: the window is checked again right before the
        # request leaves, so the check that counts is the one at the moment of sending.
        closed = self._closed_reason(window, ensure_utc(self._clock.now()))
        if closed is not None:
            result = CancelResult(Outcome.REFUSED, f"refused: {closed}", target.correlation_id)
        else:
            result = await self._send_and_verify(target)
        if seq is not None:
            journal_error = self._audit_finish(seq, result)
        if journal_error is not None:
            result = _with_journal_error(result, journal_error)
        return result

    @staticmethod
    def _closed_reason(window: RunWindow, now: datetime) -> str | None:
        """Why the window is not open at ``now`` (None when it is)."""
        if window.is_cancellable(now):
            return None
        if window.ever_opens:
            span = f"open from {_hm(window.opens_at)} to {_hm(window.closes_at)} UTC"
        else:
            span = f"never opens (the cutoff {_hm(window.closes_at)} UTC is before T-40)"
        return (f"the cancel window is not open (run is {window.phase(now)}; window {span}; "
                f"now {_hm(now)} UTC)")

    async def _send_and_verify(self, target: CancelTarget) -> CancelResult:
        run_id = target.correlation_id
        put: ArmReply | None = None
        lost: str | None = None
        try:
            put = await self._send(run_id, self.api_version)
        except Exception as exc:  # the request may or may not have reached the service
            lost = service_error(exc, what="cancel request").message
        if put is not None and not put.ok and put.status not in (408,) and put.status < 500:
            # The service answered and refused: nothing was changed.
            return CancelResult(Outcome.FAILED, f"the service refused the cancel: "
                                f"{put.error_text}", run_id, http_status=put.status)
        if put is not None and not put.ok:
            lost = f"the cancel request failed with HTTP {put.status}: {put.error_text}"
        # A 201 is read exactly as a 200: only a body naming this run as Cancelled counts.
        answered_cancelled = put is not None and put.says_cancelled(run_id)
        status, read_error = await self._read_until_settled(run_id)
        http_status = put.status if put is not None else None
        if status is not None and status.lower() in _CANCELLED:
            return CancelResult(Outcome.VERIFIED, "the run is cancelled (verified by reading it "
                                "back)", run_id, http_status=http_status, run_status=status)
        if answered_cancelled and status is None:
            # Azure said Cancelled and nothing contradicts it: the confirmation is only late.
            return CancelResult(Outcome.ACCEPTED, "accepted by Azure, not yet confirmed: the "
                                "service answered Cancelled but reading the run back failed "
                                f"({read_error}); keep watching the run (Resource Graph, the "
                                "next poll)", run_id, http_status=http_status,
                                run_status=put.run_status if put is not None else None)
        if answered_cancelled:
            return CancelResult(Outcome.UNKNOWN, f"the service answered Cancelled but the run "
                                f"reads back as {status}; check the run before acting again",
                                run_id, http_status=http_status, run_status=status)
        if lost is None:
            # Accepted, yet not seen Cancelled: we do not know, and must not say either way.
            seen = f"the run still shows {status}" if status else f"reading it back failed: " \
                f"{read_error}"
            return CancelResult(Outcome.UNKNOWN, f"the service accepted the cancel but {seen}; "
                                "check the run before acting again", run_id,
                                http_status=http_status, run_status=status)
        if status is not None:
            return CancelResult(Outcome.FAILED, f"{lost}; the run was read back and still shows "
                                f"{status}: it was not cancelled", run_id,
                                http_status=http_status, run_status=status)
        return CancelResult(Outcome.UNKNOWN, f"{lost}; reading the run back failed too "
                            f"({read_error}): whether it is cancelled is unknown", run_id,
                            http_status=http_status)

    async def _read_until_settled(self, run_id: str) -> tuple[str | None, str | None]:
        """Read the run until it shows Cancelled, a status it cannot leave for Cancelled, or
        the attempts run out; return (last status seen, last read error)."""
        status: str | None = None
        error: str | None = None
        for attempt in range(self._read_attempts):
            if attempt:
                await self._sleep(self._read_interval.total_seconds())
            try:
                reply = await self._read_back(run_id, self.api_version)
            except Exception as exc:
                error = service_error(exc, what="reading the run back").message
                continue
            if reply.ok and reply.run_status is not None:
                status = reply.run_status
                if status.lower() in _CANCELLED or status.lower() in _SETTLED:
                    break
            elif reply.status == 404:
                status = "not found"
                break
            else:
                error = f"HTTP {reply.status}: {reply.error_text}"
        return status, error

    # -- audit -------------------------------------------------------------------------------
    def _refuse(self, target: CancelTarget, reason: str) -> CancelResult:
        journal_error: str | None = None
        if self._journal is not None:
            try:
                self._journal.begin_cancel(
                    attempted_at=ensure_utc(self._clock.now()), run_id=target.correlation_id,
                    configuration=target.configuration_name, computed_id=target.computed_id,
                    identity=self.identity, api_version=self.api_version,
                    outcome=AuditOutcome.REFUSED, reason=reason, initiator=target.initiator,
                    world=self.world, **self._tenant_audit(target))
            except JournalError as exc:
                journal_error = str(exc)
        return CancelResult(Outcome.REFUSED, f"refused: {reason}", target.correlation_id,
                            journal_error=journal_error)

    def _tenant_audit(self, target: CancelTarget) -> dict[str, Any]:
        return {"tenant": self.tenant, "tenant_id": target.tenant_id or self.tenant_id,
                "delegated": self._delegated(target)}

    def _audit_begin(self, target: CancelTarget, now: datetime) -> tuple[int | None, str | None]:
        # The attempt is recorded before the request leaves: a cancel that cannot be audited
        # is not sent (the caller refuses it).
        if self._journal is None:
            return None, None
        try:
            seq = self._journal.begin_cancel(
                attempted_at=now, run_id=target.correlation_id,
                configuration=target.configuration_name, computed_id=target.computed_id,
                identity=self.identity, api_version=self.api_version,
                initiator=target.initiator, world=self.world, **self._tenant_audit(target))
        except JournalError as exc:
            return None, str(exc)
        return seq, None

    def _audit_finish(self, seq: int, result: CancelResult) -> str | None:
        if self._journal is None:
            return None
        try:
            self._journal.finish_cancel(
                seq, finished_at=ensure_utc(self._clock.now()), outcome=_AUDIT[result.outcome],
                reason=result.message, http_status=result.http_status,
                run_status=result.run_status)
        except JournalError as exc:
            return str(exc)
        return None


def _field(value: Any, name: str) -> Any:
    """``value[name]`` of a JSON object, the key matched case-insensitively; None if absent."""
    if not isinstance(value, dict):
        return None
    if name in value:
        return value[name]
    for key, item in value.items():
        if isinstance(key, str) and key.lower() == name:
            return item
    return None


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else None


def _key(correlation_id: str) -> str:
    try:
        return parse_run_id(correlation_id).key
    except RunIdError:
        return correlation_id.strip().lower()


def _hm(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _with_journal_error(result: CancelResult, error: str) -> CancelResult:
    return CancelResult(result.outcome, result.message, result.run_id, result.http_status,
                        result.run_status, journal_error=error)
