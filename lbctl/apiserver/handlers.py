"""The verbs: get, list, create, update, patch, delete, deletecollection.

Each verb is synchronous from reading the old object to committing the new one (no
``await`` in between), so on one event loop every write is atomic: two clients can
never both allocate the same value or both update from the same resourceVersion.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lbctl.apimachinery import patch as patches
from lbctl.apimachinery.resources import ResourceType
from lbctl.apimachinery.selectors import (
    FieldErrorStyle,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from lbctl.apiserver import errors, kinds
from lbctl.apiserver.meta import now_rfc3339, prepare_create_meta, prepare_update_meta
from lbctl.apiserver.routing import Target, parse_int
from lbctl.apiserver.services import Allocation, ServiceRegistry
from lbctl.apiserver.store import Change, Delete, Put, Store
from lbctl.domain.fielderrors import FieldErrors, invalid

__all__ = ["Handlers", "Selection", "strip_rv"]

JSON = dict[str, Any]


def strip_rv(obj: JSON) -> JSON:
    meta = dict(obj.get("metadata") or {})
    meta.pop("resourceVersion", None)
    return {**obj, "metadata": meta}


@dataclass(frozen=True, slots=True)
class Selection:
    """Label and field selectors of a list / watch / deletecollection."""

    labels: Any
    fields: Any

    @classmethod
    def parse(cls, rt: ResourceType, query: Mapping[str, str]) -> Selection:
        try:
            labels = parse_label_selector(query.get("labelSelector", ""))
            fields = parse_field_selector(
                query.get("fieldSelector", ""),
                supported=rt.field_selectors,
                style=FieldErrorStyle.NOT_SUPPORTED if rt.custom else None,
            )
        except SelectorError as e:
            raise errors.bad_request(str(e)) from None
        return cls(labels, fields)

    def matches(self, obj: JSON) -> bool:
        return bool(self.labels.matches(obj) and self.fields.matches(obj))


class Handlers:
    def __init__(
        self,
        *,
        store: Store,
        services: ServiceRegistry,
        on_namespace_terminating: Callable[[str], None],
    ) -> None:
        self.store = store
        self.services = services
        self._on_ns_terminating = on_namespace_terminating

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    def key(rt: ResourceType) -> tuple[str, str]:
        return (rt.group, rt.plural)

    def _get_or_404(self, t: Target) -> JSON:
        obj = self.store.get(self.key(t.rt), t.namespace, t.name)
        if obj is None:
            raise errors.not_found(t.rt, t.name)
        return obj

    def _check_namespace(self, t: Target, *, creating: bool) -> None:
        if not t.rt.namespaced:
            return
        ns = self.store.get(("", "namespaces"), "", t.namespace)
        if ns is None:
            raise errors.namespace_not_found(t.namespace)
        if creating and (ns.get("metadata") or {}).get("deletionTimestamp"):
            raise errors.forbidden(
                f'{t.rt.group_resource} "{t.name}" is forbidden: unable to create new content '
                f"in namespace {t.namespace} because it is being terminated",
                t.rt,
                t.name,
            )

    def _commit(self, ops: Sequence[Put | Delete], alloc: Allocation | None) -> list[Change]:
        try:
            changes = self.store.write(ops)
        except BaseException:
            if alloc is not None:
                alloc.rollback()
            raise
        if alloc is not None:
            alloc.commit()
        return changes

    # -- read ------------------------------------------------------------------------
    def get(self, t: Target) -> JSON:
        return self._get_or_404(t)

    def list(self, t: Target, query: Mapping[str, str]) -> tuple[list[JSON], JSON]:
        """Matching objects (one page) and the list metadata."""
        sel = Selection.parse(t.rt, query)
        ns = t.namespace if t.rt.namespaced and t.namespace else None
        items = [o for o in self.store.items(self.key(t.rt), ns) if sel.matches(o)]
        meta: JSON = {"resourceVersion": str(self.store.rv)}
        limit = parse_int(query, "limit")
        token = query.get("continue", "")
        if token:
            start_after, token_rv = _decode_continue(token)
            if token_rv < self.store.compacted_rv:
                raise errors.expired(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                )
            items = [o for o in items if _sort_key(o) > start_after]
        if limit and len(items) > limit:
            page, rest = items[:limit], items[limit:]
            meta["continue"] = _encode_continue(_sort_key(page[-1]), self.store.rv)
            meta["remainingItemCount"] = len(rest)
            items = page
        return items, meta

    # -- create ----------------------------------------------------------------------
    def create(self, t: Target, body: JSON, *, dry_run: bool) -> JSON:
        self._check_namespace(t, creating=True)
        obj = prepare_create_meta(t.rt, body, namespace=t.namespace)
        name = obj["metadata"]["name"]
        if self.store.get(self.key(t.rt), t.namespace, name) is not None:
            raise errors.already_exists(t.rt, name)
        alloc: Allocation | None = None
        if t.rt.kind == "Service" and t.rt.group == "":
            obj, alloc = self.services.admit_create(t.rt, obj, meta=obj["metadata"])
        else:
            obj = kinds.admit_create(t.rt, obj)
        if dry_run:
            if alloc is not None:
                alloc.rollback()
            return obj
        ops: list[Put | Delete] = [*(alloc.ops if alloc else []), Put(*self.key(t.rt), obj, True)]
        changes = self._commit(ops, alloc)
        return changes[-1].obj

    # -- update ----------------------------------------------------------------------
    def update(self, t: Target, body: JSON, *, dry_run: bool) -> tuple[JSON, bool]:
        """Returns the stored object and whether it was created (PUT of a missing one)."""
        old = self.store.get(self.key(t.rt), t.namespace, t.name)
        if old is None:
            if t.subresource or not t.rt.unconditional_update:
                raise errors.not_found(t.rt, t.name)
            meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
            if meta and meta.get("name") and meta["name"] != t.name:
                raise errors.bad_request(
                    f"the name of the object ({meta['name']}) does not match the name on the "
                    f"URL ({t.name})"
                )
            return self.create(
                t, {**body, "metadata": {**(meta or {}), "name": t.name}}, dry_run=dry_run
            ), True
        return self._update_existing(t, body, old, dry_run=dry_run), False

    def _update_existing(self, t: Target, body: JSON, old: JSON, *, dry_run: bool) -> JSON:
        rt = t.rt
        meta_rv = (
            (body.get("metadata") or {}).get("resourceVersion")
            if isinstance(body.get("metadata"), dict)
            else None
        )
        if not meta_rv and not rt.unconditional_update:
            raise errors.invalid(rt, t.name, _rv_required())
        obj = prepare_update_meta(rt, body, old, name=t.name)
        alloc: Allocation | None = None
        is_service = rt.kind == "Service" and rt.group == ""
        if t.subresource == "status":
            if is_service:
                obj = self.services.admit_status(rt, obj, old, meta=obj["metadata"])
            else:
                obj = kinds.admit_status(rt, obj, old)
        elif is_service:
            obj, alloc = self.services.admit_update(rt, obj, old, meta=obj["metadata"])
        else:
            obj = kinds.admit_update(rt, obj, old)
        deleting = bool((old.get("metadata") or {}).get("deletionTimestamp"))
        if deleting and not (obj["metadata"].get("finalizers")) and not _ns_finalizers(rt, obj):
            # The last finalizer went: the object goes, and the answer is its last state.
            if alloc is not None:
                alloc.rollback()
            self._remove(t, old, dry_run=dry_run)
            return obj
        if strip_rv(obj) == strip_rv(old):
            if alloc is not None:
                alloc.rollback()
            return old  # a no-op: no new resourceVersion, no event
        if dry_run:
            if alloc is not None:
                alloc.rollback()
            return obj
        ops: list[Put | Delete] = [*(alloc.ops if alloc else []), Put(*self.key(rt), obj, False)]
        return self._commit(ops, alloc)[-1].obj

    # -- patch -----------------------------------------------------------------------
    def patch(self, t: Target, body: bytes, content_type: str, *, dry_run: bool) -> JSON:
        old = self._get_or_404(t)
        try:
            ptype = patches.PatchType(content_type)
        except ValueError:
            raise errors.unsupported_media_type(content_type) from None
        if ptype is patches.PatchType.APPLY:
            raise errors.unsupported_media_type(content_type)
        try:
            patched = patches.apply_patch(
                copy.deepcopy(old),
                body,
                ptype,
                api_version=t.rt.api_version,
                kind=t.rt.kind,
                custom=t.rt.custom,
            )
        except patches.PatchError as e:
            raise errors.APIError(
                e.code, e.reason, e.message, {} if e.code == 422 else None
            ) from None
        if not isinstance(patched, dict):
            raise errors.bad_request("the patch does not produce an object")
        return self._update_existing(t, patched, old, dry_run=dry_run)

    # -- delete ----------------------------------------------------------------------
    def delete(self, t: Target, options: JSON, *, dry_run: bool) -> tuple[JSON, int]:
        old = self._get_or_404(t)
        meta = old.get("metadata") or {}
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise errors.conflict(
                t.rt,
                t.name,
                f"Precondition failed: UID in precondition: "
                f"{pre['uid']}, UID in object meta: {meta.get('uid')}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise errors.conflict(
                t.rt,
                t.name,
                f"Precondition failed: ResourceVersion in precondition: "
                f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                f"{meta.get('resourceVersion')}",
            )
        if meta.get("finalizers") or _ns_finalizers(t.rt, old):
            if meta.get("deletionTimestamp"):
                return old, 200
            obj = copy.deepcopy(old)
            obj["metadata"]["deletionTimestamp"] = now_rfc3339()
            obj["metadata"]["deletionGracePeriodSeconds"] = 0
            if t.rt.kind == "Namespace" and t.rt.group == "":
                obj.setdefault("status", {})["phase"] = "Terminating"
            if dry_run:
                return obj, 200
            stored = self._commit([Put(*self.key(t.rt), obj, False)], None)[-1].obj
            if t.rt.kind == "Namespace" and t.rt.group == "":
                self._on_ns_terminating(t.name)
            return stored, 200
        removed = self._remove(t, old, dry_run=dry_run)
        return removed, 200

    def _remove(self, t: Target, old: JSON, *, dry_run: bool) -> JSON:
        rt = t.rt
        meta = old.get("metadata") or {}
        alloc = None
        if rt.kind == "Service" and rt.group == "":
            alloc = self.services.release_all(old)
        if dry_run:
            if alloc is not None:
                alloc.rollback()
            return old
        ops: list[Put | Delete] = [Delete(rt.group, rt.plural, t.namespace, t.name)]
        if alloc is not None:
            ops.extend(alloc.ops)
        changes = self._commit(ops, alloc)
        deleted = changes[0].obj if changes else old
        if rt.kind == "Service" and rt.group == "":
            return deleted
        return errors.status_success(rt, t.name, str(meta.get("uid", "")))

    def delete_collection(self, t: Target, query: Mapping[str, str], *, dry_run: bool) -> JSON:
        items, _ = self.list(t, {k: v for k, v in query.items() if k not in ("limit", "continue")})
        out = []
        for obj in items:
            m = obj.get("metadata") or {}
            one = Target(t.rt, str(m.get("namespace") or ""), str(m.get("name")))
            if self.store.get(self.key(t.rt), one.namespace, one.name) is None:
                continue
            got, _ = self.delete(one, {}, dry_run=dry_run)
            out.append(got if got.get("kind") != "Status" else obj)
        return {
            "kind": t.rt.list_kind,
            "apiVersion": t.rt.api_version,
            "metadata": {"resourceVersion": str(self.store.rv)},
            "items": out,
        }


def _ns_finalizers(rt: ResourceType, obj: JSON) -> bool:
    if rt.kind != "Namespace" or rt.group != "":
        return False
    return bool((obj.get("spec") or {}).get("finalizers"))


def _rv_required() -> FieldErrors:
    return FieldErrors([invalid("metadata.resourceVersion", "", "must be specified for an update")])


def _sort_key(obj: JSON) -> str:
    m = obj.get("metadata") or {}
    return f"{m.get('namespace') or ''}/{m.get('name') or ''}"


def _encode_continue(after: str, rv: int) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": after}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continue(token: str) -> tuple[str, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(data["start"]), int(data["rv"])
    except (ValueError, KeyError, TypeError):
        raise errors.bad_request(
            "continue key is not valid: incorrect encoded start "
            "resourceVersion (version meta.k8s.io/v1)"
        ) from None
