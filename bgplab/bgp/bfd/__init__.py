"""BFD, RFC 5880 asynchronous mode over RFC 5881 single-hop UDP.

`packet` is the codec with the reception checks, `session` the sans-IO state machine, and
`endpoint` the asyncio manager that owns sockets and timers for many sessions. Echo mode,
Demand mode on our side, authentication and multihop (RFC 5883) are not implemented; a peer's
Demand mode is honoured.
"""

from bgplab.bgp.bfd.endpoint import BfdManager, BfdStateChange, OnChange, SessionStats
from bgplab.bgp.bfd.packet import ControlPacket, Diag, Discard, State, decode, encode
from bgplab.bgp.bfd.session import Session

__all__ = [
    "BfdManager",
    "BfdStateChange",
    "ControlPacket",
    "Diag",
    "Discard",
    "OnChange",
    "Session",
    "SessionStats",
    "State",
    "decode",
    "encode",
]
