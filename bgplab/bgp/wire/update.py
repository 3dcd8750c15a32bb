"""UPDATE messages: decoding with RFC 7606 error handling, encoding, and packing routes into messages.

The decoder answers every damaged UPDATE the way RFC 7606 prescribes for that damage: it
raises `NotificationError` only where a session reset is required (framing of the message
itself, unparseable NLRI, a repeated MP attribute, an unrecognised well-known attribute);
otherwise it returns an `Update` whose `errors` say what was wrong and what was done. For
treat-as-withdraw, the returned Update already carries the NLRI as withdrawals, so a consumer
cannot install a route from a half-understood UPDATE by mistake.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from bgplab.bgp.wire.attributes import (
    Aggregator,
    AsSegment,
    LargeCommunity,
    PathAttributes,
    UnknownAttribute,
    encode_attributes,
    encode_mp_attribute,
    merge_as4_path,
)
from bgplab.bgp.wire.constants import (
    EXPECTED_FLAGS,
    HEADER_LEN,
    Afi,
    AsPathSegmentType,
    AttrFlag,
    AttrType,
    ErrorCode,
    MessageType,
    Safi,
    UpdateSubcode,
)
from bgplab.bgp.wire.errors import NotificationError, UpdateAction, UpdateError
from bgplab.bgp.wire.framing import frame
from bgplab.bgp.wire.nlri import ADDRESS_BITS, decode_prefixes, encode_prefixes, encoded_prefix_len

Family = tuple[int, int]
IPV4_UNICAST: Family = (int(Afi.IPV4), int(Safi.UNICAST))
IPV6_UNICAST: Family = (int(Afi.IPV6), int(Safi.UNICAST))

_TAW = UpdateAction.TREAT_AS_WITHDRAW
_DISCARD = UpdateAction.ATTRIBUTE_DISCARD
_MP = (AttrType.MP_REACH_NLRI, AttrType.MP_UNREACH_NLRI)
_DISCARD_ON_ERROR = frozenset(
    (AttrType.ATOMIC_AGGREGATE, AttrType.AGGREGATOR, AttrType.AS4_PATH, AttrType.AS4_AGGREGATOR)
)


@dataclass(frozen=True, slots=True)
class CodecContext:
    """What a session negotiated that changes how UPDATEs are read and written."""

    four_octet_as: bool = True
    ebgp: bool = True
    families: frozenset[Family] = frozenset({IPV4_UNICAST, IPV6_UNICAST})


@dataclass(frozen=True, slots=True)
class MpReach:
    afi: int
    safi: int
    next_hops: tuple[str, ...]
    nlri: list[int]


@dataclass(frozen=True, slots=True)
class MpUnreach:
    afi: int
    safi: int
    withdrawn: list[int]


@dataclass(slots=True)
class Update:
    withdrawn: list[int] = field(default_factory=list)
    attributes: PathAttributes | None = None
    nlri: list[int] = field(default_factory=list)
    mp_reach: MpReach | None = None
    mp_unreach: tuple[MpUnreach, ...] = ()
    errors: list[UpdateError] = field(default_factory=list)

    def end_of_rib(self) -> Family | None:
        """The family this UPDATE marks as End-of-RIB (RFC 4724 section 2), if it is one."""
        if self.withdrawn or self.nlri or self.mp_reach is not None:
            return None
        if not self.mp_unreach and self.attributes is None and not self.errors:
            return IPV4_UNICAST
        if len(self.mp_unreach) == 1 and not self.mp_unreach[0].withdrawn and _only_mp(self.attributes):
            return (self.mp_unreach[0].afi, self.mp_unreach[0].safi)
        return None

    def announced(self) -> Iterator[tuple[Family, list[int], tuple[str, ...]]]:
        """Each family's announced prefixes with their next hops."""
        if self.nlri and self.attributes is not None and self.attributes.next_hop is not None:
            yield IPV4_UNICAST, self.nlri, (self.attributes.next_hop,)
        if self.mp_reach is not None and self.mp_reach.nlri:
            yield (self.mp_reach.afi, self.mp_reach.safi), self.mp_reach.nlri, self.mp_reach.next_hops

    def withdrawals(self) -> Iterator[tuple[Family, list[int]]]:
        if self.withdrawn:
            yield IPV4_UNICAST, self.withdrawn
        for mp in self.mp_unreach:
            if mp.withdrawn:
                yield (mp.afi, mp.safi), mp.withdrawn


def _only_mp(attrs: PathAttributes | None) -> bool:
    return attrs is None or attrs == PathAttributes()


def _reset(subcode: int, reason: str, data: bytes = b"") -> NotificationError:
    return NotificationError(ErrorCode.UPDATE_MESSAGE, subcode, data, reason)


def _decode_as_path(value: bytes, asn_size: int) -> tuple[AsSegment, ...] | None:
    """Decode AS_PATH/AS4_PATH segments; None when malformed in any way RFC 7606 section 7.2 lists."""
    segments: list[AsSegment] = []
    fmt = "!%dI" if asn_size == 4 else "!%dH"
    i, end = 0, len(value)
    while i < end:
        if end - i < 2:
            return None
        seg_type, count = value[i], value[i + 1]
        if seg_type < 1 or seg_type > 4 or count == 0:
            return None
        j = i + 2 + count * asn_size
        if j > end:
            return None
        segments.append((seg_type, struct.unpack_from(fmt % count, value, i + 2)))
        i = j
    return tuple(segments)


def _decode_mp_reach(value: bytes, ctx: CodecContext) -> MpReach | None:
    """None for a family this session did not negotiate: RFC 4760 lets us ignore it."""
    if len(value) < 5:
        raise _reset(UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, "MP_REACH_NLRI shorter than 5 bytes")
    afi, safi, nh_len = struct.unpack_from("!HBB", value)
    nlri_start = 4 + nh_len + 1
    if nlri_start > len(value):
        raise _reset(UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, f"MP_REACH_NLRI next hop length {nh_len} overruns")
    if (afi, safi) not in ctx.families:
        return None
    nh = value[4 : 4 + nh_len]
    if afi == Afi.IPV6 and nh_len in (16, 32):
        hops = tuple(socket.inet_ntop(socket.AF_INET6, nh[k : k + 16]) for k in range(0, nh_len, 16))
    elif afi == Afi.IPV4 and nh_len == 4:
        hops = (socket.inet_ntoa(nh),)
    elif afi == Afi.IPV4 and nh_len in (16, 32):  # RFC 8950 IPv6 next hop for IPv4 NLRI
        hops = tuple(socket.inet_ntop(socket.AF_INET6, nh[k : k + 16]) for k in range(0, nh_len, 16))
    else:
        # RFC 7606 section 7.11: a next hop of the wrong length is a session reset.
        raise _reset(UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, f"MP_REACH_NLRI next hop length {nh_len} for AFI {afi}")
    return MpReach(afi, safi, hops, decode_prefixes(afi, value, nlri_start, len(value)))


def _decode_mp_unreach(value: bytes, ctx: CodecContext) -> MpUnreach | None:
    if len(value) < 3:
        raise _reset(UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, "MP_UNREACH_NLRI shorter than 3 bytes")
    afi, safi = struct.unpack_from("!HB", value)
    if (afi, safi) not in ctx.families:
        return None
    return MpUnreach(afi, safi, decode_prefixes(afi, value, 3, len(value)))


def decode_update(body: bytes, ctx: CodecContext, cache: dict[bytes, PathAttributes] | None = None) -> Update:
    """Decode an UPDATE body (after the 19-byte header).

    `cache` maps raw attribute bytes to decoded attributes for one session: real tables repeat
    attribute sets, and decoding each set once is the larger part of ingest speed. Only
    complete, error-free, MP-free attribute sets are cached, so a hit needs no checks.
    """
    blen = len(body)
    wlen = (body[0] << 8) | body[1]
    if 2 + wlen + 2 > blen:
        raise _reset(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, f"withdrawn routes length {wlen} overruns the message")
    alen = (body[2 + wlen] << 8) | body[3 + wlen]
    a_start = 4 + wlen
    a_end = a_start + alen
    if a_end > blen:
        raise _reset(
            UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
            f"withdrawn length {wlen} + attribute length {alen} exceed the message",
        )
    withdrawn = decode_prefixes(Afi.IPV4, body, 2, 2 + wlen) if wlen else []
    nlri = decode_prefixes(Afi.IPV4, body, a_end, blen) if a_end < blen else []
    update = Update(withdrawn=withdrawn, nlri=nlri)
    if not alen:
        if nlri:
            update.errors.append(UpdateError(_TAW, None, "NLRI without path attributes"))
            update.withdrawn = withdrawn + nlri
            update.nlri = []
        return update
    if cache is not None:
        raw = body[a_start:a_end]
        hit = cache.get(raw)
        if hit is not None:
            update.attributes = hit
            return update
    _decode_attributes(body, a_start, a_end, ctx, update)
    if cache is not None and update.attributes is not None and not update.errors and update.mp_reach is None:
        attrs = update.attributes
        if not update.mp_unreach and attrs.origin is not None and attrs.as_path is not None and attrs.next_hop:
            if len(cache) >= 262144:
                cache.clear()  # bounded: a table of mostly unique sets must not double its memory
            cache[raw] = attrs
    return update


def _decode_attributes(body: bytes, i: int, end: int, ctx: CodecContext, update: Update) -> None:
    errors = update.errors
    seen: set[int] = set()
    origin: int | None = None
    as_path: tuple[AsSegment, ...] | None = None
    as4_path: tuple[AsSegment, ...] | None = None
    next_hop: str | None = None
    med: int | None = None
    local_pref: int | None = None
    atomic = False
    aggregator: Aggregator | None = None
    as4_aggregator: Aggregator | None = None
    communities: tuple[int, ...] = ()
    large: tuple[LargeCommunity, ...] = ()
    extended: tuple[int, ...] = ()
    originator_id: str | None = None
    cluster_list: tuple[str, ...] = ()
    otc: int | None = None
    unknown: list[UnknownAttribute] = []
    asn_size = 4 if ctx.four_octet_as else 2
    mp_unreach: list[MpUnreach] = []

    while i < end:
        if end - i < 3:
            errors.append(UpdateError(_TAW, None, f"{end - i} stray bytes after the last attribute"))
            break
        flags = body[i]
        atype = body[i + 1]
        if flags & AttrFlag.EXTENDED_LENGTH:
            if end - i < 4:
                errors.append(UpdateError(_TAW, atype, "truncated extended-length attribute header"))
                break
            length = (body[i + 2] << 8) | body[i + 3]
            vstart = i + 4
        else:
            length = body[i + 2]
            vstart = i + 3
        vend = vstart + length
        if vend > end:
            errors.append(UpdateError(_TAW, atype, f"length {length} overruns the attribute list"))
            break
        i = vend
        if atype in seen:
            if atype in _MP:
                raise _reset(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, f"attribute {atype} appears twice")
            errors.append(UpdateError(_DISCARD, atype, "repeated attribute; the first is kept"))
            continue
        seen.add(atype)
        expected = EXPECTED_FLAGS.get(atype)
        if expected is None:
            if not flags & AttrFlag.OPTIONAL:
                raise _reset(
                    UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                    f"unrecognized well-known attribute {atype}",
                    body[vstart - (4 if flags & AttrFlag.EXTENDED_LENGTH else 3) : vend],
                )
            if flags & AttrFlag.TRANSITIVE:
                unknown.append(UnknownAttribute(flags & 0xE0, atype, body[vstart:vend]))
            continue
        value = body[vstart:vend]
        if flags & 0xC0 != expected:
            # RFC 7606 section 3 c: a flags error is that attribute's own malformation.
            discard = atype in _DISCARD_ON_ERROR or (atype == AttrType.LOCAL_PREF and ctx.ebgp)
            action = _DISCARD if discard else _TAW
            errors.append(UpdateError(action, atype, f"flags 0x{flags:02x} conflict with the attribute type"))
            if atype not in _MP:
                continue
        if atype == AttrType.ORIGIN:
            if length != 1 or value[0] > 2:
                errors.append(UpdateError(_TAW, atype, f"malformed ORIGIN ({value.hex()})"))
            else:
                origin = value[0]
        elif atype == AttrType.AS_PATH:
            as_path = _decode_as_path(value, asn_size)
            if as_path is None:
                errors.append(UpdateError(_TAW, atype, "malformed AS_PATH"))
            elif ctx.ebgp and any(t >= AsPathSegmentType.AS_CONFED_SEQUENCE for t, _ in as_path):
                errors.append(UpdateError(_TAW, atype, "confederation segment from an external peer"))
            elif any(0 in seg for _, seg in as_path):
                errors.append(UpdateError(_TAW, atype, "AS number 0 in AS_PATH (RFC 7607)"))
        elif atype == AttrType.NEXT_HOP:
            if length != 4:
                errors.append(UpdateError(_TAW, atype, f"NEXT_HOP length {length}"))
            else:
                next_hop = socket.inet_ntoa(value)
        elif atype == AttrType.MULTI_EXIT_DISC:
            if length != 4:
                errors.append(UpdateError(_TAW, atype, f"MULTI_EXIT_DISC length {length}"))
            else:
                med = int.from_bytes(value, "big")
        elif atype == AttrType.LOCAL_PREF:
            if ctx.ebgp:
                errors.append(UpdateError(_DISCARD, atype, "LOCAL_PREF from an external peer"))
            elif length != 4:
                errors.append(UpdateError(_TAW, atype, f"LOCAL_PREF length {length}"))
            else:
                local_pref = int.from_bytes(value, "big")
        elif atype == AttrType.COMMUNITIES:
            if length == 0 or length % 4:
                errors.append(UpdateError(_TAW, atype, f"COMMUNITIES length {length}"))
            else:
                communities = struct.unpack("!%dI" % (length // 4), value)
        elif atype == AttrType.LARGE_COMMUNITIES:
            if length == 0 or length % 12:
                errors.append(UpdateError(_TAW, atype, f"LARGE_COMMUNITIES length {length}"))
            else:
                large = tuple(struct.iter_unpack("!III", value))
        elif atype == AttrType.EXTENDED_COMMUNITIES:
            if length == 0 or length % 8:
                errors.append(UpdateError(_TAW, atype, f"EXTENDED_COMMUNITIES length {length}"))
            else:
                extended = struct.unpack("!%dQ" % (length // 8), value)
        elif atype == AttrType.MP_REACH_NLRI:
            update.mp_reach = _decode_mp_reach(value, ctx)
        elif atype == AttrType.MP_UNREACH_NLRI:
            unreach = _decode_mp_unreach(value, ctx)
            if unreach is not None:
                mp_unreach.append(unreach)
        elif atype == AttrType.ATOMIC_AGGREGATE:
            if length:
                errors.append(UpdateError(_DISCARD, atype, f"ATOMIC_AGGREGATE length {length}"))
            else:
                atomic = True
        elif atype == AttrType.AGGREGATOR:
            if length != asn_size + 4:
                errors.append(UpdateError(_DISCARD, atype, f"AGGREGATOR length {length}"))
            else:
                aggregator = Aggregator(int.from_bytes(value[:asn_size], "big"), socket.inet_ntoa(value[asn_size:]))
        elif atype == AttrType.AS4_PATH:
            path4 = _decode_as_path(value, 4)
            if path4 is None:
                errors.append(UpdateError(_DISCARD, atype, "malformed AS4_PATH"))
            elif any(0 in seg for _, seg in path4):
                errors.append(UpdateError(_DISCARD, atype, "AS number 0 in AS4_PATH (RFC 7607)"))
            elif ctx.four_octet_as:
                errors.append(UpdateError(_DISCARD, atype, "AS4_PATH on a 4-octet AS session"))
            else:
                # RFC 6793 section 6: confederation segments are removed, the rest is used.
                as4_path = tuple(seg for seg in path4 if seg[0] < AsPathSegmentType.AS_CONFED_SEQUENCE)
        elif atype == AttrType.AS4_AGGREGATOR:
            if length != 8:
                errors.append(UpdateError(_DISCARD, atype, f"AS4_AGGREGATOR length {length}"))
            elif not ctx.four_octet_as:
                as4_aggregator = Aggregator(int.from_bytes(value[:4], "big"), socket.inet_ntoa(value[4:]))
        elif atype == AttrType.ORIGINATOR_ID:
            if length != 4:
                errors.append(UpdateError(_TAW, atype, f"ORIGINATOR_ID length {length}"))
            else:
                originator_id = socket.inet_ntoa(value)
        elif atype == AttrType.CLUSTER_LIST:
            if length == 0 or length % 4:
                errors.append(UpdateError(_TAW, atype, f"CLUSTER_LIST length {length}"))
            else:
                cluster_list = tuple(socket.inet_ntoa(value[k : k + 4]) for k in range(0, length, 4))
        elif atype == AttrType.ONLY_TO_CUSTOMER:
            if length != 4:
                errors.append(UpdateError(_TAW, atype, f"ONLY_TO_CUSTOMER length {length}"))
            else:
                otc = int.from_bytes(value, "big")

    # RFC 6793 section 4.2.3: AGGREGATOR decides whether AS4_* are believed.
    if as4_aggregator is not None and aggregator is not None:
        if aggregator.asn == 23456:
            aggregator = as4_aggregator
        else:
            as4_path = None
    if as4_path is not None and as_path is not None:
        as_path = merge_as4_path(as_path, as4_path)
    update.mp_unreach = tuple(mp_unreach)

    has_nlri = bool(update.nlri) or (update.mp_reach is not None and bool(update.mp_reach.nlri))
    if has_nlri and not any(e.action is _TAW for e in errors):
        missing = [
            name
            for name, present in (
                ("ORIGIN", origin is not None),
                ("AS_PATH", as_path is not None),
                ("NEXT_HOP", next_hop is not None or not update.nlri),
            )
            if not present
        ]
        if missing:
            errors.append(UpdateError(_TAW, None, "missing well-known attribute " + ", ".join(missing)))
    if any(e.action is _TAW for e in errors):
        treat_as_withdraw(update)
        return
    update.attributes = PathAttributes(
        origin=origin,
        as_path=as_path,
        next_hop=next_hop,
        med=med,
        local_pref=local_pref,
        atomic_aggregate=atomic,
        aggregator=aggregator,
        communities=communities,
        large_communities=large,
        extended_communities=extended,
        originator_id=originator_id,
        cluster_list=cluster_list,
        only_to_customer=otc,
        unknown=tuple(unknown),
    )


def treat_as_withdraw(update: Update) -> None:
    """Turn announcements into withdrawals (RFC 7606 section 2) and drop the attributes."""
    if update.nlri:
        update.withdrawn = update.withdrawn + update.nlri
        update.nlri = []
    reach = update.mp_reach
    if reach is not None:
        update.mp_unreach = update.mp_unreach + (MpUnreach(reach.afi, reach.safi, reach.nlri),)
        update.mp_reach = None
    update.attributes = None


# ---------------------------------------------------------------- encoding


def _mp_reach_value(afi: int, safi: int, next_hops: tuple[str, ...], nlri_bytes: bytes) -> bytes:
    family = socket.AF_INET if afi == Afi.IPV4 and ":" not in next_hops[0] else socket.AF_INET6
    nh = b"".join(socket.inet_pton(family, h) for h in next_hops)
    return struct.pack("!HBB", afi, safi, len(nh)) + nh + b"\x00" + nlri_bytes


def encode_update(update: Update, ctx: CodecContext) -> bytes:
    """Encode one Update as one message, MP attributes first (RFC 7606 section 5.1)."""
    attrs = b""
    reach = update.mp_reach
    if reach is not None:
        value = _mp_reach_value(reach.afi, reach.safi, reach.next_hops, encode_prefixes(reach.afi, reach.nlri))
        attrs += encode_mp_attribute(AttrType.MP_REACH_NLRI, value)
    for unreach in update.mp_unreach:
        value = struct.pack("!HB", unreach.afi, unreach.safi) + encode_prefixes(unreach.afi, unreach.withdrawn)
        attrs += encode_mp_attribute(AttrType.MP_UNREACH_NLRI, value)
    if update.attributes is not None:
        attrs += encode_attributes(update.attributes, ctx.four_octet_as, ctx.ebgp)
    withdrawn = encode_prefixes(Afi.IPV4, update.withdrawn)
    body = (
        len(withdrawn).to_bytes(2, "big")
        + withdrawn
        + len(attrs).to_bytes(2, "big")
        + attrs
        + encode_prefixes(Afi.IPV4, update.nlri)
    )
    return frame(MessageType.UPDATE, body)


def end_of_rib(family: Family) -> bytes:
    if family == IPV4_UNICAST:
        return frame(MessageType.UPDATE, b"\x00\x00\x00\x00")
    return encode_update(Update(mp_unreach=(MpUnreach(family[0], family[1], []),)), CodecContext())


def _chunks(keys: list[int], room: int) -> Iterator[list[int]]:
    """Split prefixes into runs whose encoding fits in `room` bytes."""
    chunk: list[int] = []
    used = 0
    for key in keys:
        size = encoded_prefix_len(key)
        if used + size > room and chunk:
            yield chunk
            chunk, used = [], 0
        chunk.append(key)
        used += size
    if chunk:
        yield chunk


def pack_announcements(
    family: Family,
    attrs: PathAttributes,
    keys: list[int],
    ctx: CodecContext,
    max_length: int,
    next_hops: tuple[str, ...] = (),
) -> list[bytes]:
    """As few UPDATEs as fit all `keys` with one attribute set.

    IPv4 unicast uses NEXT_HOP and the plain NLRI field; other families use MP_REACH_NLRI
    with `next_hops`.
    """
    afi, safi = family
    widest = 1 + (ADDRESS_BITS[Afi(afi)] >> 3)
    if family == IPV4_UNICAST:
        encoded = encode_attributes(attrs, ctx.four_octet_as, ctx.ebgp)
        room = max_length - HEADER_LEN - 4 - len(encoded)
        if room < widest:
            raise ValueError(f"attributes of {len(encoded)} bytes leave no room for a prefix in {max_length}")
        head = b"\x00\x00" + len(encoded).to_bytes(2, "big") + encoded
        return [frame(MessageType.UPDATE, head + encode_prefixes(afi, c)) for c in _chunks(keys, room)]
    if not next_hops:
        raise ValueError(f"MP_REACH_NLRI for AFI {afi} needs a next hop")
    base = encode_attributes(attrs.with_changes(next_hop=None), ctx.four_octet_as, ctx.ebgp)
    empty_reach = _mp_reach_value(afi, safi, next_hops, b"")
    room = max_length - HEADER_LEN - 4 - len(base) - 4 - len(empty_reach)
    if room < widest:
        raise ValueError(f"attributes of {len(base)} bytes leave no room for a prefix in {max_length}")
    out = []
    for chunk in _chunks(keys, room):
        reach = encode_mp_attribute(AttrType.MP_REACH_NLRI, empty_reach + encode_prefixes(afi, chunk))
        attrs_bytes = reach + base
        out.append(frame(MessageType.UPDATE, b"\x00\x00" + len(attrs_bytes).to_bytes(2, "big") + attrs_bytes))
    return out


def pack_withdrawals(family: Family, keys: list[int], max_length: int) -> list[bytes]:
    afi, safi = family
    if family == IPV4_UNICAST:
        room = max_length - HEADER_LEN - 4
        return [
            frame(MessageType.UPDATE, len(w).to_bytes(2, "big") + w + b"\x00\x00")
            for w in (encode_prefixes(afi, c) for c in _chunks(keys, room))
        ]
    room = max_length - HEADER_LEN - 4 - 4 - 3
    out = []
    for chunk in _chunks(keys, room):
        value = struct.pack("!HB", afi, safi) + encode_prefixes(afi, chunk)
        attrs_bytes = encode_mp_attribute(AttrType.MP_UNREACH_NLRI, value)
        out.append(frame(MessageType.UPDATE, b"\x00\x00" + len(attrs_bytes).to_bytes(2, "big") + attrs_bytes))
    return out
