"""CRD structural schemas for lbctl's own kinds, handled as kube-apiserver handles them.

The embedded API server serves ``lbctl.io`` kinds with an OpenAPI v3 structural schema
(``ResourceType.schema``).  On every write it does what apiextensions-apiserver does:

>>> obj = prune(obj, schema)            # drop unknown fields        # doctest: +SKIP
>>> obj = prune_nulls(obj, schema)      # drop non-nullable nulls    # doctest: +SKIP
>>> obj = apply_defaults(obj, schema)   # fill in ``default`` values # doctest: +SKIP
>>> errors = validate(obj, schema)      # FieldErrors, empty = valid # doctest: +SKIP

:func:`validate` reports kube-apiserver's field paths and messages
(``spec.addresses: Required value``, ``spec.priority: Invalid value: "string":
spec.priority in body must be of type integer: "string"``).  :func:`check_schema` lints
a schema itself.  The implementation lives in :mod:`.schema_validation`,
:mod:`.schema_structural` and :mod:`.schema_formats`; this module is the public face.
Pure: no I/O.
"""

from __future__ import annotations

from lbctl.apimachinery.schema_formats import SUPPORTED_FORMATS
from lbctl.apimachinery.schema_structural import (
    apply_defaults,
    check_schema,
    copy_json,
    prune,
    prune_nulls,
)
from lbctl.apimachinery.schema_validation import validate

__all__ = [
    "SUPPORTED_FORMATS",
    "apply_defaults",
    "check_schema",
    "copy_json",
    "prune",
    "prune_nulls",
    "validate",
]
