"""Data-plane probes: `analyse` on made-up records (no root), the probe's plumbing on a plan, and
probes through the connect-to lab (brought up with the CLI): a steady stream on the primary MSEE,
then the primary link cut under a running probe, checked against the kernel's own counters."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bgplab.lab.lab import Lab
from bgplab.lab.probe_report import RECORD, UNMARKED, LossWindow, Record, analyse, read_records
from bgplab.lab.probes import Probe, ProbeError, ProbeSpec, default_hops, resolve_destination
from bgplab.lab.state import STATE_ROOT_ENV, LabState
from bgplab.lab.topology import load_topology
from tests.lab.labcli import TOPOLOGIES, Cli, running_lab, wait_for

ORIGIN, IV, DELAY = 1000.0, 0.01, 0.002
MSEE1, MSEE2 = "contoso-ams-msee1.private", "contoso-ams-msee2.private"
MARKS = {10: "primary", 11: "secondary"}


def stream(seqs: Iterable[int], dscp: Callable[[int], int] = lambda _: 10, jitter: float = 0.0) -> list[Record]:
    """Records as a receiver writes them: in arrival order, sent on schedule (plus jitter)."""
    out = []
    for seq in seqs:
        sent = ORIGIN + seq * IV + (jitter if seq % 2 else 0.0)
        out.append(Record(seq, sent, sent + DELAY, dscp(seq), 61))
    return out


def without(n: int, *gaps: range) -> list[int]:
    return [s for s in range(n) if not any(s in g for g in gaps)]


# ---- analyse: pure


def test_no_loss() -> None:
    report = analyse(stream(range(100)), 100, IV, MARKS, name="p")
    assert (report.sent, report.received, report.lost, report.duplicates, report.reordered) == (100, 100, 0, 0, 0)
    assert report.windows == []
    assert report.paths == [(ORIGIN, ORIGIN + 99 * IV, "primary", 100)]
    assert report.per_path == {"primary": 100} and report.hops == {"primary": [3]}
    assert report.rate == pytest.approx(100) and report.origin == pytest.approx(ORIGIN)
    assert report.latency_ms["min"] == report.latency_ms["max"] == pytest.approx(DELAY * 1000)


def test_one_window() -> None:
    report = analyse(stream(without(100, range(10, 20))), 100, IV, MARKS)
    assert report.lost == 10 and report.received == 90
    [w] = report.windows
    assert (w.first_lost, w.last_lost, w.count) == (10, 19, 10)
    assert w.start == pytest.approx(ORIGIN + 9 * IV) and w.end == pytest.approx(ORIGIN + 20 * IV)
    assert w.duration == pytest.approx(10 * IV)  # count x interval: the midpoint estimate
    assert w.silence == pytest.approx(11 * IV)  # what the receiving application waited


def test_two_windows() -> None:
    report = analyse(stream(without(200, range(10, 15), range(100, 150))), 200, IV, MARKS)
    assert report.lost == 55
    assert [(w.first_lost, w.last_lost, w.count) for w in report.windows] == [(10, 14, 5), (100, 149, 50)]
    assert [w.duration for w in report.windows] == pytest.approx([5 * IV, 50 * IV])


def test_loss_at_the_start_and_at_the_end() -> None:
    report = analyse(stream(without(100, range(0, 5), range(95, 100))), 100, IV, MARKS)
    first, last = report.windows
    assert (first.first_lost, first.last_lost, first.count) == (0, 4, 5)
    assert first.start == pytest.approx(ORIGIN - IV)  # the scheduled time of "packet -1"
    assert first.end == pytest.approx(ORIGIN + 5 * IV) and first.duration == pytest.approx(5 * IV)
    assert first.silence is None
    assert (last.first_lost, last.last_lost, last.count) == (95, 99, 5)
    assert last.start == pytest.approx(ORIGIN + 94 * IV)
    assert last.end == pytest.approx(ORIGIN + 100 * IV)  # when packet `sent` would have gone
    assert last.duration == pytest.approx(5 * IV) and last.silence is None
    # The origin is inferred from what arrived; given, it is used as is.
    assert report.origin == pytest.approx(ORIGIN)
    given = analyse(stream(range(5, 100)), 100, IV, MARKS, origin=ORIGIN - 1)
    assert given.windows[0].start == pytest.approx(ORIGIN - 1 - IV)


def test_nothing_arrived() -> None:
    report = analyse([], 50, IV, MARKS, origin=ORIGIN)
    assert report.lost == 50 and report.paths == [] and report.per_path == {} and report.latency_ms == {}
    [w] = report.windows
    assert (w.first_lost, w.last_lost, w.count) == (0, 49, 50) and w.duration == pytest.approx(50 * IV)
    assert analyse([], 0, IV, MARKS).windows == []


def test_reordering_is_counted_and_makes_no_window() -> None:
    order = [0, 1, 3, 2, 4, 5, 9, 6, 7, 8]
    records = stream(range(10))
    report = analyse([records[s] for s in order], 10, IV, MARKS)
    assert report.reordered == 4  # 2, then 6, 7, 8 arrived after 3 and after 9
    assert report.lost == 0 and report.windows == [] and report.duplicates == 0
    # A packet that arrives late into a gap fills it.
    late = analyse([records[s] for s in (0, 1, 3, 4, 2)], 5, IV, MARKS)
    assert late.windows == [] and late.reordered == 1


def test_duplicates_are_counted_once() -> None:
    records = stream(range(10))
    report = analyse([*records[:5], records[3], records[4], *records[5:]], 10, IV, MARKS)
    assert report.duplicates == 2 and report.received == 10 and report.lost == 0 and report.reordered == 0
    assert report.per_path == {"primary": 10}


def test_path_runs_and_per_path_counts() -> None:
    def mark(seq: int) -> int:
        return 10 if seq < 50 or seq >= 90 else 11

    report = analyse(stream(without(100, range(50, 60)), mark), 100, IV, MARKS)
    assert report.paths == [
        (ORIGIN, ORIGIN + 49 * IV, "primary", 50),
        (ORIGIN + 60 * IV, ORIGIN + 89 * IV, "secondary", 30),
        (ORIGIN + 90 * IV, ORIGIN + 99 * IV, "primary", 10),
    ]
    assert report.per_path == {"primary": 60, "secondary": 30}
    assert report.path_at(ORIGIN + 70 * IV) == "secondary" and report.path_at(ORIGIN + 55 * IV) is None


def test_unknown_marks_are_unmarked() -> None:
    report = analyse(stream(range(6), lambda s: (0, 33, 10)[s % 3]), 6, IV, MARKS)
    assert report.per_path == {UNMARKED: 4, "primary": 2}
    assert [p[2] for p in report.paths] == [UNMARKED, "primary", UNMARKED, "primary"]


def test_records_beyond_sent_are_ignored_and_jitter_stays_within_an_interval() -> None:
    records = stream(without(120, range(30, 60)), jitter=0.003)
    report = analyse(records, 100, IV, MARKS)  # a snapshot cut at 100: 100..119 still "in flight"
    assert report.sent == 100 and report.received == 70 and report.lost == 30
    [w] = report.windows
    assert abs(w.duration - w.count * IV) <= IV


def test_report_json_and_summary() -> None:
    report = analyse(stream(without(20, range(5, 8))), 20, IV, MARKS, name="p")
    report.counters = {"sent": 20, "delivered": 17}
    data = json.loads(json.dumps(report.to_json()))
    assert data["lost"] == 3 and data["counter_lost"] == 3 and data["windows"][0]["count"] == 3
    assert data["paths"][0]["path"] == "primary"
    assert "3 lost" in report.summary() and "loss window: seq 5-7" in report.summary()
    assert isinstance(report.windows[0], LossWindow)


def test_read_records_leaves_a_torn_record(tmp_path: Path) -> None:
    path = tmp_path / "records.bin"
    path.write_bytes(RECORD.pack(0, 1_000_000_000, 1_002_000_000, 10, 61) + RECORD.pack(1, 2, 3, 11, 60)[:20])
    assert read_records(path) == [Record(0, 1.0, 1.002, 10, 61)]
    assert read_records(tmp_path / "absent") == []


# ---- the probe's plumbing, on a plan (no root)


@pytest.fixture
def plan_lab(tmp_path: Path) -> Lab:
    plan = load_topology(TOPOLOGIES / "connect-to.yaml")
    return Lab(plan, LabState(plan.name, tmp_path))


def test_destinations_hops_and_rules(plan_lab: Lab) -> None:
    plan = plan_lab.plan
    assert resolve_destination(plan, "onprem") == ("onprem", "10.1.1.10")
    assert resolve_destination(plan, "ce1") == ("ce1", "10.1.1.1")  # first non-loopback IPv4
    assert resolve_destination(plan, "10.100.1.10") == ("azure-vm", "10.100.1.10")
    assert resolve_destination(plan, "ce1", "10.1.0.1") == ("ce1", "10.1.0.1")
    with pytest.raises(ProbeError, match="no namespace"):
        resolve_destination(plan, "10.9.9.9")
    with pytest.raises(ProbeError, match="neither a node"):
        resolve_destination(plan, "nowhere")
    assert list(default_hops(plan)) == ["contoso-ams-msee1.private", "contoso-ams-msee1.microsoft",
                                        "contoso-ams-msee2.private", "contoso-ams-msee2.microsoft", "azure-internet"]
    probe = Probe(plan_lab, ProbeSpec("p-1", "azure-vm", "onprem", rate=200, port=47123,
                                      hops={"primary MSEE": MSEE1, "secondary MSEE": MSEE2, "edge": "ce1"}))
    assert probe.marks == {10: "primary MSEE", 11: "secondary MSEE", 12: "edge"}
    assert probe.namespaces() == ["azure-vm", "onprem", MSEE1, MSEE2, "ce1"]
    probe.port = 47123
    assert 'udp dport 47123 ip daddr 10.1.1.10 counter name "sent"' in probe.ruleset("azure-vm")
    assert "hook forward" not in probe.ruleset("azure-vm")
    assert 'counter name "delivered"' in probe.ruleset("onprem")
    assert "udp dport 47123 ip daddr 10.1.1.10 ip dscp set 11" in probe.ruleset(MSEE2)
    assert probe.ruleset(MSEE1).startswith("table inet bgplab_probe_p_1 {")
    for bad, words in ((ProbeSpec("p", "azure-vm", "onprem", rate=5000), "rate"),
                       (ProbeSpec("P", "azure-vm", "onprem"), "probe name"),
                       (ProbeSpec("p", "nobody", "onprem"), "no such node"),
                       (ProbeSpec("p", "azure-vm", "onprem", hops={"a": MSEE1, "b": "contoso-ams-msee1"}), "both")):
        with pytest.raises(ProbeError, match=words):
            Probe(plan_lab, bad)


# ---- in the connect-to lab


@pytest.fixture(scope="module")
def connect_to(runtime: str) -> Iterator[tuple[Cli, str]]:
    with running_lab("connect-to.yaml", "pb", runtime) as (cli, name, up):
        assert up["established"]

        def primary() -> bool:
            rows = [r for r in cli.json("effective-routes", "hub", "--lab", name)
                    if r["addressPrefix"] == ["10.1.0.0/16"] and r["state"] == "Active"]
            return [r["nextHopIpAddress"] for r in rows] == [["169.254.0.1"]]

        wait_for("on-premises via the primary MSEE", primary)
        yield cli, name


@pytest.fixture
def lab(connect_to: tuple[Cli, str], monkeypatch: pytest.MonkeyPatch) -> Lab:
    cli, name = connect_to
    monkeypatch.setenv(STATE_ROOT_ENV, str(cli.state_dir))
    return Lab.open(name)


def show(report: Any) -> None:
    print("\n" + report.summary())
    print(json.dumps({k: report.to_json()[k] for k in ("counters", "counter_lost", "latency_ms", "hops")}))


@pytest.mark.lab
@pytest.mark.timeout(300)
def test_a_steady_stream_rides_the_primary_msee(lab: Lab) -> None:
    probe = Probe(lab, ProbeSpec("steady", "azure-vm", "onprem", rate=200))
    probe.start()
    try:
        time.sleep(1.0)
        running = probe.snapshot()
        assert running.received >= 50 and running.lost == 0  # what was sent up to half a second ago
        time.sleep(2.0)
    finally:
        report = probe.stop()
    show(report)
    assert 590 <= report.sent <= 650  # 3 s at 200/s, give or take the start and the stop
    assert report.lost == 0 and report.windows == [] and report.duplicates == 0
    assert report.per_path == {MSEE1: report.sent}  # ce2 prepends: Azure prefers the primary
    assert report.hops == {MSEE1: [3]}  # the gateway, the MSEE, ce1
    assert report.counters == {"sent": report.sent, "delivered": report.sent}
    assert json.loads((probe.dir / "report.json").read_text())["received"] == report.sent
    assert [e["action"] for e in lab.state.entries("probe") if e["name"] == "steady"] == ["start", "stop"]
    for key in probe.namespaces():  # its rules are gone
        listed = lab.runtime.net_exec(key, ["nft", "list", "tables"]).stdout
        assert probe.table not in listed


@pytest.mark.lab
@pytest.mark.timeout(300)
def test_cutting_the_primary_link_moves_the_stream_to_the_secondary_msee(lab: Lab) -> None:
    probe = Probe(lab, ProbeSpec("failover", "azure-vm", "onprem", rate=200))
    probe.start()
    cut_at = done_at = 0.0
    try:
        time.sleep(1.5)
        cut_at = time.monotonic()
        lab.runtime.set_physical("ce1:eth1", False)
        done_at = time.monotonic()
        wait_for("a second of packets through the secondary MSEE",
                 lambda: probe.snapshot().per_path.get(MSEE2, 0) >= 200, timeout=20)
    finally:
        report = probe.stop()
        lab.runtime.set_physical("ce1:eth1", True)
    show(report)
    assert report.origin is not None
    print(f"link cut at +{cut_at - report.origin:.3f}s (took {(done_at - cut_at) * 1000:.0f} ms)")
    [window] = report.windows
    assert window.start <= done_at and window.end >= cut_at  # the gap is the cut's
    assert [p[2] for p in report.paths] == [MSEE1, MSEE2]
    assert report.paths[0][1] <= window.start and report.paths[1][0] >= window.end
    assert 0 < window.duration < 10
    # The kernel's counters agree with the probe, packet for packet and within one interval in time.
    assert report.counters["sent"] == report.sent
    assert report.counter_lost == report.lost == window.count
    assert abs(window.duration - report.counter_lost * report.interval) <= report.interval
    print(f"loss window {window.duration * 1000:.1f} ms ({window.count} packets); counters: "
          f"{report.counters['sent']} sent - {report.counters['delivered']} delivered = {report.counter_lost} lost "
          f"= {report.counter_lost * report.interval * 1000:.1f} ms")


@pytest.mark.lab
@pytest.mark.timeout(300)
def test_forced_tunnelling_shows_in_the_packets(monkeypatch: pytest.MonkeyPatch) -> None:
    with running_lab("forced-tunnel.yaml", "pbf") as (cli, name, up):
        assert up["established"]
        monkeypatch.setenv(STATE_ROOT_ENV, str(cli.state_dir))
        lab = Lab.open(name)
        probe = Probe(lab, ProbeSpec("tunnel", "azure-vm", "internet", rate=200))  # 203.0.113.2, its first
        assert probe.address == "203.0.113.2"

        def tunnelled() -> bool:  # 0/0 from both MSEEs: ce2 does not prepend here, so Azure runs ECMP over both
            return sorted(hop for r in cli.json("effective-routes", "hub", "--lab", name)
                          if r["addressPrefix"] == ["0.0.0.0/0"] and r["state"] == "Active"
                          and r["nextHopType"] == "VirtualNetworkGateway"
                          for hop in r["nextHopIpAddress"]) == ["169.254.0.1", "169.254.0.5"]

        wait_for("0/0 from on-premises at the VNet, through both MSEEs", tunnelled)
        probe.start()
        try:
            assert probe.wait_flowing(10)
            time.sleep(1.0)
            before = probe.snapshot()  # up to half a second ago (what may be in flight is left out)
            # One flow takes one of the two equal paths (the kernel's flow hash), and stays on it.
            [(via, _)] = before.per_path.items()
            assert via in (MSEE1, MSEE2) and before.lost == 0  # out through on-premises
            cli.run("exec", "--lab", name, "ce1", "--", "vtysh", "-c", "configure terminal", "-c", "router bgp 65010",
                    "-c", "address-family ipv4 unicast", "-c", "no network 0.0.0.0/0")
            wait_for("a second of packets through Azure's own edge",
                     lambda: probe.snapshot().per_path.get("azure-internet", 0) >= 200, timeout=20)
        finally:
            report = probe.stop()
        show(report)
        assert report.paths[0][2] == via and report.paths[-1][2] == "azure-internet"
        # gateway, MSEE1, ce1 | gateway, MSEE2, ce2, ce1 (iBGP) | gateway, Azure's edge
        assert report.hops[via] == [3 if via == MSEE1 else 4] and report.hops["azure-internet"] == [2]
        assert report.counter_lost == report.lost and report.counters["sent"] == report.sent
