"""EventRecorder against the embedded API server: the Event's shape, aggregation of
repeats, and failures that are logged, never raised."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lbctl.apiserver.server import APIServer
from lbctl.kube.client import EVENTS, NAMESPACES, SERVICES, JSONDict, KubeClient, connect
from lbctl.kube.events import EventRecorder
from lbctl.testing import embedded_apiserver

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
T0 = 1_714_557_600.0  # 2024-05-01T10:00:00Z


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[APIServer]:
    async with embedded_apiserver(tmp_path / "d") as s:
        yield s


@pytest.fixture
async def kube(server: APIServer) -> AsyncIterator[KubeClient]:
    async with await connect(kubeconfig=server.kubeconfig_path) as c:
        yield c


@pytest.fixture
async def web(kube: KubeClient) -> JSONDict:
    return await kube.create(
        SERVICES,
        {"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}},
        "default",
    )


async def events_in(kube: KubeClient, namespace: str = "default") -> list[JSONDict]:
    items, _ = await kube.list(EVENTS, namespace)
    return [e for e in items if e["source"]["component"] == "lbctl-test"]


async def test_event_shape(kube: KubeClient, web: JSONDict) -> None:
    rec = EventRecorder(kube, component="lbctl-test", host="node-1", clock=Clock())
    made = await rec.emit(web, "Normal", "EnsuredLoadBalancer", "Ensured load balancer")
    assert made is not None
    [ev] = await events_in(kube)
    meta = web["metadata"]
    assert ev["involvedObject"] == {
        "kind": "Service",
        "namespace": "default",
        "name": "web",
        "uid": meta["uid"],
        "apiVersion": "v1",
        "resourceVersion": meta["resourceVersion"],
    }
    assert re.fullmatch(r"web\.[0-9a-f]+", ev["metadata"]["name"])
    assert ev["metadata"]["namespace"] == "default"
    assert ev["source"] == {"component": "lbctl-test", "host": "node-1"}
    assert (ev["reportingComponent"], ev["reportingInstance"]) == ("lbctl-test", "node-1")
    assert (ev["type"], ev["reason"], ev["message"], ev["count"]) == (
        "Normal",
        "EnsuredLoadBalancer",
        "Ensured load balancer",
        1,
    )
    assert ev["firstTimestamp"] == ev["lastTimestamp"] == "2024-05-01T10:00:00Z"
    assert RFC3339.match(ev["firstTimestamp"])


async def test_repeats_are_aggregated(kube: KubeClient, web: JSONDict) -> None:
    clock = Clock()
    rec = EventRecorder(kube, component="lbctl-test", clock=clock, window_seconds=600)
    first = await rec.emit(web, "Warning", "SyncFailed", "quota exceeded")
    clock.t += 5
    second = await rec.emit(web, "Warning", "SyncFailed", "quota exceeded")
    assert first is not None and second is not None
    [ev] = await events_in(kube)
    assert ev["metadata"]["name"] == first["metadata"]["name"] == second["metadata"]["name"]
    assert ev["count"] == 2
    assert ev["firstTimestamp"] == "2024-05-01T10:00:00Z"
    assert ev["lastTimestamp"] == "2024-05-01T10:00:05Z"

    await rec.emit(web, "Warning", "SyncFailed", "another message")  # not the same: new
    await rec.emit(web, "Normal", "SyncFailed", "quota exceeded")  # another type: new
    assert len(await events_in(kube)) == 3

    clock.t += 601  # past the window since the last repeat: a new series
    await rec.emit(web, "Warning", "SyncFailed", "quota exceeded")
    series = [e for e in await events_in(kube) if e["message"] == "quota exceeded"]
    assert sorted(e["count"] for e in series) == [1, 1, 2]


async def test_event_gone_from_the_server_starts_a_new_one(kube: KubeClient, web: JSONDict) -> None:
    rec = EventRecorder(kube, component="lbctl-test", clock=Clock())
    first = await rec.emit(web, "Normal", "Synced", "ok")
    assert first is not None
    await kube.delete(EVENTS, first["metadata"]["name"], "default")  # expired, say
    again = await rec.emit(web, "Normal", "Synced", "ok")
    assert again is not None and again["metadata"]["name"] != first["metadata"]["name"]
    assert [e["count"] for e in await events_in(kube)] == [1]


async def test_cluster_scoped_object_events_go_to_default(kube: KubeClient) -> None:
    ns = await kube.create(NAMESPACES, {"metadata": {"name": "team-a"}})
    rec = EventRecorder(kube, component="lbctl-test")
    ev = await rec.emit(ns, "Normal", "Seen", "a namespace")
    assert ev is not None and ev["metadata"]["namespace"] == "default"
    assert "namespace" not in ev["involvedObject"]
    assert ev["involvedObject"]["kind"] == "Namespace"
    assert ev["reportingInstance"] == "lbctl-test" and "host" not in ev["source"]


async def test_failures_are_logged_and_swallowed(
    kube: KubeClient, server: APIServer, caplog: pytest.LogCaptureFixture
) -> None:
    rec = EventRecorder(kube, component="lbctl-test")
    ghost = {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": "ghost", "namespace": "no-such-ns", "uid": "u"},
    }
    with caplog.at_level(logging.WARNING, logger="lbctl.kube.events"):
        assert await rec.emit(ghost, "Warning", "X", "y") is None  # 404 namespace
        assert await rec.emit({"metadata": {}}, "Normal", "X", "y") is None  # no name
        await server.stop()
        assert await rec.emit(ghost | {"metadata": {"name": "g"}}, "Normal", "X", "y") is None
    warnings = [r for r in caplog.records if r.name == "lbctl.kube.events"]
    assert len(warnings) == 3
    assert "no-such-ns" in warnings[0].getMessage()
