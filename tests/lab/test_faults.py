"""Faults on the running connect-to lab, through `bgplab fail` / `bgplab restore`: each one shows
its effect where an operator would look (sessions, the gateway's effective routes, packets) and
heals when restored. Tests run in file order on one lab and each leaves it healed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bgplab.lab.kinds.frr import last_notification, logged_notifications
from tests.lab.labcli import Cli, running_lab, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

PRIMARY, SECONDARY = "169.254.0.1", "169.254.0.5"
LabRun = tuple[Cli, str, dict[str, Any]]


@pytest.fixture(scope="module")
def lab(runtime: str) -> Iterator[LabRun]:
    with running_lab("connect-to.yaml", "fl", runtime) as run:
        yield run


def onprem_via(run: LabRun) -> list[str]:
    cli, name, _ = run
    rows = [r for r in cli.json("effective-routes", "hub", "--lab", name)
            if r["addressPrefix"] == ["10.1.0.0/16"] and r["state"] == "Active"]
    return sorted(hop for r in rows for hop in r["nextHopIpAddress"])


def session(run: LabRun, node: str, neighbor: str) -> str:
    cli, name, _ = run
    status = cli.run("status", "--lab", name, "--json", check=False)  # exit 1 while a node is down
    for row in json.loads(status.stdout)["sessions"]:
        if row["node"] == node and row["neighbor"] == neighbor:
            return str(row["state"])
    return "absent"


def fail(run: LabRun, *args: str) -> dict[str, Any]:
    cli, name, _ = run
    result: dict[str, Any] = cli.json("fail", *args, "--lab", name)
    return result


def restore(run: LabRun, *args: str) -> None:
    cli, name, _ = run
    cli.run("restore", *args, "--lab", name)


def pings(run: LabRun) -> bool:
    cli, name, _ = run
    return cli.run("exec", "--lab", name, "azure-vm", "--", "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.1.1.10",
                   check=False).returncode == 0


def healed(run: LabRun) -> None:
    wait_for("the primary path back", lambda: onprem_via(run) == [PRIMARY], timeout=40)
    cli, name, _ = run
    assert cli.json("status", "--lab", name)["faults"] == []


def test_link_down_moves_traffic_to_the_secondary(lab: LabRun) -> None:
    wait_for("the primary path", lambda: onprem_via(lab) == [PRIMARY])
    applied = fail(lab, "link", "ce1:eth1")
    assert applied["action"] == "fail" and applied["time"] > 0
    wait_for("the secondary path", lambda: onprem_via(lab) == [SECONDARY], timeout=10)
    assert pings(lab)  # through ce2, iBGP, ce1
    cli, name, _ = lab
    assert cli.json("status", "--lab", name)["faults"] == ["link:ce1:eth1"]
    restore(lab, "link", "ce1:eth1")
    healed(lab)


def events(run: LabRun, node: str, since: float) -> list[dict[str, Any]]:
    cli, name, _ = run
    return [r for r in cli.json("events", "--node", node, "--lab", name) if r.get("time", 0.0) >= since]


def frr_neighbor(run: LabRun, node: str, neighbor: str) -> dict[str, Any]:
    cli, name, _ = run
    out = cli.run("exec", "--lab", name, node, "--", "vtysh", "-c", f"show bgp neighbors {neighbor} json").stdout
    return dict(json.loads(out).get(neighbor, {}))


def test_silent_cut_is_caught_by_bfd(lab: LabRun) -> None:
    cut = fail(lab, "cut", "ce1:eth1")
    try:
        wait_for("BFD takes the primary down", lambda: onprem_via(lab) == [SECONDARY], timeout=10)
        [down, *_] = [r for r in events(lab, "contoso-ams-msee1", cut["time"]) if r["type"] == "state"
                      and r.get("peer") == "192.168.100.129" and r.get("previous") == "established"]
        assert "BFD" in down["reason"], down
        # Hold time 9 s, keepalives every 3 s: the hold timer could not have expired sooner than 6 s
        # after the cut; BFD at 300 ms x 3 takes it down in about a second.
        assert down["time"] - cut["time"] < 6.0, down
        # And the CE's own BFD went down too: FRR ended the session with Cease / BFD Down (6/10), not a hold timer.
        assert last_notification(frr_neighbor(lab, "ce1", "192.168.100.130")) == ("sent", 6, 10)
    finally:
        restore(lab, "cut", "ce1:eth1")
    healed(lab)


def test_msee_node_loss_and_restart(lab: LabRun) -> None:
    fail(lab, "node", "contoso-ams-msee1")
    wait_for("the gateway loses the primary", lambda: onprem_via(lab) == [SECONDARY], timeout=15)
    assert pings(lab)
    restore(lab, "node", "contoso-ams-msee1")
    wait_for("msee1 back", lambda: session(lab, "contoso-ams-msee1", "192.168.100.129") == "established", timeout=30)
    healed(lab)


def test_ce_bgp_daemon_killed_and_restarted(lab: LabRun) -> None:
    cli, name, _ = lab
    log = cli.state_dir / name / "nodes" / "ce1" / "bgpd.log"
    before = log.stat().st_size
    killed = fail(lab, "daemon", "ce1")
    wait_for("msee1 sees the CE go", lambda: session(lab, "contoso-ams-msee1", "192.168.100.129") != "established",
             timeout=10)
    # A crash (SIGKILL), not a shutdown: bgpd wrote nothing more, no "Terminating on signal" and no
    # Cease to its neighbours (as its own log would say), and msee1 received none.
    with log.open() as f:
        f.seek(before)
        written = f.read()
    assert "Terminating on signal" not in written and "%NOTIFICATION: sent" not in written, written
    assert not [r for r in events(lab, "contoso-ams-msee1", killed["time"]) if r["type"] == "notification"
                and r.get("peer") == "192.168.100.129" and r.get("direction") == "received"]
    restore(lab, "daemon", "ce1")
    wait_for("session back", lambda: session(lab, "contoso-ams-msee1", "192.168.100.129") == "established",
             timeout=30)
    healed(lab)


def test_peering_disable_takes_both_msees_down(lab: LabRun) -> None:
    fail(lab, "peering", "contoso-ams", "--peering", "private")
    wait_for("both private sessions down", lambda: session(lab, "contoso-ams-msee1", "192.168.100.129") == "absent"
             and session(lab, "contoso-ams-msee2", "192.168.100.133") == "absent", timeout=10)
    assert session(lab, "contoso-ams-msee1", "198.51.100.1") == "established"  # Microsoft peering untouched
    assert not pings(lab)
    restore(lab, "peering", "contoso-ams", "--peering", "private")
    healed(lab)


def test_far_end_withdraw_all_and_notification(lab: LabRun) -> None:
    fail(lab, "bgp", "contoso-ams-msee1", "--mode", "withdraw-all")
    cli, name, _ = lab
    wait_for("ce1 loses MSEE1's routes", lambda: not [
        r for r in cli.json("routes", "ce1", "--lab", name) if r["source"] == "192.168.100.130"])
    restore(lab, "bgp", "contoso-ams-msee1", "--mode", "withdraw-all")
    fail(lab, "bgp", "contoso-ams-msee1", "--mode", "notification", "--code", "6", "--subcode", "4")
    # The CE's own record of what ended the session: bgpd's log of the NOTIFICATION it received.
    # (Its `lastResetDueTo` is overwritten once the session comes back, so the log is the witness.)
    log = cli.state_dir / name / "nodes" / "ce1" / "bgpd.log"
    wait_for("ce1 logs Cease 6/4 from msee1", lambda: ("received", 6, 4)
             in logged_notifications(log.read_text(), "192.168.100.130"), timeout=10)
    restore(lab, "bgp", "contoso-ams-msee1", "--mode", "notification")
    wait_for("session back", lambda: session(lab, "contoso-ams-msee1", "192.168.100.129") == "established",
             timeout=20)
    healed(lab)


def test_impairments_loss_and_what_this_kernel_cannot_do(lab: LabRun) -> None:
    fail(lab, "impair", "ce1:lan", "--loss", "100")
    assert not pings(lab)
    cli, name, _ = lab
    delay = cli.run("fail", "impair", "ce1:lan", "--delay", "20", "--lab", name, check=False)
    assert delay.returncode == 2 and "netem" in delay.stderr
    restore(lab, "all")
    assert pings(lab)
    healed(lab)


def test_unknown_targets_are_refused_with_what_exists(lab: LabRun) -> None:
    cli, name, _ = lab
    bad_link = cli.run("fail", "link", "ce9:eth1", "--lab", name, check=False)
    assert bad_link.returncode == 2 and "physical links: " in bad_link.stderr and "ce1:eth1" in bad_link.stderr
    bad_msee = cli.run("fail", "drain", "ce1", "--lab", name, check=False)
    assert bad_msee.returncode == 2 and "MSEEs: contoso-ams-msee1, contoso-ams-msee2" in bad_msee.stderr
