"""Server-side printing against kube-apiserver's Table columns and cells.

Expected columns and cell rules come from ``pkg/printers/internalversion/printers.go``,
custom-kind columns from apiextensions' ``tableconvertor``, durations from
``apimachinery/pkg/util/duration``.  Every row is rendered wide, as the server does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lbctl.apimachinery.jsonpath import JSONPath, JSONPathError, go_float, go_json
from lbctl.apimachinery.resources import PrinterColumn, ResourceType, default_registry
from lbctl.apimachinery.tables import TableError, custom_cell, human_duration, to_table

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
REG = default_registry()

NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although some"
    " resources may allow a client to request the generation of an appropriate name"
    " automatically. Name is primarily intended for creation idempotence and configuration"
    " definition. Cannot be updated. More info:"
    " https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
AGE_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was"
    " created. It is not guaranteed to be set in happens-before order across separate"
    " operations. Clients may not set this value. It is represented in RFC3339 form and is in"
    " UTC.\n\nPopulated by the system. Read-only. Null for lists. More info:"
    " https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def rt(group: str, version: str, plural: str) -> ResourceType:
    found = REG.get(group, version, plural)
    assert found is not None
    return found


def cells(resource: ResourceType, obj: dict[str, Any]) -> list[Any]:
    table = to_table(resource, [obj], resource_version="1", now=NOW)
    row: list[Any] = table["rows"][0]["cells"]
    return row


def columns(resource: ResourceType) -> list[tuple[str, str, str, int]]:
    table = to_table(resource, [], resource_version="1", now=NOW)
    return [(c["name"], c["type"], c["format"], c["priority"]) for c in table["columnDefinitions"]]


def meta(name: str = "web", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "default", "creationTimestamp": ago(minutes=5), **extra}


# -- human durations -------------------------------------------------------------------

H, D, Y = 3600, 86400, 365 * 86400


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1, "1s"),
        (70, "70s"),  # seconds up to two minutes
        (119.999, "119s"),
        (120, "2m"),
        (150, "2m30s"),
        (190, "3m10s"),
        (599, "9m59s"),
        (600, "10m"),  # no seconds from ten minutes on
        (659, "10m"),
        (70 * 60, "70m"),
        (3 * H - 1, "179m"),
        (3 * H, "3h"),
        (3 * H + 30 * 60 + 59, "3h30m"),
        (8 * H - 1, "7h59m"),
        (8 * H, "8h"),  # no minutes from eight hours on
        (47 * H + 59 * 60, "47h"),
        (48 * H, "2d"),
        (49 * H, "2d1h"),
        (51 * H, "2d3h"),
        (8 * D - 1, "7d23h"),
        ((8 * 24 + 2) * H, "8d"),
        (367 * D, "367d"),
        (2 * Y - 1, "729d"),
        (2 * Y, "2y"),
        ((365 * 2 * 24 + 25) * H, "2y1d"),
        (3 * Y + 45 * D, "3y45d"),
        (8 * Y - 1, "7y364d"),
        ((365 * 8 * 24 + 2) * H, "8y"),
        (20 * Y + 100 * D, "20y"),
        (-0.5, "0s"),  # clock skew up to two seconds is "now"
        (-1.999, "0s"),
        (-2, "<invalid>"),
        (-3600, "<invalid>"),
    ],
)
def test_human_duration_matches_go(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


# -- Table envelope and includeObject --------------------------------------------------

SVC = rt("", "v1", "services")
WEB: dict[str, Any] = {
    "kind": "Service",
    "apiVersion": "v1",
    "metadata": meta(uid="u-1", resourceVersion="42", labels={"app": "web"}),
    "spec": {
        "type": "ClusterIP",
        "clusterIP": "10.96.0.10",
        "clusterIPs": ["10.96.0.10"],
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
        "selector": {"tier": "fe", "app": "web"},
    },
    "status": {"loadBalancer": {}},
}


def test_table_envelope() -> None:
    table = to_table(SVC, [WEB], resource_version="279474", now=NOW)
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "279474"}
    assert table["rows"] == [
        {
            "cells": [
                "web",
                "ClusterIP",
                "10.96.0.10",
                "<none>",
                "80/TCP",
                "5m",
                "app=web,tier=fe",
            ],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": WEB["metadata"],
            },
        }
    ]


def test_empty_table_has_columns_and_no_rows() -> None:
    table = to_table(SVC, [], resource_version="", now=NOW)
    assert table["rows"] == []
    assert table["metadata"] == {}
    assert len(table["columnDefinitions"]) == 7


@pytest.mark.parametrize(
    ("include", "expected"),
    [
        ("Object", WEB),
        ("None", None),
        (
            "",
            {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": WEB["metadata"],
            },
        ),
        (
            "Metadata",
            {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": WEB["metadata"],
            },
        ),
    ],
)
def test_include_object(include: str, expected: Any) -> None:
    table = to_table(SVC, [WEB], resource_version="1", now=NOW, include_object=include)
    assert table["rows"][0]["object"] == expected


@pytest.mark.parametrize(("value", "message"), [("metadata", '"metadata"'), ("All", '"All"')])
def test_include_object_rejects_unknown_values(value: str, message: str) -> None:
    with pytest.raises(TableError) as info:
        to_table(SVC, [WEB], resource_version="1", now=NOW, include_object=value)
    assert str(info.value) == f"unrecognized includeObject value: {message}"


# -- Service ---------------------------------------------------------------------------


def test_service_columns() -> None:
    assert columns(SVC) == [
        ("Name", "string", "name", 0),
        ("Type", "string", "", 0),
        ("Cluster-IP", "string", "", 0),
        ("External-IP", "string", "", 0),
        ("Port(s)", "string", "", 0),
        ("Age", "string", "", 0),
        ("Selector", "string", "", 1),
    ]
    defs = to_table(SVC, [], resource_version="1", now=NOW)["columnDefinitions"]
    assert defs[0]["description"] == NAME_DOC
    assert defs[5]["description"] == AGE_DOC
    assert defs[3]["description"].startswith("externalIPs is a list of IP addresses for which")
    assert defs[6]["description"].startswith("Route service traffic to pods with label keys")


def svc(spec: dict[str, Any], status: dict[str, Any] | None = None, **m: Any) -> dict[str, Any]:
    return {"metadata": meta(**m), "spec": spec, "status": status or {"loadBalancer": {}}}


LB_STATUS = {
    "loadBalancer": {
        "ingress": [
            {"hostname": "lb.example.com"},
            {"ip": "203.0.113.9"},
            {"ip": "198.51.100.1", "hostname": "ignored.example.com"},
            {"ip": "203.0.113.9"},
        ]
    }
}


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        (
            svc(
                {
                    "type": "ClusterIP",
                    "clusterIPs": ["10.96.0.10"],
                    "externalIPs": ["1.2.3.4", "5.6.7.8"],
                }
            ),
            ["web", "ClusterIP", "10.96.0.10", "1.2.3.4,5.6.7.8", "<none>", "5m", "<none>"],
        ),
        (
            svc(
                {
                    "type": "NodePort",
                    "clusterIPs": ["10.96.0.11", "fd00::11"],
                    "ports": [
                        {"port": 80, "nodePort": 30080, "protocol": "TCP"},
                        {"port": 53, "protocol": "UDP"},
                        {"port": 9000, "nodePort": 0},
                    ],
                    "selector": {"app": "dns"},
                }
            ),
            [
                "web",
                "NodePort",
                "10.96.0.11",
                "<none>",
                "80:30080/TCP,53/UDP,9000/TCP",
                "5m",
                "app=dns",
            ],
        ),
        (
            svc(
                {
                    "type": "LoadBalancer",
                    "clusterIPs": ["10.96.0.12"],
                    "ports": [{"port": 443, "nodePort": 31234, "protocol": "TCP"}],
                }
            ),
            ["web", "LoadBalancer", "10.96.0.12", "<pending>", "443:31234/TCP", "5m", "<none>"],
        ),
        (
            svc({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"]}, LB_STATUS),
            [
                "web",
                "LoadBalancer",
                "10.96.0.12",
                "198.51.100.1,203.0.113.9,lb.example.com",
                "<none>",
                "5m",
                "<none>",
            ],
        ),
        (
            svc(
                {"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"], "externalIPs": ["10.0.0.1"]},
                LB_STATUS,
            ),
            [
                "web",
                "LoadBalancer",
                "10.96.0.12",
                "198.51.100.1,203.0.113.9,lb.example.com,10.0.0.1",
                "<none>",
                "5m",
                "<none>",
            ],
        ),
        (
            svc(
                {"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"], "externalIPs": ["10.0.0.1"]}
            ),
            ["web", "LoadBalancer", "10.96.0.12", "10.0.0.1", "<none>", "5m", "<none>"],
        ),
        (
            svc({"type": "ExternalName", "externalName": "db.example.com"}),
            ["web", "ExternalName", "<none>", "db.example.com", "<none>", "5m", "<none>"],
        ),
        (
            svc(
                {
                    "type": "ClusterIP",
                    "clusterIP": "None",
                    "clusterIPs": ["None"],
                    "selector": {"app": "db"},
                }
            ),
            ["web", "ClusterIP", "None", "<none>", "<none>", "5m", "app=db"],
        ),
        (
            svc({"clusterIP": "10.96.0.1", "ports": [{"port": 80}]}),  # undefaulted: ClusterIP, TCP
            ["web", "ClusterIP", "10.96.0.1", "<none>", "80/TCP", "5m", "<none>"],
        ),
        (
            svc({"type": "Weird"}),
            ["web", "Weird", "<none>", "<unknown>", "<none>", "5m", "<none>"],
        ),
        (
            {
                "metadata": {"name": "new"},
                "spec": {"type": "ClusterIP", "clusterIPs": ["10.96.0.2"]},
            },
            ["new", "ClusterIP", "10.96.0.2", "<none>", "<none>", "<unknown>", "<none>"],
        ),
        (
            svc({"type": "ClusterIP"}, creationTimestamp=(NOW + timedelta(minutes=1)).isoformat()),
            ["web", "ClusterIP", "<none>", "<none>", "<none>", "<invalid>", "<none>"],
        ),
    ],
)
def test_service_cells(service: dict[str, Any], expected: list[Any]) -> None:
    assert cells(SVC, service) == expected


# -- Node ------------------------------------------------------------------------------

NODE = rt("", "v1", "nodes")


def test_node_columns() -> None:
    assert columns(NODE) == [
        ("Name", "string", "name", 0),
        ("Status", "string", "", 0),
        ("Roles", "string", "", 0),
        ("Age", "string", "", 0),
        ("Version", "string", "", 0),
        ("Internal-IP", "string", "", 1),
        ("External-IP", "string", "", 1),
        ("OS-Image", "string", "", 1),
        ("Kernel-Version", "string", "", 1),
        ("Container-Runtime", "string", "", 1),
    ]


READY_NODE = {
    "metadata": {
        "name": "n1",
        "creationTimestamp": ago(hours=51),
        "labels": {
            "node-role.kubernetes.io/worker": "",
            "node-role.kubernetes.io/control-plane": "",
            "node-role.kubernetes.io/": "ignored",
            "kubernetes.io/role": "edge",
            "kubernetes.io/hostname": "n1",
        },
    },
    "spec": {},
    "status": {
        "conditions": [
            {"type": "MemoryPressure", "status": "False"},
            {"type": "Ready", "status": "True"},
        ],
        "addresses": [
            {"type": "Hostname", "address": "n1"},
            {"type": "InternalIP", "address": "10.0.0.5"},
            {"type": "InternalIP", "address": "10.0.0.6"},
            {"type": "ExternalIP", "address": "203.0.113.5"},
        ],
        "nodeInfo": {
            "kubeletVersion": "v1.34.0",
            "osImage": "Debian GNU/Linux 12 (bookworm)",
            "kernelVersion": "6.1.0-18-amd64",
            "containerRuntimeVersion": "containerd://1.7.13",
        },
    },
}


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (
            READY_NODE,
            [
                "n1",
                "Ready",
                "control-plane,edge,worker",
                "2d3h",
                "v1.34.0",
                "10.0.0.5",
                "203.0.113.5",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0-18-amd64",
                "containerd://1.7.13",
            ],
        ),
        (
            {
                "metadata": {"name": "n2", "creationTimestamp": ago(minutes=12)},
                "spec": {"unschedulable": True},
                "status": {"conditions": [{"type": "Ready", "status": "False"}]},
            },
            [
                "n2",
                "NotReady,SchedulingDisabled",
                "<none>",
                "12m",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>",
            ],
        ),
        (
            {
                "metadata": {"name": "n3", "creationTimestamp": ago(seconds=30)},
                "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]},
            },
            [
                "n3",
                "NotReady",
                "<none>",
                "30s",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>",
            ],
        ),
        (
            {
                "metadata": {"name": "n4", "creationTimestamp": ago(seconds=30)},
                "spec": {"unschedulable": False},
            },
            [
                "n4",
                "Unknown",
                "<none>",
                "30s",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>",
            ],
        ),
    ],
)
def test_node_cells(node: dict[str, Any], expected: list[Any]) -> None:
    assert cells(NODE, node) == expected


# -- Namespace, ConfigMap, Lease, EndpointSlice, ServiceCIDR, IPAddress ---------------

NS = rt("", "v1", "namespaces")
CM = rt("", "v1", "configmaps")
LEASE = rt("coordination.k8s.io", "v1", "leases")
EPS = rt("discovery.k8s.io", "v1", "endpointslices")
CIDR = rt("networking.k8s.io", "v1", "servicecidrs")
IP = rt("networking.k8s.io", "v1", "ipaddresses")


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (
            NS,
            [("Name", "string", "name", 0), ("Status", "string", "", 0), ("Age", "string", "", 0)],
        ),
        (CM, [("Name", "string", "name", 0), ("Data", "string", "", 0), ("Age", "string", "", 0)]),
        (
            LEASE,
            [("Name", "string", "name", 0), ("Holder", "string", "", 0), ("Age", "string", "", 0)],
        ),
        (
            EPS,
            [
                ("Name", "string", "name", 0),
                ("AddressType", "string", "", 0),
                ("Ports", "string", "", 0),
                ("Endpoints", "string", "", 0),
                ("Age", "string", "", 0),
            ],
        ),
        (
            CIDR,
            [("Name", "string", "name", 0), ("CIDRs", "string", "", 0), ("Age", "string", "", 0)],
        ),
        (IP, [("Name", "string", "name", 0), ("ParentRef", "string", "", 0)]),  # no Age upstream
    ],
)
def test_small_kinds_columns(
    resource: ResourceType, expected: list[tuple[str, str, str, int]]
) -> None:
    assert columns(resource) == expected


@pytest.mark.parametrize(
    ("resource", "obj", "expected"),
    [
        (
            NS,
            {"metadata": meta("default"), "status": {"phase": "Active"}},
            ["default", "Active", "5m"],
        ),
        (
            NS,
            {"metadata": meta("old"), "status": {"phase": "Terminating"}},
            ["old", "Terminating", "5m"],
        ),
        (NS, {"metadata": meta("bare")}, ["bare", "", "5m"]),
        (
            CM,
            {"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}},
            ["cfg", 3, "5m"],
        ),
        (CM, {"metadata": meta("empty")}, ["empty", 0, "5m"]),
        (
            LEASE,
            {"metadata": meta("lbctl"), "spec": {"holderIdentity": "lbctl-0_abc"}},
            ["lbctl", "lbctl-0_abc", "5m"],
        ),
        (LEASE, {"metadata": meta("free"), "spec": {"holderIdentity": None}}, ["free", "", "5m"]),
        (
            EPS,
            {
                "metadata": meta("web-abc"),
                "addressType": "IPv4",
                "ports": [{"port": 80, "name": "http"}, {"name": "dns"}, {}],
                "endpoints": [
                    {"addresses": ["10.0.0.1"]},
                    {"addresses": ["10.0.0.2", "10.0.0.3"]},
                    {"addresses": ["10.0.0.4"]},
                    {"addresses": ["10.0.0.5"]},
                ],
            },
            ["web-abc", "IPv4", "80,dns,*", "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more...", "5m"],
        ),
        (
            EPS,
            {
                "metadata": meta("web-xyz"),
                "addressType": "IPv6",
                "ports": [{"port": p} for p in (1, 2, 3, 4)],
                "endpoints": [],
            },
            ["web-xyz", "IPv6", "1,2,3 + 1 more...", "<unset>", "5m"],
        ),
        (
            EPS,
            {"metadata": meta("bare"), "addressType": "FQDN"},
            ["bare", "FQDN", "<unset>", "<unset>", "5m"],
        ),
        (
            CIDR,
            {
                "metadata": meta("kubernetes"),
                "spec": {"cidrs": ["10.96.0.0/12", "fd00:10:96::/108"]},
            },
            ["kubernetes", "10.96.0.0/12,fd00:10:96::/108", "5m"],
        ),
        (
            IP,
            {
                "metadata": meta("10.96.0.10"),
                "spec": {
                    "parentRef": {
                        "group": "",
                        "resource": "services",
                        "namespace": "default",
                        "name": "web",
                    }
                },
            },
            ["10.96.0.10", "services/default/web", "5m"],
        ),
        (
            IP,
            {
                "metadata": meta("10.96.0.11"),
                "spec": {
                    "parentRef": {
                        "group": "Gateway.Networking.k8s.io",
                        "resource": "Gateways",
                        "name": "gw",
                    }
                },
            },
            ["10.96.0.11", "gateways.gateway.networking.k8s.io/gw", "5m"],
        ),
        (IP, {"metadata": meta("10.96.0.12"), "spec": {}}, ["10.96.0.12", "<none>", "5m"]),
    ],
)
def test_small_kinds_cells(
    resource: ResourceType, obj: dict[str, Any], expected: list[Any]
) -> None:
    assert cells(resource, obj) == expected


# -- Events ----------------------------------------------------------------------------

EVENT = rt("", "v1", "events")
NEW_EVENT = rt("events.k8s.io", "v1", "events")

EVENT_COLUMNS = [
    ("Last Seen", "string", "", 0),
    ("Type", "string", "", 0),
    ("Reason", "string", "", 0),
    ("Object", "string", "", 0),
    ("Subobject", "string", "", 1),
    ("Source", "string", "", 1),
    ("Message", "string", "", 0),
    ("First Seen", "string", "", 1),
    ("Count", "string", "", 1),
    ("Name", "string", "name", 1),
]


@pytest.mark.parametrize("resource", [EVENT, NEW_EVENT])
def test_event_columns(resource: ResourceType) -> None:
    assert columns(resource) == EVENT_COLUMNS


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {
                "metadata": meta("web.17a"),
                "involvedObject": {"kind": "Service", "name": "web", "namespace": "default"},
                "reason": "EnsuredLoadBalancer",
                "message": "  Ensured load balancer\n",
                "type": "Normal",
                "source": {"component": "lbctl"},
                "firstTimestamp": ago(hours=1),
                "lastTimestamp": ago(minutes=5),
                "count": 3,
            },
            [
                "5m",
                "Normal",
                "EnsuredLoadBalancer",
                "service/web",
                "",
                "lbctl",
                "Ensured load balancer",
                "60m",
                3,
                "web.17a",
            ],
        ),
        (
            {
                "metadata": meta("n.1"),
                "involvedObject": {"kind": "Node", "fieldPath": "spec"},
                "reason": "Cordoned",
                "type": "Warning",
                "source": {},
                "reportingComponent": "lbctl-controller",
                "reportingInstance": "lbctl-0",
                "eventTime": (NOW - timedelta(seconds=30, microseconds=123456)).strftime(
                    "%Y-%m-%dT%H:%M:%S.%fZ"
                ),
            },
            [
                "30s",
                "Warning",
                "Cordoned",
                "node",
                "spec",
                "lbctl-controller, lbctl-0",
                "",
                "30s",
                1,
                "n.1",
            ],
        ),
        (
            {
                "metadata": meta("s.1"),
                "involvedObject": {"kind": "Pod", "name": "p"},
                "source": {"component": "kubelet", "host": "n1"},
                "firstTimestamp": ago(hours=2),
                "lastTimestamp": ago(hours=1),
                "count": 9,
                "series": {"count": 7, "lastObservedTime": ago(minutes=2)},
            },
            ["2m", "", "", "pod/p", "", "kubelet, n1", "", "120m", 7, "s.1"],
        ),
        (
            {"metadata": {"name": "bare"}, "involvedObject": {}},
            ["<unknown>", "", "", "", "", "", "", "<unknown>", 1, "bare"],
        ),
    ],
)
def test_core_event_cells(event: dict[str, Any], expected: list[Any]) -> None:
    assert cells(EVENT, event) == expected


def test_events_k8s_io_event_prints_like_its_core_twin() -> None:
    event = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": meta("web.17b"),
        "regarding": {"kind": "Service", "name": "web", "fieldPath": "spec.ports[0]"},
        "note": "port 80 allocated",
        "reason": "Allocated",
        "type": "Normal",
        "reportingController": "lbctl.io/controller",
        "reportingInstance": "pod-1",
        "deprecatedSource": {"component": "lbctl"},
        "deprecatedFirstTimestamp": ago(minutes=30),
        "deprecatedLastTimestamp": ago(minutes=3),
        "deprecatedCount": 4,
    }
    assert cells(NEW_EVENT, event) == [
        "3m", "Normal", "Allocated", "service/web", "spec.ports[0]", "lbctl, pod-1",
        "port 80 allocated", "30m", 4, "web.17b",
    ]  # fmt: skip


# -- custom kinds ----------------------------------------------------------------------

POOL = ResourceType(
    "lbctl.io",
    "v1alpha1",
    "LBPool",
    "lbpools",
    "lbpool",
    False,
    printer_columns=(
        PrinterColumn("Addresses", "string", ".spec.addresses"),
        PrinterColumn("First", "string", ".spec.addresses[0]"),
        PrinterColumn("Free", "integer", ".status.free"),
        PrinterColumn("Ratio", "number", ".status.ratio"),
        PrinterColumn("Shared", "boolean", ".spec.shared"),
        PrinterColumn("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
        PrinterColumn(
            "Reason", "string", '.status.conditions[?(@.type=="Ready")].reason', "Why", 1
        ),
        PrinterColumn("App", "string", ".metadata.labels['app.kubernetes.io/name']"),
        PrinterColumn("Missing", "string", ".status.nope"),
        PrinterColumn("Created", "date", ".metadata.creationTimestamp", format="date-time"),
    ),
    schema={"type": "object"},
)
POOL_OBJ = {
    "metadata": {
        "name": "pool-a",
        "creationTimestamp": ago(minutes=5),
        "labels": {"app.kubernetes.io/name": "lb"},
    },
    "spec": {"addresses": ["10.0.0.0/24", "10.1.0.0/24"], "shared": True},
    "status": {
        "free": 12.9,
        "ratio": 1,
        "conditions": [
            {"type": "Synced", "status": "False"},
            {"type": "Ready", "status": "True", "reason": "Allocated"},
        ],
    },
}


def test_custom_kind_columns_are_name_then_its_own() -> None:
    defs = to_table(POOL, [], resource_version="1", now=NOW)["columnDefinitions"]
    assert [(d["name"], d["type"], d["format"], d["priority"]) for d in defs] == [
        ("Name", "string", "name", 0),
        ("Addresses", "string", "", 0),
        ("First", "string", "", 0),
        ("Free", "integer", "", 0),
        ("Ratio", "number", "", 0),
        ("Shared", "boolean", "", 0),
        ("Ready", "string", "", 0),
        ("Reason", "string", "", 1),
        ("App", "string", "", 0),
        ("Missing", "string", "", 0),
        ("Created", "date", "date-time", 0),
    ]
    assert defs[0]["description"] == NAME_DOC
    assert (
        defs[1]["description"]
        == "Custom resource definition column (in JSONPath format): .spec.addresses"
    )
    assert defs[7]["description"] == "Why"


def test_custom_kind_cells_are_typed_like_apiextensions() -> None:
    assert cells(POOL, POOL_OBJ) == [
        "pool-a", '["10.0.0.0/24","10.1.0.0/24"]', "10.0.0.0/24", 12, 1.0, True, "True",
        "Allocated", "lb", None, "5m",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("column_type", "value", "expected"),
    [
        ("string", "text", "text"),
        ("string", 80, "80"),
        ("string", 0.5, "0.5"),
        ("string", True, "true"),
        ("string", {"b": 1, "a": "<x>"}, '{"a":"\\u003cx\\u003e","b":1}'),
        ("integer", -3.7, -3),
        ("integer", "3", None),
        ("integer", True, None),
        ("number", 2, 2.0),
        ("number", "2", None),
        ("boolean", False, False),
        ("boolean", "true", None),
        ("date", ago(hours=3), "3h"),
        ("date", "", "<unknown>"),
        ("date", "yesterday", "<invalid>"),
        ("date", 1700000000, None),
        ("string", None, None),
        ("color", "red", None),
    ],
)
def test_custom_cell_types(column_type: str, value: Any, expected: Any) -> None:
    cell = custom_cell(column_type, True, value, NOW)
    assert cell == expected
    assert type(cell) is type(expected)


def test_custom_cell_of_an_unreached_path_is_empty() -> None:
    assert custom_cell("string", False, None, NOW) is None


def test_custom_kind_without_columns_gets_name_and_age() -> None:
    plain = ResourceType(
        "lbctl.io", "v1", "Thing", "things", "thing", True, schema={"type": "object"}
    )
    table = to_table(plain, [{"metadata": meta("t")}], resource_version="1", now=NOW)
    assert table["columnDefinitions"] == [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "description": NAME_DOC,
            "priority": 0,
        },
        {"name": "Age", "type": "date", "format": "", "description": AGE_DOC, "priority": 0},
    ]
    assert table["rows"][0]["cells"] == ["t", "5m"]


def test_other_kind_gets_name_and_age() -> None:
    other = ResourceType("example.com", "v1", "Gadget", "gadgets", "gadget", True)
    table = to_table(other, [{"metadata": meta("g")}], resource_version="1", now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert table["rows"][0]["cells"] == ["g", "5m"]


# -- JSONPath and Go formatting --------------------------------------------------------

DOC = {
    "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "lb", "tier": "fe"}},
    "spec": {"ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]},
    "status": {
        "conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "Synced", "status": "False", "reason": "Stale"},
        ]
    },
}


@pytest.mark.parametrize(
    ("path", "found"),
    [
        (".metadata.name", ["x"]),
        ("{.metadata.name}", ["x"]),
        ("$.metadata.name", ["x"]),
        (".spec.ports[*].port", [80, 443]),
        (".spec.ports[0].name", ["http"]),
        (".spec.ports[-1].port", [443]),
        (".spec.ports[5].port", []),
        (".spec.nope.deeper", []),
        (".metadata.labels['app.kubernetes.io/name']", ["lb"]),
        ('.metadata.labels["tier"]', ["fe"]),
        (".metadata.labels.app\\.kubernetes\\.io/name", ["lb"]),
        (".metadata.labels.*", ["lb", "fe"]),
        ('.status.conditions[?(@.type=="Ready")].status', ["True"]),
        (".status.conditions[?(@.type!='Ready')].type", ["Synced"]),
        (".status.conditions[?(@.reason)].type", ["Synced"]),
        (".spec.ports[?(@.port>=443)].name", ["https"]),
        (".spec.ports[?(@.port < 100)].name", ["http"]),
    ],
)
def test_jsonpath_finds(path: str, found: list[Any]) -> None:
    assert JSONPath.parse(path).find(DOC) == found


@pytest.mark.parametrize("path", [".spec[", "..spec", ".spec.ports[a]", ".spec[?(@.x == )]"])
def test_jsonpath_rejects_what_it_does_not_support(path: str) -> None:
    with pytest.raises(JSONPathError):
        JSONPath.parse(path)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.5, "0.5"),
        (3.0, "3"),
        (0.0, "0"),
        (-2.5, "-2.5"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (1e21, "1e+21"),
        (float("inf"), "+Inf"),
    ],
)
def test_go_float_formatting(value: float, text: str) -> None:
    assert go_float(value) == text


def test_go_json_is_compact_sorted_and_html_escaped() -> None:
    assert go_json({"b": [1.0, 2.5], "a": "<a&b>"}) == '{"a":"\\u003ca\\u0026b\\u003e","b":[1,2.5]}'
