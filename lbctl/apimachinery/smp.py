"""Strategic merge patch (``application/strategic-merge-patch+json``) for the built-in kinds,
plus the patch error hierarchy and the small JSON helpers that :mod:`.patch` shares.

What a strategic merge patch does, as kube-apiserver's ``strategicpatch`` package applies it
(``StrategicMergeMapPatch``: parallel lists merged, unmatched ``null`` ignored):

* maps merge recursively; ``null`` deletes a key; a list replaces a list unless the schema
  says ``patchStrategy: merge``;
* a merge list with a ``patchMergeKey`` merges element-wise by that key (a patch element
  updates the element with the same key, or is added); a merge list without a key is a set
  of primitives (``metadata.finalizers``);
* directives: ``$patch: replace|delete|merge`` (in a map or a list element),
  ``$retainKeys``, ``$setElementOrder/<list>`` and ``$deleteFromPrimitiveList/<list>``;
* order, without ``$setElementOrder``: patch elements keep their relative order in the patch,
  the others ("server-only") their relative order in the live list, and the two are
  interleaved as upstream's ``mergeSortedSlice`` does (a server-only element goes first
  only if it precedes, in the live list, the next patch element); with
  ``$setElementOrder`` the same, the directive's order ruling the patch elements.

Where this differs from upstream, on purpose, because the result is stored as JSON here and
not decoded into a Go struct that would drop the leftovers:

* a value added where the live object has none is merged into an empty container, so no
  ``$patch``/``$setElementOrder``/``null`` is ever stored; ``$patch: replace`` on a map
  likewise keeps the patch content without its directives;
* ``$patch: delete`` on a map removes the key (upstream leaves ``{}``, which decoding into a
  Go map or pointer then drops or empties); ``$patch: merge`` is accepted as the no-op
  default (upstream answers "unknown patch type" / "merging lists cannot yet be specified");
* ``$deleteFromPrimitiveList`` on a missing list is a no-op (upstream stores the values).

Known limitation kept from upstream: ``spec.ports`` merges by ``port`` alone, so a TCP and a
UDP port with the same number are one element to a strategic merge patch (k/k #39188).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Final, TypeAlias

__all__ = [
    "ATOMIC",
    "BASE_SCHEMA",
    "REJECTED",
    "SET",
    "SMP_SCHEMAS",
    "BadPatch",
    "ListStrategy",
    "PatchError",
    "PatchTooLarge",
    "SmpSchema",
    "UnprocessablePatch",
    "UnsupportedPatch",
    "keyed",
    "smp_schema_for",
    "strategic_merge_patch",
]

JSONValue: TypeAlias = Any
"""A parsed JSON value: dict, list, str, int, float, bool or None."""

REJECTED: Final = "the server rejected our request due to an error in our request"
"""The message of kube-apiserver's generic 422 (``NewGenericServerResponse``), which it
answers when a JSON patch op cannot be applied; the reason itself is not sent."""


# -- errors -------------------------------------------------------------------------------
class PatchError(Exception):
    """A patch that cannot be applied. ``message`` is what kube-apiserver answers in the
    Status; ``detail`` says why when the message is generic. ``code``/``reason`` are the
    HTTP status and Status reason to answer with."""

    code: ClassVar[int] = 422
    reason: ClassVar[str] = "Invalid"

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or message


class BadPatch(PatchError):
    """400: the body is not valid JSON, or not the shape the patch type needs."""

    code = 400
    reason = "BadRequest"


class PatchTooLarge(BadPatch):
    """413: a JSON patch of more than 10000 operations (a :class:`BadPatch` for callers
    that only know 400)."""

    code = 413
    reason = "RequestEntityTooLarge"


class UnprocessablePatch(PatchError):
    """422: a well-formed patch that cannot be applied to this object."""


class UnsupportedPatch(PatchError):
    """415: a patch type this resource does not accept (strategic merge on a custom kind)."""

    code = 415
    reason = "UnsupportedMediaType"


# -- JSON helpers shared with .patch --------------------------------------------------------
def json_equal(a: JSONValue, b: JSONValue) -> bool:
    """JSON equality: same type (a bool is not a number), numbers by value, deep."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def go_fmt(v: JSONValue) -> str:
    """A JSON value as Go's ``%v`` prints its ``interface{}`` form, as upstream errors show."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e21 else repr(v)
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_fmt(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list):
        return "[" + " ".join(go_fmt(x) for x in v) + "]"
    return str(v)


def go_type(v: JSONValue) -> str:
    """The Go type ``encoding/json`` gives a value (``reflect.TypeOf``)."""
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, list):
        return "[]interface {}"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int64"
    if isinstance(v, float):
        return "float64"
    return "<nil>" if v is None else "string"


def go_json_kind(v: JSONValue) -> str:
    """The JSON kind ``encoding/json`` names in "cannot unmarshal <kind> into ..."."""
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    return "null" if v is None else "string"


def _bad_arg(expected: str, got: JSONValue) -> UnprocessablePatch:
    return UnprocessablePatch(f"expected a {expected}, but received a {go_type(got)}")


def _no_merge_key(m: JSONValue, key: str) -> UnprocessablePatch:
    return UnprocessablePatch(f"map: {go_fmt(m)} does not contain declared merge key: {key}")


# -- schema --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ListStrategy:
    """How a list field is patched: ``merge`` (``patchStrategy:"merge"``) by ``key``
    (``patchMergeKey``; "" for a set of primitives), or replaced whole (atomic)."""

    merge: bool = False
    key: str = ""


ATOMIC: Final = ListStrategy()
SET: Final = ListStrategy(merge=True)


def keyed(key: str) -> ListStrategy:
    return ListStrategy(merge=True, key=key)


Path: TypeAlias = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SmpSchema:
    """The list fields of a kind, by path of field names (list elements are transparent:
    ``spec.ports`` is the path of the ports list and of each port's fields' parent).
    A list not listed is atomic; ``ATOMIC`` entries are there to document upstream tags."""

    lists: Mapping[Path, ListStrategy] = field(default_factory=lambda: MappingProxyType({}))

    def strategy(self, path: Path) -> ListStrategy:
        return self.lists.get(path, ATOMIC)

    @classmethod
    def of(cls, table: Mapping[str, ListStrategy]) -> SmpSchema:
        """From ``{"spec.ports": keyed("port"), ...}`` (dotted paths)."""
        return cls(MappingProxyType({tuple(p.split(".")): s for p, s in table.items()}))


# Struct tags confirmed in k8s.io/api and k8s.io/apimachinery (see each line).
_METADATA: Final = {
    "metadata.finalizers": SET,  # ObjectMeta: `patchStrategy:"merge"`
    "metadata.ownerReferences": keyed("uid"),  # `patchStrategy:"merge" patchMergeKey:"uid"`
    "metadata.managedFields": ATOMIC,  # no patch tags
}
_CONDITIONS: Final = {"status.conditions": keyed("type")}  # `patchMergeKey:"type"`

BASE_SCHEMA: Final = SmpSchema.of(_METADATA)
"""Any built-in kind with no list of its own (ConfigMap, Lease, Event, IPAddress)."""

SMP_SCHEMAS: Final[Mapping[tuple[str, str], SmpSchema]] = MappingProxyType({
    ("v1", "Service"): SmpSchema.of({
        **_METADATA,
        **_CONDITIONS,  # ServiceStatus.Conditions []metav1.Condition
        "spec.ports": keyed("port"),  # `patchStrategy:"merge" patchMergeKey:"port"`
        "spec.clusterIPs": ATOMIC,  # +listType=atomic, no patch tags (same below)
        "spec.externalIPs": ATOMIC,
        "spec.ipFamilies": ATOMIC,
        "spec.loadBalancerSourceRanges": ATOMIC,
        "status.loadBalancer.ingress": ATOMIC,
        "status.loadBalancer.ingress.ports": ATOMIC,
    }),
    ("v1", "Node"): SmpSchema.of({
        **_METADATA,
        **_CONDITIONS,  # NodeStatus.Conditions []NodeCondition
        "spec.podCIDRs": SET,  # `patchStrategy:"merge"` (+listType=set)
        "spec.taints": ATOMIC,  # +listType=atomic, no patch tags
        "status.addresses": keyed("type"),  # `patchStrategy:"merge" patchMergeKey:"type"`
        "status.images": ATOMIC,
        "status.images.names": ATOMIC,
        "status.volumesInUse": ATOMIC,
        "status.volumesAttached": ATOMIC,
    }),
    ("v1", "Namespace"): SmpSchema.of({
        **_METADATA,
        **_CONDITIONS,  # NamespaceStatus.Conditions []NamespaceCondition
        "spec.finalizers": ATOMIC,  # NamespaceSpec.Finalizers: +listType=atomic, no tags
    }),
    ("v1", "ConfigMap"): BASE_SCHEMA,
    ("v1", "Event"): BASE_SCHEMA,
    ("events.k8s.io/v1", "Event"): BASE_SCHEMA,
    ("coordination.k8s.io/v1", "Lease"): BASE_SCHEMA,
    ("discovery.k8s.io/v1", "EndpointSlice"): SmpSchema.of({
        **_METADATA,
        "endpoints": ATOMIC,  # +listType=atomic, no patch tags
        "endpoints.addresses": ATOMIC,  # +listType=set but no patchStrategy
        "endpoints.hints.forZones": ATOMIC,
        "ports": ATOMIC,  # +listType=atomic, no patch tags
    }),
    ("networking.k8s.io/v1", "ServiceCIDR"): SmpSchema.of({
        **_METADATA,
        **_CONDITIONS,  # ServiceCIDRStatus.Conditions []metav1.Condition
        "spec.cidrs": ATOMIC,
    }),
    ("networking.k8s.io/v1", "IPAddress"): BASE_SCHEMA,
})  # fmt: skip


def smp_schema_for(api_version: str, kind: str) -> SmpSchema:
    """The schema of a built-in kind; :data:`BASE_SCHEMA` for one not in the table."""
    return SMP_SCHEMAS.get((api_version, kind), BASE_SCHEMA)


# -- the merge -----------------------------------------------------------------------------
_DIRECTIVE: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_SET_ORDER: Final = "$setElementOrder"
_DELETE_FROM: Final = "$deleteFromPrimitiveList"


class _Deleted:
    """What a map carrying ``$patch: delete`` merges to."""


_DELETED: Final = _Deleted()
_ABSENT: Final = object()


def strategic_merge_patch(
    doc: Mapping[str, Any], patch: Mapping[str, Any], schema: SmpSchema
) -> dict[str, Any]:
    """``doc`` patched by ``patch``; neither is modified."""
    if not isinstance(patch, Mapping):
        raise BadPatch(
            f"json: cannot unmarshal {go_json_kind(patch)} into Go value of type "
            "map[string]interface {}"
        )
    if not isinstance(doc, Mapping):
        raise BadPatch("invalid JSON document")
    merged = _merge_map(copy.deepcopy(dict(doc)), copy.deepcopy(dict(patch)), (), schema)
    return {} if isinstance(merged, _Deleted) else merged


def _merge_map(
    orig: dict[str, Any], patch: dict[str, Any], path: Path, schema: SmpSchema
) -> dict[str, Any] | _Deleted:
    """Merge ``patch`` into ``orig`` (both fresh copies, changed in place)."""
    if _DIRECTIVE in patch:
        directive = patch.pop(_DIRECTIVE)
        if directive == "delete":
            return _DELETED
        if directive == "replace":
            return _merge_map({}, patch, path, schema)
        if directive != "merge":
            raise UnprocessablePatch(
                f"unknown patch type: {go_fmt(directive)} in map: "
                f"{go_fmt({**patch, _DIRECTIVE: directive})}"
            )
    _retain_keys(orig, patch)
    _set_element_orders(orig, patch, path, schema)
    for key, value in list(patch.items()):
        if key.startswith(_DELETE_FROM):
            name = _parallel_key(key, _DELETE_FROM, "invalid patch format of primitive list")
            _delete_from_primitive_list(orig, name, value)
            continue
        if value is None:
            orig.pop(key, None)
            continue
        sub = (*path, key)
        current = orig.get(key, _ABSENT)
        merged: Any
        if isinstance(current, dict) and isinstance(value, dict):
            merged = _merge_map(current, value, sub, schema)
        elif isinstance(current, list) and isinstance(value, list):
            merged = _merge_list(current, value, sub, schema)
        else:
            merged = _fresh(value, sub, schema)
        if isinstance(merged, _Deleted):
            orig.pop(key, None)
        else:
            orig[key] = merged
    return orig


def _fresh(value: JSONValue, path: Path, schema: SmpSchema) -> JSONValue:
    """A patch value where the object has none (or one of another type): merged into an
    empty container, so its directives are applied and not stored."""
    if isinstance(value, dict):
        return _merge_map({}, value, path, schema)
    if isinstance(value, list):
        return _merge_list([], value, path, schema)
    return value


def _parallel_key(key: str, prefix: str, bad_format: str) -> str:
    head, sep, name = key.partition("/")
    if not sep or head != prefix:
        raise BadPatch(bad_format)
    return name


def _retain_keys(orig: dict[str, Any], patch: dict[str, Any]) -> None:
    if _RETAIN_KEYS not in patch:
        return
    keep = patch.pop(_RETAIN_KEYS)
    if not isinstance(keep, list):
        raise BadPatch("invalid patch format of retainKeys")
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_FROM, _SET_ORDER)):
            continue
        if key not in keep:
            raise BadPatch("invalid patch format of retainKeys")
    for key in [k for k in orig if k not in keep]:
        del orig[key]


def _delete_from_primitive_list(orig: dict[str, Any], name: str, values: JSONValue) -> None:
    if values is None:
        return
    if not isinstance(values, list):
        raise _bad_arg("[]interface {}", values)
    current = orig.get(name)
    if isinstance(current, list):
        orig[name] = [e for e in current if not any(json_equal(e, v) for v in values)]


def _set_element_orders(
    orig: dict[str, Any], patch: dict[str, Any], path: Path, schema: SmpSchema
) -> None:
    for directive in [k for k in patch if k.startswith(_SET_ORDER)]:
        order = patch.pop(directive)
        name = _parallel_key(directive, _SET_ORDER, "invalid patch format of setElementOrder list")
        if not isinstance(order, list):
            raise _bad_arg("[]interface {}", order)
        sub = (*path, name)
        key = schema.strategy(sub).key
        current = _list_field(orig, name)
        incoming = _list_field(patch, name)
        if current is None and incoming is None:
            continue
        if incoming is None:
            merged: list[Any] = current or []
        else:
            _check_order(incoming, order, key)
            merged = _merge_list(current or [], incoming, sub, schema)
            del patch[name]
        if key:
            for item in (*order, *merged):
                if not isinstance(item, dict):
                    raise _bad_arg("map[string]interface {}", item)
                if key not in item:
                    raise _no_merge_key(item, key)
        orig[name] = _order(merged, order, current or [], key)


def _list_field(m: dict[str, Any], name: str) -> list[Any] | None:
    """``m[name]``, which must be a list if present; None if absent."""
    if name not in m:
        return None
    value = m[name]
    if not isinstance(value, list):
        raise _bad_arg("[]interface {}", value)
    return value


def _check_order(items: list[Any], order: list[Any], key: str) -> None:
    """The patch list's elements must come in the ``$setElementOrder`` list's order."""
    if not items or not order:
        return
    if key:
        for item in items:
            if not isinstance(item, dict):
                raise _bad_arg("map[string]interface {}", item)
        kept = [e for e in items if e.get(_DIRECTIVE) != "delete"]
    else:
        kept = items
    at = i = 0
    while at < len(kept) and i < len(order):
        if isinstance(kept[at], dict) and _DIRECTIVE in kept[at]:
            at += 1
            continue
        if _same(kept[at], order[i], key):
            at += 1
        i += 1
    if at < len(kept):
        raise UnprocessablePatch(
            f"The order in patch list:\n{go_fmt(items)}\n doesn't match {_SET_ORDER} "
            f"list:\n{go_fmt(order)}\n"
        )


def _same(item: JSONValue, other: JSONValue, key: str) -> bool:
    if not key:
        return json_equal(item, other)
    for m in (item, other):
        if not isinstance(m, dict):
            raise _bad_arg("map[string]interface {}", m)
        if key not in m:
            raise _no_merge_key(m, key)
    return json_equal(item[key], other[key])


def _merge_list(orig: list[Any], patch: list[Any], path: Path, schema: SmpSchema) -> list[Any]:
    strategy = schema.strategy(path)
    if not strategy.merge:
        return patch
    if not orig and not patch:
        return orig
    kinds = {_kind(e) for e in (*orig, *patch)}
    if "list" in kinds:
        raise UnprocessablePatch(REJECTED, "lists of lists are not supported")
    if len(kinds) > 1:
        raise UnprocessablePatch(f"list element types are not identical: {go_fmt([orig, patch])}")
    if strategy.key:
        return _merge_keyed(orig, patch, strategy.key, path, schema)
    if "map" in kinds:
        raise UnprocessablePatch("cannot merge lists without merge key for type string")
    merged: list[Any] = []
    for e in (*orig, *patch):
        if not any(json_equal(e, m) for m in merged):
            merged.append(e)
    return _order(merged, patch, orig, "")


def _kind(e: JSONValue) -> str:
    if isinstance(e, dict | list):
        return "map" if isinstance(e, dict) else "list"
    return "number" if isinstance(e, int | float) and not isinstance(e, bool) else type(e).__name__


def _merge_keyed(
    orig: list[Any], patch: list[Any], key: str, path: Path, schema: SmpSchema
) -> list[Any]:
    for e in (*patch, *orig):
        if not isinstance(e, dict):
            raise _bad_arg("map[string]interface {}", e)
    regular: list[dict[str, Any]] = []
    replace = False
    for e in patch:
        directive = e.get(_DIRECTIVE, _ABSENT)
        if directive is _ABSENT:
            regular.append(e)
        elif directive == "delete":
            if key not in e:
                raise _no_merge_key(e, key)
            orig = [o for o in orig if not (key in o and json_equal(o[key], e[key]))]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            if stripped := {k: v for k, v in e.items() if k != _DIRECTIVE}:
                regular.append(stripped)
        else:
            raise UnprocessablePatch(f"unknown patch type: {go_fmt(directive)} in map: {go_fmt(e)}")
    for e in regular:
        if key not in e:
            raise _no_merge_key(e, key)
    if replace:
        return regular
    for e in orig:
        if key not in e:
            raise _no_merge_key(e, key)
    merged = list(orig)
    for e in regular:
        at = next((i for i, m in enumerate(merged) if json_equal(m[key], e[key])), None)
        result = _merge_map({} if at is None else merged[at], e, path, schema)
        if isinstance(result, _Deleted):  # pragma: no cover - a `$patch` element is special
            continue
        if at is None:
            merged.append(result)
        else:
            merged[at] = result
    return _order(merged, regular, orig, key)


def _index(seq: list[Any], item: JSONValue, key: str) -> int:
    """Where ``item`` is in ``seq``, by merge key (maps) or by value (primitives); -1."""
    if key:
        if not isinstance(item, dict) or key not in item:
            return -1
        probe = item[key]
        return next(
            (i for i, e in enumerate(seq) if isinstance(e, dict) and key in e
             and json_equal(e[key], probe)),
            -1,
        )  # fmt: skip
    return next((i for i, e in enumerate(seq) if json_equal(e, item)), -1)


def _order(merged: list[Any], order: list[Any], server: list[Any], key: str) -> list[Any]:
    """Upstream's ordering: the elements found in ``order`` sorted by it, the others
    ("server-only") by their place in ``server``, then interleaved as ``mergeSortedSlice``:
    a server-only element comes first only if it precedes the next ordered one in
    ``server``."""
    ordered = [m for m in merged if _index(order, m, key) >= 0]
    ordered.sort(key=lambda m: _index(order, m, key))
    rest = [m for m in merged if _index(order, m, key) < 0]
    rest.sort(key=lambda m: (_index(server, m, key) < 0, _index(server, m, key)))
    out: list[Any] = []
    i = j = 0
    while i < len(rest) and j < len(ordered):
        li, ri = _index(server, rest[i], key), _index(server, ordered[j], key)
        if 0 <= li < ri:
            out.append(rest[i])
            i += 1
        else:
            out.append(ordered[j])
            j += 1
    return [*out, *rest[i:], *ordered[j:]]
