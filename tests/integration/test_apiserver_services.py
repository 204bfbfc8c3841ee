"""Services through the real kubernetes_asyncio client against the embedded API server:
allocation rules and their exact errors, status isolation, conflicts, concurrency."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from lbctl.apiserver.server import APIServer


def svc(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def body(e: ApiException) -> dict[str, Any]:
    return json.loads(e.body)


async def test_create_defaults_and_allocates(core: client.CoreV1Api) -> None:
    got = await core.create_namespaced_service(
        "default", svc("web", selector={"app": "web"}, type="NodePort")
    )
    s = got.spec
    assert ipaddress.ip_address(s.cluster_ip) in ipaddress.ip_network("10.96.0.0/24")
    assert s.cluster_ips == [s.cluster_ip]
    assert (s.ip_families, s.ip_family_policy) == (["IPv4"], "SingleStack")
    assert (s.session_affinity, s.external_traffic_policy, s.internal_traffic_policy) == (
        "None",
        "Cluster",
        "Cluster",
    )
    port = s.ports[0]
    assert (port.protocol, port.target_port) == ("TCP", 80)
    assert 30000 <= port.node_port <= 30099
    assert got.metadata.uid and got.metadata.resource_version and got.metadata.creation_timestamp
    again = await core.read_namespaced_service("web", "default")
    assert again.spec.cluster_ip == s.cluster_ip


async def test_kubernetes_service_holds_the_first_ip(core: client.CoreV1Api) -> None:
    kube = await core.read_namespaced_service("kubernetes", "default")
    assert kube.spec.cluster_ip == "10.96.0.1"
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_service("default", svc("x", clusterIP="10.96.0.1"))
    assert info.value.status == 422
    b = body(info.value)
    assert b["reason"] == "Invalid"
    assert b["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "field": "spec.clusterIPs",
            "message": 'Invalid value: ["10.96.0.1"]: failed to allocate IP 10.96.0.1: '
            "provided IP is already allocated",
        }
    ]


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (
            {"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]},
            "spec.ports[0].nodePort",
            "Invalid value: 80: provided port is not in the valid range. The range of valid ports "
            "is 30000-30099",
        ),
        (
            {"clusterIP": "10.1.2.3"},
            "spec.clusterIPs",
            'Invalid value: ["10.1.2.3"]: failed to allocate IP 10.1.2.3: the provided network '
            "does not match the current range",
        ),
        (
            {"ports": [{"port": 80, "nodePort": 30001}]},
            "spec.ports[0].nodePort",
            "Forbidden: may not be used when `type` is 'ClusterIP'",
        ),
        (
            {"ports": [{"port": 80, "protocol": "HTTP"}]},
            "spec.ports[0].protocol",
            'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
        ),
        (
            {"ipFamilyPolicy": "RequireDualStack"},
            "spec.ipFamilyPolicy",
            'Invalid value: "RequireDualStack": this cluster is not configured for dual-stack '
            "services",
        ),
    ],
)
async def test_invalid_services_are_422_with_causes(
    core: client.CoreV1Api, apiserver: APIServer, spec: dict[str, Any], field: str, message: str
) -> None:
    used = apiserver.services.node_ports.used, apiserver.services.cluster_ips.ranges[0].used
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_service("default", svc("bad", **spec))
    assert info.value.status == 422
    causes = body(info.value)["details"]["causes"]
    assert {
        "reason": causes[0]["reason"],
        "field": causes[0]["field"],
        "message": causes[0]["message"],
    }["field"] == field
    assert causes[0]["message"] == message
    # Nothing was kept: no allocation without its object.
    assert (
        apiserver.services.node_ports.used,
        apiserver.services.cluster_ips.ranges[0].used,
    ) == used


async def test_nodeport_taken_and_tcp_udp_share(core: client.CoreV1Api) -> None:
    await core.create_namespaced_service(
        "default",
        svc(
            "dns",
            type="NodePort",
            ports=[
                {"name": "t", "port": 53, "protocol": "TCP"},
                {"name": "u", "port": 53, "protocol": "UDP"},
            ],
        ),
    )
    got = await core.read_namespaced_service("dns", "default")
    np = got.spec.ports[0].node_port
    assert got.spec.ports[1].node_port == np
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_service(
            "default", svc("other", type="NodePort", ports=[{"port": 80, "nodePort": np}])
        )
    assert body(info.value)["details"]["causes"][0]["message"] == (
        f"Invalid value: {np}: provided port is already allocated"
    )


async def test_exhaustion_is_500_with_upstream_text(core: client.CoreV1Api) -> None:
    for i in range(100):
        await core.create_namespaced_service("default", svc(f"s{i}", type="NodePort"))
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_service("default", svc("full", type="NodePort"))
    assert info.value.status == 500
    assert body(info.value)["message"] == (
        "Internal error occurred: failed to allocate a nodePort: range is full"
    )


async def test_delete_and_type_change_release(core: client.CoreV1Api, apiserver: APIServer) -> None:
    s = await core.create_namespaced_service("default", svc("t", type="NodePort"))
    np = s.spec.ports[0].node_port
    assert apiserver.services.node_ports.has(np)
    s.spec.type = "ClusterIP"
    changed = await core.replace_namespaced_service("t", "default", s)
    assert changed.spec.ports[0].node_port is None
    assert not apiserver.services.node_ports.has(np)
    ip = changed.spec.cluster_ip
    deleted = await core.delete_namespaced_service("t", "default")
    assert deleted.metadata.name == "t"  # Services return the deleted Service
    assert not apiserver.services.cluster_ips.has(ip)


async def test_status_is_isolated(core: client.CoreV1Api) -> None:
    s = await core.create_namespaced_service(
        "default",
        {
            **svc("lb", type="LoadBalancer"),
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
        },
    )
    assert s.status.load_balancer.ingress is None, "create must clear status"
    st = {
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7", "ipMode": "VIP"}]}},
        "spec": {"type": "ClusterIP"},
    }
    got = await core.patch_namespaced_service_status("lb", "default", st)
    assert got.status.load_balancer.ingress[0].ip == "192.0.2.7"
    assert got.spec.type == "LoadBalancer", "/status must not change spec"
    main = await core.patch_namespaced_service(
        "lb",
        "default",
        {
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}},
            "metadata": {"labels": {"x": "y"}},
        },
    )
    assert main.status.load_balancer.ingress[0].ip == "192.0.2.7", "main resource kept status"
    assert main.metadata.labels == {"x": "y"}


async def test_stale_resource_version_conflicts_and_noop_keeps_rv(core: client.CoreV1Api) -> None:
    s = await core.create_namespaced_service("default", svc("c"))
    rv = s.metadata.resource_version
    same = await core.replace_namespaced_service("c", "default", s)
    assert same.metadata.resource_version == rv, "a no-op update must not bump RV"
    s.metadata.labels = {"a": "1"}
    newer = await core.replace_namespaced_service("c", "default", s)
    assert newer.metadata.resource_version != rv
    s.metadata.labels = {"a": "2"}
    s.metadata.resource_version = rv
    with pytest.raises(ApiException) as info:
        await core.replace_namespaced_service("c", "default", s)
    assert info.value.status == 409
    assert body(info.value)["message"] == (
        'Operation cannot be fulfilled on services "c": the object has been modified; please '
        "apply your changes to the latest version and try again"
    )


async def test_sixteen_concurrent_writers_never_duplicate(
    core: client.CoreV1Api, api: client.ApiClient, apiserver: APIServer
) -> None:
    async def writer(w: int) -> list[Any]:
        out = []
        for i in range(6):
            out.append(
                await core.create_namespaced_service("default", svc(f"w{w}-{i}", type="NodePort"))
            )
        return out

    results = [s for batch in await asyncio.gather(*(writer(w) for w in range(16))) for s in batch]
    assert len(results) == 96
    ips = [s.spec.cluster_ip for s in results] + ["10.96.0.1"]
    ports = [s.spec.ports[0].node_port for s in results]
    assert len(set(ips)) == len(ips)
    assert len(set(ports)) == len(ports) == 96
    listed = await core.list_namespaced_service("default")
    assert len(listed.items) == 97
