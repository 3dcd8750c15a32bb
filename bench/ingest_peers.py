"""Every receiver the ingest benchmark compares, behind one interface the orchestrator drives.

Our speaker and the sink are bench processes that time themselves (`ingest_receiver.py`). The
daemons are started with the interop harness (`bgplab.testing.daemons`) and timed from outside by
polling their own prefix counter; a poll that answers "whole table" brackets the moment it was
held between the start of the previous poll and the end of this one, so each daemon's figure
comes with that resolution. Peak RSS is VmHWM of the process(es) named in `memory_of`.
"""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench.ingest_common import RECEIVER_ASN, RECEIVER_ROUTER_ID, SENDER_ADDRESS, SENDER_ASN
from bench.ingest_receiver import KEEPALIVE, PROBE_INTERVAL
from bgplab.expressroute import control
from bgplab.expressroute.control import ControlError
from bgplab.testing.daemons import (
    BgpDaemon,
    BirdDaemon,
    ExabgpDaemon,
    FrrDaemon,
    GobgpDaemon,
    Neighbor,
)
from bgplab.testing.netns import Netns

REPO = Path(__file__).resolve().parent.parent


class ChildExited(RuntimeError):
    """A bench process ended before saying what was expected of it."""


class Child:
    """A bench process inside a namespace; the JSON lines it prints arrive in a queue."""

    def __init__(self, ns: Netns, module: str, args: list[str], log: Path) -> None:
        self.ns = ns
        self.name = module.rsplit(".", 1)[-1]
        self.log_path = log
        self._log: IO[bytes] = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = ns.popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE,
                             stderr=self._log, cwd=REPO)
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True, name=f"{self.name}-stdout").start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):  # a stray print is not a protocol line
                self.events.put(json.loads(line))
        self.events.put(None)

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """The next `event` line; TimeoutError if it does not come in time, ChildExited if it never will."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"{self.name}: no {event!r} within {timeout:g} s") from None
            if item is None:
                self.events.put(None)  # stay exited for later calls
                tail = self.log_path.read_text(errors="replace").splitlines()[-15:]
                raise ChildExited(f"{self.name} exited ({self.proc.wait()}) before {event!r}:\n" + "\n".join(tail))
            if item.get("event") == event:
                return item

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self) -> None:
        self.ns.terminate(self.proc)
        self._log.close()


@dataclass(frozen=True)
class Arrival:
    """The whole table was held at some time in (earliest, latest]; count is what was seen last."""

    earliest: float
    latest: float
    count: int


@dataclass(frozen=True)
class Timeout:
    count: int


def poll_until_full(count: Callable[[], int], complete: Callable[[int], bool], poll: float, backoff: float,
                    t_first: float, deadline: float) -> tuple[Arrival | Timeout, int]:
    """Ask a receiver for its count from outside until it holds the table (and how many polls that
    took); a query that fails under load counts as no answer. A poll that sees the whole table
    brackets the moment between the start of the previous poll and the end of this one."""
    previous_start: float | None = None
    last = polls = 0
    while True:
        start = time.monotonic()
        with contextlib.suppress(subprocess.SubprocessError, OSError, ValueError, KeyError, ControlError):
            last = count()
        end = time.monotonic()
        polls += 1
        if complete(last):
            return Arrival(previous_start if previous_start is not None else start, end, last), polls
        if end >= deadline:
            return Timeout(last), polls
        previous_start = start
        gap = max(poll, backoff * (end - t_first))
        time.sleep(max(0.0, gap - (end - start)))


class Receiver(ABC):
    """One receiver for one run: start in a namespace, say when the table is held, stop."""

    name: str
    keepalive: float
    """The keepalive interval it is configured with, so its KEEPALIVE gaps can be judged."""
    memory_of: str
    resolution_note: str

    @abstractmethod
    def start(self, ns: Netns, expected: int, logdir: Path) -> None: ...

    def wait_established(self, timeout: float) -> None:  # noqa: B027 - most need nothing beyond the sender's word
        """Block until the receiver itself sees the session up."""

    @abstractmethod
    def pids(self) -> list[int]: ...

    @abstractmethod
    def wait_full(self, expected: int, t_first: float, deadline: float) -> Arrival | Timeout:
        """When the whole table was held, the first UPDATE having left the sender at t_first."""

    def details(self) -> dict[str, Any]:
        """Extra figures only this receiver can give (loop lag for ours)."""
        return {}

    @abstractmethod
    def stop(self) -> None: ...


class BenchProcessReceiver(Receiver):
    """Our speaker or the sink: a bench process that reports the moment it held the table."""

    def __init__(self, name: str, impl: str, gc: str = "default", extra: Sequence[str] = ()) -> None:
        self.name = name
        self.impl = impl
        self.gc = gc
        self.extra = list(extra)
        """More bench.ingest_receiver options (bench.bestpath: several peers, a Loc-RIB)."""
        self.keepalive = KEEPALIVE if impl == "ours" else 0.0
        self.memory_of = "python receiver process"
        self.resolution_note = (f"self-timed by a {PROBE_INTERVAL * 1000:g} ms timer in its event loop"
                                if impl == "ours" else "self-timed after each socket read")
        self.child: Child | None = None
        self._full: dict[str, Any] = {}

    def start(self, ns: Netns, expected: int, logdir: Path) -> None:
        args = ["--impl", self.impl, "--expected", str(expected), "--gc", self.gc, *self.extra]
        self.child = Child(ns, "bench.ingest_receiver", args, logdir / f"{self.name}.log")
        self.child.expect("listening", 30)

    def pids(self) -> list[int]:
        return [self.child.proc.pid] if self.child is not None else []

    def wait_full(self, expected: int, t_first: float, deadline: float) -> Arrival | Timeout:
        assert self.child is not None
        try:
            self._full = self.child.expect("full", max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return Timeout(0)
        t_full = self._full["t_full"]
        earliest = t_full - PROBE_INTERVAL if self.impl == "ours" else t_full
        return Arrival(earliest, t_full, self._full["count"])

    def details(self) -> dict[str, Any]:
        keys = ("max_lag_s", "p99_lag_s", "ticks", "ticks_over_100ms", "first_seen", "gc")
        return {k: self._full[k] for k in keys if k in self._full}

    def stop(self) -> None:
        if self.child is not None:
            self.child.signal(signal.SIGTERM)
            self.child.stop()
            self.child = None


class PolledOurs(BenchProcessReceiver):
    """Our speaker counted as the daemons are: from outside its process, by asking over its control
    socket (bgplab's own, as `bgplab status` asks our MSEEs) every `poll` seconds. Its own 5 ms
    timer still runs, for the event-loop stall figure only."""

    def __init__(self, name: str, extra: Sequence[str] = (), gc: str = "default", poll: float = 0.02) -> None:
        super().__init__(name, "ours", gc=gc, extra=extra)
        self.poll = poll
        self.polls = 0
        self.resolution_note = f"polled over its control socket every {poll * 1000:g} ms"
        self.socket: Path | None = None

    def start(self, ns: Netns, expected: int, logdir: Path) -> None:
        self.socket = logdir / f"{self.name}.sock"
        self.extra = [a for a in self.extra if not a.startswith("--control=")] + [f"--control={self.socket}"]
        super().start(ns, expected, logdir)

    def wait_full(self, expected: int, t_first: float, deadline: float) -> Arrival | Timeout:
        assert self.child is not None and self.socket is not None
        path = str(self.socket)
        result, self.polls = poll_until_full(lambda: int(control.call(path, "count", timeout=5.0)["count"]),
                                             lambda n: n >= expected, self.poll, 0.0, t_first, deadline)
        if isinstance(result, Arrival):  # its own "full" line carries the loop-stall figures
            with contextlib.suppress(TimeoutError, ChildExited):
                self._full = self.child.expect("full", 30)
        return result

    def details(self) -> dict[str, Any]:
        return {**super().details(), "polls": self.polls, "poll_interval_s": self.poll}


class DaemonReceiver(Receiver):
    """A real daemon from the interop harness, passive towards the sender, timed by polling its count.

    `backoff` > 0 stretches the gap between polls to that fraction of the time elapsed so far,
    for a daemon whose count query is itself costly (GoBGP walks its Adj-RIB-In under the server
    lock for every `gobgp neighbor`): fewer polls, coarser but honest resolution.
    """

    def __init__(self, name: str, factory: type[BgpDaemon], poll: float, memory_of: str, *,
                 backoff: float = 0.0, hold: int = 90, keepalive: int = 1,
                 configure: Callable[[BgpDaemon], None] | None = None) -> None:
        self.name = name
        self.factory = factory
        self.configure = configure
        self.poll = poll
        self.backoff = backoff
        self.memory_of = memory_of
        self.hold = hold
        self.keepalive = keepalive
        self.resolution_note = f"polled every {poll * 1000:g} ms" + (
            f", then every {backoff:.0%} of the elapsed time" if backoff else "")
        self.daemon: BgpDaemon | None = None
        self.polls = 0

    def start(self, ns: Netns, expected: int, logdir: Path) -> None:
        neighbor = Neighbor(SENDER_ADDRESS, SENDER_ASN, passive=True, hold_time=self.hold,
                            keepalive=int(self.keepalive), families=("ipv4",))
        self.daemon = self.factory(ns, RECEIVER_ASN, RECEIVER_ROUTER_ID, [neighbor]).start()
        if self.configure is not None:
            self.configure(self.daemon)

    def wait_established(self, timeout: float) -> None:
        assert self.daemon is not None
        self.daemon.wait_state(SENDER_ADDRESS, "established", timeout)

    def pids(self) -> list[int]:
        """The daemon, plus any helper the harness started for it (FRR's zebra and bfdd, only with BFD)."""
        if self.daemon is None or self.daemon.proc is None:
            return []
        return [self.daemon.proc.pid, *(p.pid for p in self._helpers().values())]

    def _helpers(self) -> dict[str, subprocess.Popen[bytes]]:
        helpers: dict[str, subprocess.Popen[bytes]] = getattr(self.daemon, "helpers", {})  # newer harness only
        return helpers

    def wait_full(self, expected: int, t_first: float, deadline: float) -> Arrival | Timeout:
        result, self.polls = poll_until_full(self._count, lambda n: self._complete(n, expected), self.poll,
                                             self.backoff, t_first, deadline)
        return result

    def _count(self) -> int:
        assert self.daemon is not None
        return self.daemon.received_count(SENDER_ADDRESS)

    def _complete(self, count: int, expected: int) -> bool:
        """Whether the last poll saw the whole table; bench.bestpath's FRR also needs its queue drained."""
        return count >= expected

    def details(self) -> dict[str, Any]:
        return {"polls": self.polls, "poll_interval_s": self.poll, "poll_backoff": self.backoff,
                "memory_of_helpers": sorted(self._helpers())}

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None


# ExaBGP hands every UPDATE to an API process as JSON. The harness's helper logs each one and its
# query replays the log into objects, which at a million routes would time the replay rather than
# ExaBGP. This helper only counts announced prefixes ("nlri" keys; the workload withdraws nothing)
# and keeps state messages, so the harness's neighbor_state() still works.
_COUNTING_HELPER = """\
import os, sys
fifo, received, ready = sys.argv[1:4]
count_path = os.path.join(os.path.dirname(received), "count")
open(ready, "w").close()
count, rest = 0, b""
with open(received, "ab") as log, open(count_path, "wb", buffering=0) as out:
    while True:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            break
        data = rest + chunk
        cut = data.rfind(b"\\n") + 1
        lines, rest = data[:cut], data[cut:]
        if b'"state"' in lines:
            for line in lines.splitlines():
                if b'"type": "state"' in line:
                    log.write(line + b"\\n")
                    log.flush()
                    if b'"down"' in line:
                        count = 0
        count += lines.count(b'"nlri"')
        out.seek(0)
        out.write(b"%20d" % count)
"""


class CountingExabgp(ExabgpDaemon):
    """ExaBGP as the harness runs it, with an API helper that only counts received prefixes."""

    def _write_config(self) -> None:
        super()._write_config()
        (self.workdir / "helper.py").write_text(_COUNTING_HELPER)

    def received_count(self, address: str) -> int:
        try:
            return int((self.workdir / "count").read_bytes() or b"0")
        except FileNotFoundError:
            return 0


class ListCountGobgp(GobgpDaemon):
    """GoBGP counted through the peer list, which is ~10x cheaper than the harness's per-peer query.

    `gobgp neighbor ADDRESS` also works out what GoBGP would advertise to that peer: at 100k
    routes that is ~0.3 s of gobgpd CPU per poll, enough to slow the ingest it measures several
    fold. `gobgp neighbor` (all peers) only counts; it still walks the Adj-RIB-In in the server
    loop (~0.08 s at 1M routes), hence the backoff in its DaemonReceiver.
    """

    def received_count(self, address: str) -> int:
        for peer in json.loads(self.gobgp("-j", "neighbor") or "[]"):
            if peer.get("conf", {}).get("neighbor_address") == address:
                return sum(int(af.get("state", {}).get("accepted", 0)) for af in peer.get("afi_safis", []))
        return 0


class BenchFrr(FrrDaemon):
    """FRR as one runs it for a full table: zebra beside bgpd (`-n`: no FIB), so bgpd does not log
    a failed zclient send for every route, and counted over its vty socket, not a vtysh process
    per poll."""

    with_zebra = True

    def received_count(self, address: str) -> int:
        peer = next(iter(json.loads(self.query(f"show bgp neighbors {address} json")).values()), {})
        families = peer.get("addressFamilyInfo", {})
        return sum(int(af.get("acceptedPrefixCounter", 0)) for af in families.values())


def _frr_ingest_only(daemon: BgpDaemon) -> None:
    """Stop FRR advertising the table back to the sender, so it does the same job as the others.

    FRR 8.4 sends every received route back to the peer it came from (which drops it: its own AS
    is in the path), and `sender-as-path-loop-detection` does not stop it here; BIRD, GoBGP and
    our speaker send nothing back. Denying everything outbound first in the harness's export
    route-map keeps FRR's per-route export check but no UPDATE is built or queued. The
    "frr-echo" receiver runs FRR unchanged, to show what the echo costs.
    """
    assert isinstance(daemon, FrrDaemon)
    daemon.vtysh("configure terminal", "route-map BL-OUT deny 1", "end")


_FACTORIES: dict[str, Callable[[], Receiver]] = {
    "sink": lambda: BenchProcessReceiver("sink", "sink"),
    # The headline: a router's work, as FRR, BIRD and GoBGP do it (a Loc-RIB, best path per
    # prefix, an export policy that rejects everything), counted from outside like them.
    "ours": lambda: PolledOurs("ours", extra=["--max-paths", "1"]),
    # A collector's work (Adj-RIB-In only, no decision), the job ExaBGP does; self-timed.
    "ours-collector": lambda: BenchProcessReceiver("ours-collector", "ours"),
    "ours-gcoff": lambda: PolledOurs("ours-gcoff", extra=["--max-paths", "1"], gc="off"),
    "ours-gcfreeze": lambda: PolledOurs("ours-gcfreeze", extra=["--max-paths", "1"], gc="freeze"),
    "frr": lambda: DaemonReceiver("frr", BenchFrr, 0.02, "bgpd and zebra (bgpd -n: no FIB)",
                                  configure=_frr_ingest_only),
    "frr-echo": lambda: DaemonReceiver("frr-echo", BenchFrr, 0.02, "bgpd and zebra (bgpd -n: no FIB)"),
    "frr-nozebra": lambda: DaemonReceiver("frr-nozebra", FrrDaemon, 0.05, "bgpd alone (-Z), as the tests run it",
                                          configure=_frr_ingest_only),
    "bird": lambda: DaemonReceiver("bird", BirdDaemon, 0.02, "bird"),
    "gobgp": lambda: DaemonReceiver("gobgp", ListCountGobgp, 0.1, "gobgpd", backoff=0.15),
    # ExaBGP's keepalive is always hold/3; a 1 s keepalive would mean a 3 s hold time, too tight
    # for a receiver that may spend a minute on the table, so it gets 9 s (keepalive 3 s).
    "exabgp": lambda: DaemonReceiver("exabgp", CountingExabgp, 0.05, "exabgp (its API helper excluded)",
                                     hold=9, keepalive=3),
}
RECEIVER_NAMES = tuple(_FACTORIES)


def make_receiver(name: str) -> Receiver:
    if name not in _FACTORIES:
        raise ValueError(f"unknown receiver {name!r}; choose from {', '.join(_FACTORIES)}")
    return _FACTORIES[name]()


BINARIES = {"frr": FrrDaemon.bgpd, "frr-echo": FrrDaemon.bgpd, "frr-nozebra": FrrDaemon.bgpd, "bird": "bird",
            "gobgp": "gobgpd", "exabgp": "exabgp"}
