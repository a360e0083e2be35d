"""Which RBAC action each ARM request needs, and which actions infra/role.bicep grants.

The role must hold exactly what the code calls: the emulator records every request the SDK clients send, and these
helpers turn each (method, path) into its action the way ARM authorizes it:

* a resource request: ``<provider>/<type>[/<child type>]/read|write|delete`` (GET / PUT / DELETE);
* a POST action on a resource: ``<provider>/<type>/<action>/action`` (``effectiveRouteTable``, …);
* polling a long-running operation: ``Microsoft.Network/locations/operations/read`` (the Azure-AsyncOperation URL)
  and ``Microsoft.Network/locations/operationResults/read`` (the Location URL of an async POST or DELETE) — the
  operation names and descriptions are in "Azure permissions for Networking"
  (learn.microsoft.com/azure/role-based-access-control/permissions/networking);
* the Service Tag Discovery API: ``Microsoft.Network/locations/serviceTags/read``;
* a Resource Graph query: ``Microsoft.ResourceGraph/resources/read`` plus ``<type>/read`` of every type it asks for,
  because Resource Graph returns only the resources the caller may read ("Understanding the Azure Resource Graph
  query language" / "Permissions in Azure Resource Graph": results are trimmed to what the caller has read access to).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.bicep import bicep_var_array, read_text
from tests.emulator.arm_emulator import parse_query

ROLE = Path(__file__).resolve().parent.parent / "infra" / "role.bicep"
# The role's action lists and the switch that adds each (readActions are always granted).
ROLE_LISTS = ("readActions", "writeActions", "firewallWriteActions", "effectiveRouteActions", "effectiveNsgActions",
              "adminRuleActions")

_LOCATION_CALL = re.compile(r"^/subscriptions/[^/]+/providers/(?P<ns>[^/]+)/locations/[^/]+/(?P<what>[^/]+)(/[^/]+)?$",
                            re.I)
_METHOD_VERB = {"GET": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}


def role_actions() -> dict[str, set[str]]:
    text = read_text(ROLE)
    return {name: set(bicep_var_array(text, name)) for name in ROLE_LISTS}


def granted() -> set[str]:
    """Everything the role grants with every switch on."""
    return set().union(*role_actions().values())


def _canonical(action: str, known: set[str]) -> str:
    """Actions are case-insensitive; report them in the role's spelling when it has them."""
    for candidate in known:
        if candidate.lower() == action.lower():
            return candidate
    return action


def actions_for(method: str, path: str, body: Any = None) -> set[str]:
    """The actions ARM checks for one request (``path`` without the query string)."""
    path = path.rstrip("/")
    if path.lower() == "/providers/microsoft.resourcegraph/resources":
        try:
            types = parse_query(str((body or {}).get("query") or "")).types or frozenset()
        except ValueError:  # a query Resource Graph refuses (400) reads nothing
            types = frozenset()
        return {"Microsoft.ResourceGraph/resources/read"} | {f"{t}/read" for t in types}
    match = _LOCATION_CALL.match(path)
    if match:
        return {f"{match['ns']}/locations/{match['what']}/read"}
    parts = [p for p in path.split("/") if p]
    lowered = [p.lower() for p in parts]
    if "providers" not in lowered:
        raise ValueError(f"not an ARM request path: {path}")
    start = len(lowered) - 1 - lowered[::-1].index("providers")
    tail = parts[start + 1:]
    namespace, pairs = tail[0], tail[1:]
    types = pairs[0::2]
    if len(pairs) % 2 and method == "GET":  # a list of child resources (…/firewallPolicies/p/ruleCollectionGroups)
        return {"/".join([namespace, *types]) + "/read"}
    if len(pairs) % 2:  # an odd tail: a POST action on the resource (…/networkInterfaces/nic/effectiveRouteTable)
        if method != "POST":
            raise ValueError(f"{method} {path}: an action path must be a POST")
        return {"/".join([namespace, *types[:-1]]) + f"/{types[-1]}/action"}
    if method == "POST":
        return {"/".join([namespace, *types]) + "/action"}
    return {"/".join([namespace, *types]) + "/" + _METHOD_VERB[method]}


def sdk_requests(requests: list[Any]) -> list[Any]:
    """The requests the bot's code sent (through the Azure SDK), not the tests' own probes of the emulator."""
    return [r for r in requests if "azsdk-python" in (r.header("User-Agent") or "")]


def needed(requests: list[Any]) -> set[str]:
    known = granted()
    return {_canonical(a, known) for r in sdk_requests(requests) for a in actions_for(r.method, r.path, r.body)}


def missing_from_role(requests: list[Any]) -> set[str]:
    known = {a.lower() for a in granted()}
    return {a for a in needed(requests) if a.lower() not in known}
