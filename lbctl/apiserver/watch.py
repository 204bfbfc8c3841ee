"""Watch streams: one JSON event per line, flushed per event, as kube-apiserver sends them.

``resourceVersion`` unset or "0": synthetic ADDED events for what exists, then changes.
``resourceVersion=N``: the changes after N from the store's history, then live ones;
N older than the compacted history: one ERROR event (410 Expired) and the end.
With selectors, an object that starts matching is ADDED and one that stops is DELETED.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError

from lbctl.apimachinery.resources import ResourceType
from lbctl.apiserver import errors
from lbctl.apiserver.handlers import Selection
from lbctl.apiserver.routing import parse_bool, parse_int
from lbctl.apiserver.store import Change, Store

__all__ = ["WatchFilter", "serve_watch"]

JSON = dict[str, Any]
POLL_SECONDS = 1.0
"""How often an idle watch checks that its client is still there and the server is not
stopping."""
MAX_BACKLOG = 50_000
"""Events a watcher may fall behind by before it is closed (it then resumes by RV)."""


@dataclass(frozen=True, slots=True)
class WatchFilter:
    key: tuple[str, str]
    namespace: str | None
    selection: Selection

    def translate(self, ch: Change) -> tuple[str, JSON] | None:
        if (ch.group, ch.resource) != self.key:
            return None
        if self.namespace is not None and ch.namespace != self.namespace:
            return None
        now = self.selection.matches(ch.obj)
        if ch.type != "MODIFIED":
            return (ch.type, ch.obj) if now else None
        before = self.selection.matches(ch.prev) if ch.prev is not None else now
        if now and before:
            return ("MODIFIED", ch.obj)
        if now:
            return ("ADDED", ch.obj)
        if before:
            return ("DELETED", ch.obj)
        return None


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _line(event_type: str, obj: JSON) -> bytes:
    return (json.dumps({"type": event_type, "object": obj}, separators=(",", ":")) + "\n").encode()


async def serve_watch(
    request: web.Request,
    *,
    store: Store,
    rt: ResourceType,
    namespace: str | None,
    query: Mapping[str, str],
    render: Callable[[str, JSON, bool], JSON],
    bookmark_seconds: float = 10.0,
    closing: asyncio.Event | None = None,
) -> web.StreamResponse:
    """Stream events until ``timeoutSeconds``, a server stop, or the client going away.

    ``render(type, obj, first)`` turns an object into what the client asked for (the
    object itself, or a one-row Table).
    """
    filt = WatchFilter((rt.group, rt.plural), namespace, Selection.parse(rt, query))
    timeout = parse_int(query, "timeoutSeconds")
    deadline_s = float(timeout) if timeout else random.uniform(1800, 3600)
    bookmarks = parse_bool(query, "allowWatchBookmarks")
    raw_rv = query.get("resourceVersion", "")
    start_rv: int | None = None
    if raw_rv not in ("", "0"):
        try:
            start_rv = int(raw_rv)
        except ValueError:
            raise errors.bad_request(f"invalid resource version: {raw_rv!r}") from None

    queue: asyncio.Queue[Change | None] = asyncio.Queue()

    def listener(changes: Sequence[Change]) -> None:
        if queue.qsize() > MAX_BACKLOG:
            queue.put_nowait(None)
            return
        for ch in changes:
            queue.put_nowait(ch)

    # Subscribe and take the initial state in one synchronous step: nothing is missed
    # and nothing is sent twice.
    cancel = store.subscribe(listener)
    try:
        initial: list[tuple[str, JSON]] = []
        expired = False
        if start_rv is None:
            initial = [
                ("ADDED", o) for o in store.items(filt.key, namespace) if filt.selection.matches(o)
            ]
        elif start_rv < store.compacted_rv:
            expired = True
        else:
            for past in store.changes_since(start_rv):
                ev = filt.translate(past)
                if ev is not None:
                    initial.append(ev)
        resp = web.StreamResponse(status=200)
        resp.content_type = "application/json"
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if expired:
            err = errors.expired(
                f"too old resource version: {start_rv} ({store.compacted_rv})"
            ).body()
            await resp.write(_line("ERROR", err))
            await resp.write_eof()
            return resp
        first = True
        for typ, obj in initial:
            await resp.write(_line(typ, render(typ, obj, first)))
            first = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        next_mark = loop.time() + bookmark_seconds
        while not (closing is not None and closing.is_set()):
            now = loop.time()
            if now >= deadline or _gone(request):
                break
            wait = max(0.0, min(deadline, next_mark, now + POLL_SECONDS) - now)
            try:
                ch: Change | None = await asyncio.wait_for(queue.get(), timeout=wait)
            except TimeoutError:
                if bookmarks and loop.time() >= next_mark:
                    mark = {
                        "kind": rt.kind,
                        "apiVersion": rt.api_version,
                        "metadata": {"resourceVersion": str(store.rv)},
                    }
                    await resp.write(_line("BOOKMARK", mark))
                if loop.time() >= next_mark:
                    next_mark = loop.time() + bookmark_seconds
                continue
            if ch is None:
                break  # too far behind: the client resumes from its last RV
            ev = filt.translate(ch)
            if ev is not None:
                await resp.write(_line(ev[0], render(ev[0], ev[1], first)))
                first = False
        await resp.write_eof()
        return resp
    except (ConnectionResetError, ClientConnectionResetError):
        # The client went away: nothing to answer, nothing to log.
        return resp
    finally:
        cancel()
