"""Read a JSON file an operator pointed us at, turning every way it can be wrong into one clear line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json_file(path: str | Path, what: str, error: type[Exception]) -> Any:
    """The parsed document, or ``error`` saying why ``what`` (e.g. "estate file") at ``path`` can't be read."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except json.JSONDecodeError as failure:
        raise error(f"{what} {path} is not valid JSON: {failure}") from None
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not UTF-8 text") from None
    except OSError as failure:
        raise error(f"cannot read {what} {path}: {failure.strerror}") from None
