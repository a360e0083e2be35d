"""Failover readiness, live: gateways, connections and ExpressRoute circuits come with the one network query (no extra
request), the real Resource Graph SDK client carries the circuit's top-level ``sku``, and the example estate's hybrid
VMs get their readiness warnings — never a write."""

from __future__ import annotations

from pathlib import Path

from asr_remediate.readiness import READINESS_KINDS
from tests.emulator.arm_emulator import ArmEmulator
from tests.emulator.test_end_to_end import SCOPE, make_runtime


def test_readiness_costs_no_request_and_plans_nothing(estate_arm: ArmEmulator, tmp_path: Path) -> None:
    runtime = make_runtime(estate_arm, tmp_path, apply=False, read_admin_rules=False)[0]
    result = runtime.run(SCOPE, trigger="cli", actor="test")
    readiness = {(r.name, f.kind) for r in result.plan.reports for f in r.findings if f.kind in READINESS_KINDS}
    assert readiness == {("vm-hybrid-01", "failover-expressroute"), ("vm-hybrid-02", "failover-expressroute"),
                         ("vm-hybrid-02", "failover-geopolitical")}
    geo = next(f for r in result.plan.reports if r.name == "vm-hybrid-02" for f in r.findings
               if f.kind == "failover-geopolitical")
    assert "(standard tier, peering location Washington DC: North America)" in geo.message  # sku read live
    assert not [fix for c in result.plan.changes for fix in c.fixes if "vm-hybrid" in fix.vm_id]
    # Resource Graph pages (the protected items' and the network query's), the Service Tags call and the firewall
    # stage's rule collection group reads (one per policy): nothing for gateways, connections or circuits.
    others = [r for r in estate_arm.requests
              if not r.path.lower().endswith("/providers/microsoft.resourcegraph/resources")
              and "/servicetags" not in r.path.lower() and "/firewallpolicies/" not in r.path.lower()]
    assert others == []
    assert estate_arm.count("POST", r"/providers/Microsoft.ResourceGraph/resources$") >= 2
