"""Generic object metadata rules (``ObjectMeta``), the same for every kind.

Create: name (or generateName), namespace from the URL, a new uid, creationTimestamp,
no deletion fields, generation 1 for kinds that track it. Update: uid,
creationTimestamp, deletion fields and generation are the server's; a stale
resourceVersion is a conflict; once deleting, finalizers may only be removed.
"""

from __future__ import annotations

import copy
import secrets
import string
import uuid
from datetime import UTC, datetime
from typing import Any

from lbctl.apimachinery.resources import ResourceType
from lbctl.apiserver import errors
from lbctl.domain.fielderrors import FieldErrors, forbidden, invalid, required
from lbctl.domain.names import dns1123_label_errors, dns1123_subdomain_errors

__all__ = ["now_rfc3339", "prepare_create_meta", "prepare_update_meta", "spec_changed"]

JSON = dict[str, Any]
_SUFFIX = string.ascii_lowercase + "0123456789"
_SERVER_FIELDS = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _name_errors(rt: ResourceType, name: str) -> list[str]:
    # Most kinds use subdomain names; Services and Namespaces use labels (their
    # own validation reports them with the exact DNS-1035 text).
    if rt.kind in ("Namespace",):
        return dns1123_label_errors(name)
    return dns1123_subdomain_errors(name)


def prepare_create_meta(rt: ResourceType, obj: JSON, *, namespace: str) -> JSON:
    """Fill the server's metadata on a new object; raises APIError on bad metadata."""
    out = copy.deepcopy(obj)
    meta = out.get("metadata")
    if meta is None:
        meta = out["metadata"] = {}
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    out["apiVersion"], out["kind"] = rt.api_version, rt.kind
    name = meta.get("name") or ""
    if not name and meta.get("generateName"):
        name = f"{meta['generateName']}{''.join(secrets.choice(_SUFFIX) for _ in range(5))}"
        meta["name"] = name
    if rt.namespaced:
        body_ns = meta.get("namespace")
        if body_ns and body_ns != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    errs = FieldErrors()
    if not name:
        errs.add(required("metadata.name", "name or generateName is required"))
    elif rt.kind != "Service":
        for msg in _name_errors(rt, name):
            errs.add(invalid("metadata.name", name, msg))
    if errs:
        raise errors.invalid(rt, str(name), errs)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_rfc3339()
    for k in (
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "resourceVersion",
        "managedFields",
        "selfLink",
    ):
        meta.pop(k, None)
    if rt.generation:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)
    return out


def prepare_update_meta(rt: ResourceType, new: JSON, old: JSON, *, name: str) -> JSON:
    """Carry the server's metadata over from ``old``; raises on conflicts and bad changes."""
    out = copy.deepcopy(new)
    meta = out.get("metadata")
    if not isinstance(meta, dict):
        meta = out["metadata"] = {}
    out["apiVersion"], out["kind"] = rt.api_version, rt.kind
    if meta.get("name") and meta["name"] != name:
        raise errors.bad_request(
            f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
        )
    old_meta = old.get("metadata") or {}
    given_rv = meta.get("resourceVersion")
    if given_rv and given_rv != old_meta.get("resourceVersion"):
        raise errors.conflict(rt, name)
    if rt.namespaced and meta.get("namespace") and meta["namespace"] != old_meta.get("namespace"):
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    meta["name"] = name
    if rt.namespaced:
        meta["namespace"] = old_meta.get("namespace")
    for k in _SERVER_FIELDS:
        if k in old_meta:
            meta[k] = old_meta[k]
        else:
            meta.pop(k, None)
    meta.pop("managedFields", None)
    meta.pop("selfLink", None)
    if rt.generation:
        meta["generation"] = old_meta.get("generation", 1)
    else:
        meta.pop("generation", None)
    if old_meta.get("deletionTimestamp"):
        new_fin = set(meta.get("finalizers") or [])
        added = sorted(new_fin - set(old_meta.get("finalizers") or []))
        if added:
            refused = forbidden(
                "metadata.finalizers",
                "no new finalizers can be added if the object is being deleted, found new "
                "finalizers []string{" + ", ".join(f'"{f}"' for f in added) + "}",
            )
            raise errors.invalid(
                rt,
                name,
                # Reported twice, as upstream does (generic and kind-specific checks).
                FieldErrors([refused, refused]),
            )
    meta["resourceVersion"] = old_meta.get("resourceVersion")
    return out


def spec_changed(new: JSON, old: JSON) -> bool:
    """Whether anything but metadata and status differs (generation bumps on it)."""
    keys = (set(new) | set(old)) - {"metadata", "status", "apiVersion", "kind"}
    return any(new.get(k) != old.get(k) for k in keys)
