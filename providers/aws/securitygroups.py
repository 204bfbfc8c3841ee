"""Security groups for lbctl's NLBs (edge; the groups and rules themselves come from the
pure :mod:`.sgrules`).

One describe (:func:`describe_groups`) reads every group tagged
``kubernetes.io/cluster/<id>``: the node groups so tagged, the cluster's backend group
and every Service's frontend group, with their rules; groups named by id (the
``node_security_group_id`` option, a node's group without the tag) are read in a second
call, only if not among them. lbctl's own groups are known by their tags only
(``lbctl.io/cluster``, ``lbctl.io/resource``, ``lbctl.io/service-uid``), never by name:
a group that merely has one of their names is never touched, and creating one under a
taken name is a NameConflict.

- The **frontend** group of a Service (:func:`ensure_frontend`) is created with its tags
  in one call, then its rules are kept equal to the desired ones (it is lbctl's: every
  tcp/udp rule in it is reconciled). It is deleted after the Service's load balancer;
  while the deleted NLB's network interfaces still use it, AWS refuses
  (``DependencyViolation``): :class:`RetryAfterError`.
- The **backend** group (:meth:`Groups.backend`, :func:`create_backend`) is cluster
  infrastructure: created on first need, never deleted by lbctl.
- **Node** groups: which ones is the ``node_security_group_id`` option, else, for each
  node instance, the group :func:`sgrules.pick_node_security_group` picks among its
  groups. They get the two cluster rules (:func:`add_cluster_rules`), kept, and each
  Service's own rules (:func:`reconcile`), described
  ``lbctl:<cluster-hash>:<uid>:<kind>``; a Service's rule is looked for in those groups
  and in every group tagged with the cluster tag (except lbctl's own).

EC2 knows a rule by its permission only, so two Services wanting the same permission
share one rule, described as the first one's. When that Service goes, the rule is
handed over (its description rewritten) to a remaining Service that wants it, instead of
being revoked under the other Service's feet (:func:`release`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from providers.aws import naming
from providers.aws.client import AWSClient, AWSError
from providers.aws.common import call_tolerating, tags_from_aws, tags_to_aws
from providers.aws.environment import Environment, Instance
from providers.aws.sgrules import (
    GroupSpec,
    Permission,
    Rule,
    owned_rules,
    parse_ip_permissions,
    pick_node_security_group,
    rule_diff,
)
from providers.base import RetryAfterError, UnsupportedError

__all__ = [
    "GROUP_IN_USE_RETRY_SECONDS",
    "GroupInfo",
    "Groups",
    "add_cluster_rules",
    "authorize",
    "create_backend",
    "delete_group",
    "describe_groups",
    "ensure_frontend",
    "missing_rules",
    "node_groups",
    "reconcile",
    "release",
    "revoke",
]

log = logging.getLogger(__name__)

DUPLICATE: Final = "InvalidPermission.Duplicate"
NOT_FOUND: Final = "InvalidPermission.NotFound"
GROUP_NOT_FOUND: Final = frozenset({"InvalidGroup.NotFound", "InvalidGroupId.NotFound"})
GROUP_DUPLICATE: Final = "InvalidGroup.Duplicate"
GROUP_IN_USE: Final = frozenset({"DependencyViolation", "InvalidGroup.InUse"})
GROUP_IN_USE_RETRY_SECONDS: Final = 10.0
"""A frontend group still used by a deleted NLB's network interfaces: retry after."""


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """One security group as described: its tcp/udp ingress rules and its tags."""

    id: str
    name: str
    vpc_id: str
    tags: Mapping[str, str]
    rules: tuple[Rule, ...]

    @property
    def uid(self) -> str | None:
        return naming.service_uid_of(self.tags)

    @classmethod
    def from_aws(cls, item: Mapping[str, Any]) -> GroupInfo:
        return cls(
            id=str(item["GroupId"]),
            name=str(item.get("GroupName", "")),
            vpc_id=str(item.get("VpcId", "")),
            tags=tags_from_aws(item.get("Tags")),
            rules=parse_ip_permissions(item.get("IpPermissions") or ()),
        )

    def is_ours(self, cluster_id: str, resource: str) -> bool:
        """lbctl of ``cluster_id`` made it, as ``resource`` (frontend or backend)."""
        return (
            naming.owned_by(self.tags, cluster_id)
            and self.tags.get(naming.TAG_RESOURCE) == resource
        )


class Groups:
    """What :func:`describe_groups` found, by group id; ``epoch``: the caller's marker of
    when the describe started (what it made later the describe may not show)."""

    def __init__(self, cluster_id: str, groups: Iterable[GroupInfo], epoch: int = 0) -> None:
        self.cluster_id = cluster_id
        self.by_id: dict[str, GroupInfo] = {g.id: g for g in groups}
        self.epoch = epoch

    def _lbctl(self, group: GroupInfo) -> bool:
        return group.is_ours(self.cluster_id, naming.RESOURCE_SECURITY_GROUP) or group.is_ours(
            self.cluster_id, naming.RESOURCE_BACKEND_SECURITY_GROUP
        )

    def frontends(self, uid: str | None = None) -> tuple[GroupInfo, ...]:
        """The frontend groups of the Service ``uid`` (of every Service if None), by name."""
        return tuple(
            sorted(
                (
                    g
                    for g in self.by_id.values()
                    if g.is_ours(self.cluster_id, naming.RESOURCE_SECURITY_GROUP)
                    and g.uid is not None
                    and uid in (None, g.uid)
                ),
                key=lambda g: (g.name, g.id),
            )
        )

    def frontend(self, uid: str, vpc_id: str, name: str) -> GroupInfo | None:
        """The Service's frontend group in ``vpc_id`` (the one called ``name`` first)."""
        mine = [g for g in self.frontends(uid) if g.vpc_id == vpc_id]
        return next((g for g in mine if g.name == name), mine[0] if mine else None)

    def backend(self, vpc_id: str) -> GroupInfo | None:
        """The cluster's backend group in ``vpc_id`` (the lowest id, if several)."""
        found = sorted(
            (
                g
                for g in self.by_id.values()
                if g.vpc_id == vpc_id
                and g.is_ours(self.cluster_id, naming.RESOURCE_BACKEND_SECURITY_GROUP)
            ),
            key=lambda g: g.id,
        )
        return found[0] if found else None

    def node_rules(self) -> dict[str, tuple[Rule, ...]]:
        """The rules of every group but lbctl's own, by group id: where a Service's node
        rules may be."""
        return {gid: g.rules for gid, g in self.by_id.items() if not self._lbctl(g)}


async def node_groups(
    env: Environment, cluster_id: str, configured: str | None, instances: Iterable[Instance]
) -> tuple[str, ...]:
    """The security groups to open: the configured one, else one per node instance."""
    if configured:
        return (configured,)
    instances = list(instances)
    tags = await env.security_group_tags(g for i in instances for g in i.security_groups)
    picked = {
        group
        for instance in instances
        if (
            group := pick_node_security_group(
                [(g, tags.get(g, {})) for g in instance.security_groups], cluster_id
            )
        )
        is not None
    }
    return tuple(sorted(picked))


async def describe_groups(
    client: AWSClient, cluster_id: str, group_ids: Iterable[str] = (), *, epoch: int = 0
) -> Groups:
    """Every group tagged with the cluster tag, and ``group_ids`` (module docstring)."""
    tagged = await client.paginate(
        "ec2",
        "describe_security_groups",
        "SecurityGroups",
        Filters=[{"Name": "tag-key", "Values": [naming.cluster_tag_key(cluster_id)]}],
    )
    found = {str(g["GroupId"]): g for g in tagged}
    missing = sorted(set(group_ids) - set(found))
    if missing:
        for group in await client.paginate(
            "ec2",
            "describe_security_groups",
            "SecurityGroups",
            Filters=[{"Name": "group-id", "Values": missing}],
        ):
            found[str(group["GroupId"])] = group
    return Groups(cluster_id, (GroupInfo.from_aws(g) for g in found.values()), epoch)


async def _describe_rules(client: AWSClient, group_ids: Iterable[str]) -> dict[str, GroupInfo]:
    ids = sorted(set(group_ids))
    if not ids:
        return {}
    items = await client.paginate(
        "ec2",
        "describe_security_groups",
        "SecurityGroups",
        Filters=[{"Name": "group-id", "Values": ids}],
    )
    return {str(g["GroupId"]): GroupInfo.from_aws(g) for g in items}


# --- rules --------------------------------------------------------------------------


async def _change(
    client: AWSClient, operation: str, tolerated: str, group: str, rules: Sequence[Rule]
) -> None:
    """One call for all ``rules``; if EC2 refuses it for one of them with ``tolerated``
    (already there / already gone), one call per rule, tolerating that code."""
    if not rules:
        return
    try:
        await client.call(
            "ec2", operation, GroupId=group, IpPermissions=[r.to_aws() for r in rules]
        )
    except AWSError as e:
        if e.code in GROUP_NOT_FOUND and operation.startswith("revoke"):
            return
        if e.code != tolerated:
            raise
        if len(rules) > 1:
            for rule in rules:
                await call_tolerating(
                    client,
                    {tolerated},
                    "ec2",
                    operation,
                    GroupId=group,
                    IpPermissions=[rule.to_aws()],
                )


async def authorize(client: AWSClient, group: str, rules: Sequence[Rule]) -> None:
    await _change(client, "authorize_security_group_ingress", DUPLICATE, group, rules)


async def revoke(client: AWSClient, group: str, rules: Sequence[Rule]) -> None:
    """Revoke ``rules`` as described (with their descriptions: moto matches a rule from
    a security group by its description too; AWS ignores it)."""
    await _change(client, "revoke_security_group_ingress", NOT_FOUND, group, rules)


def missing_rules(current: Iterable[Rule], desired: Iterable[Rule]) -> tuple[Rule, ...]:
    """The rules of ``desired`` whose permission ``current`` does not grant, sorted."""
    have = {r.permission for r in current}
    return tuple(sorted(r for r in desired if r.permission not in have))


async def add_cluster_rules(client: AWSClient, group: str, rules: Sequence[Rule]) -> None:
    """Authorize the missing cluster rules in a node group (one lbctl elsewhere doing
    the same at once is refused as a duplicate, which is fine). They are never revoked:
    they serve every Service."""
    log.info("security group %s: adding the cluster's NodePort rules", group)
    await authorize(client, group, rules)


async def reconcile(
    client: AWSClient,
    cluster_id: str,
    uid: str,
    *,
    desired: Iterable[Rule],
    groups: Sequence[str],
    current: Mapping[str, Sequence[Rule]],
) -> None:
    """Make the Service's rules in ``current`` (:meth:`Groups.node_rules`) what it
    wants: ``desired`` in each of ``groups``, nothing anywhere else. Authorizations come
    before revocations, so traffic allowed before and after is never cut."""
    wanted = frozenset(desired)
    plans: list[tuple[str, tuple[Rule, ...], tuple[Rule, ...]]] = []
    for gid in sorted(set(groups) | set(current)):
        rules = tuple(current.get(gid, ()))
        mine = owned_rules(rules, cluster_id, uid)
        if gid in groups:
            others = [r for r in rules if r not in mine]
            add, remove = rule_diff(mine, wanted, others=others)
        else:
            add, remove = (), mine
        plans.append((gid, add, remove))
    for gid, add, _ in plans:
        await authorize(client, gid, add)
    for gid, _, remove in plans:
        await revoke(client, gid, remove)


async def release(
    client: AWSClient,
    cluster_id: str,
    current: Mapping[str, Sequence[Rule]],
    gone: Callable[[str], bool],
    heirs: Mapping[str, Mapping[Permission, str]],
) -> int:
    """Remove the node rules of the Services whose UID ``gone(uid)`` says are gone: a
    rule another Service wants (``heirs``: group -> permission -> that Service's
    description) is handed over to it, any other one revoked. Returns how many rules
    were removed or handed over."""
    owner = naming.cluster_hash(cluster_id)
    count = 0
    check: list[tuple[str, Rule, Rule]] = []
    for gid, rules in sorted(current.items()):
        theirs: list[Rule] = []
        for rule in owned_rules(rules, cluster_id):
            parsed = naming.parse_rule_description(rule.description)
            if parsed is not None and parsed[0] == owner and gone(parsed[1]):
                theirs.append(rule)
        inherited = heirs.get(gid, {})
        keep = [r for r in theirs if r.permission in inherited]
        drop = [r for r in theirs if r.permission not in inherited]
        for rule in keep:
            heir = Rule(
                rule.protocol, rule.from_port, rule.to_port, rule.source, inherited[rule.permission]
            )
            log.info("security group %s: rule %s handed over to %s", gid, rule, heir.description)
            updated = await call_tolerating(
                client,
                {NOT_FOUND},
                "ec2",
                "update_security_group_rule_descriptions_ingress",
                GroupId=gid,
                IpPermissions=[heir.to_aws()],
            )
            if updated is None:  # revoked meanwhile: the heir still needs it
                await authorize(client, gid, [heir])
            elif rule.is_group:
                check.append((gid, rule, heir))
        await revoke(client, gid, drop)
        count += len(theirs)
    if check:
        await _check_handed_over(client, check)
    return count


async def _check_handed_over(client: AWSClient, handed: Sequence[tuple[str, Rule, Rule]]) -> None:
    """moto ignores a new description for a rule whose source is a security group
    (AWS applies it): where the old description is still there, revoke that rule (by
    its exact description) and authorize the heir's. One describe; on AWS, no change."""
    after = await _describe_rules(client, (gid for gid, _, _ in handed))
    for gid, old, heir in handed:
        rules = after[gid].rules if gid in after else ()
        if old in rules and heir not in rules:
            await revoke(client, gid, [old])
            await authorize(client, gid, [heir])


# --- groups -------------------------------------------------------------------------


async def _create_group(client: AWSClient, spec: GroupSpec, vpc_id: str) -> str:
    """Create the group, tagged in the same call; its id."""
    answer = await client.call(
        "ec2",
        "create_security_group",
        GroupName=spec.name,
        Description=spec.description,
        VpcId=vpc_id,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": tags_to_aws(spec.tags)}],
    )
    return str(answer["GroupId"])


async def _named(client: AWSClient, name: str, vpc_id: str) -> GroupInfo | None:
    items = await client.paginate(
        "ec2",
        "describe_security_groups",
        "SecurityGroups",
        Filters=[
            {"Name": "group-name", "Values": [name]},
            {"Name": "vpc-id", "Values": [vpc_id]},
        ],
    )
    return GroupInfo.from_aws(items[0]) if items else None


async def _create_or_adopt(
    client: AWSClient, spec: GroupSpec, vpc_id: str, ours: Callable[[GroupInfo], bool]
) -> tuple[str, bool]:
    """``(group id, created)``: a new group; or, if its name is taken in the VPC by a
    group whose tags make it ``ours`` (the describe missed it: made meanwhile, or its
    cluster tag removed, which is put back), that one. Taken by any other group:
    NameConflict, and that group is never touched."""
    try:
        return await _create_group(client, spec, vpc_id), True
    except AWSError as e:
        if e.code != GROUP_DUPLICATE:
            raise
        found = await _named(client, spec.name, vpc_id)
        if found is not None and ours(found):
            lost = {k: v for k, v in spec.tags.items() if found.tags.get(k) != v}
            if lost:
                log.info("security group %s (%s): restoring tags %s", found.name, found.id, lost)
                await client.call(
                    "ec2", "create_tags", Resources=[found.id], Tags=tags_to_aws(lost)
                )
            return found.id, False
        raise UnsupportedError(
            "NameConflict",
            f"security group {spec.name} exists in {vpc_id} and is not lbctl's (no lbctl "
            f"tags of this cluster and Service): lbctl never touches it; delete or rename it",
        ) from e


async def ensure_frontend(
    client: AWSClient,
    spec: GroupSpec,
    found: GroupInfo | None,
    *,
    vpc_id: str,
    rules: Iterable[Rule],
    uid: str,
) -> str:
    """The Service's frontend group: ``found`` (:meth:`Groups.frontend`) with its rules
    made ``rules`` (a minimal diff: authorize, then revoke), else a new one with them."""
    wanted = frozenset(rules)
    if found is None:
        cluster_id = spec.tags[naming.TAG_CLUSTER]

        def ours(group: GroupInfo) -> bool:
            return group.is_ours(cluster_id, naming.RESOURCE_SECURITY_GROUP) and group.uid == uid

        gid, created = await _create_or_adopt(client, spec, vpc_id, ours)
        if created:
            log.info("created security group %s (%s) for %s", spec.name, gid, uid)
            await authorize(client, gid, sorted(wanted))
            return gid
        found = (await _describe_rules(client, [gid])).get(gid)
        if found is None:
            return gid
    add, remove = rule_diff(found.rules, wanted)
    await authorize(client, found.id, add)
    await revoke(client, found.id, remove)
    return found.id


async def create_backend(client: AWSClient, spec: GroupSpec, vpc_id: str) -> str:
    """Create the cluster's backend group (no rules: the node groups let it in); one
    another lbctl made meanwhile under that name is taken as is."""
    cluster_id = spec.tags[naming.TAG_CLUSTER]

    def ours(group: GroupInfo) -> bool:
        return group.is_ours(cluster_id, naming.RESOURCE_BACKEND_SECURITY_GROUP)

    gid, created = await _create_or_adopt(client, spec, vpc_id, ours)
    if created:
        log.info("created the backend security group %s (%s) in %s", spec.name, gid, vpc_id)
    return gid


async def delete_group(client: AWSClient, group: GroupInfo) -> None:
    """Delete an owned frontend group; gone already is success; still used (the deleted
    NLB's network interfaces are going away) is :class:`RetryAfterError`."""
    try:
        await call_tolerating(
            client, GROUP_NOT_FOUND, "ec2", "delete_security_group", GroupId=group.id
        )
    except AWSError as e:
        if e.code in GROUP_IN_USE:
            raise RetryAfterError(
                GROUP_IN_USE_RETRY_SECONDS,
                f"security group {group.name} ({group.id}) is still in use: {e.message}",
            ) from e
        raise
    log.info("deleted security group %s (%s) of %s", group.name, group.id, group.uid)
