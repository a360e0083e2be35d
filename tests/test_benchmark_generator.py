"""The benchmark estate generator: deterministic, parseable, and a scan of it shows every kind of status.

Fast (50 VMs): the timed benchmarks themselves are not part of the test suite (``make bench``).
"""

from __future__ import annotations

import json
from collections import Counter

from asr_remediate.config import Settings
from asr_remediate.drift import COMPLIANT, DRIFT, SKIPPED, UNKNOWN
from asr_remediate.engine import scan
from asr_remediate.estate import build_estate
from asr_remediate.health import CONFIRMED, OTHER, UNEXPLAINED
from benchmarks.generate import generate, region_pairs
from tests import tagdata

N = 50


def test_generator_is_deterministic_per_seed() -> None:
    tags = tagdata.full()
    first = generate(N, seed=7, tags=tags)
    again = generate(N, seed=7, tags=tags)
    other = generate(N, seed=8, tags=tags)
    assert json.dumps(first.resources, sort_keys=True) == json.dumps(again.resources, sort_keys=True)
    assert first.subscriptions == again.subscriptions
    assert json.dumps(first.resources, sort_keys=True) != json.dumps(other.resources, sort_keys=True)


def test_generated_estate_parses_and_its_scan_mixes_statuses() -> None:
    tags = tagdata.full()
    synthetic = generate(N, tags=tags)
    estate = build_estate(synthetic.resources)
    assert len(estate.protected_items) == len(estate.vms) == N
    assert synthetic.counts["microsoft.compute/virtualmachines"] == N
    assert 0 < synthetic.max_rules_per_nsg <= 200
    pairs = set(region_pairs(tags))
    assert {(i.source_region, i.target_region) for i in estate.protected_items} <= pairs | {(b, a) for a, b in pairs}
    plan = scan(estate, tags, Settings())
    statuses = Counter(r.status for r in plan.reports)
    assert statuses[COMPLIANT] and statuses[DRIFT], statuses
    assert set(statuses) <= {COMPLIANT, DRIFT, UNKNOWN, SKIPPED}
    kinds = {f.kind for r in plan.reports for f in r.findings}
    assert {"nsg-deny", "route-appliance"} <= kinds, kinds
    assert plan.changes


def test_one_workload_subscription_per_200_vms_and_a_dr_subscription_per_region_pair() -> None:
    synthetic = generate(450, tags=tagdata.full())
    workload = {r["subscriptionId"] for r in synthetic.resources
                if r["type"] == "microsoft.compute/virtualmachines"}
    vaults = {r["subscriptionId"] for r in synthetic.resources if r["type"].startswith("microsoft.recoveryservices/")}
    assert len(workload) == 3
    assert vaults and not vaults & workload
    assert set(synthetic.subscriptions) == {r["subscriptionId"] for r in synthetic.resources}


def test_the_synthetic_estate_carries_asr_health_errors_of_each_kind() -> None:
    """Issue 15: some VMs' connectivity errors are confirmed by the engine, some unexplained, some VMs have drift ASR
    has not reported, and some carry the 161011 warning; adding them changed nothing else of the estate."""
    tags = tagdata.full()
    synthetic = generate(400, tags=tags)
    plan = scan(build_estate(synthetic.resources), tags, Settings())
    checks = [r.asr_health for r in plan.reports if r.asr_health is not None]
    verdicts = Counter(e.verdict for c in checks for e in c.errors)
    assert verdicts[CONFIRMED] and verdicts[UNEXPLAINED] and verdicts[OTHER], verdicts
    assert sum(1 for c in checks if c.not_yet_reported) > verdicts[CONFIRMED]
    stripped = [r for r in synthetic.resources if not r["type"].endswith("/replicationprotecteditems")]
    assert all("healthErrors" not in r.get("properties", {}) for r in stripped)
