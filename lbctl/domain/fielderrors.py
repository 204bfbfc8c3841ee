"""Field errors shaped like kube-apiserver's (``apimachinery/pkg/util/validation/field``).

A :class:`FieldError` names the offending field by its JSON path
(``spec.ports[1].nodePort``), a :class:`Reason` (the ``reason`` of a Status cause)
and a detail.  ``message`` renders the cause message the way kube-apiserver does
(``Invalid value: 80: provided port is already allocated``) and ``str()`` adds the
field in front, as the 422 Status ``message`` does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "OMIT",
    "FieldError",
    "FieldErrors",
    "Path",
    "Reason",
    "duplicate",
    "forbidden",
    "format_value",
    "invalid",
    "not_supported",
    "required",
    "too_long",
    "too_many",
]


class Reason(StrEnum):
    """The ``reason`` of a Status cause (``metav1.CauseType``)."""

    NOT_FOUND = "FieldValueNotFound"
    REQUIRED = "FieldValueRequired"
    DUPLICATE = "FieldValueDuplicate"
    INVALID = "FieldValueInvalid"
    NOT_SUPPORTED = "FieldValueNotSupported"
    FORBIDDEN = "FieldValueForbidden"
    TOO_LONG = "FieldValueTooLong"
    TOO_MANY = "FieldValueTooMany"
    INTERNAL = "InternalError"
    TYPE_INVALID = "FieldValueTypeInvalid"


_LABEL: Final[dict[Reason, str]] = {
    Reason.NOT_FOUND: "Not found",
    Reason.REQUIRED: "Required value",
    Reason.DUPLICATE: "Duplicate value",
    Reason.INVALID: "Invalid value",
    Reason.NOT_SUPPORTED: "Unsupported value",
    Reason.FORBIDDEN: "Forbidden",
    Reason.TOO_LONG: "Too long",
    Reason.TOO_MANY: "Too many",
    Reason.INTERNAL: "Internal error",
    Reason.TYPE_INVALID: "Invalid value",
}

# Reasons whose message never shows the offending value.
_VALUELESS: Final = frozenset({Reason.REQUIRED, Reason.FORBIDDEN, Reason.TOO_LONG, Reason.INTERNAL})


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


OMIT: Final = _Omit()
"""A bad value that the message should not show."""


def format_value(value: object) -> str:
    """Render a bad value the way Go's field errors print it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return json.dumps(list(value), ensure_ascii=False, separators=(",", ":"))
    return repr(value)


@dataclass(frozen=True, slots=True)
class Path:
    """A JSON field path: ``Path.root("spec").child("ports").index(1).child("nodePort")``."""

    text: str

    @classmethod
    def root(cls, name: str) -> Path:
        return cls(name)

    def child(self, name: str, *more: str) -> Path:
        text = self.text
        for part in (name, *more):
            text = f"{text}.{part}" if text else part
        return Path(text)

    def index(self, i: int) -> Path:
        return Path(f"{self.text}[{i}]")

    def key(self, k: str) -> Path:
        return Path(f"{self.text}[{k}]")

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field: path, reason, the bad value and a human detail."""

    field: str
    reason: Reason
    bad_value: object = OMIT
    detail: str = ""

    @property
    def message(self) -> str:
        """The cause message, without the field (as in a Status cause)."""
        label = _LABEL[self.reason]
        if self.reason in _VALUELESS or self.bad_value is OMIT:
            body = label
        else:
            body = f"{label}: {format_value(self.bad_value)}"
        return f"{body}: {self.detail}" if self.detail else body

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def as_cause(self) -> dict[str, str]:
        """The Status cause kube-apiserver puts in ``details.causes``."""
        return {"reason": self.reason.value, "message": self.message, "field": self.field}


class FieldErrors(Sequence[FieldError]):
    """An ordered list of field errors; empty means valid."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[FieldError] = ()) -> None:
        self._items: list[FieldError] = list(items)

    def add(self, error: FieldError) -> None:
        self._items.append(error)

    def extend(self, errors: Iterable[FieldError]) -> None:
        self._items.extend(errors)

    def __getitem__(self, i: int) -> FieldError:  # type: ignore[override]
        return self._items[i]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[FieldError]:
        return iter(self._items)

    def __repr__(self) -> str:
        return f"FieldErrors({self._items!r})"

    def summary(self) -> str:
        """All errors on one line, as the Status message lists them (identical ones once,
        as Go's ``ToAggregate`` does; the causes keep every one)."""
        texts = list(dict.fromkeys(str(e) for e in self._items))
        if len(texts) == 1:
            return texts[0]
        return "[" + ", ".join(texts) + "]"


def _path(p: Path | str) -> str:
    return p.text if isinstance(p, Path) else p


def required(path: Path | str, detail: str = "") -> FieldError:
    return FieldError(_path(path), Reason.REQUIRED, OMIT, detail)


def invalid(path: Path | str, value: object, detail: str = "") -> FieldError:
    return FieldError(_path(path), Reason.INVALID, value, detail)


def duplicate(path: Path | str, value: object) -> FieldError:
    return FieldError(_path(path), Reason.DUPLICATE, value)


def forbidden(path: Path | str, detail: str = "") -> FieldError:
    return FieldError(_path(path), Reason.FORBIDDEN, OMIT, detail)


def not_supported(path: Path | str, value: object, supported: Iterable[str]) -> FieldError:
    detail = "supported values: " + ", ".join(json.dumps(s) for s in supported)
    return FieldError(_path(path), Reason.NOT_SUPPORTED, value, detail)


def too_long(path: Path | str, limit: int) -> FieldError:
    return FieldError(_path(path), Reason.TOO_LONG, OMIT, f"must have at most {limit} bytes")


def too_many(path: Path | str, actual: int, limit: int) -> FieldError:
    return FieldError(_path(path), Reason.TOO_MANY, actual, f"must have at most {limit} items")
