"""The Azure Firewall part of the inventory: what Resource Graph does not hold, read from ARM.

Resource Graph's ``resources`` table holds the firewalls (classic rules inline), the Firewall Policies (``basePolicy``
and ``ruleCollectionGroups`` references) and the IP groups, and the inventory's network query reads them with the
rest; the rule collection groups are child resources it does not hold (README, *Inventory decision*). So, per scan:

* only the firewalls actually on a replicated VM's path count: a user-defined (or, when read, BGP-learned) route of a
  subnet a replicated VM sends from — a source NIC's subnet or a recovery subnet — with next hop ``VirtualAppliance``
  at one of the firewall's private IPs (``ipConfigurations[].privateIPAddress``, a secured hub's
  ``hubIPAddresses.privateIPAddress``);
* for each policy of those firewalls, and each of its ``basePolicy`` parents: **one** list of its rule collection
  groups (FirewallPolicyRuleCollectionGroups_List), cached, so a policy shared by many firewalls (or a parent shared
  by many children) is listed once; a policy Resource Graph did not return — a parent in a subscription outside the
  scan — is read first with one GET (FirewallPolicies_Get);
* the listed groups are ARM's current state, so the policy's ``ruleCollectionGroups`` references are taken from the
  list (Resource Graph's copy of the policy may lag ARM: "lags behind the source of truth by a brief period",
  learn.microsoft.com/azure/governance/resource-graph/choose-query-strategy);
* a read that fails (403 without the role's read action, 404 for a policy deleted since Resource Graph indexed it, or
  a 5xx after retries) does not fail the scan: it is returned as ``{"id": …, "type": …, "properties": {"error":
  "<code>: <message>"}}`` — the policy itself for a failed GET, ``<policy id>/ruleCollectionGroups`` for a failed list
  — which ``build_estate`` reads as an unreadable policy, so only the VMs behind that firewall are ``unknown``, with
  the reason. ``export`` writes all of it, so ``scan --estate`` of an export sees the same firewall.

A firewall at a next hop that no firewall of the network query holds is looked for once in the rest of
ASR_SUBSCRIPTIONS (runtime.collect, firewall_search.py); it, its policies and the IP groups its rules name join the
resources before this runs. IP groups in no subscription read are not read: the rules naming them are ``unknown``
(firewall.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..errors import one_line
from ..estate import FIREWALL_TYPE, build_estate
from ..firewall import MAX_POLICY_DEPTH
from ..firewall_paths import firewalls_on_paths
from ..model import Estate, key, parent_id
from .network import ArmError

FIREWALL_POLICY_ARM_TYPE = "Microsoft.Network/firewallPolicies"
RULE_COLLECTION_GROUP_ARM_TYPE = "Microsoft.Network/firewallPolicies/ruleCollectionGroups"


class FirewallReader(Protocol):
    """The two ARM reads this needs (asr_remediate.azure.network.NetworkWriter has them)."""

    def get_firewall_policy(self, policy_id: str) -> dict[str, Any]: ...
    def list_rule_collection_groups(self, policy_id: str) -> list[dict[str, Any]]: ...


def read_firewall_policies(resources: list[dict[str, Any]], network: FirewallReader,
                           progress: Callable[[str], None] = lambda message: None, *,
                           estate: Estate | None = None) -> list[dict[str, Any]]:
    """``resources`` (the Resource Graph rows) with what ARM adds for the firewalls on a replicated VM's path: their
    policies' rule collection groups (and the policies Resource Graph did not return), policies relinked to the
    groups listed. Nothing is read when no firewall is on a path (an estate without firewalls costs no call), and then
    ``resources`` itself is returned. ``estate``: ``resources`` already parsed, if the caller has it."""
    if not any(str(r.get("type", "")).lower() == FIREWALL_TYPE for r in resources):
        return resources
    estate = estate if estate is not None else build_estate(resources)
    by_id = {key(str(r.get("id", ""))): r for r in resources}
    replaced, added = firewall_reads(estate, by_id, network, progress)
    if not replaced and not added:
        return resources
    kept = [replaced.get(key(str(r.get("id", ""))), r) for r in resources]
    return kept + added


def firewall_reads(estate: Estate, documents: Mapping[str, Mapping[str, Any]], network: FirewallReader,
                   progress: Callable[[str], None] = lambda message: None
                   ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The ARM reads of :func:`read_firewall_policies` for an estate already parsed (a scan parses its inventory page
    by page and keeps only the firewall documents aside): (the policies relinked to the groups listed, by key — they
    replace Resource Graph's copies —, the documents ARM added: groups, policies outside the scan, failed reads).
    ``documents``: the firewall and policy documents ``estate`` was parsed from, by key."""
    replaced: dict[str, dict[str, Any]] = {}
    added: list[dict[str, Any]] = []
    done: set[str] = set()
    for firewall_id in firewalls_on_paths(estate):
        firewall = estate.firewalls.get(key(firewall_id))
        policy_id = firewall.policy_id if firewall else _policy_ref(documents.get(key(firewall_id)))
        depth = 0
        while policy_id and key(policy_id) not in done and depth < MAX_POLICY_DEPTH:
            done.add(key(policy_id))
            depth += 1
            document = documents.get(key(policy_id))
            fetched = -1  # where in ``added`` the policy read from ARM is
            if document is None:
                progress(f"firewall policy {policy_id} (not in Resource Graph's scope)")
                try:
                    fetched_document = dict(network.get_firewall_policy(policy_id))
                except ArmError as error:  # 403, 404, a 5xx after retries: a warning, not a failed scan
                    progress(f"firewall policy {policy_id} not read: {one_line(error)}")
                    added.append(_failed(policy_id, FIREWALL_POLICY_ARM_TYPE, error))
                    break
                fetched_document.setdefault("type", FIREWALL_POLICY_ARM_TYPE)
                fetched = len(added)
                added.append(fetched_document)
                document = fetched_document
            progress(f"rule collection groups of {policy_id}")
            try:
                groups = network.list_rule_collection_groups(policy_id)
            except ArmError as error:
                progress(f"rule collection groups of {policy_id} not read: {one_line(error)}")
                added.append(_failed(f"{policy_id}/ruleCollectionGroups", RULE_COLLECTION_GROUP_ARM_TYPE, error))
            else:
                relinked = _relinked(document, groups)
                if fetched >= 0:
                    added[fetched] = relinked
                else:
                    replaced[key(policy_id)] = relinked
                added += [{**g, "type": g.get("type") or RULE_COLLECTION_GROUP_ARM_TYPE} for g in groups
                          if key(parent_id(str(g.get("id", "")))) == key(policy_id)]
            policy_id = _base_ref(document)
    return replaced, added


def _relinked(policy: Mapping[str, Any], groups: list[dict[str, Any]]) -> dict[str, Any]:
    properties = dict(policy.get("properties") or {})
    properties["ruleCollectionGroups"] = [{"id": g["id"]} for g in groups if g.get("id")]
    return {**policy, "properties": properties}


def _ref(value: Any) -> str:
    return str(value.get("id") or "") if isinstance(value, Mapping) else ""


def _policy_ref(document: Mapping[str, Any] | None) -> str:
    properties = (document or {}).get("properties")
    return _ref(properties.get("firewallPolicy")) if isinstance(properties, Mapping) else ""


def _base_ref(document: Mapping[str, Any]) -> str:
    properties = document.get("properties")
    return _ref(properties.get("basePolicy")) if isinstance(properties, Mapping) else ""


def _failed(resource_id: str, resource_type: str, error: Exception) -> dict[str, Any]:
    code = getattr(error, "code", "") or ""
    detail = getattr(getattr(error, "error", None), "message", "") or str(error)
    return {"id": resource_id, "type": resource_type,
            "properties": {"error": one_line(f"{code}: {detail}" if code else detail, 300)}}


__all__ = ["firewall_reads", "firewalls_on_paths", "read_firewall_policies"]
