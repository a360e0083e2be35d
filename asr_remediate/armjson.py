"""Small readers of ARM JSON shared by the parsers at the edge (estate.py and its per-area modules).

Each parser raises its own error type (caught per resource by ``estate.build_estate``), so the readers take it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def properties_of(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``properties`` object of an ARM resource; a flattened document (properties at the top) is read as is."""
    props = resource.get("properties")
    return props if isinstance(props, Mapping) else resource


def optional_text(value: Any, what: str, error: type[ValueError]) -> str:
    """A string field: absent (``None``) is ""; any other non-string JSON value is ``error``."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise error(f"{what} is not a string")
    return value
