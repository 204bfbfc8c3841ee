"""Rebuild and repair ClusterIP / NodePort state from the Services that exist.

A rebuild marks, in a fresh allocator, every value the Services hold, and compares
the result with what the running allocator believed:

- a value held but not marked            -> ``*NotAllocated`` (now marked: repaired)
- a value held by two Services           -> ``*AlreadyAllocated`` (reported only)
- a value outside every configured range -> ``*OutOfRange``
- a value marked that nobody holds       -> ``*Leak``; it stays marked until it has
  been seen on ``leak_passes`` consecutive passes (kube-apiserver waits 3), so an
  allocation whose object is still being written is never taken away.

All of it is pure: the caller lists the Services and emits the findings as Events.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from lbctl.allocators.clusterip import ClusterIPAllocator, family_of
from lbctl.allocators.errors import AlreadyAllocatedError
from lbctl.allocators.findings import Finding, FindingKind
from lbctl.allocators.nodeport import NodePortAllocator
from lbctl.domain.service import NONE_IP, Service, ServiceType

__all__ = ["DEFAULT_LEAK_PASSES", "Repair", "repair_cluster_ips", "repair_node_ports"]

DEFAULT_LEAK_PASSES = 3


@dataclass(slots=True)
class Repair:
    """What a pass produced: the rebuilt allocator's findings and the leak counters
    to hand to the next pass."""

    findings: list[Finding] = field(default_factory=list)
    leaks: dict[str, int] = field(default_factory=dict)

    def of_kind(self, kind: FindingKind) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]


def _cluster_ips(svc: Service) -> list[str]:
    if svc.spec.type == ServiceType.EXTERNAL_NAME:
        return []
    ips = list(svc.spec.cluster_ips) or ([svc.spec.cluster_ip] if svc.spec.cluster_ip else [])
    return [ip for ip in ips if ip and ip != NONE_IP]


def repair_cluster_ips(
    current: ClusterIPAllocator | None,
    services: Iterable[Service],
    *,
    cidrs: tuple[str, ...],
    leaks: Mapping[str, int] | None = None,
    leak_passes: int = DEFAULT_LEAK_PASSES,
    rng: random.Random | None = None,
) -> tuple[ClusterIPAllocator, Repair]:
    """Rebuild a :class:`ClusterIPAllocator` over ``cidrs`` from ``services``.

    ``current`` is what the running allocator holds (None at start: every held value
    is then simply marked, with no NotAllocated findings).
    """
    fresh = ClusterIPAllocator(cidrs, rng=rng)
    out = Repair()
    owners: dict[str, str] = {}
    for svc in sorted(services, key=lambda s: s.key):
        for ip in _cluster_ips(svc):
            try:
                parsed = ipaddress.ip_address(ip)
            except ValueError:
                out.findings.append(
                    Finding(
                        FindingKind.CLUSTER_IP_NOT_VALID,
                        ip,
                        svc.key,
                        message=f"{svc.key}: cluster IP {ip!r} is not an IP address",
                    )
                )
                continue
            r = fresh.range(family_of(parsed))
            if r is None or not r.contains(parsed):
                where = ", ".join(cidrs)
                out.findings.append(
                    Finding(
                        FindingKind.CLUSTER_IP_OUT_OF_RANGE,
                        ip,
                        svc.key,
                        message=f"{svc.key}: cluster IP {ip} is outside the service "
                        f"range(s) {where}; recreate the Service",
                    )
                )
                continue
            try:
                r.allocate(parsed)
            except AlreadyAllocatedError:
                first = owners[str(parsed)]
                out.findings.append(
                    Finding(
                        FindingKind.CLUSTER_IP_ALREADY_ALLOCATED,
                        ip,
                        svc.key,
                        first,
                        message=f"{svc.key}: cluster IP {ip} is also held by {first}; "
                        "recreate one of them",
                    )
                )
                continue
            owners[str(parsed)] = svc.key
            if current is not None and not current.has(parsed):
                out.findings.append(
                    Finding(
                        FindingKind.CLUSTER_IP_NOT_ALLOCATED,
                        ip,
                        svc.key,
                        message=f"{svc.key}: cluster IP {ip} was not marked allocated; marked now",
                    )
                )
    if current is not None:
        _carry_leaks(
            held=[str(ip) for r in current.ranges for ip in r.allocated()],
            owners=owners,
            keep=fresh.begin().allocate,
            kind=FindingKind.CLUSTER_IP_LEAK,
            what="cluster IP",
            leaks=leaks or {},
            leak_passes=leak_passes,
            out=out,
        )
    return fresh, out


def repair_node_ports(
    current: NodePortAllocator | None,
    services: Iterable[Service],
    *,
    fresh: NodePortAllocator,
    leaks: Mapping[str, int] | None = None,
    leak_passes: int = DEFAULT_LEAK_PASSES,
) -> Repair:
    """Mark into ``fresh`` (an empty allocator over the configured range) every node
    port the Services hold; the same number used by a TCP and a UDP port of one
    Service is one allocation, not a duplicate."""
    out = Repair()
    owners: dict[str, str] = {}
    for svc in sorted(services, key=lambda s: s.key):
        held = {p.node_port for p in svc.spec.ports if p.node_port}
        if svc.spec.health_check_node_port:
            held.add(svc.spec.health_check_node_port)
        for port in sorted(held):
            if not fresh.contains(port):
                out.findings.append(
                    Finding(
                        FindingKind.PORT_OUT_OF_RANGE,
                        str(port),
                        svc.key,
                        message=f"{svc.key}: node port {port} is outside the range "
                        f"{fresh.range}; recreate the Service",
                    )
                )
                continue
            if not fresh.has(port):
                fresh.allocate(port)
                owners[str(port)] = svc.key
                if current is not None and not current.has(port):
                    out.findings.append(
                        Finding(
                            FindingKind.PORT_NOT_ALLOCATED,
                            str(port),
                            svc.key,
                            message=f"{svc.key}: node port {port} was not marked "
                            "allocated; marked now",
                        )
                    )
            else:
                first = owners.get(str(port), "")
                out.findings.append(
                    Finding(
                        FindingKind.PORT_ALREADY_ALLOCATED,
                        str(port),
                        svc.key,
                        first,
                        message=f"{svc.key}: node port {port} is also held by {first}; "
                        "recreate one of them",
                    )
                )
    if current is not None:
        _carry_leaks(
            held=[str(p) for p in current.allocated()],
            owners=owners,
            keep=lambda v: fresh.allocate(int(v)),
            kind=FindingKind.PORT_LEAK,
            what="node port",
            leaks=leaks or {},
            leak_passes=leak_passes,
            out=out,
        )
    return out


def _carry_leaks(
    *,
    held: list[str],
    owners: Mapping[str, str],
    keep: Callable[[str], object],
    kind: FindingKind,
    what: str,
    leaks: Mapping[str, int],
    leak_passes: int,
    out: Repair,
) -> None:
    """Values the old state marked but nobody holds: keep them marked until they have
    been seen ``leak_passes`` times in a row, then let them go."""
    for value in held:
        if value in owners:
            continue
        seen = leaks.get(value, 0) + 1
        if seen < leak_passes:
            keep(value)
            out.leaks[value] = seen
            msg = f"{what} {value} is marked but no Service holds it (pass {seen}/{leak_passes})"
        else:
            msg = f"{what} {value} is marked but no Service holds it; released"
        out.findings.append(Finding(kind, value, message=msg))
