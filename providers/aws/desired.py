"""What one ``ensure`` wants, worked out with describes only (edge, read-only).

:func:`desired_state` turns a request into a :class:`Desired` (plan, targets, node
security groups, the frontend security group and its rules) from the cached
:class:`~providers.aws.environment.Environment`;
:func:`preflight` checks what AWS would refuse only once something exists (ACM
certificates, the SSL policy, EIP allocations). Both raise
:class:`~providers.base.UnsupportedError` for a Service that cannot be served, before
the provider changes anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from providers.aws.annotations import NLBConfig, TargetType
from providers.aws.annotations import key as annotation_key
from providers.aws.client import AWSClient, AWSError
from providers.aws.environment import Environment
from providers.aws.plan import DEFAULT_SSL_POLICY, Plan, PlanError, build_plan
from providers.aws.securitygroups import node_groups
from providers.aws.sgrules import GroupSpec, Rule, frontend_group, frontend_rules
from providers.aws.subnets import SubnetError, select_subnets
from providers.aws.targets import Target, desired_targets, instance_id
from providers.base import LoadBalancerRequest, UnsupportedError

__all__ = ["Desired", "desired_state", "preflight"]

_CERT_MISSING: Final = frozenset(
    {"ResourceNotFoundException", "ValidationException", "InvalidArnException"}
)


@dataclass(frozen=True, slots=True)
class Desired:
    """Everything one ``ensure`` wants; equal values mean nothing to do."""

    plan: Plan
    targets: Mapping[str, frozenset[Target]]
    """Target-group key -> its targets."""
    groups: tuple[str, ...]
    """The node security groups to open."""
    frontend: GroupSpec
    """The Service's frontend security group."""
    frontend_rules: frozenset[Rule]
    target_ports: Mapping[str, tuple[int, ...]]
    """``ip`` target-group key -> the ports its targets listen on (for the node rules,
    :func:`sgrules.node_rules`, made once the backend group is known)."""
    vpc_id: str


async def desired_state(
    env: Environment,
    req: LoadBalancerRequest,
    config: NLBConfig,
    *,
    cluster_id: str,
    node_security_group: str | None,
) -> Desired:
    """The plan, targets and security groups of ``req`` (instance targets: only nodes
    whose EC2 instance exists). Describes only, cached in ``env``."""
    uid = req.service.metadata.uid
    instance_ids = sorted({i for n in req.nodes if (i := instance_id(n.provider_id))})
    network = await env.network(instance_ids)
    try:
        subnets = select_subnets(
            network.subnets, cluster_id=cluster_id, scheme=config.scheme, requested=config.subnets
        )
        plan = build_plan(
            cluster_id=cluster_id,
            service=req.service,
            ports=req.ports,
            config=config,
            subnets=subnets,
            vpc_cidrs=network.cidrs,
        )
    except (SubnetError, PlanError) as e:
        raise UnsupportedError(e.reason, e.message) from e
    instances = await env.instances(instance_ids)
    nodes = [n for n in req.nodes if instance_id(n.provider_id) in instances]
    targets = {
        g.key: desired_targets(g, nodes=nodes, endpoints=req.endpoints, service_ports=req.ports)
        for g in plan.target_groups
    }
    groups = await node_groups(env, cluster_id, node_security_group, instances.values())
    target_ports = {
        g.key: tuple(sorted({t.port for t in targets[g.key]}))
        for g in plan.target_groups
        if g.target_type == TargetType.IP
    }
    return Desired(
        plan=plan,
        targets=targets,
        groups=groups,
        frontend=frontend_group(cluster_id, req.service),
        frontend_rules=frontend_rules(cluster_id=cluster_id, service_uid=uid, plan=plan),
        target_ports=target_ports,
        vpc_id=network.vpc_id,
    )


async def preflight(client: AWSClient, plan: Plan) -> None:
    """Check the references AWS would refuse only after the load balancer exists: the
    ACM certificates, the SSL policy and the EIP allocations."""
    for cert in sorted({c for spec in plan.listeners for c in spec.certificates}):
        if ":acm:" not in cert:
            continue  # an IAM server certificate: ELBv2 checks it
        try:
            await client.call("acm", "describe_certificate", CertificateArn=cert)
        except AWSError as e:
            if e.code not in _CERT_MISSING:
                raise
            raise UnsupportedError(
                "CertificateNotFound",
                f"{annotation_key('ssl-cert')}: certificate {cert} not found: {e.message}",
            ) from e
    policies = {s.ssl_policy for s in plan.listeners if s.ssl_policy}
    for policy in sorted(policies - {DEFAULT_SSL_POLICY}):
        try:
            answer = await client.call("elbv2", "describe_ssl_policies", Names=[policy])
            found = bool(answer.get("SslPolicies"))
        except AWSError as e:
            if e.code != "SSLPolicyNotFound":
                raise
            found = False
        if not found:
            raise UnsupportedError(
                "SSLPolicyNotFound",
                f"{annotation_key('ssl-negotiation-policy')}: no SSL policy {policy}",
            )
    eips = sorted(plan.lb.eip_allocations.values())
    if eips:
        try:
            await client.call("ec2", "describe_addresses", AllocationIds=eips)
        except AWSError as e:
            if e.code != "InvalidAllocationID.NotFound":
                raise
            raise UnsupportedError(
                "EIPAllocationNotFound", f"{annotation_key('eip-allocations')}: {e.message}"
            ) from e
