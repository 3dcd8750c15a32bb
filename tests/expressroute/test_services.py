"""The Microsoft-peering services catalogue: the packaged data, and what a user's own file must look like."""

from __future__ import annotations

import ipaddress
import itertools
from pathlib import Path

import pytest

from bgplab.bgp.routesyntax import parse_community
from bgplab.expressroute.services import CatalogueError, Region, Service, load_catalogue

SERVICES = {
    "exchange-online": ("12076:5010", True),
    "sharepoint-online": ("12076:5020", True),
    "teams": ("12076:5030", True),
    "crm-online": ("12076:5040", False),
    "azure-global-services": ("12076:5050", False),
    "entra-id": ("12076:5060", False),
    "azure-resource-manager": ("12076:5070", False),
    "other-office-365": ("12076:5100", True),
    "defender-for-identity": ("12076:5220", False),
    "pstn": ("12076:5250", False),
}
REGIONAL = {"storage": "12076:52000", "sql": "12076:53000", "cosmos-db": "12076:54000", "backup": "12076:55000"}
"""Regional service families (the routing page: Storage 52xxx, SQL 53xxx, Cosmos DB 54xxx, Backup 55xxx)."""
PREFIX_REGIONS = ("west-europe", "north-europe", "east-us", "west-us", "uk-south", "southeast-asia")
STAND_IN_V4 = ipaddress.IPv4Network("198.18.0.0/15")
STAND_IN_V6 = ipaddress.IPv6Network("2001:db8:f000::/36")


def c(text: str) -> int:
    return parse_community(text)


def test_every_region_of_the_reference_table_with_both_communities() -> None:
    regions = load_catalogue().regions
    assert len(regions) == 42
    assert regions["west-europe"] == Region("west-europe", "West Europe", c("12076:50002"), c("12076:51002"), "europe")
    assert regions["east-us"] == Region("east-us", "East US", c("12076:50004"), c("12076:51004"), "north-america")
    assert regions["east-us-2"].microsoft_community == c("12076:51005")
    assert regions["new-zealand-north"].microsoft_community == c("12076:51059")
    for key, region in regions.items():
        assert key == region.name.lower().replace(" ", "-")
        assert region.microsoft_community - region.private_community == 1000
        assert 51000 <= region.microsoft_community & 0xFFFF <= 51999 and region.microsoft_community >> 16 == 12076


def test_every_service_of_the_reference_table() -> None:
    services = load_catalogue().services
    assert {k: (f"12076:{s.community & 0xFFFF}", s.microsoft365) for k, s in services.items()
            if s.community is not None} == SERVICES
    assert services["exchange-online"] == Service("exchange-online", "Exchange Online", c("12076:5010"), True)
    assert {k: f"12076:{s.regional & 0xFFFF}" for k, s in services.items() if s.regional is not None} == REGIONAL


def test_a_regional_service_carries_its_family_with_the_regions_last_three_digits() -> None:
    catalogue = load_catalogue()
    # The routing page's own example: East US Storage is 12076:52004.
    assert catalogue.services["storage"].community_in(catalogue.regions["east-us"]) == c("12076:52004")
    assert catalogue.services["backup"].community_in(catalogue.regions["west-europe"]) == c("12076:55002")
    [storage] = [p for p in catalogue.prefixes if p.service == "storage" and p.region == "uk-south"
                 and p.prefix.version == 4]
    assert storage.communities == (c("12076:52024"), c("12076:51024"))


def test_a_circuit_receives_the_regions_of_its_sku() -> None:
    catalogue = load_catalogue()
    europe = catalogue.scope("standard", "west-europe")
    assert europe is not None and {"west-europe", "north-europe", "uk-south", "france-central"} <= europe
    assert not {"east-us", "southeast-asia", "japan-east"} & europe
    assert catalogue.scope("local", "west-europe") == frozenset({"west-europe"})
    assert catalogue.scope("premium", "west-europe") is None
    assert catalogue.scope("standard", "australia-central") == frozenset({"australia-central", "australia-central-2"})


def test_stand_in_prefixes_only_from_test_ranges() -> None:
    for entry in load_catalogue().prefixes:
        prefix = entry.prefix
        assert (
            prefix.subnet_of(STAND_IN_V4)
            if isinstance(prefix, ipaddress.IPv4Network)
            else prefix.subnet_of(STAND_IN_V6)
        )


def test_each_service_has_a_v4_and_v6_prefix_in_each_prefix_region() -> None:
    catalogue = load_catalogue()
    seen = {(p.region, p.service, p.prefix.version, p.prefix.prefixlen) for p in catalogue.prefixes}
    expected = {
        (region, service, version, 24 if version == 4 else 48)
        for region in PREFIX_REGIONS
        for service in [*SERVICES, *REGIONAL]
        for version in (4, 6)
    }
    assert seen == expected
    assert len(catalogue.prefixes) == len(expected)


def test_stand_in_prefixes_do_not_overlap() -> None:
    spans = sorted(
        (p.prefix.version, int(p.prefix.network_address), int(p.prefix.broadcast_address))
        for p in load_catalogue().prefixes
    )
    for (version, _, end), (next_version, start, _) in itertools.pairwise(spans):
        assert version != next_version or end < start


def test_prefix_carries_service_then_regional_community() -> None:
    catalogue = load_catalogue()
    for entry in catalogue.prefixes:
        service, region = catalogue.services[entry.service], catalogue.regions[entry.region]
        assert entry.communities == (service.community_in(region), region.microsoft_community)
    first = catalogue.prefixes[0]
    assert (str(first.prefix), first.service, first.region) == ("198.18.0.0/24", "exchange-online", "west-europe")


def test_region_lookup_names_the_known_regions() -> None:
    catalogue = load_catalogue()
    assert catalogue.region("uk-south").name == "UK South"
    with pytest.raises(KeyError, match="unknown Azure region 'westeurope'; known: east-us, east-us-2"):
        catalogue.region("westeurope")


@pytest.mark.parametrize(
    ("community", "known", "microsoft365"),
    [
        ("12076:5010", True, True),
        ("12076:5100", True, True),
        ("12076:5070", True, False),
        ("12076:51002", True, False),
        ("12076:50002", False, False),
        ("12076:52004", True, False),  # Storage, East US
        ("12076:55059", True, False),  # Backup, New Zealand North
        ("12076:56004", False, False),
        ("12076:52999", False, False),
        ("65000:5010", False, False),
    ],
)
def test_known_and_microsoft365_communities(community: str, known: bool, microsoft365: bool) -> None:
    catalogue = load_catalogue()
    assert catalogue.known_community(c(community)) is known
    assert catalogue.is_microsoft365(c(community)) is microsoft365


def test_matching_by_service_community() -> None:
    found = load_catalogue().matching([c("12076:5070")])
    assert {p.service for p in found} == {"azure-resource-manager"}
    assert {p.region for p in found} == set(PREFIX_REGIONS)
    assert len(found) == 12


def test_matching_by_regional_community_gives_every_service_of_the_region() -> None:
    found = load_catalogue().matching([c("12076:51002")])
    assert {p.region for p in found} == {"west-europe"}
    assert {p.service for p in found} == {*SERVICES, *REGIONAL}


def test_matching_limited_by_region() -> None:
    found = load_catalogue().matching([c("12076:5010"), c("12076:5060")], regions=["east-us", "uk-south"])
    assert {(p.service, p.region) for p in found} == {
        (s, r) for s in ("exchange-online", "entra-id") for r in ("east-us", "uk-south")
    }
    assert load_catalogue().matching([c("12076:5010")], regions=[]) == ()
    assert load_catalogue().matching([]) == ()


def test_packaged_catalogue_is_loaded_once() -> None:
    assert load_catalogue() is load_catalogue()


USER_FILE = """
regions:
  lab-north: {name: Lab North, private_community: "12076:50901", microsoft_community: "12076:51901"}
services:
  lab-app: {name: Lab App, community: "12076:5900"}
prefixes:
  lab-north:
    lab-app: [198.19.0.0/24]
"""


def test_users_own_file(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text(USER_FILE, encoding="utf-8")
    catalogue = load_catalogue(path)
    assert list(catalogue.regions) == ["lab-north"]
    assert catalogue.services["lab-app"].microsoft365 is False
    (entry,) = catalogue.prefixes
    assert entry.communities == (c("12076:5900"), c("12076:51901"))
    assert load_catalogue(str(path)) == catalogue


@pytest.mark.parametrize(
    ("old", "new", "entry", "words"),
    [
        ('community: "12076:5900"', "community: 12076", "services.lab-app.community", "quoted 'ASN:value'"),
        ('community: "12076:5900"', 'community: "12076:99999"', "services.lab-app.community", "0..65535"),
        ("{name: Lab App,", "{colour: red, name: Lab App,", "services.lab-app.colour", "unknown key 'colour'"),
        ("{name: Lab App,", "{name: Lab App, microsoft365: maybe,", "services.lab-app.microsoft365", "true or false"),
        ("{name: Lab North, ", "{", "regions.lab-north.name", "non-empty string"),
        ("  lab-north:\n    lab-app", "  lab-south:\n    lab-app", "prefixes.lab-south", "not a region"),
        ("    lab-app: [", "    lab-db: [", "prefixes.lab-north.lab-db", "not a service"),
        ("198.19.0.0/24", "198.19.0.1/24", "prefixes.lab-north.lab-app[0]", "host bits"),
        ("198.19.0.0/24", "198.19.0.0", "prefixes.lab-north.lab-app[0]", "expected a prefix"),
        ("[198.19.0.0/24]", "198.19.0.0/24", "prefixes.lab-north.lab-app", "expected a list"),
        ("regions:\n", "regions: [\n", "", "not valid YAML"),
    ],
)
def test_bad_file_names_the_file_and_the_entry(tmp_path: Path, old: str, new: str, entry: str, words: str) -> None:
    path = tmp_path / "services.yaml"
    assert old in USER_FILE
    path.write_text(USER_FILE.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(CatalogueError) as info:
        load_catalogue(path)
    assert (info.value.source, info.value.entry) == (str(path), entry)
    assert words in info.value.message
    assert str(info.value).startswith(f"{path}: ")


def test_regions_and_services_are_required(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text("services: {}\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match="regions: expected a mapping"):
        load_catalogue(path)
