"""Type-dependent fields cleared on update, as kube-apiserver's strategy does."""

from __future__ import annotations

from typing import Any

import pytest

from lbctl.domain.service import Service
from lbctl.domain.type_change import drop_type_dependent_fields

LB: dict[str, Any] = {
    "metadata": {"name": "a", "namespace": "default"},
    "spec": {
        "type": "LoadBalancer",
        "clusterIP": "10.96.0.5",
        "clusterIPs": ["10.96.0.5"],
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}],
        "externalTrafficPolicy": "Local",
        "healthCheckNodePort": 30081,
        "allocateLoadBalancerNodePorts": True,
        "loadBalancerClass": "lbctl.io/baremetal",
    },
    "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}]}},
}


def changed(**spec: Any) -> tuple[Service, Service]:
    old = Service.from_dict(LB)
    body = {**LB, "spec": {**LB["spec"], **spec}}
    body["spec"] = {k: v for k, v in body["spec"].items() if v is not None}
    return drop_type_dependent_fields(Service.from_dict(body), old), old


def test_lb_to_cluster_ip_clears_lb_fields_and_status() -> None:
    new, _ = changed(type="ClusterIP")
    s = new.spec
    assert [p.node_port for p in s.ports] == [0]
    assert (s.health_check_node_port, s.allocate_load_balancer_node_ports) == (0, None)
    assert (s.load_balancer_class, s.external_traffic_policy) == (None, "")
    assert s.cluster_ip == "10.96.0.5", "ClusterIP still needs its IP"
    assert new.status.ingress == ()


def test_to_external_name_clears_ip_fields() -> None:
    new, _ = changed(type="ExternalName", externalName="example.org")
    assert (new.spec.cluster_ip, new.spec.cluster_ips) == ("", ())
    assert (new.spec.ip_families, new.spec.ip_family_policy) == ((), None)


def test_a_field_the_client_changed_is_left_for_validation() -> None:
    new, _ = changed(type="ClusterIP", loadBalancerClass="lbctl.io/other")
    assert new.spec.load_balancer_class == "lbctl.io/other"


@pytest.mark.parametrize("etp", ["Cluster", None])
def test_local_to_cluster_drops_health_check(etp: str | None) -> None:
    new, _ = changed(externalTrafficPolicy=etp or "Cluster")
    assert new.spec.health_check_node_port == 0
    assert new.spec.ports[0].node_port == 30080
    assert new.status.ingress, "still a LoadBalancer: status kept"
