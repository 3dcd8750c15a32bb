"""OPEN, NOTIFICATION, KEEPALIVE and ROUTE-REFRESH: encoding and decoding.

UPDATE lives in its own module because of its size; this one holds the messages whose
decoding never depends on what a session negotiated.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bgplab.bgp.wire.capabilities import (
    Capability,
    ExtendedMessage,
    FourOctetAs,
    Multiprotocol,
    decode_capabilities,
    encode_capability,
)
from bgplab.bgp.wire.constants import (
    AS_TRANS,
    BGP_VERSION,
    CeaseSubcode,
    ErrorCode,
    MessageType,
    OpenSubcode,
    OptionalParameter,
    RouteRefreshSubcode,
    describe_error,
)
from bgplab.bgp.wire.errors import NotificationError
from bgplab.bgp.wire.framing import frame

KEEPALIVE = frame(MessageType.KEEPALIVE, b"")


@dataclass(frozen=True, slots=True)
class Open:
    asn: int
    """The real AS number: from the 4-octet AS capability when present, else the My AS field."""
    hold_time: int
    router_id: str
    capabilities: tuple[Capability, ...] = ()
    version: int = BGP_VERSION
    my_as_field: int | None = None
    """The 2-octet My AS field as received (AS_TRANS for large ASNs); None when encoding."""

    def capability(self, kind: type[Capability]) -> Capability | None:
        for cap in self.capabilities:
            if isinstance(cap, kind):
                return cap
        return None

    def families(self) -> frozenset[tuple[int, int]]:
        """Multiprotocol families offered; RFC 4760 says no capability means IPv4 unicast only."""
        fams = frozenset((c.afi, c.safi) for c in self.capabilities if isinstance(c, Multiprotocol))
        return fams or frozenset({(1, 1)})

    @property
    def four_octet_as(self) -> bool:
        return self.capability(FourOctetAs) is not None

    @property
    def extended_message(self) -> bool:
        return self.capability(ExtendedMessage) is not None


def encode_open(msg: Open) -> bytes:
    caps = b"".join(encode_capability(c) for c in msg.capabilities)
    my_as = msg.asn if msg.asn <= 0xFFFF else AS_TRANS
    router_id = bytes(int(o) for o in msg.router_id.split("."))
    head = struct.pack("!BHH", msg.version, my_as, msg.hold_time) + router_id
    if not caps:
        return frame(MessageType.OPEN, head + b"\x00")
    param = bytes((OptionalParameter.CAPABILITIES,))
    if len(caps) + 2 <= 255:
        params = param + bytes((len(caps),)) + caps
        return frame(MessageType.OPEN, head + bytes((len(params),)) + params)
    # RFC 9072 extended optional parameters length.
    params = param + len(caps).to_bytes(2, "big") + caps
    return frame(MessageType.OPEN, head + b"\xff\xff" + len(params).to_bytes(2, "big") + params)


def _open_error(subcode: int, reason: str, data: bytes = b"") -> NotificationError:
    return NotificationError(ErrorCode.OPEN_MESSAGE, subcode, data, reason)


def decode_open(body: bytes) -> Open:
    """Decode an OPEN body; structural errors raise the matching 2/x NotificationError.

    Checks that need the session's configuration (peer AS, hold time floor, identifier
    clashes) belong to the state machine, not here.
    """
    if len(body) < 10:
        raise _open_error(OpenSubcode.UNSPECIFIC, "OPEN shorter than 10 bytes")
    version, my_as, hold_time = struct.unpack_from("!BHH", body)
    router_id = ".".join(str(b) for b in body[5:9])
    if version != BGP_VERSION:
        raise _open_error(OpenSubcode.UNSUPPORTED_VERSION_NUMBER, f"version {version}", b"\x00\x04")
    opt_len = body[9]
    i = 10
    param_len_size = 1
    if opt_len == 255 and len(body) > 10 and body[10] == OptionalParameter.EXTENDED_LENGTH:
        if len(body) < 13:
            raise _open_error(OpenSubcode.UNSPECIFIC, "truncated extended optional parameters length")
        opt_len = int.from_bytes(body[11:13], "big")
        i = 13
        param_len_size = 2
    end = i + opt_len
    if end != len(body):
        raise _open_error(OpenSubcode.UNSPECIFIC, f"optional parameters length {opt_len} does not match the message")
    caps: list[Capability] = []
    while i < end:
        if end - i < 1 + param_len_size:
            raise _open_error(OpenSubcode.UNSPECIFIC, "truncated optional parameter header")
        ptype = body[i]
        plen = body[i + 1] if param_len_size == 1 else int.from_bytes(body[i + 1 : i + 3], "big")
        start = i + 1 + param_len_size
        if start + plen > end:
            raise _open_error(OpenSubcode.UNSPECIFIC, f"optional parameter {ptype} overruns the message")
        if ptype != OptionalParameter.CAPABILITIES:
            raise _open_error(OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER, f"optional parameter type {ptype}")
        caps.extend(decode_capabilities(body[start : start + plen]))
        i = start + plen
    asn = my_as
    for cap in caps:
        if isinstance(cap, FourOctetAs):
            asn = cap.asn
    return Open(asn, hold_time, router_id, tuple(caps), version, my_as)


@dataclass(frozen=True, slots=True)
class Notification:
    code: int
    subcode: int
    data: bytes = b""

    @property
    def shutdown_message(self) -> str | None:
        """The RFC 9003 shutdown communication, decoded leniently; None when absent or malformed."""
        if self.code != ErrorCode.CEASE or self.subcode not in (
            CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
            CeaseSubcode.ADMINISTRATIVE_RESET,
        ):
            return None
        if not self.data or self.data[0] == 0 or self.data[0] > len(self.data) - 1:
            return None
        return self.data[1 : 1 + self.data[0]].decode("utf-8", errors="replace")

    def describe(self) -> str:
        """Readable text for logs; peer-supplied bytes are sanitised, never trusted (CVE-2025-59688)."""
        text = describe_error(self.code, self.subcode)
        message = self.shutdown_message
        if message is not None:
            printable = "".join(ch if ch.isprintable() else "?" for ch in message)
            return f'{text}: "{printable}"'
        if self.data:
            return f"{text}, data {self.data[:64].hex()}{'...' if len(self.data) > 64 else ''}"
        return text


def encode_notification(msg: Notification) -> bytes:
    return frame(MessageType.NOTIFICATION, bytes((msg.code, msg.subcode)) + msg.data)


def shutdown_data(message: str) -> bytes:
    """Shutdown communication for Cease 2/4 (RFC 9003): at most 255 bytes, cut on a character boundary."""
    raw = message.encode("utf-8")[:255]
    text = raw.decode("utf-8", errors="ignore").encode("utf-8")
    return bytes((len(text),)) + text


def decode_notification(body: bytes) -> Notification:
    """Never raises: a NOTIFICATION ends the session whatever it contains."""
    if len(body) < 2:
        return Notification(body[0] if body else 0, 0, b"")
    return Notification(body[0], body[1], bytes(body[2:]))


@dataclass(frozen=True, slots=True)
class RouteRefresh:
    afi: int
    safi: int
    subtype: int = 0


def encode_route_refresh(msg: RouteRefresh) -> bytes:
    return frame(MessageType.ROUTE_REFRESH, struct.pack("!HBB", msg.afi, msg.subtype, msg.safi))


def decode_route_refresh(body: bytes) -> RouteRefresh:
    """Without ORF (not offered), any length but 4 is 7/1 carrying the complete message (RFC 7313)."""
    if len(body) != 4:
        raise NotificationError(
            ErrorCode.ROUTE_REFRESH_MESSAGE,
            RouteRefreshSubcode.INVALID_MESSAGE_LENGTH,
            frame(MessageType.ROUTE_REFRESH, body),
            f"ROUTE-REFRESH body of {len(body)} bytes",
        )
    afi, subtype, safi = struct.unpack("!HBB", body)
    return RouteRefresh(afi, safi, subtype)


@dataclass(frozen=True, slots=True)
class Keepalive:
    pass
