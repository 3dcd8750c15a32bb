"""Best-path and multipath benchmark: the same table from two peers into ours, FRR and BIRD, one after another.

    python -m bench.bestpath [--sizes 100000,1000000] [--workloads dense,realistic]
                             [--receivers ours,frr,bird] [--json FILE] [--quick]

Issue 3: "1M prefixes from each of two peers; seconds and bytes per path, beside FRR and BIRD
doing the same in the same run." Each run gets bench.ingest's two namespaces and veth, with a
second address on the sender side: two senders (bench/ingest_sender.py, two processes) in AS
65001 at 192.0.2.1 and 192.0.2.3 announce the same prefixes with the same attributes, each with
itself as next hop, so every prefix has two equal eBGP paths. Both feeds go at once: sender 2 is
told to send right after sender 1. The time runs from the first UPDATE byte of either until the
receiver holds both paths for every prefix and has selected (see bench/bestpath_peers.py for
what that means per receiver, and how it is checked afterwards). Bytes per path = (RSS when
held - RSS before) / 2N. Needs root (namespaces). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.bestpath_peers import (
    BINARIES,
    MAX_PATHS,
    RECEIVERS,
    SAMPLE_PREFIXES,
    SECOND_SENDER_ADDRESS,
    SENDERS,
    make_receiver,
    sample_prefixes,
    verify,
)
from bench.ingest import (
    SETTLE,
    RunResult,
    _fmt,
    _record_arrival,
    _rss,
    check_common_args,
    keepalive_gap,
    start,
)
from bench.ingest_common import SENDER_ADDRESS
from bench.ingest_peers import Child, Receiver, Timeout
from bench.ingest_table import RESULTS, WORKLOADS, Table, load_table
from bgplab.testing.netns import LinkedPair, add_address

DEFAULT_SIZES = (100_000, 1_000_000)
DEFAULT_RECEIVERS = ("ours", "frr", "bird")
DEFAULT_TIMEOUT = 300.0
"""Seconds per receiver: two 1M realistic feeds take ours and FRR tens of seconds."""
DISTURBED_FLOOR_S = 0.05


@dataclass
class BestpathResult(RunResult):
    """A RunResult whose table arrived twice: `prefixes` is N, the receiver holds 2N paths."""

    paths: int = 0
    feed_offset_s: float | None = None
    """How long after the first feed's first UPDATE byte the other feed's first byte went out."""
    check: str = ""
    check_ok: bool = False
    other_cpu_s: float | None = None
    """CPU seconds used by processes outside this run while the table went in (see OtherCpu)."""

    @property
    def disturbed(self) -> bool:
        """Others used over a tenth of a core during the ingest (and over 50 ms, the noise floor of a
        quiet machine): on two cores the row is then not comparable with the others."""
        other = self.other_cpu_s or 0.0
        return bool(self.ok and self.seconds and other > max(DISTURBED_FLOOR_S, 0.1 * self.seconds))

    @property
    def path_rate(self) -> float | None:
        return self.paths / self.seconds if self.ok and self.seconds else None

    @property
    def bytes_per_path(self) -> float | None:
        if self.rss_full is None or self.rss_before is None or not self.paths:
            return None
        return (self.rss_full - self.rss_before) / self.paths

    def as_json(self) -> dict[str, Any]:
        return {**super().as_json(), "paths_per_s": self.path_rate, "bytes_per_path": self.bytes_per_path}


# ---------------------------------------------------------------- other load

_TICK = os.sysconf("SC_CLK_TCK")


class OtherCpu:
    """CPU time the machine spent outside this run while a receiver took the table in.

    The machine has two cores and may be shared (CI jobs, other benchmarks): a figure taken
    while something else ran is not comparable with the rest. Machine-wide user+system time
    (/proc/stat) minus what the receiver, the senders and this process with its finished
    children (vtysh, birdc) used is what others used; interrupt time is left out on both sides.
    """

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.start = self._ours_and_busy()

    def _ours_and_busy(self) -> tuple[float, float]:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4]
        busy = sum(int(x) for x in fields) / _TICK  # user, nice, system
        mine = 0.0
        for pid in self.pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            mine += (int(stat[11]) + int(stat[12])) / _TICK  # utime, stime, all threads
        t = os.times()
        return mine + t.user + t.system + t.children_user + t.children_system, busy

    def seconds(self) -> float:
        mine, busy = self._ours_and_busy()
        return max(0.0, (busy - self.start[1]) - (mine - self.start[0]))


# ---------------------------------------------------------------- one run


def run_receiver(tables: tuple[Table, Table], name: str, timeout: float, logdir: Path,
                 sample: list[str]) -> BestpathResult:
    """Measure one receiver on two feeds; failures become a status, never an abort of the whole run."""
    receiver = make_receiver(name)
    table = tables[0]
    result = BestpathResult(name, table.prefixes, table.workload, paths=MAX_PATHS * table.prefixes,
                            keepalive_interval_s=receiver.keepalive, memory_of=receiver.memory_of,
                            timing=receiver.resolution_note)
    try:
        _measure(tables, receiver, timeout, logdir, result, sample)
    except Exception as exc:
        result.status = f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        with open(logdir / f"{name}-error.log", "a") as log:
            log.write(f"{table.describe()}\n{traceback.format_exc()}\n")
    return result


def _measure(tables: tuple[Table, Table], receiver: Receiver, timeout: float, logdir: Path,
             result: BestpathResult, sample: list[str]) -> None:
    n = tables[0].prefixes
    with ExitStack() as stack:
        pair = stack.enter_context(LinkedPair(prefix="bbest"))
        add_address(pair.a, pair.ifname, f"{SECOND_SENDER_ADDRESS}/{LinkedPair.PREFIX4}")
        stack.callback(receiver.stop)
        receiver.start(pair.b, n, logdir)
        senders = []
        for index, ((address, router_id), table) in enumerate(zip(SENDERS, tables, strict=True), start=1):
            sender = Child(pair.a, "bench.ingest_sender",
                           ["--table", str(table.path), "--local", address, "--router-id", router_id],
                           logdir / f"{receiver.name}-sender{index}.log")
            stack.callback(sender.stop)
            senders.append(sender)
        for sender in senders:
            sender.expect("established", 40)
        receiver.wait_established(30)
        time.sleep(SETTLE)
        result.rss_before = _rss(receiver.pids(), "VmRSS")
        other = OtherCpu([*receiver.pids(), *(sender.proc.pid for sender in senders)])
        for sender in senders:  # both feeds at once: the second is told to go right after the first
            sender.signal(signal.SIGUSR1)
        firsts = [sender.expect("sending", 10)["t_first"] for sender in senders]
        t_first = min(firsts)  # usually sender 1's; the clock starts with whichever feed is first
        result.feed_offset_s = max(firsts) - t_first
        arrival = receiver.wait_full(n, t_first, t_first + timeout)
        result.other_cpu_s = other.seconds()
        result.rss_full = _rss(receiver.pids(), "VmRSS")
        result.rss_peak = _rss(receiver.pids(), "VmHWM")
        result.count = arrival.count
        result.details = receiver.details()
        if isinstance(arrival, Timeout):
            result.status = f"timeout after {timeout:g} s"
            return
        _record_arrival(result, arrival, t_first)
        check = verify(receiver, n, sample)  # after time and memory: a check may cost the receiver both
        result.check, result.check_ok = check.pop("summary"), bool(check.pop("ok"))
        result.details["check"] = check
        sent = [sender.expect("sent", 10) for sender in senders]
        result.sender_send_s = max(s["t_sent"] for s in sent) - t_first
        result.sender_cpu_s = sum(s["cpu_s"] for s in sent)
        _record_keepalives(result, senders, t_first, arrival.latest)
        result.status = "ok"


def _record_keepalives(result: BestpathResult, senders: list[Child], t_first: float, t_full: float) -> None:
    """As bench.ingest, over both sessions: the longest KEEPALIVE gap either sender saw."""
    if result.keepalive_interval_s:
        time.sleep(result.keepalive_interval_s * 1.5)
    observed_until = time.monotonic()
    finals = []
    for sender in senders:
        sender.signal(signal.SIGTERM)
    for sender in senders:
        finals.append(sender.expect("final", 10))
    gaps = [keepalive_gap(f["keepalives"], t_first, t_full, observed_until) for f in finals]
    if result.keepalive_interval_s and None not in gaps:
        result.keepalive_gap_s = max(g for g in gaps if g is not None)
    result.details["updates_from_receiver"] = sum(f["other_messages"] for f in finals)
    notifications = [f["notification"] for f in finals if f.get("notification")]
    if notifications:
        result.details["notification"] = "; ".join(notifications)


# ---------------------------------------------------------------- report


def _notes(r: BestpathResult) -> str:
    notes = []
    if r.check:
        notes.append(r.check + ("" if r.check_ok else " (CHECK FAILED)"))
    if "max_lag_s" in r.details:
        notes.append(f"loop stall max {r.details['max_lag_s'] * 1000:.0f} ms (p99 {r.details['p99_lag_s'] * 1000:.0f})")
    if r.keepalive_gap_s is not None:
        notes.append(f"KA gap {r.keepalive_gap_s:.2f} s (KA {r.keepalive_interval_s:g} s)")
    if r.details.get("updates_from_receiver", 0) > 10:
        notes.append(f"sent {r.details['updates_from_receiver']:,} UPDATEs back")
    if "notification" in r.details:
        notes.append(f"NOTIFICATION {r.details['notification']}")
    if not r.ok and r.count:
        notes.append(f"{r.count:,} held from each peer")
    if r.disturbed:
        notes.append("DISTURBED")
    return "; ".join(notes)


def format_table(table: Table, results: list[BestpathResult]) -> str:
    ours = next((r for r in results if r.receiver == "ours" and r.ok), None)
    offsets = [r.feed_offset_s for r in results if r.feed_offset_s is not None]
    head = (f"{'receiver':<10}{'seconds':>9}{'±':>7}{'paths/s':>12}{'peak RSS MB':>12}{'B/path':>8}"
            f"{'ours/their':>11}{'sender CPU s':>13}  notes")
    lines = [f"== {table.prefixes:,} prefixes x 2 peers = {MAX_PATHS * table.prefixes:,} paths, {table.workload} "
             f"(per feed: {table.updates:,} UPDATEs, {table.nbytes / 1e6:.1f} MB) ==",
             "   both feeds at once: sender 2 signalled right after sender 1"
             + (f" (the second feed's first byte {min(offsets) * 1000:.1f} to {max(offsets) * 1000:.1f} ms "
                "after the first's)" if offsets else "")
             + "; time from the first UPDATE byte of either", head]
    for r in results:
        ratio = ours.seconds / r.seconds if ours and ours.seconds and r.ok and r.seconds and r is not ours else None
        seconds = _fmt(r.seconds, ".3f") if r.ok else r.status.split(":")[0]
        lines.append(
            f"{r.receiver:<10}{seconds:>9}{_fmt(r.resolution_s, '.3f'):>7}{_fmt(r.path_rate, ',.0f'):>12}"
            f"{_fmt(r.rss_peak, '.1f', 1e-6):>12}{_fmt(r.bytes_per_path, '.0f'):>8}{_fmt(ratio, '.2f'):>11}"
            f"{_fmt(r.sender_cpu_s, '.2f'):>13}  {_notes(r)}")
    lines += [f"  ! {r.receiver}: {r.status}" for r in results if r.status.startswith("error")]
    lines += [f"  ! {r.receiver}: other processes used {r.other_cpu_s:.1f} CPU-s during its {r.seconds:.1f} s; "
              "rerun on a quiet machine" for r in results if r.disturbed]
    return "\n".join(lines)


def _legend(receivers: list[str]) -> str:
    lines = ["how measured (time: first UPDATE byte of either feed -> both paths of every prefix held and selected; "
             "memory: VmRSS/VmHWM of):"]
    for name in receivers:
        receiver = make_receiver(name)
        lines.append(f"  {name:<6}{receiver.resolution_note}; memory of {receiver.memory_of}")
    lines.append(f"  B/path = (RSS when held - RSS before) / (2 x prefixes); ECMP width {MAX_PATHS} where the "
                 "receiver has it; nobody advertises anything back (see bench/bestpath_peers.py)")
    lines.append("  DISTURBED: other processes used over 10% of a core while the table went in "
                 "(machine-wide CPU time minus this run's processes)")
    return "\n".join(lines)


# ---------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bestpath", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="prefixes per peer, comma-separated")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"from {', '.join(WORKLOADS)}")
    parser.add_argument("--receivers", default=",".join(DEFAULT_RECEIVERS),
                        help=f"from {', '.join(RECEIVERS)}; run in the order given")
    parser.add_argument("--quick", action="store_true", help="100k prefixes per peer only, every receiver")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per receiver")
    parser.add_argument("--seed", type=int, default=1, help="table generator seed")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    check_common_args(parser, args, RECEIVERS)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started_run = start("bestpath", args.receivers, BINARIES, _legend)
    if started_run is None:
        return 2
    receivers, machine = started_run
    started = time.monotonic()
    feeds = {(n, w): (load_table(w, n, args.seed, SENDER_ADDRESS), load_table(w, n, args.seed, SECOND_SENDER_ADDRESS))
             for n in args.sizes for w in args.workloads}
    print(f"tables ready in {time.monotonic() - started:.1f} s (cached under {RESULTS / 'tables'})")
    logdir = RESULTS / "logs" / time.strftime("bestpath-%Y%m%d-%H%M%S")
    logdir.mkdir(parents=True, exist_ok=True)
    results: list[BestpathResult] = []
    for tables in feeds.values():
        table = tables[0]
        sample = sample_prefixes(table.path, SAMPLE_PREFIXES)
        batch = []
        for name in receivers:
            result = run_receiver(tables, name, args.timeout, logdir, sample)
            print(f"  [{table.prefixes:,} x2 {table.workload}] {name}: "
                  f"{_fmt(result.seconds, '.3f') if result.ok else result.status}", file=sys.stderr, flush=True)
            batch.append(result)
        print("\n" + format_table(table, batch), flush=True)
        results += batch
    elapsed = time.monotonic() - started
    print(f"\ntotal wall time {elapsed:.0f} s; logs in {logdir}")
    if args.json:
        payload = {"machine": machine, "wall_time_s": elapsed, "max_paths": MAX_PATHS,
                   "senders": [{"address": a, "router_id": r} for a, r in SENDERS],
                   "tables": [{"workload": t.workload, "prefixes": t.prefixes, "updates": t.updates,
                               "bytes": t.nbytes, "files": [str(t.path), str(t2.path)]} for t, t2 in feeds.values()],
                   "results": [r.as_json() for r in results]}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
