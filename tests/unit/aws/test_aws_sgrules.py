"""providers.aws.sgrules: the node security group's rules for one NLB, merged and diffed."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbctl.domain.service import Service
from providers.aws import naming
from providers.aws.annotations import key, parse
from providers.aws.plan import Plan, build_plan
from providers.aws.sgrules import (
    Rule,
    desired_rules,
    owned_rules,
    parse_ip_permissions,
    pick_node_security_group,
    rule_diff,
)
from providers.aws.subnets import SubnetInfo

UID = "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
SUBNETS = (
    SubnetInfo("subnet-a", "vpc-1", "us-east-1a", "10.0.1.0/24", {}, True),
    SubnetInfo("subnet-b", "vpc-1", "us-east-1b", "10.0.2.0/24", {}, True),
)
SUBNET_CIDRS = ("10.0.1.0/24", "10.0.2.0/24")
CLIENT = naming.rule_description("prod", UID, "client")
HEALTH = naming.rule_description("prod", UID, "health")
ANY = "0.0.0.0/0"


def port(number: int, node_port: int, protocol: str = "TCP", name: str = "") -> dict[str, Any]:
    return {
        "name": name or f"p{number}-{protocol.lower()}",
        "protocol": protocol,
        "port": number,
        "targetPort": number + 8000,
        "nodePort": node_port,
    }


def plan_of(
    ports: list[dict[str, Any]], annotations: dict[str, str] | None = None, **spec: Any
) -> Plan:
    svc = Service.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "uid": UID,
                "annotations": annotations or {},
            },
            "spec": {"type": "LoadBalancer", "ports": ports, **spec},
        }
    )
    return build_plan(
        cluster_id="prod",
        service=svc,
        ports=svc.spec.ports,
        config=parse(svc),
        subnets=SUBNETS,
        vpc_cidrs=("10.0.0.0/16",),
    )


def rules_of(plan: Plan, **kwargs: Any) -> set[tuple[str, int, int, str, str]]:
    got = desired_rules(
        cluster_id="prod", service_uid=UID, plan=plan, subnet_cidrs=SUBNET_CIDRS, **kwargs
    )
    return {(r.protocol, r.from_port, r.to_port, r.cidr, r.description) for r in got}


def test_contiguous_ports_merge_and_covered_health_checks_are_left_out() -> None:
    plan = plan_of([port(80, 30080), port(81, 30081), port(82, 30082), port(90, 30090)])
    assert rules_of(plan) == {
        ("tcp", 30080, 30082, ANY, CLIENT),
        ("tcp", 30090, 30090, ANY, CLIENT),
    }


def test_local_health_check_port_from_every_subnet() -> None:
    plan = plan_of(
        [port(80, 30080), port(443, 30443)],
        externalTrafficPolicy="Local",
        healthCheckNodePort=32000,
    )
    assert rules_of(plan) == {
        ("tcp", 30080, 30080, ANY, CLIENT),
        ("tcp", 30443, 30443, ANY, CLIENT),
        ("tcp", 32000, 32000, "10.0.1.0/24", HEALTH),
        ("tcp", 32000, 32000, "10.0.2.0/24", HEALTH),
    }


def test_health_covered_by_the_vpc_cidr_of_an_internal_lb() -> None:
    plan = plan_of([port(80, 30080)], {key("scheme"): "internal"})
    assert rules_of(plan) == {("tcp", 30080, 30080, "10.0.0.0/16", CLIENT)}


def test_restricted_source_ranges_need_health_rules() -> None:
    plan = plan_of([port(80, 30080), port(81, 30081)], loadBalancerSourceRanges=["203.0.113.0/24"])
    assert rules_of(plan) == {
        ("tcp", 30080, 30081, "203.0.113.0/24", CLIENT),
        ("tcp", 30080, 30081, "10.0.1.0/24", HEALTH),
        ("tcp", 30080, 30081, "10.0.2.0/24", HEALTH),
    }


def test_a_source_range_equal_to_a_subnet_covers_its_health_check_only() -> None:
    plan = plan_of([port(80, 30080)], loadBalancerSourceRanges=["10.0.1.0/24"])
    assert rules_of(plan) == {
        ("tcp", 30080, 30080, "10.0.1.0/24", CLIENT),
        ("tcp", 30080, 30080, "10.0.2.0/24", HEALTH),
    }


def test_tcp_udp_and_udp_only_groups() -> None:
    plan = plan_of([port(53, 30053, "TCP"), port(53, 30053, "UDP"), port(514, 30514, "UDP")])
    assert rules_of(plan) == {
        ("tcp", 30053, 30053, ANY, CLIENT),
        ("udp", 30053, 30053, ANY, CLIENT),
        ("udp", 30514, 30514, ANY, CLIENT),
        # the UDP-only group is checked on kube-proxy's port; the tcp traffic port is open
        ("tcp", 10256, 10256, "10.0.1.0/24", HEALTH),
        ("tcp", 10256, 10256, "10.0.2.0/24", HEALTH),
    }


def test_ip_targets_without_client_ip_preservation_come_from_the_subnets() -> None:
    plan = plan_of(
        [port(80, 0, name="http") | {"targetPort": "web"}], {key("nlb-target-type"): "ip"}
    )
    got = rules_of(plan, target_ports={"80/TCP": [8080, 8081, 9090]})
    assert got == {
        ("tcp", 8080, 8081, "10.0.1.0/24", CLIENT),
        ("tcp", 9090, 9090, "10.0.1.0/24", CLIENT),
        ("tcp", 8080, 8081, "10.0.2.0/24", CLIENT),
        ("tcp", 9090, 9090, "10.0.2.0/24", CLIENT),
    }
    preserved = plan_of(
        [port(80, 0)],
        {
            key("nlb-target-type"): "ip",
            key("target-group-attributes"): "preserve_client_ip.enabled=true",
        },
    )
    assert ("tcp", 8080, 8080, ANY, CLIENT) in rules_of(preserved)


def test_ipv6_source_ranges() -> None:
    plan = plan_of([port(80, 30080)], loadBalancerSourceRanges=["2001:db8::/32", "198.51.100.0/24"])
    got = desired_rules(cluster_id="prod", service_uid=UID, plan=plan, subnet_cidrs=SUBNET_CIDRS)
    v6 = [r for r in got if r.is_v6]
    assert [(r.cidr, r.from_port) for r in v6] == [("2001:db8::/32", 30080)]
    assert v6[0].to_aws() == {
        "IpProtocol": "tcp",
        "FromPort": 30080,
        "ToPort": 30080,
        "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/32", "Description": CLIENT}],
    }
    assert sum(1 for r in got if r.description == HEALTH) == 2  # v6 covers no v4 subnet


def test_every_description_names_the_owner() -> None:
    plan = plan_of(
        [port(80, 30080), port(53, 30053, "UDP")],
        externalTrafficPolicy="Local",
        healthCheckNodePort=32000,
    )
    got = desired_rules(cluster_id="prod", service_uid=UID, plan=plan, subnet_cidrs=SUBNET_CIDRS)
    kinds = {naming.parse_rule_description(r.description) for r in got}
    assert kinds == {
        (naming.cluster_hash("prod"), UID, "client"),
        (naming.cluster_hash("prod"), UID, "health"),
    }


@given(st.lists(st.integers(30000, 30060), min_size=1, max_size=30, unique=True))
def test_merged_ranges_cover_exactly_the_ports(node_ports: list[int]) -> None:
    ports = [port(1000 + i, n) for i, n in enumerate(node_ports)]
    got = desired_rules(
        cluster_id="prod", service_uid=UID, plan=plan_of(ports), subnet_cidrs=SUBNET_CIDRS
    )
    covered = [p for r in got for p in range(r.from_port, r.to_port + 1)]
    assert sorted(covered) == sorted(node_ports)  # each port once: no overlap
    ends = sorted((r.from_port, r.to_port) for r in got)
    assert all(b[0] > a[1] + 1 for a, b in itertools.pairwise(ends))  # maximal ranges


def rule(port: int, cidr: str = ANY, description: str = CLIENT, protocol: str = "tcp") -> Rule:
    return Rule(protocol, port, port, cidr, description)


def test_rule_diff() -> None:
    current = [rule(30080), rule(30081), rule(30082, "10.0.1.0/24", HEALTH)]
    desired = [rule(30080), rule(30083), rule(30080, protocol="udp")]
    authorize, revoke = rule_diff(current, desired)
    assert authorize == (rule(30083), rule(30080, protocol="udp"))  # sorted: tcp < udp
    assert revoke == (rule(30081), rule(30082, "10.0.1.0/24", HEALTH))
    assert rule_diff(desired, desired) == ((), ())


def test_rule_diff_ignores_description_only_changes_and_others_rules() -> None:
    current = [rule(30080, "10.0.1.0/24", CLIENT)]
    desired = [rule(30080, "10.0.1.0/24", HEALTH), rule(10256, "10.0.1.0/24", HEALTH)]
    other = rule(10256, "10.0.1.0/24", naming.rule_description("prod", "other-uid", "health"))
    assert rule_diff(current, desired) == ((rule(10256, "10.0.1.0/24", HEALTH),), ())
    assert rule_diff(current, desired, others=[other]) == ((), ())


def test_ip_permissions_round_trip_and_ownership() -> None:
    ours = [rule(30080), rule(32000, "10.0.1.0/24", HEALTH), rule(30080, "2001:db8::/32")]
    theirs = rule(30090, description=naming.rule_description("prod", "other-uid", "client"))
    other_cluster = rule(30091, description=naming.rule_description("staging", UID, "client"))
    by_hand = rule(22, "192.0.2.0/24", "ssh")
    permissions = [r.to_aws() for r in [*ours, theirs, other_cluster, by_hand]]
    permissions.append({"IpProtocol": "-1", "IpRanges": [{"CidrIp": ANY}]})
    permissions.append(
        {"IpProtocol": "icmp", "FromPort": 3, "ToPort": 4, "IpRanges": [{"CidrIp": ANY}]}
    )
    permissions.append(
        {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "IpRanges": [{"CidrIp": ANY}]}
    )
    parsed = parse_ip_permissions(permissions)
    assert set(parsed) == {*ours, theirs, other_cluster, by_hand, Rule("tcp", 1, 1, ANY, "")}
    assert set(owned_rules(parsed, "prod", UID)) == set(ours)
    assert set(owned_rules(parsed, "prod")) == {*ours, theirs}


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ([("sg-1", {"kubernetes.io/cluster/prod": "owned"}), ("sg-2", {})], "sg-1"),
        ([("sg-2", {}), ("sg-1", {"kubernetes.io/cluster/prod": "shared"})], "sg-1"),
        ([("sg-1", {})], "sg-1"),
        ([("sg-1", {"kubernetes.io/cluster/staging": "owned"})], "sg-1"),
        ([("sg-1", {}), ("sg-2", {})], None),
        (
            [
                ("sg-1", {"kubernetes.io/cluster/prod": "owned"}),
                ("sg-2", {"kubernetes.io/cluster/prod": "owned"}),
            ],
            None,
        ),
        ([], None),
    ],
)
def test_pick_node_security_group(
    groups: Sequence[tuple[str, dict[str, str]]], expected: str | None
) -> None:
    assert pick_node_security_group(groups, "prod") == expected
