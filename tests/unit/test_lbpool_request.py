"""Service -> LBRequest: annotations, requested IPs, sharing and backend keys, families."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from lbctl.allocators.lbpool import LBAllocationError, LBAllocationReason, LBPoolAllocator, Pool
from lbctl.allocators.lbrequest import lb_request_from_service
from lbctl.domain.service import IPFamily, Service, ServicePort

V4, V6 = IPFamily.IPV4, IPFamily.IPV6


def service(
    *,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> Service:
    body: dict[str, Any] = {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}
    body.update(spec)
    return Service.from_dict(
        {
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "annotations": annotations or {},
                "labels": labels or {},
            },
            "spec": body,
        }
    )


def invalid(svc: Service) -> str:
    with pytest.raises(LBAllocationError) as err:
        lb_request_from_service(svc, namespace_labels={})
    assert err.value.reason == LBAllocationReason.INVALID_REQUEST
    assert err.value.key == "shop/web"
    return err.value.message


def test_plain_service() -> None:
    svc = service(labels={"app": "web"}, ipFamilies=["IPv4"], ipFamilyPolicy="SingleStack")
    got = lb_request_from_service(svc, namespace_labels={"env": "prod"})
    assert got.key == "shop/web"
    assert got.namespace == "shop"
    assert got.service_labels == {"app": "web"}
    assert got.namespace_labels == {"env": "prod"}
    assert got.requested_ips == ()
    assert got.requested_pool == ""
    assert got.sharing_key == ""
    assert got.backend_key == ""
    assert got.ports == (("TCP", 80),)
    assert got.families == (V4,)
    assert not got.prefer_dual_stack


def test_spec_load_balancer_ip() -> None:
    got = lb_request_from_service(service(loadBalancerIP="192.0.2.7"), namespace_labels={})
    assert got.requested_ips == ("192.0.2.7",)
    assert got.families == (V4,)


@pytest.mark.parametrize(
    "name",
    [
        "lbctl.io/loadBalancerIPs",
        "metallb.io/loadBalancerIPs",
        "metallb.universe.tf/loadBalancerIPs",
    ],
)
def test_load_balancer_ips_annotations(name: str) -> None:
    svc = service(
        annotations={name: "192.0.2.7, 2001:db8::7"},
        ipFamilies=["IPv4", "IPv6"],
        ipFamilyPolicy="RequireDualStack",
    )
    got = lb_request_from_service(svc, namespace_labels={})
    assert got.requested_ips == ("192.0.2.7", "2001:db8::7")
    assert got.families == (V4, V6)


def test_lbctl_annotation_wins_over_metallb() -> None:
    svc = service(
        annotations={
            "metallb.io/loadBalancerIPs": "192.0.2.1",
            "lbctl.io/loadBalancerIPs": "192.0.2.2",
            "metallb.io/address-pool": "old",
            "lbctl.io/address-pool": "new",
            "metallb.io/allow-shared-ip": "m",
            "lbctl.io/allow-shared-ip": "l",
        }
    )
    got = lb_request_from_service(svc, namespace_labels={})
    assert (got.requested_ips, got.requested_pool, got.sharing_key) == (("192.0.2.2",), "new", "l")


@pytest.mark.parametrize("prefix", ["metallb.io", "metallb.universe.tf"])
def test_metallb_migration_annotations(prefix: str) -> None:
    svc = service(
        annotations={f"{prefix}/address-pool": "blue", f"{prefix}/allow-shared-ip": "dns"},
    )
    got = lb_request_from_service(svc, namespace_labels={})
    assert (got.requested_pool, got.sharing_key) == ("blue", "dns")


@pytest.mark.parametrize(
    "name",
    [
        "lbctl.io/loadBalancerIPs",
        "metallb.io/loadBalancerIPs",
        "metallb.universe.tf/loadBalancerIPs",
    ],
)
def test_spec_ip_and_annotation_together_is_an_error(name: str) -> None:
    message = invalid(service(loadBalancerIP="192.0.2.7", annotations={name: "192.0.2.7"}))
    assert name in message
    assert "spec.loadBalancerIP" in message


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("192.0.2.300", "not an IP address"),
        ("192.0.2.1,", "not an IP address"),
        ("192.0.2.1,192.0.2.2", "at most one IPv4 and one IPv6"),
        ("192.0.2.1,2001:db8::1,192.0.2.2", "at most one IPv4 and one IPv6"),
    ],
)
def test_bad_load_balancer_ips_annotation(value: str, fragment: str) -> None:
    assert fragment in invalid(service(annotations={"lbctl.io/loadBalancerIPs": value}))


def test_bad_spec_load_balancer_ip() -> None:
    assert "spec.loadBalancerIP" in invalid(service(loadBalancerIP="nope"))


def test_not_a_load_balancer() -> None:
    assert "not LoadBalancer" in invalid(service(type="NodePort"))


def test_backend_key_is_the_selector_only_under_local_policy() -> None:
    local = service(externalTrafficPolicy="Local", selector={"b": "2", "a": "1"})
    cluster = service(externalTrafficPolicy="Cluster", selector={"b": "2", "a": "1"})
    assert lb_request_from_service(local, namespace_labels={}).backend_key == "a=1,b=2"
    assert lb_request_from_service(cluster, namespace_labels={}).backend_key == ""


def test_ports_default_to_tcp() -> None:
    svc = service(
        ports=[{"port": 53, "protocol": "UDP"}, {"port": 53}, {"port": 443, "protocol": "SCTP"}]
    )
    got = lb_request_from_service(svc, namespace_labels={})
    assert got.ports == (("UDP", 53), ("TCP", 53), ("SCTP", 443))


@pytest.mark.parametrize(
    ("spec", "families", "prefer"),
    [
        ({}, (V4,), False),
        ({"ipFamilies": ["IPv6"]}, (V6,), False),
        ({"ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack"}, (V6,), False),
        ({"clusterIP": "fd00::1"}, (V6,), False),
        ({"loadBalancerIP": "2001:db8::1"}, (V6,), False),
        ({"ipFamilyPolicy": "RequireDualStack"}, (V4, V6), False),
        ({"ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "RequireDualStack"}, (V6, V4), False),
        ({"ipFamilies": ["IPv6"], "ipFamilyPolicy": "PreferDualStack"}, (V6, V4), True),
        ({"ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack"}, (V4, V6), True),
    ],
)
def test_families(spec: dict[str, Any], families: tuple[IPFamily, ...], prefer: bool) -> None:
    got = lb_request_from_service(service(**spec), namespace_labels={})
    assert (got.families, got.prefer_dual_stack) == (families, prefer)


@pytest.mark.parametrize(
    "spec",
    [
        {"ipFamilies": ["IPv5"]},
        {"ipFamilies": ["IPv4", "IPv4"]},
        {"ipFamilyPolicy": "TripleStack"},
    ],
)
def test_bad_families(spec: dict[str, Any]) -> None:
    assert "spec.ipFamil" in invalid(service(**spec))


def test_adapter_feeds_the_allocator() -> None:
    alloc = LBPoolAllocator([Pool("blue", ("192.0.2.0/30", "2001:db8::/126"), auto_assign=False)])
    tcp = service(
        annotations={"metallb.io/address-pool": "blue", "metallb.io/allow-shared-ip": "dns"},
        ports=[{"port": 53, "protocol": "TCP"}],
        ipFamilies=["IPv4", "IPv6"],
        ipFamilyPolicy="RequireDualStack",
    )
    udp = replace(tcp, metadata=replace(tcp.metadata, name="dns-udp"))
    udp = udp.replace_spec(ports=(ServicePort(port=53, protocol="UDP"),))
    first = alloc.assign(lb_request_from_service(tcp, namespace_labels={}))
    second = alloc.assign(lb_request_from_service(udp, namespace_labels={}))
    assert first.ips == second.ips == ("192.0.2.0", "2001:db8::")
    assert alloc.holders("2001:db8::") == ("shop/dns-udp", "shop/web")
