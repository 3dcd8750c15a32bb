"""What impairments and the circuit's bandwidth do to packets, measured in a 50 Mbps lab
(tests/lab/topologies/shaped.yaml, brought up once with the CLI).

Partial loss and rate limits (`bgplab fail impair`) are measured with probes through ce1's
on-premises link, and checked against the kernel's counters; the circuit's own shaping is
measured with a flood, because a probe sends at most 1,000 packets of at most 1,400 bytes a
second (about 11.5 Mbps on the wire), which cannot fill even the smallest ExpressRoute
bandwidth (50 Mbps). The bounds are statistical (loss) or a tolerance around the configured
rate; nothing here asserts how fast our own code is.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bgplab.lab import system
from bgplab.lab.lab import Lab
from bgplab.lab.probe_report import ProbeReport
from bgplab.lab.probes import Probe, ProbeSpec
from bgplab.lab.state import STATE_ROOT_ENV
from tests.lab.labcli import Cli, running_lab, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

SHAPED = "shaped.yaml"
CIRCUIT_MBPS = 50.0
"""The bandwidth written in shaped.yaml: what the circuit's links must carry at most."""
VM, ONPREM = "10.130.1.10", "10.3.1.10"
FRAME_OVERHEAD = 8 + 20 + 14
"""UDP, IPv4 and Ethernet headers: what tbf and the interface counters add to a UDP payload."""
BLAST_SECONDS = 2.0
BLAST_PAYLOAD = 1400

# A flood, run in a node's namespace through `bgplab exec`: UDP to a port nobody listens on, as
# fast as Python sends, for a bounded time; it prints what it sent and when (monotonic clock).
BLASTER = """
import json, socket, sys, time
address, port, size, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = bytes(size)
sent = errors = 0
start = time.monotonic()
now = start
while now < start + seconds:
    for _ in range(64):
        try:
            sock.sendto(payload, (address, port))
            sent += 1
        except OSError:
            errors += 1
    now = time.monotonic()
print(json.dumps({"sent": sent, "errors": errors, "seconds": now - start}))
"""

LabRun = tuple[Cli, str]


@pytest.fixture(scope="module")
def shaped(runtime: str) -> Iterator[LabRun]:
    with running_lab(Path(__file__).resolve().parent / "topologies" / SHAPED, "im", runtime) as (cli, name, up):
        assert up["established"]
        wait_for("on-premises via the primary MSEE", lambda: _onprem_via(cli, name) == ["169.254.0.1"])
        yield cli, name


@pytest.fixture
def lab(shaped: LabRun, monkeypatch: pytest.MonkeyPatch) -> Lab:
    cli, name = shaped
    monkeypatch.setenv(STATE_ROOT_ENV, str(cli.state_dir))
    return Lab.open(name)


def _onprem_via(cli: Cli, name: str) -> list[str]:
    rows = [r for r in cli.json("effective-routes", "hub", "--lab", name)
            if r["addressPrefix"] == ["10.3.0.0/16"] and r["state"] == "Active"]
    return sorted(hop for r in rows for hop in r["nextHopIpAddress"])


def _run_probe(lab: Lab, name: str, rate: float, seconds: float, size: int = 64) -> ProbeReport:
    """A probe from the VM to on-premises (through ce1's lan link), for `seconds` of sending."""
    probe = Probe(lab, ProbeSpec(name, "azure-vm", "onprem", rate=rate, size=size))
    probe.start()
    try:
        assert probe.wait_flowing(10), "no packet arrived"
        time.sleep(seconds)
    finally:
        report = probe.stop()
    print("\n" + report.summary())
    return report


def _impair(cli: Cli, name: str, target: str, *options: str) -> None:
    cli.run("fail", "impair", target, *options, "--lab", name)


def _restore(cli: Cli, name: str, target: str) -> None:
    cli.run("restore", "impair", target, "--lab", name)
    assert cli.json("status", "--lab", name)["faults"] == []


def _qdisc(cli: Cli, name: str, node: str, dev: str) -> dict[str, Any]:
    """The root qdisc of an interface, with its counters, as the kernel reports it."""
    out = cli.run("exec", "--lab", name, node, "--", "tc", "-s", "-j", "qdisc", "show", "dev", dev).stdout
    [root] = [q for q in json.loads(out) if q.get("root")]
    return dict(root)


def _rx_bytes(cli: Cli, name: str, node: str, dev: str) -> int:
    path = f"/sys/class/net/{dev}/statistics/rx_bytes"
    return int(cli.run("exec", "--lab", name, node, "--", "cat", path).stdout)


def _wire_mbps(packets: int, payload: int, seconds: float) -> float:
    return packets * (payload + FRAME_OVERHEAD) * 8 / seconds / 1e6


def test_partial_loss_is_what_was_asked_and_goes_with_restore(shaped: LabRun, lab: Lab) -> None:
    cli, name = shaped
    percent = 30.0
    _impair(cli, name, "ce1:lan", "--loss", str(percent))
    try:
        lossy = _run_probe(lab, "lossy", rate=300, seconds=4.0)
    finally:
        _restore(cli, name, "ce1:lan")
    p = percent / 100
    assert lossy.sent >= 1000, lossy.summary()
    # The loss is on the link, both ends' egress, so it takes ARP with it: ce1 resolves on-premises'
    # address under that same loss, at the start (there was no traffic to it before) and whenever
    # all three probes of a stale entry are lost (0.51^3). Until it has, traffic is held: one
    # burst of a second or more (seen: 354 and 922 packets at the start) that binomial loss does
    # not make (15 in a row at 30%: about 1e-8 a packet). Those bursts are counted apart, at most
    # two in this run, and what is left must still be most of the run.
    bursts = [w for w in lossy.windows if w.count >= 15]
    assert len(bursts) <= 2, lossy.summary()
    n = lossy.sent - sum(w.count for w in bursts)
    lost = lossy.lost - sum(w.count for w in bursts)
    assert n >= lossy.sent / 2, lossy.summary()
    sigma = math.sqrt(n * p * (1 - p))
    # Binomial: each packet is dropped with probability p, once (at ce1's egress toward on-premises).
    assert abs(lost - n * p) <= 5 * sigma, (
        f"{lost} of {n} lost (apart from {bursts}); expected {n * p:.0f} +- {5 * sigma:.0f}")
    # The kernel's own count of what left the VM and what on-premises took in says the same.
    assert lossy.counters["sent"] == lossy.sent and lossy.counter_lost == lossy.lost
    assert lossy.duplicates == 0
    clean = _run_probe(lab, "after-loss", rate=300, seconds=2.0)
    assert clean.sent >= 500 and clean.lost == 0 and clean.counter_lost == 0, clean.summary()


def test_rate_limit_caps_throughput_and_goes_with_restore(shaped: LabRun, lab: Lab) -> None:
    cli, name = shaped
    limit, size, rate = 4.0, 1400, 1000.0  # the probe offers about 11.5 Mbps on the wire
    _impair(cli, name, "ce1:lan", "--rate", str(limit))
    try:
        limited = _run_probe(lab, "limited", rate=rate, seconds=4.0, size=size)
        shaper = _qdisc(cli, name, "ce1", "lan")
    finally:
        _restore(cli, name, "ce1:lan")
    seconds = limited.sent / rate  # the sender's schedule: packet n leaves at origin + n / rate
    offered = _wire_mbps(limited.counters["sent"] or 0, size, seconds)
    carried = _wire_mbps(limited.counters["delivered"] or 0, size, seconds)
    print(f"offered {offered:.2f} Mbps, carried {carried:.2f} Mbps under a {limit:g} Mbps limit; {shaper}")
    assert offered >= 2 * limit, "the probe did not offer more than the limit: nothing to measure"
    assert 0.85 * limit <= carried <= 1.1 * limit
    assert shaper["kind"] == "tbf" and shaper["drops"] > 0  # the kernel's shaper dropped the excess
    # Restored: the link is unshaped again (no circuit here), and carries all of it.
    assert _qdisc(cli, name, "ce1", "lan")["kind"] != "tbf"
    clean = _run_probe(lab, "after-limit", rate=rate, seconds=2.0, size=size)
    assert clean.sent >= 1500 and clean.lost == 0 and clean.counter_lost == 0, clean.summary()


def _flood(cli: Cli, name: str, source: str, address: str, receiver: str, dev: str) -> tuple[float, float]:
    """(offered, carried) Mbps of a UDP flood from `source` to `address`: offered from what the
    blaster sent, carried from the receiving interface's byte counter, both over the blaster's
    own sending time."""
    before = _rx_bytes(cli, name, receiver, dev)
    # The blaster is the test's tool, not the node's: the host's Python in the node's network
    # namespace (the name both runtimes give it), as the lab runs its own probe agent.
    out = system.run(["ip", "netns", "exec", f"bl-{name}-{source}", sys.executable, "-c", BLASTER, address, "9",
                      str(BLAST_PAYLOAD), str(BLAST_SECONDS)]).stdout
    after = _rx_bytes(cli, name, receiver, dev)
    sent = json.loads(out)
    offered = _wire_mbps(sent["sent"], BLAST_PAYLOAD, sent["seconds"])
    carried = (after - before) * 8 / sent["seconds"] / 1e6
    print(f"flood {source} -> {address}: offered {offered:.1f} Mbps, carried {carried:.1f} Mbps")
    return offered, carried


def _near(carried: float, limit: float) -> bool:
    """At most the limit (plus tbf's burst and its 50 ms queue draining after the flood), and
    close to it: the flood offers far more."""
    return 0.9 * limit <= carried <= 1.1 * limit


def test_the_circuit_carries_its_bandwidth_and_no_more(shaped: LabRun) -> None:
    cli, name = shaped
    # On-premises to the VM: shaped at ce1's end of the primary link; the VM to on-premises: at
    # the MSEE's end.
    for source, address, receiver, dev, shaper_node, shaper_dev in (
        ("onprem", VM, "azure-vm", "eth0", "ce1", "eth1.100"),
        ("azure-vm", ONPREM, "onprem", "eth1", "tailspin-ams-msee1", "eth1.100"),
    ):
        dropped = _qdisc(cli, name, shaper_node, shaper_dev)["drops"]
        offered, carried = _flood(cli, name, source, address, receiver, dev)
        assert offered >= 2 * CIRCUIT_MBPS, f"the flood offered only {offered:.1f} Mbps: it cannot show the limit"
        assert _near(carried, CIRCUIT_MBPS), f"{carried:.1f} Mbps through a {CIRCUIT_MBPS:g} Mbps circuit"
        assert _qdisc(cli, name, shaper_node, shaper_dev)["drops"] > dropped
    # A rate impairment on the circuit link replaces its shaping; restore puts the circuit's back
    # (not an unshaped link).
    _impair(cli, name, "ce1:eth1", "--rate", "20")
    try:
        _, carried = _flood(cli, name, "onprem", VM, "azure-vm", "eth0")
        assert _near(carried, 20.0), f"{carried:.1f} Mbps under a 20 Mbps impairment"
    finally:
        _restore(cli, name, "ce1:eth1")
    _, carried = _flood(cli, name, "onprem", VM, "azure-vm", "eth0")
    assert _near(carried, CIRCUIT_MBPS), f"{carried:.1f} Mbps after restore, on a {CIRCUIT_MBPS:g} Mbps circuit"
    assert _onprem_via(cli, name) == ["169.254.0.1"]  # measured on the primary link throughout
