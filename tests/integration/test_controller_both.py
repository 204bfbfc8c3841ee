"""Controller flows on both the embedded server and the real kube-apiserver (the `cluster`
fixture). Each test uses its own namespace and its own loadBalancerClass, so tests sharing
the session's real server never see each other's Services."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lbctl.controllers.app import ControllerOptions, run_controller
from lbctl.domain.capabilities import Capabilities
from lbctl.domain.lbstatus import LB_FINALIZER
from lbctl.kube.client import SERVICES, KubeClient, connect
from lbctl.kube.errors import NotFound
from lbctl.testing import wait_for_async
from providers.memory import InMemoryProvider
from tests.conftest import Cluster


@pytest.fixture
async def kube(cluster: Cluster) -> AsyncIterator[KubeClient]:
    async with await connect(kubeconfig=cluster.kubeconfig) as c:
        yield c


class Ctl:
    def __init__(self, kube: KubeClient, provider: InMemoryProvider, class_name: str) -> None:
        self.stop = asyncio.Event()
        options = ControllerOptions(class_name=class_name, workers=2, leader_election=False)
        self.task = asyncio.create_task(
            run_controller(client=kube, provider=provider, options=options, stop=self.stop)
        )

    async def halt(self) -> None:
        self.stop.set()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(self.task, timeout=30)


def svc(name: str, cls: str, *ports: tuple[int, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": cls,
            "ports": [
                {"name": f"p{i}", "port": p, "protocol": proto}
                for i, (p, proto) in enumerate(ports or ((80, "TCP"),))
            ],
        },
    }


async def ingress(kube: KubeClient, ns: str, name: str) -> list[dict[str, Any]] | None:
    st = (await kube.get(SERVICES, name, ns)).get("status") or {}
    return (st.get("loadBalancer") or {}).get("ingress") or None


async def gone(kube: KubeClient, ns: str, name: str) -> bool:
    try:
        await kube.get(SERVICES, name, ns)
    except NotFound:
        return True
    return False


def new_class() -> str:
    return f"test.lbctl.io/c{secrets.token_hex(4)}"


async def test_create_and_delete(cluster: Cluster, kube: KubeClient) -> None:
    cls, ns, provider = new_class(), cluster.namespace, InMemoryProvider()
    ctl = Ctl(kube, provider, cls)
    try:
        await kube.create(SERVICES, svc("web", cls), ns)
        got = await wait_for_async(lambda: ingress(kube, ns, "web"), what="ingress", timeout=30)
        assert got[0]["ipMode"] == "VIP" and got[0]["ip"].startswith("198.51.100.")
        obj = await kube.get(SERVICES, "web", ns)
        assert LB_FINALIZER in obj["metadata"]["finalizers"]
        await kube.delete(SERVICES, "web", ns)
        await wait_for_async(lambda: gone(kube, ns, "web"), what="deleted", timeout=30)
        assert f"{ns}/web" not in provider.state
    finally:
        await ctl.halt()


async def test_unsupported_port_error(cluster: Cluster, kube: KubeClient) -> None:
    cls, ns = new_class(), cluster.namespace
    provider = InMemoryProvider(capabilities=Capabilities(protocols=frozenset({"TCP"})))
    ctl = Ctl(kube, provider, cls)
    try:
        await kube.create(SERVICES, svc("mixed", cls, (80, "TCP"), (5000, "SCTP")), ns)
        got = await wait_for_async(lambda: ingress(kube, ns, "mixed"), what="ingress", timeout=30)
        errors = {(p["port"], p["protocol"]): p.get("error") for p in got[0]["ports"]}
        assert errors == {(80, "TCP"): None, (5000, "SCTP"): "UnsupportedProtocol"}
    finally:
        await ctl.halt()


async def test_cleanup_after_downtime(cluster: Cluster, kube: KubeClient) -> None:
    cls, ns, provider = new_class(), cluster.namespace, InMemoryProvider()
    ctl = Ctl(kube, provider, cls)
    await kube.create(SERVICES, svc("orphan", cls), ns)
    await wait_for_async(lambda: ingress(kube, ns, "orphan"), what="ingress", timeout=30)
    await ctl.halt()
    await kube.delete(SERVICES, "orphan", ns)
    assert (await kube.get(SERVICES, "orphan", ns))["metadata"].get("deletionTimestamp")
    ctl = Ctl(kube, provider, cls)
    try:
        await wait_for_async(lambda: gone(kube, ns, "orphan"), what="cleaned up", timeout=30)
        assert f"{ns}/orphan" not in provider.state
    finally:
        await ctl.halt()
