"""Path attributes: the decoded form shared by every prefix of an UPDATE, and their encoding.

`PathAttributes` is immutable and hashable so one object can be shared by all the prefixes
that arrived with it and compared for multipath. Only the attributes a BGP speaker acts on
are decoded; unknown optional transitive ones are kept raw and passed on with the Partial bit
(RFC 4271 section 5), unknown optional non-transitive ones are dropped.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field, replace

from bgplab.bgp.wire.constants import (
    AS_TRANS,
    AsPathSegmentType,
    AttrFlag,
    AttrType,
)

AsSegment = tuple[int, tuple[int, ...]]
"""(segment type, AS numbers); RFC 4271 section 4.3."""

LargeCommunity = tuple[int, int, int]

_SEQ = AsPathSegmentType.AS_SEQUENCE
_SET = AsPathSegmentType.AS_SET
_CONFED = (AsPathSegmentType.AS_CONFED_SEQUENCE, AsPathSegmentType.AS_CONFED_SET)


@dataclass(frozen=True, slots=True)
class Aggregator:
    asn: int
    address: str


@dataclass(frozen=True, slots=True)
class UnknownAttribute:
    flags: int
    type: int
    value: bytes


@dataclass(frozen=True, slots=True)
class PathAttributes:
    """The attributes of a route, without the NLRI-carrying MP_REACH/MP_UNREACH.

    `next_hop` is the IPv4 NEXT_HOP attribute; IPv6 next hops travel in MP_REACH and are
    kept with the route by whoever stores it.
    """

    origin: int | None = None
    as_path: tuple[AsSegment, ...] | None = None
    next_hop: str | None = None
    med: int | None = None
    local_pref: int | None = None
    atomic_aggregate: bool = False
    aggregator: Aggregator | None = None
    communities: tuple[int, ...] = ()
    large_communities: tuple[LargeCommunity, ...] = ()
    extended_communities: tuple[int, ...] = ()
    originator_id: str | None = None
    cluster_list: tuple[str, ...] = ()
    only_to_customer: int | None = None
    unknown: tuple[UnknownAttribute, ...] = field(default=())

    def asns(self) -> list[int]:
        """Every AS number in the path, in order, whatever the segment type."""
        return [asn for _, seg in self.as_path or () for asn in seg]

    def as_path_length(self) -> int:
        """Path length for the decision process: a set counts one, confederation segments none."""
        total = 0
        for seg_type, asns in self.as_path or ():
            if seg_type == _SEQ:
                total += len(asns)
            elif seg_type == _SET:
                total += 1
        return total

    def with_changes(self, **changes: object) -> PathAttributes:
        return replace(self, **changes)  # type: ignore[arg-type]


def as_sequence(*asns: int) -> tuple[AsSegment, ...]:
    """A path of one AS_SEQUENCE, the shape nearly every route has."""
    return ((int(_SEQ), tuple(asns)),) if asns else ()


def prepend(path: tuple[AsSegment, ...] | None, asn: int, times: int = 1) -> tuple[AsSegment, ...]:
    """Prepend `asn` as an eBGP speaker does (RFC 4271 section 5.1.2), starting a segment if needed."""
    path = path or ()
    add = (asn,) * times
    if path and path[0][0] == _SEQ and len(path[0][1]) + times <= 255:
        return ((int(_SEQ), add + path[0][1]),) + path[1:]
    return ((int(_SEQ), add),) + path


def merge_as4_path(as_path: tuple[AsSegment, ...], as4_path: tuple[AsSegment, ...]) -> tuple[AsSegment, ...]:
    """Rebuild the true path from AS_PATH and AS4_PATH as RFC 6793 section 4.2.3 says.

    When AS4_PATH is longer than AS_PATH it is ignored; otherwise the leading ASes of AS_PATH
    that AS4_PATH lacks are kept and AS4_PATH follows them.
    """

    def count(path: tuple[AsSegment, ...]) -> int:
        return sum(len(s) if t == _SEQ else 1 for t, s in path if t not in _CONFED)

    n_path, n_as4 = count(as_path), count(as4_path)
    if n_path < n_as4:
        return as_path
    keep = n_path - n_as4
    head: list[AsSegment] = []
    for seg_type, asns in as_path:
        if keep <= 0 and seg_type not in _CONFED:
            break
        if seg_type in _CONFED:
            head.append((seg_type, asns))
            continue
        if seg_type == _SEQ:
            take = asns[:keep]
            head.append((seg_type, take))
            keep -= len(take)
        else:
            head.append((seg_type, asns))
            keep -= 1
    return tuple(head) + as4_path


# ---------------------------------------------------------------- encoding


def _attr(flags: int, attr_type: int, value: bytes) -> bytes:
    length = len(value)
    if length > 255:
        return struct.pack("!BBH", flags | AttrFlag.EXTENDED_LENGTH, attr_type, length) + value
    return struct.pack("!BBB", flags & ~AttrFlag.EXTENDED_LENGTH, attr_type, length) + value


def encode_as_path(path: tuple[AsSegment, ...], four_octet: bool) -> bytes:
    out = bytearray()
    fmt = "!%dI" if four_octet else "!%dH"
    for seg_type, asns in path:
        for start in range(0, len(asns), 255):  # an empty segment is malformed (RFC 7606): none sent
            chunk = asns[start : start + 255]
            if not four_octet:
                chunk = tuple(a if a <= 0xFFFF else AS_TRANS for a in chunk)
            out += struct.pack("!BB", seg_type, len(chunk)) + struct.pack(fmt % len(chunk), *chunk)
    return bytes(out)


def encode_mp_attribute(attr_type: int, value: bytes) -> bytes:
    """MP_REACH/MP_UNREACH always use the extended length form, so callers can size them up front."""
    return struct.pack("!BBH", AttrFlag.OPTIONAL | AttrFlag.EXTENDED_LENGTH, attr_type, len(value)) + value


def encode_attributes(attrs: PathAttributes, four_octet_as: bool, ebgp: bool) -> bytes:
    """Encode everything but MP_REACH/MP_UNREACH, in type order.

    On a session without 4-octet AS support, AS numbers above 65535 become AS_TRANS in
    AS_PATH and AGGREGATOR and the true values travel in AS4_PATH/AS4_AGGREGATOR (RFC 6793).
    LOCAL_PREF is never sent to an external peer (RFC 4271 section 5.1.5).
    """
    wk = int(AttrFlag.TRANSITIVE)
    opt_t = int(AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE)
    opt = int(AttrFlag.OPTIONAL)
    parts: list[tuple[int, bytes]] = []
    if attrs.origin is not None:
        parts.append((AttrType.ORIGIN, _attr(wk, AttrType.ORIGIN, bytes((attrs.origin,)))))
    if attrs.as_path is not None:
        parts.append((AttrType.AS_PATH, _attr(wk, AttrType.AS_PATH, encode_as_path(attrs.as_path, four_octet_as))))
        # RFC 6793 section 3: AS4_PATH carries no confederation segments.
        as4 = tuple(seg for seg in attrs.as_path if seg[0] not in _CONFED)
        if not four_octet_as and any(a > 0xFFFF for _, seg in as4 for a in seg):
            parts.append((AttrType.AS4_PATH, _attr(opt_t, AttrType.AS4_PATH, encode_as_path(as4, True))))
    if attrs.next_hop is not None:
        parts.append((AttrType.NEXT_HOP, _attr(wk, AttrType.NEXT_HOP, socket.inet_aton(attrs.next_hop))))
    if attrs.med is not None:
        parts.append((AttrType.MULTI_EXIT_DISC, _attr(opt, AttrType.MULTI_EXIT_DISC, attrs.med.to_bytes(4, "big"))))
    if attrs.local_pref is not None and not ebgp:
        parts.append((AttrType.LOCAL_PREF, _attr(wk, AttrType.LOCAL_PREF, attrs.local_pref.to_bytes(4, "big"))))
    if attrs.atomic_aggregate:
        parts.append((AttrType.ATOMIC_AGGREGATE, _attr(wk, AttrType.ATOMIC_AGGREGATE, b"")))
    if attrs.aggregator is not None:
        agg = attrs.aggregator
        address = socket.inet_aton(agg.address)
        if four_octet_as:
            parts.append((AttrType.AGGREGATOR, _attr(opt_t, AttrType.AGGREGATOR, agg.asn.to_bytes(4, "big") + address)))
        else:
            two = agg.asn if agg.asn <= 0xFFFF else AS_TRANS
            parts.append((AttrType.AGGREGATOR, _attr(opt_t, AttrType.AGGREGATOR, two.to_bytes(2, "big") + address)))
            if agg.asn > 0xFFFF:
                value = agg.asn.to_bytes(4, "big") + address
                parts.append((AttrType.AS4_AGGREGATOR, _attr(opt_t, AttrType.AS4_AGGREGATOR, value)))
    if attrs.communities:
        value = struct.pack("!%dI" % len(attrs.communities), *attrs.communities)
        parts.append((AttrType.COMMUNITIES, _attr(opt_t, AttrType.COMMUNITIES, value)))
    if attrs.originator_id is not None and not ebgp:
        value = socket.inet_aton(attrs.originator_id)
        parts.append((AttrType.ORIGINATOR_ID, _attr(opt, AttrType.ORIGINATOR_ID, value)))
    if attrs.cluster_list and not ebgp:
        value = b"".join(socket.inet_aton(c) for c in attrs.cluster_list)
        parts.append((AttrType.CLUSTER_LIST, _attr(opt, AttrType.CLUSTER_LIST, value)))
    if attrs.extended_communities:
        value = b"".join(c.to_bytes(8, "big") for c in attrs.extended_communities)
        parts.append((AttrType.EXTENDED_COMMUNITIES, _attr(opt_t, AttrType.EXTENDED_COMMUNITIES, value)))
    if attrs.large_communities:
        value = b"".join(struct.pack("!III", *c) for c in attrs.large_communities)
        parts.append((AttrType.LARGE_COMMUNITIES, _attr(opt_t, AttrType.LARGE_COMMUNITIES, value)))
    if attrs.only_to_customer is not None:
        value = attrs.only_to_customer.to_bytes(4, "big")
        parts.append((AttrType.ONLY_TO_CUSTOMER, _attr(opt_t, AttrType.ONLY_TO_CUSTOMER, value)))
    for unknown in attrs.unknown:
        # We pass on what we did not understand: RFC 4271 section 9 requires the Partial bit.
        parts.append((unknown.type, _attr(unknown.flags | AttrFlag.PARTIAL, unknown.type, unknown.value)))
    parts.sort(key=lambda p: p[0])
    return b"".join(p[1] for p in parts)
