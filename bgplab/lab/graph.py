"""Pictures of a lab: a Mermaid flowchart (`mermaid`) and a standalone SVG (`svg`), from its `LabPlan`.

Both are pure functions of the plan and deterministic (the same plan gives the same text), so
they can be committed next to a topology and diffed. One box per node; one line per *physical*
link: the peering sub-interfaces of one fibre ("eth1.100", "eth1.200", one `Link` each in the
plan) are drawn as one line labelled with their VLANs. Nodes fall into three zones: on-premises
(the topology's own nodes), the Microsoft edge (MSEEs) and Azure (VNet gateways, their VMs and
the internet edge).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from bgplab.lab.kinds import ROUTER_KINDS
from bgplab.lab.plan import LabPlan, Link, Node

__all__ = ["ZONES", "Edge", "edges", "mermaid", "mermaid_ids", "svg", "zone"]

INTERNET_NODE = "azure-internet"
"""The Azure internet edge bgplab generates (`bgplab.lab.topology.INTERNET_NODE`)."""
ONPREM, EDGE, AZURE = "on-premises", "Microsoft edge", "Azure"
ZONES = (ONPREM, EDGE, AZURE)


# ---------------------------------------------------------------- what is drawn: zones, labels, edges


@dataclass(frozen=True, slots=True)
class Edge:
    """One physical link: every plan `Link` with the same `physical` between the same two nodes."""

    physical: str
    a: str
    """Node name at the left end (see `edges`)."""
    b: str
    a_interfaces: tuple[str, ...]
    """Interface names at the `a` end, VLAN suffixes taken off ("eth1" for "eth1.100" on VLAN 100)."""
    b_interfaces: tuple[str, ...]
    vlans: tuple[int, ...]
    rate_mbps: int | None

    def vlan_text(self) -> str:
        return f"VLAN {', '.join(map(str, self.vlans))}" if self.vlans else ""

    def rate_text(self) -> str:
        if self.rate_mbps is None:
            return ""
        if self.rate_mbps >= 1000 and self.rate_mbps % 1000 == 0:
            return f"{self.rate_mbps // 1000} Gbps"
        return f"{self.rate_mbps} Mbps"


def _owners(plan: LabPlan) -> dict[str, str]:
    """Namespace key -> node name."""
    owners = {key: ns.node for key, ns in plan.namespaces.items()}
    for node in plan.nodes.values():
        for key in node.namespaces:
            owners.setdefault(key, node.name)
    return owners


def _owner(owners: Mapping[str, str], key: str) -> str:
    try:
        return owners[key]
    except KeyError:
        raise ValueError(f"a link ends in namespace {key!r}, which no node of the plan has") from None


def _base(interface: str, vlan: int | None) -> str:
    suffix = f".{vlan}"
    if vlan is not None and interface.endswith(suffix) and len(interface) > len(suffix):
        return interface[: -len(suffix)]
    return interface


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def edges(plan: LabPlan) -> list[Edge]:
    """The plan's physical links, in the order of their first `Link`, each with its `a` end in the
    column further left in the picture (on-prem hosts, CE routers, MSEEs, gateways, Azure hosts)."""
    owners = _owners(plan)
    groups: dict[tuple[str, frozenset[str]], list[tuple[Link, bool]]] = {}
    for link in plan.links:
        a, b = _owner(owners, link.a.namespace), _owner(owners, link.b.namespace)
        key = (link.physical, frozenset((a, b)))
        group = groups.setdefault(key, [])
        first = group[0][0] if group else link
        flipped = bool(group) and _owner(owners, first.a.namespace) != a
        group.append((link, flipped))
    columns = {name: _column(plan, node) for name, node in plan.nodes.items()}
    result = []
    for (physical, _), group in groups.items():
        first = group[0][0]
        a_ifs, b_ifs, vlans = [], [], []
        rate: int | None = None
        for link, flipped in group:
            near, far = (link.b, link.a) if flipped else (link.a, link.b)
            a_ifs.append(_base(near.interface, link.vlan))
            b_ifs.append(_base(far.interface, link.vlan))
            if link.vlan is not None:
                vlans.append(link.vlan)
            if link.rate_mbps is not None:
                rate = link.rate_mbps if rate is None else max(rate, link.rate_mbps)
        a, b = _owner(owners, first.a.namespace), _owner(owners, first.b.namespace)
        if columns.get(a, 0) > columns.get(b, 0):  # drawn left to right: on-premises first, Azure last
            a, b, a_ifs, b_ifs = b, a, b_ifs, a_ifs
        result.append(Edge(physical, a, b, _unique(a_ifs), _unique(b_ifs), tuple(sorted(set(vlans))), rate))
    return result


def zone(plan: LabPlan, node: Node) -> str:
    """ONPREM, EDGE or AZURE: MSEEs are the edge; gateways, their VMs and the internet edge Azure."""
    if node.kind == "msee":
        return EDGE
    if node.kind == "gateway" or node.name == INTERNET_NODE:
        return AZURE
    if node.kind == "host":
        owners = _owners(plan)
        mine = set(node.namespaces)
        peers = []
        for link in plan.links:
            for near, far in ((link.a, link.b), (link.b, link.a)):
                if near.namespace in mine:
                    peers.append(owners.get(far.namespace, ""))
        if peers and all(p in plan.nodes and plan.nodes[p].kind == "gateway" for p in peers):
            return AZURE  # a VM on a VNet's segment
    return ONPREM


def _column(plan: LabPlan, node: Node) -> int:
    where = zone(plan, node)
    if node.kind == "msee":
        return 2
    if node.kind == "gateway":
        return 3
    if where == AZURE:
        return 4
    return 0 if node.kind == "host" else 1


def _peerings(plan: LabPlan, node: Node) -> list[tuple[str, tuple[int, ...]]]:
    """(peering name, VLANs) for each namespace of an MSEE."""
    by_netns: dict[str, str] = {}
    peerings = node.spec.get("peerings")
    if isinstance(peerings, Mapping):
        for name, place in peerings.items():
            if isinstance(place, Mapping) and isinstance(place.get("netns"), str):
                by_netns[place["netns"]] = str(name)
    result = []
    for key in node.namespaces:
        name = by_netns.get(key) or (key[len(node.name) + 1:] if key.startswith(node.name + ".") else key)
        vlans = sorted({
            link.vlan for link in plan.links
            if link.vlan is not None and key in (link.a.namespace, link.b.namespace)
        })  # fmt: skip
        result.append((name, tuple(vlans)))
    return result


def _label_lines(plan: LabPlan, node: Node) -> list[str]:
    """The node's name, then its kind with a detail or two, then (MSEEs) one line per peering."""
    kind = node.kind
    spec = node.spec
    if kind == "msee":
        side = spec.get("side")
        lines = [node.name, f"msee · {side}" if side else "msee"]
        for name, vlans in _peerings(plan, node):
            lines.append(f"{name} VLAN {', '.join(map(str, vlans))}" if vlans else name)
        return lines
    if kind == "gateway":
        vnet = spec.get("vnet")
        return [node.name, f"gateway · VNet {vnet}" if vnet else "gateway"]
    intent = spec.get("intent")
    if isinstance(intent, Mapping) and intent.get("asn") is not None:
        return [node.name, f"{kind} · AS {intent['asn']}"]
    if node.name == INTERNET_NODE and kind == "host":
        return [node.name, "host · internet edge"]
    return [node.name, kind]


def _kind_class(kind: str) -> str:
    if kind in ROUTER_KINDS:
        return "router"
    if kind in ("msee", "gateway", "host"):
        return kind
    return "other"


# ---------------------------------------------------------------- Mermaid

_MERMAID_STYLES = {
    "router": "fill:#e0ecff,stroke:#2f5fb3,color:#10284f",
    "msee": "fill:#fff1dc,stroke:#c96a00,color:#4a2700",
    "gateway": "fill:#efe5fb,stroke:#7a3fb8,color:#2f1250",
    "host": "fill:#e7f6ea,stroke:#2e8540,color:#123b1d",
    "other": "fill:#f2f2f2,stroke:#666666,color:#222222",
}
_MERMAID_SHAPES = {"router": ('("', '")'), "msee": ('[["', '"]]'), "gateway": ('{{"', '"}}'),
                   "host": ('(["', '"])'), "other": ('["', '"]')}
_ZONE_IDS = {ONPREM: "zone_onprem", EDGE: "zone_msee", AZURE: "zone_azure"}


def mermaid_ids(plan: LabPlan) -> dict[str, str]:
    """Node name -> its Mermaid id: "n_" and the name with anything but letters, digits and '_' as '_',
    made unique with a counter ("n_a_b", "n_a_b_2" for "a-b" and "a.b")."""
    ids: dict[str, str] = {}
    taken: set[str] = set(_ZONE_IDS.values())
    for name in plan.nodes:
        base = "n_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}_{n}"
        taken.add(candidate)
        ids[name] = candidate
    return ids


def _mermaid_text(text: str) -> str:
    """Text for inside a quoted Mermaid label, as entity codes where Mermaid would read syntax."""
    return (text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
            .replace("&", "#amp;").replace("\n", " "))  # fmt: skip


def mermaid(plan: LabPlan) -> str:
    """A Mermaid `flowchart LR` of the lab (paste into Markdown between ```mermaid fences)."""
    ids = mermaid_ids(plan)
    out = [f"%% bgplab lab {plan.name!r} (profile {plan.profile}) from {plan.source}".replace("\n", " "),
           "flowchart LR"]
    classes: dict[str, list[str]] = {}
    for title in ZONES:
        members = [node for node in plan.nodes.values() if zone(plan, node) == title]
        if not members:
            continue
        out.append(f'  subgraph {_ZONE_IDS[title]}["{_mermaid_text(title)}"]')
        for node in members:
            cls = _kind_class(node.kind)
            opening, closing = _MERMAID_SHAPES[cls]
            label = "<br/>".join(_mermaid_text(line) for line in _label_lines(plan, node))
            out.append(f"    {ids[node.name]}{opening}{label}{closing}")
            classes.setdefault(cls, []).append(ids[node.name])
        out.append("  end")
    for edge in edges(plan):
        texts = [f"{', '.join(edge.a_interfaces)} ↔ {', '.join(edge.b_interfaces)}"]
        texts += [text for text in (edge.vlan_text(), edge.rate_text()) if text]
        label = "<br/>".join(_mermaid_text(text) for text in texts)
        out.append(f'  {ids[edge.a]} ---|"{label}"| {ids[edge.b]}')
    for cls, style in _MERMAID_STYLES.items():
        if cls in classes:
            out.append(f"  classDef {cls} {style}")
    for cls, ids_of_class in classes.items():
        out.append(f"  class {','.join(ids_of_class)} {cls}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- SVG

_COLUMN_TITLES = ("on-premises hosts", "CE routers", "MSEEs", "gateways", "Azure hosts")
_ZONE_COLUMNS = {ONPREM: (0, 1), EDGE: (2,), AZURE: (3, 4)}
_FILL = {"router": ("#e0ecff", "#2f5fb3"), "msee": ("#fff1dc", "#c96a00"), "gateway": ("#efe5fb", "#7a3fb8"),
         "host": ("#e7f6ea", "#2e8540"), "other": ("#f2f2f2", "#666666")}
_ZONE_FILL = {ONPREM: ("#f6f7f9", "#b8bec8"), EDGE: ("#fff9f0", "#e2b877"), AZURE: ("#eef5fc", "#8fb6de")}
_LEGEND = (("router", "CE router"), ("msee", "MSEE"), ("gateway", "VNet gateway"), ("host", "host / VM"))

# Text widths are estimated (no font metrics here): generous per-character widths keep text inside.
_NAME_SIZE, _NAME_CHAR, _NAME_LINE = 13, 8.0, 18
_TEXT_SIZE, _TEXT_CHAR, _TEXT_LINE = 11, 6.6, 15
_SMALL_SIZE, _SMALL_CHAR = 10, 6.0
_PAD_X, _PAD_Y, _MIN_BOX = 14, 10, 110
_ROW_GAP, _MIN_COL_GAP, _MARGIN, _ZONE_PAD, _TOP = 26, 110, 36, 16, 64


def _n(value: float) -> str:
    return f"{round(value, 1):g}"


def _attr(text: str) -> str:
    return escape(text, {'"': "&quot;"})


@dataclass(slots=True)
class _Box:
    name: str
    cls: str
    lines: list[str]
    w: float
    h: float
    x: float = 0.0
    y: float = 0.0

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


def _box(plan: LabPlan, node: Node) -> _Box:
    lines = _label_lines(plan, node)
    width = max([len(lines[0]) * _NAME_CHAR] + [len(line) * _TEXT_CHAR for line in lines[1:]]) + 2 * _PAD_X
    height = 2 * _PAD_Y + _NAME_LINE + _TEXT_LINE * (len(lines) - 1)
    return _Box(node.name, _kind_class(node.kind), lines, max(float(_MIN_BOX), width), float(height))


def _text(x: float, y: float, text: str, size: int, *, anchor: str = "middle", weight: str = "normal",
          fill: str = "#1d1d1f", halo: bool = False) -> str:
    extra = ' stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke"' if halo else ""
    bold = ' font-weight="bold"' if weight == "bold" else ""
    return (f'<text x="{_n(x)}" y="{_n(y)}" font-size="{size}" text-anchor="{anchor}"{bold} fill="{fill}"{extra}>'
            f"{escape(text)}</text>")


def svg(plan: LabPlan) -> str:
    """A standalone SVG picture of the lab: columns on-prem hosts, CE routers, MSEEs, gateways and
    Azure hosts (rows in plan order), zones behind them, one line per physical link."""
    boxes = {name: _box(plan, node) for name, node in plan.nodes.items()}
    columns: list[list[_Box]] = [[] for _ in _COLUMN_TITLES]
    col_of: dict[str, int] = {}
    for name, node in plan.nodes.items():
        col = _column(plan, node)
        columns[col].append(boxes[name])
        col_of[name] = col
    links = edges(plan)
    used = [i for i, col in enumerate(columns) if col]

    def label_width(edge: Edge) -> float:
        ends = (len(", ".join(edge.a_interfaces)) + len(", ".join(edge.b_interfaces))) * _SMALL_CHAR
        middle = max(len(edge.vlan_text()), len(edge.rate_text())) * _SMALL_CHAR
        return ends + middle + 48

    # x: columns left to right, each gap wide enough for the labels of the links that cross it
    x = float(_MARGIN + _ZONE_PAD)
    col_x: dict[int, float] = {}
    col_w: dict[int, float] = {}
    for k, col in enumerate(used):
        col_x[col] = x
        col_w[col] = max(box.w for box in columns[col])
        if k + 1 < len(used):
            nxt = used[k + 1]
            crossing = [label_width(e) for e in links if {col_of[e.a], col_of[e.b]} == {col, nxt}]
            gap = max([float(_MIN_COL_GAP), *crossing])
            if _zone_of_column(col) != _zone_of_column(nxt):
                gap += 2 * _ZONE_PAD
            x += col_w[col] + gap
    width = (x + col_w[used[-1]] if used else x) + _ZONE_PAD + _MARGIN

    # y: rows in plan order, each column centred on the tallest one
    heights = {col: sum(b.h for b in columns[col]) + _ROW_GAP * (len(columns[col]) - 1) for col in used}
    tallest = max(heights.values(), default=0.0)
    body_top = float(_TOP + _ZONE_PAD + 18)
    for col in used:
        y = body_top + (tallest - heights[col]) / 2
        for box in columns[col]:
            box.x = col_x[col] + (col_w[col] - box.w) / 2
            box.y = y
            y += box.h + _ROW_GAP
    body_bottom = body_top + tallest
    legend_y = body_bottom + _ZONE_PAD + 34
    height = legend_y + 30

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(width)}" height="{_n(height)}" '
        f'viewBox="0 0 {_n(width)} {_n(height)}" font-family="Segoe UI, Helvetica, Arial, sans-serif" role="img">',
        f"<title>{escape(f'bgplab lab {plan.name}')}</title>",
        f'<rect x="0" y="0" width="{_n(width)}" height="{_n(height)}" fill="#ffffff"/>',
        _text(_MARGIN, 30, f"bgplab lab {plan.name}", 16, anchor="start", weight="bold"),
        _text(_MARGIN, 48, f"profile {plan.profile} · {plan.source}", _TEXT_SIZE, anchor="start", fill="#5b6270"),
    ]

    # zones
    for title in ZONES:
        cols = [c for c in _ZONE_COLUMNS[title] if c in col_x]
        if not cols:
            continue
        fill, stroke = _ZONE_FILL[title]
        left = min(col_x[c] for c in cols) - _ZONE_PAD
        right = max(col_x[c] + col_w[c] for c in cols) + _ZONE_PAD
        top, bottom = float(_TOP), body_bottom + _ZONE_PAD
        out.append(f'<rect x="{_n(left)}" y="{_n(top)}" width="{_n(right - left)}" height="{_n(bottom - top)}" '
                   f'rx="12" fill="{fill}" stroke="{stroke}" stroke-dasharray="6 4"/>')
        out.append(_text(left + 10, top + 18, title, 12, anchor="start", weight="bold", fill="#4a5160"))

    out.append('<g fill="none" stroke-linecap="round">')
    labels: list[str] = []
    ports, shapes = _ports(links, boxes, col_of, used[0] if used else 0)
    for i, edge in enumerate(links):
        out.append(f"<!-- {escape(edge.physical).replace('--', '- -')} -->")
        _draw_edge(i, edge, ports, shapes[i], out, labels)
    out.append("</g>")
    out.extend(labels)

    for box in boxes.values():
        fill, stroke = _FILL[box.cls]
        out.append(f'<g class="node {box.cls}" id="{_attr("node-" + box.name)}">')
        out.append(f'<rect x="{_n(box.x)}" y="{_n(box.y)}" width="{_n(box.w)}" height="{_n(box.h)}" rx="10" '
                   f'fill="{fill}" stroke="{stroke}" stroke-width="1.6"/>')
        y = box.y + _PAD_Y + _NAME_LINE - 4
        out.append(_text(box.cx, y, box.lines[0], _NAME_SIZE, weight="bold"))
        for line in box.lines[1:]:
            y += _TEXT_LINE if line is not box.lines[1] else _TEXT_LINE + 1
            out.append(_text(box.cx, y, line, _TEXT_SIZE, fill="#3d4350"))
        out.append("</g>")

    x = float(_MARGIN)
    for cls, text in _LEGEND:
        fill, stroke = _FILL[cls]
        out.append(f'<rect x="{_n(x)}" y="{_n(legend_y - 11)}" width="16" height="12" rx="3" fill="{fill}" '
                   f'stroke="{stroke}"/>')
        out.append(_text(x + 22, legend_y, text, _TEXT_SIZE, anchor="start", fill="#3d4350"))
        x += 22 + len(text) * _TEXT_CHAR + 24
    out.append(_text(x, legend_y, "one line per physical link; peerings on it as VLANs", _TEXT_SIZE,
                     anchor="start", fill="#5b6270"))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _zone_of_column(col: int) -> str:
    return next(title for title, cols in _ZONE_COLUMNS.items() if col in cols)


_Ports = dict[tuple[int, str], tuple[float, float]]
"""(edge index, node name) -> where the edge meets that node's box."""


def _ports(links: Sequence[Edge], boxes: Mapping[str, _Box], col_of: Mapping[str, int],
           first_column: int) -> tuple[_Ports, list[str]]:
    """Where each edge meets its boxes, and its shape: "straight" between columns, "vertical" between
    neighbours in a column, else a curve out to the "left" (to the "right" in the first column).
    Edges meeting one side of a box are spread along it, ordered by where their other end is."""
    sides: dict[tuple[str, str], list[tuple[float, int, str]]] = {}
    ports: _Ports = {}
    shapes: list[str] = []
    for i, edge in enumerate(links):
        a, b = boxes[edge.a], boxes[edge.b]
        ca, cb = col_of[edge.a], col_of[edge.b]
        if ca == cb:
            upper, lower = (a, b) if a.y <= b.y else (b, a)
            if _adjacent(upper, lower, boxes, col_of):
                shapes.append("vertical")
                ports[(i, upper.name)] = (upper.cx, upper.y + upper.h)
                ports[(i, lower.name)] = (lower.cx, lower.y)
            else:
                side = "right" if ca == first_column else "left"
                shapes.append(side)
                sides.setdefault((a.name, side), []).append((b.cy, i, a.name))
                sides.setdefault((b.name, side), []).append((a.cy, i, b.name))
            continue
        shapes.append("straight")
        left, right = (a, b) if ca < cb else (b, a)
        sides.setdefault((left.name, "right"), []).append((right.cy, i, left.name))
        sides.setdefault((right.name, "left"), []).append((left.cy, i, right.name))
    for (name, side), items in sides.items():
        box = boxes[name]
        x = box.x + box.w if side == "right" else box.x
        items.sort()
        span = box.h * 0.6
        for k, (_, i, _) in enumerate(items):
            y = box.cy if len(items) == 1 else box.cy - span / 2 + span * k / (len(items) - 1)
            ports[(i, name)] = (x, y)
    return ports, shapes


def _adjacent(upper: _Box, lower: _Box, boxes: Mapping[str, _Box], col_of: Mapping[str, int]) -> bool:
    col = col_of[upper.name]
    return not any(
        col_of[name] == col and upper.y < box.y < lower.y for name, box in boxes.items()
    )


def _draw_edge(i: int, edge: Edge, ports: _Ports, shape: str, out: list[str], labels: list[str]) -> None:
    x1, y1 = ports[(i, edge.a)]
    x2, y2 = ports[(i, edge.b)]
    a_text, b_text = ", ".join(edge.a_interfaces), ", ".join(edge.b_interfaces)
    middle = [text for text in (edge.vlan_text(), edge.rate_text()) if text]
    stroke = "#8a5a1f" if edge.vlans else "#59606c"
    width = "2.4" if edge.vlans else "1.6"
    if shape == "vertical":
        # adjacent boxes of one column: a short vertical line, labels to its right
        out.append(f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{stroke}" '
                   f'stroke-width="{width}"/>')
        top, bottom = (a_text, b_text) if y1 < y2 else (b_text, a_text)
        y_top, y_bottom = min(y1, y2), max(y1, y2)
        labels.append(_text(x1 + 6, y_top + 11, top, _SMALL_SIZE, anchor="start", fill="#3d4350", halo=True))
        labels.append(_text(x1 + 6, y_bottom - 4, bottom, _SMALL_SIZE, anchor="start", fill="#3d4350", halo=True))
        for k, text in enumerate(middle):
            labels.append(_text(x1 - 6, (y1 + y2) / 2 + 4 + 12 * k - 6 * (len(middle) - 1), text, _SMALL_SIZE,
                                anchor="end", fill="#5a3a10", halo=True))
        return
    if shape in ("left", "right"):
        # boxes of one column with others between them: a curve out to one side, its label at the apex
        sign = -1 if shape == "left" else 1
        bulge = sign * min(36.0 + abs(y2 - y1) / 8, 70.0)
        c = bulge * 4 / 3  # a cubic's apex is 3/4 of the way to its control points
        out.append(f'<path d="M {_n(x1)} {_n(y1)} C {_n(x1 + c)} {_n(y1)}, {_n(x2 + c)} {_n(y2)}, '
                   f'{_n(x2)} {_n(y2)}" stroke="{stroke}" stroke-width="{width}"/>')
        mx, my = (x1 + x2) / 2 + bulge + 4 * sign, (y1 + y2) / 2
        texts = [f"{a_text} ↔ {b_text}", *middle]
        for k, text in enumerate(texts):
            labels.append(_text(mx, my + 12 * k - 6 * (len(texts) - 1) + 4, text, _SMALL_SIZE,
                                anchor="end" if shape == "left" else "start", fill="#3d4350", halo=True))
        return
    out.append(f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{stroke}" '
               f'stroke-width="{width}"/>')
    (lx, ly, l_text), (rx, ry, r_text) = sorted([(x1, y1, a_text), (x2, y2, b_text)])

    def y_at(x: float) -> float:
        return ly + (ry - ly) * (x - lx) / (rx - lx) if rx != lx else ly

    labels.append(_text(lx + 8, y_at(lx + 8) - 5, l_text, _SMALL_SIZE, anchor="start", fill="#3d4350", halo=True))
    labels.append(_text(rx - 8, y_at(rx - 8) - 5, r_text, _SMALL_SIZE, anchor="end", fill="#3d4350", halo=True))
    if middle:
        mx = (lx + rx) / 2
        my = y_at(mx)
        w = max(len(text) for text in middle) * _SMALL_CHAR + 10
        h = 13.0 * len(middle) + 4
        labels.append(f'<rect x="{_n(mx - w / 2)}" y="{_n(my - h / 2)}" width="{_n(w)}" height="{_n(h)}" rx="4" '
                      f'fill="#ffffff" stroke="{stroke}" stroke-width="0.8"/>')
        for k, text in enumerate(middle):
            labels.append(_text(mx, my - h / 2 + 13 + 13 * k, text, _SMALL_SIZE, fill="#5a3a10"))
