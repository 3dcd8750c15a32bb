"""`bgplab speak`: a standalone BGP speaker for injecting and collecting routes from scripts.

Its flags and its JSON lines are a contract that scripts and CI depend on; change them only
by adding. One JSON object per line on stdout, diagnostics on stderr, exit 0 after a clean
shutdown on SIGINT/SIGTERM, exit 2 for bad arguments or files.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import ipaddress
import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from bgplab.bgp.events import Event
from bgplab.bgp.records import event_records
from bgplab.bgp.routesyntax import RouteSpec, RouteSyntaxError, parse_route_file
from bgplab.bgp.speaker import PeerConfig, Speaker
from bgplab.bgp.wire.attributes import PathAttributes
from bgplab.bgp.wire.update import Family


class UsageError(ValueError):
    """Bad command-line input; reported with exit status 2."""


def _split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """ADDR, ADDR:PORT, [V6ADDR] or [V6ADDR]:PORT."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise UsageError(f"{text!r}: expected [ADDR] or [ADDR]:PORT")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"{text!r}: {host!r} is not an IP address") from None
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise UsageError(f"{text!r}: port must be 1..65535")
        port = int(port_text)
    return str(addr), port


def parse_asn(text: str, what: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 0xFFFFFFFF:
        raise UsageError(f"{what} {text!r}: expected an AS number 1..4294967295")
    return int(text)


def parse_peer(text: str) -> PeerConfig:
    """ADDR,ASN[,passive][,md5=KEY][,hold=SECONDS][,port=N][,local=ADDR][,ttl-security]."""
    parts = text.split(",")
    if len(parts) < 2:
        raise UsageError(f"--peer {text!r}: expected ADDR,ASN[,passive][,md5=KEY][,hold=SECONDS]")
    host = parts[0][1:-1] if parts[0].startswith("[") and parts[0].endswith("]") else parts[0]
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise UsageError(f"--peer {text!r}: {parts[0]!r} is not an IP address (IPv6 as [ADDR])") from None
    options: dict[str, Any] = {"address": address, "asn": parse_asn(parts[1], f"--peer {text!r}: ASN")}
    for option in parts[2:]:
        name, _, value = option.partition("=")
        if name == "passive" and not value:
            options["passive"] = True
        elif name == "ttl-security" and not value:
            options["ttl_security"] = True
        elif name == "md5" and value:
            options["md5"] = value
        elif name == "hold" and value.isdigit():
            hold = int(value)
            if hold in (1, 2) or hold > 65535:
                raise UsageError(f"--peer {text!r}: hold time must be 0 or 3..65535 (RFC 4271)")
            options["hold_time"] = hold
        elif name == "port" and value.isdigit() and 0 < int(value) < 65536:
            options["port"] = int(value)
        elif name == "local" and value:
            options["local_address"], _ = _split_host_port(value, 0)
        else:
            raise UsageError(
                f"--peer {text!r}: unknown or malformed option {option!r}; known: passive, md5=KEY, hold=SECONDS, "
                "port=N, local=ADDR, ttl-security"
            )
    return PeerConfig(**options)


def verb_speak(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """`bgplab speak`'s arguments, and its handler; bad values are reported through this parser, as argparse
    reports bad syntax, so both read alike and exit 2."""
    parser.add_argument("--asn", required=True, help="our AS number")
    parser.add_argument("--router-id", required=True, help="our BGP identifier, A.B.C.D")
    parser.add_argument(
        "--listen", action="append", default=[], metavar="ADDR[:PORT]", help="accept connections (port 179 by default)"
    )
    parser.add_argument(
        "--peer",
        action="append",
        default=[],
        required=True,
        metavar="ADDR,ASN[,passive][,md5=KEY][,hold=SECONDS]",
        help="a neighbour (repeatable; IPv6 as [ADDR]); also port=N, local=ADDR, ttl-security",
    )
    parser.add_argument("--announce", metavar="FILE", help="routes to announce, one ExaBGP-style 'route ...' per line")
    parser.add_argument("--json", action="store_true", help="one JSON object per line for every event")
    parser.add_argument("--netns", help="open every socket inside this network namespace")
    parser.add_argument("-v", "--verbose", action="store_true", help="log protocol details on stderr")
    return functools.partial(main, parser=parser)


class EventPrinter:
    """Renders events as the JSON-lines contract or as readable text; RFC 7606 reports go to stderr."""

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json

    def emit(self, record: dict[str, Any], text: str) -> None:
        self.out.write((json.dumps(record) if self.as_json else text) + "\n")

    def event(self, ev: Event) -> None:
        for record, text in event_records(ev):
            if record["type"] == "update-error":
                print(text, file=sys.stderr)
            elif record["type"] != "max-prefix-warning":
                self.emit(record, text)
        self.out.flush()


async def run(args: argparse.Namespace, routes: list[RouteSpec], peers: list[PeerConfig], out: TextIO) -> int:
    listen = [_split_host_port(item, 179) for item in args.listen]
    speaker = Speaker(parse_asn(args.asn, "--asn"), args.router_id, listen=listen, netns=args.netns)
    printer = EventPrinter(out, args.json)
    events = speaker.subscribe()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def pump() -> None:
        async for ev in events:
            printer.event(ev)

    pump_task = loop.create_task(pump())
    for peer in peers:
        speaker.add_peer(peer)
    by_attributes: dict[tuple[Family, PathAttributes], list[int]] = {}
    for route in routes:
        by_attributes.setdefault((route.family, route.attributes), []).append(route.key)
    for (family, attrs), keys in by_attributes.items():
        speaker.announce(family, keys, attrs)
    try:
        await speaker.start()
    except OSError as exc:
        print(f"bgplab speak: cannot listen: {exc}", file=sys.stderr)
        pump_task.cancel()
        return 2
    await stop.wait()
    await speaker.stop("bgplab speak shutting down")
    await pump_task
    summary = {
        addr: {
            "state": peer.state.value,
            "routes_held": peer.received_count(),
            "prefixes_received": peer.stats["prefixes_received"],
            "updates_received": peer.stats["updates_received"],
            "flaps": peer.stats["flaps"],
        }
        for addr, peer in speaker.peers.items()
    }
    printer.emit(
        {"time": round(time.monotonic(), 6), "type": "summary", "announced": len(routes), "peers": summary},
        f"summary: announced {len(routes)} routes; "
        + "; ".join(
            f"{a}: {s['updates_received']} updates received, last state {s['state']}" for a, s in summary.items()
        ),
    )
    out.flush()
    return 0


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        parse_asn(args.asn, "--asn")
        ipaddress.IPv4Address(args.router_id)
    except UsageError as exc:
        parser.error(str(exc))
    except ValueError:
        parser.error(f"--router-id {args.router_id!r}: expected A.B.C.D")
    try:
        peers = [parse_peer(p) for p in args.peer]
        for item in args.listen:
            _split_host_port(item, 179)
        routes = list(parse_route_file(args.announce)) if args.announce else []
    except (UsageError, RouteSyntaxError) as exc:
        parser.error(str(exc))
    except OSError as exc:
        parser.error(f"--announce: {exc}")
    if any(p.passive for p in peers) and not args.listen:
        parser.error("a passive peer needs --listen to accept its connection")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    return asyncio.run(run(args, routes, peers, sys.stdout))
