"""Topology files: YAML in, a validated `LabPlan` out, with the `expressroute:` intent expanded.

A topology file names the lab, its user nodes (CE routers and hosts) and their links, and
optionally an ExpressRoute configuration (circuits, route filters, VNets, in the model's own
format plus a few lab-only keys). `load_topology` checks all of it and expands the ExpressRoute
part into MSEE nodes (one per circuit side, one namespace per peering), VNet gateway nodes,
Azure VMs on a VNet bridge, and an Azure internet edge, with every link and address the runtime
needs.

In three parts: bgplab.source reads the YAML (keeping each field's line) and words pydantic's
refusals; `schema` is the format (the ExpressRoute part is bgplab.expressroute.spec's, checked
there once); `expand` turns the checked file into the plan.

```yaml
name: contoso                     # [a-z][a-z0-9-]{0,19}: it prefixes namespace names
profile: fast                     # azure (default) | fast
runtime: docker                   # netns (default) | docker: a container per namespace
management: {subnet: 172.20.20.0/24}  # docker only: mgmt0 in every node on an internal network (or: true)
expressroute:                     # bgplab.expressroute.spec data, plus lab-only keys:
  circuits:
    contoso-ams: {..., edges: [ce1, ce2]}      # the node on the primary and on the secondary link
  route_filters: {...}
  vnets:
    hub: {..., hosts: {vm1: 10.100.1.10}}      # Azure VMs in the VNet
  internet: true                  # an "azure-internet" node behind the gateways (default with VNets)
  rules: {drain_prepend: 3}       # bgplab.expressroute.rules.MseeRules for every MSEE
nodes:
  ce1: {kind: frr, config: configs/ce1.conf}   # the user's own config, or intent:
  ce2: {kind: frr, announce: [10.1.0.0/16], neighbors: [{address: 10.0.12.1, asn: 65010}]}
  onprem: {kind: host, interfaces: {eth1: [10.1.1.10/24]}, gateway: 10.1.1.1}
  ce3: {kind: linux, image: my-frr:8.4, startup_config: ce3.conf, startup_config_path: /etc/frr/frr.conf, cli: frr}
links:
  - [ce1:eth9, onprem:eth1]
  - {endpoints: [ce1:eth8, ce2:eth8], rate: 100Mbps}
```

Every refusal is a `TopologyError` naming the file, the line, the dotted field and what would be
valid. `topology_schema()` gives the JSON schema of the format, for editors.
"""

from __future__ import annotations

from pathlib import Path

from bgplab.expressroute.model import Model
from bgplab.lab.plan import LabPlan
from bgplab.lab.topology.expand import Expander, model_data
from bgplab.lab.topology.schema import LAB_NAME, TopologyError, TopologyFile, special_message, topology_schema
from bgplab.source import YamlError, load_yaml, validate

__all__ = ["LAB_NAME", "TopologyError", "load_topology", "plan_from_text", "topology_schema"]


def plan_from_text(text: str, source: str, base_dir: Path) -> LabPlan:
    """The plan of a topology given as text; `source` names it in errors, `base_dir` anchors config paths."""
    try:
        data, src = load_yaml(text, source, TopologyError)
    except YamlError as exc:
        raise TopologyError(exc.file, exc.line, "", exc.message) from None
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        src.fail("", f"expected a mapping with name, nodes, links and expressroute at the top, got {got}")
    spec = validate(TopologyFile, data, src, special=special_message)
    model = None if spec.expressroute is None else Model.from_spec(spec.expressroute)
    raw_links = data.get("links")
    expander = Expander(src, spec, model, Path(base_dir), raw_links if isinstance(raw_links, list) else [])
    return expander.plan(None if model is None else model_data(data.get("expressroute") or {}))


def load_topology(path: str | Path) -> LabPlan:
    """Read, check and expand a topology file; raises TopologyError (or OSError if it cannot be read)."""
    file = Path(path)
    return plan_from_text(file.read_text(), str(path), file.parent.absolute())
