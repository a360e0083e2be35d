"""The VirtualNetwork service tag as Azure expands it for one sender — and so ``Internet``, its complement.

Azure's service-tag reference defines VirtualNetwork as "the virtual network address space (all IP address ranges
defined for the virtual network), all connected on-premises address spaces, peered virtual networks, virtual
networks connected to a virtual network gateway, the virtual IP address of the host, and address prefixes used on
user-defined routes. This tag might also contain default routes" (learn.microsoft.com/azure/virtual-network/
service-tags-overview). Operators see it in a NIC's effective security rules: a 0.0.0.0/0 UDR to an appliance makes
the expansion of AllowVnetOutBound 0.0.0.0/0, so it allows everything and a "deny Internet" rule matches nothing
(reported, e.g., in "Azure NSG VirtualNetwork Tag", codewithme.cloud 2019, and journeyofthegeek.com 2022).

So the tag is per sender: its VNet, the connected peerings, the prefixes of the user-defined routes of *its
subnet's* route table, and the prefixes learned from a gateway (BGP, known only when the NIC's effective routes
were read). Choices where the sources are silent, documented in the README:

* a service-tag route contributes the tag's current prefixes (Azure expands tag routes on the host as it does tag
  rules); a tag the Service Tags data lacks contributes nothing here — the route evaluation already makes that
  destination ``unknown``;
* next hop does not matter (the definition says "address prefixes used on user-defined routes");
* system routes (the 0.0.0.0/0 → Internet default, RFC 1918 → None, service endpoints) are not part of it;
* the host's virtual IP (168.63.129.16) is matched by the AzureLoadBalancer handling, not here.

>>> from asr_remediate.model import Route, RouteTable, VirtualNetwork
>>> from asr_remediate.servicetags import ServiceTags
>>> tags = ServiceTags.from_values("1", [{"name": "Storage.EastUS",
...                                       "properties": {"region": "eastus", "addressPrefixes": ["20.38.0.0/16"]}}])
>>> vnet = VirtualNetwork("/vnet", "vnet", "eastus", ("10.0.0.0/16",), (), peered_address_prefixes=("10.1.0.0/16",))
>>> virtual_network_tag(vnet, None, tags).to_cidrs()
['10.0.0.0/15']
>>> table = RouteTable("/rt", "rt", "eastus", (Route("onprem", "192.168.0.0/16", "VirtualAppliance", "10.0.0.4"),
...                                           Route("storage", "Storage.EastUS", "Internet")))
>>> virtual_network_tag(vnet, table, tags).to_cidrs()
['10.0.0.0/15', '20.38.0.0/16', '192.168.0.0/16']
>>> forced = RouteTable("/rt2", "rt2", "eastus", (Route("default", "0.0.0.0/0", "VirtualAppliance", "10.0.0.4"),))
>>> virtual_network_tag(vnet, forced, tags).to_cidrs()  # VirtualNetwork is everything; Internet is empty
['0.0.0.0/0']
"""

from __future__ import annotations

from collections.abc import Sequence

from .ipset import IdentityCache, IPSet, is_ipv4_prefix
from .model import Route, RouteTable, VirtualNetwork
from .servicetags import ServiceTags


def virtual_network_tag(vnet: VirtualNetwork, table: RouteTable | None, tags: ServiceTags,
                        learned: Sequence[Route] | None = None) -> IPSet:
    """The addresses VirtualNetwork stands for in NSG rules evaluated for a sender in ``vnet`` whose subnet uses
    ``table``; ``learned``: the gateway (BGP) routes of the sender's effective route table, when read.

    Memoised by the identity of its inputs: every NIC of a subnet shares one set, so the NSG engine's memos
    (keyed by the set's identity) are shared too.
    """
    return _TAGS.get((vnet, table, tags, learned), None, lambda: _build(vnet, table, tags, learned or ()))


def _build(vnet: VirtualNetwork, table: RouteTable | None, tags: ServiceTags, learned: Sequence[Route]) -> IPSet:
    result = IPSet.from_prefixes((*vnet.address_prefixes, *vnet.peered_address_prefixes))
    for route in (*(table.routes if table else ()), *learned):
        prefix = route.address_prefix.strip()
        if is_ipv4_prefix(prefix):
            result = result | IPSet.address(prefix)
        elif ":" not in prefix:  # an IPv6 route says nothing of IPv4 flows
            result = result | (tags.prefixes(prefix) or IPSet())
    return result


_TAGS: IdentityCache[IPSet] = IdentityCache(8192)
