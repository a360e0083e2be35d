"""A deterministic synthetic estate of N replicated VMs, shaped like a large enterprise landing zone.

``generate(n_vms, seed=..., tags=...)`` returns the ARM resources (as Resource Graph returns them, built with
``examples.estate_builder``) plus the subscription list to scan. Same ``n_vms`` + ``seed`` + tags file → the same
resources, byte for byte (everything is drawn from one ``random.Random(seed)``; no clock, no ``uuid4``).

Topology
  * one workload subscription per ~200 VMs, each replicating one Azure region pair (a few in the reverse
    direction); pairs are Azure's published region pairs, kept only where the real Service Tags file
    (``examples/ServiceTags_Public_20251028.json``) has the regional Storage, EventHub and AzureCloud tags;
  * per region pair a DR subscription holding the Recovery Services vault (all protected items of the pair),
    a hub VNet per region (GatewaySubnet, AzureFirewallSubnet, a third-party NVA in snet-nva) and a shared recovery
    VNet per region; half of the workload subscriptions bring their own recovery VNet instead (cross-subscription
    references either way);
  * an Azure Firewall per hub with a Firewall Policy (~60% under a parent basePolicy), rule collection groups (DNAT,
    platform network rules, the spokes' egress: a Storage deny, an ASR service-tag allow for an IP group, ASR's URLs
    as application rules, web categories) and IP groups; ~12% of the spoke and recovery subnets send 0.0.0.0/0 to it,
    each set up for one outcome (allowed by tags or by URLs, denied by a rule, by default or by the parent policy,
    unknown), drawn from a third ``random.Random`` (the other draws are unchanged). The rule collection groups are
    resources of their own, as ``export`` writes ARM's list of them (they are not Resource Graph rows);
  * spoke VNets of 3–6 /24 subnets with 6–20 VMs each, peered to the hub; ~10% have a GatewaySubnet;
  * NSGs per subnet (some subnets share a baseline NSG, a few have none), NIC NSGs on ~15% of NICs, recovery
    NIC NSGs on ~10% of protected items; 4–200 rules each: inbound allows, east-west ASG rules, outbound allows
    to service tags (Storage, Storage.<region>, Sql.<region>, AzureMonitor, AzureKeyVault.<region>, ...), CIDR
    lists, port lists, UDP DNS/NTP, port denies, block lists, and a posture (open, locked down with the ASR
    tags, locked down missing one, AzureCloud deny, partial CIDR deny, ASG- or CIDR-scoped allows, 2017 IPs,
    a tag the Service Tags file does not have, a deny at priority 100);
  * route tables shared within a subscription: on-premises routes, NVA default routes, forced tunnelling with
    and without service-tag routes (Storage, AzureActiveDirectory, EventHub.<region>, AzureSiteRecovery,
    AzureCloud.<region>), full service-tag route tables, an unknown tag route; some subnets have a
    Microsoft.Storage service endpoint;
  * ~1% opted-out VMs, ~0.5% failed over, ~4% two-NIC VMs, ~10% ADE-encrypted, ~0.3% with a missing NIC and
    ~0.3% pointing at a recovery subnet that does not exist;
  * Site Recovery health errors on the protected items (issue 15): a network code (151196, 151197, 151037, 153007,
    151195) on ~35% of the VMs behind a subnet NSG that blocks ASR (mostly confirmed) and ~3% of the others (mostly
    unexplained), the 161011 "no test failover" warning on ~5%; the drift of every other VM is "not yet reported".
    They are drawn from a second ``random.Random`` derived from the seed, so the rest of the estate is the same as
    without them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asr_remediate.requirements import seed_2017_table
from asr_remediate.servicetags import ServiceTags, load_service_tags_file
from examples.estate_builder import (
    application_rule,
    azure_firewall,
    firewall_policy,
    health_error,
    ip_group,
    network_rule,
    nic,
    nsg,
    protected_item,
    rid,
    route_table,
    rule_collection,
    rule_collection_group,
    vm,
    vnet,
)

REPO = Path(__file__).resolve().parent.parent
TAGS_FILE = REPO / "examples" / "ServiceTags_Public_20251028.json"
DEFAULT_SEED = 20251028
VMS_PER_SUBSCRIPTION = 200
OPT_OUT_TAG = "asr-remediate-opt-out"
#: Not in the Service Tags file: rules and routes naming it make the engine answer "unknown".
UNKNOWN_TAG = "AzureSiteRecoveryPreview"

Resource = dict[str, Any]

# Azure's published region pairs (ARM location names), most used first; filtered by the Service Tags file.
AZURE_REGION_PAIRS: tuple[tuple[str, str], ...] = (
    ("eastus", "westus"),
    ("eastus2", "centralus"),
    ("westeurope", "northeurope"),
    ("uksouth", "ukwest"),
    ("westus2", "westcentralus"),
    ("southeastasia", "eastasia"),
    ("australiaeast", "australiasoutheast"),
    ("northcentralus", "southcentralus"),
    ("westus3", "eastus"),
    ("canadacentral", "canadaeast"),
    ("francecentral", "francesouth"),
    ("germanywestcentral", "germanynorth"),
    ("japaneast", "japanwest"),
    ("centralindia", "southindia"),
    ("switzerlandnorth", "switzerlandwest"),
    ("norwayeast", "norwaywest"),
    ("swedencentral", "swedensouth"),
    ("koreacentral", "koreasouth"),
    ("brazilsouth", "southcentralus"),
    ("southafricanorth", "southafricawest"),
    ("uaenorth", "uaecentral"),
    ("australiacentral", "australiacentral2"),
    ("westindia", "southindia"),
    ("jioindiawest", "jioindiacentral"),
)
ROLES = ("web", "app", "api", "db", "data", "batch", "int", "mgmt")
ON_PREM_SPACES = ("192.168.0.0/16", "172.16.0.0/12", "10.200.0.0/14")
# Non-Microsoft public ranges for partner allows and block lists (documentation and ISP blocks).
PUBLIC_BLOCKS = ("203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24", "185.199.108.0/22", "45.33.0.0/17",
                 "5.44.16.0/20", "91.198.174.0/24", "151.101.0.0/16", "104.16.0.0/13", "34.64.0.0/10")
DENIED_PORTS = (["25"], ["445"], ["23"], ["135-139"], ["21", "69"], ["22", "3389"])
#: Share of the spoke and recovery subnets whose default route goes to their hub's Azure Firewall (a VM has a source
#: and a recovery subnet: about a fifth of the replicated VMs have one side or both behind a firewall), the share of
#: hub policies under a parent (basePolicy), and what the firewall is set up to do with such a subnet's ASR traffic.
FIREWALL_SHARE = 0.12
FIREWALL_BASE_POLICY_SHARE = 0.6
FIREWALL_OUTCOMES = (("allowed-network", 30), ("allowed-application", 15), ("denied-by-rule", 15),
                     ("default-deny", 20), ("parent-deny", 10), ("unknown", 10))
#: Site Recovery's URL table (learn.microsoft.com/azure/site-recovery/azure-to-azure-about-networking).
ASR_URLS = ("*.blob.core.windows.net", "login.microsoftonline.com", "*.hypervrecoverymanager.windowsazure.com",
            "*.servicebus.windows.net")
INBOUND_PORTS = (["443"], ["80", "443"], ["22"], ["3389"], ["1433"], ["5985-5986"], ["8080-8090"], ["445"])


@dataclass(frozen=True)
class Synthetic:
    """A generated estate: the resources, the subscriptions to scan and what it is made of."""

    resources: list[Resource]
    subscriptions: tuple[str, ...]
    vm_count: int
    seed: int
    region_pairs: tuple[tuple[str, str], ...]
    counts: Mapping[str, int] = field(default_factory=dict)  # ARM type → number of resources
    rule_count: int = 0
    max_rules_per_nsg: int = 0
    route_count: int = 0


def region_pairs(tags: ServiceTags) -> tuple[tuple[str, str], ...]:
    """The region pairs whose both regions have regional Storage, EventHub and AzureCloud tags in ``tags``."""
    def present(location: str) -> bool:
        return all(tags.regional_tag(base, location) for base in ("Storage", "EventHub", "AzureCloud"))

    return tuple(pair for pair in AZURE_REGION_PAIRS if present(pair[0]) and present(pair[1]))


def _guid(rng: random.Random) -> str:
    digits = f"{rng.getrandbits(128):032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def _address_blocks() -> Iterator[int]:
    """Second-octet-style indices of /16 blocks: 10.0-199.x (10.200/14 is 'on-premises'), then 172.16-31."""
    while True:
        yield from range(200)
        yield from range(1000, 1016)


def _block(index: int) -> str:
    return f"172.{16 + index - 1000}" if index >= 1000 else f"10.{index}"


def _nva_ip(hub_space: str) -> str:
    """A third-party appliance in the hub's snet-nva (no Azure Firewall: routes to it keep the appliance warning)."""
    return f"{hub_space}.5.4"


def _firewall_ip(hub_space: str) -> str:
    """The hub's Azure Firewall: the first usable address of AzureFirewallSubnet (x.x.4.0/26; Azure keeps .0-.3)."""
    return f"{hub_space}.4.4"


class _Generator:
    # Posture weights: what decides ASR's traffic in an NSG or route table (see posture_rules / make_route_table).
    ROUTE_POSTURES = (("onprem", 30), ("nva-default", 22), ("nva-with-tags", 10), ("forced-tunnel-tagged", 20),
                      ("forced-tunnel-partial", 8), ("forced-tunnel", 5), ("tag-limit", 2), ("unknown-tag-route", 1))
    SOURCE_POSTURES = (("open", 28), ("locked-ok", 32), ("locked-missing", 9), ("deny-azurecloud", 3),
                       ("partial-cidr", 4), ("asg", 8), ("cidr-source", 5), ("legacy-2017", 3), ("unknown-tag", 2),
                       ("deny-first", 1), ("source-ports", 1))
    TARGET_POSTURES = (("open", 45), ("locked-ok", 38), ("locked-missing", 8), ("deny-azurecloud", 2),
                       ("partial-cidr", 3), ("cidr-source", 2), ("unknown-tag", 1), ("deny-first", 1))
    NIC_POSTURES = (("open", 70), ("locked-ok", 22), ("locked-missing", 6), ("unknown-tag", 2))

    def __init__(self, n_vms: int, seed: int, tags: ServiceTags, vms_per_subscription: int) -> None:
        self.rng = random.Random(seed)
        self.health_rng = random.Random(f"{seed}:asr-health")  # its own stream: health errors change nothing else
        self.fw_rng = random.Random(f"{seed}:azure-firewall")  # its own stream too (see hub_firewall)
        self.hub_firewalls: dict[str, dict[str, Any]] = {}  # hub space → its Azure Firewall (emitted at the end)
        self.firewall_tables: dict[tuple[str, str], str] = {}  # (subscription, hub space) → the route table to it
        self.nsg_postures: dict[str, str] = {}
        self.tags = tags
        self.n_vms = n_vms
        self.vms_per_subscription = vms_per_subscription
        self.pairs = region_pairs(tags)
        if not self.pairs:
            raise ValueError("the Service Tags data has no usable region pair")
        assert tags.get(UNKNOWN_TAG) is None, f"{UNKNOWN_TAG} must not be a real service tag"
        self.blocks = _address_blocks()
        self.out: list[Resource] = []
        self.subscriptions: list[str] = []
        self.dr: dict[tuple[str, str], dict[str, Any]] = {}  # pair → DR subscription context
        self.rule_count = 0
        self.max_rules = 0
        self.route_count = 0
        self.vm_serial = 0

    # -- names and regional tags ---------------------------------------------------------------------------

    def regional(self, base: str, location: str) -> str:
        name = self.tags.regional_tag(base, location)
        return name or base

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, weighted: Sequence[tuple[Any, float]]) -> Any:
        values = [v for v, _ in weighted]
        weights = [w for _, w in weighted]
        return self.rng.choices(values, weights)[0]

    def new_space(self) -> str:
        return _block(next(self.blocks))

    # -- NSG rules -----------------------------------------------------------------------------------------

    def _rule(self, nsg_id: str, name: str, priority: int, access: str, direction: str, protocol: str,
              source: str | list[str], destination: str | list[str], ports: list[str], *,
              source_asgs: Sequence[str] = (), destination_asgs: Sequence[str] = (), source_ports: str = "*",
              description: str = "") -> Resource:
        props: dict[str, Any] = {"provisioningState": "Succeeded", "protocol": protocol,
                                 "sourcePortRange": source_ports, "access": access, "priority": priority,
                                 "direction": direction}
        if description:
            props["description"] = description
        if len(ports) == 1:
            props["destinationPortRange"] = ports[0]
        else:
            props["destinationPortRanges"] = list(ports)
        for single, many, value, asgs, asg_field in (
            ("sourceAddressPrefix", "sourceAddressPrefixes", source, source_asgs, "sourceApplicationSecurityGroups"),
            ("destinationAddressPrefix", "destinationAddressPrefixes", destination, destination_asgs,
             "destinationApplicationSecurityGroups"),
        ):
            if asgs:
                props[asg_field] = [{"id": a} for a in asgs]
            elif isinstance(value, list) and len(value) > 1:
                props[many] = list(value)
            else:
                props[single] = value[0] if isinstance(value, list) else value
        return {"name": name, "id": f"{nsg_id}/securityRules/{name}", "properties": props}

    def asr_allow_tags(self, here: str, there: str) -> list[str]:
        return [
            self.regional("Storage", here) if self.chance(0.7) else "Storage",
            "AzureActiveDirectory",
            self.regional("EventHub", there) if self.chance(0.7) else "EventHub",
            "AzureSiteRecovery",
        ]

    def posture_rules(self, nsg_id: str, posture: str, ctx: Mapping[str, Any]) -> list[Resource]:
        """The rules that decide ASR's traffic (priorities 100–300 and 4000+); filler goes in between."""
        here, there = ctx["here"], ctx["there"]
        subnet_prefix: str = ctx["subnet_prefix"]
        rules: list[Resource] = []

        def allow_all(tags: list[str], start: int, **kw: Any) -> None:
            source = kw.pop("source", "VirtualNetwork")
            for i, tag in enumerate(tags):
                ports = self.rng.choice((["443"], ["443"], ["80", "443"], ["443", "8443"]))
                rules.append(self._rule(nsg_id, f"Allow-{tag.replace('.', '-')}-Out", start + 10 * i, "Allow",
                                        "Outbound", self.rng.choice(("Tcp", "Tcp", "*")), source, tag, ports,
                                        description="egress allow-list", **kw))

        def deny_internet() -> None:
            if self.chance(0.6):
                rules.append(self._rule(nsg_id, "Deny-Internet-Out", 4000, "Deny", "Outbound", "*", "*", "Internet",
                                        ["*"], description="egress lockdown"))
            else:
                rules.append(self._rule(nsg_id, "Deny-All-Out", 4096, "Deny", "Outbound", "*", "*", "*", ["*"],
                                        description="default deny"))

        if posture == "open":
            return rules
        if posture == "locked-ok":
            variant = self.rng.random()
            if variant < 0.1:
                allow_all(["AzureCloud"], 120)
            elif variant < 0.2:
                allow_all([self.regional("AzureCloud", here), self.regional("AzureCloud", there),
                           "AzureActiveDirectory", "AzureSiteRecovery"], 120)
            else:
                allow_all(self.asr_allow_tags(here, there), 120)
            deny_internet()
        elif posture == "locked-missing":
            tags = self.asr_allow_tags(here, there)
            del tags[self.rng.randrange(len(tags))]
            allow_all(tags, 120)
            deny_internet()
        elif posture == "deny-azurecloud":
            rules.append(self._rule(nsg_id, "Deny-AzureCloud-Region", 200, "Deny", "Outbound", "*", "*",
                                    self.regional("AzureCloud", here), ["*"],
                                    description="no PaaS in this region without a private endpoint"))
            allow_all(self.asr_allow_tags(here, there), 210)
        elif posture == "partial-cidr":
            storage = self.tags.get(self.regional("Storage", here))
            cidrs = list(storage.cidrs) if storage else []
            blocked = self.rng.sample(cidrs, min(len(cidrs), self.rng.randint(2, 8)))
            blocked += self.rng.sample(PUBLIC_BLOCKS, 3)
            rules.append(self._rule(nsg_id, "Deny-Blocklist-Out", 150, "Deny", "Outbound", "Tcp", "*", blocked,
                                    ["443"], description="security team block list"))
        elif posture == "asg":
            allow_all(self.asr_allow_tags(here, there), 120, source="", source_asgs=[ctx["asr_asg"]])
            deny_internet()
        elif posture == "cidr-source":
            base = subnet_prefix.rsplit(".", 1)[0]
            allow_all(self.asr_allow_tags(here, there), 120, source=f"{base}.0/28")
            deny_internet()
        elif posture == "legacy-2017":
            row = seed_2017_table().get(there) or next(iter(seed_2017_table().values()))
            ips = [*row.service_ips, row.monitoring_ip]
            rules.append(self._rule(nsg_id, f"Allow-ASR-2017-{there}", 110, "Allow", "Outbound", "Tcp",
                                    "VirtualNetwork", ips, ["443"], description="2017 ASR guidance"))
            allow_all([self.regional("Storage", here), "AzureActiveDirectory"], 120)
            deny_internet()
        elif posture == "unknown-tag":
            rules.append(self._rule(nsg_id, "Allow-ASR-Preview", 115, "Allow", "Outbound", "Tcp", "VirtualNetwork",
                                    UNKNOWN_TAG, ["443"], description="from a newer template"))
            allow_all(self.asr_allow_tags(here, there), 120)
            deny_internet()
        elif posture == "deny-first":
            rules.append(self._rule(nsg_id, "Deny-All-Out-First", 100, "Deny", "Outbound", "*", "*", "*", ["*"],
                                    description="isolated appliance subnet"))
        elif posture == "source-ports":
            rules.append(self._rule(nsg_id, "Deny-HighPorts-Web", 150, "Deny", "Outbound", "Tcp", "*", "Internet",
                                    ["443"], source_ports="49152-65535", description="legacy hardening"))
        else:
            raise ValueError(posture)
        return rules

    def filler_rules(self, nsg_id: str, count: int, ctx: Mapping[str, Any]) -> list[Resource]:
        here = ctx["here"]
        subnet_prefix: str = ctx["subnet_prefix"]
        asgs: list[str] = ctx["asgs"]
        rng = self.rng
        out_priorities = sorted(rng.sample(range(310, 3990), count))
        in_priorities = sorted(rng.sample(range(100, 4096), count))
        rules: list[Resource] = []
        for i in range(count):
            kind = self.pick((("in-allow", 35), ("in-deny", 5), ("out-tag", 15), ("out-cidr", 14),
                              ("east-west", 10), ("out-port-deny", 10), ("out-udp", 6), ("out-blocklist", 5)))
            name = f"{kind}-{i:03d}"
            if kind in ("in-allow", "in-deny"):
                source = self.pick((("VirtualNetwork", 3), ("AzureLoadBalancer", 1), ("*", 1),
                                    (f"192.168.{rng.randrange(256)}.0/24", 2),
                                    ([f"10.{200 + rng.randrange(4)}.{rng.randrange(256)}.0/24" for _ in range(3)], 1)))
                use_asg = rng.random() < 0.2
                rules.append(self._rule(nsg_id, name, in_priorities[i], "Allow" if kind == "in-allow" else "Deny",
                                        "Inbound", rng.choice(("Tcp", "Tcp", "*")), source,
                                        rng.choice(("VirtualNetwork", "*", subnet_prefix)), rng.choice(INBOUND_PORTS),
                                        destination_asgs=[rng.choice(asgs)] if use_asg else ()))
            elif kind == "out-tag":
                tag, ports = rng.choice((
                    (self.regional("Sql", here), ["1433"]),
                    (self.regional("Sql", here), ["1433", "11000-11999"]),
                    ("AzureMonitor", ["443"]),
                    (self.regional("AzureKeyVault", here), ["443"]),
                    ("AzureBackup", ["443"]),
                    ("Storage", ["445"]),
                    ("ServiceBus", ["5671-5672"]),
                    ("AzureResourceManager", ["443"]),
                    ("GuestAndHybridManagement", ["443"]),
                    ("AzureUpdateDelivery", ["80", "443"]),
                    ("Internet", ["80"]),
                ))
                source = rng.choice(("VirtualNetwork", "*", subnet_prefix))
                rules.append(self._rule(nsg_id, name, out_priorities[i], "Allow", "Outbound", "Tcp", source, tag,
                                        ports))
            elif kind == "out-cidr":
                cidrs = [self._partner_cidr() for _ in range(rng.randint(1, 12))]
                rules.append(self._rule(nsg_id, name, out_priorities[i], "Allow", "Outbound", "Tcp",
                                        rng.choice(("VirtualNetwork", subnet_prefix, [subnet_prefix, "10.200.0.0/14"])),
                                        cidrs, rng.choice((["443"], ["8443"], ["443", "8443"], ["80", "443"]))))
            elif kind == "east-west":
                rules.append(self._rule(nsg_id, name, out_priorities[i], "Allow", "Outbound", "Tcp", "", "",
                                        rng.choice((["1433"], ["443"], ["8080"], ["5432", "6379"])),
                                        source_asgs=[rng.choice(asgs)], destination_asgs=[rng.choice(asgs)]))
            elif kind == "out-port-deny":
                rules.append(self._rule(nsg_id, name, out_priorities[i], "Deny", "Outbound", rng.choice(("Tcp", "*")),
                                        "*", rng.choice(("Internet", "*", "AzureCloud")),
                                        rng.choice(DENIED_PORTS)))
            elif kind == "out-udp":
                rules.append(self._rule(nsg_id, name, out_priorities[i], "Allow", "Outbound", "Udp", "VirtualNetwork",
                                        rng.choice(("10.200.0.4", "168.63.129.16", "*")), ["53"] if rng.random() < 0.6
                                        else ["123"]))
            else:  # out-blocklist: known-bad public ranges, not Microsoft's
                blocked = rng.sample(PUBLIC_BLOCKS, rng.randint(1, 4))
                rules.append(self._rule(nsg_id, name, out_priorities[i], "Deny", "Outbound", "*", "*", blocked,
                                        ["*"]))
        return rules

    def _partner_cidr(self) -> str:
        block = self.rng.choice(PUBLIC_BLOCKS)
        first, length = block.split("/")
        a, b, c, _ = first.split(".")
        length_n = int(length)
        if length_n >= 24:
            return f"{a}.{b}.{c}.{self.rng.randrange(0, 256, 16)}/28"
        return f"{a}.{b}.{int(c) + self.rng.randrange(0, 2 ** (24 - length_n)) % 256}.0/24"

    def rule_count_for(self) -> int:
        bucket = self.rng.random()
        if bucket < 0.55:
            return self.rng.randint(4, 30)
        if bucket < 0.85:
            return self.rng.randint(30, 100)
        return self.rng.randint(150, 200)

    def make_nsg(self, sub: str, rg: str, name: str, location: str, posture: str, ctx: Mapping[str, Any]) -> str:
        nsg_id = rid(sub, rg, "Microsoft.Network", "networkSecurityGroups", name)
        self.nsg_postures[nsg_id] = posture
        rules = self.posture_rules(nsg_id, posture, ctx)
        rules += self.filler_rules(nsg_id, max(0, self.rule_count_for() - len(rules)), ctx)
        tags = {OPT_OUT_TAG: "true"} if self.chance(0.02) else {"owner": "netops"}
        self.out.append(nsg(sub, rg, name, location, rules, tags))
        self.rule_count += len(rules)
        self.max_rules = max(self.max_rules, len(rules))
        return nsg_id

    # -- route tables ---------------------------------------------------------------------------------------

    def make_route_table(self, sub: str, rg: str, name: str, location: str, posture: str, here: str, there: str,
                         nva_ip: str) -> str:
        rng = self.rng
        routes: list[tuple[str, ...]] = []
        onprem = [f"192.168.{rng.randrange(256)}.0/24" for _ in range(rng.randint(0, 120))]
        for i, prefix in enumerate(dict.fromkeys((*ON_PREM_SPACES[: rng.randint(1, 3)], *onprem))):
            routes.append((f"onprem-{i:03d}", prefix, "VirtualNetworkGateway"))
        storage = self.regional("Storage", here) if self.chance(0.6) else "Storage"
        eventhub = self.regional("EventHub", there) if self.chance(0.6) else "EventHub"
        asr_tags = [storage, "AzureActiveDirectory", eventhub, "AzureSiteRecovery"]
        tag_routes: list[str] = []
        if posture == "nva-default":
            routes.append(("default-to-firewall", "0.0.0.0/0", "VirtualAppliance", nva_ip))
        elif posture == "nva-with-tags":
            routes.append(("default-to-firewall", "0.0.0.0/0", "VirtualAppliance", nva_ip))
            tag_routes = asr_tags[: rng.randint(2, 4)]
        elif posture == "forced-tunnel-tagged":
            routes.append(("default-to-onprem", "0.0.0.0/0", "VirtualNetworkGateway"))
            tag_routes = asr_tags if self.chance(0.8) else [self.regional("AzureCloud", here),
                                                           self.regional("AzureCloud", there), "AzureActiveDirectory",
                                                           "AzureSiteRecovery"]
            tag_routes += ["AzureMonitor", self.regional("Sql", here)][: rng.randint(0, 2)]
        elif posture == "forced-tunnel-partial":
            routes.append(("default-to-onprem", "0.0.0.0/0", "VirtualNetworkGateway"))
            tag_routes = [storage, "AzureActiveDirectory"]
        elif posture == "forced-tunnel":
            routes.append(("default-to-onprem", "0.0.0.0/0", "VirtualNetworkGateway"))
        elif posture == "tag-limit":
            routes.append(("default-to-onprem", "0.0.0.0/0", "VirtualNetworkGateway"))
            others = ("AzureMonitor", "AzureBackup", "AzureKeyVault", "Sql", "ServiceBus", "AzureResourceManager",
                      "GuestAndHybridManagement", "AzureUpdateDelivery", "AzureContainerRegistry", "AppService",
                      "AzureCosmosDB", "DataFactory", "LogicApps", "AzureDevOps", "PowerBI", "AzureFrontDoor.Backend",
                      "AzureMachineLearning", "CognitiveServicesManagement", "AzureDatabricks", "AzureEventGrid",
                      "ApiManagement", "AzurePortal", "AzureSignalR", "BatchNodeManagement", "AzureConnectors")
            tag_routes = [t for t in others if self.tags.get(t)][:25]
        elif posture == "unknown-tag-route":
            routes.append(("preview-asr", UNKNOWN_TAG, "Internet"))
        elif posture != "onprem":
            raise ValueError(posture)
        for tag in tag_routes:
            routes.append((f"tag-{tag.replace('.', '-').lower()}", tag, "Internet"))
        if posture.startswith("nva") and self.chance(0.3):
            routes.append(("azure-public-via-nva", "20.0.0.0/8", "VirtualAppliance", nva_ip))
        table = route_table(sub, rg, name, location, routes, disable_bgp=self.chance(0.5))
        self.out.append(table)
        self.route_count += len(routes)
        return str(table["id"])

    # -- Azure Firewall in the hubs (issue 10) ----------------------------------------------------------------------
    # Drawn from self.fw_rng only, so every other draw of the estate is unchanged (the firewall-routed VNets' subnets
    # trade their route table for the firewall's); the shapes follow AzureFirewallGet.json and
    # FirewallPolicyRuleCollectionGroup*.json (azure-rest-api-specs, through examples.estate_builder).

    def hub_firewall(self, sub: str, rg: str, region: str, hub_space: str, hub_vnet_id: str) -> None:
        """Registers the hub's Azure Firewall; its policies, groups and IP groups are written by emit_firewalls once the
        spokes routed to it (and what each is meant to meet there) are known."""
        self.hub_firewalls[hub_space] = {
            "sub": sub, "rg": rg, "region": region, "ip": _firewall_ip(hub_space),
            "subnet_id": f"{hub_vnet_id}/subnets/AzureFirewallSubnet",
            "base": self.fw_rng.random() < FIREWALL_BASE_POLICY_SHARE, "dns_proxy": self.fw_rng.random() < 0.5,
            "spokes": {outcome: [] for outcome, _ in FIREWALL_OUTCOMES},
        }

    def firewall_routing(self, sub: str, rg: str, location: str, hub_space: str,
                         subnets: list[dict[str, Any]]) -> None:
        """For FIREWALL_SHARE of the subnets: 0.0.0.0/0 (and on-premises) goes to the hub's Azure Firewall through one
        route table per subscription and hub; the subnet's prefix is what the firewall's rules name for it, with the
        outcome drawn from FIREWALL_OUTCOMES (parent-deny only under a policy with a parent)."""
        hub = self.hub_firewalls.get(hub_space)
        if hub is None:
            return
        outcomes = [(o, w) for o, w in FIREWALL_OUTCOMES if hub["base"] or o != "parent-deny"]
        for entry in subnets:
            if self.fw_rng.random() >= FIREWALL_SHARE:
                continue
            outcome = self.fw_rng.choices([o for o, _ in outcomes], [w for _, w in outcomes])[0]
            hub["spokes"][outcome].append(entry["prefix"])
            entry["route_table"] = self.firewall_table(sub, rg, location, hub_space, hub)

    def firewall_table(self, sub: str, rg: str, location: str, hub_space: str, hub: Mapping[str, Any]) -> str:
        """The subscription's route table to the hub's firewall (created on first use)."""
        table_key = (sub, hub_space)
        if table_key not in self.firewall_tables:
            routes: list[tuple[str, ...]] = [("default-to-azfw", "0.0.0.0/0", "VirtualAppliance", hub["ip"])]
            for i, prefix in enumerate(ON_PREM_SPACES[: self.fw_rng.randint(1, 3)]):
                routes.append((f"onprem-{i:03d}-via-azfw", prefix, "VirtualAppliance", hub["ip"]))
            name = f"rt-azfw-{hub['region']}-{len(self.firewall_tables):03d}"
            table = route_table(sub, rg, name, location, routes, disable_bgp=True)
            self.out.append(table)
            self.route_count += len(routes)
            self.firewall_tables[table_key] = str(table["id"])
        return self.firewall_tables[table_key]

    def emit_firewalls(self) -> None:
        """Each hub's firewall, its policy (under a parent for some), the rule collection groups and IP groups; the
        groups are resources of their own, as ``export`` writes them (Resource Graph does not hold them)."""
        rng = self.fw_rng
        for hub in self.hub_firewalls.values():
            sub, rg, region, spokes = hub["sub"], hub["rg"], hub["region"], hub["spokes"]

            def group_of(name: str, addresses: list[str], hub: Mapping[str, Any] = hub) -> list[str]:
                if not addresses:
                    return []
                doc = ip_group(hub["sub"], hub["rg"], name, hub["region"], sorted(addresses))
                self.out.append(doc)
                return [str(doc["id"])]

            allowed = group_of(f"ipg-asr-egress-{region}", [*spokes["allowed-network"], *spokes["denied-by-rule"],
                                                            *spokes["parent-deny"]])
            restricted = group_of(f"ipg-restricted-{region}", spokes["parent-deny"])
            no_storage = group_of(f"ipg-no-storage-{region}", spokes["denied-by-rule"])
            blocklist = rng.sample(PUBLIC_BLOCKS, rng.randint(2, 5))
            base_id = ""
            if hub["base"]:
                guardrails = [network_rule("deny-known-bad", ["*"], blocklist, ports=["*"], protocols=["Any"])]
                if restricted:
                    guardrails.append(network_rule("no-azure-egress-restricted", [], ["AzureCloud"],
                                                   source_ip_groups=restricted))
                base = firewall_policy(sub, rg, f"afwp-platform-base-{region}", region,
                                       group_names=["rcg-platform-guardrails"])
                base_id = str(base["id"])
                self.out += [base, rule_collection_group(base_id, "rcg-platform-guardrails", 100, [
                    rule_collection("deny-guardrails", 100, "Deny", guardrails),
                    rule_collection("allow-os-updates", 500, "Allow", [
                        application_rule("linux-repos", ["*"], ["*.ubuntu.com", "packages.microsoft.com"])]),
                ])]
            groups = self.child_groups(hub, allowed, no_storage, blocklist if not base_id else [])
            policy = firewall_policy(sub, rg, f"afwp-hub-{region}", region, base_policy=base_id,
                                     group_names=[name for name, _ in groups], dns_proxy=hub["dns_proxy"])
            self.out.append(policy)
            self.out += [rule_collection_group(str(policy["id"]), name, priority, collections)
                         for name, (priority, collections) in groups]
            self.out.append(azure_firewall(sub, rg, f"afw-hub-{region}", region, hub["subnet_id"], hub["ip"],
                                           policy_id=str(policy["id"])))

    def child_groups(self, hub: Mapping[str, Any], allowed: list[str], no_storage: list[str], blocklist: list[str]
                     ) -> list[tuple[str, tuple[int, list[Resource]]]]:
        """The hub policy's rule collection groups: platform flows (DNS, NTP, monitoring), the spokes' egress (a
        Storage deny before the ASR allow, ASR's URLs as application rules, web categories) and a DNAT group."""
        rng = self.fw_rng
        spokes = hub["spokes"]
        platform = [network_rule("dns-to-onprem", ["*"], ["10.200.0.4", "10.200.0.5"], ports=["53"],
                                 protocols=["UDP", "TCP"]),
                    network_rule("ntp", ["*"], ["*"], ports=["123"], protocols=["UDP"]),
                    network_rule("azure-monitor", ["*"], ["AzureMonitor"], ports=["443"])]
        if blocklist:
            platform.insert(0, network_rule("deny-known-bad", ["*"], blocklist, ports=["*"], protocols=["Any"]))
        egress: list[Resource] = []
        if no_storage:
            egress.append(rule_collection("deny-storage-egress", 100, "Deny", [
                network_rule("no-storage-from-restricted-spokes", [], ["Storage"], source_ip_groups=no_storage)]))
        if allowed:
            egress.append(rule_collection("allow-asr-service-tags", 200, "Allow", [
                network_rule("asr-tags", [], ["AzureActiveDirectory", "Storage", "EventHub", "AzureSiteRecovery"],
                             source_ip_groups=allowed)]))
        partner = [self._partner_cidr() for _ in range(rng.randint(1, 4))]
        egress.append(rule_collection("allow-partners", 250, "Allow", [
            network_rule("partner-apis", ["*"], partner, ports=["443", "8443"])]))
        if spokes["allowed-application"]:
            egress.append(rule_collection("allow-asr-urls", 300, "Allow", [
                application_rule("asr-urls", sorted(spokes["allowed-application"]), list(ASR_URLS))]))
        if spokes["unknown"]:
            categories = application_rule("business-web-categories", sorted(spokes["unknown"]), [])
            categories["webCategories"] = ["ComputersAndTechnology", "SearchEnginesAndPortals"]
            egress.append(rule_collection("allow-web-categories", 400, "Allow", [categories]))
        dnat = {"ruleCollectionType": "FirewallPolicyNatRuleCollection", "name": "inbound-web", "priority": 100,
                "action": {"type": "DNAT"}, "rules": [{
                    "ruleType": "NatRule", "name": "https-to-web", "sourceAddresses": ["*"],
                    "destinationAddresses": ["203.0.113.10"], "destinationPorts": ["443"], "ipProtocols": ["TCP"],
                    "translatedAddress": "10.200.1.10", "translatedPort": "443"}]}
        return [("rcg-dnat", (100, [dnat])),
                ("rcg-platform", (200, [rule_collection("allow-platform", 100, "Allow", platform)])),
                ("rcg-spoke-egress", (300, egress))]

    # -- recovery side --------------------------------------------------------------------------------------

    def recovery_vnet(self, sub: str, rg: str, name: str, here: str, there: str, hub_space: str) -> dict[str, Any]:
        """A VNet in ``here`` (the target region) with one subnet per role, NSGs and route tables."""
        space = self.new_space()
        asgs = [rid(sub, rg, "Microsoft.Network", "applicationSecurityGroups", f"asg-dr-{role}") for role in ROLES]
        ctx_base = {"here": here, "there": there, "asgs": asgs, "asr_asg": asgs[0]}
        tables = [self.make_route_table(sub, rg, f"rt-{name}-{i}", here, self.pick(self.ROUTE_POSTURES), here, there,
                                        _nva_ip(hub_space)) for i in range(2)]
        subnets = []
        for k, role in enumerate(ROLES):
            prefix = f"{space}.{k + 1}.0/24"
            entry: dict[str, Any] = {"name": f"snet-{role}", "prefix": prefix}
            if self.chance(0.8):
                entry["nsg"] = self.make_nsg(sub, rg, f"nsg-{name}-{role}", here, self.pick(self.TARGET_POSTURES),
                                             {**ctx_base, "subnet_prefix": prefix})
            if self.chance(0.5):
                entry["route_table"] = self.rng.choice(tables)
            if self.chance(0.1):
                entry["service_endpoints"] = [("Microsoft.Storage", [here])]
            subnets.append(entry)
        self.firewall_routing(sub, rg, here, hub_space, subnets)
        doc = vnet(sub, rg, name, here, [f"{space}.0.0/16"], subnets, peered=[f"{hub_space}.0.0/16"])
        self.out.append(doc)
        nic_nsgs = [self.make_nsg(sub, rg, f"nsg-{name}-nic-{i}", here, self.pick(self.NIC_POSTURES),
                                  {**ctx_base, "subnet_prefix": f"{space}.1.0/24"}) for i in range(2)]
        return {"id": doc["id"], "nic_nsgs": nic_nsgs}

    def dr_context(self, pair: tuple[str, str]) -> dict[str, Any]:
        """The DR subscription of a region pair: vault, hubs and shared recovery VNets (created on first use)."""
        ordered = (pair[0], pair[1]) if pair[0] <= pair[1] else (pair[1], pair[0])
        existing = self.dr.get(ordered)
        if existing is not None:
            return existing
        sub = _guid(self.rng)
        self.subscriptions.append(sub)
        ctx: dict[str, Any] = {"sub": sub, "vault": f"rsv-asr-{ordered[0]}-{ordered[1]}", "hubs": {}, "recovery": {}}
        for region in ordered:
            hub_space = self.new_space()
            rg = f"rg-connectivity-{region}"
            self.out.append(vnet(sub, rg, f"vnet-hub-{region}", region, [f"{hub_space}.0.0/16"], [
                {"name": "GatewaySubnet", "prefix": f"{hub_space}.0.0/27"},
                {"name": "AzureFirewallSubnet", "prefix": f"{hub_space}.4.0/26"},
                {"name": "snet-nva", "prefix": f"{hub_space}.5.0/27"},
            ]))
            ctx["hubs"][region] = hub_space
            self.hub_firewall(sub, rg, region, hub_space, self.out[-1]["id"])
        for region in ordered:
            other = ordered[1] if region == ordered[0] else ordered[0]
            ctx["recovery"][region] = self.recovery_vnet(sub, f"rg-dr-{region}", f"vnet-dr-{region}", region, other,
                                                         ctx["hubs"][region])
        self.dr[ordered] = ctx
        return ctx

    # -- workload subscriptions -----------------------------------------------------------------------------

    def workload(self, index: int, n: int) -> None:
        rng = self.rng
        weights = [3.0 if i < 8 else 1.0 for i in range(len(self.pairs))]
        pair = rng.choices(self.pairs, weights)[0]
        here, there = pair if rng.random() < 0.8 else (pair[1], pair[0])
        dr = self.dr_context(pair)
        sub = _guid(rng)
        self.subscriptions.append(sub)
        hub_space = dr["hubs"][here]
        net_rg = f"rg-network-{here}"
        if rng.random() < 0.5:
            recovery = self.recovery_vnet(sub, f"rg-dr-{there}", f"vnet-lz{index:03d}-dr-{there}", there, here,
                                          dr["hubs"][there])
        else:
            recovery = dr["recovery"][there]
        asgs = [rid(sub, net_rg, "Microsoft.Network", "applicationSecurityGroups", f"asg-{role}") for role in ROLES]
        asr_asg = rid(sub, net_rg, "Microsoft.Network", "applicationSecurityGroups", "asg-asr-egress")
        ctx_base = {"here": here, "there": there, "asgs": asgs, "asr_asg": asr_asg}
        tables = [self.make_route_table(sub, net_rg, f"rt-lz{index:03d}-{i}", here, self.pick(self.ROUTE_POSTURES),
                                        here, there, _nva_ip(hub_space)) for i in range(rng.randint(3, 6))]
        baseline = self.make_nsg(sub, net_rg, f"nsg-lz{index:03d}-baseline", here, self.pick(self.SOURCE_POSTURES),
                                 {**ctx_base, "subnet_prefix": f"{hub_space}.0.0/24"})
        nic_nsgs = [self.make_nsg(sub, net_rg, f"nsg-lz{index:03d}-nic-{i}", here, self.pick(self.NIC_POSTURES),
                                  {**ctx_base, "subnet_prefix": f"{hub_space}.0.0/24"}) for i in range(3)]
        remaining = n
        vnet_index = 0
        while remaining > 0:
            space = self.new_space()
            vnet_name = f"vnet-lz{index:03d}-{here}-{vnet_index:02d}"
            vnet_index += 1
            roles = rng.sample(ROLES, rng.randint(3, 6))
            subnets: list[dict[str, Any]] = []
            placements: list[tuple[str, str, int]] = []  # (subnet name, prefix, vm count)
            for k, role in enumerate(roles):
                if remaining <= 0:
                    break
                count = min(remaining, rng.randint(6, 20))
                remaining -= count
                prefix = f"{space}.{k + 1}.0/24"
                entry: dict[str, Any] = {"name": f"snet-{role}", "prefix": prefix}
                choice = rng.random()
                if choice < 0.7:
                    entry["nsg"] = self.make_nsg(sub, net_rg, f"nsg-{vnet_name}-{role}", here,
                                                 self.pick(self.SOURCE_POSTURES), {**ctx_base, "subnet_prefix": prefix})
                elif choice < 0.93:
                    entry["nsg"] = baseline
                if rng.random() < 0.55:
                    entry["route_table"] = rng.choice(tables)
                if rng.random() < 0.15:
                    locations = [here] if rng.random() < 0.6 else [here, there]
                    entry["service_endpoints"] = [("Microsoft.Storage", locations)]
                subnets.append(entry)
                placements.append((entry["name"], prefix, count))
            self.firewall_routing(sub, net_rg, here, hub_space, subnets)
            if rng.random() < 0.1:
                subnets.append({"name": "GatewaySubnet", "prefix": f"{space}.254.0/27"})
            doc = vnet(sub, net_rg, vnet_name, here, [f"{space}.0.0/16"], subnets, peered=[f"{hub_space}.0.0/16"])
            self.out.append(doc)
            next_ip = {name: 4 for name, _, _ in placements}
            for subnet_name, prefix, count in placements:
                for _ in range(count):
                    self.replicated_vm(sub, index, here, there, doc, subnet_name, prefix, next_ip, placements,
                                       recovery, nic_nsgs, asgs, asr_asg, dr)

    def replicated_vm(self, sub: str, index: int, here: str, there: str, vnet_doc: Resource, subnet_name: str,
                      prefix: str, next_ip: dict[str, int], placements: list[tuple[str, str, int]],
                      recovery: Mapping[str, Any], nic_nsgs: list[str], asgs: list[str], asr_asg: str,
                      dr: Mapping[str, Any]) -> None:
        rng = self.rng
        self.vm_serial += 1
        name = f"vm-lz{index:03d}-{subnet_name[5:]}-{self.vm_serial:06d}"
        rg = f"rg-lz{index:03d}-{subnet_name[5:]}"
        vm_id = rid(sub, rg, "Microsoft.Compute", "virtualMachines", name)
        nic_specs = [(subnet_name, prefix)]
        if rng.random() < 0.04 and len(placements) > 1:
            other = rng.choice([p for p in placements if p[0] != subnet_name])
            nic_specs.append((other[0], other[1]))
        nic_docs = []
        for n, (snet, snet_prefix) in enumerate(nic_specs):
            host = next_ip[snet]
            next_ip[snet] = host + 1
            ip = f"{snet_prefix.rsplit('.', 1)[0]}.{host}"
            memberships = [asr_asg] if rng.random() < 0.7 else []
            if rng.random() < 0.5:
                memberships.append(rng.choice(asgs))
            nic_nsg = rng.choice(nic_nsgs) if rng.random() < 0.15 else ""
            nic_docs.append(nic(sub, rg, f"{name}-nic{n}", here, f"{vnet_doc['id']}/subnets/{snet}", ip, vm_id,
                                nsg_id=nic_nsg, asgs=memberships))
        vm_tags = {"env": "prod", "app": rg[3:]}
        if rng.random() < 0.01:
            vm_tags[OPT_OUT_TAG] = "true"
        self.out.append(vm(sub, rg, name, here, [d["id"] for d in nic_docs], vm_tags))
        if rng.random() < 0.003:
            pass  # the NIC was deleted but the VM and its protected item still name it: "missing"
        else:
            self.out.extend(nic_docs)
        recovery_subnet = subnet_name if rng.random() > 0.003 else f"{subnet_name}-old"
        recovery_nsg = rng.choice(recovery["nic_nsgs"]) if rng.random() < 0.1 else ""
        failed_over = rng.random() < 0.005  # failed over and committed, not reprotected yet: skipped
        item = protected_item(
            dr["sub"], dr["vault"], vm_id, name, here, there, nic_docs[0]["id"], recovery["id"], recovery_subnet,
            recovery_nsg_id=recovery_nsg,
            active_location="Recovery" if failed_over else "Primary",
            state="UnplannedFailoverCommitted" if failed_over else "Protected",
            encryption="OneStepADE" if rng.random() < 0.1 else "NotEncrypted",
        )
        subnet_doc = next(x for x in vnet_doc["properties"]["subnets"] if x["name"] == subnet_name)
        posture = self.nsg_postures.get((subnet_doc["properties"].get("networkSecurityGroup") or {}).get("id", ""), "")
        self.health_errors(item, blocked=posture in self.BLOCKING_POSTURES)
        details = item["properties"]["providerSpecificDetails"]
        for extra in nic_docs[1:]:
            details["vmNics"].append({
                "sourceNicArmId": extra["id"], "recoveryVMNetworkId": recovery["id"],
                "ipConfigs": [{"name": "ipconfig1", "isPrimary": True,
                               "recoverySubnetName": extra["properties"]["ipConfigurations"][0]["properties"][
                                   "subnet"]["id"].rsplit("/", 1)[1]}],
                "recoveryNetworkSecurityGroupId": "",
            })
        self.out.append(item)

    HEALTH_CODES = (("151196", "Site Recovery configuration failed.", 3),
                    ("151197", "Site Recovery configuration failed.", 2),
                    ("151037", "Outbound connectivity to Site Recovery URLs or IP ranges failed.", 2),
                    ("153007", "No crash consistent recovery point available for the VM in the last 60 minutes.", 2),
                    ("151195", "Failed to register the virtual machine with Site Recovery.", 1))

    # Subnet NSG postures that deny some of what ASR needs on the source side: ASR complains there more often.
    BLOCKING_POSTURES = frozenset({"locked-missing", "deny-azurecloud", "partial-cidr", "deny-first", "legacy-2017"})

    def health_errors(self, item: Resource, *, blocked: bool) -> None:
        """Site Recovery's own complaints on a few protected items (see the module docstring): a network code on ~35%
        of the VMs behind a subnet NSG that blocks ASR, ~3% of the others."""
        rng = self.health_rng
        roll = rng.random()
        network = roll < (0.35 if blocked else 0.03)
        created = f"2026-12-0{rng.randint(1, 2)}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:" \
                  f"{rng.randint(0, 59):02d}.{rng.randint(0, 9_999_999):07d}Z"
        props = item["properties"]
        if network:
            code, message, _ = rng.choices(self.HEALTH_CODES, weights=[w for *_, w in self.HEALTH_CODES])[0]
            props["replicationHealth"] = "Critical"
            props["healthErrors"] = [health_error(code, created, message)]
        elif roll > 0.95:
            props["replicationHealth"] = "Normal"
            props["healthErrors"] = [health_error(
                "161011", created, f"No successful test failover has been done on the virtual machine "
                f"'{props['friendlyName']}'.", level="Warning", category="TestFailover")]

    def run(self) -> Synthetic:
        subs = max(1, -(-self.n_vms // self.vms_per_subscription))
        base, extra = divmod(self.n_vms, subs)
        for index in range(subs):
            self.workload(index, base + (1 if index < extra else 0))
        self.emit_firewalls()
        counts = Counter(str(r["type"]) for r in self.out)
        return Synthetic(self.out, tuple(self.subscriptions), self.n_vms, 0, self.pairs, dict(counts),
                         self.rule_count, self.max_rules, self.route_count)


_TAGS_CACHE: dict[str, ServiceTags] = {}


def load_tags(path: str | Path = TAGS_FILE) -> ServiceTags:
    """The real Service Tags file, parsed once per process."""
    key = str(path)
    if key not in _TAGS_CACHE:
        _TAGS_CACHE[key] = load_service_tags_file(path)
    return _TAGS_CACHE[key]


def generate(n_vms: int, *, seed: int = DEFAULT_SEED, tags: ServiceTags | None = None,
             vms_per_subscription: int = VMS_PER_SUBSCRIPTION) -> Synthetic:
    """N replicated VMs and everything on their network paths, deterministic for (n_vms, seed, tags)."""
    if n_vms < 1:
        raise ValueError("n_vms must be at least 1")
    result = _Generator(n_vms, seed, tags or load_tags(), vms_per_subscription).run()
    return Synthetic(result.resources, result.subscriptions, result.vm_count, seed, result.region_pairs,
                     result.counts, result.rule_count, result.max_rules_per_nsg, result.route_count)


def main() -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Write a synthetic estate (ARM JSON list) for asr-remediate.")
    parser.add_argument("n_vms", type=int)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("-o", "--output", default="-")
    args = parser.parse_args()
    synthetic = generate(args.n_vms, seed=args.seed)
    text = json.dumps(synthetic.resources)
    if args.output == "-":
        print(text)
    else:
        Path(args.output).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
