"""The harness's ExaBGP 5, configured and read through `bgplab.lab.kinds.exabgp`."""

from __future__ import annotations

import json
import os
from typing import Any

from bgplab.lab.kinds import exabgp
from bgplab.lab.kinds.router import Neighbor, Route
from bgplab.testing.harness import BgpDaemon, DaemonError, RouteView


class ExabgpDaemon(BgpDaemon):
    """ExaBGP 5 in the foreground, as root without dropping privileges, with no CLI pipes.

    Received updates and neighbor state changes reach an API helper that appends them (JSON,
    one message a line) to `received.jsonl`; the queries replay that file. ExaBGP only reports
    "connected" (shown as opensent), "up" (established) and "down" (idle), never connect/active.
    Start-up routes are static routes in the config; run-time ones are API commands written to a
    FIFO the helper forwards. Originates every `Route` attribute; as ExaBGP sends an AS path
    verbatim, the harness prepends the daemon's ASN itself on eBGP sessions. The keepalive is
    always hold_time / 3 (ExaBGP has no separate setting). Each session listens on the local
    address facing the neighbor, found from the namespace's interface addresses.
    """

    kind = "exabgp"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._messages: exabgp.MessageLog | None = None

    def _command(self) -> list[str]:
        return exabgp.command(self.workdir, self.workdir / "exabgp.conf")

    def _ready(self) -> bool:
        return (self.workdir / "ready").exists()

    def _local_address(self, neighbor: Neighbor) -> str:
        links = json.loads(self.ns.run(["ip", "-j", "addr", "show"]).stdout)
        local = exabgp.address_facing(neighbor.address, [f"{i['local']}/{i['prefixlen']}" for link in links
                                                         for i in link.get("addr_info", [])])
        if local is None:
            raise DaemonError(f"{self.ns!r} has no address on the subnet of neighbor {neighbor.address}")
        return local

    def _write_config(self) -> None:
        d = self.workdir
        exabgp.write_env(d)
        exabgp.write_api_helper(d)
        self._messages = exabgp.MessageLog(d / "received.jsonl")
        peers = [(n, self._local_address(n)) for n in self.neighbors]
        config = exabgp.render_peers(d, self.router_id, self.asn, self.listen_port, peers, self.routes.values())
        (d / "exabgp.conf").write_text(config)

    def _send(self, commands: list[str]) -> None:
        # Non-blocking open fails at once (ENXIO) if the helper is gone, instead of hanging.
        fd = os.open(self.workdir / "commands.fifo", os.O_WRONLY | os.O_NONBLOCK)
        try:
            for command in commands:
                os.write(fd, (command + "\n").encode())  # one short write per line: atomic on a pipe
        finally:
            os.close(fd)

    def _announce(self, route: Route) -> None:
        self._send([f"neighbor {n.address} announce {exabgp.harness_route_spec(route, self.asn, n)}"
                    for n in self.neighbors if route.family in n.families])

    def _withdraw(self, route: Route) -> None:
        self._send([f"neighbor {n.address} withdraw route {route.prefix}"
                    for n in self.neighbors if route.family in n.families])

    def _message_log(self) -> exabgp.MessageLog:
        if self._messages is None:
            raise RuntimeError(f"{self!r} is not started")
        return self._messages

    def _received(self, address: str) -> dict[str, dict[str, Any]]:
        """What the neighbor sent and still stands, but for AS loops: what any other speaker would drop."""
        feed = self._message_log().read()
        local_as = str(feed.asns.get(address, (None, None))[0])
        return {prefix: row for prefix, row in feed.received.get(address, {}).items()
                if local_as not in row["path"].split()}

    def set_neighbor_enabled(self, address: str, enabled: bool) -> None:
        """ExaBGP can only tear a session down (Cease, administrative shutdown); it reconnects by
        itself shortly after, so enabling is a no-op."""
        if not enabled:
            self._send([f"neighbor {self.neighbor(address).address} teardown 2"])

    def _session(self, address: str) -> dict[str, Any]:
        address = self.neighbor(address).address
        return {"state": self._message_log().read().states.get(address, "idle"),
                "accepted": len(self._received(address))}

    def _received_routes(self) -> dict[str, RouteView]:
        # ExaBGP has no decision process: with several peers sending a prefix, the first wins.
        views: dict[str, RouteView] = {}
        for address in list(self._message_log().read().received):
            for prefix, row in self._received(address).items():
                views.setdefault(prefix, RouteView.of_row(row))
        return views

    def stop(self) -> None:
        super().stop()
        self._messages = None
