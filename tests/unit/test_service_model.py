"""The Service model: parse, serialise, and lose nothing on the way."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbctl.domain.service import DecodeError, Service

FULL: dict[str, Any] = {
    "kind": "Service",
    "apiVersion": "v1",
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "uid": "0b6f4c1e-4b9e-4a8e-9d2a-1f1f1f1f1f1f",
        "resourceVersion": "42",
        "labels": {"app": "web"},
        "annotations": {"lbctl.io/allow-shared-ip": "web"},
        "finalizers": ["service.kubernetes.io/load-balancer-cleanup"],
        "creationTimestamp": "2026-11-22T00:00:00Z",
        "managedFields": [{"manager": "kubectl", "operation": "Update"}],
    },
    "spec": {
        "type": "LoadBalancer",
        "clusterIP": "10.96.0.10",
        "clusterIPs": ["10.96.0.10", "fd00::a"],
        "ipFamilies": ["IPv4", "IPv6"],
        "ipFamilyPolicy": "PreferDualStack",
        "ports": [
            {
                "name": "dns-tcp",
                "protocol": "TCP",
                "port": 53,
                "targetPort": 5353,
                "nodePort": 30053,
                "appProtocol": "dns",
            },
            {
                "name": "dns-udp",
                "protocol": "UDP",
                "port": 53,
                "targetPort": "dns",
                "nodePort": 30053,
            },
        ],
        "selector": {"app": "web"},
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
        "externalTrafficPolicy": "Local",
        "internalTrafficPolicy": "Cluster",
        "healthCheckNodePort": 31000,
        "loadBalancerClass": "lbctl.io/baremetal",
        "loadBalancerIP": "192.0.2.10",
        "loadBalancerSourceRanges": ["198.51.100.0/24"],
        "allocateLoadBalancerNodePorts": True,
        "publishNotReadyAddresses": True,
        "trafficDistribution": "PreferClose",
    },
    "status": {
        "loadBalancer": {
            "ingress": [
                {
                    "ip": "192.0.2.10",
                    "ipMode": "VIP",
                    "ports": [{"port": 53, "protocol": "SCTP", "error": "UnsupportedProtocol"}],
                },
                {"hostname": "a1b2.elb.example", "futureField": 1},
            ]
        },
        "conditions": [
            {
                "type": "LoadBalancerPortsError",
                "status": "True",
                "observedGeneration": 3,
                "lastTransitionTime": "2026-11-22T00:00:00Z",
                "reason": "UnsupportedProtocol",
                "message": "SCTP is not supported",
            },
        ],
    },
}


def test_full_round_trip_is_exact() -> None:
    original = copy.deepcopy(FULL)
    svc = Service.from_dict(original)
    assert svc.to_dict() == FULL
    assert original == FULL, "parsing changed its input"


def test_typed_fields() -> None:
    svc = Service.from_dict(FULL)
    assert svc.key == "shop/web"
    assert svc.spec.ports[1].target_port == "dns"
    assert svc.spec.ports[0].app_protocol == "dns"
    assert svc.spec.health_check_node_port == 31000
    assert svc.spec.allocate_load_balancer_node_ports is True
    assert svc.status.ingress[0].ports[0].error == "UnsupportedProtocol"
    assert svc.status.conditions[0].observed_generation == 3
    assert svc.metadata.extra["managedFields"][0]["manager"] == "kubectl"
    assert svc.spec.extra["trafficDistribution"] == "PreferClose"
    assert svc.status.ingress[1].extra == {"futureField": 1}


def test_empty_and_null_fields_are_left_out_like_go() -> None:
    svc = Service.from_dict(
        {
            "metadata": {"name": "a", "labels": None},
            "spec": {"ports": [{"port": 80, "nodePort": None}], "selector": {}},
        }
    )
    assert svc.to_dict() == {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": "a"},
        "spec": {"ports": [{"port": 80}]},
        "status": {"loadBalancer": {}},
    }


def test_replace_helpers_return_new_values() -> None:
    svc = Service.from_dict(FULL)
    other = svc.replace_spec(type="NodePort").replace_status(ingress=())
    assert (svc.spec.type, other.spec.type) == ("LoadBalancer", "NodePort")
    assert other.to_dict()["status"] == {
        "loadBalancer": {},
        "conditions": FULL["status"]["conditions"],
    }


@pytest.mark.parametrize(
    ("body", "path", "detail"),
    [
        ([], "", "expected an object, got array"),
        ({"spec": []}, "spec", "expected an object, got array"),
        ({"spec": {"ports": [{"port": "80"}]}}, "spec.ports[0].port", "expected int32, got string"),
        ({"spec": {"ports": [{"port": True}]}}, "spec.ports[0].port", "expected int32, got bool"),
        ({"spec": {"ports": {"port": 80}}}, "spec.ports", "expected array, got object"),
        ({"spec": {"ports": [7]}}, "spec.ports[0]", "expected an object, got number"),
        ({"spec": {"clusterIPs": [1]}}, "spec.clusterIPs[0]", "expected string, got number"),
        ({"spec": {"selector": {"a": 1}}}, "spec.selector.a", "expected string, got number"),
        (
            {"spec": {"ports": [{"port": 80, "targetPort": 1.5}]}},
            "spec.ports[0].targetPort",
            "expected int or string, got number",
        ),
        ({"metadata": {"name": 5}}, "metadata.name", "expected string, got number"),
        (
            {"spec": {"allocateLoadBalancerNodePorts": "yes"}},
            "spec.allocateLoadBalancerNodePorts",
            "expected bool, got string",
        ),
        (
            {"status": {"loadBalancer": {"ingress": [{"ports": [{"port": "x"}]}]}}},
            "status.loadBalancer.ingress[0].ports[0].port",
            "expected int32, got string",
        ),
    ],
)
def test_decode_errors_name_the_field(body: Any, path: str, detail: str) -> None:
    with pytest.raises(DecodeError) as info:
        Service.from_dict(body)
    assert (info.value.path, info.value.detail) == (path, detail)


# -- round trip of anything shaped like a Service, unknown fields included --------------
names = st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=8)
unknown_keys = names.map(lambda s: "x" + s)  # never a field the model knows
scalars = st.one_of(st.integers(-5, 70000), names, st.booleans())
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=6,
)


def with_unknown(fixed: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.tuples(fixed, st.dictionaries(unknown_keys, json_values, max_size=2)).map(
        lambda t: {**t[1], **t[0]}
    )


ports = with_unknown(
    st.fixed_dictionaries(
        {"port": st.integers(1, 65535)},
        optional={
            "name": names,
            "protocol": st.sampled_from(["TCP", "UDP", "SCTP", "FOO"]),
            "targetPort": st.one_of(st.integers(1, 65535), names),
            "nodePort": st.integers(1, 65535),
            "appProtocol": names,
        },
    )
)
specs = with_unknown(
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]),
            "ports": st.lists(ports, min_size=1, max_size=3),
            "selector": st.dictionaries(names, names, min_size=1, max_size=2),
            "clusterIPs": st.lists(names, min_size=1, max_size=2),
            "ipFamilyPolicy": names,
            "loadBalancerClass": names,
            "externalTrafficPolicy": names,
            "allocateLoadBalancerNodePorts": st.booleans(),
            "healthCheckNodePort": st.integers(1, 65535),
        },
    )
)
ingress = with_unknown(
    st.fixed_dictionaries(
        {},
        optional={
            "ip": names,
            "hostname": names,
            "ipMode": names,
            "ports": st.lists(
                with_unknown(
                    st.fixed_dictionaries(
                        {"port": st.integers(0, 65535), "protocol": names},
                        optional={"error": names},
                    )
                ),
                min_size=1,
                max_size=2,
            ),
        },
    )
)
statuses = with_unknown(
    st.fixed_dictionaries(
        {
            "loadBalancer": with_unknown(
                st.fixed_dictionaries(
                    {}, optional={"ingress": st.lists(ingress, min_size=1, max_size=2)}
                )
            )
        }
    )
)
services = with_unknown(
    st.fixed_dictionaries(
        {
            "kind": st.just("Service"),
            "apiVersion": st.just("v1"),
            "metadata": with_unknown(
                st.fixed_dictionaries(
                    {"name": names},
                    optional={"labels": st.dictionaries(names, names, min_size=1, max_size=2)},
                )
            ),
            "spec": specs,
            "status": statuses,
        },
    )
)


@given(services)
@settings(max_examples=200, deadline=None)
def test_round_trip_loses_nothing(body: dict[str, Any]) -> None:
    assert Service.from_dict(body).to_dict() == body
