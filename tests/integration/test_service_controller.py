"""The Service LB controller end to end: embedded API server + kubernetes_asyncio edge +
runtime + the in-memory provider."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lbctl.apiserver.server import APIServer
from lbctl.controllers.app import ControllerOptions, run_controller
from lbctl.domain.capabilities import Capabilities
from lbctl.domain.lbstatus import LB_FINALIZER
from lbctl.kube.client import EVENTS, NODES, SERVICES, KubeClient, connect
from lbctl.kube.errors import NotFound
from lbctl.testing import embedded_apiserver, wait_for_async
from providers.memory import InMemoryProvider

CLASS = "lbctl.io/memory"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[APIServer]:
    async with embedded_apiserver(tmp_path / "d") as s:
        yield s


@pytest.fixture
async def kube(server: APIServer) -> AsyncIterator[KubeClient]:
    async with await connect(kubeconfig=server.kubeconfig_path) as c:
        yield c


class Running:
    """A controller task with its own stop event."""

    def __init__(self, task: asyncio.Task[Any], stop: asyncio.Event) -> None:
        self.task, self.stop = task, stop

    async def halt(self) -> None:
        self.stop.set()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(self.task, timeout=30)


async def start(kube: KubeClient, provider: InMemoryProvider, **opts: Any) -> Running:
    stop = asyncio.Event()
    options = ControllerOptions(
        class_name=CLASS,
        workers=2,
        leader_election=opts.pop("leader_election", False),
        lease_duration=3,
        renew_deadline=2,
        retry_period=0.5,
        **opts,
    )
    task = asyncio.create_task(
        run_controller(client=kube, provider=provider, options=options, stop=stop)
    )
    return Running(task, stop)


def lb(name: str, *ports: tuple[int, str], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": CLASS,
            "ports": [
                {"name": f"p{i}", "port": p, "protocol": proto}
                for i, (p, proto) in enumerate(ports or ((80, "TCP"),))
            ],
            **spec,
        },
    }


async def status_of(kube: KubeClient, name: str) -> dict[str, Any]:
    return (await kube.get(SERVICES, name, "default")).get("status") or {}


async def ready(kube: KubeClient, name: str) -> dict[str, Any] | None:
    st = await status_of(kube, name)
    conds = {c["type"]: c for c in st.get("conditions") or []}
    ok = conds.get("LoadBalancerReady", {}).get("status") == "True"
    return st if ok and (st.get("loadBalancer") or {}).get("ingress") else None


async def test_create_update_delete(kube: KubeClient) -> None:
    provider = InMemoryProvider()
    run = await start(kube, provider)
    try:
        await kube.create(SERVICES, lb("web"), "default")
        st = await wait_for_async(lambda: ready(kube, "web"), what="web ready")
        ing = st["loadBalancer"]["ingress"][0]
        assert ing["ip"].startswith("198.51.100.") and ing["ipMode"] == "VIP"
        svc = await kube.get(SERVICES, "web", "default")
        assert LB_FINALIZER in svc["metadata"]["finalizers"]
        await kube.delete(SERVICES, "web", "default")

        async def gone() -> bool:
            try:
                await kube.get(SERVICES, "web", "default")
            except NotFound:
                return True
            return False

        await wait_for_async(gone, what="web deleted")
        assert provider.state == {}
        reasons = {e["reason"] for e in (await kube.list(EVENTS, "default"))[0]}
        assert {
            "EnsuringLoadBalancer",
            "EnsuredLoadBalancer",
            "DeletingLoadBalancer",
            "DeletedLoadBalancer",
        } <= reasons
    finally:
        await run.halt()


async def test_unclassed_and_foreign_services_are_left_alone(kube: KubeClient) -> None:
    provider = InMemoryProvider()
    run = await start(kube, provider)
    try:
        await kube.create(SERVICES, lb("mine"), "default")
        other = lb("theirs")
        other["spec"]["loadBalancerClass"] = "example.com/other"
        await kube.create(SERVICES, other, "default")
        plain = lb("plain")
        del plain["spec"]["loadBalancerClass"]
        await kube.create(SERVICES, plain, "default")
        await wait_for_async(lambda: ready(kube, "mine"), what="mine ready")
        assert set(provider.state) == {"default/mine"}
        assert await status_of(kube, "theirs") in ({}, {"loadBalancer": {}})
    finally:
        await run.halt()


async def test_unsupported_protocol_is_refused_per_port(kube: KubeClient) -> None:
    provider = InMemoryProvider(
        capabilities=Capabilities(protocols=frozenset({"TCP", "UDP"}), mixed_protocols=True)
    )
    run = await start(kube, provider)
    try:
        await kube.create(SERVICES, lb("mixed", (80, "TCP"), (9000, "SCTP")), "default")
        st = await wait_for_async(lambda: ready(kube, "mixed"), what="mixed served")
        ports = st["loadBalancer"]["ingress"][0]["ports"]
        assert {(p["port"], p["protocol"], p.get("error")) for p in ports} == {
            (80, "TCP", None),
            (9000, "SCTP", "UnsupportedProtocol"),
        }
        conds = {c["type"]: c for c in st["conditions"]}
        assert conds["LoadBalancerPortsError"]["status"] == "True"
        assert "SCTP is not supported" in conds["LoadBalancerPortsError"]["message"]
        events = (await kube.list(EVENTS, "default"))[0]
        assert any(
            e["type"] == "Warning" and e["reason"] == "LoadBalancerPortsError" for e in events
        )
        await kube.create(SERVICES, lb("sctp-only", (9000, "SCTP")), "default")

        async def refused() -> dict[str, Any] | None:
            st = await status_of(kube, "sctp-only")
            conds = {c["type"]: c for c in st.get("conditions") or []}
            return st if conds.get("LoadBalancerReady", {}).get("reason") == "Unsupported" else None

        await wait_for_async(refused, what="sctp-only refused")
        assert "default/sctp-only" not in provider.state
        assert not [c for c in provider.calls if c[1] == "default/sctp-only"], (
            "the provider was called for a Service it cannot serve"
        )
    finally:
        await run.halt()


async def test_deleted_while_controller_was_down_is_cleaned_up(kube: KubeClient) -> None:
    provider = InMemoryProvider()
    run = await start(kube, provider)
    await kube.create(SERVICES, lb("orphan"), "default")
    await wait_for_async(lambda: ready(kube, "orphan"), what="orphan ready")
    await run.halt()
    await kube.delete(SERVICES, "orphan", "default")  # the finalizer holds it
    held = await kube.get(SERVICES, "orphan", "default")
    assert held["metadata"].get("deletionTimestamp")
    assert "default/orphan" in provider.state
    run = await start(kube, provider)
    try:

        async def cleaned() -> bool:
            try:
                await kube.get(SERVICES, "orphan", "default")
            except NotFound:
                return "default/orphan" not in provider.state
            return False

        await wait_for_async(cleaned, what="cleanup after restart")
    finally:
        await run.halt()


async def test_type_change_deletes_lb_and_clears_status(kube: KubeClient) -> None:
    provider = InMemoryProvider()
    run = await start(kube, provider)
    try:
        await kube.create(SERVICES, lb("flip"), "default")
        await wait_for_async(lambda: ready(kube, "flip"), what="flip ready")
        await kube.patch(
            SERVICES, "flip", {"spec": {"type": "ClusterIP", "loadBalancerClass": None}}, "default"
        )

        async def cleared() -> bool:
            svc = await kube.get(SERVICES, "flip", "default")
            return LB_FINALIZER not in (svc["metadata"].get("finalizers") or []) and not (
                svc.get("status") or {}
            ).get("loadBalancer", {}).get("ingress")

        await wait_for_async(cleared, what="flip cleaned")
        assert "default/flip" not in provider.state
    finally:
        await run.halt()


async def test_drift_repair_recreates_and_restores(kube: KubeClient) -> None:
    provider = InMemoryProvider()
    run = await start(kube, provider, resync_seconds=0.5)
    try:
        await kube.create(SERVICES, lb("drift"), "default")
        first = await wait_for_async(lambda: ready(kube, "drift"), what="drift ready")
        # An idle resync makes no mutating call.
        settled = len(provider.mutations)
        seen = len(provider.calls)
        await wait_for_async(lambda: _async(len(provider.calls) > seen + 1), what="resyncs")
        assert len(provider.mutations) == settled
        # Hand-deleted LB is recreated; hand-cleared status is restored.
        provider.state.pop("default/drift")
        await wait_for_async(lambda: _async("default/drift" in provider.state), what="recreated")
        await kube.patch(
            SERVICES,
            "drift",
            {"status": {"loadBalancer": {"ingress": None}, "conditions": None}},
            "default",
            subresource="status",
        )
        again = await wait_for_async(lambda: ready(kube, "drift"), what="status restored")
        assert again["loadBalancer"] == first["loadBalancer"]
    finally:
        await run.halt()


async def test_node_add_reaches_the_provider(kube: KubeClient) -> None:
    provider = InMemoryProvider()
    run = await start(kube, provider)
    try:
        await kube.create(SERVICES, lb("hosts"), "default")
        await wait_for_async(lambda: ready(kube, "hosts"), what="hosts ready")
        before = len(provider.calls)
        await kube.create(NODES, {"metadata": {"name": "n1"}})
        await wait_for_async(lambda: _async(len(provider.calls) > before), what="node sync")
        assert provider.state["default/hosts"].nodes == ("n1",)
        await kube.create(
            NODES,
            {
                "metadata": {
                    "name": "n2",
                    "labels": {"node.kubernetes.io/exclude-from-external-load-balancers": "true"},
                }
            },
        )
        await kube.create(NODES, {"metadata": {"name": "n3"}})
        await wait_for_async(
            lambda: _async(provider.state["default/hosts"].nodes == ("n1", "n3")),
            what="eligible nodes only",
        )
        await kube.delete(NODES, "n1")
        await wait_for_async(
            lambda: _async(provider.state["default/hosts"].nodes == ("n3",)),
            what="removed node gone from the load balancer",
        )
    finally:
        await run.halt()


async def test_two_controllers_one_leader_and_takeover(kube: KubeClient) -> None:
    a, b = InMemoryProvider(), InMemoryProvider()
    run_a = await start(kube, a, leader_election=True, identity="a")
    run_b = await start(kube, b, leader_election=True, identity="b")
    try:
        await kube.create(SERVICES, lb("elect"), "default")
        await wait_for_async(lambda: ready(kube, "elect"), what="elect ready", timeout=20)
        active, standby = (a, run_a), (b, run_b)
        if not a.state:
            active, standby = (b, run_b), (a, run_a)
        assert not standby[0].state, "both controllers acted"
        # Kill the leader abruptly (no release): the other takes over within the lease.
        active[1].task.cancel()
        await kube.create(SERVICES, lb("after"), "default")
        await wait_for_async(lambda: ready(kube, "after"), what="takeover", timeout=20)
        assert "default/after" in standby[0].state
        assert "default/after" not in active[0].state
    finally:
        await run_a.halt()
        await run_b.halt()


async def _async(value: Any) -> Any:
    return value


class ConflictOnce:
    """The real client, but the first status patch answers 409 (as if another writer won)."""

    def __init__(self, inner: KubeClient) -> None:
        self.inner = inner
        self.conflicts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def patch(self, res: Any, name: str, patch: Any, namespace: Any = None, **kw: Any) -> Any:
        if kw.get("subresource") == "status" and self.conflicts == 0:
            from lbctl.kube.errors import Conflict

            self.conflicts += 1
            raise Conflict(409, "Conflict", "the object has been modified")
        return await self.inner.patch(res, name, patch, namespace, **kw)


async def test_status_patch_conflict_is_retried(kube: KubeClient) -> None:
    provider = InMemoryProvider()
    flaky = ConflictOnce(kube)
    run = await start(flaky, provider)  # type: ignore[arg-type]
    try:
        await kube.create(SERVICES, lb("contested"), "default")
        await wait_for_async(lambda: ready(kube, "contested"), what="contested ready")
        assert flaky.conflicts == 1
    finally:
        await run.halt()


class GapOnServiceWatch:
    """The real client; every Services watch ends after 1 s, and before the second one
    opens ``hook`` runs (changes made while no watch is open, then a compaction)."""

    def __init__(self, inner: KubeClient, hook: Any) -> None:
        self.inner, self.hook = inner, hook
        self.service_lists = 0
        self.service_watches = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def list(self, res: Any, *args: Any, **kw: Any) -> Any:
        if res is SERVICES:
            self.service_lists += 1
        return await self.inner.list(res, *args, **kw)

    async def watch(self, res: Any, *args: Any, **kw: Any) -> Any:
        if res is SERVICES:
            self.service_watches += 1
            kw["timeout_seconds"] = 1
            if self.service_watches == 2:
                await self.hook()
        async for event in self.inner.watch(res, *args, **kw):
            yield event


async def test_a_compacted_watch_relists_and_nothing_is_missed(
    kube: KubeClient, server: APIServer
) -> None:
    """410 Gone end to end: while the controller's Services watch is down, a Service is
    deleted and another created, and the history is compacted; the controller re-lists,
    cleans up the first and provisions the second."""
    provider = InMemoryProvider()
    await kube.create(SERVICES, lb("before"), "default")

    async def gap() -> None:
        await wait_for_async(lambda: ready(kube, "before"), what="before ready")
        await kube.delete(SERVICES, "before", "default")
        await kube.create(SERVICES, lb("during"), "default")
        server.store.history_seconds = 0

        async def compacted() -> bool:
            server.store.compact()
            return server.store.compacted_rv >= server.store.rv

        await wait_for_async(compacted, timeout=5, what="compaction")

    gapped = GapOnServiceWatch(kube, gap)
    run = await start(gapped, provider)  # type: ignore[arg-type]
    try:

        async def during_ready() -> dict[str, Any] | None:
            try:
                return await ready(kube, "during")
            except NotFound:
                return None

        await wait_for_async(during_ready, what="during ready", timeout=20)

        async def before_gone() -> bool:
            try:
                await kube.get(SERVICES, "before", "default")
            except NotFound:
                return True
            return False

        await wait_for_async(before_gone, what="before cleaned up", timeout=20)
        assert "default/before" not in provider.state
        assert gapped.service_lists >= 2, "the controller never re-listed"
    finally:
        await run.halt()


async def test_no_eligible_node_warns_unavailable(kube: KubeClient) -> None:
    provider = InMemoryProvider()
    run = await start(kube, provider)
    try:
        await kube.create(SERVICES, lb("lonely"), "default")
        await wait_for_async(lambda: ready(kube, "lonely"), what="lonely ready")

        async def warned() -> list[dict[str, Any]]:
            items, _ = await kube.list(EVENTS, "default")
            return [
                e
                for e in items
                if e["involvedObject"]["name"] == "lonely"
                and e["reason"] == "UnAvailableLoadBalancer"
            ]

        (event,) = await wait_for_async(warned, what="UnAvailableLoadBalancer")
        assert event["type"] == "Warning"
        assert event["message"] == "There are no available nodes for LoadBalancer"
    finally:
        await run.halt()


async def test_orphan_sweep_removes_only_what_no_service_owns(kube: KubeClient) -> None:
    provider = InMemoryProvider()
    run = await start(kube, provider, resync_seconds=0.5)
    try:
        await kube.create(SERVICES, lb("kept"), "default")
        await wait_for_async(lambda: ready(kube, "kept"), what="kept ready")
        # A load balancer left behind by a Service that no longer exists.
        kept = provider.state["default/kept"]
        provider.state["default/ghost"] = dataclasses.replace(kept, uid="no-such-uid")
        await wait_for_async(
            lambda: _async("default/ghost" not in provider.state), what="orphan swept"
        )
        assert ("sweep", "default/ghost") in provider.mutations
        assert "default/kept" in provider.state
        assert not any(m == ("sweep", "default/kept") for m in provider.mutations)
    finally:
        await run.halt()
