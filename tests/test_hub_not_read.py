"""What a spoke keeps when its peered hub VNet is not in the inventory (a hub in a connectivity subscription that no
protected item names and ASR_SUBSCRIPTIONS does not list).

Everything the spoke's own path needs from the hub is in the spoke's VNet document, which Resource Graph returns with
the spoke: each peering's ``remoteAddressSpace`` ("The reference to the address space peered with the remote virtual
network") / ``remoteVirtualNetworkAddressSpace`` ("The reference to the current address space of the remote virtual
network"), ``remoteVirtualNetwork`` and ``useRemoteGateways`` (VirtualNetworkPeeringPropertiesFormat,
specification/network/resource-manager/Microsoft.Network, azure-rest-api-specs; example
stable/2024-05-01/examples/VirtualNetworkPeeringGet.json). So:

- the VirtualNetwork service tag (vnettag.py) and the VNetPeering system route take the hub's space from the peering;
- a gateway used through ``useRemoteGateways`` (the BGP warning, failover readiness) is found by the peering's
  ``remoteVirtualNetwork`` id, its address space taken from the peering (readiness.py);

and the hub VNet document changes no verdict. The tests prove it by removing the hub VNets and comparing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from asr_remediate.config import Settings
from asr_remediate.engine import scan
from asr_remediate.estate import build_estate
from asr_remediate.ipset import IPSet
from asr_remediate.model import key
from asr_remediate.planner import Plan
from asr_remediate.routes import route_hops
from asr_remediate.vnettag import virtual_network_tag
from examples.estate_builder import private_endpoint, recovery_vault, rid, vault_id, vnet
from tests.scenario import RG, SUB, Scenario, allow, deny, full_tags, scan_resources

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "estate.json"
VNET_TYPE = "microsoft.network/virtualnetworks"
SPOKE = rid(SUB, RG, "Microsoft.Network", "virtualNetworks", "vnet-src")


def findings(plan: Plan) -> dict[str, tuple[str, list[tuple[str, ...]]]]:
    return {r.id: (r.status, sorted((f.kind, f.severity, f.side, f.destination, f.resource_id, f.message)
                                       for f in r.findings)) for r in plan.reports}


def without(resources: list[dict[str, Any]], ids: set[str]) -> list[dict[str, Any]]:
    return [r for r in resources if r["id"].lower() not in ids]


def test_the_example_estate_gives_every_vm_the_same_findings_and_plan_without_its_hub_vnets() -> None:
    """The example's two hubs: vnet-hub-eastus (the Azure Firewall the spokes route to, peered by address space) and
    vnet-hub-er-eastus (the ExpressRoute gateway vm-hybrid's spoke uses through useRemoteGateways)."""
    rows: list[dict[str, Any]] = json.loads(EXAMPLE.read_text())
    hubs = {r["id"].lower() for r in rows if r["type"].lower() == VNET_TYPE and r["name"].startswith("vnet-hub")}
    assert len(hubs) == 2
    settings = Settings()
    full = scan(build_estate(rows), full_tags(), settings)
    cut = scan(build_estate(without(rows, hubs)), full_tags(), settings)
    assert findings(cut) == findings(full)
    assert [(c.action, c.resource_id, c.name, c.properties) for c in cut.changes] == \
           [(c.action, c.resource_id, c.name, c.properties) for c in full.changes]
    kinds = {f[0] for _, found in findings(full).values() for f in found}
    assert {"failover-expressroute", "firewall-deny", "bgp-propagation"} <= kinds  # the hubs matter to the verdicts


def hub_and_spoke(*, peered: bool = True) -> list[dict[str, Any]]:
    """The spoke's NSG allows only VirtualNetwork (443) and denies the rest; the vault's Site Recovery endpoint is in
    the hub (10.0.9.4), so it is allowed only if VirtualNetwork holds the hub's space. ``peered``: the spoke's peering
    gives the hub's address space."""
    resources = Scenario(subnet_rules=[allow(100, "VirtualNetwork"), deny(4000, "*")]).resources()
    hub = vnet(SUB, "rg-hub", "vnet-hub", "eastus", ["10.0.0.0/16"], [{"name": "snet-pe", "prefix": "10.0.9.0/24"}])
    endpoint = private_endpoint(SUB, "rg-hub", "pe-asr-hub", "eastus", f"{hub['id']}/subnets/snet-pe",
                                vault_id(SUB, "vault"), "AzureSiteRecovery", ["10.0.9.4"])
    spoke = next(r for r in resources if r["id"] == SPOKE)
    peering: dict[str, Any] = {"peeringState": "Connected", "remoteVirtualNetwork": {"id": hub["id"]}}
    if peered:
        peering["remoteAddressSpace"] = {"addressPrefixes": ["10.0.0.0/16"]}
    spoke["properties"]["virtualNetworkPeerings"] = [{"name": "to-hub", "properties": peering}]
    return [*resources, hub, endpoint, recovery_vault(SUB, "vault", "centralus", [(endpoint["id"], "Approved")])]


def site_recovery(plan: Plan) -> set[str]:
    return {f.kind for f in plan.reports[0].findings if f.side == "source" and "AzureSiteRecovery" in f.destination}


def test_the_virtualnetwork_tag_and_the_peering_route_to_a_hub_endpoint_come_from_the_spokes_own_peering() -> None:
    resources = hub_and_spoke()
    hub = {r["id"].lower() for r in resources if r["type"] == VNET_TYPE and r["name"] == "vnet-hub"}
    full, cut = scan_resources(resources), scan_resources(without(resources, hub))
    assert findings(cut) == findings(full)
    assert site_recovery(full) == {"private-dns"}  # reached, and the NSG's VirtualNetwork rule allows it
    spoke = build_estate(without(resources, hub)).vnets[key(SPOKE)]
    hub_space = IPSet.address("10.0.0.0/16")
    assert hub_space.issubset(virtual_network_tag(spoke, None, full_tags()))
    [hop] = route_hops(None, spoke, spoke.subnets[0], IPSet.address("10.0.9.4"), full_tags())
    assert (hop.next_hop_type, hop.route_name) == ("VNetPeering", "system: peering")
    # The control: a peering without the hub's address space reaches no hub endpoint at all.
    assert site_recovery(scan_resources(hub_and_spoke(peered=False))) == {"private-endpoint"}
