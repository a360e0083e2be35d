"""How failures reach operators: one line, whatever raised it (an SDK error message can span a page)."""

from __future__ import annotations

from azure.core.exceptions import AzureError

from .azure.inventory import InventoryError
from .azure.network import ArmError
from .azure.retry import RetriesExhaustedError

# Failures of Azure itself (auth, throttling exhausted, ARM refusals), as opposed to user mistakes.
AZURE_FAILURES: tuple[type[Exception], ...] = (AzureError, InventoryError, ArmError, RetriesExhaustedError)


def one_line(error: BaseException, limit: int = 500) -> str:
    text = str(getattr(error, "message", "") or error) or type(error).__name__
    return " ".join(text.split())[:limit]
