"""The JSONPath subset that custom-resource printer columns use.

A CRD column names its value with a JSONPath such as ``.spec.replicas``,
``.status.addresses[0].ip``, ``.metadata.labels['app\\.kubernetes\\.io/name']`` or
``.status.conditions[?(@.type=="Ready")].status``.  kube-apiserver evaluates it with
client-go's ``jsonpath`` package with missing keys allowed, keeps the first result
and turns it into a cell according to the column's type
(``apiextensions-apiserver/pkg/registry/customresource/tableconvertor``).

Supported here: ``.field`` (``\\.`` escapes a dot), ``['field']`` / ``["field"]``,
``[n]`` (negative counts from the end), ``[*]`` / ``.*``, and filters
``[?(@.path OP literal)]`` with ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` or a bare
``[?(@.path)]`` existence test.  Anything else is a :class:`JSONPathError`, which a
printer turns into an empty cell, as upstream does for a column it cannot evaluate.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any, Final

__all__ = ["JSONPath", "JSONPathError", "go_float", "go_json", "go_print"]


class JSONPathError(ValueError):
    """A path this subset cannot parse."""


Step = Callable[[Any], list[Any]]

_FIELD: Final = re.compile(r"((?:\\.|[^.\[\]\\])+)")
_INDEX: Final = re.compile(r"\[\s*(-?\d+)\s*\]")
_QUOTED: Final = re.compile(r"""\[\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*\]""")
_FILTER: Final = re.compile(
    r"""\[\s*\?\(\s*@((?:\.(?:\\.|[^.\s=!<>()\\])+)+)\s*"""
    r"""(?:(==|!=|<=|>=|<|>)\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s)]+)\s*)?\)\s*\]"""
)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _get(node: Any, key: str) -> list[Any]:
    return [node[key]] if isinstance(node, Mapping) and key in node else []


def _index(node: Any, i: int) -> list[Any]:
    if not isinstance(node, list):
        return []
    j = i + len(node) if i < 0 else i
    return [node[j]] if 0 <= j < len(node) else []


def _all(node: Any) -> list[Any]:
    if isinstance(node, Mapping):
        return [node[k] for k in sorted(node)]
    return list(node) if isinstance(node, list) else []


def _literal(text: str) -> Any:
    if text[:1] in ("'", '"'):
        return _unescape(text[1:-1])
    if text in ("true", "false"):
        return text == "true"
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise JSONPathError(f"unrecognized filter literal {text!r}") from None


def _compare(left: Any, op: str, right: Any) -> bool:
    if op in ("==", "!="):
        equal = left == right and isinstance(left, bool) == isinstance(right, bool)
        return equal if op == "==" else not equal
    numbers = (int, float)
    if isinstance(left, bool) or isinstance(right, bool):
        return False
    if not (isinstance(left, numbers) and isinstance(right, numbers)):
        return False
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def _filter(path: Sequence[str], op: str | None, literal: Any) -> Step:
    def step(node: Any) -> list[Any]:
        out: list[Any] = []
        for item in _all(node):
            values = [item]
            for key in path:
                values = [v for value in values for v in _get(value, key)]
            if not values:
                continue
            if op is None or _compare(values[0], op, literal):
                out.append(item)
        return out

    return step


@dataclass(frozen=True, slots=True)
class JSONPath:
    """A parsed path; :meth:`find` lists every value it reaches, in order."""

    text: str
    steps: tuple[Step, ...]

    @classmethod
    def parse(cls, text: str) -> JSONPath:
        path = text.strip()
        if path.startswith("{") and path.endswith("}"):
            path = path[1:-1].strip()
        if path.startswith("$"):
            path = path[1:]
        steps: list[Step] = []
        pos = 0
        while pos < len(path):
            if path.startswith(".*", pos) or path.startswith("[*]", pos):
                steps.append(_all)
                pos += 2 if path[pos] == "." else 3
            elif path[pos] == "." and (m := _FIELD.match(path, pos + 1)):
                key = _unescape(m.group(1))
                steps.append(partial(_get, key=key))
                pos = m.end()
            elif m := _INDEX.match(path, pos):
                i = int(m.group(1))
                steps.append(partial(_index, i=i))
                pos = m.end()
            elif m := _QUOTED.match(path, pos):
                key = _unescape(m.group(1) if m.group(1) is not None else m.group(2))
                steps.append(partial(_get, key=key))
                pos = m.end()
            elif m := _FILTER.match(path, pos):
                keys = [_unescape(k) for k in re.findall(r"\.((?:\\.|[^.\\])+)", m.group(1))]
                op = m.group(2)
                literal = _literal(m.group(3)) if op else None
                steps.append(_filter(keys, op, literal))
                pos = m.end()
            else:
                raise JSONPathError(f"unrecognized JSONPath {text!r} at {path[pos:]!r}")
        return cls(text, tuple(steps))

    def find(self, obj: Any) -> list[Any]:
        nodes = [obj]
        for step in self.steps:
            nodes = [found for node in nodes for found in step(node)]
        return nodes

    def first(self, obj: Any) -> tuple[bool, Any]:
        """``(True, value)`` for the first value reached, ``(False, None)`` for none."""
        found = self.find(obj)
        return (True, found[0]) if found else (False, None)


def go_float(value: float) -> str:
    """A float the way Go's ``fmt.Sprint`` prints it (``%v``: shortest ``%g``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits)) or "0"
    point = len(text) + exponent  # decimal point position within the digits
    exp = point - 1
    prefix = "-" if sign else ""
    if value == 0:
        return prefix + "0"
    if exp < -4 or exp >= 6:  # shortest %g switches to %e outside [1e-4, 1e6)
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def _go_numbers(value: Any) -> Any:
    """Integral floats become ints, as Go's encoder prints them without ``.0``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, Mapping):
        return {k: _go_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_numbers(v) for v in value]
    return value


def go_json(value: Any) -> str:
    """Go's ``json.Marshal``: sorted keys, compact, ``<``, ``>`` and ``&`` escaped."""
    text = json.dumps(_go_numbers(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def go_print(value: Any) -> str:
    """How client-go's ``JSONPath.PrintResults`` prints one value."""
    if isinstance(value, Mapping | list):
        return go_json(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if value is None:
        return "<nil>"
    return str(value)
