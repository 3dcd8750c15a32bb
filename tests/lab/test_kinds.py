"""BIRD, GoBGP and ExaBGP as lab routers: their generated configs pass the daemon's own checker,
a broken user config is refused naming its file and line, and a small ExpressRoute lab with each
as both CEs comes up through the CLI (sessions, routes, effective routes; pings through BIRD).

The labs run under unique names and private state directories, as in test_connect_to.py, and
are always taken down, checking that nothing of them is left.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bgplab.expressroute.profile import PROFILES
from bgplab.lab import system
from bgplab.lab.kinds import ConfigCheckError, bird, exabgp, gobgp, node_handle
from bgplab.lab.plan import LabPlan, Namespace, Node
from bgplab.lab.runtime import RUNTIMES
from bgplab.lab.runtime.netns import NetnsRuntime
from bgplab.lab.state import LabState
from bgplab.lab.topology import load_topology
from tests.lab.labcli import Cli, leftovers, running_lab, wait_for

FAST, AZURE = PROFILES["fast"].ce, PROFILES["azure"].ce

HERE = Path(__file__).parent / "kinds"
CONFIGS = HERE / "configs"

CE_INTENT: dict[str, Any] = {
    "asn": 65010,
    "router_id": "10.1.0.2",
    "announce": ["10.1.0.0/16", "2001:db8:1::/48"],
    "neighbors": [
        {"address": "192.168.100.134", "asn": 12076, "md5": "Se cr\\et", "bfd": True, "prepend": 2,
         "local_address": "192.168.100.133", "families": ["ipv4"], "role": "msee",
         "circuit": "contoso-ams", "peering": "private", "export": ["10.1.0.0/16"]},
        {"address": "2001:db8:100::6", "asn": 12076, "md5": "S3cret", "bfd": False, "prepend": 2,
         "local_address": "2001:db8:100::5", "families": ["ipv6"], "role": "msee",
         "circuit": "contoso-ams", "peering": "private", "export": ["2001:db8:1::/48"]},
        {"address": "10.0.12.1", "asn": 65010, "md5": None, "bfd": True, "prepend": 0, "local_address": None,
         "families": ["ipv4"], "role": "user"},
    ],
}


def written(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- generated configs, checked by each daemon


def test_bird_config_from_intent_passes_bird_and_programs_the_kernel(tmp_path: Path) -> None:
    text = bird.render_intent("ce2", CE_INTENT, FAST)
    bird.check_config(written(tmp_path, "bird.conf", text))
    assert "router id 10.1.0.2;" in text
    assert "protocol device" in text and "protocol direct" in text
    assert "protocol kernel kernel4 { ipv4 { import none; export where source != RTS_DEVICE; }; }" in text
    assert "route 10.1.0.0/16 blackhole;" in text and "route 2001:db8:1::/48 blackhole;" in text
    assert 'interface "*" { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; };' in text
    msee = text[text.index("protocol bgp bgp_192_168_100_134"):]
    msee = msee[: msee.index("\n}")]
    assert "local 192.168.100.133 as 65010;" in msee and "neighbor 192.168.100.134 as 12076;" in msee
    assert "hold time 9; keepalive time 3;" in msee and "connect retry time 1;" in msee
    assert 'password "Se cr\\et";' in msee and "bfd on;" in msee
    out = text[text.index("filter bgp_192_168_100_134_out"):]
    assert out[: out.index("\n}")].count("bgp_path.prepend(65010);") == 2
    ibgp = text[text.index("protocol bgp bgp_10_0_12_1"):]
    assert "next hop self;" in ibgp and "direct;" in ibgp and "bfd on;" in ibgp
    v6 = text[text.index("protocol bgp bgp_2001_db8_100__6"):]
    assert "ipv6 { import where net != ::/0;" in v6[: v6.index("\n}")] and "bfd on;" not in v6[: v6.index("\n}")]
    # Out, exactly the peering's prefixes; in, no default route; the iBGP partner gets everything.
    assert "  if !(net ~ [ 10.1.0.0/16 ]) then reject;" in out[: out.index("\n}")]
    assert "ipv4 { import where net != 0.0.0.0/0;" in msee
    assert "ipv4 { import all;" in ibgp and "net ~" not in text[text.index("filter bgp_10_0_12_1_out"):]


def test_bird_azure_profile_keeps_bird_timers_and_no_bfd_without_asking(tmp_path: Path) -> None:
    intent = {**CE_INTENT, "neighbors": [{**n, "bfd": False} for n in CE_INTENT["neighbors"]]}
    text = bird.render_intent("ce2", intent, AZURE)
    bird.check_config(written(tmp_path, "bird.conf", text))
    assert "hold time" not in text and "protocol bfd" not in text


@pytest.mark.parametrize(("module", "password"), [(bird, 'a"b'), (exabgp, 'a"b'), (exabgp, "a'b")])
def test_a_password_the_config_cannot_hold_is_refused_without_showing_it(module: Any, password: str) -> None:
    intent = {**CE_INTENT, "neighbors": [{**CE_INTENT["neighbors"][0], "md5": password}]}
    with pytest.raises(ConfigCheckError, match=r"ce2: the MD5 password toward 192\.168\.100\.134 has a") as caught:
        module.render_intent("ce2", intent, FAST)
    assert password not in str(caught.value)


def test_gobgp_and_exabgp_send_each_msee_only_its_peerings_list(tmp_path: Path) -> None:
    """GoBGP: an export statement per MSEE session rejecting whatever its prefix set does not hold
    (the set inverted), and an import statement refusing the default route; gobgpd's own parser
    takes it. ExaBGP, which announces only its own prefixes: each MSEE block holds its list's."""
    msee4, msee6, ibgp = CE_INTENT["neighbors"]
    intent = {**CE_INTENT, "announce": [*CE_INTENT["announce"], "10.64.1.0/24", "192.0.2.0/24"], "neighbors": [
        {**msee4, "export": ["10.1.0.0/16", "10.64.0.0/14+"]}, {**msee6, "export": []},
        {**ibgp, "local_address": "10.0.12.2"}]}
    text = gobgp.render_intent("ce2", intent, FAST)
    gobgp.check_config(written(tmp_path, "gobgpd.toml", text))
    assert ('    ip-prefix = "10.1.0.0/16"\n    masklength-range = "16..16"' in text
            and '    ip-prefix = "10.64.0.0/14"\n    masklength-range = "14..32"' in text)
    assert text.count('match-set-options = "invert"') == 1  # msee6 has nothing to send: rejected outright
    assert text.count('route-disposition = "reject-route"') == 4  # two out, two in (the defaults)
    assert 'import-policy-list = ["bgplab-in"]' in text
    text = exabgp.render_intent("ce2", intent, FAST)
    block = text[text.index("neighbor 192.168.100.134"):]
    block = block[: block.index("\n}")]
    assert "route 10.1.0.0/16" in block and "route 10.64.1.0/24" in block and "192.0.2.0" not in block
    v6 = text[text.index("neighbor 2001:db8:100::6"):]
    assert "static" not in v6[: v6.index("\n}")]


def test_a_password_with_quotes_is_escaped_for_gobgp(tmp_path: Path) -> None:
    intent = {**CE_INTENT, "neighbors": [{**CE_INTENT["neighbors"][0], "md5": 'a"b\\c'}]}
    text = gobgp.render_intent("ce2", intent, FAST)
    gobgp.check_config(written(tmp_path, "gobgpd.toml", text))
    assert 'auth-password = "a\\"b\\\\c"' in text


def test_gobgp_config_from_intent_passes_gobgpd_dry_run(tmp_path: Path) -> None:
    text = gobgp.render_intent("ce2", CE_INTENT, FAST)
    gobgp.check_config(written(tmp_path, "gobgpd.toml", text))
    assert 'auth-password = "Se cr\\\\et"' in text
    assert 'local-address = "192.168.100.133"' in text
    assert text.count("hold-time = 9") == 3 and text.count("connect-retry = 1") == 3
    assert 'afi-safi-name = "ipv6-unicast"' in text
    assert 'neighbor-info-list = ["10.0.12.1"]' in text and 'set-next-hop = "self"' in text
    assert 'neighbor-info-list = ["192.168.100.134", "2001:db8:100::6"]' in text
    assert 'as = "65010"' in text and "repeat-n = 2" in text
    assert 'export-policy-list = ["bgplab-out"]' in text
    assert "bfd" not in text


def test_gobgp_config_without_policies_has_none(tmp_path: Path) -> None:
    intent = {"asn": 65010, "router_id": "10.1.0.2", "neighbors": [
        {"address": "192.168.100.134", "asn": 12076, "families": ["ipv4"]}]}
    text = gobgp.render_intent("ce", intent, AZURE)
    gobgp.check_config(written(tmp_path, "gobgpd.toml", text))
    assert "policy" not in text and "hold-time" not in text


def test_exabgp_config_from_intent_passes_exabgp_validate(tmp_path: Path) -> None:
    with pytest.raises(ConfigCheckError, match=r"needs its own address toward 10\.0\.12\.1, and none is known"):
        exabgp.render_intent("ce2", CE_INTENT, FAST)  # next-hop self needs a local address
    user = {**CE_INTENT["neighbors"][2], "local_address": "10.0.12.2"}
    text = exabgp.render_intent("ce2", {**CE_INTENT, "neighbors": [*CE_INTENT["neighbors"][:2], user]}, FAST)
    exabgp.check_config(written(tmp_path, "exabgp.conf", text))
    blocks = text.split("\nneighbor ")
    msee, msee6, user = blocks[1], blocks[2], blocks[3]
    assert "local-address 192.168.100.133;" in msee and "listen 179;" in msee and "hold-time 9;" in msee
    assert "route 10.1.0.0/16 next-hop self origin igp as-path [ 65010 65010 65010 ];" in msee
    assert "2001:db8:1::/48" not in msee and "route 2001:db8:1::/48" in msee6
    assert 'md5-password "Se cr\\et";' in msee
    # iBGP: no own ASN in front, no prepend
    assert "route 10.1.0.0/16 next-hop self origin igp;" in user and "local-address 10.0.12.2;" in user


def test_exabgp_node_fills_local_addresses_from_the_plan_and_adds_its_api(tmp_path: Path) -> None:
    plan = LabPlan("t", "fast", "t.yaml", {"ce2": Namespace("ce2", "ce2", (("ibgp", "10.0.12.2/30"),))}, (),
                   {"ce2": Node("ce2", "exabgp", ("ce2",), {"intent": CE_INTENT})})
    node = exabgp.ExabgpNode(plan, plan.nodes["ce2"], unbuilt(plan, tmp_path), tmp_path)
    intent = node.intent()
    assert intent["neighbors"][2]["local_address"] == "10.0.12.2"
    assert CE_INTENT["neighbors"][2]["local_address"] is None  # the plan's own data is left alone
    (tmp_path / "helper.py").write_text("")
    config = node.with_api(node.config_text())
    exabgp.check_config(written(tmp_path, "exabgp.conf", config))
    assert config.count(f"processes [ {exabgp.API_PROCESS} ]") == 3
    assert exabgp.configured_neighbors(config) == {
        "192.168.100.134": (65010, 12076), "2001:db8:100::6": (65010, 12076), "10.0.12.1": (65010, 65010)}


# ---------------------------------------------------------------- a user's broken config, refused by the daemon


def unbuilt(plan: LabPlan, root: Path) -> NetnsRuntime:
    """The netns runtime of a plan, nothing of it created: enough to render a node's config."""
    return NetnsRuntime(plan, LabState(plan.name, root))


def start_user_config(kind: str, path: Path, workdir: Path) -> None:
    """Start a node with the user's file in a real namespace of its own (its checker runs in the
    node), which goes with the lab's state whatever happens."""
    name = f"uc{secrets.token_hex(3)}"
    plan = LabPlan(name, "fast", "t.yaml", {"ce1": Namespace("ce1", "ce1")}, (),
                   {"ce1": Node("ce1", kind, ("ce1",), {"config": str(path)})})
    state = LabState(name, workdir.parent / "state")
    state.begin({})
    try:
        runtime = NetnsRuntime(plan, state)
        runtime.create_namespaces()
        node_handle(plan, plan.nodes["ce1"], runtime, workdir).start()
    finally:
        state.teardown()


@pytest.mark.parametrize(("kind", "file", "where"), [
    ("bird", "bird-broken.conf", "bird-broken.conf:6:3 syntax error"),
    ("gobgp", "gobgp-broken.toml", "line 7, column 24:"),
    ("exabgp", "exabgp-broken.conf", "line 6: hold-tme 9;"),
])
def test_a_broken_user_config_is_refused_naming_its_file_and_line(
    kind: str, file: str, where: str, tmp_path: Path
) -> None:
    path = CONFIGS / file
    with pytest.raises(ConfigCheckError) as caught:
        start_user_config(kind, path, tmp_path / "ce1")
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and where in message, message
    assert not (tmp_path / "ce1" / "bird.pid").exists()


def test_bird_runs_a_user_config_behind_its_own_preamble(tmp_path: Path) -> None:
    user = written(tmp_path, "ce1.conf", (
        "router id 10.9.0.1;\nprotocol device {}\nprotocol bgp msee {\n  local as 65010;\n"
        "  neighbor 192.168.50.1 as 12076;\n  ipv4 { import all; export none; };\n}\n"
    ))
    plan = LabPlan("t", "fast", "t.yaml", {"ce1": Namespace("ce1", "ce1")}, (),
                   {"ce1": Node("ce1", "bird", ("ce1",), {"config": str(user)})})
    node = bird.BirdNode(plan, plan.nodes["ce1"], None, tmp_path / "ce1")  # type: ignore[arg-type]
    assert node.config_text() == user.read_text()
    copy = written(tmp_path, "node.conf", node.config_text())
    preamble = written(tmp_path, "bird.conf", node.preamble(copy))
    bird.check_config(preamble)
    assert f'log "{tmp_path / "ce1" / "bird.log"}" all;' in preamble.read_text()
    assert f'include "{copy}";' in preamble.read_text()


def test_exabgp_user_config_gets_the_api_in_each_top_level_neighbor(tmp_path: Path) -> None:
    user = written(tmp_path, "user.conf", (
        "template {\n  neighbor base {\n    local-as 65010;\n  }\n}\n"
        "neighbor 192.168.50.1 { # the MSEE\n  inherit base;\n  router-id 10.9.0.1;\n"
        "  local-address 192.168.50.2;\n  peer-as 12076;\n}\n"
    ))
    exabgp.check_config(user)
    plan = LabPlan("t", "fast", "t.yaml", {"ce1": Namespace("ce1", "ce1")}, (),
                   {"ce1": Node("ce1", "exabgp", ("ce1",), {"config": str(user)})})
    node = exabgp.ExabgpNode(plan, plan.nodes["ce1"], unbuilt(plan, tmp_path), tmp_path)
    (tmp_path / "helper.py").write_text("")
    config = node.with_api(node.config_text())
    exabgp.check_config(written(tmp_path, "exabgp.conf", config))
    assert config.count("api bgplab-api-") == 1
    assert exabgp.configured_neighbors(config) == {"192.168.50.1": (None, 12076)}


def test_unknown_kind_names_the_known_ones() -> None:
    plan = LabPlan("t", "fast", "t.yaml", {}, (), {})
    with pytest.raises(ConfigCheckError, match=r"kind 'cisco' cannot run in a lab; known kinds: frr, bird, gobgp"):
        node_handle(plan, Node("r1", "cisco", ("r1",)), None, Path("/nonexistent"))  # type: ignore[arg-type]


# ---------------------------------------------------------------- parsing birdc's text


BIRD_PROTOCOLS = """\
BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     2026-01-02 03:04:05.678
bgp_192_168_110_2 BGP        ---        up     2026-01-02 03:04:06.000  Established
  Description:    msee
  BGP state:          Established
    Neighbor address: 192.168.110.2
    Neighbor AS:      12076
    Local AS:         65020
  Channel ipv4
    State:          UP
    Routes:         1 imported, 2 filtered, 3 exported, 1 preferred
bgp_10_0_21_2 BGP        ---        start  2026-01-02 03:04:07.000  Active        Socket: Connection refused
  BGP state:          Active
    Neighbor address: 10.0.21.2
    Neighbor AS:      65020
    Local AS:         65020
"""

BIRD_ROUTES = """\
BIRD 2.0.12 ready.
Table master4:
10.120.0.0/16        unicast [bgp_192_168_110_2 03:04:06.000] * (100) [AS12076i]
\tvia 192.168.110.2 on eth1.100
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 12076
\tBGP.next_hop: 192.168.110.2
\tBGP.local_pref: 100
\tBGP.community: (12076,20001)
                     unicast [bgp_10_0_21_2 03:04:07.000] (100) [AS12076i]
\tvia 10.0.21.2 on ibgp
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 12076
\tBGP.next_hop: 10.0.21.2
\tBGP.local_pref: 100
10.21.0.0/16         blackhole [announce4 03:04:05.000] * (200)
\tType: static univ
"""


def test_gobgp_flaps_are_sessions_that_went_down_from_established() -> None:
    log = "\n".join([
        'time="t" level=info msg="Peer Up" Key=10.0.31.1 State=BGP_FSM_OPENCONFIRM Topic=Peer',
        'time="t" level=info msg="Peer Down" Key=10.0.31.1 Reason=read-failed State=BGP_FSM_ESTABLISHED Topic=Peer',
        'time="t" level=info msg="Peer Down" Key=10.0.31.1 Reason=x State=BGP_FSM_OPENCONFIRM Topic=Peer',
        'time="t" level=info msg="Peer Down" Key=192.168.120.2 Reason="a b" State=BGP_FSM_ESTABLISHED Topic=Peer',
        'time="t" level=info msg="Peer Down" Key=192.168.120.2 Reason="a b" State=BGP_FSM_ESTABLISHED Topic=Peer',
    ])
    assert gobgp.count_flaps(log) == {"10.0.31.1": 1, "192.168.120.2": 2}


def test_exabgp_messages_make_sessions_and_routes() -> None:
    def msg(kind: str, peer: str, **neighbor: Any) -> dict[str, Any]:
        return {"time": 1000.0, "type": kind, "neighbor": {
            "address": {"local": "192.168.130.1", "peer": peer}, "asn": {"local": 65040, "peer": 12076}, **neighbor}}

    update = {"attribute": {"origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [12076]}},
                            "community": [[12076, 20001]]},
              "announce": {"ipv4 unicast": {"192.168.130.2": [{"nlri": "10.140.0.0/16"}]}}}
    feed = exabgp._Feed()
    for m in [msg("state", "192.168.130.2", state="connected"), msg("state", "192.168.130.2", state="up"),
              msg("update", "192.168.130.2", direction="receive", message={"update": update})]:
        exabgp.apply_message(feed, m)
    assert feed.states == {"192.168.130.2": "established"} and feed.since["192.168.130.2"] == 1000.0
    route = feed.received["192.168.130.2"]["10.140.0.0/16"]
    assert (route["path"], route["next_hop"], route["communities"]) == ("12076", "192.168.130.2", ["12076:20001"])
    exabgp.apply_message(feed, msg("state", "192.168.130.2", state="down"))
    assert feed.states["192.168.130.2"] == "idle" and feed.flaps == {"192.168.130.2": 1}
    assert "192.168.130.2" not in feed.received  # the session's routes went with it


def test_bird_text_is_parsed_into_the_common_schema() -> None:
    protocols = bird.parse_protocols(BIRD_PROTOCOLS)
    assert [(p["name"], p["proto"], p["state"]) for p in protocols] == [
        ("device1", "Device", "up"), ("bgp_192_168_110_2", "BGP", "up"), ("bgp_10_0_21_2", "BGP", "start")]
    msee = protocols[1]
    assert (msee["neighbor"], msee["remote_as"], msee["local_as"], msee["bgp_state"]) == (
        "192.168.110.2", 12076, 65020, "Established")
    assert (msee["imported"], msee["filtered"], msee["exported"], msee["since"]) == (
        1, 2, 3, "2026-01-02 03:04:06.000")
    routes = list(bird.parse_routes(BIRD_ROUTES))
    assert [(r[0], r[1], r[2]) for r in routes] == [
        ("10.120.0.0/16", "bgp_192_168_110_2", True), ("10.120.0.0/16", "bgp_10_0_21_2", False),
        ("10.21.0.0/16", "announce4", True)]
    assert routes[0][3]["BGP.community"] == "(12076,20001)"
    log = "\n".join(f"2026-01-02 <TRACE> {name}: State changed to {state}" for name, state in [
        ("p1", "start"), ("p1", "up"), ("p1", "stop"), ("p1", "down"), ("p1", "start"), ("p1", "up"),
        ("p2", "start"), ("p2", "up"), ("p1", "stop")])
    assert bird.count_flaps(log) == {"p1": 2}
    assert bird.parse_bfd_sessions(
        "bfd1:\nIP address  Interface  State  Since  Interval  Timeout\n"
        "10.0.21.2   ibgp  Up  2026-01-02 03:04:05  0.300  0.900\n"
        "192.168.110.2  eth1.100  Init  2026-01-02 03:04:05  1.000  0.000\n"
    ) == {"10.0.21.2": "up", "192.168.110.2": "init"}


# ---------------------------------------------------------------- whole labs through the CLI


Lab = tuple[Cli, str, dict[str, Any]]


def bring_up(topology: str, prefix: str, runtime: str) -> Iterator[Lab]:
    with running_lab(HERE / topology, prefix, runtime) as lab:
        yield lab


@pytest.fixture(scope="module")
def bird_lab(runtime: str) -> Iterator[Lab]:
    yield from bring_up("bird.yaml", "kb", runtime)


@pytest.fixture(scope="module")
def gobgp_lab(runtime: str) -> Iterator[Lab]:
    yield from bring_up("gobgp.yaml", "kg", runtime)


@pytest.fixture(scope="module")
def exabgp_lab(runtime: str) -> Iterator[Lab]:
    yield from bring_up("exabgp.yaml", "kx", runtime)


def received_at(lab: Lab, msee: str) -> list[tuple[str, str]]:
    """What an MSEE received from its CE, once it has: a CE's announcement follows its session
    by the CE's own timing, and the gateway's choice may come from the other MSEE first."""
    cli, name, _ = lab

    def rows() -> list[tuple[str, str]]:
        return [(r["network"], r["path"]) for r in cli.json("routes", msee, "--lab", name, "--direction", "received")]

    wait_for(f"routes received at {msee}", rows)
    return rows()


def check_lab(lab: Lab, edges: list[str], vnet: str, ce_prefix: str, sessions: int) -> dict[str, list[Any]]:
    """What every kind must show: all sessions up, the VNet's prefix at each CE from 12076, the CE's
    prefix active in the VNet's effective routes through both MSEEs' links, every node healthy."""
    cli, name, up = lab
    assert up["established"] is True, up
    rows = up["sessions"]
    assert len(rows) == sessions and {r["state"] for r in rows} == {"established"}
    for r in (r for r in rows if r["node"] in edges):
        assert r["uptime"] is not None and r["flaps"] == 0
        assert r["role"] == ("ibgp" if r["remote_as"] == r["local_as"] else "ebgp")
    msee_sessions = [r for r in rows if r["node"] in edges and r["remote_as"] == 12076 and ":" not in r["neighbor"]]
    assert len(msee_sessions) == 2  # IPv4: one per link, whether one node is both edges or two are
    assert all(r["received"] >= 1 and r["advertised"] >= 1 for r in msee_sessions)
    routes: dict[str, list[Any]] = {}
    for ce in sorted(set(edges)):
        def vnet_best(ce: str = ce) -> list[dict[str, Any]]:
            return [r for r in cli.json("routes", ce, "--lab", name) if r["network"] == vnet and r["best"]]

        best = wait_for(f"{vnet} at {ce}", vnet_best)
        assert best[0]["path"] == "12076" and best[0]["source"] == best[0]["next_hop"], best
        routes[ce] = cli.json("routes", ce, "--lab", name)
        own = [r for r in routes[ce] if r["network"] == ce_prefix and r["source"] == "local"]
        assert own and own[0]["best"], routes[ce]

    def active() -> list[dict[str, Any]]:
        return [r for r in cli.json("effective-routes", "hub", "--lab", name)
                if r["addressPrefix"] == [ce_prefix] and r["state"] == "Active"]

    assert wait_for(f"{ce_prefix} in the gateway's effective routes", active)[0]["nextHopType"] == (
        "VirtualNetworkGateway")
    status = cli.json("status", "--lab", name)
    assert {n: v["problem"] for n, v in status["nodes"].items() if v["problem"]} == {}
    return routes


@pytest.mark.lab
@pytest.mark.timeout(300)
def test_bird_lab_forwards_packets_between_the_vnet_and_on_premises(bird_lab: Lab) -> None:
    cli, name, up = bird_lab
    routes = check_lab(bird_lab, ["ce1", "ce2"], "10.120.0.0/16", "10.21.0.0/16", sessions=18)

    def bfd_up() -> list[dict[str, Any]]:
        rows = [r for r in cli.json("status", "--lab", name)["sessions"] if r["node"] in ("ce1", "ce2")
                and r["neighbor"] in ("192.168.110.2", "192.168.110.6", "10.0.21.2")]
        return rows if [r["bfd"] for r in rows] == ["up", "up", "up"] else []

    # the MSEE's BFD, answered by BIRD's, and BFD on the iBGP session between the two BIRDs
    ibgp = [r for r in wait_for("BFD up at both CEs", bfd_up) if r["neighbor"] == "10.0.21.2"]
    assert ibgp[0]["role"] == "ibgp" and ibgp[0]["node"] == "ce1"
    msee_view = [r for r in up["sessions"] if r["node"] == "kb-ams-msee1" and r["neighbor"] == "192.168.110.1"]
    assert msee_view[0]["remote_as"] == 65020
    # ce2 learns the VNet from ce1 too, with next-hop-self (ce1's address, not the MSEE's)
    from_ce1 = [r for r in cli.json("routes", "ce2", "--lab", name) if r["network"] == "10.120.0.0/16"
                and r["source"] == "10.0.21.1"]
    assert from_ce1 and from_ce1[0]["next_hop"] == "10.0.21.1" and from_ce1[0]["local_pref"] == 100
    assert next(r for r in routes["ce1"] if r["network"] == "10.120.0.0/16" and r["best"])["local_pref"] is None
    # ce2 prepends twice toward its MSEE; the gateway prefers ce1's MSEE
    assert received_at(bird_lab, "kb-ams-msee2") == [("10.21.0.0/16", "65020 65020 65020")]
    effective = [r for r in cli.json("effective-routes", "hub", "--lab", name) if r["addressPrefix"] == [
        "10.21.0.0/16"] and r["state"] == "Active"]
    assert effective[0]["nextHopIpAddress"] == ["169.254.0.1"]
    # the kernel FIB: BIRD's routes, the announced prefix as a blackhole, no copies of connected ones
    fib = cli.run("exec", "--lab", name, "ce1", "--", "ip", "route", "show", "proto", "bird").stdout
    assert "10.120.0.0/16 via 192.168.110.2 dev eth1.100" in fib and "blackhole 10.21.0.0/16" in fib
    assert "10.21.1.0/24" not in fib
    there = cli.run("exec", "--lab", name, "vm1", "--", "ping", "-c", "2", "-i", "0.2", "-W", "1", "10.21.1.10",
                    check=False)
    assert there.returncode == 0, there.stdout + there.stderr
    back = cli.run("exec", "--lab", name, "onprem", "--", "ping", "-c", "2", "-i", "0.2", "-W", "1", "10.120.1.10",
                   check=False)
    assert back.returncode == 0, back.stdout + back.stderr


@pytest.mark.lab
@pytest.mark.timeout(300)
def test_bird_session_flaps_are_counted(bird_lab: Lab) -> None:
    cli, name, _ = bird_lab
    socket = cli.state_dir / name / "nodes" / "ce2" / "bird.ctl"
    for command in ("disable", "enable"):
        system.run(["birdc", "-s", str(socket), command, "bgp_10_0_21_1"])

    def back_up() -> list[dict[str, Any]]:
        return [r for r in cli.json("status", "--lab", name)["sessions"]
                if r["node"] == "ce2" and r["neighbor"] == "10.0.21.1" and r["state"] == "established"]

    assert wait_for("ce2's iBGP session back up", back_up)[0]["flaps"] == 1


@pytest.mark.lab
@pytest.mark.timeout(300)
def test_gobgp_lab_is_up_with_its_policies(gobgp_lab: Lab) -> None:
    cli, name, up = gobgp_lab
    routes = check_lab(gobgp_lab, ["ce1", "ce2"], "10.130.0.0/16", "10.31.0.0/16", sessions=14)
    assert {r["bfd"] for r in up["sessions"] if r["node"] in ("ce1", "ce2")} == {None}
    from_ce2 = [r for r in routes["ce1"] if r["network"] == "10.130.0.0/16" and r["source"] == "10.0.31.2"]
    assert from_ce2 and from_ce2[0]["next_hop"] == "10.0.31.2"  # next-hop-self on iBGP
    assert received_at(gobgp_lab, "kg-ams-msee2") == [("10.31.0.0/16", "65030 65030 65030")]
    assert received_at(gobgp_lab, "kg-ams-msee1") == [("10.31.0.0/16", "65030")]
    socket = cli.state_dir / name / "nodes" / "ce1" / "api.sock"
    for command in ("disable", "enable"):  # not `reset`: GoBGP 3 then idles 30 s, whatever its config says
        system.run(["gobgp", "--target", f"unix://{socket}", "neighbor", "192.168.120.2", command])

    def back_up() -> list[dict[str, Any]]:
        return [r for r in cli.json("status", "--lab", name)["sessions"] if r["node"] == "ce1"
                and r["neighbor"] == "192.168.120.2" and r["state"] == "established" and r["flaps"]]

    assert wait_for("ce1's MSEE session back up", back_up)[0]["flaps"] == 1


@pytest.mark.lab
@pytest.mark.timeout(300)
def test_exabgp_lab_is_up_as_one_ce_on_both_links(exabgp_lab: Lab) -> None:
    cli, name, up = exabgp_lab
    routes = check_lab(exabgp_lab, ["ce1", "ce1"], "10.140.0.0/16", "10.41.0.0/16", sessions=12)
    vnet = [r for r in routes["ce1"] if r["network"] == "10.140.0.0/16"]
    assert sorted(r["source"] for r in vnet) == ["192.168.130.2", "192.168.130.6"]
    assert [r["best"] for r in vnet] == [True, False]
    for msee in ("kx-ams-msee1", "kx-ams-msee2"):
        assert received_at(exabgp_lab, msee) == [("10.41.0.0/16", "65040 65040")]
    ce = [r for r in up["sessions"] if r["node"] == "ce1"]
    assert [(r["received"], r["advertised"]) for r in ce] == [(1, 1), (1, 1)]


@pytest.mark.lab
@pytest.mark.timeout(300)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_up_with_a_broken_bird_config_exits_2_naming_the_file_and_leaves_nothing(tmp_path: Path, runtime: str) -> None:
    state = Path(tempfile.mkdtemp(prefix="bgplab-test-"))
    state.chmod(0o755)
    cli = Cli(state)
    name = f"kf{secrets.token_hex(3)}"
    topology = tmp_path / "broken.yaml"
    topology.write_text(f"name: broken\nnodes:\n  ce1: {{kind: bird, config: {CONFIGS / 'bird-broken.conf'}}}\n")
    try:
        proc = cli.run("up", str(topology), "--name", name, "--runtime", runtime, check=False)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"{CONFIGS / 'bird-broken.conf'}:6:3 syntax error" in proc.stderr
    finally:
        cli.run("down", name, check=False)
        shutil.rmtree(state, ignore_errors=True)
    assert not any(leftovers(name, runtime).values())


def test_lab_topologies_load() -> None:
    for path in sorted(HERE.glob("*.yaml")):
        plan = load_topology(path)
        assert {n.kind for n in plan.nodes.values()} & {"bird", "gobgp", "exabgp", "linux"}, path
