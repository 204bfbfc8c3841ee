"""Node security-group rules for lbctl's NLBs (edge; the rules themselves come from the
pure :mod:`.sgrules`).

Which groups: the ``node_security_group_id`` option, else, for each node instance, the
group :func:`sgrules.pick_node_security_group` picks among its groups. Rules are ours
when their description says so (``lbctl:<cluster-hash>:<uid>:<kind>``); a rule of a
Service is looked for in those groups and in every group tagged with the cluster tag.

EC2 knows a rule by its permission only, so two Services wanting the same permission
share one rule, described as the first one's. When that Service goes, the rule is
handed over (its description rewritten) to a remaining Service that wants it, instead of
being revoked under the other Service's feet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final

from providers.aws import naming
from providers.aws.client import AWSClient, AWSError
from providers.aws.common import call_tolerating
from providers.aws.environment import Environment, Instance
from providers.aws.sgrules import (
    Permission,
    Rule,
    owned_rules,
    parse_ip_permissions,
    pick_node_security_group,
    rule_diff,
)

__all__ = ["describe_rules", "node_groups", "reconcile", "release"]

log = logging.getLogger(__name__)

DUPLICATE: Final = "InvalidPermission.Duplicate"
NOT_FOUND: Final = "InvalidPermission.NotFound"
GROUP_NOT_FOUND: Final = frozenset({"InvalidGroup.NotFound", "InvalidGroupId.NotFound"})


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


async def describe_rules(
    client: AWSClient, cluster_id: str, group_ids: Iterable[str] = ()
) -> dict[str, tuple[Rule, ...]]:
    """The tcp/udp CIDR rules of every group tagged with the cluster tag and of
    ``group_ids``, by group id."""
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
    return {gid: parse_ip_permissions(g.get("IpPermissions") or ()) for gid, g in found.items()}


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
    await _change(client, "revoke_security_group_ingress", NOT_FOUND, group, rules)


async def reconcile(
    client: AWSClient,
    cluster_id: str,
    uid: str,
    *,
    desired: Iterable[Rule],
    groups: Sequence[str],
    current: Mapping[str, Sequence[Rule]],
) -> None:
    """Make the Service's rules in ``current`` (from :func:`describe_rules`) what it
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
    """Remove the rules of the Services whose UID ``gone(uid)`` says are gone: a rule
    another Service wants (``heirs``: group -> permission -> that Service's description)
    is handed over to it, any other one revoked. Returns how many rules were removed
    or handed over."""
    owner = naming.cluster_hash(cluster_id)
    count = 0
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
                rule.protocol, rule.from_port, rule.to_port, rule.cidr, inherited[rule.permission]
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
        await revoke(client, gid, drop)
        count += len(theirs)
    return count
