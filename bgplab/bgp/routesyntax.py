"""Routes written the way ExaBGP users write them, and their attributes as text.

`route 203.0.113.0/24 next-hop 192.0.2.1 as-path [ 65001 65002 ] origin igp med 10
local-preference 100 community [ 65001:1 no-export ] large-community [ 65001:1:1 ]`

People who inject routes with ExaBGP can reuse their files. As in ExaBGP, `as-path` is the
path before our own AS: on an eBGP session the speaker prepends its AS when it sends.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from bgplab.bgp.wire.attributes import Aggregator, AsSegment, PathAttributes
from bgplab.bgp.wire.constants import AsPathSegmentType, Origin, WellKnownCommunity
from bgplab.bgp.wire.nlri import parse_prefix
from bgplab.bgp.wire.update import IPV4_UNICAST, IPV6_UNICAST, Family

COMMUNITY_NAMES = {
    "no-export": WellKnownCommunity.NO_EXPORT,
    "no-advertise": WellKnownCommunity.NO_ADVERTISE,
    "no-export-subconfed": WellKnownCommunity.NO_EXPORT_SUBCONFED,
    "no-peer": WellKnownCommunity.NO_PEER,
    "graceful-shutdown": WellKnownCommunity.GRACEFUL_SHUTDOWN,
    "blackhole": WellKnownCommunity.BLACKHOLE,
    "accept-own": WellKnownCommunity.ACCEPT_OWN,
    "llgr-stale": WellKnownCommunity.LLGR_STALE,
    "no-llgr": WellKnownCommunity.NO_LLGR,
}
ORIGIN_NAMES = {"igp": Origin.IGP, "egp": Origin.EGP, "incomplete": Origin.INCOMPLETE}


class RouteSyntaxError(ValueError):
    """A route line that cannot be understood; the message says where and what would be valid."""


@dataclass(frozen=True, slots=True)
class RouteSpec:
    family: Family
    key: int
    attributes: PathAttributes
    text: str


# ---------------------------------------------------------------- text forms


def community_text(value: int) -> str:
    return f"{value >> 16}:{value & 0xFFFF}"


def large_community_text(value: tuple[int, int, int]) -> str:
    return f"{value[0]}:{value[1]}:{value[2]}"


def origin_text(origin: int | None) -> str | None:
    return None if origin is None else Origin(origin).name.lower()


def parse_community(text: str) -> int:
    named = COMMUNITY_NAMES.get(text.lower())
    if named is not None:
        return int(named)
    parts = text.split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise RouteSyntaxError(f"community {text!r}: expected A:B with 0 <= A, B <= 65535 or a well-known name")
    high, low = (int(p) for p in parts)
    if high > 0xFFFF or low > 0xFFFF:
        raise RouteSyntaxError(f"community {text!r}: each half must be 0..65535")
    return (high << 16) | low


def parse_large_community(text: str) -> tuple[int, int, int]:
    parts = text.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or any(int(p) > 0xFFFFFFFF for p in parts):
        raise RouteSyntaxError(f"large community {text!r}: expected A:B:C, each 0..4294967295")
    return int(parts[0]), int(parts[1]), int(parts[2])


def _asn(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 0xFFFFFFFF:
        raise RouteSyntaxError(f"AS number {text!r}: expected 0..4294967295")
    return int(text)


# ---------------------------------------------------------------- route lines


def _tokens(line: str) -> list[str]:
    for ch in "[]()":
        line = line.replace(ch, f" {ch} ")
    return line.split()


def _take_list(tokens: list[str], i: int) -> tuple[list[str], int]:
    """A bracketed list `[ a b ]` (parentheses kept as tokens) or a single value."""
    if i >= len(tokens):
        raise RouteSyntaxError("a value is missing at the end of the line")
    if tokens[i] != "[":
        return [tokens[i]], i + 1
    try:
        end = tokens.index("]", i)
    except ValueError:
        raise RouteSyntaxError("'[' without a closing ']'") from None
    return tokens[i + 1 : end], end + 1


def _as_path(items: list[str]) -> tuple[AsSegment, ...]:
    segments: list[AsSegment] = []
    seq: list[int] = []
    i = 0
    while i < len(items):
        if items[i] == "(":
            try:
                end = items.index(")", i)
            except ValueError:
                raise RouteSyntaxError("as-path set '(' without ')'") from None
            if seq:
                segments.append((int(AsPathSegmentType.AS_SEQUENCE), tuple(seq)))
                seq = []
            segments.append((int(AsPathSegmentType.AS_SET), tuple(_asn(t) for t in items[i + 1 : end])))
            i = end + 1
        else:
            seq.append(_asn(items[i]))
            i += 1
    if seq:
        segments.append((int(AsPathSegmentType.AS_SEQUENCE), tuple(seq)))
    return tuple(segments)


def _value(tokens: list[str], i: int, keyword: str) -> str:
    if i >= len(tokens):
        raise RouteSyntaxError(f"{keyword} needs a value")
    return tokens[i]


def _uint32(text: str, keyword: str) -> int:
    if not text.isdigit() or int(text) > 0xFFFFFFFF:
        raise RouteSyntaxError(f"{keyword} {text!r}: expected 0..4294967295")
    return int(text)


def parse_route(line: str) -> RouteSpec:
    """Parse one `route PREFIX attribute...` line."""
    tokens = _tokens(line)
    if tokens and tokens[0] == "announce":
        tokens = tokens[1:]
    if len(tokens) < 2 or tokens[0] != "route":
        raise RouteSyntaxError("expected 'route PREFIX [next-hop ADDR] [as-path [ ... ]] ...'")
    try:
        family_afi, key = parse_prefix(tokens[1])
    except ValueError as exc:
        raise RouteSyntaxError(f"prefix {tokens[1]!r}: {exc}") from None
    family = IPV4_UNICAST if family_afi == 1 else IPV6_UNICAST
    fields: dict[str, object] = {"origin": int(Origin.IGP), "as_path": ()}
    communities: list[int] = []
    large: list[tuple[int, int, int]] = []
    i = 2
    while i < len(tokens):
        word = tokens[i]
        i += 1
        if word == "next-hop":
            hop = _value(tokens, i, word)
            i += 1
            if hop != "self":
                try:
                    addr = ipaddress.ip_address(hop)
                except ValueError:
                    raise RouteSyntaxError(f"next-hop {hop!r} is not an IP address (or 'self')") from None
                fields["next_hop"] = str(addr)
        elif word == "as-path":
            items, i = _take_list(tokens, i)
            fields["as_path"] = _as_path(items)
        elif word == "origin":
            name = _value(tokens, i, word).lower()
            i += 1
            if name not in ORIGIN_NAMES:
                raise RouteSyntaxError(f"origin {name!r}: expected igp, egp or incomplete")
            fields["origin"] = int(ORIGIN_NAMES[name])
        elif word in ("med", "local-preference"):
            fields["med" if word == "med" else "local_pref"] = _uint32(_value(tokens, i, word), word)
            i += 1
        elif word == "community":
            items, i = _take_list(tokens, i)
            communities += [parse_community(t) for t in items]
        elif word == "large-community":
            items, i = _take_list(tokens, i)
            large += [parse_large_community(t) for t in items]
        elif word == "atomic-aggregate":
            fields["atomic_aggregate"] = True
        elif word == "aggregator":
            if i < len(tokens) and tokens[i] == "(" and ")" in tokens[i:]:
                end = tokens.index(")", i)
                items, i = tokens[i + 1 : end], end + 1
            else:
                items, i = _take_list(tokens, i)
            text = "".join(items)
            asn, _, address = text.partition(":")
            try:
                fields["aggregator"] = Aggregator(_asn(asn.strip()), str(ipaddress.IPv4Address(address.strip())))
            except ValueError:
                raise RouteSyntaxError(f"aggregator {text!r}: expected ( ASN:A.B.C.D )") from None
        else:
            raise RouteSyntaxError(
                f"unknown keyword {word!r}; known: next-hop, as-path, origin, med, local-preference, "
                "community, large-community, atomic-aggregate, aggregator"
            )
    fields["communities"] = tuple(communities)
    fields["large_communities"] = tuple(large)
    attrs = PathAttributes(**fields)  # type: ignore[arg-type]
    if attrs.next_hop is not None and (":" in attrs.next_hop) != (family == IPV6_UNICAST):
        raise RouteSyntaxError(f"next-hop {attrs.next_hop} is not of the prefix's address family")
    return RouteSpec(family, key, attrs, line.strip())


def parse_route_file(path: str) -> Iterator[RouteSpec]:
    """Every route of a file; blank lines and # comments are skipped; errors name file and line."""
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                yield parse_route(line)
            except RouteSyntaxError as exc:
                raise RouteSyntaxError(f"{path}:{number}: {exc}") from None


def attributes_json(attrs: PathAttributes) -> dict[str, object]:
    """The route attributes of the `bgplab speak --json` contract, plus the rarer ones when present."""
    out: dict[str, object] = {
        "as_path": attrs.asns(),
        "next_hop": attrs.next_hop,
        "origin": origin_text(attrs.origin),
        "med": attrs.med,
        "local_pref": attrs.local_pref,
        "communities": [community_text(c) for c in attrs.communities],
        "large_communities": [large_community_text(c) for c in attrs.large_communities],
    }
    if any(seg_type != AsPathSegmentType.AS_SEQUENCE for seg_type, _ in attrs.as_path or ()):
        out["as_path_segments"] = [{"type": t, "asns": list(a)} for t, a in attrs.as_path or ()]
    if attrs.extended_communities:
        out["extended_communities"] = [f"{c:016x}" for c in attrs.extended_communities]
    if attrs.atomic_aggregate:
        out["atomic_aggregate"] = True
    if attrs.aggregator is not None:
        out["aggregator"] = f"{attrs.aggregator.asn}:{attrs.aggregator.address}"
    if attrs.unknown:
        out["unknown"] = [{"type": u.type, "flags": u.flags, "value": u.value.hex()} for u in attrs.unknown]
    return out
