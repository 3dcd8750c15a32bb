"""Data-plane probes: UDP streams between two lab nodes that show failover in the packets themselves.

A probe is a sender in the source node's namespace and a receiver in the destination's, both
`python -m bgplab.lab.probe_agent send|receive ...` started through the lab's runtime, so they are
journaled and `bgplab down` ends them. Each packet carries a magic, the probe's id (random per
start, so a stale packet of an earlier run is never counted), its sequence number and its send
time; the receiver writes one fixed-size record per packet to the probe's directory in the lab's
state (`$BGPLAB_STATE_DIR/LAB/probes/NAME/records.bin`) and flushes every 100 ms, which keeps up
with 1,000 packets/s for as long as anyone cares (32 bytes a packet: 2 MB a minute).

Time: every timestamp is CLOCK_MONOTONIC (`time.monotonic_ns()`), which is system-wide and the
same in every namespace, so send and receive times compare directly, and line up with the fault
journal (`bgplab.lab.faults` stamps faults with the same clock). The sender paces on an absolute
schedule (packet n is due at origin + n x interval), so lateness never accumulates; a packet sent
late carries its real send time.

Paths: each *candidate hop* namespace gets an nftables rule in its forward chain that sets the
DSCP of this probe's packets (UDP destination port and destination address) to a value of its
own (10, 11, 12, ... in the order the hops are given); the receiver reads the DSCP of each packet
(IP_RECVTOS / IPV6_RECVTCLASS) and its TTL (hop limit), and the report names the path by the hop.
The default hops are every MSEE peering namespace and the Azure internet edge, named by their
namespace keys ("contoso-ams-msee1.private", "azure-internet"); `ProbeSpec.hops` replaces them
(start from `default_hops(plan)` to add, e.g., an on-premises egress node). If a packet crosses
several candidate hops the *last* one's mark wins, so pick hops that tell the paths apart (the
MSEEs do, for traffic between a VNet and on-premises). A packet no hop marked is "unmarked".

Counters: independent of the receiver, the kernel counts the probe's packets in the source's
output hook (`sent`: packets the source's stack accepted and routed) and the destination's input
hook (`delivered`: packets handed to the destination's stack); the report carries both, so
`counters["sent"] - counters["delivered"]` is a loss figure that does not trust the probe's own
sequence numbers.

All of a probe's rules live in a table of its own, `inet bgplab_probe_<name>`, in each namespace
it touches (source, destination, hops). `stop` deletes them; they are journaled as a `probe`
entry in the lab's journal (for `status`-like views), and `bgplab down` removes them with the
namespaces they live in, so an abandoned probe leaves nothing behind once the lab is down.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import math
import re
import secrets
import select
import subprocess
import sys
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bgplab.lab import system
from bgplab.lab.probe_agent import PACKET
from bgplab.lab.probe_report import RECORD, UNMARKED, ProbeReport, Record, analyse, read_records

if TYPE_CHECKING:
    from bgplab.lab.lab import Lab
    from bgplab.lab.plan import LabPlan

MAX_RATE = 1000.0
FIRST_DSCP = 10
PORTS = range(47000, 48000)
"""Default ports: clear of BGP, BFD and traceroute's 33434+."""
MIN_GRACE = 0.5
MAX_GRACE = 5.0

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


class ProbeError(RuntimeError):
    """A probe that cannot be set up or run; the message says what would work."""


# ---- the lab side: where the probe runs, its rules and processes


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    name: str
    source: str
    """A node (its main namespace), or a namespace key."""
    destination: str
    """A node (its first non-loopback IPv4 address), or an address some lab namespace has."""
    rate: float = 100.0
    """Packets per second, up to 1,000."""
    port: int | None = None
    """UDP destination port; default one of 47000-47999 from the name, free among this lab's probes."""
    size: int = 64
    """UDP payload bytes (at least the 28 of the header)."""
    hops: Mapping[str, str] | None = None
    """Path mark name -> namespace key (or node) of a candidate hop; default `default_hops(plan)`."""
    address: str | None = None
    """With a destination node: which of its addresses to aim at (default its first IPv4)."""


def default_hops(plan: LabPlan) -> dict[str, str]:
    """Every MSEE peering namespace, then the Azure internet edge, each named by its namespace key."""
    hops: dict[str, str] = {}
    for node in sorted(plan.nodes.values(), key=lambda n: n.name):
        if node.kind == "msee":
            hops.update({key: key for key in node.namespaces})
    internet = plan.nodes.get("azure-internet")
    if internet is not None:
        hops[internet.name] = internet.namespaces[0]
    return hops


def _address_of(address: str) -> str:
    return address.split("/")[0]


def _namespace_of(plan: LabPlan, what: str, role: str) -> str:
    if what in plan.nodes:
        return plan.nodes[what].namespaces[0]
    if what in plan.namespaces:
        return what
    known = ", ".join(sorted(plan.nodes))
    raise ProbeError(f"probe {role} {what!r}: no such node in lab {plan.name}; nodes: {known}")


def resolve_destination(plan: LabPlan, destination: str, address: str | None = None) -> tuple[str, str]:
    """(namespace key the receiver runs in, address the sender aims at)."""
    if destination in plan.nodes or destination in plan.namespaces:
        keys = plan.nodes[destination].namespaces if destination in plan.nodes else (destination,)
        if address is not None:
            want = ipaddress.ip_address(address)
            for key in keys:
                if any(ipaddress.ip_address(_address_of(c)) == want for _, c in plan.namespaces[key].addresses):
                    return key, str(want)
            raise ProbeError(f"probe destination {destination}: it has no address {address}")
        main = plan.namespaces[keys[0]]
        for loopback in (False, True):
            for ifname, cidr in main.addresses:
                ip = ipaddress.ip_address(_address_of(cidr))
                if ip.version == 4 and (ifname == "lo") == loopback:
                    return main.key, str(ip)
        raise ProbeError(f"probe destination {destination}: it has no IPv4 address; give one (address=...)")
    try:
        want = ipaddress.ip_address(destination)
    except ValueError:
        known = ", ".join(sorted(plan.nodes))
        raise ProbeError(f"probe destination {destination!r}: neither a node of lab {plan.name} ({known}) "
                         "nor an address") from None
    owners = [key for key, ns in plan.namespaces.items()
              if any(ipaddress.ip_address(_address_of(c)) == want for _, c in ns.addresses)]
    if len(owners) != 1:
        where = f"is on {len(owners)} namespaces ({', '.join(owners)})" if owners else "is on no namespace of the lab"
        raise ProbeError(f"probe destination {destination}: the address {where}; name the node and give "
                         "address=... (the receiver runs on the destination)")
    return owners[0], str(want)


def _running(pid: int | None, start: int | None) -> bool:
    return pid is not None and system.start_time(pid) == start and system.alive(pid)


class Probe:
    """One probe in a running lab: `start`, `snapshot` while it runs, `stop` for the final report."""

    def __init__(self, lab: Lab, spec: ProbeSpec) -> None:
        if not _NAME.fullmatch(spec.name):
            raise ProbeError(f"probe name {spec.name!r}: expected a lowercase letter, then up to 39 lowercase "
                             "letters, digits, dashes or underscores")
        if not 0 < spec.rate <= MAX_RATE:
            raise ProbeError(f"probe {spec.name}: rate {spec.rate:g}: expected more than 0, up to {MAX_RATE:g}/s")
        if not PACKET.size <= spec.size <= 1400:
            raise ProbeError(f"probe {spec.name}: size {spec.size}: expected {PACKET.size}-1400 bytes")
        if spec.port is not None and not 1 <= spec.port <= 65535:
            raise ProbeError(f"probe {spec.name}: port {spec.port}: expected 1-65535")
        self.lab = lab
        self.spec = spec
        plan = lab.plan
        self.source = _namespace_of(plan, spec.source, "source")
        self.target, self.address = resolve_destination(plan, spec.destination, spec.address)
        self.family = ipaddress.ip_address(self.address).version
        hops = dict(spec.hops) if spec.hops is not None else default_hops(plan)
        if len(hops) > 64 - FIRST_DSCP:
            raise ProbeError(f"probe {spec.name}: {len(hops)} hops; DSCP has room for {64 - FIRST_DSCP}")
        self.hops = {mark: _namespace_of(plan, where, f"hop {mark!r}") for mark, where in hops.items()}
        seen: dict[str, str] = {}
        for mark, key in self.hops.items():
            if key in seen:
                raise ProbeError(f"probe {spec.name}: hops {seen[key]!r} and {mark!r} are both namespace {key}")
            seen[key] = mark
        if UNMARKED in self.hops:
            raise ProbeError(f"probe {spec.name}: {UNMARKED!r} is the name of no mark; call the hop otherwise")
        self.marks = {FIRST_DSCP + i: mark for i, mark in enumerate(self.hops)}
        self.interval = 1.0 / spec.rate
        self.table = "bgplab_probe_" + spec.name.replace("-", "_")
        self.dir = lab.state.dir / "probes" / spec.name
        self.records = self.dir / "records.bin"
        self.status = self.dir / "sender.json"
        self.port = spec.port
        self.id = 0
        self._sender: subprocess.Popen[bytes] | None = None
        self._receiver: subprocess.Popen[bytes] | None = None
        self._pids: dict[str, tuple[int, int | None]] = {}
        self._seen: list[Record] = []
        self.report: ProbeReport | None = None

    # ---- bookkeeping on disk (so another process can find a running probe)

    @property
    def meta(self) -> Path:
        return self.dir / "probe.json"

    def _save(self, state: str) -> None:
        data = {"name": self.spec.name, "source": self.spec.source, "destination": self.spec.destination,
                "address": self.address, "rate": self.spec.rate, "port": self.port, "size": self.spec.size,
                "hops": self.hops, "marks": {str(k): v for k, v in self.marks.items()}, "id": self.id,
                "table": self.table, "namespaces": self.namespaces(), "state": state,
                "pids": {k: list(v) for k, v in self._pids.items()}}
        tmp = self.meta.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.meta)

    @classmethod
    def attach(cls, lab: Lab, name: str) -> Probe:
        """A probe started by another process (or this one), from its record in the lab's state."""
        meta = lab.state.dir / "probes" / name / "probe.json"
        try:
            data = json.loads(meta.read_text())
        except FileNotFoundError:
            raise ProbeError(f"no probe {name!r} in lab {lab.plan.name}") from None
        spec = ProbeSpec(name=data["name"], source=data["source"], destination=data["destination"],
                         rate=data["rate"], port=data["port"], size=data["size"], hops=data["hops"],
                         address=data["address"])
        probe = cls(lab, spec)
        probe.id = data["id"]
        probe._pids = {k: (int(v[0]), v[1]) for k, v in data["pids"].items()}
        return probe

    def _others(self) -> list[dict[str, Any]]:
        """Other probes of this lab that are running."""
        found = []
        for meta in sorted((self.lab.state.dir / "probes").glob("*/probe.json")):
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(meta.read_text())
                if data.get("name") != self.spec.name and data.get("state") == "running":
                    found.append(data)
        return found

    def _choose_port(self) -> int:
        taken = {d.get("port") for d in self._others()}
        if self.spec.port is not None:
            if self.spec.port in taken:
                raise ProbeError(f"probe {self.spec.name}: port {self.spec.port} is another running probe's")
            return self.spec.port
        first = zlib.crc32(f"{self.lab.plan.name}/{self.spec.name}".encode()) % len(PORTS)
        for i in range(len(PORTS)):
            port = PORTS[(first + i) % len(PORTS)]
            if port not in taken:
                return port
        raise ProbeError("every probe port is taken")  # pragma: no cover - a thousand probes at once

    # ---- nftables

    def namespaces(self) -> list[str]:
        keys = [self.source, self.target, *self.hops.values()]
        return list(dict.fromkeys(keys))

    def ruleset(self, key: str) -> str:
        """This probe's table for one namespace: its marks if a hop, its counters if an end."""
        ip = "ip" if self.family == 4 else "ip6"
        match = f"udp dport {self.port} {ip} daddr {self.address}"
        lines = [f"table inet {self.table} {{"]
        if key == self.source:
            lines += ["  counter sent {}",
                      "  chain probe_output { type filter hook output priority filter; policy accept;",
                      f'    {match} counter name "sent"', "  }"]
        if key == self.target:
            lines += ["  counter delivered {}",
                      "  chain probe_input { type filter hook input priority filter; policy accept;",
                      f'    {match} counter name "delivered"', "  }"]
        dscp = [d for d, mark in self.marks.items() if self.hops[mark] == key]
        if dscp:
            lines += ["  chain probe_forward { type filter hook forward priority mangle; policy accept;",
                      f"    {match} {ip} dscp set {dscp[0]}", "  }"]
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _nft(self, key: str, script: str) -> None:
        self.lab.runtime.net_exec(key, ["nft", "-f", "-"], input=script)

    def _install(self) -> None:
        for key in self.namespaces():
            # Declare-then-delete makes a leftover table of an earlier run go, in the same transaction.
            self._nft(key, f"table inet {self.table} {{}}\ndelete table inet {self.table}\n" + self.ruleset(key))

    def _remove(self) -> None:
        for key in self.namespaces():
            self.lab.runtime.net_exec(key, ["nft", "delete", "table", "inet", self.table], check=False)

    def counters(self) -> dict[str, int | None]:
        """The kernel's counts now (None where the table is gone). Delivered is read first, so
        while packets flow, sent - delivered is never below what was really in flight."""
        found: dict[str, int | None] = {}
        for key, counter in ((self.target, "delivered"), (self.source, "sent")):
            proc = self.lab.runtime.net_exec(key, ["nft", "-j", "list", "counter", "inet", self.table, counter],
                                         check=False)
            found[counter] = None
            with contextlib.suppress(ValueError, KeyError, TypeError):
                for item in json.loads(proc.stdout)["nftables"]:
                    if "counter" in item:
                        found[counter] = int(item["counter"]["packets"])
        return {"sent": found["sent"], "delivered": found["delivered"]}

    # ---- processes

    def _popen(self, key: str, node: str, what: str, args: list[str], log: Path,
               stdout: int | None = None) -> subprocess.Popen[bytes]:
        with open(log, "ab") as err:
            return self.lab.runtime.net_popen(key, [sys.executable, "-m", "bgplab.lab.probe_agent", *args], node=node,
                                              what=what, stdout=stdout, stderr=err)

    def start(self) -> None:
        if self.meta.exists():
            with contextlib.suppress(OSError, ValueError):
                if json.loads(self.meta.read_text()).get("state") == "running":
                    raise ProbeError(f"probe {self.spec.name} is already running in lab {self.lab.plan.name}")
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in (self.records, self.status, self.dir / "report.json"):
            old.unlink(missing_ok=True)
        self._seen = []
        self.port = self._choose_port()
        self.id = secrets.randbits(63)
        self.report = None
        self.lab.state.record("probe", name=self.spec.name, action="start", port=self.port, table=self.table,
                              namespaces=self.namespaces(),
                              time=round(time.monotonic(), 6))
        self._save("running")
        try:
            self._install()
            plan = self.lab.plan
            self._receiver = self._popen(
                self.target, plan.namespaces[self.target].node, f"probe {self.spec.name} receiver",
                ["receive", "--port", str(self.port), "--id", str(self.id), "--family", str(self.family),
                 "--out", str(self.records)], self.dir / "receiver.log", stdout=subprocess.PIPE)
            self._pids["receiver"] = (self._receiver.pid, system.start_time(self._receiver.pid))
            self._save("running")
            self._wait_ready(self._receiver)
            self._sender = self._popen(
                self.source, plan.namespaces[self.source].node, f"probe {self.spec.name} sender",
                ["send", "--address", self.address, "--port", str(self.port), "--id", str(self.id),
                 "--rate", repr(self.spec.rate), "--size", str(self.spec.size), "--status", str(self.status)],
                self.dir / "sender.log")
            self._pids["sender"] = (self._sender.pid, system.start_time(self._sender.pid))
            self._save("running")
            deadline = time.monotonic() + 10
            while not self.status.exists():
                if self._sender.poll() is not None or time.monotonic() > deadline:
                    raise ProbeError(f"probe {self.spec.name}: the sender did not start; see {self.dir}/sender.log")
                time.sleep(0.02)
        except BaseException:
            self._halt(grace=0.0)
            self._remove()
            self._save("failed")
            raise

    def wait_flowing(self, timeout: float) -> bool:
        """Until the first packet has arrived (True), or `timeout` passed (False). Whoever breaks
        something right after starting a probe waits for this first: else the outage can begin
        before any packet arrived, and its loss window looks like the probe warming up."""
        deadline = time.monotonic() + timeout
        while not self._read():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10.0)
        line = proc.stdout.readline() if ready else b""
        proc.stdout.close()
        if line.strip() != b"ready":
            raise ProbeError(f"probe {self.spec.name}: the receiver did not start; see {self.dir}/receiver.log")

    def _signal(self, role: str, timeout: float) -> None:
        """SIGTERM one of our processes and wait for it (SIGKILL after `timeout`)."""
        proc = self._sender if role == "sender" else self._receiver
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            return
        pid, start = self._pids.get(role, (None, None))
        if pid is not None and _running(pid, start):
            system.kill_pids([pid], timeout)

    def _halt(self, grace: float) -> None:
        self._signal("sender", 5.0)
        time.sleep(grace)
        self._signal("receiver", 5.0)

    def _sender_status(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            data: dict[str, Any] = json.loads(self.status.read_text())
            return data
        return {}

    def _analyse(self, records: list[Record], sent: int, origin: float | None) -> ProbeReport:
        report = analyse(records, sent, self.interval, self.marks, name=self.spec.name, origin=origin)
        report.rate = self.spec.rate
        report.destination = self.address
        report.port = self.port
        report.send_errors = int(self._sender_status().get("errors", 0))
        return report

    def snapshot(self) -> ProbeReport:
        """What the receiver recorded so far. Packets sent within the last grace period (0.5 s, or
        twice the largest latency seen) may still be in flight and are left out, so a loss window
        still open now shows, and one that is merely in flight does not. The counters are the
        kernel's as read now: they include the packets after that cutoff, so compare them with
        the report's figures only after `stop`."""
        status = self._sender_status()
        records = self._read()
        origin = status.get("origin_ns")
        if origin is None:
            return self._analyse(records, 0, None)
        origin_s = origin / 1e9
        cutoff = time.monotonic() - self._grace(records)
        due = max(0, math.floor((cutoff - origin_s) / self.interval) + 1)
        report = self._analyse(records, min(due, int(status.get("sent", 0))), origin_s)
        report.counters = self.counters()
        return report

    def _read(self) -> list[Record]:
        """Every record so far; a running probe's file is read only from where the last read ended."""
        self._seen += read_records(self.records, len(self._seen) * RECORD.size)
        return self._seen

    def _grace(self, records: Sequence[Record]) -> float:
        worst = max((r.received - r.sent for r in records[-1000:]), default=0.0)
        return min(MAX_GRACE, max(MIN_GRACE, 2 * worst))

    def stop(self) -> ProbeReport:
        """Stop the sender, give what is in flight its grace period (twice the largest one-way
        latency of the last 1,000 packets, at least 0.5 s, at most 5 s: one-way because that is
        what the probe measures, doubled as the stand-in for an RTT), stop the receiver, read the
        counters, remove the rules; the report is also written to the probe's report.json."""
        self._signal("sender", 5.0)
        time.sleep(self._grace(self._read()))
        self._signal("receiver", 5.0)
        counters = self.counters()
        self._remove()
        status = self._sender_status()
        origin = status.get("origin_ns")
        report = self._analyse(self._read(), int(status.get("sent", 0)),
                               None if origin is None else origin / 1e9)
        report.counters = counters
        self.report = report
        (self.dir / "report.json").write_text(json.dumps(report.to_json(), indent=1))
        self._save("stopped")
        self.lab.state.record("probe", name=self.spec.name, action="stop", time=round(time.monotonic(), 6),
                              sent=report.sent, lost=report.lost)
        return report

    def __enter__(self) -> Probe:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.report is None:
            self.stop()


# ---- command line


def _report_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lab", help="the lab (default: the only one up)")
    parser.add_argument("--json", action="store_true")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bgplab.lab.probes", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command, text in (("run", "run a probe for --duration seconds and print its report"),
                          ("start", "start a probe and leave it running")):
        p = sub.add_parser(command, help=text)
        p.add_argument("name")
        p.add_argument("source")
        p.add_argument("destination")
        p.add_argument("--rate", type=float, default=100.0)
        p.add_argument("--port", type=int)
        p.add_argument("--size", type=int, default=64)
        p.add_argument("--hop", action="append", default=[], metavar="NAME=NAMESPACE",
                       help="a candidate hop (repeat); default every MSEE namespace and azure-internet")
        if command == "run":
            p.add_argument("--duration", type=float, default=10.0)
        _report_args(p)
    for command, text in (("show", "the report of a running probe so far"), ("stop", "stop a probe; its report")):
        p = sub.add_parser(command, help=text)
        p.add_argument("name")
        _report_args(p)
    args = parser.parse_args(argv)
    from bgplab.lab.lab import Lab, LabError

    try:
        lab = Lab.open(args.lab)
        if args.command in ("run", "start"):
            hops = dict(h.split("=", 1) for h in args.hop) if args.hop else None
            probe = Probe(lab, ProbeSpec(args.name, args.source, args.destination, args.rate, args.port, args.size,
                                         hops))
            probe.start()
            if args.command == "start":
                print(f"probe {args.name} running: {probe.address} port {probe.port}, marks "
                      + ", ".join(f"{k}={v}" for k, v in probe.marks.items()))
                return 0
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(args.duration)
            report = probe.stop()
        else:
            probe = Probe.attach(lab, args.name)
            report = probe.snapshot() if args.command == "show" else probe.stop()
    except (LabError, ProbeError, system.CommandError) as error:
        print(f"bgplab: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_json(), indent=1) if args.json else report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
