"""Read a JSON file an operator pointed us at (or an HTTP body), turning every way it can be wrong into one clear
line: never a traceback, never the input echoed back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _number(text: str) -> int | float:
    """A JSON integer; one too long for Python's int-string conversion limit (4300 digits) is read as a float
    (infinity), as 1e400 already is and as JavaScript would, so that it reaches the parser that knows which field
    it is in, instead of failing the whole document with a ValueError."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_json(text: str | bytes, what: str, error: type[Exception]) -> Any:
    """The parsed document, or ``error`` saying in one line why ``what`` (e.g. "request body") is not JSON."""
    try:
        return json.loads(text, parse_int=_number)
    except RecursionError:
        raise error(f"{what} is nested too deeply to read") from None
    except UnicodeDecodeError:
        raise error(f"{what} is not UTF-8 text") from None
    except json.JSONDecodeError as failure:
        raise error(f"{what} is not valid JSON: {failure}") from None
    except ValueError as failure:  # e.g. a lone surrogate; messages of json and int parsing are short
        raise error(f"{what} is not valid JSON: {failure}") from None


def read_json_file(path: str | Path, what: str, error: type[Exception]) -> Any:
    """The parsed document, or ``error`` saying why ``what`` (e.g. "estate file") at ``path`` can't be read."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not UTF-8 text") from None
    except OSError as failure:
        raise error(f"cannot read {what} {path}: {failure.strerror}") from None
    return parse_json(text, f"{what} {path}", error)
