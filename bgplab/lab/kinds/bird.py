"""BIRD 2 as a lab router: one `bird` in the node's namespace, writing its kernel FIB.

Each node's BIRD is a private instance: its working directory in the lab's state holds the
config, the pid file, the control socket (`bird.ctl`, which `birdc -s` talks to) and the log,
so any number of nodes, and a system BIRD, run side by side. The config BIRD runs is a short
preamble of ours (log file, state-change tracing, protocol time format) that includes the
node's config: the user's own file (copied, and checked first with `bird -p`, so an error names
the user's file and line) or one generated from the topology's intent by `render_intent`.

A generated config programs the kernel like FRR's does: a kernel protocol per family exports
every route BIRD selects (BGP routes, and the blackhole routes of the announced prefixes) but the
connected ones; the device protocol tracks interfaces; the direct protocol gives BIRD the
connected subnets (for the recursive next hops of iBGP routes; the kernel has them already, so
they are the one thing not exported to it); and a BFD protocol runs the MSEE's 300 ms x 3 when
any neighbour asks for BFD (single hop: an iBGP neighbour with BFD is taken as directly
connected, as FRR does). So packets flow through a BIRD CE exactly as through an FRR one.

`flaps` counts the sessions that went down after being up, from the state changes traced in
BIRD's log; BIRD keeps no such counter itself.

The test harness's BIRD (`bgplab.testing.bird`) runs a config of `render_peers`, from its
`Neighbor`/`Route` model, and reads it with the same parsers.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from bgplab.expressroute.profile import CeTimers, profile
from bgplab.lab.kinds import ConfigCheckError, Kind, register, router
from bgplab.lab.kinds.router import (
    Neighbor,
    Route,
    RouterNode,
    Run,
    address_key,
    check_family,
    family_of,
    host_run,
)
from bgplab.lab.plan import LabPlan, Node
from bgplab.lab.runtime import Runtime

KIND = "bird"
_BFD_STATES = {"up": "up", "down": "down", "init": "init", "admindown": "admindown"}
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def _retries(seconds: int) -> str:
    """A session that failed is retried after `seconds`, not BIRD's default of minutes."""
    return f"  connect delay time {seconds}; connect retry time {seconds}; error wait time {seconds}, 5;"


def check_config(path: Path, run: Run = host_run, shown: Path | None = None) -> None:
    """BIRD's own parser (`bird -p`), so a typo is reported, with its line, before anything
    starts; the error names `shown` (default: path)."""
    proc = run(["bird", "-p", "-c", str(path)])
    if proc.returncode != 0:
        problems = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        message = f"{path}: BIRD refuses this config:\n  " + "\n  ".join(problems)
        raise ConfigCheckError(message.replace(str(path), str(shown)) if shown else message)


def protocol_name(address: str) -> str:
    """The BGP protocol of a neighbour in a generated config: `bgp_` and the address as a symbol."""
    return "bgp_" + re.sub(r"[^0-9A-Za-z]", "_", str(ipaddress.ip_address(address)))


class BirdNode(RouterNode):
    program = "bird"
    title = "BIRD"

    def __init__(self, plan: LabPlan, node: Node, runtime: Runtime, workdir: Path) -> None:
        super().__init__(plan, node, runtime, workdir)
        self.socket = workdir / "bird.ctl"

    def render(self, intent: dict[str, Any]) -> str:
        return render_intent(self.node.name, intent, profile(self.plan.profile).ce)

    def preamble(self, included: Path) -> str:
        return "\n".join([
            "# bgplab's preamble: its own log and time format, then the node's config",
            f'log "{self.log}" all;',
            "debug protocols { states };",
            "timeformat protocol iso long ms;",
            f'include "{included}";',
            "",
        ])

    # ---- lifecycle

    def start(self) -> None:
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        user = self.user_config()
        if user:
            check_config(user[0], self.run, user[1])  # the user's own file: its name and line in any error
        node_conf = d / "node.conf"
        node_conf.write_text(self.config_text())
        config = d / "bird.conf"
        config.write_text(self.preamble(node_conf))
        check_config(config, self.run)
        with open(d / "bird.out", "wb") as out:
            proc = self.runtime.popen(
                self.key, ["bird", "-f", "-c", str(config), "-s", str(self.socket), "-P", str(d / "bird.pid")],
                node=self.node.name, what="bird", stdout=out, stderr=subprocess.STDOUT, cwd=d)
        self.wait_started(proc, lambda: "Daemon is up and running" in self.birdc_raw("show", "status").stdout, "BIRD")

    def log_files(self) -> list[Path]:
        return [self.workdir / "bird.out", self.log]

    # ---- queries

    def birdc_raw(self, *command: str) -> subprocess.CompletedProcess[str]:
        # The control socket is a file in the node's directory; the node's own birdc speaks to it.
        return self.run(["birdc", "-s", str(self.socket), *command])

    def sessions(self) -> list[dict[str, Any]]:
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        return read_sessions(self.node.name, self.birdc_raw, log)

    def routes(self, family: str = "ipv4", **options: Any) -> list[dict[str, Any]]:
        return read_routes(self.node.name, self.birdc_raw, family)


# ---- what a BIRD says, through its birdc (this kind's, or a user's image's: kind linux, cli bird)

Birdc = Callable[..., "subprocess.CompletedProcess[str]"]
"""birdc with a command's words: its exit code and output."""


def read_sessions(node: str, birdc: Birdc, log: str = "") -> list[dict[str, Any]]:
    """The BGP sessions a BIRD reports (`show protocols all`), with BFD states and, from its log
    where the caller has it, flap counts."""
    bfd = parse_bfd_sessions(birdc("show", "bfd", "sessions").stdout)  # none without a BFD protocol
    rows = [{"node": node, **session_row(proto, bfd, count_flaps(log))}
            for proto in parse_protocols(_checked(node, birdc, "show", "protocols", "all"))
            if proto["proto"] == "BGP" and "neighbor" in proto]
    return sorted(rows, key=lambda r: address_key(r["neighbor"]))


def read_routes(node: str, birdc: Birdc, family: str) -> list[dict[str, Any]]:
    """The BGP and static paths a BIRD holds for a family (`show route all`)."""
    check_family(family)
    bgp = [p for p in parse_protocols(_checked(node, birdc, "show", "protocols", "all")) if p["proto"] == "BGP"
           and "neighbor" in p]
    peers = {p["name"]: p["neighbor"] for p in bgp}
    ibgp = {p["name"] for p in bgp if p.get("local_as") == p.get("remote_as")}
    net_type = "NET_IP4" if family == "ipv4" else "NET_IP6"
    text = _checked(node, birdc, "show", "route", "all", "where",
                    f"(source = RTS_BGP || source = RTS_STATIC) && net.type = {net_type}")
    return sorted(route_rows(text, peers, ibgp), key=lambda r: (ipaddress.ip_network(r["network"]), not r["best"]))


def _checked(node: str, birdc: Birdc, *command: str) -> str:
    """birdc's output; a non-zero exit is an error with what it said."""
    out = birdc(*command)
    if out.returncode != 0:
        raise RuntimeError(f"{node}: birdc {' '.join(command)}: {(out.stdout + out.stderr).strip()}")
    return str(out.stdout)


# ---- parsing birdc's text (BIRD 2 has no JSON output)


def parse_protocols(text: str) -> list[dict[str, Any]]:
    """`show protocols all`: per protocol its name, type, state, since, and for BGP the neighbour,
    the ASNs, the BGP state and the route counts summed over its channels."""
    protocols: list[dict[str, Any]] = []
    header = re.compile(r"^(\S+)\s+(\S+)\s+(\S+)\s+(up|down|start|stop|flush)\s+(\S+(?: \d\d:\d\d:\d\d\S*)?)")
    for line in text.splitlines():
        match = header.match(line)
        if match and match.group(1) != "Name":
            protocols.append({"name": match.group(1), "proto": match.group(2), "state": match.group(4),
                              "since": match.group(5), "imported": 0, "filtered": 0, "exported": 0})
            continue
        if not protocols or not line.startswith(" "):
            continue
        current = protocols[-1]
        name, _, value = line.strip().partition(":")
        value = value.strip()
        if name == "BGP state":
            current["bgp_state"] = value
        elif name == "Neighbor address":
            current["neighbor"] = str(ipaddress.ip_address(value.split("%")[0]))
        elif name == "Neighbor AS":
            current["remote_as"] = int(value)
        elif name == "Local AS":
            current["local_as"] = int(value)
        elif name == "Routes":
            for count, what in re.findall(r"(\d+) (imported|filtered|exported)", value):
                current[what] += int(count)
    return protocols


def parse_bfd_sessions(text: str) -> dict[str, str]:
    """`show bfd sessions`: the state of each BFD session, by neighbour address."""
    states = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            try:
                address = str(ipaddress.ip_address(fields[0]))
            except ValueError:
                continue
            state = _BFD_STATES.get(fields[2].lower())
            if state:
                states[address] = state
    return states


def parse_routes(text: str) -> Iterator[tuple[str, str, bool, dict[str, str]]]:
    """`show route all`: (prefix, protocol, best, attributes) per path.

    A path's header names the prefix at column 0, or is indented when it is another path of the
    prefix above; attribute lines are tab-indented `Name: value`.
    """
    blocks: list[tuple[str, str, bool, dict[str, str]]] = []
    prefix = ""
    for line in text.splitlines():
        header = re.match(r"^(\S+)?\s+\w+ \[(\S+) [^\]]*\]( \*)?", line)
        if header and not line.startswith("\t"):
            if header.group(1) and "/" not in header.group(1):
                continue
            prefix = header.group(1) or prefix
            blocks.append((str(ipaddress.ip_network(prefix)), header.group(2), bool(header.group(3)), {}))
        elif blocks and line.startswith("\t") and ": " in line:
            name, _, value = line.strip().partition(": ")
            blocks[-1][3][name] = value
    yield from blocks


def session_row(proto: dict[str, Any], bfd: Mapping[str, str] | None = None,
                flaps: Mapping[str, int] | None = None) -> dict[str, Any]:
    """One BGP protocol of `parse_protocols` as a session (all but `node`), with the BFD states
    and flap counts of the node's sessions where the caller has them."""
    state = proto.get("bgp_state", "").lower()
    state = state if state in router.STATES else "idle"
    return {
        "peering": None,
        "neighbor": proto.get("neighbor"),
        "role": "ibgp" if proto.get("local_as") == proto.get("remote_as") else "ebgp",
        "local_as": proto.get("local_as"),
        "remote_as": proto.get("remote_as"),
        "state": state,
        "uptime": _uptime(proto["since"]) if state == "established" else None,
        "received": proto["imported"] + proto["filtered"],
        "accepted": proto["imported"],
        "advertised": proto["exported"],
        "bfd": (bfd or {}).get(proto.get("neighbor", "")),
        "flaps": (flaps or {}).get(proto["name"], 0),
    }


def route_rows(text: str, peers: Mapping[str, str], ibgp: Iterable[str]) -> list[dict[str, Any]]:
    """The paths of `show route all` as routes: `peers` maps the BGP protocols to their neighbour
    addresses (a path of any other protocol is the node's own), `ibgp` names the iBGP ones."""
    ibgp = set(ibgp)
    rows = []
    for prefix, proto, best, attrs in parse_routes(text):
        from_bgp = proto in peers
        hop = attrs.get("BGP.next_hop", "").split()
        rows.append({
            "network": prefix,
            "next_hop": hop[0] if hop and from_bgp else "",
            "path": " ".join(re.findall(r"\d+", attrs.get("BGP.as_path", ""))),
            "origin": attrs.get("BGP.origin", "IGP").lower(),
            "med": int(attrs["BGP.med"]) if "BGP.med" in attrs else None,
            # BIRD gives eBGP routes a local preference on import; it is only a BGP attribute on iBGP.
            "local_pref": int(attrs["BGP.local_pref"]) if "BGP.local_pref" in attrs and proto in ibgp else None,
            "communities": [f"{a}:{b}" for a, b in re.findall(r"\((\d+),\s*(\d+)\)",
                                                              attrs.get("BGP.community", ""))],
            "large_communities": [f"{a}:{b}:{c}" for a, b, c in re.findall(
                r"\((\d+),\s*(\d+),\s*(\d+)\)", attrs.get("BGP.large_community", ""))],
            "family": f"{family_of(prefix)}-unicast",
            "source": peers[proto] if from_bgp else "local",
            "best": best,
        })
    return rows


def count_flaps(log: str) -> dict[str, int]:
    """Per protocol, how often it left state `up`, from the `State changed to ...` lines of BIRD's log."""
    flaps: dict[str, int] = {}
    last: dict[str, str] = {}
    for name, state in re.findall(r"\b(\S+): State changed to (\w+)", log):
        if last.get(name) == "up" and state != "up":
            flaps[name] = flaps.get(name, 0) + 1
        last[name] = state
    return flaps


def _uptime(since: str) -> float | None:
    try:
        when = datetime.strptime(since[:19], _TIME_FORMAT)
    except ValueError:
        return None
    return round(max(0.0, (datetime.now() - when).total_seconds()), 3)


# ---- generated configs


def _string(text: str) -> str:
    """A BIRD string: BIRD has no escapes, so one holds anything but a double quote or a line break."""
    return f'"{text}"'


def _check_md5(name: str, neighbors: list[dict[str, Any]]) -> None:
    for n in neighbors:
        if n.get("md5") and any(c in str(n["md5"]) for c in '"\n'):
            raise ConfigCheckError(f"{name}: the MD5 password toward {n['address']} has a double quote or a line "
                                   "break, which a BIRD config cannot hold; choose another")


def render_intent(name: str, intent: dict[str, Any], timers: CeTimers | None) -> str:
    """A BIRD config for a CE from the topology's intent: its MSEE sessions (BFD, MD5, prepend) and
    any user neighbours, the prefixes it announces (each a blackhole static route, so that it is
    announced even before the more specific connected routes exist: on-prem traffic still follows
    those, by longest match), and the kernel protocols that put what BIRD selects in the FIB."""
    asn = int(intent["asn"])
    neighbors = intent.get("neighbors", [])
    announce = intent.get("announce", [])
    _check_md5(name, neighbors)
    lines = [f"# BIRD config of {name}, generated by bgplab from its topology's intent", ""]
    if intent.get("router_id"):
        lines.append(f"router id {intent['router_id']};")
    lines += [
        "protocol device { scan time 10; }",
        "protocol direct { ipv4; ipv6; }",
        # Everything BIRD selects, but the connected routes: the kernel has those already.
        "protocol kernel kernel4 { ipv4 { import none; export where source != RTS_DEVICE; }; }",
        "protocol kernel kernel6 { ipv6 { import none; export where source != RTS_DEVICE; }; }",
    ]
    for family in router.FAMILIES:
        lines += _static_protocol(f"announce{family[-1]}", family, announce)
    if any(n.get("bfd") for n in neighbors):
        tx, rx, mult = router.MSEE_BFD
        lines += ["protocol bfd {",
                  f'  interface "*" {{ min rx interval {rx} ms; min tx interval {tx} ms; multiplier {mult}; }};',
                  "}"]
    lines.append("")
    for n in neighbors:
        address = n["address"]
        proto = protocol_name(address)
        prepend = int(n.get("prepend") or 0)
        lines += [f"filter {proto}_out {{",
                  "  if !(source = RTS_STATIC || source = RTS_BGP) then reject;"]
        if n.get("role") == "msee":  # exactly what the peering is meant to carry (topology.intent)
            lines.append(f"  if !(net ~ [ {', '.join(n['export'])} ]) then reject;" if n["export"] else "  reject;")
        lines += ["  if source = RTS_STATIC then bgp_origin = ORIGIN_IGP;"]
        lines += [f"  bgp_path.prepend({asn});"] * prepend
        lines += ["  accept;", "}"]
        local = f"local {n['local_address']} as {asn}" if n.get("local_address") else f"local as {asn}"
        lines += [f"protocol bgp {proto} {{", f"  description {_string(str(n.get('role') or 'user'))};",
                  f"  {local};", f"  neighbor {address} as {int(n['asn'])};"]
        if timers is not None:
            lines += [f"  hold time {timers.hold}; keepalive time {timers.keepalive};", _retries(timers.connect_retry)]
        if n.get("md5"):
            lines.append(f"  password {_string(str(n['md5']))};")
        ibgp = int(n["asn"]) == asn
        if n.get("bfd"):
            if ibgp:  # BIRD takes iBGP as multihop; BFD here is single hop, to a directly connected peer
                lines.append("  direct;")
            lines.append("  bfd on;")
        for family in n.get("families", ["ipv4"]):
            # No default route from Azure: it would draw on-premises internet traffic into the circuit.
            default = "::/0" if family == "ipv6" else "0.0.0.0/0"
            options = [f"import where net != {default};" if n.get("role") == "msee" else "import all;",
                       f"export filter {proto}_out;"]
            if ibgp:
                options.append("next hop self;")
            lines.append(f"  {family} {{ {' '.join(options)} }};")
        lines += ["}", ""]
    return "\n".join(lines)



def _static_protocol(name: str, family: str, prefixes: Iterable[str]) -> list[str]:
    """A static protocol holding a blackhole route for each prefix of the family: what BIRD
    announces of its own."""
    routes = [f"  route {p} blackhole;" for p in prefixes if family_of(p) == family]
    return [f"protocol static {name} {{", f"  {family};", *routes, "}"]


# ---- the test harness's configs


def _export_actions(route: Route) -> list[str]:
    actions = []
    if route.med is not None:
        actions.append(f"bgp_med = {route.med};")
    if route.local_pref is not None:
        actions.append(f"bgp_local_pref = {route.local_pref};")
    actions += [f"bgp_community.add(({c.replace(':', ',')}));" for c in route.communities]
    actions += [f"bgp_large_community.add(({c.replace(':', ',')}));" for c in route.large_communities]
    actions += [f"bgp_path.prepend({asn});" for asn in reversed(route.as_path)]
    if route.next_hop is not None:
        actions.append(f"bgp_next_hop = {route.next_hop};")
    return actions


def render_peers(log: Path, router_id: str, asn: int, listen_port: int, protocols: Mapping[str, Neighbor],
                 routes: Iterable[Route]) -> str:
    """A harness BIRD: a BGP protocol per neighbour (by protocol name), the routes as blackhole
    statics whose BGP attributes each session's export filter sets (BIRD strips a MED on eBGP
    unless the export filter set it); `next_hop` holds only where it is a valid third-party next
    hop for the session (on the shared subnet), else BIRD sends its own address."""
    routes = list(routes)
    lines = [f"log {_string(str(log))} all;", f"router id {router_id};", "protocol device {}"]
    for family in router.FAMILIES:
        lines += _static_protocol(f"bl_static_{family}", family, [r.prefix for r in routes])
    lines.append("filter bl_export {")
    for route in routes:
        actions = " ".join(_export_actions(route))
        lines.append(f"  if source = RTS_STATIC && net = {route.prefix} then {{ {actions} }}")
    lines += ["  accept;", "}"]
    local = f"local as {asn}" if listen_port == 179 else f"local port {listen_port} as {asn}"
    for name, n in protocols.items():
        lines += [f"protocol bgp {name} {{", f"  {local};",
                  f"  neighbor {n.address} port {n.port} as {n.asn};",
                  f"  hold time {n.hold_time}; keepalive time {n.keepalive};", _retries(1),
                  "  graceful restart off; long lived graceful restart off;"]
        if n.passive:
            lines.append("  passive on;")
        if n.md5:
            lines.append(f"  password {_string(n.md5)};")
        if n.ttl_security:
            lines.append("  ttl security on;")
        lines += [f"  {f} {{ import all; export filter bl_export; }};" for f in n.families]
        lines.append("}")
    return "\n".join([*lines, ""])


register(Kind(KIND, BirdNode, start_rank=0, router=True, image="bgplab/bird:latest"))
