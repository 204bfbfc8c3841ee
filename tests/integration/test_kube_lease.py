"""KubeLeaseStore against the embedded API server, and a LeaderElector on top of it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lbctl.apiserver.server import APIServer
from lbctl.kube.client import LEASES, KubeClient, connect
from lbctl.kube.lease import KubeLeaseStore, format_micro_time, parse_micro_time
from lbctl.runtime.leaderelection import LeaderElector, LeaseConflict, LeaseRecord
from lbctl.testing import embedded_apiserver

MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
T0 = 1_714_557_600.123456  # 2024-05-01T10:00:00.123456Z


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[APIServer]:
    async with embedded_apiserver(tmp_path / "d") as s:
        yield s


@pytest.fixture
async def kube(server: APIServer) -> AsyncIterator[KubeClient]:
    async with await connect(kubeconfig=server.kubeconfig_path) as c:
        yield c


@pytest.fixture
def store(kube: KubeClient) -> KubeLeaseStore:
    return KubeLeaseStore(kube, namespace="kube-system", name="lbctl")


def rec(holder: str | None, *, t: float = T0, transitions: int = 0, rv: str = "") -> LeaseRecord:
    return LeaseRecord(
        holder=holder,
        lease_duration_seconds=15.0,
        acquire_time=t,
        renew_time=t,
        transitions=transitions,
        resource_version=rv,
    )


def test_micro_time_has_exactly_six_digits() -> None:
    assert format_micro_time(T0) == "2024-05-01T10:00:00.123456Z"
    assert format_micro_time(1_714_557_600.0) == "2024-05-01T10:00:00.000000Z"
    assert parse_micro_time("2024-05-01T10:00:00.123456Z") == pytest.approx(T0, abs=1e-6)
    assert parse_micro_time("2024-05-01T10:00:00Z") == 1_714_557_600.0
    assert parse_micro_time("2024-05-01T12:00:00+02:00") == 1_714_557_600.0


async def test_create_get_update(store: KubeLeaseStore, kube: KubeClient) -> None:
    assert await store.get() is None
    made = await store.create(rec("a"))
    assert made.holder == "a" and made.resource_version
    assert made.acquire_time == pytest.approx(T0, abs=1e-6)
    got = await store.get()
    assert got == made
    raw = await kube.get(LEASES, "lbctl", "kube-system")
    spec = raw["spec"]
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15 and isinstance(spec["leaseDurationSeconds"], int)
    assert MICRO_TIME.match(spec["acquireTime"]) and MICRO_TIME.match(spec["renewTime"])
    assert spec["leaseTransitions"] == 0

    renewed = await store.update(rec("b", t=T0 + 10, transitions=1, rv=made.resource_version))
    assert (renewed.holder, renewed.transitions) == ("b", 1)
    assert int(renewed.resource_version) > int(made.resource_version)
    assert renewed.renew_time == pytest.approx(T0 + 10, abs=1e-6)
    assert await store.get() == renewed


async def test_create_twice_conflicts(store: KubeLeaseStore) -> None:
    await store.create(rec("a"))
    with pytest.raises(LeaseConflict):
        await store.create(rec("b"))


async def test_update_with_stale_rv_conflicts(store: KubeLeaseStore) -> None:
    made = await store.create(rec("a"))
    await store.update(rec("a", t=T0 + 1, rv=made.resource_version))
    with pytest.raises(LeaseConflict):
        await store.update(rec("b", t=T0 + 2, rv=made.resource_version))
    current = await store.get()
    assert current is not None and current.holder == "a"
    with pytest.raises(LeaseConflict):
        await store.update(rec("b"))  # no resource_version: never an unconditional write


async def test_release_empties_holder_and_keeps_labels(
    store: KubeLeaseStore, kube: KubeClient
) -> None:
    made = await store.create(rec("a"))
    await kube.patch(LEASES, "lbctl", {"metadata": {"labels": {"team": "net"}}}, "kube-system")
    current = await store.get()
    assert current is not None and current.resource_version != made.resource_version
    released = await store.update(
        LeaseRecord(None, 1.0, T0, T0 + 5, 0, resource_version=current.resource_version)
    )
    assert released.holder is None and released.lease_duration_seconds == 1.0
    raw = await kube.get(LEASES, "lbctl", "kube-system")
    assert "holderIdentity" not in raw["spec"]
    assert raw["metadata"]["labels"] == {"team": "net"}


async def test_leader_elector_over_a_kube_lease(store: KubeLeaseStore) -> None:
    elector = LeaderElector(store, "me", lease_duration=3.0, renew_deadline=2.0, retry_period=0.2)
    stop = asyncio.Event()
    leading = asyncio.Event()
    stopped = asyncio.Event()

    async def started() -> None:
        leading.set()

    async def ended() -> None:
        stopped.set()

    async with asyncio.timeout(10):
        task = asyncio.create_task(elector.run(stop, started, ended))
        await leading.wait()
        held = await store.get()
        assert held is not None and held.holder == "me"
        stop.set()
        await task
    assert stopped.is_set()
    after = await store.get()
    assert after is not None and after.holder is None  # released on stop


async def test_labels_and_annotations_are_set_and_others_kept(kube: KubeClient) -> None:
    store = KubeLeaseStore(kube, namespace="kube-system", name="tagged", labels={"app": "x"})
    store.annotations = {"addr": "192.0.2.11:7946"}
    made = await store.create(rec("a"))
    lease = await kube.get(LEASES, "tagged", "kube-system")
    assert lease["metadata"]["labels"] == {"app": "x"}
    assert lease["metadata"]["annotations"] == {"addr": "192.0.2.11:7946"}
    # Someone else's annotation stays; ours takes its new value.
    lease["metadata"]["annotations"]["other"] = "kept"
    await kube.replace(LEASES, lease)
    current = await store.get()
    assert current is not None and current.resource_version != made.resource_version
    store.annotations = {"addr": "192.0.2.12:7946"}
    await store.update(current)
    lease = await kube.get(LEASES, "tagged", "kube-system")
    assert lease["metadata"]["annotations"] == {"addr": "192.0.2.12:7946", "other": "kept"}
    assert lease["metadata"]["labels"] == {"app": "x"}
