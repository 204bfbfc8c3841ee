"""providers.aws.health and the diff helpers of providers.aws.plan."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from lbctl.domain.service import Service
from providers.aws.annotations import key, parse
from providers.aws.plan import (
    HealthCheck,
    Plan,
    PlanError,
    attribute_changes,
    build_plan,
    health_check_changes,
    health_check_from_aws,
    replacement_needed,
    tag_changes,
)
from providers.aws.subnets import SubnetInfo

UID = "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
SUBNETS = (
    SubnetInfo("subnet-b", "vpc-1", "us-east-1b", "10.0.2.0/24", {}, True),
    SubnetInfo("subnet-a", "vpc-1", "us-east-1a", "10.0.1.0/24", {}, True),
)
TCP_DEFAULT = HealthCheck("TCP", "traffic-port", None, 30, 10, 3, 3)
KUBE_PROXY = HealthCheck("HTTP", "10256", "/healthz", 10, 6, 2, 2)
HTTP80 = {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}
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


LOCAL_HTTP = HealthCheck("HTTP", "32000", "/healthz", 10, 6, 2, 2)


@pytest.mark.parametrize(
    ("policy", "target_type", "ports", "expected"),
    [
        ("Cluster", "instance", [HTTP80], TCP_DEFAULT),
        ("Local", "instance", [HTTP80], LOCAL_HTTP),
        ("Cluster", "instance", [SYSLOG], KUBE_PROXY),
        ("Local", "instance", [SYSLOG], LOCAL_HTTP),
        ("Cluster", "instance", [DNS_TCP, DNS_UDP], TCP_DEFAULT),
        ("Local", "instance", [DNS_TCP, DNS_UDP], LOCAL_HTTP),
        ("Cluster", "ip", [HTTP80], TCP_DEFAULT),
        ("Local", "ip", [HTTP80], TCP_DEFAULT),
        ("Cluster", "ip", [SYSLOG], TCP_DEFAULT),
    ],
)
def test_health_check_defaults(
    policy: str, target_type: str, ports: list[dict[str, Any]], expected: HealthCheck
) -> None:
    svc = service(
        ports,
        {key("nlb-target-type"): target_type},
        externalTrafficPolicy=policy,
        healthCheckNodePort=32000 if policy == "Local" else None,
    )
    (group,) = plan_of(svc).target_groups
    assert group.health == expected


@pytest.mark.parametrize(
    ("policy", "overrides", "expected"),
    [
        (
            "Cluster",
            {
                "protocol": "HTTP",
                "port": "8081",
                "path": "/ready",
                "interval": "20",
                "timeout": "5",
                "healthy-threshold": "4",
                "unhealthy-threshold": "5",
            },
            HealthCheck("HTTP", "8081", "/ready", 20, 5, 4, 5),
        ),
        ("Cluster", {"protocol": "HTTPS"}, HealthCheck("HTTPS", "traffic-port", "/", 30, 10, 3, 3)),
        (
            "Cluster",
            {"interval": "15", "timeout": "14"},
            replace(TCP_DEFAULT, interval=15, timeout=14),
        ),
        ("Local", {"port": "traffic-port"}, replace(LOCAL_HTTP, port="traffic-port")),
        ("Local", {"protocol": "TCP"}, HealthCheck("TCP", "32000", None, 10, 6, 2, 2)),
        ("Local", {"path": "/live"}, replace(LOCAL_HTTP, path="/live")),
        ("Local", {"healthy-threshold": "3"}, replace(LOCAL_HTTP, healthy_threshold=3)),
    ],
)
def test_health_check_overrides(
    policy: str, overrides: dict[str, str], expected: HealthCheck
) -> None:
    annotations = {key(f"healthcheck-{k}"): v for k, v in overrides.items()}
    svc = service([HTTP80], annotations, externalTrafficPolicy=policy, healthCheckNodePort=32000)
    assert plan_of(svc).target_groups[0].health == expected


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"path": "/ready"}, ["path /ready", "not TCP"]),
        ({"protocol": "TCP", "path": "/ready"}, ["path /ready"]),
        ({"interval": "10"}, ["timeout 10s", "interval 10s"]),
        ({"interval": "10", "timeout": "10"}, ["timeout 10s"]),
    ],
)
def test_invalid_health_checks(overrides: dict[str, str], words: list[str]) -> None:
    annotations = {key(f"healthcheck-{k}"): v for k, v in overrides.items()}
    message = plan_error(service([HTTP80], annotations), "InvalidHealthCheck")
    for word in words:
        assert word in message


def test_local_without_health_check_node_port() -> None:
    plan_error(service([HTTP80], externalTrafficPolicy="Local"), "MissingHealthCheckNodePort")


@pytest.mark.parametrize(
    ("change", "replaced"),
    [
        ({"ports": [HTTP80 | {"nodePort": 30081}]}, True),
        ({"externalTrafficPolicy": "Local", "healthCheckNodePort": 32000}, True),  # TCP -> HTTP
        ({"annotations": {key("nlb-target-type"): "ip"}}, True),
        (
            {"annotations": {key("healthcheck-interval"): "20", key("healthcheck-timeout"): "5"}},
            False,
        ),
        ({"annotations": {key("ssl-cert"): CERT}}, False),
        ({"ports": [HTTP80 | {"name": "web"}]}, False),
    ],
)
def test_replacement_needed(change: dict[str, Any], replaced: bool) -> None:
    before = plan_of(service([HTTP80])).target_groups[0]
    change = dict(change)
    ports = change.pop("ports", [HTTP80])
    annotations = change.pop("annotations", {})
    after = plan_of(service(ports, annotations, **change)).target_groups[0]
    assert after.key == before.key
    assert replacement_needed(before, after) is replaced


def test_health_check_changes() -> None:
    local = replace(LOCAL_HTTP, interval=20, path="/live")
    assert health_check_changes(LOCAL_HTTP, LOCAL_HTTP) == {}
    assert health_check_changes(LOCAL_HTTP, local) == {
        "HealthCheckIntervalSeconds": 20,
        "HealthCheckPath": "/live",
    }
    assert health_check_changes(LOCAL_HTTP, replace(LOCAL_HTTP, protocol="TCP", path=None)) == {
        "HealthCheckProtocol": "TCP"
    }
    everything = HealthCheck("HTTPS", "8443", "/x", 11, 7, 4, 5)
    assert health_check_changes(TCP_DEFAULT, everything) == {
        "HealthCheckProtocol": "HTTPS",
        "HealthCheckPort": "8443",
        "HealthCheckPath": "/x",
        "HealthCheckIntervalSeconds": 11,
        "HealthCheckTimeoutSeconds": 7,
        "HealthyThresholdCount": 4,
        "UnhealthyThresholdCount": 5,
    }


@pytest.mark.parametrize("check", [TCP_DEFAULT, LOCAL_HTTP, KUBE_PROXY])
def test_health_check_aws_round_trip(check: HealthCheck) -> None:
    described = check.to_aws() | {"TargetGroupArn": "arn:x", "Matcher": {"HttpCode": "200"}}
    if check.protocol == "TCP":
        described["HealthCheckPath"] = "/"  # what some endpoints report for TCP checks
    assert "HealthCheckPath" in check.to_aws() or check.path is None
    assert health_check_from_aws(described) == check


def test_attribute_changes() -> None:
    defaults = {"proxy_protocol_v2.enabled": "false", "stickiness.enabled": "false"}
    current = {"proxy_protocol_v2.enabled": "true", "stickiness.enabled": "false", "x": "1"}
    assert attribute_changes(current, {"proxy_protocol_v2.enabled": "true"}, defaults) == {}
    # the annotation is gone: back to the default
    assert attribute_changes(current, {}, defaults) == {"proxy_protocol_v2.enabled": "false"}
    assert attribute_changes(current, {}) == {}
    assert attribute_changes(current, {"stickiness.enabled": "true"}) == {
        "stickiness.enabled": "true"
    }


def test_tag_changes_remove_only_managed_keys() -> None:
    current = {"team": "a", "old": "x", "by-hand": "y", "lbctl.io/cluster": "prod"}
    desired = {"team": "b", "new": "z", "lbctl.io/cluster": "prod"}
    to_set, to_remove = tag_changes(current, desired, managed_keys=("team", "old", "gone"))
    assert to_set == {"team": "b", "new": "z"}
    assert to_remove == ("old",)
    assert tag_changes(current, desired) == (to_set, ())
    assert tag_changes(desired, desired, ("team",)) == ({}, ())
