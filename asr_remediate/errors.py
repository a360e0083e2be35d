"""How failures reach operators: one line, whatever raised it (an SDK error message can span a page)."""

from __future__ import annotations

from azure.core.exceptions import AzureError

from .azure.inventory import InventoryError
from .azure.network import ArmError
from .azure.retry import RetriesExhaustedError

# Failures of Azure itself (auth, throttling exhausted, ARM refusals), as opposed to user mistakes.
AZURE_FAILURES: tuple[type[Exception], ...] = (AzureError, InventoryError, ArmError, RetriesExhaustedError)


def one_line(error: BaseException | str, limit: int = 500) -> str:
    """The error's text on one line, cut to ``limit`` characters (with an ellipsis): a message never carries a
    page of SDK output, nor echoes a huge input back."""
    text = str(getattr(error, "message", "") or error) or type(error).__name__
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
