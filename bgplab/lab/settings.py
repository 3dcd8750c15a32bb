"""What an operator changes on a running lab, as in Azure: a VNet connection's routing weight, and
the connection itself (deleted, or made again), the steps of a migration between circuits.

These are changes, not faults: `restore` does not undo them, another `set` does. Each is journaled
("setting", stamped with the monotonic clock like faults) so a scenario report lines it up with
the routes and packets that followed. A node restarted by a `node` fault comes back with its
configured weights and connections; set them again after it.
"""

from __future__ import annotations

import time
from typing import Any

from bgplab.expressroute import control
from bgplab.lab.lab import Lab, LabError


class SettingError(LabError):
    """A setting that cannot be made (unknown VNet or circuit, a value out of range); says what would do."""


class Settings:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def weight(self, vnet: str, circuit: str, weight: int) -> dict[str, Any]:
        """`az network vpn-connection update --routing-weight`: higher wins, before AS-path length."""
        self._call(self._gateway(vnet), "weight", circuit=circuit, weight=weight)
        return self._record("weight", vnet=vnet, circuit=circuit, weight=weight)

    def connection(self, vnet: str, circuit: str, connected: bool) -> dict[str, Any]:
        """Delete the connection between a VNet and a circuit, or make it again: the sessions between
        the VNet's gateway and the circuit's MSEEs end (start) at both ends, as Azure's do."""
        gateway = self._gateway(vnet)
        spec = self.lab.plan.nodes[gateway].spec
        addresses = {n["local_address"] for n in spec.get("neighbors", []) if n["circuit"] == circuit}
        if not addresses:
            connected_to = sorted({n["circuit"] for n in spec.get("neighbors", [])})
            raise SettingError(f"VNet {vnet} has no connection to circuit {circuit!r}; connected: "
                               f"{', '.join(connected_to) or 'none'}")
        msees = [(name, address) for name in self.lab.plan.circuits.get(circuit, ())
                 for address in sorted(addresses)
                 if any(g["address"] == address for g in
                        self.lab.plan.nodes[name].spec["peerings"].get("private", {}).get("gateways", []))]
        # The gateway ends its sessions first (a Cease to each MSEE); to connect, the MSEEs take it back first.
        if not connected:
            self._call(gateway, "connection", circuit=circuit, connected=False)
        for name, address in msees:
            self._call(name, "gateway", address=address, connected=connected)
        if connected:
            self._call(gateway, "connection", circuit=circuit, connected=True)
        return self._record("connection", vnet=vnet, circuit=circuit, connected=connected)

    def _gateway(self, vnet: str) -> str:
        gateways = self.lab.plan.gateways
        if vnet not in gateways:
            raise SettingError(f"no VNet {vnet!r} in lab {self.lab.plan.name}; VNets: "
                               f"{', '.join(sorted(gateways)) or 'none'}")
        return gateways[vnet]

    def _call(self, node: str, command: str, **args: Any) -> None:
        try:
            self.lab.node(node).call(command, **args)
        except control.ControlError as exc:
            raise SettingError(f"{node}: {exc}") from None

    def _record(self, what: str, **fields: Any) -> dict[str, Any]:
        entry = {"setting": what, **fields, "time": round(time.monotonic(), 6)}
        self.lab.state.record("setting", **entry)
        return entry
