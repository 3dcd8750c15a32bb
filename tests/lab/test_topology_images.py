"""Kind linux in a topology file (bgplab.lab.topology.images): what the plan holds for a user's
image, and every refusal with its file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bgplab.lab.plan import plan_from_data, plan_to_data
from bgplab.lab.topology import TopologyError, plan_from_text


def refusal(text: str, base_dir: Path) -> TopologyError:
    with pytest.raises(TopologyError) as caught:
        plan_from_text(textwrap.dedent(text), "lab.yaml", base_dir)
    return caught.value


def test_a_linux_node_holds_its_image_binds_env_and_a_copy_of_its_startup_config(tmp_path: Path) -> None:
    (tmp_path / "r1.conf").write_text("hostname r1\n")
    (tmp_path / "keys").mkdir()
    text = """\
        name: img
        runtime: docker
        nodes:
          r1:
            kind: linux
            image: example/router:1.2
            startup_config: r1.conf
            startup_config_path: /etc/router/startup.conf
            binds: [keys:/etc/keys:ro]
            env: {ROLE: edge}
            exec: [ip link set lan up]
            ready: test -e /run/ready
            ready_timeout: 90
            cli: frr
            interfaces: {lan: [10.5.0.1/24]}
            gateway: 10.5.0.254
          h1: {kind: host, interfaces: {eth1: [10.5.0.254/24]}}
        links:
          - [r1:lan, h1:eth1]
    """
    plan = plan_from_text(textwrap.dedent(text), "lab.yaml", tmp_path)
    r1 = plan.nodes["r1"]
    assert plan.runtime == "docker" and r1.kind == "linux" and r1.image == "example/router:1.2"
    assert r1.container == {"init": True, "binds": [f"{tmp_path / 'keys'}:/etc/keys:ro"], "env": {"ROLE": "edge"},
                            "copies": [[str(tmp_path / "r1.conf"), "/etc/router/startup.conf"]]}
    assert r1.spec == {"exec": ["ip link set lan up"], "ready": "test -e /run/ready", "ready_timeout": 90,
                       "cli": "frr", "startup_config": str(tmp_path / "r1.conf")}
    assert plan.namespaces["r1"].routes == (("0.0.0.0/0", "10.5.0.254"),)
    assert plan_from_data(plan_to_data(plan)) == plan


def test_bgplabs_own_kinds_name_their_images() -> None:
    text = "name: own\nnodes:\n  r1: {kind: bird, asn: 65001, router_id: 10.0.0.1}\n  h1: {kind: host}\n"
    plan = plan_from_text(text, "lab.yaml", Path("."))
    assert (plan.nodes["r1"].image, plan.nodes["h1"].image) == ("bgplab/bird:latest", "bgplab/host:latest")
    assert plan.nodes["r1"].container == {} and plan.runtime == "netns"


@pytest.mark.parametrize(("node", "line", "field", "words"), [
    ("{kind: linux}", 3, "nodes.r1", "give its image"),
    ("{kind: linux, image: x, asn: 65001}", 3, "nodes.r1.asn", "runs its image's own config"),
    ("{kind: linux, image: x, config: r1.conf}", 3, "nodes.r1.config", "runs its image's own config"),
    ("{kind: frr, image: x}", 3, "nodes.r1.image", "only kind linux"),
    ("{kind: host, exec: ['true']}", 3, "nodes.r1.exec", "only kind linux"),
    ("{kind: linux, image: x, startup_config: r1.conf}", 3, "nodes.r1.startup_config",
     "without startup_config_path"),
    ("{kind: linux, image: x, startup_config: nope.conf, startup_config_path: /etc/x}", 3,
     "nodes.r1.startup_config", "no such file"),
    ("{kind: linux, image: x, startup_config: r1.conf, startup_config_path: etc/x}", 3,
     "nodes.r1.startup_config_path", "absolute"),
    ("{kind: linux, image: x, binds: [keys]}", 3, "nodes.r1.binds", "HOST:PATH"),
    ("{kind: linux, image: x, binds: ['keys:/k:rx']}", 3, "nodes.r1.binds", "HOST:PATH"),
    ("{kind: linux, image: x, binds: ['gone:/k']}", 3, "nodes.r1.binds", "no such file or directory"),
    ("{kind: linux, image: x, cli: eos}", 3, "nodes.r1.cli", "frr"),
])
def test_kind_linux_refusals(tmp_path: Path, node: str, line: int, field: str, words: str) -> None:
    (tmp_path / "r1.conf").write_text("hostname r1\n")
    (tmp_path / "keys").mkdir()
    error = refusal(f"name: bad\nnodes:\n  r1: {node}\n", tmp_path)
    assert (error.line, error.field) == (line, field), str(error)
    assert words in error.message, error.message


MANAGED = """\
    name: mg
    runtime: docker
    {management}
    nodes:
      h1: {{kind: host, interfaces: {{eth1: [10.5.0.1/24]}}}}
      h2: {{kind: host, interfaces: {{eth1: [10.5.0.2/24]}}}}
    links: [[h1:eth1, h2:eth1]]
"""


@pytest.mark.parametrize(("management", "expected"), [
    ("", None),
    ("management: true", {"subnet": None}),
    ("management: false", None),
    ("management: {subnet: 172.31.254.0/24}", {"subnet": "172.31.254.0/24"}),
])
def test_a_management_network_is_asked_for_and_kept_in_the_plan(management: str, expected: object,
                                                                  tmp_path: Path) -> None:
    plan = plan_from_text(textwrap.dedent(MANAGED.format(management=management)), "lab.yaml", tmp_path)
    assert plan.management == expected
    assert plan_from_data(plan_to_data(plan)).management == expected  # what `status` and `down` read back


@pytest.mark.parametrize(("management", "words"), [
    ("management: {subnet: 10.5.0.0/16}", "10.5.0.0/16 overlaps 10.5.0.1/24 on eth1 of h1"),
    ("management: {subnet: 172.31.254.0/30}", "at most /29"),
    ("management: {subnet: 2001:db8::/64}", "is not an IPv4 subnet"),
    ("management: {subnets: 172.31.254.0/24}", "unknown key 'subnets'"),
])
def test_a_bad_management_network_is_refused_with_its_line(management: str, words: str, tmp_path: Path) -> None:
    error = refusal(MANAGED.format(management=management), tmp_path)
    assert error.line == 3 and "management" in str(error) and words in str(error), str(error)
