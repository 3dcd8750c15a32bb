"""Socket plumbing the asyncio edge needs and the standard library lacks.

TCP MD5 (RFC 2385), GTSM (RFC 5082) and network-namespace placement are Linux socket options
or syscalls with no Python wrapper; they live here so `speaker.py` stays about BGP.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import TypeVar

TCP_MD5SIG = 14
TCP_MD5SIG_MAXKEYLEN = 80
IP_MINTTL = 21
IPV6_MINHOPCOUNT = 73
CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

T = TypeVar("T")


class NetnsError(OSError):
    """The requested network namespace does not exist or cannot be entered."""


def netns_path(netns: str) -> str:
    return netns if netns.startswith("/") else os.path.join(NETNS_RUN_DIR, netns)


def enter_netns(netns: str) -> None:
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


def in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """Run `fn` with the calling context inside `netns` and return its result.

    A socket keeps the namespace it was created in for life, so creating it in a short-lived
    thread that entered the namespace puts it there without moving the event loop's thread:
    one process can own sockets in several namespaces (how the MSEE keeps peerings apart).
    """
    if netns is None:
        return fn()
    result: list[T] = []
    error: list[BaseException] = []

    def runner() -> None:
        try:
            enter_netns(netns)
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread below
            error.append(exc)

    thread = threading.Thread(target=runner, name=f"netns-{netns}")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def family_of(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def new_tcp_socket(netns: str | None, family: socket.AddressFamily) -> socket.socket:
    sock = in_netns(netns, lambda: socket.socket(family, socket.SOCK_STREAM))
    sock.setblocking(False)
    return sock


def set_md5(sock: socket.socket, peer: str, key: str | None) -> None:
    """Install (or with key None, remove) the RFC 2385 key for one peer address on `sock`.

    On a listening socket this covers connections accepted from that peer; the kernel drops
    segments with a missing or wrong digest silently, so a bad key shows as "never connects".
    """
    raw = (key or "").encode()
    if len(raw) > TCP_MD5SIG_MAXKEYLEN:
        raise ValueError(f"TCP MD5 key of {len(raw)} bytes; at most {TCP_MD5SIG_MAXKEYLEN}")
    addr = ipaddress.ip_address(peer)
    if addr.version == 4 and sock.family == socket.AF_INET6:
        addr = ipaddress.IPv6Address(f"::ffff:{addr}")
    if addr.version == 4:
        sockaddr = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + addr.packed
    else:
        sockaddr = struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 0, 0) + addr.packed + b"\x00" * 4
    sockaddr = sockaddr.ljust(128, b"\x00")
    value = sockaddr + struct.pack("=BBHI", 0, 0, len(raw), 0) + raw.ljust(TCP_MD5SIG_MAXKEYLEN, b"\x00")
    sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, value)


def set_ttl_security(sock: socket.socket, hops: int = 1) -> None:
    """GTSM: send with TTL 255 and have the kernel drop anything that travelled more than `hops`."""
    minimum = 256 - hops
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MINHOPCOUNT, minimum)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
        sock.setsockopt(socket.IPPROTO_IP, IP_MINTTL, minimum)
