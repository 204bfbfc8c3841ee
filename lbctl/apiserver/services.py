"""Services inside the embedded API server: defaulting, allocation, validation.

This is where kube-apiserver keeps its ClusterIP and NodePort allocators, and so do
we. A Service write runs, as upstream does: decode + defaults, metadata, IP-family
initialisation, allocation (in transactions), validation. The allocation's
:class:`Allocation` is committed only after the store has committed the Service (and
the ``networking.k8s.io/v1`` IPAddress objects of its ClusterIPs) in one SQLite
transaction, and rolled back otherwise: no allocation without its object, no object
without its allocations. After a crash the allocators are rebuilt from the Services.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lbctl.allocators.clusterip import ClusterIPAllocator, ClusterIPTransaction, family_of
from lbctl.allocators.errors import InternalAllocationError, InvalidAllocationError
from lbctl.allocators.findings import Finding
from lbctl.allocators.nodeport import (
    NodePortAllocator,
    NodePortSpec,
    NodePortTransaction,
    PortRange,
)
from lbctl.allocators.rebuild import Repair, repair_cluster_ips, repair_node_ports
from lbctl.apimachinery.resources import ResourceType
from lbctl.apiserver import errors
from lbctl.apiserver.meta import now_rfc3339
from lbctl.apiserver.store import Delete, Put
from lbctl.domain.defaults import apply_defaults, init_ip_families, prepare_update
from lbctl.domain.service import NONE_IP, DecodeError, Service, ServiceType
from lbctl.domain.type_change import drop_type_dependent_fields, needs_cluster_ip
from lbctl.domain.validation import (
    validate_service,
    validate_service_status_update,
    validate_service_update,
)

__all__ = ["Allocation", "ServiceRegistry", "decode_service"]

JSON = dict[str, Any]
IPADDRESS_GROUP = "networking.k8s.io"


def decode_service(body: JSON) -> Service:
    try:
        return Service.from_dict(body)
    except DecodeError as e:
        raise errors.bad_request(
            f'Service in version "v1" cannot be handled as a Service: {e}'
        ) from None


@dataclass(slots=True)
class Allocation:
    """A Service write's allocations: keep them (commit) or give them back (rollback)."""

    ips: ClusterIPTransaction
    ports: NodePortTransaction
    ops: list[Put | Delete] = field(default_factory=list)
    """IPAddress objects to create / delete in the same store transaction."""

    def commit(self) -> None:
        self.ips.commit()
        self.ports.commit()

    def rollback(self) -> None:
        self.ips.rollback()
        self.ports.rollback()


def _service_ips(spec: Any) -> list[str]:
    if spec.type == ServiceType.EXTERNAL_NAME:
        return []
    return [ip for ip in spec.cluster_ips if ip and ip != NONE_IP]


class ServiceRegistry:
    """The Service kind's behaviour: owns the ClusterIP and NodePort allocators."""

    def __init__(
        self, *, cidrs: Sequence[str], port_range: PortRange, rng: random.Random | None = None
    ) -> None:
        self.cidrs = tuple(cidrs)
        self.port_range = port_range
        self._rng = rng or random.Random()
        self.cluster_ips = ClusterIPAllocator(self.cidrs, rng=self._rng)
        self.node_ports = NodePortAllocator(port_range, rng=self._rng)
        self.leaks: dict[str, dict[str, int]] = {"ip": {}, "port": {}}

    # -- start and repair ------------------------------------------------------------
    def rebuild(self, services: Iterable[JSON], *, initial: bool) -> list[Finding]:
        """Rebuild both allocators from the stored Services (all of them first, so a
        restart never hands out what a Service holds); return what did not add up."""
        svcs = []
        for body in services:
            try:
                svcs.append(Service.from_dict(body))
            except DecodeError:
                continue
        current_ips = None if initial else self.cluster_ips
        ips, ip_rep = repair_cluster_ips(
            current_ips, svcs, cidrs=self.cidrs, leaks=self.leaks["ip"], rng=self._rng
        )
        fresh_ports = NodePortAllocator(self.port_range, rng=self._rng)
        port_rep: Repair = repair_node_ports(
            None if initial else self.node_ports,
            svcs,
            fresh=fresh_ports,
            leaks=self.leaks["port"],
        )
        self.cluster_ips, self.node_ports = ips, fresh_ports
        self.leaks = {"ip": ip_rep.leaks, "port": port_rep.leaks}
        return ip_rep.findings + port_rep.findings

    # -- IPAddress objects -----------------------------------------------------------
    @staticmethod
    def ip_address_object(ip: str, svc: Service) -> JSON:
        fam = family_of(ipaddress.ip_address(ip))
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IPAddress",
            "metadata": {
                "name": ip,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": now_rfc3339(),
                "labels": {
                    "ipaddress.kubernetes.io/ip-family": str(fam),
                    "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io",
                },
            },
            "spec": {
                "parentRef": {
                    "group": "",
                    "resource": "services",
                    "namespace": svc.metadata.namespace,
                    "name": svc.metadata.name,
                }
            },
        }

    def _begin(self) -> Allocation:
        return Allocation(self.cluster_ips.begin(), self.node_ports.begin())

    # -- create ----------------------------------------------------------------------
    def admit_create(self, rt: ResourceType, body: JSON, *, meta: JSON) -> tuple[JSON, Allocation]:
        """Default, allocate and validate a new Service. ``meta`` is the prepared
        metadata. Raises APIError (nothing kept) or returns the object to store."""
        svc = apply_defaults(decode_service(body))
        obj = svc.to_dict()
        obj["metadata"] = meta
        obj["status"] = {"loadBalancer": {}}  # create clears status
        svc = Service.from_dict(obj)
        name = svc.metadata.name
        svc, errs = init_ip_families(svc, cluster_families=self.cluster_ips.families)
        if errs:
            raise errors.invalid(rt, name, errs)
        alloc = self._begin()
        try:
            svc = self._allocate_new(rt, svc, alloc)
            errs = validate_service(svc)
            if errs:
                raise errors.invalid(rt, name, errs)
        except BaseException:
            alloc.rollback()
            raise
        return svc.to_dict(), alloc

    def _allocate_new(self, rt: ResourceType, svc: Service, alloc: Allocation) -> Service:
        try:
            if needs_cluster_ip(svc.spec) and not svc.spec.is_headless:
                svc = self._allocate_new_ips(svc, alloc)
            result = alloc.ports.allocate_service(NodePortSpec.of(svc))
        except InvalidAllocationError as e:
            raise errors.invalid(rt, svc.metadata.name, e.errors) from None
        except InternalAllocationError as e:
            raise errors.internal(str(e)) from None
        return _with_node_ports(svc, result.node_ports, result.health_check_node_port)

    # -- update ----------------------------------------------------------------------
    def admit_update(
        self, rt: ResourceType, body: JSON, old_obj: JSON, *, meta: JSON
    ) -> tuple[JSON, Allocation]:
        old = Service.from_dict(old_obj)
        new = apply_defaults(decode_service(body))
        obj = new.to_dict()
        obj["metadata"] = meta
        obj["status"] = old_obj.get("status") or {"loadBalancer": {}}  # main resource keeps status
        new = Service.from_dict(obj)
        new = prepare_update(new, old)
        new = drop_type_dependent_fields(new, old)
        name = new.metadata.name
        new, errs = init_ip_families(new, cluster_families=self.cluster_ips.families, old=old)
        if errs:
            raise errors.invalid(rt, name, errs)
        alloc = self._begin()
        try:
            new = self._allocate_update(rt, new, old, alloc)
            errs = validate_service_update(new, old)
            if errs:
                raise errors.invalid(rt, name, errs)
        except BaseException:
            alloc.rollback()
            raise
        return new.to_dict(), alloc

    def _allocate_update(
        self, rt: ResourceType, new: Service, old: Service, alloc: Allocation
    ) -> Service:
        name = new.metadata.name
        try:
            new = self._update_cluster_ips(new, old, alloc)
            result = alloc.ports.update_service(old=NodePortSpec.of(old), new=NodePortSpec.of(new))
        except InvalidAllocationError as e:
            raise errors.invalid(rt, name, e.errors) from None
        except InternalAllocationError as e:
            raise errors.internal(str(e)) from None
        return _with_node_ports(new, result.node_ports, result.health_check_node_port)

    def _update_cluster_ips(self, new: Service, old: Service, alloc: Allocation) -> Service:
        n, o = new.spec, old.spec
        old_ips = _service_ips(o)
        if not needs_cluster_ip(n) or n.is_headless:
            self._release(old_ips, alloc)
            return new
        if not old_ips:  # from ExternalName (or headless): like a create
            return self._allocate_new_ips(new, alloc)
        if list(n.cluster_ips[: len(old_ips)]) != old_ips[: len(n.cluster_ips)]:
            return new  # a changed IP: validation says "may not change once set"
        if len(n.ip_families) > len(old_ips):  # upgrade to dual-stack
            want = n.cluster_ips[1] if len(n.cluster_ips) > 1 else ""
            got = alloc.ips.allocate_service_ips(
                families=n.ip_families[1:], cluster_ips=[want] if want else []
            )
            ips = (old_ips[0], *got)
            self._record(got, new, alloc)
            return new.replace_spec(cluster_ip=ips[0], cluster_ips=ips)
        if len(n.ip_families) < len(old_ips) and len(n.cluster_ips) < len(old_ips):
            self._release(old_ips[len(n.ip_families) :], alloc)  # downgrade
        return new

    def _allocate_new_ips(self, svc: Service, alloc: Allocation) -> Service:
        spec = svc.spec
        got = alloc.ips.allocate_service_ips(
            families=spec.ip_families, cluster_ips=spec.cluster_ips
        )
        self._record(got, svc, alloc)
        return svc.replace_spec(cluster_ip=got[0], cluster_ips=got)

    def _record(self, ips: Iterable[str], svc: Service, alloc: Allocation) -> None:
        """The IPAddress objects of newly taken ``ips`` (the twin of :meth:`_release`)."""
        alloc.ops.extend(
            Put(IPADDRESS_GROUP, "ipaddresses", self.ip_address_object(ip, svc), True) for ip in ips
        )

    def _release(self, ips: Iterable[str], alloc: Allocation) -> None:
        for ip in ips:
            alloc.ips.release_deferred(ip)
            alloc.ops.append(Delete(IPADDRESS_GROUP, "ipaddresses", "", ip))

    # -- status ------------------------------------------------------------------------
    def admit_status(self, rt: ResourceType, body: JSON, old_obj: JSON, *, meta: JSON) -> JSON:
        old = Service.from_dict(old_obj)
        new = apply_defaults(decode_service(body))
        obj = dict(old_obj)
        obj["metadata"] = meta
        obj["status"] = new.to_dict()["status"]
        new = Service.from_dict(obj)
        errs = validate_service_status_update(new, old)
        if errs:
            raise errors.invalid(rt, new.metadata.name, errs)
        return new.to_dict()

    # -- delete ----------------------------------------------------------------------
    def release_all(self, obj: JSON) -> Allocation:
        svc = Service.from_dict(obj)
        alloc = self._begin()
        self._release(_service_ips(svc.spec), alloc)
        alloc.ports.release_service(NodePortSpec.of(svc))
        return alloc


def _with_node_ports(svc: Service, node_ports: Sequence[int], hc: int) -> Service:
    ports = tuple(
        p if p.node_port == n else dataclasses.replace(p, node_port=n)
        for p, n in zip(svc.spec.ports, node_ports, strict=True)
    )
    return svc.replace_spec(ports=ports, health_check_node_port=hc)
