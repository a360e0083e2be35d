"""Live-path figures: ``Runtime.run`` with the real SDK clients against the ARM emulator in its own process.

The emulator runs in a forked child (it generates and holds the synthetic estate there), so the parent's
``ru_maxrss`` and wall time are the client's alone — SDK, inventory, parsing, scan — and the two do not share a GIL.
The child reports every request it answered and the time it spent answering them. ``latency_ms`` makes each
Resource Graph page take that long to answer (a sleep outside the emulator's lock, so concurrent requests overlap
as they would against the service), to compare sequential and parallel page reading.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import threading
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from benchmarks.generate import TAGS_FILE, generate, load_tags

ARG_PATH = "/providers/microsoft.resourcegraph/resources"
ADMIN_RULES_SUFFIX = "/listnetworkmanagereffectivesecurityadminrules"
RULE_COLLECTION_GROUPS_SUFFIX = "/rulecollectiongroups"  # FirewallPolicyRuleCollectionGroups_List
FIREWALL_POLICY_TYPE = "microsoft.network/firewallpolicies"
RULE_COLLECTION_GROUP_TYPE = "microsoft.network/firewallpolicies/rulecollectiongroups"


def maxrss_mb() -> float:
    """This process's peak resident memory so far (``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def _cpu_s() -> float:
    """This process's CPU time so far, every thread's (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _event_nsg(resources: list[dict[str, Any]]) -> str:
    """The NSG of the first replicated VM's source subnet: an event on it must re-evaluate that VM."""
    from asr_remediate.estate import build_estate
    from asr_remediate.model import key

    estate = build_estate(resources)
    for item in estate.protected_items:
        for nic_id in estate.source_nic_ids(item):
            nic = estate.nics.get(key(nic_id))
            for config in nic.ip_configurations if nic else ():
                subnet = estate.subnets.get(key(config.subnet_id))
                if subnet is not None and subnet.nsg_id:
                    return subnet.nsg_id
    raise SystemExit("the synthetic estate has no replicated VM behind a subnet NSG")


def _path_nic_ids(item: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[str]:
    """The source NICs of a protected item: its VM's NICs and the item's vmNics."""
    details = (item.get("properties") or {}).get("providerSpecificDetails") or {}
    vm = by_id.get(str(details.get("fabricObjectId", "")).lower()) or {}
    nic_ids = [str(n.get("id", "")) for n in ((vm.get("properties") or {}).get("networkProfile") or {})
               .get("networkInterfaces") or []]
    return nic_ids + [str(n.get("sourceNicArmId", "")) for n in details.get("vmNics") or []]


def _nic_subnets(nic_id: str, by_id: dict[str, dict[str, Any]]) -> list[str]:
    nic = by_id.get(nic_id.lower()) or {}
    return [str(((c.get("properties") or {}).get("subnet") or {}).get("id", "")).lower()
            for c in (nic.get("properties") or {}).get("ipConfigurations") or []]


def _items(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in resources if str(r.get("type", "")).lower().endswith("/replicationprotecteditems")]


def path_vnets(resources: list[dict[str, Any]]) -> set[str]:
    """The VNets holding a replicated VM's NIC or recovery subnet, straight from the generated ARM JSON (the VM's
    NICs and the protected item's vmNics; each vmNic's recovery VNet, else the item's): what the security admin
    rules POSTs (ASR_READ_ADMIN_RULES) must cover, each once."""
    by_id = {str(r.get("id", "")).lower(): r for r in resources}
    found: set[str] = set()
    for item in _items(resources):
        details = (item.get("properties") or {}).get("providerSpecificDetails") or {}
        for vm_nic in details.get("vmNics") or []:
            recovery = str(vm_nic.get("recoveryVMNetworkId") or details.get("selectedRecoveryAzureNetworkId") or "")
            if recovery.lower() in by_id:
                found.add(recovery.lower())
        for nic_id in _path_nic_ids(item, by_id):
            for subnet in _nic_subnets(nic_id, by_id):
                vnet = subnet.rsplit("/subnets/", 1)[0]
                if subnet and vnet in by_id:
                    found.add(vnet)
    return found


def path_firewall_policies(resources: list[dict[str, Any]]) -> set[str]:
    """The Firewall Policies whose rule collection groups a live scan must list, each once, straight from the generated
    ARM JSON: the subnets a replicated VM sends from (its NICs' subnets; each vmNic's recovery subnet, by name, in its
    recovery VNet), their route tables' routes with next hop VirtualAppliance at an Azure Firewall's private IP, that
    firewall's policy and each of its basePolicy parents (asr_remediate/azure/firewalls.py)."""
    by_id = {str(r.get("id", "")).lower(): r for r in resources}
    firewall_by_ip: dict[str, dict[str, Any]] = {}
    for firewall in resources:
        if str(firewall.get("type", "")).lower() == "microsoft.network/azurefirewalls":
            for config in (firewall.get("properties") or {}).get("ipConfigurations") or []:
                firewall_by_ip[str((config.get("properties") or {}).get("privateIPAddress", ""))] = firewall
    subnets: set[str] = set()
    for item in _items(resources):
        details = (item.get("properties") or {}).get("providerSpecificDetails") or {}
        for nic_id in _path_nic_ids(item, by_id):
            subnets.update(_nic_subnets(nic_id, by_id))
        for vm_nic in details.get("vmNics") or []:
            recovery = str(vm_nic.get("recoveryVMNetworkId") or details.get("selectedRecoveryAzureNetworkId") or "")
            for config in vm_nic.get("ipConfigs") or []:
                subnets.add(f"{recovery}/subnets/{config.get('recoverySubnetName', '')}".lower())
    found: set[str] = set()
    for subnet_id in subnets:
        vnet = by_id.get(subnet_id.rsplit("/subnets/", 1)[0]) or {}
        subnet: dict[str, Any] = next((s for s in (vnet.get("properties") or {}).get("subnets") or []
                                       if str(s.get("id", "")).lower() == subnet_id), {})
        table = by_id.get(str(((subnet.get("properties") or {}).get("routeTable") or {}).get("id", "")).lower()) or {}
        for route in (table.get("properties") or {}).get("routes") or []:
            props = route.get("properties") or {}
            target = firewall_by_ip.get(str(props.get("nextHopIpAddress", "")))
            if target is None or str(props.get("nextHopType", "")).lower() != "virtualappliance":
                continue
            policy_id = str(((target.get("properties") or {}).get("firewallPolicy") or {}).get("id", "")).lower()
            while policy_id and policy_id not in found:
                found.add(policy_id)
                policy = by_id.get(policy_id) or {}
                policy_id = str(((policy.get("properties") or {}).get("basePolicy") or {}).get("id", "")).lower()
    return found


def _serve(conn: Connection, n: int, seed: int, latency_s: float, want_event: bool) -> None:
    import trustme

    from tests.emulator import arm_emulator
    from tests.emulator.arm_emulator import ArmEmulator, RecordedRequest

    serving = [0.0]
    timing = threading.Lock()

    class TimedEmulator(ArmEmulator):
        def _dispatch(self, req: RecordedRequest) -> Any:
            if latency_s and req.method == "POST" and req.path.lower().rstrip("/") == ARG_PATH:
                time.sleep(latency_s)
            return super()._dispatch(req)

    # The emulator's answering: the CPU time of each request's handler thread — reading and decoding the request,
    # routing it, encoding and writing the answer (a multi-megabyte page's json.dumps and TLS are the emulator's
    # work too). CPU, not wall: a handler's wall time would include waiting for the client to read a page, for
    # the emulator's GIL, and the emulated latency.
    handle = arm_emulator._Handler._handle

    def timed_handle(self: Any) -> None:
        start = time.thread_time()
        try:
            handle(self)
        finally:
            with timing:
                serving[0] += time.thread_time() - start

    arm_emulator._Handler._handle = timed_handle  # type: ignore[method-assign]

    synthetic = generate(n, seed=seed, tags=load_tags())
    items = synthetic.counts.get(
        "microsoft.recoveryservices/vaults/replicationfabrics/replicationprotectioncontainers/"
        "replicationprotecteditems", 0)
    groups = sum(1 for r in synthetic.resources if str(r["type"]).lower() == RULE_COLLECTION_GROUP_TYPE)
    info: dict[str, Any] = {"subscriptions": synthetic.subscriptions, "items": items,
                            "network": len(synthetic.resources) - items - groups,  # groups are not Resource Graph rows
                            "path_vnets": len(path_vnets(synthetic.resources)),
                            "path_policies": len(path_firewall_policies(synthetic.resources))}
    if want_event:
        info["event_nsg"] = _event_nsg(synthetic.resources)
    with TimedEmulator(ca=trustme.CA()) as arm:
        arm.add_all(synthetic.resources)
        arm.service_tags = json.loads(TAGS_FILE.read_text(encoding="utf-8-sig"))
        del synthetic
        arm.clear_log()
        conn.send({**info, "base_url": arm.base_url, "ca_path": arm.ca_path})
        while True:
            command = conn.recv()
            if command == "stats":
                # A request without a $skipToken starts a query; one with it continues that query's pages.
                requests = [(r.method, r.path, r.status, _first_page(r.body)) for r in arm.requests]
                conn.send({"requests": requests, "serving_s": serving[0], "emulator_rss_mb": maxrss_mb()})
                arm.clear_log()
                serving[0] = 0.0
            else:
                break


def _first_page(body: Any) -> bool:
    """A Resource Graph body that asks for the first page of its query (no ``options.$skipToken``)."""
    options = body.get("options") if isinstance(body, dict) else None
    return not (isinstance(options, dict) and options.get("$skipToken"))


def requests_summary(requests: list[tuple[str, str, int | None, bool]]) -> dict[str, Any]:
    """Requests by kind; a tuple is (method, path, status, starts a query: a Resource Graph body without a
    $skipToken), so Resource Graph queries and pages are counted apart."""
    arg = [r for r in requests if r[0] == "POST" and r[1].lower().rstrip("/") == ARG_PATH]
    tags = [r for r in requests if r[0] == "GET" and r[1].lower().endswith("/servicetags")]
    admin = [r for r in requests if r[0] == "POST" and r[1].lower().endswith(ADMIN_RULES_SUFFIX)]
    groups = [r for r in requests if r[0] == "GET" and r[1].lower().rstrip("/").endswith(RULE_COLLECTION_GROUPS_SUFFIX)]
    policies = [r for r in requests if r[0] == "GET" and _is_policy_path(r[1])]
    counted = {id(r) for r in (*arg, *tags, *admin, *groups, *policies)}
    other = [r for r in requests if id(r) not in counted]
    return {
        "requests": len(requests), "arg_requests": len(arg), "arg_queries": sum(1 for r in arg if r[3]),
        "service_tag_calls": len(tags),
        "admin_rule_posts": len(admin), "admin_rule_vnets": len({r[1].lower() for r in admin}),
        "rule_group_lists": len(groups), "rule_group_policies": len({r[1].lower().rstrip("/") for r in groups}),
        "policy_gets": len(policies),
        "other_requests": len(other), "other_paths": sorted({f"{m} {p}" for m, p, _, _ in other})[:5],
        "failed_requests": sum(1 for r in requests if r[2] is None or r[2] >= 400),
        "throttled_requests": sum(1 for r in requests if r[2] == 429),
    }


def _is_policy_path(path: str) -> bool:
    """…/providers/Microsoft.Network/firewallPolicies/{name} (FirewallPolicies_Get), not one of its children."""
    head, _, name = path.lower().rstrip("/").rpartition("/")
    return bool(name) and head.endswith("/providers/microsoft.network/firewallpolicies")


def measure(n: int, seed: int, *, latency_ms: float = 0.0, sequential: bool = False,
            event: bool = False) -> dict[str, Any]:
    """One live scan of the N-VM synthetic estate (and, with ``event``, one NSG write event after it)."""
    from asr_remediate import runtime as runtime_module
    from asr_remediate.config import Settings
    from asr_remediate.runtime import Runtime, Scope
    from tests.emulator.fixtures import FakeCredential, FakeSleep

    if sequential:
        runtime_module.PARALLEL_BATCHES = 1  # the baseline: one paged query per chunk
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()
    server = context.Process(target=_serve, args=(child, n, seed, latency_ms / 1000, event), daemon=True)
    server.start()
    try:
        info = parent.recv()
        rss_before = maxrss_mb()
        settings = Settings(arm_endpoint=info["base_url"], arm_ca_bundle=info["ca_path"],
                            subscriptions=tuple(info["subscriptions"]))
        pages: list[str] = []
        runtime = Runtime(settings, FakeCredential(), progress=pages.append, inventory_kwargs={"sleep": FakeSleep()})
        start, cpu_start = time.perf_counter(), _cpu_s()
        result = runtime.run(Scope(tuple(info["subscriptions"])), trigger="benchmark", actor="benchmarks")
        wall_s, cpu_s = time.perf_counter() - start, _cpu_s() - cpu_start
        parent.send("stats")
        stats = parent.recv()
        figures: dict[str, Any] = {
            "n": n, "latency_ms": latency_ms, "sequential": sequential, "wall_s": wall_s, "client_cpu_s": cpu_s,
            "emulator_s": stats["serving_s"], "client_rss_mb": maxrss_mb(), "client_rss_before_mb": rss_before,
            "emulator_rss_mb": stats["emulator_rss_mb"], "items": info["items"], "network": info["network"],
            "path_vnets": info["path_vnets"], "path_policies": info["path_policies"],
            "subscriptions": len(info["subscriptions"]),
            "statuses": dict(Counter(r.status for r in result.plan.reports)),
            **requests_summary(stats["requests"]),
        }
        if event:
            nsg_id = info["event_nsg"]
            document = {"id": "benchmark-event", "eventType": "Microsoft.Resources.ResourceWriteSuccess",
                        "subject": nsg_id, "eventTime": "2026-12-02T00:00:00Z",
                        "data": {"resourceUri": nsg_id, "operationName": "Microsoft.Network/networkSecurityGroups/"
                                 "write", "subscriptionId": nsg_id.split("/")[2]}}
            start = time.perf_counter()
            handled = runtime.handle_event(document, actor="benchmarks")
            figures["event"] = {"wall_s": time.perf_counter() - start, "note": handled.note,
                                "evaluated": len(handled.plan.reports)}
            parent.send("stats")
            figures["event"].update(requests_summary(parent.recv()["requests"]))
        return figures
    finally:
        parent.send("stop")
        server.join(timeout=60)
