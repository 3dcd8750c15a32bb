"""The harness's GoBGP, configured and read through `bgplab.lab.kinds.gobgp`."""

from __future__ import annotations

import json
from typing import Any

from bgplab.lab.kinds import gobgp
from bgplab.lab.kinds.router import FAMILIES, Route
from bgplab.testing.harness import BgpDaemon, RouteView
from bgplab.testing.netns import run


class GobgpDaemon(BgpDaemon):
    """gobgpd with a TOML config and its gRPC API on a unix socket in workdir.

    The unix socket keeps the API out of the namespace's port space, and lets the `gobgp` client
    run from the host without `ip netns exec`. Routes are added to the global RIB over the API
    once the daemon is up, both at start and at run time. Originates every `Route` attribute
    (origin is IGP); gobgpd never writes to the kernel FIB here (no zebra).
    """

    kind = "gobgp"

    def _command(self) -> list[str]:
        return ["gobgpd", "-f", str(self.workdir / "gobgpd.toml"), "-p", "--pprof-disable",
                "--api-hosts", f"unix://{self.workdir / 'api.sock'}"]

    def gobgp(self, *args: str, check: bool = True) -> str:
        return run(["gobgp", "--target", f"unix://{self.workdir / 'api.sock'}", *args], check).stdout

    def _ready(self) -> bool:
        return (self.workdir / "api.sock").exists() and '"asn"' in self.gobgp("-j", "global", check=False)

    def _write_config(self) -> None:
        config = gobgp.render_peers(self.asn, self.router_id, self.listen_port, self.neighbors)
        (self.workdir / "gobgpd.toml").write_text(config)

    def _after_start(self) -> None:
        for route in self.routes.values():
            self._announce(route)

    def _announce(self, route: Route) -> None:
        self.gobgp(*gobgp.rib_add_args(route.prefix, next_hop=route.next_hop, as_path=route.as_path, med=route.med,
                                       local_pref=route.local_pref, communities=route.communities,
                                       large_communities=route.large_communities))

    def _withdraw(self, route: Route) -> None:
        self.gobgp("global", "rib", "del", route.prefix, "-a", route.family)

    def set_neighbor_enabled(self, address: str, enabled: bool) -> None:
        self.gobgp("neighbor", self.neighbor(address).address, "enable" if enabled else "disable")

    def _session(self, address: str) -> dict[str, Any]:
        address = self.neighbor(address).address
        return gobgp.session_row(address, gobgp.one_neighbor(json.loads(self.gobgp("-j", "neighbor", address))) or {})

    def _received_routes(self) -> dict[str, RouteView]:
        ibgp = {n.address for n in self.neighbors if n.asn == self.asn}
        views: dict[str, RouteView] = {}
        for family in FAMILIES:
            rib = json.loads(self.gobgp("-j", "global", "rib", "-a", family) or "{}")
            received = [r for r in gobgp.route_rows(rib, family, ibgp) if r["source"] != "local"]
            for row in sorted(received, key=lambda r: not r["best"]):  # stable: the first best path
                views.setdefault(row["network"], RouteView.of_row(row))
        return views
