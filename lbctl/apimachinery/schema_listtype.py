"""``x-kubernetes-list-type`` checks of a custom resource, as kube-apiserver makes them.

After schema validation, apiextensions-apiserver's ``schema/listtype`` walks the object
along ``properties``, ``additionalProperties`` and ``items`` and reports the second
occurrence of a repeated element in a ``set`` list, or of a repeated key in a ``map``
list (``x-kubernetes-list-map-keys``), as ``Duplicate value``.  Paths are field.Path's:
``spec.namespaces[2]``, ``spec.labels[app]`` for a map entry.  Values compare as Go
compares them: ``1`` and ``1.0`` or ``true`` and ``1`` are different scalars.
Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lbctl.apimachinery.schema_formats import go_json, shown
from lbctl.domain.fielderrors import FieldError, Reason, duplicate

__all__ = ["TooDeep", "duplicate_indices", "validate_list_types"]

Schema = Mapping[str, Any]

_MAX_DEPTH: Final = 64
_UNSET: Final = object()  # a map-list item without the key


class TooDeep(Exception):
    """A value nests deeper than list elements are compared."""


def _key(v: object) -> object:
    """A hashable key, equal for values Go's validateListSet takes as equal."""
    if isinstance(v, Mapping | list | tuple):
        stack: list[tuple[Any, int]] = [(v, 0)]
        while stack:
            x, depth = stack.pop()
            if depth > _MAX_DEPTH:
                raise TooDeep
            if isinstance(x, Mapping):
                stack.extend((c, depth + 1) for c in x.values())
            elif isinstance(x, list | tuple):
                stack.extend((c, depth + 1) for c in x)
        return ("json", go_json(v))
    if v is None or isinstance(v, int | float | str):
        return (type(v).__name__, v)
    return ("other", id(v))


def duplicate_indices(values: list[object]) -> list[int]:
    """Indices of the second occurrence of each repeated value (raises TooDeep)."""
    seen: dict[object, int] = {}
    out: list[int] = []
    for i, x in enumerate(values):
        key = _key(x)
        times = seen.get(key, 0)
        seen[key] = times + 1
        if times == 1:
            out.append(i)
    return out


def _sub(s: Schema, key: str) -> Schema | None:
    v = s.get(key)
    return v if isinstance(v, Mapping) else None


def validate_list_types(obj: Any, schema: Schema, path: str = "") -> list[FieldError]:
    """kube's ValidateListSetsAndMaps: duplicates in ``set`` and ``map`` lists."""
    errs: list[FieldError] = []
    _walk(obj, schema, path, errs)
    return errs


def _walk(v: Any, s: Schema, path: str, errs: list[FieldError]) -> None:
    if isinstance(v, Mapping):
        if (extra := _sub(s, "additionalProperties")) is not None:
            for k, x in v.items():
                _walk(x, extra, f"{path}[{k}]", errs)
        props = _sub(s, "properties") or {}
        for k, x in v.items():
            if isinstance(sub := props.get(k), Mapping):
                _walk(x, sub, f"{path}.{k}" if path else str(k), errs)
    elif isinstance(v, list | tuple):
        kind = s.get("x-kubernetes-list-type")
        try:
            if kind == "set":
                errs.extend(
                    duplicate(f"{path}[{i}]", shown(v[i])) for i in duplicate_indices(list(v))
                )
            elif kind == "map":
                errs.extend(_list_map(v, s, path))
        except TooDeep:
            errs.append(FieldError(f"{path}[0]", Reason.INVALID, shown(v[0]), "internal error"))
        if (items := _sub(s, "items")) is not None:
            for i, x in enumerate(v):
                _walk(x, items, f"{path}[{i}]", errs)


def _list_map(v: list[Any] | tuple[Any, ...], s: Schema, path: str) -> list[FieldError]:
    for i, x in enumerate(v):
        if x is not None and not isinstance(x, Mapping):
            detail = "must be an object for an array of list-type map"
            return [FieldError(f"{path}[{i}]", Reason.INVALID, shown(x), detail)]
    if len(v) <= 1:
        return []
    names = s.get("x-kubernetes-list-map-keys")
    names = [k for k in names if isinstance(k, str)] if isinstance(names, list) else []
    if len(names) == 1:
        (name,) = names
        keys: list[object] = [_UNSET if x is None or name not in x else x[name] for x in v]
        return [
            duplicate(f"{path}[{i}]", shown({} if keys[i] is _UNSET else {name: keys[i]}))
            for i in duplicate_indices(keys)
        ]
    tuples: list[object] = [
        {k: x[k] for k in names if k in x} if isinstance(x, Mapping) else {} for x in v
    ]
    return [duplicate(f"{path}[{i}]", shown(tuples[i])) for i in duplicate_indices(tuples)]
