"""Generic API semantics through kubernetes_asyncio: watch, patches, finalizers, selectors,
pagination, namespaces, dry-run."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from lbctl.apiserver.server import APIServer
from lbctl.testing import wait_for_async


def cm(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": data,
    }


async def _events(core: client.CoreV1Api, **kw: Any) -> list[tuple[str, str, str]]:
    out = []
    w = watch.Watch()
    async with w.stream(core.list_namespaced_config_map, "default", timeout_seconds=1, **kw) as s:
        async for ev in s:
            out.append(
                (ev["type"], ev["object"].metadata.name, ev["object"].metadata.resource_version)
            )
    return out


async def test_watch_replays_from_rv_and_streams_live(core: client.CoreV1Api) -> None:
    first = await core.create_namespaced_config_map("default", cm("a"))
    rv0 = first.metadata.resource_version
    await core.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
    await core.create_namespaced_config_map("default", cm("b"))
    await core.delete_namespaced_config_map("a", "default")
    events = await _events(core, resource_version=rv0)
    assert [(t, n) for t, n, _ in events] == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    rvs = [int(rv) for _, _, rv in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv0)
    # From "now" (no RV): synthetic ADDED for what exists.
    assert [(t, n) for t, n, _ in await _events(core)] == [("ADDED", "b")]


async def test_watch_live_events_arrive(core: client.CoreV1Api) -> None:
    listed = await core.list_namespaced_config_map("default")
    got: list[tuple[str, str]] = []

    async def consume() -> None:
        w = watch.Watch()
        async with w.stream(
            core.list_namespaced_config_map,
            "default",
            timeout_seconds=5,
            resource_version=listed.metadata.resource_version,
        ) as s:
            async for ev in s:
                got.append((ev["type"], ev["object"].metadata.name))
                if len(got) == 2:
                    return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    await core.create_namespaced_config_map("default", cm("live"))
    await core.delete_namespaced_config_map("live", "default")
    await asyncio.wait_for(task, timeout=10)
    assert got == [("ADDED", "live"), ("DELETED", "live")]


async def test_compacted_history_is_410_then_relist(
    core: client.CoreV1Api, apiserver: APIServer
) -> None:
    old = await core.create_namespaced_config_map("default", cm("old"))
    await core.patch_namespaced_config_map("old", "default", {"data": {"x": "1"}})
    apiserver.store.history_seconds = 0.0
    assert apiserver.store.compact() > 0
    with pytest.raises(ApiException) as info:
        await _events(core, resource_version=old.metadata.resource_version)
    assert info.value.status == 410
    assert "too old resource version" in info.value.reason or "too old" in str(info.value)
    relisted = await core.list_namespaced_config_map("default")
    assert [i.metadata.name for i in relisted.items] == ["old"]


async def test_bookmarks_when_asked(core: client.CoreV1Api) -> None:
    listed = await core.list_namespaced_config_map("default")
    w = watch.Watch()
    seen = []
    async with w.stream(
        core.list_namespaced_config_map,
        "default",
        timeout_seconds=2,
        allow_watch_bookmarks=True,
        resource_version=listed.metadata.resource_version,
    ) as s:
        async for ev in s:
            seen.append(ev["type"])
            break
    assert seen == ["BOOKMARK"]


async def test_patch_types(api: client.ApiClient, core: client.CoreV1Api) -> None:
    await core.create_namespaced_config_map("default", cm("p", a="1", b="2"))
    got = await core.patch_namespaced_config_map("p", "default", {"data": {"a": None, "c": "3"}})
    assert got.data == {"b": "2", "c": "3"}  # strategic merge: null deletes
    got = await core.patch_namespaced_config_map(
        "p", "default", [{"op": "replace", "path": "/data/b", "value": "9"}]
    )
    assert got.data == {"b": "9", "c": "3"}  # json-patch
    with pytest.raises(ApiException) as info:
        await core.patch_namespaced_config_map(
            "p", "default", [{"op": "remove", "path": "/data/missing"}]
        )
    assert info.value.status == 422
    got = await core.patch_namespaced_config_map(
        "p",
        "default",
        {"metadata": {"labels": {"l": "v"}}},
        _content_type="application/merge-patch+json",
    )
    assert got.metadata.labels == {"l": "v"}


async def test_service_ports_strategic_merge_by_port(core: client.CoreV1Api) -> None:
    await core.create_namespaced_service(
        "default",
        {
            "metadata": {"name": "smp"},
            "spec": {"ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]},
        },
    )
    got = await core.patch_namespaced_service(
        "smp",
        "default",
        {
            "spec": {
                "$setElementOrder/ports": [{"port": 443}],
                "ports": [
                    {"name": "https", "port": 443, "targetPort": 8443},
                    {"$patch": "delete", "port": 80},
                ],
            }
        },
    )
    assert [(p.port, p.target_port) for p in got.spec.ports] == [(443, 8443)]


async def test_stale_rv_in_patch_is_conflict(core: client.CoreV1Api) -> None:
    c = await core.create_namespaced_config_map("default", cm("rv"))
    await core.patch_namespaced_config_map("rv", "default", {"data": {"a": "1"}})
    with pytest.raises(ApiException) as info:
        await core.patch_namespaced_config_map(
            "rv",
            "default",
            {"metadata": {"resourceVersion": c.metadata.resource_version}, "data": {"a": "2"}},
        )
    assert info.value.status == 409


async def test_finalizers_hold_deletion(core: client.CoreV1Api) -> None:
    obj = cm("f")
    obj["metadata"]["finalizers"] = ["lbctl.io/test"]
    await core.create_namespaced_config_map("default", obj)
    await core.delete_namespaced_config_map("f", "default")
    held = await core.read_namespaced_config_map("f", "default")
    assert held.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as info:
        await core.patch_namespaced_config_map(
            "f",
            "default",
            {"metadata": {"finalizers": ["lbctl.io/test", "lbctl.io/new"]}},
            _content_type="application/merge-patch+json",
        )
    assert info.value.status == 422
    await core.patch_namespaced_config_map(
        "f",
        "default",
        {"metadata": {"finalizers": None}},
        _content_type="application/merge-patch+json",
    )
    with pytest.raises(ApiException) as gone:
        await core.read_namespaced_config_map("f", "default")
    assert gone.value.status == 404


async def test_selectors(core: client.CoreV1Api) -> None:
    await core.create_namespaced_config_map("default", cm("x1", {"tier": "web", "env": "prod"}))
    await core.create_namespaced_config_map("default", cm("x2", {"tier": "db"}))
    await core.create_namespaced_config_map("default", cm("x3"))

    async def names(**kw: Any) -> list[str]:
        return [
            i.metadata.name for i in (await core.list_namespaced_config_map("default", **kw)).items
        ]

    assert await names(label_selector="tier=web") == ["x1"]
    assert await names(label_selector="tier!=web") == ["x2", "x3"]
    assert await names(label_selector="tier in (web,db),!env") == ["x2"]
    assert await names(field_selector="metadata.name=x3") == ["x3"]
    with pytest.raises(ApiException) as info:
        await names(field_selector="spec.nope=1")
    assert info.value.status == 400
    with pytest.raises(ApiException) as info:
        await names(label_selector="a in (b")
    assert info.value.status == 400


async def test_pagination(core: client.CoreV1Api) -> None:
    for i in range(7):
        await core.create_namespaced_config_map("default", cm(f"page{i}"))
    seen, token, pages = [], None, 0
    while True:
        kw: dict[str, Any] = {"limit": 3}
        if token:
            kw["_continue"] = token
        page = await core.list_namespaced_config_map("default", **kw)
        seen += [i.metadata.name for i in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 7 - len(seen)
    assert pages == 3
    assert seen == [f"page{i}" for i in range(7)]


async def test_namespaces_missing_terminating_and_emptied(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_config_map("nope", cm("a"))
    assert info.value.status == 404
    assert json.loads(info.value.body)["message"] == 'namespaces "nope" not found'
    ns = await core.create_namespace({"metadata": {"name": "team"}})
    assert ns.spec.finalizers == ["kubernetes"] and ns.status.phase == "Active"
    assert ns.metadata.labels == {"kubernetes.io/metadata.name": "team"}
    await core.create_namespaced_config_map("team", cm("a"))
    held = cm("held")
    held["metadata"]["finalizers"] = ["lbctl.io/x"]
    await core.create_namespaced_config_map("team", held)
    await core.delete_namespace("team")
    got = await core.read_namespace("team")
    assert got.status.phase == "Terminating"
    with pytest.raises(ApiException) as forbidden:
        await core.create_namespaced_config_map("team", cm("late"))
    assert forbidden.value.status == 403

    async def only_held_left() -> bool:
        items = (await core.list_namespaced_config_map("team")).items
        return [i.metadata.name for i in items] == ["held"]

    await wait_for_async(only_held_left, what="namespace emptied but for the held object")
    await core.patch_namespaced_config_map(
        "held",
        "team",
        {"metadata": {"finalizers": None}},
        _content_type="application/merge-patch+json",
    )

    async def ns_gone() -> bool:
        try:
            await core.read_namespace("team")
        except ApiException as e:
            return e.status == 404
        return False

    await wait_for_async(ns_gone, what="namespace finalized")


async def test_dry_run_writes_nothing(core: client.CoreV1Api, apiserver: APIServer) -> None:
    used = apiserver.services.cluster_ips.ranges[0].used
    got = await core.create_namespaced_service(
        "default", {"metadata": {"name": "dry"}, "spec": {"ports": [{"port": 80}]}}, dry_run="All"
    )
    assert got.spec.cluster_ip
    assert apiserver.services.cluster_ips.ranges[0].used == used
    with pytest.raises(ApiException) as info:
        await core.read_namespaced_service("dry", "default")
    assert info.value.status == 404


async def test_nodes_and_leases(api: client.ApiClient, core: client.CoreV1Api) -> None:
    node = await core.create_node(
        {
            "metadata": {"name": "n1"},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.0.2.11"}],
            },
        }
    )
    assert node.status.addresses[0].address == "192.0.2.11"
    coord = client.CoordinationV1Api(api)
    lease = await coord.create_namespaced_lease(
        "kube-system",
        {
            "metadata": {"name": "lbctl"},
            "spec": {
                "holderIdentity": "a",
                "leaseDurationSeconds": 15,
                "renewTime": "2026-11-22T00:00:00.000000Z",
            },
        },
    )
    assert lease.spec.holder_identity == "a"
    disc = client.DiscoveryV1Api(api)
    eps = await disc.create_namespaced_endpoint_slice(
        "default",
        {
            "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.5"]}],
            "ports": [{"port": 80, "protocol": "TCP"}],
        },
    )
    assert eps.endpoints[0].addresses == ["10.0.0.5"]
