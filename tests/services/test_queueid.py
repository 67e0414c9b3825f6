"""A queue's full identity (issue 22, item 2): what its journal rows are keyed by."""

from __future__ import annotations

import pytest

from services.domain.queueid import (
    normalise_endpoint,
    queue_endpoint,
    queue_identity,
    queue_identity_of_url,
)

AZURITE = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
           "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;")


@pytest.mark.parametrize(("url", "normal"), [
    ("https://Acct.Queue.Core.Windows.Net/", "https://acct.queue.core.windows.net"),
    ("HTTPS://acct.queue.core.windows.net:443", "https://acct.queue.core.windows.net"),
    ("https://acct.queue.core.windows.net?sv=2024&sig=secret", "https://acct.queue.core.windows.net"),
    ("http://127.0.0.1:10001/DevStoreAccount1//", "http://127.0.0.1:10001/devstoreaccount1"),
    ("not a url", None),
])
def test_endpoints_are_normalised(url: str, normal: str | None) -> None:
    assert normalise_endpoint(url) == normal


def test_a_connection_string_resolves_to_its_queue_endpoint() -> None:
    assert queue_endpoint(AZURITE) == "http://127.0.0.1:10001/devstoreaccount1"
    assert queue_endpoint("AccountName=acct;AccountKey=k;EndpointSuffix=core.chinacloudapi.cn"
                          ) == "https://acct.queue.core.chinacloudapi.cn"
    assert queue_endpoint("UseDevelopmentStorage=true") == "http://127.0.0.1:10001/devstoreaccount1"
    assert queue_endpoint("AccountKey=k") is None


def test_one_queue_has_one_identity_however_it_is_named() -> None:
    by_string = queue_identity("aum-events", connection_string=AZURITE)
    by_url = queue_identity("aum-events", account_url="http://127.0.0.1:10001/devstoreaccount1/")
    client_url = queue_identity_of_url("http://127.0.0.1:10001/devstoreaccount1/aum-events")
    assert by_string == by_url == client_url == "http://127.0.0.1:10001/devstoreaccount1/aum-events"
    real = queue_identity("aum-events", account_url="https://acct.queue.core.windows.net")
    by_key = queue_identity("aum-events", connection_string="AccountName=acct;AccountKey=k")
    assert real == by_key == "https://acct.queue.core.windows.net/aum-events"


def test_the_same_name_on_another_account_or_world_is_another_queue() -> None:
    one = queue_identity("q", account_url="https://one.queue.core.windows.net")
    two = queue_identity("q", account_url="https://two.queue.core.windows.net")
    assert one != two
    world_a = queue_identity("q", connection_string=AZURITE, world="sim-a")
    world_b = queue_identity("q", connection_string=AZURITE, world="sim-b")
    assert len({world_a, world_b, queue_identity("q", connection_string=AZURITE)}) == 3
    assert queue_identity_of_url("http://127.0.0.1:10001/devstoreaccount1/q", "sim-a") == world_a


def test_no_queue_no_identity() -> None:
    assert queue_identity(None, account_url="https://a.queue.core.windows.net") is None
    assert queue_identity("q") is None
