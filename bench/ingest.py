"""Ingest benchmark: the same table into our speaker and, one after another, into FRR, BIRD, GoBGP, ExaBGP.

    python -m bench.ingest [--sizes 100000,1000000] [--workloads dense,realistic]
                           [--receivers ours,frr,bird,gobgp,ours-collector,exabgp] [--json FILE] [--quick]

Each run gets two fresh network namespaces joined by a veth: the sender (bench/ingest_sender.py)
in one, the receiver in the other, nothing else running. The sender handshakes, then on a signal
`sendall()`s the pre-encoded table; the time runs from just before its first UPDATE byte to the
moment the receiver holds every prefix. A framing-only sink is measured the same way first, to
show the sender is not what the figures measure. Per receiver it prints seconds, prefixes/s,
peak RSS (VmHWM), bytes per stored prefix ((RSS when full - RSS before) / N) and our time divided
by theirs; for ours also the longest event-loop stall and the longest gap between KEEPALIVEs as
the sender saw them. Needs root (namespaces). See bench/README.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.ingest_common import memory
from bench.ingest_peers import BINARIES, RECEIVER_NAMES, Arrival, Child, Receiver, Timeout, make_receiver
from bench.ingest_table import RESULTS, WORKLOADS, Table, load_table
from bgplab import programs
from bgplab.testing.netns import LinkedPair

DEFAULT_SIZES = (100_000, 1_000_000)
DEFAULT_RECEIVERS = ("ours", "frr", "bird", "gobgp", "ours-collector", "exabgp")
"""Ours first beside the routers (a Loc-RIB each), then the two collectors (Adj-RIB-In only)."""
SETTLE = 0.5
"""Seconds between session up and the table, so start-up allocations are in the 'before' RSS."""

# Published/measured seconds to hold 1M IPv4 prefixes (perf-robustness.md part A; the issue).
REFERENCE_1M = {
    "sink": {"dense": 0.2, "realistic": 0.2},
    "bird": {"dense": 0.36, "realistic": 0.8},
    "frr": {"dense": 2.7, "realistic": 3.5},
    "gobgp": {"dense": 12.6, "realistic": 19.4},
    "exabgp": {"dense": 16.0, "realistic": 65.0},
}
GOAL_BYTES_PER_PREFIX = 250
GOAL_MAX_LOOP_STALL = 0.100


@dataclass
class RunResult:
    """Everything measured for one receiver on one table; `status` is ok, timeout or error: why."""

    receiver: str
    prefixes: int
    workload: str
    status: str = "error"
    seconds: float | None = None
    resolution_s: float | None = None
    count: int = 0
    rss_before: int | None = None
    rss_full: int | None = None
    rss_peak: int | None = None
    sender_send_s: float | None = None
    sender_cpu_s: float | None = None
    keepalive_interval_s: float = 0.0
    keepalive_gap_s: float | None = None
    memory_of: str = ""
    timing: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.seconds is not None

    @property
    def rate(self) -> float | None:
        return self.prefixes / self.seconds if self.ok and self.seconds else None

    @property
    def bytes_per_prefix(self) -> float | None:
        if self.rss_full is None or self.rss_before is None:
            return None
        return (self.rss_full - self.rss_before) / self.prefixes

    @property
    def peak_bytes_per_prefix(self) -> float | None:
        if self.rss_peak is None or self.rss_before is None:
            return None
        return (self.rss_peak - self.rss_before) / self.prefixes

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "prefixes_per_s": self.rate, "bytes_per_prefix": self.bytes_per_prefix,
                "peak_bytes_per_prefix": self.peak_bytes_per_prefix}


# ---------------------------------------------------------------- one run


def run_receiver(table: Table, name: str, timeout: float, logdir: Path) -> RunResult:
    """Measure one receiver on one table; failures become a status, never an abort of the whole run."""
    receiver = make_receiver(name)
    result = RunResult(name, table.prefixes, table.workload, keepalive_interval_s=receiver.keepalive,
                       memory_of=receiver.memory_of, timing=receiver.resolution_note)
    try:
        _measure(table, receiver, timeout, logdir, result)
    except Exception as exc:
        result.status = f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        with open(logdir / f"{name}-error.log", "a") as log:
            log.write(f"{table.describe()}\n{traceback.format_exc()}\n")
    return result


def _measure(table: Table, receiver: Receiver, timeout: float, logdir: Path, result: RunResult) -> None:
    with ExitStack() as stack:
        pair = stack.enter_context(LinkedPair(prefix="bing"))
        stack.callback(receiver.stop)
        receiver.start(pair.b, table.prefixes, logdir)
        sender = Child(pair.a, "bench.ingest_sender", ["--table", str(table.path)],
                       logdir / f"{receiver.name}-sender.log")
        stack.callback(sender.stop)
        sender.expect("established", 40)
        receiver.wait_established(30)
        time.sleep(SETTLE)
        result.rss_before = _rss(receiver.pids(), "VmRSS")
        sender.signal(signal.SIGUSR1)
        t_first = sender.expect("sending", 10)["t_first"]
        arrival = receiver.wait_full(table.prefixes, t_first, t_first + timeout)
        result.rss_full = _rss(receiver.pids(), "VmRSS")
        result.rss_peak = _rss(receiver.pids(), "VmHWM")
        result.count = arrival.count
        result.details = receiver.details()
        if isinstance(arrival, Timeout):
            result.status = f"timeout after {timeout:g} s"
            return
        _record_arrival(result, arrival, t_first)
        sent = sender.expect("sent", 10)
        result.sender_send_s = sent["t_sent"] - t_first
        result.sender_cpu_s = sent["cpu_s"]
        _record_keepalives(result, sender, t_first, arrival.latest)
        result.status = "ok"


def _rss(pids: Iterable[int], key: str) -> int | None:
    values = [memory(pid).get(key) for pid in pids]
    return sum(v for v in values if v is not None) if values and None not in values else None


def _record_arrival(result: RunResult, arrival: Arrival, t_first: float) -> None:
    """The best estimate is the middle of the interval in which the table became whole."""
    earliest = max(arrival.earliest, t_first)
    result.seconds = (earliest + arrival.latest) / 2 - t_first
    result.resolution_s = (arrival.latest - earliest) / 2


def _record_keepalives(result: RunResult, sender: Child, t_first: float, t_full: float) -> None:
    """Let one more KEEPALIVE interval pass, so a late KEEPALIVE after the ingest is seen too."""
    if result.keepalive_interval_s:
        time.sleep(result.keepalive_interval_s * 1.5)
    observed_until = time.monotonic()
    sender.signal(signal.SIGTERM)
    final = sender.expect("final", 10)
    if result.keepalive_interval_s:
        result.keepalive_gap_s = keepalive_gap(final["keepalives"], t_first, t_full, observed_until)
    result.details["updates_from_receiver"] = final["other_messages"]  # e.g. FRR advertising the table back
    if final.get("notification"):
        result.details["notification"] = final["notification"]


def keepalive_gap(arrivals: Sequence[float], start: float, end: float, observed_until: float) -> float | None:
    """Longest gap between the receiver's KEEPALIVEs around [start, end], an open gap at the end included."""
    before = [t for t in arrivals if t <= start][-1:]
    after = [t for t in arrivals if t > end][:1] or [observed_until]
    points = before + [t for t in arrivals if start < t <= end] + after
    return max((b - a for a, b in itertools.pairwise(points)), default=None)


# ---------------------------------------------------------------- report


def _reference(name: str, table: Table) -> str:
    ref = REFERENCE_1M.get(name.split("-")[0], {}).get(table.workload)
    if ref is None:
        return "-"
    if table.prefixes == 1_000_000:
        return f"{ref:g}"
    return f"~{ref * table.prefixes / 1_000_000:.3g}"


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def _notes(r: RunResult) -> str:
    notes = []
    if "max_lag_s" in r.details:
        notes.append(f"loop stall max {r.details['max_lag_s'] * 1000:.0f} ms (p99 {r.details['p99_lag_s'] * 1000:.0f})")
    if r.keepalive_gap_s is not None:
        notes.append(f"KA gap {r.keepalive_gap_s:.2f} s (KA {r.keepalive_interval_s:g} s)")
    if r.details.get("gc", "default") != "default":
        notes.append(f"gc {r.details['gc']}")
    if r.details.get("updates_from_receiver", 0) > 10:
        notes.append(f"sent {r.details['updates_from_receiver']:,} UPDATEs back")
    if "notification" in r.details:
        notes.append(f"NOTIFICATION {r.details['notification']}")
    if not r.ok and r.count:
        notes.append(f"{r.count:,} held")
    return "; ".join(notes)


def format_table(table: Table, results: list[RunResult]) -> str:
    ours = next((r for r in results if r.receiver == "ours" and r.ok), None)
    head = (f"{'receiver':<14}{'seconds':>9}{'±':>7}{'prefixes/s':>12}{'peak RSS MB':>12}{'B/prefix':>9}"
            f"{'ours/their':>11}{'ref s':>8}{'sender CPU s':>13}  notes")
    lines = [f"== {table.describe()} ==", head]
    for r in results:
        ratio = ours.seconds / r.seconds if ours and ours.seconds and r.ok and r.seconds and r is not ours else None
        seconds = _fmt(r.seconds, ".3f") if r.ok else r.status.split(":")[0]
        lines.append(
            f"{r.receiver:<14}{seconds:>9}{_fmt(r.resolution_s, '.3f'):>7}{_fmt(r.rate, ',.0f'):>12}"
            f"{_fmt(r.rss_peak, '.1f', 1e-6):>12}{_fmt(r.bytes_per_prefix, '.0f'):>9}{_fmt(ratio, '.2f'):>11}"
            f"{_reference(r.receiver, table):>8}{_fmt(r.sender_cpu_s, '.2f'):>13}  {_notes(r)}")
    lines += [f"  ! {r.receiver}: {r.status}" for r in results if r.status.startswith("error")]
    lines.append(_goals(results))
    return "\n".join(lines)


def _goals(results: list[RunResult]) -> str:
    """Our targets, each judged against what was measured in this run."""
    secs = {r.receiver: r.seconds for r in results if r.ok and r.seconds}
    ours = next((r for r in results if r.receiver == "ours" and r.ok), None)
    if ours is None or "ours" not in secs:
        return "goals: ours did not complete"
    mine = secs["ours"]
    checks = []

    def check(label: str, value: str, goal: str, met: bool) -> None:
        checks.append(f"{label} {value} ({goal}: {'ok' if met else 'MISS'})")

    if "frr" in secs:
        check("ours/FRR", f"{mine / secs['frr']:.2f}", "<= 1.0", mine <= secs["frr"])
    if "bird" in secs:
        check("ours/BIRD", f"{mine / secs['bird']:.2f}", "<= 3", mine <= 3 * secs["bird"])
    if "gobgp" in secs:
        check("gobgp/ours", f"{secs['gobgp'] / mine:.1f}", ">= 5", secs["gobgp"] >= 5 * mine)
    if "exabgp" in secs and "ours-collector" in secs:  # both keep an Adj-RIB-In and decide nothing
        collector = secs["ours-collector"]
        check("exabgp/ours-collector", f"{secs['exabgp'] / collector:.1f}", ">= 5", secs["exabgp"] >= 5 * collector)
    bpp = ours.bytes_per_prefix
    if bpp is not None:
        check("B/prefix", f"{bpp:.0f}", f"<= {GOAL_BYTES_PER_PREFIX}", bpp <= GOAL_BYTES_PER_PREFIX)
    stall = ours.details.get("max_lag_s")
    if stall is not None:
        met = stall <= GOAL_MAX_LOOP_STALL
        check("loop stall", f"{stall * 1000:.0f} ms", f"<= {GOAL_MAX_LOOP_STALL * 1000:g}", met)
    if "sink" in secs:
        checks.append(f"sender check: sink {secs['sink']:.3f} s = {mine / secs['sink']:.0f}x faster than ours")
    return "goals: " + " | ".join(checks)


def _legend(receivers: list[str]) -> str:
    """How each receiver is timed and whose memory is counted, and the published figures we compare to."""
    lines = ["how measured (time: first UPDATE byte written -> whole table held; memory: VmRSS/VmHWM of):"]
    for name in receivers:
        receiver = make_receiver(name)
        lines.append(f"  {name:<14}{receiver.resolution_note}; memory of {receiver.memory_of}")
    refs = ", ".join(f"{name} {v['dense']:g}/{v['realistic']:g}" for name, v in REFERENCE_1M.items())
    lines.append(f"reference seconds to hold 1M prefixes (dense/realistic; ~ = scaled to size): {refs}")
    lines.append(f"goals for ours: <= FRR's time, <= 3x BIRD's, >= 5x faster than GoBGP (and as a collector ExaBGP), "
                 f"<= {GOAL_BYTES_PER_PREFIX} B/prefix, loop stall <= {GOAL_MAX_LOOP_STALL * 1000:g} ms")
    return "\n".join(lines)


def _machine() -> dict[str, Any]:
    return {"host": platform.node(), "kernel": platform.release(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()}


# ---------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="prefix counts, comma-separated")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"from {', '.join(WORKLOADS)}")
    parser.add_argument("--receivers", default=",".join(DEFAULT_RECEIVERS),
                        help=f"from {', '.join(RECEIVER_NAMES)}; run in the order given, after the sink")
    parser.add_argument("--no-sink", action="store_true", help="skip the framing-only sink (the sender check)")
    parser.add_argument("--quick", action="store_true", help="100k prefixes only, every receiver (for CI)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per receiver before 'timeout'")
    parser.add_argument("--seed", type=int, default=1, help="table generator seed")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    check_common_args(parser, args, RECEIVER_NAMES)
    args.receivers = (["sink"] if not args.no_sink else []) + [r for r in args.receivers if r != "sink"]
    return args


def check_common_args(parser: argparse.ArgumentParser, args: argparse.Namespace, receivers: Sequence[str]) -> None:
    """--sizes, --workloads and --receivers (comma-separated) as lists, each value checked."""
    args.sizes = [100_000] if args.quick else [int(s.replace("_", "")) for s in args.sizes.split(",")]
    args.workloads = args.workloads.split(",")
    args.receivers = args.receivers.split(",")
    for name in args.receivers:
        if name not in receivers:
            parser.error(f"unknown receiver {name!r}")
    for workload in args.workloads:
        if workload not in WORKLOADS:
            parser.error(f"unknown workload {workload!r}")


def start(bench: str, receivers: list[str], binaries: dict[str, str],
          legend: Callable[[list[str]], str]) -> tuple[list[str], dict[str, Any]] | None:
    """Root check, signals, the receivers whose daemons are installed, and the machine (both also
    printed, with the legend); None when not root."""
    if os.geteuid() != 0:
        print(f"bench.{bench} needs root: it creates network namespaces", file=sys.stderr)
        return None
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    missing = [n for n in receivers if n in binaries and programs.find(binaries[n]) is None]
    if missing:  # a comparison with a peer left out silently is not the comparison asked for
        for name in missing:
            print(f"bench.{bench}: {binaries[name]} is not installed (scripts/setup installs it); "
                  f"leave {name} out with --receivers", file=sys.stderr)
        raise SystemExit(2)
    available = list(receivers)
    machine = _machine()
    print(f"machine: {machine['cpus']} CPUs, load {machine['loadavg_at_start'][0]:.2f}, Python {machine['python']}")
    if machine["loadavg_at_start"][0] > 0.7:
        print("warning: the machine is busy; receivers share 2 cores with whatever else runs", file=sys.stderr)
    print(legend(available))
    return available, machine


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every context manager: namespaces get deleted


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started_run = start("ingest", args.receivers, BINARIES, _legend)
    if started_run is None:
        return 2
    receivers, machine = started_run
    started = time.monotonic()
    tables = {(n, w): load_table(w, n, args.seed) for n in args.sizes for w in args.workloads}
    print(f"tables ready in {time.monotonic() - started:.1f} s (cached under {RESULTS / 'tables'})")
    logdir = RESULTS / "logs" / time.strftime("%Y%m%d-%H%M%S")
    logdir.mkdir(parents=True, exist_ok=True)
    results: list[RunResult] = []
    for table in tables.values():
        batch = []
        for name in receivers:
            result = run_receiver(table, name, args.timeout, logdir)
            print(f"  [{table.prefixes:,} {table.workload}] {name}: "
                  f"{_fmt(result.seconds, '.3f') if result.ok else result.status}", file=sys.stderr, flush=True)
            batch.append(result)
        print("\n" + format_table(table, batch), flush=True)
        results += batch
    elapsed = time.monotonic() - started
    print(f"\ntotal wall time {elapsed:.0f} s; logs in {logdir}")
    if args.json:
        payload = {"machine": machine, "wall_time_s": elapsed, "reference_1m_s": REFERENCE_1M,
                   "tables": [{"workload": t.workload, "prefixes": t.prefixes, "updates": t.updates,
                               "bytes": t.nbytes} for t in tables.values()],
                   "results": [r.as_json() for r in results]}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
