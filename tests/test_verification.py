"""The plans' verification rescans (planner._remaining, firewall_planner.plan_firewalls) evaluate only the stages
whose findings they look up (drift.verification_findings): for every protected item, in the estate as read and in
estates patched by part or all of a plan, those findings are exactly the ones of those kinds that the full
evaluation gives — so a plan verified the cheap way is the plan verified the full way.

Estates: the bundled example estate and a synthetic benchmark estate (NSG denies, forced tunnelling, Azure
Firewalls with policies, private endpoints, opted-out and failed-over VMs), under both rule profiles, source scopes
and rule styles.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from asr_remediate.config import Settings
from asr_remediate.drift import FIREWALL_FIX_KINDS, FIX_KINDS, evaluate_item, verification_findings
from asr_remediate.engine import scan
from asr_remediate.estate import Estate, build_estate, load_estate_file
from asr_remediate.planner import apply_changes
from asr_remediate.servicetags import ServiceTags
from benchmarks.generate import generate
from tests import tagdata

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "estate.json"


def _estates(estate: Estate, tags: ServiceTags, settings: Settings) -> list[Estate]:
    """The estate, and the estate patched by every other change of its plan and by all of them."""
    changes = scan(estate, tags, settings).changes
    assert changes, "a plan to verify"
    return [estate, apply_changes(estate, changes[::2]), apply_changes(estate, changes)]


def _check(estate: Estate, tags: ServiceTags, settings: Settings) -> Counter[str]:
    seen: Counter[str] = Counter()
    for patched in _estates(estate, tags, settings):
        for item in patched.protected_items:
            full = evaluate_item(item, patched, tags, settings).findings
            for kinds in (FIX_KINDS, FIREWALL_FIX_KINDS):
                expected = tuple(f for f in full if f.kind in kinds)
                assert verification_findings(item, patched, tags, settings, kinds) == expected, item.id
                seen.update(f.kind for f in expected)
    return seen


@pytest.mark.parametrize("settings", [Settings(), Settings(source_scope="vm", rule_style="prefix"),
                                      Settings(profile="seed-2017", include_key_vault=True)],
                         ids=["defaults", "vm-scope-prefix-rules", "seed-2017-profile"])
def test_verification_findings_are_the_full_evaluations_findings_of_those_kinds_in_a_synthetic_estate(
        settings: Settings) -> None:
    tags = tagdata.full()
    seen = _check(build_estate(generate(300, seed=11, tags=tags).resources), tags, settings)
    assert seen["nsg-deny"] and seen["route-next-hop"] and seen["firewall-deny"], seen


def test_verification_findings_are_the_full_evaluations_findings_of_those_kinds_in_the_example_estate() -> None:
    tags = tagdata.full()
    seen = _check(load_estate_file(EXAMPLE), tags, Settings())
    assert seen["nsg-deny"], seen


def test_kinds_whose_stages_it_does_not_run_are_refused() -> None:
    """Asked for a kind only skipped stages make (a BGP warning), it would silently return nothing: it refuses."""
    estate = load_estate_file(EXAMPLE)
    with pytest.raises(ValueError, match="bgp-propagation"):
        verification_findings(estate.protected_items[0], estate, tagdata.full(), Settings(), ("bgp-propagation",))
