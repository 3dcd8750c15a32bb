"""ExaBGP as a lab router: one `exabgp server` in the node's namespace. Control plane only.

ExaBGP has no RIB and no FIB: it announces what its config (its static routes) says and reports
what it receives, but never installs a route in the kernel, never selects among received paths
and never passes a route on to another neighbour. A lab with an ExaBGP CE has real sessions and
real routes, but packets are not forwarded along what it learned: use FRR or BIRD where traffic
must flow. For the same reason next-hop-self toward iBGP neighbours holds by construction (ExaBGP
only announces its own routes, with its own address as next hop).

Each node's ExaBGP is a private instance: its working directory in the lab's state holds the
config, an environment file (root without dropping privileges, no CLI pipes, no global listening
socket: a system ExaBGP or another node is never touched), the pid file and the log. ExaBGP has
no query interface of its own here, so the config it runs is the node's config (the user's own
file, checked first with `exabgp validate`, so an error names the user's file and line; or one
generated from the topology's intent by `render_intent`) with one API process added: a tiny
helper that appends every JSON message ExaBGP sends it (neighbour state changes, updates
received and sent) to `messages.jsonl`, which `sessions()` and `routes()` replay.

ExaBGP reports only "connected" (shown as opensent), "up" (established) and "down" (idle),
never connect/active; it says "connected" for an instant even to a connection that was refused
(its poll takes POLLOUT before SO_ERROR, and reading SO_ERROR clears the ECONNREFUSED, so its
next look finds no error), followed by "down" when the OPEN cannot be sent. It retries a failed
connection with its own backoff (1 s, growing to 60 s); there is no setting for it. The keepalive
is always a third of the hold time.

The test harness's ExaBGP (`bgplab.testing.exabgp`) runs a config of `render_peers`, from its
`Neighbor`/`Route` model, with an API helper that also forwards run-time commands to ExaBGP;
its message log is read with the same `MessageLog`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bgplab import programs
from bgplab.expressroute.profile import CeTimers, profile
from bgplab.lab.kinds import ConfigCheckError, Kind, register, router
from bgplab.lab.kinds.router import (
    Neighbor,
    Route,
    RouterNode,
    Run,
    address_key,
    canonical_address,
    check_family,
    host_run,
)
from bgplab.lab.plan import LabPlan, Node
from bgplab.lab.runtime import Runtime

KIND = "exabgp"
API_PROCESS = "bgplab-api"
_STATES = {"connected": "opensent", "up": "established", "down": "idle"}
_HELPER = """\
import sys
with open(sys.argv[1], "a") as out:
    for line in sys.stdin:
        out.write(line)
        out.flush()
"""
_COMMANDS_HELPER = """\
import os, sys, threading
fifo, received, ready = sys.argv[1:4]
def record():
    with open(received, "a") as out:
        for line in sys.stdin:
            out.write(line)
            out.flush()
    os._exit(0)
threading.Thread(target=record, daemon=True).start()
commands = os.fdopen(os.open(fifo, os.O_RDWR))  # read-write: never sees EOF between writers
open(ready, "w").close()
for line in commands:
    sys.stdout.write(line)
    sys.stdout.flush()
"""
"""The harness's API helper: it records every JSON message ExaBGP sends it, and forwards the
commands written to a FIFO to ExaBGP. It exits with ExaBGP (its stdin closes)."""
ENV = """\
[exabgp.daemon]
user = 'root'
drop = false
daemonize = false
pid = ''

[exabgp.api]
cli = false
ack = false

[exabgp.tcp]
bind = ''

[exabgp.log]
destination = 'stdout'
"""
"""Root without dropping privileges, in the foreground, no CLI pipes, no global listening socket
(a system ExaBGP or another node is never touched), logs to stdout."""
_NEIGHBOR = re.compile(r"^\s*neighbor\s+(\S+)\s*\{")


def command(workdir: Path, config: Path, exabgp: str | None = None) -> list[str]:
    """ExaBGP (`exabgp`: how the node names it; default the host's) on a config, with the
    environment `write_env` left in workdir."""
    return [exabgp or programs.program("exabgp"), "--env-file", str(workdir / "exabgp.env"), "server", str(config)]


def write_env(workdir: Path) -> None:
    (workdir / "exabgp.env").write_text(ENV)


def check_config(path: Path, run: Run = host_run, shown: Path | None = None, exabgp: str | None = None) -> None:
    """ExaBGP's own parser (`exabgp validate`); the error names `shown` (default: path) and the line.

    ExaBGP numbers lines without the comments and blank ones and echoes the line it refused as
    tokens; the line number reported is the one of the file, found from those tokens."""
    proc = run([exabgp or programs.program("exabgp"), "validate", str(path)], timeout=60)
    if proc.returncode == 0:
        return
    problems = []
    for line in (proc.stdout + proc.stderr).splitlines():
        text = re.sub(r"^(configuration|error:)\s+", "", line.strip()).strip()
        if text and text != "configuration" and text not in problems and not text.startswith("loading "):
            problems.append(text)
    message = "\n  ".join(_file_line(path, p) for p in problems)
    if shown is not None:
        message = message.replace(str(path), str(shown))
    raise ConfigCheckError(f"{shown or path}: ExaBGP refuses this config:\n  {message}")


def _file_line(path: Path, problem: str) -> str:
    match = re.fullmatch(r"line (\d+): (.*)", problem)
    if not match:
        return problem
    wanted = re.sub(r"\s+", "", match[2])
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return problem
    for number, line in enumerate(lines, start=1):
        if re.sub(r"\s+", "", line.split("#", 1)[0]) == wanted:
            return f"line {number}: {line.strip()}"
    return problem


@dataclass
class _Feed:
    """What the message log said so far; read incrementally, so a query stays cheap."""

    offset: int = 0
    states: dict[str, str] = field(default_factory=dict)
    since: dict[str, float] = field(default_factory=dict)
    flaps: dict[str, int] = field(default_factory=dict)
    asns: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    received: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    sent: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


class ExabgpNode(RouterNode):
    program = "exabgp"
    title = "ExaBGP"
    start_timeout = 30.0

    def __init__(self, plan: LabPlan, node: Node, runtime: Runtime, workdir: Path) -> None:
        super().__init__(plan, node, runtime, workdir)
        self.messages = workdir / "messages.jsonl"
        self._feed = MessageLog(self.messages)

    # ---- config

    def intent(self) -> dict[str, Any]:
        """The node's intent, with the local address of each neighbour that has none filled in from
        the plan (ExaBGP listens on it): the node's address on the neighbour's subnet."""
        intent: dict[str, Any] = json.loads(json.dumps(dict(self.node.spec.get("intent", {}))))
        mine = [cidr for key in self.node.namespaces for _, cidr in self.plan.namespaces[key].addresses]
        for n in intent.get("neighbors", []):
            if not n.get("local_address"):
                local = address_facing(n["address"], mine)
                if local:
                    n["local_address"] = local
        return intent

    def render(self, intent: dict[str, Any]) -> str:
        return render_intent(self.node.name, intent, profile(self.plan.profile).ce)

    def with_api(self, text: str) -> str:
        """The config with our API process, and an API block in every top-level neighbour for it."""
        run = f"{self.runtime.program('python3')} {self.workdir / 'helper.py'} {self.messages}"
        api = ("  api {name} {{ processes [ " + API_PROCESS + " ]; neighbor-changes; "
               "receive {{ parsed; update; }} send {{ parsed; update; }} }}")  # a name per block: names are global
        lines = ["# bgplab's API process: it records what ExaBGP tells it, for `bgplab status` and `routes`",
                 *_process(API_PROCESS, run), ""]
        depth = 0
        blocks = 0
        for line in text.splitlines():
            lines.append(line)
            if depth == 0 and _NEIGHBOR.match(line):
                lines.append(api.format(name=f"{API_PROCESS}-{blocks}"))
                blocks += 1
            code = line.split("#", 1)[0]
            depth += code.count("{") - code.count("}")
        return "\n".join(lines) + "\n"

    # ---- lifecycle

    def start(self) -> None:
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        exabgp = self.runtime.program("exabgp")
        user = self.user_config()
        if user:
            check_config(user[0], self.run, user[1], exabgp)
        node_conf = d / "node.conf"
        node_conf.write_text(self.config_text())
        check_config(node_conf, self.run, exabgp=exabgp)
        (d / "helper.py").write_text(_HELPER)
        write_env(d)
        config = d / "exabgp.conf"
        config.write_text(self.with_api(node_conf.read_text()))
        check_config(config, self.run, exabgp=exabgp)
        with open(self.log, "wb") as out:
            proc = self.runtime.popen(self.key, command(d, config, exabgp), node=self.node.name, what="exabgp",
                                      stdout=out, stderr=subprocess.STDOUT, cwd=d)
        (d / "exabgp.pid").write_text(f"{proc.pid}\n")  # a runtime's popen gives exabgp's own pid
        self.wait_started(proc, self.messages.exists, "ExaBGP")  # the helper opens it once the config is read

    # ---- queries

    def _answering(self) -> None:
        """The message log outlives ExaBGP: once ExaBGP is gone (killed, crashed), what it last said
        is no longer so, and a dead node has nothing to show, as a dead BIRD or gobgpd has not."""
        problem = self.healthy()
        if problem is not None:
            raise RuntimeError(f"{self.node.name}: {problem}")

    def sessions(self) -> list[dict[str, Any]]:
        self._answering()
        feed = self._feed.read()
        configured = configured_neighbors(
            (self.workdir / "node.conf").read_text() if (self.workdir / "node.conf").exists() else "")
        rows = []
        for address in sorted(set(configured) | set(feed.states), key=address_key):
            local_as, remote_as = feed.asns.get(address) or configured.get(address, (None, None))
            state = feed.states.get(address, "idle")
            since = feed.since.get(address)
            received = len(feed.received.get(address, {}))
            rows.append({
                "node": self.node.name,
                "peering": None,
                "neighbor": address,
                "role": "ibgp" if local_as is not None and local_as == remote_as else "ebgp",
                "local_as": local_as,
                "remote_as": remote_as,
                "state": state,
                "uptime": round(max(0.0, time.time() - since), 3) if state == "established" and since else None,
                "received": received,
                "accepted": received,
                "advertised": len(feed.sent.get(address, {})),
                "bfd": None,  # ExaBGP has no BFD
                "flaps": feed.flaps.get(address, 0),
            })
        return rows

    def routes(self, family: str = "ipv4", **options: Any) -> list[dict[str, Any]]:
        """Received routes, and the node's own (what it sent, once per prefix, as `local`). ExaBGP has
        no decision process: `best` is ours, an own route first, else the shortest AS path, then the
        lowest neighbour address."""
        check_family(family)
        version = 4 if family == "ipv4" else 6
        self._answering()
        feed = self._feed.read()
        rows: list[dict[str, Any]] = []
        own: dict[str, dict[str, Any]] = {}
        for address in sorted(feed.sent, key=address_key):
            for prefix, route in feed.sent[address].items():
                own.setdefault(prefix, {**route, "next_hop": "", "path": "", "source": "local"})
        rows += own.values()
        for address in sorted(feed.received, key=address_key):
            local_as, remote_as = feed.asns.get(address, (None, None))
            ibgp = local_as is not None and local_as == remote_as
            rows += [{**route, "local_pref": route["local_pref"] if ibgp else None}
                     for route in feed.received[address].values()]
        rows = [r for r in rows if ipaddress.ip_network(r["network"]).version == version]
        rows.sort(key=lambda r: (ipaddress.ip_network(r["network"]), r["source"] != "local",
                                 len(r["path"].split()), address_key(r["source"]) if r["source"] != "local"
                                 else (0, 0)))
        seen: set[str] = set()
        for row in rows:
            row["family"] = f"{family}-unicast"
            row["best"] = row["network"] not in seen
            seen.add(row["network"])
        return rows


# ---- ExaBGP's JSON messages


class MessageLog:
    """The API helper's log of ExaBGP's messages, read incrementally: what ExaBGP said so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.feed = _Feed()

    def read(self) -> _Feed:
        """The feed, with the messages logged since the last read applied (a line not yet complete
        waits for the next); a message that is not ExaBGP's JSON is skipped."""
        feed = self.feed
        if not self.path.exists():
            return feed
        with open(self.path, "rb") as f:
            f.seek(feed.offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        feed.offset += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    apply_message(feed, json.loads(line))
                except (ValueError, KeyError, TypeError):
                    continue
        return feed


def apply_message(feed: _Feed, msg: dict[str, Any]) -> None:
    """One message of the API feed: a neighbour state change, or an update received or sent."""
    neighbor = msg.get("neighbor", {})
    peer = canonical_address(neighbor.get("address", {}).get("peer", "0.0.0.0"))
    asn = neighbor.get("asn", {})
    if asn:
        feed.asns[peer] = (asn.get("local"), asn.get("peer"))
    if msg.get("type") == "state":
        state = _STATES.get(str(neighbor.get("state", "")), "idle")
        if feed.states.get(peer) == "established" and state != "established":
            feed.flaps[peer] = feed.flaps.get(peer, 0) + 1
        if state == "established":
            feed.since[peer] = float(msg.get("time") or time.time())
        else:
            feed.received.pop(peer, None)  # the session's routes go with it
            feed.sent.pop(peer, None)
        feed.states[peer] = state
        return
    update = neighbor.get("message", {}).get("update")
    if msg.get("type") != "update" or not update:
        return
    rib = (feed.sent if neighbor.get("direction") == "send" else feed.received).setdefault(peer, {})
    for nlris in update.get("withdraw", {}).values():
        for nlri in nlris:
            rib.pop(str(ipaddress.ip_network(_nlri(nlri))), None)
    attrs = update.get("attribute", {})
    for by_hop in update.get("announce", {}).values():
        for hop, nlris in by_hop.items():
            for nlri in nlris:
                prefix = str(ipaddress.ip_network(_nlri(nlri)))
                rib[prefix] = _route(prefix, peer, hop, attrs)


def _nlri(entry: Any) -> str:
    return str(entry["nlri"] if isinstance(entry, dict) else entry)


def _route(prefix: str, peer: str, hop: str, attrs: dict[str, Any]) -> dict[str, Any]:
    as_path = attrs.get("as-path", [])
    if isinstance(as_path, dict):  # ExaBGP 5: {"0": {"element": "as-sequence", "value": [...]}}
        as_path = [asn for seg in as_path.values() for asn in seg.get("value", [])]
    return {
        "network": prefix,
        "next_hop": hop.split()[0] if hop and hop != "null" else "",
        "path": " ".join(str(a) for a in as_path),
        "origin": str(attrs.get("origin", "igp")).lower(),
        "med": attrs.get("med"),
        "local_pref": attrs.get("local-preference"),
        "communities": [f"{a}:{b}" for a, b in attrs.get("community", [])],
        "large_communities": [f"{a}:{b}:{c}" for a, b, c in attrs.get("large-community", [])],
        "family": "",
        "source": peer,
        "best": False,
    }


def configured_neighbors(text: str) -> dict[str, tuple[int | None, int | None]]:
    """The top-level neighbours of a config, with (local-as, peer-as) where the block says them."""
    found: dict[str, tuple[int | None, int | None]] = {}
    depth = 0
    current: str | None = None
    asns: dict[str, int] = {}
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        match = _NEIGHBOR.match(code)
        if depth == 0 and match:
            try:
                current = str(ipaddress.ip_address(match[1]))
            except ValueError:
                current = None
            asns = {}
        elif current and depth == 1:
            setting = re.match(r"\s*(local-as|peer-as)\s+(\d+)\s*;", code)
            if setting:
                asns[setting[1]] = int(setting[2])
        depth += code.count("{") - code.count("}")
        if current and depth == 0:
            found[current] = (asns.get("local-as"), asns.get("peer-as"))
            current = None
    return found


# ---- generated configs


def _string(text: str) -> str:
    """An ExaBGP string: ExaBGP has no escapes, so one holds anything but quotes or a line break."""
    return f'"{text}"'


def render_intent(name: str, intent: dict[str, Any], timers: CeTimers | None) -> str:
    """An ExaBGP config for a CE from the topology's intent: a neighbour block per MSEE session and
    user neighbour (MD5, the node's address on the link as local address: ExabgpNode fills it in
    for user neighbours, and one that announces cannot do without), each
    announcing the node's prefixes of its families as static routes with next-hop self. ExaBGP
    sends an AS path as written, so the node's ASN is written in front on eBGP sessions, plus
    `prepend` more copies. BFD is not rendered: ExaBGP has none, and the MSEE keeps the session
    on BGP timers alone."""
    asn = int(intent["asn"])
    router_id = intent.get("router_id")
    lines = [f"# ExaBGP config of {name}, generated by bgplab from its topology's intent", ""]
    for n in intent.get("neighbors", []):
        if n.get("md5") and any(c in str(n["md5"]) for c in "\"'\n"):
            raise ConfigCheckError(f"{name}: the MD5 password toward {n['address']} has a quote or a line break, "
                                   "which an ExaBGP config cannot hold; choose another")
        families = n.get("families", ["ipv4"])
        lines += [f"neighbor {n['address']} {{", f"  description {_string(str(n.get('role') or 'user'))};"]
        if router_id:
            lines.append(f"  router-id {router_id};")
        if n.get("local_address"):
            lines += [f"  local-address {n['local_address']};", "  listen 179;"]
        lines += [f"  local-as {asn};", f"  peer-as {int(n['asn'])};", "  passive false;"]
        if timers is not None:  # ExaBGP's keepalive is always a third of the hold time
            lines.append(f"  hold-time {timers.hold};")
        if n.get("md5"):
            lines.append(f"  md5-password {_string(str(n['md5']))};")
        lines.append("  family {")
        lines += [f"    {family} unicast;" for family in families]
        lines.append("  }")
        # n["bfd"] is ignored: ExaBGP has no BFD.
        path = [asn] * (int(n.get("prepend") or 0) + (0 if int(n["asn"]) == asn else 1))
        routes = [p for p in intent.get("announce", []) if f"ipv{ipaddress.ip_network(p).version}" in families]
        if n.get("role") == "msee":  # exactly what the peering is meant to carry (topology.intent)
            routes = [p for p in routes if router.exported(p, n.get("export", []))]
        if routes and not n.get("local_address"):
            raise ConfigCheckError(f"{name}: ExaBGP announces with next-hop self, which needs its own address toward "
                                   f"{n['address']}, and none is known (the neighbour is on none of {name}'s subnets)")
        if routes:
            lines += ["  static {", *(f"    {route_spec(prefix, as_path=path)};" for prefix in routes), "  }"]
        lines += ["}", ""]
    return "\n".join(lines)



def _process(name: str, run: str) -> list[str]:
    return [f"process {name} {{", f"  run {run};", "  encoder json;", "}"]


def address_facing(peer: str, interfaces: Iterable[str]) -> str | None:
    """The node's own address on the subnet of a neighbour, of its interface addresses (CIDRs):
    where ExaBGP listens for it, and the next hop it announces with."""
    address = ipaddress.ip_address(peer)
    for cidr in interfaces:
        iface = ipaddress.ip_interface(cidr)
        if iface.version == address.version and address in iface.network and iface.ip != address:
            return str(iface.ip)
    return None


def route_spec(prefix: str, *, next_hop: str | None = None, as_path: Iterable[int] = (), med: int | None = None,
               local_pref: int | None = None, communities: Iterable[str] = (),
               large_communities: Iterable[str] = ()) -> str:
    """One route as ExaBGP's static routes and API commands write it (origin IGP; next hop self
    unless given); ExaBGP sends the AS path as written."""
    parts = [f"route {prefix}", f"next-hop {next_hop or 'self'}", "origin igp"]
    if path := " ".join(map(str, as_path)):
        parts.append(f"as-path [ {path} ]")
    if med is not None:
        parts.append(f"med {med}")
    if local_pref is not None:
        parts.append(f"local-preference {local_pref}")
    if values := " ".join(communities):
        parts.append(f"community [ {values} ]")
    if values := " ".join(large_communities):
        parts.append(f"large-community [ {values} ]")
    return " ".join(parts)


# ---- the test harness's configs


def write_api_helper(workdir: Path) -> None:
    """The harness's API helper in workdir, and the FIFO it forwards commands from."""
    (workdir / "helper.py").write_text(_COMMANDS_HELPER)
    os.mkfifo(workdir / "commands.fifo")


def harness_route_spec(route: Route, asn: int, neighbor: Neighbor) -> str:
    """A harness route toward one neighbour: the daemon's ASN prepended on eBGP, as a router would."""
    as_path = route.as_path if neighbor.asn == asn else (asn, *route.as_path)
    return route_spec(route.prefix, next_hop=route.next_hop, as_path=as_path, med=route.med,
                      local_pref=route.local_pref, communities=route.communities,
                      large_communities=route.large_communities)


def render_peers(workdir: Path, router_id: str, asn: int, listen_port: int, neighbors: Iterable[tuple[Neighbor, str]],
                 routes: Iterable[Route]) -> str:
    """A harness ExaBGP: the API helper of `write_api_helper`, and a block per (neighbour, local
    address) announcing the routes of its families."""
    d = workdir
    routes = list(routes)
    lines = _process("bl_api", f"{sys.executable} {d / 'helper.py'} {d / 'commands.fifo'} "
                               f"{d / 'received.jsonl'} {d / 'ready'}")
    for n, local in neighbors:
        lines += [f"neighbor {n.address} {{", f"  router-id {router_id};",
                  f"  local-address {local};", f"  local-as {asn};", f"  peer-as {n.asn};",
                  f"  hold-time {n.hold_time};", f"  listen {listen_port};",
                  f"  connect {n.port};", f"  passive {'true' if n.passive else 'false'};"]
        if n.md5:
            lines.append(f"  md5-password {_string(n.md5)};")
        lines.append(f"  family {{ {' '.join(f + ' unicast;' for f in n.families)} }}")
        lines += ["  api { processes [ bl_api ]; neighbor-changes; receive { parsed; update; } }", "  static {"]
        lines += [f"    {harness_route_spec(r, asn, n)};" for r in routes if r.family in n.families]
        lines += ["  }", "}"]
    return "\n".join([*lines, ""])


register(Kind(KIND, ExabgpNode, start_rank=0, router=True, image="bgplab/exabgp:latest"))
