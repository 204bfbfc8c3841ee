"""Per-kind rules for everything but Services (which live in :mod:`.services`).

- Namespace: ``spec.finalizers: [kubernetes]``, ``status.phase: Active`` and the
  ``kubernetes.io/metadata.name`` label.
- Kinds with a status subresource: the main resource keeps the old status, ``/status``
  keeps everything else (Node and Namespace keep their metadata changes too).
- lbctl's own kinds (a schema in their ResourceType): pruned, defaulted and validated
  against their structural schema; ``generation`` follows spec changes.
"""

from __future__ import annotations

import copy
from typing import Any

from lbctl.apimachinery import schema as structural
from lbctl.apimachinery.resources import ResourceType
from lbctl.apiserver import errors
from lbctl.apiserver.meta import spec_changed

__all__ = ["admit_create", "admit_status", "admit_update"]

JSON = dict[str, Any]
NAMESPACE_LABEL = "kubernetes.io/metadata.name"


def _custom(rt: ResourceType, obj: JSON) -> JSON:
    assert rt.schema is not None
    meta = obj.get("metadata")
    out = structural.prune(obj, rt.schema)
    out = structural.prune_nulls(out, rt.schema)
    out = structural.apply_defaults(out, rt.schema)
    out["metadata"] = meta
    errs = structural.validate(out, rt.schema)
    if errs:
        raise errors.invalid(rt, str((meta or {}).get("name", "")), errs)
    return dict(out)


def _namespace(obj: JSON) -> JSON:
    meta = obj["metadata"]
    labels = dict(meta.get("labels") or {})
    labels[NAMESPACE_LABEL] = meta["name"]
    meta["labels"] = labels
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        raise errors.bad_request("spec must be an object")
    spec.setdefault("finalizers", ["kubernetes"])
    status = obj.get("status") if isinstance(obj.get("status"), dict) else {}
    obj["status"] = {**(status or {}), "phase": (status or {}).get("phase") or "Active"}
    return obj


def admit_create(rt: ResourceType, obj: JSON) -> JSON:
    """``obj`` has its metadata prepared; return what to store."""
    if rt.kind == "Namespace" and rt.group == "":
        obj = _namespace(obj)
        obj["status"] = {"phase": "Active"}
    if rt.custom:
        if rt.status_subresource:
            obj.pop("status", None)
        obj = _custom(rt, obj)
    return obj


def admit_update(rt: ResourceType, new: JSON, old: JSON) -> JSON:
    """The main resource: a status subresource's status is kept from ``old``."""
    if rt.status_subresource:
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
    if rt.kind == "Namespace" and rt.group == "":
        new = _namespace(new)
    if rt.custom:
        new = _custom(rt, new)
    if rt.generation and spec_changed(new, old):
        new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
    return new


def admit_status(rt: ResourceType, new: JSON, old: JSON) -> JSON:
    """``/status``: only status (and, for built-ins, metadata) changes."""
    out = copy.deepcopy(old)
    if not rt.custom:
        out["metadata"] = new["metadata"]
    else:
        out["metadata"] = {
            **old["metadata"],
            "resourceVersion": new["metadata"].get(
                "resourceVersion", old["metadata"].get("resourceVersion")
            ),
        }
    if "status" in new:
        out["status"] = new["status"]
    else:
        out.pop("status", None)
    if rt.kind == "Namespace" and rt.group == "":
        out = _namespace(out)
    if rt.custom:
        out = _custom(rt, out)
    return out
