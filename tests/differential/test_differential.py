"""The differential suite: every case on the embedded server and on the real kube-apiserver,
through the same kubernetes_asyncio client; the normalised results must be equal.

A case whose difference is known and accepted is listed in KNOWN with the reason (and in
docs/compatibility.md); it is still run, and fails if the difference disappears, so the
list cannot go stale.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config

from lbctl.realkube import RealKube
from lbctl.testing import embedded_apiserver
from tests.differential.cases import CASES
from tests.differential.harness import Case, run_case

KNOWN: dict[str, str] = {}
READ_ONLY = {"servicecidrs", "ipaddresses"}


async def _client(kubeconfig: Path) -> client.ApiClient:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    return client.ApiClient(configuration=cfg)


@pytest.fixture
async def both(real_kube: RealKube, tmp_path: Path) -> AsyncIterator[tuple[Any, Any, str]]:
    ns = f"d-{secrets.token_hex(4)}"
    async with (
        embedded_apiserver(
            tmp_path / "e", service_cidrs=("10.96.0.0/16",), port_range="30000-32767"
        ) as emb,
        await _client(emb.kubeconfig_path) as a,
        await _client(real_kube.kubeconfig) as b,
    ):
        for api in (a, b):
            await client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
        yield a, b, ns


def _show(results: list[tuple[int, Any]]) -> str:
    return json.dumps(results, indent=1, sort_keys=True)[:4000]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_same_as_kube_apiserver(both: tuple[Any, Any, str], case: Case) -> None:
    embedded_api, real_api, ns = both
    ours = await run_case(embedded_api, case, ns)
    theirs = await run_case(real_api, case, ns)
    if case.id in KNOWN:
        assert ours != theirs, f"{case.id} now matches: remove it from KNOWN"
        return
    assert ours == theirs, f"\n--- embedded\n{_show(ours)}\n--- kube-apiserver\n{_show(theirs)}"


async def test_discovery_of_served_kinds(both: tuple[Any, Any, str]) -> None:
    """Every resource we serve is described as kube-apiserver describes it."""
    embedded_api, real_api, _ = both
    for path in (
        "/api/v1",
        "/apis/discovery.k8s.io/v1",
        "/apis/coordination.k8s.io/v1",
        "/apis/events.k8s.io/v1",
        "/apis/networking.k8s.io/v1",
    ):
        docs = []
        for api in (embedded_api, real_api):
            resp = await api.call_api(
                path,
                "GET",
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
            )
            docs.append(json.loads(await resp.read()))
        ours = {r["name"]: r for r in docs[0]["resources"]}
        theirs = {
            r["name"]: {k: v for k, v in r.items() if k != "storageVersionHash"}
            for r in docs[1]["resources"]
            if r["name"] in ours
        }
        for name in READ_ONLY & set(ours):
            # Served read-only on purpose (the allocator owns them): fewer verbs, nothing else.
            assert set(ours[name].pop("verbs")) < set(theirs[name].pop("verbs")), name
        assert ours == theirs, path
