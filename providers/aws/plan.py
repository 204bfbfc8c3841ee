"""The desired NLB of a Service: listeners, target groups and health checks (pure).

:func:`build_plan` turns a Service, its supported ports, its :class:`NLBConfig` and the
chosen subnets into a :class:`Plan`; same inputs, equal plan. The provider then diffs
the plan against AWS with the helpers at the end of this module.

Rules:

- One listener and one target group per port number and protocol. A TCP and a UDP
  port with the same number share one ``TCP_UDP`` listener and group (instance: their
  nodePorts must be equal; ip: their target ports).
- A TCP port named by ``ssl-ports`` (number, name or ``*``) gets a ``TLS`` listener; its
  group stays ``TCP``, so its key (``443/TCP``) and name survive turning TLS on or off.
  ``*`` means every TCP-only port (a ``TCP_UDP`` port cannot be TLS); naming a UDP or
  ``TCP_UDP`` port, or a port that does not exist, is a :class:`PlanError`.
- Target-group port: the nodePort (instance), the numeric target port (ip), or ``1``
  for a named target port (ip; every target is registered with its own port).
- Health checks, defaults then annotation overrides field by field (see
  :mod:`.health`, whose names this module re-exports).
- Target groups are named by :func:`naming.target_group_name` over the key, the group
  port, the target type and the health-check protocol: AWS cannot modify those, so a
  change gives a new name and the group is replaced (:func:`replacement_needed`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from lbctl.domain.service import Service, ServicePort
from providers.aws import naming
from providers.aws.annotations import NLBConfig, Scheme, TargetType
from providers.aws.health import (
    KUBE_PROXY_HEALTH_PORT,
    TRAFFIC_PORT,
    HealthCheck,
    PlanError,
    default_health_check,
    health_check_changes,
    health_check_from_aws,
    resolve_health_check,
)
from providers.aws.subnets import SubnetInfo

__all__ = [
    "CROSS_ZONE_ATTRIBUTE",
    "DEFAULT_SSL_POLICY",
    "KUBE_PROXY_HEALTH_PORT",
    "TRAFFIC_PORT",
    "HealthCheck",
    "ListenerSpec",
    "LoadBalancerSpec",
    "Plan",
    "PlanError",
    "TargetGroupSpec",
    "attribute_changes",
    "build_plan",
    "default_health_check",
    "health_check_changes",
    "health_check_from_aws",
    "preserves_client_ip",
    "replacement_needed",
    "resolve_health_check",
    "tag_changes",
    "target_group_attribute_defaults",
]

DEFAULT_SSL_POLICY: Final = "ELBSecurityPolicy-2016-08"
CROSS_ZONE_ATTRIBUTE: Final = "load_balancing.cross_zone.enabled"
_PRESERVE: Final = "preserve_client_ip.enabled"


@dataclass(frozen=True, slots=True)
class TargetGroupSpec:
    key: str
    """``<listener port>/<group protocol>``: ``53/TCP_UDP``, ``443/TCP`` (also for TLS)."""
    name: str
    protocol: str
    """``TCP`` | ``UDP`` | ``TCP_UDP`` (a TLS listener forwards to a TCP group)."""
    port: int
    target_type: str
    health: HealthCheck
    attributes: Mapping[str, str]
    """The attributes the annotations set."""
    tags: Mapping[str, str]
    service_ports: tuple[str, ...]
    """The Service ports it serves: their names, or ``<port>/<protocol>`` if unnamed."""
    attribute_defaults: Mapping[str, str] = field(default_factory=dict)
    """AWS's defaults of the attributes lbctl manages: what an attribute no annotation
    sets any more goes back to (pass to :func:`attribute_changes`)."""


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    port: int
    protocol: str
    """``TCP`` | ``UDP`` | ``TCP_UDP`` | ``TLS``."""
    target_group_key: str
    certificates: tuple[str, ...] = ()
    ssl_policy: str | None = None


@dataclass(frozen=True, slots=True)
class LoadBalancerSpec:
    name: str
    scheme: str
    subnet_ids: tuple[str, ...]
    eip_allocations: Mapping[str, str]
    """Subnet id -> allocation id; empty when no EIPs are asked for."""
    attributes: Mapping[str, str]
    tags: Mapping[str, str]
    """Ownership tags, the additional tags and their record (see :mod:`.naming`)."""
    attribute_defaults: Mapping[str, str] = field(
        default_factory=lambda: {CROSS_ZONE_ATTRIBUTE: "false"}
    )


@dataclass(frozen=True, slots=True)
class Plan:
    lb: LoadBalancerSpec
    listeners: tuple[ListenerSpec, ...]
    """Sorted by port."""
    target_groups: tuple[TargetGroupSpec, ...]
    """Sorted by port, then protocol (the order of :attr:`listeners`)."""
    source_ranges: tuple[str, ...]
    """The effective client CIDRs."""

    def target_group(self, key: str) -> TargetGroupSpec | None:
        """The group with this key, if planned."""
        return next((g for g in self.target_groups if g.key == key), None)


# --- target groups and listeners --------------------------------------------------------


def preserves_client_ip(target_type: str, protocol: str, attributes: Mapping[str, str]) -> bool:
    """Whether targets see the client's address (else the NLB's private address)."""
    value = attributes.get(_PRESERVE)
    if value is not None:
        return value == "true"
    return target_type == TargetType.INSTANCE or protocol in ("UDP", "TCP_UDP")


def target_group_attribute_defaults(target_type: str, protocol: str) -> dict[str, str]:
    """AWS's default of every target-group attribute lbctl manages."""
    return {
        "deregistration_delay.connection_termination.enabled": "false",
        "deregistration_delay.timeout_seconds": "300",
        _PRESERVE: "true" if preserves_client_ip(target_type, protocol, {}) else "false",
        "proxy_protocol_v2.enabled": "false",
        "stickiness.enabled": "false",
        "stickiness.type": "source_ip",
    }


def _proto(port: ServicePort) -> str:
    return port.protocol or "TCP"


def _label(port: ServicePort) -> str:
    return port.name or f"{port.port}/{_proto(port)}"


def _target_port(port: ServicePort) -> int | str:
    tp = port.target_port
    return port.port if tp is None or tp in (0, "") else tp


def _group_port(members: Sequence[ServicePort], target_type: str, key: str) -> int:
    labels = " and ".join(_label(p) for p in members)
    if target_type == TargetType.INSTANCE:
        node_ports = {p.node_port for p in members}
        if 0 in node_ports:
            raise PlanError(
                "MissingNodePort",
                f"{key}: port {labels} has no nodePort, which instance targets need "
                "(allocateLoadBalancerNodePorts is false? use target type ip)",
            )
        if len(node_ports) > 1:
            raise PlanError(
                "TCPUDPNodePortMismatch",
                f"{key}: ports {labels} share one TCP_UDP target group but have nodePorts "
                + " and ".join(str(p.node_port) for p in members),
            )
        return members[0].node_port
    targets = {_target_port(p) for p in members}
    if len(targets) > 1:
        raise PlanError(
            "TCPUDPTargetPortMismatch",
            f"{key}: ports {labels} share one TCP_UDP target group but have target ports "
            + " and ".join(str(_target_port(p)) for p in members),
        )
    target = _target_port(members[0])
    return target if isinstance(target, int) else 1


def _tls_ports(config: NLBConfig, by_number: Mapping[int, Sequence[ServicePort]]) -> set[int]:
    if not config.ssl_cert:
        return set()
    if config.ssl_ports == ("*",):
        return {n for n, ps in by_number.items() if {_proto(p) for p in ps} == {"TCP"}}
    tls: set[int] = set()
    problems: list[str] = []
    for entry in config.ssl_ports:
        matched = [
            p
            for ps in by_number.values()
            for p in ps
            if (p.port == int(entry) if entry.isdigit() else p.name == entry)
        ]
        protocols = {_proto(p) for p in by_number.get(matched[0].port, ())} if matched else set()
        if not matched:
            problems.append(f"{entry} is not a port of the Service")
        elif "TCP" not in {_proto(p) for p in matched}:
            problems.append(f"{entry} is a UDP port (TLS needs TCP)")
        elif protocols != {"TCP"}:
            problems.append(f"{entry} is also a UDP port (one TCP_UDP listener cannot be TLS)")
        else:
            tls.add(matched[0].port)
    if problems:
        raise PlanError("InvalidSSLPorts", "ssl-ports: " + "; ".join(problems))
    return tls


def _ports_by_number(ports: Sequence[ServicePort]) -> dict[int, list[ServicePort]]:
    by_number: dict[int, list[ServicePort]] = {}
    for port in ports:
        protocol = _proto(port)
        if protocol not in ("TCP", "UDP"):
            raise PlanError(
                "UnsupportedProtocol", f"port {port.port}/{protocol}: an NLB serves TCP and UDP"
            )
        members = by_number.setdefault(port.port, [])
        if any(_proto(p) == protocol for p in members):
            raise PlanError("DuplicatePort", f"port {port.port}/{protocol} is listed twice")
        members.append(port)
    for members in by_number.values():
        members.sort(key=_proto)
    return by_number


def _target_group(
    cluster_id: str,
    service: Service,
    config: NLBConfig,
    members: Sequence[ServicePort],
    extra_tags: Mapping[str, str],
) -> TargetGroupSpec:
    number = members[0].port
    protocol = "TCP_UDP" if len(members) > 1 else _proto(members[0])
    key = f"{number}/{protocol}"
    target_type = str(config.target_type)
    attrs = dict(config.target_group_attributes)
    if protocol != "TCP" and attrs.get(_PRESERVE) == "false":
        raise PlanError(
            "InvalidTargetGroupAttributes",
            f"{key}: preserve_client_ip.enabled cannot be false for a {protocol} target group",
        )
    port = _group_port(members, target_type, key)
    default = default_health_check(service, protocol, target_type)
    health = resolve_health_check(default, config.health)
    name = naming.target_group_name(
        cluster_id, service, key, (str(port), target_type, health.protocol)
    )
    tags = {
        **extra_tags,
        **naming.ownership_tags(cluster_id, service, naming.RESOURCE_TARGET_GROUP, key),
    }
    return TargetGroupSpec(
        key=key,
        name=name,
        protocol=protocol,
        port=port,
        target_type=target_type,
        health=health,
        attributes=attrs,
        tags=tags,
        service_ports=tuple(_label(p) for p in members),
        attribute_defaults=target_group_attribute_defaults(target_type, protocol),
    )


def _load_balancer(
    cluster_id: str,
    service: Service,
    config: NLBConfig,
    subnets: Sequence[SubnetInfo],
    extra_tags: Mapping[str, str],
) -> LoadBalancerSpec:
    if not subnets:
        raise PlanError("SubnetsNotFound", "no subnet to put the load balancer in")
    eips: dict[str, str] = {}
    if config.eip_allocations:
        if config.scheme != Scheme.INTERNET_FACING:
            raise PlanError("InvalidEIPAllocations", "an internal load balancer takes no EIPs")
        if len(config.eip_allocations) != len(subnets):
            raise PlanError(
                "EIPAllocationCountMismatch",
                f"{len(config.eip_allocations)} EIP allocations for {len(subnets)} subnets "
                f"({', '.join(s.az for s in subnets)}): give one per subnet",
            )
        eips = {s.id: e for s, e in zip(subnets, config.eip_allocations, strict=True)}
    attributes = {}
    if config.cross_zone is not None:
        attributes[CROSS_ZONE_ATTRIBUTE] = "true" if config.cross_zone else "false"
    tags = {
        **extra_tags,
        **naming.ownership_tags(cluster_id, service, naming.RESOURCE_LOAD_BALANCER),
    }
    return LoadBalancerSpec(
        name=naming.load_balancer_name(cluster_id, service, config.scheme),
        scheme=str(config.scheme),
        subnet_ids=tuple(s.id for s in subnets),
        eip_allocations=eips,
        attributes=attributes,
        tags=tags,
    )


def build_plan(
    *,
    cluster_id: str,
    service: Service,
    ports: Sequence[ServicePort],
    config: NLBConfig,
    subnets: Sequence[SubnetInfo],
    vpc_cidrs: Sequence[str],
) -> Plan:
    """The desired load balancer (module rules); :class:`PlanError` if it cannot be.

    ``subnets`` are the chosen ones (``subnets.select_subnets``); ``vpc_cidrs`` are the
    default client ranges of an internal load balancer.
    """
    extra_tags = {
        **config.additional_tags,
        naming.TAG_ADDITIONAL: naming.additional_tags_record(config.additional_tags),
    }
    ordered = sorted(subnets, key=lambda s: (s.az, s.id))
    lb = _load_balancer(cluster_id, service, config, ordered, extra_tags)
    by_number = _ports_by_number(ports)
    tls = _tls_ports(config, by_number)
    groups: list[TargetGroupSpec] = []
    listeners: list[ListenerSpec] = []
    for number in sorted(by_number):
        group = _target_group(cluster_id, service, config, by_number[number], extra_tags)
        groups.append(group)
        if number in tls:
            policy = config.ssl_negotiation_policy or DEFAULT_SSL_POLICY
            listeners.append(ListenerSpec(number, "TLS", group.key, config.ssl_cert, policy))
        else:
            listeners.append(ListenerSpec(number, group.protocol, group.key))
    if config.source_ranges:
        source_ranges = config.source_ranges
    elif config.scheme == Scheme.INTERNET_FACING:
        source_ranges = ("0.0.0.0/0",)
    elif vpc_cidrs:
        source_ranges = tuple(dict.fromkeys(vpc_cidrs))
    else:
        raise PlanError("MissingVPCCIDR", "an internal load balancer needs the VPC's CIDRs")
    return Plan(lb, tuple(listeners), tuple(groups), source_ranges)


# --- diffs against what AWS holds ---------------------------------------------------------


class _Named(Protocol):
    @property
    def name(self) -> str: ...


def replacement_needed(current: _Named, desired: _Named) -> bool:
    """True if the current target group must be replaced by the desired one: the name
    hashes everything AWS cannot change in place."""
    return current.name != desired.name


def attribute_changes(
    current: Mapping[str, str],
    desired: Mapping[str, str],
    defaults: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The attributes to modify: desired values that differ from current ones, and,
    for a key of ``defaults`` no longer desired, its default if current differs
    (so removing an annotation undoes its effect)."""
    wanted = {**(defaults or {}), **desired}
    return {k: v for k, v in sorted(wanted.items()) if current.get(k) != v}


def tag_changes(
    current: Mapping[str, str],
    desired: Mapping[str, str],
    managed_keys: Sequence[str] = (),
) -> tuple[dict[str, str], tuple[str, ...]]:
    """``(tags to add or overwrite, keys to remove)``.

    Only keys in ``managed_keys`` are ever removed (pass ``naming.managed_tag_keys``
    of the current tags): tags a human added by hand survive.
    """
    to_set = {k: v for k, v in sorted(desired.items()) if current.get(k) != v}
    to_remove = tuple(sorted({k for k in managed_keys if k in current and k not in desired}))
    return to_set, to_remove
