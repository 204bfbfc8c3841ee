"""providers.aws.sgrules: the frontend security group's rules, the node groups' cluster
and per-Service rules from the backend group, merged and diffed."""

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
    DEFAULT_NODE_PORT_RANGE,
    Rule,
    backend_group,
    cluster_node_rules,
    frontend_group,
    frontend_rules,
    node_rules,
    owned_rules,
    parse_ip_permissions,
    parse_port_range,
    pick_node_security_group,
    rule_diff,
)
from providers.aws.subnets import SubnetInfo

UID = "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
SUBNETS = (
    SubnetInfo("subnet-a", "vpc-1", "us-east-1a", "10.0.1.0/24", {}, True),
    SubnetInfo("subnet-b", "vpc-1", "us-east-1b", "10.0.2.0/24", {}, True),
)
CLIENT = naming.rule_description("prod", UID, "client")
HEALTH = naming.rule_description("prod", UID, "health")
CLUSTER_RULE = naming.cluster_rule_description("prod")
ANY = "0.0.0.0/0"
BACKEND = "sg-0backend"


def port(number: int, node_port: int, protocol: str = "TCP", name: str = "") -> dict[str, Any]:
    return {
        "name": name or f"p{number}-{protocol.lower()}",
        "protocol": protocol,
        "port": number,
        "targetPort": number + 8000,
        "nodePort": node_port,
    }


def svc_of(
    ports: list[dict[str, Any]], annotations: dict[str, str] | None = None, **spec: Any
) -> Service:
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
            "spec": {"type": "LoadBalancer", "ports": ports, **spec},
        }
    )


def plan_of(
    ports: list[dict[str, Any]], annotations: dict[str, str] | None = None, **spec: Any
) -> Plan:
    svc = svc_of(ports, annotations, **spec)
    return build_plan(
        cluster_id="prod",
        service=svc,
        ports=svc.spec.ports,
        config=parse(svc),
        subnets=SUBNETS,
        vpc_cidrs=("10.0.0.0/16",),
    )


Row = tuple[str, int, int, str, str]


def rows(rules: frozenset[Rule]) -> set[Row]:
    return {(r.protocol, r.from_port, r.to_port, r.source, r.description) for r in rules}


def frontend_of(plan: Plan) -> set[Row]:
    return rows(frontend_rules(cluster_id="prod", service_uid=UID, plan=plan))


def node_of(
    plan: Plan, node_port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE, **kwargs: Any
) -> set[Row]:
    got = node_rules(
        cluster_id="prod",
        service_uid=UID,
        plan=plan,
        source_group=BACKEND,
        node_port_range=node_port_range,
        **kwargs,
    )
    return rows(got)


# --- frontend rules -----------------------------------------------------------------

FRONTEND_CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any], set[Row]]] = [
    (
        "contiguous listener ports merge",
        [port(80, 30080), port(81, 30081), port(82, 30082), port(90, 30090)],
        {},
        {("tcp", 80, 82, ANY, CLIENT), ("tcp", 90, 90, ANY, CLIENT)},
    ),
    (
        "TCP_UDP is tcp and udp, UDP is udp",
        [port(53, 30053, "TCP"), port(53, 30053, "UDP"), port(514, 30514, "UDP")],
        {},
        {
            ("tcp", 53, 53, ANY, CLIENT),
            ("udp", 53, 53, ANY, CLIENT),
            ("udp", 514, 514, ANY, CLIENT),
        },
    ),
    (
        "internal: the VPC CIDRs",
        [port(80, 30080)],
        {"annotations": {key("scheme"): "internal"}},
        {("tcp", 80, 80, "10.0.0.0/16", CLIENT)},
    ),
    (
        "source ranges, each with every port",
        [port(80, 30080), port(443, 30443)],
        {"loadBalancerSourceRanges": ["203.0.113.0/24", "198.51.100.7/32"]},
        {
            ("tcp", 80, 80, "203.0.113.0/24", CLIENT),
            ("tcp", 443, 443, "203.0.113.0/24", CLIENT),
            ("tcp", 80, 80, "198.51.100.7/32", CLIENT),
            ("tcp", 443, 443, "198.51.100.7/32", CLIENT),
        },
    ),
    (
        "TLS is tcp",
        [port(443, 30443)],
        {"annotations": {key("ssl-cert"): "arn:aws:acm:us-east-1:1:certificate/x"}},
        {("tcp", 443, 443, ANY, CLIENT)},
    ),
    (
        "the health check and the nodes are not the frontend's business",
        [port(80, 30080)],
        {"externalTrafficPolicy": "Local", "healthCheckNodePort": 32000},
        {("tcp", 80, 80, ANY, CLIENT)},
    ),
]


@pytest.mark.parametrize(
    ("ports", "spec", "expected"),
    [case[1:] for case in FRONTEND_CASES],
    ids=[case[0] for case in FRONTEND_CASES],
)
def test_frontend_rules(
    ports: list[dict[str, Any]], spec: dict[str, Any], expected: set[Row]
) -> None:
    spec = dict(spec)
    annotations = spec.pop("annotations", None)
    assert frontend_of(plan_of(ports, annotations, **spec)) == expected


def test_ipv6_source_ranges_are_ipv6_ranges() -> None:
    plan = plan_of([port(80, 30080)], loadBalancerSourceRanges=["2001:db8::/32", "198.51.100.0/24"])
    got = frontend_rules(cluster_id="prod", service_uid=UID, plan=plan)
    (v6,) = [r for r in got if r.is_v6]
    assert v6.to_aws() == {
        "IpProtocol": "tcp",
        "FromPort": 80,
        "ToPort": 80,
        "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/32", "Description": CLIENT}],
    }
    (v4,) = [r for r in got if not r.is_v6]
    assert v4.to_aws()["IpRanges"] == [{"CidrIp": "198.51.100.0/24", "Description": CLIENT}]


@given(st.lists(st.integers(1, 120), min_size=1, max_size=30, unique=True))
def test_merged_ranges_cover_exactly_the_ports(numbers: list[int]) -> None:
    ports = [port(n, 30000 + i) for i, n in enumerate(numbers)]
    got = frontend_rules(cluster_id="prod", service_uid=UID, plan=plan_of(ports))
    covered = [p for r in got for p in range(r.from_port, r.to_port + 1)]
    assert sorted(covered) == sorted(numbers)  # each port once: no overlap
    ends = sorted((r.from_port, r.to_port) for r in got)
    assert all(b[0] > a[1] + 1 for a, b in itertools.pairwise(ends))  # maximal ranges


# --- node rules ---------------------------------------------------------------------

NODE_CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any], dict[str, Any], set[Row]]] = [
    (
        "nodePorts and the eTP Local health port are in the cluster rules",
        [port(80, 30080), port(53, 30053, "TCP"), port(53, 30053, "UDP")],
        {"externalTrafficPolicy": "Local", "healthCheckNodePort": 32000},
        {},
        set(),
    ),
    (
        "a UDP-only group is checked on kube-proxy's 10256",
        [port(514, 30514, "UDP"), port(515, 30515, "UDP")],
        {},
        {},
        {("tcp", 10256, 10256, BACKEND, HEALTH)},
    ),
    (
        "an annotation's health-check port",
        [port(80, 30080)],
        {
            "annotations": {
                key("healthcheck-protocol"): "HTTP",
                key("healthcheck-port"): "10254",
            }
        },
        {},
        {("tcp", 10254, 10254, BACKEND, HEALTH)},
    ),
    (
        "a nodePort outside a custom range",
        [port(80, 30080), port(81, 30081), port(82, 40000)],
        {},
        {"node_port_range": (30000, 30999)},
        {("tcp", 40000, 40000, BACKEND, CLIENT)},
    ),
    (
        "ip targets: their ports, merged; the traffic-port check is covered",
        [port(80, 0, name="http") | {"targetPort": "web"}],
        {"annotations": {key("nlb-target-type"): "ip"}},
        {"target_ports": {"80/TCP": [8080, 8081, 9090]}},
        {("tcp", 8080, 8081, BACKEND, CLIENT), ("tcp", 9090, 9090, BACKEND, CLIENT)},
    ),
    (
        "ip targets inside the range need nothing",
        [port(80, 0, name="http") | {"targetPort": 30500}],
        {"annotations": {key("nlb-target-type"): "ip"}},
        {"target_ports": {"80/TCP": [30500]}},
        set(),
    ),
    (
        "ip UDP targets: udp traffic, tcp health on the same port",
        [port(53, 0, "UDP") | {"targetPort": 5353}],
        {"annotations": {key("nlb-target-type"): "ip"}},
        {},
        {("udp", 5353, 5353, BACKEND, CLIENT), ("tcp", 5353, 5353, BACKEND, HEALTH)},
    ),
    (
        "client IP preserved or not, the source is the backend group",
        [port(80, 0) | {"targetPort": 8080}],
        {
            "annotations": {
                key("nlb-target-type"): "ip",
                key("target-group-attributes"): "preserve_client_ip.enabled=true",
            }
        },
        {},
        {("tcp", 8080, 8080, BACKEND, CLIENT)},
    ),
    (
        "source ranges do not reach the node groups",
        [port(80, 0) | {"targetPort": 8080}],
        {
            "annotations": {key("nlb-target-type"): "ip"},
            "loadBalancerSourceRanges": ["203.0.113.0/24"],
        },
        {},
        {("tcp", 8080, 8080, BACKEND, CLIENT)},
    ),
]


@pytest.mark.parametrize(
    ("ports", "spec", "kwargs", "expected"),
    [case[1:] for case in NODE_CASES],
    ids=[case[0] for case in NODE_CASES],
)
def test_node_rules(
    ports: list[dict[str, Any]],
    spec: dict[str, Any],
    kwargs: dict[str, Any],
    expected: set[Row],
) -> None:
    spec = dict(spec)
    annotations = spec.pop("annotations", None)
    assert node_of(plan_of(ports, annotations, **spec), **kwargs) == expected


def test_node_rules_merge_per_protocol_and_kind() -> None:
    plan = plan_of([port(80, 30080), port(81, 30081), port(90, 30090)])
    got = node_of(plan, node_port_range=(31000, 31999))
    assert got == {
        ("tcp", 30080, 30081, BACKEND, CLIENT),
        ("tcp", 30090, 30090, BACKEND, CLIENT),
    }


def test_cluster_node_rules() -> None:
    got = cluster_node_rules(
        cluster_id="prod", source_group=BACKEND, node_port_range=(30000, 32767)
    )
    assert rows(got) == {
        ("tcp", 30000, 32767, BACKEND, CLUSTER_RULE),
        ("udp", 30000, 32767, BACKEND, CLUSTER_RULE),
    }
    assert naming.parse_rule_description(CLUSTER_RULE) is None, "no Service's rule"
    assert CLUSTER_RULE.startswith(f"lbctl:{naming.cluster_hash('prod')}:cluster:")
    assert min(got).to_aws() == {
        "IpProtocol": "tcp",
        "FromPort": 30000,
        "ToPort": 32767,
        "UserIdGroupPairs": [{"GroupId": BACKEND, "Description": CLUSTER_RULE}],
    }


def test_every_node_rule_description_names_the_owner() -> None:
    plan = plan_of(
        [port(80, 30080), port(53, 30053, "UDP")],
        {key("healthcheck-port"): "10254", key("healthcheck-protocol"): "HTTP"},
    )
    got = node_rules(
        cluster_id="prod",
        service_uid=UID,
        plan=plan,
        source_group=BACKEND,
        node_port_range=(30000, 30060),
    )
    kinds = {naming.parse_rule_description(r.description) for r in got}
    assert kinds == {  # 30080 is outside the range: a client rule
        (naming.cluster_hash("prod"), UID, "client"),
        (naming.cluster_hash("prod"), UID, "health"),
    }


# --- groups ---------------------------------------------------------------------------


def test_frontend_and_backend_groups() -> None:
    svc = svc_of([port(80, 30080)])
    front = frontend_group("prod", svc)
    assert front.name == naming.security_group_name("prod", svc)
    assert front.name.startswith("k8s-shop-web-") and len(front.name) <= 32
    assert front.tags == {
        naming.TAG_CLUSTER: "prod",
        naming.cluster_tag_key("prod"): "owned",
        naming.TAG_SERVICE: "shop/web",
        naming.TAG_SERVICE_UID: UID,
        naming.TAG_RESOURCE: "securitygroup",
    }
    assert front.name != naming.load_balancer_name("prod", svc, "internet-facing")
    back = backend_group("prod")
    assert back.name.startswith("k8s-traffic-prod-")
    assert back.name != backend_group("staging").name
    assert back.tags == {
        naming.TAG_CLUSTER: "prod",
        naming.cluster_tag_key("prod"): "owned",
        naming.TAG_RESOURCE: "backend-securitygroup",
    }
    assert naming.service_uid_of(back.tags) is None
    allowed = set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789. _-:/()#,@[]+=&;{}!$*"
    )
    for spec in (front, back):
        assert set(spec.description) <= allowed, spec.description


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30000-32767", (30000, 32767)),
        ("1-65535", (1, 65535)),
        ("8080-8080", (8080, 8080)),
        ("30000", None),
        ("32767-30000", None),
        ("0-100", None),
        ("1-65536", None),
        ("a-b", None),
        ("1-2-3", None),
        ("", None),
    ],
)
def test_parse_port_range(text: str, expected: tuple[int, int] | None) -> None:
    if expected is None:
        with pytest.raises(ValueError, match="must"):
            parse_port_range(text)
    else:
        assert parse_port_range(text) == expected


# --- diffs and parsing ----------------------------------------------------------------


def rule(port: int, source: str = ANY, description: str = CLIENT, protocol: str = "tcp") -> Rule:
    return Rule(protocol, port, port, source, description)


def test_rule_diff() -> None:
    current = [rule(80), rule(81), rule(82, "10.0.1.0/24", HEALTH)]
    desired = [rule(80), rule(83), rule(80, protocol="udp")]
    authorize, revoke = rule_diff(current, desired)
    assert authorize == (rule(83), rule(80, protocol="udp"))  # sorted: tcp < udp
    assert revoke == (rule(81), rule(82, "10.0.1.0/24", HEALTH))
    assert rule_diff(desired, desired) == ((), ())


def test_rule_diff_ignores_description_only_changes_and_others_rules() -> None:
    current = [rule(10254, BACKEND, CLIENT)]
    desired = [rule(10254, BACKEND, HEALTH), rule(10256, BACKEND, HEALTH)]
    other = rule(10256, BACKEND, naming.rule_description("prod", "other-uid", "health"))
    assert rule_diff(current, desired) == ((rule(10256, BACKEND, HEALTH),), ())
    assert rule_diff(current, desired, others=[other]) == ((), ())


def test_ip_permissions_round_trip_and_ownership() -> None:
    ours = [
        rule(30080),
        rule(10256, BACKEND, HEALTH),
        rule(30080, "2001:db8::/32"),
    ]
    theirs = rule(30090, description=naming.rule_description("prod", "other-uid", "client"))
    other_cluster = rule(30091, description=naming.rule_description("staging", UID, "client"))
    by_hand = rule(22, "192.0.2.0/24", "ssh")
    cluster = Rule("tcp", 30000, 32767, BACKEND, CLUSTER_RULE)
    permissions = [r.to_aws() for r in [*ours, theirs, other_cluster, by_hand, cluster]]
    permissions.append({"IpProtocol": "-1", "IpRanges": [{"CidrIp": ANY}]})
    permissions.append(
        {"IpProtocol": "icmp", "FromPort": 3, "ToPort": 4, "IpRanges": [{"CidrIp": ANY}]}
    )
    permissions.append(
        {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "IpRanges": [{"CidrIp": ANY}]}
    )
    permissions.append(  # as EC2 describes a rule from a group: with the account
        {
            "IpProtocol": "udp",
            "FromPort": 5,
            "ToPort": 6,
            "UserIdGroupPairs": [{"GroupId": "sg-1", "UserId": "123456789012"}],
            "IpRanges": [],
        }
    )
    permissions.append(
        {"IpProtocol": "tcp", "FromPort": 7, "ToPort": 7, "PrefixListIds": [{"PrefixListId": "p"}]}
    )
    parsed = parse_ip_permissions(permissions)
    assert set(parsed) == {
        *ours,
        theirs,
        other_cluster,
        by_hand,
        cluster,
        Rule("tcp", 1, 1, ANY, ""),
        Rule("udp", 5, 6, "sg-1", ""),
    }
    assert set(owned_rules(parsed, "prod", UID)) == set(ours)
    assert set(owned_rules(parsed, "prod")) == {*ours, theirs}, "never the cluster rules"


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
