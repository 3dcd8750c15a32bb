"""Whole labs through the CLI, as a user runs them: `bgplab up`, look, ping, `bgplab down`, on
both runtimes (network namespaces, and a Docker container per namespace).

Each lab runs under a unique name (`--name`) and a private state directory, so tests never meet
a user's labs or each other; whatever happens, the fixture takes the lab down and checks that
nothing of it is left.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bgplab.lab import system
from bgplab.lab.runtime import RUNTIMES
from bgplab.lab.runtime.docker import client
from tests.lab.labcli import TOPOLOGIES, Cli, leftovers, node_pids, running_lab, state_dir, unique, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

@pytest.fixture
def cli() -> Iterator[Cli]:
    with state_dir() as path:
        yield Cli(path)


@pytest.fixture(scope="module")
def connect_to(runtime: str) -> Iterator[tuple[Cli, str, dict[str, Any]]]:
    with running_lab("connect-to.yaml", "ct", runtime) as lab:
        yield lab


def test_connect_to_comes_up_with_every_session_established(connect_to: tuple[Cli, str, dict[str, Any]]) -> None:
    _, _, up = connect_to
    assert up["established"] is True and up["profile"] == "fast"
    sessions = up["sessions"]
    # ce1, ce2: 3 each; each MSEE: 2 toward its CE, 2 toward the gateway's two instances; the
    # gateway: 2 per MSEE, one per instance.
    assert len(sessions) == 18 and {s["state"] for s in sessions} == {"established"}
    by_node = {(s["node"], s["neighbor"]): s for s in sessions}
    assert by_node[("contoso-ams-msee1", "192.168.100.129")]["peering"] == "private"
    assert {(s["neighbor"], s["instance"]) for s in sessions if s["node"] == "hub-gw"} == {
        ("169.254.0.1", 0), ("169.254.128.1", 1), ("169.254.0.5", 0), ("169.254.128.5", 1)}
    assert by_node[("ce1", "192.168.100.130")]["remote_as"] == 12076


def test_routes_at_the_ce_the_msees_and_the_gateway(connect_to: tuple[Cli, str, dict[str, Any]]) -> None:
    cli, name, _ = connect_to

    def vnet_at_ce1() -> list[dict[str, Any]]:
        return [r for r in cli.json("routes", "ce1", "--lab", name) if r["network"] == "10.100.0.0/16"]

    paths = wait_for("VNet route at ce1", vnet_at_ce1)
    best = [r for r in paths if r["best"]]
    assert best and best[0]["path"] == "12076" and best[0]["next_hop"] == "192.168.100.130"
    assert "12076:20001" in best[0]["communities"]
    # `up` returns once the sessions are Established; routes follow, so each is waited for.
    def msee1_received() -> list[str]:
        return [r["network"] for r in cli.json("routes", "contoso-ams-msee1", "--lab", name, "--direction", "received")]

    wait_for("on-premises at msee1", msee1_received)
    assert msee1_received() == ["10.1.0.0/16"]

    def onprem_active() -> list[dict[str, Any]]:
        return [r for r in cli.json("effective-routes", "hub", "--lab", name)
                if r["addressPrefix"] == ["10.1.0.0/16"] and r["state"] == "Active"]

    # ce2 prepends twice: once both paths are in, the gateway prefers the primary MSEE's shorter one.
    wait_for("on-premises via the primary MSEE only",
             lambda: [r["nextHopIpAddress"] for r in onprem_active()] == [["169.254.0.1"]])
    advertised = cli.json("routes", "contoso-ams-msee1", "--lab", name, "--peering", "microsoft",
                          "--direction", "advertised")
    assert advertised and all("12076:5010" in r["communities"] or "12076:5100" in r["communities"]
                              for r in advertised)


def test_packets_flow_between_the_azure_vm_and_on_premises(connect_to: tuple[Cli, str, dict[str, Any]]) -> None:
    cli, name, _ = connect_to
    there = cli.run("exec", "--lab", name, "azure-vm", "--", "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.1.1.10",
                    check=False)
    assert there.returncode == 0, there.stdout + there.stderr
    back = cli.run("exec", "--lab", name, "onprem", "--", "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.100.1.10",
                   check=False)
    assert back.returncode == 0, back.stdout + back.stderr
    trace = cli.run("exec", "--lab", name, "onprem", "--", "traceroute", "-n", "-q", "1", "10.100.1.10").stdout
    hops = [line.split()[1] for line in trace.splitlines()[1:]]
    assert hops == ["10.1.1.1", "192.168.100.130", "169.254.0.2", "10.100.1.10"]  # ce1, MSEE1, gateway, VM


def test_the_routers_run_from_their_runtime_and_see_the_msees_themselves(
    connect_to: tuple[Cli, str, dict[str, Any]], runtime: str
) -> None:
    """On docker, ce1's bgpd runs in its container's filesystem (the image's FRR), not the host's;
    on netns, in the host's. Either way its own vtysh shows both MSEE sessions, then a cut fibre."""
    cli, name, _ = connect_to
    bgpd = int((cli.state_dir / name / "nodes" / "ce1" / "bgpd.pid").read_text())
    program = os.stat(f"/proc/{bgpd}/root/usr/lib/frr/bgpd")
    host = os.stat("/usr/lib/frr/bgpd")
    if runtime == "docker":
        init = client().containers.get(f"bl-{name}-ce1").attrs["State"]["Pid"]
        assert os.readlink(f"/proc/{bgpd}/ns/mnt") == os.readlink(f"/proc/{init}/ns/mnt")
        assert Path(f"/proc/{bgpd}/root/etc/hostname").read_text().strip() == "ce1"
        assert (program.st_dev, program.st_ino) != (host.st_dev, host.st_ino)  # the image's bgpd
    else:  # `ip netns exec` gives it a mount namespace of its own, but the host's files
        assert (program.st_dev, program.st_ino) == (host.st_dev, host.st_ino)

    def established() -> set[str]:
        summary = json.loads(cli.run("exec", "--lab", name, "ce1", "--", "vtysh", "-c",
                                     "show bgp ipv4 unicast summary json").stdout)
        return {a for a, p in summary["peers"].items() if p["state"] == "Established"}

    assert {"192.168.100.130", "198.51.100.2"} <= established()
    cli.json("fail", "link", "ce1:eth1", "--lab", name)
    try:
        wait_for("ce1 to see the cut", lambda: not {"192.168.100.130", "198.51.100.2"} & established(), timeout=15)
    finally:
        cli.run("restore", "link", "ce1:eth1", "--lab", name)
    wait_for("ce1's MSEE sessions back", lambda: {"192.168.100.130", "198.51.100.2"} <= established(), timeout=30)


def test_status_reports_every_node_healthy(connect_to: tuple[Cli, str, dict[str, Any]]) -> None:
    cli, name, _ = connect_to
    status = cli.json("status", "--lab", name)
    assert status["state"] == "up"
    assert {n: v["problem"] for n, v in status["nodes"].items() if v["problem"]} == {}
    assert set(status["nodes"]) == {"ce1", "ce2", "onprem", "contoso-ams-msee1", "contoso-ams-msee2", "hub-gw",
                                    "azure-vm", "azure-internet"}


def test_a_second_copy_runs_beside_and_up_twice_is_refused(
    connect_to: tuple[Cli, str, dict[str, Any]], runtime: str, tmp_path: Path
) -> None:
    cli, name, _ = connect_to
    again = cli.run("up", str(TOPOLOGIES / "connect-to.yaml"), "--name", name, check=False)
    assert again.returncode == 3 and f"lab {name} is already up" in again.stderr
    other = unique("cx")
    try:
        up = cli.run("up", str(TOPOLOGIES / "connect-to.yaml"), "--name", other, "--runtime", runtime, "--json")
        assert json.loads(up.stdout)["established"] is True
        assert cli.json("status", "--lab", name)["state"] == "up"  # the first one is untouched
    finally:
        cli.run("down", other, check=False)
    assert not any(leftovers(other, runtime).values())
    assert cli.json("status", "--lab", name)["state"] == "up"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_up_killed_half_way_is_cleaned_by_down(cli: Cli, runtime: str) -> None:
    name = unique("ck")
    proc = cli.popen("up", str(TOPOLOGIES / "connect-to.yaml"), "--name", name, "--runtime", runtime)
    try:
        wait_for("a node process started", lambda: node_pids(cli.state_dir, name), timeout=60)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    created = leftovers(name, runtime)
    assert created["namespaces"], "the kill came too late to test anything"
    assert runtime == "netns" or created["containers"]
    pids = node_pids(cli.state_dir, name)
    down = cli.run("down", name)
    assert f"lab {name} down" in down.stdout
    assert not any(leftovers(name, runtime).values()), leftovers(name, runtime)
    assert not [p for p in pids if system.alive(p)]
    assert not (cli.state_dir / name).exists()


def test_down_of_a_lab_that_is_not_there_is_fine_and_status_says_no_lab(cli: Cli) -> None:
    assert cli.run("down", "nolabhere").returncode == 0
    status = cli.run("status", "--lab", "nolabhere", check=False)
    assert status.returncode == 3 and "no lab 'nolabhere' is up" in status.stderr


def test_topology_errors_exit_2_with_file_line_and_field(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nnodes:\n  r1: {kind: cisco}\n")
    proc = cli.run("up", str(bad), check=False)
    assert proc.returncode == 2
    assert f"{bad}:3: nodes.r1.kind:" in proc.stderr and "frr" in proc.stderr
    assert leftovers("bad") == {"namespaces": [], "processes": []}


def test_a_broken_frr_config_is_refused_before_anything_runs(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "r1.conf").write_text("frr defaults traditional\nrouter bgp 65010\n neighbor 10.0.0.2 remote-as\n")
    topology = tmp_path / "broken.yaml"
    topology.write_text(f"name: {unique('br')}\nnodes:\n  r1: {{kind: frr, config: r1.conf}}\n")
    name = topology.read_text().split()[1]
    proc = cli.run("up", str(topology), check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"{tmp_path / 'r1.conf'}: FRR refuses this config" in proc.stderr
    assert "line 3: % Command incomplete" in proc.stderr
    assert leftovers(name) == {"namespaces": [], "processes": []}
    assert not (cli.state_dir / name).exists()
