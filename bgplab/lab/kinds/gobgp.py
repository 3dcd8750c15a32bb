"""GoBGP as a lab router: one `gobgpd` in the node's namespace. Control plane only.

gobgpd writes no kernel FIB by itself (it would need a zebra to talk to, and a lab node has
none), so the routes it learns never reach the node's kernel: a lab with a GoBGP CE has real
sessions, real routes and real policies, but packets are not forwarded along what it learned.
Use FRR or BIRD where traffic must flow.

Each node's gobgpd is a private instance: its working directory in the lab's state holds the
config, the pid file, the gRPC API on a unix socket (`api.sock`, which `gobgp --target` talks
to; never the default TCP port 50051, so a system gobgpd or another node is never reached) and
the log. The config is the user's own file (TOML, or YAML/JSON by its extension; checked first
with `gobgpd --dry-run`, so an error names the user's file) or one generated from the topology's
intent by `render_intent`. A GoBGP config file holds no routes: the announced prefixes of the
intent are added through the API once gobgpd is up (a user's config announces nothing by
itself).

Timers: the `fast` profile asks for keepalive 3 / hold 9 and a connect retry of 1 s, but gobgpd
3 retries no faster than every 5 s (its floor), so a session it must open itself can take up to
5 s; and after an administrative `reset` it idles 30 s (this version does not take
`idle-hold-time-after-reset` from the file). `flaps` counts established sessions that went down,
from gobgpd's log; GoBGP's own `flops` counts only sessions that lasted under 30 s.

The test harness's GoBGP (`bgplab.testing.gobgp`) runs a config of `render_peers`, from its
`Neighbor`/`Route` model, adds its routes with `rib_add_args` as a node adds its announced
prefixes, and reads it with the same parsers.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bgplab.expressroute.profile import CeTimers, profile
from bgplab.lab.kinds import ConfigCheckError, Kind, register, router
from bgplab.lab.kinds.router import STATES, Neighbor, RouterNode, Run, address_key, check_family, family_of, host_run
from bgplab.lab.plan import LabPlan, Node
from bgplab.lab.runtime import Runtime

KIND = "gobgp"
_STATES = dict(enumerate(STATES, start=1))
"""The API's SessionState enum (0 is UNKNOWN)."""
_ORIGINS = {0: "igp", 1: "egp", 2: "incomplete"}
_CONFIG_TYPES = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


def config_type(path: Path) -> str:
    return _CONFIG_TYPES.get(path.suffix.lower(), "toml")


def check_config(path: Path, run: Run = host_run, shown: Path | None = None) -> None:
    """gobgpd's own reading of the file (`--dry-run`); the error names `shown` (default: path)."""
    proc = run(["gobgpd", "--dry-run", "-f", str(path), "-t", config_type(path)], timeout=30)
    if proc.returncode == 0:
        return
    problems = []
    for line in (proc.stdout + proc.stderr).splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            problems.append(line)
            continue
        text = str(entry.get("Error") or entry.get("msg") or line)
        place = re.search(r"\((\d+), (\d+)\)", text)  # TOML syntax errors: (line, column)
        if place:
            text = f"line {place[1]}, column {place[2]}: {text}"
        problems.append(text)
    raise ConfigCheckError(f"{shown or path}: GoBGP refuses this config:\n  " + "\n  ".join(problems))


class GobgpNode(RouterNode):
    program = "gobgpd"
    title = "gobgpd"

    def __init__(self, plan: LabPlan, node: Node, runtime: Runtime, workdir: Path) -> None:
        super().__init__(plan, node, runtime, workdir)
        self.socket = workdir / "api.sock"

    # ---- config

    def config_path(self) -> Path:
        user = self.node.spec.get("config")
        return self.workdir / ("gobgpd" + (Path(user).suffix if user else ".toml"))

    def render(self, intent: dict[str, Any]) -> str:
        return render_intent(self.node.name, intent, profile(self.plan.profile).ce)

    # ---- lifecycle

    def start(self) -> None:
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        user = self.user_config()
        if user:
            check_config(user[0], self.run, user[1])
        config = self.config_path()
        config.write_text(self.config_text())
        check_config(config, self.run)
        # A gobgpd that was killed (a fault, a crash) leaves its API socket behind, and a new one
        # cannot bind it: the file is ours, and no gobgpd of this node runs when start is called.
        self.socket.unlink(missing_ok=True)
        args = ["gobgpd", "-f", str(config), "-t", config_type(config), "--log-plain", "--log-level", "info",
                "--pprof-disable", "--api-hosts", f"unix://{self.socket}"]
        with open(self.log, "wb") as out:
            proc = self.runtime.popen(self.key, args, node=self.node.name, what="gobgpd", stdout=out,
                                      stderr=subprocess.STDOUT, cwd=d)
        (d / "gobgpd.pid").write_text(f"{proc.pid}\n")  # a runtime's popen gives gobgpd's own pid
        self.wait_started(proc, lambda: self.socket.exists() and '"asn"' in self.gobgp_raw("-j", "global").stdout,
                          "gobgpd")
        for prefix in self.node.spec.get("intent", {}).get("announce", []):
            self.gobgp(*rib_add_args(prefix))

    # ---- queries

    def gobgp_raw(self, *args: str) -> subprocess.CompletedProcess[str]:
        # The API socket is a file in the node's directory; the node's own CLI speaks to it.
        return self.run(["gobgp", "--target", f"unix://{self.socket}", *args])

    def gobgp(self, *args: str) -> str:
        proc = self.gobgp_raw(*args)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.node.name}: gobgp {' '.join(args)}: {(proc.stdout + proc.stderr).strip()}")
        return proc.stdout

    def _json(self, *args: str) -> Any:
        text = self.gobgp("-j", *args)
        return json.loads(text) if text.strip() else None

    def sessions(self) -> list[dict[str, Any]]:
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        return read_sessions(self.node.name, self._json, log)

    def routes(self, family: str = "ipv4", **options: Any) -> list[dict[str, Any]]:
        return read_routes(self.node.name, self._json, family)


# ---- what a GoBGP says, through its CLI (this kind's, or a user's image's: kind linux, cli gobgp)

GobgpJson = Callable[..., Any]
"""`gobgp -j` with a command's words: its JSON, decoded (None for no output)."""


def read_sessions(node: str, gobgp: GobgpJson, log: str = "") -> list[dict[str, Any]]:
    """The neighbours a GoBGP reports, each asked for alone (so with its advertised count), with
    flap counts from its log where the caller has it."""
    flaps = count_flaps(log)
    rows = []
    for listed in gobgp("neighbor") or []:
        address = listed.get("conf", {}).get("neighbor_address") or listed["state"]["neighbor_address"]
        peer = one_neighbor(gobgp("neighbor", address)) or listed
        row = session_row(address, peer)
        rows.append({"node": node, **row, "flaps": flaps.get(row["neighbor"], 0)})
    return sorted(rows, key=lambda r: address_key(r["neighbor"]))


def read_routes(node: str, gobgp: GobgpJson, family: str) -> list[dict[str, Any]]:
    """A GoBGP's global RIB for a family; LOCAL_PREF counts from its iBGP neighbours only."""
    check_family(family)
    ibgp = {r["neighbor"] for r in read_sessions(node, gobgp) if r["role"] == "ibgp"}
    rows = route_rows(gobgp("global", "rib", "-a", family) or {}, family, ibgp)
    return sorted(rows, key=lambda r: (ipaddress.ip_network(r["network"]), not r["best"]))


# ---- the CLI's JSON


def one_neighbor(data: Any) -> Any:
    """`gobgp -j neighbor ADDRESS`: one neighbour, which some versions wrap in a list."""
    if isinstance(data, list):
        return data[0] if data else None
    return data


def session_row(address: str, peer: dict[str, Any]) -> dict[str, Any]:
    """One neighbour of `gobgp -j neighbor [ADDRESS]` as a session (all but `node`; `flaps` 0:
    they are in the log)."""
    conf, state = peer.get("conf", {}), peer.get("state", {})
    families = peer.get("afi_safis") or []
    session = _STATES.get(int(state.get("session_state", 0)), "idle")
    local_as, remote_as = conf.get("local_asn") or state.get("local_asn"), conf.get("peer_asn")
    uptime = peer.get("timers", {}).get("state", {}).get("uptime")
    return {
        "peering": None,
        "neighbor": str(ipaddress.ip_address(address)),
        "role": "ibgp" if local_as == remote_as else "ebgp",
        "local_as": local_as,
        "remote_as": remote_as,
        "state": session,
        "uptime": _uptime(uptime) if session == "established" else None,
        "received": sum(int(f.get("state", {}).get("received", 0)) for f in families),
        "accepted": sum(int(f.get("state", {}).get("accepted", 0)) for f in families),
        "advertised": sum(int(f.get("state", {}).get("advertised", 0)) for f in families),
        "bfd": None,  # GoBGP has no BFD
        "flaps": 0,
    }


def route_rows(rib: dict[str, Any], family: str, ibgp: Iterable[str]) -> list[dict[str, Any]]:
    """`gobgp -j global rib -a FAMILY` as routes; `ibgp` are the neighbours whose LOCAL_PREF counts."""
    ibgp = set(ibgp)
    rows = []
    for prefix, paths in rib.items():
        for path in paths:
            attrs = {a["type"]: a for a in path.get("attrs", [])}
            source = path.get("neighbor-ip") or ""
            local = source in ("", "<nil>") or ipaddress.ip_address(source).is_unspecified
            hop = attrs.get(3, {}).get("nexthop") or attrs.get(14, {}).get("nexthop") or ""
            rows.append({
                "network": str(ipaddress.ip_network(prefix)),
                "next_hop": "" if local or ipaddress.ip_address(hop or "0.0.0.0").is_unspecified else hop,
                "path": " ".join(str(a) for seg in attrs.get(2, {}).get("as_paths", []) for a in seg["asns"]),
                "origin": _ORIGINS.get(int(attrs.get(1, {}).get("value", 0)), "incomplete"),
                "med": attrs[4]["metric"] if 4 in attrs else None,
                "local_pref": attrs[5]["value"] if 5 in attrs and source in ibgp else None,
                "communities": [f"{c >> 16}:{c & 0xFFFF}" for c in attrs.get(8, {}).get("communities", [])],
                "large_communities": [f"{c['ASN']}:{c['LocalData1']}:{c['LocalData2']}"
                                      for c in attrs.get(32, {}).get("value", [])],
                "family": f"{family}-unicast",
                "source": "local" if local else str(ipaddress.ip_address(source)),
                "best": bool(path.get("best")),
            })
    return rows


def rib_add_args(prefix: str, *, next_hop: str | None = None, as_path: Iterable[int] = (), med: int | None = None,
                 local_pref: int | None = None, communities: Iterable[str] = (),
                 large_communities: Iterable[str] = ()) -> list[str]:
    """The `gobgp` arguments originating a route in the global RIB (origin IGP), with the
    attributes given: GoBGP configs hold no routes."""
    args = ["global", "rib", "add", prefix, "origin", "igp"]
    if next_hop is not None:
        args += ["nexthop", next_hop]
    if path := ",".join(map(str, as_path)):
        args += ["aspath", path]
    if med is not None:
        args += ["med", str(med)]
    if local_pref is not None:
        args += ["local-pref", str(local_pref)]
    if communities := ",".join(communities):
        args += ["community", communities]
    if large := ",".join(large_communities):
        args += ["large-community", large]
    return [*args, "-a", family_of(prefix)]


def count_flaps(log: str) -> dict[str, int]:
    """Per neighbour, how often an established session went down, from gobgpd's log. (GoBGP's own
    `flops` counts only sessions that lasted under 30 s.)"""
    flaps: dict[str, int] = {}
    for line in log.splitlines():
        match = re.search(r'msg="Peer Down" Key=(\S+)', line)
        if match and "State=BGP_FSM_ESTABLISHED" in line:
            address = str(ipaddress.ip_address(match[1].split("%")[0]))
            flaps[address] = flaps.get(address, 0) + 1
    return flaps


def _uptime(value: Any) -> float | None:
    """GoBGP reports when the session came up: {"seconds": since the epoch, "nanos": ...}."""
    if isinstance(value, dict):
        value = int(value.get("seconds", 0)) + int(value.get("nanos", 0)) / 1e9
    if not value:
        return None
    return round(max(0.0, time.time() - float(value)), 3)


# ---- generated configs


def render_intent(name: str, intent: dict[str, Any], timers: CeTimers | None) -> str:
    """A gobgpd TOML config for a CE from the topology's intent: its MSEE sessions (MD5, prepend)
    and any user neighbours, with next-hop-self toward iBGP neighbours. BFD is not rendered:
    GoBGP has none, and the MSEE keeps the session on BGP timers alone. The announced prefixes are
    not in the file either (GoBGP configs hold no routes): GobgpNode adds them through the API."""
    q = _toml
    asn = int(intent["asn"])
    neighbors = intent.get("neighbors", [])
    lines = [f"# gobgpd config of {name}, generated by bgplab from its topology's intent",
             "[global.config]", f"  as = {asn}"]
    if intent.get("router_id"):
        lines.append(f"  router-id = {q(intent['router_id'])}")
    lines += ["  port = 179", ""]
    for n in neighbors:
        # n["bfd"] is ignored: GoBGP has no BFD.
        lines += _neighbor(n["address"], int(n["asn"]), n.get("families", ["ipv4"]),
                           description=str(n.get("role") or "user"), md5=str(n["md5"]) if n.get("md5") else None,
                           timers=timers,
                           transport={"local-address": n["local_address"]} if n.get("local_address") else {})
        lines.append("")
    sets: list[tuple[str, list[str]]] = []
    ibgp = [n["address"] for n in neighbors if int(n["asn"]) == asn]
    if ibgp:
        sets.append(("ibgp", ibgp))
    prepends = sorted({int(n["prepend"]) for n in neighbors if n.get("prepend")})
    for count in prepends:
        sets.append((f"prepend-{count}", [n["address"] for n in neighbors if int(n.get("prepend") or 0) == count]))
    msees = [n for n in neighbors if n.get("role") == "msee"]
    sets += [(f"msee-{i}", [n["address"]]) for i, n in enumerate(msees)]
    for set_name, members in sets:
        lines += ["[[defined-sets.neighbor-sets]]", f"  neighbor-set-name = {q(set_name)}",
                  f"  neighbor-info-list = [{', '.join(q(a) for a in members)}]"]
    lines += _msee_prefix_sets(msees)
    # One export policy; its statements set no disposition, so each one that matches applies its
    # action and evaluation goes on (the neighbour set of an export statement is the receiving peer).
    lines += ["", "[[policy-definitions]]", f"  name = {q('bgplab-out')}"]
    if ibgp:
        lines += ["  [[policy-definitions.statements]]", '    name = "ibgp-next-hop-self"',
                  "    [policy-definitions.statements.conditions.match-neighbor-set]", '      neighbor-set = "ibgp"',
                  "    [policy-definitions.statements.actions.bgp-actions]", '      set-next-hop = "self"']
    for count in prepends:
        lines += ["  [[policy-definitions.statements]]", f"    name = {q(f'prepend-{count}')}",
                  "    [policy-definitions.statements.conditions.match-neighbor-set]",
                  f"      neighbor-set = {q(f'prepend-{count}')}",
                  "    [policy-definitions.statements.actions.bgp-actions.set-as-path-prepend]",
                  f"      as = {q(str(asn))}", f"      repeat-n = {count}"]
    # Each MSEE session carries out exactly its peering's list; the statement rejects the rest.
    for i, n in enumerate(msees):
        lines += ["  [[policy-definitions.statements]]", f"    name = {q(f'to-msee-{i}')}",
                  "    [policy-definitions.statements.conditions.match-neighbor-set]",
                  f"      neighbor-set = {q(f'msee-{i}')}"]
        if n.get("export"):
            lines += ["    [policy-definitions.statements.conditions.match-prefix-set]",
                      f"      prefix-set = {q(f'to-msee-{i}')}", '      match-set-options = "invert"']
        lines += ["    [policy-definitions.statements.actions]", '      route-disposition = "reject-route"']
    if msees:  # and no default route taken from Azure
        lines += ["", "[[policy-definitions]]", f"  name = {q('bgplab-in')}"]
        for i, _ in enumerate(msees):
            lines += ["  [[policy-definitions.statements]]", f"    name = {q(f'from-msee-{i}')}",
                      "    [policy-definitions.statements.conditions.match-neighbor-set]",
                      f"      neighbor-set = {q(f'msee-{i}')}",
                      "    [policy-definitions.statements.conditions.match-prefix-set]",
                      f"      prefix-set = {q(f'default-msee-{i}')}",
                      "    [policy-definitions.statements.actions]", '      route-disposition = "reject-route"']
    if not ibgp and not prepends and not msees:
        return "\n".join(lines[: lines.index("[[policy-definitions]]") - 1]) + "\n"
    lines += ["", "[global.apply-policy.config]", f"  export-policy-list = [{q('bgplab-out')}]",
              '  default-export-policy = "accept-route"', '  default-import-policy = "accept-route"']
    if msees:
        lines.append(f"  import-policy-list = [{q('bgplab-in')}]")
    return "\n".join(lines) + "\n"


def _msee_prefix_sets(msees: list[dict[str, Any]]) -> list[str]:
    """Per MSEE session: its export list (topology.intent) and its family's default route."""
    lines: list[str] = []
    for i, n in enumerate(msees):
        default = "::/0" if "ipv6" in n.get("families", ["ipv4"]) else "0.0.0.0/0"
        for name, entries in ((f"to-msee-{i}", n.get("export", [])), (f"default-msee-{i}", [default])):
            if not entries:
                continue
            lines += ["[[defined-sets.prefix-sets]]", f"  prefix-set-name = {_toml(name)}"]
            for entry in entries:
                prefix, low, high = router.prefix_bounds(entry)
                lines += ["  [[defined-sets.prefix-sets.prefix-list]]", f"    ip-prefix = {_toml(prefix)}",
                          f"    masklength-range = {_toml(f'{low}..{high}')}"]
    return lines



def _toml(value: str | int | bool) -> str:
    return json.dumps(value)  # a TOML basic string is a JSON string; so are its integers and booleans


def _neighbor(address: str, asn: int, families: Iterable[str], *, description: str | None = None,
              md5: str | None = None, timers: CeTimers | None = None,
              transport: dict[str, str | int | bool]) -> list[str]:
    """One `[[neighbors]]` block; `timers` also say how soon a failed session is retried."""
    lines = ["[[neighbors]]", "  [neighbors.config]", f"    neighbor-address = {_toml(address)}",
             f"    peer-as = {asn}"]
    if description is not None:
        lines.append(f"    description = {_toml(description)}")
    if md5:
        lines.append(f"    auth-password = {_toml(md5)}")
    if timers is not None:
        lines += ["  [neighbors.timers.config]", f"    hold-time = {timers.hold}",
                  f"    keepalive-interval = {timers.keepalive}", f"    connect-retry = {timers.connect_retry}",
                  f"    idle-hold-time-after-reset = {timers.connect_retry}"]
    if transport:
        lines += ["  [neighbors.transport.config]", *(f"    {k} = {_toml(v)}" for k, v in transport.items())]
    for family in families:
        lines += ["  [[neighbors.afi-safis]]", "    [neighbors.afi-safis.config]",
                  f"      afi-safi-name = {_toml(family + '-unicast')}"]
    return lines


# ---- the test harness's configs


def render_peers(asn: int, router_id: str, listen_port: int, neighbors: Iterable[Neighbor]) -> str:
    """A harness gobgpd: its neighbours with their own timers, ports and passive mode; no routes
    (see `rib_add_args`)."""
    lines = ["[global.config]", f"  as = {asn}", f"  router-id = {_toml(router_id)}", f"  port = {listen_port}"]
    for n in neighbors:
        timers = CeTimers(n.keepalive, n.hold_time, connect_retry=1)
        lines += _neighbor(n.address, n.asn, n.families, md5=n.md5, timers=timers,
                           transport={"remote-port": n.port, "passive-mode": n.passive})
    return "\n".join([*lines, ""])


register(Kind(KIND, GobgpNode, start_rank=0, router=True, image="bgplab/gobgp:latest"))
