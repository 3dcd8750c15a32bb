"""BFD detection benchmark: our endpoint and FRR's bfdd detecting each other's silence.

    python -m bench.bfd [--cuts 20] [--profiles 300x3,100x3] [--family ipv4|ipv6] [--json FILE]

Two fresh network namespaces joined by a veth per profile (interval x multiplier, the same on
both sides): our `BfdManager` at .1 and FRR 8.x (zebra + bfdd + bgpd, started by the test
harness with `neighbor X bfd profile`) at .2. Then, `--cuts` times each, once the session is
Up on both sides and after a random 0.3-0.8 s so the cut falls anywhere in the TX schedule:

* ours detects: the veth end in our namespace drops everything both ways (nftables netdev
  table, carrier up: `bgplab.testing.netns.drop_all`). Measured on our loop's monotonic clock:
  "cut -> Down" from the moment the rule was in place, and "last rx -> Down" from the last
  packet our endpoint received. The second is the protocol's Detection Time as the RFC
  defines it, so it should equal the floor (multiplier x interval) plus our timer lateness.
* FRR detects: only our outgoing BFD packets are dropped (nftables output rule), so FRR hears
  silence while we still hear FRR. bfdd logs its state changes with microsecond wall-clock
  stamps (`log timestamp precision 6`); "mute -> Down" runs from the rule being in place and
  "last tx -> Down" from the last packet our socket actually sent (a dropped send fails with
  EPERM, so the stamp is exact).

Each row prints the median, p90 and max against the floor and the target (floor + 50 ms); the
cut lands inside a TX interval, so "cut -> Down" lies between floor - interval and floor, and
only the "last" rows can be held to the target. Needs root and FRR.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bgplab.bgp.bfd import BfdManager, SessionStats, State
from bgplab.testing.daemons import FrrDaemon, Neighbor
from bgplab.testing.netns import LinkedPair, Netns, drop_all

T = TypeVar("T")
IFNAME = "eth1"
TARGET_SLACK_MS = 50.0
MUTE_TABLE = "bgplab_bfd_bench_mute"


@dataclass
class Series:
    profile: str
    detector: str
    measure: str
    floor_ms: float
    interval_ms: float
    samples_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def target_ms(self) -> float:
        return self.floor_ms + TARGET_SLACK_MS

    def summary(self) -> dict[str, Any]:
        s = sorted(self.samples_ms)
        if not s:
            return {"n": 0}
        p90 = s[min(len(s) - 1, round(0.9 * (len(s) - 1)))]
        return {"n": len(s), "median": statistics.median(s), "p90": p90, "max": s[-1], "min": s[0],
                "within_target": sum(x <= self.target_ms for x in s)}


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout} s")
        await asyncio.sleep(0.005)


async def logged_downs(frr: FrrDaemon, skip: int) -> list[tuple[float, str, str, str]]:
    """bfdd's "up -> down" lines after the first `skip` changes; bfdd sends its Down packet
    before it logs, so the line may still be on its way when we hear the packet."""
    for _ in range(100):
        downs = [c for c in (await off_loop(frr.bfd_log_changes))[skip:] if c[2] == "up -> down"]
        if downs:
            return downs
        await asyncio.sleep(0.02)
    raise AssertionError("no up -> down in bfdd's log")


def went_down(stats: SessionStats) -> Callable[[], bool]:
    """Whether the session has left Up since now; the state alone can move on too fast to see."""
    was = stats.last_down
    return lambda: stats.last_down != was


def mute(ns: Netns, on: bool) -> None:
    ns.run(["nft", "delete", "table", "inet", MUTE_TABLE], check=False)
    if on:
        ns.run(["nft", "-f", "-"], input=f"table inet {MUTE_TABLE} {{\n"
               " chain output { type filter hook output priority -300; udp dport 3784 drop; }\n}\n")


async def both_up(manager: BfdManager, frr: FrrDaemon, local: str, remote: str) -> None:
    await wait_for(lambda: manager.state(remote) is State.UP and not manager.session(remote).polling, 20,
                   "our session Up")
    await off_loop(frr.wait_bfd_state, local, "up", 20.0)
    await asyncio.sleep(random.uniform(0.3, 0.8))


async def run_profile(interval: int, mult: int, family: str, cuts: int) -> list[Series]:
    name = f"{interval}x{mult}"
    floor = float(interval * mult)
    ours_cut = Series(name, "ours", "cut -> Down", floor, interval)
    ours_last = Series(name, "ours", "last rx -> Down", floor, interval)
    frr_cut = Series(name, "frr bfdd", "mute -> Down", floor, interval)
    frr_last = Series(name, "frr bfdd", "last tx -> Down", floor, interval)
    with LinkedPair("bbfd", IFNAME) as pair:
        local, remote = (LinkedPair.A4, LinkedPair.B4) if family == "ipv4" else (LinkedPair.A6, LinkedPair.B6)
        frr = FrrDaemon(pair.b, 65002, LinkedPair.B4,
                        [Neighbor(local, 65001, families=(family,), bfd=(interval, interval, mult))])
        with frr:
            async with BfdManager(pair.a.name) as manager:
                manager.add(local, remote, desired_min_tx=interval, required_min_rx=interval, detect_mult=mult)
                await both_up(manager, frr, local, remote)
                for i in range(cuts):
                    try:
                        stats = manager.stats(remote)
                        down = went_down(stats)
                        await off_loop(drop_all, pair.a, IFNAME, True)
                        cut_done = time.monotonic()
                        await wait_for(down, 10, "our Down")
                        assert stats.last_down is not None and stats.last_received is not None
                        ours_cut.samples_ms.append((stats.last_down - cut_done) * 1000)
                        ours_last.samples_ms.append((stats.last_down - stats.last_received) * 1000)
                    except (TimeoutError, AssertionError) as exc:
                        ours_cut.failures.append(f"cut {i}: {exc}")
                    finally:
                        await off_loop(drop_all, pair.a, IFNAME, False)
                    await both_up(manager, frr, local, remote)
                    print(f"  {name} ours  {i + 1}/{cuts}", file=sys.stderr, end="\r")
                for i in range(cuts):
                    logged = len(await off_loop(frr.bfd_log_changes))
                    try:
                        stats = manager.stats(remote)
                        # FRR may send two packets in a row on going Down, and the second takes us
                        # from Down to Init at once: watch the Up -> Down stamp, not the state.
                        down = went_down(stats)
                        await off_loop(mute, pair.a, True)
                        mute_done = time.time()
                        offset = time.time() - time.monotonic()
                        await wait_for(down, 10, "FRR's Down to reach us")
                        downs = await logged_downs(frr, logged)
                        assert stats.last_sent is not None
                        frr_cut.samples_ms.append((downs[0][0] - mute_done) * 1000)
                        frr_last.samples_ms.append((downs[0][0] - (stats.last_sent + offset)) * 1000)
                    except (TimeoutError, AssertionError) as exc:
                        frr_cut.failures.append(f"mute {i}: {exc}")
                    finally:
                        await off_loop(mute, pair.a, False)
                    await both_up(manager, frr, local, remote)
                    print(f"  {name} frr   {i + 1}/{cuts}", file=sys.stderr, end="\r")
                print(file=sys.stderr)
                if manager.discards:
                    print(f"  discards: {dict(manager.discards)}", file=sys.stderr)
    return [ours_cut, ours_last, frr_cut, frr_last]


def frr_version() -> str:
    out = subprocess.run([FrrDaemon.bfdd, "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "?"


def table(series: list[Series]) -> str:
    head = (f"{'profile':8} {'detector':9} {'measure':16} {'floor':>6} {'target':>6} {'median':>7} {'p90':>7} "
            f"{'max':>7} {'min':>7} {'<=target':>8}")
    rows = [head, "-" * len(head)]
    for s in series:
        summary = s.summary()
        if not summary["n"]:
            rows.append(f"{s.profile:8} {s.detector:9} {s.measure:16} no samples ({'; '.join(s.failures)})")
            continue
        rows.append(f"{s.profile:8} {s.detector:9} {s.measure:16} {s.floor_ms:6.0f} {s.target_ms:6.0f} "
                    f"{summary['median']:7.1f} {summary['p90']:7.1f} {summary['max']:7.1f} {summary['min']:7.1f} "
                    f"{summary['within_target']:>4}/{summary['n']:<3}")
        if s.failures:
            rows.append(f"{'':8} failures: {'; '.join(s.failures)}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cuts", type=int, default=20)
    parser.add_argument("--profiles", default="300x3,100x3", help="interval_ms x multiplier, comma separated")
    parser.add_argument("--family", choices=("ipv4", "ipv6"), default="ipv4")
    parser.add_argument("--json", help="write every sample here")
    args = parser.parse_args(argv)
    profiles = [tuple(int(x) for x in p.split("x")) for p in args.profiles.split(",")]
    series: list[Series] = []
    started = time.monotonic()
    for interval, mult in profiles:
        series += asyncio.run(run_profile(interval, mult, args.family, args.cuts))
    print(f"BFD detection, {args.cuts} silent cuts per row, {args.family}, veth between two namespaces; "
          f"times in ms; ours vs {frr_version()}; {platform.node()} ({platform.machine()}, "
          f"{len(os.sched_getaffinity(0))} cpus), {time.monotonic() - started:.0f} s")
    print(table(series))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{**s.__dict__, "target_ms": s.target_ms, "summary": s.summary()} for s in series], f, indent=1)
    return 1 if any(s.failures for s in series) else 0


if __name__ == "__main__":
    sys.exit(main())
