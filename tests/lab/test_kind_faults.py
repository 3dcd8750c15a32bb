"""Daemon and node faults on BIRD, GoBGP and ExaBGP customer edges: `bgplab fail daemon CE` ends the
CE's process and its MSEE sessions, `bgplab restore daemon CE` brings both back with the routes;
`fail node` / `restore node` do the same with the node's links, and on BIRD (which forwards) the
packets between the VNet and on-premises stop and flow again.

The labs are test_kinds.py's (tests/lab/kinds/), one per kind, brought up here (faults change
them) and one at a time: the module fixture is parametrized by kind. What the faults did is read
from the MSEE (`bgplab status`, `bgplab routes`), from the router itself where it answers
(birdc, gobgp) and from the kernel (the processes in the CE's namespace, its links' flags, ping).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bgplab.lab import system
from bgplab.lab.runtime.docker import client
from bgplab.lab.runtime.netns import namespace_pids
from tests.lab.labcli import wait_for
from tests.lab.test_kinds import Lab, bring_up

DOWN_WITHIN = 10.0
"""Seconds for an MSEE to see its CE gone: the kernel closes the dead daemon's TCP sessions at once,
and the hold timer (9 s, fast profile) would end them anyway."""


@dataclass(frozen=True, slots=True)
class Case:
    topology: str
    prefix: str
    ce: str
    program: str
    """The CE's daemon, which names its pid file."""
    msees: dict[str, tuple[str, str]]
    """Each MSEE the CE peers with: (the CE's address, the MSEE's address) on the private peering."""
    announced: str
    vnet: str


CASES = {
    "bird": Case("bird.yaml", "fb", "ce1", "bird", {"kb-ams-msee1": ("192.168.110.1", "192.168.110.2")},
                 "10.21.0.0/16", "10.120.0.0/16"),
    "gobgp": Case("gobgp.yaml", "fg", "ce1", "gobgpd", {"kg-ams-msee1": ("192.168.120.1", "192.168.120.2")},
                  "10.31.0.0/16", "10.130.0.0/16"),
    "exabgp": Case("exabgp.yaml", "fx", "ce1", "exabgp", {"kx-ams-msee1": ("192.168.130.1", "192.168.130.2"),
                                                           "kx-ams-msee2": ("192.168.130.5", "192.168.130.6")},
                   "10.41.0.0/16", "10.140.0.0/16"),
}


@dataclass(frozen=True, slots=True)
class KindLab:
    kind: str
    case: Case
    lab: Lab
    runtime: str

    @property
    def name(self) -> str:
        return self.lab[1]

    def json(self, *args: str) -> Any:
        return self.lab[0].json(*args, "--lab", self.name)

    def status(self) -> Any:
        """`bgplab status`, which exits 1 while a node is down: what it says is still the answer."""
        return json.loads(self.run("status", "--json", check=False))

    def run(self, *args: str, check: bool = True) -> str:
        return self.lab[0].run(*args, "--lab", self.name, check=check).stdout

    def namespace(self) -> str:
        return f"bl-{self.name}-{self.case.ce}"

    def processes(self) -> list[int]:
        """What runs in the CE's namespace; on docker, but its container's init (which only holds
        the namespaces, and which a power loss of the node leaves, as the netns runtime leaves the
        namespace itself)."""
        init = client().containers.get(self.namespace()).attrs["State"]["Pid"] if self.runtime == "docker" else None
        return [p for p in namespace_pids(self.namespace()) if p != init]

    def pid(self) -> int:
        return int((self.lab[0].state_dir / self.name / "nodes" / self.case.ce / f"{self.case.program}.pid")
                   .read_text())

    def msee_states(self) -> dict[str, str | None]:
        """Each MSEE's session to the CE, as the MSEE reports it (None: no such session)."""
        rows = self.status()["sessions"]
        return {msee: next((r["state"] for r in rows if r["node"] == msee and r["neighbor"] == ce), None)
                for msee, (ce, _) in self.case.msees.items()}

    def msee_received(self) -> dict[str, list[str]]:
        """What each MSEE accepted from the CE."""
        return {msee: sorted(r["network"] for r in self.json("routes", msee, "--direction", "received")
                             if r["source"] == ce) for msee, (ce, _) in self.case.msees.items()}

    def vnet_at_ce(self) -> dict[str, bool]:
        """For each MSEE, whether the CE's own routing daemon holds the VNet's prefix from it, best;
        ExaBGP has no table of its own to ask, so its API messages (`bgplab routes`) speak for it."""
        vnet, sock = self.case.vnet, self.lab[0].state_dir / self.name / "nodes" / self.case.ce
        found: dict[str, bool] = {}
        for msee, (_, address) in self.case.msees.items():
            if self.kind == "bird":
                text = system.run(["birdc", "-s", str(sock / "bird.ctl"), "show", "route", vnet], check=False).stdout
                name = "bgp_" + address.replace(".", "_")
                found[msee] = re.search(rf"^{re.escape(vnet)}\s+unicast \[{name} [^\]]*\] \*", text, re.M) is not None
            elif self.kind == "gobgp":
                proc = system.run(["gobgp", "--target", f"unix://{sock / 'api.sock'}", "global", "rib", "-a", "ipv4",
                                   vnet, "-j"], check=False)
                paths = json.loads(proc.stdout).get(vnet, []) if proc.returncode == 0 and proc.stdout.strip() else []
                found[msee] = any(p["neighbor-ip"] == address and p["best"] for p in paths)
            else:
                rows = self.json("routes", self.case.ce) if system.alive(self.pid()) else []
                found[msee] = any(r["network"] == vnet and r["source"] == address for r in rows)
        return found

    def healthy(self) -> None:
        """Every MSEE session to the CE established, the CE's prefix at each MSEE and the VNet's at the CE."""
        every = {msee: "established" for msee in self.case.msees}
        wait_for(f"{self.case.ce}'s MSEE sessions established", lambda: self.msee_states() == every)
        wait_for(f"{self.case.announced} at the MSEEs",
                 lambda: self.msee_received() == {msee: [self.case.announced] for msee in self.case.msees})
        wait_for(f"{self.case.vnet} at {self.case.ce}", lambda: all(self.vnet_at_ce().values()))
        status = self.status()
        assert status["faults"] == [] and status["nodes"][self.case.ce]["problem"] is None, status["nodes"]

    def gone(self) -> None:
        """The CE's process is gone and every MSEE session to it has left established, its routes with it."""
        wait_for(f"no process left in {self.case.ce}'s namespace", lambda: not self.processes(),
                 timeout=5.0)  # SIGKILL is sent, not waited for: a power loss
        wait_for(f"{self.case.ce}'s MSEE sessions down",
                 lambda: "established" not in self.msee_states().values(), timeout=DOWN_WITHIN)
        assert self.msee_received() == {msee: [] for msee in self.case.msees}
        assert not any(self.vnet_at_ce().values())


@pytest.fixture(scope="module", params=sorted(CASES))
def kind_lab(request: pytest.FixtureRequest, runtime: str) -> Iterator[KindLab]:
    case = CASES[request.param]
    for lab in bring_up(case.topology, case.prefix, runtime):
        yield KindLab(request.param, case, lab, runtime)


@pytest.fixture
def lab(kind_lab: KindLab) -> Iterator[KindLab]:
    kind_lab.healthy()
    yield kind_lab
    kind_lab.run("restore", "all")  # a test that failed half-way leaves the next one its lab


def ping(lab: KindLab, source: str, destination: str) -> bool:
    return lab.lab[0].run("exec", "--lab", lab.name, source, "--", "ping", "-c", "2", "-i", "0.2", "-W", "1",
                          destination, check=False).returncode == 0


def links_up(lab: KindLab) -> dict[str, bool]:
    """The CE's interfaces (not lo) and whether each is administratively up, from the kernel."""
    links = json.loads(system.run(["ip", "-j", "-n", lab.namespace(), "link", "show"]).stdout)
    return {link["ifname"]: "UP" in link["flags"] for link in links if link["ifname"] != "lo"}


@pytest.mark.lab
@pytest.mark.timeout(300)
def test_daemon_fault_ends_the_ce_daemon_and_its_sessions_and_restore_brings_them_back(lab: KindLab) -> None:
    ce = lab.case.ce
    before = lab.pid()
    assert before in namespace_pids(lab.namespace())
    assert lab.json("fail", "daemon", ce)["action"] == "fail"
    lab.gone()
    assert not system.alive(before)
    status = lab.status()
    assert status["faults"] == [f"daemon:{ce}"] and status["nodes"][ce]["problem"], status["nodes"][ce]
    assert [r for r in status["sessions"] if r["node"] == ce] == []  # a dead daemon reports no sessions
    assert lab.json("restore", "daemon", ce)[0]["action"] == "restore"
    lab.healthy()
    assert lab.pid() != before and lab.pid() in namespace_pids(lab.namespace())


@pytest.mark.lab
@pytest.mark.timeout(300)
def test_node_fault_powers_the_ce_off_and_restore_brings_it_back(lab: KindLab) -> None:
    ce = lab.case.ce
    forwards = lab.kind == "bird"  # GoBGP and ExaBGP write no FIB: nothing to ping through them
    if forwards:
        assert ping(lab, "vm1", "10.21.1.10") and ping(lab, "onprem", "10.120.1.10")
    assert all(links_up(lab).values()), links_up(lab)
    lab.run("fail", "node", ce)
    lab.gone()
    assert not any(links_up(lab).values()), links_up(lab)
    if forwards:
        assert not ping(lab, "vm1", "10.21.1.10")
    lab.run("restore", "node", ce)
    assert all(links_up(lab).values()), links_up(lab)
    lab.healthy()
    if forwards:  # both ways: on-premises keeps its default route through ce1 across the fault
        wait_for("vm1 reaching on-premises again", lambda: ping(lab, "vm1", "10.21.1.10"))
        assert ping(lab, "onprem", "10.120.1.10")
