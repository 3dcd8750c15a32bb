"""Speaker events as JSON records with a one-line text rendering: one schema for every consumer.

`bgplab speak --json` prints these records (a contract: change only by adding), and the MSEE
and gateway nodes stream them over their control sockets, so a script reads one shape whoever
emitted it. Routes arrive per UPDATE but are recorded per prefix, which is what people grep for.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bgplab.bgp.events import (
    EndOfRib,
    Event,
    MaxPrefixWarning,
    NotificationEvent,
    PeerStateChanged,
    RoutesReceived,
    RoutesWithdrawn,
    UpdateErrorsEvent,
)
from bgplab.bgp.routesyntax import attributes_json, community_text, large_community_text, origin_text
from bgplab.bgp.wire.attributes import PathAttributes
from bgplab.bgp.wire.nlri import prefix_text
from bgplab.bgp.wire.update import IPV4_UNICAST, IPV6_UNICAST, Family

if TYPE_CHECKING:
    from bgplab.bgp.peer import Peer
    from bgplab.bgp.speaker import Speaker

FAMILY_NAMES = {(1, 1): "ipv4-unicast", (2, 1): "ipv6-unicast"}

Record = tuple[dict[str, Any], str]
"""(JSON object, the same as readable text)."""


def family_name(family: Family) -> str:
    return FAMILY_NAMES.get(family, f"{family[0]}/{family[1]}")


def family_named(name: str) -> Family:
    """"ipv4" or "ipv6", as commands and the control API take a family."""
    family = {"ipv4": IPV4_UNICAST, "ipv6": IPV6_UNICAST}.get(name)
    if family is None:
        raise ValueError(f"family {name!r}: expected ipv4 or ipv6")
    return family


def event_records(ev: Event) -> list[Record]:
    base: dict[str, Any] = {"time": round(ev.time, 6), "type": "", "peer": ev.peer}
    if isinstance(ev, RoutesReceived):
        attrs = attributes_json(ev.attributes)
        afi = ev.family[0]
        text = f"next-hop {attrs['next_hop']} as-path {attrs['as_path']}"
        return [
            ({**base, "type": "update", "prefix": prefix, "attributes": attrs}, f"{ev.peer} + {prefix} {text}")
            for prefix in (prefix_text(afi, key) for key in ev.prefixes)
        ]
    if isinstance(ev, RoutesWithdrawn):
        afi = ev.family[0]
        return [
            ({**base, "type": "withdraw", "prefix": prefix, "reason": ev.reason}, f"{ev.peer} - {prefix}")
            for prefix in (prefix_text(afi, key) for key in ev.prefixes)
        ]
    if isinstance(ev, PeerStateChanged):
        record = {**base, "type": "state", "state": ev.new, "previous": ev.old, "reason": ev.reason}
        return [(record, f"{ev.peer} {ev.old} -> {ev.new} ({ev.reason})")]
    if isinstance(ev, NotificationEvent):
        record = {
            **base,
            "type": "notification",
            "direction": ev.direction,
            "code": ev.code,
            "subcode": ev.subcode,
            "data": ev.data.hex(),
            "text": ev.text,
        }
        return [(record, f"{ev.peer} NOTIFICATION {ev.direction}: {ev.text}")]
    if isinstance(ev, EndOfRib):
        family = family_name(ev.family)
        return [({**base, "type": "eor", "family": family}, f"{ev.peer} End-of-RIB {family}")]
    if isinstance(ev, MaxPrefixWarning):
        family = family_name(ev.family)
        record = {**base, "type": "max-prefix-warning", "family": family, "count": ev.count, "limit": ev.limit}
        return [(record, f"{ev.peer} {family}: {ev.count} prefixes, limit {ev.limit}")]
    assert isinstance(ev, UpdateErrorsEvent)
    return [
        ({**base, "type": "update-error", "error": str(error)},
         f"{ev.peer}: malformed UPDATE handled per RFC 7606: {error}")
        for error in ev.errors
    ]


def route_row(family: Family, key: int, attrs: PathAttributes) -> dict[str, Any]:
    """One route as a row of a route table listing (`bgplab routes`, the nodes' `routes` command)."""
    return {
        "network": prefix_text(family[0], key),
        "next_hop": attrs.next_hop or "",
        "path": " ".join(map(str, attrs.asns())),
        "origin": origin_text(attrs.origin),
        "med": attrs.med,
        "local_pref": attrs.local_pref,
        "communities": [community_text(c) for c in attrs.communities],
        "large_communities": [large_community_text(c) for c in attrs.large_communities],
        "family": family_name(family),
    }


def session_row(speaker: Speaker, address: str, peer: Peer) -> dict[str, Any]:
    """One session in the schema every node kind answers in (bgplab.lab.kinds); the node adds
    `node` and `peering`, and whatever else it knows of the neighbour."""
    up = peer.established_at
    rib = speaker.rib
    accepted = 0
    if rib is not None and address in rib.peers():
        accepted = sum(len(rib.adj_rib_in(address, f)) for f in rib.families(address))
    return {
        "neighbor": address,
        "role": peer.config.group,
        "local_as": speaker.asn,
        "remote_as": peer.config.asn,
        "state": peer.state.value,
        "uptime": round(time.monotonic() - up, 3) if up is not None else None,
        "received": peer.received_count(),
        "accepted": accepted,
        "advertised": sum(len(t) for t in peer.adj_rib_out.values()),
        "bfd": speaker.bfd_state(address),
        "flaps": peer.stats["flaps"],
    }
