"""Failover benchmark: a silent cut of the primary link, and how long Azure's traffic to on-premises is lost.

    sudo python -m bench.failover [--runs 20] [--profiles 300x3,100x3] [--labs ours,frr] [--json FILE]

Two labs of the same shape (a CE pair, two MSEEs, a VNet gateway, a VM and an on-premises host),
one after the other, for each BFD profile (interval x multiplier, on both ends of each CE-MSEE
session: the slower side sets the rate):

* `ours`: topologies/connect-to.yaml as shipped, with our MSEEs (`timers: {bfd: ...}` in each MSEE
  node's spec) and our gateway; the CEs' FRR gets the same timers (`bfd_timers` in their intent).
* `frr`: FRR routers in place of each MSEE (AS 12076, BFD toward the CEs, eBGP to the gateway) and
  of the gateway (AS 65515, `maximum-paths`), written by the bench into its temp dir as a topology
  of plain `kind: frr` nodes with config files. The CEs run the configs connect-to generates for
  them (the same `render_intent`, on the private peering only: an FRR node has one namespace, so
  there is no Microsoft peering in this lab).

Each lab comes up once per profile, in its own state directory (BGPLAB_STATE_DIR, mode 0755,
under /tmp) and under a unique name. Then, `--runs` times: every session Established and every
BFD session Up; a UDP probe azure-vm -> onprem at 1,000 packets/s (a loss window resolved to
1 ms), its packets marked by the MSEE (or FRR-MSEE) namespace they cross; once 200 packets in a
row came through the primary, a random 0.3-0.8 s (so the cut lands anywhere in the BFD transmit
schedule) and a silent cut of ce1:eth1 (the `cut` fault: every frame dropped both ways, carrier
up, so only BFD can tell); once 200 packets in a row came through the secondary, the probe stops
and its loss window is the run's figure; the cut is restored.

The figure is the probe's `duration` (lost packets x 1 ms, estimated at the midpoints of the
gap), checked against the kernel's own counts of the probe's packets (source output hook minus
destination input hook). The floor is multiplier x interval: BFD's detection time counted from
the last packet heard, which the cut precedes by up to one interval, so single runs can come in
under it. The target (issue) is the floor plus at most 100 ms, and no worse than the FRR lab.
Figures, not asserts; everything is torn down at the end, also on error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench.bringup import lab_pids
from bgplab.expressroute import control
from bgplab.lab.faults import Fault, Faults
from bgplab.lab.kinds.frr import render_intent
from bgplab.lab.kinds.ours import OurNode
from bgplab.lab.lab import Lab
from bgplab.lab.plan import LabPlan
from bgplab.lab.probes import RECORD, UNMARKED, Probe, ProbeReport, ProbeSpec, read_records
from bgplab.lab.state import STATE_ROOT_ENV, LabState
from bgplab.lab.topology import load_topology

ROOT = Path(__file__).resolve().parent.parent
CONNECT_TO = ROOT / "topologies" / "connect-to.yaml"
CUT = "ce1:eth1"
CE1_PRIVATE = "192.168.100.129"
"""ce1's end of the primary link's private peering, in both labs (connect-to's generated addressing)."""
VNET_TO_ONPREM = "10.1.0.0/16"
RATE = 1000.0
SLACK_MS = 100.0
STEADY = 200
"""Packets in a row on one path that count as traffic flowing there."""
WAIT_READY = 60.0
WAIT_RESTORED = 150.0
"""After a restore: our MSEE's idle hold doubles with each flap, up to the profile's idle_hold_max
(fast: 2 s; it was 60 s before fa12a40, and the primary then took a minute to come back after a
dozen cuts), and resets only after 60 s Established; generous, so a slow return is a figure, not
a failed run."""
WAIT_SECONDARY = 20.0
DISTURBED_CORES = 0.1
"""CPU outside the lab and the bench (machine-wide busy time minus theirs) above which a run is flagged."""
LABS = ("ours", "frr")
TIMED_LOG = "timed.log"
TITLES = {"ours": "ours (bgplab MSEEs + gateway)", "frr": "FRR-for-MSEE (FRR MSEEs + gateway)"}


@dataclass(frozen=True, slots=True)
class BfdProfile:
    interval_ms: int
    multiplier: int

    @classmethod
    def parse(cls, text: str) -> BfdProfile:
        try:
            interval, multiplier = (int(x) for x in text.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected INTERVALxMULTIPLIER, e.g. 300x3") from None
        if not 10 <= interval <= 60000 or not 2 <= multiplier <= 255:
            raise argparse.ArgumentTypeError(f"{text!r}: interval 10..60000 ms, multiplier 2..255")
        return cls(interval, multiplier)

    @property
    def label(self) -> str:
        return f"{self.interval_ms}x{self.multiplier}"

    @property
    def floor_ms(self) -> float:
        return float(self.interval_ms * self.multiplier)

    @property
    def target_ms(self) -> float:
        return self.floor_ms + SLACK_MS


@dataclass
class Built:
    """A lab's plan and what the bench needs to know about it."""

    plan: LabPlan
    hops: dict[str, str]
    """Probe path marks: "primary"/"secondary" -> namespace key of the MSEE (or FRR-MSEE) on that side."""
    primary_msee: str
    gateway: str


# ---------------------------------------------------------------- the labs


def ours_lab(profile: BfdProfile, name: str, workdir: Path) -> Built:
    """connect-to as shipped, with the profile's BFD timers on both ends of every CE-MSEE session."""
    plan = load_topology(CONNECT_TO)
    nodes = {}
    for key, node in plan.nodes.items():
        spec = dict(node.spec)
        if node.kind == "msee":
            timers = dict(spec.get("timers") or {})
            timers["bfd"] = {"interval_ms": profile.interval_ms, "multiplier": profile.multiplier}
            spec["timers"] = timers
        elif node.kind == "frr" and "intent" in spec:
            spec["intent"] = {**spec["intent"], "bfd_timers": [profile.interval_ms, profile.interval_ms,
                                                               profile.multiplier]}
        nodes[key] = replace(node, spec=spec)
    msees = sorted(n for n, node in plan.nodes.items() if node.kind == "msee")
    gateway = next(n for n, node in plan.nodes.items() if node.kind == "gateway")
    hops = {side: f"{msee}.private" for side, msee in zip(("primary", "secondary"), msees, strict=True)}
    return Built(replace(plan, name=name, nodes=nodes), hops, msees[0], gateway)


FRR_TOPOLOGY = """\
# Written by bench/failover.py: connect-to's shape with FRR routers in place of our MSEEs and gateway.
#
#   onprem -- ce1 == primary (192.168.100.128/30) ==== frr-msee1 --+
#              | iBGP                                               +-- frr-gw -- azure-vm
#             ce2 == secondary (192.168.100.132/30) == frr-msee2 --+
name: {name}
profile: fast
nodes:
  ce1:
    kind: frr
    config: ce1.conf
    loopback: [10.1.0.1/32]
    interfaces: {{lan: [10.1.1.1/24], ibgp: [10.0.12.1/30], eth1: [192.168.100.129/30]}}
  ce2:
    kind: frr
    config: ce2.conf
    loopback: [10.1.0.2/32]
    interfaces: {{ibgp: [10.0.12.2/30], eth1: [192.168.100.133/30]}}
  frr-msee1:
    kind: frr
    config: frr-msee1.conf
    interfaces: {{eth1: [192.168.100.130/30], vnet1: [169.254.0.1/30]}}
  frr-msee2:
    kind: frr
    config: frr-msee2.conf
    interfaces: {{eth1: [192.168.100.134/30], vnet1: [169.254.0.5/30]}}
  frr-gw:
    kind: frr
    config: frr-gw.conf
    interfaces: {{m1: [169.254.0.2/30], m2: [169.254.0.6/30], vnet: [10.100.0.1/16]}}
  azure-vm:
    kind: host
    interfaces: {{eth0: [10.100.1.10/16]}}
    gateway: 10.100.0.1
  onprem:
    kind: host
    interfaces: {{eth1: [10.1.1.10/24]}}
    gateway: 10.1.1.1
links:
  - {{endpoints: [ce1:eth1, frr-msee1:eth1], rate: 1Gbps}}
  - {{endpoints: [ce2:eth1, frr-msee2:eth1], rate: 1Gbps}}
  - [frr-msee1:vnet1, frr-gw:m1]
  - [frr-msee2:vnet1, frr-gw:m2]
  - [frr-gw:vnet, azure-vm:eth0]
  - [ce1:lan, onprem:eth1]
  - [ce1:ibgp, ce2:ibgp]
"""


def _frr_head(name: str, router_id: str, asn: int) -> list[str]:
    return ["frr defaults traditional", f"hostname {name}", "service integrated-vtysh-config", "!",
            f"router bgp {asn}", f" bgp router-id {router_id}", " no bgp ebgp-requires-policy",
            " no bgp default ipv4-unicast", " bgp log-neighbor-changes", " no bgp network import-check"]


def _neighbor(address: str, asn: int, *extra: str) -> list[str]:
    """An eBGP neighbour on the fast profile's timers (as render_intent sets them for the CEs),
    advertising without delay (eBGP's MRAI would otherwise hold a withdrawal back)."""
    return [f" neighbor {address} remote-as {asn}", f" neighbor {address} timers 3 9",
            f" neighbor {address} timers connect 1", f" neighbor {address} advertisement-interval 0",
            *(f" neighbor {address} {e}" for e in extra)]


def frr_msee_config(name: str, customer: str, local: str, gateway: str, md5: str, profile: BfdProfile,
                    log: Path) -> str:
    # A log of its own with microsecond stamps: bgpd's "%ADJCHANGE ... Down" times the MSEE's detection.
    lines = ["frr defaults traditional", f"hostname {name}", "service integrated-vtysh-config",
             f"log file {log} informational", "log timestamp precision 6", "!",
             "bfd", " profile msee", f"  transmit-interval {profile.interval_ms}",
             f"  receive-interval {profile.interval_ms}", f"  detect-multiplier {profile.multiplier}", " exit",
             "exit", "!"]
    lines += _frr_head(name, local, 12076)[4:]
    lines += _neighbor(customer, 65010, f"password {md5}", "bfd profile msee")
    lines += _neighbor(gateway, 65515)
    lines += [" address-family ipv4 unicast", f"  neighbor {customer} activate", f"  neighbor {gateway} activate",
              " exit-address-family", "exit", "!"]
    return "\n".join(lines) + "\n"


def frr_gateway_config(name: str, msees: list[str], vnet: str) -> str:
    lines = _frr_head(name, "169.254.0.2", 65515)
    for msee in msees:
        lines += _neighbor(msee, 12076)
    lines += [" address-family ipv4 unicast", f"  network {vnet}", "  maximum-paths 4",
              *(f"  neighbor {m} activate" for m in msees), " exit-address-family", "exit", "!"]
    return "\n".join(lines) + "\n"


def frr_lab(profile: BfdProfile, name: str, workdir: Path) -> Built:
    """The FRR-for-MSEE lab, written into workdir: topology, the FRR MSEEs' and gateway's configs,
    and the CEs' configs as connect-to generates them (private peering and iBGP only)."""
    ours = load_topology(CONNECT_TO)
    assert ours.expressroute is not None
    private = ipaddress.ip_network(ours.expressroute["circuits"]["contoso-ams"]["peerings"]["private"]["ipv4"])
    md5 = str(ours.expressroute["circuits"]["contoso-ams"]["peerings"]["private"]["md5"])
    for ce in ("ce1", "ce2"):
        intent = dict(ours.nodes[ce].spec["intent"])
        intent["neighbors"] = [n for n in intent["neighbors"]
                               if n["role"] == "user" or ipaddress.ip_address(n["address"]) in private]
        intent["bfd_timers"] = [profile.interval_ms, profile.interval_ms, profile.multiplier]
        (workdir / f"{ce}.conf").write_text(render_intent(ce, intent, "fast"))
    for msee, ce, local, gateway in (("frr-msee1", CE1_PRIVATE, "192.168.100.130", "169.254.0.2"),
                                     ("frr-msee2", "192.168.100.133", "192.168.100.134", "169.254.0.6")):
        log = workdir / name / "nodes" / msee / TIMED_LOG  # the node's working directory, which FRR may write
        (workdir / f"{msee}.conf").write_text(frr_msee_config(msee, ce, local, gateway, md5, profile, log))
    (workdir / "frr-gw.conf").write_text(frr_gateway_config("frr-gw", ["169.254.0.1", "169.254.0.5"],
                                                            "10.100.0.0/16"))
    path = workdir / "frr-for-msee.yaml"
    path.write_text(FRR_TOPOLOGY.format(name=name))
    return Built(load_topology(path), {"primary": "frr-msee1", "secondary": "frr-msee2"}, "frr-msee1", "frr-gw")


BUILDERS: dict[str, Callable[[BfdProfile, str, Path], Built]] = {"ours": ours_lab, "frr": frr_lab}


# ---------------------------------------------------------------- measuring


class CpuMeter:
    """CPU used outside the lab and this bench while a run lasts (other people's work on the machine)."""

    def __init__(self, pids: set[int]) -> None:
        self.pids = pids
        self.tick = os.sysconf("SC_CLK_TCK")

    def _machine(self) -> float:
        fields_ = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields_[3] + fields_[4]  # idle + iowait
        return (sum(fields_[:8]) - idle) / self.tick

    def _lab(self) -> float:
        total = 0
        for pid in self.pids:
            with contextlib.suppress(OSError, IndexError, ValueError):
                parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(parts[11]) + int(parts[12])
        return total / self.tick

    def read(self) -> tuple[float, float, float, float]:
        t = os.times()
        return time.monotonic(), self._machine(), self._lab(), t.user + t.system + t.children_user + t.children_system

    def others(self, before: tuple[float, float, float, float]) -> float:
        """Cores' worth of CPU used by processes that are neither the lab's nor the bench's (or its children)."""
        after = self.read()
        wall = after[0] - before[0]
        other = (after[1] - before[1]) - (after[2] - before[2]) - (after[3] - before[3])
        return max(0.0, other / wall) if wall > 0 else 0.0


def sessions_ready(lab: Lab) -> str | None:
    """None once every session is Established and every BFD session Up; else what is still waited for."""
    waiting = []
    for row in lab.sessions():
        if row["state"] != "established":
            waiting.append(f"{row['node']}->{row['neighbor']} {row['state']}")
        elif row.get("bfd") not in (None, "up"):
            waiting.append(f"{row['node']}->{row['neighbor']} bfd {row['bfd']}")
    return ", ".join(waiting) or None


def wait_ready(lab: Lab, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (waiting := sessions_ready(lab)) is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready after {timeout:g} s: {waiting}")
        time.sleep(0.1)


class PathWatch:
    """Reads the probe's records as the receiver flushes them (every 100 ms) and tells which path the
    latest packets took; lighter than `Probe.snapshot`, which re-analyses everything and waits out
    a grace period."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.offset = 0
        self.path: str | None = None
        self.run = 0

    def poll(self) -> tuple[str | None, int]:
        records = read_records(self.probe.records, self.offset)
        self.offset += len(records) * RECORD.size
        for record in sorted(records, key=lambda r: r.seq):
            here = self.probe.marks.get(record.dscp, UNMARKED)
            self.run = self.run + 1 if here == self.path else 1
            self.path = here
        return self.path, self.run

    def wait(self, path: str, count: int, timeout: float) -> float:
        """Until `count` packets in a row came through `path`; the time it took."""
        started = time.monotonic()
        while True:
            got, run = self.poll()
            if got == path and run >= count:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"no {count} packets in a row through the {path} path within {timeout:g} s "
                                   f"(last: {run} through {got})")
            time.sleep(0.02)


def our_events(lab: Lab, node: str, since: float) -> list[dict[str, Any]]:
    """Our node's events (session, BFD, route) since a monotonic time, for the breakdown of a run."""
    handle = lab.node(node)
    if not isinstance(handle, OurNode):
        return []
    records = []
    with contextlib.suppress(TimeoutError, OSError, control.ControlError):
        for record in control.follow(handle.control, since=since, timeout=0.3):
            records.append(record)
    return records


def frr_bfd_peer(lab: Lab, node: str, peer: str) -> dict[str, Any]:
    """FRR's view of one BFD session: the intervals as negotiated, for the table's header."""
    handle = lab.node(node)
    vtysh = getattr(handle, "vtysh", None)
    if vtysh is None:
        return {}
    with contextlib.suppress(RuntimeError, ValueError):
        for item in json.loads(vtysh("show bfd peers json")):
            if item.get("peer") == peer:
                keep = ("status", "receive-interval", "transmit-interval", "detect-multiplier",
                        "remote-receive-interval", "remote-transmit-interval", "remote-detect-multiplier")
                return {k: item.get(k) for k in keep}
    return {}


def one_run(lab: Lab, built: Built, index: int, meter: CpuMeter, restored: float | None) -> dict[str, Any]:
    """One cut; `restored` is when the previous run's cut was restored (monotonic), if there was one."""
    result: dict[str, Any] = {"run": index}
    waited = time.monotonic()
    wait_ready(lab, WAIT_RESTORED)
    result["ready_wait_s"] = round(time.monotonic() - waited, 3)
    probe = Probe(lab, ProbeSpec("failover", "azure-vm", "onprem", rate=RATE, hops=built.hops))
    faults = Faults(lab)
    cut = Fault("cut", CUT)
    cpu = meter.read()
    before = time.monotonic()
    probe.start()
    try:
        watch = PathWatch(probe)
        result["primary_wait_s"] = round(watch.wait("primary", STEADY, WAIT_READY), 3)
        if restored is not None:
            result["restore_to_primary_s"] = round(time.monotonic() - restored, 3)
        time.sleep(random.uniform(0.3, 0.8))
        before = time.monotonic()
        applied = faults.fail(cut)
        result["cut_ms"] = round((applied.time - before) * 1000, 3)
        watch.wait("secondary", STEADY, WAIT_SECONDARY)
    finally:
        report = probe.stop() if probe.report is None else probe.report
        with contextlib.suppress(Exception):
            if any(f.key() == cut.key() for f in faults.active()):
                result["restored_at"] = faults.restore(cut).time
    result["other_cores"] = round(meter.others(cpu), 3)
    result.update(loss_figures(report, before))
    window = result["window"]
    if built.plan.nodes[built.primary_msee].kind == "msee":
        events = {n: our_events(lab, n, before - 0.05) for n in (built.primary_msee, built.gateway)}
        result["events"] = events
        down = next((e["time"] for e in events[built.primary_msee] if e.get("type") == "state"
                     and e.get("peer") == CE1_PRIVATE and e.get("previous") == "established"), None)
        withdrawn = next((e["time"] for e in events[built.gateway] if e.get("type") == "withdraw"
                          and e.get("prefix") == VNET_TO_ONPREM and down is not None and e["time"] >= down), None)
        if withdrawn is not None and down is not None:
            result["gateway_withdraw_ms"] = round((withdrawn - down) * 1000, 3)
    else:
        down = frr_session_down(lab, built.primary_msee, before)
    if down is not None and window is not None:
        result["msee_down_ms"] = round((down - window["start"]) * 1000, 3)
        result["after_down_ms"] = round((window["end"] - down) * 1000, 3)
    return result


_STAMP = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+) BGP: .*%ADJCHANGE: neighbor "
                    + re.escape(CE1_PRIVATE) + r"\(.*\) in vrf \S+ Down")


def frr_session_down(lab: Lab, node: str, since: float) -> float | None:
    """When the FRR MSEE's bgpd dropped ce1 (on BFD Down), on the monotonic clock, from its
    microsecond-stamped log; None if not logged."""
    offset = time.time() - time.monotonic()
    path = lab.state.dir / "nodes" / node / TIMED_LOG
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            m = _STAMP.match(line)
            if m:
                at = datetime.strptime(m[1], "%Y/%m/%d %H:%M:%S.%f").timestamp() - offset
                if at >= since:
                    return at
    return None


def loss_figures(report: ProbeReport, cut: float) -> dict[str, Any]:
    after = [w for w in report.windows if w.end >= cut - 0.05]
    main = max(after, key=lambda w: w.count, default=None)
    counter_lost = report.counter_lost
    return {
        "loss_ms": None if main is None else round(main.duration * 1000, 3),
        "window": None if main is None else main.to_json(),
        "window_start_after_cut_ms": None if main is None else round((main.start - cut) * 1000, 3),
        "windows_after_cut": len(after),
        "windows_before_cut": len(report.windows) - len(after),
        "lost_ms_after_cut": round(sum(w.duration for w in after) * 1000, 3),
        "sent": report.sent, "probe_lost": report.lost, "counter_lost": counter_lost,
        "counter_disagreement": None if counter_lost is None else abs(counter_lost - report.lost),
        "send_errors": report.send_errors, "reordered": report.reordered, "duplicates": report.duplicates,
        "per_path": report.per_path,
    }


# ---------------------------------------------------------------- one lab, one profile


@dataclass
class Series:
    lab: str
    profile: BfdProfile
    runs: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    setup: dict[str, Any] = field(default_factory=dict)

    def samples(self) -> list[float]:
        return sorted(r["loss_ms"] for r in self.runs if r.get("loss_ms") is not None)

    def summary(self) -> dict[str, Any]:
        s = self.samples()
        if not s:
            return {"n": 0}
        p90 = s[min(len(s) - 1, round(0.9 * (len(s) - 1)))]
        disagreements = [r["counter_disagreement"] for r in self.runs if r.get("counter_disagreement") is not None]
        return {"n": len(s), "median": statistics.median(s), "p90": p90, "max": s[-1], "min": s[0],
                "within_target": sum(x <= self.profile.target_ms for x in s),
                "counter_disagreement_max": max(disagreements, default=None),
                "disturbed": sum(r.get("other_cores", 0) > DISTURBED_CORES for r in self.runs),
                "other_cores_max": max((r.get("other_cores", 0) for r in self.runs), default=0.0),
                "extra_windows": sum(r["windows_after_cut"] > 1 for r in self.runs),
                "sender_late_ms_max": max((r["loss_ms"] - r["window"]["count"] * 1000 / RATE for r in self.runs
                                           if r.get("window")), default=0.0),
                "restored_s": [r["restore_to_primary_s"] for r in self.runs if "restore_to_primary_s" in r],
                **{f"{key}_median": statistics.median(values) if values else None
                   for key in ("msee_down_ms", "after_down_ms", "gateway_withdraw_ms")
                   for values in [[r[key] for r in self.runs if r.get(key) is not None]]}}


def run_series(series: Series, runs: int, tag: str) -> None:
    """Fill `series` in place, so that what was measured survives a Ctrl-C."""
    lab_kind, profile = series.lab, series.profile
    root = Path(tempfile.mkdtemp(prefix="bgplab-failover-"))
    root.chmod(0o755)
    previous_root = os.environ.get(STATE_ROOT_ENV)
    os.environ[STATE_ROOT_ENV] = str(root)  # for anything that looks the state root up itself
    name = f"fo{tag}{lab_kind[0]}{profile.interval_ms}"
    lab: Lab | None = None
    try:
        built = BUILDERS[lab_kind](profile, name, root)
        built.plan = replace(built.plan, name=name)
        lab = Lab(built.plan, LabState(name, root))
        started = time.monotonic()
        lab.up()
        waiting = lab.wait_established(WAIT_READY)
        if waiting:
            raise TimeoutError("sessions not established: " + ", ".join(f"{r['node']}->{r['neighbor']}"
                                                                        for r in waiting))
        wait_ready(lab, WAIT_READY)
        series.setup = {"name": name, "up_seconds": round(time.monotonic() - started, 2),
                        "profile": built.plan.profile, "sessions": len(lab.sessions()),
                        "ce1_bfd_to_primary": frr_bfd_peer(lab, "ce1", "192.168.100.130"),
                        "state_dir": str(root)}
        meter = CpuMeter(lab_pids(root, name))
        restored: float | None = None
        for i in range(runs):
            try:
                result = one_run(lab, built, i, meter, restored)
                restored = result.get("restored_at")
                series.runs.append(result)
                loss = result["loss_ms"]
                print(f"  {lab_kind:4} {profile.label:6} run {i + 1:2}/{runs}: loss window "
                      f"{'-' if loss is None else f'{loss:.0f} ms'}, counters "
                      f"{result['counter_lost']} lost vs probe {result['probe_lost']}, "
                      f"other CPU {result['other_cores']:.2f} cores", file=sys.stderr, flush=True)
            except (TimeoutError, RuntimeError, OSError) as exc:
                restored = None  # restored in one_run's finally, at a time not kept
                series.failures.append(f"run {i + 1}: {exc}")
                print(f"  {lab_kind:4} {profile.label:6} run {i + 1:2}/{runs}: FAILED: {exc}", file=sys.stderr,
                      flush=True)
    except (TimeoutError, RuntimeError, OSError, ValueError) as exc:
        series.failures.append(f"lab: {exc}")
        print(f"  {lab_kind} {profile.label}: lab FAILED: {exc}", file=sys.stderr, flush=True)
    finally:
        if lab is not None:
            lab.down()
        shutil.rmtree(root, ignore_errors=True)
        if previous_root is None:
            os.environ.pop(STATE_ROOT_ENV, None)
        else:
            os.environ[STATE_ROOT_ENV] = previous_root


# ---------------------------------------------------------------- report


def _fmt(value: float | None, width: int = 7) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}.0f}"


def table(profile: BfdProfile, series: list[Series], runs: int) -> str:
    head = (f"{'lab':36} {'runs':>6} {'median':>7} {'p90':>7} {'max':>7} {'floor':>6} {'target':>6}  "
            f"{'met?':18} {'ours/FRR':>18}")
    lines = [f"== BFD {profile.interval_ms} ms x {profile.multiplier}: loss window azure-vm -> onprem in ms; "
             f"floor {profile.floor_ms:.0f} ms (multiplier x interval), target {profile.target_ms:.0f} ms "
             f"(floor + {SLACK_MS:.0f} ms) ==", head, "-" * len(head)]
    by_lab = {s.lab: s.summary() for s in series}
    frr = by_lab.get("frr", {})
    for s in series:
        summary = by_lab[s.lab]
        if not summary["n"]:
            lines.append(f"{TITLES[s.lab]:36} {0:>3}/{runs:<2} no samples")
            continue
        met = "met" if summary["max"] <= profile.target_ms else "MISSED"
        verdict = f"{met} ({summary['within_target']}/{summary['n']})"
        ratio = ""
        if s.lab == "ours" and frr.get("n"):
            ratio = (f"med {summary['median'] / frr['median']:.2f} "
                     f"max {summary['max'] / frr['max']:.2f}")
        lines.append(f"{TITLES[s.lab]:36} {summary['n']:>3}/{runs:<2} {_fmt(summary['median'])} {_fmt(summary['p90'])} "
                     f"{_fmt(summary['max'])} {profile.floor_ms:6.0f} {profile.target_ms:6.0f}  {verdict:18} "
                     f"{ratio:>18}")
    lines.append("")
    for s in series:
        summary = by_lab[s.lab]
        notes = []
        if summary.get("n"):
            notes.append(f"min {summary['min']:.0f} ms")
            notes.append(f"kernel-counter agreement: max |counter lost - probe lost| = "
                         f"{summary['counter_disagreement_max']} packets")
            notes.append(f"window minus lost packets x {1000 / RATE:g} ms (sender late in the gap): max "
                         f"{summary['sender_late_ms_max']:.1f} ms")
            notes.append(f"runs with other CPU > {DISTURBED_CORES:g} core: {summary['disturbed']} "
                         f"(max {summary['other_cores_max']:.2f})")
            if summary["msee_down_ms_median"] is not None:
                part = (f"median: cut -> primary MSEE drops ce1 (BFD) {summary['msee_down_ms_median']:.0f} ms, "
                        f"then -> traffic on the secondary {summary['after_down_ms_median']:.0f} ms")
                if summary["gateway_withdraw_ms_median"] is not None:
                    part += f" (of which MSEE -> gateway withdrawal {summary['gateway_withdraw_ms_median']:.1f} ms)"
                notes.append(part)
            if summary["restored_s"]:
                back = summary["restored_s"]
                notes.append(f"restore -> sessions and BFD up and {STEADY} packets in a row on the primary: median "
                             f"{statistics.median(back):.1f} s, max {max(back):.1f} s")
            if summary["extra_windows"]:
                notes.append(f"{summary['extra_windows']} runs with more than one loss window after the cut")
        bfd = s.setup.get("ce1_bfd_to_primary") or {}
        if bfd:
            local = (f"tx {bfd.get('transmit-interval')}/rx {bfd.get('receive-interval')} "
                     f"x{bfd.get('detect-multiplier')}")
            remote = (f"tx {bfd.get('remote-transmit-interval')}/rx {bfd.get('remote-receive-interval')} "
                      f"x{bfd.get('remote-detect-multiplier')}")
            notes.append(f"BFD ce1 <-> primary as ce1's FRR has it: local {local}, remote {remote}")
        lines.append(f"  {s.lab}: " + "; ".join(notes))
        for failure in s.failures:
            lines.append(f"  {s.lab}: {failure}")
    ours = by_lab.get("ours", {})
    if ours.get("n") and frr.get("n"):
        worse = ours["median"] > frr["median"] or ours["max"] > frr["max"]
        lines.append(f"  goal: ours within floor + {SLACK_MS:.0f} ms: "
                     f"{'met' if ours['max'] <= profile.target_ms else 'MISSED'} (max {ours['max']:.0f} ms, "
                     f"{ours['max'] - profile.target_ms:+.0f} ms against the target); no worse than FRR-for-MSEE: "
                     f"{'MISSED' if worse else 'met'} (median {ours['median'] - frr['median']:+.0f} ms, "
                     f"max {ours['max'] - frr['max']:+.0f} ms)")
    return "\n".join(lines)


def frr_version() -> str:
    out = subprocess.run(["/usr/lib/frr/zebra", "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0].strip() if out else "FRR ?"


def machine() -> str:
    return (f"{platform.node()}, {os.cpu_count()} cores, Linux {platform.release()}, "
            f"CPython {platform.python_version()}, {frr_version()}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--profiles", default="300x3,100x3", help="BFD profiles, INTERVALxMULTIPLIER, comma-separated")
    parser.add_argument("--labs", default="ours,frr", help=f"which labs, in order: {', '.join(LABS)}")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    profiles = [BfdProfile.parse(p) for p in args.profiles.split(",") if p.strip()]
    labs = [x.strip() for x in args.labs.split(",") if x.strip()]
    unknown = [x for x in labs if x not in LABS]
    if unknown or not labs:
        parser.error(f"--labs {args.labs!r}: expected some of {', '.join(LABS)}")
    if os.geteuid() != 0:
        parser.error("needs root: the labs live in network namespaces")
    tag = f"{os.getpid() % 10000}"
    started = time.monotonic()
    results: list[Series] = []
    interrupted = False
    try:
        with sigterm_as_interrupt():
            for profile in profiles:
                for lab_kind in labs:
                    print(f"{TITLES[lab_kind]}, BFD {profile.label}: {args.runs} runs", file=sys.stderr, flush=True)
                    results.append(Series(lab_kind, profile))
                    run_series(results[-1], args.runs, tag)
    except KeyboardInterrupt:  # every lab is down already (run_series' finally): report what was measured
        interrupted = True
        print("interrupted: the figures below are the runs done so far", file=sys.stderr)
    profile_name = next((s.setup["profile"] for s in results if s.setup), "?")
    print(f"bench.failover: silent cut of {CUT}, probe azure-vm -> onprem at {RATE:g} packets/s, {args.runs} runs "
          f"per lab and BFD profile; labs on timer profile {profile_name!r}; {machine()}; "
          f"{time.monotonic() - started:.0f} s")
    for profile in profiles:
        print()
        print(table(profile, [s for s in results if s.profile == profile], args.runs))
    if args.json:
        args.json.write_text(json.dumps({
            "machine": machine(), "cut": CUT, "rate": RATE, "runs": args.runs, "slack_ms": SLACK_MS,
            "series": [{"lab": s.lab, "profile": s.profile.label, "floor_ms": s.profile.floor_ms,
                        "target_ms": s.profile.target_ms, "setup": s.setup, "summary": s.summary(),
                        "failures": s.failures, "runs": s.runs} for s in results],
        }, indent=1))
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
