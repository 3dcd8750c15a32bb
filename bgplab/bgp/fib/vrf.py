"""VRF devices, through pyroute2 (slow, but this is once per open): a VRF's table, and whether
the kernel can make VRF devices at all."""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import threading
from dataclasses import dataclass
from typing import Any

from bgplab.bgp.fib.errors import FibError, VrfUnsupported
from bgplab.bgp.sockets import CLONE_NEWNET


@dataclass(frozen=True, slots=True)
class Probe:
    """A kernel capability probe's answer; `detail` says what was tried and what the kernel said."""

    supported: bool
    detail: str


def vrf_table_of(link: Any) -> int | None:
    """The table of a pyroute2 ifinfmsg if it is a VRF device, else None."""
    if link.get(("linkinfo", "kind")) != "vrf":
        return None
    table = link.get(("linkinfo", "data", "vrf_table"))
    return int(table) if table is not None else None


def vrf_table(vrf: str, netns: str | None) -> int:
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
    table = vrf_table_of(links[0])
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
                table = vrf_table_of(links[0]) if links else None
                answer.append(Probe(table == 1, f"'ip link add type vrf table 1' made a VRF device (table {table})"))
        except Exception as exc:  # an unexpected failure is an answer too
            answer.append(Probe(False, f"VRF probe failed: {exc!r}"))

    thread = threading.Thread(target=run, name="vrf-probe")
    thread.start()
    thread.join()
    return answer[0]
