"""A probe's records in, its report out: loss windows, paths, latency. Pure, so every figure a
scenario judges is unit-tested without a lab.

The receiver (`bgplab.lab.probe_agent`) writes one fixed-size `RECORD` per packet; the sender
sets the TTL (hop limit) to `INITIAL_TTL`, so the TTL received tells how many hops a path has.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

RECORD = struct.Struct("<QqqBB6x")
"""One received packet in records.bin: seq, send ns, receive ns, DSCP, TTL (hop limit); 32 bytes."""
INITIAL_TTL = 64
UNMARKED = "unmarked"


class Record(NamedTuple):
    """One packet as the receiver saw it; times in monotonic seconds."""

    seq: int
    sent: float
    received: float
    dscp: int = 0
    ttl: int = 0
    """The received TTL / hop limit, 0 if unknown."""


@dataclass(frozen=True, slots=True)
class LossWindow:
    """A run of consecutive sequence numbers that never arrived.

    `start` is the send time of the last packet received before the gap and `end` the send time
    of the first received after it (send times, on the sender's clock, so a change of path
    latency does not stretch or shrink the window). Where the gap opens the run (or closes it),
    the missing neighbour's *scheduled* send time stands in: origin - interval (or origin +
    sent x interval).

    `duration` = end - start - interval: the outage estimated at the midpoints, i.e. it began
    half an interval after the last packet that got through and ended half an interval before the
    next one did. With regular pacing that is count x interval, the same figure the kernel
    counters give (lost packets x interval), and within half an interval of the true outage; a
    sender stall inside the gap shows up in it rather than being assumed away.

    `silence` = receive time of the first packet after the gap - receive time of the last one
    before: the outage as the receiving application lived it (one interval longer than
    `duration`, plus any change of path latency); None where the gap opens or closes the run.
    """

    first_lost: int
    last_lost: int
    count: int
    start: float
    end: float
    duration: float
    silence: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"first_lost": self.first_lost, "last_lost": self.last_lost, "count": self.count,
                "start": round(self.start, 6), "end": round(self.end, 6), "duration": round(self.duration, 6),
                "silence": None if self.silence is None else round(self.silence, 6)}


@dataclass(slots=True)
class ProbeReport:
    name: str
    sent: int
    received: int
    """Distinct sequence numbers received."""
    lost: int
    duplicates: int
    """Copies of packets already received."""
    reordered: int
    """Packets that arrived after one with a higher sequence number."""
    windows: list[LossWindow]
    paths: list[tuple[float, float, str, int]]
    """Runs of consecutive received packets (in sequence order) on one path: (send time of the
    first, send time of the last, path name, packets)."""
    per_path: dict[str, int]
    rate: float
    interval: float
    hops: dict[str, list[int]] = field(default_factory=dict)
    """Per path, the router hop counts seen (64 - received TTL): a path through one router more shows."""
    latency_ms: dict[str, float] = field(default_factory=dict)
    """One-way latency of received packets: min, p50, p99, max."""
    counters: dict[str, int | None] = field(default_factory=dict)
    """The kernel's own counts: "sent" (source output hook), "delivered" (destination input hook)."""
    send_errors: int = 0
    """Packets the sender's stack refused (counted in sent, never on the wire)."""
    origin: float | None = None
    """Scheduled send time of packet 0."""
    destination: str | None = None
    port: int | None = None

    @property
    def counter_lost(self) -> int | None:
        sent, delivered = self.counters.get("sent"), self.counters.get("delivered")
        return None if sent is None or delivered is None else sent - delivered

    def path_at(self, t: float) -> str | None:
        """The path of the run covering send time t, if any."""
        for start, end, name, _ in self.paths:
            if start <= t <= end:
                return name
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "sent": self.sent, "received": self.received, "lost": self.lost,
            "duplicates": self.duplicates, "reordered": self.reordered,
            "windows": [w.to_json() for w in self.windows],
            "paths": [{"from": round(a, 6), "to": round(b, 6), "path": p, "packets": n} for a, b, p, n in self.paths],
            "per_path": self.per_path, "hops": self.hops, "rate": self.rate, "interval": self.interval,
            "latency_ms": self.latency_ms, "counters": self.counters, "counter_lost": self.counter_lost,
            "send_errors": self.send_errors, "origin": None if self.origin is None else round(self.origin, 6),
            "destination": self.destination, "port": self.port,
        }

    def summary(self) -> str:
        lines = [f"probe {self.name}: {self.sent} sent, {self.received} received, {self.lost} lost, "
                 f"{self.duplicates} duplicates, {self.reordered} reordered at {self.rate:g}/s"]
        if self.counters:
            lines.append(f"  kernel counters: sent {self.counters.get('sent')}, "
                         f"delivered {self.counters.get('delivered')}, lost {self.counter_lost}")
        base = self.origin or 0.0
        for w in self.windows:
            lines.append(f"  loss window: seq {w.first_lost}-{w.last_lost} ({w.count} packets) "
                         f"+{w.start - base:.3f}s .. +{w.end - base:.3f}s, outage {w.duration * 1000:.0f} ms")
        for a, b, p, n in self.paths:
            lines.append(f"  path {p}: +{a - base:.3f}s .. +{b - base:.3f}s, {n} packets")
        return "\n".join(lines)


def analyse(records: Iterable[Record], sent: int, interval: float, marks: Mapping[int, str], *,
            name: str = "probe", origin: float | None = None) -> ProbeReport:
    """The report of a probe from what the receiver recorded (in arrival order).

    `sent` is how many packets (sequence numbers 0 .. sent-1) the sender sent; a record with a
    higher number (in flight when a snapshot was cut) is ignored. `marks` maps DSCP values to
    path names; any other DSCP is "unmarked". `origin` is the scheduled send time of packet 0;
    without it, it is inferred from the received packets (a packet is never sent early).
    """
    first: dict[int, Record] = {}
    duplicates = reordered = 0
    highest = -1
    for record in records:
        if not 0 <= record.seq < sent:
            continue
        if record.seq in first:
            duplicates += 1
            continue
        first[record.seq] = record
        if record.seq < highest:
            reordered += 1
        highest = max(highest, record.seq)
    seqs = sorted(first)
    if origin is None:
        origin = min((first[s].sent - s * interval for s in seqs), default=0.0)

    def send_time(seq: int) -> float:
        got = first.get(seq)
        return got.sent if got is not None else origin + seq * interval

    windows: list[LossWindow] = []
    for a, b in zip([-1, *seqs], [*seqs, sent], strict=True):
        if b - a <= 1:
            continue
        before, after = first.get(a), first.get(b)
        start, end = send_time(a), send_time(b)
        silence = after.received - before.received if before is not None and after is not None else None
        windows.append(LossWindow(a + 1, b - 1, b - a - 1, start, end, max(0.0, end - start - interval), silence))

    def path(record: Record) -> str:
        return marks.get(record.dscp, UNMARKED)

    paths: list[tuple[float, float, str, int]] = []
    for seq in seqs:
        record = first[seq]
        here = path(record)
        if paths and paths[-1][2] == here:
            since, _, p, n = paths[-1]
            paths[-1] = (since, record.sent, p, n + 1)
        else:
            paths.append((record.sent, record.sent, here, 1))
    per_path = dict(Counter(path(first[s]) for s in seqs))
    hops: dict[str, set[int]] = {}
    for s in seqs:
        if first[s].ttl:
            hops.setdefault(path(first[s]), set()).add(INITIAL_TTL - first[s].ttl)
    latencies = sorted(first[s].received - first[s].sent for s in seqs)
    latency_ms: dict[str, float] = {}
    if latencies:
        def pick(q: float) -> float:
            return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 3)
        latency_ms = {"min": pick(0), "p50": pick(0.5), "p99": pick(0.99), "max": pick(1)}
    return ProbeReport(name=name, sent=sent, received=len(seqs), lost=sent - len(seqs), duplicates=duplicates,
                       reordered=reordered, windows=windows, paths=paths, per_path=per_path,
                       rate=1 / interval if interval > 0 else 0.0, interval=interval,
                       hops={p: sorted(v) for p, v in hops.items()}, latency_ms=latency_ms, origin=origin)


def read_records(path: Path, offset: int = 0) -> list[Record]:
    """The receiver's file so far, from byte `offset` (a record torn by a flush in progress is
    left for next time)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return []
    data = data[: len(data) - len(data) % RECORD.size]
    return [Record(seq, s / 1e9, r / 1e9, dscp, ttl) for seq, s, r, dscp, ttl in RECORD.iter_unpack(data)]
