"""FRR as a lab router: zebra, bgpd, staticd and bfdd in the node's namespace, writing its FIB.

Each node's FRR is a private instance: its own working directory in the lab's state (configs,
pid files, vty sockets, zserv socket, logs), so any number of nodes, and a system FRR, run side
by side. The daemons start with empty configs and the node's integrated config (the user's own
file, checked first with `vtysh --dryrun`, or one generated from the topology's intent) is then
applied through vtysh, which sends each line to the daemon that owns it, as `frr-reload` would.

The test harness's FRR (`bgplab.testing.frr`) is bgpd alone, or with zebra and bfdd, from a
`Neighbor`/`Route` model: `render_bgpd` and `render_bfdd` write it, `Originated` keeps the
route-maps and next-hop entries of its routes so run-time changes edit only what they must.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import socket
import subprocess
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from bgplab.expressroute.profile import CeTimers, profile
from bgplab.lab import system
from bgplab.lab.kinds import ConfigCheckError, Kind, register
from bgplab.lab.kinds.router import (
    FAMILIES,
    MSEE_BFD,
    STATES,
    Neighbor,
    Route,
    RouterNode,
    Run,
    canonical_address,
    check_family,
    family_of,
    host_run,
    prefix_bounds,
    valid_bfd_timers,
)

KIND = "frr"
LIBDIR = Path("/usr/lib/frr")
DAEMONS = ("zebra", "bgpd", "staticd", "bfdd")
BFD_PEER_STATES = {"up": "up", "down": "down", "init": "init", "shutdown": "admindown"}
"""bfdd's `show bfd peers json` status: the RFC 5880 state names bgplab uses."""
WELL_KNOWN_COMMUNITIES = {
    "internet": "0:0", "graceful-shutdown": "65535:0", "accept-own": "65535:1",
    "route-filter-translated-v4": "65535:2", "route-filter-v4": "65535:3",
    "route-filter-translated-v6": "65535:4", "route-filter-v6": "65535:5",
    "llgr-stale": "65535:6", "no-llgr": "65535:7", "accept-own-nexthop": "65535:8",
    "blackhole": "65535:666", "no-export": "65535:65281", "no-advertise": "65535:65282",
    "local-AS": "65535:65283", "no-peer": "65535:65284",
}
"""The names FRR shows well-known communities by, as "ASN:VALUE"."""
_BGP_DEFAULTS = [" no bgp ebgp-requires-policy", " no bgp default ipv4-unicast", " bgp log-neighbor-changes",
                 " no bgp network import-check"]
"""Every generated `router bgp`: no policy needed on eBGP, families activated one by one, and
`network` statements announced whether or not a route to them exists."""


def check_config(path: Path, run: Run = host_run) -> None:
    """FRR's own parser (`vtysh --dryrun`), so a typo is reported before anything starts."""
    proc = run(["vtysh", "--dryrun", "-f", str(path)])
    if proc.returncode != 0:
        problems = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        raise ConfigCheckError(f"{path}: FRR refuses this config:\n  " + "\n  ".join(problems))


def last_notification(neighbor: dict[str, Any]) -> tuple[str, int, int] | None:
    """FRR's own record of the NOTIFICATION that last ended a session, from `show bgp neighbors
    ADDR json`: ("received" or "sent", code, subcode); None when the last reset was not one."""
    due, code = str(neighbor.get("lastResetDueTo", "")), str(neighbor.get("lastErrorCodeSubcode", ""))
    direction = {"BGP Notification send": "sent", "BGP Notification received": "received"}.get(due)
    if direction is None or len(code) != 4:
        return None
    return direction, int(code[:2], 16), int(code[2:], 16)


def logged_notifications(log: str, address: str) -> list[tuple[str, int, int]]:
    """Every NOTIFICATION bgpd logged for one neighbor, in order: ("sent" or "received", code,
    subcode). Unlike `lastResetDueTo`, which the next reset overwrites, the log keeps them all."""
    pattern = re.compile(rf"%NOTIFICATION: (sent to|received from) neighbor {re.escape(address)} (\d+)/(\d+)")
    return [("sent" if m[1] == "sent to" else "received", int(m[2]), int(m[3])) for m in pattern.finditer(log)]


class FrrNode(RouterNode):
    program = "bgpd"
    title = "FRR"

    def render(self, intent: dict[str, Any]) -> str:
        return render_intent(self.node.name, intent, profile(self.plan.profile).ce)

    # ---- lifecycle

    def start(self) -> None:
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        config = d / "frr.conf"
        config.write_text(self.config_text())
        if "config" in self.node.spec:
            try:
                check_config(config, self.run)
            except ConfigCheckError as exc:
                raise ConfigCheckError(str(exc).replace(str(config), str(self.node.spec["config"]))) from None
        for daemon in DAEMONS:
            (d / f"{daemon}.conf").write_text("")
        # The node's own frr user (a container's may have another uid than the host's).
        self.runtime.exec(self.key, ["chown", "-R", "frr:frr", str(d)])
        for daemon in DAEMONS:
            self._start_daemon(daemon)
        self._apply_config()

    def _start_daemon(self, daemon: str) -> None:
        d = self.workdir
        (d / f"{daemon}.vty").unlink(missing_ok=True)
        args = daemon_args(d, daemon, *(["-p", "179"] if daemon == "bgpd" else []))
        with open(d / f"{daemon}.out", "ab") as out:
            proc = self.runtime.popen(self.key, args, node=self.node.name, what=daemon, stdout=out,
                                      stderr=subprocess.STDOUT)
        self.wait_started(proc, (d / f"{daemon}.vty").exists, f"FRR {daemon}", lambda: self._daemon_log(daemon), 0.02)

    def _apply_config(self) -> None:
        self._wait_zebra_clients()
        # Line by line in one vtysh session, not `vtysh -f`: a file load is a "configuration
        # transaction" during which bgpd holds every peer back, then waits seconds more.
        lines = bgp_last((self.workdir / "frr.conf").read_text())
        loaded = self.vtysh_raw("configure terminal", *lines)
        if loaded.returncode != 0:
            raise ConfigCheckError(f"{self.node.name}: FRR refused its config while loading it: "
                                   f"{(loaded.stdout + loaded.stderr).strip()[-1500:]}")

    def kill_daemon(self) -> None:
        """bgpd dies (SIGKILL): its sessions drop at once, zebra withdraws its routes."""
        pid = self.pid("bgpd")
        if pid is not None and system.alive(pid):
            system.kill_pids([pid], timeout=2.0, term=False)

    def restart_daemon(self) -> None:
        """bgpd back, with the node's config, as watchfrr would bring it back."""
        pid = self.pid("bgpd")
        if pid is not None and system.alive(pid):
            return
        self._start_daemon("bgpd")
        self._apply_config()

    def _wait_zebra_clients(self) -> None:
        """Until every daemon has its zebra session: a neighbour configured before bgpd knows the
        default VRF fails to start and waits out a doubling retry timer (seconds at bring-up)."""
        wanted = {"bgp", "static", "bfd"}
        deadline = time.monotonic() + self.start_timeout
        while True:
            out = self.vtysh_raw("show zebra client summary").stdout
            if wanted <= {line.split()[0] for line in out.splitlines() if line.strip()}:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.node.name}: FRR daemons did not connect to zebra: {out.strip()}")
            time.sleep(0.02)

    def _daemon_log(self, daemon: str) -> str:
        texts = []
        for suffix in ("out", "log"):
            path = self.workdir / f"{daemon}.{suffix}"
            if path.exists():
                texts.append(path.read_text()[-800:])
        return "\n".join(texts).strip() or "no log"

    def healthy(self) -> str | None:
        for daemon in DAEMONS:
            pid = self.pid(daemon)
            if pid is None:
                return f"FRR {daemon} has no pid file"
            if not system.alive(pid):
                return f"FRR {daemon} exited: {self._daemon_log(daemon)}"
        return None

    def stop(self) -> None:
        system.kill_pids([p for d in reversed(DAEMONS) if (p := self.pid(d)) is not None])

    def command_args(self, args: list[str]) -> list[str]:
        """`bgplab exec NODE -- vtysh ...` talks to this node's FRR (its own vty sockets)."""
        if args[:1] == ["vtysh"] and "--vty_socket" not in args:
            return ["vtysh", "--vty_socket", str(self.workdir), *args[1:]]
        return args

    # ---- queries

    def vtysh_raw(self, *commands: str) -> subprocess.CompletedProcess[str]:
        return self.runtime.exec(self.key, vtysh_args(self.workdir, commands), check=False)

    def vtysh(self, *commands: str) -> str:
        proc = self.vtysh_raw(*commands)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.node.name}: vtysh {' / '.join(commands)}: {(proc.stdout + proc.stderr).strip()}")
        return proc.stdout

    def sessions(self) -> list[dict[str, Any]]:
        return parse_sessions(self.node.name, self.vtysh("show bgp neighbors json"))

    def routes(self, family: str = "ipv4", **options: Any) -> list[dict[str, Any]]:
        check_family(family)
        return parse_routes(self.vtysh(f"show bgp {family} unicast json detail"), family)


# ---- the daemons' command lines and CLI


def daemon_args(workdir: Path, daemon: str, *options: str, zserv: bool = True, log: bool = True) -> list[str]:
    """One FRR daemon of a private instance: its config, pid file and vty socket in workdir (no vty
    TCP port), zebra's socket there too (unless `zserv` is off: bgpd alone, `-Z`), its log there
    (unless `log` is off: bfdd logs through its config, where timestamp precision applies)."""
    d = workdir
    args = [str(LIBDIR / daemon), "-f", str(d / f"{daemon}.conf"), "-i", str(d / f"{daemon}.pid"),
            "--vty_socket", str(d), "-P", "0"]
    if zserv:
        args += ["-z", str(d / "zserv.api")]
    if log:
        args += ["--log", f"file:{d / daemon}.log", "--log-level", "info"]
    if daemon == "bfdd":
        args += ["--bfdctl", str(d / "bfdd.sock")]
    return [*args, *options]


def vtysh_args(workdir: Path, commands: Iterable[str], daemon: str | None = None) -> list[str]:
    """vtysh at a private instance, the commands in one session (configuration context carries
    over), all daemons or just `daemon`."""
    args = ["vtysh", "--vty_socket", str(workdir), *(["-d", daemon] if daemon else [])]
    return args + [a for command in commands for a in ("-c", command)]


def vty_query(workdir: Path, daemon: str, command: str, timeout: float = 10.0) -> str:
    """One show command straight over the daemon's vty socket, as vtysh speaks to it (the
    command NUL-terminated; the answer ends in three NULs and a status byte): no vtysh process
    per question, which under a poll every few ms costs the daemon's host more than the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(workdir / f"{daemon}.vty"))
        sock.sendall(command.encode() + b"\0")
        answer = bytearray()
        while len(answer) < 4 or answer[-4:-1] != b"\0\0\0":
            data = sock.recv(1 << 16)
            if not data:
                raise RuntimeError(f"{daemon} closed its vty before answering {command!r}")
            answer += data
    if answer[-1] != 0:
        raise RuntimeError(f"{daemon} refused {command!r}: {answer[:-4].decode(errors='replace')}")
    return answer[:-4].decode()


# ---- parsing FRR's JSON and logs


def parse_sessions(node: str, text: str) -> list[dict[str, Any]]:
    """`show bgp neighbors json` as the node's sessions (any FRR: ours, or a user's image's)."""
    data = json.loads(text) if text.strip() else {}
    return [{"node": node, **session_row(address, info)} for address, info in sorted(data.items())]


def parse_routes(text: str, family: str) -> list[dict[str, Any]]:
    """`show bgp FAMILY unicast json detail` as routes."""
    data = json.loads(text) if text.strip() else {}
    return [path_row(prefix, path, family) for prefix, entries in sorted(data.get("routes", {}).items())
            for path in entries if "nexthops" in path]


def session_row(address: str, info: dict[str, Any]) -> dict[str, Any]:
    """One neighbour of `show bgp neighbors json` as a session (all but `node`)."""
    families = info.get("addressFamilyInfo", {}).values()
    up_ms = info.get("bgpTimerUpMsec")
    state = str(info.get("bgpState", "idle")).lower()
    bfd = info.get("peerBfdInfo", {}).get("status")
    return {
        "peering": None,
        "neighbor": address,
        "role": "ibgp" if info.get("remoteAs") == info.get("localAs") else "ebgp",
        "local_as": info.get("localAs"),
        "remote_as": info.get("remoteAs"),
        "state": state if state in STATES else "idle",  # Clearing, Deleted: on their way to idle
        "uptime": round(up_ms / 1000, 3) if state == "established" and up_ms is not None else None,
        "received": sum(int(f.get("acceptedPrefixCounter", 0)) for f in families),
        "accepted": sum(int(f.get("acceptedPrefixCounter", 0)) for f in families),
        "advertised": sum(int(f.get("sentPrefixCounter", 0)) for f in families),
        "bfd": str(bfd).lower() if bfd else None,
        "flaps": int(info.get("connectionsDropped", 0)),
    }


def path_row(prefix: str, path: dict[str, Any], family: str) -> dict[str, Any]:
    """One path of `show bgp FAMILY unicast json detail` as a route; communities as FRR names them."""
    hops = [h["ip"] for h in path["nexthops"] if h.get("scope") != "link-local"]
    segments = path.get("aspath", {}).get("segments", [])
    return {
        "network": prefix,
        "next_hop": hops[0] if hops else "",
        "path": " ".join(str(a) for seg in segments for a in seg["list"]),
        "origin": str(path.get("origin", "")).lower(),
        "med": path.get("metric"),
        "local_pref": path.get("locPrf"),
        "communities": path.get("community", {}).get("string", "").split(),
        "large_communities": path.get("largeCommunity", {}).get("list", []),
        "family": f"{family}-unicast",
        "source": path.get("peer", {}).get("peerId", "local"),
        "best": bool(path.get("bestpath", {}).get("overall")),
    }


def bfd_log_changes(log: str) -> list[tuple[float, str, str, str]]:
    """bfdd's logged state changes: (UNIX time, peer, "old -> new", reason), in log order.

    bfdd stamps its log with local wall-clock time to the microsecond (`log timestamp precision
    6`, as `render_bfdd` writes it); measurements compare these with `time.time()` of the host.
    """
    pattern = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+) BFD: .*state-change: "
                         r"\[mhop:\S+ peer:(\S+) .*?\] (\S+ -> \S+)(?: reason:(\S+))?")
    changes = []
    for line in log.splitlines():
        m = pattern.match(line)
        if m:
            stamp = datetime.strptime(m[1], "%Y/%m/%d %H:%M:%S.%f").timestamp()
            changes.append((stamp, canonical_address(m[2]), m[3], m[4] or ""))
    return changes


def bgp_last(text: str) -> list[str]:
    """The config's lines with every `router bgp` block moved to the end.

    Applied line by line, a neighbour's route-map or prefix-list that is defined further down
    (as `show running-config` prints them) would not exist yet when the neighbour is configured,
    and bgpd then filters everything out and does not look again; FRR's own file load defers
    that, at the price of holding every peer back for seconds.
    """
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("!"):
            continue
        if not line[0].isspace() and (not blocks or blocks[-1][-1].strip() in ("exit", "end") or
                                      not blocks[-1][0].startswith(("router ", "interface ", "bfd", "route-map ",
                                                                    "vrf ", "segment-routing", "key chain"))):
            blocks.append([line])
        else:
            blocks[-1].append(line) if blocks else blocks.append([line])
    first = [b for b in blocks if not b[0].startswith("router bgp")]
    last = [b for b in blocks if b[0].startswith("router bgp")]
    return [line for block in first + last for line in block]


def render_intent(name: str, intent: dict[str, Any], timers: CeTimers | None) -> str:
    """An FRR config for a CE from the topology's intent: its MSEE sessions (BFD, MD5, prepend)
    and any user neighbours, the prefixes it announces (each with a blackhole route so that it
    is announced even before the more specific connected routes exist: on-prem traffic still
    follows those, by longest match).

    `bfd_timers: [tx_ms, rx_ms, multiplier]` in the intent replaces MSEE_BFD in the `msee` BFD
    profile (e.g. [100, 100, 3]: the MSEE offers 300 ms, and the slower side sets the rate, so a
    faster session needs both ends set)."""
    asn = int(intent["asn"])
    lines = ["frr defaults traditional", f"hostname {name}", "service integrated-vtysh-config", "!"]
    if any(n.get("bfd") for n in intent.get("neighbors", [])):
        bfd = intent.get("bfd_timers")
        if bfd is None:
            bfd = MSEE_BFD
        if not valid_bfd_timers(bfd):
            raise ValueError(f"{name}: intent bfd_timers {bfd!r}: expected [transmit ms, receive ms, "
                             "multiplier], intervals 10..60000, multiplier 2..255")
        lines += ["bfd", *_bfd_profile("msee", bfd), "exit", "!"]
    # One blackhole per announced prefix, except that a range (announce_range) gets one per
    # covering block: staticd takes ~30 ms a route, bgpd's `network` a fraction of a millisecond.
    covers = [str(c) for c in intent.get("announce_cover", [])]
    statics = [p for p in intent.get("announce", []) if not _covered(p, covers)]
    for prefix in [*statics, *covers]:
        lines.append(f"{'ipv6' if ':' in prefix else 'ip'} route {prefix} blackhole")
    # Route-maps before the neighbours that use them: an outbound route-map that does not exist
    # yet denies everything, and bgpd would not look again until something else changes.
    for count in sorted({int(n["prepend"]) for n in intent.get("neighbors", []) if n.get("prepend")}):
        lines += [f"route-map {_prepend_map(count)} permit 10", f" set as-path prepend {' '.join([str(asn)] * count)}",
                  "exit", "!"]
    lines += _prefix_lists(intent.get("neighbors", []))
    lines += [f"router bgp {asn}"]
    if intent.get("router_id"):
        lines.append(f" bgp router-id {intent['router_id']}")
    lines += _BGP_DEFAULTS
    for n in intent.get("neighbors", []):
        a = n["address"]
        lines.append(f" neighbor {a} remote-as {n['asn']}")
        if timers is not None:
            lines += [f" neighbor {a} timers {timers.keepalive} {timers.hold}",
                      f" neighbor {a} timers connect {timers.connect_retry}"]
        if n.get("md5"):
            lines.append(f" neighbor {a} password {n['md5']}")
        if n.get("local_address"):
            lines.append(f" neighbor {a} update-source {n['local_address']}")
        if n.get("bfd"):
            lines.append(f" neighbor {a} bfd profile msee")
    for family in ("ipv4", "ipv6"):
        members = [n for n in intent.get("neighbors", []) if family in n.get("families", ["ipv4"])]
        prefixes = [p for p in intent.get("announce", []) if (":" in p) == (family == "ipv6")]
        if not members and not prefixes:
            continue
        lines.append(f" address-family {family} unicast")
        for n in members:
            a = n["address"]
            lines += [f"  neighbor {a} activate", f"  neighbor {a} soft-reconfiguration inbound"]
            if int(n["asn"]) == asn:
                lines.append(f"  neighbor {a} next-hop-self")
            if n.get("prepend"):
                lines.append(f"  neighbor {a} route-map {_prepend_map(n['prepend'])} out")
            if n.get("role") == "msee":
                lines += [f"  neighbor {a} prefix-list {_export_list(n)} out",
                          f"  neighbor {a} prefix-list {_import_list(n)} in"]
        lines += [f"  network {p}" for p in prefixes]
        lines.append(" exit-address-family")
    lines += ["exit", "!"]
    return "\n".join(lines) + "\n"


def _covered(prefix: str, covers: list[str]) -> bool:
    network = ipaddress.ip_network(prefix)
    return any(network.version == c.version and network.subnet_of(c)  # type: ignore[arg-type]
               for c in map(ipaddress.ip_network, covers))


def _prepend_map(count: int) -> str:
    return f"PREPEND-{count}"


def _v6(neighbor: dict[str, Any]) -> bool:
    return "ipv6" in neighbor.get("families", ["ipv4"])


def _export_list(neighbor: dict[str, Any]) -> str:
    name = re.sub(r"[^0-9A-Za-z_-]", "-", f"TO-{neighbor['circuit']}-{neighbor['peering']}").upper()
    return name + ("-V6" if _v6(neighbor) else "")


def _import_list(neighbor: dict[str, Any]) -> str:
    return "FROM-AZURE-V6" if _v6(neighbor) else "FROM-AZURE"


def _prefix_lists(neighbors: list[dict[str, Any]]) -> list[str]:
    """The MSEE sessions' prefix lists (bgplab.lab.topology.intent): out, exactly what the peering
    is meant to carry, so nothing transits between peerings; in, anything but a default route,
    which would draw on-premises traffic bound for the internet into the circuit."""
    lines: dict[str, list[str]] = {}
    for n in (n for n in neighbors if n.get("role") == "msee"):
        ip = "ipv6" if _v6(n) else "ip"
        out = _export_list(n)
        bounds = [prefix_bounds(p) for p in n["export"]]
        entries = [f"permit {prefix}" + (f" le {high}" if high > low else "") for prefix, low, high in bounds] or [
            "deny any"]
        lines[out] = [f"{ip} prefix-list {out} seq {5 * i} {e}" for i, e in enumerate(entries, start=1)]
        default = "::/0" if _v6(n) else "0.0.0.0/0"
        lines[_import_list(n)] = [f"{ip} prefix-list {_import_list(n)} seq 5 deny {default}",
                                  f"{ip} prefix-list {_import_list(n)} seq 10 permit any"]
    return [line for block in lines.values() for line in [*block, "!"]]



def _bfd_profile(name: str, timers: tuple[int, int, int] | list[int]) -> list[str]:
    tx, rx, mult = timers
    return [f" profile {name}", f"  transmit-interval {tx}", f"  receive-interval {rx}",
            f"  detect-multiplier {mult}", " exit"]


# ---- the test harness's configs


def bfd_profile(address: str) -> str:
    """The bfdd profile of one neighbour's BFD session in a harness config."""
    return "bl-" + re.sub(r"[^0-9A-Za-z]", "-", canonical_address(address))


class Originated:
    """A harness daemon's routes as FRR config. Each route is a `network` statement with a
    route-map (MED, local-pref, communities, large communities, AS-path prepend) named after its
    content, so routes alike share one and a change never edits a route-map in place (FRR would
    apply that only after its route-map delay timer). A route's `next_hop` is set by the outbound
    route-map BL-OUT of every session, one entry (and prefix-list) per next hop: without zebra,
    bgpd cannot see that a third-party next hop is on the shared subnet and would otherwise
    replace it with its own address on eBGP. Remembers the entries it made, so that run-time
    changes add or remove only a prefix-list line."""

    def __init__(self) -> None:
        self._seqs: dict[tuple[str, str], int] = {}  # (family, next hop) -> BL-OUT entry
        self._of: dict[str, int] = {}  # prefix -> BL-OUT entry whose prefix-list holds it

    @staticmethod
    def route_map(route: Route) -> tuple[str, list[str]]:
        values = [("metric", route.med), ("local-preference", route.local_pref),
                  ("community", " ".join(route.communities)), ("large-community", " ".join(route.large_communities)),
                  ("as-path prepend", " ".join(map(str, route.as_path)))]
        sets = [f" set {what} {value}" for what, value in values if value is not None and value != ""]
        name = "BL-" + hashlib.sha1("".join(sets).encode()).hexdigest()[:12]
        return name, [f"route-map {name} permit 10", *sets, "exit"]

    def has_next_hop(self, prefix: str) -> bool:
        return prefix in self._of

    def set_next_hop(self, route: Route) -> list[str]:
        """Config putting route in the prefix-list of its next hop's BL-OUT entry (made if new)."""
        if route.next_hop is None:
            return []
        ip = "ip" if route.family == "ipv4" else "ipv6"
        key = (route.family, route.next_hop)
        lines = []
        if key not in self._seqs:
            seq = self._seqs[key] = len(self._seqs) + 1
            set_nh = "ip next-hop" if ip == "ip" else "ipv6 next-hop global"
            lines = [f"route-map BL-OUT permit {seq}", f" match {ip} address prefix-list BL-NH-{seq}",
                     f" set {set_nh} {route.next_hop}", "exit"]
        seq = self._of[route.prefix] = self._seqs[key]
        return [f"{ip} prefix-list BL-NH-{seq} permit {route.prefix}", *lines]

    def unset_next_hop(self, prefix: str) -> list[str]:
        seq = self._of.pop(prefix, None)
        if seq is None:
            return []
        ip = "ip" if family_of(prefix) == "ipv4" else "ipv6"
        return [f"no {ip} prefix-list BL-NH-{seq} permit {prefix}"]

    def render(self, hostname: str, asn: int, router_id: str, neighbors: list[Neighbor],
               routes: Iterable[Route]) -> str:
        """bgpd's whole config, starting the next-hop entries afresh."""
        self._seqs.clear()
        self._of.clear()
        routes = list(routes)
        lines = ["frr defaults traditional", f"hostname {hostname}", "!"]
        route_maps: dict[str, list[str]] = {}
        for route in routes:
            name, block = self.route_map(route)
            route_maps[name] = block
            lines += self.set_next_hop(route)
        for block in route_maps.values():
            lines += block
        lines += ["route-map BL-OUT permit 65535", "exit",
                  f"router bgp {asn}", f" bgp router-id {router_id}", *_BGP_DEFAULTS, " bgp graceful-restart-disable"]
        for n in neighbors:
            a = n.address
            lines += [f" neighbor {a} remote-as {n.asn}", f" neighbor {a} timers {n.keepalive} {n.hold_time}",
                      f" neighbor {a} timers connect 1", f" neighbor {a} advertisement-interval 0"]
            if n.port != 179:
                lines.append(f" neighbor {a} port {n.port}")
            if n.passive:
                lines.append(f" neighbor {a} passive")
            if n.md5:
                lines.append(f" neighbor {a} password {n.md5}")
            if n.ttl_security:
                lines.append(f" neighbor {a} ttl-security hops 1")
            if n.bfd is not None:
                lines.append(f" neighbor {a} bfd profile {bfd_profile(a)}")
        for family in FAMILIES:
            lines.append(f" address-family {family} unicast")
            for n in neighbors:
                if family in n.families:
                    lines += [f"  neighbor {n.address} activate", f"  neighbor {n.address} route-map BL-OUT out"]
            lines += [f"  network {r.prefix} route-map {self.route_map(r)[0]}" for r in routes if r.family == family]
            lines.append(" exit-address-family")
        return "\n".join([*lines, "exit", ""])


def render_bfdd(workdir: Path, neighbors: list[Neighbor]) -> str:
    """bfdd's config beside a harness bgpd: a profile per neighbour with BFD, and its session
    changes logged to the microsecond (for `bfd_log_changes`)."""
    lines = ["log timestamp precision 6", f"log file {workdir / 'bfdd.log'} debugging", "debug bfd peer", "!", "bfd"]
    for n in neighbors:
        if n.bfd is not None:
            lines += _bfd_profile(bfd_profile(n.address), n.bfd)
    return "\n".join([*lines, "exit", ""])


register(Kind(KIND, FrrNode, start_rank=0, router=True, image="bgplab/frr:latest"))
