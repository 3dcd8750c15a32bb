"""A CE's config from intent, as an engineer writes one: what each session may carry, and the NAT.

Microsoft's router configuration samples, and every engineer's config, filter each ExpressRoute
session: out, only the prefixes meant for that peering (the site's own on private peering, the
public NAT pool on Microsoft peering), so nothing transits between peerings and Azure's routes
are never echoed back; in, no default route from Azure. The iBGP pair carries everything, with
next-hop-self. On-premises sources reach Microsoft-peering services only through source NAT to
the advertised public prefix, because Microsoft admits only those sources (expressroute.md
sections 10 and 12).

This module turns a node's topology fields into the intent that every router kind renders
(`render_intent`), and the CE's NAT into an nftables ruleset the runtime loads in its namespace.
An export entry is a prefix ("10.1.0.0/16", exactly it) or a prefix and its more specifics
("10.1.0.0/16+", as BIRD writes it), the form a range of many prefixes (announce_range) takes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bgplab.expressroute.model import AZURE_ASN, Circuit, PeeringType
from bgplab.expressroute.services import load_catalogue
from bgplab.lab.topology.schema import NodeSpec, PrefixRangeSpec

if TYPE_CHECKING:
    from bgplab.lab.topology.expand import Expander

INTENT_FIELDS = ("asn", "router_id", "announce", "announce_range", "prepend", "bfd", "neighbors", "advertise")
NAT_TABLE = "bgplab-nat"
SERVICES_TABLE = "bgplab-services"


def ordered_peerings(circuit: Circuit) -> list[tuple[PeeringType, Any]]:
    return [(t, circuit.peerings[t]) for t in PeeringType if t in circuit.peerings]


def router_intent(x: Expander, name: str, node: NodeSpec, path: str) -> dict[str, Any]:
    """The intent of a router node: its ASN, its sessions (each MSEE one with the peering it
    belongs to and what it may advertise there), and the prefixes it originates."""
    attachments = [a for a in x.attachments if a.edge == name]
    asn = _asn(x, name, node, path)
    ranged = expand_range(node.announce_range)
    cover = covering(ranged)
    public = {str(p) for a in attachments for _, peering in ordered_peerings(a.circuit)
              for p in peering.advertised_prefixes}
    site = [p for p in [*node.announce, *_partners_announce(x, name, node, asn)] if p not in public]
    site = list(dict.fromkeys([*site, *(f"{c}+" for c in cover)]))
    override = {str(k): [str(p) for p in v] for k, v in (node.advertise or {}).items()}
    neighbors: list[dict[str, Any]] = []
    for att in attachments:
        for ptype, peering in ordered_peerings(att.circuit):
            wanted = override.get(str(ptype))
            if wanted is None:
                wanted = site if ptype is PeeringType.PRIVATE else [str(p) for p in peering.advertised_prefixes]
            for version, family in ((4, "ipv4"), (6, "ipv6")):
                addressing = peering.link(att.side, version)
                if addressing is None:
                    continue
                neighbors.append({
                    "address": str(addressing.msee.ip), "asn": AZURE_ASN, "md5": peering.md5,
                    "bfd": node.bfd and version == 4, "prepend": node.prepend,
                    "local_address": str(addressing.customer.ip), "families": [family], "role": "msee",
                    "circuit": att.circuit.name, "peering": str(ptype),
                    "export": [p for p in wanted if _version(p) == version],
                })  # fmt: skip
    for neighbor in node.neighbors:
        version = ipaddress.ip_address(neighbor.address).version
        neighbors.append({
            "address": neighbor.address, "asn": neighbor.asn, "md5": neighbor.md5, "bfd": neighbor.bfd,
            "prepend": 0, "local_address": None, "families": [f"ipv{version}"], "role": "user",
        })  # fmt: skip
    router_id = node.router_id or router_id_of(x, name)
    if router_id is None:
        x.src.fail(path, f"{name} has no IPv4 address to take a router ID from; give it router_id (or an IPv4 "
                   "loopback)")
    # Both edges of a circuit originate its public prefixes, so either link carries them alone.
    announce = list(dict.fromkeys([*node.announce, *ranged, *sorted(public)]))
    return {"asn": asn, "router_id": router_id, "announce": announce, "announce_cover": cover,
            "neighbors": neighbors}


def _asn(x: Expander, name: str, node: NodeSpec, path: str) -> int:
    attachments = [a for a in x.attachments if a.edge == name]
    asn = node.asn
    if asn is None:
        if not attachments:
            x.src.fail(
                path,
                f"{name} needs an asn: it is the edge of no circuit, so there is no peer_asn to default to "
                "(or give it a config)",
            )
        asn = ordered_peerings(attachments[0].circuit)[0][1].peer_asn
    for att in attachments:
        for ptype, peering in ordered_peerings(att.circuit):
            if peering.peer_asn != asn:
                spot = f"{path}.asn" if node.asn is not None else (
                    f"expressroute.circuits.{att.circuit.name}.peerings.{ptype}.peer_asn"
                )  # fmt: skip
                x.src.fail(
                    spot,
                    f"{name} speaks AS {asn} but the {ptype} peering of circuit {att.circuit.name} has peer_asn "
                    f"{peering.peer_asn}; a generated config runs one ASN, so make them equal (or give {name} "
                    "its own config)",
                )
    return int(asn)


def _partners_announce(x: Expander, name: str, node: NodeSpec, asn: int) -> list[str]:
    """What the node's iBGP partners of this lab originate (from their intent): it learns them over
    iBGP and passes them on to its own MSEEs, as ce2 does for ce1 when ce1's link is down."""
    owners = {ipaddress.ip_interface(cidr).ip: ns.node for ns in x.ns.values() for _, cidr in ns.addresses}
    found: list[str] = []
    for neighbor in node.neighbors:
        if neighbor.asn != asn:
            continue
        partner = x.spec.nodes.get(owners.get(ipaddress.ip_address(neighbor.address), ""))
        if partner is not None and partner.config is None and partner.kind != "linux":
            found += [str(p) for p in partner.announce]
            found += [f"{c}+" for c in covering(expand_range(partner.announce_range))]
    return found


def router_id_of(x: Expander, name: str) -> str | None:
    """First IPv4 loopback, else the first IPv4 address on an interface (the user's, then generated ones)."""
    addresses = [(i, ipaddress.ip_interface(a)) for i, a in x.ns[name].addresses]
    for want_lo in (True, False):
        for interface, address in addresses:
            if address.version == 4 and (interface == "lo") == want_lo:
                return str(address.ip)
    return None


def _version(entry: str) -> int:
    return ipaddress.ip_network(entry.rstrip("+")).version


def expand_range(spec: PrefixRangeSpec | None) -> list[str]:
    if spec is None:
        return []
    first = ipaddress.ip_network(spec.first)
    size = first.num_addresses
    base = int(first.network_address)
    return [str(ipaddress.ip_network((base + i * size, first.prefixlen))) for i in range(spec.count)]


def covering(prefixes: Iterable[str]) -> list[str]:
    """The fewest blocks covering a set of prefixes: one blackhole route (or filter entry) each
    stands for thousands."""
    nets = [ipaddress.ip_network(p) for p in prefixes]
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    return [str(n) for n in (*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6))]


# ---- the data plane of Microsoft peering


def snat_ruleset(translations: list[tuple[str, str, list[str]]]) -> str:
    """The CE's source NAT toward Microsoft peering: (sub-interface, public pool, the interface's own
    addresses) each. Everything leaving that way from another source takes an address of the pool;
    the CE's own link address, which its BGP session uses, is left as it is."""
    if not translations:
        return ""
    rules = []
    for interface, pool, own in translations:
        network = ipaddress.IPv4Network(pool)
        keep = ", ".join([str(network), *own])
        rules.append(f'    oifname "{interface}" ip saddr != {{ {keep} }} '
                     f"counter snat to {network.network_address}-{network.broadcast_address};")
    return "\n".join([f"table ip {NAT_TABLE} {{", "  chain postrouting {",
                      "    type nat hook postrouting priority srcnat; policy accept;", *rules, "  }", "}", ""])


def services_answers() -> list[str]:
    """The blocks holding every service prefix of the catalogue, which an MSEE's Microsoft-peering
    namespace answers for (a local route each): Microsoft's services, reduced to a ping target."""
    return covering(str(p.prefix) for p in load_catalogue().prefixes)


def services_ruleset(answers: list[str], admitted: list[str]) -> str:
    """Microsoft's ACL in front of its services: only sources within the peering's advertised public
    prefixes are admitted (expressroute.md section 10), so an on-premises host needs the CE's NAT."""
    rules = []
    for version, ip in ((4, "ip"), (6, "ip6")):
        services = [a for a in answers if ipaddress.ip_network(a).version == version]
        if not services:
            continue
        sources = [a for a in admitted if ipaddress.ip_network(a).version == version]
        allowed = f"{ip} saddr != {{ {', '.join(sources)} }} " if sources else ""
        rules.append(f"    {ip} daddr {{ {', '.join(services)} }} {allowed}drop;")
    return "\n".join([f"table inet {SERVICES_TABLE} {{", "  chain input {",
                      "    type filter hook input priority filter; policy accept;", *rules, "  }", "}", ""])
