"""Credentials and the client options every ARM client shares.

Deployed, the Function App authenticates with its managed identity; ``DefaultAzureCredential`` finds it
without configuration (and finds a developer's ``az login`` locally). A user-assigned identity is chosen
with ``AZURE_CLIENT_ID`` — the standard variable, so the Bicep template and local runs need nothing else.
"""

from __future__ import annotations

import os
from typing import Any

from azure.core.credentials import TokenCredential

DEFAULT_ARM_ENDPOINT = "https://management.azure.com"


def default_credential(client_id: str | None = None) -> TokenCredential:
    """The credential the bot uses in Azure: managed identity first, developer logins as fallbacks.

    ``client_id`` (else ``AZURE_CLIENT_ID``) selects a user-assigned managed identity.
    """
    from azure.identity import DefaultAzureCredential  # imported lazily: tests never need it

    chosen = (client_id or os.environ.get("AZURE_CLIENT_ID", "")).strip()
    if chosen:
        return DefaultAzureCredential(managed_identity_client_id=chosen)
    return DefaultAzureCredential()


def arm_scope(endpoint: str) -> str:
    """The token scope for an ARM endpoint (``https://management.azure.com/.default`` in public cloud).

    Derived from the endpoint so sovereign clouds and the test emulator get a matching audience.
    """
    return endpoint.rstrip("/") + "/.default"


def arm_client_kwargs(endpoint: str = DEFAULT_ARM_ENDPOINT, ca_bundle: str | None = None) -> dict[str, Any]:
    """Keyword arguments for any ``azure-mgmt-*`` client pointed at ``endpoint``.

    ``ca_bundle`` is a PEM file trusted for TLS (``connection_verify``): tests point the real SDK at a
    local HTTPS emulator signed by a throwaway CA; in Azure it stays ``None`` (the system store).
    """
    endpoint = endpoint.rstrip("/")
    kwargs: dict[str, Any] = {"base_url": endpoint, "credential_scopes": [arm_scope(endpoint)]}
    if ca_bundle:
        kwargs["connection_verify"] = ca_bundle
    return kwargs
