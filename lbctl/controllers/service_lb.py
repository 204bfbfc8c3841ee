"""The Service load-balancer controller: glue between informers, a provider and status.

Level-based: a work item is only a Service key; each reconcile re-reads the Service
from the informer cache and drives the provider towards it.

- Takes ``type: LoadBalancer`` Services of its class (and class-less ones when it is the
  cluster's default), plus any Service still carrying its finalizer (to clean up).
- Adds the finalizer before creating anything; removes it only after the provider
  confirmed deletion, so a Service deleted while the controller was down is still
  cleaned up when it comes back.
- Checks every port against the provider's capabilities before any side effect; refused
  ports get ``ports[].error`` and a ``LoadBalancerPortsError`` condition plus a Warning
  Event; the rest are still served.
- Writes status only when it changes; emits upstream's Event reasons, plus the Events
  and Service annotations the provider reports (``LoadBalancerStatus.events`` /
  ``.annotations``, the latter by a merge patch of only those keys).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from lbctl.domain.capabilities import check_ports, desired_port_statuses
from lbctl.domain.lbstatus import (
    LB_FINALIZER,
    PORTS_ERROR,
    READY,
    DesiredIngress,
    desired_status,
    status_changed,
)
from lbctl.domain.service import DecodeError, Service, ServiceStatus, ServiceType
from lbctl.kube.client import SERVICES, KubeClient
from lbctl.kube.errors import Conflict, NotFound
from lbctl.kube.events import EventRecorder
from lbctl.kube.informer import Informer
from lbctl.runtime.controller import Result, RetryAfter
from lbctl.telemetry import provider_span
from providers.base import (
    EndpointInfo,
    EndpointPort,
    LoadBalancerRequest,
    NodeInfo,
    Provider,
    RetryAfterError,
    TransientError,
    UnsupportedError,
)

__all__ = ["ServiceLBController", "eligible_node"]

log = logging.getLogger("lbctl.controller")
T = TypeVar("T")
CONFLICT_RETRY_SECONDS = 1.0
NO_NODES_MESSAGE = "There are no available nodes for LoadBalancer"
JSON = dict[str, Any]
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
AUTOSCALER_TAINT = "ToBeDeletedByClusterAutoscaler"
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def eligible_node(node: Mapping[str, Any]) -> bool:
    """Upstream's rule: not being deleted, not excluded by label (an unparseable value
    excludes), no cluster-autoscaler deletion taint. Readiness is not checked."""
    meta = node.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return False
    value = (meta.get("labels") or {}).get(EXCLUDE_LABEL)
    if value is not None and value not in _FALSE:
        return False
    taints = (node.get("spec") or {}).get("taints") or []
    return not any(t.get("key") == AUTOSCALER_TAINT for t in taints)


def _node_info(node: Mapping[str, Any]) -> NodeInfo:
    meta, spec, status = (
        node.get("metadata") or {},
        node.get("spec") or {},
        node.get("status") or {},
    )
    return NodeInfo(
        name=meta.get("name", ""),
        provider_id=spec.get("providerID", ""),
        addresses=tuple(
            (a.get("type", ""), a.get("address", "")) for a in status.get("addresses") or []
        ),
        labels=dict(meta.get("labels") or {}),
    )


class ServiceLBController:
    def __init__(
        self,
        *,
        client: KubeClient,
        provider: Provider,
        recorder: EventRecorder,
        services: Informer,
        nodes: Informer,
        endpoint_slices: Informer,
        class_name: str,
        default_class: bool = False,
        cluster_name: str = "lbctl",
    ) -> None:
        self.client = client
        self.provider = provider
        self.recorder = recorder
        self.services = services
        self.nodes = nodes
        self.endpoint_slices = endpoint_slices
        self.class_name = class_name
        self.default_class = default_class
        self.cluster_name = cluster_name
        self.on_provider_call: Callable[[str, str, str], None] | None = None
        """``(provider, operation, outcome)`` after every provider call (metrics)."""

    async def _call(self, operation: str, fn: Callable[[], Awaitable[T]]) -> T:
        async with provider_span(operation, self.provider.name):
            try:
                got = await fn()
            except Exception as e:
                if self.on_provider_call is not None:
                    self.on_provider_call(self.provider.name, operation, type(e).__name__)
                raise
        if self.on_provider_call is not None:
            self.on_provider_call(self.provider.name, operation, "success")
        return got

    # -- which Services ----------------------------------------------------------------
    def wants(self, obj: Mapping[str, Any]) -> bool:
        spec = obj.get("spec") or {}
        if spec.get("type") != ServiceType.LOAD_BALANCER:
            return False
        cls = spec.get("loadBalancerClass")
        return cls == self.class_name or (cls is None and self.default_class)

    def concerns(self, obj: Mapping[str, Any]) -> bool:
        """Ours now, or still carrying our finalizer (so we must clean up)."""
        fins = (obj.get("metadata") or {}).get("finalizers") or []
        return self.wants(obj) or LB_FINALIZER in fins

    def eligible_nodes(self) -> tuple[NodeInfo, ...]:
        nodes = sorted(self.nodes.list(), key=lambda n: n["metadata"]["name"])
        return tuple(_node_info(n) for n in nodes if eligible_node(n))

    def endpoints_of(self, svc: Service) -> tuple[EndpointInfo, ...]:
        key = f"{svc.metadata.namespace}/{svc.metadata.name}"
        out = []
        for sl in self.endpoint_slices.by_index("service", key):
            for ep in sl.get("endpoints") or []:
                cond = ep.get("conditions") or {}
                out.append(
                    EndpointInfo(
                        addresses=tuple(ep.get("addresses") or ()),
                        ready=cond.get("ready") is not False,
                        node_name=ep.get("nodeName") or "",
                        ports=tuple(
                            EndpointPort(
                                p.get("name") or "", p.get("port") or 0, p.get("protocol") or "TCP"
                            )
                            for p in sl.get("ports") or []
                        ),
                    )
                )
        return tuple(out)

    # -- reconcile ---------------------------------------------------------------------
    async def reconcile(self, key: str) -> Result | None:
        obj = self.services.get(key)
        if obj is None:
            return None  # gone: its finalizer guaranteed the cleanup already happened
        try:
            svc = Service.from_dict(obj)
        except DecodeError as e:
            log.warning("%s: cannot read Service: %s", key, e)
            return None
        if svc.metadata.deletion_timestamp or not self.wants(obj):
            if LB_FINALIZER in svc.metadata.finalizers:
                await self._tear_down(svc, obj, deleting=bool(svc.metadata.deletion_timestamp))
            return None
        if LB_FINALIZER not in svc.metadata.finalizers:
            await self._patch_meta(svc, finalizers=[*svc.metadata.finalizers, LB_FINALIZER])
            return None  # the update comes back through the informer
        return await self._ensure(svc, obj)

    async def _ensure(self, svc: Service, obj: JSON) -> Result | None:
        check = check_ports(svc.spec.ports, self.provider.capabilities, provider=self.provider.name)
        port_statuses = desired_port_statuses(check)
        now = _now()
        first_time = not svc.status.ingress
        if check.refused:
            await self.recorder.emit(obj, "Warning", "LoadBalancerPortsError", check.message)
        if not check.supported:
            status = desired_status(
                svc,
                ingress=(),
                port_errors=port_statuses,
                ready=False,
                ready_reason="Unsupported",
                ready_message=check.message,
                ports_message=check.message,
                now=now,
            )
            await self._write_status(svc, status)
            return None
        req = LoadBalancerRequest(
            service=svc,
            ports=tuple(check.supported),
            nodes=self.eligible_nodes(),
            endpoints=self.endpoints_of(svc),
            cluster_name=self.cluster_name,
        )
        if first_time:
            await self.recorder.emit(
                obj, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer"
            )
        if not req.nodes:
            # Upstream warns and still ensures: the provider may serve without nodes (ip
            # targets, a VIP) and the node sync re-ensures when one becomes eligible.
            await self.recorder.emit(obj, "Warning", "UnAvailableLoadBalancer", NO_NODES_MESSAGE)
        try:
            lb = await self._call("ensure", lambda: self.provider.ensure(req))
        except UnsupportedError as e:
            await self.recorder.emit(obj, "Warning", e.event_reason, e.message)
            status = desired_status(
                svc,
                ingress=(),
                port_errors=port_statuses,
                ready=False,
                ready_reason=e.reason,
                ready_message=e.message,
                ports_message=check.message,
                now=now,
            )
            await self._write_status(svc, status)
            return None
        except RetryAfterError as e:
            await self.recorder.emit(obj, "Warning", "SyncLoadBalancerFailed", str(e))
            raise RetryAfter(e.seconds) from e
        except TransientError as e:
            await self.recorder.emit(
                obj, "Warning", "SyncLoadBalancerFailed", f"Error syncing load balancer: {e}"
            )
            raise
        ingress = [
            DesiredIngress(ip=i.ip, hostname=i.hostname, ip_mode=i.ip_mode) for i in lb.ingress
        ]
        ready = not lb.provisioning and bool(ingress)
        status = desired_status(
            svc,
            ingress=ingress,
            port_errors=port_statuses,
            ready=ready,
            ready_reason="Active" if ready else "Provisioning",
            ready_message="the load balancer is active"
            if ready
            else "the provider is provisioning the load balancer",
            ports_message=check.message,
            now=now,
        )
        changed = await self._write_status(svc, status)
        await self._write_annotations(svc, lb.annotations)
        for event in lb.events:
            await self.recorder.emit(obj, event.type, event.reason, event.message)
        if changed and ready:
            reason = "EnsuredLoadBalancer" if first_time else "UpdatedLoadBalancer"
            await self.recorder.emit(obj, "Normal", reason, "Ensured load balancer")
        if lb.provisioning or lb.requeue_after:
            return Result(requeue_after=lb.requeue_after or 5.0)
        return None

    async def _tear_down(self, svc: Service, obj: JSON, *, deleting: bool) -> None:
        await self.recorder.emit(obj, "Normal", "DeletingLoadBalancer", "Deleting load balancer")
        try:
            await self._call("delete", lambda: self.provider.delete(svc))
        except RetryAfterError as e:
            raise RetryAfter(e.seconds) from e
        await self.recorder.emit(obj, "Normal", "DeletedLoadBalancer", "Deleted load balancer")
        if not deleting and (svc.status.ingress or svc.status.conditions):
            cleared = dataclasses.replace(
                svc.status,
                ingress=(),
                conditions=tuple(
                    c for c in svc.status.conditions if c.type not in (READY, PORTS_ERROR)
                ),
            )
            await self._write_status(svc, cleared)
        fins = [f for f in svc.metadata.finalizers if f != LB_FINALIZER]
        await self._patch_meta(svc, finalizers=fins)

    # -- writes ------------------------------------------------------------------------
    async def _patch_meta(self, svc: Service, *, finalizers: list[str]) -> None:
        patch = {
            "metadata": {
                "finalizers": finalizers or None,
                "resourceVersion": svc.metadata.resource_version,
            }
        }
        try:
            await self.client.patch(
                SERVICES, svc.metadata.name, patch, svc.metadata.namespace, kind="merge"
            )
        except NotFound:
            return
        except Conflict:
            # Our cache is behind: the watch event for the newer version re-queues the
            # key anyway. The delayed retry only covers a conflict no event follows.
            raise RetryAfter(CONFLICT_RETRY_SECONDS) from None

    async def _write_annotations(self, svc: Service, wanted: Mapping[str, str | None]) -> None:
        """The provider's annotations, by a merge patch of only the keys that differ.

        No resourceVersion precondition: the patch touches only these keys of a map, so it
        cannot undo anyone else's change (and the status write before it bumped the
        resourceVersion our cache holds)."""
        have = svc.metadata.annotations
        diff = {k: v for k, v in wanted.items() if have.get(k) != v}
        if not diff:
            return
        try:
            await self.client.patch(
                SERVICES,
                svc.metadata.name,
                {"metadata": {"annotations": diff}},
                svc.metadata.namespace,
                kind="merge",
            )
        except NotFound:
            return

    async def _write_status(self, svc: Service, status: ServiceStatus) -> bool:
        if not status_changed(svc.status, status):
            return False
        # A merge patch: lists are replaced whole, and null removes what must go.
        ingress = [i.to_dict() for i in status.ingress] or None
        conditions = [c.to_dict() for c in status.conditions] or None
        body = {
            "metadata": {"resourceVersion": svc.metadata.resource_version},
            "status": {"loadBalancer": {"ingress": ingress}, "conditions": conditions},
        }
        try:
            await self.client.patch(
                SERVICES,
                svc.metadata.name,
                body,
                svc.metadata.namespace,
                kind="merge",
                subresource="status",
            )
        except NotFound:
            return False
        except Conflict:
            # Someone wrote in between (or our cache is behind): the watch event brings the
            # newer version and re-queues the key; retrying at once would only conflict
            # again against the same stale cache.
            raise RetryAfter(CONFLICT_RETRY_SECONDS) from None
        return True
