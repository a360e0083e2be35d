"""Service Tags test data, each file parsed at most once per test session (shared by the test modules)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from asr_remediate.servicetags import ServiceTags, load_service_tags_file

ROOT = Path(__file__).resolve().parent.parent
FULL_FILE = ROOT / "examples" / "ServiceTags_Public_20251028.json"
TRIMMED_375 = ROOT / "tests" / "data" / "ServiceTags_Public_cn375_trimmed.json"
TRIMMED_376 = ROOT / "tests" / "data" / "ServiceTags_Public_cn376_trimmed.json"


@cache
def load(path: Path) -> ServiceTags:
    return load_service_tags_file(path)


def full() -> ServiceTags:
    return load(FULL_FILE)


def trimmed() -> ServiceTags:
    return load(TRIMMED_376)
