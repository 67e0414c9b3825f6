"""A queue's full identity: which journal rows belong to which view (docs/architecture.md,
"Journal identity").

Two config files may watch queues of the same name on different storage accounts, and every
``aumwatch sim`` world writes into the same data directory: a queue's *name* says nothing of
whose events a journal row holds. A row is therefore keyed by the queue's identity:

* its endpoint URL, normalised: scheme, host, port and the emulator's path account lower
  case, a default port dropped, the query string (a SAS token), fragment and trailing
  slashes dropped, then ``/<queue name>``;
* a connection string resolves to its queue endpoint (``QueueEndpoint``, else
  ``DefaultEndpointsProtocol`` + ``AccountName`` + ``EndpointSuffix``, or Azurite's for
  ``UseDevelopmentStorage=true``);
* with a stand-in world (``[azure] world``, written by ``aumwatch sim``), ``#world=<id>``
  after it: a world's Azurite port and account are not unique over time, its id is.

Pure: no I/O.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

#: Azurite's queue endpoint for ``UseDevelopmentStorage=true``.
DEVELOPMENT_QUEUE_ENDPOINT = "http://127.0.0.1:10001/devstoreaccount1"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_endpoint(url: str) -> str | None:
    """``url`` as an identity: lower-case scheme, host, port and path; no default port,
    query, fragment or trailing slash. None when it is not an absolute URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not scheme or not host:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and _DEFAULT_PORTS.get(scheme) != port:
        netloc += f":{port}"
    path = "/".join(p for p in parts.path.lower().split("/") if p)
    return urlunsplit((scheme, netloc, f"/{path}" if path else "", "", ""))


def queue_endpoint(connection_string: str) -> str | None:
    """The queue endpoint a Storage connection string names (None: it names none)."""
    fields: dict[str, str] = {}
    for part in connection_string.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        return fields.get("queueendpoint") or DEVELOPMENT_QUEUE_ENDPOINT
    if fields.get("queueendpoint"):
        return fields["queueendpoint"]
    account = fields.get("accountname")
    if not account:
        return None
    protocol = fields.get("defaultendpointsprotocol") or "https"
    suffix = fields.get("endpointsuffix") or "core.windows.net"
    return f"{protocol}://{account}.queue.{suffix}"


def queue_identity(queue_name: str | None, *, account_url: str | None = None,
                   connection_string: str | None = None,
                   world: str | None = None) -> str | None:
    """The identity of queue ``queue_name`` (see the module). The connection string wins over
    the account URL (the event source prefers it too). None when no queue is named or its
    endpoint cannot be told."""
    name = (queue_name or "").strip().lower()
    if not name:
        return None
    endpoint = queue_endpoint(connection_string) if connection_string else account_url
    base = normalise_endpoint(endpoint) if endpoint else None
    if base is None:
        return None
    return with_world(f"{base}/{name}", world)


def queue_identity_of_url(queue_url: str, world: str | None = None) -> str | None:
    """The identity of a queue client's own URL (endpoint and queue name in one)."""
    base = normalise_endpoint(queue_url)
    return with_world(base, world) if base is not None else None


def with_world(identity: str, world: str | None) -> str:
    """``identity`` marked with the stand-in world it belongs to (unchanged without one)."""
    world = (world or "").strip()
    return f"{identity}#world={world}" if world else identity
