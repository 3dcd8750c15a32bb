"""The Microsoft-peering services catalogue: regions, service communities, and the prefixes behind them.

A route filter on Microsoft peering allows communities, not prefixes; the catalogue is what turns the
allowed communities into the prefixes the MSEE advertises. It is data, not code, because Microsoft
changes the real list monthly and a lab may want its own (`load_catalogue(path)`). The packaged file
holds stand-in prefixes from test ranges, so lab traffic can never be drawn towards real services.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

import yaml

from bgplab.bgp.routesyntax import RouteSyntaxError, parse_community

_PACKAGED_NAME = "bgplab/expressroute/data/services.yaml"


class CatalogueError(ValueError):
    """A catalogue file that cannot be used; the message names the file and the entry."""

    def __init__(self, source: str, entry: str, message: str) -> None:
        super().__init__(f"{source}: {entry}: {message}" if entry else f"{source}: {message}")
        self.source = source
        self.entry = entry
        self.message = message


@dataclass(frozen=True, slots=True)
class Region:
    key: str
    name: str
    private_community: int
    """12076:50xxx, on VNet routes over private peering when the VNet has a custom community."""
    microsoft_community: int
    """12076:51xxx, on every Microsoft-peering prefix of the region."""
    geo: str = ""
    """The geopolitical region: a Standard circuit receives the Microsoft-peering prefixes of every
    region of its circuit's geo (Microsoft's "ExpressRoute locations" page)."""

    def regional(self, base: int) -> int:
        """A regional service family's community here: the base plus this region's last three
        digits (Storage 12076:52000 in East US, 12076:51004: 12076:52004)."""
        return base + (self.microsoft_community & 0xFFFF) % 1000


@dataclass(frozen=True, slots=True)
class Service:
    key: str
    name: str
    community: int | None
    """Its one community (12076:5010), or None for a regional service, which has a family."""
    microsoft365: bool = False
    """Allowing it in a route filter needs Microsoft's authorisation; attaching the filter fails without it."""
    regional: int | None = None
    """A regional service's family base (Storage 12076:52000): each region's prefixes carry `Region.regional`."""

    def community_in(self, region: Region) -> int:
        if self.community is not None:
            return self.community
        assert self.regional is not None
        return region.regional(self.regional)


@dataclass(frozen=True, slots=True)
class ServicePrefix:
    prefix: ipaddress.IPv4Network | ipaddress.IPv6Network
    service: str
    region: str
    communities: tuple[int, ...]
    """The service community, then the region's Microsoft-peering community, as the MSEE tags it."""


@dataclass(frozen=True, slots=True)
class Catalogue:
    regions: Mapping[str, Region]
    services: Mapping[str, Service]
    prefixes: tuple[ServicePrefix, ...]

    def region(self, key: str) -> Region:
        try:
            return self.regions[key]
        except KeyError:
            raise KeyError(f"unknown Azure region {key!r}; known: {', '.join(self.regions)}") from None

    def known_community(self, value: int) -> bool:
        """Whether a route filter may allow `value`: a service community, a Microsoft-peering regional
        one, or a regional service family's community of some region (Storage of East US)."""
        return any(s.community == value for s in self.services.values()) or any(
            r.microsoft_community == value or any(s.regional is not None and r.regional(s.regional) == value
                                                  for s in self.services.values())
            for r in self.regions.values()
        )

    def scope(self, sku: str, region: str) -> frozenset[str] | None:
        """The regions whose Microsoft-peering prefixes a circuit receives: Premium all (None), Standard
        those of its region's geopolitical region, Local its own region only (the FAQ's SKU table)."""
        if sku == "premium":
            return None
        if sku == "local":
            return frozenset({region})
        geo = self.region(region).geo
        return frozenset(k for k, r in self.regions.items() if r.geo == geo) if geo else frozenset({region})

    def is_microsoft365(self, value: int) -> bool:
        return any(s.community == value and s.microsoft365 for s in self.services.values())

    def matching(self, communities: Iterable[int], regions: Iterable[str] | None = None) -> tuple[ServicePrefix, ...]:
        """The prefixes a route filter allowing `communities` lets through; `regions` narrows (None: all)."""
        wanted = set(communities)
        scope = None if regions is None else set(regions)
        return tuple(
            p for p in self.prefixes if wanted.intersection(p.communities) and (scope is None or p.region in scope)
        )


def load_catalogue(path: str | os.PathLike[str] | None = None) -> Catalogue:
    """The catalogue in `path`, or the packaged one (read once, then shared: it is immutable)."""
    if path is None:
        return _packaged_catalogue()
    source = os.fspath(path)
    with open(source, encoding="utf-8") as handle:
        return _parse(source, handle.read())


@functools.cache
def _packaged_catalogue() -> Catalogue:
    text = (resources.files("bgplab.expressroute") / "data" / "services.yaml").read_text(encoding="utf-8")
    return _parse(_PACKAGED_NAME, text)


# ---------------------------------------------------------------- parsing


def _parse(source: str, text: str) -> Catalogue:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(source, "", f"not valid YAML: {exc}") from None
    root = _mapping(source, "", data, ("regions", "services", "prefixes"))
    regions: dict[str, Region] = {}
    for key, raw in _mapping(source, "regions", root.get("regions")).items():
        entry = f"regions.{key}"
        fields = _mapping(source, entry, raw, ("name", "geo", "private_community", "microsoft_community"))
        regions[key] = Region(
            key,
            _text(source, f"{entry}.name", fields.get("name")),
            _community(source, f"{entry}.private_community", fields.get("private_community")),
            _community(source, f"{entry}.microsoft_community", fields.get("microsoft_community")),
            _text(source, f"{entry}.geo", fields["geo"]) if "geo" in fields else "",
        )
    services: dict[str, Service] = {}
    for key, raw in _mapping(source, "services", root.get("services")).items():
        entry = f"services.{key}"
        fields = _mapping(source, entry, raw, ("name", "community", "regional", "microsoft365"))
        m365 = fields.get("microsoft365", False)
        if not isinstance(m365, bool):
            raise CatalogueError(source, f"{entry}.microsoft365", "expected true or false")
        if ("community" in fields) == ("regional" in fields):
            raise CatalogueError(source, entry, "give either community (one for every region) or regional (a "
                                 "family base such as '12076:52000', plus each region's last three digits)")
        regional = _community(source, f"{entry}.regional", fields["regional"]) if "regional" in fields else None
        if regional is not None and (regional & 0xFFFF) % 1000:
            raise CatalogueError(source, f"{entry}.regional", "a family base ends in 000, e.g. '12076:52000'")
        services[key] = Service(
            key,
            _text(source, f"{entry}.name", fields.get("name")),
            _community(source, f"{entry}.community", fields["community"]) if "community" in fields else None,
            m365,
            regional,
        )
    prefixes: list[ServicePrefix] = []
    for region_key, per_service in _mapping(source, "prefixes", root.get("prefixes", {})).items():
        if region_key not in regions:
            raise CatalogueError(source, f"prefixes.{region_key}", "not a region of this file's regions")
        region = regions[region_key]
        for service_key, values in _mapping(source, f"prefixes.{region_key}", per_service).items():
            entry = f"prefixes.{region_key}.{service_key}"
            if service_key not in services:
                raise CatalogueError(source, entry, "not a service of this file's services")
            service = services[service_key]
            if not isinstance(values, list):
                raise CatalogueError(source, entry, "expected a list of prefixes")
            for n, value in enumerate(values):
                prefixes.append(
                    ServicePrefix(
                        _prefix(source, f"{entry}[{n}]", value),
                        service_key,
                        region_key,
                        (service.community_in(region), region.microsoft_community),
                    )
                )
    return Catalogue(MappingProxyType(regions), MappingProxyType(services), tuple(prefixes))


def _mapping(source: str, entry: str, value: Any, allowed: tuple[str, ...] | None = None) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise CatalogueError(source, entry, "expected a mapping with text keys")
    if allowed is not None:
        unknown = [k for k in value if k not in allowed]
        if unknown:
            where = f"{entry}.{unknown[0]}" if entry else unknown[0]
            raise CatalogueError(source, where, f"unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}")
    return value


def _text(source: str, entry: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise CatalogueError(source, entry, "expected a non-empty string")
    return value


def _community(source: str, entry: str, value: Any) -> int:
    if not isinstance(value, str) or ":" not in value:
        raise CatalogueError(source, entry, f"expected a quoted 'ASN:value' string, got {value!r}")
    try:
        return parse_community(value)
    except RouteSyntaxError as exc:
        raise CatalogueError(source, entry, str(exc)) from None


def _prefix(source: str, entry: str, value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if not isinstance(value, str) or "/" not in value:
        raise CatalogueError(source, entry, f"expected a prefix such as 198.18.0.0/24, got {value!r}")
    try:
        return ipaddress.ip_network(value)
    except ValueError as exc:
        raise CatalogueError(source, entry, str(exc)) from None
