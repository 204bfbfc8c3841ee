"""The PATCH engine of the embedded API server: the three patch types kube-apiserver accepts
(JSON patch, JSON merge patch, strategic merge patch), applied to parsed JSON objects.

:func:`apply_patch` takes the raw body, as the server receives it, and answers the
:class:`PatchError` kube-apiserver would answer (``code``/``reason`` on each class):

=====================  ======  ==================================================================
error                  code    when, with kube-apiserver's message
=====================  ======  ==================================================================
:class:`BadPatch`      400     not JSON (Go's decoder text, e.g. ``unexpected end of JSON input``;
                               ``Invalid JSON Patch`` for a merge patch), a JSON patch that is not
                               an array (``json: cannot unmarshal object into Go value of type
                               jsonpatch.Patch``) or has a malformed op, a bad SMP directive
:class:`PatchTooLarge` 413     more than 10000 JSON patch operations
:class:`Unprocessable  422     a JSON patch op that does not apply: the message is the generic
Patch`                         ``the server rejected our request due to an error in our request``
                               (``detail`` keeps json-patch's reason, e.g. ``add operation does
                               not apply: doc is missing path: "/a/b": missing value``, ``testing
                               value /a failed: test failed``); an SMP that cannot be merged
                               (``map: map[...] does not contain declared merge key: port``)
:class:`Unsupported    415     strategic merge on a custom kind, or apply (not implemented)
Patch`
=====================  ======  ==================================================================

JSON patch follows RFC 6902 as kube-apiserver's json-patch (evanphx v4) applies it, quirks
included: ``replace`` of a missing object member adds it, negative array indices count from
the end, ``test`` of ``null`` passes on a missing member. Pure: no I/O, inputs never modified.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from lbctl.apimachinery.smp import (
    REJECTED,
    SMP_SCHEMAS,
    BadPatch,
    JSONValue,
    PatchError,
    PatchTooLarge,
    SmpSchema,
    UnprocessablePatch,
    UnsupportedPatch,
    go_json_kind,
    json_equal,
    smp_schema_for,
    strategic_merge_patch,
)

__all__ = [
    "INVALID_MERGE_PATCH",
    "MAX_JSON_PATCH_OPERATIONS",
    "REJECTED",
    "SMP_SCHEMAS",
    "BadPatch",
    "PatchError",
    "PatchTooLarge",
    "PatchType",
    "SmpSchema",
    "UnprocessablePatch",
    "UnsupportedPatch",
    "accepted_patch_types",
    "apply_patch",
    "decode_json",
    "json_patch",
    "merge_patch",
    "smp_schema_for",
    "strategic_merge_patch",
    "unsupported_patch_message",
]

MAX_JSON_PATCH_OPERATIONS: Final = 10_000
INVALID_MERGE_PATCH: Final = "Invalid JSON Patch"
"""json-patch's ``ErrBadJSONPatch``: kube-apiserver's 400 for a merge patch that is not a
JSON object."""


class PatchType(StrEnum):
    JSON = "application/json-patch+json"
    MERGE = "application/merge-patch+json"
    STRATEGIC = "application/strategic-merge-patch+json"
    APPLY = "application/apply-patch+yaml"
    """Server-side apply: not implemented, :func:`apply_patch` answers 415."""


def accepted_patch_types(*, custom: bool) -> tuple[PatchType, ...]:
    """What this engine applies for a kind (upstream also lists apply-patch+yaml)."""
    if custom:
        return (PatchType.JSON, PatchType.MERGE)
    return (PatchType.JSON, PatchType.MERGE, PatchType.STRATEGIC)


def unsupported_patch_message(*, custom: bool) -> str:
    """kube-apiserver's 415 text (``negotiation.NewUnsupportedMediaTypeError``)."""
    types = ", ".join(accepted_patch_types(custom=custom))
    return (
        f"the body of the request was in an unknown format - accepted media types include: {types}"
    )


def _go_json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array"


def apply_patch(
    doc: Mapping[str, Any],
    patch_body: bytes | str,
    patch_type: PatchType,
    *,
    api_version: str,
    kind: str,
    custom: bool = False,
) -> dict[str, Any]:
    """``doc`` patched by the raw ``patch_body``; a new object, ``doc`` is not modified.

    ``api_version``/``kind`` select the strategic merge schema (:data:`SMP_SCHEMAS`);
    ``custom`` (a custom kind) refuses strategic merge patch with 415 as upstream does.
    """
    patch_type = PatchType(patch_type)
    if patch_type is PatchType.APPLY or (patch_type is PatchType.STRATEGIC and custom):
        raise UnsupportedPatch(unsupported_patch_message(custom=custom))
    if patch_type is PatchType.MERGE:
        try:
            patch = decode_json(patch_body)
        except BadPatch:
            raise BadPatch(INVALID_MERGE_PATCH) from None
        if patch is not None and not isinstance(patch, dict):
            # kube-apiserver decodes the patch into a map first (observed on 1.34).
            raise BadPatch(
                "error decoding patch: json: cannot unmarshal "
                f"{_go_json_type(patch)} into Go value of type map[string]interface {{}}"
            )
        if patch is None:
            raise BadPatch(INVALID_MERGE_PATCH)
        return _merge_object(doc, patch)
    value = decode_json(patch_body)
    if patch_type is PatchType.STRATEGIC:
        if value is None:  # Go decodes null into an empty map: a no-op
            return copy.deepcopy(dict(doc))
        return strategic_merge_patch(doc, value, smp_schema_for(api_version, kind))
    ops = _parse_ops([] if value is None else value)
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise PatchTooLarge(
            "Request entity too large: The allowed maximum operations in a JSON patch is "
            f"{MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}"
        )
    result = _run_ops(doc, ops)
    if not isinstance(result, dict):
        raise UnprocessablePatch(REJECTED, "the patched document is not a JSON object")
    return result


# -- JSON decoding, with Go's encoding/json error texts ------------------------------------
class _Reject(ValueError):
    """A JSON token Go refuses that Python accepts (NaN, Infinity, out-of-range floats)."""


def _constant(name: str) -> float:
    where = "in numeric literal" if name.startswith("-") else "looking for beginning of value"
    raise _Reject(f"invalid character {_quote(name.lstrip('-')[0])} {where}")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _Reject(f"json: cannot unmarshal number {text} into Go value of type float64")
    return value


def decode_json(body: bytes | str) -> JSONValue:
    """Parse a body; :class:`BadPatch` with Go's decoder message if it is not JSON."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    try:
        return json.loads(text, parse_constant=_constant, parse_float=_float)
    except _Reject as e:
        raise BadPatch(str(e)) from None
    except json.JSONDecodeError as e:
        raise BadPatch(_go_syntax_error(text, e)) from None


def _quote(ch: str) -> str:
    if ch == "'":
        return "'\\''"
    return "'" + ('"' if ch == '"' else json.dumps(ch, ensure_ascii=False)[1:-1]) + "'"


_SYNTAX: Final = (
    ("Expecting value", "looking for beginning of value"),
    ("Expecting property name", "looking for beginning of object key string"),
    ("Expecting ':'", "after object key"),
    ("Extra data", "after top-level value"),
    ("Invalid control character", "in string literal"),
    ("Invalid \\escape", "in string escape code"),
)


def _go_syntax_error(text: str, e: json.JSONDecodeError) -> str:
    if e.msg.startswith("Unexpected UTF-8 BOM"):
        return "invalid character 'ï' looking for beginning of value"
    if e.pos >= len(text.rstrip(" \t\r\n")) or e.msg.startswith("Unterminated string"):
        return "unexpected end of JSON input"
    pos = e.pos + 1 if e.msg.startswith("Invalid \\escape") else e.pos
    found = _quote(text[pos]) if pos < len(text) else "''"
    if e.msg.startswith("Expecting ','"):
        where = (
            "after object key:value pair"
            if _innermost(text, e.pos) == "{"
            else "after array element"
        )
        return f"invalid character {found} {where}"
    for prefix, where in _SYNTAX:
        if e.msg.startswith(prefix):
            return f"invalid character {found} {where}"
    return e.msg  # pragma: no cover - every message of Python's decoder is mapped above


def _innermost(text: str, end: int) -> str:
    """The innermost bracket open at ``end``."""
    stack: list[str] = []
    in_string = escaped = False
    for ch in text[:end]:
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


# -- JSON merge patch (RFC 7386) ----------------------------------------------------------
def merge_patch(doc: JSONValue, patch: JSONValue) -> JSONValue:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces; a
    patch that is not an object replaces the whole document."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    return _merge_object(doc if isinstance(doc, Mapping) else {}, patch)


def _merge_object(doc: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    return _merge_into(copy.deepcopy(dict(doc)), patch)


def _merge_into(out: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping):
            current = out.get(key)
            out[key] = _merge_into(current if isinstance(current, dict) else {}, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# -- JSON patch (RFC 6902) ----------------------------------------------------------------
_OPS: Final = frozenset({"add", "remove", "replace", "move", "copy", "test"})
_INT: Final = re.compile(r"[+-]?[0-9]+")
_NOTHING: Final = object()


@dataclass(frozen=True, slots=True)
class _Op:
    op: str
    path: str
    source: str = ""
    value: JSONValue = None


def json_patch(doc: JSONValue, ops: Sequence[Mapping[str, Any]]) -> JSONValue:
    """``doc`` patched by the parsed RFC 6902 ``ops``; ``doc`` is not modified.
    :class:`BadPatch` if ``ops`` is malformed (checked before anything is applied),
    :class:`UnprocessablePatch` if an op does not apply."""
    return _run_ops(doc, _parse_ops(ops))


def _string_field(raw: Mapping[str, Any], name: str, op: str) -> str:
    value = raw.get(name, _NOTHING)
    missing = "operation missing path field" if name == "path" else "operation, missing from field"
    if value is _NOTHING or value is None:
        raise BadPatch(f"{op} operation failed to decode {name}: {missing}: missing value")
    if not isinstance(value, str):
        raise BadPatch(
            f"{op} operation failed to decode {name}: json: cannot unmarshal "
            f"{go_json_kind(value)} into Go value of type string"
        )
    if value and not value.startswith("/"):
        raise BadPatch(f'{op} operation failed to decode {name}: invalid JSON pointer: "{value}"')
    return value


def _parse_ops(ops: Any) -> list[_Op]:
    if not isinstance(ops, list | tuple):
        raise BadPatch(
            f"json: cannot unmarshal {go_json_kind(ops)} into Go value of type jsonpatch.Patch"
        )
    parsed: list[_Op] = []
    for raw in ops:
        if raw is None:  # Go decodes it as an operation without "op"
            raise BadPatch("Unexpected kind: unknown")
        if not isinstance(raw, Mapping):
            raise BadPatch(
                f"json: cannot unmarshal {go_json_kind(raw)} into Go value of type "
                "jsonpatch.Operation"
            )
        op = raw.get("op")
        if not isinstance(op, str) or op not in _OPS:
            raise BadPatch(f"Unexpected kind: {op if isinstance(op, str) else 'unknown'}")
        path = _string_field(raw, "path", op)
        source = _string_field(raw, "from", op) if op in ("move", "copy") else ""
        if op in ("add", "replace", "test") and "value" not in raw:
            raise BadPatch(f"{op} operation failed: operation, missing value field: missing value")
        parsed.append(_Op(op, path, source, copy.deepcopy(raw.get("value"))))
    return parsed


class _Inner(Exception):
    """A container-level failure that the op wraps in its own message."""


class _Missing(Exception):
    """The parent of the pointer (the exception's text) does not exist."""


def _atoi_text(token: str) -> str:
    return f'strconv.Atoi: parsing "{token}": invalid syntax'


def _tokens(pointer: str) -> list[str]:
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]


def _parent(doc: JSONValue, tokens: list[str]) -> dict[str, Any] | list[Any] | None:
    """The container holding the pointer's last token, or None where json-patch would say
    "doc is missing path"."""
    if not tokens:
        return None
    current = doc
    for token in tokens[:-1]:
        if isinstance(current, dict):
            current = current.get(token)
        elif isinstance(current, list):
            try:
                current = current[_position(current, token)]
            except _Inner:
                return None
        else:
            return None
    return current if isinstance(current, dict | list) else None


def _atoi(token: str) -> int:
    if not _INT.fullmatch(token):
        raise _Inner(_atoi_text(token))
    return int(token)


def _position(seq: list[Any], token: str, *, size: int | None = None) -> int:
    """An array index; negative ones count from the end (json-patch's default)."""
    n = len(seq) if size is None else size
    index = _atoi(token)
    if index >= n or index < -n:
        raise _Inner(f"Unable to access invalid index: {index}: invalid index referenced")
    return index + n if index < 0 else index


def _get(container: dict[str, Any] | list[Any], token: str) -> JSONValue:
    if isinstance(container, dict):
        return container.get(token, _NOTHING)
    return container[_position(container, token)]


def _add(doc: JSONValue, pointer: str, value: JSONValue, wrap: str) -> JSONValue:
    """Add ``value`` at ``pointer`` ("" replaces the document, as RFC 6902 says); ``wrap``
    prefixes the text of a failure inside the target array."""
    if not pointer:
        return value
    tokens = _tokens(pointer)
    container = _parent(doc, tokens)
    if container is None:
        raise _Missing(pointer)
    key = tokens[-1]
    if isinstance(container, dict):
        container[key] = value
    elif key == "-":
        container.append(value)
    else:
        try:
            if not _INT.fullmatch(key):
                raise _Inner(f"value was not a proper array index: '{key}': {_atoi_text(key)}")
            container.insert(_position(container, key, size=len(container) + 1), value)
        except _Inner as e:
            raise _fail(f"{wrap}{e}") from None
    return doc


def _remove(doc: JSONValue, pointer: str, wrap: str) -> JSONValue:
    """Remove and return the value at ``pointer``."""
    tokens = _tokens(pointer)
    container = _parent(doc, tokens)
    if container is None:
        raise _Missing(pointer)
    key = tokens[-1]
    try:
        if isinstance(container, dict):
            if key not in container:
                raise _Inner(f"Unable to remove nonexistent key: {key}: missing value")
            return container.pop(key)
        return container.pop(_position(container, key))
    except _Inner as e:
        raise _fail(f"{wrap}{e}") from None


def _fail(detail: str) -> UnprocessablePatch:
    return UnprocessablePatch(REJECTED, detail)


def _run_ops(doc: JSONValue, ops: list[_Op]) -> JSONValue:
    result = copy.deepcopy(doc)
    for op in ops:
        result = _apply_op(result, op)
    return result


def _apply_op(doc: JSONValue, op: _Op) -> JSONValue:
    path = op.path
    try:
        if op.op == "add":
            return _add(doc, path, op.value, f"error in add for path: '{path}': ")
        if op.op == "remove":
            _remove(doc, path, f"error in remove for path: '{path}': ")
            return doc
        if op.op == "replace":
            return _replace(doc, path, op.value)
        if op.op == "test":
            _test(doc, path, op.value)
            return doc
        return _move_or_copy(doc, op)
    except _Missing as e:
        if op.op in ("add", "remove"):
            raise _fail(f'{op.op} operation does not apply: doc is missing path: "{e}": '
                        "missing value") from None  # fmt: skip
        raise _fail(f"{op.op} operation does not apply: doc is missing destination path: {e}: "
                    "missing value") from None  # fmt: skip


def _replace(doc: JSONValue, path: str, value: JSONValue) -> JSONValue:
    if not path:
        if not isinstance(value, dict | list):
            raise _fail("replace operation value must be object or array")
        return value
    tokens = _tokens(path)
    container = _parent(doc, tokens)
    if container is None:
        raise _fail(f"replace operation does not apply: doc is missing path: {path}: missing value")
    key = tokens[-1]
    if isinstance(container, dict):
        container[key] = value  # json-patch v4: a missing member is added
        return doc
    try:
        container[_position(container, key)] = value
    except _Inner:
        raise _fail(
            f"replace operation does not apply: doc is missing key: {path}: missing value"
        ) from None
    return doc


def _test(doc: JSONValue, path: str, value: JSONValue) -> None:
    if path:
        tokens = _tokens(path)
        container = _parent(doc, tokens)
        if container is None:
            raise _fail(f"test operation does not apply: is missing path: {path}: missing value")
        try:
            actual = _get(container, tokens[-1])
        except _Inner as e:
            raise _fail(f"error in test for path: '{path}': {e}") from None
        if actual is _NOTHING:
            actual = None  # json-patch v4: a missing member tests as null
    else:
        actual = doc
    if not json_equal(actual, value):
        raise _fail(f"testing value {path} failed: test failed")


def _move_or_copy(doc: JSONValue, op: _Op) -> JSONValue:
    tokens = _tokens(op.source)
    container = _parent(doc, tokens)
    if container is None:
        raise _fail(f"{op.op} operation does not apply: doc is missing from path: {op.source}: "
                    "missing value")  # fmt: skip
    key = tokens[-1]
    if op.op == "move":
        value = _remove(doc, op.source, f"error in move for path: '{key}': ")
        return _add(doc, op.path, value, f"error in move for path: '{op.path}': ")
    try:
        value = _get(container, key)
    except _Inner as e:
        raise _fail(f"error in copy for from: '{op.source}': {e}") from None
    if value is _NOTHING:
        raise _fail(f"{op.op} operation does not apply: doc is missing from path: {op.source}: "
                    "missing value")  # fmt: skip
    return _add(doc, op.path, copy.deepcopy(value), "error while adding value during copy: ")
