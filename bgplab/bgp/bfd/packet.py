"""The BFD Control packet of RFC 5880 section 4.1: encoding, decoding and the reception checks.

`encode` writes whatever it is given, within the field widths, so that tests and fault
injection can build packets a correct peer would never send. `decode` is strict: it applies
every packet-level check of section 6.8.6 and raises `Discard` for a packet that the RFC says
to drop without a word. The checks that need the session table (a Your Discriminator that
names no session) belong to the endpoint that owns the table.

Intervals are in microseconds throughout, as on the wire, so no rounding ever happens between
what a peer said and what we compute from it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

VERSION = 1
HEADER_LENGTH = 24
"""The mandatory section; the Length field may not be smaller without the A bit."""
MIN_AUTH_LENGTH = 26
"""The mandatory section plus the smallest authentication section (type and length octets)."""
SINGLE_HOP_PORT = 3784
"""RFC 5881 section 4: destination port of single-hop Control packets."""
ECHO_PORT = 3785
MULTIHOP_PORT = 4784
"""RFC 5883; not implemented here, named so that nobody mistakes it for ours."""
SOURCE_PORT_MIN, SOURCE_PORT_MAX = 49152, 65535
"""RFC 5881 section 4: the source port range, one port for all packets of a session."""
SINGLE_HOP_TTL = 255
"""RFC 5881 section 5: sent with TTL / hop limit 255, and nothing else is accepted."""
MAX_U32 = 0xFFFFFFFF

_HEADER = struct.Struct("!BBBBIIIII")


class State(IntEnum):
    """bfd.SessionState values (RFC 5880 section 4.1, "Sta")."""

    ADMIN_DOWN = 0
    DOWN = 1
    INIT = 2
    UP = 3

    @property
    def label(self) -> str:
        """The lower-case name FRR and the test harness use ("admindown", "down", "init", "up")."""
        return self.name.replace("_", "").lower()


class Diag(IntEnum):
    """Diagnostic codes (RFC 5880 section 4.1); 9-31 are reserved and passed through as ints."""

    NONE = 0
    CONTROL_DETECTION_TIME_EXPIRED = 1
    ECHO_FUNCTION_FAILED = 2
    NEIGHBOR_SIGNALED_SESSION_DOWN = 3
    FORWARDING_PLANE_RESET = 4
    PATH_DOWN = 5
    CONCATENATED_PATH_DOWN = 6
    ADMINISTRATIVELY_DOWN = 7
    REVERSE_CONCATENATED_PATH_DOWN = 8


def diag_name(diag: int) -> str:
    try:
        return Diag(diag).name.lower().replace("_", "-")
    except ValueError:
        return f"reserved-{diag}"


class Discard(ValueError):
    """A packet that RFC 5880 section 6.8.6 says to discard silently.

    `reason` is a short stable token, used as a counter key by the endpoint; nothing is ever
    sent back for a discarded packet.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ControlPacket:
    """One BFD Control packet; intervals in microseconds."""

    state: State
    diag: int
    detect_mult: int
    my_discriminator: int
    your_discriminator: int
    desired_min_tx: int
    required_min_rx: int
    required_min_echo_rx: int = 0
    poll: bool = False
    final: bool = False
    control_plane_independent: bool = False
    demand: bool = False
    multipoint: bool = False
    authentication: bytes | None = None
    """The raw authentication section; present exactly when the A bit is set."""
    version: int = VERSION


def encode(packet: ControlPacket) -> bytes:
    """The packet on the wire; Length covers the authentication section when there is one."""
    auth = packet.authentication
    length = HEADER_LENGTH + (len(auth) if auth is not None else 0)
    if not 0 <= packet.version <= 7 or not 0 <= packet.diag <= 31:
        raise ValueError("version is 3 bits and diag 5 bits")
    if not 0 <= packet.detect_mult <= 255 or length > 255:
        raise ValueError("detect mult and length are one octet each")
    flags = (
        (packet.poll << 5)
        | (packet.final << 4)
        | (packet.control_plane_independent << 3)
        | ((auth is not None) << 2)
        | (packet.demand << 1)
        | packet.multipoint
    )
    head = _HEADER.pack(
        (packet.version << 5) | packet.diag,
        (int(packet.state) << 6) | flags,
        packet.detect_mult,
        length,
        packet.my_discriminator,
        packet.your_discriminator,
        packet.desired_min_tx,
        packet.required_min_rx,
        packet.required_min_echo_rx,
    )
    return head + auth if auth is not None else head


def decode(data: bytes) -> ControlPacket:
    """Parse one UDP payload and apply the packet-level checks of RFC 5880 section 6.8.6.

    Raises `Discard` for: a payload shorter than the mandatory section, a version other than
    1, a Length under 24 (26 with the A bit) or over the payload, Detect Mult 0, the
    Multipoint bit, My Discriminator 0, Your Discriminator 0 in a state other than Down or
    AdminDown, and the A bit (we never use authentication, and the RFC discards an
    authenticated packet on a session that does not). A payload longer than Length is
    accepted; the excess is ignored, as the RFC only rejects the opposite.
    """
    if len(data) < HEADER_LENGTH:
        raise Discard("short", f"{len(data)} bytes")
    vd, sf, mult, length, my, your, tx, rx, echo = _HEADER.unpack_from(data)
    version = vd >> 5
    if version != VERSION:
        raise Discard("version", str(version))
    auth_bit = bool(sf & 0x04)
    if length < (MIN_AUTH_LENGTH if auth_bit else HEADER_LENGTH):
        raise Discard("length", f"Length {length}")
    if length > len(data):
        raise Discard("length", f"Length {length} over a payload of {len(data)}")
    if mult == 0:
        raise Discard("detect-mult")
    if sf & 0x01:
        raise Discard("multipoint")
    if my == 0:
        raise Discard("my-discriminator")
    state = State(sf >> 6)
    if your == 0 and state not in (State.DOWN, State.ADMIN_DOWN):
        raise Discard("your-discriminator", f"zero in state {state.name}")
    if auth_bit:
        raise Discard("authentication", "A bit set; no authentication is configured")
    return ControlPacket(
        state=state,
        diag=vd & 0x1F,
        detect_mult=mult,
        my_discriminator=my,
        your_discriminator=your,
        desired_min_tx=tx,
        required_min_rx=rx,
        required_min_echo_rx=echo,
        poll=bool(sf & 0x20),
        final=bool(sf & 0x10),
        control_plane_independent=bool(sf & 0x08),
        demand=bool(sf & 0x02),
    )
