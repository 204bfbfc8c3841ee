"""Flows proven on both the embedded server and the real kube-apiserver (the `cluster`
fixture parameter): later issues' controller tests use the same fixture."""

from __future__ import annotations

import ipaddress

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.conftest import Cluster


async def test_service_lifecycle(cluster: Cluster, kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
    ns = cluster.namespace
    s = await core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "web", "finalizers": ["lbctl.io/test"]},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        },
    )
    assert ipaddress.ip_address(s.spec.cluster_ip) in ipaddress.ip_network("10.96.0.0/16")
    assert 30000 <= s.spec.ports[0].node_port <= 32767
    st = await core.patch_namespaced_service_status(
        "web",
        ns,
        {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ipMode": "VIP"}]}}},
    )
    assert st.status.load_balancer.ingress[0].ip == "192.0.2.10"
    await core.delete_namespaced_service("web", ns)
    held = await core.read_namespaced_service("web", ns)
    assert held.metadata.deletion_timestamp is not None
    await core.patch_namespaced_service(
        "web", ns, {"metadata": {"finalizers": None}}, _content_type="application/merge-patch+json"
    )
    with pytest.raises(ApiException) as info:
        await core.read_namespaced_service("web", ns)
    assert info.value.status == 404
