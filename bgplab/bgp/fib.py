"""Kernel FIB programming: Loc-RIB best paths become routes in a network namespace's routing table.

Our MSEE and gateway nodes must forward the way BGP chose, so every selection change is written
to the kernel: a prefix with next hops becomes a route (RTA_MULTIPATH when there are several:
ECMP), a prefix without any is deleted. Everything we install carries our own routing protocol
number, `RTPROT_BGPLAB`, so that what we own can be read back and flushed (on shutdown, and at
start-up after a crashed run) without touching anyone else's routes.

Why netlink is spoken here by hand and not through pyroute2's route API: pyroute2 builds each
message from Python objects (measured on this machine: about 2,300 routes/s through
`IPRoute.route("add")`, and about 10,000 messages/s for its encoder alone), while the kernel
takes well over 100,000 routes/s when messages are packed with `struct` and sent many to a
`send()`. 100k routes then take about 0.7 s here, 2-3 times faster than FRR's zebra installing
the same BGP routes (bench/fib.py). Hence:

* **Batches.** `apply()` packs up to `batch` RTM_NEWROUTE/RTM_DELROUTE messages into one
  `send()`. Only the last message of a batch asks for an acknowledgement; the kernel processes
  netlink route requests synchronously inside `send()` and always reports a failed request, so
  when that last acknowledgement arrives every error of the batch has been read, each matched to
  its prefix by sequence number. A failure never stops the batch: the other messages still land.
  Should the socket's receive buffer ever overflow (ENOBUFS, some error reports lost), the batch is
  sent again with an acknowledgement per message, which is safe because every request is
  idempotent (replace, and delete where "already gone" counts as done).
* **One thread.** A worker thread enters the namespace once (`setns`), opens the netlink socket
  there, and does all the encoding, sending and reading; the async methods await it, so the event
  loop only ever waits for a future. Batches run strictly in the order they were submitted.
* **pyroute2 where speed does not matter.** Looking up a VRF device's table and probing whether
  the kernel has VRF devices at all go through pyroute2; its untyped calls stay in two functions.
  (The tests also use it as an independent decoder of what we encode.)
* **`FibFeeder`** connects a speaker's Loc-RIB listener to a Fib: it coalesces changes per prefix
  and keeps one batch in flight.

Kernel semantics worth knowing: a route replaces any route with the same table, destination,
TOS and metric, whoever installed it. So our routes use metric `DEFAULT_METRIC` (20, as zebra
uses for eBGP), which keeps them from replacing connected routes (metric 0 for IPv4, 256 for
IPv6); for IPv4 the connected route also wins over a BGP route for the same prefix, for IPv6 ours
(20 < 256) would, so the RIB should not select BGP paths for connected prefixes (zebra's
administrative distance is what prevents it there). Next hops must be reachable through a
connected route (the kernel refuses others: ENETUNREACH / EHOSTUNREACH); recursive resolution of
iBGP next hops is not done here. Link-local IPv6 next hops need their interface: "fe80::1%eth1".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import errno
import functools
import logging
import os
import queue
import select
import socket
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

from bgplab.bgp.rib import LOCAL
from bgplab.bgp.rib import Change as RibChange
from bgplab.bgp.sockets import CLONE_NEWNET, NetnsError, netns_path
from bgplab.bgp.wire.nlri import prefix_text
from bgplab.bgp.wire.update import IPV4_UNICAST, IPV6_UNICAST, Family

RTPROT_BGPLAB = 201
"""Our routing protocol number (rtm_protocol). Unused by the kernel's list (0-18, 42, 99,
186-192), by iproute2's /etc/iproute2/rt_protos, and by FRR (186-198: bgp, isis, ospf, rip, ripng,
nhrp, eigrp, ldp, sharp, pbr, static, openfabric, srte), so neither zebra's start-up sweep nor
our flush ever touches the other's routes. `echo "201 bgplab" > /etc/iproute2/rt_protos.d/bgplab.conf`
makes `ip route` show it by name."""

DEFAULT_METRIC = 20
"""Route metric (RTA_PRIORITY) of our routes: zebra's for eBGP; see the module docstring."""

MAIN_TABLE = 254
DEFAULT_BATCH = 1024
"""Route requests per netlink `send()`; measured here: 256 was about 40% slower, 4096 no faster."""
REPLY_TIMEOUT = 30.0
"""Seconds to wait for a netlink reply before declaring the kernel (or us) broken."""

Change = tuple[Family, int, Sequence[str]]
"""(family, prefix key, next hops): what `apply()` takes; no next hops means delete."""

BLACKHOLE = "blackhole"
"""The next hop of a route that drops what it matches (RTN_BLACKHOLE), e.g. Azure's system
routes with next hop type None; give it alone: `(family, key, (BLACKHOLE,))`."""

_T = TypeVar("_T")
log = logging.getLogger("bgplab.fib")

# -- netlink constants (linux/netlink.h, linux/rtnetlink.h) ------------------------------------

_SOL_NETLINK = 270
_NETLINK_CAP_ACK = 10
_NETLINK_EXT_ACK = 11
_NETLINK_GET_STRICT_CHK = 12
_SO_SNDBUFFORCE = 32
_SO_RCVBUFFORCE = 33
_BUFFER = 4 << 20

_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_NLM_F_REQUEST = 0x1
_NLM_F_ACK = 0x4
_NLM_F_DUMP_INTR = 0x10
_NLM_F_DUMP = 0x300
_NLM_F_REPLACE = 0x100
_NLM_F_CREATE = 0x400
_NLM_F_CAPPED = 0x100
_NLM_F_ACK_TLVS = 0x200
_NLMSGERR_ATTR_MSG = 1

_RTM_NEWROUTE = 24
_RTM_DELROUTE = 25
_RTM_GETROUTE = 26
_RTN_UNICAST = 1
_RTN_BLACKHOLE = 6
_RT_SCOPE_UNIVERSE = 0
_RT_SCOPE_NOWHERE = 255
_RT_TABLE_COMPAT = 252
_RTA_DST = 1
_RTA_OIF = 4
_RTA_GATEWAY = 5
_RTA_PRIORITY = 6
_RTA_MULTIPATH = 9
_RTA_TABLE = 15
_RTA_VIA = 18

_NLMSGHDR = struct.Struct("=IHHII")
_ATTR = struct.Struct("=HH")
_U32_ATTR = struct.Struct("=HHI")
_RTNEXTHOP = struct.Struct("=HBBi")
_RTMSG = struct.Struct("=BBBBBBBBI")
# nlmsghdr + rtmsg + the RTA_DST header: everything before the destination address, in one pack.
_ROUTE_HEAD = struct.Struct("=IHHIIBBBBBBBBIHH")

_AF: dict[Family, int] = {IPV4_UNICAST: socket.AF_INET, IPV6_UNICAST: socket.AF_INET6}
_FAMILY_OF_AF: dict[int, Family] = {socket.AF_INET: IPV4_UNICAST, socket.AF_INET6: IPV6_UNICAST}
_ADDR_LEN: dict[int, int] = {socket.AF_INET: 4, socket.AF_INET6: 16}


class FibError(RuntimeError):
    """The FIB cannot be used as asked: closed, a VRF that cannot be resolved, and the like."""


class VrfUnsupported(FibError):
    """The kernel has no VRF devices; the message carries the probe's answer."""


@dataclass(frozen=True, slots=True)
class RouteError:
    """One change the kernel (or our encoder) refused; the rest of its batch is unaffected."""

    family: Family
    key: int
    next_hops: tuple[str, ...]
    errno: int
    message: str
    """The kernel's extended-ack text when it gave one, else the errno text."""

    @property
    def prefix(self) -> str:
        try:
            return prefix_text(self.family[0], self.key)
        except ValueError:
            return f"<key {self.key:#x}>"

    def __str__(self) -> str:
        what = f"via {', '.join(self.next_hops)}" if self.next_hops else "delete"
        name = errno.errorcode.get(self.errno, str(self.errno))
        return f"{self.prefix} {what}: {name}: {self.message}"


@dataclass(slots=True)
class ApplyResult:
    """What one `apply()` did: routes installed or replaced, prefixes now absent, refusals, time."""

    installed: int = 0
    removed: int = 0
    """Deletions that left the prefix without our route, including ones that were already gone."""
    errors: list[RouteError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True, slots=True)
class Probe:
    """A kernel capability probe's answer; `detail` says what was tried and what the kernel said."""

    supported: bool
    detail: str


# -- the namespace-bound worker ---------------------------------------------------------------


def _enter_netns(netns: str) -> None:
    """Move the calling thread (only it) into `netns` for good; sockets it opens then live there."""
    path = netns_path(netns)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise NetnsError(exc.errno, f"network namespace {netns!r}: {exc.strerror}") from None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetnsError(err, f"setns into {netns!r}: {os.strerror(err)}")
    finally:
        os.close(fd)


class _Worker:
    """A thread inside the namespace that runs submitted calls one at a time, in order.

    It owns the netlink socket (`nl`), which no other thread touches. Not a ThreadPoolExecutor:
    the thread must enter the namespace before anything else, fail visibly if it cannot, and stop
    (closing the socket) when the Fib that made it is dropped without `close()`.
    """

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self.nl: _Netlink | None = None
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, name=f"fib-{netns or 'host'}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            if self.netns is not None:
                _enter_netns(self.netns)
            self.nl = _Netlink()
        except BaseException as exc:
            self._started.set_exception(exc)
            return
        self._started.set_result(None)
        try:
            while (item := self._queue.get()) is not None:
                fn, future = item
                # Drop the references before waiting again: a call's closure holds its Fib, and a
                # Fib dropped without close() must be collectable for its finalizer to stop us.
                del item
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn())
                    except BaseException as exc:  # handed to whoever awaits the future
                        future.set_exception(exc)
                del fn, future
        finally:
            nl, self.nl = self.nl, None
            if nl is not None:
                nl.close()
            with contextlib.suppress(queue.Empty):  # anything submitted after stop() fails, not hangs
                while True:
                    if (left := self._queue.get_nowait()) is not None and left[1].set_running_or_notify_cancel():
                        left[1].set_exception(FibError("the FIB was closed"))

    def wait_started(self) -> None:
        self._started.result()

    def submit(self, fn: Callable[[], _T]) -> concurrent.futures.Future[_T]:
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()
        if not self._thread.is_alive():
            future.set_exception(FibError("the FIB worker thread has stopped"))
        else:
            self._queue.put((fn, future))
        return future

    def stop(self) -> None:
        """Let the thread finish what is queued, close the socket and end; does not wait."""
        self._queue.put(None)

    def join(self) -> None:
        if self._thread is not threading.current_thread():
            self._thread.join()


# -- the netlink socket and codec -------------------------------------------------------------


class _Netlink:
    """An NETLINK_ROUTE socket with buffers sized for batches, extended acks and strict dumps."""

    def __init__(self) -> None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
        try:
            for force, plain in ((_SO_SNDBUFFORCE, socket.SO_SNDBUF), (_SO_RCVBUFFORCE, socket.SO_RCVBUF)):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, force, _BUFFER)
                except PermissionError:
                    sock.setsockopt(socket.SOL_SOCKET, plain, _BUFFER)
            sock.setsockopt(_SOL_NETLINK, _NETLINK_CAP_ACK, 1)  # acks without a copy of the request
            sock.setsockopt(_SOL_NETLINK, _NETLINK_EXT_ACK, 1)  # the kernel's reason, as text
            sock.setsockopt(_SOL_NETLINK, _NETLINK_GET_STRICT_CHK, 1)  # dumps filtered by the kernel
            sock.bind((0, 0))
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        # A send may not exceed the send buffer (less some overhead): leave room.
        self.max_send = max(1024, sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2 - 1024)
        # How many acknowledgements surely fit in the receive buffer at once (each one is a small
        # socket buffer of at most about 2 KiB true size): the per-message-ack fallback's batch.
        self.acks_that_fit = max(1, sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2048)
        self.buf = bytearray(1 << 18)
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def drain(self) -> None:
        """Discard everything queued. After an overflow the kernel drops every further message
        to this socket (without saying so again) until its receive queue has been emptied once."""
        while select.select([self.sock], [], [], 0)[0]:
            with contextlib.suppress(OSError):  # the pending ENOBUFS itself, among others
                self.sock.recv_into(self.buf)

    def next_seq(self, count: int) -> int:
        """Reserve `count` sequence numbers and return the first; they wrap at 2**32."""
        first = self.seq + 1
        if first + count >= 1 << 32:
            first = 1
        self.seq = first + count - 1
        return first

    def messages(self) -> Iterable[tuple[int, int, int, int, memoryview]]:
        """Receive one datagram; yield (type, flags, seq, offset, view) for each message in it.

        The kernel answers within the `send()` that carried the requests, so a reply that does not
        come within REPLY_TIMEOUT means a bug (ours or the kernel's), not a slow kernel: fail
        loudly rather than leave the worker, and whoever awaits it, hanging for ever.
        """
        if not select.select([self.sock], [], [], REPLY_TIMEOUT)[0]:
            raise FibError(f"no reply from the kernel's netlink within {REPLY_TIMEOUT:g} s")
        n = self.sock.recv_into(self.buf)
        view = memoryview(self.buf)[:n]
        off = 0
        while off + 16 <= n:
            length, mtype, flags, seq, _pid = _NLMSGHDR.unpack_from(view, off)
            if length < 16:
                break
            yield mtype, flags, seq, off, view[off : off + length]
            off += (length + 3) & ~3


def _ack_error(msg: memoryview, flags: int) -> tuple[int, str]:
    """(errno, text) from an NLMSG_ERROR message; errno 0 is a plain acknowledgement."""
    (code,) = struct.unpack_from("=i", msg, 16)
    err = -code
    text = ""
    if err and flags & _NLM_F_ACK_TLVS:
        off = 36 if flags & _NLM_F_CAPPED else 20 + _NLMSGHDR.unpack_from(msg, 20)[0]
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


class _Encoder:
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
        self.rtm_table = table if table < 256 else _RT_TABLE_COMPAT
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
                _RTM_NEWROUTE,
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


@dataclass(frozen=True, slots=True)
class _Dumped:
    family: Family
    key: int
    table: int
    protocol: int
    metric: int | None
    next_hops: tuple[str, ...]


def _parse_route(msg: memoryview, names: Callable[[int], str]) -> _Dumped | None:
    """An RTM_NEWROUTE message (from a dump) as a _Dumped, or None if it is not a unicast or
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
    return _Dumped(family, (dst << 8) | dst_len, table, protocol, metric, tuple(hops))


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


# -- the FIB ----------------------------------------------------------------------------------


class Fib:
    """The kernel FIB of one namespace (one table in it), as seen by one BGP speaker.

    Async use (what the speaker and the nodes do)::

        async with Fib("msee1", table=100) as fib:      # open(); close() flushes our routes
            await fib.flush()                              # a crashed predecessor's leftovers
            result = await fib.apply([(IPV4_UNICAST, key, ("192.0.2.2", "192.0.2.3"))])
            for error in result.errors: log(error)

    Every coroutine has a blocking twin with a `_sync` suffix (and `with Fib(...)` works) for
    scripts and threads; never call those from the event loop's thread.

    `table` is a routing table id (254, main, by default; any other for policy routing), `vrf`
    the name of a VRF device in the namespace whose table is used (resolved at open; not both).
    `metric` None means the kernel's default (0 for IPv4, 1024 for IPv6); see `DEFAULT_METRIC`.
    `batch` is how many route requests go into one netlink `send()`.
    """

    def __init__(
        self,
        netns: str | None = None,
        *,
        table: int | None = None,
        vrf: str | None = None,
        protocol: int = RTPROT_BGPLAB,
        metric: int | None = DEFAULT_METRIC,
        batch: int = DEFAULT_BATCH,
    ) -> None:
        if table is not None and vrf is not None:
            raise ValueError("give table or vrf, not both")
        if table is not None and not (0 < table < 1 << 32 and table != 255):
            raise ValueError(f"table {table}: must be 1..2**32-1 and not 255 (local)")
        if not 5 <= protocol <= 255:
            raise ValueError(f"protocol {protocol}: 0-4 are the kernel's and iproute2's own; use 5..255")
        if metric is not None and not 0 <= metric < 1 << 32:
            raise ValueError(f"metric {metric} out of range")
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.netns = netns
        self.vrf = vrf
        self.protocol = protocol
        self.metric = metric
        self.batch = batch
        self._table = table if table is not None else (None if vrf is not None else MAIN_TABLE)
        self._worker: _Worker | None = None
        self._encoder: _Encoder | None = None
        self._finalizer: weakref.finalize[[], Fib] | None = None

    def __repr__(self) -> str:
        where = f"vrf={self.vrf!r}" if self.vrf else f"table={self._table}"
        return f"Fib(netns={self.netns!r}, {where}, protocol={self.protocol})"

    @property
    def table(self) -> int:
        """The routing table id in use (for a VRF, known once open)."""
        if self._table is None:
            raise FibError(f"{self!r}: the VRF's table is known only once the FIB is open")
        return self._table

    # -- lifecycle

    def open_sync(self) -> Self:
        """Start the worker in the namespace, open the netlink socket, resolve the VRF's table."""
        if self._worker is not None:
            raise FibError(f"{self!r} is already open")
        worker = _Worker(self.netns)
        try:
            worker.wait_started()
            if self.vrf is not None:
                vrf = self.vrf
                self._table = worker.submit(lambda: _vrf_table(vrf, self.netns)).result()
        except BaseException:
            worker.stop()
            worker.join()
            raise
        self._worker = worker
        self._encoder = _Encoder(self.table, self.protocol, self.metric)
        # Dropped without close() (a crash, in effect): stop the thread and close the socket, but
        # leave the routes, as a crashed process would; the next Fib's flush() removes them.
        self._finalizer = weakref.finalize(self, worker.stop)
        return self

    async def open(self) -> Self:
        return await asyncio.to_thread(self.open_sync)

    def close_sync(self, *, flush: bool = True) -> None:
        """Remove every route we own (unless flush=False: keep forwarding, e.g. for a restart) and stop."""
        worker = self._worker
        if worker is None:
            return
        try:
            if flush:
                worker.submit(self._flush).result()
        finally:
            self._worker = None
            if self._finalizer is not None:
                self._finalizer.detach()
            worker.stop()
            worker.join()

    async def close(self, *, flush: bool = True) -> None:
        await asyncio.to_thread(functools.partial(self.close_sync, flush=flush))

    def __enter__(self) -> Self:
        return self.open_sync()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close_sync()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _submit(self, fn: Callable[[], _T]) -> concurrent.futures.Future[_T]:
        if self._worker is None:
            raise FibError(f"{self!r} is not open")
        return self._worker.submit(fn)

    # -- routes

    def apply_sync(self, changes: Iterable[Change]) -> ApplyResult:
        """Install, replace or delete routes, in order; refusals are reported per prefix, never raised."""
        batch = list(changes)
        return self._submit(lambda: self._apply(batch)).result()

    async def apply(self, changes: Iterable[Change]) -> ApplyResult:
        """As apply_sync, awaiting the worker. The changes are copied and queued before the first
        suspension, so the caller may then go on mutating whatever produced them, and batches land
        in the order the apply() coroutines start. Cancelled while still queued, a batch is
        dropped; once the worker has begun it, it completes."""
        batch = list(changes)
        return await asyncio.wrap_future(self._submit(lambda: self._apply(batch)))

    def routes_sync(self, family: Family | None = None) -> dict[tuple[Family, int], tuple[str, ...]]:
        """Our routes as the kernel has them now: (family, prefix key) -> next hops (kernel order)."""
        return self._submit(lambda: {(r.family, r.key): r.next_hops for r in self._dump(family)}).result()

    async def routes(self, family: Family | None = None) -> dict[tuple[Family, int], tuple[str, ...]]:
        return await asyncio.wrap_future(
            self._submit(lambda: {(r.family, r.key): r.next_hops for r in self._dump(family)})
        )

    def flush_sync(self) -> int:
        """Delete every route with our protocol in our table, whoever put it there; return how many."""
        return self._submit(self._flush).result()

    async def flush(self) -> int:
        return await asyncio.wrap_future(self._submit(self._flush))

    # -- worker-thread side

    def _netlink(self) -> tuple[_Netlink, _Encoder]:
        worker = self._worker
        if worker is None or worker.nl is None or self._encoder is None:
            raise FibError(f"{self!r} is not open")
        return worker.nl, self._encoder

    def _apply(self, changes: list[Change], *, any_metric: bool = False) -> ApplyResult:
        """Deletions match our metric, or with any_metric every metric (for flush: whatever an
        earlier run, perhaps configured differently, left)."""
        started = time.perf_counter()
        nl, enc = self._netlink()
        enc.forget()
        result = ApplyResult()
        metric = None if any_metric else self.metric
        for start in range(0, len(changes), self.batch):
            self._send_batch(nl, enc, changes[start : start + self.batch], metric, result)
        result.seconds = time.perf_counter() - started
        return result

    def _encode(
        self,
        enc: _Encoder,
        changes: list[Change],
        first_seq: int,
        delete_metric: int | None,
        ack_all: bool,
        result: ApplyResult,
    ) -> tuple[list[bytes], list[int]]:
        """Messages for the changes (seq = first_seq + index); index of each message's change."""
        messages: list[bytes] = []
        index: list[int] = []
        flags = _NLM_F_ACK if ack_all else 0
        for i, (family, key, next_hops) in enumerate(changes):
            af = _AF.get(family)
            if af is None:
                result.errors.append(
                    RouteError(
                        family,
                        key,
                        tuple(next_hops),
                        errno.EAFNOSUPPORT,
                        f"family {family} is not IPv4 or IPv6 unicast",
                    )
                )
                continue
            try:
                if tuple(next_hops) == (BLACKHOLE,):
                    messages.append(enc.add(first_seq + i, flags, af, key, enc.common, _RTN_BLACKHOLE))
                elif next_hops:
                    hops = tuple(dict.fromkeys(next_hops))  # a next hop listed twice is one path
                    tail = enc.tail(af, hops)
                    if isinstance(tail, tuple):
                        result.errors.append(RouteError(family, key, hops, *tail))
                        continue
                    messages.append(enc.add(first_seq + i, flags, af, key, tail))
                else:
                    messages.append(enc.delete(first_seq + i, flags, af, key, delete_metric))
            except (OverflowError, ValueError, struct.error):
                result.errors.append(
                    RouteError(
                        family,
                        key,
                        tuple(next_hops),
                        errno.EINVAL,
                        f"prefix key {key:#x} is not a valid {family} prefix",
                    )
                )
                continue
            index.append(i)
        return messages, index

    def _send_batch(
        self,
        nl: _Netlink,
        enc: _Encoder,
        changes: list[Change],
        delete_metric: int | None,
        result: ApplyResult,
        ack_all: bool = False,
    ) -> None:
        first = nl.next_seq(len(changes))
        errors_before = len(result.errors)
        messages, index = self._encode(enc, changes, first, delete_metric, ack_all, result)
        # Split by bytes too: one send may not exceed the socket's send buffer.
        chunks: list[list[bytes]] = [[]]
        size = 0
        for msg in messages:
            if size + len(msg) > nl.max_send and chunks[-1]:
                chunks.append([])
                size = 0
            chunks[-1].append(msg)
            size += len(msg)
        failed: dict[int, tuple[int, str]] = {}
        try:
            for chunk in chunks:
                if not chunk:
                    continue
                if not ack_all:  # the fence: its ack comes after every error of the chunk
                    last = chunk[-1]
                    chunk[-1] = last[:6] + struct.pack("=H", _NLMSGHDR.unpack_from(last)[2] | _NLM_F_ACK) + last[8:]
                nl.sock.send(b"".join(chunk))
                fence = _NLMSGHDR.unpack_from(chunk[-1])[3]
                self._read_acks(nl, first, len(changes), fence, failed)
        except OSError as exc:
            if exc.errno != errno.ENOBUFS or ack_all:
                raise
            # Error reports were lost to a full receive buffer: redo the batch, every request acked,
            # in pieces small enough that their acks fit (requests are idempotent).
            del result.errors[errors_before:]
            nl.drain()
            step = nl.acks_that_fit
            for start in range(0, len(changes), step):
                self._send_batch(nl, enc, changes[start : start + step], delete_metric, result, ack_all=True)
            return
        for i in index:
            family, key, next_hops = changes[i]
            err = failed.get(first + i)
            if err is not None and not (err[0] == errno.ESRCH and not next_hops):
                result.errors.append(RouteError(family, key, tuple(dict.fromkeys(next_hops)), *err))
            elif next_hops:
                result.installed += 1
            else:
                result.removed += 1

    @staticmethod
    def _read_acks(nl: _Netlink, first: int, count: int, fence: int, failed: dict[int, tuple[int, str]]) -> None:
        while True:
            for mtype, flags, seq, _off, msg in nl.messages():
                if mtype != _NLMSG_ERROR or not first <= seq < first + count:
                    continue  # not ours (a stale reply to an earlier request)
                err, text = _ack_error(msg, flags)
                if err:
                    failed[seq] = (err, text)
                if seq == fence:
                    return

    def _dump(self, family: Family | None = None) -> list[_Dumped]:
        """Our routes in our table, from RTM_GETROUTE dumps the kernel filters (strict checking)."""
        nl, _enc = self._netlink()
        table = self.table
        names: dict[int, str] = {}

        def name(ifindex: int) -> str:
            if ifindex not in names:
                try:
                    names[ifindex] = socket.if_indextoname(ifindex)
                except OSError:
                    names[ifindex] = str(ifindex)
            return names[ifindex]

        out: list[_Dumped] = []
        families = [family] if family is not None else [IPV4_UNICAST, IPV6_UNICAST]
        for fam in families:
            af = _AF.get(fam)
            if af is None:
                raise ValueError(f"family {fam} is not IPv4 or IPv6 unicast")
            for _attempt in range(5):
                routes, interrupted = self._dump_once(nl, af, table, name)
                if not interrupted:
                    break
            else:
                raise FibError(f"{self!r}: route dump kept being interrupted by concurrent changes")
            out += [r for r in routes if r.protocol == self.protocol and r.table == table]
        return out

    def _dump_once(
        self,
        nl: _Netlink,
        af: int,
        table: int,
        name: Callable[[int], str],
    ) -> tuple[list[_Dumped], bool]:
        seq = nl.next_seq(1)
        rtm_table = table if table < 256 else 0
        body = _RTMSG.pack(af, 0, 0, 0, rtm_table, self.protocol, 0, 0, 0) + _U32_ATTR.pack(8, _RTA_TABLE, table)
        nl.sock.send(_NLMSGHDR.pack(16 + len(body), _RTM_GETROUTE, _NLM_F_REQUEST | _NLM_F_DUMP, seq, 0) + body)
        routes: list[_Dumped] = []
        interrupted = False
        while True:
            for mtype, flags, mseq, _off, msg in nl.messages():
                if mseq != seq:
                    continue
                if flags & _NLM_F_DUMP_INTR:
                    interrupted = True
                if mtype == _NLMSG_DONE:
                    return routes, interrupted
                if mtype == _NLMSG_ERROR:
                    err, text = _ack_error(msg, flags)
                    if err and err != errno.ENOENT:  # ENOENT: the table does not exist (yet), so it is empty
                        raise OSError(err, f"route dump: {text}")
                    return routes, interrupted
                if mtype == _RTM_NEWROUTE:
                    route = _parse_route(msg, name)
                    if route is not None:
                        routes.append(route)

    def _flush(self) -> int:
        total = 0
        for _round in range(3):  # another writer could add while we delete; a few rounds settle it
            routes = self._dump()
            if not routes:
                break
            total += self._apply([(r.family, r.key, ()) for r in routes], any_metric=True).removed
        return total


# -- feeding it from the Loc-RIB -------------------------------------------------------------


def next_hops_of(change: RibChange) -> tuple[str, ...]:
    """The FIB next hops for a Loc-RIB selection: every selected path's next hop, best first.

    Nothing when the prefix is gone or when our own origination wins (a route we originate is
    not forwarded to a next hop; whatever makes it reachable locally is not BGP's to install).
    """
    return tuple(dict.fromkeys(a.next_hop for peer, a in change.paths if peer != LOCAL and a.next_hop))


class FibFeeder:
    """Loc-RIB changes in, FIB batches out: the glue between `Speaker.rib_listeners` and a Fib.

    The listener is synchronous and may fire for every UPDATE; the FIB is best written in large
    batches. So changes are coalesced per prefix (only the latest selection of a flapping prefix
    reaches the kernel) and one background task applies whatever has accumulated, one batch at a
    time: while the kernel takes one batch, the next one builds up. Refusals are logged (and
    handed to `on_result`, with the rest of each ApplyResult); they do not stop the feed.

        feeder = FibFeeder(fib)
        speaker.rib_listeners.append(feeder.on_rib_changes)
        ...
        await feeder.idle()          # everything selected so far is in the kernel
    """

    def __init__(self, fib: Fib, on_result: Callable[[ApplyResult], None] | None = None) -> None:
        self.fib = fib
        self.on_result = on_result
        self._pending: dict[tuple[Family, int], tuple[str, ...]] = {}
        self._task: asyncio.Task[None] | None = None
        self.applied = 0
        self.failed = 0

    def on_rib_changes(self, changes: Iterable[RibChange]) -> None:
        """A `Speaker.rib_listeners` callback; must be called from the event loop's thread."""
        pending = self._pending
        for change in changes:
            pending[(change.family, change.key)] = next_hops_of(change)
        self.submit_pending()

    def submit(self, changes: Iterable[Change]) -> None:
        """Queue FIB changes directly (as `apply` takes them), coalesced with the RIB's."""
        for family, key, hops in changes:
            self._pending[(family, key)] = tuple(hops)
        self.submit_pending()

    def submit_pending(self) -> None:
        if self._pending and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._drain(), name=f"fib-feed-{self.fib.netns}")

    async def _drain(self) -> None:
        while self._pending:
            batch = [(family, key, hops) for (family, key), hops in self._pending.items()]
            self._pending = {}
            try:
                result = await self.fib.apply(batch)
            except Exception:
                log.exception("%r: a FIB batch of %d changes failed", self.fib, len(batch))
                self.failed += len(batch)
                continue
            self.applied += len(batch) - len(result.errors)
            self.failed += len(result.errors)
            for error in result.errors[:10]:
                log.warning("%r: %s", self.fib, error)
            if len(result.errors) > 10:
                log.warning("%r: ... and %d more refused routes", self.fib, len(result.errors) - 10)
            if self.on_result is not None:
                self.on_result(result)

    async def idle(self) -> None:
        """Wait until every change handed over so far has been applied (or refused)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)


# -- VRFs (pyroute2: slow, but this is once per open) ------------------------------------------


def _vrf_table_of(link: Any) -> int | None:
    """The table of a pyroute2 ifinfmsg if it is a VRF device, else None."""
    if link.get(("linkinfo", "kind")) != "vrf":
        return None
    table = link.get(("linkinfo", "data", "vrf_table"))
    return int(table) if table is not None else None


def _vrf_table(vrf: str, netns: str | None) -> int:
    """Resolve a VRF device's table in the calling thread's namespace (the worker's)."""
    from pyroute2 import IPRoute  # type: ignore[import-untyped]
    from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

    where = f"network namespace {netns!r}" if netns else "the host namespace"
    with IPRoute() as ipr:
        try:
            links = ipr.link("get", ifname=vrf)
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise FibError(f"looking up VRF {vrf!r} in {where}: {exc}") from exc
            links = []
    if not links:
        probe = probe_vrf()
        if not probe.supported:
            raise VrfUnsupported(
                f"no VRF device {vrf!r} in {where}, and this kernel cannot make one ({probe.detail}); "
                "use a policy-routing table (table=N) or a namespace per VRF instead"
            )
        raise FibError(f"no VRF device {vrf!r} in {where}")
    table = _vrf_table_of(links[0])
    if table is None:
        raise FibError(f"{vrf!r} in {where} is not a VRF device (kind {links[0].get(('linkinfo', 'kind'))!r})")
    return table


@functools.cache
def probe_vrf() -> Probe:
    """Whether this kernel can create VRF devices; tried once per process, leaving nothing behind.

    The probe runs in a thread that unshares a fresh, anonymous network namespace and tries
    `ip link add <name> type vrf table 1` there (through pyroute2); the namespace disappears with
    the thread, so nothing can be left over whatever happens.
    """
    answer: list[Probe] = []

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                answer.append(Probe(False, f"cannot make a scratch namespace to probe: {os.strerror(err)}"))
                return
            from pyroute2 import IPRoute
            from pyroute2.netlink.exceptions import NetlinkError

            with IPRoute(ext_ack=True) as ipr:
                try:
                    ipr.link("add", ifname="bgplabvrf", kind="vrf", vrf_table=1)
                except NetlinkError as exc:
                    name = errno.errorcode.get(exc.code, str(exc.code))
                    answer.append(Probe(False, f"'ip link add type vrf' failed: {name}: {exc.args[1]}"))
                    return
                links = ipr.link("get", ifname="bgplabvrf")
                table = _vrf_table_of(links[0]) if links else None
                answer.append(Probe(table == 1, f"'ip link add type vrf table 1' made a VRF device (table {table})"))
        except Exception as exc:  # an unexpected failure is an answer too
            answer.append(Probe(False, f"VRF probe failed: {exc!r}"))

    thread = threading.Thread(target=run, name="vrf-probe")
    thread.start()
    thread.join()
    return answer[0]
