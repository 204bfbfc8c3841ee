"""Server-side printing of Events, core/v1 and events.k8s.io/v1 alike.

Both APIs are served from one storage upstream, so they print the same columns
(``printEvent`` in ``pkg/printers/internalversion/printers.go``): Last Seen, Type,
Reason, Object, Message, and in wide output Subobject, Source, First Seen, Count and
Name.  An events.k8s.io object is read through its core/v1 names (``regarding`` is
``involvedObject``, ``note`` is ``message``, ``deprecatedCount`` is ``count``...).

Last Seen is the series' last observation, else ``lastTimestamp``, else First Seen,
which is ``firstTimestamp`` or else ``eventTime``; Count is the series count, else
``count``, with 0 shown as 1 (singletons of the new API carry no count).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from lbctl.apimachinery.printing import JSON, NAME, Printer, column, get, since, string

__all__ = ["CORE_EVENT", "EVENTS_V1_EVENT", "event_source"]

_COLUMNS: Final = (
    column("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
    column("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
    column(
        "Reason",
        "This should be a short, machine understandable string that gives the reason for the"
        " transition into the object's current status.",
    ),
    column("Object", "The object that this event is about."),
    column(
        "Subobject",
        "If referring to a piece of an object instead of an entire object, this string should"
        " contain a valid JSON/Go field access statement, such as"
        " desiredState.manifest.containers[2]. For example, if the object reference is to a"
        ' container within a pod, this would take on a value like: "spec.containers{name}"'
        ' (where "name" refers to the name of the container that triggered the event) or if no'
        ' container name is specified "spec.containers[2]" (container with index 2 in this'
        " pod). This syntax is chosen only to have some well-defined way of referencing a part"
        " of an object.",
        priority=1,
    ),
    column(
        "Source",
        "The component reporting this event. Should be a short machine understandable string.",
        priority=1,
    ),
    column("Message", "A human-readable description of the status of this operation."),
    column(
        "First Seen",
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
        priority=1,
    ),
    column("Count", "The number of times this event has occurred.", priority=1),
    column("Name", NAME.description, priority=1, fmt="name"),
)

# events.k8s.io/v1 field -> core/v1 field
_V1_TO_CORE: Final = {
    "regarding": "involvedObject",
    "note": "message",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
    "reportingController": "reportingComponent",
}


def _as_core(event: JSON) -> dict[str, Any]:
    return {_V1_TO_CORE.get(k, k): v for k, v in event.items()}


def _first_non_empty(*values: Any) -> str:
    for value in values:
        if isinstance(value, str) and value:
            return value
    return ""


def event_source(event: JSON) -> str:
    """``formatEventSource`` of a core/v1 Event: ``component[, host]``, each falling
    back to the reporting controller / instance."""
    component = _first_non_empty(get(event, "source", "component"), event.get("reportingComponent"))
    instance = _first_non_empty(get(event, "source", "host"), event.get("reportingInstance"))
    return f"{component}, {instance}" if instance else component


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _core_cells(event: JSON, now: datetime) -> list[Any]:
    first = get(event, "firstTimestamp")
    first_seen = since(first if first else event.get("eventTime"), now)
    last = get(event, "lastTimestamp")
    last_seen = since(last, now) if last else first_seen
    count = _count(event.get("count"))
    series = event.get("series")
    if isinstance(series, Mapping):
        last_seen = since(series.get("lastObservedTime"), now)
        count = _count(series.get("count"))
    elif count == 0:
        count = 1
    involved = get(event, "involvedObject") or {}
    kind, target = string(get(involved, "kind")).lower(), string(get(involved, "name"))
    return [
        last_seen,
        string(event.get("type")),
        string(event.get("reason")),
        f"{kind}/{target}" if target else kind,
        string(get(involved, "fieldPath")),
        event_source(event),
        string(event.get("message")).strip(),
        first_seen,
        count,
        string(get(event, "metadata", "name")),
    ]


CORE_EVENT: Final = Printer(_COLUMNS, _core_cells)
EVENTS_V1_EVENT: Final = Printer(_COLUMNS, lambda ev, now: _core_cells(_as_core(ev), now))
