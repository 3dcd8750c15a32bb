"""What a node refuses when its kind lacks a capability: no lab needed, the refusal is the node's own."""

from __future__ import annotations

import pytest

from bgplab.lab.kinds import NotSupported, RunningNode, node_handle
from bgplab.lab.kinds.host import HostNode
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
