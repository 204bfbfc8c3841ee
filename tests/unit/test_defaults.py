"""Service defaulting and IP-family initialisation, as kube-apiserver does them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbctl.domain.defaults import apply_defaults, init_ip_families, prepare_update
from lbctl.domain.fielderrors import FieldErrors
from lbctl.domain.service import IPFamily, Service
from lbctl.domain.validation import validate_service

JSON = dict[str, Any]
V4 = (IPFamily.IPV4,)
V6 = (IPFamily.IPV6,)
DUAL = (IPFamily.IPV4, IPFamily.IPV6)
DUAL6 = (IPFamily.IPV6, IPFamily.IPV4)
INVALID = "FieldValueInvalid"


def svc(spec: JSON, status: JSON | None = None) -> Service:
    obj: JSON = {"metadata": {"name": "web", "namespace": "default"}, "spec": spec}
    if status is not None:
        obj["status"] = status
    return Service.from_dict(obj)


def triples(errors: FieldErrors) -> list[tuple[str, str, str]]:
    return [(e.field, e.reason.value, e.message) for e in errors]


DEFAULT_CASES: list[tuple[str, JSON, JSON]] = [
    (
        "cluster-ip",
        {"ports": [{"port": 80}]},
        {
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
        },
    ),
    (
        "keeps-given-values",
        {
            "type": "NodePort",
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
            "externalTrafficPolicy": "Local",
            "internalTrafficPolicy": "Local",
            "ports": [{"port": 53, "protocol": "UDP", "targetPort": "dns"}],
        },
        {
            "type": "NodePort",
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
            "externalTrafficPolicy": "Local",
            "internalTrafficPolicy": "Local",
            "ports": [{"port": 53, "protocol": "UDP", "targetPort": "dns"}],
        },
    ),
    (
        "target-port-zero-or-empty",
        {
            "ports": [
                {"name": "a", "port": 80, "targetPort": 0},
                {"name": "b", "port": 81, "targetPort": ""},
            ]
        },
        {
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
            "ports": [
                {"name": "a", "port": 80, "protocol": "TCP", "targetPort": 80},
                {"name": "b", "port": 81, "protocol": "TCP", "targetPort": 81},
            ],
        },
    ),
    (
        "load-balancer",
        {"type": "LoadBalancer", "ports": [{"port": 443, "targetPort": 8443}]},
        {
            "type": "LoadBalancer",
            "sessionAffinity": "None",
            "externalTrafficPolicy": "Cluster",
            "internalTrafficPolicy": "Cluster",
            "allocateLoadBalancerNodePorts": True,
            "ports": [{"port": 443, "protocol": "TCP", "targetPort": 8443}],
        },
    ),
    (
        "load-balancer-keeps-allocate-false",
        {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": False},
        {
            "type": "LoadBalancer",
            "sessionAffinity": "None",
            "externalTrafficPolicy": "Cluster",
            "internalTrafficPolicy": "Cluster",
            "allocateLoadBalancerNodePorts": False,
        },
    ),
    (
        "external-ips-make-cluster-ip-external",
        {"externalIPs": ["192.0.2.1"]},
        {
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "externalIPs": ["192.0.2.1"],
            "externalTrafficPolicy": "Cluster",
            "internalTrafficPolicy": "Cluster",
        },
    ),
    (
        "external-name-gets-no-traffic-policies",
        {"type": "ExternalName", "externalName": "db.example.com"},
        {"type": "ExternalName", "externalName": "db.example.com", "sessionAffinity": "None"},
    ),
    (
        "client-ip-gets-timeout",
        {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {}}},
        {
            "type": "ClusterIP",
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
            "internalTrafficPolicy": "Cluster",
        },
    ),
    (
        "none-affinity-drops-config",
        {"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}},
        {"type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"},
    ),
    (
        "cluster-ip-fills-cluster-ips",
        {"clusterIP": "10.96.0.10"},
        {
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
        },
    ),
    (
        "cluster-ips-alone-left-for-validation",
        {"clusterIPs": ["10.96.0.10"]},
        {
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
            "clusterIPs": ["10.96.0.10"],
        },
    ),
    (
        "unknown-type-left-for-validation",
        {"type": "Weird"},
        {"type": "Weird", "sessionAffinity": "None"},
    ),
]


@pytest.mark.parametrize(
    ("spec", "expected"), [pytest.param(spec, exp, id=cid) for cid, spec, exp in DEFAULT_CASES]
)
def test_apply_defaults(spec: JSON, expected: JSON) -> None:
    assert apply_defaults(svc(spec)).to_dict()["spec"] == expected


def test_ingress_ip_mode_defaults_to_vip_on_load_balancers_only() -> None:
    status = {
        "loadBalancer": {
            "ingress": [
                {"ip": "192.0.2.1"},
                {"hostname": "lb.example.com"},
                {"ip": "192.0.2.2", "ipMode": "Proxy"},
            ]
        }
    }
    lb = apply_defaults(svc({"type": "LoadBalancer"}, status))
    assert lb.to_dict()["status"]["loadBalancer"]["ingress"] == [
        {"ip": "192.0.2.1", "ipMode": "VIP"},
        {"hostname": "lb.example.com"},
        {"ip": "192.0.2.2", "ipMode": "Proxy"},
    ]
    cluster_ip = apply_defaults(svc({}, status))
    assert cluster_ip.status.ingress[0].ip_mode is None


def test_apply_defaults_keeps_unknown_fields() -> None:
    service = svc({"trafficDistribution": "PreferClose", "ports": [{"port": 80, "x-extra": 1}]})
    spec = apply_defaults(service).to_dict()["spec"]
    assert spec["trafficDistribution"] == "PreferClose"
    assert spec["ports"][0]["x-extra"] == 1


FAMILY_CASES: list[tuple[str, JSON, tuple[IPFamily, ...], tuple[str, ...], str]] = [
    ("unset-single-stack-cluster", {}, V4, ("IPv4",), "SingleStack"),
    ("unset-ipv6-cluster", {}, V6, ("IPv6",), "SingleStack"),
    ("unset-dual-cluster-stays-single", {}, DUAL, ("IPv4",), "SingleStack"),
    (
        "prefer-dual-on-single-cluster",
        {"ipFamilyPolicy": "PreferDualStack"},
        V4,
        ("IPv4",),
        "PreferDualStack",
    ),
    (
        "prefer-dual-on-dual-cluster",
        {"ipFamilyPolicy": "PreferDualStack"},
        DUAL,
        ("IPv4", "IPv6"),
        "PreferDualStack",
    ),
    (
        "require-dual-primary-v6",
        {"ipFamilyPolicy": "RequireDualStack"},
        DUAL6,
        ("IPv6", "IPv4"),
        "RequireDualStack",
    ),
    ("family-from-cluster-ip", {"clusterIP": "fd00::10"}, DUAL, ("IPv6",), "SingleStack"),
    (
        "families-from-two-cluster-ips",
        {
            "clusterIP": "fd00::10",
            "clusterIPs": ["fd00::10", "10.96.0.10"],
            "ipFamilyPolicy": "RequireDualStack",
        },
        DUAL,
        ("IPv6", "IPv4"),
        "RequireDualStack",
    ),
    ("ipv4-mapped-is-ipv4", {"clusterIP": "::ffff:10.96.0.10"}, V4, ("IPv4",), "SingleStack"),
    (
        "given-second-family",
        {"ipFamilies": ["IPv6"], "ipFamilyPolicy": "PreferDualStack"},
        DUAL,
        ("IPv6", "IPv4"),
        "PreferDualStack",
    ),
    ("headless-selectorless-dual", {"clusterIP": "None"}, V4, ("IPv4", "IPv6"), "RequireDualStack"),
    (
        "headless-selectorless-v6-cluster",
        {"clusterIP": "None", "ipFamilies": ["IPv6"]},
        V4,
        ("IPv6", "IPv4"),
        "RequireDualStack",
    ),
    (
        "headless-with-selector-single",
        {"clusterIP": "None", "selector": {"a": "b"}},
        DUAL,
        ("IPv4",),
        "SingleStack",
    ),
    (
        "headless-selectorless-single-stack",
        {"clusterIP": "None", "ipFamilyPolicy": "SingleStack"},
        V6,
        ("IPv6",),
        "SingleStack",
    ),
]


@pytest.mark.parametrize(
    ("spec", "cluster", "families", "policy"),
    [pytest.param(spec, c, f, p, id=cid) for cid, spec, c, f, p in FAMILY_CASES],
)
def test_init_ip_families(
    spec: JSON, cluster: tuple[IPFamily, ...], families: tuple[str, ...], policy: str
) -> None:
    result, errors = init_ip_families(apply_defaults(svc(spec)), cluster_families=cluster)
    assert triples(errors) == []
    assert result.spec.ip_families == families
    assert result.spec.ip_family_policy == policy


def test_external_name_is_left_alone() -> None:
    service = apply_defaults(svc({"type": "ExternalName", "externalName": "db.example.com"}))
    result, errors = init_ip_families(service, cluster_families=DUAL)
    assert result == service
    assert triples(errors) == []


FAMILY_ERROR_CASES: list[tuple[str, JSON, tuple[IPFamily, ...], list[tuple[str, str, str]]]] = [
    (
        "require-dual-on-single-cluster",
        {"ipFamilyPolicy": "RequireDualStack"},
        V4,
        [
            (
                "spec.ipFamilyPolicy",
                INVALID,
                'Invalid value: "RequireDualStack": this cluster is not configured for dual-stack'
                " services",
            )
        ],
    ),
    (
        "family-not-on-cluster",
        {"ipFamilies": ["IPv6"]},
        V4,
        [("spec.ipFamilies[0]", INVALID, 'Invalid value: "IPv6": not configured on this cluster')],
    ),
    (
        "cluster-ip-family-not-on-cluster",
        {"clusterIP": "fd00::10"},
        V4,
        [
            (
                "spec.clusterIPs[0]",
                INVALID,
                'Invalid value: ["fd00::10"]: IPv6 is not configured on this cluster',
            )
        ],
    ),
    (
        "single-stack-with-two-ips-and-families",
        {
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10", "fd00::10"],
            "ipFamilies": ["IPv4", "IPv6"],
            "ipFamilyPolicy": "SingleStack",
        },
        DUAL,
        [
            (
                "spec.ipFamilyPolicy",
                INVALID,
                "Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack'"
                " when multiple cluster IPs are specified",
            ),
            (
                "spec.ipFamilyPolicy",
                INVALID,
                "Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack'"
                " when multiple IP families are specified",
            ),
        ],
    ),
    (
        "field-rules-first",
        {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.11"], "ipFamilies": ["IPv6"]},
        V4,
        [
            (
                "spec.clusterIPs",
                INVALID,
                'Invalid value: ["10.96.0.11"]: first value must match `clusterIP`',
            ),
            (
                "spec.clusterIPs[0]",
                INVALID,
                'Invalid value: "10.96.0.11": expected an IPv6 value as indicated by'
                " `ipFamilies[0]`",
            ),
        ],
    ),
]


@pytest.mark.parametrize(
    ("spec", "cluster", "expected"),
    [pytest.param(spec, c, exp, id=cid) for cid, spec, c, exp in FAMILY_ERROR_CASES],
)
def test_init_ip_families_errors(
    spec: JSON, cluster: tuple[IPFamily, ...], expected: list[tuple[str, str, str]]
) -> None:
    _, errors = init_ip_families(apply_defaults(svc(spec)), cluster_families=cluster)
    assert triples(errors) == expected


DUAL_STORED: JSON = {
    "clusterIP": "10.96.0.10",
    "clusterIPs": ["10.96.0.10", "fd00::10"],
    "ipFamilies": ["IPv4", "IPv6"],
    "ipFamilyPolicy": "PreferDualStack",
}


def test_update_adopts_stored_policy() -> None:
    old = apply_defaults(svc(DUAL_STORED))
    new = apply_defaults(svc({k: v for k, v in DUAL_STORED.items() if k != "ipFamilyPolicy"}))
    result, errors = init_ip_families(new, cluster_families=DUAL, old=old)
    assert triples(errors) == []
    assert result.spec.ip_family_policy == "PreferDualStack"


def test_unchanged_prefer_dual_stack_survives_cluster_downgrade() -> None:
    old = apply_defaults(svc(DUAL_STORED))
    result, errors = init_ip_families(old, cluster_families=V4, old=old)
    assert triples(errors) == []
    assert result.spec.ip_families == ("IPv4", "IPv6")


def test_downgrade_by_policy_drops_secondary() -> None:
    old = apply_defaults(svc(DUAL_STORED))
    new = apply_defaults(svc({**DUAL_STORED, "ipFamilyPolicy": "SingleStack"}))
    result, errors = init_ip_families(new, cluster_families=DUAL, old=old)
    assert triples(errors) == []
    assert result.spec.cluster_ips == ("10.96.0.10",)
    assert result.spec.ip_families == ("IPv4",)


def test_downgrade_without_single_stack_is_refused() -> None:
    old = apply_defaults(svc({**DUAL_STORED, "ipFamilyPolicy": "RequireDualStack"}))
    new = apply_defaults(
        svc(
            {
                **DUAL_STORED,
                "ipFamilyPolicy": "RequireDualStack",
                "clusterIPs": ["10.96.0.10"],
                "ipFamilies": ["IPv4"],
            }
        )
    )
    _, errors = init_ip_families(new, cluster_families=DUAL, old=old)
    assert triples(errors) == [
        (
            "spec.ipFamilyPolicy",
            INVALID,
            "Invalid value: \"RequireDualStack\": must be 'SingleStack' to release the secondary"
            " cluster IP",
        ),
        (
            "spec.ipFamilyPolicy",
            INVALID,
            "Invalid value: \"RequireDualStack\": must be 'SingleStack' to release the secondary"
            " IP family",
        ),
    ]


def test_upgrade_to_dual_adds_secondary_family() -> None:
    old = apply_defaults(
        svc({"clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"})
    )
    new = apply_defaults(
        svc(
            {
                "clusterIP": "10.96.0.10",
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "RequireDualStack",
            }
        )
    )
    result, errors = init_ip_families(new, cluster_families=DUAL, old=old)
    assert triples(errors) == []
    assert result.spec.ip_families == ("IPv4", "IPv6")


STORED_NODEPORT: JSON = {
    "type": "NodePort",
    "clusterIP": "10.96.0.10",
    "clusterIPs": ["10.96.0.10"],
    "ports": [
        {"name": "http", "port": 80, "nodePort": 30080},
        {"name": "https", "port": 443, "nodePort": 30443},
    ],
}


def test_prepare_update_keeps_allocated_values() -> None:
    old = apply_defaults(svc(STORED_NODEPORT))
    new = apply_defaults(
        svc(
            {
                "type": "NodePort",
                "ports": [{"name": "https", "port": 443}, {"name": "http", "port": 80}],
            }
        )
    )
    result = prepare_update(new, old)
    assert result.spec.cluster_ip == "10.96.0.10"
    assert result.spec.cluster_ips == ("10.96.0.10",)
    assert [(p.name, p.node_port) for p in result.spec.ports] == [("https", 30443), ("http", 30080)]


def test_prepare_update_does_not_reuse_a_node_port_still_taken() -> None:
    old = apply_defaults(svc(STORED_NODEPORT))
    new = apply_defaults(
        svc(
            {
                "type": "NodePort",
                "ports": [
                    {"name": "http", "port": 80},
                    {"name": "https", "port": 443, "nodePort": 30080},
                ],
            }
        )
    )
    result = prepare_update(new, old)
    assert [p.node_port for p in result.spec.ports] == [0, 30080]


def test_prepare_update_changed_cluster_ip_resyncs_cluster_ips() -> None:
    old = apply_defaults(svc(STORED_NODEPORT))
    new = apply_defaults(svc({**STORED_NODEPORT, "clusterIP": "10.96.0.11"}))
    assert prepare_update(new, old).spec.cluster_ips == ("10.96.0.11",)


def test_prepare_update_clearing_cluster_ip_clears_unchanged_cluster_ips() -> None:
    old = apply_defaults(svc(STORED_NODEPORT))
    new = apply_defaults(svc({**STORED_NODEPORT, "type": "ExternalName", "clusterIP": ""}))
    result = prepare_update(new, old)
    assert (result.spec.cluster_ip, result.spec.cluster_ips) == ("", ())


def test_prepare_update_keeps_health_check_node_port() -> None:
    local = {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000}
    old = apply_defaults(svc(local))
    new = apply_defaults(svc({**local, "healthCheckNodePort": 0}))
    assert prepare_update(new, old).spec.health_check_node_port == 31000


def test_prepare_update_leaves_external_name_alone() -> None:
    old = apply_defaults(svc(STORED_NODEPORT))
    new = apply_defaults(svc({"type": "ExternalName", "externalName": "db.example.com"}))
    assert prepare_update(new, old).spec.cluster_ip == ""


@pytest.mark.parametrize(
    "spec",
    [
        {"ports": [{"port": 80}], "selector": {"app": "web"}, "clusterIP": "10.96.0.10"},
        {
            "type": "LoadBalancer",
            "ports": [{"port": 80, "nodePort": 30080}],
            "clusterIP": "10.96.0.10",
        },
        {"type": "ExternalName", "externalName": "db.example.com"},
        {"clusterIP": "None"},
    ],
    ids=["cluster-ip", "load-balancer", "external-name", "headless"],
)
def test_defaulted_minimal_services_validate(spec: JSON) -> None:
    service, errors = init_ip_families(apply_defaults(svc(spec)), cluster_families=V4)
    assert triples(errors) == []
    assert triples(validate_service(service)) == []


_specs = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["", "ClusterIP", "NodePort", "LoadBalancer", "ExternalName", "X"]),
        "ports": st.lists(
            st.fixed_dictionaries(
                {"port": st.integers(-5, 70000)},
                optional={
                    "protocol": st.sampled_from(["", "TCP", "UDP"]),
                    "targetPort": st.integers(0, 5) | st.sampled_from(["", "http"]),
                },
            ),
            max_size=3,
        ),
        "clusterIP": st.sampled_from(["", "None", "10.96.0.10", "fd00::1", "junk"]),
        "externalIPs": st.lists(st.sampled_from(["192.0.2.1", "x"]), max_size=2),
        "sessionAffinity": st.sampled_from(["", "None", "ClientIP", "Other"]),
        "externalTrafficPolicy": st.sampled_from(["", "Local"]),
        "ipFamilyPolicy": st.sampled_from(
            ["SingleStack", "PreferDualStack", "RequireDualStack", "x"]
        ),
        "ipFamilies": st.lists(st.sampled_from(["IPv4", "IPv6", "x"]), max_size=3),
        "selector": st.dictionaries(st.sampled_from(["a", "b"]), st.just("x"), max_size=1),
    },
)


@settings(max_examples=200, deadline=None)
@given(spec=_specs, cluster=st.sampled_from([V4, V6, DUAL, DUAL6]))
def test_defaulting_is_idempotent_and_never_raises(
    spec: JSON, cluster: tuple[IPFamily, ...]
) -> None:
    once = apply_defaults(svc(spec))
    assert apply_defaults(once) == once
    result, errors = init_ip_families(once, cluster_families=cluster)
    assert isinstance(errors, FieldErrors)
    if not errors:
        again, second = init_ip_families(result, cluster_families=cluster)
        assert (again, list(second)) == (result, [])
