"""The cluster's network as AWS describes it: VPC, subnets, route tables, node
instances and their security groups (edge, cached).

The VPC is the ``vpc_id`` option; else the VPC of the node instances; else the only
VPC tagged ``kubernetes.io/cluster/<cluster id>``; else the only VPC of the region.
Everything is cached for ``max_age`` seconds (5 minutes) and forgotten after an error,
so an idle resync makes no call here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from providers.aws import naming
from providers.aws.client import AWSClient
from providers.aws.common import tags_from_aws
from providers.aws.subnets import RouteTableInfo, SubnetInfo, is_public
from providers.base import ConfigError

__all__ = ["Environment", "Instance", "Network"]


@dataclass(frozen=True, slots=True)
class Network:
    vpc_id: str
    cidrs: tuple[str, ...]
    """The VPC's associated IPv4 CIDR blocks."""
    subnets: tuple[SubnetInfo, ...]


@dataclass(frozen=True, slots=True)
class Instance:
    id: str
    vpc_id: str
    security_groups: tuple[str, ...]


def _filter(name: str, *values: str) -> list[dict[str, Any]]:
    return [{"Name": name, "Values": list(values)}]


class Environment:
    """Cached network facts for one cluster (see the module docstring)."""

    def __init__(
        self,
        client: AWSClient,
        cluster_id: str,
        *,
        vpc_id: str | None = None,
        max_age: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._cluster_id = cluster_id
        self._configured_vpc = vpc_id
        self._max_age = max_age
        self._clock = clock
        self._lock = asyncio.Lock()
        self._network: Network | None = None
        self._instances: dict[str, Instance | None] = {}
        self._group_tags: dict[str, Mapping[str, str]] = {}
        self._taken = 0.0

    def invalidate(self) -> None:
        """Describe everything again on next use."""
        self._network = None
        self._instances.clear()
        self._group_tags.clear()

    def _expire(self) -> None:
        if self._clock() - self._taken >= self._max_age:
            self.invalidate()
            self._taken = self._clock()

    async def network(self, instance_ids: Sequence[str]) -> Network:
        """The cluster's VPC with its subnets (``instance_ids``: the nodes, to find the
        VPC when no ``vpc_id`` is configured)."""
        async with self._lock:
            self._expire()
            if self._network is None:
                vpc_id = self._configured_vpc or await self._find_vpc(instance_ids)
                self._network = await self._describe_network(vpc_id)
            return self._network

    async def instances(self, ids: Iterable[str]) -> dict[str, Instance]:
        """The instances among ``ids`` that exist (described once, then cached)."""
        async with self._lock:
            self._expire()
            return await self._instances_locked(ids)

    async def _instances_locked(self, ids: Iterable[str]) -> dict[str, Instance]:
        wanted = sorted(set(ids))
        missing = [i for i in wanted if i not in self._instances]
        if missing:
            # A filter, not InstanceIds: a terminated node still listed is no error.
            reservations = await self._client.paginate(
                "ec2",
                "describe_instances",
                "Reservations",
                Filters=_filter("instance-id", *missing),
            )
            for reservation in reservations:
                for item in reservation.get("Instances") or ():
                    self._instances[str(item["InstanceId"])] = Instance(
                        id=str(item["InstanceId"]),
                        vpc_id=str(item.get("VpcId", "")),
                        security_groups=tuple(
                            sorted(str(g["GroupId"]) for g in item.get("SecurityGroups") or ())
                        ),
                    )
            for i in missing:
                self._instances.setdefault(i, None)
        return {i: inst for i in wanted if (inst := self._instances.get(i)) is not None}

    async def security_group_tags(self, ids: Iterable[str]) -> dict[str, Mapping[str, str]]:
        """The tags of the security groups ``ids`` (cached)."""
        async with self._lock:
            self._expire()
            wanted = sorted(set(ids))
            missing = [g for g in wanted if g not in self._group_tags]
            if missing:
                groups = await self._client.paginate(
                    "ec2",
                    "describe_security_groups",
                    "SecurityGroups",
                    Filters=_filter("group-id", *missing),
                )
                for group in groups:
                    self._group_tags[str(group["GroupId"])] = tags_from_aws(group.get("Tags"))
                for g in missing:
                    self._group_tags.setdefault(g, {})
            return {g: self._group_tags[g] for g in wanted}

    async def _find_vpc(self, instance_ids: Sequence[str]) -> str:
        instances = await self._instances_locked(instance_ids)
        vpcs = sorted({i.vpc_id for i in instances.values() if i.vpc_id})
        if len(vpcs) == 1:
            return vpcs[0]
        if len(vpcs) > 1:
            raise ConfigError("vpc_id", f"the nodes are in several VPCs ({', '.join(vpcs)})")
        answer = await self._client.call("ec2", "describe_vpcs")
        all_vpcs = answer.get("Vpcs") or []
        tag = naming.cluster_tag_key(self._cluster_id)
        tagged = [v for v in all_vpcs if tag in tags_from_aws(v.get("Tags"))]
        for candidates in (tagged, all_vpcs):
            if len(candidates) == 1:
                return str(candidates[0]["VpcId"])
        found = ", ".join(sorted(str(v["VpcId"]) for v in all_vpcs)) or "none"
        raise ConfigError(
            "vpc_id",
            f"cannot tell the cluster's VPC: no node is a known EC2 instance and the region "
            f"has {len(all_vpcs)} VPCs ({found}), {len(tagged)} tagged {tag}",
        )

    async def _describe_network(self, vpc_id: str) -> Network:
        vpcs, subnets, tables = await asyncio.gather(
            self._client.call("ec2", "describe_vpcs", Filters=_filter("vpc-id", vpc_id)),
            self._client.paginate(
                "ec2", "describe_subnets", "Subnets", Filters=_filter("vpc-id", vpc_id)
            ),
            self._client.paginate(
                "ec2", "describe_route_tables", "RouteTables", Filters=_filter("vpc-id", vpc_id)
            ),
        )
        found = vpcs.get("Vpcs") or []
        if not found:
            raise ConfigError("vpc_id", f"VPC {vpc_id} does not exist")
        cidrs = tuple(
            str(a["CidrBlock"])
            for a in found[0].get("CidrBlockAssociationSet") or ()
            if (a.get("CidrBlockState") or {}).get("State", "associated") == "associated"
        ) or (str(found[0].get("CidrBlock", "")),)
        routes = tuple(_route_table(t) for t in tables)
        infos = tuple(
            SubnetInfo(
                id=str(s["SubnetId"]),
                vpc_id=str(s["VpcId"]),
                az=str(s["AvailabilityZone"]),
                cidr=str(s["CidrBlock"]),
                tags=tags_from_aws(s.get("Tags")),
                public=is_public(str(s["SubnetId"]), vpc_id, routes),
            )
            for s in subnets
        )
        return Network(vpc_id=vpc_id, cidrs=tuple(c for c in cidrs if c), subnets=infos)


def _route_table(table: Mapping[str, Any]) -> RouteTableInfo:
    associations = table.get("Associations") or ()
    return RouteTableInfo(
        id=str(table["RouteTableId"]),
        vpc_id=str(table.get("VpcId", "")),
        main=any(a.get("Main") for a in associations),
        subnet_ids=tuple(str(a["SubnetId"]) for a in associations if a.get("SubnetId")),
        gateway_ids=tuple(
            str(r["GatewayId"]) for r in table.get("Routes") or () if r.get("GatewayId")
        ),
    )
