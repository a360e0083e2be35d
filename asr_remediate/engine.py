"""The whole pure pipeline in one call: estate + tags + settings → reports and a verified plan."""

from __future__ import annotations

from .config import Settings
from .drift import evaluate_estate
from .model import Estate, ProtectedItem, RecoveryNic, key
from .planner import Plan, make_plan
from .servicetags import ServiceTags


def scan(estate: Estate, tags: ServiceTags, settings: Settings) -> Plan:
    return make_plan(estate, evaluate_estate(estate, tags, settings), tags, settings)


def preflight_item(estate: Estate, vm_id: str, target_region: str, recovery_vnet_id: str = "",
                   recovery_subnet: str = "") -> ProtectedItem:
    """A protected item as ASR would create it for a VM not yet replicated, so the same engine can check it.

    The target side is evaluated only when the recovery VNet and subnet are given (ASR would otherwise
    create a new VNet, which has no NSG or route table yet).
    """
    vm = estate.vms.get(key(vm_id))
    if vm is None:
        raise ValueError(f"VM {vm_id} is not in the inventory")
    recovery = tuple(
        RecoveryNic(nic_id, recovery_vnet_id, (recovery_subnet,)) for nic_id in vm.nic_ids
    ) if recovery_vnet_id and recovery_subnet else ()
    return ProtectedItem(id=f"preflight:{vm.id}", name=vm.name, vm_id=vm.id, source_region=vm.location,
                         target_region=target_region.lower(), protection_state="NotProtected",
                         recovery_nics=recovery, recovery_vnet_id=recovery_vnet_id)
