"""BGP capabilities (RFC 5492) carried in OPEN: the ones a session negotiates, and the rest kept raw.

Unknown capabilities are kept byte for byte so that a peer's OPEN can be shown and re-encoded
faithfully; a capability we know but whose length is wrong is an OPEN error (2/0), never an
exception escaping the decoder (CVE-2022-40302 class of bugs).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from bgplab.bgp.wire.constants import CapabilityCode, ErrorCode, OpenSubcode
from bgplab.bgp.wire.errors import NotificationError


@dataclass(frozen=True, slots=True)
class Multiprotocol:
    afi: int
    safi: int


@dataclass(frozen=True, slots=True)
class RouteRefresh:
    pass


@dataclass(frozen=True, slots=True)
class EnhancedRouteRefresh:
    pass


@dataclass(frozen=True, slots=True)
class ExtendedMessage:
    pass


@dataclass(frozen=True, slots=True)
class FourOctetAs:
    asn: int


@dataclass(frozen=True, slots=True)
class GracefulRestartFamily:
    afi: int
    safi: int
    forwarding_preserved: bool


@dataclass(frozen=True, slots=True)
class GracefulRestart:
    restart_time: int
    restarting: bool = False
    notification: bool = False  # RFC 8538 "N" bit
    families: tuple[GracefulRestartFamily, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class UnknownCapability:
    code: int
    value: bytes


Capability = (
    Multiprotocol
    | RouteRefresh
    | EnhancedRouteRefresh
    | ExtendedMessage
    | FourOctetAs
    | GracefulRestart
    | UnknownCapability
)

_EMPTY: dict[int, Capability] = {
    CapabilityCode.ROUTE_REFRESH: RouteRefresh(),
    CapabilityCode.ENHANCED_ROUTE_REFRESH: EnhancedRouteRefresh(),
    CapabilityCode.EXTENDED_MESSAGE: ExtendedMessage(),
}


def _bad(code: int, reason: str) -> NotificationError:
    return NotificationError(ErrorCode.OPEN_MESSAGE, OpenSubcode.UNSPECIFIC, b"", f"capability {code}: {reason}")


def decode_capability(code: int, value: bytes) -> Capability:
    length = len(value)
    if code in _EMPTY:
        if length:
            raise _bad(code, f"length {length}, expected 0")
        return _EMPTY[code]
    if code == CapabilityCode.MULTIPROTOCOL:
        if length != 4:
            raise _bad(code, f"length {length}, expected 4")
        afi, _reserved, safi = struct.unpack("!HBB", value)
        return Multiprotocol(afi, safi)
    if code == CapabilityCode.FOUR_OCTET_AS:
        if length != 4:
            raise _bad(code, f"length {length}, expected 4")
        return FourOctetAs(int.from_bytes(value, "big"))
    if code == CapabilityCode.GRACEFUL_RESTART:
        if length < 2 or (length - 2) % 4:
            raise _bad(code, f"length {length}, expected 2 + 4n")
        head = int.from_bytes(value[:2], "big")
        families = tuple(
            GracefulRestartFamily(afi, safi, bool(flags & 0x80))
            for afi, safi, flags in struct.iter_unpack("!HBB", value[2:])
        )
        return GracefulRestart(head & 0x0FFF, bool(head & 0x8000), bool(head & 0x4000), families)
    return UnknownCapability(code, value)


def encode_capability(cap: Capability) -> bytes:
    code: int
    value: bytes
    if isinstance(cap, Multiprotocol):
        code, value = CapabilityCode.MULTIPROTOCOL, struct.pack("!HBB", cap.afi, 0, cap.safi)
    elif isinstance(cap, RouteRefresh):
        code, value = CapabilityCode.ROUTE_REFRESH, b""
    elif isinstance(cap, EnhancedRouteRefresh):
        code, value = CapabilityCode.ENHANCED_ROUTE_REFRESH, b""
    elif isinstance(cap, ExtendedMessage):
        code, value = CapabilityCode.EXTENDED_MESSAGE, b""
    elif isinstance(cap, FourOctetAs):
        code, value = CapabilityCode.FOUR_OCTET_AS, cap.asn.to_bytes(4, "big")
    elif isinstance(cap, GracefulRestart):
        head = (cap.restart_time & 0x0FFF) | (0x8000 if cap.restarting else 0) | (0x4000 if cap.notification else 0)
        value = head.to_bytes(2, "big") + b"".join(
            struct.pack("!HBB", f.afi, f.safi, 0x80 if f.forwarding_preserved else 0) for f in cap.families
        )
        code = CapabilityCode.GRACEFUL_RESTART
    else:
        code, value = cap.code, cap.value
    if len(value) > 255:
        raise ValueError(f"capability {code} value of {len(value)} bytes does not fit in one octet of length")
    return bytes((code, len(value))) + value


def decode_capabilities(data: bytes) -> list[Capability]:
    """Decode the capabilities inside one Capabilities optional parameter."""
    caps: list[Capability] = []
    i, end = 0, len(data)
    while i < end:
        if end - i < 2:
            raise _bad(data[i], "truncated capability header")
        code, length = data[i], data[i + 1]
        if i + 2 + length > end:
            raise _bad(code, f"length {length} overruns its optional parameter")
        caps.append(decode_capability(code, data[i + 2 : i + 2 + length]))
        i += 2 + length
    return caps
