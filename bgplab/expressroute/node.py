"""`python -m bgplab node KIND --config FILE`: run one of our own nodes until told to stop.

The lab harness writes one config file per node (YAML or JSON) and starts this as the node's
process; a user can also run one by hand. The process serves its control socket, prints one
`{"type": "ready", ...}` line on stdout once its sessions are configured, and on SIGTERM or
SIGINT closes every session with a Cease, removes what it put in the kernel and its socket,
and exits 0. Config errors exit 2 with the file and the field named; failures to start exit 1.

Config (the `expressroute` block is the model's data, see bgplab.expressroute.spec):

    kind: msee                    # or gateway
    name: msee1
    control: /run/bgplab/lab/msee1.sock
    profile: fast                 # azure (default) | fast
    timers: {hold: 9, bfd: {interval_ms: 100, multiplier: 3}}   # overrides of the profile's timers;
                                  #   bfd: null turns BFD off (default: 300 ms x 3, as the MSEE runs)
    expressroute: {circuits: ..., route_filters: ..., vnets: ...}
    # msee
    circuit: contoso-ams
    side: primary
    rules: {drain_prepend: 3, restart_after: 60}
    peerings:
      private: {netns: lab-msee1-private, gateways: [{address: 10.255.0.2, local_address: 10.255.0.1}]}
      microsoft: {netns: lab-msee1-microsoft}
    # gateway
    vnet: hub
    netns: lab-gateway
    internet: [10.254.0.1]
    neighbors: [{address: 10.255.0.1, circuit: contoso-ams, side: primary, local_address: 10.255.0.2}]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol

from bgplab.bgp.peer import BfdSettings
from bgplab.expressroute.control import ControlServer, EventHub, Handler
from bgplab.expressroute.gateway import Gateway, MseeNeighbor
from bgplab.expressroute.model import Model, ModelError, PeeringType, Side
from bgplab.expressroute.msee import GatewayNeighbor, Msee, PeeringPlace
from bgplab.expressroute.profile import PROFILES
from bgplab.expressroute.rules import MseeRules
from bgplab.expressroute.services import load_catalogue
from bgplab.expressroute.timers import MSEE_BFD, Timers
from bgplab.source import SourceError, YamlError, load_yaml

KINDS = ("msee", "gateway")


class NodeConfigError(ValueError):
    """A node config that cannot be run; the message names the file and the field."""


class Node(Protocol):
    name: str
    hub: EventHub

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def handlers(self) -> dict[str, Handler]: ...


class _Reader:
    """Field access that names the file and the dotted field in every complaint."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> NodeConfigError:
        return NodeConfigError(f"{self.source}: {where}: {message}")

    def mapping(self, value: Any, where: str, allowed: Sequence[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, f"expected a mapping with keys {', '.join(allowed)}")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise self.fail(where, f"unknown key(s) {', '.join(map(str, unknown))}; allowed: {', '.join(allowed)}")
        return value

    def text(self, data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
        value = data.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(f"{where}.{key}" if where else key, "required, a non-empty string")
        return value

    def items(self, data: Mapping[str, Any], key: str, where: str) -> list[Any]:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise self.fail(f"{where}.{key}" if where else key, "expected a list")
        return value


_COMMON = ("kind", "name", "control", "profile", "timers", "expressroute", "services")
_MSEE = (*_COMMON, "circuit", "side", "rules", "peerings")
_GATEWAY = (*_COMMON, "vnet", "netns", "port", "internet", "neighbors", "fib", "max_ecmp_circuits")


def load_config(path: str | Path) -> dict[str, Any]:
    """The config file's data; JSON (what the lab harness writes) is read as the YAML it also is."""
    try:
        data, _ = load_yaml(Path(path).read_text(), str(path))
    except YamlError as exc:
        form = "JSON" if str(path).endswith(".json") else "YAML"
        raise NodeConfigError(f"{path}: not valid {form}: {exc.detail}") from None
    except SourceError as exc:  # a duplicate key
        raise NodeConfigError(str(exc)) from None
    if not isinstance(data, dict):
        raise NodeConfigError(f"{path}: expected a mapping at the top level")
    return data


def _timers(r: _Reader, data: Mapping[str, Any]) -> Timers:
    profile = data.get("profile", "azure")
    if profile not in PROFILES:
        raise r.fail("profile", f"{profile!r}: expected one of {', '.join(PROFILES)}")
    timers = PROFILES[profile].timers
    overrides = data.get("timers")
    if overrides is not None:
        names = [f.name for f in fields(Timers)]
        overrides = dict(r.mapping(overrides, "timers", names))
        if "bfd" in overrides:
            overrides["bfd"] = _bfd(r, overrides["bfd"], timers.bfd)
        try:
            timers = Timers(**{**{n: getattr(timers, n) for n in names}, **overrides})
        except TypeError as exc:
            raise r.fail("timers", str(exc)) from None
    return timers


BFD_INTERVAL_MS = (10, 60000)
"""The interval range a customer's router accepts (FRR's, and Cisco's and Juniper's lie within it)."""
BFD_MULTIPLIER = (2, 255)


def _bfd(r: _Reader, value: Any, current: BfdSettings | None) -> BfdSettings | None:
    """`timers.bfd`: null (BFD off) or {interval_ms, multiplier}, each defaulting to the MSEE's own
    300 ms x 3; the one interval is both what the MSEE sends at and what it asks to receive."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise r.fail("timers.bfd", f"{value!r}: expected {{interval_ms: N, multiplier: M}}, or null to turn BFD off")
    spec = r.mapping(value, "timers.bfd", ("interval_ms", "multiplier"))
    base = current or MSEE_BFD
    checked: dict[str, int] = {}
    for key, (low, high), default, what in (
        ("interval_ms", BFD_INTERVAL_MS, base.desired_min_tx, "milliseconds"),
        ("multiplier", BFD_MULTIPLIER, base.multiplier, "packets"),
    ):
        got = spec.get(key, default)
        if isinstance(got, float) and got.is_integer():
            got = int(got)
        if isinstance(got, bool) or not isinstance(got, int) or not low <= got <= high:
            raise r.fail(f"timers.bfd.{key}", f"{got!r}: expected a whole number of {what}, {low}..{high}")
        checked[key] = got
    interval = float(checked["interval_ms"])
    return BfdSettings(interval, interval, checked["multiplier"])


def build_node(data: Mapping[str, Any], source: str) -> tuple[Node, str]:
    """The node a config describes, and its control socket path."""
    r = _Reader(source)
    kind = data.get("kind")
    if kind not in KINDS:
        raise r.fail("kind", f"{kind!r}: expected one of {', '.join(KINDS)}")
    data = r.mapping(data, "", _MSEE if kind == "msee" else _GATEWAY)
    services = data.get("services")
    catalogue = load_catalogue(services) if services else load_catalogue()
    try:
        model = Model.from_data(data.get("expressroute"), catalogue)
    except ModelError as exc:
        raise r.fail("expressroute", str(exc)) from None
    timers = _timers(r, data)
    name = r.text(data, "name", "")
    control = r.text(data, "control", "")
    node: Node
    if kind == "msee":
        places: dict[PeeringType, PeeringPlace] = {}
        peerings = r.mapping(data.get("peerings"), "peerings", [t.value for t in PeeringType])
        for key, spec in peerings.items():
            where = f"peerings.{key}"
            spec = r.mapping(spec or {}, where, ("netns", "port", "gateways", "fib"))
            gateways = tuple(
                GatewayNeighbor(**r.mapping(g, f"{where}.gateways[{i}]", ("address", "local_address")))
                for i, g in enumerate(r.items(spec, "gateways", where))
            )
            places[PeeringType(key)] = PeeringPlace(
                spec.get("netns"), int(spec.get("port", 179)), gateways, bool(spec.get("fib", True))
            )
        side = data.get("side")
        if side not in [s.value for s in Side]:
            raise r.fail("side", f"{side!r}: expected primary or secondary")
        try:
            msee_rules = MseeRules(**r.mapping(data.get("rules", {}), "rules", [f.name for f in fields(MseeRules)]))
            node = Msee(model, r.text(data, "circuit", ""), Side(side), places, name=name, timers=timers,
                        rules_=msee_rules, catalogue=catalogue)
        except ValueError as exc:
            raise r.fail("msee", str(exc)) from None
    else:
        neighbors = []
        for i, item in enumerate(r.items(data, "neighbors", "")):
            spec = r.mapping(item, f"neighbors[{i}]", ("address", "circuit", "side", "local_address", "instance"))
            neighbors.append(MseeNeighbor(
                r.text(spec, "address", f"neighbors[{i}]"), r.text(spec, "circuit", f"neighbors[{i}]"),
                Side(spec.get("side", "primary")), spec.get("local_address"), int(spec.get("instance", 0)),
            ))
        try:
            node = Gateway(model, r.text(data, "vnet", ""), neighbors, netns=data.get("netns"),
                           port=int(data.get("port", 179)), internet=tuple(r.items(data, "internet", "")),
                           name=name, timers=timers, fib=bool(data.get("fib", True)),
                           max_ecmp_circuits=int(data.get("max_ecmp_circuits", 4)), catalogue=catalogue)
        except ValueError as exc:
            raise r.fail("gateway", str(exc)) from None
    return node, control


async def serve(node: Node, control: str) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = ControlServer(control, node.handlers(), node.hub)
    await server.start()
    try:
        await node.start()
        print(json.dumps({"type": "ready", "node": node.name, "control": control}), flush=True)
        await stop.wait()
    finally:
        await node.stop()
        await server.stop()
    return 0


def verb_node(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """`bgplab node`'s arguments: the node's contract with whoever starts it (the lab harness, a containerlab
    export), so they sit with the node."""
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--config", required=True, help="the node's config file (YAML or JSON)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return main


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        data = load_config(args.config)
        if data.get("kind", args.kind) != args.kind:
            raise NodeConfigError(f"{args.config}: kind: the file describes {data['kind']!r}, not {args.kind!r}")
        data.setdefault("kind", args.kind)
        node, control = build_node(data, args.config)
    except (OSError, NodeConfigError) as exc:
        print(f"bgplab node: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(node, control))
    except OSError as exc:
        print(f"bgplab node {args.kind} {node.name}: cannot start: {exc}", file=sys.stderr)
        return 1
