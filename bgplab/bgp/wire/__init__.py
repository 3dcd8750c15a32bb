"""Sans-IO BGP codec: bytes in, message objects out, and back; no sockets, no clocks."""

from bgplab.bgp.wire.attributes import Aggregator, PathAttributes, UnknownAttribute, as_sequence, prepend
from bgplab.bgp.wire.errors import NotificationError, UpdateAction, UpdateError
from bgplab.bgp.wire.framing import Framer
from bgplab.bgp.wire.messages import (
    KEEPALIVE,
    Notification,
    Open,
    RouteRefresh,
    decode_notification,
    decode_open,
    decode_route_refresh,
    encode_notification,
    encode_open,
    encode_route_refresh,
)
from bgplab.bgp.wire.update import IPV4_UNICAST, IPV6_UNICAST, CodecContext, Family, MpReach, MpUnreach, Update
from bgplab.bgp.wire.update_decoder import DecodeCache, decode_update
from bgplab.bgp.wire.update_encoder import encode_update, end_of_rib, pack_announcements, pack_withdrawals

__all__ = [
    "IPV4_UNICAST",
    "IPV6_UNICAST",
    "KEEPALIVE",
    "Aggregator",
    "CodecContext",
    "DecodeCache",
    "Family",
    "Framer",
    "MpReach",
    "MpUnreach",
    "Notification",
    "NotificationError",
    "Open",
    "PathAttributes",
    "RouteRefresh",
    "UnknownAttribute",
    "Update",
    "UpdateAction",
    "UpdateError",
    "as_sequence",
    "decode_notification",
    "decode_open",
    "decode_route_refresh",
    "decode_update",
    "encode_notification",
    "encode_open",
    "encode_route_refresh",
    "encode_update",
    "end_of_rib",
    "pack_announcements",
    "pack_withdrawals",
    "prepend",
]
