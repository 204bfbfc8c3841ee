"""The SDK's generic hooks, with small providers built on the memory one: annotations
and Events a provider reports, UnsupportedError's event_reason, and ClusterAware (run
after the caches synced, reconciles only once it is ready, its error stops the
controller)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lbctl.controllers.app import ControllerOptions, run_controller
from lbctl.kube.client import EVENTS, SERVICES, KubeClient, connect
from lbctl.testing import embedded_apiserver, wait_for_async
from providers.base import (
    ClusterContext,
    Flag,
    LoadBalancerRequest,
    LoadBalancerStatus,
    ProviderEvent,
    UnsupportedError,
)
from providers.memory import InMemoryProvider

CLASS = "lbctl.io/memory"


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[KubeClient]:
    async with (
        embedded_apiserver(tmp_path / "d") as server,
        await connect(kubeconfig=server.kubeconfig_path) as client,
    ):
        yield client


class Annotating(InMemoryProvider):
    async def ensure(self, req: LoadBalancerRequest) -> LoadBalancerStatus:
        if req.service.metadata.name == "refused":
            raise UnsupportedError("NoRoom", "no room at all", event_reason="RoomFailed")
        got = await super().ensure(req)
        return dataclasses.replace(
            got,
            annotations={"example.com/where": "rack-1", "example.com/stale": None},
            events=(ProviderEvent("Normal", "Placed", "placed on rack-1"),),
        )


class Aware(InMemoryProvider):
    """Ready only when told; records what it saw when run."""

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.release = asyncio.Event()
        self.seen: list[str] = []
        self.ensured_before_ready = False
        self.is_ready = False

    async def ensure(self, req: LoadBalancerRequest) -> LoadBalancerStatus:
        self.ensured_before_ready |= not self.is_ready
        return await super().ensure(req)

    async def run(self, cluster: ClusterContext, stop: Flag, ready: Flag) -> None:
        self.seen = [s.key for s in cluster.services()]
        if self.fail:
            raise RuntimeError("cannot rebuild")
        await self.release.wait()
        self.is_ready = True
        ready.set()
        await stop.wait()


@contextlib.asynccontextmanager
async def running(kube: KubeClient, provider: InMemoryProvider) -> AsyncIterator[asyncio.Task[Any]]:
    stop = asyncio.Event()
    options = ControllerOptions(class_name=CLASS, workers=2, leader_election=False)
    task = asyncio.create_task(
        run_controller(client=kube, provider=provider, options=options, stop=stop)
    )
    try:
        yield task
    finally:
        stop.set()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=30)


def lb(name: str, **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": CLASS, "ports": [{"port": 80}]},
    }


async def reasons(kube: KubeClient, name: str) -> set[str]:
    items, _ = await kube.list(EVENTS, "default", field_selector=f"involvedObject.name={name}")
    return {e["reason"] for e in items}


async def test_annotations_and_events_the_provider_reports(kube: KubeClient) -> None:
    async with running(kube, Annotating()):
        await kube.create(
            SERVICES, lb("web", **{"example.com/stale": "x", "keep": "me"}), "default"
        )

        async def annotated() -> dict[str, str] | None:
            meta = (await kube.get(SERVICES, "web", "default"))["metadata"]
            got = dict(meta.get("annotations") or {})
            return got if "example.com/where" in got else None

        got = await wait_for_async(annotated, what="the provider's annotation")
        assert got == {"example.com/where": "rack-1", "keep": "me"}, "set one, removed one"
        assert "Placed" in await wait_for_async(lambda: reasons(kube, "web"), what="events")

        await kube.create(SERVICES, lb("refused"), "default")

        async def failed() -> set[str] | None:
            got = await reasons(kube, "refused")
            return got if "RoomFailed" in got else None

        assert "SyncLoadBalancerFailed" not in await wait_for_async(failed, what="RoomFailed")


async def test_a_cluster_aware_provider_runs_before_any_reconcile(kube: KubeClient) -> None:
    await kube.create(SERVICES, lb("old"), "default")
    provider = Aware()
    async with running(kube, provider):
        await wait_for_async(lambda: asyncio.sleep(0, provider.seen), what="run called")
        assert provider.seen == ["default/old"]
        assert provider.calls == [], "no reconcile before ready"
        provider.release.set()

        async def served() -> bool:
            svc = await kube.get(SERVICES, "old", "default")
            return bool(((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress"))

        await wait_for_async(served, what="served once ready")
        assert not provider.ensured_before_ready


async def test_a_failing_run_stops_the_controller(kube: KubeClient) -> None:
    async with running(kube, Aware(fail=True)) as task:
        await asyncio.wait((task,), timeout=15)
        assert task.done()
        with pytest.raises(ExceptionGroup) as info:
            task.result()
        assert info.group_contains(RuntimeError, match="cannot rebuild", depth=None)
