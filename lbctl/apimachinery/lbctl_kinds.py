"""lbctl's own kinds (``lbctl.io/v1alpha1``), defined once: the embedded API server serves
them from these :class:`ResourceType` values, and :func:`crd_manifest` turns the same
values into the CustomResourceDefinitions shipped in ``deploy/crds/`` for real clusters.

- ``IPPool`` (cluster-scoped): addresses for LoadBalancer Services, MetalLB
  ``IPAddressPool`` semantics (``lbctl.allocators.lbpools``); status with the assigned
  and available counts per family and conditions.
- ``L2Advertisement`` (cluster-scoped): which pools the speakers announce, from which
  nodes and on which interfaces.

Pure: data and a dict builder, no I/O.
"""

from __future__ import annotations

from typing import Any, Final

from lbctl.apimachinery.resources import PrinterColumn, ResourceType

__all__ = [
    "GROUP",
    "IPPOOL",
    "L2ADVERTISEMENT",
    "LBCTL_TYPES",
    "VERSION",
    "crd_manifest",
]

GROUP: Final = "lbctl.io"
VERSION: Final = "v1alpha1"

_STRINGS: Final[dict[str, Any]] = {"type": "array", "items": {"type": "string"}}

_LABEL_SELECTOR: Final[dict[str, Any]] = {
    "type": "object",
    "description": "A label selector (matchLabels and matchExpressions, ANDed).",
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {
                        "type": "string",
                        "enum": ["In", "NotIn", "Exists", "DoesNotExist"],
                    },
                    "values": _STRINGS,
                },
            },
        },
    },
}
_SELECTORS: Final[dict[str, Any]] = {"type": "array", "items": _LABEL_SELECTOR}

_CONDITION: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["type", "status", "lastTransitionTime", "reason", "message"],
    "properties": {
        "type": {"type": "string", "maxLength": 316},
        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
        "observedGeneration": {"type": "integer", "minimum": 0},
        "lastTransitionTime": {"type": "string"},
        "reason": {"type": "string", "maxLength": 1024},
        "message": {"type": "string", "maxLength": 32768},
    },
}


def _object(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": spec,
    }
    if status is not None:
        properties["status"] = status
    return {"type": "object", "required": ["spec"], "properties": properties}


IPPOOL_SCHEMA: Final = _object(
    {
        "type": "object",
        "required": ["addresses"],
        "properties": {
            "addresses": {
                "type": "array",
                "minItems": 1,
                "description": "CIDRs (192.0.2.0/28, 2001:db8::/120) or inclusive ranges "
                "(192.0.2.10-192.0.2.20), one family per entry.",
                "items": {"type": "string", "minLength": 1},
            },
            "autoAssign": {
                "type": "boolean",
                "default": True,
                "description": "Hand out addresses without a request naming this pool.",
            },
            "avoidBuggyIPs": {
                "type": "boolean",
                "default": False,
                "description": "Skip IPv4 addresses ending in .0 and .255.",
            },
            "serviceAllocation": {
                "type": "object",
                "description": "Which Services may use the pool, and in which order.",
                "properties": {
                    "priority": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Lower wins; unset (or 0) sorts last.",
                    },
                    "namespaces": _STRINGS,
                    "namespaceSelectors": _SELECTORS,
                    "serviceSelectors": _SELECTORS,
                },
            },
        },
    },
    {
        "type": "object",
        "properties": {
            "assignedIPv4": {"type": "integer"},
            "assignedIPv6": {"type": "integer"},
            "availableIPv4": {"type": "integer"},
            "availableIPv6": {"type": "integer"},
            "conditions": {"type": "array", "items": _CONDITION},
        },
    },
)

L2ADVERTISEMENT_SCHEMA: Final = _object(
    {
        "type": "object",
        "properties": {
            "ipPools": {**_STRINGS, "description": "Pool names; none: every pool."},
            "ipPoolSelectors": _SELECTORS,
            "nodeSelectors": {**_SELECTORS, "description": "Nodes that may announce."},
            "interfaces": {**_STRINGS, "description": "Interfaces to answer on; none: all."},
            "serviceSelectors": _SELECTORS,
        },
    }
)

_AGE: Final = PrinterColumn("Age", "date", ".metadata.creationTimestamp")

IPPOOL: Final = ResourceType(
    GROUP,
    VERSION,
    "IPPool",
    "ippools",
    "ippool",
    False,
    short_names=("ipp",),
    categories=("lbctl",),
    status_subresource=True,
    generation=True,
    printer_columns=(
        PrinterColumn("Addresses", "string", ".spec.addresses"),
        PrinterColumn("Auto Assign", "boolean", ".spec.autoAssign"),
        PrinterColumn("Assigned IPv4", "integer", ".status.assignedIPv4"),
        PrinterColumn("Available IPv4", "integer", ".status.availableIPv4"),
        PrinterColumn("Assigned IPv6", "integer", ".status.assignedIPv6", priority=1),
        PrinterColumn("Available IPv6", "integer", ".status.availableIPv6", priority=1),
        _AGE,
    ),
    schema=IPPOOL_SCHEMA,
    unconditional_update=False,
)

L2ADVERTISEMENT: Final = ResourceType(
    GROUP,
    VERSION,
    "L2Advertisement",
    "l2advertisements",
    "l2advertisement",
    False,
    short_names=("l2a",),
    categories=("lbctl",),
    generation=True,
    printer_columns=(
        PrinterColumn("Pools", "string", ".spec.ipPools"),
        PrinterColumn("Interfaces", "string", ".spec.interfaces"),
        _AGE,
    ),
    schema=L2ADVERTISEMENT_SCHEMA,
    unconditional_update=False,
)

LBCTL_TYPES: Final = (IPPOOL, L2ADVERTISEMENT)
"""What ``lbctl apiserver`` and ``lbctl up`` serve besides the built-in kinds."""


def crd_manifest(rt: ResourceType) -> dict[str, Any]:
    """The ``apiextensions.k8s.io/v1`` CustomResourceDefinition of a custom kind."""
    if rt.schema is None:
        raise ValueError(f"{rt.group_resource} is not a custom kind")
    names: dict[str, Any] = {
        "kind": rt.kind,
        "listKind": rt.list_kind,
        "plural": rt.plural,
        "singular": rt.singular,
    }
    if rt.short_names:
        names["shortNames"] = list(rt.short_names)
    if rt.categories:
        names["categories"] = list(rt.categories)
    version: dict[str, Any] = {
        "name": rt.version,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": rt.schema},
    }
    if rt.status_subresource:
        version["subresources"] = {"status": {}}
    if rt.printer_columns:
        columns = []
        for c in rt.printer_columns:
            column: dict[str, Any] = {"name": c.name, "type": c.type, "jsonPath": c.json_path}
            if c.description:
                column["description"] = c.description
            if c.priority:
                column["priority"] = c.priority
            if c.format:
                column["format"] = c.format
            columns.append(column)
        version["additionalPrinterColumns"] = columns
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": rt.group_resource},
        "spec": {
            "group": rt.group,
            "names": names,
            "scope": "Namespaced" if rt.namespaced else "Cluster",
            "versions": [version],
        },
    }
