"""The lab commands that need no running lab: graph, export, schema, and their errors."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from bgplab.cli import main
from tests.lab.labcli import TOPOLOGIES

CONNECT_TO = str(TOPOLOGIES / "connect-to.yaml")


def test_graph_writes_an_svg_and_mermaid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lab.svg"
    assert main(["graph", CONNECT_TO, "-o", str(out)]) == 0
    svg = ET.fromstring(out.read_text())
    assert svg.tag.endswith("svg") and "contoso-ams-msee1" in out.read_text()
    assert main(["graph", CONNECT_TO, "--format", "mermaid"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "flowchart LR"


def test_export_containerlab_writes_the_topology_and_its_files(tmp_path: Path) -> None:
    assert main(["export", "containerlab", CONNECT_TO, "-o", str(tmp_path / "clab")]) == 0
    clab = yaml.safe_load((tmp_path / "clab" / "connect-to.clab.yml").read_text())
    assert set(clab["topology"]["nodes"]) >= {"ce1", "ce2", "contoso-ams-msee1", "hub-gw"}
    assert (tmp_path / "clab" / "hub-gw" / "node.json").exists()


def test_schema_is_json_with_the_top_level_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert {"name", "nodes", "links", "expressroute"} <= set(schema["properties"])


def test_graph_of_a_bad_topology_exits_2_naming_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nnodes:\n  a: {kind: frr}\nlinks:\n  - [a:eth1, b:eth1]\n")
    assert main(["graph", str(bad)]) == 2
    assert f"{bad}:5:" in capsys.readouterr().err


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
