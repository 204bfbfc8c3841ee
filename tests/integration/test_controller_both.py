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
from lbctl.kube.client import NODES, SERVICES, KubeClient, connect
from lbctl.kube.errors import NotFound
from lbctl.testing import wait_for_async
from providers.memory import InMemoryProvider
from tests.conftest import Cluster


@pytest.fixture
async def kube(cluster: Cluster) -> AsyncIterator[KubeClient]:
    async with await connect(kubeconfig=cluster.kubeconfig) as c:
        yield c


class Ctl:
    def __init__(self, kube: Any, provider: InMemoryProvider, class_name: str, **opts: Any) -> None:
        self.stop = asyncio.Event()
        opts.setdefault("leader_election", False)
        options = ControllerOptions(class_name=class_name, workers=2, **opts)
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


async def _value(v: Any) -> Any:
    return v


async def test_two_controllers_one_acts_and_the_other_takes_over(
    cluster: Cluster, kube: KubeClient
) -> None:
    cls, ns = new_class(), cluster.namespace
    lease = {
        "leader_election": True,
        "lease_namespace": ns,
        "lease_name": "lbctl-test",
        "lease_duration": 3,
        "renew_deadline": 2,
        "retry_period": 0.5,
    }
    a, b = InMemoryProvider(), InMemoryProvider()
    ctl_a = Ctl(kube, a, cls, identity="a", **lease)
    ctl_b = Ctl(kube, b, cls, identity="b", **lease)
    try:
        await kube.create(SERVICES, svc("elect", cls), ns)
        await wait_for_async(lambda: ingress(kube, ns, "elect"), what="ingress", timeout=30)
        (active, active_ctl), (standby, _) = (
            ((a, ctl_a), (b, ctl_b)) if a.state else ((b, ctl_b), (a, ctl_a))
        )
        assert not standby.state and not standby.calls, "both controllers acted"
        active_ctl.task.cancel()  # killed: the lease is not released
        await kube.create(SERVICES, svc("after", cls), ns)
        await wait_for_async(lambda: ingress(kube, ns, "after"), what="takeover", timeout=30)
        assert f"{ns}/after" in standby.state
        assert f"{ns}/after" not in active.state
    finally:
        await ctl_a.halt()
        await ctl_b.halt()


async def test_drift_is_repaired_without_idle_mutations(cluster: Cluster, kube: KubeClient) -> None:
    cls, ns, provider = new_class(), cluster.namespace, InMemoryProvider()
    ctl = Ctl(kube, provider, cls, resync_seconds=0.5)
    try:
        await kube.create(SERVICES, svc("drift", cls), ns)
        first = await wait_for_async(lambda: ingress(kube, ns, "drift"), what="ingress")
        settled, seen = len(provider.mutations), len(provider.calls)
        await wait_for_async(lambda: _value(len(provider.calls) > seen + 1), what="resyncs")
        assert len(provider.mutations) == settled, "an idle resync changed the provider"
        provider.state.pop(f"{ns}/drift")
        await wait_for_async(lambda: _value(f"{ns}/drift" in provider.state), what="recreated")
        await kube.patch(
            SERVICES,
            "drift",
            {"status": {"loadBalancer": {"ingress": None}, "conditions": None}},
            ns,
            subresource="status",
        )
        again = await wait_for_async(lambda: ingress(kube, ns, "drift"), what="restored")
        assert again == first
    finally:
        await ctl.halt()


async def test_node_changes_reach_the_load_balancer(cluster: Cluster, kube: KubeClient) -> None:
    """Nodes are cluster-scoped and the real server is shared: only this test's nodes
    (unique names) are asserted on."""
    cls, ns, provider = new_class(), cluster.namespace, InMemoryProvider()
    mine = [f"n-{ns}-{i}" for i in range(2)]
    ctl = Ctl(kube, provider, cls)

    def nodes() -> set[str]:
        lb = provider.state.get(f"{ns}/hosts")
        return set(lb.nodes) & set(mine) if lb else set()

    try:
        await kube.create(SERVICES, svc("hosts", cls), ns)
        await wait_for_async(lambda: ingress(kube, ns, "hosts"), what="ingress")
        await kube.create(NODES, {"metadata": {"name": mine[0]}})
        excluded = {"node.kubernetes.io/exclude-from-external-load-balancers": "true"}
        await kube.create(NODES, {"metadata": {"name": mine[1], "labels": excluded}})
        await wait_for_async(lambda: _value(nodes() == {mine[0]}), what="eligible node added")
        await kube.patch(
            NODES,
            mine[1],
            {
                "metadata": {
                    "labels": {"node.kubernetes.io/exclude-from-external-load-balancers": None}
                }
            },
        )
        await wait_for_async(lambda: _value(nodes() == set(mine)), what="now eligible")
        await kube.delete(NODES, mine[0])
        await wait_for_async(lambda: _value(nodes() == {mine[1]}), what="node removed")
    finally:
        await ctl.halt()
        for name in mine:
            with contextlib.suppress(NotFound):
                await kube.delete(NODES, name)


class ConflictOnce:
    """The real client, but the first status patch answers 409 (another writer won)."""

    def __init__(self, inner: KubeClient) -> None:
        self.inner = inner
        self.conflicts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def patch(self, res: Any, name: str, body: Any, namespace: Any = None, **kw: Any) -> Any:
        if kw.get("subresource") == "status" and self.conflicts == 0:
            from lbctl.kube.errors import Conflict

            self.conflicts += 1
            raise Conflict(409, "Conflict", "the object has been modified")
        return await self.inner.patch(res, name, body, namespace, **kw)


async def test_a_status_conflict_is_retried(cluster: Cluster, kube: KubeClient) -> None:
    cls, ns, provider = new_class(), cluster.namespace, InMemoryProvider()
    flaky = ConflictOnce(kube)
    ctl = Ctl(flaky, provider, cls)
    try:
        await kube.create(SERVICES, svc("contested", cls), ns)
        await wait_for_async(lambda: ingress(kube, ns, "contested"), what="ingress", timeout=30)
        assert flaky.conflicts == 1
    finally:
        await ctl.halt()
