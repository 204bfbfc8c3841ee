"""Validation of custom resources against a CRD structural schema, as kube-apiserver does.

kube-apiserver validates a custom resource with kube-openapi's schema validator, turns
its results into field errors (``apiextensions-apiserver/pkg/apiserver/validation``),
then checks ``x-kubernetes-list-type`` sets and maps (``schema/listtype``).  This module
follows both, keeping their field paths and message texts:

* paths are built like kube-openapi's: ``spec.addresses[1]``, and ``spec.labels.app`` for
  ``additionalProperties`` entries; the list-type pass uses ``spec.labels[app]`` like
  field.Path;
* errors with no field (root type, ``anyOf``/``oneOf``/``allOf``/``not``) have the field
  ``<nil>``, as a nil field.Path prints;
* details name the field again: ``spec.name in body should be at least 1 chars long``.

Not supported (as the structural subset allows): ``$ref``, ``patternProperties``,
``dependencies``, ``additionalItems`` and tuple ``items``; ``x-kubernetes-validations``
(CEL) rules are ignored; ``x-kubernetes-embedded-resource`` gets no ObjectMeta checks.
Validation never raises for a bad object: every problem is a :class:`FieldError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

from lbctl.apimachinery.schema_formats import (
    check_format,
    go_float,
    go_json,
    go_quote,
    known_format,
    shown,
)
from lbctl.apimachinery.schema_listtype import TooDeep, duplicate_indices, validate_list_types
from lbctl.domain.fielderrors import FieldError, FieldErrors, Reason, required, too_many

__all__ = ["json_type", "schema_types", "validate"]

Schema = Mapping[str, Any]

_NIL: Final = "<nil>"
_MAX_DEPTH: Final = 64
_MAX_JSON_INT: Final = 2**53


# --- schema accessors (tolerant of a malformed schema; check_schema reports it) -----------


def schema_types(s: Schema) -> list[str]:
    """The ``type`` list; ``x-kubernetes-int-or-string`` means ``integer,string``."""
    if s.get("x-kubernetes-int-or-string") is True:
        return ["integer", "string"]
    t = s.get("type")
    if isinstance(t, str):
        return [t] if t else []
    if isinstance(t, list):
        return [x for x in t if isinstance(x, str)]
    return []


def _int(s: Schema, key: str) -> int | None:
    v = s.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _num(s: Schema, key: str) -> int | float | None:
    v = s.get(key)
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


def _sub(s: Schema, key: str) -> Schema | None:
    v = s.get(key)
    return v if isinstance(v, Mapping) else None


def _props(s: Schema) -> Mapping[str, Any]:
    v = s.get("properties")
    return v if isinstance(v, Mapping) else {}


def _branches(s: Schema, key: str) -> list[Schema]:
    v = s.get(key)
    return [b for b in v if isinstance(b, Mapping)] if isinstance(v, list) else []


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str] | str:
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as e:
        return str(e)


# --- value helpers ------------------------------------------------------------------------


def json_type(v: object) -> tuple[str, str]:
    """(JSON type, Go format) of a value, as kube-openapi infers them from Go data."""
    if v is None:
        return "null", ""
    if isinstance(v, bool):
        return "boolean", ""
    if isinstance(v, int):
        return "integer", "int64"
    if isinstance(v, float):
        return "number", "float64"
    if isinstance(v, str):
        return "string", ""
    if isinstance(v, list | tuple):
        return "array", ""
    if isinstance(v, Mapping):
        return "object", ""
    return "", ""


def _json_integer(v: float) -> bool:
    return math.isfinite(v) and v.is_integer() and abs(v) <= _MAX_JSON_INT


def _whole_ratio(v: float, factor: float) -> bool:
    """kube-openapi's float MultipleOf test."""
    try:
        return _json_integer((1 / factor) * v if factor < 1 else v / factor)
    except (OverflowError, ZeroDivisionError):
        return False


def _num_text(x: float) -> str:
    return go_float(x) if isinstance(x, float) else str(x)


def _equal(a: object, b: object, depth: int = 0) -> bool:
    """JSON equality: numbers by value, booleans apart from numbers."""
    if depth > _MAX_DEPTH:
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_equal(x, y, depth + 1) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_equal(a[k], b[k], depth + 1) for k in a)
    if a is None or isinstance(a, str):
        return type(a) is type(b) and a == b
    return False


# --- the validator ------------------------------------------------------------------------


class _Ctx:
    __slots__ = ("errors", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.errors: list[FieldError] = []

    def field(self, name: str) -> str:
        name = name.removeprefix(".")
        if not name:
            return self.prefix or _NIL
        return f"{self.prefix}.{name}" if self.prefix else name

    def add(self, name: str, reason: Reason, value: object, detail: str) -> None:
        self.errors.append(FieldError(self.field(name), reason, value, detail))

    def invalid(self, name: str, value: object, detail: str) -> None:
        self.add(name, Reason.INVALID, shown(value), f"{name} in body {detail}")

    def wrong_type(self, name: str, expected: str, got: str) -> None:
        detail = f"{name} in body must be of type {expected}: {go_quote(got)}"
        self.add(name, Reason.TYPE_INVALID, got, detail)

    def composite(self, detail: str) -> None:
        self.errors.append(FieldError(self.prefix or _NIL, Reason.INVALID, "", detail))

    def sub(self) -> _Ctx:
        return _Ctx(self.prefix)


def _validate(v: Any, s: Schema, name: str, ctx: _Ctx, root: bool = False) -> None:
    types, fmt = schema_types(s), s.get("format")
    fmt = fmt if isinstance(fmt, str) and known_format(fmt) else ""
    if v is None:
        if types and "null" not in types and s.get("nullable") is not True:
            ctx.wrong_type(name, ",".join(types), "null")
        _enum(v, s, name, ctx)
        return
    st, dfmt = json_type(v)
    if types or fmt:
        _check_type(v, st, dfmt, types=types, fmt=fmt, name=name, ctx=ctx)
    _combinators(v, s, name, ctx)
    if st == "string":
        _string(v, s, name, ctx)
        if fmt and not check_format(fmt, v):
            ctx.wrong_type(name, fmt, v)
    elif st in ("integer", "number"):
        _number(v, s, name, ctx)
    elif st == "array":
        _array(v, s, name, ctx)
    _enum(v, s, name, ctx)
    if st == "object":
        _object(v, s, name, ctx, root)


def _check_type(
    v: Any, st: str, dfmt: str, *, types: list[str], fmt: str, name: str, ctx: _Ctx
) -> None:
    """kube-openapi's typeValidator, quirks included (but a list is no string)."""
    ok = (
        st in types
        or (st == "number" and "integer" in types and _json_integer(v))
        or (st == "integer" and "number" in types)
    )
    if st not in ("string", "array") and fmt and not (ok or dfmt == fmt):
        ctx.wrong_type(name, fmt, dfmt)
        return
    numeric = "number" in types or "integer" in types
    if fmt and not numeric and (st == "string" or (st == "array" and not types)):
        return
    if not ok:
        ctx.wrong_type(name, ",".join(types), st)


def _combinators(v: Any, s: Schema, name: str, ctx: _Ctx) -> None:
    where = go_quote(name)
    if any_of := _branches(s, "anyOf"):
        failures: list[list[FieldError]] = []
        for branch in any_of:
            errs = _errors_of(v, branch, name, ctx)
            if not errs:
                break
            failures.append(errs)
        else:
            ctx.composite(f"{where} must validate at least one schema (anyOf)")
            ctx.errors.extend(_fewest(failures))
    if one_of := _branches(s, "oneOf"):
        results = [_errors_of(v, branch, name, ctx) for branch in one_of]
        valid = sum(1 for errs in results if not errs)
        if valid != 1:
            found = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
            ctx.composite(f"{where} must validate one and only one schema (oneOf). {found}")
            if valid == 0:
                ctx.errors.extend(_fewest(results))
    if all_of := _branches(s, "allOf"):
        valid = 0
        for branch in all_of:
            errs = _errors_of(v, branch, name, ctx)
            valid += not errs
            ctx.errors.extend(errs)
        if valid != len(all_of):
            none = ". None validated" if valid == 0 else ""
            ctx.composite(f"{where} must validate all the schemas (allOf){none}")
    if (not_ := _sub(s, "not")) is not None and not _errors_of(v, not_, name, ctx):
        ctx.composite(f"{where} must not validate the schema (not)")


def _fewest(results: list[list[FieldError]]) -> list[FieldError]:
    """The failing branch to report: kube-openapi takes the best match, here fewest errors."""
    best: list[FieldError] = min(results, key=len)
    return best


def _errors_of(v: Any, s: Schema, name: str, ctx: _Ctx) -> list[FieldError]:
    sub = ctx.sub()
    _validate(v, s, name, sub)
    return sub.errors


def _string(v: str, s: Schema, name: str, ctx: _Ctx) -> None:
    """maxLength, minLength, pattern: the first that fails, like kube-openapi."""
    if (limit := _int(s, "maxLength")) is not None and len(v) > limit:
        ctx.add(name, Reason.TOO_LONG, v, f"may not be longer than {limit}")
    elif (limit := _int(s, "minLength")) is not None and len(v) < limit:
        ctx.invalid(name, v, f"should be at least {limit} chars long")
    elif isinstance(pattern := s.get("pattern"), str) and pattern:
        rx = _regex(pattern)
        if isinstance(rx, str):
            ctx.invalid(name, v, f"should match '{pattern}, but pattern is invalid: {rx}'")
        elif rx.search(v) is None:
            ctx.invalid(name, v, f"should match '{pattern}'")


def _number(v: float, s: Schema, name: str, ctx: _Ctx) -> None:
    """multipleOf, minimum, maximum (an integer compares with int64(bound), like Go)."""
    is_int = isinstance(v, int)

    def bound(b: float) -> float:
        return int(b) if is_int and math.isfinite(b) else b

    if (factor := _num(s, "multipleOf")) is not None and factor != 0:
        f = bound(factor) or factor  # Go would divide by int64(0.5) == 0 and panic
        if f < 0:
            detail = f"factor MultipleOf declared for {name} must be positive: {_num_text(f)}"
            ctx.add(name, Reason.INVALID, shown(f), detail)
        elif isinstance(v, int) and isinstance(f, int):
            if v % f:
                ctx.invalid(name, v, f"should be a multiple of {f}")
        elif not _whole_ratio(v, f):
            ctx.invalid(name, v, f"should be a multiple of {_num_text(f)}")
    if (low := _num(s, "minimum")) is not None:
        b, excl = bound(low), s.get("exclusiveMinimum") is True
        if v < b or (excl and v == b):
            word = "greater than" if excl else "greater than or equal to"
            ctx.invalid(name, v, f"should be {word} {_num_text(b)}")
    if (high := _num(s, "maximum")) is not None:
        b, excl = bound(high), s.get("exclusiveMaximum") is True
        if v > b or (excl and v == b):
            word = "less than" if excl else "less than or equal to"
            ctx.invalid(name, v, f"should be {word} {_num_text(b)}")


def _array(v: list[Any] | tuple[Any, ...], s: Schema, name: str, ctx: _Ctx) -> None:
    if (items := _sub(s, "items")) is not None:
        for i, x in enumerate(v):
            _validate(x, items, f"{name}[{i}]", ctx)
    if (low := _int(s, "minItems")) is not None and len(v) < low:
        ctx.invalid(name, len(v), f"should have at least {low} items")
    if (high := _int(s, "maxItems")) is not None and len(v) > high:
        ctx.errors.append(too_many(ctx.field(name), len(v), high))
    if s.get("uniqueItems") is True:
        try:
            unique = not duplicate_indices(list(v))
        except TooDeep:
            unique = True
        if not unique:
            ctx.invalid(name, "", "shouldn't contain duplicates")


def _enum(v: Any, s: Schema, name: str, ctx: _Ctx) -> None:
    enum = s.get("enum")
    if not isinstance(enum, list) or not enum or any(_equal(v, e) for e in enum):
        return
    supported = ", ".join(go_quote(e if isinstance(e, str) else go_json(e)) for e in enum)
    ctx.add(name, Reason.NOT_SUPPORTED, shown(v), f"supported values: {supported}")


def _object(v: Mapping[Any, Any], s: Schema, name: str, ctx: _Ctx, root: bool) -> None:
    if (low := _int(s, "minProperties")) is not None and len(v) < low:
        ctx.invalid(name, len(v), f"should have at least {low} properties")
        return
    if (high := _int(s, "maxProperties")) is not None and len(v) > high:
        ctx.errors.append(too_many(ctx.field(name), len(v), high))
        return
    props, extra = _props(s), s.get("additionalProperties")
    if root and "metadata" in v:  # the server validates ObjectMeta itself
        _validate(v["metadata"], {"type": "object"}, "metadata", ctx)
    for key, x in v.items():
        k = str(key)
        if k in props or (root and k == "metadata"):
            continue
        if extra is False:
            ctx.add(name, Reason.INVALID, k, f"{name}.{k} in body is a forbidden property")
        elif isinstance(extra, Mapping):
            _validate(x, extra, f"{name}.{k}", ctx)
    for k, sub in props.items():
        if k in v and isinstance(sub, Mapping) and not (root and k == "metadata"):
            _validate(v[k], sub, f"{name}.{k}" if name else str(k), ctx)
    req = s.get("required")
    for k in req if isinstance(req, list) else ():
        if isinstance(k, str) and k not in v:
            ctx.errors.append(required(ctx.field(f"{name}.{k}")))


# --- entry point --------------------------------------------------------------------------


def validate(obj: Any, schema: Mapping[str, Any], *, path: str = "") -> FieldErrors:
    """Validate ``obj`` against a CRD structural ``schema``; empty means valid.

    ``path`` prefixes every field (kube's ``fldPath``).  At the root (``path == ""``),
    ``metadata`` is only checked to be an object: the server validates ObjectMeta itself.
    Never raises for a bad object.
    """
    ctx = _Ctx(path)
    if isinstance(schema, Mapping):
        try:
            _validate(obj, schema, "", ctx, root=not path)
            ctx.errors.extend(validate_list_types(obj, schema, path))
        except RecursionError:
            ctx.errors.append(FieldError(path or _NIL, Reason.INTERNAL, detail="too deeply nested"))
    seen: set[tuple[str, Reason, str]] = set()
    out = FieldErrors()
    for e in ctx.errors:
        key = (e.field, e.reason, e.message)
        if key not in seen:
            seen.add(key)
            out.add(e)
    return out
