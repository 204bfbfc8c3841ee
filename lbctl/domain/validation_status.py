"""Rules for ``status.loadBalancer`` and ``status.conditions`` of a Service.

:func:`load_balancer_status_errors` is what kube-apiserver 1.34 checks on a status
update (``ValidateLoadBalancerStatus``, with the ``AllowServiceLBStatusOnNonLB``
gate off and ``LoadBalancerIPMode`` on, their defaults).

kube-apiserver does *not* check ``ingress[].ports`` or ``status.conditions``; the
``strict=True`` rules below add them for lbctl's own writers: port and protocol as
for spec ports, ``error`` against the pattern and length published in the API
(``core/v1`` ``PortStatus.error``), and conditions as ``metav1.Condition`` is
validated elsewhere in Kubernetes (``ValidateConditions``).
"""

from __future__ import annotations

import re
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
    too_long,
)
from lbctl.domain.service import (
    Condition,
    Ingress,
    IPMode,
    Protocol,
    ServiceSpec,
    ServiceStatus,
    ServiceType,
)

__all__ = [
    "MAX_CONDITION_MESSAGE_BYTES",
    "MAX_CONDITION_REASON_BYTES",
    "MAX_PORT_ERROR_BYTES",
    "condition_errors",
    "load_balancer_status_errors",
]

MAX_PORT_ERROR_BYTES: Final = 316
MAX_CONDITION_REASON_BYTES: Final = 1024
MAX_CONDITION_MESSAGE_BYTES: Final = 32 * 1024

_STATUS: Final = Path.root("status")
_LB: Final = _STATUS.child("loadBalancer")

# ``PortStatus.error``: an optional DNS-subdomain prefix and '/', then a name.
_PORT_ERROR_RE: Final = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])"
)
_PORT_ERROR_DETAIL: Final = (
    "must be a CamelCase name, optionally prefixed with a DNS subdomain and '/'"
    " (e.g. 'PortUnavailable' or 'example.com/PortUnavailable')"
)


def _ingress_port_errors(ingress: Ingress, path: Path) -> list[FieldError]:
    errors: list[FieldError] = []
    for j, port in enumerate(ingress.ports):
        port_path = path.child("ports").index(j)
        errors.extend(
            invalid(port_path.child("port"), port.port, m)
            for m in names.port_number_errors(port.port)
        )
        protocol_path = port_path.child("protocol")
        if not port.protocol:
            errors.append(required(protocol_path))
        elif port.protocol not in set(Protocol):
            errors.append(not_supported(protocol_path, port.protocol, sorted(Protocol)))
        if port.error is not None:
            error_path = port_path.child("error")
            if names.byte_len(port.error) > MAX_PORT_ERROR_BYTES:
                errors.append(too_long(error_path, MAX_PORT_ERROR_BYTES))
            elif _PORT_ERROR_RE.fullmatch(port.error) is None:
                errors.append(invalid(error_path, port.error, _PORT_ERROR_DETAIL))
    return errors


def _ingress_errors(ingress: Ingress, path: Path, *, strict: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    if ingress.ip:
        errors.extend(invalid(path.child("ip"), ingress.ip, m) for m in names.ip_errors(ingress.ip))
    mode_path = path.child("ipMode")
    if ingress.ip_mode is None:
        if ingress.ip:
            errors.append(required(mode_path, "must be specified when `ip` is set"))
    elif not ingress.ip:
        errors.append(forbidden(mode_path, "may not be specified when `ip` is not set"))
    elif ingress.ip_mode not in set(IPMode):
        errors.append(not_supported(mode_path, ingress.ip_mode, sorted(IPMode)))
    if ingress.hostname:
        host_path = path.child("hostname")
        errors.extend(
            invalid(host_path, ingress.hostname, m)
            for m in names.dns1123_subdomain_errors(ingress.hostname)
        )
        if names.parse_ip(ingress.hostname) is not None:
            errors.append(
                invalid(host_path, ingress.hostname, "must be a DNS name, not an IP address")
            )
    if strict:
        errors.extend(_ingress_port_errors(ingress, path))
    return errors


def load_balancer_status_errors(
    status: ServiceStatus, *, spec: ServiceSpec, strict: bool = False
) -> list[FieldError]:
    """``status.loadBalancer`` (and, when ``strict``, ports and ``status.conditions``)."""
    errors: list[FieldError] = []
    ingress_path = _LB.child("ingress")
    if spec.type != ServiceType.LOAD_BALANCER and status.ingress:
        errors.append(
            forbidden(ingress_path, "may only be used when `spec.type` is 'LoadBalancer'")
        )
    else:
        for i, ingress in enumerate(status.ingress):
            errors.extend(_ingress_errors(ingress, ingress_path.index(i), strict=strict))
    if strict:
        errors.extend(condition_errors(status.conditions, _STATUS.child("conditions")))
    return errors


def _condition_errors(condition: Condition, path: Path) -> list[FieldError]:
    errors = [
        invalid(path.child("type"), condition.type, m)
        for m in names.qualified_name_errors(condition.type)
    ]
    statuses = ("False", "True", "Unknown")
    if condition.status not in statuses:
        errors.append(not_supported(path.child("status"), condition.status, statuses))
    generation = condition.observed_generation
    if generation is not None and generation < 0:
        detail = "must be greater than or equal to zero"
        errors.append(invalid(path.child("observedGeneration"), generation, detail))
    if not condition.last_transition_time:
        errors.append(required(path.child("lastTransitionTime"), "must be set"))
    reason_path = path.child("reason")
    if not condition.reason:
        errors.append(required(reason_path, "must be set"))
    else:
        errors.extend(
            invalid(reason_path, condition.reason, m)
            for m in names.condition_reason_errors(condition.reason)
        )
        if names.byte_len(condition.reason) > MAX_CONDITION_REASON_BYTES:
            errors.append(too_long(reason_path, MAX_CONDITION_REASON_BYTES))
    if names.byte_len(condition.message) > MAX_CONDITION_MESSAGE_BYTES:
        errors.append(too_long(path.child("message"), MAX_CONDITION_MESSAGE_BYTES))
    return errors


def condition_errors(conditions: tuple[Condition, ...], path: Path) -> list[FieldError]:
    """A list of ``metav1.Condition``: each one valid, no type twice."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, condition in enumerate(conditions):
        item = path.index(i)
        if condition.type in seen:
            errors.append(duplicate(item.child("type"), condition.type))
        seen.add(condition.type)
        errors.extend(_condition_errors(condition, item))
    return errors
