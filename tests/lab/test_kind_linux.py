"""A user's own router image (kind linux) in a lab on the docker runtime: an FRR image built here
and treated as foreign, started by its own entrypoint with its own frr.conf, peering with our
MSEEs, seen through its own vtysh, and failing over when its primary link is cut."""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from bgplab.lab.kinds import NotSupported, node_handle
from bgplab.lab.runtime.docker import client
from bgplab.lab.runtime.netns import namespace_pids
from bgplab.lab.topology import load_topology
from tests.lab.labcli import Cli, leftovers, node_pids, running_lab, state_dir, unique, wait_for

HERE = Path(__file__).resolve().parent
TOPOLOGY = HERE / "kinds" / "linux-frr.yaml"
USER_CONFIG = HERE / "kinds" / "configs" / "linux-frr.conf"
IMAGE = "bgplab-test/frr-foreign:latest"
PRIMARY, SECONDARY = "192.168.130.2", "192.168.130.6"

Lab = tuple[Cli, str, dict[str, Any]]


@pytest.fixture(scope="module")
def foreign_image() -> str:
    """Built from bgplab's FRR image (offline), with an entrypoint of its own: a user's image."""
    client().images.build(path=str(HERE / "images" / "frr-foreign"), tag=IMAGE, network_mode="host", rm=True)
    return IMAGE


@pytest.fixture(scope="module")
def linux_lab(foreign_image: str) -> Iterator[Lab]:
    with running_lab(TOPOLOGY, "kl", "docker") as lab:
        yield lab


def ce1_established(cli: Cli, name: str) -> set[str]:
    """The MSEE sessions the image's own FRR calls Established (its vtysh, not bgplab's reading)."""
    out = cli.run("exec", "--lab", name, "ce1", "--", "vtysh", "-c", "show bgp ipv4 unicast summary json").stdout
    return {a for a, p in json.loads(out)["peers"].items() if p["state"] == "Established"}


def vnet_next_hops(cli: Cli, name: str) -> list[list[str]]:
    """One list per row, and a row per next hop (as Azure lists ECMP)."""
    return [r["nextHopIpAddress"] for r in cli.json("effective-routes", "hub", "--lab", name)
            if r["addressPrefix"] == ["10.31.0.0/16"] and r["state"] == "Active"]


@pytest.mark.lab
@pytest.mark.timeout(300)
def test_the_image_runs_its_own_frr_with_its_own_config(linux_lab: Lab) -> None:
    cli, name, up = linux_lab
    assert up["established"]
    assert ce1_established(cli, name) == {PRIMARY, SECONDARY}
    # bgplab started nothing in ce1: its FRR is the image's entrypoint's, in the container's own
    # filesystem and pid namespace.
    journal = [json.loads(line) for line in (cli.state_dir / name / "journal.jsonl").read_text().splitlines()]
    assert not [e for e in journal if e["type"] == "process" and e.get("node") == "ce1"]
    init = client().containers.get(f"bl-{name}-ce1").attrs["State"]["Pid"]
    bgpd = [p for p in namespace_pids(f"bl-{name}-ce1") if Path(f"/proc/{p}/comm").read_text().strip() == "bgpd"]
    assert len(bgpd) == 1
    assert os.readlink(f"/proc/{bgpd[0]}/ns/mnt") == os.readlink(f"/proc/{init}/ns/mnt")
    assert os.readlink(f"/proc/{bgpd[0]}/ns/pid") != os.readlink("/proc/self/ns/pid")
    running = cli.run("exec", "--lab", name, "ce1", "--", "vtysh", "-c", "show running-config").stdout
    assert "route-map prepend permit 10" in running and "neighbor 192.168.130.6 bfd profile msee" in running
    # `exec` ran once the links existed, with the node's env.
    ran = cli.run("exec", "--lab", name, "ce1", "--", "cat", "/tmp/exec-ran").stdout.splitlines()
    link, state = ran[0].split()[:2]
    assert link.split("@")[0] == "lan" and state == "UP"
    assert ran[1] == "rehearsal"


@pytest.mark.lab
@pytest.mark.timeout(300)
def test_status_reads_the_image_through_its_cli(linux_lab: Lab) -> None:
    cli, name, _ = linux_lab
    status = cli.json("status", "--lab", name)
    assert status["nodes"]["ce1"] == {"kind": "linux", "problem": None, "blind": None, "management": None}
    ce1 = {s["neighbor"]: s for s in status["sessions"] if s["node"] == "ce1"}
    assert set(ce1) == {PRIMARY, SECONDARY} and {s["state"] for s in ce1.values()} == {"established"}
    routes = wait_for("the VNet at ce1", lambda: [r for r in cli.json("routes", "ce1", "--lab", name)
                                                    if r["network"] == "10.130.0.0/16"])
    assert {r["source"] for r in routes} == {PRIMARY, SECONDARY}


@pytest.mark.lab
@pytest.mark.timeout(300)
def test_the_image_fails_over_when_its_primary_link_is_cut(linux_lab: Lab) -> None:
    cli, name, _ = linux_lab
    # The secondary session prepends twice: the gateway prefers the primary MSEE.
    wait_for("on-premises via the primary MSEE", lambda: vnet_next_hops(cli, name) == [["169.254.0.1"]])
    ping = ["exec", "--lab", name, "vm1", "--", "ping", "-c", "2", "-i", "0.2", "-W", "1", "10.31.1.10"]
    assert cli.run(*ping, check=False).returncode == 0
    cli.json("fail", "link", "ce1:eth1", "--lab", name)
    try:
        wait_for("the route via the secondary MSEE", lambda: vnet_next_hops(cli, name) == [["169.254.0.5"]],
                 timeout=15)
        assert PRIMARY not in ce1_established(cli, name)
        assert cli.run(*ping, check=False).returncode == 0
    finally:
        cli.run("restore", "link", "ce1:eth1", "--lab", name)
    wait_for("back on the primary", lambda: vnet_next_hops(cli, name) == [["169.254.0.1"]], timeout=30)


@pytest.mark.lab
@pytest.mark.timeout(120)
def test_a_power_loss_is_refused_naming_what_to_do_and_the_image_keeps_running(linux_lab: Lab) -> None:
    cli, name, _ = linux_lab
    before = ce1_established(cli, name)
    proc = cli.run("fail", "node", "ce1", "--lab", name, check=False)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "cannot power back on with its links" in proc.stderr and "bgplab fail link ce1:IFACE" in proc.stderr
    assert cli.json("status", "--lab", name)["faults"] == []
    assert ce1_established(cli, name) == before  # nothing was killed


@pytest.mark.lab
@pytest.mark.timeout(120)
def test_the_users_config_file_is_never_touched(linux_lab: Lab) -> None:
    cli, name, _ = linux_lab
    mounted = cli.state_dir / name / "nodes" / "ce1" / "files" / "etc" / "frr" / "frr.conf"
    assert mounted.read_text() == USER_CONFIG.read_text()
    assert USER_CONFIG.stat().st_uid == os.getuid()  # the image chowns its copy, not the user's file


def test_a_linux_node_without_cli_is_marked_blind_not_guessed() -> None:
    plan = load_topology(TOPOLOGY)
    ce1 = plan.nodes["ce1"]
    seen = node_handle(plan, ce1, None, Path("/nonexistent"))  # type: ignore[arg-type]
    unseen = node_handle(plan, replace(ce1, spec={**ce1.spec, "cli": None}), None, Path("/nonexistent"))  # type: ignore[arg-type]
    assert seen.blind() is None
    assert "cannot read its BGP" in str(unseen.blind()) and unseen.sessions() == []
    with pytest.raises(NotSupported, match="no cli bgplab can read"):
        unseen.routes()


@pytest.mark.lab
@pytest.mark.timeout(120)
def test_kind_linux_on_the_netns_runtime_is_refused_and_leaves_nothing() -> None:
    with state_dir() as state:
        cli = Cli(state)
        name = unique("kn")
        proc = cli.run("up", str(TOPOLOGY), "--name", name, "--runtime", "netns", check=False)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"node ce1 runs the image {IMAGE}, so the lab needs the docker runtime" in proc.stderr
        assert not any(leftovers(name).values()) and not node_pids(state, name)


BIRD_TOPOLOGY = HERE / "kinds" / "linux-bird.yaml"
BIRD_IMAGE = "bgplab-test/bird-foreign:latest"


@dataclass(frozen=True)
class Foreign:
    image: str
    topology: Path
    ce: tuple[str, str]
    """ce1's addresses toward the primary and secondary MSEE."""
    vnet: str
    pings: bool
    """Whether the image's router writes the kernel FIB (BIRD does, gobgpd does not)."""


FOREIGN = {
    "bird": Foreign(BIRD_IMAGE, BIRD_TOPOLOGY, ("192.168.132.1", "192.168.132.5"), "10.132.0.0/16", True),
    "gobgp": Foreign("bgplab-test/gobgp-foreign:latest", HERE / "kinds" / "linux-gobgp.yaml",
                     ("192.168.133.1", "192.168.133.5"), "10.133.0.0/16", False),
}


@pytest.mark.lab
@pytest.mark.timeout(300)
@pytest.mark.parametrize("cli_name", sorted(FOREIGN))
def test_an_image_is_read_through_its_own_cli_and_fails_over(cli_name: str) -> None:
    """cli: bird and cli: gobgp. What bgplab reports of the image's sessions and routes (its own
    birdc or gobgp, on their default socket or address) must agree with the MSEEs, and follow a
    cut of the primary link."""
    case = FOREIGN[cli_name]
    client().images.build(path=str(HERE / "images" / f"{cli_name}-foreign"), tag=case.image, network_mode="host",
                          rm=True)
    primary, secondary = (str(ipaddress.ip_address(a) + 1) for a in case.ce)
    with running_lab(case.topology, "kf", "docker") as (cli, name, up):
        assert up["established"]

        def ce1() -> dict[str, str]:
            return {s["neighbor"]: s["state"] for s in cli.json("status", "--lab", name)["sessions"]
                    if s["node"] == "ce1"}

        status = cli.json("status", "--lab", name)
        assert status["nodes"]["ce1"]["blind"] is None
        assert ce1() == {primary: "established", secondary: "established"}
        msees = {s["node"]: s["state"] for s in status["sessions"] if s["neighbor"] in case.ce}
        assert sorted(msees.values()) == ["established", "established"]  # the other side agrees
        wait_for("the VNet at ce1 from both MSEEs", lambda: {
            r["source"] for r in cli.json("routes", "ce1", "--lab", name) if r["network"] == case.vnet}
            == {primary, secondary})
        ping = ["exec", "--lab", name, "vm1", "--", "ping", "-c", "2", "-i", "0.2", "-W", "1", "10.32.1.10"]
        if case.pings:
            assert cli.run(*ping, check=False).returncode == 0  # the image's BIRD wrote its kernel routes
        cli.json("fail", "link", "ce1:eth1", "--lab", name)
        wait_for("ce1's primary session down, as its own CLI says", lambda: ce1().get(primary) != "established",
                 timeout=15)
        assert ce1()[secondary] == "established"
        if case.pings:
            assert cli.run(*ping, check=False).returncode == 0  # over the secondary


@pytest.mark.lab
@pytest.mark.timeout(120)
@pytest.mark.parametrize("delay", [0, 3], ids=["at-once", "after-its-links"])
def test_an_image_that_exits_as_it_starts_is_reported_with_its_own_words(tmp_path: Path, delay: int) -> None:
    """A user's image refusing its config dies, before its links exist or (a slower boot) while
    bgplab waits for it to be ready: `up` says so with the container's exit code and log (BIRD's
    own file:line), not a timeout, and leaves nothing."""
    client().images.build(path=str(HERE / "images" / "bird-foreign"), tag=BIRD_IMAGE, network_mode="host", rm=True)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "linux-bird.conf").write_text("router id 10.32.0.1;\nprotocol bgp primary {}\n")
    topology = tmp_path / "linux-bird.yaml"
    topology.write_text(BIRD_TOPOLOGY.read_text().replace("    cli: bird\n",
                                                          f"    cli: bird\n    env: {{START_DELAY: '{delay}'}}\n"))
    with state_dir() as root:
        cli, name = Cli(root), unique("kx")
        proc = cli.run("up", str(topology), "--name", name, check=False)
        assert proc.returncode == 1, proc.stderr
        assert f"container bl-{name}-ce1 ({BIRD_IMAGE}) exited with code 1 as it started" in proc.stderr
        assert "/etc/bird/bird.conf:2:" in proc.stderr and "syntax error" in proc.stderr, proc.stderr
        assert not any(leftovers(name, "docker").values())
