"""One exception type for everything that can go wrong talking to Azure (or the stand-in).

SDK and HTTP errors are mapped by :func:`service_error` to a :class:`ServiceError` with a
``kind`` and a one-line message that says what failed and what to do. The CLI prints the
message and exits non-zero; the dashboard shows it in the status bar. This module imports no
SDK at import time (the mapping inspects exceptions by class name and attributes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

ErrorKind = Literal[
    "throttled", "unauthorized", "forbidden", "not_found", "network", "server", "timeout",
    "bad_request", "conflict", "config",
]


@dataclass
class ServiceError(Exception):
    """A failed call to a service, as one line for a human.

    ``retry_after`` is set for throttling when the service said how long to wait.
    """

    kind: ErrorKind
    message: str
    status: int | None = None
    retry_after: timedelta | None = None

    def __str__(self) -> str:
        return self.message


_HINTS: dict[str, str] = {
    "unauthorized": "sign in again (az login) or check the credential",
    "forbidden": "the identity needs Reader on the scope (and Maintenance Contributor to cancel)",
    "throttled": "the service is throttling requests; aumwatch will back off and retry",
    "network": "check the network or the endpoint",
    "timeout": "the service did not answer in time; will retry",
    "server": "a server-side error; will retry",
}


def _first_line(text: str, limit: int = 240) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _arm_message(exc: BaseException) -> str:
    """The ARM error envelope's code and message when there is one, else the exception text."""
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None)
    if message:
        return f"{code}: {message}" if code else str(message)
    return str(getattr(exc, "message", None) or exc)


def kind_for_status(status: int) -> ErrorKind:
    """The error kind an HTTP status means."""
    if status == 429:
        return "throttled"
    if status == 401:
        return "unauthorized"
    if status == 403:
        return "forbidden"
    if status == 404:
        return "not_found"
    if status == 409:
        return "conflict"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server"
    return "bad_request"


def service_error(exc: BaseException, *, what: str) -> ServiceError:
    """Map any exception raised while doing ``what`` (e.g. "Resource Graph query") to one
    :class:`ServiceError`. Returns ``exc`` itself when it already is one."""
    if isinstance(exc, ServiceError):
        return exc
    names = {cls.__name__ for cls in type(exc).__mro__}
    response = getattr(exc, "response", None)
    status = getattr(exc, "status_code", None) or getattr(response, "status_code", None)
    if "ClientAuthenticationError" in names and not status:
        # Raised by the credential itself (no token at all): az login missing, etc.
        return ServiceError("unauthorized", f"{what}: could not get a token: "
                            f"{_first_line(_arm_message(exc))} ({_HINTS['unauthorized']})")
    if "CredentialUnavailableError" in names:
        return ServiceError("unauthorized", f"{what}: no credential available: "
                            f"{_first_line(str(exc))} ({_HINTS['unauthorized']})")
    if isinstance(status, int):
        kind = kind_for_status(status)
        detail = _first_line(_arm_message(exc))
        hint = _HINTS.get(kind)
        return ServiceError(kind, f"{what} failed (HTTP {status}): {detail}"
                            + (f" ({hint})" if hint else ""), status=status)
    if names & {"ServiceResponseTimeoutError", "ServiceRequestTimeoutError", "TimeoutError"}:
        return ServiceError("timeout", f"{what} timed out ({_HINTS['timeout']})")
    if names & {"ServiceRequestError", "ServiceResponseError", "ConnectionError", "OSError",
                "ClientError", "IncompleteReadError"}:
        return ServiceError("network", f"{what}: connection failed: "
                            f"{_first_line(str(exc) or type(exc).__name__)} "
                            f"({_HINTS['network']})")
    return ServiceError("server", f"{what} failed: {type(exc).__name__}: "
                        f"{_first_line(str(exc))}")
