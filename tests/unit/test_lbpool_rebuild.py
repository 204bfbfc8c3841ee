"""Rebuild after a restart, repair passes, and snapshots of the LoadBalancer pool allocator."""

from __future__ import annotations

import json

import pytest

from lbctl.allocators.findings import Finding, FindingKind
from lbctl.allocators.lbpool import (
    Assignment,
    LBAllocationError,
    LBAllocationReason,
    LBPoolAllocator,
    LBRequest,
    Pool,
    SnapshotError,
)
from lbctl.domain.service import IPFamily

POOLS = [Pool("a", ("192.0.2.0/30",)), Pool("ds", ("198.51.100.0/31", "2001:db8::/127"))]
K = FindingKind


def req(name: str, **kw: object) -> LBRequest:
    return LBRequest(key=f"ns/{name}", **kw)  # type: ignore[arg-type]


def test_restart_never_hands_a_held_ip_to_another() -> None:
    alloc = LBPoolAllocator(POOLS[:1])
    findings = alloc.rebuild([(req("old"), ("192.0.2.0",)), (req("older"), ("192.0.2.2",))])
    assert findings == []
    assert alloc.assign(req("new")).ips == ("192.0.2.1",)
    assert alloc.assign(req("newer")).ips == ("192.0.2.3",)
    with pytest.raises(LBAllocationError) as err:
        alloc.assign(req("newest"))
    assert err.value.reason == LBAllocationReason.POOL_EXHAUSTED
    assert alloc.assign(req("old")).ips == ("192.0.2.0",)  # the holder keeps it


def test_rebuild_reports_duplicates_first_holder_wins() -> None:
    alloc = LBPoolAllocator(POOLS)
    findings = alloc.rebuild(
        [
            (req("first"), ("192.0.2.1",)),
            (req("second"), ("192.0.2.1",)),
            (req("sharer-a", sharing_key="k", ports=(("TCP", 53),)), ("192.0.2.2",)),
            (req("sharer-b", sharing_key="k", ports=(("UDP", 53),)), ("192.0.2.2",)),
            (req("clash", sharing_key="k", ports=(("UDP", 53),)), ("192.0.2.2",)),
        ]
    )
    assert [(f.kind, f.value, f.owner, f.other) for f in findings] == [
        (K.LB_IP_ALREADY_ALLOCATED, "192.0.2.1", "ns/second", "ns/first"),
        (K.LB_IP_ALREADY_ALLOCATED, "192.0.2.2", "ns/clash", "ns/sharer-a"),
    ]
    assert "UDP/53" in findings[1].message
    assert alloc.holders("192.0.2.1") == ("ns/first",)
    assert alloc.holders("192.0.2.2") == ("ns/sharer-a", "ns/sharer-b")
    assert alloc.get("ns/second") is None
    assert alloc.get("ns/clash") is None


def test_rebuild_reports_out_of_pool_ips_and_keeps_them_marked() -> None:
    alloc = LBPoolAllocator(POOLS)
    findings = alloc.rebuild(
        [
            (req("lost"), ("203.0.113.5",)),
            (req("bad"), ("not-an-ip",)),
            (req("split", families=(IPFamily.IPV4, IPFamily.IPV6)), ("192.0.2.0", "2001:db8::")),
        ]
    )
    assert [(f.kind, f.value, f.owner) for f in findings] == [
        (K.LB_IP_OUT_OF_RANGE, "203.0.113.5", "ns/lost"),
        (K.LB_IP_OUT_OF_RANGE, "not-an-ip", "ns/bad"),
        (K.LB_IP_OUT_OF_RANGE, "2001:db8::", "ns/split"),
    ]
    assert "must share a pool" in findings[2].message
    assert alloc.get("ns/lost") == Assignment("ns/lost", "", ("203.0.113.5",))
    assert alloc.holders("2001:db8::") == ("ns/split",)
    # Once a pool covers the lost IP it is still protected ...
    alloc.set_pools([*POOLS, Pool("late", ("203.0.113.0/29",))])
    with pytest.raises(LBAllocationError) as err:
        alloc.assign(req("thief", requested_ips=("203.0.113.5",)))
    assert err.value.reason == LBAllocationReason.REQUESTED_IP_IN_USE
    # ... and the split dual-stack Service is moved into one pool on its next assign.
    moved = alloc.assign(req("split", families=(IPFamily.IPV4, IPFamily.IPV6)))
    assert moved == Assignment("ns/split", "ds", ("198.51.100.0", "2001:db8::"))


def test_rebuild_reports_leaks_and_keeps_them_until_released() -> None:
    alloc = LBPoolAllocator(POOLS)
    alloc.assign(req("kept"))
    alloc.assign(req("gone"))
    findings = alloc.rebuild([(req("kept"), ("192.0.2.0",))])
    assert findings == [
        Finding(
            K.LB_IP_LEAK,
            "192.0.2.1",
            "",
            other="ns/gone",
            message="192.0.2.1 is assigned to ns/gone, which no Service claims",
        )
    ]
    assert alloc.get("ns/gone") == Assignment("ns/gone", "a", ("192.0.2.1",))
    assert alloc.rebuild([(req("kept"), ("192.0.2.0",))]) == findings  # seen again
    assert alloc.release("ns/gone") is not None
    assert alloc.rebuild([(req("kept"), ("192.0.2.0",))]) == []
    assert alloc.assign(req("next")).ips == ("192.0.2.1",)


def test_rebuild_prefers_what_services_hold_over_what_the_allocator_believed() -> None:
    alloc = LBPoolAllocator(POOLS)
    alloc.assign(req("s1"))  # believes 192.0.2.0
    assert alloc.rebuild([(req("s1"), ("192.0.2.3",))]) == []
    assert alloc.get("ns/s1") == Assignment("ns/s1", "a", ("192.0.2.3",))
    assert alloc.assign(req("s2")).ips == ("192.0.2.0",)


def test_snapshot_is_plain_json_and_round_trips() -> None:
    alloc = LBPoolAllocator(POOLS)
    alloc.assign(
        req("s1", sharing_key="k", ports=(("TCP", 53),), service_labels={"b": "2", "a": "1"})
    )
    alloc.assign(req("s2", sharing_key="k", ports=(("UDP", 53),)))
    alloc.assign(req("d", families=(IPFamily.IPV6, IPFamily.IPV4)))
    snap = alloc.snapshot()
    text = json.dumps(snap, sort_keys=True)
    restored = LBPoolAllocator.from_snapshot(json.loads(text))
    assert json.dumps(restored.snapshot(), sort_keys=True) == text
    assert restored.holders("192.0.2.0") == ("ns/s1", "ns/s2")
    assert restored.get("ns/d") == Assignment("ns/d", "ds", ("2001:db8::", "198.51.100.0"))
    assert restored.assign(req("s3")).ips == alloc.assign(req("s3")).ips == ("192.0.2.1",)


@pytest.mark.parametrize(
    ("mangle", "fragment"),
    [
        (lambda s: s.update(version=99), "unsupported snapshot version"),
        (lambda s: s["assignments"].append(s["assignments"][0]), "appears twice"),
        (lambda s: s["assignments"][1]["request"].update(sharingKey="other"), "inconsistent"),
        (lambda s: s["assignments"][0].pop("ips"), "malformed"),
        (lambda s: s["pools"].append({"name": "x", "addresses": ["192.0.2.0/24"]}), "overlap"),
    ],
)
def test_bad_snapshots_are_refused_and_change_nothing(mangle: object, fragment: str) -> None:
    alloc = LBPoolAllocator(POOLS)
    alloc.assign(req("s1", sharing_key="k", ports=(("TCP", 53),)))
    alloc.assign(req("s2", sharing_key="k", ports=(("UDP", 53),)))
    snap = alloc.snapshot()
    before = json.dumps(snap)
    mangle(snap)  # type: ignore[operator]
    with pytest.raises(ValueError, match=fragment) as err:
        alloc.restore(snap)
    assert isinstance(err.value, SnapshotError) or "overlap" in fragment
    assert json.dumps(alloc.snapshot()) == before
