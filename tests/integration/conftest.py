"""Fixtures: the embedded API server in the test's loop, and a real kubernetes_asyncio client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client, config

from lbctl.apiserver.server import APIServer
from lbctl.testing import embedded_apiserver


@pytest.fixture
async def apiserver(tmp_path: Path) -> AsyncIterator[APIServer]:
    async with embedded_apiserver(
        tmp_path / "data",
        service_cidrs=("10.96.0.0/24",),
        port_range="30000-30099",
        bookmark_seconds=0.5,
    ) as server:
        yield server


@pytest.fixture
async def api(apiserver: APIServer) -> AsyncIterator[client.ApiClient]:
    cfg = client.Configuration()
    await config.load_kube_config(
        config_file=str(apiserver.kubeconfig_path), client_configuration=cfg
    )
    async with client.ApiClient(configuration=cfg) as c:
        yield c


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)
