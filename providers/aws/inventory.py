"""lbctl's load balancers and target groups, found by their tags (edge).

A scan lists every network load balancer and every NLB-type target group of the region,
reads their tags (``DescribeTags``, 20 ARNs per call) and keeps those whose
``lbctl.io/cluster`` tag names this cluster, indexed by the owning Service's UID. A
resource without that tag is never in the inventory, so it is never modified or
deleted, even when its name is one of ours.

:class:`InventoryCache` shares one scan between Services for ``max_age`` seconds and is
kept current with what the provider itself creates and deletes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from providers.aws import naming
from providers.aws.client import AWSClient
from providers.aws.common import tags_from_aws
from providers.aws.health import HealthCheck, health_check_from_aws

__all__ = [
    "NLB_TARGET_GROUP_PROTOCOLS",
    "TAGS_PER_CALL",
    "Inventory",
    "InventoryCache",
    "LoadBalancerRecord",
    "TargetGroupRecord",
    "describe_tags",
    "scan",
]

TAGS_PER_CALL: Final = 20
"""``DescribeTags`` takes at most 20 ARNs."""
NLB_TARGET_GROUP_PROTOCOLS: Final = frozenset({"TCP", "UDP", "TCP_UDP", "TLS"})


@dataclass(frozen=True, slots=True)
class LoadBalancerRecord:
    arn: str
    name: str
    scheme: str
    dns_name: str
    state: str
    """``provisioning`` | ``active`` | ``active_impaired`` | ``failed``."""
    vpc_id: str
    subnet_ids: tuple[str, ...]
    tags: Mapping[str, str]
    security_groups: tuple[str, ...] = ()
    """Sorted; none: made without (by an older lbctl), and AWS cannot add any."""

    @property
    def uid(self) -> str | None:
        return naming.service_uid_of(self.tags)

    @classmethod
    def from_aws(cls, item: Mapping[str, Any], tags: Mapping[str, str]) -> LoadBalancerRecord:
        """From a ``DescribeLoadBalancers`` / ``CreateLoadBalancer`` entry."""
        return cls(
            arn=str(item["LoadBalancerArn"]),
            name=str(item["LoadBalancerName"]),
            scheme=str(item.get("Scheme", "")),
            dns_name=str(item.get("DNSName", "")),
            state=str((item.get("State") or {}).get("Code", "")),
            vpc_id=str(item.get("VpcId", "")),
            subnet_ids=tuple(
                sorted(str(z["SubnetId"]) for z in item.get("AvailabilityZones") or ())
            ),
            tags=dict(tags),
            security_groups=tuple(sorted(str(g) for g in item.get("SecurityGroups") or ())),
        )


@dataclass(frozen=True, slots=True)
class TargetGroupRecord:
    arn: str
    name: str
    protocol: str
    port: int
    target_type: str
    health: HealthCheck
    tags: Mapping[str, str]

    @property
    def uid(self) -> str | None:
        return naming.service_uid_of(self.tags)

    @classmethod
    def from_aws(cls, item: Mapping[str, Any], tags: Mapping[str, str]) -> TargetGroupRecord:
        """From a ``DescribeTargetGroups`` / ``CreateTargetGroup`` entry."""
        return cls(
            arn=str(item["TargetGroupArn"]),
            name=str(item["TargetGroupName"]),
            protocol=str(item.get("Protocol", "")),
            port=int(item.get("Port", 0)),
            target_type=str(item.get("TargetType", "")),
            health=health_check_from_aws(item),
            tags=dict(tags),
        )


class Inventory:
    """The owned resources of one cluster, by ARN; read through the query methods."""

    def __init__(
        self,
        load_balancers: Iterable[LoadBalancerRecord] = (),
        target_groups: Iterable[TargetGroupRecord] = (),
    ) -> None:
        self.load_balancers: dict[str, LoadBalancerRecord] = {r.arn: r for r in load_balancers}
        self.target_groups: dict[str, TargetGroupRecord] = {r.arn: r for r in target_groups}

    def load_balancers_of(self, uid: str) -> tuple[LoadBalancerRecord, ...]:
        """The Service's load balancers, by name (normally one; two while replacing)."""
        return tuple(
            sorted((r for r in self.load_balancers.values() if r.uid == uid), key=_by_name)
        )

    def target_groups_of(self, uid: str) -> tuple[TargetGroupRecord, ...]:
        return tuple(sorted((r for r in self.target_groups.values() if r.uid == uid), key=_by_name))

    def uids(self) -> frozenset[str]:
        """Every Service UID that owns something."""
        records: list[LoadBalancerRecord | TargetGroupRecord] = [
            *self.load_balancers.values(),
            *self.target_groups.values(),
        ]
        return frozenset(uid for r in records if (uid := r.uid) is not None)


def _by_name(record: LoadBalancerRecord | TargetGroupRecord) -> tuple[str, str]:
    return record.name, record.arn


async def describe_tags(client: AWSClient, arns: Sequence[str]) -> dict[str, dict[str, str]]:
    """The tags of ELBv2 resources, :data:`TAGS_PER_CALL` ARNs per call (concurrently)."""
    batches = [arns[i : i + TAGS_PER_CALL] for i in range(0, len(arns), TAGS_PER_CALL)]
    answers = await asyncio.gather(
        *(client.call("elbv2", "describe_tags", ResourceArns=list(b)) for b in batches)
    )
    out: dict[str, dict[str, str]] = {}
    for answer in answers:
        for description in answer.get("TagDescriptions") or ():
            out[str(description["ResourceArn"])] = tags_from_aws(description.get("Tags"))
    return out


async def scan(client: AWSClient, cluster_id: str) -> Inventory:
    """List the region's NLBs and NLB target groups and keep those this cluster owns."""
    lbs, tgs = await asyncio.gather(
        client.paginate("elbv2", "describe_load_balancers", "LoadBalancers"),
        client.paginate("elbv2", "describe_target_groups", "TargetGroups"),
    )
    lbs = [lb for lb in lbs if lb.get("Type") == "network"]
    tgs = [tg for tg in tgs if tg.get("Protocol") in NLB_TARGET_GROUP_PROTOCOLS]
    tags = await describe_tags(
        client, [lb["LoadBalancerArn"] for lb in lbs] + [tg["TargetGroupArn"] for tg in tgs]
    )
    return Inventory(
        (
            LoadBalancerRecord.from_aws(lb, t)
            for lb in lbs
            if naming.owned_by(t := tags.get(lb["LoadBalancerArn"], {}), cluster_id)
        ),
        (
            TargetGroupRecord.from_aws(tg, t)
            for tg in tgs
            if naming.owned_by(t := tags.get(tg["TargetGroupArn"], {}), cluster_id)
        ),
    )


class InventoryCache:
    """One :func:`scan` shared for ``max_age`` seconds, kept current with the provider's
    own creations and deletions (also those made while a scan runs)."""

    def __init__(
        self,
        client: AWSClient,
        cluster_id: str,
        *,
        max_age: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._cluster_id = cluster_id
        self._max_age = max_age
        self._clock = clock
        self._current: Inventory | None = None
        self._taken = 0.0
        self._lock = asyncio.Lock()
        self._scanning = 0
        self._during_scan: list[Callable[[Inventory], None]] = []
        self.scans = 0
        """Scans made so far (for tests and logs)."""

    async def get(self, *, fresh: bool = False) -> Inventory:
        """The inventory; scanned again if older than ``max_age`` or ``fresh`` is asked
        (deletions and the orphan sweep never trust a cached one)."""
        async with self._lock:
            current = self._current
            if current is not None and not fresh and self._clock() - self._taken < self._max_age:
                return current
            started = self._clock()
            self._scanning += 1
            try:
                inventory = await scan(self._client, self._cluster_id)
            finally:
                self._scanning -= 1
            for change in self._during_scan:
                change(inventory)
            self._during_scan.clear()
            self._current, self._taken = inventory, started
            self.scans += 1
            return inventory

    def invalidate(self) -> None:
        """Scan again on the next :meth:`get` (after an error: the cache may be wrong)."""
        self._current = None

    def _apply(self, change: Callable[[Inventory], None]) -> None:
        if self._current is not None:
            change(self._current)
        if self._scanning:
            self._during_scan.append(change)

    def put_load_balancer(self, record: LoadBalancerRecord) -> None:
        def change(inv: Inventory) -> None:
            inv.load_balancers[record.arn] = record

        self._apply(change)

    def drop_load_balancer(self, arn: str) -> None:
        def change(inv: Inventory) -> None:
            inv.load_balancers.pop(arn, None)

        self._apply(change)

    def put_target_group(self, record: TargetGroupRecord) -> None:
        def change(inv: Inventory) -> None:
            inv.target_groups[record.arn] = record

        self._apply(change)

    def drop_target_group(self, arn: str) -> None:
        def change(inv: Inventory) -> None:
            inv.target_groups.pop(arn, None)

        self._apply(change)
