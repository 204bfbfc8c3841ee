"""Wiring: informers, the Service LB controller, node sync, drift resync, leader election.

Event -> key mapping (controller-runtime's sources and handlers):
- a Service we concern ourselves with (ours, or carrying our finalizer) -> its key;
- an EndpointSlice -> the key of its Service (label ``kubernetes.io/service-name``);
- a Node added, removed or changing eligibility -> every Service we concern ourselves with;
- every ``resync_seconds`` -> every such Service again (drift repair: the provider's
  ensure makes no mutating call when nothing drifted).

A :class:`~providers.base.ClusterAware` provider is run on the leader once the caches
synced; reconciles start only after it said it is ready (its state rebuilt).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from lbctl.controllers.service_lb import ServiceLBController, eligible_node
from lbctl.domain.service import DecodeError, Service
from lbctl.kube.client import ENDPOINTSLICES, NODES, SERVICES, KubeClient
from lbctl.kube.errors import KubeError
from lbctl.kube.events import EventRecorder
from lbctl.kube.informer import Informer, object_key
from lbctl.kube.lease import KubeLeaseStore
from lbctl.runtime.controller import Controller, Result
from lbctl.runtime.leaderelection import LeaderElector
from lbctl.runtime.manager import Manager
from lbctl.runtime.workqueue import WorkQueue
from lbctl.telemetry import Metrics, reconcile_context, reconcile_span
from providers.base import (
    ClusterAware,
    ClusterContext,
    ObservesCalls,
    Provider,
    ProviderError,
    Sweeper,
)

__all__ = ["ControllerOptions", "run_controller"]

log = logging.getLogger("lbctl.controller")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True, slots=True)
class ControllerOptions:
    class_name: str
    default_class: bool = False
    workers: int = 4
    resync_seconds: float = 600.0
    leader_election: bool = True
    lease_namespace: str = "kube-system"
    lease_name: str = "lbctl-controller"
    identity: str = ""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    cluster_name: str = "lbctl"


def _slice_service(obj: Mapping[str, Any]) -> list[str]:
    m = obj.get("metadata") or {}
    svc = (m.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{m.get('namespace')}/{svc}"] if svc else []


class _InformerRunnable:
    needs_leader = False

    def __init__(self, name: str, informer: Informer) -> None:
        self.name = name
        self.informer = informer

    async def run(self, stop: asyncio.Event) -> None:
        await self.informer.run(stop)


class _ControllerRunnable:
    needs_leader = True

    def __init__(
        self,
        controller: Controller[str],
        informers: list[Informer],
        resync_seconds: float,
        resync: Callable[[], None],
        *,
        sweep: Callable[[], Awaitable[None]] | None = None,
        provider_run: Callable[[asyncio.Event, asyncio.Event], Coroutine[Any, Any, None]]
        | None = None,
    ) -> None:
        self.name = "service-lb-controller"
        self.provider_run = provider_run
        self.controller = controller
        self.informers = informers
        self.resync_seconds = resync_seconds
        self.resync = resync
        self.sweep = sweep

    async def run(self, stop: asyncio.Event) -> None:
        for inf in self.informers:
            await inf.has_synced.wait()
        async with asyncio.TaskGroup() as tg:
            if self.provider_run is not None:
                # The provider rebuilds its state from the synced caches before any
                # reconcile, so nothing is handed out that a Service already holds.
                ready = asyncio.Event()
                running = tg.create_task(self.provider_run(stop, ready))
                readied = tg.create_task(ready.wait())
                await asyncio.wait((running, readied), return_when=asyncio.FIRST_COMPLETED)
                if not ready.is_set():
                    readied.cancel()
                    await running  # raises its error; returning early means stopped
                    return
            await self._run_controller(stop, tg)

    async def _run_controller(self, stop: asyncio.Event, tg: asyncio.TaskGroup) -> None:
        self.resync()  # everything once at start: a Service deleted while we were down

        async def periodic() -> None:
            # The orphan sweep runs only here: after the caches synced (an empty cache
            # would make every load balancer look orphaned) and only on the leader.
            if self.sweep is not None:
                await self.sweep()
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.resync_seconds)
                except TimeoutError:
                    self.resync()
                    if self.sweep is not None:
                        await self.sweep()

        tg.create_task(periodic())
        await self.controller.run(stop)


async def run_controller(
    *,
    client: KubeClient,
    provider: Provider,
    options: ControllerOptions,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
    metrics: Metrics | None = None,
) -> ServiceLBController:
    services = Informer(client, SERVICES)
    nodes = Informer(client, NODES)
    slices = Informer(client, ENDPOINTSLICES)
    slices.add_index("service", _slice_service)
    identity = options.identity or f"{socket.gethostname()}-{id(stop):x}"
    recorder = EventRecorder(client, component="lbctl-service-controller", host=identity)
    lb = ServiceLBController(
        client=client,
        provider=provider,
        recorder=recorder,
        services=services,
        nodes=nodes,
        endpoint_slices=slices,
        class_name=options.class_name,
        default_class=options.default_class,
        cluster_name=options.cluster_name,
    )
    queue: WorkQueue[str] | None = None
    if metrics is not None:
        queue = WorkQueue(name="service-lb", on_get=metrics.queue_observer("service-lb"))
        lb.on_provider_call = metrics.provider_call

    async def reconcile(key: str) -> Result | None:
        with reconcile_context(key):
            async with reconcile_span(key, "service-lb"):
                return await lb.reconcile(key)

    controller: Controller[str] = Controller(
        "service-lb",
        reconcile,
        workers=options.workers,
        queue=queue,
        observer=metrics,
        expected=(ProviderError, KubeError),
    )
    if metrics is not None:
        metrics.watch_queue("service-lb", lambda: len(controller.queue))

    def enqueue_all() -> None:
        for obj in services.list():
            if lb.concerns(obj):
                controller.enqueue(object_key(obj))

    def on_service(obj: Mapping[str, Any]) -> None:
        if lb.concerns(obj):
            controller.enqueue(object_key(obj))

    def on_service_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        if lb.concerns(new) or lb.concerns(old):
            controller.enqueue(object_key(new))

    def on_node_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        if eligible_node(old) != eligible_node(new) or _addresses(old) != _addresses(new):
            enqueue_all()

    services.add_handler(on_service, on_service_update, on_service)
    nodes.add_handler(lambda n: enqueue_all(), on_node_update, lambda n: enqueue_all())

    def on_slice(obj: Mapping[str, Any]) -> None:
        for key in _slice_service(obj):
            svc = services.get(key)
            if svc is not None and lb.concerns(svc):
                controller.enqueue(key)

    slices.add_handler(on_slice, lambda old, new: on_slice(new), on_slice)

    async def sweep() -> None:
        """Delete the provider's resources whose Service is gone (``Provider.sweep``)."""

        def live() -> set[str]:
            return {
                str(o["metadata"].get("uid"))
                for o in services.list()
                if lb.concerns(o) and o["metadata"].get("uid")
            }

        assert isinstance(provider, Sweeper)
        try:
            deleted = await provider.sweep(live)
        except Exception as e:
            log.warning("orphan sweep failed: %s", e)
            return
        if deleted:
            log.info("orphan sweep deleted %d resources whose Service is gone", deleted)
            if metrics is not None:
                metrics.orphans_deleted(provider.name, deleted)

    if metrics is not None and isinstance(provider, ObservesCalls):
        observed = metrics

        def on_call(operation: str, outcome: str) -> None:
            observed.cloud_call(provider.name, operation, outcome)

        provider.observe_calls(on_call)

    provider_run = None
    if isinstance(provider, ClusterAware):
        aware = provider

        def ours() -> list[Service]:
            out = []
            for obj in services.list():
                if lb.concerns(obj):
                    try:
                        out.append(Service.from_dict(obj))
                    except DecodeError as e:
                        log.warning("%s: cannot read Service: %s", object_key(obj), e)
            return out

        context = ClusterContext(client=client, services=ours, requeue=controller.enqueue)

        async def provider_run(stop: asyncio.Event, ready: asyncio.Event) -> None:
            await aware.run(context, stop, ready)

    manager = Manager()
    for name, inf in (("services", services), ("nodes", nodes), ("endpointslices", slices)):
        manager.add(_InformerRunnable(f"{name}-informer", inf))
    manager.add(
        _ControllerRunnable(
            controller,
            [services, nodes, slices],
            options.resync_seconds,
            enqueue_all,
            sweep=sweep if isinstance(provider, Sweeper) else None,
            provider_run=provider_run,
        )
    )
    elector = None
    if options.leader_election:
        elector = LeaderElector(
            KubeLeaseStore(client, namespace=options.lease_namespace, name=options.lease_name),
            identity,
            lease_duration=options.lease_duration,
            renew_deadline=options.renew_deadline,
            retry_period=options.retry_period,
        )
    if ready is not None:
        ready.set()
    await manager.run(stop, elector=elector)
    return lb


def _addresses(node: Mapping[str, Any]) -> Any:
    return (node.get("status") or {}).get("addresses")
