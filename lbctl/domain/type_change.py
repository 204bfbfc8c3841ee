"""What happens to a Service's type-dependent fields when its type changes.

kube-apiserver clears a field on update only when (a) it no longer applies to the new
type, (b) the server may have filled it in itself, and (c) the client did not change
it in the same request (a change would then fail validation, which is the right
answer). The values cleared here are released by the allocators afterwards.
"""

from __future__ import annotations

import dataclasses

from lbctl.domain.service import Service, ServiceSpec, ServiceType, TrafficPolicy

__all__ = [
    "drop_type_dependent_fields",
    "externally_accessible",
    "needs_cluster_ip",
    "needs_health_check_node_port",
    "needs_node_ports",
]


def needs_cluster_ip(spec: ServiceSpec) -> bool:
    return spec.type != ServiceType.EXTERNAL_NAME


def needs_node_ports(spec: ServiceSpec) -> bool:
    return spec.type in (ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER)


def needs_health_check_node_port(spec: ServiceSpec) -> bool:
    return spec.type == ServiceType.LOAD_BALANCER and (
        spec.external_traffic_policy == TrafficPolicy.LOCAL
    )


def externally_accessible(spec: ServiceSpec) -> bool:
    return needs_node_ports(spec) or (
        spec.type == ServiceType.CLUSTER_IP and bool(spec.external_ips)
    )


def drop_type_dependent_fields(new: Service, old: Service) -> Service:
    """Clear on ``new`` what its type no longer needs and the client left as it was."""
    n, o = new.spec, old.spec
    changes: dict[str, object] = {}
    if needs_cluster_ip(o) and not needs_cluster_ip(n):
        if (n.cluster_ip, n.cluster_ips) == (o.cluster_ip, o.cluster_ips):
            changes.update(cluster_ip="", cluster_ips=())
        if n.ip_families == o.ip_families:
            changes["ip_families"] = ()
        if n.ip_family_policy == o.ip_family_policy:
            changes["ip_family_policy"] = None
    if (
        needs_node_ports(o)
        and not needs_node_ports(n)
        and [p.node_port for p in n.ports] == [p.node_port for p in o.ports]
    ):
        changes["ports"] = tuple(dataclasses.replace(p, node_port=0) for p in n.ports)
    if (
        needs_health_check_node_port(o)
        and not needs_health_check_node_port(n)
        and n.health_check_node_port == o.health_check_node_port
    ):
        changes["health_check_node_port"] = 0
    was_lb, is_lb = o.type == ServiceType.LOAD_BALANCER, n.type == ServiceType.LOAD_BALANCER
    if (
        was_lb
        and not is_lb
        and n.allocate_load_balancer_node_ports is not None
        and n.allocate_load_balancer_node_ports == o.allocate_load_balancer_node_ports
    ):
        changes["allocate_load_balancer_node_ports"] = None
    if was_lb and not is_lb and n.load_balancer_class == o.load_balancer_class:
        changes["load_balancer_class"] = None
    if (
        externally_accessible(o)
        and not externally_accessible(n)
        and n.external_traffic_policy == o.external_traffic_policy
    ):
        changes["external_traffic_policy"] = ""
    if (
        needs_cluster_ip(o)
        and not needs_cluster_ip(n)
        and n.internal_traffic_policy == o.internal_traffic_policy
    ):
        changes["internal_traffic_policy"] = None
    out = new.replace_spec(**changes) if changes else new
    if not is_lb and (out.status.ingress or out.status.load_balancer_extra):
        out = out.replace_status(ingress=(), load_balancer_extra={})
    return out
