"""The targets of each target group, and what to register and deregister (pure).

- ``instance`` groups: every node whose ``providerID`` names an EC2 instance, on the
  group's port (the nodePort). Nodes without one (not yet initialised, Fargate) are
  skipped: they cannot be registered.
- ``ip`` groups: the IPv4 addresses of ready endpoints, each on the port of its
  EndpointSlice whose name and protocol match the Service port's (a Service port with
  ``targetPort: http`` may land on different numbers in different pods). An endpoint
  with no such port is skipped.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from lbctl.domain.service import ServicePort
from providers.aws.annotations import TargetType
from providers.aws.plan import TargetGroupSpec
from providers.base import EndpointInfo, NodeInfo

__all__ = [
    "MAX_TARGETS_PER_CALL",
    "Target",
    "chunks",
    "desired_targets",
    "instance_id",
    "target_diff",
]

MAX_TARGETS_PER_CALL: Final = 100
"""RegisterTargets / DeregisterTargets take at most this many targets per call (what
cloud-provider-aws sends)."""

_T = TypeVar("_T")
# aws:///<zone>/<id> or aws:////<id> (no zone); a bare id as cloud-provider-aws accepts.
_PROVIDER_ID_RE: Final = re.compile(r"(?:aws://[^/]*/[A-Za-z0-9-]*/)?(i-[0-9a-f]+)")


@dataclass(frozen=True, order=True, slots=True)
class Target:
    id: str
    """An EC2 instance id (instance groups) or an IPv4 address (ip groups)."""
    port: int

    def to_aws(self) -> dict[str, str | int]:
        """The RegisterTargets / DeregisterTargets shape."""
        return {"Id": self.id, "Port": self.port}


def instance_id(provider_id: str) -> str | None:
    """The instance id of a node's ``spec.providerID`` (``aws:///us-east-1a/i-0abc`` or
    ``aws:////i-0abc`` -> ``i-0abc``), or None if it names no EC2 instance."""
    match = _PROVIDER_ID_RE.fullmatch(provider_id.strip())
    return match.group(1) if match else None


def _is_ipv4(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 4
    except ValueError:
        return False


def _label(port: ServicePort) -> str:
    return port.name or f"{port.port}/{port.protocol or 'TCP'}"


def desired_targets(
    group: TargetGroupSpec,
    *,
    nodes: Sequence[NodeInfo],
    endpoints: Sequence[EndpointInfo],
    service_ports: Sequence[ServicePort],
) -> frozenset[Target]:
    """The targets ``group`` should hold (module rules)."""
    if group.target_type == TargetType.INSTANCE:
        ids = (instance_id(node.provider_id) for node in nodes)
        return frozenset(Target(i, group.port) for i in ids if i is not None)
    served = [p for p in service_ports if _label(p) in group.service_ports]
    targets: set[Target] = set()
    for endpoint in endpoints:
        if not endpoint.ready:
            continue
        addresses = [a for a in endpoint.addresses if _is_ipv4(a)]
        for sp in served:
            protocol = sp.protocol or "TCP"
            ports = {
                ep.port
                for ep in endpoint.ports
                if ep.name == sp.name and (ep.protocol or "TCP") == protocol
            }
            targets.update(Target(a, port) for a in addresses for port in ports)
    return frozenset(targets)


def target_diff(
    current: Iterable[Target], desired: Iterable[Target]
) -> tuple[tuple[Target, ...], tuple[Target, ...]]:
    """``(to register, to deregister)``, each sorted."""
    have, want = set(current), set(desired)
    return tuple(sorted(want - have)), tuple(sorted(have - want))


def chunks(items: Sequence[_T], size: int = MAX_TARGETS_PER_CALL) -> Iterator[tuple[_T, ...]]:
    """``items`` in consecutive slices of at most ``size`` (none for no items)."""
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    for start in range(0, len(items), size):
        yield tuple(items[start : start + size])
