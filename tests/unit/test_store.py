"""The SQLite store: resourceVersions, change history, compaction, reopen, atomicity."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lbctl.apiserver.store import Delete, Put, Store


def cm(name: str, ns: str = "default", **data: str) -> dict[str, object]:
    return {"kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_change_gets_the_next_resource_version(tmp_path: Path) -> None:
    s = Store(tmp_path / "db")
    s.open()
    ch = s.write([Put("", "configmaps", cm("a"), True), Put("", "configmaps", cm("b"), True)])
    assert [c.rv for c in ch] == [1, 2]
    assert s.get(("", "configmaps"), "default", "a")["metadata"]["resourceVersion"] == "1"  # type: ignore[index]
    ch = s.write([Put("", "configmaps", cm("a", x="1"), False)])
    assert (ch[0].type, ch[0].rv, ch[0].prev["metadata"]["resourceVersion"]) == ("MODIFIED", 3, "1")  # type: ignore[index]
    ch = s.write([Delete("", "configmaps", "default", "b")])
    assert (ch[0].type, ch[0].obj["metadata"]["resourceVersion"]) == ("DELETED", "4")
    assert [c.rv for c in s.changes_since(1)] == [2, 3, 4]
    assert [o["metadata"]["name"] for o in s.items(("", "configmaps"))] == ["a"]
    assert s.write([Delete("", "configmaps", "default", "nope")]) == []
    assert s.rv == 4


def test_reopen_keeps_objects_history_and_rv(tmp_path: Path) -> None:
    s = Store(tmp_path / "db")
    s.open()
    s.write([Put("", "configmaps", cm("a"), True)])
    s.write([Put("", "configmaps", cm("b", "other"), True)])
    s.close()
    t = Store(tmp_path / "db")
    t.open()
    assert t.rv == 2
    assert t.get(("", "configmaps"), "other", "b") is not None
    assert [c.rv for c in t.changes_since(0)] == [1, 2]
    assert t.write([Put("", "configmaps", cm("c"), True)])[0].rv == 3


def test_compaction_forgets_old_history(tmp_path: Path) -> None:
    clock = Clock()
    s = Store(tmp_path / "db", history_seconds=60, clock=clock)
    s.open()
    s.write([Put("", "configmaps", cm("a"), True)])
    clock.now += 61
    s.write([Put("", "configmaps", cm("b"), True)])
    assert s.compact() == 1
    assert s.compacted_rv == 1
    assert [c.rv for c in s.changes_since(1)] == [2]
    s.close()
    t = Store(tmp_path / "db", clock=clock)
    t.open()
    assert t.compacted_rv == 1 and [c.rv for c in t.changes_since(0)] == [2]


def test_a_failed_write_changes_nothing(tmp_path: Path) -> None:
    s = Store(tmp_path / "db")
    s.open()
    s.write([Put("", "configmaps", cm("a"), True)])
    seen: list[int] = []
    s.subscribe(lambda chs: seen.extend(c.rv for c in chs))
    bad = cm("b")
    bad["data"] = {"x": object()}  # type: ignore[dict-item]  # not JSON: fails mid-transaction
    with pytest.raises(TypeError):
        s.write([Put("", "configmaps", cm("c"), True), Put("", "configmaps", bad, True)])
    assert s.rv == 1 and seen == []
    assert s.get(("", "configmaps"), "default", "c") is None
    rows = sqlite3.connect(tmp_path / "db").execute("SELECT count(*) FROM objects").fetchone()
    assert rows == (1,)


def test_listeners_see_committed_changes(tmp_path: Path) -> None:
    s = Store(tmp_path / "db")
    s.open()
    seen: list[str] = []
    cancel = s.subscribe(lambda chs: seen.extend(c.type for c in chs))
    s.write([Put("", "configmaps", cm("a"), True)])
    cancel()
    s.write([Put("", "configmaps", cm("b"), True)])
    assert seen == ["ADDED"]
