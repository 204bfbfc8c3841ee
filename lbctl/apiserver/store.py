"""Durable object storage for the embedded API server: SQLite (WAL) plus an in-memory index.

Every write is one SQLite transaction that may change several objects (a Service and
the IPAddress objects of its ClusterIPs, say). Each changed object gets the next value
of one global, monotonically increasing resourceVersion, exactly like etcd's revision.
The transaction is committed before the request is answered, so an acknowledged write
survives ``kill -9`` (WAL with ``synchronous=NORMAL``: the commit is in the log file
before ``COMMIT`` returns; only a power cut could lose the tail).

Reads are served from memory: the objects (parsed JSON, never mutated once stored) and
a change log of the last ``history_seconds`` that watches resume from. Older history is
compacted; a watch or continue token from before it gets 410 Expired.

The store knows nothing of HTTP or asyncio: watchers register a callback.
"""

from __future__ import annotations

import bisect
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Change", "Delete", "Put", "Store", "StoreKey"]

JSON = dict[str, Any]
StoreKey = tuple[str, str]
"""``(group, plural)``: which collection."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    grp TEXT NOT NULL, resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    rv INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (grp, resource, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    rv INTEGER PRIMARY KEY, ts REAL NOT NULL, type TEXT NOT NULL,
    grp TEXT NOT NULL, resource TEXT NOT NULL, namespace TEXT NOT NULL, body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Put:
    """Create or replace ``obj`` (its metadata.resourceVersion is set by the store)."""

    group: str
    resource: str
    obj: JSON
    created: bool


@dataclass(frozen=True, slots=True)
class Delete:
    group: str
    resource: str
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Change:
    """One watch event: ``obj`` is the new state (for DELETED: the last state, with the
    deletion's resourceVersion); ``prev`` the state before, when known."""

    rv: int
    type: str
    group: str
    resource: str
    namespace: str
    obj: JSON
    prev: JSON | None
    ts: float


Listener = Callable[[Sequence[Change]], None]


def _ns_name(obj: JSON) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _with_rv(obj: JSON, rv: int) -> JSON:
    meta = dict(obj.get("metadata") or {})
    meta["resourceVersion"] = str(rv)
    out = dict(obj)
    out["metadata"] = meta
    return out


@dataclass(slots=True)
class Store:
    path: Path
    history_seconds: float = 300.0
    clock: Callable[[], float] = time.time
    rv: int = 0
    compacted_rv: int = 0
    """Changes with ``rv <= compacted_rv`` are gone: watching from before it is 410."""
    _db: sqlite3.Connection | None = None
    _objects: dict[StoreKey, dict[tuple[str, str], JSON]] = field(default_factory=dict)
    _changes: list[Change] = field(default_factory=list)
    _change_rvs: list[int] = field(default_factory=list)
    _listeners: list[Listener] = field(default_factory=list)

    # -- lifecycle -------------------------------------------------------------------
    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        self._db = db
        row = db.execute("SELECT value FROM meta WHERE key='rv'").fetchone()
        self.rv = int(row[0]) if row else 0
        row = db.execute("SELECT value FROM meta WHERE key='compacted'").fetchone()
        self.compacted_rv = int(row[0]) if row else 0
        for grp, resource, body in db.execute("SELECT grp, resource, body FROM objects"):
            obj = json.loads(body)
            self._objects.setdefault((grp, resource), {})[_ns_name(obj)] = obj
        for rv, ts, typ, grp, resource, ns, body in db.execute(
            "SELECT rv, ts, type, grp, resource, namespace, body FROM changes ORDER BY rv"
        ):
            self._changes.append(Change(rv, typ, grp, resource, ns, json.loads(body), None, ts))
            self._change_rvs.append(rv)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    # -- reads -----------------------------------------------------------------------
    def get(self, key: StoreKey, namespace: str, name: str) -> JSON | None:
        return self._objects.get(key, {}).get((namespace, name))

    def items(self, key: StoreKey, namespace: str | None = None) -> list[JSON]:
        """Objects of a collection, in (namespace, name) order; None = all namespaces."""
        objs = self._objects.get(key, {})
        keys = sorted(k for k in objs if namespace is None or k[0] == namespace)
        return [objs[k] for k in keys]

    def count(self, key: StoreKey) -> int:
        return len(self._objects.get(key, {}))

    def namespaces_in_use(self, namespace: str) -> Iterable[tuple[StoreKey, JSON]]:
        for key, objs in self._objects.items():
            for (ns, _), obj in objs.items():
                if ns == namespace:
                    yield key, obj

    def changes_since(self, rv: int) -> list[Change]:
        """Changes after ``rv``; the caller checks ``rv >= compacted_rv`` first."""
        i = bisect.bisect_right(self._change_rvs, rv)
        return self._changes[i:]

    # -- writes ----------------------------------------------------------------------
    def write(self, ops: Sequence[Put | Delete]) -> list[Change]:
        """Apply ``ops`` in one transaction; return the changes (with stored objects)."""
        if not ops:
            return []
        db = self.db
        now = self.clock()
        rv = self.rv
        changes: list[Change] = []
        staged: list[tuple[StoreKey, tuple[str, str], JSON | None]] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                rv += 1
                key = (op.group, op.resource)
                if isinstance(op, Put):
                    obj = _with_rv(op.obj, rv)
                    ns, name = _ns_name(obj)
                    prev = self.get(key, ns, name)
                    body = json.dumps(obj, separators=(",", ":"))
                    db.execute(
                        "INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?,?)",
                        (op.group, op.resource, ns, name, rv, body),
                    )
                    typ = "ADDED" if op.created else "MODIFIED"
                    staged.append((key, (ns, name), obj))
                else:
                    ns, name = op.namespace, op.name
                    prev = self.get(key, ns, name)
                    if prev is None:
                        rv -= 1
                        continue
                    obj = _with_rv(prev, rv)
                    body = json.dumps(obj, separators=(",", ":"))
                    db.execute(
                        "DELETE FROM objects WHERE grp=? AND resource=? AND namespace=? AND name=?",
                        (op.group, op.resource, ns, name),
                    )
                    typ = "DELETED"
                    staged.append((key, (ns, name), None))
                db.execute(
                    "INSERT INTO changes VALUES (?,?,?,?,?,?,?)",
                    (rv, now, typ, op.group, op.resource, ns, body),
                )
                changes.append(Change(rv, typ, op.group, op.resource, ns, obj, prev, now))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (rv,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        # Committed: now (and only now) the memory follows.
        self.rv = rv
        for key, nk, stored in staged:
            coll = self._objects.setdefault(key, {})
            if stored is None:
                coll.pop(nk, None)
            else:
                coll[nk] = stored
        for ch in changes:
            self._changes.append(ch)
            self._change_rvs.append(ch.rv)
        for listener in list(self._listeners):
            listener(changes)
        return changes

    def compact(self) -> int:
        """Forget changes older than the history window; return how many went."""
        cutoff = self.clock() - self.history_seconds
        i = 0
        while i < len(self._changes) and self._changes[i].ts < cutoff:
            i += 1
        if i == 0:
            return 0
        last = self._changes[i - 1].rv
        del self._changes[:i]
        del self._change_rvs[:i]
        self.compacted_rv = last
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM changes WHERE rv <= ?", (last,))
        db.execute("INSERT OR REPLACE INTO meta VALUES ('compacted', ?)", (last,))
        db.execute("COMMIT")
        return i

    # -- watchers --------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def cancel() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return cancel
