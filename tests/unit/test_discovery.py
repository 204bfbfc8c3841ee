"""Discovery documents, /version, OpenAPI and Accept negotiation.

Shapes follow ``apimachinery/pkg/apis/meta/v1/types.go`` (legacy discovery) and
``api/apidiscovery/v2/types.go`` (aggregated); kubernetes_asyncio needs ``name``,
``kind``, ``namespaced``, ``singularName`` and ``verbs`` on every APIResource.
"""

from __future__ import annotations

from typing import Any

import pytest

from lbctl.apimachinery.discovery import (
    AGGREGATED_CONTENT_TYPE,
    OPENAPI_V2_CONTENT_TYPE,
    OPENAPI_V2_PROTOBUF,
    accepts_aggregated,
    accepts_table,
    aggregated_discovery,
    api_group,
    api_group_list,
    api_resource_list,
    api_versions,
    parse_accept,
    version_info,
)
from lbctl.apimachinery.resources import Registry, ResourceType, default_registry

REG = default_registry()
ALL = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
STATUS = ["get", "patch", "update"]
READ = ["get", "list", "watch"]


def res(
    name: str, singular: str, namespaced: bool, kind: str, verbs: list[str], **extra: Any
) -> Any:
    """A legacy APIResource entry."""
    entry = {"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind}
    return {**entry, "verbs": verbs, **extra}


KUBECTL_DISCOVERY = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)
KUBECTL_GET = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)


def test_api_versions() -> None:
    assert api_versions("127.0.0.1:6443") == {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}
        ],
    }


def test_api_group_list_names_every_group_but_core() -> None:
    doc = api_group_list(REG)
    assert (doc["kind"], doc["apiVersion"]) == ("APIGroupList", "v1")
    assert doc["groups"] == [
        {
            "name": g,
            "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"},
        }
        for g in ("discovery.k8s.io", "coordination.k8s.io", "events.k8s.io", "networking.k8s.io")
    ]


def widget(version: str, **kw: Any) -> ResourceType:
    return ResourceType("lbctl.io", version, "Widget", "widgets", "widget", True, **kw)


def test_preferred_version_is_the_first_registered() -> None:
    reg = Registry()
    reg.add(widget("v1beta1"))
    reg.add(widget("v1"))
    assert api_group(reg, "lbctl.io") == {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": "lbctl.io",
        "versions": [
            {"groupVersion": "lbctl.io/v1beta1", "version": "v1beta1"},
            {"groupVersion": "lbctl.io/v1", "version": "v1"},
        ],
        "preferredVersion": {"groupVersion": "lbctl.io/v1beta1", "version": "v1beta1"},
    }
    aggregated = aggregated_discovery(reg, legacy=False)
    assert [v["version"] for v in aggregated["items"][0]["versions"]] == ["v1beta1", "v1"]


@pytest.mark.parametrize("group", ["", "apps", "lbctl.io"])
def test_api_group_of_an_unserved_group_is_none(group: str) -> None:
    assert api_group(REG, group) is None


def test_core_resource_list() -> None:
    doc = api_resource_list(REG, "", "v1")
    assert doc is not None
    assert "apiVersion" not in doc  # as kube-apiserver serves /api/v1
    assert (doc["kind"], doc["groupVersion"]) == ("APIResourceList", "v1")
    ns_verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    assert doc["resources"] == [
        res("configmaps", "configmap", True, "ConfigMap", ALL, shortNames=["cm"]),
        res("events", "event", True, "Event", ALL, shortNames=["ev"]),
        res("namespaces", "namespace", False, "Namespace", ns_verbs, shortNames=["ns"]),
        res("namespaces/status", "", False, "Namespace", STATUS),
        res("nodes", "node", False, "Node", ALL, shortNames=["no"]),
        res("nodes/status", "", False, "Node", STATUS),
        res("services", "service", True, "Service", ALL, shortNames=["svc"], categories=["all"]),
        res("services/status", "", True, "Service", STATUS),
    ]


def test_group_resource_list() -> None:
    doc = api_resource_list(REG, "networking.k8s.io", "v1")
    assert doc == {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "networking.k8s.io/v1",
        "resources": [
            res("ipaddresses", "ipaddress", False, "IPAddress", READ, shortNames=["ip"]),
            res("servicecidrs", "servicecidr", False, "ServiceCIDR", READ),
            res("servicecidrs/status", "", False, "ServiceCIDR", STATUS),
        ],
    }


@pytest.mark.parametrize(
    ("group", "version"), [("", "v2"), ("apps", "v1"), ("networking.k8s.io", "v1beta1")]
)
def test_resource_list_of_an_unserved_group_version_is_none(group: str, version: str) -> None:
    assert api_resource_list(REG, group, version) is None


REQUIRED = {"name", "singularName", "namespaced", "kind", "verbs"}  # kubernetes_asyncio


@pytest.mark.parametrize(("group", "versions"), list(REG.groups().items()))
def test_every_resource_entry_has_what_clients_require(group: str, versions: list[str]) -> None:
    for version in versions:
        doc = api_resource_list(REG, group, version)
        assert doc is not None
        for entry in doc["resources"]:
            assert entry.keys() >= REQUIRED, entry
            assert entry.get("shortNames", ["x"]) and entry.get("categories", ["x"])  # never empty


def test_aggregated_discovery_for_api() -> None:
    doc = aggregated_discovery(REG, legacy=True)
    assert (doc["kind"], doc["apiVersion"], doc["metadata"]) == (
        "APIGroupDiscoveryList",
        "apidiscovery.k8s.io/v2",
        {},
    )
    [item] = doc["items"]
    assert item["metadata"] == {"creationTimestamp": None}  # the core group has no name
    [v1] = item["versions"]
    assert (v1["version"], v1["freshness"]) == ("v1", "Current")
    assert [r["resource"] for r in v1["resources"]] == [
        "configmaps",
        "events",
        "namespaces",
        "nodes",
        "services",
    ]
    services = v1["resources"][-1]
    assert services == {
        "resource": "services",
        "responseKind": {"group": "", "version": "v1", "kind": "Service"},
        "scope": "Namespaced",
        "singularResource": "service",
        "verbs": ALL,
        "shortNames": ["svc"],
        "categories": ["all"],
        "subresources": [
            {
                "subresource": "status",
                "responseKind": {"group": "", "version": "v1", "kind": "Service"},
                "verbs": STATUS,
            }
        ],
    }
    configmaps = v1["resources"][0]
    assert "subresources" not in configmaps and "categories" not in configmaps
    assert v1["resources"][3]["scope"] == "Cluster"


def test_aggregated_discovery_for_apis() -> None:
    doc = aggregated_discovery(REG, legacy=False)
    assert [i["metadata"] for i in doc["items"]] == [
        {"name": g, "creationTimestamp": None}
        for g in ("discovery.k8s.io", "coordination.k8s.io", "events.k8s.io", "networking.k8s.io")
    ]
    networking = doc["items"][3]["versions"][0]["resources"]
    assert networking == [
        {
            "resource": "ipaddresses",
            "responseKind": {"group": "networking.k8s.io", "version": "v1", "kind": "IPAddress"},
            "scope": "Cluster",
            "singularResource": "ipaddress",
            "verbs": ["get", "list", "watch"],
            "shortNames": ["ip"],
        },
        {
            "resource": "servicecidrs",
            "responseKind": {"group": "networking.k8s.io", "version": "v1", "kind": "ServiceCIDR"},
            "scope": "Cluster",
            "singularResource": "servicecidr",
            "verbs": ["get", "list", "watch"],
            "subresources": [
                {
                    "subresource": "status",
                    "responseKind": {
                        "group": "networking.k8s.io",
                        "version": "v1",
                        "kind": "ServiceCIDR",
                    },
                    "verbs": STATUS,
                }
            ],
        },
    ]


def test_aggregated_discovery_of_a_registry_without_core() -> None:
    reg = Registry()
    reg.add(widget("v1"))
    assert aggregated_discovery(reg, legacy=True)["items"] == []
    assert [i["metadata"]["name"] for i in aggregated_discovery(reg, legacy=False)["items"]] == [
        "lbctl.io"
    ]


# -- Accept negotiation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "aggregated", "table"),
    [
        (KUBECTL_DISCOVERY, True, False),
        (KUBECTL_GET, False, True),
        ("application/json", False, False),
        ("", False, False),
        ("*/*", False, False),
        (
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
            False,
            False,
        ),
        (
            "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json",
            False,
            False,
        ),
        (
            "application/vnd.kubernetes.protobuf,application/json;as=Table;v=v1;g=meta.k8s.io",
            False,
            True,
        ),
        ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", False, False),
        ("application/json, application/json;as=Table;v=v1;g=meta.k8s.io", False, False),
        ("application/json;q=0.5, application/json;as=Table;v=v1;g=meta.k8s.io", False, True),
        ("application/json;as=Table;v=v1;g=meta.k8s.io;q=0,application/json", False, False),
        ('application/json; as="Table"; v=v1; g="meta.k8s.io"', False, True),
        ("*/*;q=0.1, application/json;as=Table;v=v1;g=meta.k8s.io", False, True),
        (
            "text/html, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            True,
            False,
        ),
        ("application/*;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", True, False),
        ("application/json;as=table;v=v1;g=meta.k8s.io", False, False),  # values are case-sensitive
    ],
)
def test_negotiation(accept: str, aggregated: bool, table: bool) -> None:
    assert accepts_aggregated(accept) is aggregated
    assert accepts_table(accept) is table


def test_parse_accept_orders_by_quality_then_specificity() -> None:
    ranges = parse_accept("*/*;q=0.8, text/*, application/json;as=Table;q=0.9, application/yaml")
    assert [(r.type, r.subtype, r.q) for r in ranges] == [
        ("application", "yaml", 1.0),
        ("text", "*", 1.0),
        ("application", "json", 0.9),
        ("*", "*", 0.8),
    ]
    assert ranges[2].params == {"as": "Table"}
    assert ranges[2].conversion == ("", "", "Table")


def test_aggregated_content_type() -> None:
    assert (
        AGGREGATED_CONTENT_TYPE
        == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    )
    assert accepts_aggregated(AGGREGATED_CONTENT_TYPE)


# -- OpenAPI and /version --------------------------------------------------------------


def test_minimal_openapi_document() -> None:
    assert bytes([0x0A, 0x03, 0x32, 0x2E, 0x30]) == OPENAPI_V2_PROTOBUF
    # field 1 (swagger), wire type 2 (length-delimited), 3 bytes: "2.0"
    tag, length, payload = OPENAPI_V2_PROTOBUF[0], OPENAPI_V2_PROTOBUF[1], OPENAPI_V2_PROTOBUF[2:]
    assert (tag >> 3, tag & 7, length, payload) == (1, 2, 3, b"2.0")
    assert OPENAPI_V2_CONTENT_TYPE == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def test_version_info() -> None:
    info = version_info()
    assert {k: info[k] for k in ("major", "minor", "gitVersion", "gitTreeState")} == {
        "major": "1",
        "minor": "34",
        "gitVersion": "v1.34.0+lbctl",
        "gitTreeState": "clean",
    }
    assert (info["emulationMajor"], info["emulationMinor"]) == ("1", "34")
    assert (info["minCompatibilityMajor"], info["minCompatibilityMinor"]) == ("1", "33")
    assert set(info) == {
        "major", "minor", "emulationMajor", "emulationMinor", "minCompatibilityMajor",
        "minCompatibilityMinor", "gitVersion", "gitCommit", "gitTreeState", "buildDate",
        "goVersion", "compiler", "platform",
    }  # fmt: skip
    assert len(info["gitCommit"]) == 40
    assert info["platform"].count("/") == 1
    assert all(isinstance(v, str) and v for v in info.values())


def test_version_info_overrides() -> None:
    info = version_info(minor="33", git_version="v1.33.4")
    assert (info["minor"], info["gitVersion"], info["minCompatibilityMinor"]) == (
        "33",
        "v1.33.4",
        "32",
    )
