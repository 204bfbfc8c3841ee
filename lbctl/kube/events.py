"""Recording core/v1 Events about objects, repeats aggregated (client-go's EventCorrelator).

The first ``(object, type, reason, message)`` creates an Event named
``<object name>.<hex nanoseconds>`` in the object's namespace ("default" for a
cluster-scoped object), ``count: 1``. The same again within ``window_seconds`` of the
previous one patches that Event's ``count`` and ``lastTimestamp`` instead; if it has gone
meanwhile (Events expire on the server), a new one is created. At most ``cache_size``
such series are remembered (least recently used dropped).

Failing to record an Event is logged and swallowed: an Event must never break a reconcile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from lbctl.kube import errors
from lbctl.kube.client import EVENTS, JSONDict, KubeClient

__all__ = ["EventRecorder", "EventType"]

log = logging.getLogger("lbctl.kube.events")

EventType = Literal["Normal", "Warning"]
_Key = tuple[str, str, str, str, str, str, str, str]


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class _Series:
    """One Event on the server standing for a run of identical ones."""

    name: str
    namespace: str
    count: int
    last_seen: float


class EventRecorder:
    def __init__(
        self,
        client: KubeClient,
        *,
        component: str,
        host: str = "",
        window_seconds: float = 600.0,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``component``: ``source.component`` / ``reportingComponent`` (e.g. the controller's
        name); ``host``: ``source.host`` / ``reportingInstance`` (e.g. the pod or node name).
        ``window_seconds``: how long after the last occurrence a repeat still counts as
        the same Event (client-go aggregates over 10 minutes). ``cache_size``: series kept
        (client-go's LRU holds 4096). ``clock``: wall-clock epoch seconds."""
        self._client = client
        self._component = component
        self._host = host
        self._window = window_seconds
        self._cache_size = cache_size
        self._clock = clock
        self._series: OrderedDict[_Key, _Series] = OrderedDict()
        # One lock per series: repeats of one Event are counted in order, while Events
        # about different objects (or reasons) are written concurrently.
        self._locks: dict[_Key, tuple[asyncio.Lock, int]] = {}
        self._last_ns = 0

    async def emit(
        self, involved: Mapping[str, Any], type_: EventType, reason: str, message: str
    ) -> JSONDict | None:
        """Record an Event about ``involved`` (the object itself); return the stored Event,
        or None when it could not be recorded (logged, never raised)."""
        try:
            ref = self._involved_ref(involved)
            key: _Key = (
                ref["apiVersion"],
                ref["kind"],
                ref.get("namespace") or "default",
                ref["name"],
                ref["uid"],
                type_,
                reason,
                message,
            )
            lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
            self._locks[key] = (lock, users + 1)
            try:
                async with lock:
                    return await self._emit(ref, key, type_, reason, message)
            finally:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)
        except Exception as e:
            meta = involved.get("metadata") or {}
            log.warning(
                "could not record %s event %s on %s %s/%s: %s",
                type_,
                reason,
                involved.get("kind", "object"),
                meta.get("namespace", ""),
                meta.get("name", ""),
                e,
            )
            return None

    def _unique_suffix(self) -> str:
        """client-go's ``%x`` of UnixNano, made strictly increasing within this recorder."""
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        return f"{self._last_ns:x}"

    def _involved_ref(self, involved: Mapping[str, Any]) -> JSONDict:
        meta = involved.get("metadata") or {}
        ref: JSONDict = {
            "kind": str(involved.get("kind") or ""),
            "name": str(meta.get("name") or ""),
            "uid": str(meta.get("uid") or ""),
            "apiVersion": str(involved.get("apiVersion") or ""),
            "resourceVersion": str(meta.get("resourceVersion") or ""),
        }
        if meta.get("namespace"):
            ref["namespace"] = str(meta["namespace"])
        if not ref["name"]:
            raise ValueError("the involved object has no metadata.name")
        return ref

    async def _emit(
        self, ref: JSONDict, key: _Key, type_: EventType, reason: str, message: str
    ) -> JSONDict:
        namespace = key[2]
        now = self._clock()
        stamp = _rfc3339(now)
        series = self._series.get(key)
        if series is not None and now - series.last_seen <= self._window:
            try:
                event = await self._client.patch(
                    EVENTS,
                    series.name,
                    {"count": series.count + 1, "lastTimestamp": stamp},
                    series.namespace,
                    kind="merge",
                )
            except errors.NotFound:
                pass  # expired on the server: start a new series
            else:
                series.count += 1
                series.last_seen = now
                self._series.move_to_end(key)
                return event
        body: JSONDict = {
            "metadata": {"name": f"{ref['name']}.{self._unique_suffix()}", "namespace": namespace},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {
                "component": self._component,
                **({"host": self._host} if self._host else {}),
            },
            "reportingComponent": self._component,
            "reportingInstance": self._host or self._component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        event = await self._client.create(EVENTS, body, namespace)
        self._series[key] = _Series(event["metadata"]["name"], namespace, 1, now)
        self._series.move_to_end(key)
        while len(self._series) > self._cache_size:
            self._series.popitem(last=False)
        return event
