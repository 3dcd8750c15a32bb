"""CLI features no other test drives: `up --wait`, `events --follow`, `routes --family ipv6`,
`down --all` and `run --keep`, each through `bgplab` as a subprocess and checked against the
routers' own view (vtysh) or the kernel (namespaces, pids), never against bgplab's own report alone.

One connect-to lab serves the module; the features that need another lab (IPv6 peering, a session
that can never come up, two labs at once, a scenario's own lab) use the small dual-stack topology,
which comes up in a second or two.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bgplab.lab import system
from tests.lab.labcli import TOPOLOGIES, Cli, leftovers, node_pids, running_lab, state_dir, unique, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

DUAL_STACK = Path(__file__).resolve().parent / "topologies" / "dual-stack.yaml"
DEFAULT_FAST_WAIT = 60.0
"""docs/lab.md: `up` waits 60 s for the sessions of a fast-profile lab unless told otherwise."""


def frr_neighbors(cli: Cli, lab: str, node: str) -> dict[str, dict[str, Any]]:
    """The node's own FRR: every neighbour and its state (`show bgp neighbors json`)."""
    out = cli.run("exec", "--lab", lab, node, "--", "vtysh", "-c", "show bgp neighbors json").stdout
    neighbors: dict[str, dict[str, Any]] = json.loads(out)
    return neighbors


def frr_established(cli: Cli, lab: str, node: str) -> set[str]:
    return {a for a, info in frr_neighbors(cli, lab, node).items() if info.get("bgpState") == "Established"}


def vtysh_json(cli: Cli, lab: str, node: str, command: str) -> Any:
    return json.loads(cli.run("exec", "--lab", lab, node, "--", "vtysh", "-c", command).stdout)


def gone(state: Path, name: str, pids: list[int]) -> None:
    """Nothing of the lab is left: no namespace, no process in one, no recorded pid alive."""
    assert leftovers(name) == {"namespaces": [], "processes": []}
    assert not [p for p in pids if system.alive(p)]


@dataclass(frozen=True)
class ConnectTo:
    cli: Cli
    name: str
    up: subprocess.CompletedProcess[str]
    frr_at_return: dict[str, set[str]]
    """ce1's and ce2's Established neighbours, asked the moment `up` returned."""
    frr_configured: dict[str, set[str]]


@pytest.fixture(scope="module")
def connect_to(runtime: str) -> Iterator[ConnectTo]:
    with state_dir() as state:
        cli = Cli(state)
        name = unique("clf")
        try:
            up = cli.run("up", str(TOPOLOGIES / "connect-to.yaml"), "--name", name, "--wait", "60", "--runtime",
                         runtime, "--json", check=False)
            at_return, configured = {}, {}
            if up.returncode == 0:
                for node in ("ce1", "ce2"):
                    neighbors = frr_neighbors(cli, name, node)
                    configured[node] = set(neighbors)
                    at_return[node] = {a for a, i in neighbors.items() if i.get("bgpState") == "Established"}
            yield ConnectTo(cli, name, up, at_return, configured)
        finally:
            pids = node_pids(state, name)
            cli.run("down", name, check=False)
            gone(state, name, pids)


# ---------------------------------------------------------------- up --wait


def test_up_wait_returns_once_every_session_is_established(connect_to: ConnectTo) -> None:
    """--wait S: `up` polls until every session is Established (exit 0), so the routers already
    agree the moment it returns; no settling sleep is needed by whoever runs it."""
    assert connect_to.up.returncode == 0, connect_to.up.stdout + connect_to.up.stderr
    data = json.loads(connect_to.up.stdout)
    assert data["established"] is True
    assert data["sessions"] and {s["state"] for s in data["sessions"]} == {"established"}
    for node in ("ce1", "ce2"):  # both MSEE peerings and the iBGP session, in FRR's own view
        assert len(connect_to.frr_configured[node]) == 3
        assert connect_to.frr_at_return[node] == connect_to.frr_configured[node], node


def test_up_wait_gives_up_after_its_seconds_and_leaves_the_lab_up(tmp_path: Path) -> None:
    """A neighbour nobody answers for: `up --wait 3` waits 3 s for it (not the 60 s default), then
    exits 1 naming the session, and leaves the lab up to look at.

    The wait is timed from `up`'s first progress line about sessions (its first poll) to its exit,
    so the bring-up before it does not count."""
    data = yaml.safe_load(DUAL_STACK.read_text())
    data["nodes"]["ce1"]["neighbors"].append({"address": "2001:db8:12::99", "asn": 65010})
    topology = tmp_path / "dead-neighbor.yaml"
    topology.write_text(yaml.safe_dump(data))
    with state_dir() as state:
        cli = Cli(state)
        name = unique("clw")
        try:
            argv = [sys.executable, "-m", "bgplab", "up", str(topology), "--name", name, "--wait", "3"]
            proc = subprocess.Popen(argv, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert proc.stderr is not None
            polled = None
            for line in proc.stderr:
                if polled is None and line.startswith("sessions: "):
                    polled = time.monotonic()
            out = proc.communicate(timeout=DEFAULT_FAST_WAIT + 30)[0]
            waited = time.monotonic() - (polled or 0.0)
            assert proc.returncode == 1, out
            # less the first poll (it ran before the line), plus at most one more poll of every node's sessions
            assert polled is not None and 3 - 1 <= waited < 3 + 5, waited
            assert out.splitlines()[-1] == "not established after 3s: ce1->2001:db8:12::99", out
            text = cli.run("status", "--lab", name, check=False)  # the lab is still there, and its routers run
            assert text.returncode == 0 and f"lab {name} (fast): up" in text.stdout, text.stdout + text.stderr
            assert leftovers(name)["namespaces"]
            assert "2001:db8:12::99" not in frr_established(cli, name, "ce1")
            wait_for("the other sessions in FRR's own view",
                     lambda: frr_established(cli, name, "ce1") == {"192.168.60.2", "2001:db8:60::2",
                                                                   "2001:db8:12::2"})
        finally:
            pids = node_pids(state, name)
            cli.run("down", name, check=False)
            gone(state, name, pids)


# ---------------------------------------------------------------- events --follow


class Follower:
    """`bgplab events --follow --json` with its stdout read line by line as it comes."""

    def __init__(self, cli: Cli, *args: str) -> None:
        # Cli.popen discards stdout; here the stream is the point.
        self.proc = subprocess.Popen([sys.executable, "-m", "bgplab", "events", "--follow", "--json", *args],
                                     env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def next_matching(self, what: str, match: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                record: dict[str, Any] = json.loads(self.lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"no streamed event {what} within {timeout:g}s") from None
            if match(record):
                return record

    def kill(self) -> None:
        if self.proc.poll() is None:
            system.kill_pids([self.proc.pid], timeout=2.0)
        self.proc.wait(timeout=10)


def test_events_follow_streams_a_link_failure_and_recovery_live(connect_to: ConnectTo) -> None:
    cli, name = connect_to.cli, connect_to.name
    follower = Follower(cli, "--lab", name, "--node", "contoso-ams-msee1")
    try:
        follower.next_matching("at all (the history)", lambda r: True, timeout=10)  # it is connected and streaming
        failed = cli.json("fail", "link", "ce1:eth1", "--lab", name)
        try:
            # Carrier loss: BFD (900 ms) or at worst the 9 s hold timer ends the private session.
            down = follower.next_matching(
                "of the private session going down",
                lambda r: r["type"] == "state" and r["peer"] == "192.168.100.129" and r["previous"] == "established"
                and r["time"] >= failed["time"], timeout=12)
            assert down["node"] == "contoso-ams-msee1" and down["peering"] == "private"
            assert down["state"] != "established" and "192.168.100.129" in down["text"]
            assert follower.proc.poll() is None  # still following, not a history dump at exit
            wait_for("ce1 to see its MSEE session down",
                     lambda: "192.168.100.130" not in frr_established(cli, name, "ce1"), timeout=12)
        finally:
            restored = cli.json("restore", "link", "ce1:eth1", "--lab", name)
        up = follower.next_matching(
            "of the private session re-established",
            lambda r: r["type"] == "state" and r["peer"] == "192.168.100.129" and r["state"] == "established"
            and r["time"] >= restored[0]["time"], timeout=30)
        assert up["node"] == "contoso-ams-msee1"
        assert follower.proc.poll() is None
        wait_for("ce1 to see it back", lambda: "192.168.100.130" in frr_established(cli, name, "ce1"))
    finally:
        follower.kill()
    wait_for("every session back", lambda: frr_established(cli, name, "ce1") == connect_to.frr_configured["ce1"])


# ---------------------------------------------------------------- routes --family ipv6


def test_routes_family_ipv6_is_what_the_routers_hold() -> None:
    with running_lab(DUAL_STACK, "clv") as (cli, name, up):
        assert up["established"]

        def ce1_v6() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = cli.json("routes", "ce1", "--lab", name, "--family", "ipv6")
            return rows

        wait_for("ce2's IPv6 prefix at ce1 over iBGP",
                 lambda: any(r["network"] == "2001:db8:20::/48" for r in ce1_v6()))
        rows = ce1_v6()
        own = vtysh_json(cli, name, "ce1", "show bgp ipv6 unicast json")["routes"]
        assert {r["network"] for r in rows} == set(own) == {"2001:db8:10::/48", "2001:db8:20::/48"}
        for row in rows:
            hops = {h["ip"] for path in own[row["network"]] for h in path["nexthops"] if h["scope"] == "global"}
            assert row["next_hop"] in hops, (row, own[row["network"]])
            assert row["family"] == "ipv6-unicast"
        learned = next(r for r in rows if r["network"] == "2001:db8:20::/48")
        assert learned["next_hop"] == "2001:db8:12::2" and learned["source"] == "2001:db8:12::2"
        assert all(":" not in r["network"] for r in cli.json("routes", "ce1", "--lab", name))  # and not mixed up

        # Our MSEE: what it received on its IPv6 session is what ce1 says it advertised there.
        def advertised() -> set[str]:
            data = vtysh_json(cli, name, "ce1", "show bgp ipv6 unicast neighbors 2001:db8:60::2 advertised-routes json")
            return set(data.get("advertisedRoutes", {}))

        def received() -> set[str]:
            return {r["network"] for r in cli.json("routes", "dual-ams-msee1", "--lab", name, "--family", "ipv6",
                                                    "--direction", "received")}

        wait_for("ce1's advertisements at the MSEE", lambda: received() == advertised() == {"2001:db8:10::/48",
                                                                                            "2001:db8:20::/48"})
        received_rows = cli.json("routes", "dual-ams-msee1", "--lab", name, "--family", "ipv6",
                                 "--direction", "received")
        assert {r["next_hop"] for r in received_rows} == {"2001:db8:60::1"}  # ce1's end of the /126


# ---------------------------------------------------------------- down --all


def test_down_all_removes_every_lab_in_the_state_dir() -> None:
    with state_dir() as state:
        cli = Cli(state)
        names = [unique("cla"), unique("clb")]
        pids: dict[str, list[int]] = {}
        try:
            for name in names:
                cli.run("up", str(DUAL_STACK), "--name", name, "--json")
                pids[name] = node_pids(state, name)
                assert pids[name] and leftovers(name)["namespaces"]
            down = cli.json("down", "--all")
            assert sorted(r["lab"] for r in down) == sorted(names)
            for name in names:
                gone(state, name, pids[name])
            assert not [p for p in state.iterdir() if (p / "journal.jsonl").exists()]
            assert cli.run("status", check=False).returncode == 3  # no lab is up
        finally:
            for name in names:
                cli.run("down", name, check=False)


# ---------------------------------------------------------------- run --keep


def test_run_keep_leaves_the_scenarios_lab_up(tmp_path: Path) -> None:
    scenario = tmp_path / "keep.yaml"
    scenario.write_text(yaml.safe_dump({
        "name": "sessions come up", "topology": str(DUAL_STACK),
        "steps": [{"expect": {"sessions": "established", "within": "30s"}}],
    }))
    with state_dir() as state:
        cli = Cli(state)
        name = unique("clk")
        try:
            run = cli.run("run", str(scenario), "--keep", "--name", name, "--json", check=False)
            assert run.returncode == 0, run.stdout + run.stderr
            assert json.loads(run.stdout)["passed"] is True
            status = cli.json("status", "--lab", name)
            assert status["state"] == "up"
            assert leftovers(name)["namespaces"] and node_pids(state, name)
            assert frr_established(cli, name, "ce1") == {"192.168.60.2", "2001:db8:60::2", "2001:db8:12::2"}
        finally:
            pids = node_pids(state, name)
            cli.run("down", name, check=False)
            gone(state, name, pids)
