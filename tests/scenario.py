"""A tiny one-VM estate (eastus → centralus) that tests tweak: NSG rules, route tables, recovery NSGs."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from asr_remediate.config import Settings
from asr_remediate.engine import scan
from asr_remediate.estate import build_estate
from asr_remediate.planner import Plan
from asr_remediate.servicetags import ServiceTags, load_service_tags_file
from examples.estate_builder import admin_rules as admin_rules_resource
from examples.estate_builder import nic, nsg, protected_item, rid, route_table, vm, vnet

REPO = Path(__file__).resolve().parent.parent

SUB = "00000000-0000-0000-0000-0000000000aa"
RG = "rg-src"
DR_RG = "rg-dr"


@dataclass
class Scenario:
    subnet_rules: list[dict[str, Any]] | None = field(default_factory=list)  # None: subnet has no NSG
    nic_rules: list[dict[str, Any]] | None = None  # None: NIC has no NSG
    routes: list[tuple[str, ...]] | None = None  # None: no route table
    disable_bgp: bool = False
    gateway: bool = False
    recovery_rules: list[dict[str, Any]] | None = field(default_factory=list)
    recovery_nic_rules: list[dict[str, Any]] | None = None
    vm_tags: dict[str, str] | None = None
    nsg_tags: dict[str, str] | None = None
    encryption: str = "NotEncrypted"
    active_location: str = "Primary"
    protection_state: str = "Protected"
    service_endpoints: list[tuple[str, list[str]]] | None = None
    ip: str = "10.1.1.4"
    admin_rules: list[dict[str, Any]] | None = None  # effective security admin rules of the source VNet (read)
    recovery_admin_rules: list[dict[str, Any]] | None = None  # … of the recovery VNet
    health_errors: list[dict[str, Any]] | None = None  # the protected item's healthErrors[] (examples.health_error)
    replication_health: str = "Normal"

    def resources(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        subnet: dict[str, Any] = {"name": "snet", "prefix": "10.1.1.0/24"}
        if self.subnet_rules is not None:
            subnet_nsg = nsg(SUB, RG, "nsg-subnet", "eastus", self.subnet_rules, self.nsg_tags)
            out.append(subnet_nsg)
            subnet["nsg"] = subnet_nsg["id"]
        if self.routes is not None:
            table = route_table(SUB, RG, "rt", "eastus", self.routes, disable_bgp=self.disable_bgp)
            out.append(table)
            subnet["route_table"] = table["id"]
        if self.service_endpoints:
            subnet["service_endpoints"] = self.service_endpoints
        subnets = [subnet] + ([{"name": "GatewaySubnet", "prefix": "10.1.255.0/27"}] if self.gateway else [])
        source_vnet = vnet(SUB, RG, "vnet-src", "eastus", ["10.1.0.0/16"], subnets)
        out.append(source_vnet)
        if self.admin_rules is not None:
            out.append(admin_rules_resource(source_vnet["id"], self.admin_rules))
        recovery_subnet: dict[str, Any] = {"name": "snet-dr", "prefix": "10.2.1.0/24"}
        if self.recovery_rules is not None:
            dr_nsg = nsg(SUB, DR_RG, "nsg-dr", "centralus", self.recovery_rules)
            out.append(dr_nsg)
            recovery_subnet["nsg"] = dr_nsg["id"]
        dr_vnet = vnet(SUB, DR_RG, "vnet-dr", "centralus", ["10.2.0.0/16"], [recovery_subnet])
        out.append(dr_vnet)
        if self.recovery_admin_rules is not None:
            out.append(admin_rules_resource(dr_vnet["id"], self.recovery_admin_rules))
        recovery_nic_nsg = ""
        if self.recovery_nic_rules is not None:
            rn = nsg(SUB, DR_RG, "nsg-dr-nic", "centralus", self.recovery_nic_rules)
            out.append(rn)
            recovery_nic_nsg = rn["id"]
        vm_id = rid(SUB, RG, "Microsoft.Compute", "virtualMachines", "vm1")
        nic_nsg = ""
        if self.nic_rules is not None:
            n = nsg(SUB, RG, "nsg-nic", "eastus", self.nic_rules)
            out.append(n)
            nic_nsg = n["id"]
        the_nic = nic(SUB, RG, "vm1-nic", "eastus", f"{source_vnet['id']}/subnets/snet", self.ip, vm_id, nic_nsg)
        out += [the_nic, vm(SUB, RG, "vm1", "eastus", [the_nic["id"]], self.vm_tags)]
        out.append(protected_item(SUB, "vault", vm_id, "vm1", "eastus", "centralus", the_nic["id"], dr_vnet["id"],
                                  "snet-dr", recovery_nsg_id=recovery_nic_nsg, active_location=self.active_location,
                                  state=self.protection_state,
                                  encryption=self.encryption, replication_health=self.replication_health,
                                  health_errors=self.health_errors))
        return out


def deny(priority: int, destination: str | list[str] = "Internet", **extra: Any) -> dict[str, Any]:
    return {"name": f"deny-{priority}", "priority": priority, "access": "Deny", "destination": destination, **extra}


def allow(priority: int, destination: str | list[str], **extra: Any) -> dict[str, Any]:
    return {"name": f"allow-{priority}", "priority": priority, "access": "Allow", "destination": destination,
            "protocol": "Tcp", "port": "443", **extra}


@cache
def full_tags() -> ServiceTags:
    """The real ServiceTags_Public file (changeNumber 375), parsed once per test session."""
    return load_service_tags_file(REPO / "examples" / "ServiceTags_Public_20251028.json")


def scan_resources(resources: list[dict[str, Any]], settings: Settings | None = None) -> Plan:
    return scan(build_estate(resources), full_tags(), settings or Settings())
