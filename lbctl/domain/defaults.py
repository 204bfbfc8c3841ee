"""Service defaulting as kube-apiserver does it before validating.

- :func:`apply_defaults` — ``SetDefaults_Service`` (``pkg/apis/core/v1/defaults.go``),
  plus the create-time ``clusterIP`` -> ``clusterIPs`` sync the Service REST layer
  performs (``normalizeClusterIPs``).
- :func:`prepare_update` — what the REST layer does to an update before allocation:
  keep allocated values the client left out (``patchAllocatedValues``) and keep
  ``clusterIP`` / ``clusterIPs`` in step (``normalizeClusterIPs``).
- :func:`init_ip_families` — ``initIPFamilyFields`` (``storage/alloc.go``): default
  ``ipFamilyPolicy`` and ``ipFamilies`` against the cluster's configured families,
  refusing what the cluster cannot serve.

Pipeline order in kube-apiserver: decode + :func:`apply_defaults` ->
(:func:`prepare_update` on update) -> :func:`init_ip_families` (its errors end the
request with 422) -> ClusterIP / NodePort allocation -> validation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final

from lbctl.domain import names
from lbctl.domain.fielderrors import FieldError, FieldErrors, Path, invalid
from lbctl.domain.service import (
    NONE_IP,
    IPFamily,
    IPFamilyPolicy,
    IPMode,
    Protocol,
    Service,
    ServicePort,
    ServiceSpec,
    ServiceType,
    TrafficPolicy,
)
from lbctl.domain.validation_ips import cluster_ip_field_errors, go_strings
from lbctl.domain.validation_spec import externally_accessible, needs_health_check

__all__ = [
    "DEFAULT_AFFINITY_TIMEOUT_SECONDS",
    "apply_defaults",
    "init_ip_families",
    "prepare_update",
]

DEFAULT_AFFINITY_TIMEOUT_SECONDS: Final = 10800
_SPEC: Final = Path.root("spec")
_POLICY: Final = _SPEC.child("ipFamilyPolicy")
_NEEDS_DUAL: Final = (
    "must be 'RequireDualStack' or 'PreferDualStack' when multiple {} are specified"
)


def _default_port(port: ServicePort) -> ServicePort:
    protocol = port.protocol or Protocol.TCP.value
    target = port.target_port
    if target is None or target in (0, ""):
        target = port.port
    return dataclasses.replace(port, protocol=protocol, target_port=target)


def _affinity_extra(spec: ServiceSpec, affinity: str) -> Mapping[str, Any]:
    extra = dict(spec.extra)
    if affinity == "None":
        extra.pop("sessionAffinityConfig", None)
    elif affinity == "ClientIP":
        config = extra.get("sessionAffinityConfig")
        client_ip = config.get("clientIP") if isinstance(config, Mapping) else None
        timeout = client_ip.get("timeoutSeconds") if isinstance(client_ip, Mapping) else None
        if timeout is None:
            timeout_config = {"timeoutSeconds": DEFAULT_AFFINITY_TIMEOUT_SECONDS}
            extra["sessionAffinityConfig"] = {"clientIP": timeout_config}
    return extra


def apply_defaults(svc: Service) -> Service:
    """``SetDefaults_Service`` plus the create-time ``clusterIPs`` fill-in."""
    spec = svc.spec
    affinity = spec.session_affinity or "None"
    svc_type = spec.type or ServiceType.CLUSTER_IP.value
    spec = dataclasses.replace(
        spec,
        session_affinity=affinity,
        type=svc_type,
        extra=_affinity_extra(spec, affinity),
        ports=tuple(_default_port(p) for p in spec.ports),
    )
    if externally_accessible(spec) and not spec.external_traffic_policy:
        spec = dataclasses.replace(spec, external_traffic_policy=TrafficPolicy.CLUSTER.value)
    internal_types = (ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER, ServiceType.CLUSTER_IP)
    if spec.internal_traffic_policy is None and svc_type in internal_types:
        spec = dataclasses.replace(spec, internal_traffic_policy=TrafficPolicy.CLUSTER.value)
    status = svc.status
    if svc_type == ServiceType.LOAD_BALANCER:
        if spec.allocate_load_balancer_node_ports is None:
            spec = dataclasses.replace(spec, allocate_load_balancer_node_ports=True)
        ingress = tuple(
            dataclasses.replace(i, ip_mode=IPMode.VIP.value) if i.ip and i.ip_mode is None else i
            for i in status.ingress
        )
        status = dataclasses.replace(status, ingress=ingress)
    if spec.cluster_ip and not spec.cluster_ips:
        spec = dataclasses.replace(spec, cluster_ips=(spec.cluster_ip,))
    return dataclasses.replace(svc, spec=spec, status=status)


def _patched_node_ports(new: ServiceSpec, old: ServiceSpec) -> tuple[ServicePort, ...]:
    old_used = {p.node_port for p in old.ports if p.node_port}
    used = old_used & {p.node_port for p in new.ports if p.node_port}
    by_name = {p.name: p.node_port for p in old.ports}
    ports: list[ServicePort] = []
    for port in new.ports:
        remembered = by_name.get(port.name, 0)
        if port.node_port == 0 and remembered not in used:
            ports.append(dataclasses.replace(port, node_port=remembered))
        else:
            ports.append(port)
    return tuple(ports)


def prepare_update(new: Service, old: Service) -> Service:
    """Carry allocated values into an update that omitted them; sync clusterIP(s)."""
    spec, before = new.spec, old.spec
    if ServiceType.EXTERNAL_NAME not in (spec.type, before.type):
        if not spec.cluster_ip:
            spec = dataclasses.replace(spec, cluster_ip=before.cluster_ip)
        if not spec.cluster_ips and before.cluster_ips:
            spec = dataclasses.replace(spec, cluster_ips=before.cluster_ips)
    node_port_types = (ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER)
    if spec.type in node_port_types and before.type in node_port_types:
        spec = dataclasses.replace(spec, ports=_patched_node_ports(spec, before))
    if needs_health_check(spec) and needs_health_check(before) and not spec.health_check_node_port:
        spec = dataclasses.replace(spec, health_check_node_port=before.health_check_node_port)
    if before.cluster_ips and not spec.cluster_ips and before.cluster_ip == spec.cluster_ip:
        spec = dataclasses.replace(spec, cluster_ips=before.cluster_ips)
    if before.cluster_ip != spec.cluster_ip and before.cluster_ips == spec.cluster_ips:
        if before.cluster_ip and not spec.cluster_ip:
            spec = dataclasses.replace(spec, cluster_ips=())
        else:
            spec = dataclasses.replace(spec, cluster_ips=(spec.cluster_ip,))
    return dataclasses.replace(new, spec=spec)


def _other(family: str) -> str:
    return IPFamily.IPV6.value if family == IPFamily.IPV4 else IPFamily.IPV4.value


def _keeps_prefer_dual_stack(spec: ServiceSpec, old: ServiceSpec | None) -> bool:
    """An unchanged PreferDualStack Service is never up- or downgraded by a cluster change."""
    if old is None or spec.ip_family_policy is None or old.type != spec.type:
        return False
    if spec.type not in (ServiceType.CLUSTER_IP, ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER):
        return False
    prefer = IPFamilyPolicy.PREFER_DUAL_STACK
    if spec.ip_family_policy != prefer:
        return False
    if old.ip_family_policy is not None and old.ip_family_policy != prefer:
        return False
    return spec.cluster_ips == old.cluster_ips and spec.ip_families == old.ip_families


def _policy_errors(
    spec: ServiceSpec, old: ServiceSpec | None
) -> tuple[ServiceSpec, list[FieldError]]:
    errors: list[FieldError] = []
    policy = spec.ip_family_policy
    if old is not None:
        if policy == IPFamilyPolicy.SINGLE_STACK:
            if spec.cluster_ips == old.cluster_ips and len(spec.cluster_ips) > 1:
                spec = dataclasses.replace(spec, cluster_ips=spec.cluster_ips[:1])
            if spec.ip_families == old.ip_families and len(spec.ip_families) > 1:
                spec = dataclasses.replace(spec, ip_families=spec.ip_families[:1])
        else:
            if spec.cluster_ips and len(spec.cluster_ips) < len(old.cluster_ips):
                detail = "must be 'SingleStack' to release the secondary cluster IP"
                errors.append(invalid(_POLICY, policy, detail))
            if spec.ip_families and len(spec.ip_families) < len(old.ip_families):
                detail = "must be 'SingleStack' to release the secondary IP family"
                errors.append(invalid(_POLICY, policy, detail))
    if policy == IPFamilyPolicy.SINGLE_STACK:
        if len(spec.cluster_ips) == 2:
            errors.append(invalid(_POLICY, policy, _NEEDS_DUAL.format("cluster IPs")))
        if len(spec.ip_families) == 2:
            errors.append(invalid(_POLICY, policy, _NEEDS_DUAL.format("IP families")))
    return spec, errors


def _inferred_families(
    spec: ServiceSpec, configured: set[str]
) -> tuple[ServiceSpec, list[FieldError]]:
    """Fill ``ipFamilies`` from ``clusterIPs``; refuse an IP of a family the cluster lacks."""
    errors: list[FieldError] = []
    families = list(spec.ip_families)
    for i, ip in enumerate(spec.cluster_ips):
        if ip == NONE_IP:
            break
        found = names.ip_family_of(ip)
        if i < len(families) or found is None:
            continue
        if found.value in configured:
            families.append(found.value)
        else:
            path = _SPEC.child("clusterIPs").index(i)
            detail = f"{found.value} is not configured on this cluster"
            errors.append(invalid(path, go_strings(spec.cluster_ips), detail))
    return dataclasses.replace(spec, ip_families=tuple(families)), errors


def _completed_families(spec: ServiceSpec, *, primary: str, dual: bool) -> ServiceSpec:
    """Start from the primary family; add the other one when dual-stack is wanted and possible."""
    families = list(spec.ip_families) or [primary]
    wants_dual = spec.ip_family_policy != IPFamilyPolicy.SINGLE_STACK
    if wants_dual and dual and len(families) == 1 and families[0] in set(IPFamily):
        families.append(_other(families[0]))
    return dataclasses.replace(spec, ip_families=tuple(families))


def init_ip_families(
    svc: Service, *, cluster_families: tuple[IPFamily, ...], old: Service | None = None
) -> tuple[Service, FieldErrors]:
    """Default ``ipFamilyPolicy`` / ``ipFamilies`` for a cluster serving ``cluster_families``.

    ``cluster_families`` lists the configured families, primary first.  Returns the
    Service as far as it got and the errors kube-apiserver answers 422 with (the
    clusterIP field rules first, then policy and family errors).
    """
    spec = svc.spec
    before = old.spec if old is not None else None
    if spec.type == ServiceType.EXTERNAL_NAME or _keeps_prefer_dual_stack(spec, before):
        return svc, FieldErrors()
    headless_selectorless = spec.cluster_ip == NONE_IP and not spec.selector
    if spec.ip_family_policy is None:
        if before is not None and before.ip_family_policy is not None:
            policy = before.ip_family_policy
        elif headless_selectorless:
            policy = IPFamilyPolicy.REQUIRE_DUAL_STACK.value
        else:
            policy = IPFamilyPolicy.SINGLE_STACK.value
        spec = dataclasses.replace(spec, ip_family_policy=policy)
    early = cluster_ip_field_errors(dataclasses.replace(svc, spec=spec))
    if early:
        return dataclasses.replace(svc, spec=spec), FieldErrors(early)
    configured = {f.value for f in cluster_families}
    primary = cluster_families[0].value if cluster_families else IPFamily.IPV4.value
    spec, errors = _policy_errors(spec, before)
    spec, inferred_errors = _inferred_families(spec, configured)
    errors.extend(inferred_errors)
    if errors:
        return dataclasses.replace(svc, spec=spec), FieldErrors(errors)
    if headless_selectorless:
        # Selectorless headless Services may name families the cluster lacks.
        spec = _completed_families(spec, primary=primary, dual=True)
        return dataclasses.replace(svc, spec=spec), FieldErrors()
    if spec.ip_family_policy == IPFamilyPolicy.REQUIRE_DUAL_STACK and len(configured) < 2:
        detail = "this cluster is not configured for dual-stack services"
        errors.append(invalid(_POLICY, spec.ip_family_policy, detail))
    for i, family in enumerate(spec.ip_families):
        if family not in configured:
            path = _SPEC.child("ipFamilies").index(i)
            errors.append(invalid(path, family, "not configured on this cluster"))
    if errors:
        return dataclasses.replace(svc, spec=spec), FieldErrors(errors)
    spec = _completed_families(spec, primary=primary, dual=len(configured) == 2)
    return dataclasses.replace(svc, spec=spec), FieldErrors()
