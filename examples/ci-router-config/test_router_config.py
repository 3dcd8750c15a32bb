"""Contoso's router configs, tested in CI against bgplab's ExpressRoute emulation.

Run with `.venv/bin/pytest examples/ci-router-config` (the bgplab pytest plugin provides the fixture).
Each test states one thing the network team promises; a config change that breaks it fails here,
not in the maintenance window.
"""

from __future__ import annotations

from typing import Any

import pytest

PRIMARY, SECONDARY = "169.254.0.1", "169.254.0.5"


@pytest.fixture(scope="module")
def lab(bgplab_module_lab: Any) -> Any:
    lab = bgplab_module_lab("lab.yaml")
    lab.expect({"sessions": "established"}, within=30)
    return lab


def test_only_the_on_premises_aggregate_goes_to_azure(lab: Any) -> None:
    lab.expect({"route": {"at": "contoso-ams-msee1", "prefix": "10.1.0.0/16", "direction": "received"}})
    rows = lab.routes("contoso-ams-msee1", peering="private", direction="received")
    assert [r["network"] for r in rows] == ["10.1.0.0/16"]


def test_azure_prefers_the_primary_link(lab: Any) -> None:
    lab.expect({"effective_route": {"vnet": "hub", "prefix": "10.1.0.0/16", "next_hops": [PRIMARY]}})


def test_the_vnet_is_learned_with_local_preference_200_on_the_primary(lab: Any) -> None:
    lab.expect({"route": {"at": "ce1", "prefix": "10.100.0.0/16", "path": "12076", "next_hop": "192.168.100.130"}})
    [best] = [r for r in lab.routes("ce1") if r["network"] == "10.100.0.0/16" and r["best"]]
    assert best["local_pref"] == 200


def test_primary_link_loss_fails_over_within_the_bfd_budget(lab: Any) -> None:
    probe = lab.probe("vm-onprem", "azure-vm", "onprem", rate=200)
    lab.expect({"path": {"probe": "vm-onprem", "via": "contoso-ams-msee1.private"}})
    lab.expect({"sessions": {"node": "contoso-ams-msee1", "neighbor": "192.168.100.129", "bfd": "up"}})
    lab.fail("cut", "ce1:eth1")
    try:
        lab.expect({"effective_route": {"vnet": "hub", "prefix": "10.1.0.0/16", "next_hops": [SECONDARY]}},
                   within=3)
        lab.expect({"path": {"probe": "vm-onprem", "via": "contoso-ams-msee2.private"}}, within=3)
        lab.expect({"probe": "vm-onprem", "loss_window": {"count": 1, "max": "1.5s"}})
    finally:
        lab.restore("cut", "ce1:eth1")
    assert probe.snapshot().windows


async def test_the_primary_comes_back_after_the_link_does(lab: Any) -> None:
    await lab.wait_for({"effective_route": {"vnet": "hub", "prefix": "10.1.0.0/16", "next_hops": [PRIMARY]}},
                       within=20)
