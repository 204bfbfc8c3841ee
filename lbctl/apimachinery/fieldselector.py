"""Field selectors, parsed and matched as kube-apiserver does.

Follows ``apimachinery/pkg/fields/selector.go``: terms split on unescaped commas,
``!=`` / ``==`` / ``=`` (the first operator found wins), values unescaped (``\\,``
``\\=`` ``\\\\``), terms sorted, then each field checked against the kind's
supported fields.  An unknown field earns the words of the kind's converter:
``field label not supported: X`` for kinds that register their own list (Service,
Node, Namespace, Event, custom kinds) and ``"X" is not a known field selector: only
"metadata.name", "metadata.namespace"`` for kinds left to the default one
(ConfigMap, EndpointSlice, Lease...).

Matching reads the value from the JSON object by dotted path with the API server's
conversions: a missing field is ``""``, booleans are ``"true"``/``"false"``, Node
``spec.unschedulable`` defaults to ``"false"`` and Event ``source`` falls back to
the reporting controller.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from lbctl.apimachinery.labelselector import SelectorError

__all__ = [
    "DEFAULT_FIELDS",
    "FieldErrorStyle",
    "FieldRequirement",
    "FieldSelector",
    "escape_field_value",
    "field_value",
    "parse_field_selector",
]

DEFAULT_FIELDS: Final = ("metadata.name", "metadata.namespace")
"""What every kind's default field-label converter accepts."""


class FieldErrorStyle(StrEnum):
    """Which converter's words reject an unsupported field."""

    NOT_SUPPORTED = "NotSupported"
    """``field label not supported: X``: kinds with their own converter, custom kinds."""
    NOT_KNOWN = "NotKnown"
    """``"X" is not a known field selector: only "metadata.name", "metadata.namespace"``."""


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    """``field=value`` (``==`` too) or, with ``negated``, ``field!=value``."""

    field: str
    value: str
    negated: bool = False

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (field_value(obj, self.field) == self.value) != self.negated

    def __str__(self) -> str:
        return f"{self.field}{'!=' if self.negated else '='}{escape_field_value(self.value)}"


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """The AND of its terms; no term matches everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    def requires_exact_match(self, field: str) -> str | None:
        """The value an ``=`` term demands of ``field`` (the first such term), if any."""
        for r in self.requirements:
            if r.field == field and not r.negated:
                return r.value
        return None

    def __iter__(self) -> Iterator[FieldRequirement]:
        return iter(self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


_ESCAPES: Final = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\="})


def escape_field_value(value: str) -> str:
    """``fields.EscapeValue``: backslash-escape ``\\``, ``,`` and ``=``."""
    return value.translate(_ESCAPES)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not backslash-escaped (escapes are kept)."""
    terms: list[str] = []
    start, escaped = 0, False
    for i, c in enumerate(text):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def _unescape(value: str) -> str:
    out: list[str] = []
    escaped = False
    for c in value:
        if escaped:
            if c not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c in ",=":
            # Go prints the rune with %v: its code point, not the character.
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _unsupported(field: str, style: FieldErrorStyle) -> SelectorError:
    if style is FieldErrorStyle.NOT_KNOWN:
        only = ", ".join(f'"{f}"' for f in DEFAULT_FIELDS)
        return SelectorError(f'"{field}" is not a known field selector: only {only}')
    return SelectorError(f"field label not supported: {field}")


def parse_field_selector(
    text: str, *, supported: Sequence[str], style: FieldErrorStyle | None = None
) -> FieldSelector:
    """Parse a ``fieldSelector`` query value and check its fields against ``supported``.

    ``style`` picks the wording for an unsupported field; by default a kind whose
    fields are exactly :data:`DEFAULT_FIELDS` uses the default converter's words
    (``NOT_KNOWN``) and any other kind ``NOT_SUPPORTED``.  Custom kinds keep the
    default fields yet say ``field label not supported``: pass ``style`` for them.
    Raises :class:`SelectorError` with kube-apiserver's message.
    """
    if style is None:
        default = tuple(supported) == DEFAULT_FIELDS
        style = FieldErrorStyle.NOT_KNOWN if default else FieldErrorStyle.NOT_SUPPORTED
    terms: list[FieldRequirement] = []
    for part in sorted(_split_terms(text)) if text else ():
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, raw = split
        terms.append(FieldRequirement(field, _unescape(raw), negated=op == "!="))
    for term in terms:
        if term.field not in supported:
            raise _unsupported(term.field, style)
    return FieldSelector(tuple(terms))


# Event fields computed from several places.  The reporting controller is
# ``reportingComponent`` in core/v1 JSON and ``reportingController`` in events.k8s.io/v1.
_REPORTER: Final = ("reportingComponent", "reportingController")
_FALLBACKS: Final = {
    "source": ("source.component", "deprecatedSource.component", *_REPORTER),
    "reportingComponent": _REPORTER,
}
_ZERO_VALUES: Final = {"spec.unschedulable": "false"}
"""Typed fields whose Go zero value is not ``""`` when the JSON omits them."""


def _lookup(obj: Mapping[str, Any], path: str) -> Any:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def field_value(obj: Mapping[str, Any], field: str) -> str:
    """The string a field selector compares for ``field`` of a JSON object.

    Mirrors the kinds' ``ToSelectableFields``: Event ``source`` is
    ``source.component`` (``deprecatedSource.component`` for events.k8s.io) or else the
    reporting controller; Event ``reportingComponent`` is the reporting controller;
    booleans print as Go does; anything missing is ``""`` (``"false"`` for
    ``spec.unschedulable``).
    """
    if field in _FALLBACKS:
        for path in _FALLBACKS[field]:
            if isinstance(v := _lookup(obj, path), str) and v:
                return v
        return ""
    value = _lookup(obj, field)
    if value is None:
        return _ZERO_VALUES.get(field, "")
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)
