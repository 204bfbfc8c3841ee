"""Label and field selectors: the one import the API server needs.

``parse_label_selector`` (:mod:`lbctl.apimachinery.labelselector`) and
``parse_field_selector`` (:mod:`lbctl.apimachinery.fieldselector`) turn the
``labelSelector`` / ``fieldSelector`` query values into selectors whose
``matches(obj)`` takes a whole JSON object.  Both raise :class:`SelectorError`,
whose text is kube-apiserver's message for the 400 BadRequest.
"""

from __future__ import annotations

from lbctl.apimachinery.fieldselector import (
    DEFAULT_FIELDS,
    FieldErrorStyle,
    FieldRequirement,
    FieldSelector,
    escape_field_value,
    field_value,
    parse_field_selector,
)
from lbctl.apimachinery.labelselector import (
    LabelSelector,
    Operator,
    Requirement,
    SelectorError,
    parse_label_selector,
)

__all__ = [
    "DEFAULT_FIELDS",
    "FieldErrorStyle",
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Operator",
    "Requirement",
    "SelectorError",
    "escape_field_value",
    "field_value",
    "parse_field_selector",
    "parse_label_selector",
]
