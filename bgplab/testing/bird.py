"""The harness's BIRD 2, configured and read through `bgplab.lab.kinds.bird`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bgplab.lab.kinds import bird
from bgplab.lab.kinds.router import Route
from bgplab.testing.harness import BgpDaemon, DaemonError, RouteView
from bgplab.testing.netns import run


class BirdDaemon(BgpDaemon):
    """BIRD 2 in the foreground (`-f`) with its own config, pid file and control socket.

    Routes are blackhole statics; their BGP attributes are set in each session's export filter
    (`bird.render_peers`). Runtime announce/withdraw re-render the config and `birdc configure`.
    Originates every `Route` attribute; `next_hop` is honoured by BIRD only where it is a valid
    third-party next hop for the session (on the shared subnet), else BIRD sends its own address.
    """

    kind = "bird"
    supports_ttl_security = True

    def _command(self) -> list[str]:
        d = self.workdir
        return ["bird", "-f", "-c", str(d / "bird.conf"), "-s", str(d / "bird.ctl"),
                "-P", str(d / "bird.pid")]

    def _log_files(self) -> list[Path]:
        return [*super()._log_files(), self.workdir / "bird.log"]

    def birdc(self, *command: str, check: bool = True) -> str:
        return run(["birdc", "-s", str(self.workdir / "bird.ctl"), *command], check).stdout

    def _ready(self) -> bool:
        return "Daemon is up and running" in self.birdc("show", "status", check=False)

    def _protocol(self, address: str) -> str:
        return f"bl_n{self.neighbors.index(self.neighbor(address))}"

    def _render(self) -> str:
        protocols = {self._protocol(n.address): n for n in self.neighbors}
        return bird.render_peers(self.workdir / "bird.log", self.router_id, self.asn, self.listen_port, protocols,
                                 self.routes.values())

    def _write_config(self) -> None:
        (self.workdir / "bird.conf").write_text(self._render())

    def _reconfigure(self) -> None:
        self._write_config()
        out = self.birdc("configure")
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
            raise DaemonError(f"{self!r} refused its new configuration:\n{out}")

    def _announce(self, route: Route) -> None:
        self._reconfigure()

    def _withdraw(self, route: Route) -> None:
        self._reconfigure()

    def set_neighbor_enabled(self, address: str, enabled: bool) -> None:
        self.birdc("enable" if enabled else "disable", self._protocol(address))

    def _session(self, address: str) -> dict[str, Any]:
        protocols = bird.parse_protocols(self.birdc("show", "protocols", "all", self._protocol(address)))
        return bird.session_row(protocols[0]) if protocols else {"state": "idle", "accepted": 0}

    def _received_routes(self) -> dict[str, RouteView]:
        peers = {self._protocol(n.address): n.address for n in self.neighbors}
        ibgp = {self._protocol(n.address) for n in self.neighbors if n.asn == self.asn}
        views: dict[str, RouteView] = {}
        for row in bird.route_rows(self.birdc("show", "route", "all", "where", "source = RTS_BGP"), peers, ibgp):
            if row["source"] == "local" or (row["network"] in views and not row["best"]):
                continue
            views[row["network"]] = RouteView.of_row(row)
        return views
