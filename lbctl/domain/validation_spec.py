"""The ``spec`` rules of kube-apiserver's Service validation.

:func:`spec_errors` checks one Service's spec in the order kube-apiserver's
``ValidateService`` does (after the metadata; the clusterIP / ipFamilies part lives
in :mod:`lbctl.domain.validation_ips`); :func:`spec_update_errors` holds the rules
that compare an update with the stored object.  Messages, field paths and the shape of bad values
follow kube-apiserver 1.34, quirks included: the source ranges are reported under
``spec.LoadBalancerSourceRanges`` and a missing ``allocateLoadBalancerNodePorts``
under a path without ``spec.``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from lbctl.domain import names
from lbctl.domain.fielderrors import (
    FieldError,
    Path,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
)
from lbctl.domain.service import (
    Protocol,
    Service,
    ServicePort,
    ServiceSpec,
    ServiceType,
    TrafficPolicy,
)
from lbctl.domain.validation_ips import (
    GoLiteral,
    cluster_ip_field_errors,
    cluster_ips_update_errors,
    go_quote,
    ip_families_update_errors,
    is_headless,
)

__all__ = [
    "SOURCE_RANGES_ANNOTATION",
    "externally_accessible",
    "label_errors",
    "needs_health_check",
    "spec_errors",
    "spec_update_errors",
]

SOURCE_RANGES_ANNOTATION: Final = "service.beta.kubernetes.io/load-balancer-source-ranges"
MAX_AFFINITY_SECONDS: Final = 86400
_LB_ONLY: Final = "may only be used when `type` is 'LoadBalancer'"
_CHANGED: Final = "may not change once set"

_SPEC: Final = Path.root("spec")
_CLUSTER_IPS: Final = _SPEC.child("clusterIPs")


def _go_port_key(protocol: str, port: int) -> GoLiteral:
    """The ``core.ServicePort{Protocol, Port}`` key a duplicate port is reported with
    (rendered as JSON of the internal Go struct, field names capitalised)."""
    return GoLiteral(
        f'{{"Name":"","Protocol":{go_quote(protocol)},"AppProtocol":null,"Port":{port},'
        '"TargetPort":0,"NodePort":0}'
    )


def _sorted(values: Iterable[str]) -> list[str]:
    return sorted(str(v) for v in values)


def externally_accessible(spec: ServiceSpec) -> bool:
    """Reachable from outside: NodePort, LoadBalancer, or ClusterIP with externalIPs."""
    return spec.type in (ServiceType.LOAD_BALANCER, ServiceType.NODE_PORT) or (
        spec.type == ServiceType.CLUSTER_IP and bool(spec.external_ips)
    )


def needs_health_check(spec: ServiceSpec) -> bool:
    return spec.type == ServiceType.LOAD_BALANCER and (
        spec.external_traffic_policy == TrafficPolicy.LOCAL
    )


def label_errors(labels: Mapping[str, str], path: Path) -> list[FieldError]:
    """Label keys and values; every error names the map itself, as upstream does."""
    errors: list[FieldError] = []
    for key, value in labels.items():
        errors.extend(invalid(path, key, m) for m in names.qualified_name_errors(key))
        errors.extend(invalid(path, value, m) for m in names.label_value_errors(value))
    return errors


def _port_errors(
    port: ServicePort, path: Path, *, require_name: bool, seen: set[str]
) -> list[FieldError]:
    errors: list[FieldError] = []
    name_path = path.child("name")
    if require_name and not port.name:
        errors.append(required(name_path))
    elif port.name:
        errors.extend(
            invalid(name_path, port.name, m) for m in names.dns1123_label_errors(port.name)
        )
        if port.name in seen:
            errors.append(duplicate(name_path, port.name))
        else:
            seen.add(port.name)
    errors.extend(
        invalid(path.child("port"), port.port, m) for m in names.port_number_errors(port.port)
    )
    protocol_path = path.child("protocol")
    if not port.protocol:
        errors.append(required(protocol_path))
    elif port.protocol not in set(Protocol):
        errors.append(not_supported(protocol_path, port.protocol, _sorted(Protocol)))
    target = port.target_port
    target_path = path.child("targetPort")
    if isinstance(target, str):
        errors.extend(invalid(target_path, target, m) for m in names.port_name_errors(target))
    else:
        number = target or 0
        errors.extend(invalid(target_path, number, m) for m in names.port_number_errors(number))
    if port.app_protocol is not None:
        errors.extend(
            invalid(path.child("appProtocol"), port.app_protocol, m)
            for m in names.qualified_name_errors(port.app_protocol)
        )
    return errors


def _type_errors(spec: ServiceSpec) -> list[FieldError]:
    errors: list[FieldError] = []
    if spec.type in (ServiceType.LOAD_BALANCER, ServiceType.NODE_PORT) and is_headless(spec):
        errors.append(
            invalid(
                _CLUSTER_IPS.index(0),
                spec.cluster_ips[0],
                f"may not be set to 'None' for {spec.type} services",
            )
        )
    elif spec.type == ServiceType.EXTERNAL_NAME:
        detail = "may not be set for ExternalName services"
        if spec.cluster_ips:
            errors.append(forbidden(_CLUSTER_IPS, detail))
        if spec.ip_families:
            errors.append(forbidden(_SPEC.child("ipFamilies"), detail))
        if spec.ip_family_policy is not None:
            errors.append(forbidden(_SPEC.child("ipFamilyPolicy"), detail))
        cname = spec.external_name.removesuffix(".")
        path = _SPEC.child("externalName")
        if cname:
            errors.extend(invalid(path, cname, m) for m in names.dns1123_subdomain_errors(cname))
        else:
            errors.append(required(path))
    return errors


def _affinity_errors(spec: ServiceSpec) -> list[FieldError]:
    path = _SPEC.child("sessionAffinity")
    supported = ("ClientIP", "None")
    if not spec.session_affinity:
        return [required(path)]
    if spec.session_affinity not in supported:
        return [not_supported(path, spec.session_affinity, supported)]
    config = spec.extra.get("sessionAffinityConfig")
    config_path = _SPEC.child("sessionAffinityConfig")
    if spec.session_affinity == "None":
        if config is not None:
            return [forbidden(config_path, "must not be set when session affinity is None")]
        return []
    detail = "when session affinity type is ClientIP"
    if not isinstance(config, Mapping):
        return [required(config_path, detail)]
    client_ip = config.get("clientIP")
    if not isinstance(client_ip, Mapping):
        return [required(config_path.child("clientIP"), detail)]
    timeout = client_ip.get("timeoutSeconds")
    timeout_path = config_path.child("clientIP", "timeoutSeconds")
    if not isinstance(timeout, int) or isinstance(timeout, bool):
        return [required(timeout_path, detail)]
    if not 0 < timeout <= MAX_AFFINITY_SECONDS:
        return [
            invalid(
                timeout_path,
                timeout,
                f"must be greater than 0 and less than {MAX_AFFINITY_SECONDS}",
            )
        ]
    return []


def _port_table_errors(spec: ServiceSpec) -> list[FieldError]:
    errors: list[FieldError] = []
    ports_path = _SPEC.child("ports")
    if spec.type == ServiceType.CLUSTER_IP:
        errors.extend(
            forbidden(
                ports_path.index(i).child("nodePort"), "may not be used when `type` is 'ClusterIP'"
            )
            for i, port in enumerate(spec.ports)
            if port.node_port != 0
        )
    node_ports: set[tuple[str, int]] = set()
    for i, port in enumerate(spec.ports):
        if port.node_port == 0:
            continue
        key = (port.protocol, port.node_port)
        if key in node_ports:
            errors.append(duplicate(ports_path.index(i).child("nodePort"), port.node_port))
        node_ports.add(key)
    seen: set[tuple[str, int]] = set()
    for i, port in enumerate(spec.ports):
        key = (port.protocol, port.port)
        if key in seen:
            errors.append(duplicate(ports_path.index(i), _go_port_key(*key)))
        seen.add(key)
    return errors


def _source_range_errors(svc: Service) -> list[FieldError]:
    spec = svc.spec
    errors: list[FieldError] = []
    is_lb = spec.type == ServiceType.LOAD_BALANCER
    if spec.load_balancer_source_ranges:
        path = _SPEC.child("LoadBalancerSourceRanges")
        if not is_lb:
            errors.append(forbidden(path, _LB_ONLY))
        for i, raw in enumerate(spec.load_balancer_source_ranges):
            value = raw.strip()
            errors.extend(invalid(path.index(i), value, m) for m in names.cidr_errors(value))
        return errors
    annotation = svc.metadata.annotations.get(SOURCE_RANGES_ANNOTATION)
    if annotation is None:
        return errors
    path = Path.root("metadata").child("annotations").key(SOURCE_RANGES_ANNOTATION)
    if not is_lb:
        errors.append(forbidden(path, _LB_ONLY))
    text = annotation.strip()
    if text:
        for part in text.split(","):
            value = part.strip()
            errors.extend(invalid(path, value, m) for m in names.cidr_errors(value))
    return errors


def _load_balancer_class_errors(new: ServiceSpec, old: ServiceSpec | None) -> list[FieldError]:
    errors: list[FieldError] = []
    path = _SPEC.child("loadBalancerClass")
    is_lb = new.type == ServiceType.LOAD_BALANCER
    if (
        old is not None
        and is_lb
        and old.type == ServiceType.LOAD_BALANCER
        and old.load_balancer_class != new.load_balancer_class
    ):
        errors.append(invalid(path, new.load_balancer_class, _CHANGED))
    if new.load_balancer_class is not None:
        if is_lb:
            cls = new.load_balancer_class
            errors.extend(invalid(path, cls, m) for m in names.qualified_name_errors(cls))
        else:
            errors.append(forbidden(path, _LB_ONLY))
    return errors


def _traffic_policy_errors(spec: ServiceSpec) -> list[FieldError]:
    errors: list[FieldError] = []
    etp_path = _SPEC.child("externalTrafficPolicy")
    etp = spec.external_traffic_policy
    if not externally_accessible(spec):
        if etp:
            errors.append(
                invalid(etp_path, etp, "may only be set for externally-accessible services")
            )
    elif not etp:
        errors.append(required(etp_path))
    elif etp not in set(TrafficPolicy):
        errors.append(not_supported(etp_path, etp, _sorted(TrafficPolicy)))
    hc_path = _SPEC.child("healthCheckNodePort")
    hc = spec.health_check_node_port
    if not needs_health_check(spec):
        if hc != 0:
            detail = (
                "may only be set when `type` is 'LoadBalancer'"
                " and `externalTrafficPolicy` is 'Local'"
            )
            errors.append(invalid(hc_path, hc, detail))
    elif hc == 0:
        errors.append(required(hc_path))
    else:
        errors.extend(invalid(hc_path, hc, m) for m in names.port_number_errors(hc))
    itp_path = _SPEC.child("internalTrafficPolicy")
    itp = spec.internal_traffic_policy
    if itp is None:
        if spec.type in (ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER, ServiceType.CLUSTER_IP):
            errors.append(required(itp_path))
    elif itp not in set(TrafficPolicy):
        errors.append(not_supported(itp_path, itp, _sorted(TrafficPolicy)))
    return errors


def spec_errors(svc: Service) -> list[FieldError]:
    """Every spec rule of ``ValidateService``, in upstream's order."""
    spec = svc.spec
    errors: list[FieldError] = []
    if not spec.ports and not is_headless(spec) and spec.type != ServiceType.EXTERNAL_NAME:
        errors.append(required(_SPEC.child("ports")))
    errors.extend(_type_errors(spec))
    seen_names: set[str] = set()
    for i, port in enumerate(spec.ports):
        path = _SPEC.child("ports").index(i)
        errors.extend(_port_errors(port, path, require_name=len(spec.ports) > 1, seen=seen_names))
    errors.extend(label_errors(spec.selector, _SPEC.child("selector")))
    errors.extend(_affinity_errors(spec))
    errors.extend(cluster_ip_field_errors(svc))
    for i, ip in enumerate(spec.external_ips):
        path = _SPEC.child("externalIPs").index(i)
        messages = names.ip_errors(ip) or names.non_special_ip_errors(ip)
        errors.extend(invalid(path, ip, m) for m in messages)
    type_path = _SPEC.child("type")
    if not spec.type:
        errors.append(required(type_path))
    elif spec.type not in set(ServiceType):
        errors.append(not_supported(type_path, spec.type, _sorted(ServiceType)))
    errors.extend(_port_table_errors(spec))
    errors.extend(_source_range_errors(svc))
    is_lb = spec.type == ServiceType.LOAD_BALANCER
    if spec.allocate_load_balancer_node_ports is not None and not is_lb:
        errors.append(forbidden(_SPEC.child("allocateLoadBalancerNodePorts"), _LB_ONLY))
    if is_lb and spec.allocate_load_balancer_node_ports is None:
        errors.append(required(Path.root("allocateLoadBalancerNodePorts")))
    errors.extend(_load_balancer_class_errors(spec, None))
    errors.extend(_traffic_policy_errors(spec))
    return errors


def spec_update_errors(new: Service, old: Service) -> list[FieldError]:
    """The rules of ``ValidateServiceUpdate`` that compare with the stored object."""
    errors = cluster_ips_update_errors(new.spec, old.spec)
    errors.extend(ip_families_update_errors(new.spec, old.spec))
    errors.extend(_load_balancer_class_errors(new.spec, old.spec))
    if (
        needs_health_check(old.spec)
        and needs_health_check(new.spec)
        and new.spec.health_check_node_port != old.spec.health_check_node_port
    ):
        errors.append(forbidden(_SPEC.child("healthCheckNodePort"), "field is immutable"))
    return errors
