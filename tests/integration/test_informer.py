"""Informer against the embedded API server: sync, handlers, indexes, and the guarantees
across a watch resume (no event missed or repeated) and a relist after 410 Gone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest

from lbctl.apiserver.server import APIServer
from lbctl.kube import errors
from lbctl.kube.client import CONFIGMAPS, NAMESPACES, JSONDict, KubeClient, Resource, connect
from lbctl.kube.informer import Informer
from lbctl.runtime.clock import FakeClock
from lbctl.testing import embedded_apiserver, wait_for_async

NS = "inf"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[APIServer]:
    async with embedded_apiserver(tmp_path / "d", bookmark_seconds=0.3) as s:
        yield s


@pytest.fixture
async def kube(server: APIServer) -> AsyncIterator[KubeClient]:
    async with await connect(kubeconfig=server.kubeconfig_path) as c:
        await c.create(NAMESPACES, {"metadata": {"name": NS}})
        yield c


class Spy:
    """A ListWatcher over a real client: counts lists, records each watch's starting RV,
    runs a hook before watch number n (1-based) and can fail the next watches."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self.lists = 0
        self.watch_rvs: list[str] = []
        self.before_watch: dict[int, Callable[[], Awaitable[None]]] = {}
        self.fail_watches = 0

    async def list(self, res: Resource, namespace: str | None = None, **kw: Any) -> Any:
        self.lists += 1
        return await self.kube.list(res, namespace, **kw)

    async def watch(
        self, res: Resource, namespace: str | None = None, **kw: Any
    ) -> AsyncGenerator[tuple[str, JSONDict], None]:
        self.watch_rvs.append(kw["resource_version"])
        hook = self.before_watch.get(len(self.watch_rvs))
        if hook is not None:
            await hook()
        if self.fail_watches:
            self.fail_watches -= 1
            raise errors.TransportError("injected: connection reset")
        async for ev in self.kube.watch(res, namespace, **kw):
            yield ev


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.last: dict[str, JSONDict] = {}

    @staticmethod
    def _id(obj: JSONDict) -> tuple[str, str]:
        m = obj["metadata"]
        return m["name"], m["resourceVersion"]

    def add(self, obj: JSONDict) -> None:
        self.events.append(("add", *self._id(obj)))

    def update(self, old: JSONDict, new: JSONDict) -> None:
        assert old["metadata"]["name"] == new["metadata"]["name"]
        self.events.append(("update", *self._id(new)))
        self.last[new["metadata"]["name"]] = old

    def delete(self, obj: JSONDict) -> None:
        self.events.append(("delete", *self._id(obj)))
        self.last[obj["metadata"]["name"]] = obj

    def attach(self, inf: Informer) -> Recorder:
        inf.add_handler(self.add, self.update, self.delete)
        return self


@contextlib.asynccontextmanager
async def running(inf: Informer) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(inf.run(stop))
    try:
        async with asyncio.timeout(5):
            await inf.has_synced.wait()
        yield
    finally:
        stop.set()
        async with asyncio.timeout(5):
            await task


async def until(check: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    async def probe() -> bool:
        return bool(check())

    await wait_for_async(probe, timeout=timeout, what=what)


async def make(kube: KubeClient, name: str, **labels: str) -> JSONDict:
    return await kube.create(
        CONFIGMAPS, {"metadata": {"name": name, "labels": labels}, "data": {"v": "0"}}, NS
    )


def rv(obj: JSONDict) -> str:
    return str(obj["metadata"]["resourceVersion"])


def names(objs: list[JSONDict]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


# -- sync and handlers -------------------------------------------------------------------
async def test_initial_sync_then_add_update_delete(kube: KubeClient) -> None:
    a, b = await make(kube, "a"), await make(kube, "b")
    inf = Informer(kube, CONFIGMAPS, namespace=NS)

    def broken(obj: JSONDict) -> None:
        raise RuntimeError("a buggy handler")

    inf.add_handler(on_add=broken)  # must not stop the informer or the other handlers
    rec = Recorder().attach(inf)
    async with running(inf):
        assert rec.events == [("add", "a", rv(a)), ("add", "b", rv(b))]
        assert inf.keys() == [f"{NS}/a", f"{NS}/b"]
        late = Recorder().attach(inf)  # a handler added after the sync sees what is cached
        assert [e[1] for e in late.events] == ["a", "b"]
        rec.events.clear()

        c = await make(kube, "c")
        a2 = await kube.patch(CONFIGMAPS, "a", {"data": {"v": "1"}}, NS)
        await kube.delete(CONFIGMAPS, "b", NS)
        await until(lambda: len(rec.events) >= 3, "three events")
        assert rec.events == [("add", "c", rv(c)), ("update", "a", rv(a2)), ("delete", "b", ANY)]
        assert rec.last["a"]["data"] == {"v": "0"}  # on_update got the old state
        assert rec.last["b"]["data"] == {"v": "0"}  # on_delete got the last state
        got = inf.get(f"{NS}/a")
        assert got is not None and got["data"] == {"v": "1"}
        assert inf.get(f"{NS}/b") is None
        assert [o["metadata"]["name"] for o in inf.list()] == ["a", "c"]


async def test_label_selector_entering_and_leaving(kube: KubeClient) -> None:
    await make(kube, "in", app="x")
    await make(kube, "out", app="y")
    inf = Informer(kube, CONFIGMAPS, namespace=NS, label_selector="app=x")
    rec = Recorder().attach(inf)
    async with running(inf):
        assert [e[:2] for e in rec.events] == [("add", "in")]
        await kube.patch(CONFIGMAPS, "out", {"metadata": {"labels": {"app": "x"}}}, NS)
        await kube.patch(CONFIGMAPS, "in", {"metadata": {"labels": {"app": "z"}}}, NS)
        await until(lambda: len(rec.events) >= 3, "enter and leave")
        assert [e[:2] for e in rec.events] == [("add", "in"), ("add", "out"), ("delete", "in")]
        assert inf.keys() == [f"{NS}/out"]


async def test_indexes(kube: KubeClient) -> None:
    await make(kube, "a", app="web")
    await make(kube, "b", app="web")
    await make(kube, "c", app="db")
    inf = Informer(kube, CONFIGMAPS, namespace=NS)
    inf.add_index("app", lambda o: [o["metadata"].get("labels", {}).get("app", "")])
    rec = Recorder().attach(inf)
    async with running(inf):
        assert names(inf.by_index("app", "web")) == ["a", "b"]
        assert names(inf.by_index("app", "db")) == ["c"]
        inf.add_index("data", lambda o: sorted(o.get("data", {}).values()))  # after the sync
        assert names(inf.by_index("data", "0")) == ["a", "b", "c"]
        await kube.patch(CONFIGMAPS, "a", {"metadata": {"labels": {"app": "db"}}}, NS)
        await kube.delete(CONFIGMAPS, "c", NS)
        await until(lambda: len(rec.events) >= 5, "update and delete")
        assert names(inf.by_index("app", "web")) == ["b"]
        assert names(inf.by_index("app", "db")) == ["a"]
        assert names(inf.by_index("data", "0")) == ["a", "b"]
        assert inf.by_index("app", "nothing") == []


# -- the guarantees ------------------------------------------------------------------------
async def test_resume_after_watch_timeout_misses_and_repeats_nothing(
    kube: KubeClient, server: APIServer
) -> None:
    spy = Spy(kube)
    created: list[tuple[str, str]] = []

    def gap(n: int) -> Callable[[], Awaitable[None]]:
        async def hook() -> None:  # runs after watch n-1 ended, before watch n is opened
            for i in range(3):
                obj = await make(kube, f"gap{n}-{i}")
                created.append((obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))

        return hook

    spy.before_watch = {2: gap(2), 3: gap(3), 4: gap(4)}
    inf = Informer(spy, CONFIGMAPS, namespace=NS, watch_timeout_seconds=1)
    rec = Recorder().attach(inf)
    async with running(inf):
        list_rv = inf.resource_version
        await until(lambda: len(spy.watch_rvs) >= 2, "a second watch")
        live = await make(kube, "live")  # while a watch is open
        created.append(("live", live["metadata"]["resourceVersion"]))
        await until(lambda: len(spy.watch_rvs) >= 5, "four resumes", timeout=15)
        await until(lambda: len(rec.events) >= len(created), "every object")
    expected = sorted(created, key=lambda c: int(c[1]))
    assert rec.events == [("add", name, rv) for name, rv in expected]  # once each, in order
    assert spy.lists == 1  # resumed, never re-listed
    assert spy.watch_rvs[0] == list_rv
    for n in (2, 3, 4):  # watch n+1 resumed after the events of watch n, gap included
        gap_rvs = [int(rv) for name, rv in created if name.startswith(f"gap{n}-")]
        assert int(spy.watch_rvs[n]) >= max(gap_rvs)
    items, _ = await kube.list(CONFIGMAPS, NS)
    assert inf.keys() == sorted(f"{NS}/{o['metadata']['name']}" for o in items)


async def test_relist_on_gone_delivers_the_gap(kube: KubeClient, server: APIServer) -> None:
    a, _ = await make(kube, "a"), await make(kube, "b")
    spy = Spy(kube)
    gap: dict[str, JSONDict] = {}

    async def changes_then_compaction() -> None:
        await kube.delete(CONFIGMAPS, "a", NS)
        gap["b"] = await kube.patch(CONFIGMAPS, "b", {"data": {"v": "1"}}, NS)
        gap["c"] = await make(kube, "c")
        server.store.history_seconds = 0

        async def compacted() -> bool:
            server.store.compact()
            return server.store.compacted_rv >= server.store.rv

        await wait_for_async(compacted, timeout=5, what="compaction")

    spy.before_watch = {2: changes_then_compaction}
    inf = Informer(spy, CONFIGMAPS, namespace=NS, watch_timeout_seconds=1)
    rec = Recorder().attach(inf)
    async with running(inf):
        rec.events.clear()
        await until(lambda: spy.lists >= 2 and len(rec.events) >= 3, "a relist", timeout=15)
        assert rec.events == [
            ("delete", "a", a["metadata"]["resourceVersion"]),  # its last known state
            ("update", "b", gap["b"]["metadata"]["resourceVersion"]),
            ("add", "c", gap["c"]["metadata"]["resourceVersion"]),
        ]
        assert rec.last["b"]["data"] == {"v": "0"}
        assert inf.keys() == [f"{NS}/b", f"{NS}/c"]
        await until(lambda: len(spy.watch_rvs) >= 3, "a watch after the relist")
        assert int(spy.watch_rvs[2]) >= server.store.compacted_rv
        assert spy.lists == 2


async def test_transport_errors_back_off_capped_then_resume(kube: KubeClient) -> None:
    clock = FakeClock()
    spy = Spy(kube)
    spy.fail_watches = 3
    inf = Informer(
        spy, CONFIGMAPS, namespace=NS, clock=clock, backoff_initial=0.5, backoff_max=0.75
    )
    rec = Recorder().attach(inf)
    async with running(inf):
        list_rv = inf.resource_version
        x = await make(kube, "x")  # made while the watch is down
        deadlines = []
        for step in (0.5, 0.75, 0.75):
            await until(lambda: clock.sleepers == 1, "a backoff sleep")
            deadline = clock.next_deadline
            assert deadline is not None
            deadlines.append(deadline - clock.now())
            await clock.advance(step)
        assert deadlines == [0.5, 0.75, 0.75]  # doubled, then capped
        await until(lambda: rec.events, "x delivered")
        assert rec.events == [("add", "x", x["metadata"]["resourceVersion"])]
        assert spy.lists == 1
        assert spy.watch_rvs == [list_rv] * 4  # every retry resumed from the same place


async def test_resync_redelivers_cached_objects(kube: KubeClient) -> None:
    a = await make(kube, "a")
    clock = FakeClock()
    inf = Informer(kube, CONFIGMAPS, namespace=NS, clock=clock, resync_seconds=30)
    rec = Recorder().attach(inf)
    async with running(inf):
        await clock.advance(29)
        assert rec.events == [("add", "a", a["metadata"]["resourceVersion"])]
        await clock.advance(1)
        await until(lambda: len(rec.events) >= 2, "a resync")
        assert rec.events[1] == ("update", "a", a["metadata"]["resourceVersion"])
