"""NodePort allocation with kube-apiserver's semantics.

One pool of ports for every protocol (default ``30000-32767``), with KEP-3668's static
band ``min(max(16, size // 32), 128)`` (86 ports for the default range). A Service's
ports are allocated in one :class:`NodePortTransaction`: on any failure everything it
took is given back. Inside one Service, a TCP and a UDP port with the same number
share one nodePort (as upstream does on create).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Final

from lbctl.allocators.bitmap import Bitmap, BitmapCounts, band_offset
from lbctl.allocators.errors import (
    AllocationError,
    AlreadyAllocatedError,
    InternalAllocationError,
    InvalidAllocationError,
    NotInRangeError,
    RangeFullError,
)
from lbctl.allocators.txn import Transaction, Transactional
from lbctl.domain.fielderrors import FieldErrors, invalid
from lbctl.domain.service import Service, ServiceType, TrafficPolicy

__all__ = [
    "DEFAULT_NODE_PORT_RANGE",
    "NodePortAllocator",
    "NodePortSpec",
    "NodePortTransaction",
    "PortRange",
    "PortRequest",
    "ServiceNodePorts",
]

_RANGE_RE: Final = re.compile(r"^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$")


@dataclass(frozen=True, slots=True)
class PortRange:
    """An inclusive range of ports, written ``base-last`` like ``--service-node-port-range``."""

    base: int
    size: int

    @classmethod
    def parse(cls, text: str) -> PortRange:
        m = _RANGE_RE.match(text)
        if not m:
            raise ValueError(f"{text!r} is not a port range of the form 30000-32767")
        lo, hi = int(m.group(1)), int(m.group(2))
        if not 1 <= lo <= hi <= 65535:
            raise ValueError(f"{text!r}: ports must satisfy 1 <= first <= last <= 65535")
        return cls(base=lo, size=hi - lo + 1)

    @property
    def last(self) -> int:
        return self.base + self.size - 1

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.base <= port <= self.last

    def __str__(self) -> str:
        return f"{self.base}-{self.last}"


DEFAULT_NODE_PORT_RANGE: Final = PortRange(base=30000, size=2768)


class NodePortAllocator(BitmapCounts, Transactional["NodePortTransaction"]):
    """Allocation state of one NodePort range; pure, synchronous."""

    __slots__ = ("_bitmap", "range")

    def __init__(
        self, port_range: PortRange = DEFAULT_NODE_PORT_RANGE, *, rng: random.Random | None = None
    ) -> None:
        self.range = port_range
        offset = band_offset(port_range.size, minimum=16, maximum=128, step=32)
        self._bitmap = Bitmap(port_range.size, offset=offset, rng=rng)

    def __repr__(self) -> str:
        return f"NodePortAllocator({str(self.range)!r}, used={self.used}/{self.size})"

    def contains(self, port: int) -> bool:
        return port in self.range

    def has(self, port: int) -> bool:
        return port in self.range and self._bitmap.has(port - self.range.base)

    def allocate(self, port: int) -> int:
        if port not in self.range:
            raise NotInRangeError(
                f"provided port is not in the valid range. The range of valid ports is {self.range}"
            )
        if not self._bitmap.allocate(port - self.range.base):
            raise AlreadyAllocatedError("port")
        return port

    def allocate_next(self) -> int:
        off = self._bitmap.allocate_next()
        if off is None:
            raise RangeFullError()
        return self.range.base + off

    def release(self, port: int) -> bool:
        return port in self.range and self._bitmap.release(port - self.range.base)

    def allocated(self) -> list[int]:
        return [self.range.base + v for v in self._bitmap.values()]

    def begin(self) -> NodePortTransaction:
        return NodePortTransaction(self)


@dataclass(frozen=True, slots=True)
class PortRequest:
    """One Service port as the allocator sees it; ``node_port`` 0 asks for one."""

    protocol: str
    port: int
    node_port: int = 0


@dataclass(frozen=True, slots=True)
class NodePortSpec:
    """What a Service asks of the NodePort allocator."""

    ports: tuple[PortRequest, ...] = ()
    uses_node_ports: bool = False
    """type NodePort or LoadBalancer."""
    allocate_new: bool = False
    """type NodePort, or LoadBalancer without ``allocateLoadBalancerNodePorts: false``."""
    needs_health_check: bool = False
    """type LoadBalancer with ``externalTrafficPolicy: Local``."""
    health_check_node_port: int = 0

    @classmethod
    def of(cls, svc: Service) -> NodePortSpec:
        spec = svc.spec
        is_lb = spec.type == ServiceType.LOAD_BALANCER
        uses = is_lb or spec.type == ServiceType.NODE_PORT
        allocate = spec.type == ServiceType.NODE_PORT or (
            is_lb and spec.allocate_load_balancer_node_ports is not False
        )
        return cls(
            ports=tuple(PortRequest(p.protocol, p.port, p.node_port) for p in spec.ports),
            uses_node_ports=uses,
            allocate_new=allocate,
            needs_health_check=is_lb and spec.external_traffic_policy == TrafficPolicy.LOCAL,
            health_check_node_port=spec.health_check_node_port,
        )

    def numbers(self) -> set[int]:
        """Every node port this spec holds (health check included)."""
        held = {p.node_port for p in self.ports if p.node_port}
        if self.health_check_node_port:
            held.add(self.health_check_node_port)
        return held


@dataclass(frozen=True, slots=True)
class ServiceNodePorts:
    """The result: a nodePort per Service port (0 = none) and the health-check port."""

    node_ports: tuple[int, ...]
    health_check_node_port: int = 0


def _field(i: int) -> str:
    return f"spec.ports[{i}].nodePort"


class NodePortTransaction(Transaction[int]):
    """One Service's node ports, all or nothing (see :mod:`lbctl.allocators.txn`)."""

    __slots__ = ("_alloc",)

    def __init__(self, alloc: NodePortAllocator) -> None:
        super().__init__()
        self._alloc = alloc

    def _free(self, value: int) -> None:
        self._alloc.release(value)

    def allocate(self, port: int) -> int:
        return self._took(self._alloc.allocate(port))

    def allocate_next(self) -> int:
        return self._took(self._alloc.allocate_next())

    def _requested(self, i: int, port: int) -> int:
        try:
            return self.allocate(port)
        except (NotInRangeError, AlreadyAllocatedError) as e:
            raise InvalidAllocationError(FieldErrors([invalid(_field(i), port, str(e))])) from e

    def _next(self, what: str = "a nodePort") -> int:
        try:
            return self.allocate_next()
        except RangeFullError as e:
            raise InternalAllocationError(f"failed to allocate {what}: {e}") from e

    def _health_check(self, requested: int) -> int:
        try:
            if requested:
                return self.allocate(requested)
            return self.allocate_next()
        except AllocationError as e:
            if requested:
                msg = f"failed to allocate requested HealthCheck NodePort {requested}: {e}"
            else:
                msg = f"failed to allocate a HealthCheck NodePort 0: {e}"
            raise InternalAllocationError(msg) from e

    def allocate_service(self, spec: NodePortSpec) -> ServiceNodePorts:
        """Allocate a new Service's node ports (kube-apiserver's create path)."""
        if not spec.uses_node_ports:
            return ServiceNodePorts(tuple(p.node_port for p in spec.ports))
        by_port: dict[int, int] = {}
        out: list[int] = []
        for i, p in enumerate(spec.ports):
            if p.node_port == 0 and not spec.allocate_new:
                out.append(0)
                continue
            shared = by_port.get(p.port, 0)
            if shared == 0:
                # A later port with the same number may carry the user's choice.
                wanted = next(
                    (q.node_port for q in spec.ports if q.port == p.port and q.node_port), 0
                )
                got = self._requested(i, wanted) if wanted else self._next()
                by_port[p.port] = got
                out.append(got)
            elif p.node_port in (0, shared):
                out.append(shared)
            else:
                out.append(self._requested(i, p.node_port))
        # A health-check port on a Service that needs none is left for validation to refuse.
        hc = (
            self._health_check(spec.health_check_node_port)
            if spec.needs_health_check
            else spec.health_check_node_port
        )
        return ServiceNodePorts(tuple(out), hc)

    def update_service(self, *, old: NodePortSpec, new: NodePortSpec) -> ServiceNodePorts:
        """Move a Service from ``old`` to ``new`` (kube-apiserver's update path).

        Ports the new spec still names are kept; new ones are allocated; the rest are
        released on commit. Leaving NodePort/LoadBalancer releases every node port.
        """
        if not new.uses_node_ports:
            for n in old.numbers():
                self.release_deferred(n)
            return ServiceNodePorts(tuple(0 for _ in new.ports))
        old_ports = {p.node_port for p in old.ports if p.node_port}
        taken_here: set[int] = set()
        out: list[int] = []
        for i, p in enumerate(new.ports):
            if p.node_port == 0 and not new.allocate_new:
                out.append(0)
            elif p.node_port:
                if p.node_port not in old_ports and p.node_port not in taken_here:
                    self._requested(i, p.node_port)
                    taken_here.add(p.node_port)
                out.append(p.node_port)
            else:
                out.append(self._next())
        for n in old_ports - set(out):
            self.release_deferred(n)
        hc = new.health_check_node_port
        if new.needs_health_check and not old.needs_health_check:
            hc = self._health_check(new.health_check_node_port)
        elif old.needs_health_check and not new.needs_health_check:
            if old.health_check_node_port:
                self.release_deferred(old.health_check_node_port)
            hc = 0
        return ServiceNodePorts(tuple(out), hc)

    def release_service(self, spec: NodePortSpec) -> None:
        """Give back everything ``spec`` holds, on commit (a Service deleted)."""
        for n in spec.numbers():
            self.release_deferred(n)
