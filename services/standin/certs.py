"""TLS material for the stand-in: a throw-away CA and a server certificate for 127.0.0.1.

azure-core refuses to send a bearer token over plain HTTP, so the stand-in must speak HTTPS.
A fresh CA is generated at every start (trustme); its PEM is written to a directory so that
clients can trust it with ``connection_verify=<ca file>`` (and other processes can read it).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

#: The names the server certificate is valid for (the stand-in only listens on loopback).
SERVER_IDENTITIES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class TlsMaterial:
    """A server-side SSL context plus the path of the CA certificate clients must trust."""

    ssl_context: ssl.SSLContext
    ca_file: Path


def generate(directory: Path) -> TlsMaterial:
    """Create a CA and a server certificate, write ``ca.pem`` into ``directory``.

    The server's private key stays in memory (it is loaded into the context through a
    temporary file that trustme manages); only the public CA certificate is written.
    """
    import trustme  # the [standin] extra: imported here so the module itself stays light

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="aumwatch stand-in")
    leaf = ca.issue_cert(*SERVER_IDENTITIES, common_name="aumwatch stand-in")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return TlsMaterial(ssl_context=context, ca_file=ca_file)
