"""The one HTTP transport of aumwatch's async Azure clients (ARM, Resource Graph, the queue).

azure-core's default aiohttp transport costs a long-lived client two things on every
request, which a dashboard that asks twice a second pays all day:

* Given a CA bundle as a path (``[azure] ca_file``: the stand-in, a private CA), azure-core
  builds a new TLS context per request, and aiohttp, whose connection pool is keyed by that
  context, opens a new connection (a full TLS handshake) per request.
* Its session trusts the environment, so aiohttp looks for proxy variables *and* reads
  ``~/.netrc`` per request, each on a worker thread (two thread hand-offs a request).
  netrc basic auth has no place here anyway: every request carries its own Authorization
  (a bearer token or a Storage shared key), which aiohttp refuses to combine with one.

:func:`async_transport_kwargs` gives a client a transport whose session is built once, with
one TLS context (the bundle, or the system's) and the environment's proxy for each host
looked up once (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``, as urllib reads them).

Kept connections have a price: one the server closed meanwhile (an idle timeout, a
fail-over) fails the next request sent on it. aiohttp sends such a request again by itself
for idempotent methods only, and Resource Graph's query is a POST, so a poll would fail once
for nothing. The transport sends it again once, on a new connection (:func:`safe_to_resend`).
"""

from __future__ import annotations

import functools
import os
import urllib.parse
import urllib.request
from typing import Any


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY`` for https, and so on;
    credentials may be in it), or None when there is none or ``NO_PROXY`` names the host."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme)
    # NO_PROXY as urllib (and aiohttp) read it; public in urllib.request, not in its stubs.
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if not proxy or bypass(parts.hostname or "", proxies):
        return None
    return str(proxy)


def async_transport_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """An async client's ``kwargs`` with ``connection_verify`` (True or a CA bundle's path)
    turned into a :func:`transport_class` transport with the same timeouts.

    ``kwargs`` that already name a transport (tests), or turn verification off, come back as
    they are. A CA bundle that does not exist fails the first request (an OSError naming the
    setting), where every caller already turns a failed request into one line.
    """
    verify = kwargs.get("connection_verify", True)
    if "transport" in kwargs or not (verify is True or isinstance(verify, str | os.PathLike)):
        return kwargs
    ca_file = None if verify is True else os.fspath(verify)
    out = {k: v for k, v in kwargs.items() if k != "connection_verify"}
    timeouts = {k: kwargs[k] for k in ("connection_timeout", "read_timeout") if k in kwargs}
    out["transport"] = transport_class()(ca_file, **timeouts)
    return out


#: Resource Graph's query: a POST that only reads, so it is safe to send twice.
QUERY_PATH = "/providers/microsoft.resourcegraph/resources"


def safe_to_resend(method: str, url: str) -> bool:
    """Whether the transport sends a request once more after it met a closed kept
    connection: only Resource Graph's query. aiohttp already does so for the idempotent
    methods (GET, PUT, DELETE...); any other POST is left alone."""
    return method.upper() == "POST" and \
        urllib.parse.urlsplit(url).path.lower().endswith(QUERY_PATH)


def missing_bundle(ca_file: str) -> str:
    """What to say when the configured CA bundle is not there."""
    return (f"the CA bundle {ca_file} (azure.ca_file) does not exist; an `aumwatch sim` "
            "config is valid only while it runs")


@functools.cache
def transport_class() -> Any:
    """The transport class (built on first use: aiohttp and azure-core load only then)."""
    import ssl

    import aiohttp
    from azure.core.exceptions import ServiceRequestError
    from azure.core.pipeline.transport import AioHttpTransport

    class OneSessionTransport(AioHttpTransport):  # type: ignore[misc]
        """An aiohttp transport with one session, one TLS context and proxies looked up once
        per host. ``ca_file`` None trusts the system's certificate authorities."""

        session: Any  # aiohttp.ClientSession | None, untyped in azure-core

        def __init__(self, ca_file: str | None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._ca_file = ca_file
            self._proxies: dict[tuple[str, str], str | None] = {}

        async def open(self) -> None:
            if self.session is None:  # first use, or used again after a close
                context: ssl.SSLContext | bool = True  # aiohttp's own default context
                if self._ca_file is not None:
                    if not os.path.isfile(self._ca_file):
                        raise FileNotFoundError(missing_bundle(self._ca_file))
                    context = ssl.create_default_context(cafile=self._ca_file)
                # As azure-core builds its session (no cookies, bodies left compressed), but
                # the environment is read here, once per host, not by aiohttp per request.
                self.session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(ssl=context), trust_env=False,
                    cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False)
            await super().open()

        def proxy_for(self, url: str) -> str | None:
            """:func:`env_proxy` of ``url``, looked up once per scheme and host."""
            parts = urllib.parse.urlsplit(url)
            key = (parts.scheme, parts.hostname or "")
            if key not in self._proxies:
                self._proxies[key] = env_proxy(url)
            return self._proxies[key]

        async def send(self, request: Any, **config: Any) -> Any:
            if not config.get("proxy") and not config.get("proxies"):
                proxy = self.proxy_for(request.url)
                if proxy is not None:  # aiohttp takes credentials written in the URL
                    config["proxy"] = proxy
            try:
                return await super().send(request, **config)
            except ServiceRequestError as exc:
                if not (isinstance(exc.__cause__, aiohttp.ServerDisconnectedError)
                        and safe_to_resend(request.method, request.url)):
                    raise
            # The server had closed the kept connection (an idle timeout, a fail-over): the
            # request went nowhere. Once more, on a new connection.
            return await super().send(request, **config)

    return OneSessionTransport
