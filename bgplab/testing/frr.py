"""The harness's FRR: bgpd alone, or beside zebra and bfdd, configured and read through `bgplab.lab.kinds.frr`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

from bgplab.lab.kinds import frr
from bgplab.lab.kinds.router import FAMILIES, Neighbor, Route, canonical_address
from bgplab.testing.harness import BgpDaemon, DaemonError, RouteView, wait_until
from bgplab.testing.netns import run


class FrrDaemon(BgpDaemon):
    """FRR bgpd alone (`-Z`, no zebra), with its own config, pid file and vty socket directory.

    Without zebra bgpd treats every next hop as reachable, so received routes are valid and
    re-advertised, and nothing is written to the kernel FIB (`-n` is implied); no other FRR on the
    host is touched. Queries go through `vtysh --vty_socket` in JSON.

    With BFD on any neighbor, zebra and bfdd run too, in the same namespace and workdir (their
    own zserv socket, bfdd control socket, pid files and logs): bgpd registers its BFD sessions
    with bfdd only through zebra, and bfdd learns interfaces and addresses from zebra. bgpd then
    runs with `-n`, so the kernel FIB is still never written. zebra and bfdd drop privileges to
    the `frr` user, so that workdir is handed to it. Each such neighbor gets its own BFD profile
    (`bfd_profile`), which `set_bfd_enabled` shuts down or re-enables, and bfdd logs its
    session changes with microsecond timestamps (`debug bfd peer`) for measurements.

    Originates every `Route` attribute exactly, as `frr.Originated` writes them. Quirk: FRR sends
    MED 0 on its own routes when `med` is None.
    """

    kind = "frr"
    supports_ttl_security = True
    supports_bfd = True
    bgpd = str(frr.LIBDIR / "bgpd")
    zebra = str(frr.LIBDIR / "zebra")
    bfdd = str(frr.LIBDIR / "bfdd")
    BFD_STATES: ClassVar[dict[str, str]] = frr.BFD_PEER_STATES
    """FRR's `show bfd peers json` status → the RFC 5880 state names bgplab uses."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._originated = frr.Originated()

    with_zebra: ClassVar[bool] = False
    """Run zebra even without BFD (bgpd `-n`: still no FIB). Without zebra bgpd logs a failed
    zclient send for every route it receives, which is most of its time under a full table."""

    @property
    def uses_bfd(self) -> bool:
        return any(n.bfd for n in self.neighbors)

    @property
    def uses_zebra(self) -> bool:
        return self.with_zebra or self.uses_bfd

    def _command(self) -> list[str]:
        zebra = ["-n"] if self.uses_zebra else ["-Z"]
        return frr.daemon_args(self.workdir, "bgpd", *zebra, "-S", "-p", str(self.listen_port), zserv=self.uses_zebra)

    def _start_helpers(self) -> None:
        if not self.uses_zebra:
            return
        d = self.workdir
        shutil.chown(d, "frr", "frr")
        self._spawn_helper(frr.daemon_args(d, "zebra"))

        def zserv_ready() -> bool:
            self._check_helpers()
            return (d / "zserv.api").exists()

        wait_until(zserv_ready, self.start_timeout, f"{self!r}: zebra to listen", interval=0.05)
        if self.uses_bfd:
            # bfdd logs through its config file: only there does `log timestamp precision` apply.
            self._spawn_helper(frr.daemon_args(d, "bfdd", log=False))

    def _log_files(self) -> list[Path]:
        helpers = ("zebra", "bfdd") if self.uses_bfd else ("zebra",) if self.uses_zebra else ()
        extra = [self.workdir / f"{name}.log" for name in helpers]
        return [*super()._log_files(), self.workdir / "bgpd.log", *extra]

    def query(self, command: str, daemon: str = "bgpd", timeout: float = 10.0) -> str:
        """One show command straight over the daemon's vty socket (`frr.vty_query`): no vtysh
        process per question, for polls every few ms."""
        try:
            return frr.vty_query(self.workdir, daemon, command, timeout)
        except RuntimeError as exc:
            raise DaemonError(f"{self!r}: {exc}") from None

    def vtysh(self, *commands: str, check: bool = True, daemon: str = "bgpd") -> str:
        """Run vtysh commands in one session (so configuration context carries over)."""
        return run(frr.vtysh_args(self.workdir, commands, daemon), check).stdout

    # -- BFD ---------------------------------------------------------------------------------

    @staticmethod
    def bfd_profile(address: str) -> str:
        """The bfdd profile of one neighbor's BFD session."""
        return frr.bfd_profile(address)

    def _bfd_neighbor(self, address: str) -> Neighbor:
        neighbor = self.neighbor(address)
        if neighbor.bfd is None:
            raise KeyError(f"{self!r} has no BFD configured for {neighbor.address}")
        return neighbor

    def bfd_peers(self) -> list[dict[str, Any]]:
        """bfdd's `show bfd peers json`: every session, as FRR reports it."""
        out = self.vtysh("show bfd peers json", daemon="bfdd")
        peers: list[dict[str, Any]] = json.loads(out or "[]")
        return peers

    def bfd_peer(self, address: str) -> dict[str, Any] | None:
        """bfdd's view of the single-hop session with address, or None while it has none yet."""
        address = self._bfd_neighbor(address).address
        for peer in self.bfd_peers():
            if not peer.get("multihop") and canonical_address(peer["peer"]) == address:
                return peer
        return None

    def bfd_state(self, address: str) -> str:
        """"up", "down", "init" or "admindown"; "down" until bgpd has registered the session."""
        peer = self.bfd_peer(address)
        return "down" if peer is None else self.BFD_STATES.get(str(peer.get("status")), "down")

    def wait_bfd_state(self, address: str, state: str = "up", timeout: float = 30.0) -> None:
        if state not in self.BFD_STATES.values():
            raise ValueError(f"state must be one of {sorted(self.BFD_STATES.values())}")
        wait_until(lambda: self.bfd_state(address) == state, timeout,
                   f"{self!r} BFD with {address} to be {state}", interval=0.05)

    def bfd_log_changes(self) -> list[tuple[float, str, str, str]]:
        """bfdd's logged state changes: (UNIX time, peer, "old -> new", reason), in log order,
        in `time.time()`'s terms (see `frr.bfd_log_changes`)."""
        path = self.workdir / "bfdd.log"
        return frr.bfd_log_changes(path.read_text(errors="replace")) if path.exists() else []

    def set_bfd_enabled(self, address: str, enabled: bool) -> None:
        """Shut the BFD session down (bfdd sends AdminDown) or re-enable it."""
        profile = self.bfd_profile(self._bfd_neighbor(address).address)
        self.vtysh("configure terminal", "bfd", f"profile {profile}", "no shutdown" if enabled else "shutdown",
                   daemon="bfdd")

    def _json(self, command: str) -> Any:
        return json.loads(self.vtysh(command + " json") or "{}")

    def _ready(self) -> bool:
        if not ((self.workdir / "bgpd.vty").exists() and
                self.vtysh("show bgp summary json", check=False).lstrip().startswith("{")):
            return False
        if not self.uses_bfd:
            return True
        return (self.workdir / "bfdd.vty").exists() and \
            self.vtysh("show bfd peers json", check=False, daemon="bfdd").lstrip().startswith("[")

    def _write_config(self) -> None:
        d = self.workdir
        (d / "bgpd.conf").write_text(self._originated.render(f"{self.kind}-{self.asn}", self.asn, self.router_id,
                                                             self.neighbors, self.routes.values()))
        if self.uses_bfd:
            (d / "bfdd.conf").write_text(frr.render_bfdd(d, self.neighbors))
            (d / "zebra.conf").write_text(f"hostname {self.kind}-{self.asn}-zebra\n")

    def _announce(self, route: Route) -> None:
        originated = self._originated
        name, block = originated.route_map(route)
        next_hop_changed = originated.has_next_hop(route.prefix) or route.next_hop is not None
        commands = ["configure terminal", *block, *originated.unset_next_hop(route.prefix),
                    *originated.set_next_hop(route), f"router bgp {self.asn}",
                    f"address-family {route.family} unicast", f"network {route.prefix} route-map {name}", "end"]
        if next_hop_changed:  # prefix-list edits reach the outbound policy on FRR's delay timer
            commands.append(f"clear bgp {route.family} unicast * soft out")
        self.vtysh(*commands)

    def _withdraw(self, route: Route) -> None:
        self.vtysh("configure terminal", f"router bgp {self.asn}", f"address-family {route.family} unicast",
                   f"no network {route.prefix}", "exit", "exit", *self._originated.unset_next_hop(route.prefix),
                   "end")

    def set_neighbor_enabled(self, address: str, enabled: bool) -> None:
        self.vtysh("configure terminal", f"router bgp {self.asn}",
                   f"{'no ' if enabled else ''}neighbor {self.neighbor(address).address} shutdown")

    def _neighbor_json(self, address: str) -> dict[str, Any]:
        data = self._json(f"show bgp neighbors {self.neighbor(address).address}")
        peer: dict[str, Any] = next(iter(data.values()), {})
        return peer

    def _session(self, address: str) -> dict[str, Any]:
        return frr.session_row(self.neighbor(address).address, self._neighbor_json(address))

    def notifications(self, address: str) -> list[tuple[str, int, int]]:
        """FRR's own record of every NOTIFICATION it sent to or received from the neighbor (its log)."""
        log = self.workdir / "bgpd.log"
        return frr.logged_notifications(log.read_text(errors="replace"), address) if log.exists() else []

    def _received_routes(self) -> dict[str, RouteView]:
        views: dict[str, RouteView] = {}
        for family in FAMILIES:
            data = self.vtysh(f"show bgp {family} unicast json detail")
            for prefix, entries in json.loads(data or "{}").get("routes", {}).items():
                # FRR 8.4 lists a per-prefix header first, then the paths.
                paths = [p for p in entries if "nexthops" in p and not p.get("local")]
                paths.sort(key=lambda p: not p.get("bestpath", {}).get("overall", False))
                if paths:
                    row = frr.path_row(prefix, paths[0], family)
                    well_known = [frr.WELL_KNOWN_COMMUNITIES.get(c, c) for c in row["communities"]]
                    views[prefix] = RouteView.of_row({**row, "communities": well_known})
        return views
