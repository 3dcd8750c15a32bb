"""`bgplab export containerlab` against containerlab's published schema (restated in
containerlab.schema.json), and each node kind as containerlab would start it: from the image
bgplab's docker runtime uses, with the command that starts its daemon on its config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bgplab.lab import export
from bgplab.lab.kinds import exabgp
from bgplab.lab.topology import load_topology

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCHEMA = json.loads((HERE / "containerlab.schema.json").read_text())
TOPOLOGIES = sorted((REPO / "topologies").glob("*.yaml")) + sorted((HERE / "kinds").glob("*.yaml"))


def exported(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(export.containerlab(load_topology(path)))
    return data


@pytest.mark.parametrize("path", TOPOLOGIES, ids=[p.stem for p in TOPOLOGIES])
def test_every_export_is_valid_under_containerlabs_schema(path: Path) -> None:
    jsonschema.validate(exported(path), SCHEMA)


def test_the_schema_refuses_what_containerlab_does_not_define() -> None:
    """The check has teeth: a node field containerlab has no property for (bgplab once wrote
    `sysctls`), a kind it does not know, an endpoint without an interface."""
    good = exported(REPO / "topologies" / "connect-to.yaml")
    for node_field, value in (("sysctls", {"net.ipv4.ip_forward": "1"}), ("kind", "frr"), ("exec", [])):
        bad = json.loads(json.dumps(good))
        bad["topology"]["nodes"]["ce1"][node_field] = value
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SCHEMA)
    bad = json.loads(json.dumps(good))
    bad["topology"]["links"][0]["endpoints"][0] = "ce1"
    with pytest.raises(jsonschema.ValidationError, match="does not match"):
        jsonschema.validate(bad, SCHEMA)


def test_every_node_is_from_an_image_containers_build_makes() -> None:
    built = {"frr", "bird", "gobgp", "exabgp", "host", "bgplab"}  # containers/build's kinds
    for path in TOPOLOGIES:
        for name, entry in exported(path)["topology"]["nodes"].items():
            if entry["labels"]["bgplab.kind"] == "linux":
                continue
            image = entry["image"]
            assert image.startswith("bgplab/") and image.endswith(":latest"), (path.name, name, image)
            assert image.split("/")[1].split(":")[0] in built, (path.name, name, image)


@pytest.mark.parametrize(("kind", "config", "cmd"), [
    ("bird", "/etc/bird/bird.conf", "bird -f -c /etc/bird/bird.conf"),
    ("gobgp", "/etc/gobgp/gobgpd.toml", "gobgpd -f /etc/gobgp/gobgpd.toml -t toml"),
    ("exabgp", "/etc/exabgp/exabgp.conf", "exabgp --env-file /etc/exabgp/exabgp.env server /etc/exabgp/exabgp.conf"),
])
def test_a_router_kind_starts_its_daemon_on_the_config_generated_from_its_intent(kind: str, config: str,
                                                                                  cmd: str) -> None:
    plan = load_topology(HERE / "kinds" / f"{kind}.yaml")
    nodes = yaml.safe_load(export.containerlab(plan))["topology"]["nodes"]
    files = export.containerlab_files(plan)
    ce1 = nodes["ce1"]
    assert ce1["image"] == f"bgplab/{kind}:latest" and ce1["cmd"] == cmd
    source = next(b.split(":")[0] for b in ce1["binds"] if b.split(":")[1] == config)
    text = files[source]
    asn = str(plan.nodes["ce1"].spec["intent"]["asn"])
    assert asn in text  # the CE's own AS, from the topology, in the file its daemon reads
    for neighbor in plan.nodes["ce1"].spec["intent"]["neighbors"]:
        assert neighbor["address"] in text
    if kind == "gobgp":  # its config holds no routes: the announced prefix goes in by the CLI
        assert any("gobgp global rib add -a ipv4 10.31.0.0/16" in line for line in ce1["exec"])
    if kind == "exabgp":
        assert files["ce1/exabgp.env"] == exabgp.ENV


def test_a_linux_node_keeps_its_image_startup_config_env_and_exec() -> None:
    path = HERE / "kinds" / "linux-frr.yaml"
    plan = load_topology(path)
    ce1 = yaml.safe_load(export.containerlab(plan))["topology"]["nodes"]["ce1"]
    assert ce1["image"] == "bgplab-test/frr-foreign:latest" and "cmd" not in ce1  # its entrypoint runs it
    assert ce1["binds"] == [f"{HERE / 'kinds' / 'configs' / 'linux-frr.conf'}:/etc/frr/frr.conf"]
    assert ce1["env"] == {"LAB_NOTE": "rehearsal"}
    assert ce1["exec"][-1] == "ip -br link show lan > /tmp/exec-ran && echo $LAB_NOTE >> /tmp/exec-ran"
    assert "ip addr add 10.31.1.1/24 dev lan" in ce1["exec"]
    assert "bgplab-test/frr-foreign:latest" in export.containerlab(plan).split("\nname:")[0]  # named in the header
