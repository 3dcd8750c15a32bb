"""Decoding UPDATE messages, with the RFC 7606 answer to every kind of damage.

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

from bgplab.bgp.wire.attributes import (
    Aggregator,
    AsSegment,
    LargeCommunity,
    PathAttributes,
    UnknownAttribute,
    _new_attributes,
    merge_as4_path,
)
from bgplab.bgp.wire.constants import (
    EXPECTED_FLAGS,
    Afi,
    AsPathSegmentType,
    AttrFlag,
    AttrType,
    ErrorCode,
    UpdateSubcode,
)
from bgplab.bgp.wire.errors import NotificationError, UpdateAction, UpdateError
from bgplab.bgp.wire.nlri import decode_prefixes
from bgplab.bgp.wire.update import CodecContext, MpReach, MpUnreach, Update, treat_as_withdraw

_TAW = UpdateAction.TREAT_AS_WITHDRAW
_DISCARD = UpdateAction.ATTRIBUTE_DISCARD
_MP = (int(AttrType.MP_REACH_NLRI), int(AttrType.MP_UNREACH_NLRI))
_DISCARD_ON_ERROR = frozenset(
    (AttrType.ATOMIC_AGGREGATE, AttrType.AGGREGATOR, AttrType.AS4_PATH, AttrType.AS4_AGGREGATOR)
)


def _reset(subcode: int, reason: str, data: bytes = b"") -> NotificationError:
    return NotificationError(ErrorCode.UPDATE_MESSAGE, subcode, data, reason)


# Plain ints for the hot paths: an IntEnum member costs a class attribute lookup per use.
_ORIGIN = int(AttrType.ORIGIN)
_AS_PATH = int(AttrType.AS_PATH)
_NEXT_HOP = int(AttrType.NEXT_HOP)
_MED = int(AttrType.MULTI_EXIT_DISC)
_LOCAL_PREF = int(AttrType.LOCAL_PREF)
_ATOMIC_AGGREGATE = int(AttrType.ATOMIC_AGGREGATE)
_AGGREGATOR = int(AttrType.AGGREGATOR)
_COMMUNITIES = int(AttrType.COMMUNITIES)
_ORIGINATOR_ID = int(AttrType.ORIGINATOR_ID)
_CLUSTER_LIST = int(AttrType.CLUSTER_LIST)
_MP_REACH = int(AttrType.MP_REACH_NLRI)
_MP_UNREACH = int(AttrType.MP_UNREACH_NLRI)
_EXTENDED_COMMUNITIES = int(AttrType.EXTENDED_COMMUNITIES)
_AS4_PATH = int(AttrType.AS4_PATH)
_AS4_AGGREGATOR = int(AttrType.AS4_AGGREGATOR)
_LARGE_COMMUNITIES = int(AttrType.LARGE_COMMUNITIES)
_ONLY_TO_CUSTOMER = int(AttrType.ONLY_TO_CUSTOMER)
_F_OPTIONAL = int(AttrFlag.OPTIONAL)
_F_TRANSITIVE = int(AttrFlag.TRANSITIVE)
_F_EXTENDED_LENGTH = int(AttrFlag.EXTENDED_LENGTH)
_EXPECTED: dict[int, int] = {int(t): int(f) for t, f in EXPECTED_FLAGS.items()}
_SEG_SEQUENCE = int(AsPathSegmentType.AS_SEQUENCE)
_SEG_CONFED_SEQUENCE = int(AsPathSegmentType.AS_CONFED_SEQUENCE)
_AFI_IPV4 = int(Afi.IPV4)

# unpack_from of n 2- or 4-octet numbers, by n; AS_PATH segments hold at most 255.
_UNPACK_U16 = [struct.Struct("!%dH" % n).unpack_from for n in range(256)]
_UNPACK_U32 = [struct.Struct("!%dI" % n).unpack_from for n in range(256)]
_unpack_u32 = struct.Struct("!I").unpack_from


class DecodeCache:
    """What one session's decoder remembers between UPDATEs: one per session, reset with it.

    `attributes` maps the raw bytes of an attribute set to its decoded `PathAttributes`: real
    tables repeat attribute sets, and a repeated set is then neither decoded nor stored twice.
    Only complete, error-free, MP-free sets are kept, so a hit needs no checks. When sets do
    not repeat (a sender that packs each set into one UPDATE), keeping their bytes would cost
    time and memory for nothing: the hit rate is judged every `WINDOW` lookups, and below
    `MIN_HIT_RATE` the table is emptied and left unused for the next `PAUSE` UPDATEs, after
    which it is tried again.

    `next_hops` and `asns` make equal values one object: IPv4 next hops (by their 32-bit
    value) and AS numbers. Nearly every route of a session shares its next hop, and AS numbers
    recur across paths; each one shared saves its bytes once per UPDATE for as long as the
    routes are held.

    Entries depend on the session's `CodecContext` (4-octet AS, eBGP), so a cache must not be
    shared between contexts. Every table is bounded: when one is full it is emptied.
    """

    __slots__ = ("asns", "attributes", "hits", "lookups", "next_hops", "paused")

    LIMIT = 262144
    """Entries per table before it is emptied."""
    WINDOW = 4096
    """Lookups in `attributes` per verdict on its hit rate."""
    MIN_HIT_RATE = 0.125
    """About where a hit (a decode saved) pays for the misses' copying and storing."""
    PAUSE = 32768
    """UPDATEs decoded without `attributes` after a poor window."""

    def __init__(self) -> None:
        self.attributes: dict[bytes, PathAttributes] = {}
        self.next_hops: dict[int, str] = {}
        self.asns: dict[int, int] = {}
        self.lookups = 0
        """Lookups in `attributes` in this window; `decode_update` counts them and its hits inline,
        as a method call per UPDATE would cost more than the counting."""
        self.hits = 0
        self.paused = 0
        """UPDATEs still to decode without using `attributes`."""

    def clear(self) -> None:
        self.attributes.clear()
        self.next_hops.clear()
        self.asns.clear()
        self.lookups = self.hits = self.paused = 0

    def judge(self) -> None:
        """At the end of a window: keep using `attributes` or pause it."""
        if self.hits < self.lookups * self.MIN_HIT_RATE:
            self.attributes.clear()
            self.paused = self.PAUSE
        self.lookups = self.hits = 0


def _decode_as_path(data: bytes, i: int, end: int, asn_size: int) -> tuple[AsSegment, ...] | None:
    """Decode AS_PATH/AS4_PATH segments from data[i:end]; None when malformed in any way RFC 7606
    section 7.2 lists."""
    segments: list[AsSegment] = []
    unpack = _UNPACK_U32 if asn_size == 4 else _UNPACK_U16
    while i < end:
        if end - i < 2:
            return None
        seg_type, count = data[i], data[i + 1]
        if seg_type < 1 or seg_type > 4 or count == 0:
            return None
        j = i + 2 + count * asn_size
        if j > end:
            return None
        segments.append((seg_type, unpack[count](data, i + 2)))
        i = j
    return tuple(segments)


_unpack_common_head = struct.Struct("!IHBBB").unpack_from
"""ORIGIN whole (flags, type, length 1, value), then AS_PATH flags and type, length, first segment type and count."""
_unpack_next_hop = struct.Struct("!HBI").unpack_from
_ORIGIN_HEAD = (_F_TRANSITIVE << 16) | (_ORIGIN << 8) | 1
_AS_PATH_HEAD = (_F_TRANSITIVE << 8) | _AS_PATH
_NEXT_HOP_HEAD = (_F_TRANSITIVE << 8) | _NEXT_HOP
_F_OPTIONAL_TRANSITIVE = _F_OPTIONAL | _F_TRANSITIVE
_iter_unpack = struct.iter_unpack


def _decode_common(
    body: bytes, i: int, end: int, ctx: CodecContext, cache: DecodeCache | None
) -> PathAttributes | None:
    """The attribute list nearly every UPDATE carries, or None for anything else.

    Accepted: ORIGIN, an AS_PATH of one AS_SEQUENCE and NEXT_HOP, then any of MED,
    LOCAL_PREF (iBGP only), COMMUNITIES and LARGE_COMMUNITIES, in type order, each once, with
    exactly its usual flags, a one-byte length, and valid. Such a list decodes without errors
    and its attributes are all there is to it. Anything else, valid or not, returns None and
    goes to `_decode_attributes`, which gives the same result for what is accepted here.
    """
    if end - i < 16:
        return None
    origin_word, as_path_head, length, seg_type, count = _unpack_common_head(body, i)
    if origin_word >> 8 != _ORIGIN_HEAD or as_path_head != _AS_PATH_HEAD or seg_type != _SEG_SEQUENCE or not count:
        return None
    origin = origin_word & 0xFF
    vstart = i + 7
    i = vstart + length
    four_octet = ctx.four_octet_as
    if origin > 2 or i + 7 > end or length != 2 + (4 if four_octet else 2) * count:
        return None
    seq = (_UNPACK_U32 if four_octet else _UNPACK_U16)[count](body, vstart + 2)
    if 0 in seq:
        return None
    next_hop_head, length, hop = _unpack_next_hop(body, i)
    if next_hop_head != _NEXT_HOP_HEAD or length != 4:
        return None
    i += 7
    med: int | None = None
    local_pref: int | None = None
    communities: tuple[int, ...] = ()
    large: tuple[LargeCommunity, ...] = ()
    last = _NEXT_HOP
    while i < end:
        if end - i < 3:
            return None
        flags = body[i]
        atype = body[i + 1]
        length = body[i + 2]
        vstart = i + 3
        i = vstart + length
        if i > end or atype <= last:
            return None
        last = atype
        if atype == _COMMUNITIES:
            if flags != _F_OPTIONAL_TRANSITIVE or not length or length & 3:
                return None
            communities = _UNPACK_U32[length >> 2](body, vstart)
        elif atype == _MED:
            if flags != _F_OPTIONAL or length != 4:
                return None
            med = _unpack_u32(body, vstart)[0]
        elif atype == _LOCAL_PREF:
            if flags != _F_TRANSITIVE or length != 4 or ctx.ebgp:
                return None
            local_pref = _unpack_u32(body, vstart)[0]
        elif atype == _LARGE_COMMUNITIES:
            if flags != _F_OPTIONAL_TRANSITIVE or not length or length % 12:
                return None
            large = tuple(_iter_unpack("!III", body[vstart:i]))
        else:
            return None
    next_hop: str | None
    if cache is None:
        next_hop = socket.inet_ntoa(hop.to_bytes(4, "big"))
    else:
        next_hops = cache.next_hops
        next_hop = next_hops.get(hop)
        if next_hop is None:
            next_hop = next_hops[hop] = socket.inet_ntoa(hop.to_bytes(4, "big"))
        same = cache.asns.setdefault
        seq = tuple(map(same, seq, seq))
    return _new_attributes(origin, ((_SEG_SEQUENCE, seq),), next_hop, med, local_pref, communities, large, None)


def _next_hop(hop: int, cache: DecodeCache) -> str:
    """The session's one string for this IPv4 next hop."""
    next_hops = cache.next_hops
    text = next_hops.get(hop)
    if text is None:
        text = next_hops[hop] = socket.inet_ntoa(hop.to_bytes(4, "big"))
    return text


def _intern_path(path: tuple[AsSegment, ...], cache: DecodeCache) -> tuple[AsSegment, ...]:
    """The path with its AS numbers shared with the rest of the session's."""
    same = cache.asns.setdefault
    return tuple([(seg_type, tuple(map(same, seg, seg))) for seg_type, seg in path])


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


def decode_update(body: bytes, ctx: CodecContext, cache: DecodeCache | None = None) -> Update:
    """Decode an UPDATE body (after the 19-byte header).

    `cache` is the session's `DecodeCache`: attribute sets seen before are not decoded again,
    and next hops and AS numbers are shared between UPDATEs. Without one, every UPDATE is
    decoded on its own; the result is equal either way.

    The attribute lists nearly every UPDATE carries take a straight-line path
    (`_decode_common`); everything else, including every damaged list, goes through the
    general decoder with RFC 7606 handling.
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
    withdrawn = decode_prefixes(_AFI_IPV4, body, 2, 2 + wlen) if wlen else []
    nlri = decode_prefixes(_AFI_IPV4, body, a_end, blen) if a_end < blen else []
    update = _new_update(withdrawn, nlri)
    if not alen:
        if nlri:
            update.errors.append(UpdateError(_TAW, None, "NLRI without path attributes"))
            update.withdrawn = withdrawn + nlri
            update.nlri = []
        return update
    if cache is None:
        attrs = _decode_common(body, a_start, a_end, ctx, None)
        if attrs is None:
            _decode_attributes(body, a_start, a_end, ctx, update, None)
        else:
            update.attributes = attrs
        return update
    limit = DecodeCache.LIMIT
    if len(cache.asns) >= limit:
        cache.asns.clear()
    if len(cache.next_hops) >= limit:
        cache.next_hops.clear()
    if cache.lookups >= DecodeCache.WINDOW:
        cache.judge()
    if cache.paused:
        cache.paused -= 1
        attrs = _decode_common(body, a_start, a_end, ctx, cache)
        if attrs is None:
            _decode_attributes(body, a_start, a_end, ctx, update, cache)
        else:
            update.attributes = attrs
        return update
    raw = body[a_start:a_end]
    known = cache.attributes
    attrs = known.get(raw)
    cache.lookups += 1
    if attrs is not None:
        cache.hits += 1
        update.attributes = attrs
        return update
    attrs = _decode_common(body, a_start, a_end, ctx, cache)
    if attrs is None:
        _decode_attributes(body, a_start, a_end, ctx, update, cache)
        attrs = update.attributes
        if (
            attrs is None
            or update.errors
            or update.mp_reach is not None
            or update.mp_unreach
            or attrs.origin is None
            or attrs.as_path is None
            or not attrs.next_hop
        ):
            return update
    else:
        update.attributes = attrs
    if len(known) >= limit:
        known.clear()  # bounded: a table of mostly unique sets must not double its memory
    known[raw] = attrs
    return update


_new_object = object.__new__


def _new_update(withdrawn: list[int], nlri: list[int]) -> Update:
    """`Update(withdrawn=withdrawn, nlri=nlri)`, without the dataclass __init__'s default handling."""
    update: Update = _new_object(Update)
    update.withdrawn = withdrawn
    update.attributes = None
    update.nlri = nlri
    update.mp_reach = None
    update.mp_unreach = ()
    update.errors = []
    return update


def _decode_attributes(
    body: bytes, i: int, end: int, ctx: CodecContext, update: Update, cache: DecodeCache | None
) -> None:
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
    unknown: list[UnknownAttribute] | None = None
    four_octet = ctx.four_octet_as
    asn_size = 4 if four_octet else 2
    mp_unreach: list[MpUnreach] | None = None
    rare = False  # any attribute that lives in PathAttributes' rare slot

    while i < end:
        if end - i < 3:
            errors.append(UpdateError(_TAW, None, f"{end - i} stray bytes after the last attribute"))
            break
        flags = body[i]
        atype = body[i + 1]
        if flags & _F_EXTENDED_LENGTH:
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
        expected = _EXPECTED.get(atype)
        if expected is None:
            if not flags & _F_OPTIONAL:
                raise _reset(
                    UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                    f"unrecognized well-known attribute {atype}",
                    body[vstart - (4 if flags & _F_EXTENDED_LENGTH else 3) : vend],
                )
            if flags & _F_TRANSITIVE:
                if unknown is None:
                    unknown = []
                unknown.append(UnknownAttribute(flags & 0xE0, atype, body[vstart:vend]))
                rare = True
            continue
        if flags & 0xC0 != expected:
            # RFC 7606 section 3 c: a flags error is that attribute's own malformation.
            discard = atype in _DISCARD_ON_ERROR or (atype == _LOCAL_PREF and ctx.ebgp)
            action = _DISCARD if discard else _TAW
            errors.append(UpdateError(action, atype, f"flags 0x{flags:02x} conflict with the attribute type"))
            if atype not in _MP:
                continue
        # The attributes nearly every UPDATE carries come first, read in place.
        if atype == _ORIGIN:
            if length != 1 or body[vstart] > 2:
                errors.append(UpdateError(_TAW, atype, f"malformed ORIGIN ({body[vstart:vend].hex()})"))
            else:
                origin = body[vstart]
        elif atype == _AS_PATH:
            count = body[vstart + 1] if length >= 2 else 0
            if count and length == 2 + count * asn_size and body[vstart] == _SEG_SEQUENCE:
                # one AS_SEQUENCE, the shape nearly every path has
                seq = (_UNPACK_U32 if four_octet else _UNPACK_U16)[count](body, vstart + 2)
                as_path = ((_SEG_SEQUENCE, seq),)
                if 0 in seq:
                    errors.append(UpdateError(_TAW, atype, "AS number 0 in AS_PATH (RFC 7607)"))
                elif cache is not None:
                    as_path = _intern_path(as_path, cache)
                continue
            as_path = _decode_as_path(body, vstart, vend, asn_size)
            if as_path is None:
                errors.append(UpdateError(_TAW, atype, "malformed AS_PATH"))
            elif ctx.ebgp and any(t >= _SEG_CONFED_SEQUENCE for t, _ in as_path):
                errors.append(UpdateError(_TAW, atype, "confederation segment from an external peer"))
            elif any(0 in seg for _, seg in as_path):
                errors.append(UpdateError(_TAW, atype, "AS number 0 in AS_PATH (RFC 7607)"))
            elif cache is not None:
                as_path = _intern_path(as_path, cache)
        elif atype == _NEXT_HOP:
            if length != 4:
                errors.append(UpdateError(_TAW, atype, f"NEXT_HOP length {length}"))
            elif cache is None:
                next_hop = socket.inet_ntoa(body[vstart:vend])
            else:
                next_hop = _next_hop(_unpack_u32(body, vstart)[0], cache)
        elif atype == _MED:
            if length != 4:
                errors.append(UpdateError(_TAW, atype, f"MULTI_EXIT_DISC length {length}"))
            else:
                med = _unpack_u32(body, vstart)[0]
        elif atype == _COMMUNITIES:
            if length == 0 or length % 4:
                errors.append(UpdateError(_TAW, atype, f"COMMUNITIES length {length}"))
            else:
                n = length >> 2
                unpack = _UNPACK_U32[n] if n < 256 else struct.Struct("!%dI" % n).unpack_from
                communities = unpack(body, vstart)
        elif atype == _LOCAL_PREF:
            if ctx.ebgp:
                errors.append(UpdateError(_DISCARD, atype, "LOCAL_PREF from an external peer"))
            elif length != 4:
                errors.append(UpdateError(_TAW, atype, f"LOCAL_PREF length {length}"))
            else:
                local_pref = _unpack_u32(body, vstart)[0]
        elif atype == _LARGE_COMMUNITIES:
            if length == 0 or length % 12:
                errors.append(UpdateError(_TAW, atype, f"LARGE_COMMUNITIES length {length}"))
            else:
                large = tuple(struct.iter_unpack("!III", body[vstart:vend]))
        else:
            value = body[vstart:vend]
            if atype == _EXTENDED_COMMUNITIES:
                if length == 0 or length % 8:
                    errors.append(UpdateError(_TAW, atype, f"EXTENDED_COMMUNITIES length {length}"))
                else:
                    extended = struct.unpack("!%dQ" % (length // 8), value)
                    rare = True
            elif atype == _MP_REACH:
                update.mp_reach = _decode_mp_reach(value, ctx)
            elif atype == _MP_UNREACH:
                unreach = _decode_mp_unreach(value, ctx)
                if unreach is not None:
                    if mp_unreach is None:
                        mp_unreach = []
                    mp_unreach.append(unreach)
            elif atype == _ATOMIC_AGGREGATE:
                if length:
                    errors.append(UpdateError(_DISCARD, atype, f"ATOMIC_AGGREGATE length {length}"))
                else:
                    atomic = rare = True
            elif atype == _AGGREGATOR:
                if length != asn_size + 4:
                    errors.append(UpdateError(_DISCARD, atype, f"AGGREGATOR length {length}"))
                else:
                    aggregator = Aggregator(int.from_bytes(value[:asn_size], "big"), socket.inet_ntoa(value[asn_size:]))
                    rare = True
            elif atype == _AS4_PATH:
                path4 = _decode_as_path(value, 0, length, 4)
                if path4 is None:
                    errors.append(UpdateError(_DISCARD, atype, "malformed AS4_PATH"))
                elif any(0 in seg for _, seg in path4):
                    errors.append(UpdateError(_DISCARD, atype, "AS number 0 in AS4_PATH (RFC 7607)"))
                elif four_octet:
                    errors.append(UpdateError(_DISCARD, atype, "AS4_PATH on a 4-octet AS session"))
                else:
                    # RFC 6793 section 6: confederation segments are removed, the rest is used.
                    as4_path = tuple(seg for seg in path4 if seg[0] < _SEG_CONFED_SEQUENCE)
            elif atype == _AS4_AGGREGATOR:
                if length != 8:
                    errors.append(UpdateError(_DISCARD, atype, f"AS4_AGGREGATOR length {length}"))
                elif not four_octet:
                    as4_aggregator = Aggregator(int.from_bytes(value[:4], "big"), socket.inet_ntoa(value[4:]))
            elif atype == _ORIGINATOR_ID:
                if length != 4:
                    errors.append(UpdateError(_TAW, atype, f"ORIGINATOR_ID length {length}"))
                else:
                    originator_id = socket.inet_ntoa(value)
                    rare = True
            elif atype == _CLUSTER_LIST:
                if length == 0 or length % 4:
                    errors.append(UpdateError(_TAW, atype, f"CLUSTER_LIST length {length}"))
                else:
                    cluster_list = tuple(socket.inet_ntoa(value[k : k + 4]) for k in range(0, length, 4))
                    rare = True
            elif atype == _ONLY_TO_CUSTOMER:
                if length != 4:
                    errors.append(UpdateError(_TAW, atype, f"ONLY_TO_CUSTOMER length {length}"))
                else:
                    otc = int.from_bytes(value, "big")
                    rare = True

    # RFC 6793 section 4.2.3: AGGREGATOR decides whether AS4_* are believed.
    if as4_aggregator is not None and aggregator is not None:
        if aggregator.asn == 23456:
            aggregator = as4_aggregator
        else:
            as4_path = None
    if as4_path is not None and as_path is not None:
        as_path = merge_as4_path(as_path, as4_path)
    if mp_unreach is not None:
        update.mp_unreach = tuple(mp_unreach)

    reach = update.mp_reach
    if (
        (origin is None or as_path is None or (next_hop is None and update.nlri))
        and (update.nlri or (reach is not None and reach.nlri))
        and not _withdraws(errors)
    ):
        missing = []
        if origin is None:
            missing.append("ORIGIN")
        if as_path is None:
            missing.append("AS_PATH")
        if next_hop is None and update.nlri:
            missing.append("NEXT_HOP")
        errors.append(UpdateError(_TAW, None, "missing well-known attribute " + ", ".join(missing)))
    if errors and _withdraws(errors):
        treat_as_withdraw(update)
        return
    update.attributes = _new_attributes(
        origin,
        as_path,
        next_hop,
        med,
        local_pref,
        communities,
        large,
        (atomic, aggregator, extended, originator_id, cluster_list, otc, tuple(unknown or ())) if rare else None,
    )


def _withdraws(errors: list[UpdateError]) -> bool:
    return any(error.action is _TAW for error in errors)
