"""Target groups and their targets (edge): create or reconcile one group of the plan,
sync its targets, delete a group."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Final

from providers.aws import naming
from providers.aws.client import AWSClient, AWSError
from providers.aws.common import call_tolerating, tags_to_aws
from providers.aws.inventory import TargetGroupRecord, describe_tags
from providers.aws.plan import TargetGroupSpec, attribute_changes, health_check_changes, tag_changes
from providers.aws.targets import Target, chunks, target_diff
from providers.base import RetryAfterError, UnsupportedError

__all__ = [
    "IN_USE_RETRY_SECONDS",
    "delete_target_group",
    "ensure_target_group",
    "find_target_group",
    "sync_tags",
    "sync_targets",
]

log = logging.getLogger(__name__)

IN_USE_RETRY_SECONDS: Final = 5.0
"""A group still in use (its listener or load balancer is being deleted): retry after."""
GONE: Final = frozenset({"TargetGroupNotFound"})


async def sync_tags(
    client: AWSClient, arn: str, current: Mapping[str, str], desired: Mapping[str, str]
) -> dict[str, str]:
    """Remove the additional tags no longer asked for (never a tag someone else set) and
    add or overwrite the desired ones; the resulting tags."""
    to_set, to_remove = tag_changes(current, desired, naming.managed_tag_keys(current))
    if to_remove:  # first: room under the tag quota (moto's is 10)
        await client.call("elbv2", "remove_tags", ResourceArns=[arn], TagKeys=list(to_remove))
    if to_set:
        await client.call("elbv2", "add_tags", ResourceArns=[arn], Tags=tags_to_aws(to_set))
    result = {k: v for k, v in current.items() if k not in to_remove}
    result.update(to_set)
    return result


async def _set_attributes(client: AWSClient, arn: str, changes: Mapping[str, str]) -> None:
    if changes:
        await client.call(
            "elbv2",
            "modify_target_group_attributes",
            TargetGroupArn=arn,
            Attributes=[{"Key": k, "Value": v} for k, v in sorted(changes.items())],
        )


async def find_target_group(
    client: AWSClient,
    name: str,
    *,
    owned: Iterable[TargetGroupRecord],
    cluster_id: str,
    uid: str,
) -> TargetGroupRecord | None:
    """The Service's target group called ``name``: an owned one, else one AWS has under
    that name with this Service's tags (a scan missed it); None if there is none.
    A group of that name that is not ours is a NameConflict (AWS would hand it back
    from CreateTargetGroup as if created): call this before any change."""
    record = next((r for r in owned if r.name == name), None)
    if record is not None:
        return record
    try:
        answer = await client.call("elbv2", "describe_target_groups", Names=[name])
    except AWSError as e:
        if e.code in GONE:
            return None
        raise
    for item in answer.get("TargetGroups") or ():
        arn = str(item["TargetGroupArn"])
        tags = (await describe_tags(client, [arn])).get(arn, {})
        if naming.owned_by(tags, cluster_id) and naming.service_uid_of(tags) == uid:
            return TargetGroupRecord.from_aws(item, tags)
        raise UnsupportedError(
            "NameConflict",
            f"target group {name} exists and is not this Service's (no lbctl tags of "
            f"cluster {cluster_id} and UID {uid}): lbctl never touches it; delete or rename it",
        )
    return None


async def ensure_target_group(
    client: AWSClient,
    spec: TargetGroupSpec,
    record: TargetGroupRecord | None,
    *,
    vpc_id: str,
    uid: str,
) -> TargetGroupRecord:
    """The group ``spec`` asks for: ``record`` (from :func:`find_target_group`)
    reconciled (health check, attributes, tags), else a new one (tagged in the same
    call)."""
    if record is None:
        created = await client.call(
            "elbv2",
            "create_target_group",
            Name=spec.name,
            Protocol=spec.protocol,
            Port=spec.port,
            VpcId=vpc_id,
            TargetType=spec.target_type,
            Tags=tags_to_aws(spec.tags),
            **spec.health.to_aws(),
        )
        record = TargetGroupRecord.from_aws(created["TargetGroups"][0], spec.tags)
        log.info("created target group %s (%s) for %s", spec.name, spec.key, uid)
        defaults = spec.attribute_defaults
        await _set_attributes(
            client, record.arn, attribute_changes(defaults, spec.attributes, defaults)
        )
        return record
    health = health_check_changes(record.health, spec.health)
    if health:
        answer = await client.call(
            "elbv2", "modify_target_group", TargetGroupArn=record.arn, **health
        )
        record = TargetGroupRecord.from_aws(answer["TargetGroups"][0], record.tags)
    described = await client.call(
        "elbv2", "describe_target_group_attributes", TargetGroupArn=record.arn
    )
    # Unlisted attributes are at their default (moto lists only some of them).
    current = {
        **spec.attribute_defaults,
        **{str(a["Key"]): str(a["Value"]) for a in described.get("Attributes") or ()},
    }
    await _set_attributes(
        client, record.arn, attribute_changes(current, spec.attributes, spec.attribute_defaults)
    )
    tags = await sync_tags(client, record.arn, record.tags, spec.tags)
    if tags != record.tags:
        record = TargetGroupRecord(
            record.arn, record.name, record.protocol, record.port, record.target_type,
            record.health, tags,
        )  # fmt: skip
    return record


async def sync_targets(client: AWSClient, arn: str, desired: Iterable[Target]) -> None:
    """Register the missing targets and deregister the unwanted ones (100 per call).
    A draining target is already on its way out."""
    described = await client.call("elbv2", "describe_target_health", TargetGroupArn=arn)
    current = {
        Target(str(d["Target"]["Id"]), int(d["Target"].get("Port", 0)))
        for d in described.get("TargetHealthDescriptions") or ()
        if (d.get("TargetHealth") or {}).get("State") != "draining"
    }
    register, deregister = target_diff(current, desired)
    for batch in chunks(register):
        await client.call(
            "elbv2", "register_targets", TargetGroupArn=arn, Targets=[t.to_aws() for t in batch]
        )
    for batch in chunks(deregister):
        # InvalidTarget: it is no longer registered (or no longer exists): the goal holds.
        await call_tolerating(
            client,
            {"InvalidTarget"},
            "elbv2",
            "deregister_targets",
            TargetGroupArn=arn,
            Targets=[t.to_aws() for t in batch],
        )


async def delete_target_group(client: AWSClient, record: TargetGroupRecord) -> None:
    """Delete an owned group; gone already is success; still in use is
    :class:`RetryAfterError` (its listener or load balancer is still going away)."""
    try:
        await call_tolerating(
            client, GONE, "elbv2", "delete_target_group", TargetGroupArn=record.arn
        )
    except AWSError as e:
        if e.code == "ResourceInUse":
            raise RetryAfterError(
                IN_USE_RETRY_SECONDS, f"target group {record.name} is still in use"
            ) from e
        raise
    log.info("deleted target group %s of %s", record.name, record.uid)
