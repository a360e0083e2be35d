"""The thin Azure I/O shell: credentials, Resource Graph inventory, Service Tags, ARM network writes.

Everything else in the bot is pure and works on ARM-shaped JSON; only this package talks to Azure, so
it is the only package tested against the HTTPS ARM emulator (tests/emulator).
"""

from .credentials import DEFAULT_ARM_ENDPOINT, arm_client_kwargs, arm_scope, default_credential
from .inventory import (
    INVENTORY_QUERIES,
    NETWORK_RESOURCE_TYPES,
    NETWORK_RESOURCES_QUERY,
    PROTECTED_ITEM_TYPE,
    PROTECTED_ITEMS_QUERY,
    InventoryError,
    InventoryProgress,
    fetch_resources,
    fetch_service_tags,
    load_service_tags,
    read_service_tags_file,
    service_tags_to_public_shape,
)
from .network import ArmError, ArmErrorDetail, NetworkWriter, ResourceId, parse_resource_id, properties_match
from .retry import RetriesExhaustedError, RetrySettings

__all__ = [
    "DEFAULT_ARM_ENDPOINT",
    "INVENTORY_QUERIES",
    "NETWORK_RESOURCES_QUERY",
    "NETWORK_RESOURCE_TYPES",
    "PROTECTED_ITEMS_QUERY",
    "PROTECTED_ITEM_TYPE",
    "ArmError",
    "ArmErrorDetail",
    "InventoryError",
    "InventoryProgress",
    "NetworkWriter",
    "ResourceId",
    "RetriesExhaustedError",
    "RetrySettings",
    "arm_client_kwargs",
    "arm_scope",
    "default_credential",
    "fetch_resources",
    "fetch_service_tags",
    "load_service_tags",
    "parse_resource_id",
    "properties_match",
    "read_service_tags_file",
    "service_tags_to_public_shape",
]
