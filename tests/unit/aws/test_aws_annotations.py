"""providers.aws.annotations: every annotation, good and bad values, all problems at once."""

from __future__ import annotations

from typing import Any

import pytest

from lbctl.domain.service import Service
from providers.aws.annotations import (
    PREFIX,
    SOURCE_RANGES_ANNOTATION,
    AnnotationError,
    HealthCheckOverrides,
    NLBConfig,
    Scheme,
    TargetType,
    key,
    parse,
)

UID = "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
CERT2 = "arn:aws:acm:us-east-1:123456789012:certificate/def"


def service(annotations: dict[str, str] | None = None, **spec: Any) -> Service:
    body: dict[str, Any] = {
        "type": "LoadBalancer",
        "loadBalancerClass": "lbctl.io/aws",
        "ports": [
            {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}
        ],
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


def with_(**short: str) -> dict[str, str]:
    """Annotations by suffix: ``with_(scheme="internal")``; ``_`` stands for ``-``."""
    return {key(k.replace("_", "-")): v for k, v in short.items()}


def problems_of(annotations: dict[str, str], **spec: Any) -> tuple[tuple[str, str], ...]:
    with pytest.raises(AnnotationError) as err:
        parse(service(annotations, **spec))
    assert err.value.reason == "InvalidAnnotation"
    assert str(err.value) == err.value.message
    return err.value.problems


def test_no_annotations_gives_the_defaults() -> None:
    assert parse(service()) == NLBConfig()
    assert NLBConfig().scheme is Scheme.INTERNET_FACING
    assert NLBConfig().target_type is TargetType.INSTANCE


@pytest.mark.parametrize(
    ("annotations", "default", "expected"),
    [
        ({}, Scheme.INTERNET_FACING, Scheme.INTERNET_FACING),
        ({}, Scheme.INTERNAL, Scheme.INTERNAL),
        (with_(scheme="internal"), Scheme.INTERNET_FACING, Scheme.INTERNAL),
        (with_(scheme="Internet-Facing"), Scheme.INTERNAL, Scheme.INTERNET_FACING),
        (with_(internal="true"), Scheme.INTERNET_FACING, Scheme.INTERNAL),
        (with_(internal="0.0.0.0/0"), Scheme.INTERNET_FACING, Scheme.INTERNAL),
        (with_(internal="yes"), Scheme.INTERNET_FACING, Scheme.INTERNAL),
        (with_(internal="false"), Scheme.INTERNAL, Scheme.INTERNET_FACING),
        (with_(internal="FALSE"), Scheme.INTERNAL, Scheme.INTERNET_FACING),
        (with_(internal=""), Scheme.INTERNAL, Scheme.INTERNAL),
        (with_(scheme="internet-facing", internal="true"), Scheme.INTERNAL, Scheme.INTERNET_FACING),
        (with_(scheme="internal", internal="false"), Scheme.INTERNET_FACING, Scheme.INTERNAL),
    ],
)
def test_scheme(annotations: dict[str, str], default: Scheme, expected: Scheme) -> None:
    assert parse(service(annotations), default_scheme=default).scheme is expected


GOOD: list[tuple[dict[str, str], str, object]] = [
    (with_(subnets="subnet-1, subnet-2"), "subnets", ("subnet-1", "subnet-2")),
    (with_(subnets="public-a,subnet-1,public-a"), "subnets", ("public-a", "subnet-1")),
    (with_(nlb_target_type="ip"), "target_type", TargetType.IP),
    (with_(nlb_target_type="Instance"), "target_type", TargetType.INSTANCE),
    (with_(healthcheck_protocol="http"), "health", HealthCheckOverrides(protocol="HTTP")),
    (with_(healthcheck_protocol="HTTPS"), "health", HealthCheckOverrides(protocol="HTTPS")),
    (with_(healthcheck_protocol="tcp"), "health", HealthCheckOverrides(protocol="TCP")),
    (with_(healthcheck_port="8081"), "health", HealthCheckOverrides(port=8081)),
    (
        with_(healthcheck_port="traffic-port"),
        "health",
        HealthCheckOverrides(port=None, traffic_port=True),
    ),
    (with_(healthcheck_path="/ready"), "health", HealthCheckOverrides(path="/ready")),
    (with_(healthcheck_interval="5"), "health", HealthCheckOverrides(interval=5)),
    (with_(healthcheck_interval="300"), "health", HealthCheckOverrides(interval=300)),
    (with_(healthcheck_timeout="2"), "health", HealthCheckOverrides(timeout=2)),
    (with_(healthcheck_timeout="120"), "health", HealthCheckOverrides(timeout=120)),
    (
        with_(healthcheck_healthy_threshold="2", healthcheck_unhealthy_threshold="10"),
        "health",
        HealthCheckOverrides(healthy_threshold=2, unhealthy_threshold=10),
    ),
    (
        with_(
            target_group_attributes="deregistration_delay.timeout_seconds=0,"
            " stickiness.enabled=True, stickiness.type=source_ip,"
            "preserve_client_ip.enabled=false,"
            "deregistration_delay.connection_termination.enabled=true"
        ),
        "target_group_attributes",
        {
            "deregistration_delay.timeout_seconds": "0",
            "stickiness.enabled": "true",
            "stickiness.type": "source_ip",
            "preserve_client_ip.enabled": "false",
            "deregistration_delay.connection_termination.enabled": "true",
        },
    ),
    (
        with_(target_group_attributes="deregistration_delay.timeout_seconds=3600"),
        "target_group_attributes",
        {"deregistration_delay.timeout_seconds": "3600"},
    ),
    (
        with_(proxy_protocol="*"),
        "target_group_attributes",
        {"proxy_protocol_v2.enabled": "true"},
    ),
    (
        with_(proxy_protocol="*", target_group_attributes="proxy_protocol_v2.enabled=true"),
        "target_group_attributes",
        {"proxy_protocol_v2.enabled": "true"},
    ),
    (with_(ssl_cert=CERT), "ssl_cert", (CERT,)),
    (with_(ssl_cert=f"{CERT}, {CERT2}"), "ssl_cert", (CERT, CERT2)),
    (with_(ssl_cert=CERT), "ssl_ports", ("*",)),
    (with_(ssl_cert=CERT, ssl_ports="443, https,443"), "ssl_ports", ("443", "https")),
    (with_(ssl_cert=CERT, ssl_ports="*"), "ssl_ports", ("*",)),
    (
        with_(ssl_cert=CERT, ssl_negotiation_policy="ELBSecurityPolicy-TLS13-1-2-2021-06"),
        "ssl_negotiation_policy",
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
    ),
    (
        with_(additional_resource_tags="team=payments, cost-center = 42,empty="),
        "additional_tags",
        {"team": "payments", "cost-center": "42", "empty": ""},
    ),
    (with_(additional_resource_tags="bare"), "additional_tags", {"bare": ""}),
    (
        with_(additional_resource_tags="a/b:c=x y_z+@.-="),
        "additional_tags",
        {"a/b:c": "x y_z+@.-="},
    ),
    (with_(cross_zone_load_balancing_enabled="true"), "cross_zone", True),
    (with_(cross_zone_load_balancing_enabled="FALSE"), "cross_zone", False),
    (
        with_(eip_allocations="eipalloc-0a1b, eipalloc-2c3d"),
        "eip_allocations",
        ("eipalloc-0a1b", "eipalloc-2c3d"),
    ),
    (
        {SOURCE_RANGES_ANNOTATION: "10.0.0.0/8, 192.168.1.7/24"},
        "source_ranges",
        ("10.0.0.0/8", "192.168.1.0/24"),
    ),
    ({SOURCE_RANGES_ANNOTATION: "2001:db8::/32"}, "source_ranges", ("2001:db8::/32",)),
]


@pytest.mark.parametrize(("annotations", "field", "expected"), GOOD)
def test_good_values(annotations: dict[str, str], field: str, expected: object) -> None:
    assert getattr(parse(service(annotations)), field) == expected


BAD: list[tuple[str, str, str]] = [
    ("scheme", "public", '"public" is neither internet-facing nor internal'),
    ("nlb-target-type", "pod", '"pod" is neither instance nor ip'),
    ("healthcheck-protocol", "UDP", '"UDP" is not TCP, HTTP or HTTPS'),
    ("healthcheck-port", "0", '"0" is not an integer between 1 and 65535, nor traffic-port'),
    ("healthcheck-port", "http", "nor traffic-port"),
    ("healthcheck-port", "65536", "between 1 and 65535"),
    ("healthcheck-path", "healthz", "must start with /"),
    ("healthcheck-path", "/" + "x" * 1024, "must start with /"),
    ("healthcheck-interval", "abc", '"abc" is not an integer between 5 and 300'),
    ("healthcheck-interval", "4", "between 5 and 300"),
    ("healthcheck-interval", "301", "between 5 and 300"),
    ("healthcheck-interval", "-10", "between 5 and 300"),
    ("healthcheck-interval", "10.5", "between 5 and 300"),
    ("healthcheck-timeout", "1", "between 2 and 120"),
    ("healthcheck-timeout", "121", "between 2 and 120"),
    ("healthcheck-healthy-threshold", "1", "between 2 and 10"),
    ("healthcheck-unhealthy-threshold", "11", "between 2 and 10"),
    ("target-group-attributes", "load_balancing.algorithm.type=lor", "is not supported"),
    ("target-group-attributes", "proxy_protocol_v2.enabled=yes", "must be true or false"),
    ("target-group-attributes", "deregistration_delay.timeout_seconds=3601", "between 0 and 3600"),
    ("target-group-attributes", "stickiness.type=lb_cookie", "must be source_ip"),
    ("target-group-attributes", "stickiness.enabled", "is not key=value"),
    ("target-group-attributes", "stickiness.enabled=true,stickiness.enabled=false", "twice"),
    ("proxy-protocol", "true", 'is not "*"'),
    ("ssl-cert", "my-cert", '"my-cert" is not an ARN'),
    ("ssl-ports", "443", "needs " + PREFIX + "ssl-cert"),
    ("ssl-negotiation-policy", " ", "is empty"),
    ("additional-resource-tags", "lbctl.io/cluster=x", "is reserved"),
    ("additional-resource-tags", "lbctl.io/service-uid=x", "is reserved"),
    ("additional-resource-tags", "kubernetes.io/cluster/prod=owned", "is reserved"),
    ("additional-resource-tags", "aws:cloudformation:stack-name=x", "is reserved"),
    ("additional-resource-tags", "k" * 129 + "=v", "1-128"),
    ("additional-resource-tags", "k=" + "v" * 257, "0-256"),
    ("additional-resource-tags", "k=v!", "0-256"),
    ("additional-resource-tags", "=v", "is not key=value"),
    ("additional-resource-tags", "a=1,a=2", "twice"),
    (
        "additional-resource-tags",
        ",".join(f"k{i}=v" for i in range(41)),
        "41 tags, at most 40",
    ),
    ("cross-zone-load-balancing-enabled", "yes", '"yes" is not a boolean'),
    ("cross-zone-load-balancing-enabled", "1", "is not a boolean"),
    ("eip-allocations", "eip-123", "not eipalloc-<hex>"),
    ("eip-allocations", "eipalloc-xyz", "not eipalloc-<hex>"),
    ("eip-allocations", "eipalloc-1,eipalloc-1", "listed twice"),
    ("eip-allocations", " , ", "lists no allocation"),
    ("subnets", " , ", "lists no subnet"),
]


@pytest.mark.parametrize(("suffix", "value", "message"), BAD)
def test_bad_values(suffix: str, value: str, message: str) -> None:
    annotations = {key(suffix): value}
    if suffix == "ssl-negotiation-policy":
        annotations[key("ssl-cert")] = CERT
    problems = problems_of(annotations)
    assert [k for k, _ in problems] == [key(suffix)]
    assert message in problems[0][1]


def test_error_text_names_the_annotation_and_quotes_the_value() -> None:
    with pytest.raises(AnnotationError) as err:
        parse(service(with_(healthcheck_interval="abc")))
    assert str(err.value) == (
        "service.beta.kubernetes.io/aws-load-balancer-healthcheck-interval: "
        '"abc" is not an integer between 5 and 300'
    )


def test_unsupported_attribute_error_lists_the_allowed_keys() -> None:
    (problem,) = problems_of(with_(target_group_attributes="slow_start.duration_seconds=30"))
    for allowed in ("proxy_protocol_v2.enabled", "stickiness.type", "preserve_client_ip.enabled"):
        assert allowed in problem[1]


def test_every_problem_is_reported_at_once() -> None:
    annotations = with_(
        scheme="public",
        healthcheck_interval="abc",
        healthcheck_timeout="0",
        target_group_attributes="foo=bar",
        ssl_ports="443",
        cross_zone_load_balancing_enabled="maybe",
        additional_resource_tags="aws:x=1",
    )
    problems = problems_of(annotations)
    assert {k for k, _ in problems} == set(annotations)
    assert len(problems) == len(annotations)
    with pytest.raises(AnnotationError) as err:
        parse(service(annotations))
    text = str(err.value)
    assert text.count("; ") == len(annotations) - 1
    for k in annotations:
        assert k in text


def test_problems_come_in_a_fixed_order() -> None:
    annotations = with_(healthcheck_interval="x", eip_allocations="nope", subnets=",")
    reordered = dict(reversed(list(annotations.items())))
    assert problems_of(annotations) == problems_of(reordered)


def test_eip_allocations_need_internet_facing() -> None:
    problems = problems_of(with_(scheme="internal", eip_allocations="eipalloc-1"))
    assert problems == (
        (key("eip-allocations"), "only an internet-facing load balancer takes EIPs"),
    )
    assert parse(service(with_(eip_allocations="eipalloc-1"))).eip_allocations == ("eipalloc-1",)


def test_proxy_protocol_conflicting_with_an_explicit_false() -> None:
    problems = problems_of(
        with_(proxy_protocol="*", target_group_attributes="proxy_protocol_v2.enabled=false")
    )
    assert [k for k, _ in problems] == [key("proxy-protocol")]
    assert "conflicts" in problems[0][1]


def test_ssl_ports_star_cannot_be_mixed_and_empty_is_an_error() -> None:
    assert "cannot be combined" in problems_of(with_(ssl_cert=CERT, ssl_ports="*,443"))[0][1]
    assert problems_of(with_(ssl_cert=CERT, ssl_ports=","))[0][1] == "lists no port"


def test_tls_fields_are_empty_without_a_certificate() -> None:
    config = parse(service())
    assert (config.ssl_cert, config.ssl_ports, config.ssl_negotiation_policy) == ((), (), None)


def test_forty_additional_tags_are_allowed() -> None:
    tags = ",".join(f"k{i}=v" for i in range(40))
    assert len(parse(service(with_(additional_resource_tags=tags))).additional_tags) == 40


@pytest.mark.parametrize(
    ("spec_ranges", "annotation", "expected"),
    [
        ([], None, ()),
        (["10.1.0.0/16"], "192.168.0.0/16", ("10.1.0.0/16",)),
        ([], "192.168.0.0/16,10.0.0.0/8", ("192.168.0.0/16", "10.0.0.0/8")),
        (["10.1.2.3/16", "10.1.0.0/16"], None, ("10.1.0.0/16",)),
        (["203.0.113.7/32"], None, ("203.0.113.7/32",)),
    ],
)
def test_source_ranges(
    spec_ranges: list[str], annotation: str | None, expected: tuple[str, ...]
) -> None:
    annotations = {} if annotation is None else {SOURCE_RANGES_ANNOTATION: annotation}
    svc = service(annotations, loadBalancerSourceRanges=spec_ranges)
    assert parse(svc).source_ranges == expected


def test_bad_source_ranges_name_where_they_come_from() -> None:
    problems = problems_of({}, loadBalancerSourceRanges=["10.0.0.0/33"])
    assert problems == (("spec.loadBalancerSourceRanges", '"10.0.0.0/33" is not a CIDR'),)
    problems = problems_of({SOURCE_RANGES_ANNOTATION: "nope"})
    assert problems == ((SOURCE_RANGES_ANNOTATION, '"nope" is not a CIDR'),)


def test_unimplemented_annotations_are_listed_not_refused() -> None:
    annotations = {
        key("security-groups"): "sg-1",
        key("access-log-enabled"): "true",
        key("type"): "nlb",
        key("scheme"): "internal",
        "example.com/other": "x",
    }
    assert parse(service(annotations)).ignored == (
        key("access-log-enabled"),
        key("security-groups"),
    )
