"""The ``baremetal`` provider: LoadBalancer IPs from IPPools (MetalLB's controller side).

Addresses come from :class:`~lbctl.allocators.lbpool.LBPoolAllocator`, over the pools
given as options (``pools``) and the ``lbctl.io/v1alpha1`` IPPools it watches once the
controller runs it (:class:`~providers.base.ClusterAware`):

- start: list the IPPools and Namespaces, then rebuild from the Services' status (the
  IPs they hold are re-assigned first, oldest Service first, as MetalLB does), and only
  then say ready -- a restart never hands a held IP to someone else;
- ``ensure``: assign (or keep) the Service's addresses; answer ``ingress[].ip`` with
  ``ipMode: VIP``, the annotation ``lbctl.io/ip-allocated-from-pool`` and an
  ``IPAllocated`` Event when the addresses changed. A refusal (no pool matches, pool
  exhausted, requested IP in use...) is an :class:`UnsupportedError` whose reason is the
  allocator's (``NoPoolMatches``, ``PoolExhausted``, ``RequestedIPInUse``...) and whose
  Event is ``AllocationFailed``; what the Service held is released (its status is
  cleared) and it is reconciled again when addresses free up or pools change;
- ``delete`` releases; the speaker (not this provider) announces the addresses;
- IPPool status (counts per family, ``Ready``/``Exhausted`` conditions) is written by
  one task, at most once per ``status_debounce`` seconds, only where it differs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from lbctl.allocators.lbpool import LBPoolAllocator
from lbctl.allocators.lbpool_model import Assignment, LBAllocationError, LBRequest
from lbctl.allocators.lbpools import Pool
from lbctl.allocators.lbrequest import lb_request_from_service
from lbctl.domain.capabilities import Capabilities
from lbctl.domain.service import Protocol, Service, ServiceType
from lbctl.kube.client import IPPOOLS, NAMESPACES, KubeClient
from lbctl.kube.errors import KubeError, NotFound
from lbctl.kube.informer import Informer, all_synced
from providers.baremetal.pools import PoolSelection, pool_status, select_pools
from providers.base import (
    ClusterContext,
    ConfigError,
    IngressPoint,
    LoadBalancerRequest,
    LoadBalancerStatus,
    ProviderEvent,
    UnsupportedError,
    require_supported,
)

__all__ = [
    "CAPABILITIES",
    "IPPOOLS",
    "POOL_ANNOTATION",
    "BareMetalProvider",
]

log = logging.getLogger("lbctl.provider.baremetal")

POOL_ANNOTATION: Final = "lbctl.io/ip-allocated-from-pool"
CAPABILITIES: Final = Capabilities(
    protocols=frozenset(Protocol),
    mixed_protocols=True,
    tcp_udp_same_port=True,
    dual_stack=True,
    source_ranges=True,  # kube-proxy enforces them for a VIP
    external_traffic_policy_local=True,
    ip_mode="VIP",
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BareMetalProvider:
    """The ``baremetal`` provider (class ``lbctl.io/baremetal``)."""

    def __init__(self, *, pools: Sequence[Pool] = (), status_debounce: float = 0.5) -> None:
        """``pools``: configured pools, used besides the IPPools (and winning overlaps);
        ``status_debounce``: seconds IPPool status changes are gathered before a write."""
        self.name = "baremetal"
        self.load_balancer_class = "lbctl.io/baremetal"
        self.capabilities = CAPABILITIES
        self.status_debounce = status_debounce
        self.allocator = LBPoolAllocator()
        self.mutations: list[tuple[str, str]] = []
        """Every change of an assignment: ``("assign" | "release", key)``."""
        self._static = tuple(pools)
        self._selection = PoolSelection((), {})
        self._pool_objects: Informer | None = None
        self._namespace_labels: dict[str, Mapping[str, str]] = {}
        self._pending: set[str] = set()
        self._cluster: ClusterContext | None = None
        self._dirty = asyncio.Event()
        self._apply_pools([])
        bad = self._selection.rejected
        if bad:
            raise ConfigError("pools", "; ".join(v.message for v in bad.values()))

    # -- the Provider protocol ---------------------------------------------------------

    async def ensure(self, req: LoadBalancerRequest) -> LoadBalancerStatus:
        require_supported(req, self)
        key = req.key
        before = self.allocator.get(key)
        try:
            got = self.allocator.assign(self._request(req.service, req.ports))
        except LBAllocationError as e:
            # The controller clears the Service's status: let go of what it held too.
            if self.allocator.release(key) is not None:
                self._changed("release", key)
            self._pending.add(key)
            raise UnsupportedError(e.reason, e.message, event_reason="AllocationFailed") from e
        self._pending.discard(key)
        events: tuple[ProviderEvent, ...] = ()
        if got != before:
            self._changed("assign", key)
            events = (
                ProviderEvent(
                    "Normal", "IPAllocated", f"Assigned IP {list(got.ips)} from pool {got.pool}"
                ),
            )
        return dataclasses.replace(_status(got), events=events)

    async def update_hosts(self, req: LoadBalancerRequest) -> None:
        """Nothing to do: the speakers pick the announcing node."""

    async def delete(self, service: Service) -> None:
        self._pending.discard(service.key)
        if self.allocator.release(service.key) is not None:
            self._changed("release", service.key)

    async def get(self, service: Service) -> LoadBalancerStatus | None:
        got = self.allocator.get(service.key)
        return None if got is None else _status(got)

    async def close(self) -> None:
        """Nothing to release: background work ends with :meth:`run`."""

    # -- ClusterAware ------------------------------------------------------------------

    async def run(self, cluster: ClusterContext, stop: asyncio.Event, ready: asyncio.Event) -> None:
        self._cluster = cluster
        pools = Informer(cluster.client, IPPOOLS)
        namespaces = Informer(cluster.client, NAMESPACES)
        self._pool_objects = pools
        pools.add_handler(
            lambda o: self._pools_changed(),
            self._pools_changed,
            lambda o: self._pools_changed(),
        )
        namespaces.add_handler(
            self._namespace_seen,
            lambda o, n: self._namespace_seen(n, o),
            self._namespace_gone,
        )
        async with asyncio.TaskGroup() as tg:
            tg.create_task(pools.run(stop))
            tg.create_task(namespaces.run(stop))
            stopped = tg.create_task(stop.wait())
            synced = tg.create_task(all_synced(pools, namespaces))
            await asyncio.wait((stopped, synced), return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                synced.cancel()
                return
            self._apply_pools(pools.list())
            self._rebuild(cluster.services())
            ready.set()
            tg.create_task(self._write_statuses(stop))

    # -- internals ---------------------------------------------------------------------

    def _request(self, service: Service, ports: Sequence[Any]) -> LBRequest:
        ns = service.metadata.namespace
        req = lb_request_from_service(service, namespace_labels=self._namespace_labels.get(ns, {}))
        # Only the ports the controller lets through take part in sharing checks.
        return dataclasses.replace(req, ports=tuple((p.protocol or "TCP", p.port) for p in ports))

    def _changed(self, what: str, key: str) -> None:
        self.mutations.append((what, key))
        self._dirty.set()
        if what == "release":
            self._requeue(sorted(self._pending))

    def _requeue(self, keys: Sequence[str]) -> None:
        if self._cluster is not None:
            for key in keys:
                self._cluster.requeue(key)

    def _apply_pools(self, objects: Sequence[Mapping[str, Any]]) -> None:
        selection = select_pools(objects, self._static)
        for name, verdict in selection.rejected.items():
            log.warning("IPPool %s not used: %s", name, verdict.message)
        findings = self.allocator.set_pools(selection.pools)
        for finding in findings:
            log.warning("after a pool change: %s", finding)
        self._selection = selection
        self._dirty.set()

    def _pools_changed(self, old: Mapping[str, Any] | None = None, new: Any = None) -> None:
        if self._pool_objects is None or not self._pool_objects.has_synced.is_set():
            return  # the first list is applied once, before the rebuild
        if old is not None and new is not None and old.get("spec") == new.get("spec"):
            return  # a status write of ours
        self._apply_pools(self._pool_objects.list())
        if self._cluster is not None:  # assignments may move: every Service again
            self._requeue([s.key for s in self._cluster.services()])

    def _namespace_seen(self, obj: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> None:
        meta = obj.get("metadata") or {}
        name, labels = meta.get("name", ""), dict(meta.get("labels") or {})
        self._namespace_labels[name] = labels
        relabelled = old is not None and (old.get("metadata") or {}).get("labels") != labels
        if relabelled and self._cluster is not None:
            self._requeue([s.key for s in self._cluster.services() if s.metadata.namespace == name])

    def _namespace_gone(self, obj: Mapping[str, Any]) -> None:
        self._namespace_labels.pop((obj.get("metadata") or {}).get("name", ""), None)

    def _rebuild(self, services: Sequence[Service]) -> None:
        """Re-assign what the Services' status holds, oldest first."""
        existing: list[tuple[LBRequest, tuple[str, ...]]] = []
        ordered = sorted(
            services, key=lambda s: (str(s.metadata.extra.get("creationTimestamp") or ""), s.key)
        )
        for svc in ordered:
            ips = tuple(i.ip for i in svc.status.ingress if i.ip)
            if not ips or svc.spec.type != ServiceType.LOAD_BALANCER:
                continue
            try:
                existing.append((self._request(svc, svc.spec.ports), ips))
            except LBAllocationError as e:
                log.warning("%s: not rebuilt: %s", svc.key, e)
        for finding in self.allocator.rebuild(existing):
            log.warning("rebuild: %s", finding)
        log.info("rebuilt %d assignments from Services", len(self.allocator.assignments()))

    async def _write_statuses(self, stop: asyncio.Event) -> None:
        """Write IPPool status where it differs, at most once per debounce window."""
        while not stop.is_set():
            dirty = asyncio.create_task(self._dirty.wait())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait((dirty, stopped), return_when=asyncio.FIRST_COMPLETED)
            for t in (dirty, stopped):
                t.cancel()
            if stop.is_set():
                return
            with_stop = asyncio.create_task(stop.wait())
            await asyncio.wait((with_stop,), timeout=self.status_debounce)  # gather changes
            with_stop.cancel()
            self._dirty.clear()
            await self._write_once()

    async def _write_once(self) -> None:
        if self._cluster is None or self._pool_objects is None:
            return
        usage = self.allocator.usage()
        now = _now()
        for obj in self._pool_objects.list():
            name = obj["metadata"]["name"]
            want = pool_status(
                obj, usage=usage.get(name), verdict=self._selection.rejected.get(name), now=now
            )
            if want == obj.get("status"):
                continue
            try:
                client: KubeClient = self._cluster.client
                await client.patch(
                    IPPOOLS, name, {"status": want}, kind="merge", subresource="status"
                )
            except NotFound:
                continue
            except KubeError as e:
                log.warning("IPPool %s: cannot write status: %s", name, e)
                self._dirty.set()  # try again in the next window


def _status(got: Assignment) -> LoadBalancerStatus:
    return LoadBalancerStatus(
        ingress=tuple(IngressPoint(ip=ip, ip_mode="VIP") for ip in got.ips),
        annotations={POOL_ANNOTATION: got.pool},
    )
