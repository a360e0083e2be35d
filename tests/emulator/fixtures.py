"""Helpers for the emulator tests: a fake credential, fake sleep, payload loading, resource builders."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken

DATA = Path(__file__).resolve().parent.parent / "data" / "arm"

SUB = "00000000-0000-0000-0000-000000000001"
SUB2 = "00000000-0000-0000-0000-000000000002"
RG = "rg-net"


class FakeCredential:
    """A TokenCredential that never talks to Entra ID: a static token valid for years."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("emulator-token", int(time.time()) + 10 * 365 * 24 * 3600)


class FakeSleep:
    """Records requested sleeps instead of sleeping; optional side effect per call."""

    def __init__(self, on_sleep: Any = None) -> None:
        self.calls: list[float] = []
        self.on_sleep = on_sleep

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8-sig"))


def example_body(name: str, status: str = "200") -> dict[str, Any]:
    """The response body of a REST API spec example file."""
    return copy.deepcopy(load(name)["responses"][status]["body"])


def rid(kind: str, name: str, sub: str = SUB, rg: str = RG, provider: str = "Microsoft.Network") -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider}/{kind}/{name}"


def rule_props(priority: int, direction: str = "Outbound", access: str = "Allow", dest: str = "*",
               port: str = "443", **extra: Any) -> dict[str, Any]:
    props = {"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": port,
             "sourceAddressPrefix": "VirtualNetwork", "destinationAddressPrefix": dest, "access": access,
             "priority": priority, "direction": direction}
    props.update(extra)
    return props


def nsg(name: str, rules: dict[str, dict[str, Any]] | None = None, sub: str = SUB, location: str = "eastus",
        tags: dict[str, str] | None = None) -> dict[str, Any]:
    nsg_id = rid("networkSecurityGroups", name, sub)
    return {"id": nsg_id, "name": name, "type": "Microsoft.Network/networkSecurityGroups", "location": location,
            "tags": tags or {},
            "properties": {"securityRules": [{"name": n, "id": f"{nsg_id}/securityRules/{n}", "properties": p}
                                             for n, p in (rules or {}).items()]}}


def route_table(name: str, routes: dict[str, dict[str, Any]] | None = None, sub: str = SUB,
                location: str = "eastus") -> dict[str, Any]:
    rt_id = rid("routeTables", name, sub)
    return {"id": rt_id, "name": name, "type": "Microsoft.Network/routeTables", "location": location,
            "properties": {"disableBgpRoutePropagation": False,
                           "routes": [{"name": n, "id": f"{rt_id}/routes/{n}", "properties": p}
                                      for n, p in (routes or {}).items()]}}


def nic(index: int, sub: str = SUB) -> dict[str, Any]:
    """A minimal NIC, for volume (paging) tests."""
    nic_id = rid("networkInterfaces", f"nic-{index:05d}", sub)
    return {"id": nic_id, "location": "eastus", "properties": {"ipConfigurations": [
        {"name": "ipconfig1", "properties": {"privateIPAddress": f"10.{index // 65536}.{index // 256 % 256}."
                                                                 f"{index % 256}",
                                             "subnet": {"id": rid("virtualNetworks", "vnet1", sub)
                                                        + "/subnets/default"}}}]}}
