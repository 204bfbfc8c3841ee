"""Structural-schema operations on custom resources: pruning, nulls, defaulting, self-check.

These follow apiextensions-apiserver's ``schema/pruning`` and ``schema/defaulting``
algorithms, which kube-apiserver runs when it decodes a custom resource:

1. :func:`prune` drops fields the schema does not specify (``apiVersion``, ``kind`` and
   ``metadata`` stay at the root and in ``x-kubernetes-embedded-resource`` objects;
   below ``x-kubernetes-preserve-unknown-fields: true`` unknown fields stay);
2. :func:`prune_nulls` drops ``null`` values of non-nullable fields that have no default;
3. :func:`apply_defaults` sets ``default`` values on absent fields of *present* objects
   (and on non-nullable ``null`` fields): an absent object is not created unless its own
   field has a default, whose content is then defaulted in turn.

None of them mutates its input: each works on a deep copy and returns it.
:func:`check_schema` is a light structural lint of a schema itself, so that a bad
built-in schema fails loudly in tests.  Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from lbctl.apimachinery.schema_validation import Schema, validate

__all__ = ["apply_defaults", "check_schema", "copy_json", "prune", "prune_nulls"]

_PRESERVE: Final = "x-kubernetes-preserve-unknown-fields"
_EMBEDDED: Final = "x-kubernetes-embedded-resource"
_META: Final = frozenset({"apiVersion", "kind", "metadata"})


def copy_json(value: Any) -> Any:
    """Deep copy of a JSON-like value (dicts and lists; tuples become lists), iteratively."""
    if not isinstance(value, Mapping | list | tuple):
        return value
    holder: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, holder, 0)]
    while stack:
        src, parent, slot = stack.pop()
        new: dict[Any, Any] | list[Any]
        if isinstance(src, Mapping):
            new = dict.fromkeys(src)
            children = list(src.items())
        else:
            new = [None] * len(src)
            children = list(enumerate(src))
        parent[slot] = new
        for k, child in children:
            if isinstance(child, Mapping | list | tuple):
                stack.append((child, new, k))
            else:
                new[k] = child
    return holder[0]


def _props(s: Schema) -> Mapping[str, Any]:
    v = s.get("properties")
    return v if isinstance(v, Mapping) else {}


def _sub(s: Schema | None, key: str) -> Schema | None:
    v = s.get(key) if s is not None else None
    return v if isinstance(v, Mapping) else None


def _field_schema(s: Schema, key: str) -> tuple[bool, Schema | None]:
    """(specified, schema) of a field: a property, else additionalProperties."""
    prop = _props(s).get(key)
    if isinstance(prop, Mapping):
        return True, prop
    extra = s.get("additionalProperties")
    return extra is not None, extra if isinstance(extra, Mapping) else None


# --- pruning ------------------------------------------------------------------------------


def prune(obj: Any, schema: Mapping[str, Any]) -> Any:
    """A copy of ``obj`` without the fields ``schema`` does not specify."""
    out = copy_json(obj)
    _prune(out, schema if isinstance(schema, Mapping) else {}, embedded=True)
    return out


def _prune(x: Any, s: Schema | None, embedded: bool = False) -> None:
    if s is not None and s.get(_PRESERVE) is True:
        _skip_prune(x, s, embedded)
    elif s is None:
        _drop_all(x)
    elif isinstance(x, dict):
        meta = embedded or s.get(_EMBEDDED) is True
        for k in list(x):
            if meta and k in _META:
                continue
            specified, sub = _field_schema(s, k)
            if specified:
                _prune(x[k], sub)
            else:
                del x[k]
    elif isinstance(x, list):
        items = _sub(s, "items")
        for v in x:
            _prune(v, items)


def _skip_prune(x: Any, s: Schema | None, embedded: bool = False) -> None:
    if s is None:
        return
    if isinstance(x, dict):
        meta = embedded or s.get(_EMBEDDED) is True
        for k in list(x):
            specified, sub = _field_schema(s, k)
            if specified and not (meta and k in _META):
                _prune(x[k], sub)
    elif isinstance(x, list):
        items = _sub(s, "items")
        for v in x:
            _skip_prune(v, items)


def _drop_all(x: Any) -> None:
    """Prune against no schema: every object found through lists loses all its fields."""
    stack = [x]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            v.clear()
        elif isinstance(v, list):
            stack.extend(v)


# --- nulls and defaults -------------------------------------------------------------------


def _non_nullable(s: Schema | None) -> bool:
    return s is not None and s.get("nullable") is not True


def prune_nulls(obj: Any, schema: Mapping[str, Any]) -> Any:
    """A copy of ``obj`` without ``null`` values of non-nullable fields lacking a default."""
    out = copy_json(obj)
    if isinstance(schema, Mapping):
        _prune_nulls(out, schema)
    return out


def _prune_nulls(x: Any, s: Schema) -> None:
    if isinstance(x, dict):
        for k in list(x):
            sub = _field_schema(s, k)[1]
            if x[k] is None and _non_nullable(sub) and _default(sub) is None:
                del x[k]
            elif sub is not None:
                _prune_nulls(x[k], sub)
    elif isinstance(x, list) and (items := _sub(s, "items")) is not None:
        for v in x:
            _prune_nulls(v, items)


def _default(s: Schema | None) -> Any:
    return s.get("default") if s is not None else None


def apply_defaults(obj: Any, schema: Mapping[str, Any]) -> Any:
    """A copy of ``obj`` with the schema's ``default`` values applied, like kube's Default."""
    out = copy_json(obj)
    if isinstance(schema, Mapping):
        _apply(out, schema)
    return out


def _apply(x: Any, s: Schema) -> None:
    if isinstance(x, dict):
        props = _props(s)
        for k, prop in props.items():
            if not isinstance(prop, Mapping) or prop.get("default") is None:
                continue
            if k not in x or (x[k] is None and _non_nullable(prop)):
                x[k] = copy_json(prop["default"])
        extra = _sub(s, "additionalProperties")
        for k in list(x):
            if isinstance(sub := props.get(k), Mapping):
                _apply(x[k], sub)
            elif extra is not None:
                if x[k] is None and _non_nullable(extra):
                    x[k] = copy_json(extra.get("default"))
                _apply(x[k], extra)
    elif isinstance(x, list) and (items := _sub(s, "items")) is not None:
        for i, v in enumerate(x):
            if v is None and _non_nullable(items):
                x[i] = copy_json(items.get("default"))
            _apply(x[i], items)


# --- schema lint --------------------------------------------------------------------------

_TYPES: Final = frozenset({"object", "array", "string", "integer", "number", "boolean"})
_BOOLS: Final = (
    "nullable", "uniqueItems", "exclusiveMinimum", "exclusiveMaximum", _PRESERVE, _EMBEDDED,
    "x-kubernetes-int-or-string",
)  # fmt: skip
_COUNTS: Final = (
    ("minLength", "maxLength"), ("minItems", "maxItems"), ("minProperties", "maxProperties")
)  # fmt: skip
_NUMBERS: Final = ("minimum", "maximum", "multipleOf")
_KNOWN: Final = frozenset(
    {
        "type", "format", "title", "description", "properties", "required",
        "additionalProperties", "items", "enum", "pattern", "default", "example",
        "externalDocs", "anyOf", "oneOf", "allOf", "not", "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "x-kubernetes-validations",
        "$schema", *_BOOLS, *_NUMBERS, *(k for pair in _COUNTS for k in pair),
    }
)  # fmt: skip


def check_schema(schema: object) -> list[str]:
    """Problems of a CRD structural schema, as ``"<where>: <what>"``; empty means fine."""
    problems: list[str] = []
    _check(schema, "schema", structural=True, out=problems)
    return problems


def _check(s: object, where: str, *, structural: bool, out: list[str]) -> None:
    if not isinstance(s, Mapping):
        out.append(f"{where}: must be an object, not {type(s).__name__}")
        return
    out.extend(f"{where}: unknown or unsupported keyword {k!r}" for k in s if k not in _KNOWN)
    _check_type(s, where, structural, out)
    _check_scalars(s, where, out)
    props = s.get("properties", {})
    if not isinstance(props, Mapping):
        out.append(f"{where}.properties: must be a map of schemas")
        props = {}
    for name, sub in props.items():
        _check(sub, f"{where}.properties[{name}]", structural=structural, out=out)
    extra = s.get("additionalProperties")
    if isinstance(extra, Mapping):
        _check(extra, f"{where}.additionalProperties", structural=structural, out=out)
    elif extra is not None and not isinstance(extra, bool):
        out.append(f"{where}.additionalProperties: must be a boolean or a schema")
    if props and extra is not None:
        out.append(f"{where}: properties and additionalProperties are mutually exclusive")
    req = s.get("required", [])
    if not isinstance(req, list) or not all(isinstance(r, str) for r in req):
        out.append(f"{where}.required: must be a list of strings")
    elif props and (missing := [r for r in req if r not in props]):
        out.append(f"{where}.required: not in properties: {', '.join(missing)}")
    if "items" in s:
        _check(s["items"], f"{where}.items", structural=structural, out=out)
    elif structural and s.get("type") == "array":
        out.append(f"{where}.items: must be specified for an array")
    _check_list_type(s, where, out)
    for key in ("anyOf", "oneOf", "allOf"):
        branches = s.get(key)
        if branches is None:
            continue
        if not isinstance(branches, list) or not branches:
            out.append(f"{where}.{key}: must be a non-empty list of schemas")
            continue
        for i, b in enumerate(branches):
            _check(b, f"{where}.{key}[{i}]", structural=False, out=out)
    if "not" in s:
        _check(s["not"], f"{where}.not", structural=False, out=out)
    if s.get("default") is not None:
        out.extend(f"{where}.{e}" for e in validate(s["default"], s, path="default"))


def _check_type(s: Schema, where: str, structural: bool, out: list[str]) -> None:
    t = s.get("type")
    if s.get("x-kubernetes-int-or-string") is True:
        if t is not None:
            out.append(f"{where}.type: must be empty with x-kubernetes-int-or-string")
    elif t is None:
        if structural and s.get(_PRESERVE) is not True:
            out.append(f"{where}.type: must not be empty for a specified field")
    elif t not in _TYPES:
        out.append(f"{where}.type: unknown type {t!r}")
    elif "properties" in s and t != "object":
        out.append(f"{where}.properties: only for type object, not {t}")


def _check_scalars(s: Schema, where: str, out: list[str]) -> None:
    for key in _BOOLS:
        if key in s and not isinstance(s[key], bool):
            out.append(f"{where}.{key}: must be a boolean")
    for key in _NUMBERS:
        v = s.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            out.append(f"{where}.{key}: must be a number")
    if isinstance(m := s.get("multipleOf"), int | float) and not isinstance(m, bool) and m <= 0:
        out.append(f"{where}.multipleOf: must be positive")
    for low_key, high_key in _COUNTS:
        low, high = s.get(low_key), s.get(high_key)
        for key, v in ((low_key, low), (high_key, high)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                out.append(f"{where}.{key}: must be a non-negative integer")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            out.append(f"{where}: {low_key} {low} is greater than {high_key} {high}")
    enum = s.get("enum")
    if enum is not None and (not isinstance(enum, list) or not enum):
        out.append(f"{where}.enum: must be a non-empty list")
    pattern = s.get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except (re.error, TypeError) as e:
            out.append(f"{where}.pattern: invalid regular expression: {e}")
    if "format" in s and not isinstance(s["format"], str):
        out.append(f"{where}.format: must be a string")
    if s.get("x-kubernetes-map-type") not in (None, "granular", "atomic"):
        out.append(f"{where}.x-kubernetes-map-type: must be granular or atomic")


def _check_list_type(s: Schema, where: str, out: list[str]) -> None:
    kind, keys = s.get("x-kubernetes-list-type"), s.get("x-kubernetes-list-map-keys")
    if kind is None:
        if keys is not None:
            out.append(f"{where}.x-kubernetes-list-map-keys: only with x-kubernetes-list-type map")
        return
    if kind not in ("atomic", "set", "map"):
        out.append(f"{where}.x-kubernetes-list-type: must be atomic, set or map, not {kind!r}")
    if s.get("type") != "array":
        out.append(f"{where}.x-kubernetes-list-type: only for type array")
    if kind != "map":
        if keys is not None:
            out.append(f"{where}.x-kubernetes-list-map-keys: only with x-kubernetes-list-type map")
        return
    items: Schema = _sub(s, "items") or {}
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        out.append(f"{where}.x-kubernetes-list-map-keys: must be a non-empty list of strings")
        return
    if items.get("type") != "object":
        out.append(f"{where}.items.type: must be object for x-kubernetes-list-type map")
    item_props, item_req = _props(items), items.get("required", [])
    for k in keys:
        if not isinstance(item_props.get(k), Mapping):
            out.append(f"{where}.x-kubernetes-list-map-keys: {k!r} is not an item property")
        elif k not in item_req and item_props[k].get("default") is None:
            out.append(f"{where}.x-kubernetes-list-map-keys: {k!r} must be required or defaulted")
