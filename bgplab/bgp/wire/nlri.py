"""Prefixes on the wire (RFC 4271 section 4.3, RFC 4760) and in memory.

A prefix is held as one int, `network << 8 | length`, per address family: no object per
prefix, hashable, ordered, and about a third of the memory of an ipaddress object. This is
what lets a Python RIB hold a million routes at the budget perf-robustness.md sets.
"""

from __future__ import annotations

import ipaddress
import struct

from bgplab.bgp.wire.constants import Afi, ErrorCode, UpdateSubcode
from bgplab.bgp.wire.errors import NotificationError

ADDRESS_BITS = {Afi.IPV4: 32, Afi.IPV6: 128}


def prefix_key(network: int, length: int) -> int:
    return (network << 8) | length


def key_length(key: int) -> int:
    return key & 0xFF


def key_network(key: int) -> int:
    return key >> 8


def parse_prefix(text: str) -> tuple[Afi, int]:
    """Parse "203.0.113.0/24" or "2001:db8::/32"; host bits must be zero, as a user's typo should surface."""
    net = ipaddress.ip_network(text, strict=True)
    afi = Afi.IPV4 if net.version == 4 else Afi.IPV6
    return afi, prefix_key(int(net.network_address), net.prefixlen)


def prefix_text(afi: int, key: int) -> str:
    length = key & 0xFF
    if afi == Afi.IPV4:
        return f"{ipaddress.IPv4Address(key >> 8)}/{length}"
    return f"{ipaddress.IPv6Address(key >> 8)}/{length}"


def _invalid(reason: str) -> NotificationError:
    return NotificationError(ErrorCode.UPDATE_MESSAGE, UpdateSubcode.INVALID_NETWORK_FIELD, b"", reason)


# Per prefix length: (bytes on the wire, shift to align them, network mask), by family.
_LAYOUT = {
    bits: tuple(((n + 7) >> 3, bits - (((n + 7) >> 3) << 3), ((1 << n) - 1) << (bits - n)) for n in range(bits + 1))
    for bits in (32, 128)
}
_LAYOUT_V4 = _LAYOUT[32]
_KEY_MASK_3_BYTES = tuple(((1 << n) - 1) << (40 - n) if 16 < n < 25 else 0 for n in range(33))
"""For an IPv4 length of 17 to 24: the network mask, in place in a key."""
_unpack_u32 = struct.Struct("!I").unpack_from
_RUN_OF_24 = 16
"""From this many prefixes on, an NLRI field is first checked for being all /24s, read at once."""
_KEY_OF_24 = (24 << 40) - 24
"""A /24 read as the 32-bit word (24, a, b, c) becomes its key (a.b.c.0 << 8 | 24) as word << 16 - this."""


def decode_prefixes(afi: int, data: bytes, start: int, end: int) -> list[int]:
    """Decode a run of (length, prefix) fields.

    A length beyond the family's width or a prefix overrunning the field cannot be
    resynchronised, so RFC 7606 section 5.3 makes it a session reset (3/10). Host bits beyond
    the length are masked off and the prefix accepted.
    """
    if afi == 1:
        size = end - start
        if size >= 4 * _RUN_OF_24 and not size & 3 and data[start:end:4].count(24) == size >> 2:
            # Every 4th byte is 24, from the first: each field is a /24 (length byte and 3 bytes),
            # and a /24 has no host bits to mask.
            key = _KEY_OF_24
            return [(word << 16) - key for word in struct.unpack_from("!%dI" % (size >> 2), data, start)]
        return _decode_ipv4(data, start, end)
    if afi == 2:
        return _decode_any(128, data, start, end)
    raise _invalid(f"unsupported AFI {afi}")


def _decode_ipv4(data: bytes, i: int, end: int) -> list[int]:
    layout = _LAYOUT_V4
    three = _KEY_MASK_3_BYTES
    word = _unpack_u32
    out: list[int] = []
    append = out.append
    from_bytes = int.from_bytes
    while i < end:
        length = data[i]
        if 16 < length < 25:  # three bytes: most of a table
            j = i + 4
            if j > end:
                raise _invalid(f"prefix of length {length} overruns the NLRI field")
            # the length byte and the 3 prefix bytes as one word; the mask drops the length byte
            append(((word(data, i)[0] << 16) & three[length]) | length)
        else:
            if length > 32:
                raise _invalid(f"prefix length {length} exceeds 32")
            nbytes, shift, mask = layout[length]
            j = i + 1 + nbytes
            if j > end:
                raise _invalid(f"prefix of length {length} overruns the NLRI field")
            append((((from_bytes(data[i + 1 : j], "big") << shift) & mask) << 8) | length)
        i = j
    return out


def _decode_any(bits: int, data: bytes, i: int, end: int) -> list[int]:
    layout = _LAYOUT[bits]
    out: list[int] = []
    append = out.append
    from_bytes = int.from_bytes
    while i < end:
        length = data[i]
        if length > bits:
            raise _invalid(f"prefix length {length} exceeds {bits}")
        nbytes, shift, mask = layout[length]
        j = i + 1 + nbytes
        if j > end:
            raise _invalid(f"prefix of length {length} overruns the NLRI field")
        append((((from_bytes(data[i + 1 : j], "big") << shift) & mask) << 8) | length)
        i = j
    return out


def encode_prefix(afi: int, key: int) -> bytes:
    bits = ADDRESS_BITS[Afi(afi)]
    length = key & 0xFF
    nbytes = (length + 7) >> 3
    return bytes((length,)) + ((key >> 8) >> (bits - (nbytes << 3))).to_bytes(nbytes, "big")


def encode_prefixes(afi: int, keys: list[int] | tuple[int, ...]) -> bytes:
    return b"".join([encode_prefix(afi, k) for k in keys])


def encoded_prefix_len(key: int) -> int:
    return 1 + (((key & 0xFF) + 7) >> 3)
