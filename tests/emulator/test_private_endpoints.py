"""Private endpoints live: Resource Graph serves the private endpoints, private DNS zone links and vaults
(``resources`` table), the real SDK reads them, ``export`` carries them, and the offline scan of the export agrees.

The example estate's ``vm-pe-01`` replicates from a locked-down spoke through vault ``rsv-asr-private``, which has
private endpoints for Site Recovery in the source and the recovery VNet (examples/make_example_estate.py,
``private_spoke``); semantics and sources in asr_remediate/privatelink.py and tests/test_privatelink.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from asr_remediate.drift import COMPLIANT, DRIFT
from asr_remediate.engine import scan
from asr_remediate.estate import build_estate
from examples.make_example_estate import SUB
from tests.emulator.arm_emulator import ArmEmulator
from tests.emulator.test_end_to_end import SCOPE, make_runtime, statuses


def test_the_locked_down_spoke_is_compliant_live_and_export_carries_its_private_links(estate_arm: ArmEmulator,
                                                                                        tmp_path: Path) -> None:
    runtime = make_runtime(estate_arm, tmp_path, apply=False)[0]
    result = runtime.run(SCOPE, trigger="cli", actor="test")
    report = next(r for r in result.plan.reports if r.name == "vm-pe-01")
    assert report.status == COMPLIANT and report.findings == ()
    assert not any("private" in c.resource_id for c in result.plan.changes)
    exported = runtime.collect(SCOPE)
    types = {r["type"] for r in exported}
    assert {"microsoft.network/privateendpoints", "microsoft.network/privatednszones/virtualnetworklinks",
            "microsoft.recoveryservices/vaults"} <= types
    (tmp_path / "estate.json").write_text(json.dumps(exported))
    offline = scan(build_estate(json.loads((tmp_path / "estate.json").read_text())), runtime.service_tags(SUB),
                   runtime.settings)
    assert [(r.name, r.status) for r in offline.reports] == [(r.name, r.status) for r in result.plan.reports]
    assert len(build_estate(exported).private_links.endpoints) == 2


def test_without_the_recovery_vnets_endpoint_the_vm_is_in_drift_and_nothing_is_planned_for_it(
        estate_arm: ArmEmulator, tmp_path: Path) -> None:
    gone = next(k for k in estate_arm.resources if k.endswith("/privateendpoints/pe-rsv-asr-private-centralus"))
    del estate_arm.resources[gone]
    vault = next(k for k in estate_arm.resources if k.endswith("/vaults/rsv-asr-private"))
    connections = estate_arm.resources[vault]["properties"]["privateEndpointConnections"]
    estate_arm.resources[vault]["properties"]["privateEndpointConnections"] = [
        c for c in connections if not c["properties"]["privateEndpoint"]["id"].lower().endswith("-centralus")]
    result = make_runtime(estate_arm, tmp_path, apply=False)[0].run(SCOPE, trigger="cli", actor="test")
    assert statuses(result)["vm-pe-01"] == DRIFT
    report = next(r for r in result.plan.reports if r.name == "vm-pe-01")
    assert [(f.kind, f.side, f.fixable) for f in report.findings] == [("private-endpoint", "target", False)]
    assert not any("private" in c.resource_id for c in result.plan.changes)
