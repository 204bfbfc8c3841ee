"""Server-side printing: the ``meta.k8s.io/v1`` Table that ``kubectl get`` asks for.

:func:`to_table` renders objects of one kind as kube-apiserver does
(``handlers/response.go`` ``asTable``): column definitions, one row per object with
its cells and, per ``includeObject``, a ``PartialObjectMetadata`` (``Metadata``, the
default), the whole object (``Object``) or nothing (``None``).

Which columns a kind gets:

* the built-in kinds: upstream's printers (:mod:`lbctl.apimachinery.printers`,
  :mod:`lbctl.apimachinery.event_printers`);
* custom kinds with printer columns: ``Name`` then their columns, each cell the first
  value its JSONPath reaches, typed as apiextensions types it (an ``integer`` column
  truncates a float, a ``date`` column shows an age, a ``string`` column prints maps
  and lists as JSON);
* custom kinds without printer columns: ``Name`` and ``Age`` (apiextensions'
  default column); any other kind: ``Name`` and ``Age`` too.

Upstream does not append ``Age`` to a custom kind's own columns: a CRD that wants
one declares it (``.metadata.creationTimestamp``, type ``date``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from lbctl.apimachinery import printers
from lbctl.apimachinery.event_printers import CORE_EVENT, EVENTS_V1_EVENT
from lbctl.apimachinery.jsonpath import JSONPath, JSONPathError, go_print
from lbctl.apimachinery.printing import (
    AGE_DOC,
    JSON,
    NAME,
    Column,
    Printer,
    human_duration,
    name,
    parse_time,
    since,
)
from lbctl.apimachinery.resources import PrinterColumn, ResourceType

__all__ = [
    "BUILTIN_PRINTERS",
    "INCLUDE_OBJECT_VALUES",
    "Column",
    "Printer",
    "TableError",
    "custom_cell",
    "human_duration",
    "printer_for",
    "to_table",
]

BUILTIN_PRINTERS: Final[Mapping[tuple[str, str], Printer]] = {
    ("", "Service"): printers.SERVICE,
    ("", "Node"): printers.NODE,
    ("", "Namespace"): printers.NAMESPACE,
    ("", "ConfigMap"): printers.CONFIGMAP,
    ("", "Event"): CORE_EVENT,
    ("events.k8s.io", "Event"): EVENTS_V1_EVENT,
    ("discovery.k8s.io", "EndpointSlice"): printers.ENDPOINTSLICE,
    ("coordination.k8s.io", "Lease"): printers.LEASE,
    ("networking.k8s.io", "ServiceCIDR"): printers.SERVICECIDR,
    ("networking.k8s.io", "IPAddress"): printers.IPADDRESS,
}
"""Upstream's printers for the built-in kinds, by (group, kind)."""

INCLUDE_OBJECT_VALUES: Final = ("Metadata", "Object", "None")


class TableError(ValueError):
    """An ``includeObject`` value kube-apiserver rejects; ``str()`` is its 400 message."""


def _date_cell(value: Any, now: datetime) -> Any:
    """A ``date`` column: the age of an RFC 3339 timestamp (``metatable``'s rule)."""
    if not isinstance(value, str):
        return None
    if value in ("", "null"):
        return "<unknown>"
    return since(value, now) if parse_time(value) is not None else "<invalid>"


def custom_cell(column_type: str, found: bool, value: Any, now: datetime) -> Any:
    """One custom-column cell from the first value its JSONPath reached.

    ``found=False`` (nothing reached) and values of the wrong type give ``None``, which
    kubectl prints as ``<none>``.
    """
    if not found or value is None:
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if column_type == "string":
        return go_print(value)
    if column_type == "integer":
        return int(value) if number and math.isfinite(value) else None
    if column_type == "number":
        return float(value) if number else None
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if column_type == "date":
        return _date_cell(value, now)
    return None


def _custom_printer(columns: Sequence[PrinterColumn]) -> Printer:
    paths: list[JSONPath | None] = []
    for col in columns:
        try:
            paths.append(JSONPath.parse(col.json_path))
        except JSONPathError:
            paths.append(None)  # upstream would reject the CRD; show empty cells

    def cells(obj: JSON, now: datetime) -> list[Any]:
        row: list[Any] = [name(obj)]
        for col, path in zip(columns, paths, strict=True):
            found, value = path.first(obj) if path is not None else (False, None)
            row.append(custom_cell(col.type, found, value, now))
        return row

    definitions = tuple(
        Column(
            col.name,
            col.type,
            col.format,
            col.description
            or f"Custom resource definition column (in JSONPath format): {col.json_path}",
            col.priority,
        )
        for col in columns
    )
    return Printer((NAME, *definitions), cells)


_DEFAULT_AGE: Final = PrinterColumn("Age", "date", ".metadata.creationTimestamp", AGE_DOC)


def printer_for(rt: ResourceType) -> Printer:
    """The columns and cell function kube-apiserver uses for ``rt``."""
    builtin = BUILTIN_PRINTERS.get((rt.group, rt.kind))
    if builtin is not None and not rt.custom:
        return builtin
    return _custom_printer(rt.printer_columns or (_DEFAULT_AGE,))


def _row_object(obj: JSON, include_object: str) -> Any:
    if include_object == "Object":
        return obj
    if include_object == "None":
        return None
    metadata = obj.get("metadata")
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(metadata) if isinstance(metadata, Mapping) else {},
    }


def to_table(
    rt: ResourceType,
    objects: Sequence[JSON],
    *,
    resource_version: str,
    now: datetime,
    include_object: str = "Metadata",
) -> dict[str, Any]:
    """The ``meta.k8s.io/v1`` Table for ``objects`` (all of kind ``rt``).

    Rows are rendered wide (priority-1 columns included), as the server always does.
    ``include_object`` is the ``includeObject`` query value (``""`` means Metadata);
    any other value raises :class:`TableError` (400 BadRequest upstream).
    """
    include = include_object or "Metadata"
    if include not in INCLUDE_OBJECT_VALUES:
        quoted = json.dumps(include_object, ensure_ascii=False)
        raise TableError(f"unrecognized includeObject value: {quoted}")
    printer = printer_for(rt)
    metadata = {"resourceVersion": resource_version} if resource_version else {}
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": [c.definition() for c in printer.columns],
        "rows": [
            {"cells": printer.cells(obj, now), "object": _row_object(obj, include)}
            for obj in objects
        ],
    }
