"""Session-wide fixtures: the real kube-apiserver, and the `cluster` parameter that runs a
test against the embedded server and against the real one."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes_asyncio import client, config

from lbctl.realkube import RealKube, binaries_dir, missing_binaries_message
from lbctl.testing import embedded_apiserver

SERVICE_CIDR = "10.96.0.0/16"
NODE_PORT_RANGE = "30000-32767"


@pytest.fixture(scope="session")
def real_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealKube]:
    """etcd + kube-apiserver for the whole session; in CI a missing binary fails."""
    bins = binaries_dir()
    if bins is None:
        if os.environ.get("CI") == "true":
            pytest.fail(missing_binaries_message())
        pytest.skip(missing_binaries_message())
    kube = RealKube(
        tmp_path_factory.mktemp("realkube"),
        bins,
        service_cidr=SERVICE_CIDR,
        node_port_range=NODE_PORT_RANGE,
    )
    kube.start()
    try:
        yield kube
    finally:
        kube.cleanup()


@dataclass(frozen=True, slots=True)
class Cluster:
    """One API server under test: which, where, and a fresh namespace for this test."""

    kind: str
    url: str
    kubeconfig: Path
    namespace: str


async def _client(kubeconfig: Path) -> client.ApiClient:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    return client.ApiClient(configuration=cfg)


@pytest.fixture(params=["embedded", "real"])
async def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cluster]:
    """The same test against the embedded server and the real kube-apiserver."""
    ns = f"t-{secrets.token_hex(4)}"
    if request.param == "embedded":
        async with embedded_apiserver(
            tmp_path / "embedded", service_cidrs=(SERVICE_CIDR,), port_range=NODE_PORT_RANGE
        ) as server:
            c = Cluster("embedded", server.url, server.kubeconfig_path, ns)
            await _make_namespace(c)
            yield c
    else:
        kube: RealKube = request.getfixturevalue("real_kube")
        c = Cluster("real", kube.url, kube.kubeconfig, ns)
        await _make_namespace(c)
        yield c


async def _make_namespace(c: Cluster) -> None:
    async with await _client(c.kubeconfig) as api:
        await client.CoreV1Api(api).create_namespace({"metadata": {"name": c.namespace}})


@pytest.fixture
async def kube_api(cluster: Cluster) -> AsyncIterator[client.ApiClient]:
    async with await _client(cluster.kubeconfig) as api:
        yield api
