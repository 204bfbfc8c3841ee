"""Label selectors, parsed and matched as kube-apiserver does.

Follows ``apimachinery/pkg/labels/selector.go``: a lexer and a recursive-descent
parser over ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``,
``!k`` and the numeric ``k>n`` / ``k<n``, comma meaning AND, whitespace ignored.
Requirements come out sorted by key, ``in``/``notin`` values as a sorted set, keys
and values are checked as label syntax, and every error message is upstream's,
word for word, e.g. ``unable to parse requirement: found 'b', expected: in, notin,
=, ==, !=, gt, lt``.  ``!=`` and ``notin`` match objects that lack the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Final

from lbctl.domain.fielderrors import FieldError, Reason
from lbctl.domain.names import label_value_errors, qualified_name_errors

__all__ = [
    "LabelSelector",
    "Operator",
    "Requirement",
    "SelectorError",
    "parse_label_selector",
]


class SelectorError(ValueError):
    """A selector that does not parse, or names a field the kind cannot select on.

    ``str(error)`` is kube-apiserver's message for the 400 BadRequest.
    """


class Operator(StrEnum):
    """``selection.Operator``: the values are upstream's spellings."""

    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


# The order upstream lists them in "expected: ..." errors.
_BINARY: Final = ("in", "notin", "=", "==", "!=", "gt", "lt")
_INT64: Final = re.compile(r"[+-]?[0-9]+")


def _parse_int64(text: str) -> int | None:
    """Go's ``strconv.ParseInt(text, 10, 64)``: ASCII digits, optional sign, in range."""
    if not _INT64.fullmatch(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


@dataclass(frozen=True, slots=True)
class Requirement:
    """One label requirement: key, operator and (for binary operators) values."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (Operator.NOT_IN, Operator.NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op is Operator.EXISTS:
            return self.key in labels
        if op is Operator.DOES_NOT_EXIST:
            return self.key not in labels
        # gt / lt: both sides must be integers, else no match.
        if self.key not in labels or len(self.values) != 1:
            return False
        have, want = _parse_int64(labels[self.key]), _parse_int64(self.values[0])
        if have is None or want is None:
            return False
        return have > want if op is Operator.GREATER_THAN else have < want

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return "!" + self.key
        values = ",".join(sorted(self.values))
        if op in (Operator.IN, Operator.NOT_IN):
            return f"{self.key} {op.value} ({values})"
        symbol = {Operator.GREATER_THAN: ">", Operator.LESS_THAN: "<"}.get(op, op.value)
        return f"{self.key}{symbol}{values}"


def _labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """The AND of its requirements; no requirement matches everything."""

    requirements: tuple[Requirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether a whole API object's ``metadata.labels`` satisfy every requirement."""
        return self.matches_labels(_labels_of(obj))

    def matches_labels(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def requires_exact_match(self, key: str) -> str | None:
        """The single value ``key`` must have (``=``, ``==``, one-value ``in``), if any."""
        for r in self.requirements:
            if r.key == key:
                exact = (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.IN)
                return r.values[0] if r.operator in exact and len(r.values) == 1 else None
        return None

    def __iter__(self) -> Iterator[Requirement]:
        return iter(self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


# -- label selector lexer --------------------------------------------------------------


class _Tok(Enum):
    ERROR = 0
    END = 1
    CLOSE = 2
    COMMA = 3
    NOT = 4
    DOUBLE_EQUALS = 5
    EQUALS = 6
    GREATER = 7
    IDENT = 8
    IN = 9
    LESS = 10
    NOT_EQUALS = 11
    NOT_IN = 12
    OPEN = 13


_LITERALS: Final = {
    ")": _Tok.CLOSE,
    ",": _Tok.COMMA,
    "!": _Tok.NOT,
    "==": _Tok.DOUBLE_EQUALS,
    "=": _Tok.EQUALS,
    ">": _Tok.GREATER,
    "in": _Tok.IN,
    "<": _Tok.LESS,
    "!=": _Tok.NOT_EQUALS,
    "notin": _Tok.NOT_IN,
    "(": _Tok.OPEN,
}
_SPECIAL: Final = frozenset("=!(),><")
_SPACE: Final = frozenset(" \t\r\n")


def _lex(text: str) -> list[tuple[_Tok, str]]:
    """Every token up to and including END, as upstream's ``Lexer.Lex`` yields them."""
    tokens: list[tuple[_Tok, str]] = []
    pos, n = 0, len(text)
    while True:
        while pos < n and text[pos] in _SPACE:
            pos += 1
        if pos == n:
            tokens.append((_Tok.END, ""))
            return tokens
        if text[pos] in _SPECIAL:
            # Longest run of special characters that still spells an operator.
            best: tuple[_Tok, str] | None = None
            end = pos
            while end < n and text[end] in _SPECIAL:
                tok = _LITERALS.get(text[pos : end + 1])
                if tok is not None:
                    best = (tok, text[pos : end + 1])
                elif best is not None:
                    break
                end += 1
            if best is None:
                tokens.append((_Tok.ERROR, f"error expected: keyword found '{text[pos:end]}'"))
                pos = end
            else:
                tokens.append(best)
                pos += len(best[1])
            continue
        start = pos
        while pos < n and text[pos] not in _SPECIAL and text[pos] not in _SPACE:
            pos += 1
        word = text[start:pos]
        tokens.append((_LITERALS.get(word, _Tok.IDENT), word))


# -- label selector parser -------------------------------------------------------------


def _invalid(field: str, value: str, detail: str) -> str:
    return str(FieldError(field, Reason.INVALID, value, detail))


def _key_error(key: str) -> str | None:
    errs = qualified_name_errors(key)
    # The parser validates keys with a nil field path, which Go prints as "<nil>".
    return _invalid("<nil>", key, "; ".join(errs)) if errs else None


class _Parser:
    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.pos = 0

    def _peek(self, values: bool = True) -> tuple[_Tok, str]:
        return self._as_value(self.items[self.pos], values)

    def _next(self, values: bool = True) -> tuple[_Tok, str]:
        self.pos += 1
        return self._as_value(self.items[self.pos - 1], values)

    @staticmethod
    def _as_value(item: tuple[_Tok, str], values: bool) -> tuple[_Tok, str]:
        # Where a value may stand, "in" and "notin" are plain words.
        if values and item[0] in (_Tok.IN, _Tok.NOT_IN):
            return _Tok.IDENT, item[1]
        return item

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            tok, lit = self._peek()
            if tok is _Tok.END:
                return requirements
            if tok not in (_Tok.IDENT, _Tok.NOT):
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self._requirement())
            except SelectorError as e:
                raise SelectorError(f"unable to parse requirement: {e}") from None
            tok, lit = self._next()
            if tok is _Tok.END:
                return requirements
            if tok is not _Tok.COMMA:
                raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            tok, lit = self._peek()
            if tok not in (_Tok.IDENT, _Tok.NOT):
                raise SelectorError(f"found '{lit}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        negated = False
        tok, key = self._next()
        if tok is _Tok.NOT:
            negated = True
            tok, key = self._next()
        if tok is not _Tok.IDENT:
            raise SelectorError(f"found '{key}', expected: identifier")
        if (err := _key_error(key)) is not None:
            raise SelectorError(err)
        if negated:
            return Requirement(key, Operator.DOES_NOT_EXIST)
        if self._peek()[0] in (_Tok.END, _Tok.COMMA):
            return Requirement(key, Operator.EXISTS)
        op = self._operator()
        values = self._set() if op in (Operator.IN, Operator.NOT_IN) else self._exact()
        return _new_requirement(key, op, sorted(values))

    def _operator(self) -> Operator:
        tok, lit = self._next(values=False)
        ops = {
            _Tok.IN: Operator.IN,
            _Tok.EQUALS: Operator.EQUALS,
            _Tok.DOUBLE_EQUALS: Operator.DOUBLE_EQUALS,
            _Tok.GREATER: Operator.GREATER_THAN,
            _Tok.LESS: Operator.LESS_THAN,
            _Tok.NOT_IN: Operator.NOT_IN,
            _Tok.NOT_EQUALS: Operator.NOT_EQUALS,
        }
        if tok not in ops:
            raise SelectorError(f"found '{lit}', expected: {', '.join(_BINARY)}")
        return ops[tok]

    def _set(self) -> set[str]:
        tok, lit = self._next()
        if tok is not _Tok.OPEN:
            raise SelectorError(f"found '{lit}' expected: '('")  # sic: no comma upstream
        tok, lit = self._peek()
        if tok is _Tok.CLOSE:  # "()" is the set holding the empty string
            self._next()
            return {""}
        if tok not in (_Tok.IDENT, _Tok.COMMA):
            raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")
        values = self._identifiers()
        self._next()  # the ")" _identifiers stopped at
        return values

    def _identifiers(self) -> set[str]:
        """A comma-separated list of possibly empty values, up to (not past) ")"."""
        values: set[str] = set()
        while True:
            tok, lit = self._next()
            if tok is _Tok.IDENT:
                values.add(lit)
                tok2, lit2 = self._peek()
                if tok2 is _Tok.CLOSE:
                    return values
                if tok2 is not _Tok.COMMA:
                    raise SelectorError(f"found '{lit2}', expected: ',' or ')'")
            elif tok is _Tok.COMMA:
                if not values:
                    values.add("")  # "(,"
                tok2, _ = self._peek()
                if tok2 is _Tok.CLOSE:
                    values.add("")  # ",)"
                    return values
                if tok2 is _Tok.COMMA:
                    values.add("")  # ",,"
            else:
                raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def _exact(self) -> set[str]:
        if self._peek()[0] in (_Tok.END, _Tok.COMMA):
            return {""}
        tok, lit = self._next()
        if tok is not _Tok.IDENT:
            raise SelectorError(f"found '{lit}', expected: identifier")
        return {lit}


def _new_requirement(key: str, op: Operator, values: list[str]) -> Requirement:
    """``labels.NewRequirement``'s value checks (the key was checked by the parser)."""
    errors: list[str] = []
    if op in (Operator.GREATER_THAN, Operator.LESS_THAN):
        for i, value in enumerate(values):
            if _parse_int64(value) is None:
                detail = "for 'Gt', 'Lt' operators, the value must be an integer"
                errors.append(_invalid(f"values[{i}]", value, detail))
    for i, value in enumerate(values):
        if errs := label_value_errors(value):
            errors.append(_invalid(f"values[{i}][{key}]", value, "; ".join(errs)))
    unique = list(dict.fromkeys(errors))
    if len(unique) == 1:
        raise SelectorError(unique[0])
    if unique:  # Go's aggregate error
        raise SelectorError("[" + ", ".join(unique) + "]")
    return Requirement(key, op, tuple(values))


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a ``labelSelector`` query value; ``""`` selects everything.

    Raises :class:`SelectorError` with kube-apiserver's message.
    """
    requirements = _Parser(text).parse()
    requirements.sort(key=lambda r: r.key)
    return LabelSelector(tuple(requirements))
