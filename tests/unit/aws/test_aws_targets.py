"""providers.aws.targets: providerIDs, instance and ip targets, diffs and chunks."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbctl.domain.service import Service
from providers.aws.annotations import key, parse
from providers.aws.plan import TargetGroupSpec, build_plan
from providers.aws.subnets import SubnetInfo
from providers.aws.targets import Target, chunks, desired_targets, instance_id, target_diff
from providers.base import EndpointInfo, EndpointPort, NodeInfo

SUBNETS = (SubnetInfo("subnet-a", "vpc-1", "us-east-1a", "10.0.1.0/24", {}, True),)
HTTP = {"name": "http", "protocol": "TCP", "port": 80, "targetPort": "web", "nodePort": 30080}
DNS_TCP = {"name": "dns-tcp", "protocol": "TCP", "port": 53, "targetPort": 53, "nodePort": 30053}
DNS_UDP = {"name": "dns-udp", "protocol": "UDP", "port": 53, "targetPort": 53, "nodePort": 30053}


def service(ports: list[dict[str, Any]], target_type: str = "instance") -> Service:
    return Service.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "uid": "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f",
                "annotations": {key("nlb-target-type"): target_type},
            },
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": ports},
        }
    )


def groups(svc: Service) -> tuple[TargetGroupSpec, ...]:
    plan = build_plan(
        cluster_id="prod",
        service=svc,
        ports=svc.spec.ports,
        config=parse(svc),
        subnets=SUBNETS,
        vpc_cidrs=(),
    )
    return plan.target_groups


@pytest.mark.parametrize(
    ("provider_id", "expected"),
    [
        ("aws:///us-east-1a/i-0abc", "i-0abc"),
        ("aws:////i-0abc", "i-0abc"),
        ("aws:///us-east-1a/i-0123456789abcdef0", "i-0123456789abcdef0"),
        ("i-0abc", "i-0abc"),
        (" aws:///us-east-1a/i-0abc ", "i-0abc"),
        ("", None),
        ("aws:///us-east-1a/", None),
        ("aws:///us-east-1a/i-", None),
        ("aws:///us-east-1a/i-0ABC", None),
        ("aws:///us-east-1a/i-0abc/extra", None),
        ("aws:///us-east-1a/fargate-ip-10-0-0-1.ec2.internal", None),
        ("gce://project/us-central1-a/i-0abc", None),
        ("kind://docker/kind/kind-worker", None),
        ("aws:/us-east-1a/i-0abc", None),
    ],
)
def test_instance_id(provider_id: str, expected: str | None) -> None:
    assert instance_id(provider_id) == expected


def test_instance_targets_use_the_group_port_and_skip_unparseable_nodes() -> None:
    (group,) = groups(service([HTTP]))
    nodes = [
        NodeInfo("n1", "aws:///us-east-1a/i-01"),
        NodeInfo("n2", "aws:///us-east-1b/i-02"),
        NodeInfo("n3", ""),
        NodeInfo("n4", "aws:///us-east-1b/fargate-x"),
        NodeInfo("n5", "aws:////i-05"),
    ]
    got = desired_targets(group, nodes=nodes, endpoints=(), service_ports=())
    assert got == {Target("i-01", 30080), Target("i-02", 30080), Target("i-05", 30080)}


def endpoint(address: str, *ports: EndpointPort, ready: bool = True) -> EndpointInfo:
    return EndpointInfo(addresses=(address,), ready=ready, node_name="n1", ports=ports)


def test_ip_targets_match_the_endpoint_port_by_name() -> None:
    svc = service([HTTP], "ip")
    (group,) = groups(svc)
    endpoints = [
        endpoint("10.0.1.5", EndpointPort("http", 8080, "TCP")),
        endpoint("10.0.1.6", EndpointPort("http", 9090, "TCP")),  # another pod, another port
        endpoint("10.0.1.7", EndpointPort("http", 8080, "TCP"), ready=False),
        endpoint("10.0.1.8", EndpointPort("metrics", 9100, "TCP")),
        endpoint("10.0.1.9", EndpointPort("http", 8080, "UDP")),
        endpoint("fd00::1", EndpointPort("http", 8080, "TCP")),
        EndpointInfo(
            addresses=("10.0.1.10", "fd00::2"),
            ready=True,
            ports=(EndpointPort("http", 8081, "TCP"),),
        ),
    ]
    got = desired_targets(
        group,
        nodes=[NodeInfo("n1", "aws:////i-01")],
        endpoints=endpoints,
        service_ports=svc.spec.ports,
    )
    assert got == {Target("10.0.1.5", 8080), Target("10.0.1.6", 9090), Target("10.0.1.10", 8081)}


def test_ip_targets_of_an_unnamed_port() -> None:
    port = {"protocol": "TCP", "port": 80, "targetPort": 8080}
    svc = service([port], "ip")
    (group,) = groups(svc)
    got = desired_targets(
        group,
        nodes=(),
        endpoints=[endpoint("10.0.1.5", EndpointPort("", 8080, "TCP"))],
        service_ports=svc.spec.ports,
    )
    assert got == {Target("10.0.1.5", 8080)}


def test_ip_targets_of_a_tcp_udp_group_and_of_other_groups() -> None:
    svc = service([DNS_TCP, DNS_UDP, HTTP], "ip")
    dns, web = groups(svc)
    endpoints = [
        endpoint(
            "10.0.1.5",
            EndpointPort("dns-tcp", 53, "TCP"),
            EndpointPort("dns-udp", 53, "UDP"),
            EndpointPort("http", 8080, "TCP"),
        )
    ]
    got = desired_targets(dns, nodes=(), endpoints=endpoints, service_ports=svc.spec.ports)
    assert got == {Target("10.0.1.5", 53)}
    got = desired_targets(web, nodes=(), endpoints=endpoints, service_ports=svc.spec.ports)
    assert got == {Target("10.0.1.5", 8080)}
    assert desired_targets(web, nodes=(), endpoints=(), service_ports=svc.spec.ports) == frozenset()


def test_target_diff() -> None:
    current = [Target("i-03", 30080), Target("i-01", 30080), Target("i-02", 30081)]
    desired = [Target("i-02", 30080), Target("i-01", 30080), Target("i-04", 30080)]
    register, deregister = target_diff(current, desired)
    assert register == (Target("i-02", 30080), Target("i-04", 30080))
    assert deregister == (Target("i-02", 30081), Target("i-03", 30080))
    assert target_diff(desired, desired) == ((), ())
    assert Target("i-01", 1).to_aws() == {"Id": "i-01", "Port": 1}


targets = st.frozensets(
    st.builds(Target, st.sampled_from(["i-01", "i-02", "i-03", "10.0.0.1"]), st.integers(1, 4))
)


@given(current=targets, desired=targets)
def test_target_diff_applied_gives_the_desired_set(
    current: frozenset[Target], desired: frozenset[Target]
) -> None:
    register, deregister = target_diff(current, desired)
    assert (set(current) | set(register)) - set(deregister) == desired
    assert list(register) == sorted(register)
    assert list(deregister) == sorted(deregister)
    assert not set(register) & set(current)
    assert set(deregister) <= current


@pytest.mark.parametrize(
    ("count", "size", "lengths"),
    [(0, 100, []), (1, 100, [1]), (100, 100, [100]), (250, 100, [100, 100, 50]), (5, 2, [2, 2, 1])],
)
def test_chunks(count: int, size: int, lengths: list[int]) -> None:
    items = list(range(count))
    got = list(chunks(items, size))
    assert [len(c) for c in got] == lengths
    assert [i for c in got for i in c] == items


def test_chunks_default_size_and_bad_size() -> None:
    assert [len(c) for c in chunks(list(range(201)))] == [100, 100, 1]
    with pytest.raises(ValueError, match="at least 1"):
        list(chunks([1], 0))
