"""The thread that lives in the namespace and the netlink socket it owns.

A Fib's every netlink operation runs here: the thread enters the namespace once (`setns`),
opens the socket there, and runs submitted calls one at a time, in order.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import queue
import select
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from bgplab.bgp.fib.errors import FibError
from bgplab.bgp.fib.rtnetlink import NLMSGHDR
from bgplab.bgp.sockets import enter_netns

REPLY_TIMEOUT = 30.0
"""Seconds to wait for a netlink reply before declaring the kernel (or us) broken."""

_T = TypeVar("_T")

_SOL_NETLINK = 270
_NETLINK_CAP_ACK = 10
_NETLINK_EXT_ACK = 11
_NETLINK_GET_STRICT_CHK = 12
_SO_SNDBUFFORCE = 32
_SO_RCVBUFFORCE = 33
_BUFFER = 4 << 20


class Worker:
    """A thread inside the namespace that runs submitted calls one at a time, in order.

    It owns the netlink socket (`nl`), which no other thread touches. Not a ThreadPoolExecutor:
    the thread must enter the namespace before anything else, fail visibly if it cannot, and stop
    (closing the socket) when the Fib that made it is dropped without `close()`.
    """

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self.nl: NetlinkSocket | None = None
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, name=f"fib-{netns or 'host'}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            if self.netns is not None:
                enter_netns(self.netns)
            self.nl = NetlinkSocket()
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


class NetlinkSocket:
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
            length, mtype, flags, seq, _pid = NLMSGHDR.unpack_from(view, off)
            if length < 16:
                break
            yield mtype, flags, seq, off, view[off : off + length]
            off += (length + 3) & ~3
