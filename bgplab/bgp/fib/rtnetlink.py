"""NETLINK_ROUTE route messages, sans-IO: route requests packed, dumped routes and acks parsed.

Constants from linux/netlink.h and linux/rtnetlink.h; the names the `Fib` needs are public,
the rest stay here.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from bgplab.bgp.wire.update import IPV4_UNICAST, IPV6_UNICAST, Family

BLACKHOLE = "blackhole"
"""The next hop of a route that drops what it matches (RTN_BLACKHOLE), e.g. Azure's system
routes with next hop type None; give it alone: `(family, key, (BLACKHOLE,))`."""

NLMSG_ERROR = 2
NLMSG_DONE = 3
_NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
_NLM_F_DUMP = 0x300
_NLM_F_REPLACE = 0x100
_NLM_F_CREATE = 0x400
_NLM_F_CAPPED = 0x100
_NLM_F_ACK_TLVS = 0x200
_NLMSGERR_ATTR_MSG = 1

RTM_NEWROUTE = 24
_RTM_DELROUTE = 25
_RTM_GETROUTE = 26
_RTN_UNICAST = 1
_RTN_BLACKHOLE = 6
_RT_SCOPE_UNIVERSE = 0
_RT_SCOPE_NOWHERE = 255
RT_TABLE_COMPAT = 252
_RTA_DST = 1
_RTA_OIF = 4
_RTA_GATEWAY = 5
_RTA_PRIORITY = 6
_RTA_MULTIPATH = 9
_RTA_TABLE = 15
_RTA_VIA = 18

NLMSGHDR = struct.Struct("=IHHII")
_ATTR = struct.Struct("=HH")
_U32_ATTR = struct.Struct("=HHI")
_RTNEXTHOP = struct.Struct("=HBBi")
_RTMSG = struct.Struct("=BBBBBBBBI")
# nlmsghdr + rtmsg + the RTA_DST header: everything before the destination address, in one pack.
_ROUTE_HEAD = struct.Struct("=IHHIIBBBBBBBBIHH")

AF_OF_FAMILY: dict[Family, int] = {IPV4_UNICAST: socket.AF_INET, IPV6_UNICAST: socket.AF_INET6}
_FAMILY_OF_AF: dict[int, Family] = {socket.AF_INET: IPV4_UNICAST, socket.AF_INET6: IPV6_UNICAST}
_ADDR_LEN: dict[int, int] = {socket.AF_INET: 4, socket.AF_INET6: 16}


def ack_error(msg: memoryview, flags: int) -> tuple[int, str]:
    """(errno, text) from an NLMSG_ERROR message; errno 0 is a plain acknowledgement."""
    (code,) = struct.unpack_from("=i", msg, 16)
    err = -code
    text = ""
    if err and flags & _NLM_F_ACK_TLVS:
        off = 36 if flags & _NLM_F_CAPPED else 20 + NLMSGHDR.unpack_from(msg, 20)[0]
        while off + 4 <= len(msg):
            nla_len, nla_type = _ATTR.unpack_from(msg, off)
            if nla_len < 4:
                break
            if nla_type & 0x3FFF == _NLMSGERR_ATTR_MSG:
                text = bytes(msg[off + 4 : off + nla_len]).split(b"\0", 1)[0].decode(errors="replace")
            off += (nla_len + 3) & ~3
    return err, text or (os.strerror(err) if err else "")


def _attr(kind: int, value: bytes) -> bytes:
    pad = (-len(value)) % 4
    return _ATTR.pack(4 + len(value), kind) + value + b"\0" * pad


@dataclass(frozen=True, slots=True)
class _NextHop:
    af: int
    addr: bytes
    ifindex: int


class RouteEncoder:
    """Packs route requests for one table/protocol/metric; caches what is shared between routes.

    Next hops are few and shared by thousands of prefixes, so each distinct next-hop tuple is
    parsed and encoded once (the message tail after RTA_DST) and each route costs one `pack`.
    Runs in the worker thread, so interface names in next hops ("fe80::1%eth1") resolve in the
    namespace.
    """

    def __init__(self, table: int, protocol: int, metric: int | None) -> None:
        self.table = table
        self.protocol = protocol
        self.metric = metric
        self.rtm_table = table if table < 256 else RT_TABLE_COMPAT
        common = _U32_ATTR.pack(8, _RTA_TABLE, table)
        if metric is not None:
            common += _U32_ATTR.pack(8, _RTA_PRIORITY, metric)
        self.common = common
        self._tails: dict[tuple[int, tuple[str, ...]], bytes | tuple[int, str]] = {}
        self._hops: dict[str, _NextHop] = {}

    def forget(self) -> None:
        """Drop the caches (interface indices may change between batches)."""
        self._tails.clear()
        self._hops.clear()

    def _next_hop(self, text: str) -> _NextHop:
        hop = self._hops.get(text)
        if hop is None:
            addr, _, dev = text.partition("%")
            af = socket.AF_INET6 if ":" in addr else socket.AF_INET
            packed = socket.inet_pton(af, addr)
            ifindex = 0
            if dev:
                try:
                    ifindex = socket.if_nametoindex(dev)
                except OSError:
                    raise OSError(errno.ENODEV, f"no interface {dev!r}") from None
            hop = _NextHop(af, packed, ifindex)
            self._hops[text] = hop
        return hop

    def tail(self, af: int, next_hops: tuple[str, ...]) -> bytes | tuple[int, str]:
        """The attributes after RTA_DST for an add, or (errno, reason) if they cannot be encoded."""
        cache_key = (af, next_hops)
        tail = self._tails.get(cache_key)
        if tail is None:
            if len(self._tails) > 65536:
                self._tails.clear()
            tail = self._tails[cache_key] = self._encode_tail(af, next_hops)
        return tail

    def _encode_tail(self, af: int, next_hops: tuple[str, ...]) -> bytes | tuple[int, str]:
        try:
            hops = [self._next_hop(h) for h in next_hops]
        except OSError as exc:  # inet_pton's "illegal IP address string", or no such interface
            return (exc.errno or errno.EINVAL, f"bad next hop in {next_hops}: {exc.strerror or exc}")
        for hop in hops:
            if af == socket.AF_INET6 and hop.af == socket.AF_INET:
                return (errno.EINVAL, f"IPv4 next hop in {next_hops} for an IPv6 route")
        if len(hops) == 1:
            return (
                self.common
                + self._gateway(af, hops[0])
                + (_U32_ATTR.pack(8, _RTA_OIF, hops[0].ifindex) if hops[0].ifindex else b"")
            )
        inner = b""
        for hop in hops:
            gateway = self._gateway(af, hop)
            inner += _RTNEXTHOP.pack(8 + len(gateway), 0, 0, hop.ifindex) + gateway
        return self.common + _attr(_RTA_MULTIPATH, inner)

    @staticmethod
    def _gateway(af: int, hop: _NextHop) -> bytes:
        if hop.af == af:
            return _attr(_RTA_GATEWAY, hop.addr)
        # An IPv4 route via an IPv6 next hop (RFC 8950): RTA_VIA carries the family.
        return _attr(_RTA_VIA, struct.pack("=H", hop.af) + hop.addr)

    def add(self, seq: int, flags: int, af: int, key: int, tail: bytes, rtype: int = _RTN_UNICAST) -> bytes:
        alen = _ADDR_LEN[af]
        length = key & 0xFF
        return (
            _ROUTE_HEAD.pack(
                32 + alen + len(tail),
                RTM_NEWROUTE,
                flags | _NLM_F_REQUEST | _NLM_F_CREATE | _NLM_F_REPLACE,
                seq,
                0,
                af,
                length,
                0,
                0,
                self.rtm_table,
                self.protocol,
                _RT_SCOPE_UNIVERSE,
                rtype,
                0,
                4 + alen,
                _RTA_DST,
            )
            + (key >> 8).to_bytes(alen, "big")
            + tail
        )

    def blackhole(self, seq: int, flags: int, af: int, key: int) -> bytes:
        return self.add(seq, flags, af, key, self.common, _RTN_BLACKHOLE)

    def delete(self, seq: int, flags: int, af: int, key: int, metric: int | None) -> bytes:
        """Delete our route for the prefix (matched on protocol, table and metric, any next hops)."""
        alen = _ADDR_LEN[af]
        tail = _U32_ATTR.pack(8, _RTA_TABLE, self.table)
        if metric is not None:
            tail += _U32_ATTR.pack(8, _RTA_PRIORITY, metric)
        return (
            _ROUTE_HEAD.pack(
                32 + alen + len(tail),
                _RTM_DELROUTE,
                flags | _NLM_F_REQUEST,
                seq,
                0,
                af,
                key & 0xFF,
                0,
                0,
                self.rtm_table,
                self.protocol,
                _RT_SCOPE_NOWHERE,
                0,
                0,
                4 + alen,
                _RTA_DST,
            )
            + (key >> 8).to_bytes(alen, "big")
            + tail
        )


def dump_request(seq: int, af: int, table: int, protocol: int) -> bytes:
    """RTM_GETROUTE for one table and protocol; with strict checking the kernel filters the dump."""
    rtm_table = table if table < 256 else 0
    body = _RTMSG.pack(af, 0, 0, 0, rtm_table, protocol, 0, 0, 0) + _U32_ATTR.pack(8, _RTA_TABLE, table)
    return NLMSGHDR.pack(16 + len(body), _RTM_GETROUTE, _NLM_F_REQUEST | _NLM_F_DUMP, seq, 0) + body


def with_ack(msg: bytes) -> bytes:
    """The message, asking for an acknowledgement (a batch's fence: its ack follows every error)."""
    return msg[:6] + struct.pack("=H", NLMSGHDR.unpack_from(msg)[2] | NLM_F_ACK) + msg[8:]


def message_seq(msg: bytes) -> int:
    return int(NLMSGHDR.unpack_from(msg)[3])


@dataclass(frozen=True, slots=True)
class KernelRoute:
    """A unicast or blackhole route as a dump shows it."""

    family: Family
    key: int
    table: int
    protocol: int
    metric: int | None
    next_hops: tuple[str, ...]


def parse_route(msg: memoryview, names: Callable[[int], str]) -> KernelRoute | None:
    """An RTM_NEWROUTE message (from a dump) as a KernelRoute, or None if it is not a unicast or
    blackhole route."""
    af, dst_len, _src_len, _tos, rtm_table, protocol, _scope, rtype, _flags = _RTMSG.unpack_from(msg, 16)
    family = _FAMILY_OF_AF.get(af)
    if family is None or rtype not in (_RTN_UNICAST, _RTN_BLACKHOLE):
        return None
    dst = 0
    table = rtm_table
    metric: int | None = None
    gateway: str | None = None
    oif = 0
    hops: list[str] = []
    off = 28
    end = len(msg)
    while off + 4 <= end:
        nla_len, nla_type = _ATTR.unpack_from(msg, off)
        if nla_len < 4:
            break
        value = msg[off + 4 : off + nla_len]
        kind = nla_type & 0x3FFF
        if kind == _RTA_DST:
            dst = int.from_bytes(value, "big")
        elif kind == _RTA_TABLE:
            (table,) = struct.unpack_from("=I", value)
        elif kind == _RTA_PRIORITY:
            (metric,) = struct.unpack_from("=I", value)
        elif kind == _RTA_GATEWAY:
            gateway = socket.inet_ntop(af, value)
        elif kind == _RTA_VIA:
            gateway = _via_text(value)
        elif kind == _RTA_OIF:
            (oif,) = struct.unpack_from("=i", value)
        elif kind == _RTA_MULTIPATH:
            hops = _parse_multipath(af, value, names)
        off += (nla_len + 3) & ~3
    if gateway is not None:
        hops = [_hop_text(gateway, oif, names)]
    if rtype == _RTN_BLACKHOLE:
        hops = [BLACKHOLE]
    return KernelRoute(family, (dst << 8) | dst_len, table, protocol, metric, tuple(hops))


def _via_text(value: memoryview) -> str:
    (via_af,) = struct.unpack_from("=H", value)
    return socket.inet_ntop(via_af, value[2 : 2 + _ADDR_LEN.get(via_af, 0)])


def _hop_text(gateway: str, ifindex: int, names: Callable[[int], str]) -> str:
    """Link-local IPv6 next hops only mean something with their interface: "fe80::1%eth1"."""
    if ifindex and gateway.lower().startswith("fe80:"):
        return f"{gateway}%{names(ifindex)}"
    return gateway


def _parse_multipath(af: int, value: memoryview, names: Callable[[int], str]) -> list[str]:
    hops = []
    off = 0
    while off + 8 <= len(value):
        rtnh_len, _flags, _hops, ifindex = _RTNEXTHOP.unpack_from(value, off)
        if rtnh_len < 8:
            break
        sub = off + 8
        while sub + 4 <= off + rtnh_len:
            nla_len, nla_type = _ATTR.unpack_from(value, sub)
            if nla_len < 4:
                break
            kind = nla_type & 0x3FFF
            if kind == _RTA_GATEWAY:
                hops.append(_hop_text(socket.inet_ntop(af, value[sub + 4 : sub + nla_len]), ifindex, names))
            elif kind == _RTA_VIA:
                hops.append(_via_text(value[sub + 4 : sub + nla_len]))
            sub += (nla_len + 3) & ~3
        off += (rtnh_len + 3) & ~3
    return hops
