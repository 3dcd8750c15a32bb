"""Prefixes on the wire (RFC 4271 section 4.3, RFC 4760) and in memory.

A prefix is held as one int, `network << 8 | length`, per address family: no object per
prefix, hashable, ordered, and about a third of the memory of an ipaddress object. This is
what lets a Python RIB hold a million routes at the budget perf-robustness.md sets.
"""

from __future__ import annotations

import ipaddress

from bgplab.bgp.wire.constants import Afi, ErrorCode, UpdateSubcode
from bgplab.bgp.wire.errors import NotificationError

ADDRESS_BITS = {Afi.IPV4: 32, Afi.IPV6: 128}
_MASKS = {bits: tuple(((1 << n) - 1) << (bits - n) for n in range(bits + 1)) for bits in ADDRESS_BITS.values()}


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


def decode_prefixes(afi: int, data: bytes, start: int, end: int) -> list[int]:
    """Decode a run of (length, prefix) fields.

    A length beyond the family's width or a prefix overrunning the field cannot be
    resynchronised, so RFC 7606 section 5.3 makes it a session reset (3/10). Host bits beyond
    the length are masked off and the prefix accepted.
    """
    bits = ADDRESS_BITS.get(Afi(afi)) if afi in (1, 2) else None
    if bits is None:
        raise _invalid(f"unsupported AFI {afi}")
    masks = _MASKS[bits]
    out: list[int] = []
    append = out.append
    from_bytes = int.from_bytes
    i = start
    while i < end:
        length = data[i]
        if length > bits:
            raise _invalid(f"prefix length {length} exceeds {bits}")
        nbytes = (length + 7) >> 3
        j = i + 1 + nbytes
        if j > end:
            raise _invalid(f"prefix of length {length} overruns the NLRI field")
        network = from_bytes(data[i + 1 : j], "big") << (bits - (nbytes << 3))
        append(((network & masks[length]) << 8) | length)
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
