"""What a node refuses when its kind lacks a capability, and how circuits and VNets are found:
no lab needs to run, the refusals come before anything is touched."""

from __future__ import annotations

import pytest

from bgplab.lab.faults import Fault, FaultError, Faults
from bgplab.lab.kinds import NotSupported, RunningNode, node_handle
from bgplab.lab.kinds.host import HostNode
from bgplab.lab.lab import Lab, LabError
from bgplab.lab.plan import LabPlan, Node


def test_a_host_refuses_daemon_control_and_events_naming_itself() -> None:
    host: RunningNode = HostNode(Node("vm1", "host", ("vm1",)))
    for ask, wanted in ((host.kill_daemon, "no BGP daemon of its own to kill"),
                        (host.restart_daemon, "no BGP daemon of its own to restart"),
                        (lambda: host.call("status"), "no bgplab control socket"),
                        (lambda: host.follow(since=0.0), "keeps no event stream")):
        with pytest.raises(NotSupported, match=wanted) as caught:
            ask()
        assert str(caught.value).startswith("vm1 (host) ")
    assert host.command_args(["ping", "x"]) == ["ping", "x"]  # commands run as given


def test_an_unknown_kind_is_refused_with_the_known_ones() -> None:
    plan = LabPlan("t", "fast", "t.yaml", {}, (), {})
    with pytest.raises(ValueError, match="kind 'cisco' cannot run in a lab; known kinds: frr, bird"):
        node_handle(plan, Node("r1", "cisco", ("r1",)), None, None)  # type: ignore[arg-type]


def test_circuits_and_vnets_are_found_by_the_plan_not_by_a_node_name_convention() -> None:
    plan = LabPlan("t", "fast", "t.yaml", {}, (), {"edge-a": Node("edge-a", "msee", ("edge-a.private",))},
                   circuits={"ams": ("edge-a", "edge-b")}, gateways={"hub": "gw-of-hub"})
    lab = Lab(plan)
    with pytest.raises(FaultError, match=r"no circuit 'lon' in lab t; circuits: ams"):
        Faults(lab).fail(Fault("peering", "lon"))
    with pytest.raises(LabError, match=r"no VNet 'spoke' in lab t; VNets: hub"):
        lab.gateway("spoke")
    with pytest.raises(LabError, match=r"no node 'gw-of-hub'"):  # the plan's name, not 'hub-gw'
        lab.gateway("hub")
