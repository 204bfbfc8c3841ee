"""Values the LoadBalancer pool allocator takes and returns, and its error.

The allocator never sees a Service: :class:`LBRequest` carries what it needs (see
``lbctl.allocators.lbrequest`` for the conversion from a Service).

Error tree::

    AllocationError              (lbctl.allocators.errors) base of every allocator refusal
    └── LBAllocationError        one class; ``reason`` says why (an LBAllocationReason):
        NoPoolMatches            no auto-assign pool may serve this Service
        FamilyUnavailable        the candidate pools lack the wanted IP family
        PoolExhausted            the candidate pools have no free or shareable address
        PoolNotFound             the requested pool does not exist
        PoolNotAllowed           the pool's serviceAllocation excludes this Service
        RequestedIPNotInPool     a requested IP is in no pool (or not in the requested one)
        RequestedIPInUse         a requested IP is held by a Service that does not share
        SharingConflict          sharing refused: other key, other backend, or port clash
        InvalidRequest           the request itself is malformed
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lbctl.allocators.errors import AllocationError
from lbctl.domain.service import IPFamily

__all__ = [
    "Assignment",
    "LBAllocationError",
    "LBAllocationReason",
    "LBRequest",
    "PoolUsage",
    "PortKey",
    "request_from_json",
    "request_to_json",
]

PortKey = tuple[str, int]
"""``(protocol, port)``, e.g. ``("UDP", 53)``."""


class LBAllocationReason(StrEnum):
    NO_POOL_MATCHES = "NoPoolMatches"
    FAMILY_UNAVAILABLE = "FamilyUnavailable"
    POOL_EXHAUSTED = "PoolExhausted"
    POOL_NOT_FOUND = "PoolNotFound"
    POOL_NOT_ALLOWED = "PoolNotAllowed"
    REQUESTED_IP_NOT_IN_POOL = "RequestedIPNotInPool"
    REQUESTED_IP_IN_USE = "RequestedIPInUse"
    SHARING_CONFLICT = "SharingConflict"
    INVALID_REQUEST = "InvalidRequest"


class LBAllocationError(AllocationError):
    """An assignment is impossible; the allocator is left unchanged."""

    def __init__(self, reason: LBAllocationReason, message: str, *, key: str = "") -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.key = key


@dataclass(frozen=True, slots=True)
class LBRequest:
    """What one Service asks of the pool allocator."""

    key: str
    """``namespace/name``."""
    namespace: str = ""
    """Defaults to the part of ``key`` before the ``/``."""
    service_labels: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    requested_ips: tuple[str, ...] = ()
    """At most one per family; all must lie in one pool."""
    requested_pool: str = ""
    sharing_key: str = ""
    """Services with the same non-empty key may share an IP (``allow-shared-ip``)."""
    backend_key: str = ""
    """Sharers must agree on it: the selector under ``externalTrafficPolicy: Local``, else ""."""
    ports: tuple[PortKey, ...] = ()
    families: tuple[IPFamily, ...] = (IPFamily.IPV4,)
    """One or two; the first is the primary. Two means one IP per family (dual-stack)."""
    prefer_dual_stack: bool = False
    """With two families: settle for one (the primary if possible) when no pool has both."""

    def __post_init__(self) -> None:
        if not self.namespace and "/" in self.key:
            object.__setattr__(self, "namespace", self.key.partition("/")[0])
        for name in ("requested_ips", "ports", "families"):
            object.__setattr__(self, name, tuple(getattr(self, name)))


@dataclass(frozen=True, slots=True)
class Assignment:
    """The addresses one Service holds, and the pool they came from."""

    key: str
    pool: str
    ips: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PoolUsage:
    """Counts of distinct addresses (a shared IP counts once), per family."""

    pool: str
    assigned_ipv4: int
    available_ipv4: int
    assigned_ipv6: int
    available_ipv6: int


def request_to_json(req: LBRequest) -> dict[str, Any]:
    return {
        "key": req.key,
        "namespace": req.namespace,
        "serviceLabels": dict(sorted(req.service_labels.items())),
        "namespaceLabels": dict(sorted(req.namespace_labels.items())),
        "requestedIPs": list(req.requested_ips),
        "requestedPool": req.requested_pool,
        "sharingKey": req.sharing_key,
        "backendKey": req.backend_key,
        "ports": [[proto, port] for proto, port in req.ports],
        "families": [str(f) for f in req.families],
        "preferDualStack": req.prefer_dual_stack,
    }


def _str_map(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected an object of strings, got {value!r}")
    return {str(k): str(v) for k, v in value.items()}


def request_from_json(obj: Mapping[str, Any]) -> LBRequest:
    """Inverse of :func:`request_to_json`; raises ``ValueError`` on a wrong shape."""
    ports: list[PortKey] = []
    for item in obj.get("ports") or ():
        proto, port = item
        if not isinstance(port, int) or isinstance(port, bool):
            raise ValueError(f"port must be an integer, got {port!r}")
        ports.append((str(proto), port))
    return LBRequest(
        key=str(obj["key"]),
        namespace=str(obj.get("namespace", "")),
        service_labels=_str_map(obj.get("serviceLabels") or {}),
        namespace_labels=_str_map(obj.get("namespaceLabels") or {}),
        requested_ips=tuple(str(i) for i in obj.get("requestedIPs") or ()),
        requested_pool=str(obj.get("requestedPool", "")),
        sharing_key=str(obj.get("sharingKey", "")),
        backend_key=str(obj.get("backendKey", "")),
        ports=tuple(ports),
        families=tuple(IPFamily(f) for f in obj.get("families") or ()),
        prefer_dual_stack=bool(obj.get("preferDualStack", False)),
    )
