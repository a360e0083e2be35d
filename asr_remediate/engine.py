"""The whole pure pipeline in one call: estate + tags + settings → reports and a verified plan."""

from __future__ import annotations

from .config import Settings
from .drift import evaluate_estate
from .model import Estate
from .planner import Plan, make_plan
from .servicetags import ServiceTags


def scan(estate: Estate, tags: ServiceTags, settings: Settings) -> Plan:
    return make_plan(estate, evaluate_estate(estate, tags, settings), tags, settings)
