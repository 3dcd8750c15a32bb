"""FIB programming benchmark: our `bgplab.bgp.fib.Fib` against FRR's zebra, same routes, same run.

    python -m bench.fib [--sizes 10000,100000] [--modes single,ecmp2] [--repeat 3] [--json FILE]

Every run gets a fresh pair of namespaces joined by a veth: the FIB node (192.0.2.1) and its
neighbours (192.0.2.2 and .3), and installs N IPv4 /24s, each via one neighbour (`single`) or via
both (`ecmp2`, RTA_MULTIPATH).

* **ours**: `Fib.apply()` of the N routes in one call (batched netlink, see bgplab/bgp/fib.py).
* **frr**: zebra and bgpd in the FIB node (private config, sockets and pid files; nothing else of
  FRR on the host is touched); our own BGP speaker in the neighbour namespace, one session per
  neighbour address, announces the N prefixes and bgpd hands its best paths (`maximum-paths 2`
  for ecmp2) to zebra, which writes them to the kernel. What matters is zebra installing BGP
  routes, so that is what runs. zebra uses its defaults (netlink batching, kernel nexthop
  objects where the kernel has them).

Both are timed the same way, from outside: a monitor process in the FIB node's namespace listens
to the kernel's route notifications (RTNLGRP_IPV4_ROUTE) and timestamps, with the system-wide
monotonic clock, the first and the last notification for a route of the protocol under test
(ours: 201; zebra's BGP routes: 186). Routes/s = N / (last - first), the kernel-side programming
window. The run is over when the kernel holds the full table in its final form (checked with a
dump once the notifications have gone quiet). For ours, apply()'s own wall time is shown too;
for FRR the end-to-end time from the moment our speaker was told to announce (so including BGP
and bgpd) is. For ecmp2 under FRR both sessions announce at once, so zebra may first install a
route via the first path and then replace it with both: that is what BGP-fed ECMP costs it.
Withdrawal (single next hop) is timed the same way: ours `apply()` of N deletions, FRR's
after both speakers withdraw everything.

Needs root (namespaces). Results go to stdout as a table, and with --json to a file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import queue
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from bgplab.bgp.fib import RTPROT_BGPLAB, Fib
from bgplab.bgp.fsm import State
from bgplab.bgp.peer import PeerConfig
from bgplab.bgp.speaker import Speaker
from bgplab.bgp.wire import IPV4_UNICAST, PathAttributes, as_sequence
from bgplab.testing.netns import LinkedPair, Netns, add_address

REPO = Path(__file__).resolve().parent.parent
RTPROT_ZEBRA_BGP = 186
NEIGHBOURS = ("192.0.2.2", "192.0.2.3")
FIB_ADDRESS = LinkedPair.A4
FIB_ASN, NEIGHBOUR_ASN = 65001, 65002
BASE = 20 << 24  # 20.0.0.0: N /24s upward from here, clear of the lab's own addresses
QUIET = 1.0
"""Seconds without route notifications after which the monitor reports a burst as over."""
RGRP_IPV4_ROUTE = 0x40


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


# -- the monitor process ----------------------------------------------------------------------


def monitor(protocol: int) -> None:
    """Timestamp route notifications for `protocol`; report each burst once it has gone quiet.

    Kept minimal (header walk, one byte of rtmsg) so that it keeps up with the kernel: it is a
    separate process so it shares no interpreter lock with what it measures.
    """
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    sock.setsockopt(socket.SOL_SOCKET, 33, 256 << 20)  # SO_RCVBUFFORCE: never drop a notification
    sock.bind((0, RGRP_IPV4_ROUTE))
    buf = bytearray(1 << 16)
    view = memoryview(buf)
    unpack = struct.Struct("=IH").unpack_from
    stop = False

    def on_term(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    emit("ready")
    first = last = 0.0
    new = deleted = overflow = 0
    while not stop:
        if not select.select([sock], [], [], 0.1)[0]:
            if new + deleted and time.monotonic() - last >= QUIET:
                emit("burst", first=first, last=last, new=new, deleted=deleted, overflow=overflow)
                new = deleted = overflow = 0
            continue
        try:
            n = sock.recv_into(buf)
        except OSError:  # ENOBUFS: notifications were lost
            overflow += 1
            continue
        now = time.monotonic()
        off = 0
        while off + 28 <= n:
            length, mtype = unpack(view, off)
            if length < 16:
                break
            if mtype in (24, 25) and buf[off + 21] == protocol:
                if not new + deleted:
                    first = now
                last = now
                if mtype == 24:
                    new += 1
                else:
                    deleted += 1
            off += (length + 3) & ~3
    emit("final", new=new, deleted=deleted)


class Monitor:
    """The monitor process in a namespace; its bursts arrive in a queue."""

    def __init__(self, ns: Netns, protocol: int) -> None:
        self.ns = ns
        self.proc = ns.popen(
            [sys.executable, "-m", "bench.fib", "--monitor", str(protocol)], stdout=subprocess.PIPE, cwd=REPO
        )
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.expect("ready", 10)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.events.put(json.loads(line))
        self.events.put(None)

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"monitor: no {event!r} within {timeout:g} s") from None
            if item is None:
                raise RuntimeError(f"monitor exited ({self.proc.wait()}) before {event!r}")
            if item.get("event") == event:
                return item

    def stop(self) -> None:
        self.ns.terminate(self.proc)


@dataclass
class Window:
    first: float
    last: float
    notifications: int
    overflow: int

    @property
    def seconds(self) -> float:
        return self.last - self.first


def wait_table(mon: Monitor, reader: Fib, n: int, hops: int, timeout: float) -> Window:
    """Gather bursts until the kernel holds n routes of the protocol with `hops` next hops each
    (or none at all when hops is 0); the window spans all of them."""
    deadline = time.monotonic() + timeout
    bursts: list[dict[str, Any]] = []
    while True:
        bursts.append(mon.expect("burst", max(0.0, deadline - time.monotonic())))
        routes = reader.routes_sync(IPV4_UNICAST)
        if hops == 0 and not routes:
            break
        if hops and len(routes) == n and all(len(h) == hops for h in routes.values()):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"kernel table not complete: {len(routes)} routes")
    return Window(
        bursts[0]["first"],
        bursts[-1]["last"],
        sum(b["new"] + b["deleted"] for b in bursts),
        sum(b["overflow"] for b in bursts),
    )


# -- the runs ---------------------------------------------------------------------------------


@dataclass
class Result:
    impl: str
    mode: str
    routes: int
    op: str
    seconds: float | None = None
    rate: float | None = None
    own_seconds: float | None = None
    """ours: apply()'s wall time; frr: from the announce (or withdraw) call to the last route."""
    notifications: int = 0
    error: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def prefixes(n: int) -> list[int]:
    return [((BASE + (i << 8)) << 8) | 24 for i in range(n)]


@contextlib.contextmanager
def lab() -> Iterator[LinkedPair]:
    with LinkedPair("bfb") as pair:
        add_address(pair.b, pair.ifname, f"{NEIGHBOURS[1]}/24")
        yield pair


def run_ours(n: int, mode: str) -> list[Result]:
    hops = NEIGHBOURS if mode == "ecmp2" else NEIGHBOURS[:1]
    keys = prefixes(n)
    out = []
    with lab() as pair, Fib(pair.a.name) as fib:
        mon = Monitor(pair.a, RTPROT_BGPLAB)
        try:
            for op, changes, want in (
                ("install", [(IPV4_UNICAST, k, hops) for k in keys], len(hops)),
                ("withdraw", [(IPV4_UNICAST, k, ()) for k in keys], 0),
            ):
                if op == "withdraw" and mode != "single":
                    break
                result = fib.apply_sync(changes)
                if not result.ok:
                    out.append(Result("ours", mode, n, op, error=str(result.errors[0])))
                    break
                window = wait_table(mon, fib, n, want, 120)
                out.append(
                    Result(
                        "ours",
                        mode,
                        n,
                        op,
                        window.seconds,
                        n / window.seconds,
                        result.seconds,
                        window.notifications,
                        details={"overflow": window.overflow},
                    )
                )
        finally:
            mon.stop()
    return out


class Frr:
    """zebra + bgpd in the FIB node, each with its own files in a private workdir."""

    def __init__(self, ns: Netns, mode: str) -> None:
        self.ns = ns
        self.dir = Path(tempfile.mkdtemp(prefix="bgplab-fibbench-"))
        self.logs: list[IO[bytes]] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        try:
            self._start(mode)
        except BaseException:
            self.stop()
            raise

    def _start(self, mode: str) -> None:
        d = self.dir
        shutil.chown(d, "frr", "frr")  # zebra drops privileges to the frr user
        (d / "zebra.conf").write_text("frr defaults traditional\nhostname fib-zebra\n")
        neighbours = "".join(
            f" neighbor {a} remote-as {NEIGHBOUR_ASN}\n neighbor {a} passive\n neighbor {a} timers 10 30\n"
            for a in NEIGHBOURS
        )
        activate = "".join(f"  neighbor {a} activate\n" for a in NEIGHBOURS)
        (d / "bgpd.conf").write_text(
            "frr defaults traditional\nhostname fib-bgpd\n"
            f"router bgp {FIB_ASN}\n bgp router-id 10.255.0.1\n no bgp ebgp-requires-policy\n"
            " no bgp default ipv4-unicast\n bgp graceful-restart-disable\n"
            + neighbours
            + " address-family ipv4 unicast\n"
            + activate
            + f"  maximum-paths {2 if mode == 'ecmp2' else 1}\n exit-address-family\n"
        )
        for name in ("zebra.conf", "bgpd.conf"):
            shutil.chown(d / name, "frr", "frr")
        common = [
            "-i",
            "{d}/{n}.pid",
            "--vty_socket",
            str(d),
            "-z",
            f"{d}/zserv.api",
            "-P",
            "0",
            "--log",
            "file:{d}/{n}.log",
            "--log-level",
            "warnings",
            "-f",
            "{d}/{n}.conf",
        ]
        self._spawn("zebra", common, ["-s", str(128 << 20)])
        deadline = time.monotonic() + 20
        while not (d / "zserv.api").exists():
            self._check()
            if time.monotonic() > deadline:
                raise TimeoutError("zebra did not open its zserv socket")
            time.sleep(0.05)
        self._spawn("bgpd", common, ["-S", "-p", "179"])
        deadline = time.monotonic() + 20
        while not (d / "bgpd.vty").exists():
            self._check()
            if time.monotonic() > deadline:
                raise TimeoutError("bgpd did not open its vty socket")
            time.sleep(0.05)

    def _spawn(self, name: str, common: list[str], extra: list[str]) -> None:
        args = [a.format(d=self.dir, n=name) for a in common]
        log = open(self.dir / f"{name}.out", "wb")  # noqa: SIM115 - closed in stop()
        self.logs.append(log)
        self.procs.append(self.ns.popen([f"/usr/lib/frr/{name}", *args, *extra], stdout=log, stderr=log))

    def _check(self) -> None:
        for name, proc in zip(("zebra", "bgpd"), self.procs, strict=False):
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {self.log_tail()}")

    def log_tail(self) -> str:
        parts = []
        for path in sorted(self.dir.glob("*.log")) + sorted(self.dir.glob("*.out")):
            parts.append(f"{path.name}: " + " | ".join(path.read_text(errors="replace").splitlines()[-5:]))
        return "\n".join(parts)

    def vtysh(self, command: str) -> str:
        return subprocess.run(
            ["vtysh", "--vty_socket", str(self.dir), "-d", "bgpd", "-c", command],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def stop(self) -> None:
        for proc in reversed(self.procs):
            self.ns.terminate(proc)
        for log in self.logs:
            log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


async def _speakers(ns: Netns, count: int) -> list[Speaker]:
    speakers = []
    for i, address in enumerate(NEIGHBOURS[:count]):
        sp = Speaker(NEIGHBOUR_ASN, f"10.255.0.{i + 2}", netns=ns.name)
        sp.add_peer(
            PeerConfig(
                FIB_ADDRESS,
                FIB_ASN,
                local_address=address,
                families=(IPV4_UNICAST,),
                hold_time=30,
                connect_retry=1,
                idle_hold=0.2,
            )
        )
        speakers.append(sp)
        await sp.start()
    deadline = time.monotonic() + 30
    while not all(sp.peer(FIB_ADDRESS).state is State.ESTABLISHED for sp in speakers):
        if time.monotonic() > deadline:
            raise TimeoutError("BGP sessions with bgpd did not come up")
        await asyncio.sleep(0.05)
    return speakers


def run_frr(n: int, mode: str) -> list[Result]:
    count = 2 if mode == "ecmp2" else 1
    keys = prefixes(n)
    out: list[Result] = []
    with lab() as pair, contextlib.ExitStack() as stack:
        frr = Frr(pair.a, mode)
        stack.callback(frr.stop)
        mon = Monitor(pair.a, RTPROT_ZEBRA_BGP)
        stack.callback(mon.stop)
        reader = Fib(pair.a.name, protocol=RTPROT_ZEBRA_BGP, metric=None).open_sync()  # reads only
        stack.callback(lambda: reader.close_sync(flush=False))  # zebra's routes are not ours to remove

        async def main() -> None:
            speakers = await _speakers(pair.b, count)
            try:
                attrs = PathAttributes(origin=0, as_path=as_sequence())
                for op, want in (("install", count), ("withdraw", 0)):
                    if op == "withdraw" and mode != "single":
                        break
                    t0 = time.monotonic()
                    for sp in speakers:
                        if op == "install":
                            sp.announce(IPV4_UNICAST, keys, attrs)
                        else:
                            sp.withdraw(IPV4_UNICAST, keys)
                    window = await asyncio.to_thread(wait_table, mon, reader, n, want, 300)
                    out.append(
                        Result(
                            "frr",
                            mode,
                            n,
                            op,
                            window.seconds,
                            n / window.seconds,
                            window.last - t0,
                            window.notifications,
                            details={"overflow": window.overflow},
                        )
                    )
            finally:
                for sp in speakers:
                    await sp.stop()

        try:
            asyncio.run(main())
        except Exception as exc:
            out.append(Result("frr", mode, n, "install", error=f"{exc!r}\n{frr.log_tail()}"))
    return out


# -- the report -------------------------------------------------------------------------------


def median(results: list[Result]) -> Result:
    ok = [r for r in results if r.rate is not None]
    if not ok:
        return results[0]
    ok.sort(key=lambda r: r.rate or 0.0)
    mid = ok[len(ok) // 2]
    mid.details["runs"] = [round(r.rate or 0.0) for r in ok]
    return mid


def table(rows: list[tuple[Result, Result | None]]) -> str:
    head = (
        f"{'routes':>8} {'next hops':<9} {'op':<8} | {'ours s':>7} {'ours routes/s':>13} {'apply s':>7} | "
        f"{'zebra s':>7} {'zebra routes/s':>14} {'e2e s':>6} | {'ours/zebra':>10}"
    )
    lines = [head, "-" * len(head)]
    for ours, frr in rows:

        def cell(r: Result | None, width: int) -> str:
            return f"{'error' if r is None or r.rate is None else f'{r.rate:,.0f}':>{width}}"

        ratio = f"{ours.rate / frr.rate:.1f}x" if frr and frr.rate and ours.rate else "-"
        hops = "1" if ours.mode == "single" else "2 (ECMP)"
        lines.append(
            f"{ours.routes:>8,} {hops:<9} {ours.op:<8} | {fmt(ours.seconds):>7} {cell(ours, 13)} "
            f"{fmt(ours.own_seconds):>7} | {fmt(frr.seconds if frr else None):>7} {cell(frr, 14)} "
            f"{fmt(frr.own_seconds if frr else None):>6} | {ratio:>10}"
        )
    return "\n".join(lines)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--modes", default="single,ecmp2")
    parser.add_argument("--impls", default="ours,frr")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the median is shown")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--monitor", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.monitor is not None:
        monitor(args.monitor)
        return
    if os.geteuid() != 0:
        sys.exit("bench.fib needs root (network namespaces)")
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = args.modes.split(",")
    impls = args.impls.split(",")
    runners = {"ours": run_ours, "frr": run_frr}
    frr_version = subprocess.run(["/usr/lib/frr/zebra", "--version"], capture_output=True, text=True).stdout
    print(
        f"# FIB programming: {platform.node()}, kernel {platform.release()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}; {frr_version.splitlines()[0] if frr_version else 'FRR ?'}; "
        f"median of {args.repeat}",
        flush=True,
    )
    collected: dict[tuple[str, int, str, str], list[Result]] = {}
    for n in sizes:
        for mode in modes:
            for _ in range(args.repeat):
                for impl in impls:
                    for result in runners[impl](n, mode):
                        collected.setdefault((impl, n, mode, result.op), []).append(result)
                        if result.error:
                            print(f"  {impl} {n} {mode} {result.op}: {result.error}", file=sys.stderr, flush=True)
                        else:
                            print(
                                f"  {impl:<4} {n:>7} {mode:<6} {result.op:<8} {result.rate or 0:>10,.0f} routes/s",
                                file=sys.stderr,
                                flush=True,
                            )
    rows = []
    for (impl, n, mode, op), results in collected.items():
        if impl == "ours":
            frr = collected.get(("frr", n, mode, op))
            rows.append((median(results), median(frr) if frr else None))
    print(table(rows))
    if args.json:
        args.json.write_text(
            json.dumps(
                {k[0] + f"-{k[1]}-{k[2]}-{k[3]}": [asdict(r) for r in v] for k, v in collected.items()}, indent=1
            )
        )


if __name__ == "__main__":
    main()
