"""The async clients' one transport (services/azure/transport.py), against the HTTPS stand-in.

A counting TCP relay sits in front of the stand-in: as a plain relay it counts the
connections a client opens; as an HTTP CONNECT proxy it also records what was tunnelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from services.azure import clients
from services.azure.transport import async_transport_kwargs
from services.settings import Settings
from services.standin.server import StandInServer
from tests.standin import SUB, AsyncStaticTokenCredential, config_object

QUERY = "resources | where type =~ 'microsoft.maintenance/maintenanceconfigurations'"


@dataclass
class Relay:
    """Forwards each connection to ``upstream`` (or, as a proxy, where CONNECT says)."""

    upstream: int
    proxy: bool = False
    port: int = 0
    connections: int = 0
    tunnels: list[str] = field(default_factory=list)
    open: list[asyncio.StreamWriter] = field(default_factory=list)

    def cut(self) -> None:
        """Close every connection, as a server does after an idle timeout or a fail-over."""
        for writer in self.open:
            writer.close()
        self.open.clear()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open.append(writer)
        port = self.upstream
        try:
            if self.proxy:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ")[1].decode()  # CONNECT host:port HTTP/1.1
                self.tunnels.append(target)
                port = int(target.rsplit(":", 1)[1])
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except (OSError, asyncio.IncompleteReadError):
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(OSError):
                dst.close()

        with contextlib.suppress(asyncio.CancelledError):  # the relay closing at the end
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@contextlib.asynccontextmanager
async def relay(upstream: int, *, proxy: bool = False) -> AsyncIterator[Relay]:
    r = Relay(upstream, proxy)
    server = await asyncio.start_server(r.handle, "127.0.0.1", 0)
    r.port = server.sockets[0].getsockname()[1]
    async with server:
        yield r
        server.close()


def settings_for(server: StandInServer, port: int) -> Settings:
    return Settings(cloud="standin", arm_endpoint=f"https://127.0.0.1:{port}",
                    ca_file=Path(server.ca_file), token=server.token, subscriptions=(SUB,))


async def query_times(client: Any, n: int) -> list[int]:
    from azure.mgmt.resourcegraph.models import QueryRequest

    counts = []
    for _ in range(n):
        answer = await client.resources(QueryRequest(subscriptions=[SUB], query=QUERY))
        counts.append(answer.total_records)
    return counts


async def test_a_long_lived_client_keeps_one_connection(standin: StandInServer) -> None:
    standin.world.add_configuration(config_object("patch-a"))
    async with relay(standin.port) as r:
        client = clients.async_resource_graph_client(
            settings_for(standin, r.port), AsyncStaticTokenCredential(standin.token))
        async with client:
            assert await query_times(client, 5) == [1] * 5
        # Given the CA bundle's path, azure-core's own transport opened one TLS connection
        # per request (a handshake each time): five here.
        assert r.connections == 1


async def test_a_query_on_a_connection_the_server_closed_is_sent_again_on_a_new_one(
    standin: StandInServer,
) -> None:
    # Resource Graph's query is a POST, which aiohttp does not resend by itself: without
    # the transport's one resend, the poll after an idle close would fail for nothing.
    standin.world.add_configuration(config_object("patch-a"))
    async with relay(standin.port) as r:
        client = clients.async_resource_graph_client(
            settings_for(standin, r.port), AsyncStaticTokenCredential(standin.token))
        async with client:
            assert await query_times(client, 1) == [1]
            r.cut()
            await asyncio.sleep(0)  # the close goes out; the client has not noticed yet
            assert await query_times(client, 2) == [1, 1]
        assert r.connections == 2


def test_only_the_graph_query_is_sent_again_by_the_transport() -> None:
    # aiohttp itself resends the idempotent methods once; a second layer would send a cancel
    # PUT up to three times. Other POSTs may not be read-only.
    from services.azure.transport import safe_to_resend

    base = "https://management.azure.com"
    assert safe_to_resend(
        "POST", f"{base}/providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01")
    assert not safe_to_resend("GET", f"{base}/subscriptions/s/x")
    assert not safe_to_resend("PUT", f"{base}/subscriptions/s/providers/Microsoft.Maintenance/x")
    assert not safe_to_resend("POST", f"{base}/subscriptions/s/providers/X/y/listKeys")


async def test_the_queue_and_maintenance_clients_get_it_too(standin: StandInServer) -> None:
    settings = settings_for(standin, standin.port)
    for client in (clients.async_maintenance_client(settings, object(), SUB),
                   clients.async_eventgrid_client(settings, object(), SUB)):
        transport = client._client._pipeline._transport
        assert type(transport).__name__ == "OneSessionTransport"
        await client.close()


async def test_proxies_from_the_environment_are_used_and_no_proxy_is_honoured(
    standin: StandInServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    standin.world.add_configuration(config_object("patch-a"))
    async with relay(0, proxy=True) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        client = clients.async_resource_graph_client(
            settings_for(standin, standin.port), AsyncStaticTokenCredential(standin.token))
        async with client:
            assert await query_times(client, 3) == [1] * 3
        assert proxy.tunnels == [f"127.0.0.1:{standin.port}"]  # one tunnel, kept

        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        client = clients.async_resource_graph_client(
            settings_for(standin, standin.port), AsyncStaticTokenCredential(standin.token))
        async with client:
            assert await query_times(client, 1) == [1]
        assert len(proxy.tunnels) == 1  # not through the proxy


async def test_a_netrc_entry_for_the_host_does_not_break_bearer_requests(
    standin: StandInServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    # aiohttp, trusting the environment, turns a netrc entry into basic auth, and refuses a
    # request that also carries an Authorization header: every request would fail.
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    standin.world.add_configuration(config_object("patch-a"))
    client = clients.async_resource_graph_client(
        settings_for(standin, standin.port), AsyncStaticTokenCredential(standin.token))
    async with client:
        assert await query_times(client, 1) == [1]


async def test_a_missing_ca_bundle_fails_the_first_use_in_one_named_line(
    standin: StandInServer, tmp_path: Path,
) -> None:
    from services.domain.errors import service_error

    settings = settings_for(standin, standin.port)
    settings = Settings(cloud="standin", arm_endpoint=settings.arm_endpoint,
                        ca_file=tmp_path / "gone.pem", token=standin.token,
                        subscriptions=(SUB,))
    client = clients.async_resource_graph_client(settings, AsyncStaticTokenCredential("t"))
    with pytest.raises(OSError) as caught:  # on opening the client, or its first request
        async with client:
            await query_times(client, 1)
    line = service_error(caught.value, what="Resource Graph query").message
    assert f"the CA bundle {tmp_path / 'gone.pem'} (azure.ca_file) does not exist" in line
    assert "\n" not in line


def test_the_queue_client_names_a_missing_ca_bundle_before_any_poll() -> None:
    from services.azure.eventsource import make_queue_client

    with pytest.raises(ValueError, match=r"the CA bundle /nowhere/ca.pem \(azure.ca_file\)"):
        make_queue_client("q", connection_string="UseDevelopmentStorage=true",
                          connection_verify="/nowhere/ca.pem")


def test_given_a_transport_or_no_verification_the_kwargs_are_left_alone() -> None:
    given = {"transport": object(), "connection_verify": "/nowhere/ca.pem"}
    assert async_transport_kwargs(given) is given
    off = {"connection_verify": False}
    assert async_transport_kwargs(off) is off


def test_env_proxy_follows_the_scheme_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.azure.transport import env_proxy

    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", ".internal.example,10.0.0.1")
    assert env_proxy("https://management.azure.com/x") == "http://user:pw@proxy.corp:3128"
    assert env_proxy("http://management.azure.com/x") is None  # no HTTP_PROXY
    assert env_proxy("https://queue.internal.example/q") is None
    assert env_proxy("https://10.0.0.1:8443/") is None
