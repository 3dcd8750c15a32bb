"""FRR as a lab router: zebra, bgpd, staticd and bfdd in the node's namespace, writing its FIB.

Each node's FRR is a private instance: its own working directory in the lab's state (configs,
pid files, vty sockets, zserv socket, logs), so any number of nodes, and a system FRR, run side
by side. The daemons start with empty configs and the node's integrated config (the user's own
file, checked first with `vtysh --dryrun`, or one generated from the topology's intent) is then
applied through vtysh, which sends each line to the daemon that owns it, as `frr-reload` would.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bgplab.lab import system
from bgplab.lab.kinds import ConfigCheckError, Kind, register
from bgplab.lab.kinds.router import RouterNode

KIND = "frr"
LIBDIR = Path("/usr/lib/frr")
DAEMONS = ("zebra", "bgpd", "staticd", "bfdd")
MSEE_BFD = (300, 300, 3)
_STATES = {"established": "established", "idle": "idle", "connect": "connect", "active": "active",
           "opensent": "opensent", "openconfirm": "openconfirm"}


def check_config(path: Path) -> None:
    """FRR's own parser (`vtysh --dryrun`), so a typo is reported before anything starts."""
    proc = system.run(["vtysh", "--dryrun", "-f", str(path)], check=False)
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
        return render_intent(self.node.name, intent, self.plan.profile)

    # ---- lifecycle

    def start(self) -> None:
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        config = d / "frr.conf"
        config.write_text(self.config_text())
        if "config" in self.node.spec:
            try:
                check_config(config)
            except ConfigCheckError as exc:
                raise ConfigCheckError(str(exc).replace(str(config), str(self.node.spec["config"]))) from None
        for daemon in DAEMONS:
            (d / f"{daemon}.conf").write_text("")
        shutil.chown(d, "frr", "frr")
        for path in d.iterdir():
            shutil.chown(path, "frr", "frr")
        for daemon in DAEMONS:
            self._start_daemon(daemon)
        self._apply_config()

    def _start_daemon(self, daemon: str) -> None:
        d = self.workdir
        (d / f"{daemon}.vty").unlink(missing_ok=True)
        args = [str(LIBDIR / daemon), "-f", str(d / f"{daemon}.conf"), "-i", str(d / f"{daemon}.pid"),
                "--vty_socket", str(d), "-z", str(d / "zserv.api"), "-P", "0",
                "--log", f"file:{d / daemon}.log", "--log-level", "info"]
        if daemon == "bgpd":
            args += ["-p", "179"]
        if daemon == "bfdd":
            args += ["--bfdctl", str(d / "bfdd.sock")]
        with open(d / f"{daemon}.out", "ab") as out:
            proc = self.runtime.popen(self.key, args, node=self.node.name, what=daemon, stdout=out,
                                      stderr=subprocess.STDOUT)
        self.wait_started(proc, (d / f"{daemon}.vty").exists, f"FRR {daemon}", lambda: self._daemon_log(daemon), 0.02)

    def _apply_config(self) -> None:
        self._wait_zebra_clients()
        # Line by line in one vtysh session, not `vtysh -f`: a file load is a "configuration
        # transaction" during which bgpd holds every peer back, then waits seconds more.
        lines = bgp_last((self.workdir / "frr.conf").read_text())
        loaded = self.vtysh_raw([a for line in ["configure terminal", *lines] for a in ("-c", line)])
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
            out = self.vtysh_raw(["-c", "show zebra client summary"]).stdout
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

    def vtysh_raw(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return self.runtime.exec(self.key, ["vtysh", "--vty_socket", str(self.workdir), *args], check=False)

    def vtysh(self, *commands: str) -> str:
        args = [a for c in commands for a in ("-c", c)]
        proc = self.vtysh_raw(args)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.node.name}: vtysh {' / '.join(commands)}: {(proc.stdout + proc.stderr).strip()}")
        return proc.stdout

    def _json(self, command: str) -> Any:
        text = self.vtysh(command)
        return json.loads(text) if text.strip() else {}

    def sessions(self) -> list[dict[str, Any]]:
        rows = []
        for address, info in sorted(self._json("show bgp neighbors json").items()):
            families = info.get("addressFamilyInfo", {}).values()
            up_ms = info.get("bgpTimerUpMsec")
            state = str(info.get("bgpState", "idle")).lower()
            bfd = info.get("peerBfdInfo", {}).get("status")
            rows.append({
                "node": self.node.name,
                "peering": None,
                "neighbor": address,
                "role": "ibgp" if info.get("remoteAs") == info.get("localAs") else "ebgp",
                "local_as": info.get("localAs"),
                "remote_as": info.get("remoteAs"),
                "state": _STATES.get(state, "idle"),
                "uptime": round(up_ms / 1000, 3) if state == "established" and up_ms is not None else None,
                "received": sum(int(f.get("acceptedPrefixCounter", 0)) for f in families),
                "accepted": sum(int(f.get("acceptedPrefixCounter", 0)) for f in families),
                "advertised": sum(int(f.get("sentPrefixCounter", 0)) for f in families),
                "bfd": str(bfd).lower() if bfd else None,
                "flaps": int(info.get("connectionsDropped", 0)),
            })
        return rows

    def routes(self, family: str = "ipv4", **options: Any) -> list[dict[str, Any]]:
        if family not in ("ipv4", "ipv6"):
            raise ValueError(f"family {family!r}: expected ipv4 or ipv6")
        data = self._json(f"show bgp {family} unicast json detail")
        rows = []
        for prefix, entries in sorted(data.get("routes", {}).items()):
            for path in entries:
                if "nexthops" not in path:
                    continue
                hops = [h["ip"] for h in path["nexthops"] if h.get("scope") != "link-local"]
                segments = path.get("aspath", {}).get("segments", [])
                rows.append({
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
                })
        return rows


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


def render_intent(name: str, intent: dict[str, Any], profile: str) -> str:
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
        timers = intent.get("bfd_timers")
        if timers is None:
            tx, rx, mult = MSEE_BFD
        elif (isinstance(timers, (list, tuple)) and len(timers) == 3
              and all(isinstance(v, int) and not isinstance(v, bool) for v in timers)
              and 10 <= timers[0] <= 60000 and 10 <= timers[1] <= 60000 and 2 <= timers[2] <= 255):
            tx, rx, mult = timers
        else:  # the ranges FRR's bfdd accepts
            raise ValueError(f"{name}: intent bfd_timers {timers!r}: expected [transmit ms, receive ms, "
                             "multiplier], intervals 10..60000, multiplier 2..255")
        lines += ["bfd", " profile msee", f"  transmit-interval {tx}", f"  receive-interval {rx}",
                  f"  detect-multiplier {mult}", " exit", "exit", "!"]
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
    lines += [f"router bgp {asn}"]
    if intent.get("router_id"):
        lines.append(f" bgp router-id {intent['router_id']}")
    lines += [" no bgp ebgp-requires-policy", " no bgp default ipv4-unicast", " bgp log-neighbor-changes",
              " no bgp network import-check"]
    fast = profile == "fast"
    for n in intent.get("neighbors", []):
        a = n["address"]
        lines.append(f" neighbor {a} remote-as {n['asn']}")
        if fast:
            lines += [f" neighbor {a} timers 3 9", f" neighbor {a} timers connect 1"]
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


register(Kind(KIND, FrrNode, start_rank=0, router=True))
