"""IPPool and L2Advertisement: one definition, served by the embedded API server and
shipped as CRDs; on both servers a valid object gets the same defaults and a malformed
one the same 422 field paths."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lbctl import crds
from lbctl.apimachinery.lbctl_kinds import IPPOOL, LBCTL_TYPES
from lbctl.apimachinery.schema import check_schema
from lbctl.kube.client import KubeClient, Resource, connect
from lbctl.kube.errors import Invalid
from lbctl.realkube import RealKube
from lbctl.testing import embedded_apiserver

ROOT = Path(__file__).resolve().parents[2]
IPPOOLS = Resource("lbctl.io", "v1alpha1", "ippools", False, "IPPool")
L2ADS = Resource("lbctl.io", "v1alpha1", "l2advertisements", False, "L2Advertisement")


def test_the_schemas_are_structural() -> None:
    for rt in LBCTL_TYPES:
        assert rt.schema is not None
        assert check_schema(rt.schema) == [], rt.kind


def test_the_shipped_crds_are_the_generated_ones() -> None:
    shipped = {p.name: p.read_text() for p in (ROOT / "deploy" / "crds").iterdir()}
    assert shipped == crds.render(), "run: python -m lbctl.crds deploy/crds"


@pytest.fixture(params=["embedded", "real"])
async def kube(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KubeClient]:
    if request.param == "embedded":
        async with (
            embedded_apiserver(tmp_path / "d", extra_types=LBCTL_TYPES) as server,
            await connect(kubeconfig=server.kubeconfig_path) as client,
        ):
            yield client
        return
    real: RealKube = request.getfixturevalue("real_kube")
    assert real.kubectl is not None
    for args in (
        ["apply", "-k", str(ROOT / "deploy" / "crds")],
        ["wait", "--for=condition=Established", "crd/ippools.lbctl.io",
         "crd/l2advertisements.lbctl.io", "--timeout=60s"],
    ):  # fmt: skip
        subprocess.run(
            [str(real.kubectl), "--kubeconfig", str(real.kubeconfig), *args],
            check=True,
            capture_output=True,
            timeout=120,
        )
    async with await connect(kubeconfig=real.kubeconfig) as client:
        yield client


def _name() -> str:
    return f"pool-{secrets.token_hex(3)}"


async def test_a_pool_gets_its_defaults_and_a_status(kube: KubeClient) -> None:
    name = _name()
    created = await kube.create(
        IPPOOLS, {"metadata": {"name": name}, "spec": {"addresses": ["192.0.2.0/28"]}}
    )
    assert created["spec"] == {
        "addresses": ["192.0.2.0/28"],
        "autoAssign": True,
        "avoidBuggyIPs": False,
    }
    assert created["metadata"]["generation"] == 1
    status = {"status": {"assignedIPv4": 1, "availableIPv4": 15}}
    patched = await kube.patch(IPPOOLS, name, status, subresource="status")
    assert patched["status"] == {"assignedIPv4": 1, "availableIPv4": 15}
    assert patched["metadata"]["generation"] == 1, "a status write is not a spec change"
    ad = await kube.create(
        L2ADS,
        {"metadata": {"name": name}, "spec": {"ipPools": [name], "interfaces": ["eth0"]}},
    )
    assert ad["spec"] == {"ipPools": [name], "interfaces": ["eth0"]}


@pytest.mark.parametrize(
    ("spec", "fields"),
    [
        ({}, {"spec.addresses"}),
        ({"addresses": []}, {"spec.addresses"}),
        ({"addresses": ["192.0.2.0/28"], "autoAssign": "yes"}, {"spec.autoAssign"}),
        (
            {"addresses": ["192.0.2.0/28"], "serviceAllocation": {"priority": -1}},
            {"spec.serviceAllocation.priority"},
        ),
        (
            {
                "addresses": ["192.0.2.0/28"],
                "serviceAllocation": {
                    "serviceSelectors": [{"matchExpressions": [{"key": "a", "operator": "Is"}]}]
                },
            },
            {"spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].operator"},
        ),
    ],
    ids=["no-addresses", "empty-addresses", "bool", "priority", "operator"],
)
async def test_a_malformed_pool_is_refused_with_field_paths(
    kube: KubeClient, spec: dict[str, Any], fields: set[str]
) -> None:
    with pytest.raises(Invalid) as raised:
        await kube.create(IPPOOLS, {"metadata": {"name": _name()}, "spec": spec})
    assert {c.field for c in raised.value.causes} == fields
    assert raised.value.status == 422


def test_ippool_is_cluster_scoped_with_a_status_subresource() -> None:
    assert not IPPOOL.namespaced and IPPOOL.status_subresource
