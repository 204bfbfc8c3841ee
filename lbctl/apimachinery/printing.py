"""Shared pieces of server-side printing: columns, ages, and JSON reading helpers.

:class:`Column` is a ``meta.k8s.io/v1`` ``TableColumnDefinition``; :class:`Printer`
pairs a kind's columns with the function computing one row's cells.
:func:`human_duration` is Go's ``duration.HumanDuration`` and :func:`since` is
upstream's ``translateTimestampSince`` (``<unknown>`` for an unset timestamp).
The helpers read JSON objects the way typed Go code sees them: a missing or
mistyped field is the zero value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

__all__ = [
    "AGE",
    "AGE_DOC",
    "JSON",
    "NAME",
    "NAME_DOC",
    "Column",
    "Printer",
    "age",
    "column",
    "format_labels",
    "get",
    "human_duration",
    "items",
    "list_with_more",
    "name",
    "parse_time",
    "since",
    "string",
    "strings",
]

JSON = Mapping[str, Any]

NAME_DOC: Final = (
    "Name must be unique within a namespace. Is required when creating resources, although"
    " some resources may allow a client to request the generation of an appropriate name"
    " automatically. Name is primarily intended for creation idempotence and configuration"
    " definition. Cannot be updated. More info:"
    " https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
AGE_DOC: Final = (
    "CreationTimestamp is a timestamp representing the server time when this object was"
    " created. It is not guaranteed to be set in happens-before order across separate"
    " operations. Clients may not set this value. It is represented in RFC3339 form and is"
    " in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info:"
    " https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)


@dataclass(frozen=True, slots=True)
class Column:
    """A ``meta.k8s.io/v1`` ``TableColumnDefinition``."""

    name: str
    type: str = "string"
    format: str = ""
    description: str = ""
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


Cells = Callable[[JSON, datetime], list[Any]]


@dataclass(frozen=True, slots=True)
class Printer:
    columns: tuple[Column, ...]
    cells: Cells


# -- durations and timestamps ----------------------------------------------------------

_SECOND: Final = 1_000_000_000
_MINUTE: Final = 60 * _SECOND
_HOUR: Final = 60 * _MINUTE


def human_duration(seconds: float) -> str:
    """Go's ``duration.HumanDuration``: ~2-3 significant figures (``5s``, ``2m30s``,
    ``179m``, ``3h30m``, ``47h``, ``2d3h``, ``729d``, ``3y45d``, ``8y``).

    Up to two seconds in the future count as now (``0s``); further is ``<invalid>``.
    """
    d = round(seconds * 1_000_000) * 1000  # nanoseconds, free of float noise
    whole = abs(d) // _SECOND * (1 if d >= 0 else -1)  # Go truncates toward zero
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = d // _MINUTE
    if minutes < 10:
        s = d // _SECOND % 60
        return f"{minutes}m{s}s" if s else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = d // _HOUR
    if hours < 8:
        m = minutes % 60
        return f"{hours}h{m}m" if m else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        h = hours % 24
        return f"{days}d{h}h" if h else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years, dy = days // 365, days % 365
    if hours < 24 * 365 * 8:
        return f"{years}y{dy}d" if dy else f"{years}y"
    return f"{years}y"


_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})"
)


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 timestamp (any fraction digits) as an aware datetime, else None."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micros = int((m.group(7) or "0")[:6].ljust(6, "0"))
    zone = m.group(8)
    try:
        t = datetime(year, month, day, hour, minute, second, micros, tzinfo=UTC)
    except ValueError:
        return None
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        t -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return t


def since(timestamp: Any, now: datetime) -> str:
    """``translateTimestampSince``: the age of a timestamp, ``<unknown>`` when unset."""
    t = parse_time(timestamp) if isinstance(timestamp, str) else None
    if t is None:
        return "<unknown>"
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return human_duration((now - t).total_seconds())


# -- reading JSON as typed Go code would -----------------------------------------------


def get(obj: Any, *path: str) -> Any:
    """The value at ``path`` inside nested mappings, or None."""
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def string(value: Any) -> str:
    """A string field, ``""`` when missing or not a string."""
    return value if isinstance(value, str) else ""


def items(value: Any) -> list[Any]:
    """A list field, ``[]`` when missing or not a list."""
    return value if isinstance(value, list) else []


def strings(value: Any) -> list[str]:
    """The strings of a list field."""
    return [v for v in items(value) if isinstance(v, str)]


def name(obj: JSON) -> str:
    return string(get(obj, "metadata", "name"))


def age(obj: JSON, now: datetime) -> str:
    """The Age cell: the object's ``creationTimestamp`` as a human duration."""
    return since(get(obj, "metadata", "creationTimestamp"), now)


def format_labels(labels: Any) -> str:
    """``labels.FormatLabels``: sorted ``k=v`` pairs, or ``<none>``."""
    if not isinstance(labels, Mapping) or not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def list_with_more(shown: Sequence[str], limit: int = 3) -> str:
    """``listWithMoreString``: the first three, ``+ N more...``, or ``<unset>``."""
    text = ",".join(shown[:limit])
    if len(shown) > limit:
        return f"{text} + {len(shown) - limit} more..."
    return text or "<unset>"


def column(title: str, description: str, *, priority: int = 0, fmt: str = "") -> Column:
    """A string column, as nearly all built-in columns are."""
    return Column(title, "string", fmt, description, priority)


NAME: Final = column("Name", NAME_DOC, fmt="name")
AGE: Final = column("Age", AGE_DOC)
