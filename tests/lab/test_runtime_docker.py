"""The docker runtime's own edges, against the real engine: what `down` may remove, and an image
that is not built. (The labs themselves run on both runtimes in test_connect_to.py.)"""

from __future__ import annotations

import secrets
from dataclasses import replace
from pathlib import Path

import pytest

from bgplab.lab.lab import Lab
from bgplab.lab.runtime import RESOURCES
from bgplab.lab.runtime.docker import LAB_LABEL, DockerError, client
from bgplab.lab.state import LabState
from bgplab.lab.topology import load_topology
from tests.lab.labcli import TOPOLOGIES, containers, leftovers, state_dir

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


def test_an_image_that_is_not_built_is_named_with_how_to_build_it_and_nothing_is_left() -> None:
    plan = load_topology(TOPOLOGIES / "connect-to.yaml")
    lab = f"di{secrets.token_hex(3)}"
    nodes = {n: replace(node, image="bgplab/not-built:latest") if n == "ce2" else node
             for n, node in plan.nodes.items()}
    plan = replace(plan, name=lab, runtime="docker", nodes=nodes)
    with state_dir() as root:
        with pytest.raises(DockerError, match=r"image bgplab/not-built:latest is not built; build it with: "
                                              r"containers/build not-built"):
            Lab(plan, LabState(lab, Path(root))).up()
        assert not (Path(root) / lab).exists()
    assert containers(lab) == [] and not any(leftovers(lab, "docker").values())
