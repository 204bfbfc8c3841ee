"""Health checks of NLB target groups: defaults, overrides, and the diff (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from lbctl.domain.service import Service, TrafficPolicy
from providers.aws.annotations import HealthCheckOverrides, TargetType

__all__ = [
    "KUBE_PROXY_HEALTH_PORT",
    "TRAFFIC_PORT",
    "HealthCheck",
    "PlanError",
    "default_health_check",
    "health_check_changes",
    "health_check_from_aws",
    "resolve_health_check",
]

TRAFFIC_PORT: Final = "traffic-port"
KUBE_PROXY_HEALTH_PORT: Final = 10256
"""kube-proxy's ``/healthz`` on every node: the health check of UDP-only groups."""


class PlanError(Exception):
    """The Service cannot be served as asked; ``reason`` is CamelCase. Raised by
    :mod:`.health` and :mod:`.plan` (which re-exports it)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class HealthCheck:
    protocol: str
    """``TCP`` | ``HTTP`` | ``HTTPS``."""
    port: str
    """``traffic-port`` or a port number as a string (ELBv2's own shape)."""
    path: str | None
    """HTTP(S) only; None for TCP."""
    interval: int
    timeout: int
    healthy_threshold: int
    unhealthy_threshold: int

    def to_aws(self) -> dict[str, Any]:
        """The ``HealthCheck*`` arguments of CreateTargetGroup / ModifyTargetGroup."""
        out: dict[str, Any] = {
            "HealthCheckProtocol": self.protocol,
            "HealthCheckPort": self.port,
            "HealthCheckIntervalSeconds": self.interval,
            "HealthCheckTimeoutSeconds": self.timeout,
            "HealthyThresholdCount": self.healthy_threshold,
            "UnhealthyThresholdCount": self.unhealthy_threshold,
        }
        if self.path is not None:
            out["HealthCheckPath"] = self.path
        return out


def default_health_check(service: Service, protocol: str, target_type: str) -> HealthCheck:
    """The health check a group gets before annotation overrides.

    - instance targets, ``externalTrafficPolicy: Local``: HTTP on the Service's
      ``healthCheckNodePort``, path ``/healthz``, interval 10, timeout 6, thresholds 2/2
      (only nodes with a ready endpoint pass);
    - instance targets, a UDP-only group: an NLB cannot check over UDP, and the UDP port
      answers no TCP, so HTTP on kube-proxy's port 10256 ``/healthz``, 10/6/2/2 (the
      node forwards traffic: the check says whether kube-proxy is healthy);
    - otherwise (TCP, TCP_UDP, and every ip group: targets are pods, the node's
      health-check port is not theirs): TCP on the traffic port (the pod's port for ip
      targets), interval 30, timeout 10, thresholds 3/3.
    """
    if target_type == TargetType.INSTANCE:
        if service.spec.external_traffic_policy == TrafficPolicy.LOCAL:
            port = service.spec.health_check_node_port
            if not port:
                raise PlanError(
                    "MissingHealthCheckNodePort",
                    "externalTrafficPolicy is Local but spec.healthCheckNodePort is not set",
                )
            return HealthCheck("HTTP", str(port), "/healthz", 10, 6, 2, 2)
        if protocol == "UDP":
            return HealthCheck("HTTP", str(KUBE_PROXY_HEALTH_PORT), "/healthz", 10, 6, 2, 2)
    return HealthCheck("TCP", TRAFFIC_PORT, None, 30, 10, 3, 3)


def resolve_health_check(default: HealthCheck, o: HealthCheckOverrides) -> HealthCheck:
    """``default`` with the annotation overrides applied field by field.

    A path goes with HTTP(S) only (default ``/``); a path override on a TCP check, or a
    timeout not shorter than the interval, is a :class:`PlanError`.
    """
    protocol = o.protocol or default.protocol
    port = TRAFFIC_PORT if o.traffic_port else str(o.port) if o.port else default.port
    if protocol == "TCP":
        if o.path is not None:
            raise PlanError(
                "InvalidHealthCheck", f"health-check path {o.path} needs HTTP or HTTPS, not TCP"
            )
        path = None
    else:
        path = o.path or (default.path if default.protocol != "TCP" else None) or "/"
    check = HealthCheck(
        protocol=protocol,
        port=port,
        path=path,
        interval=o.interval if o.interval is not None else default.interval,
        timeout=o.timeout if o.timeout is not None else default.timeout,
        healthy_threshold=(
            o.healthy_threshold if o.healthy_threshold is not None else default.healthy_threshold
        ),
        unhealthy_threshold=(
            o.unhealthy_threshold
            if o.unhealthy_threshold is not None
            else default.unhealthy_threshold
        ),
    )
    if check.timeout >= check.interval:
        raise PlanError(
            "InvalidHealthCheck",
            f"health-check timeout {check.timeout}s must be shorter than its interval "
            f"{check.interval}s (set both annotations)",
        )
    return check


_HEALTH_ARGS: Final = (
    ("protocol", "HealthCheckProtocol"),
    ("port", "HealthCheckPort"),
    ("path", "HealthCheckPath"),
    ("interval", "HealthCheckIntervalSeconds"),
    ("timeout", "HealthCheckTimeoutSeconds"),
    ("healthy_threshold", "HealthyThresholdCount"),
    ("unhealthy_threshold", "UnhealthyThresholdCount"),
)


def health_check_changes(current: HealthCheck, desired: HealthCheck) -> dict[str, object]:
    """The ModifyTargetGroup arguments whose value differs (empty: nothing to do).
    A path is never unset (a TCP check has none; AWS ignores it)."""
    changes: dict[str, object] = {}
    for attr, arg in _HEALTH_ARGS:
        want = getattr(desired, attr)
        if want is not None and getattr(current, attr) != want:
            changes[arg] = want
    return changes


def health_check_from_aws(group: Mapping[str, Any]) -> HealthCheck:
    """The health check of a DescribeTargetGroups entry."""
    protocol = str(group.get("HealthCheckProtocol", "TCP"))
    path = group.get("HealthCheckPath")
    return HealthCheck(
        protocol=protocol,
        port=str(group.get("HealthCheckPort", TRAFFIC_PORT)),
        path=str(path) if path is not None and protocol != "TCP" else None,
        interval=int(group.get("HealthCheckIntervalSeconds", 30)),
        timeout=int(group.get("HealthCheckTimeoutSeconds", 10)),
        healthy_threshold=int(group.get("HealthyThresholdCount", 3)),
        unhealthy_threshold=int(group.get("UnhealthyThresholdCount", 3)),
    )
