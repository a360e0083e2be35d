"""The whole pure pipeline in one call: estate + tags + settings → reports and a verified plan."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .config import Settings, is_subscription_id
from .drift import evaluate_estate
from .gcpause import collector_paused
from .model import Estate, ProtectedItem, RecoveryNic, key, subscription_of
from .planner import Plan, make_plan
from .servicetags import ServiceTags


def scan(estate: Estate, tags: ServiceTags, settings: Settings) -> Plan:
    with collector_paused():  # the pipeline makes no reference cycles to collect (gcpause.py)
        return make_plan(estate, evaluate_estate(estate, tags, settings), tags, settings)


REGION = re.compile(r"^[a-z0-9]{2,40}$")
VM_TYPE = "microsoft.compute/virtualmachines"
VNET_TYPE = "microsoft.network/virtualnetworks"


class PreflightError(ValueError):
    """A preflight question that cannot be asked as given (the caller's mistake): one line."""


@dataclass(frozen=True)
class PreflightNames:
    """What the messages call the arguments: the CLI's words by default, the HTTP endpoint its parameter names."""

    vm: str = "vm"
    target_region: str = "target region"
    recovery_vnet: str = "recovery VNet"
    recovery_subnet: str = "recovery subnet"


def check_preflight(vm_id: str, target_region: str, recovery_vnet_id: str = "",
                    recovery_subnet: str = "", *, names: PreflightNames = PreflightNames()) -> tuple[str, ...]:
    """Validate the preflight arguments before anything is read; returns the subscriptions to read."""
    if not _is_id_of(vm_id, VM_TYPE):
        raise PreflightError(f"{names.vm} must be a VM resource id (/subscriptions/…/virtualMachines/NAME), not "
                             f"{_shown(vm_id)}")
    if not REGION.match(target_region.strip().lower()):
        raise PreflightError(f"{names.target_region} must be an Azure region name such as centralus, not "
                             f"{_shown(target_region)}")
    if bool(recovery_vnet_id) != bool(recovery_subnet):
        raise PreflightError(f"give the {names.recovery_vnet} and the {names.recovery_subnet} together (or neither)")
    if recovery_vnet_id and not _is_id_of(recovery_vnet_id, VNET_TYPE):
        raise PreflightError(f"{names.recovery_vnet} must be a virtual network resource id "
                             f"(/subscriptions/…/virtualNetworks/NAME), not {_shown(recovery_vnet_id)}")
    if recovery_subnet and not re.fullmatch(r"[A-Za-z0-9_.-]{1,80}", recovery_subnet):
        raise PreflightError(f"{names.recovery_subnet} must be a subnet name, not {_shown(recovery_subnet)}")
    return tuple(sorted({subscription_of(vm_id), *([subscription_of(recovery_vnet_id)] if recovery_vnet_id else [])}))


def check_region(tags: ServiceTags, region: str, *, names: PreflightNames = PreflightNames()) -> None:
    """A target region must be one the Service Tags data knows (its regional Storage tag), else nothing can be
    evaluated for it."""
    if tags.regional_tag("Storage", region) is None:
        raise PreflightError(f"{names.target_region} {_shown(region)} is not an Azure region in the Service Tags "
                             f"data (change number {tags.change_number or '?'})")


def _is_id_of(resource_id: str, resource_type: str) -> bool:
    parts = [p for p in resource_id.strip().split("/") if p]
    return (len(parts) == 8 and parts[0].lower() == "subscriptions" and is_subscription_id(parts[1])
            and parts[2].lower() == "resourcegroups" and parts[4].lower() == "providers"
            and f"{parts[5]}/{parts[6]}".lower() == resource_type)


def _shown(value: str) -> str:
    return repr(value if len(value) <= 100 else value[:99] + "…")


def preflight_item(estate: Estate, vm_id: str, target_region: str, recovery_vnet_id: str = "",
                   recovery_subnet: str = "") -> ProtectedItem:
    """A protected item as ASR would create it for a VM not yet replicated, so the same engine can check it.

    The target side is evaluated only when the recovery VNet and subnet are given (ASR would otherwise
    create a new VNet, which has no NSG or route table yet).
    """
    vm = estate.vms.get(key(vm_id))
    if vm is None and key(vm_id) in estate.unreadable:
        # There but unreadable: the evaluation reports it unknown, with the reason.
        name = vm_id.rstrip("/").rsplit("/", 1)[-1]
        return ProtectedItem(id=f"preflight:{vm_id}", name=name, vm_id=vm_id, source_region="",
                             target_region=target_region.lower(), protection_state="NotProtected")
    if vm is None:
        raise ValueError(f"VM {_shown(vm_id)} is not in the inventory")
    recovery = tuple(
        RecoveryNic(nic_id, recovery_vnet_id, (recovery_subnet,)) for nic_id in vm.nic_ids
    ) if recovery_vnet_id and recovery_subnet else ()
    return ProtectedItem(id=f"preflight:{vm.id}", name=vm.name, vm_id=vm.id, source_region=vm.location,
                         target_region=target_region.lower(), protection_state="NotProtected",
                         recovery_nics=recovery, recovery_vnet_id=recovery_vnet_id)
