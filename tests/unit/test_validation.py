"""Service validation against kube-apiserver's rules, paths and exact messages.

Each table row is (case id, Service JSON, expected errors as (field, reason, message)
in order).  Rows start from a valid, fully defaulted Service and break one thing.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbctl.domain.fielderrors import FieldErrors
from lbctl.domain.service import Service
from lbctl.domain.validation import (
    validate_service,
    validate_service_status_update,
    validate_service_update,
)

JSON = dict[str, Any]
Expected = list[tuple[str, str, str]]

INVALID = "FieldValueInvalid"
REQUIRED = "FieldValueRequired"
FORBIDDEN = "FieldValueForbidden"
DUPLICATE = "FieldValueDuplicate"
UNSUPPORTED = "FieldValueNotSupported"
TOO_LONG = "FieldValueTooLong"

RANGE = "must be between 1 and 65535, inclusive"
DNS1035 = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with"
    " an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or"
    " 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
DNS1123_LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-',"
    " and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc',"
    " regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-'"
    " or '.', and must start and end with an alphanumeric character (e.g. 'example.com',"
    " regex used for validation is"
    " '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
QNAME_BODY = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with"
    " an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for"
    " validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
NAME_PART = "name part " + QNAME_BODY
LABEL_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or"
    " '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or"
    " 'my_value',  or '12345', regex used for validation is"
    " '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
BAD_IP = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
BAD_CIDR = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
LB_ONLY = "may only be used when `type` is 'LoadBalancer'"
CHANGED = "may not change once set"
LOOPBACK = "may not be in the loopback range (127.0.0.0/8, ::1/128)"
LINK_LOCAL = "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
MULTICAST = "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
PROTOCOLS = 'supported values: "SCTP", "TCP", "UDP"'
TYPES = 'supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'


def port_key(protocol: str, port: int) -> str:
    return (
        f'Duplicate value: {{"Name":"","Protocol":"{protocol}","AppProtocol":null,'
        f'"Port":{port},"TargetPort":0,"NodePort":0}}'
    )


DELETE = object()


def _merge(base: JSON, changes: JSON) -> JSON:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is DELETE:
            out.pop(key, None)
        else:
            out[key] = copy.deepcopy(value)
    return out


BASE_SPEC: JSON = {
    "type": "ClusterIP",
    "clusterIP": "10.96.0.10",
    "clusterIPs": ["10.96.0.10"],
    "ipFamilies": ["IPv4"],
    "ipFamilyPolicy": "SingleStack",
    "sessionAffinity": "None",
    "internalTrafficPolicy": "Cluster",
    "selector": {"app": "web"},
    "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
}
LB_SPEC: JSON = _merge(
    BASE_SPEC,
    {
        "type": "LoadBalancer",
        "externalTrafficPolicy": "Cluster",
        "allocateLoadBalancerNodePorts": True,
        "ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080}
        ],
    },
)
NODEPORT_SPEC: JSON = _merge(LB_SPEC, {"type": "NodePort", "allocateLoadBalancerNodePorts": DELETE})
EXTERNAL_NAME_SPEC: JSON = {
    "type": "ExternalName",
    "externalName": "db.example.com",
    "sessionAffinity": "None",
}
DUAL_SPEC: JSON = _merge(
    BASE_SPEC,
    {
        "clusterIPs": ["10.96.0.10", "fd00::10"],
        "ipFamilies": ["IPv4", "IPv6"],
        "ipFamilyPolicy": "RequireDualStack",
    },
)


def make(
    spec: JSON | None = None,
    *,
    base: JSON = BASE_SPEC,
    meta: JSON | None = None,
    status: JSON | None = None,
) -> JSON:
    metadata = _merge({"name": "web", "namespace": "default", "resourceVersion": "7"}, meta or {})
    obj: JSON = {"metadata": metadata, "spec": _merge(base, spec or {})}
    if status is not None:
        obj["status"] = status
    return obj


def triples(errors: FieldErrors) -> Expected:
    return [(e.field, e.reason.value, e.message) for e in errors]


VALID: list[tuple[str, JSON]] = [
    ("cluster-ip", make()),
    ("node-port", make(base=NODEPORT_SPEC)),
    ("load-balancer", make(base=LB_SPEC)),
    (
        "load-balancer-everything",
        make(
            {
                "externalTrafficPolicy": "Local",
                "healthCheckNodePort": 31000,
                "loadBalancerClass": "example.com/internal",
                "loadBalancerSourceRanges": ["10.0.0.0/8", " 192.168.0.0/16 ", "10.1.2.3/8"],
                "allocateLoadBalancerNodePorts": False,
                "loadBalancerIP": "not-validated-upstream",
            },
            base=LB_SPEC,
        ),
    ),
    (
        "source-ranges-annotation",
        make(
            base=LB_SPEC,
            meta={"annotations": {"service.beta.kubernetes.io/load-balancer-source-ranges": ""}},
        ),
    ),
    ("external-name", make(base=EXTERNAL_NAME_SPEC)),
    (
        "external-name-trailing-dot",
        make({"externalName": "db.example.com."}, base=EXTERNAL_NAME_SPEC),
    ),
    (
        "external-name-with-ports",
        make(
            {"ports": [{"port": 5432, "protocol": "TCP", "targetPort": 5432}]},
            base=EXTERNAL_NAME_SPEC,
        ),
    ),
    (
        "headless-without-ports",
        make({"clusterIP": "None", "clusterIPs": ["None"], "ports": DELETE}),
    ),
    (
        "headless-families-any-order",
        make(
            {
                "clusterIP": "None",
                "clusterIPs": ["None"],
                "ipFamilies": ["IPv6", "IPv4"],
                "ipFamilyPolicy": "RequireDualStack",
            }
        ),
    ),
    ("dual-stack", make(base=DUAL_SPEC)),
    (
        "dual-stack-ipv6-primary",
        make(
            {
                "clusterIP": "fd00::10",
                "clusterIPs": ["fd00::10", "10.96.0.10"],
                "ipFamilies": ["IPv6", "IPv4"],
            },
            base=DUAL_SPEC,
        ),
    ),
    (
        "sloppy-ipv4-cluster-ip",
        make({"clusterIP": "010.096.0.010", "clusterIPs": ["010.096.0.010"]}),
    ),
    (
        "client-ip-affinity",
        make(
            {
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86400}},
            }
        ),
    ),
    (
        "two-named-ports-and-protocols",
        make(
            {
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns-udp"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                    {
                        "name": "sctp",
                        "port": 9,
                        "protocol": "SCTP",
                        "targetPort": 9,
                        "appProtocol": "kubernetes.io/h2c",
                    },
                ]
            }
        ),
    ),
    (
        "same-node-port-two-protocols",
        make(
            {
                "ports": [
                    {
                        "name": "a",
                        "port": 53,
                        "protocol": "UDP",
                        "targetPort": 53,
                        "nodePort": 30053,
                    },
                    {
                        "name": "b",
                        "port": 53,
                        "protocol": "TCP",
                        "targetPort": 53,
                        "nodePort": 30053,
                    },
                ]
            },
            base=NODEPORT_SPEC,
        ),
    ),
    (
        "cluster-ip-with-external-ips",
        make({"externalIPs": ["192.0.2.10", "2001:db8::1"], "externalTrafficPolicy": "Local"}),
    ),
    (
        "labels-annotations-finalizers",
        make(
            meta={
                "labels": {"app.kubernetes.io/name": "web", "tier": ""},
                "annotations": {"Example.COM/Owner": "anything at all"},
                "finalizers": ["service.kubernetes.io/load-balancer-cleanup", "kubernetes"],
            }
        ),
    ),
    (
        "topology-annotations-agree",
        make(
            meta={
                "annotations": {
                    "service.kubernetes.io/topology-mode": "Auto",
                    "service.kubernetes.io/topology-aware-hints": "Auto",
                }
            }
        ),
    ),
]


@pytest.mark.parametrize(("obj"), [pytest.param(obj, id=cid) for cid, obj in VALID])
def test_valid_services_have_no_errors(obj: JSON) -> None:
    assert triples(validate_service(Service.from_dict(obj))) == []


CREATE_CASES: list[tuple[str, JSON, Expected]] = [
    # --- metadata --------------------------------------------------------------
    (
        "name-required",
        make(meta={"name": ""}),
        [("metadata.name", REQUIRED, "Required value: name or generateName is required")],
    ),
    (
        "name-not-dns1035",
        make(meta={"name": "1web"}),
        [("metadata.name", INVALID, f'Invalid value: "1web": {DNS1035}')],
    ),
    (
        "name-too-long",
        make(meta={"name": "a" * 64}),
        [
            (
                "metadata.name",
                INVALID,
                f'Invalid value: "{"a" * 64}": must be no more than 63 characters',
            )
        ],
    ),
    (
        "namespace-required",
        make(meta={"namespace": ""}),
        [("metadata.namespace", REQUIRED, "Required value")],
    ),
    (
        "namespace-not-label",
        make(meta={"namespace": "Default"}),
        [("metadata.namespace", INVALID, f'Invalid value: "Default": {DNS1123_LABEL}')],
    ),
    (
        "generation-negative",
        make(meta={"generation": -1}),
        [("metadata.generation", INVALID, "Invalid value: -1: must be greater than or equal to 0")],
    ),
    (
        "label-key-and-value",
        make(meta={"labels": {"bad key": "ok", "ok": "-bad"}}),
        [
            ("metadata.labels", INVALID, f'Invalid value: "bad key": {NAME_PART}'),
            ("metadata.labels", INVALID, f'Invalid value: "-bad": {LABEL_VALUE}'),
        ],
    ),
    (
        "annotation-key",
        make(meta={"annotations": {"a/b/c": "x", "/x": "y"}}),
        [
            (
                "metadata.annotations",
                INVALID,
                'Invalid value: "a/b/c": a qualified name '
                + QNAME_BODY
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
            ),
            ("metadata.annotations", INVALID, 'Invalid value: "/x": prefix part must be non-empty'),
        ],
    ),
    (
        "annotations-too-big",
        make(meta={"annotations": {"big": "x" * (256 * 1024)}}),
        [("metadata.annotations", TOO_LONG, "Too long: must have at most 262144 bytes")],
    ),
    (
        "finalizer-not-qualified",
        make(meta={"finalizers": ["cleanup"]}),
        [
            (
                "metadata.finalizers[0]",
                INVALID,
                'Invalid value: "cleanup": name is neither a standard finalizer name nor is it'
                " fully qualified",
            )
        ],
    ),
    (
        "topology-annotations-disagree",
        make(
            meta={
                "annotations": {
                    "service.kubernetes.io/topology-mode": "Auto",
                    "service.kubernetes.io/topology-aware-hints": "Disabled",
                }
            }
        ),
        [
            (
                "metadata.annotations[service.kubernetes.io/topology-mode]",
                INVALID,
                'Invalid value: "Auto": must match'
                " annotations[service.kubernetes.io/topology-aware-hints] when both are specified",
            )
        ],
    ),
    # --- ports -------------------------------------------------------------------
    ("ports-required", make({"ports": DELETE}), [("spec.ports", REQUIRED, "Required value")]),
    (
        "port-name-required-with-two-ports",
        make(
            {
                "ports": [
                    {"port": 80, "protocol": "TCP", "targetPort": 80},
                    {"name": "b", "port": 81, "protocol": "TCP", "targetPort": 81},
                ]
            }
        ),
        [("spec.ports[0].name", REQUIRED, "Required value")],
    ),
    (
        "port-name-not-label",
        make({"ports": [{"name": "Http", "port": 80, "protocol": "TCP", "targetPort": 80}]}),
        [("spec.ports[0].name", INVALID, f'Invalid value: "Http": {DNS1123_LABEL}')],
    ),
    (
        "port-name-with-dots",
        make({"ports": [{"name": "a.b", "port": 80, "protocol": "TCP", "targetPort": 80}]}),
        [("spec.ports[0].name", INVALID, 'Invalid value: "a.b": must not contain dots')],
    ),
    (
        "port-name-duplicate",
        make(
            {
                "ports": [
                    {"name": "a", "port": 80, "protocol": "TCP", "targetPort": 80},
                    {"name": "a", "port": 81, "protocol": "TCP", "targetPort": 81},
                ]
            }
        ),
        [("spec.ports[1].name", DUPLICATE, 'Duplicate value: "a"')],
    ),
    (
        "port-zero",
        make({"ports": [{"name": "a", "port": 0, "protocol": "TCP", "targetPort": 80}]}),
        [("spec.ports[0].port", INVALID, f"Invalid value: 0: {RANGE}")],
    ),
    (
        "port-negative-and-huge",
        make(
            {
                "ports": [
                    {"name": "a", "port": -1, "protocol": "TCP", "targetPort": 80},
                    {"name": "b", "port": 10**12, "protocol": "TCP", "targetPort": 80},
                ]
            }
        ),
        [
            ("spec.ports[0].port", INVALID, f"Invalid value: -1: {RANGE}"),
            ("spec.ports[1].port", INVALID, f"Invalid value: {10**12}: {RANGE}"),
        ],
    ),
    (
        "protocol-required",
        make({"ports": [{"name": "a", "port": 80, "targetPort": 80}]}),
        [("spec.ports[0].protocol", REQUIRED, "Required value")],
    ),
    (
        "protocol-unsupported",
        make({"ports": [{"name": "a", "port": 80, "protocol": "tcp", "targetPort": 80}]}),
        [("spec.ports[0].protocol", UNSUPPORTED, f'Unsupported value: "tcp": {PROTOCOLS}')],
    ),
    (
        "target-port-missing-and-out-of-range",
        make(
            {
                "ports": [
                    {"name": "a", "port": 80, "protocol": "TCP"},
                    {"name": "b", "port": 81, "protocol": "TCP", "targetPort": 65536},
                ]
            }
        ),
        [
            ("spec.ports[0].targetPort", INVALID, f"Invalid value: 0: {RANGE}"),
            ("spec.ports[1].targetPort", INVALID, f"Invalid value: 65536: {RANGE}"),
        ],
    ),
    (
        "target-port-name-rules",
        make(
            {
                "ports": [
                    {"name": "a", "port": 80, "protocol": "TCP", "targetPort": "HTTP"},
                    {"name": "b", "port": 81, "protocol": "TCP", "targetPort": "-a--b-"},
                    {"name": "c", "port": 82, "protocol": "TCP", "targetPort": "a23456789012345b"},
                    {"name": "d", "port": 83, "protocol": "TCP", "targetPort": "8080"},
                ]
            }
        ),
        [
            (
                "spec.ports[0].targetPort",
                INVALID,
                'Invalid value: "HTTP": must contain only alpha-numeric characters (a-z, 0-9),'
                " and hyphens (-)",
            ),
            (
                "spec.ports[0].targetPort",
                INVALID,
                'Invalid value: "HTTP": must contain at least one letter (a-z)',
            ),
            (
                "spec.ports[1].targetPort",
                INVALID,
                'Invalid value: "-a--b-": must not contain consecutive hyphens',
            ),
            (
                "spec.ports[1].targetPort",
                INVALID,
                'Invalid value: "-a--b-": must not begin or end with a hyphen',
            ),
            (
                "spec.ports[2].targetPort",
                INVALID,
                'Invalid value: "a23456789012345b": must be no more than 15 characters',
            ),
            (
                "spec.ports[3].targetPort",
                INVALID,
                'Invalid value: "8080": must contain at least one letter (a-z)',
            ),
        ],
    ),
    (
        "app-protocol",
        make(
            {
                "ports": [
                    {
                        "name": "a",
                        "port": 80,
                        "protocol": "TCP",
                        "targetPort": 80,
                        "appProtocol": "h t",
                    }
                ]
            }
        ),
        [("spec.ports[0].appProtocol", INVALID, f'Invalid value: "h t": {NAME_PART}')],
    ),
    (
        "node-port-on-cluster-ip",
        make(
            {
                "ports": [
                    {
                        "name": "a",
                        "port": 80,
                        "protocol": "TCP",
                        "targetPort": 80,
                        "nodePort": 30080,
                    }
                ]
            }
        ),
        [
            (
                "spec.ports[0].nodePort",
                FORBIDDEN,
                "Forbidden: may not be used when `type` is 'ClusterIP'",
            )
        ],
    ),
    (
        "duplicate-node-port",
        make(
            {
                "ports": [
                    {
                        "name": "a",
                        "port": 80,
                        "protocol": "TCP",
                        "targetPort": 80,
                        "nodePort": 30080,
                    },
                    {
                        "name": "b",
                        "port": 81,
                        "protocol": "TCP",
                        "targetPort": 81,
                        "nodePort": 30080,
                    },
                ]
            },
            base=NODEPORT_SPEC,
        ),
        [("spec.ports[1].nodePort", DUPLICATE, "Duplicate value: 30080")],
    ),
    (
        "duplicate-port-and-protocol",
        make(
            {
                "ports": [
                    {"name": "a", "port": 80, "protocol": "TCP", "targetPort": 80},
                    {"name": "b", "port": 80, "protocol": "TCP", "targetPort": 81},
                ]
            }
        ),
        [("spec.ports[1]", DUPLICATE, port_key("TCP", 80))],
    ),
    # --- type, ExternalName, headless --------------------------------------------
    ("type-required", make({"type": ""}), [("spec.type", REQUIRED, "Required value")]),
    (
        "type-unsupported",
        make({"type": "Internal"}),
        [("spec.type", UNSUPPORTED, f'Unsupported value: "Internal": {TYPES}')],
    ),
    (
        "external-name-with-ip-fields",
        make(
            {"clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"},
            base=EXTERNAL_NAME_SPEC,
        ),
        [
            ("spec.clusterIPs", FORBIDDEN, "Forbidden: may not be set for ExternalName services"),
            ("spec.ipFamilies", FORBIDDEN, "Forbidden: may not be set for ExternalName services"),
            (
                "spec.ipFamilyPolicy",
                FORBIDDEN,
                "Forbidden: may not be set for ExternalName services",
            ),
        ],
    ),
    (
        "external-name-required",
        make({"externalName": "."}, base=EXTERNAL_NAME_SPEC),
        [("spec.externalName", REQUIRED, "Required value")],
    ),
    (
        "external-name-not-subdomain",
        make({"externalName": "DB.example.com"}, base=EXTERNAL_NAME_SPEC),
        [("spec.externalName", INVALID, f'Invalid value: "DB.example.com": {SUBDOMAIN}')],
    ),
    (
        "headless-node-port",
        make({"clusterIP": "None", "clusterIPs": ["None"]}, base=NODEPORT_SPEC),
        [
            (
                "spec.clusterIPs[0]",
                INVALID,
                "Invalid value: \"None\": may not be set to 'None' for NodePort services",
            )
        ],
    ),
    (
        "headless-load-balancer",
        make({"clusterIP": "None", "clusterIPs": ["None"]}, base=LB_SPEC),
        [
            (
                "spec.clusterIPs[0]",
                INVALID,
                "Invalid value: \"None\": may not be set to 'None' for LoadBalancer services",
            )
        ],
    ),
    # --- clusterIP(s), ipFamilies, ipFamilyPolicy --------------------------------
    (
        "cluster-ips-required-with-cluster-ip",
        make({"clusterIPs": DELETE}),
        [("spec.clusterIPs", REQUIRED, "Required value")],
    ),
    (
        "cluster-ips-first-must-match",
        make({"clusterIPs": ["10.96.0.11"]}),
        [
            (
                "spec.clusterIPs",
                INVALID,
                'Invalid value: ["10.96.0.11"]: first value must match `clusterIP`',
            )
        ],
    ),
    (
        "cluster-ips-without-cluster-ip",
        make({"clusterIP": DELETE}),
        [
            (
                "spec.clusterIPs",
                INVALID,
                'Invalid value: ["10.96.0.10"]: must be empty when `clusterIP` is not specified',
            )
        ],
    ),
    (
        "none-not-alone",
        make({"clusterIP": "None", "clusterIPs": ["None", "10.96.0.10"]}),
        [
            (
                "spec.clusterIPs",
                INVALID,
                'Invalid value: ["None","10.96.0.10"]: \'None\' must be the first and only value',
            )
        ],
    ),
    (
        "cluster-ip-not-an-ip",
        make({"clusterIP": "10.96.0.300", "clusterIPs": ["10.96.0.300"]}),
        [("spec.clusterIPs[0]", INVALID, f'Invalid value: "10.96.0.300": {BAD_IP}')],
    ),
    (
        "cluster-ip-with-zone",
        make({"clusterIP": "fe80::1%eth0", "clusterIPs": ["fe80::1%eth0"], "ipFamilies": ["IPv6"]}),
        [("spec.clusterIPs[0]", INVALID, f'Invalid value: "fe80::1%eth0": {BAD_IP}')],
    ),
    (
        "three-cluster-ips",
        make(
            {
                "clusterIPs": ["10.96.0.10", "fd00::10", "10.96.0.11"],
                "ipFamilies": ["IPv4", "IPv6"],
            },
            base=DUAL_SPEC,
        ),
        [
            (
                "spec.clusterIPs",
                INVALID,
                'Invalid value: ["10.96.0.10","fd00::10","10.96.0.11"]: may only hold'
                " up to 2 values",
            )
        ],
    ),
    (
        "two-ips-one-family",
        make({"clusterIPs": ["10.96.0.10", "10.96.0.11"], "ipFamilies": ["IPv4"]}, base=DUAL_SPEC),
        [
            (
                "spec.clusterIPs",
                INVALID,
                'Invalid value: ["10.96.0.10","10.96.0.11"]: may specify no more than'
                " one IP for each IP family",
            )
        ],
    ),
    (
        "ip-does-not-match-family",
        make({"ipFamilies": ["IPv6", "IPv4"]}, base=DUAL_SPEC),
        [
            (
                "spec.clusterIPs[0]",
                INVALID,
                'Invalid value: "10.96.0.10": expected an IPv6 value as indicated by'
                " `ipFamilies[0]`",
            ),
            (
                "spec.clusterIPs[1]",
                INVALID,
                'Invalid value: "fd00::10": expected an IPv4 value as indicated by `ipFamilies[1]`',
            ),
        ],
    ),
    (
        "ip-families-unsupported-and-duplicate",
        make({"ipFamilies": ["IPv4", "IPv4", "ipv6"]}),
        [
            ("spec.ipFamilies[1]", DUPLICATE, 'Duplicate value: "IPv4"'),
            (
                "spec.ipFamilies[2]",
                UNSUPPORTED,
                'Unsupported value: "ipv6": supported values: "IPv4", "IPv6"',
            ),
        ],
    ),
    (
        "ip-family-policy-unsupported",
        make({"ipFamilyPolicy": "DualStack"}),
        [
            (
                "spec.ipFamilyPolicy",
                UNSUPPORTED,
                'Unsupported value: "DualStack": supported values: "PreferDualStack",'
                ' "RequireDualStack", "SingleStack"',
            )
        ],
    ),
    # --- externalIPs ------------------------------------------------------------
    (
        "external-ips",
        make(
            {
                "externalIPs": [
                    "nope",
                    "0.0.0.0",
                    "127.0.0.2",
                    "::1",
                    "169.254.1.1",
                    "fe80::2",
                    "224.0.0.9",
                    "ff02::9",
                    "::",
                ],
                "externalTrafficPolicy": "Cluster",
            }
        ),
        [
            ("spec.externalIPs[0]", INVALID, f'Invalid value: "nope": {BAD_IP}'),
            (
                "spec.externalIPs[1]",
                INVALID,
                'Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0)',
            ),
            (
                "spec.externalIPs[2]",
                INVALID,
                f'Invalid value: "127.0.0.2": {LOOPBACK}',
            ),
            (
                "spec.externalIPs[3]",
                INVALID,
                f'Invalid value: "::1": {LOOPBACK}',
            ),
            (
                "spec.externalIPs[4]",
                INVALID,
                f'Invalid value: "169.254.1.1": {LINK_LOCAL}',
            ),
            (
                "spec.externalIPs[5]",
                INVALID,
                f'Invalid value: "fe80::2": {LINK_LOCAL}',
            ),
            (
                "spec.externalIPs[6]",
                INVALID,
                f'Invalid value: "224.0.0.9": {MULTICAST}',
            ),
            (
                "spec.externalIPs[7]",
                INVALID,
                f'Invalid value: "ff02::9": {MULTICAST}',
            ),
            ("spec.externalIPs[8]", INVALID, 'Invalid value: "::": may not be unspecified (::)'),
        ],
    ),
    # --- session affinity --------------------------------------------------------
    (
        "session-affinity-required",
        make({"sessionAffinity": DELETE}),
        [("spec.sessionAffinity", REQUIRED, "Required value")],
    ),
    (
        "session-affinity-unsupported",
        make({"sessionAffinity": "Cookie"}),
        [
            (
                "spec.sessionAffinity",
                UNSUPPORTED,
                'Unsupported value: "Cookie": supported values: "ClientIP", "None"',
            )
        ],
    ),
    (
        "client-ip-config-required",
        make({"sessionAffinity": "ClientIP"}),
        [
            (
                "spec.sessionAffinityConfig",
                REQUIRED,
                "Required value: when session affinity type is ClientIP",
            )
        ],
    ),
    (
        "client-ip-timeout-range",
        make(
            {
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}},
            }
        ),
        [
            (
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                INVALID,
                "Invalid value: 86401: must be greater than 0 and less than 86400",
            )
        ],
    ),
    (
        "affinity-config-with-none",
        make({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10}}}),
        [
            (
                "spec.sessionAffinityConfig",
                FORBIDDEN,
                "Forbidden: must not be set when session affinity is None",
            )
        ],
    ),
    # --- load balancer fields ------------------------------------------------------
    (
        "source-ranges-not-lb",
        make({"loadBalancerSourceRanges": ["10.0.0.0/8", "10.0.0.0/33"]}),
        [
            ("spec.LoadBalancerSourceRanges", FORBIDDEN, f"Forbidden: {LB_ONLY}"),
            (
                "spec.LoadBalancerSourceRanges[1]",
                INVALID,
                f'Invalid value: "10.0.0.0/33": {BAD_CIDR}',
            ),
        ],
    ),
    (
        "source-ranges-annotation",
        make(
            meta={
                "annotations": {
                    "service.beta.kubernetes.io/load-balancer-source-ranges": " 10.0.0.0/8, nope "
                }
            }
        ),
        [
            (
                "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]",
                FORBIDDEN,
                f"Forbidden: {LB_ONLY}",
            ),
            (
                "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]",
                INVALID,
                f'Invalid value: "nope": {BAD_CIDR}',
            ),
        ],
    ),
    (
        "allocate-node-ports-not-lb",
        make({"allocateLoadBalancerNodePorts": True}),
        [("spec.allocateLoadBalancerNodePorts", FORBIDDEN, f"Forbidden: {LB_ONLY}")],
    ),
    (
        "allocate-node-ports-required-on-lb",
        make({"allocateLoadBalancerNodePorts": DELETE}, base=LB_SPEC),
        [("allocateLoadBalancerNodePorts", REQUIRED, "Required value")],
    ),
    (
        "lb-class-not-lb",
        make({"loadBalancerClass": "example.com/lb"}, base=NODEPORT_SPEC),
        [("spec.loadBalancerClass", FORBIDDEN, f"Forbidden: {LB_ONLY}")],
    ),
    (
        "lb-class-not-qualified",
        make({"loadBalancerClass": "Example.com/lb"}, base=LB_SPEC),
        [
            (
                "spec.loadBalancerClass",
                INVALID,
                'Invalid value: "Example.com/lb": prefix part ' + SUBDOMAIN,
            )
        ],
    ),
    # --- traffic policies ----------------------------------------------------------
    (
        "external-traffic-policy-not-external",
        make({"externalTrafficPolicy": "Local"}),
        [
            (
                "spec.externalTrafficPolicy",
                INVALID,
                'Invalid value: "Local": may only be set for externally-accessible services',
            )
        ],
    ),
    (
        "external-traffic-policy-required",
        make({"externalTrafficPolicy": DELETE}, base=NODEPORT_SPEC),
        [("spec.externalTrafficPolicy", REQUIRED, "Required value")],
    ),
    (
        "external-traffic-policy-unsupported",
        make({"externalTrafficPolicy": "Global"}, base=NODEPORT_SPEC),
        [
            (
                "spec.externalTrafficPolicy",
                UNSUPPORTED,
                'Unsupported value: "Global": supported values: "Cluster", "Local"',
            )
        ],
    ),
    (
        "health-check-node-port-not-local",
        make({"healthCheckNodePort": 31000}, base=LB_SPEC),
        [
            (
                "spec.healthCheckNodePort",
                INVALID,
                "Invalid value: 31000: may only be set when `type` is 'LoadBalancer' and"
                " `externalTrafficPolicy` is 'Local'",
            )
        ],
    ),
    (
        "health-check-node-port-negative-not-local",
        make({"healthCheckNodePort": -1}, base=LB_SPEC),
        [
            (
                "spec.healthCheckNodePort",
                INVALID,
                "Invalid value: -1: may only be set when `type` is 'LoadBalancer' and"
                " `externalTrafficPolicy` is 'Local'",
            )
        ],
    ),
    (
        "health-check-node-port-required",
        make({"externalTrafficPolicy": "Local"}, base=LB_SPEC),
        [("spec.healthCheckNodePort", REQUIRED, "Required value")],
    ),
    (
        "health-check-node-port-range",
        make({"externalTrafficPolicy": "Local", "healthCheckNodePort": -5}, base=LB_SPEC),
        [("spec.healthCheckNodePort", INVALID, f"Invalid value: -5: {RANGE}")],
    ),
    (
        "internal-traffic-policy-required",
        make({"internalTrafficPolicy": DELETE}),
        [("spec.internalTrafficPolicy", REQUIRED, "Required value")],
    ),
    (
        "internal-traffic-policy-unsupported",
        make({"internalTrafficPolicy": "Node"}),
        [
            (
                "spec.internalTrafficPolicy",
                UNSUPPORTED,
                'Unsupported value: "Node": supported values: "Cluster", "Local"',
            )
        ],
    ),
    (
        "selector-key",
        make({"selector": {"app/x/y": "web"}}),
        [
            (
                "spec.selector",
                INVALID,
                'Invalid value: "app/x/y": a qualified name '
                + QNAME_BODY
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
            )
        ],
    ),
    # --- several at once, in upstream's order --------------------------------------
    (
        "order-of-checks",
        make(
            {
                "type": "NodePort",
                "ports": [
                    {
                        "name": "a",
                        "port": 80,
                        "protocol": "TCP",
                        "targetPort": 80,
                        "nodePort": 30080,
                    },
                    {"name": "a", "port": 80, "protocol": "TCP", "targetPort": 80},
                ],
                "sessionAffinity": "Cookie",
                "externalIPs": ["x"],
                "externalTrafficPolicy": "Nope",
            },
            meta={"name": "Web"},
        ),
        [
            ("metadata.name", INVALID, f'Invalid value: "Web": {DNS1035}'),
            ("spec.ports[1].name", DUPLICATE, 'Duplicate value: "a"'),
            (
                "spec.sessionAffinity",
                UNSUPPORTED,
                'Unsupported value: "Cookie": supported values: "ClientIP", "None"',
            ),
            ("spec.externalIPs[0]", INVALID, f'Invalid value: "x": {BAD_IP}'),
            ("spec.ports[1]", DUPLICATE, port_key("TCP", 80)),
            (
                "spec.externalTrafficPolicy",
                UNSUPPORTED,
                'Unsupported value: "Nope": supported values: "Cluster", "Local"',
            ),
        ],
    ),
]


@pytest.mark.parametrize(
    ("obj", "expected"), [pytest.param(obj, exp, id=cid) for cid, obj, exp in CREATE_CASES]
)
def test_create_rules(obj: JSON, expected: Expected) -> None:
    assert triples(validate_service(Service.from_dict(obj))) == expected


OLD_LB = make({"loadBalancerClass": "example.com/a"}, base=LB_SPEC)
OLD_LOCAL = make({"externalTrafficPolicy": "Local", "healthCheckNodePort": 31000}, base=LB_SPEC)

UPDATE_CASES: list[tuple[str, JSON, JSON, Expected]] = [
    ("unchanged", make(), make(), []),
    ("type-change-to-external-name", make(base=EXTERNAL_NAME_SPEC), make(), []),
    ("type-change-from-external-name", make(), make(base=EXTERNAL_NAME_SPEC), []),
    ("downgrade-with-single-stack", make(), make(base=DUAL_SPEC), []),
    ("upgrade-keeping-primary", make(base=DUAL_SPEC), make(), []),
    ("set-lb-class-when-becoming-lb", OLD_LB, make(base=NODEPORT_SPEC), []),
    (
        "resource-version-required",
        make(meta={"resourceVersion": DELETE}),
        make(),
        [
            (
                "metadata.resourceVersion",
                INVALID,
                'Invalid value: "": must be specified for an update',
            )
        ],
    ),
    (
        "uid-immutable",
        make(meta={"uid": "b"}),
        make(meta={"uid": "a"}),
        [("metadata.uid", INVALID, 'Invalid value: "b": field is immutable')],
    ),
    (
        "no-new-finalizers-while-deleting",
        make(
            meta={
                "deletionTimestamp": "2024-01-01T00:00:00Z",
                "finalizers": ["example.com/b", "example.com/a"],
            }
        ),
        make(meta={"deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["example.com/a"]}),
        [
            (
                "metadata.finalizers",
                FORBIDDEN,
                "Forbidden: no new finalizers can be added if the object is being deleted, found"
                ' new finalizers []string{"example.com/b"}',
            )
        ],
    ),
    (
        "cluster-ip-changed",
        make({"clusterIP": "10.96.0.11", "clusterIPs": ["10.96.0.11"]}),
        make(),
        [("spec.clusterIPs[0]", INVALID, f'Invalid value: ["10.96.0.11"]: {CHANGED}')],
    ),
    (
        "primary-changed-on-upgrade",
        make({"clusterIP": "10.96.0.11", "clusterIPs": ["10.96.0.11", "fd00::10"]}, base=DUAL_SPEC),
        make(),
        [
            (
                "spec.clusterIPs[0]",
                INVALID,
                f'Invalid value: ["10.96.0.11","fd00::10"]: {CHANGED}',
            )
        ],
    ),
    (
        "primary-family-changed",
        make({"clusterIP": "fd00::10", "clusterIPs": ["fd00::10"], "ipFamilies": ["IPv6"]}),
        make(),
        [
            ("spec.clusterIPs[0]", INVALID, f'Invalid value: ["fd00::10"]: {CHANGED}'),
            ("spec.ipFamilies[0]", INVALID, f'Invalid value: ["IPv6"]: {CHANGED}'),
        ],
    ),
    (
        "downgrade-without-single-stack",
        make({"clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"]}, base=DUAL_SPEC),
        make(base=DUAL_SPEC),
        [
            (
                "spec.ipFamilyPolicy",
                INVALID,
                "Invalid value: \"RequireDualStack\": must be set to 'SingleStack' when releasing"
                " the secondary clusterIP",
            ),
            (
                "spec.ipFamilyPolicy",
                INVALID,
                "Invalid value: \"RequireDualStack\": must be set to 'SingleStack' when releasing"
                " the secondary ipFamily",
            ),
        ],
    ),
    (
        "lb-class-changed",
        make({"loadBalancerClass": "example.com/b"}, base=LB_SPEC),
        OLD_LB,
        [("spec.loadBalancerClass", INVALID, f'Invalid value: "example.com/b": {CHANGED}')],
    ),
    (
        "lb-class-removed",
        make(base=LB_SPEC),
        OLD_LB,
        [("spec.loadBalancerClass", INVALID, f"Invalid value: null: {CHANGED}")],
    ),
    (
        "lb-class-bad-reported-twice",
        make({"loadBalancerClass": "a b"}, base=LB_SPEC),
        make(base=NODEPORT_SPEC),
        [
            ("spec.loadBalancerClass", INVALID, f'Invalid value: "a b": {NAME_PART}'),
            ("spec.loadBalancerClass", INVALID, f'Invalid value: "a b": {NAME_PART}'),
        ],
    ),
    (
        "health-check-node-port-immutable",
        make({"externalTrafficPolicy": "Local", "healthCheckNodePort": 31001}, base=LB_SPEC),
        OLD_LOCAL,
        [("spec.healthCheckNodePort", FORBIDDEN, "Forbidden: field is immutable")],
    ),
]


@pytest.mark.parametrize(
    ("new", "old", "expected"),
    [pytest.param(new, old, exp, id=cid) for cid, new, old, exp in UPDATE_CASES],
)
def test_update_rules(new: JSON, old: JSON, expected: Expected) -> None:
    errors = validate_service_update(Service.from_dict(new), Service.from_dict(old))
    assert triples(errors) == expected


LB_STATUS_OK: JSON = {
    "loadBalancer": {
        "ingress": [
            {"ip": "192.0.2.1", "ipMode": "VIP", "ports": [{"port": 80, "protocol": "TCP"}]},
            {"hostname": "lb.example.com"},
            {"ip": "2001:db8::1", "ipMode": "Proxy"},
        ]
    },
    "conditions": [
        {
            "type": "LoadBalancerPortsError",
            "status": "False",
            "reason": "Ready",
            "message": "",
            "lastTransitionTime": "2024-01-01T00:00:00Z",
        }
    ],
}


def ingress(*items: JSON, conditions: list[JSON] | None = None) -> JSON:
    status: JSON = {"loadBalancer": {"ingress": list(items)}}
    if conditions is not None:
        status["conditions"] = conditions
    return status


def condition(**changes: Any) -> JSON:
    return _merge(LB_STATUS_OK["conditions"][0], changes)


INGRESS = "status.loadBalancer.ingress"
STATUS_CASES: list[tuple[str, JSON, bool, Expected]] = [
    ("valid", LB_STATUS_OK, True, []),
    ("empty", {}, True, []),
    (
        "ip-invalid",
        ingress({"ip": "192.0.2.256", "ipMode": "VIP"}),
        False,
        [(f"{INGRESS}[0].ip", INVALID, f'Invalid value: "192.0.2.256": {BAD_IP}')],
    ),
    (
        "ip-mode-required",
        ingress({"ip": "192.0.2.1"}),
        False,
        [(f"{INGRESS}[0].ipMode", REQUIRED, "Required value: must be specified when `ip` is set")],
    ),
    (
        "ip-mode-without-ip",
        ingress({"hostname": "lb.example.com", "ipMode": "VIP"}),
        False,
        [
            (
                f"{INGRESS}[0].ipMode",
                FORBIDDEN,
                "Forbidden: may not be specified when `ip` is not set",
            )
        ],
    ),
    (
        "ip-mode-unsupported",
        ingress({"ip": "192.0.2.1", "ipMode": "Direct"}),
        False,
        [
            (
                f"{INGRESS}[0].ipMode",
                UNSUPPORTED,
                'Unsupported value: "Direct": supported values: "Proxy", "VIP"',
            )
        ],
    ),
    (
        "hostname-invalid-and-ip",
        ingress({"hostname": "LB"}, {"hostname": "10.0.0.1"}),
        False,
        [
            (f"{INGRESS}[0].hostname", INVALID, f'Invalid value: "LB": {SUBDOMAIN}'),
            (
                f"{INGRESS}[1].hostname",
                INVALID,
                'Invalid value: "10.0.0.1": must be a DNS name, not an IP address',
            ),
        ],
    ),
    (
        "ports-and-conditions-ignored-unless-strict",
        ingress(
            {"ip": "192.0.2.1", "ipMode": "VIP", "ports": [{"port": 0, "protocol": "X"}]},
            conditions=[{"type": "", "status": "Maybe"}],
        ),
        False,
        [],
    ),
    (
        "strict-ports",
        ingress(
            {
                "ip": "192.0.2.1",
                "ipMode": "VIP",
                "ports": [
                    {"port": 0, "protocol": ""},
                    {"port": 80, "protocol": "HTTP", "error": "not camel case!"},
                    {"port": 81, "protocol": "TCP", "error": "E" * 317},
                    {"port": 82, "protocol": "UDP", "error": "example.com/PortUnavailable"},
                ],
            }
        ),
        True,
        [
            (f"{INGRESS}[0].ports[0].port", INVALID, f"Invalid value: 0: {RANGE}"),
            (f"{INGRESS}[0].ports[0].protocol", REQUIRED, "Required value"),
            (
                f"{INGRESS}[0].ports[1].protocol",
                UNSUPPORTED,
                f'Unsupported value: "HTTP": {PROTOCOLS}',
            ),
            (
                f"{INGRESS}[0].ports[1].error",
                INVALID,
                'Invalid value: "not camel case!": must be a CamelCase name, optionally prefixed'
                " with a DNS subdomain and '/' (e.g. 'PortUnavailable' or"
                " 'example.com/PortUnavailable')",
            ),
            (f"{INGRESS}[0].ports[2].error", TOO_LONG, "Too long: must have at most 316 bytes"),
        ],
    ),
    (
        "strict-conditions",
        ingress(
            conditions=[
                condition(type="bad type", status="Maybe", reason="", lastTransitionTime=None),
                condition(reason="9lives", observedGeneration=-1, message="m" * 32769),
                condition(reason="R" * 1025),
            ]
        ),
        True,
        [
            ("status.conditions[0].type", INVALID, f'Invalid value: "bad type": {NAME_PART}'),
            (
                "status.conditions[0].status",
                UNSUPPORTED,
                'Unsupported value: "Maybe": supported values: "False", "True", "Unknown"',
            ),
            ("status.conditions[0].lastTransitionTime", REQUIRED, "Required value: must be set"),
            ("status.conditions[0].reason", REQUIRED, "Required value: must be set"),
            (
                "status.conditions[1].observedGeneration",
                INVALID,
                "Invalid value: -1: must be greater than or equal to zero",
            ),
            (
                "status.conditions[1].reason",
                INVALID,
                'Invalid value: "9lives": a condition reason must start with alphabetic'
                " character, optionally followed by a string of alphanumeric characters or"
                " '_,:', and must end with an alphanumeric character or '_' (e.g. 'my_name',  or"
                " 'MY_NAME',  or 'MyName',  or 'ReasonA,ReasonB',  or 'ReasonA:ReasonB', regex"
                " used for validation is '[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?')",
            ),
            ("status.conditions[1].message", TOO_LONG, "Too long: must have at most 32768 bytes"),
            ("status.conditions[2].type", DUPLICATE, 'Duplicate value: "LoadBalancerPortsError"'),
            ("status.conditions[2].reason", TOO_LONG, "Too long: must have at most 1024 bytes"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("status", "strict", "expected"),
    [pytest.param(status, strict, exp, id=cid) for cid, status, strict, exp in STATUS_CASES],
)
def test_status_rules(status: JSON, strict: bool, expected: Expected) -> None:
    old = Service.from_dict(make(base=LB_SPEC))
    new = Service.from_dict(make(base=LB_SPEC, status=status))
    assert triples(validate_service_status_update(new, old, strict=strict)) == expected


def test_status_ingress_forbidden_unless_stored_type_is_load_balancer() -> None:
    status = ingress({"ip": "192.0.2.1", "ipMode": "VIP"})
    old = Service.from_dict(make())
    new = Service.from_dict(make(base=LB_SPEC, status=status))
    assert triples(validate_service_status_update(new, old)) == [
        (INGRESS, FORBIDDEN, "Forbidden: may only be used when `spec.type` is 'LoadBalancer'")
    ]


def test_status_update_checks_metadata() -> None:
    old = Service.from_dict(make(base=LB_SPEC))
    new = Service.from_dict(make(base=LB_SPEC, meta={"resourceVersion": DELETE, "name": "other"}))
    assert triples(validate_service_status_update(new, old)) == [
        ("metadata.resourceVersion", INVALID, 'Invalid value: "": must be specified for an update'),
        ("metadata.name", INVALID, 'Invalid value: "other": field is immutable'),
    ]


def test_error_renders_like_a_status_cause() -> None:
    errors = validate_service(
        Service.from_dict(
            make({"ports": [{"name": "a", "port": 0, "protocol": "TCP", "targetPort": 80}]})
        )
    )
    assert [e.as_cause() for e in errors] == [
        {
            "reason": "FieldValueInvalid",
            "message": "Invalid value: 0: must be between 1 and 65535, inclusive",
            "field": "spec.ports[0].port",
        }
    ]


# --- robustness: validation returns errors, it never raises ---------------------

_text = st.text(max_size=12) | st.sampled_from(
    ["", "None", "TCP", "UDP", "10.0.0.1", "fd00::1", "a", "-"]
)
_ints = st.integers(min_value=-(2**40), max_value=2**40)
_port = st.fixed_dictionaries(
    {},
    optional={
        "name": _text,
        "port": _ints,
        "protocol": _text,
        "targetPort": _ints | _text,
        "nodePort": _ints,
        "appProtocol": _text,
    },
)
_spec = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["", "ClusterIP", "NodePort", "LoadBalancer", "ExternalName"])
        | _text,
        "ports": st.lists(_port, max_size=4),
        "clusterIP": _text,
        "clusterIPs": st.lists(_text, max_size=3),
        "ipFamilies": st.lists(st.sampled_from(["IPv4", "IPv6"]) | _text, max_size=3),
        "ipFamilyPolicy": _text,
        "externalIPs": st.lists(_text, max_size=2),
        "externalName": _text,
        "sessionAffinity": _text,
        "externalTrafficPolicy": _text,
        "internalTrafficPolicy": _text,
        "healthCheckNodePort": _ints,
        "loadBalancerClass": _text,
        "loadBalancerSourceRanges": st.lists(_text, max_size=2),
        "allocateLoadBalancerNodePorts": st.booleans(),
        "selector": st.dictionaries(_text, _text, max_size=2),
        "sessionAffinityConfig": st.just({"clientIP": {"timeoutSeconds": 0}}) | st.just({}),
    },
)
_status = st.fixed_dictionaries(
    {
        "loadBalancer": st.fixed_dictionaries(
            {
                "ingress": st.lists(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "ip": _text,
                            "hostname": _text,
                            "ipMode": _text,
                            "ports": st.lists(
                                st.fixed_dictionaries(
                                    {"port": _ints, "protocol": _text}, optional={"error": _text}
                                ),
                                max_size=2,
                            ),
                        },
                    ),
                    max_size=2,
                )
            }
        ),
        "conditions": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "type": _text,
                    "status": _text,
                    "reason": _text,
                    "message": _text,
                    "observedGeneration": _ints,
                    "lastTransitionTime": _text,
                },
            ),
            max_size=2,
        ),
    }
)
_meta = st.fixed_dictionaries(
    {},
    optional={
        "name": _text,
        "namespace": _text,
        "resourceVersion": _text,
        "labels": st.dictionaries(_text, _text, max_size=2),
        "annotations": st.dictionaries(_text, _text, max_size=2),
        "finalizers": st.lists(_text, max_size=2),
        "generation": _ints,
    },
)


@settings(max_examples=150, deadline=None)
@given(meta=_meta, spec=_spec, status=_status, old_spec=_spec)
def test_validation_never_raises(meta: JSON, spec: JSON, status: JSON, old_spec: JSON) -> None:
    new = Service.from_dict({"metadata": meta, "spec": spec, "status": status})
    old = Service.from_dict({"metadata": meta, "spec": old_spec})
    for errors in (
        validate_service(new),
        validate_service_update(new, old),
        validate_service_status_update(new, old, strict=True),
    ):
        assert isinstance(errors, FieldErrors)
        for error in errors:
            assert error.field
            assert isinstance(error.message, str)
