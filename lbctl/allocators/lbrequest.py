"""Turn a Service into the :class:`LBRequest` the pool allocator takes.

What is read (MetalLB's ``controller/service.go`` and ``k8salloc``; lbctl's own
annotations first, then MetalLB's so Services migrate unchanged, then MetalLB's
deprecated ``metallb.universe.tf`` ones):

* requested IPs: ``spec.loadBalancerIP`` or the ``loadBalancerIPs`` annotation (a comma
  list, the only way to ask for two, one per family); setting both is an error;
* pool: the ``address-pool`` annotation;
* sharing key: the ``allow-shared-ip`` annotation;
* backend key: the selector (``k=v`` sorted, comma-joined) under
  ``externalTrafficPolicy: Local``, "" under Cluster, so Local sharers must select
  the same pods;
* ports: ``(protocol, port)``, protocol TCP when unset;
* families: ``spec.ipFamilies`` in order; RequireDualStack / PreferDualStack ask for
  both (PreferDualStack settles for one); otherwise the first of ``ipFamilies``, else
  the family of the requested IP or ClusterIP, else IPv4.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Final

from lbctl.allocators.lbpool_model import LBAllocationError, LBAllocationReason, LBRequest
from lbctl.domain.service import (
    IPFamily,
    IPFamilyPolicy,
    Protocol,
    Service,
    ServiceType,
    TrafficPolicy,
)

__all__ = [
    "ADDRESS_POOL_ANNOTATIONS",
    "ALLOW_SHARED_IP_ANNOTATIONS",
    "LOAD_BALANCER_IPS_ANNOTATIONS",
    "backend_key",
    "lb_request_from_service",
]

LOAD_BALANCER_IPS_ANNOTATIONS: Final = (
    "lbctl.io/loadBalancerIPs",
    "metallb.io/loadBalancerIPs",
    "metallb.universe.tf/loadBalancerIPs",
)
ADDRESS_POOL_ANNOTATIONS: Final = (
    "lbctl.io/address-pool",
    "metallb.io/address-pool",
    "metallb.universe.tf/address-pool",
)
ALLOW_SHARED_IP_ANNOTATIONS: Final = (
    "lbctl.io/allow-shared-ip",
    "metallb.io/allow-shared-ip",
    "metallb.universe.tf/allow-shared-ip",
)
_OTHER: Final = {IPFamily.IPV4: IPFamily.IPV6, IPFamily.IPV6: IPFamily.IPV4}


def _invalid(svc: Service, message: str) -> LBAllocationError:
    return LBAllocationError(LBAllocationReason.INVALID_REQUEST, message, key=svc.key)


def _annotation(annotations: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str]:
    """The first of ``names`` present (name, value), or ("", "")."""
    for name in names:
        if name in annotations:
            return name, annotations[name]
    return "", ""


def _family_of(text: str) -> IPFamily | None:
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return IPFamily.IPV4 if ip.version == 4 else IPFamily.IPV6


def backend_key(svc: Service) -> str:
    """The selector under ``externalTrafficPolicy: Local``, else "" (MetalLB's BackendKey)."""
    if svc.spec.external_traffic_policy != TrafficPolicy.LOCAL:
        return ""
    return ",".join(f"{k}={v}" for k, v in sorted(svc.spec.selector.items()))


def _requested_ips(svc: Service) -> tuple[str, ...]:
    name, value = _annotation(svc.metadata.annotations, LOAD_BALANCER_IPS_ANNOTATIONS)
    spec_ip = svc.spec.load_balancer_ip
    if name and spec_ip:
        raise _invalid(svc, f"a Service cannot set both {name} and spec.loadBalancerIP")
    if spec_ip:
        if _family_of(spec_ip) is None:
            raise _invalid(svc, f"invalid spec.loadBalancerIP {spec_ip!r}")
        return (spec_ip.strip(),)
    if not name:
        return ()
    ips = tuple(part.strip() for part in value.split(","))
    bad = [ip for ip in ips if _family_of(ip) is None]
    if bad:
        raise _invalid(svc, f"invalid {name} {value!r}: {bad[0]!r} is not an IP address")
    fams = [_family_of(ip) for ip in ips]
    if len(ips) > 2 or len(set(fams)) != len(fams):
        raise _invalid(svc, f"invalid {name} {value!r}: at most one IPv4 and one IPv6 address")
    return ips


def _families(svc: Service, requested: tuple[str, ...]) -> tuple[tuple[IPFamily, ...], bool]:
    spec = svc.spec
    try:
        listed = tuple(IPFamily(f) for f in spec.ip_families)
    except ValueError:
        raise _invalid(svc, f"invalid spec.ipFamilies {list(spec.ip_families)!r}") from None
    if len(listed) > 2 or len(set(listed)) != len(listed):
        raise _invalid(svc, f"invalid spec.ipFamilies {list(spec.ip_families)!r}")
    policy = spec.ip_family_policy or IPFamilyPolicy.SINGLE_STACK
    if policy not in tuple(IPFamilyPolicy):
        raise _invalid(svc, f"invalid spec.ipFamilyPolicy {policy!r}")
    if policy != IPFamilyPolicy.SINGLE_STACK or len(listed) == 2:
        primary = listed[0] if listed else IPFamily.IPV4
        return (primary, _OTHER[primary]), policy == IPFamilyPolicy.PREFER_DUAL_STACK
    if listed:
        return listed, False
    for text in (*requested, *spec.cluster_ips, spec.cluster_ip):
        fam = _family_of(text) if text else None
        if fam is not None:
            return (fam,), False
    return (IPFamily.IPV4,), False


def lb_request_from_service(svc: Service, *, namespace_labels: Mapping[str, str]) -> LBRequest:
    """The pool allocator's view of a LoadBalancer Service.

    Raises :class:`LBAllocationError` with reason ``InvalidRequest`` for a Service that
    is not a LoadBalancer or asks for something malformed.
    """
    if svc.spec.type != ServiceType.LOAD_BALANCER:
        raise _invalid(
            svc, f"{svc.key} is of type {svc.spec.type or 'ClusterIP'}, not LoadBalancer"
        )
    annotations = svc.metadata.annotations
    requested = _requested_ips(svc)
    families, prefer = _families(svc, requested)
    return LBRequest(
        key=svc.key,
        namespace=svc.metadata.namespace,
        service_labels=dict(svc.metadata.labels),
        namespace_labels=dict(namespace_labels),
        requested_ips=requested,
        requested_pool=_annotation(annotations, ADDRESS_POOL_ANNOTATIONS)[1].strip(),
        sharing_key=_annotation(annotations, ALLOW_SHARED_IP_ANNOTATIONS)[1],
        backend_key=backend_key(svc),
        ports=tuple((p.protocol or Protocol.TCP.value, p.port) for p in svc.spec.ports),
        families=families,
        prefer_dual_stack=prefer,
    )
