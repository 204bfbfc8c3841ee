"""Network load balancers and their listeners (edge): create or reconcile the plan's
load balancer, sync its listeners, delete one."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from providers.aws import naming
from providers.aws.client import AWSClient, AWSError
from providers.aws.common import call_tolerating, tags_to_aws
from providers.aws.inventory import LoadBalancerRecord, describe_tags
from providers.aws.plan import ListenerSpec, LoadBalancerSpec, attribute_changes
from providers.aws.targetgroups import sync_tags
from providers.base import UnsupportedError

__all__ = [
    "ListenerState",
    "delete_load_balancer",
    "describe_listeners",
    "describe_load_balancer",
    "ensure_load_balancer",
    "find_load_balancer",
    "sync_listeners",
]

log = logging.getLogger(__name__)

LB_GONE: Final = frozenset({"LoadBalancerNotFound"})
LISTENER_GONE: Final = frozenset({"ListenerNotFound"})
REPLACE_ON: Final = frozenset(
    {"ValidationError", "UnsupportedProtocol", "InvalidConfigurationRequest"}
)
"""ModifyListener refusals that a delete + create gets round (moto refuses a change of
protocol to UDP, TLS or TCP_UDP)."""


@dataclass(frozen=True, order=True, slots=True)
class ListenerState:
    """A listener as far as lbctl cares: certificate and policy only for TLS."""

    port: int
    protocol: str
    target_group_arn: str
    certificate: str | None = None
    ssl_policy: str | None = None

    @classmethod
    def from_aws(cls, item: Mapping[str, Any]) -> ListenerState:
        protocol = str(item.get("Protocol", ""))
        tls = protocol == "TLS"
        certificates = item.get("Certificates") or ()
        return cls(
            port=int(item.get("Port", 0)),
            protocol=protocol,
            target_group_arn=_forward_target(item.get("DefaultActions") or ()),
            certificate=str(certificates[0]["CertificateArn"]) if tls and certificates else None,
            ssl_policy=str(item["SslPolicy"]) if tls and item.get("SslPolicy") else None,
        )

    @classmethod
    def wanted(cls, spec: ListenerSpec, target_group_arn: str) -> ListenerState:
        tls = spec.protocol == "TLS"
        return cls(
            port=spec.port,
            protocol=spec.protocol,
            target_group_arn=target_group_arn,
            certificate=spec.certificates[0] if tls and spec.certificates else None,
            ssl_policy=spec.ssl_policy if tls else None,
        )


def _forward_target(actions: Iterable[Mapping[str, Any]]) -> str:
    for action in actions:
        if action.get("Type") != "forward":
            continue
        if action.get("TargetGroupArn"):
            return str(action["TargetGroupArn"])
        groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or ()
        if groups:
            return str(groups[0]["TargetGroupArn"])
    return ""


def _forward(arn: str) -> list[dict[str, str]]:
    return [{"Type": "forward", "TargetGroupArn": arn}]


# --- load balancers -----------------------------------------------------------------


async def describe_load_balancer(client: AWSClient, arn: str) -> dict[str, Any] | None:
    """The load balancer's DescribeLoadBalancers entry, or None if it is gone."""
    answer = await call_tolerating(
        client, LB_GONE, "elbv2", "describe_load_balancers", LoadBalancerArns=[arn]
    )
    found = (answer or {}).get("LoadBalancers") or []
    return dict(found[0]) if found else None


async def describe_listeners(client: AWSClient, arn: str) -> list[dict[str, Any]]:
    return await client.paginate("elbv2", "describe_listeners", "Listeners", LoadBalancerArn=arn)


async def find_load_balancer(
    client: AWSClient,
    name: str,
    *,
    owned: Iterable[LoadBalancerRecord],
    cluster_id: str,
    uid: str,
) -> LoadBalancerRecord | None:
    """The Service's load balancer called ``name``: an owned one, else one AWS has under
    that name with this Service's tags (a scan missed it); None if there is none.
    A load balancer of that name that is not ours is a NameConflict (AWS would hand it
    back from CreateLoadBalancer as if created): call this before any change."""
    record = next((r for r in owned if r.name == name), None)
    if record is not None:
        return record
    answer = await call_tolerating(
        client, LB_GONE, "elbv2", "describe_load_balancers", Names=[name]
    )
    for item in (answer or {}).get("LoadBalancers") or ():
        arn = str(item["LoadBalancerArn"])
        tags = (await describe_tags(client, [arn])).get(arn, {})
        if naming.owned_by(tags, cluster_id) and naming.service_uid_of(tags) == uid:
            return LoadBalancerRecord.from_aws(item, tags)
        raise UnsupportedError(
            "NameConflict",
            f"load balancer {name} exists and is not this Service's (no lbctl tags of "
            f"cluster {cluster_id} and UID {uid}): lbctl never touches it; delete or rename it",
        )
    return None


def _subnet_args(spec: LoadBalancerSpec) -> dict[str, Any]:
    if spec.eip_allocations:
        return {
            "SubnetMappings": [
                {"SubnetId": s, "AllocationId": spec.eip_allocations[s]}
                for s in spec.subnet_ids
                if s in spec.eip_allocations
            ]
        }
    return {"Subnets": list(spec.subnet_ids)}


async def _set_attributes(client: AWSClient, arn: str, changes: Mapping[str, str]) -> None:
    if changes:
        await client.call(
            "elbv2",
            "modify_load_balancer_attributes",
            LoadBalancerArn=arn,
            Attributes=[{"Key": k, "Value": v} for k, v in sorted(changes.items())],
        )


async def ensure_load_balancer(
    client: AWSClient,
    spec: LoadBalancerSpec,
    record: LoadBalancerRecord | None,
    *,
    uid: str,
    security_groups: Sequence[str],
) -> LoadBalancerRecord:
    """The load balancer ``spec`` asks for, with ``security_groups`` (frontend, backend):
    ``record`` (from :func:`find_load_balancer`; it must have security groups, AWS
    cannot add any) reconciled (tags, attributes, subnets, security groups), else a new
    one (tagged in the same call)."""
    if record is None:
        created = await client.call(
            "elbv2",
            "create_load_balancer",
            Name=spec.name,
            Type="network",
            Scheme=spec.scheme,
            IpAddressType="ipv4",
            SecurityGroups=list(security_groups),
            Tags=tags_to_aws(spec.tags),
            **_subnet_args(spec),
        )
        record = LoadBalancerRecord.from_aws(created["LoadBalancers"][0], spec.tags)
        log.info("created load balancer %s (%s) for %s", spec.name, spec.scheme, uid)
        defaults = spec.attribute_defaults
        await _set_attributes(
            client, record.arn, attribute_changes(defaults, spec.attributes, defaults)
        )
        return record
    tags = await sync_tags(client, record.arn, record.tags, spec.tags)
    described = await client.call(
        "elbv2", "describe_load_balancer_attributes", LoadBalancerArn=record.arn
    )
    current = {
        **spec.attribute_defaults,
        **{str(a["Key"]): str(a["Value"]) for a in described.get("Attributes") or ()},
    }
    await _set_attributes(
        client, record.arn, attribute_changes(current, spec.attributes, spec.attribute_defaults)
    )
    subnet_ids = record.subnet_ids
    if set(subnet_ids) != set(spec.subnet_ids):
        try:
            answer = await client.call(
                "elbv2", "set_subnets", LoadBalancerArn=record.arn, **_subnet_args(spec)
            )
            subnet_ids = tuple(
                sorted(str(z["SubnetId"]) for z in answer.get("AvailabilityZones") or ())
            )
        except AWSError as e:  # e.g. a subnet cannot be removed from this NLB
            log.warning("load balancer %s: cannot change its subnets: %s", spec.name, e)
    groups = record.security_groups
    if set(groups) != set(security_groups):
        log.info("load balancer %s: security groups %s -> %s", spec.name, groups, security_groups)
        await client.call(
            "elbv2",
            "set_security_groups",
            LoadBalancerArn=record.arn,
            SecurityGroups=list(security_groups),
        )
        groups = tuple(sorted(security_groups))
    return replace(record, tags=tags, subnet_ids=subnet_ids, security_groups=groups)


async def delete_load_balancer(client: AWSClient, record: LoadBalancerRecord) -> None:
    """Delete an owned load balancer: its listeners first, then itself; gone is success."""
    try:
        listeners = await describe_listeners(client, record.arn)
    except AWSError as e:
        if e.code in LB_GONE:
            return
        raise
    for item in listeners:
        await call_tolerating(
            client, LISTENER_GONE, "elbv2", "delete_listener", ListenerArn=item["ListenerArn"]
        )
    await call_tolerating(
        client, LB_GONE, "elbv2", "delete_load_balancer", LoadBalancerArn=record.arn
    )
    log.info("deleted load balancer %s of %s", record.name, record.uid)


# --- listeners ----------------------------------------------------------------------


async def _create_listener(client: AWSClient, lb_arn: str, spec: ListenerSpec, tg: str) -> str:
    kwargs: dict[str, Any] = {}
    if spec.protocol == "TLS":
        kwargs["Certificates"] = [{"CertificateArn": spec.certificates[0]}]
        kwargs["SslPolicy"] = spec.ssl_policy
    answer = await client.call(
        "elbv2",
        "create_listener",
        LoadBalancerArn=lb_arn,
        Protocol=spec.protocol,
        Port=spec.port,
        DefaultActions=_forward(tg),
        **kwargs,
    )
    return str(answer["Listeners"][0]["ListenerArn"])


async def _update_listener(
    client: AWSClient,
    lb_arn: str,
    arn: str,
    *,
    have: ListenerState,
    want: ListenerState,
    spec: ListenerSpec,
) -> str:
    """ModifyListener with what differs; delete + create if AWS (moto) refuses."""
    kwargs: dict[str, Any] = {}
    if have.protocol != want.protocol:
        kwargs["Protocol"] = want.protocol
    if have.target_group_arn != want.target_group_arn:
        kwargs["DefaultActions"] = _forward(want.target_group_arn)
    if want.protocol == "TLS":
        if have.certificate != want.certificate or have.protocol != "TLS":
            kwargs["Certificates"] = [{"CertificateArn": want.certificate}]
        if have.ssl_policy != want.ssl_policy or have.protocol != "TLS":
            kwargs["SslPolicy"] = want.ssl_policy
    try:
        await client.call("elbv2", "modify_listener", ListenerArn=arn, **kwargs)
        return arn
    except AWSError as e:
        if e.code not in REPLACE_ON:
            raise
        log.info("listener %s/%s: modify refused (%s), replacing it", spec.port, spec.protocol, e)
    await call_tolerating(client, LISTENER_GONE, "elbv2", "delete_listener", ListenerArn=arn)
    return await _create_listener(client, lb_arn, spec, want.target_group_arn)


async def _sync_extra_certificates(client: AWSClient, arn: str, spec: ListenerSpec) -> None:
    """The TLS listener's non-default certificates (``ssl-cert`` lists several)."""
    answer = await client.call("elbv2", "describe_listener_certificates", ListenerArn=arn)
    have = {
        str(c["CertificateArn"]) for c in answer.get("Certificates") or () if not c.get("IsDefault")
    }
    want = set(spec.certificates[1:])
    if want - have:
        await client.call(
            "elbv2",
            "add_listener_certificates",
            ListenerArn=arn,
            Certificates=[{"CertificateArn": c} for c in sorted(want - have)],
        )
    if have - want:
        await client.call(
            "elbv2",
            "remove_listener_certificates",
            ListenerArn=arn,
            Certificates=[{"CertificateArn": c} for c in sorted(have - want)],
        )


async def sync_listeners(
    client: AWSClient,
    lb_arn: str,
    specs: Sequence[ListenerSpec],
    target_groups: Mapping[str, str],
) -> frozenset[ListenerState]:
    """Make the load balancer's listeners the planned ones (``target_groups``: group key
    -> ARN): create the missing, modify (or replace) the different, delete those on
    ports no longer wanted and duplicates; the resulting listener states."""
    by_port: dict[int, list[tuple[str, ListenerState]]] = {}
    for item in await describe_listeners(client, lb_arn):
        by_port.setdefault(int(item["Port"]), []).append(
            (str(item["ListenerArn"]), ListenerState.from_aws(item))
        )
    result: set[ListenerState] = set()
    for spec in specs:
        want = ListenerState.wanted(spec, target_groups[spec.target_group_key])
        existing = by_port.pop(spec.port, [])
        for arn, _ in existing[1:]:
            await call_tolerating(
                client, LISTENER_GONE, "elbv2", "delete_listener", ListenerArn=arn
            )
        if not existing:
            arn = await _create_listener(client, lb_arn, spec, want.target_group_arn)
        else:
            arn, have = existing[0]
            if have != want:
                arn = await _update_listener(client, lb_arn, arn, have=have, want=want, spec=spec)
        if spec.protocol == "TLS":
            await _sync_extra_certificates(client, arn, spec)
        result.add(want)
    for leftovers in by_port.values():
        for arn, state in leftovers:
            log.info("deleting listener %s/%s of %s", state.port, state.protocol, lb_arn)
            await call_tolerating(
                client, LISTENER_GONE, "elbv2", "delete_listener", ListenerArn=arn
            )
    return frozenset(result)
