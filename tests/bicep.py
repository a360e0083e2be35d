"""Small Bicep text helpers shared by the infra and RBAC tests (enough for these templates; not a Bicep parser)."""

from __future__ import annotations

import re
from pathlib import Path


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def strip_comments(text: str) -> str:
    return "\n".join(re.sub(r"\s//.*$|^//.*$", "", line) for line in text.splitlines())


def balanced(text: str, start: int, open_char: str, close_char: str) -> str:
    """The text from ``start`` (an ``open_char``) to its matching ``close_char``; quoted strings are skipped."""
    assert text[start] == open_char, text[start : start + 40]
    depth, i, quoted = 0, start, False
    while i < len(text):
        ch = text[i]
        if quoted and ch == "\\":
            i += 2  # an escaped character inside a string ('app\'s')
            continue
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == open_char:
            depth += 1
        elif not quoted and ch == close_char:
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
        i += 1
    raise AssertionError(f"unbalanced {open_char}{close_char} from offset {start}")


def bicep_var_array(text: str, name: str) -> list[str]:
    """The string items of ``var <name> = [ ... ]``."""
    match = re.search(rf"^var {re.escape(name)} = \[", strip_comments(text), re.MULTILINE)
    assert match, f"var {name} = [...] not found"
    body = balanced(strip_comments(text), match.end() - 1, "[", "]")
    return re.findall(r"'([^']*)'", body)


def bicep_resource(text: str, symbol: str) -> str:
    """The body of ``resource <symbol> '<type>@<version>' = ... { ... }``."""
    clean = strip_comments(text)
    match = re.search(rf"^resource {re.escape(symbol)} '[^']+' = [^{{]*\{{", clean, re.MULTILINE)
    assert match, f"resource {symbol} not found"
    return balanced(clean, match.end() - 1, "{", "}")


def bicep_param_default(text: str, name: str) -> str | None:
    match = re.search(rf"^param {re.escape(name)} \w+(?: = (.+))?$", text, re.MULTILINE)
    assert match, f"param {name} not found"
    return match.group(1)


