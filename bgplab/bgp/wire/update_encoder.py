"""Encoding UPDATE messages, and packing routes into as few of them as fit."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

from bgplab.bgp.wire.attributes import PathAttributes, encode_attributes, encode_mp_attribute
from bgplab.bgp.wire.constants import HEADER_LEN, Afi, AttrType, MessageType
from bgplab.bgp.wire.framing import frame
from bgplab.bgp.wire.nlri import encode_prefixes, encoded_prefix_len
from bgplab.bgp.wire.update import IPV4_UNICAST, CodecContext, Family, MpUnreach, Update


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
    # Refused only when a prefix actually sent cannot fit, not when the widest one could not.
    widest = max(map(encoded_prefix_len, keys), default=0)
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
