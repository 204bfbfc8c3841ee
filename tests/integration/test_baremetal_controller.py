"""The bare-metal provider end to end: embedded API server (serving IPPools) +
run_controller + the provider watching the pools and writing their status."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lbctl.apimachinery.lbctl_kinds import LBCTL_TYPES
from lbctl.controllers.app import ControllerOptions, run_controller
from lbctl.kube.client import EVENTS, NAMESPACES, SERVICES, KubeClient, connect
from lbctl.kube.errors import NotFound
from lbctl.testing import embedded_apiserver, wait_for_async
from providers.baremetal import IPPOOLS, POOL_ANNOTATION, BareMetalProvider, create

CLASS = "lbctl.io/baremetal"
JSON = dict[str, Any]


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[KubeClient]:
    async with (
        embedded_apiserver(tmp_path / "d", extra_types=LBCTL_TYPES) as server,
        await connect(kubeconfig=server.kubeconfig_path) as client,
    ):
        yield client


class Running:
    def __init__(self, task: asyncio.Task[Any], stop: asyncio.Event, provider: BareMetalProvider):
        self.task, self.stop, self.provider = task, stop, provider

    async def halt(self) -> None:
        self.stop.set()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(self.task, timeout=30)


@contextlib.asynccontextmanager
async def controller(kube: KubeClient) -> AsyncIterator[Running]:
    stop = asyncio.Event()
    provider = create(status_debounce=0.05)
    options = ControllerOptions(class_name=CLASS, workers=2, leader_election=False)
    task = asyncio.create_task(
        run_controller(client=kube, provider=provider, options=options, stop=stop)
    )
    run = Running(task, stop, provider)
    try:
        yield run
    finally:
        await run.halt()


async def pool(kube: KubeClient, name: str, *addresses: str, **spec: Any) -> None:
    await kube.create(
        IPPOOLS, {"metadata": {"name": name}, "spec": {"addresses": list(addresses), **spec}}
    )


def service(
    name: str, *ports: tuple[int, str], annotations: dict[str, str] | None = None, **spec: Any
) -> JSON:
    return {
        "metadata": {"name": name, "annotations": annotations or {}},
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


async def ingress(kube: KubeClient, name: str, ns: str = "default") -> list[JSON]:
    try:
        svc = await kube.get(SERVICES, name, ns)
    except NotFound:
        return []
    return list(((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])


async def ips_of(kube: KubeClient, name: str, ns: str = "default") -> list[str]:
    return await wait_for_async(
        lambda: _ips(kube, name, ns), timeout=15, what=f"{ns}/{name} to get an IP"
    )


async def _ips(kube: KubeClient, name: str, ns: str) -> list[str]:
    return [i["ip"] for i in await ingress(kube, name, ns)]


async def ready_condition(kube: KubeClient, name: str) -> JSON:
    svc = await kube.get(SERVICES, name, "default")
    conds = {c["type"]: c for c in (svc.get("status") or {}).get("conditions") or []}
    return conds.get("LoadBalancerReady") or {}


async def events(kube: KubeClient, name: str, ns: str = "default") -> set[tuple[str, str]]:
    items, _ = await kube.list(EVENTS, ns, field_selector=f"involvedObject.name={name}")
    return {(e["type"], e["reason"]) for e in items}


async def pool_status(kube: KubeClient, name: str) -> JSON:
    return dict((await kube.get(IPPOOLS, name)).get("status") or {})


async def test_a_service_gets_an_ip_of_the_pool_with_vip_and_the_annotation(
    kube: KubeClient,
) -> None:
    await pool(kube, "default", "192.0.2.0/29")
    async with controller(kube):
        await kube.create(SERVICES, service("web"), "default")
        assert await ips_of(kube, "web") == ["192.0.2.0"]
        (point,) = await ingress(kube, "web")
        assert point["ipMode"] == "VIP"
        svc = await kube.get(SERVICES, "web", "default")
        assert svc["metadata"]["annotations"][POOL_ANNOTATION] == "default"
        assert (await ready_condition(kube, "web"))["status"] == "True"
        got = await wait_for_async(lambda: events(kube, "web"), what="events")
        assert ("Normal", "IPAllocated") in got

        async def counted() -> JSON | None:
            st = await pool_status(kube, "default")
            return st if st.get("assignedIPv4") == 1 else None

        st = await wait_for_async(counted, what="pool status")
        assert (st["availableIPv4"], st["assignedIPv6"], st["availableIPv6"]) == (7, 0, 0)
        conds = {c["type"]: c["status"] for c in st["conditions"]}
        assert conds == {"Ready": "True", "Exhausted": "False"}

        await kube.delete(SERVICES, "web", "default")

        async def freed() -> bool:
            return (await pool_status(kube, "default")).get("assignedIPv4") == 0

        await wait_for_async(freed, what="the IP freed")


async def test_pool_priority_namespaces_and_requested_ip(kube: KubeClient) -> None:
    await kube.create(NAMESPACES, {"metadata": {"name": "shop", "labels": {"team": "a"}}})
    await pool(kube, "general", "192.0.2.0/28")
    await pool(
        kube, "p20", "198.51.100.0/28", serviceAllocation={"priority": 20, "namespaces": ["shop"]}
    )
    await pool(
        kube,
        "p10",
        "198.51.100.16/28",
        serviceAllocation={"priority": 10, "namespaceSelectors": [{"matchLabels": {"team": "a"}}]},
    )
    async with controller(kube):
        await kube.create(SERVICES, service("cart"), "shop")
        await kube.create(SERVICES, service("web"), "default")
        asked = service("dns", annotations={"lbctl.io/loadBalancerIPs": "192.0.2.9"})
        await kube.create(SERVICES, asked, "default")
        assert await ips_of(kube, "cart", "shop") == ["198.51.100.16"]
        assert await ips_of(kube, "web") == ["192.0.2.0"]
        assert await ips_of(kube, "dns") == ["192.0.2.9"]
        cart = await kube.get(SERVICES, "cart", "shop")
        assert cart["metadata"]["annotations"][POOL_ANNOTATION] == "p10"


async def test_tcp_and_udp_53_share_one_ip(kube: KubeClient) -> None:
    await pool(kube, "default", "192.0.2.0/30")
    shared = {"lbctl.io/allow-shared-ip": "dns", "lbctl.io/loadBalancerIPs": "192.0.2.2"}
    async with controller(kube):
        await kube.create(SERVICES, service("dns-tcp", (53, "TCP"), annotations=shared), "default")
        await kube.create(SERVICES, service("dns-udp", (53, "UDP"), annotations=shared), "default")
        assert await ips_of(kube, "dns-tcp") == ["192.0.2.2"]
        assert await ips_of(kube, "dns-udp") == ["192.0.2.2"]

        async def one_assigned() -> JSON | None:
            st = await pool_status(kube, "default")
            return st if st.get("assignedIPv4") == 1 else None

        st = await wait_for_async(one_assigned, what="one shared IP counted once")
        assert st["availableIPv4"] == 3
        clash = {**shared, "lbctl.io/allow-shared-ip": "other"}
        await kube.create(SERVICES, service("intruder", (54, "TCP"), annotations=clash), "default")

        async def refused() -> JSON | None:
            cond = await ready_condition(kube, "intruder")
            return cond if cond.get("status") == "False" else None

        cond = await wait_for_async(refused, what="the intruder refused")
        assert cond["reason"] == "SharingConflict", cond


async def test_exhaustion_is_reported_and_converges_when_an_ip_frees(kube: KubeClient) -> None:
    await pool(kube, "tiny", "192.0.2.7/32")
    async with controller(kube):
        await kube.create(SERVICES, service("first"), "default")
        assert await ips_of(kube, "first") == ["192.0.2.7"]
        await kube.create(SERVICES, service("second"), "default")

        async def refused() -> JSON | None:
            cond = await ready_condition(kube, "second")
            return cond if cond.get("status") == "False" else None

        cond = await wait_for_async(refused, what="second refused")
        assert cond["reason"] == "PoolExhausted" and "tiny" in cond["message"]
        got = await wait_for_async(lambda: events(kube, "second"), what="events")
        assert ("Warning", "AllocationFailed") in got

        async def exhausted() -> bool:
            conds = (await pool_status(kube, "tiny")).get("conditions") or []
            return any(c["type"] == "Exhausted" and c["status"] == "True" for c in conds)

        await wait_for_async(exhausted, what="the pool marked Exhausted")
        await kube.delete(SERVICES, "first", "default")
        assert await ips_of(kube, "second") == ["192.0.2.7"]


async def test_a_restart_keeps_every_ip(kube: KubeClient) -> None:
    await pool(kube, "default", "192.0.2.0/29")
    async with controller(kube):
        for name in ("web", "api", "db"):
            await kube.create(SERVICES, service(name), "default")
        before = {n: await ips_of(kube, n) for n in ("web", "api", "db")}
    assert sorted(ip for ips in before.values() for ip in ips) == [
        "192.0.2.0",
        "192.0.2.1",
        "192.0.2.2",
    ]
    # Created while no controller runs, and first in the queue: without the rebuild it
    # would take the first address, held by another Service.
    await kube.create(SERVICES, service("a-new"), "default")
    async with controller(kube):
        assert await ips_of(kube, "a-new") == ["192.0.2.3"]
        after = {n: await ips_of(kube, n) for n in ("web", "api", "db")}
    assert after == before


async def test_overlapping_pools_get_a_condition(kube: KubeClient) -> None:
    await pool(kube, "first", "192.0.2.0/28")
    async with controller(kube):
        await kube.create(SERVICES, service("web"), "default")
        assert await ips_of(kube, "web") == ["192.0.2.0"]
        await pool(kube, "second", "192.0.2.8-192.0.2.20")

        async def condition() -> JSON | None:
            conds = (await pool_status(kube, "second")).get("conditions") or []
            ready = {c["type"]: c for c in conds}.get("Ready")
            return ready if ready and ready["status"] == "False" else None

        cond = await wait_for_async(condition, what="Overlap on the second pool")
        assert cond["reason"] == "Overlap" and "'first'" in cond["message"]
        first = {c["type"]: c["status"] for c in (await pool_status(kube, "first"))["conditions"]}
        assert first["Ready"] == "True"
        assert await ips_of(kube, "web") == ["192.0.2.0"]
