"""`Fib`: one table of a namespace's kernel FIB, programmed in batches (see the package docstring)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import functools
import socket
import struct
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self, TypeVar

from bgplab.bgp.fib import rtnetlink as rtnl
from bgplab.bgp.fib.errors import FibError
from bgplab.bgp.fib.rtnetlink import BLACKHOLE, KernelRoute, RouteEncoder
from bgplab.bgp.fib.vrf import vrf_table
from bgplab.bgp.fib.worker import NetlinkSocket, Worker
from bgplab.bgp.wire.nlri import prefix_text
from bgplab.bgp.wire.update import IPV4_UNICAST, IPV6_UNICAST, Family

RTPROT_BGPLAB = 201
"""Our routing protocol number (rtm_protocol). Unused by the kernel's list (0-18, 42, 99,
186-192), by iproute2's /etc/iproute2/rt_protos, and by FRR (186-198: bgp, isis, ospf, rip, ripng,
nhrp, eigrp, ldp, sharp, pbr, static, openfabric, srte), so neither zebra's start-up sweep nor
our flush ever touches the other's routes. `echo "201 bgplab" > /etc/iproute2/rt_protos.d/bgplab.conf`
makes `ip route` show it by name."""

DEFAULT_METRIC = 20
"""Route metric (RTA_PRIORITY) of our routes: zebra's for eBGP; see the package docstring."""

MAIN_TABLE = 254
DEFAULT_BATCH = 1024
"""Route requests per netlink `send()`; measured here: 256 was about 40% slower, 4096 no faster."""

Change = tuple[Family, int, Sequence[str]]
"""(family, prefix key, next hops): what `apply()` takes; no next hops means delete."""

_T = TypeVar("_T")


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
        self._worker: Worker | None = None
        self._encoder: RouteEncoder | None = None
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
        worker = Worker(self.netns)
        try:
            worker.wait_started()
            if self.vrf is not None:
                vrf = self.vrf
                self._table = worker.submit(lambda: vrf_table(vrf, self.netns)).result()
        except BaseException:
            worker.stop()
            worker.join()
            raise
        self._worker = worker
        self._encoder = RouteEncoder(self.table, self.protocol, self.metric)
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

    def _netlink(self) -> tuple[NetlinkSocket, RouteEncoder]:
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
        enc: RouteEncoder,
        changes: list[Change],
        first_seq: int,
        delete_metric: int | None,
        ack_all: bool,
        result: ApplyResult,
    ) -> tuple[list[bytes], list[int]]:
        """Messages for the changes (seq = first_seq + index); index of each message's change."""
        messages: list[bytes] = []
        index: list[int] = []
        flags = rtnl.NLM_F_ACK if ack_all else 0
        for i, (family, key, next_hops) in enumerate(changes):
            af = rtnl.AF_OF_FAMILY.get(family)
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
                    messages.append(enc.blackhole(first_seq + i, flags, af, key))
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
        nl: NetlinkSocket,
        enc: RouteEncoder,
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
                    chunk[-1] = rtnl.with_ack(chunk[-1])
                nl.sock.send(b"".join(chunk))
                fence = rtnl.message_seq(chunk[-1])
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
    def _read_acks(nl: NetlinkSocket, first: int, count: int, fence: int, failed: dict[int, tuple[int, str]]) -> None:
        while True:
            for mtype, flags, seq, _off, msg in nl.messages():
                if mtype != rtnl.NLMSG_ERROR or not first <= seq < first + count:
                    continue  # not ours (a stale reply to an earlier request)
                err, text = rtnl.ack_error(msg, flags)
                if err:
                    failed[seq] = (err, text)
                if seq == fence:
                    return

    def _dump(self, family: Family | None = None) -> list[KernelRoute]:
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

        out: list[KernelRoute] = []
        families = [family] if family is not None else [IPV4_UNICAST, IPV6_UNICAST]
        for fam in families:
            af = rtnl.AF_OF_FAMILY.get(fam)
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
        nl: NetlinkSocket,
        af: int,
        table: int,
        name: Callable[[int], str],
    ) -> tuple[list[KernelRoute], bool]:
        seq = nl.next_seq(1)
        nl.sock.send(rtnl.dump_request(seq, af, table, self.protocol))
        routes: list[KernelRoute] = []
        interrupted = False
        while True:
            for mtype, flags, mseq, _off, msg in nl.messages():
                if mseq != seq:
                    continue
                if flags & rtnl.NLM_F_DUMP_INTR:
                    interrupted = True
                if mtype == rtnl.NLMSG_DONE:
                    return routes, interrupted
                if mtype == rtnl.NLMSG_ERROR:
                    err, text = rtnl.ack_error(msg, flags)
                    if err and err != errno.ENOENT:  # ENOENT: the table does not exist (yet), so it is empty
                        raise OSError(err, f"route dump: {text}")
                    return routes, interrupted
                if mtype == rtnl.RTM_NEWROUTE:
                    route = rtnl.parse_route(msg, name)
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
