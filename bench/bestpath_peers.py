"""The receivers of the best-path benchmark: bench.ingest's receivers, given two peers and multipath.

Two senders of one customer AS (65001, like two CEs) announce the same table with their own next
hops; each receiver holds both paths for every prefix and selects. What "done" means differs by
receiver, because they select at different moments:

* **ours** decides inside the handling of each UPDATE (`LocRib.update`), so when both peers'
  Adj-RIB-In hold N prefixes, every prefix has been selected over both of its paths. The
  receiver process times that itself, then takes the Loc-RIB's census.
* **FRR** counts a route in (pfxRcd) when it stores it and selects later, from a work queue
  (`process_queue`, 50 ms hold). Done = both neighbors at N *and* that queue empty, in one
  `vtysh` call. Checked afterwards: sampled prefixes carry two paths, both flagged multipath, and
  the count of `BGP multipath info` allocations.
* **BIRD 2** selects inside the import of each route (`rte_recalculate`), so both protocols'
  "imported" counters at N is done. Checked afterwards: `show route count` says 2N routes for N
  networks. BIRD has no multipath in its RIB: it keeps every path and marks one best, and merges
  equal paths into ECMP only when exporting to the kernel (`merge paths`), which is not configured
  here (no kernel protocol, as FRR runs without zebra and ours without a FIB).

Nobody advertises anything back: a router with two peers would send its selection to the other
peer, but these senders are there to feed, and bench.ingest made the same choice for FRR's echo.
FRR gets `route-map BL-OUT deny 1` in front of the harness's export map, BIRD `export none`, ours
an export policy that rejects every route.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.ingest_common import (
    RECEIVER_ASN,
    RECEIVER_ROUTER_ID,
    SENDER_ADDRESS,
    SENDER_ASN,
    SENDER_ROUTER_ID,
    split_messages,
)
from bench.ingest_peers import DaemonReceiver, PolledOurs, Receiver
from bgplab.bgp.wire.constants import HEADER_LEN, MessageType
from bgplab.testing.daemons import BgpDaemon, BirdDaemon, FrrDaemon, Neighbor
from bgplab.testing.netns import Netns

SECOND_SENDER_ADDRESS = "192.0.2.3"
"""The second CE, on the same link as the first (two addresses in the sender namespace)."""
SECOND_SENDER_ROUTER_ID = "10.255.0.3"
SENDERS = ((SENDER_ADDRESS, SENDER_ROUTER_ID), (SECOND_SENDER_ADDRESS, SECOND_SENDER_ROUTER_ID))
ADDRESSES = tuple(address for address, _ in SENDERS)
MAX_PATHS = 2
SAMPLE_PREFIXES = 16
"""Prefixes FRR is asked about one by one to check multipath; its whole table in JSON would take minutes."""


def sample_prefixes(blob: Path, count: int) -> list[str]:
    """The first prefix of `count` UPDATEs spread evenly over an encoded table, as "a.b.c.d/len"."""
    data = memoryview(blob.read_bytes())
    messages, _ = split_messages(data)
    updates = [(start, end) for msg_type, start, end in messages if msg_type == MessageType.UPDATE]
    step = max(1, len(updates) // count)
    out = []
    for start, end in updates[::step][:count]:
        withdrawn = int.from_bytes(data[start + HEADER_LEN : start + HEADER_LEN + 2], "big")
        attrs_at = start + HEADER_LEN + 2 + withdrawn
        nlri = attrs_at + 2 + int.from_bytes(data[attrs_at : attrs_at + 2], "big")
        if nlri >= end:
            continue
        length = data[nlri]
        octets = bytes(data[nlri + 1 : nlri + 1 + (length + 7) // 8]).ljust(4, b"\0")
        out.append(f"{'.'.join(map(str, octets))}/{length}")
    return out


# ---------------------------------------------------------------- daemons


class MultipathFrr(FrrDaemon):
    """FRR as one runs it for full tables (zebra beside bgpd, `-n`: no FIB), asked over its vty
    socket for both neighbors' counts and its selection queue."""

    with_zebra = True

    def enable_multipath(self) -> None:
        """eBGP ECMP of two, and nothing advertised (see the module docstring); before any session is up."""
        self.vtysh("configure terminal", "route-map BL-OUT deny 1", "exit", f"router bgp {self.asn}",
                   "address-family ipv4 unicast", f"maximum-paths {MAX_PATHS}", "end")
        if f"maximum-paths {MAX_PATHS}" not in self.vtysh("show running-config"):
            raise RuntimeError("FRR did not take maximum-paths")

    def progress(self) -> tuple[int, int | None]:
        """The smaller pfxRcd of the two neighbors, and the items in bgpd's `process_queue` (None: not shown)."""
        peers = json.loads(self.query("show bgp ipv4 unicast summary json")).get("peers", {})
        least = min(int(peers.get(a, {}).get("pfxRcd", 0)) for a in ADDRESSES)
        queued = None
        for line in self.query("show work-queues").splitlines():
            if "process_queue" in line:
                queued = next(int(t) for t in line.split() if t.isdigit())
        return least, queued

    def multipath_census(self, prefixes: list[str]) -> dict[str, Any]:
        """For sampled prefixes, how many paths are flagged multipath; and bgpd's multipath allocations."""
        out = self.vtysh(*(f"show bgp ipv4 unicast {p} json" for p in prefixes))
        decoder, at, widths = json.JSONDecoder(), 0, []
        while (at := _skip_space(out, at)) < len(out):
            route, at = decoder.raw_decode(out, at)
            widths.append(sum(bool(path.get("multipath")) for path in route.get("paths", [])))
        memory = self.vtysh("show memory")
        infos = re.search(r"BGP multipath info\s*:\s*(\d+)", memory)
        return {"sampled": len(prefixes), "sampled_with_2_multipaths": widths.count(MAX_PATHS),
                "sample_widths": widths, "multipath_infos": int(infos.group(1)) if infos else None}


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


class NoExportBird(BirdDaemon):
    """BIRD as the harness configures it, but exporting nothing to either peer."""

    def _render(self) -> str:
        config = super()._render()
        exports = config.count("export filter bl_export;")
        if exports != len(self.neighbors):
            raise RuntimeError(f"expected one export filter per neighbor in the harness's BIRD config, saw {exports}")
        return config.replace("export filter bl_export;", "export none;")

    def least_imported(self) -> int:
        """The smaller "imported" count of the two BGP protocols, from one `show protocols all`."""
        out = self.birdc("show", "protocols", "all")
        counts: dict[str, int] = {}
        for block in re.split(r"\n(?=\S)", out):
            name = block.split(None, 1)[0] if block.strip() else ""
            imported = re.search(r"Routes:\s+(\d+) imported", block)
            if name.startswith("bl_n") and imported:
                counts[name] = int(imported.group(1))
        return min((counts.get(self._protocol(a), 0) for a in ADDRESSES), default=0)

    def route_count(self) -> dict[str, int]:
        """BIRD's own count of routes (paths) and networks (prefixes) in its IPv4 table."""
        out = self.birdc("show", "route", "table", "master4", "count")
        match = re.search(r"(\d+) of (\d+) routes for (\d+) networks", out)
        if match is None:
            raise RuntimeError(f"unexpected `show route count` output: {out!r}")
        return {"routes": int(match.group(2)), "networks": int(match.group(3))}


# ---------------------------------------------------------------- receivers


class MultipathOurs(PolledOurs):
    """Our speaker with a Loc-RIB (max_paths 2) and both senders as peers, counted from outside as in bench.ingest."""

    def __init__(self) -> None:
        super().__init__("ours", extra=["--peers", ",".join(ADDRESSES), "--max-paths", str(MAX_PATHS)])
        self.resolution_note += ("; done = both Adj-RIB-Ins hold N (selection runs inside each UPDATE); "
                                 "checked: Loc-RIB census")

    def verify(self, expected: int, sample: list[str]) -> dict[str, Any]:
        rib = self._full.get("rib", {})
        widths = rib.get("paths_per_prefix", {})
        return {"ok": rib.get("prefixes") == expected and widths == {str(MAX_PATHS): expected},
                "summary": f"Loc-RIB {rib.get('prefixes', 0):,} prefixes, {widths.get(str(MAX_PATHS), 0):,} "
                           f"with {MAX_PATHS} paths", **rib}

    def details(self) -> dict[str, Any]:
        return {**super().details(), **{k: self._full[k] for k in ("rib", "peers") if k in self._full}}


class TwoPeerDaemon(DaemonReceiver):
    """A harness daemon with both senders as passive neighbors, polled as in bench.ingest."""

    def start(self, ns: Netns, expected: int, logdir: Path) -> None:
        neighbors = [Neighbor(address, SENDER_ASN, passive=True, hold_time=self.hold, keepalive=int(self.keepalive),
                              families=("ipv4",)) for address in ADDRESSES]
        self.daemon = self.factory(ns, RECEIVER_ASN, RECEIVER_ROUTER_ID, neighbors).start()
        if self.configure is not None:
            self.configure(self.daemon)

    def wait_established(self, timeout: float) -> None:
        assert self.daemon is not None
        for address in ADDRESSES:
            self.daemon.wait_state(address, "established", timeout)

    def verify(self, expected: int, sample: list[str]) -> dict[str, Any]:
        raise NotImplementedError


class FrrMultipath(TwoPeerDaemon):
    def __init__(self) -> None:
        super().__init__("frr", MultipathFrr, 0.02, "bgpd and zebra (bgpd -n: no FIB)", configure=_enable_multipath)
        self.resolution_note += ("; done = pfxRcd N from both and process_queue empty (FRR selects from that "
                                 "queue); checked: sampled prefixes multipath, `show memory` multipath infos")
        self.queued: int | None = None

    def _count(self) -> int:
        assert isinstance(self.daemon, MultipathFrr)
        least, self.queued = self.daemon.progress()
        return least

    def _complete(self, count: int, expected: int) -> bool:
        return count >= expected and self.queued == 0

    def verify(self, expected: int, sample: list[str]) -> dict[str, Any]:
        assert isinstance(self.daemon, MultipathFrr)
        census = self.daemon.multipath_census(sample)
        infos = census["multipath_infos"]
        ok = census["sampled_with_2_multipaths"] == census["sampled"] > 0
        return {"ok": ok, "summary": f"{census['sampled_with_2_multipaths']}/{census['sampled']} sampled prefixes "
                                     f"with {MAX_PATHS} multipaths; {infos or 0:,} multipath infos", **census}


class BirdBothPaths(TwoPeerDaemon):
    def __init__(self) -> None:
        super().__init__("bird", NoExportBird, 0.02, "bird")
        self.resolution_note += ("; done = imported N on both (BIRD selects inside the import); "
                                 "checked: `show route count`; one best, no RIB multipath")

    def _count(self) -> int:
        assert isinstance(self.daemon, NoExportBird)
        return self.daemon.least_imported()

    def verify(self, expected: int, sample: list[str]) -> dict[str, Any]:
        assert isinstance(self.daemon, NoExportBird)
        counts = self.daemon.route_count()
        ok = counts == {"routes": MAX_PATHS * expected, "networks": expected}
        return {"ok": ok, "summary": f"{counts['routes']:,} paths for {counts['networks']:,} prefixes, "
                                     "1 best each (no RIB multipath)", **counts}


def _enable_multipath(daemon: BgpDaemon) -> None:
    assert isinstance(daemon, MultipathFrr)
    daemon.enable_multipath()


RECEIVERS: dict[str, Callable[[], MultipathOurs | TwoPeerDaemon]] = {
    "ours": MultipathOurs, "frr": FrrMultipath, "bird": BirdBothPaths}
BINARIES = {"frr": FrrDaemon.bgpd, "bird": "bird"}


def make_receiver(name: str) -> MultipathOurs | TwoPeerDaemon:
    if name not in RECEIVERS:
        raise ValueError(f"unknown receiver {name!r}; choose from {', '.join(RECEIVERS)}")
    return RECEIVERS[name]()


def verify(receiver: Receiver, expected: int, sample: list[str]) -> dict[str, Any]:
    """The receiver's own proof that it holds both paths per prefix; never raises (the row says why)."""
    assert isinstance(receiver, MultipathOurs | TwoPeerDaemon)
    try:
        return receiver.verify(expected, sample)
    except Exception as exc:  # a failed check must not lose the timing already taken
        return {"ok": False, "summary": f"check failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"}
