"""A user's own container image as a node (kind linux, as containerlab names it): its fields checked
and turned into what the plan holds.

The image's own entrypoint starts whatever it runs (its router OS, with the config the user mounts
at `startup_config_path`); bgplab creates the container, wires its links and addresses like any
node's, then runs `exec` and waits for `ready`. What bgplab can see of its BGP is what `cli`
names (vtysh, for an FRR image); without one, its sessions are seen from the MSEEs' side only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from bgplab.lab.topology.schema import NodeSpec
from bgplab.source import Source

LINUX_FIELDS = ("image", "startup_config", "startup_config_path", "binds", "env", "exec", "ready", "ready_timeout",
                "cli")
"""The fields only kind linux takes."""
ROUTER_FIELDS = ("config", "asn", "router_id", "announce", "announce_range", "prepend", "bfd", "neighbors",
                 "advertise")
"""What bgplab's router kinds take and a user's image does not: its config is the image's own."""
_BIND = re.compile(r"^(?P<host>[^:]+):(?P<path>/[^:]*)(?::(?P<mode>ro|rw))?$")


def check_fields(src: Source, name: str, node: NodeSpec) -> None:
    """Linux fields on a node of another kind, or router fields on a linux node, are refused."""
    path = f"nodes.{name}"
    if node.kind != "linux":
        for key in LINUX_FIELDS:
            if key in node.model_fields_set:
                src.fail(f"{path}.{key}", f"only kind linux (a container image of your own) takes {key}; {name} is "
                         f"a {node.kind}")
        return
    for key in ROUTER_FIELDS:
        if key in node.model_fields_set:
            src.fail(f"{path}.{key}", f"{name} runs its image's own config (mount it with startup_config), so "
                     f"{key} has no meaning here")
    if node.image is None:
        src.fail(path, f"{name} is kind linux: give its image (e.g. image: my-frr:8.4)")


def linux_node(src: Source, name: str, node: NodeSpec, base_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The node's spec (what the kind does once its container runs) and its container (what the
    docker runtime creates it with), host paths made absolute and checked."""
    path = f"nodes.{name}"
    binds = [_bind(src, f"{path}.binds" + (f"[{n}]" if len(node.binds) > 1 else ""), text, base_dir)
             for n, text in enumerate(node.binds)]
    if (node.startup_config is None) != (node.startup_config_path is None):
        given, missing = (("startup_config", "startup_config_path") if node.startup_config is not None
                          else ("startup_config_path", "startup_config"))
        src.fail(f"{path}.{given}", f"{given} without {missing}: the file and where the image reads it go together")
    config = None
    if node.startup_config is not None and node.startup_config_path is not None:
        config = _host_path(src, f"{path}.startup_config", node.startup_config, base_dir)
        if not os.path.isfile(config):
            src.fail(f"{path}.startup_config", f"{node.startup_config}: not a file ({config})")
        if not node.startup_config_path.startswith("/"):
            src.fail(f"{path}.startup_config_path", f"{node.startup_config_path}: a path inside the container "
                     "is absolute")
    spec = {"exec": list(node.exec), "ready": node.ready, "ready_timeout": node.ready_timeout, "cli": node.cli,
            "startup_config": config}
    copies = [[config, node.startup_config_path]] if config is not None and node.startup_config_path else []
    container = {"init": True, "binds": binds, "env": dict(node.env), "copies": copies}
    return spec, container


def _host_path(src: Source, path: str, text: str, base_dir: Path) -> str:
    full = os.path.abspath(base_dir / text)
    if not os.path.exists(full):
        src.fail(path, f"{text}: no such file or directory ({full}); paths are relative to the topology file")
    return full


def _bind(src: Source, path: str, text: str, base_dir: Path) -> str:
    match = _BIND.fullmatch(text)
    if not match:
        src.fail(path, f"{text!r}: expected HOST:PATH or HOST:PATH:ro (PATH absolute, inside the container)")
    return f"{_host_path(src, path, match['host'], base_dir)}:{match['path']}:{match['mode'] or 'rw'}"
