"""The docker runtime's own edges, against the real engine: what `down` may remove, and an image
that is not built. (The labs themselves run on both runtimes in test_connect_to.py.)"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import secrets
from dataclasses import replace
from pathlib import Path

import docker.errors
import pytest

from bgplab.lab import system
from bgplab.lab.lab import Lab
from bgplab.lab.runtime import RESOURCES
from bgplab.lab.runtime.docker import LAB_LABEL, DockerError, _missing, client
from bgplab.lab.state import LabState
from bgplab.lab.topology import load_topology
from tests.lab.labcli import TOPOLOGIES, Cli, containers, leftovers, running_lab, state_dir

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]


def test_down_removes_only_a_container_that_carries_the_labs_label() -> None:
    lab = f"dk{secrets.token_hex(3)}"
    name = f"bl-{lab}-r1"
    engine = client()
    stranger = engine.containers.run("bgplab/host:latest", ["sleep", "infinity"], name=name, detach=True,
                                     network_mode="none", labels={LAB_LABEL: "another-lab"})
    try:
        entry = {"type": "container", "name": name, "key": "r1", "lab": lab}
        assert RESOURCES["container"](entry) == (False, 0)
        stranger.reload()
        assert stranger.status == "running"
        assert RESOURCES["container"]({**entry, "lab": "another-lab"}) == (True, 0)
        assert not engine.containers.list(all=True, filters={"name": name})
        assert RESOURCES["container"](entry) == (False, 0)  # gone already: nothing to do
    finally:
        for c in engine.containers.list(all=True, filters={"name": name}):
            c.remove(force=True)


def test_an_image_that_is_not_there_is_named_with_what_to_do_and_nothing_is_left() -> None:
    plan = load_topology(TOPOLOGIES / "connect-to.yaml")
    lab = f"di{secrets.token_hex(3)}"
    nodes = {n: replace(node, image="example/not-built:latest") if n == "ce2" else node
             for n, node in plan.nodes.items()}
    plan = replace(plan, name=lab, runtime="docker", nodes=nodes)
    with state_dir() as root:
        with pytest.raises(DockerError, match=r"image example/not-built:latest is not on this Docker engine: build "
                                              r"it \(docker build -t example/not-built:latest DIR\) or load it"):
            Lab(plan, LabState(lab, Path(root))).up()
        assert not (Path(root) / lab).exists()
    assert containers(lab) == [] and not any(leftovers(lab, "docker").values())


@pytest.mark.parametrize(("image", "words"), [
    ("bgplab/frr:latest", "image bgplab/frr:latest is not built; build it with: containers/build frr"),
    ("bgplab/bgplab:latest", "containers/build bgplab"),
    ("bgplab/custom:1", "is not on this Docker engine"),  # a name under ours that containers/build never makes
    ("registry.example/team/frr:9", "is not on this Docker engine: build it (docker build -t registry.example/"),
])
def test_the_missing_image_hint_names_containers_build_only_for_its_images(image: str, words: str) -> None:
    assert words in _missing(image)


def test_a_management_network_reaches_every_node_from_the_host_and_routes_nothing_out(tmp_path: Path) -> None:
    """`management:` gives every node an mgmt0 on an internal network, which the host reaches
    (SSH to a router, as under containerlab); no node routes through it, the lab's own eth0
    links are untouched, and `down` removes the network with the containers."""
    topology = tmp_path / "mgmt.yaml"
    topology.write_text((TOPOLOGIES / "connect-to.yaml").read_text()
                        + "\nmanagement: {subnet: 172.31.254.0/24}\n")
    with running_lab(topology, "mg", "docker") as (cli, name, up):
        assert up["established"]
        status = cli.json("status", "--lab", name)
        addresses = {node: info["management"] for node, info in status["nodes"].items()}
        assert all(addresses.values()), addresses
        network = ipaddress.ip_network("172.31.254.0/24")
        assert all(ipaddress.ip_address(a) in network for a in addresses.values())
        plan = load_topology(topology)
        for node, address in addresses.items():
            key = f"bl-{name}-{plan.nodes[node].namespaces[0]}"  # an MSEE's first peering holds its mgmt0
            links = {link["ifname"]: link for link in json.loads(system.run(["ip", "-n", key, "-j", "addr"]).stdout)}
            assert f"{address}" in [a["local"] for a in links["mgmt0"]["addr_info"]], (node, links["mgmt0"])
            routes = json.loads(system.run(["ip", "-n", key, "-j", "route", "show", "default"]).stdout)
            assert all(r.get("dev") != "mgmt0" for r in routes), (node, routes)  # nothing leaves by it
        assert system.run(["ping", "-c", "1", "-W", "2", addresses["ce1"]], check=False).returncode == 0
        vm = json.loads(system.run(["ip", "-n", f"bl-{name}-azure-vm", "-j", "route", "show", "default"]).stdout)
        assert [r["dev"] for r in vm] == ["eth0"]  # the VM's lab link keeps its name and its default route
        assert client().networks.list(names=[f"bl-{name}-mgmt"])
        lines = (cli.state_dir / name / "journal.jsonl").read_text().splitlines()
        journal = [json.loads(line)["type"] for line in lines]
        runtime = [t for t in journal if t in ("docker-sweep", "network", "namespace", "container")]
        # Undone newest first: the containers, then the network they were on, then the sweep by label.
        assert runtime[:2] == ["docker-sweep", "network"] and set(runtime[2:]) == {"namespace", "container"}
    assert not client().networks.list(names=[f"bl-{name}-mgmt"])


def test_a_management_network_on_the_netns_runtime_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    topology = tmp_path / "mgmt.yaml"
    topology.write_text((TOPOLOGIES / "connect-to.yaml").read_text() + "\nmanagement: true\n")
    with state_dir() as root:
        proc = Cli(root).run("up", str(topology), "--name", "mgnetns", check=False)
        assert proc.returncode == 2 and "management network is the docker runtime's" in proc.stderr, proc.stderr
        assert not (root / "mgnetns").exists()


def test_down_sweeps_a_container_the_engine_made_after_the_journal_was_read() -> None:
    """An `up` SIGKILLed mid-create: the engine may finish a container after `down` looked for it by
    name. The sweep (journaled first, undone last) finds it by the lab's label, and only the lab's."""
    lab = f"sw{secrets.token_hex(3)}"
    engine = client()
    with state_dir() as root:
        state = LabState(lab, Path(root))
        state.begin({"plan": {}})
        state.record("docker-sweep", lab=lab)
        late = engine.containers.run("bgplab/host:latest", ["sleep", "infinity"], name=f"bl-{lab}-late",
                                     detach=True, network_mode="none", labels={LAB_LABEL: lab})
        other = engine.containers.run("bgplab/host:latest", ["sleep", "infinity"], name=f"bl-{lab}x-other",
                                      detach=True, network_mode="none", labels={LAB_LABEL: f"{lab}x"})
        try:
            state.teardown()
            assert containers(lab) == []
            other.reload()
            assert other.status == "running"
        finally:
            for c in (late, other):
                with contextlib.suppress(docker.errors.NotFound):
                    c.remove(force=True)
