"""What a LoadBalancer Service's status should say, as a pure function.

The controller writes ``status.loadBalancer.ingress`` (ip + ipMode, or hostname, with
``ports[].error`` for the ports the provider cannot serve) and two conditions:

- ``LoadBalancerReady``: True once the provider reports an active load balancer;
  False with reason ``Provisioning``, ``Unsupported`` or ``SyncFailed`` otherwise.
- ``LoadBalancerPortsError`` (the type Kubernetes defines): True when some port could
  not be served, with the ports and reasons in the message; False otherwise.

A condition keeps its ``lastTransitionTime`` while its status does not change, so an
unchanged Service yields an identical status and the controller writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lbctl.domain.service import Condition, Ingress, PortStatus, Service, ServiceStatus

__all__ = [
    "LB_FINALIZER",
    "PORTS_ERROR",
    "READY",
    "DesiredIngress",
    "condition",
    "desired_status",
    "merge_conditions",
    "status_changed",
]

LB_FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
READY = "LoadBalancerReady"
PORTS_ERROR = "LoadBalancerPortsError"


@dataclass(frozen=True, slots=True)
class DesiredIngress:
    ip: str = ""
    hostname: str = ""
    ip_mode: str | None = None


def condition(
    existing: Sequence[Condition],
    *,
    type_: str,
    status: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> Condition:
    """A condition, keeping ``lastTransitionTime`` if the status did not change."""
    text = "True" if status else "False"
    old = next((c for c in existing if c.type == type_), None)
    since = old.last_transition_time if old is not None and old.status == text else now
    return Condition(
        type=type_,
        status=text,
        reason=reason,
        message=message[:32768],
        observed_generation=generation,
        last_transition_time=since,
    )


def merge_conditions(
    existing: Sequence[Condition], updates: Sequence[Condition]
) -> tuple[Condition, ...]:
    """``existing`` with each of ``updates`` in place of the condition of its type, new
    types appended. The order of the list never changes, so two writers (the controller,
    the speaker) that each update their own conditions never rewrite a Service only to
    move the other's."""
    by_type = {c.type: c for c in updates}
    kept = tuple(by_type.pop(c.type, c) for c in existing)
    return kept + tuple(c for c in updates if c.type in by_type)


def desired_status(
    svc: Service,
    *,
    ingress: Sequence[DesiredIngress],
    port_errors: Sequence[PortStatus],
    ready: bool,
    ready_reason: str,
    ready_message: str,
    ports_message: str,
    now: str,
) -> ServiceStatus:
    """The status the controller wants on ``svc`` (other conditions are kept)."""
    gen = svc.metadata.generation
    existing = svc.status.conditions
    points = tuple(
        Ingress(
            ip=i.ip,
            hostname=i.hostname,
            ip_mode=i.ip_mode if i.ip else None,
            ports=tuple(port_errors),
        )
        for i in ingress
    )
    ours = (
        condition(
            existing,
            type_=READY,
            status=ready,
            reason=ready_reason,
            message=ready_message,
            generation=gen,
            now=now,
        ),
        condition(
            existing,
            type_=PORTS_ERROR,
            status=bool(port_errors),
            reason="UnsupportedPorts" if port_errors else "AllPortsServed",
            message=ports_message if port_errors else "every port is served",
            generation=gen,
            now=now,
        ),
    )
    return ServiceStatus(
        ingress=points,
        conditions=merge_conditions(existing, ours),
        load_balancer_extra=svc.status.load_balancer_extra,
        extra=svc.status.extra,
    )


def status_changed(current: ServiceStatus, desired: ServiceStatus) -> bool:
    return current.to_dict() != desired.to_dict()
