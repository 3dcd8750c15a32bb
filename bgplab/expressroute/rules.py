"""ExpressRoute's acceptance and advertisement rules, written as BGP policies (pure data).

Every rule here is a fact of ../shared/reference/expressroute.md (section numbers in the
comments); where that page says GAP, the choice is a field of `MseeRules` with the plausible
default it names. The MSEE node only wires these policies to its sessions, so a rule can be
read, unit-tested and changed here without a socket in sight.

Policies run on the MSEE's session toward the customer (import and export) and toward the VNet
gateway. Which routes may reach which neighbour at all (customer routes to the gateway, VNet
routes to the customer, never one customer's routes to another) is the speaker's export groups,
named by the constants below.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Strict

from bgplab.bgp.policy import Changes, Match, MaxPrefix, Policy, PolicyError, PrefixEntry, Term
from bgplab.bgp.wire.attributes import PathAttributes
from bgplab.bgp.wire.constants import Origin
from bgplab.bgp.wire.nlri import parse_prefix
from bgplab.bgp.wire.update import IPV4_UNICAST, IPV6_UNICAST, Family
from bgplab.expressroute.model import Circuit, Peering, PeeringType, RouteFilter
from bgplab.expressroute.services import Catalogue

CUSTOMER = "customer"
GATEWAY = "gateway"
LOCAL = "local"
"""Export groups (bgplab.bgp.peer.PeerConfig.group): where a route was learned."""

DOCUMENTATION_ASNS = r"(^|[ {])(6449[6-9]|6450[0-9]|6451[01])($|[ }])"
"""AS 64496-64511 anywhere in the path, as bgplab.bgp.policy.as_path_text writes it (section 3)."""

_NEVER_PUBLIC = (
    PrefixEntry("0.0.0.0/0"),
    PrefixEntry("10.0.0.0/8", le=32),
    PrefixEntry("172.16.0.0/12", le=32),
    PrefixEntry("192.168.0.0/16", le=32),
    PrefixEntry("::/0"),
)
"""What Microsoft peering never accepts: the default route and RFC 1918 (sections 7 and 10)."""


@dataclass(frozen=True, slots=True)
class MseeRules:
    """The MSEE's behaviour where the public sources are silent (GAP), as settings.

    Also the `rules:` of a topology file's `expressroute:`: pydantic reads it straight into this
    class (strictly: a number is not text), so its checks and defaults exist once.
    """

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    drain_prepend: Annotated[int, Strict()] = 3
    """12076s prepended on a drained MSEE's advertisements, 0..10; the count is undocumented (section 8)."""
    remove_private_as: Literal["if-all-private", "leading", "all"] = "if-all-private"
    """How private ASNs leave VNet paths toward the customer: Cisco's "if-all-private" (the
    customer sees `12076`), or Junos' "leading" (section 5, ROUTEMAPS-ASN)."""
    allow_own_as: Annotated[int, Strict()] = 0
    """allowas-in for customer paths holding 12076, 0..10 (section 11: rejected by default)."""
    restart_after: Annotated[float, Strict()] = 60.0
    """Seconds before a session torn down for too many prefixes retries (section 4, TOPO-WIKI)."""
    warning_percent: Annotated[int, Strict()] = 80
    """Percent of the prefix limit, 1..100, at which the MSEE warns of the coming drop."""
    accept_more_specifics: Annotated[bool, Strict()] = True
    """Microsoft peering: accept prefixes inside an advertised prefix, not only the exact ones
    (section 10 says any length up to /32 is accepted; what "listed" covers is a GAP)."""
    accept_while_validation_needed: Annotated[bool, Strict()] = False
    """Microsoft peering with an unvalidated private ASN: whether prefixes are accepted (GAP;
    the portal says nothing is until ownership is proven)."""

    def __post_init__(self) -> None:
        if not 0 <= self.drain_prepend <= 10:
            raise PolicyError(f"drain_prepend {self.drain_prepend}: expected 0..10")
        if not 0 <= self.allow_own_as <= 10:
            raise PolicyError(f"allow_own_as {self.allow_own_as}: expected 0..10")
        if not 1 <= self.warning_percent <= 100:
            raise PolicyError(f"warning_percent {self.warning_percent}: expected 1..100")
        if self.remove_private_as not in ("if-all-private", "leading", "all"):
            raise PolicyError(f"remove_private_as {self.remove_private_as!r}: expected if-all-private, leading or all")
        if self.restart_after <= 0:
            raise PolicyError(f"restart_after {self.restart_after}: must be positive seconds")


_STRIP_CUSTOMER_COMMUNITIES = Changes(communities=(), large_communities=())
"""Section 5: Microsoft honours no community the customer sets; dropping them on input also keeps
them from reaching the gateway."""


def _advertised_entries(peering: Peering, rules: MseeRules) -> tuple[PrefixEntry, ...]:
    entries = []
    for network in peering.advertised_prefixes:
        upper = network.max_prefixlen if rules.accept_more_specifics else None
        entries.append(PrefixEntry(str(network), ge=network.prefixlen if upper else None, le=upper))
    return tuple(entries)


def customer_import(peering: Peering, rules: MseeRules) -> Policy:
    """What the MSEE accepts from the customer on one peering."""
    if peering.type is PeeringType.PRIVATE:
        # Section 7: anything, 0/0 included (forced tunnelling); only the count is limited.
        return Policy((Term("ignore-customer-communities", Match(), _STRIP_CUSTOMER_COMMUNITIES),))
    terms = []
    if peering.advertised_prefixes_state == "ValidationNeeded" and not rules.accept_while_validation_needed:
        terms.append(Term("asn-validation-needed", Match(), action="reject"))
    terms += [
        Term("no-default-no-rfc1918", Match(prefixes=_NEVER_PUBLIC), action="reject"),
        Term("no-documentation-asn-in-path", Match(as_path=DOCUMENTATION_ASNS), action="reject"),
    ]
    listed = _advertised_entries(peering, rules)
    if listed:
        terms.append(
            Term(
                "advertised-public-prefixes",
                Match(prefixes=listed),
                Changes(communities=(), large_communities=(), remove_private_as="all"),
            )
        )
    # Section 10: an unlisted prefix is dropped by itself (GAP: the count is what resets sessions).
    return Policy(tuple(terms), default="reject")


def customer_export(
    peering: Peering, route_filter: RouteFilter | None, *, drained: bool, rules: MseeRules
) -> Policy:
    """What the MSEE advertises to the customer on one peering."""
    changes = Changes(remove_private_as=rules.remove_private_as, prepend=rules.drain_prepend if drained else 0)
    if peering.type is PeeringType.PRIVATE:
        return Policy((Term("vnet-routes", Match(), changes),))
    if peering.type is PeeringType.PUBLIC:
        # Legacy public peering predates route filters: every service prefix was advertised.
        return Policy((Term("public-services", Match(), changes),))
    if route_filter is None:
        # Section 6: no filter attached, nothing advertised (peerings configured after 2017-08-01).
        return Policy((), default="reject")
    allowed = Match(communities=route_filter.communities)
    return Policy((Term(f"route-filter-{route_filter.name}", allowed, changes),), default="reject")


GATEWAY_IMPORT = Policy((Term("vnet-routes", Match()),))
"""The gateway's VNet prefixes are taken as sent, communities (custom and regional) included."""

GATEWAY_EXPORT = Policy((Term("customer-routes", Match()),))
"""Customer routes go to the gateway as learned (their communities already dropped on input)."""


def gateway_export(*, drained: bool, rules: MseeRules) -> Policy:
    """A drained MSEE also lengthens what it tells the gateway, so Azure's traffic toward the
    customer leaves by the other MSEE as well (GAP: the docs describe only the customer side;
    without it a drain could not be loss-free in both directions)."""
    if not drained or not rules.drain_prepend:
        return GATEWAY_EXPORT
    return Policy((Term("customer-routes-drained", Match(), Changes(prepend=rules.drain_prepend)),))


def prefix_limits(circuit: Circuit, peering: Peering, rules: MseeRules) -> dict[Family, MaxPrefix]:
    """Section 4: over the limit the session drops, and retries after `rules.restart_after`."""
    limits = {}
    for family, version in ((IPV4_UNICAST, 4), (IPV6_UNICAST, 6)):
        limit = circuit.prefix_limit(peering.type, version)
        limits[family] = MaxPrefix(limit, warning_percent=rules.warning_percent, restart=rules.restart_after)
    return limits


def service_announcements(
    catalogue: Catalogue, regions: Iterable[str] | None = None
) -> Mapping[Family, list[tuple[PathAttributes, list[int]]]]:
    """The Microsoft-peering service prefixes an MSEE originates, grouped by attribute set.

    Each carries its service and regional communities (section 5); the route filter on the
    customer's export decides which leave (section 6). One attribute object per community set,
    so the export policy judges each set once.
    """
    by_family: dict[Family, dict[tuple[int, ...], list[int]]] = {}
    wanted = None if regions is None else set(regions)
    for item in catalogue.prefixes:
        if wanted is not None and item.region not in wanted:
            continue
        afi, key = parse_prefix(str(item.prefix))
        family = IPV4_UNICAST if afi == 1 else IPV6_UNICAST
        by_family.setdefault(family, {}).setdefault(tuple(sorted(item.communities)), []).append(key)
    out: dict[Family, list[tuple[PathAttributes, list[int]]]] = {}
    for family, groups in by_family.items():
        out[family] = [
            (PathAttributes(origin=Origin.IGP, as_path=(), communities=communities), keys)
            for communities, keys in groups.items()
        ]
    return out

