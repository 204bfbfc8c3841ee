"""providers.aws.plan: listeners, target groups, attributes, tags, source ranges."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from typing import Any

import pytest

from lbctl.domain.service import Service
from providers.aws import naming
from providers.aws.annotations import NLBConfig, key, parse
from providers.aws.plan import (
    DEFAULT_SSL_POLICY,
    HealthCheck,
    Plan,
    PlanError,
    build_plan,
)
from providers.aws.subnets import SubnetInfo

UID = "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
SUBNETS = (
    SubnetInfo("subnet-b", "vpc-1", "us-east-1b", "10.0.2.0/24", {}, True),
    SubnetInfo("subnet-a", "vpc-1", "us-east-1a", "10.0.1.0/24", {}, True),
)
TCP_DEFAULT = HealthCheck("TCP", "traffic-port", None, 30, 10, 3, 3)
HTTP80 = {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}
HTTPS = {"name": "https", "protocol": "TCP", "port": 443, "targetPort": 8443, "nodePort": 30443}
DNS_TCP = {"name": "dns-tcp", "protocol": "TCP", "port": 53, "targetPort": 5353, "nodePort": 30053}
DNS_UDP = {"name": "dns-udp", "protocol": "UDP", "port": 53, "targetPort": 5353, "nodePort": 30053}
SYSLOG = {"name": "syslog", "protocol": "UDP", "port": 514, "targetPort": 5514, "nodePort": 30514}


def service(
    ports: list[dict[str, Any]], annotations: dict[str, str] | None = None, **spec: Any
) -> Service:
    body: dict[str, Any] = {
        "type": "LoadBalancer",
        "loadBalancerClass": "lbctl.io/aws",
        "externalTrafficPolicy": "Cluster",
        "selector": {"app": "web"},
        "ports": ports,
    }
    body.update(spec)
    return Service.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "uid": UID,
                "annotations": annotations or {},
            },
            "spec": body,
        }
    )


def plan_of(svc: Service, *, vpc_cidrs: tuple[str, ...] = ("10.0.0.0/16",)) -> Plan:
    return build_plan(
        cluster_id="prod",
        service=svc,
        ports=svc.spec.ports,
        config=parse(svc),
        subnets=SUBNETS,
        vpc_cidrs=vpc_cidrs,
    )


def plan_error(svc: Service, reason: str) -> str:
    with pytest.raises(PlanError) as err:
        plan_of(svc)
    assert err.value.reason == reason
    assert str(err.value) == err.value.message
    return err.value.message


def test_one_tcp_port() -> None:
    plan = plan_of(service([HTTP80]))
    assert plan.lb.name == naming.load_balancer_name("prod", service([HTTP80]), "internet-facing")
    assert plan.lb.scheme == "internet-facing"
    assert plan.lb.subnet_ids == ("subnet-a", "subnet-b")  # AZ order
    assert plan.lb.eip_allocations == {}
    assert plan.lb.attributes == {}
    assert plan.lb.tags["lbctl.io/resource"] == "loadbalancer"
    assert plan.lb.tags["lbctl.io/service-uid"] == UID
    (listener,) = plan.listeners
    assert (listener.port, listener.protocol, listener.target_group_key) == (80, "TCP", "80/TCP")
    assert (listener.certificates, listener.ssl_policy) == ((), None)
    (group,) = plan.target_groups
    assert group.key == "80/TCP"
    assert re.fullmatch(r"k8s-shop-web-[0-9a-f]{10}", group.name)
    assert (group.protocol, group.port, group.target_type) == ("TCP", 30080, "instance")
    assert group.health == TCP_DEFAULT
    assert group.attributes == {}
    assert group.service_ports == ("http",)
    assert group.tags["lbctl.io/port"] == "80/TCP"
    assert group.tags["lbctl.io/resource"] == "targetgroup"
    assert group.tags["kubernetes.io/cluster/prod"] == "owned"
    assert plan.target_group("80/TCP") is group
    assert plan.target_group("81/TCP") is None
    assert plan.source_ranges == ("0.0.0.0/0",)


def test_tcp_and_udp_on_one_port_merge() -> None:
    unnamed_udp = {k: v for k, v in DNS_UDP.items() if k != "name"}
    plan = plan_of(service([DNS_UDP, HTTP80, DNS_TCP]))
    assert [(li.port, li.protocol) for li in plan.listeners] == [(53, "TCP_UDP"), (80, "TCP")]
    assert [g.key for g in plan.target_groups] == ["53/TCP_UDP", "80/TCP"]
    dns = plan.target_groups[0]
    assert (dns.protocol, dns.port) == ("TCP_UDP", 30053)
    assert dns.service_ports == ("dns-tcp", "dns-udp")
    assert dns.health == TCP_DEFAULT  # the TCP half can be checked
    other = plan_of(service([DNS_TCP, unnamed_udp]))
    assert other.target_groups[0].service_ports == ("dns-tcp", "53/UDP")


def test_tcp_udp_node_port_mismatch() -> None:
    message = plan_error(
        service([DNS_TCP, DNS_UDP | {"nodePort": 30054}]), "TCPUDPNodePortMismatch"
    )
    for word in ("dns-tcp", "dns-udp", "30053", "30054"):
        assert word in message


def test_ip_targets() -> None:
    ip = {key("nlb-target-type"): "ip"}
    plan = plan_of(service([DNS_TCP, DNS_UDP, HTTP80], ip))
    assert [(g.key, g.port, g.target_type) for g in plan.target_groups] == [
        ("53/TCP_UDP", 5353, "ip"),
        ("80/TCP", 8080, "ip"),
    ]
    # a named target port: every target carries its own port, the group's is a placeholder
    named = plan_of(service([HTTP80 | {"targetPort": "web"}], ip))
    assert named.target_groups[0].port == 1
    # no targetPort means the port itself
    plain = plan_of(service([{k: v for k, v in HTTP80.items() if k != "targetPort"}], ip))
    assert plain.target_groups[0].port == 80
    # ip mode ignores nodePorts, even missing or different ones
    no_node_ports = [{k: v for k, v in p.items() if k != "nodePort"} for p in (DNS_TCP, DNS_UDP)]
    assert plan_of(service(no_node_ports, ip)).target_groups[0].port == 5353
    message = plan_error(
        service([DNS_TCP, DNS_UDP | {"targetPort": 5354}], ip), "TCPUDPTargetPortMismatch"
    )
    assert "5353" in message
    assert "5354" in message


def test_instance_targets_need_node_ports() -> None:
    port = {k: v for k, v in HTTP80.items() if k != "nodePort"}
    message = plan_error(service([port], allocateLoadBalancerNodePorts=False), "MissingNodePort")
    assert "80/TCP" in message


@pytest.mark.parametrize("ssl_ports", ["443", "https", "*", "443,8443"])
def test_tls_listeners(ssl_ports: str) -> None:
    alt = HTTPS | {"name": "alt", "port": 8443, "nodePort": 30843}
    annotations = {key("ssl-cert"): CERT, key("ssl-ports"): ssl_ports}
    plan = plan_of(service([HTTP80, HTTPS, alt], annotations))
    by_port = {li.port: li for li in plan.listeners}
    tls = {p for p, li in by_port.items() if li.protocol == "TLS"}
    expected = {"443": {443}, "https": {443}, "*": {80, 443, 8443}, "443,8443": {443, 8443}}
    assert tls == expected[ssl_ports]
    for port in tls:
        assert by_port[port].certificates == (CERT,)
        assert by_port[port].ssl_policy == DEFAULT_SSL_POLICY
        assert by_port[port].target_group_key == f"{port}/TCP"
    assert {g.protocol for g in plan.target_groups} == {"TCP"}


def test_tls_keeps_the_target_group() -> None:
    plain = plan_of(service([HTTPS]))
    tls = plan_of(service([HTTPS], {key("ssl-cert"): CERT}))
    assert plain.target_groups == tls.target_groups
    assert plain.listeners != tls.listeners


def test_tls_policy_and_several_certificates() -> None:
    annotations = {
        key("ssl-cert"): f"{CERT},{CERT}2",
        key("ssl-negotiation-policy"): "ELBSecurityPolicy-TLS13-1-2-2021-06",
    }
    (listener,) = plan_of(service([HTTPS], annotations)).listeners
    assert listener.certificates == (CERT, CERT + "2")
    assert listener.ssl_policy == "ELBSecurityPolicy-TLS13-1-2-2021-06"


def test_star_leaves_udp_and_tcp_udp_ports_alone() -> None:
    plan = plan_of(service([DNS_TCP, DNS_UDP, SYSLOG, HTTPS], {key("ssl-cert"): CERT}))
    assert [(li.port, li.protocol) for li in plan.listeners] == [
        (53, "TCP_UDP"),
        (443, "TLS"),
        (514, "UDP"),
    ]


@pytest.mark.parametrize(
    ("ssl_ports", "words"),
    [
        ("514", ["514 is a UDP port"]),
        ("syslog", ["syslog is a UDP port"]),
        ("8443", ["8443 is not a port"]),
        ("nope,514", ["nope is not a port", "514 is a UDP port"]),
        ("53", ["53 is also a UDP port"]),
        ("dns-tcp", ["dns-tcp is also a UDP port"]),
    ],
)
def test_bad_ssl_ports(ssl_ports: str, words: list[str]) -> None:
    annotations = {key("ssl-cert"): CERT, key("ssl-ports"): ssl_ports}
    message = plan_error(service([HTTPS, SYSLOG, DNS_TCP, DNS_UDP], annotations), "InvalidSSLPorts")
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("ports", "reason"),
    [
        ([HTTP80 | {"protocol": "SCTP"}], "UnsupportedProtocol"),
        ([HTTP80, HTTP80 | {"name": "again", "nodePort": 30081}], "DuplicatePort"),
    ],
)
def test_invalid_ports(ports: list[dict[str, Any]], reason: str) -> None:
    plan_error(service(ports), reason)


def test_empty_protocol_means_tcp() -> None:
    plan = plan_of(service([{k: v for k, v in HTTP80.items() if k != "protocol"}]))
    assert plan.target_groups[0].key == "80/TCP"


def test_preserve_client_ip_cannot_be_disabled_for_udp() -> None:
    annotations = {key("target-group-attributes"): "preserve_client_ip.enabled=false"}
    assert plan_of(service([HTTP80], annotations)).target_groups[0].attributes == {
        "preserve_client_ip.enabled": "false"
    }
    assert "UDP" in plan_error(service([SYSLOG], annotations), "InvalidTargetGroupAttributes")


def test_attributes_and_their_defaults() -> None:
    annotations = {
        key("proxy-protocol"): "*",
        key("target-group-attributes"): "deregistration_delay.timeout_seconds=30",
        key("cross-zone-load-balancing-enabled"): "true",
    }
    plan = plan_of(service([HTTP80], annotations))
    assert plan.lb.attributes == {"load_balancing.cross_zone.enabled": "true"}
    assert plan.lb.attribute_defaults == {"load_balancing.cross_zone.enabled": "false"}
    group = plan.target_groups[0]
    assert group.attributes == {
        "deregistration_delay.timeout_seconds": "30",
        "proxy_protocol_v2.enabled": "true",
    }
    assert group.attribute_defaults["proxy_protocol_v2.enabled"] == "false"
    assert group.attribute_defaults["preserve_client_ip.enabled"] == "true"
    off = plan_of(service([HTTP80], {key("cross-zone-load-balancing-enabled"): "false"}))
    assert off.lb.attributes == {"load_balancing.cross_zone.enabled": "false"}
    ip = plan_of(service([HTTP80, SYSLOG], {key("nlb-target-type"): "ip"}))
    preserve = [g.attribute_defaults["preserve_client_ip.enabled"] for g in ip.target_groups]
    assert preserve == ["false", "true"]  # ip over TCP does not preserve; UDP always does


def test_eip_allocations_map_in_az_order() -> None:
    annotations = {key("eip-allocations"): "eipalloc-0a, eipalloc-0b"}
    plan = plan_of(service([HTTP80], annotations))
    assert plan.lb.eip_allocations == {"subnet-a": "eipalloc-0a", "subnet-b": "eipalloc-0b"}
    message = plan_error(
        service([HTTP80], {key("eip-allocations"): "eipalloc-0a"}), "EIPAllocationCountMismatch"
    )
    assert "1 EIP allocations for 2 subnets" in message
    with pytest.raises(PlanError) as err:
        build_plan(
            cluster_id="prod",
            service=service([HTTP80]),
            ports=(),
            config=replace(
                parse(service([HTTP80], {key("scheme"): "internal"})),
                eip_allocations=("eipalloc-1", "eipalloc-2"),
            ),
            subnets=SUBNETS,
            vpc_cidrs=(),
        )
    assert err.value.reason == "InvalidEIPAllocations"


@pytest.mark.parametrize(
    ("annotations", "spec_ranges", "vpc_cidrs", "expected"),
    [
        ({}, [], ("10.0.0.0/16",), ("0.0.0.0/0",)),
        (
            {key("scheme"): "internal"},
            [],
            ("10.0.0.0/16", "100.64.0.0/16"),
            ("10.0.0.0/16", "100.64.0.0/16"),
        ),
        ({}, ["203.0.113.0/24"], (), ("203.0.113.0/24",)),
        ({key("scheme"): "internal"}, ["10.1.0.0/16"], ("10.0.0.0/16",), ("10.1.0.0/16",)),
    ],
)
def test_source_ranges(
    annotations: dict[str, str],
    spec_ranges: list[str],
    vpc_cidrs: tuple[str, ...],
    expected: tuple[str, ...],
) -> None:
    svc = service([HTTP80], annotations, loadBalancerSourceRanges=spec_ranges)
    assert plan_of(svc, vpc_cidrs=vpc_cidrs).source_ranges == expected


def test_internal_needs_vpc_cidrs() -> None:
    with pytest.raises(PlanError) as err:
        plan_of(service([HTTP80], {key("scheme"): "internal"}), vpc_cidrs=())
    assert err.value.reason == "MissingVPCCIDR"


def test_no_subnets() -> None:
    with pytest.raises(PlanError) as err:
        svc = service([HTTP80])
        build_plan(
            cluster_id="prod",
            service=svc,
            ports=svc.spec.ports,
            config=NLBConfig(),
            subnets=(),
            vpc_cidrs=(),
        )
    assert err.value.reason == "SubnetsNotFound"


def test_additional_tags_go_everywhere_with_their_record() -> None:
    plan = plan_of(service([HTTP80], {key("additional-resource-tags"): "team=payments"}))
    for tags in (plan.lb.tags, plan.target_groups[0].tags):
        assert tags["team"] == "payments"
        assert naming.managed_tag_keys(tags) == (naming.TAG_ADDITIONAL, "team")
        assert tags["lbctl.io/cluster"] == "prod"


def test_plans_are_deterministic() -> None:
    ports = [HTTP80, DNS_UDP, HTTPS, DNS_TCP, SYSLOG]
    annotations = {key("ssl-cert"): CERT, key("additional-resource-tags"): "b=2,a=1"}
    first = plan_of(service(ports, annotations))
    assert first == plan_of(service(ports, annotations))
    for order in itertools.permutations(ports):
        assert plan_of(service(list(order), annotations)) == first
    reversed_subnets = build_plan(
        cluster_id="prod",
        service=service(ports, annotations),
        ports=service(ports, annotations).spec.ports,
        config=parse(service(ports, annotations)),
        subnets=tuple(reversed(SUBNETS)),
        vpc_cidrs=("10.0.0.0/16",),
    )
    assert reversed_subnets == first
    assert [li.port for li in first.listeners] == [53, 80, 443, 514]
    assert [g.key for g in first.target_groups] == ["53/TCP_UDP", "80/TCP", "443/TCP", "514/UDP"]
