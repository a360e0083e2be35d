"""infra/role.bicep grants exactly what the code sends: derived from the requests, not hand-listed.

Every emulator test already fails when one of its SDK requests needs an action the role lacks (the ``arm`` fixture
in conftest.py). This test drives every code path that talks to ARM — a scan, an apply with a lost race, effective
routes, events on each watched kind, rollback — and checks the other direction too: the role grants no action that
none of those requests needs (a permission nobody uses is attack surface, and hides what the app really does).
How each request maps to its action, with the sources, is in tests/rbac.py.
"""

from __future__ import annotations

from pathlib import Path

from asr_remediate.audit import Auditor
from asr_remediate.service import APPLIED, rollback
from examples.make_example_estate import SUB
from tests.emulator.arm_emulator import ArmEmulator, Fault
from tests.emulator.test_end_to_end import SCOPE, make_runtime
from tests.emulator.test_firewall_apply import apply_plan as apply_firewall_plan
from tests.emulator.test_firewall_apply import resources as firewall_resources
from tests.emulator.test_firewall_apply import settings as firewall_settings
from tests.emulator.test_firewall_apply import writer as firewall_writer
from tests.rbac import actions_for, granted, needed, role_actions


def test_actions_are_derived_from_the_request_shapes() -> None:
    nsg = (f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg1")
    assert actions_for("GET", nsg) == {"Microsoft.Network/networkSecurityGroups/read"}
    assert actions_for("PUT", f"{nsg}/securityRules/r1") == {
        "Microsoft.Network/networkSecurityGroups/securityRules/write"}
    assert actions_for("DELETE", f"{nsg}/securityRules/r1") == {
        "Microsoft.Network/networkSecurityGroups/securityRules/delete"}
    nic = nsg.replace("networkSecurityGroups/nsg1", "networkInterfaces/nic1")
    assert actions_for("POST", f"{nic}/effectiveRouteTable") == {
        "Microsoft.Network/networkInterfaces/effectiveRouteTable/action"}
    poll = f"/subscriptions/{SUB}/providers/Microsoft.Network/locations/eastus/operations/1234"
    assert actions_for("GET", poll) == {"Microsoft.Network/locations/operations/read"}
    policy = nsg.replace("networkSecurityGroups/nsg1", "firewallPolicies/p")
    assert actions_for("GET", f"{policy}/ruleCollectionGroups") == {
        "Microsoft.Network/firewallPolicies/ruleCollectionGroups/read"}  # the list of a policy's groups
    assert actions_for("PUT", f"{policy}/ruleCollectionGroups/asr-remediate") == {
        "Microsoft.Network/firewallPolicies/ruleCollectionGroups/write"}
    assert actions_for("GET", poll.replace("/operations/", "/operationResults/")) == {
        "Microsoft.Network/locations/operationResults/read"}
    query = {"query": "resources | where type =~ 'microsoft.network/routetables' | order by id asc"}
    assert actions_for("POST", "/providers/Microsoft.ResourceGraph/resources", query) == {
        "Microsoft.ResourceGraph/resources/read", "microsoft.network/routetables/read"}


def test_the_role_grants_exactly_what_the_code_paths_use(estate_arm: ArmEmulator, tmp_path: Path) -> None:
    arm = estate_arm
    runtime, _ = make_runtime(arm, tmp_path, read_effective_routes=True, read_effective_nsgs=True)
    first = runtime.run(SCOPE, trigger="cli", actor="test")
    assert first.applied is not None and first.applied.count(APPLIED) == 13

    # An update of the bot's own rule and route that loses a race (412): the writer re-reads the child itself.
    rule_nsg = next(k for k in arm.resources if k.endswith("/nsg-app"))
    table = next(k for k in arm.resources if k.endswith("/rt-forced-tunnel"))
    for parent, child, name in ((rule_nsg, "securityRules", "asr-remediate-AzureSiteRecovery"),
                                (table, "routes", "asr-remediate-AzureSiteRecovery")):
        doc = arm.resources[parent]
        current = next(c for c in doc["properties"][child] if c["name"] == name)
        edited = ({**current["properties"], "destinationPortRange": "444"} if child == "securityRules"
                  else {**current["properties"], "nextHopType": "None"})
        (arm.add_security_rule if child == "securityRules" else arm.add_route)(parent, name, edited)
        arm.inject("PUT", rf"/{child}/{name}", Fault.error(412, "PreconditionFailed", "etag moved"))
    second = runtime.run(SCOPE, trigger="cli", actor="test")
    assert second.applied is not None and second.applied.count(APPLIED) == 2

    # Events on every watched kind re-read that resource from ARM.
    for kind, suffix in (("networkSecurityGroups", "/nsg-app"), ("routeTables", "/rt-forced-tunnel"),
                         ("virtualNetworks", "/vnet-prod-eastus"), ("networkInterfaces", "/vm-db-01-nic")):
        resource_id = next((arm.resources[k]["id"] for k in arm.resources if k.endswith(suffix)), None)
        assert resource_id is not None, f"the example estate has no {kind} ending in {suffix}"
        runtime.handle_event({"id": kind, "eventType": "Microsoft.Resources.ResourceWriteSuccess",
                              "subject": resource_id, "eventTime": "2026-12-02T00:00:00Z",
                              "data": {"resourceUri": resource_id, "operationName": f"Microsoft.Network/{kind}/write",
                                       "subscriptionId": SUB, "claims": {}}}, actor="test")

    runtime.rollback(first.run_id, actor="test", apply=True)
    assert arm.count("DELETE") > 0

    # Azure Firewall (ASR_APPLY_FIREWALL): the bot's rule collection group written, with a lost race, and rolled
    # back, in a hub-and-spoke estate of its own in the same emulator.
    fw_dir = tmp_path / "firewall"
    fw_dir.mkdir()
    arm.add_all(firewall_resources())
    with firewall_writer(arm) as network:
        config = firewall_settings(arm)
        _, written, sink = apply_firewall_plan(arm, fw_dir, firewall_resources(), config, network)
        assert [o.result for o in written.outcomes] == [APPLIED]
        rollback(sink.records(written.run_id), network, Auditor(sink, trigger="cli", actor="test"), config,
                 apply=True)
    assert arm.count("DELETE", r"ruleCollectionGroups") == 1

    used = {a.lower() for a in needed(arm.requests)}
    unused = sorted(a for a in granted() if a.lower() not in used)
    assert not unused, f"infra/role.bicep grants action(s) no code path uses: {unused}"
    lists = role_actions()
    assert "Microsoft.Network/networkInterfaces/effectiveRouteTable/action" in lists["effectiveRouteActions"]
    assert not any(a.endswith(("/write", "/delete")) for a in lists["readActions"])
    assert lists["firewallWriteActions"] == {"Microsoft.Network/firewallPolicies/ruleCollectionGroups/write",
                                             "Microsoft.Network/firewallPolicies/ruleCollectionGroups/delete"}
