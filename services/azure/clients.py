"""Credentials, cloud endpoints and SDK client factories.

aumwatch talks to real Azure exactly as to the stand-in: only the ARM endpoint, the CA bundle
and the credential differ (docs/architecture.md, "The local Azure stand-in"). Every client is
built here,
from :class:`~services.settings.Settings`, so the rest of services never repeats an endpoint,
a token scope or a TLS option.

The Azure SDK imports happen inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from services.domain.errors import ServiceError
from services.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from azure.core.credentials import AccessToken


@dataclass(frozen=True)
class Cloud:
    """One Azure cloud's endpoints."""

    name: str
    arm_endpoint: str
    token_scope: str
    authority_host: str
    queue_suffix: str  # host suffix of Storage queue endpoints


CLOUDS: dict[str, Cloud] = {
    "public": Cloud("public", "https://management.azure.com",
                    "https://management.azure.com/.default",
                    "login.microsoftonline.com", "queue.core.windows.net"),
    "china": Cloud("china", "https://management.chinacloudapi.cn",
                   "https://management.chinacloudapi.cn/.default",
                   "login.chinacloudapi.cn", "queue.core.chinacloudapi.cn"),
    "usgov": Cloud("usgov", "https://management.usgovcloudapi.net",
                   "https://management.usgovcloudapi.net/.default",
                   "login.microsoftonline.us", "queue.core.usgovcloudapi.net"),
    # The stand-in speaks the public cloud's protocol on its own endpoint (from settings).
    "standin": Cloud("standin", "https://127.0.0.1",
                     "https://management.azure.com/.default",
                     "login.microsoftonline.com", "queue.core.windows.net"),
}


def cloud_for(settings: Settings) -> Cloud:
    """The cloud the settings name, with the ARM endpoint override applied."""
    cloud = CLOUDS[settings.cloud]
    if settings.arm_endpoint:
        cloud = Cloud(cloud.name, settings.arm_endpoint.rstrip("/"), cloud.token_scope,
                      cloud.authority_host, cloud.queue_suffix)
    return cloud


# A static token never expires as far as the SDK is concerned; the stand-in decides.
_STATIC_TOKEN_LIFETIME_S = 24 * 3600


class StaticTokenCredential:
    """A TokenCredential that always returns one bearer token (the stand-in's)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + _STATIC_TOKEN_LIFETIME_S)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token, int(time.time()) + _STATIC_TOKEN_LIFETIME_S)

    def close(self) -> None:
        """Nothing to release."""


class AsyncStaticTokenCredential:
    """The async twin of :class:`StaticTokenCredential`."""

    def __init__(self, token: str) -> None:
        self._sync = StaticTokenCredential(token)

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return self._sync.get_token(*scopes)

    async def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        return self._sync.get_token_info(*scopes)

    async def close(self) -> None:
        """Nothing to release."""

    async def __aenter__(self) -> AsyncStaticTokenCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def _default_credential_kwargs(settings: Settings) -> dict[str, Any]:
    cloud = cloud_for(settings)
    kwargs: dict[str, Any] = {"authority": cloud.authority_host}
    if settings.tenant:
        # DefaultAzureCredential has no single tenant_id: pin each credential that takes one,
        # and allow the tenant for those (az CLI) that receive it per token request.
        for key in ("interactive_browser_tenant_id", "workload_identity_tenant_id",
                    "shared_cache_tenant_id", "visual_studio_code_tenant_id"):
            kwargs[key] = settings.tenant
        kwargs["additionally_allowed_tenants"] = [settings.tenant]
    return kwargs


def _profile_credential(settings: Settings, identity: Any) -> Any:
    """The credential a ``[[tenants]]`` profile's ``credential`` names (issue 19), from the
    ``identity`` module given (``azure.identity`` or ``azure.identity.aio``); None for the
    default chain."""
    import os

    kind, _, detail = (settings.credential or "default").partition(":")
    authority = cloud_for(settings).authority_host
    if kind == "cli":
        return identity.AzureCliCredential(tenant_id=settings.tenant)
    if kind == "managed_identity":
        return identity.ManagedIdentityCredential(client_id=detail)
    if kind == "env":
        tenant = settings.tenant or os.environ.get(detail + "TENANT_ID")
        client_id = os.environ.get(detail + "CLIENT_ID")
        secret = os.environ.get(detail + "CLIENT_SECRET")
        certificate = os.environ.get(detail + "CLIENT_CERTIFICATE_PATH")
        if not tenant or not client_id or not (secret or certificate):
            raise ServiceError("config", f"tenant profile {settings.profile!r}: credential "
                               f"env:{detail} needs {detail}CLIENT_ID and {detail}CLIENT_SECRET "
                               f"(or {detail}CLIENT_CERTIFICATE_PATH) in the environment")
        if secret:
            return identity.ClientSecretCredential(tenant, client_id, secret,
                                                   authority=authority)
        return identity.CertificateCredential(tenant, client_id, certificate,
                                              authority=authority)
    return None


def make_credential(settings: Settings) -> Any:
    """A sync TokenCredential: the static one for the stand-in, the one a tenant profile
    names (``credential``), else DefaultAzureCredential (az login, managed identity,
    workload identity, environment all work)."""
    if settings.cloud == "standin" or settings.token:
        if not settings.token:
            raise ServiceError("config", "cloud 'standin' needs a token (set by `aumwatch sim`)")
        return StaticTokenCredential(settings.token)
    import azure.identity

    chosen = _profile_credential(settings, azure.identity)
    if chosen is not None:
        return chosen
    return azure.identity.DefaultAzureCredential(**_default_credential_kwargs(settings))


def make_async_credential(settings: Settings) -> Any:
    """The async twin of :func:`make_credential` (close it when done)."""
    if settings.cloud == "standin" or settings.token:
        if not settings.token:
            raise ServiceError("config", "cloud 'standin' needs a token (set by `aumwatch sim`)")
        return AsyncStaticTokenCredential(settings.token)
    import azure.identity.aio

    chosen = _profile_credential(settings, azure.identity.aio)
    if chosen is not None:
        return chosen
    return azure.identity.aio.DefaultAzureCredential(**_default_credential_kwargs(settings))


def timeout_kwargs(settings: Settings) -> dict[str, Any]:
    """Connect and read timeouts (seconds) for any azure-core transport, from settings.

    Without them azure-core waits up to 300 s for an answer: a stalled service would freeze
    a poll (or a cancel) for minutes."""
    seconds = settings.request_timeout.total_seconds()
    return {"connection_timeout": seconds, "read_timeout": seconds}


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Options every ARM client takes: endpoint, token scope, CA bundle, timeouts."""
    cloud = cloud_for(settings)
    kwargs: dict[str, Any] = {
        "base_url": cloud.arm_endpoint,
        "credential_scopes": [cloud.token_scope],
        **timeout_kwargs(settings),
    }
    if settings.ca_file:
        kwargs["connection_verify"] = str(settings.ca_file)
    return kwargs


def _arm_kwargs(settings: Settings, extra: dict[str, Any]) -> dict[str, Any]:
    kwargs = client_kwargs(settings)
    kwargs.update(extra)
    return kwargs


def _async_arm_kwargs(settings: Settings, extra: dict[str, Any]) -> dict[str, Any]:
    from services.azure.transport import async_transport_kwargs

    return async_transport_kwargs(_arm_kwargs(settings, extra))


def resource_graph_client(settings: Settings, credential: Any, **extra: Any) -> Any:
    """A sync ``azure.mgmt.resourcegraph.ResourceGraphClient``."""
    from azure.mgmt.resourcegraph import ResourceGraphClient

    return ResourceGraphClient(credential, **_arm_kwargs(settings, extra))


def async_resource_graph_client(settings: Settings, credential: Any, **extra: Any) -> Any:
    """An async ``azure.mgmt.resourcegraph.aio.ResourceGraphClient`` (use ``async with``)."""
    from azure.mgmt.resourcegraph.aio import ResourceGraphClient

    return ResourceGraphClient(credential, **_async_arm_kwargs(settings, extra))


def maintenance_client(settings: Settings, credential: Any, subscription_id: str,
                       **extra: Any) -> Any:
    """A sync ``MaintenanceManagementClient`` for one subscription."""
    from azure.mgmt.maintenance import MaintenanceManagementClient

    return MaintenanceManagementClient(credential, subscription_id, **_arm_kwargs(settings, extra))


def async_maintenance_client(settings: Settings, credential: Any, subscription_id: str,
                             **extra: Any) -> Any:
    """An async ``MaintenanceManagementClient`` for one subscription (use ``async with``)."""
    from azure.mgmt.maintenance.aio import MaintenanceManagementClient

    return MaintenanceManagementClient(credential, subscription_id,
                                       **_async_arm_kwargs(settings, extra))


def eventgrid_client(settings: Settings, credential: Any, subscription_id: str,
                     **extra: Any) -> Any:
    """A sync ``EventGridManagementClient`` for one subscription (system topics, event
    subscriptions; its pipeline also reads the topics' Azure Monitor metrics)."""
    from azure.mgmt.eventgrid import EventGridManagementClient

    return EventGridManagementClient(credential, subscription_id, **_arm_kwargs(settings, extra))


def async_eventgrid_client(settings: Settings, credential: Any, subscription_id: str,
                           **extra: Any) -> Any:
    """An async ``EventGridManagementClient`` for one subscription (use ``async with``)."""
    from azure.mgmt.eventgrid.aio import EventGridManagementClient

    return EventGridManagementClient(credential, subscription_id,
                                     **_async_arm_kwargs(settings, extra))


#: Pipeline options for the client that sends a cancel. azure-core retries a timed-out
#: request three times, so a stalled service would hold an operator's cancel for minutes
#: (found by the reliability suite). The canceller reads the run back after a lost answer
#: and decides from that, so one retry is enough.
CANCEL_CLIENT_OPTIONS: dict[str, Any] = {"retry_total": 1}


def queue_service_kwargs(settings: Settings) -> dict[str, Any]:
    """Transport options for Storage queue clients: timeouts, retries, CA bundle of the
    stand-in.

    The Storage SDK's default retry (3 retries, 15 s + 3**n s backoff) holds a failing poll
    for about 80 s before it reports anything (found by the reliability suite); the poll is
    repeated every poll interval anyway, so one quick retry absorbs a blip and the next poll
    does the rest."""
    kwargs = timeout_kwargs(settings)
    kwargs.update(retry_total=1, initial_backoff=1, increment_base=2, random_jitter_range=0.5)
    if settings.ca_file:
        kwargs["connection_verify"] = str(settings.ca_file)
    return kwargs


def settings_queue_client(settings: Settings, credential: Any = None) -> Any:
    """The async client of the events queue the settings name: by its connection string when
    there is one, else by account URL and ``credential`` (Entra ID), with
    :func:`queue_service_kwargs`. Raises ValueError, saying what is missing, when the
    settings do not name a usable queue."""
    from services.azure.eventsource import make_queue_client

    return make_queue_client(
        settings.queue_name or "", connection_string=settings.queue_connection_string,
        account_url=None if settings.queue_connection_string else settings.queue_account_url,
        credential=credential, **queue_service_kwargs(settings))
