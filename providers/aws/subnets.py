"""Which subnets a load balancer goes into (pure): the rules of cloud-provider-aws.

Discovery (no ``subnets`` annotation), over the subnets of the cluster's VPC:

1. candidates are tagged ``kubernetes.io/cluster/<cluster id>`` (any value: ``owned``
   or ``shared``) or carry no ``kubernetes.io/cluster/*`` tag at all (a subnet tagged
   for another cluster only is skipped);
2. an internet-facing load balancer skips private subnets (no route to an ``igw-``);
3. one subnet per availability zone, the best by: having the role tag
   (``kubernetes.io/role/elb`` for internet-facing, ``kubernetes.io/role/internal-elb``
   for internal; present, any value), then having the cluster tag, then the lowest id.

The result is sorted by AZ (then id). Requested subnets (ids or ``Name`` tags) are
taken as they are, private ones included: the user asked for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from providers.aws import naming
from providers.aws.annotations import Scheme

__all__ = [
    "ROLE_ELB",
    "ROLE_INTERNAL_ELB",
    "RouteTableInfo",
    "SubnetError",
    "SubnetInfo",
    "is_public",
    "select_subnets",
]

ROLE_ELB: Final = "kubernetes.io/role/elb"
ROLE_INTERNAL_ELB: Final = "kubernetes.io/role/internal-elb"


@dataclass(frozen=True, slots=True)
class SubnetInfo:
    id: str
    vpc_id: str
    az: str
    cidr: str
    tags: Mapping[str, str] = field(default_factory=dict)
    public: bool = False
    """Has a route to an ``igw-`` through its route table (or the VPC's main one)."""

    @property
    def name(self) -> str | None:
        """The ``Name`` tag, if any."""
        return self.tags.get("Name")


@dataclass(frozen=True, slots=True)
class RouteTableInfo:
    id: str
    vpc_id: str
    main: bool
    subnet_ids: tuple[str, ...] = ()
    """Subnets explicitly associated with this table."""
    gateway_ids: tuple[str, ...] = ()
    """The ``GatewayId`` of every route (``igw-...``, ``local``, ...)."""


class SubnetError(Exception):
    """No usable subnet; ``reason`` is CamelCase, ``message`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def is_public(subnet_id: str, vpc_id: str, route_tables: Sequence[RouteTableInfo]) -> bool:
    """True if the subnet's route table (its own, else the VPC's main one) routes to an
    internet gateway."""
    table = next((t for t in route_tables if subnet_id in t.subnet_ids), None)
    if table is None:
        table = next((t for t in route_tables if t.main and t.vpc_id == vpc_id), None)
    return table is not None and any(g.startswith("igw-") for g in table.gateway_ids)


def _by_az(subnets: Sequence[SubnetInfo]) -> tuple[SubnetInfo, ...]:
    return tuple(sorted(subnets, key=lambda s: (s.az, s.id)))


def _requested(subnets: Sequence[SubnetInfo], requested: Sequence[str]) -> tuple[SubnetInfo, ...]:
    chosen: dict[str, SubnetInfo] = {}
    unknown: list[str] = []
    ambiguous: list[str] = []
    for want in requested:
        if want.startswith("subnet-"):
            found = [s for s in subnets if s.id == want]
        else:
            found = [s for s in subnets if s.name == want]
        if not found:
            unknown.append(want)
        elif len(found) > 1:
            ambiguous.append(f"{want} ({', '.join(sorted(s.id for s in found))})")
        else:
            chosen[found[0].id] = found[0]
    problems = []
    if unknown:
        problems.append("no subnet with id or Name " + ", ".join(unknown))
    if ambiguous:
        problems.append("Name matches several subnets: " + "; ".join(ambiguous))
    if problems:
        raise SubnetError("SubnetNotFound", "requested subnets: " + "; ".join(problems))
    result = _by_az(list(chosen.values()))
    azs = [s.az for s in result]
    twice = sorted({az for az in azs if azs.count(az) > 1})
    if twice:
        raise SubnetError(
            "InvalidSubnets", f"requested subnets: more than one in {', '.join(twice)}"
        )
    vpcs = sorted({s.vpc_id for s in result})
    if len(vpcs) > 1:
        raise SubnetError("InvalidSubnets", f"requested subnets span VPCs {', '.join(vpcs)}")
    return result


def select_subnets(
    subnets: Sequence[SubnetInfo],
    *,
    cluster_id: str,
    scheme: str,
    requested: Sequence[str] = (),
) -> tuple[SubnetInfo, ...]:
    """The subnets for a load balancer (module rules), sorted by AZ.

    :class:`SubnetError` with reason ``SubnetNotFound`` (a requested id or Name is
    unknown or ambiguous), ``InvalidSubnets`` (requested ones share an AZ or span VPCs)
    or ``SubnetsNotFound`` (discovery found none; the message counts what was skipped).
    """
    if requested:
        return _requested(subnets, requested)
    own_tag = naming.cluster_tag_key(cluster_id)
    internet_facing = scheme == Scheme.INTERNET_FACING
    role = ROLE_ELB if internet_facing else ROLE_INTERNAL_ELB
    other_cluster = private = 0
    best: dict[str, SubnetInfo] = {}

    def rank(s: SubnetInfo) -> tuple[bool, bool, str]:
        return (role not in s.tags, own_tag not in s.tags, s.id)

    for subnet in subnets:
        tagged = any(k.startswith(naming.CLUSTER_TAG_PREFIX) for k in subnet.tags)
        if tagged and own_tag not in subnet.tags:
            other_cluster += 1
            continue
        if internet_facing and not subnet.public:
            private += 1
            continue
        current = best.get(subnet.az)
        if current is None or rank(subnet) < rank(current):
            best[subnet.az] = subnet
    if not best:
        parts = [f"{len(subnets)} subnets seen", f"{other_cluster} tagged for another cluster"]
        if internet_facing:
            parts.append(f"{private} private (no route to an internet gateway)")
        raise SubnetError(
            "SubnetsNotFound",
            f"no subnet for an {scheme} load balancer of cluster {cluster_id}: "
            + ", ".join(parts)
            + f"; tag subnets {own_tag} and {role}, or set the subnets annotation",
        )
    return _by_az(list(best.values()))
