"""List + watch into a local cache, with handlers and indexes (client-go's shared informer).

:meth:`Informer.run` lists, then watches from the list's resourceVersion with bookmarks:

- a watch that ends normally (its ``timeoutSeconds``) is resumed from the last
  resourceVersion seen (an event's or a bookmark's): the server sends exactly the changes
  after it, so nothing is missed and nothing is sent twice;
- a transport or server error backs off (doubling, capped) and resumes the same way;
- 410 Gone (the history was compacted) re-lists and delivers the difference from the
  cache as add / update / delete calls: an object deleted during the gap gets
  ``on_delete`` with its last known state;
- as a second guard, an ADDED/MODIFIED whose resourceVersion is not newer than the cached
  object's, or a DELETED of an object not in the cache, is dropped (resourceVersions are
  compared as integers, which both kube-apiserver and the embedded server use).

Handlers are synchronous and called in event order from the one task of :meth:`run`;
one that raises is logged, never stops the informer. Objects in the cache and passed
to handlers are shared: do not mutate them.

Every object goes through a ``transform`` before it is cached (client-go's
``SetTransform``); the default, :func:`compact`, interns keys and short strings so that
10,000 cached Services share one copy of ``"metadata"``, ``"TCP"`` and the like (less
than half the memory of plain decoded JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from lbctl.kube import errors
from lbctl.kube.client import JSONDict, Resource
from lbctl.runtime.clock import Clock, RealClock

__all__ = ["IndexFunc", "Informer", "ListWatcher", "all_synced", "compact", "object_key"]

log = logging.getLogger("lbctl.kube.informer")

OnAdd = Callable[[JSONDict], None]
OnUpdate = Callable[[JSONDict, JSONDict], None]
OnDelete = Callable[[JSONDict], None]
IndexFunc = Callable[[JSONDict], Iterable[str]]
Items = list[JSONDict]
Keys = list[str]
Transform = Callable[[JSONDict], JSONDict]
_SHORT = 64


def _compact(value: Any) -> Any:
    if isinstance(value, dict):
        return {sys.intern(k): _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    if isinstance(value, str) and len(value) <= _SHORT:
        return sys.intern(value)
    return value


def compact(obj: JSONDict) -> JSONDict:
    """``obj`` with every key and every string of up to 64 characters interned."""
    out: JSONDict = _compact(obj)
    return out


class ListWatcher(Protocol):
    """What an informer needs of a client (:class:`~lbctl.kube.client.KubeClient` is one)."""

    async def list(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
    ) -> tuple[Items, str]: ...

    def watch(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
    ) -> AsyncGenerator[tuple[str, JSONDict], None]: ...


def object_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name``, or ``name`` for a cluster-scoped object."""
    meta = obj.get("metadata") or {}
    ns, name = meta.get("namespace") or "", meta.get("name") or ""
    return f"{ns}/{name}" if ns else str(name)


def _rv(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _newer(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    a, b = _rv(new), _rv(old)
    try:
        return int(a) > int(b)
    except ValueError:
        return a != b


@dataclass(frozen=True, slots=True)
class _Handler:
    on_add: OnAdd | None
    on_update: OnUpdate | None
    on_delete: OnDelete | None


class Informer:
    def __init__(
        self,
        client: ListWatcher,
        res: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resync_seconds: float | None = None,
        clock: Clock | None = None,
        watch_timeout_seconds: int = 300,
        page_size: int = 500,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        transform: Transform | None = compact,
    ) -> None:
        """``resync_seconds``: every so often, ``on_update(obj, obj)`` for every cached object
        (None: never). ``watch_timeout_seconds``: each watch asks for a random timeout in
        [t, 2t) so that many informers do not reconnect together (client-go: 5 min).
        ``page_size``: the list's ``limit``. ``backoff_*``: seconds between attempts after
        an error, doubling up to the cap (client-go's reflector: 0.8 s to 30 s).
        ``transform``: applied to every object before it is cached (None: as decoded)."""
        self._client = client
        self._res = res
        self._namespace = namespace
        self._label_selector = label_selector
        self._field_selector = field_selector
        self._resync_seconds = resync_seconds
        self._clock: Clock = clock or RealClock()
        self._watch_timeout = max(1, watch_timeout_seconds)
        self._page_size = page_size
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._transform = transform
        self._cache: dict[str, JSONDict] = {}
        self._handlers: list[_Handler] = []
        self._index_fns: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self._indexed: dict[str, dict[str, tuple[str, ...]]] = {}
        self._received = 0
        self.has_synced = asyncio.Event()
        """Set once the first list is in the cache and its handlers have run."""
        self.resource_version = ""
        """The last resourceVersion seen (list, event or bookmark): where a watch resumes."""

    @property
    def resource(self) -> Resource:
        return self._res

    # -- handlers and reads ------------------------------------------------------------
    def add_handler(
        self,
        on_add: OnAdd | None = None,
        on_update: OnUpdate | None = None,
        on_delete: OnDelete | None = None,
    ) -> None:
        """Register callbacks; one added after the sync gets ``on_add`` for what is cached."""
        handler = _Handler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if handler.on_add is not None:
            for obj in list(self._cache.values()):
                self._safely(handler.on_add, obj)

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """Index the cache by ``fn(obj)`` (the values an object is found under)."""
        self._index_fns[name] = fn
        self._indices[name] = {}
        self._indexed[name] = {}
        for key, obj in self._cache.items():
            self._index_one(name, key, obj)

    def by_index(self, name: str, value: str) -> Items:
        keys = self._indices[name].get(value, set())
        return [self._cache[k] for k in sorted(keys)]

    def get(self, key: str) -> JSONDict | None:
        return self._cache.get(key)

    def list(self) -> Items:
        return [self._cache[k] for k in sorted(self._cache)]

    def keys(self) -> Keys:
        return sorted(self._cache)

    # -- cache -------------------------------------------------------------------------
    def _index_one(self, name: str, key: str, obj: JSONDict | None) -> None:
        index, indexed = self._indices[name], self._indexed[name]
        for value in indexed.pop(key, ()):
            keys = index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[value]
        if obj is None:
            return
        try:
            values = tuple(self._index_fns[name](obj))
        except Exception:
            log.exception("index %s failed on %s", name, key)
            return
        indexed[key] = values
        for value in values:
            index.setdefault(value, set()).add(key)

    def _store(self, key: str, obj: JSONDict | None) -> None:
        if obj is None:
            self._cache.pop(key, None)
        else:
            self._cache[key] = obj
        for name in self._index_fns:
            self._index_one(name, key, obj)

    def _safely(self, fn: Callable[..., None], *args: JSONDict) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s handler for %s failed", self._res.kind, object_key(args[-1]))

    def _added(self, key: str, obj: JSONDict) -> None:
        self._store(key, obj)
        for h in self._handlers:
            if h.on_add is not None:
                self._safely(h.on_add, obj)

    def _updated(self, key: str, old: JSONDict, new: JSONDict) -> None:
        self._store(key, new)
        for h in self._handlers:
            if h.on_update is not None:
                self._safely(h.on_update, old, new)

    def _deleted(self, key: str, last: JSONDict) -> None:
        self._store(key, None)
        for h in self._handlers:
            if h.on_delete is not None:
                self._safely(h.on_delete, last)

    def _apply(self, typ: str, obj: JSONDict) -> None:
        if self._transform is not None and typ != "DELETED":
            obj = self._transform(obj)
        key = object_key(obj)
        old = self._cache.get(key)
        if typ in ("ADDED", "MODIFIED"):
            if old is None:
                self._added(key, obj)
            elif _newer(obj, old):
                self._updated(key, old, obj)
        elif typ == "DELETED":
            if old is not None:
                self._deleted(key, obj)
        else:
            log.warning("unknown watch event type %r for %s", typ, self._res.plural)

    def _replace(self, items: Items) -> None:
        """A fresh list: deliver what differs from the cache."""
        if self._transform is not None:
            items = [self._transform(o) for o in items]
        fresh = {object_key(o): o for o in items}
        for key, old in list(self._cache.items()):
            if key not in fresh:
                self._deleted(key, old)
        for key, obj in fresh.items():
            cached = self._cache.get(key)
            if cached is None:
                self._added(key, obj)
            elif _rv(obj) != _rv(cached):
                self._updated(key, cached, obj)

    # -- list and watch ----------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """List and watch until ``stop`` is set; errors are retried, never raised."""
        tasks = [asyncio.create_task(self._list_and_watch())]
        if self._resync_seconds:
            tasks.append(asyncio.create_task(self._resync(self._resync_seconds)))
        stopped = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stopped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (*tasks, stopped):
                t.cancel()
            await asyncio.gather(*tasks, stopped, return_exceptions=True)
        for t in tasks:
            if t in done:
                t.result()  # only a bug gets here: re-raise it

    async def _relist(self) -> None:
        items, rv = await self._client.list(
            self._res,
            self._namespace,
            label_selector=self._label_selector,
            field_selector=self._field_selector,
            limit=self._page_size,
        )
        self._replace(items)
        self.resource_version = rv
        self.has_synced.set()

    async def _watch(self) -> None:
        """One watch from :attr:`resource_version` until the server ends it."""
        stream = self._client.watch(
            self._res,
            self._namespace,
            resource_version=self.resource_version,
            label_selector=self._label_selector,
            field_selector=self._field_selector,
            timeout_seconds=int(random.uniform(self._watch_timeout, 2 * self._watch_timeout)),
            allow_bookmarks=True,
        )
        async with contextlib.aclosing(stream):
            async for typ, obj in stream:
                self._received += 1
                if typ != "BOOKMARK":
                    self._apply(typ, obj)
                rv = _rv(obj)
                if rv:
                    self.resource_version = rv

    async def _list_and_watch(self) -> None:
        relist = True
        delay = self._backoff_initial
        while True:
            received = self._received
            try:
                if relist:
                    await self._relist()
                    relist = False
                await self._watch()
                delay = self._backoff_initial
            except errors.Gone as e:
                log.info("%s: %s; listing again", self._res.plural, e.message)
                relist = True
            except errors.KubeError as e:
                if self._received != received:  # the watch had worked: a fresh failure
                    delay = self._backoff_initial
                wait = delay
                if isinstance(e, errors.TooManyRequests) and e.retry_after:
                    wait = max(wait, e.retry_after)
                log.warning(
                    "%s %s failed (%s); retrying in %.1fs",
                    self._res.plural,
                    "list" if relist else "watch",
                    e,
                    wait,
                )
                await self._clock.sleep(wait)
                delay = min(delay * 2, self._backoff_max)

    async def _resync(self, every: float) -> None:
        await self.has_synced.wait()
        while True:
            await self._clock.sleep(every)
            for obj in list(self._cache.values()):
                for h in self._handlers:
                    if h.on_update is not None:
                        self._safely(h.on_update, obj, obj)


async def all_synced(*informers: Informer) -> None:
    """Return once every one of ``informers`` has synced (its first list is cached)."""
    for inf in informers:
        await inf.has_synced.wait()
