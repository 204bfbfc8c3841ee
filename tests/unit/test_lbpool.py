"""Scenario tables for the LoadBalancer pool allocator (MetalLB ``allocator_test.go`` style).

Each table is an ordered list of steps driving one allocator: an assign that must
yield exactly these IPs or fail with this reason, or a release. A failed assign must
leave the allocator exactly as it was (checked on every failing step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from lbctl.allocators.findings import FindingKind
from lbctl.allocators.lbpool import (
    Assignment,
    LabelRequirement,
    LabelSelector,
    LBAllocationError,
    LBAllocationReason,
    LBPoolAllocator,
    LBRequest,
    Pool,
    PoolConfigError,
    PoolIssueKind,
    PortKey,
    SelectorOperator,
)
from lbctl.domain.service import IPFamily

R = LBAllocationReason
V4, V6 = IPFamily.IPV4, IPFamily.IPV6
TCP53: PortKey = ("TCP", 53)
UDP53: PortKey = ("UDP", 53)


def req(key: str, *ips: str, **kw: object) -> LBRequest:
    """A request for ``key`` (``ns/name``; ``default/`` is added when no ``/``)."""
    if "/" not in key:
        key = f"default/{key}"
    return LBRequest(key=key, requested_ips=ips, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Step:
    desc: str
    request: LBRequest | str
    """A request to assign, or a key to release."""
    want: tuple[str, ...] | LBAllocationReason = ()
    pool: str = ""
    """When set, the pool the assignment must come from."""


def release(key: str) -> Step:
    return Step(f"release {key}", key if "/" in key else f"default/{key}")


def run(alloc: LBPoolAllocator, steps: Sequence[Step]) -> None:
    for step in steps:
        if isinstance(step.request, str):
            released = alloc.release(step.request)
            assert released is not None, step.desc
            assert alloc.get(step.request) is None, step.desc
            continue
        before = alloc.snapshot()
        held_before = alloc.get(step.request.key)
        try:
            got = alloc.assign(step.request)
        except LBAllocationError as err:
            assert err.reason == step.want, f"{step.desc}: {err}"
            assert alloc.snapshot() == before, f"{step.desc}: a failed assign changed state"
            assert alloc.get(step.request.key) == held_before, step.desc
            continue
        assert got.ips == step.want, f"{step.desc}: got {got}"
        assert got.key == step.request.key, step.desc
        if step.pool:
            assert got.pool == step.pool, step.desc
        assert alloc.get(step.request.key) == got, step.desc


# -- auto-assign, requested IP, requested pool, exhaustion ------------------------------

BASIC_POOLS = [
    Pool("a", ("192.0.2.0/30",)),
    Pool("b", ("198.51.100.10-198.51.100.11",), auto_assign=False),
]
BASIC_STEPS = [
    Step("s1 gets the first address", req("s1"), ("192.0.2.0",), "a"),
    Step("s1 again is idempotent", req("s1"), ("192.0.2.0",), "a"),
    Step("s2 gets the next one", req("s2"), ("192.0.2.1",), "a"),
    Step("s3 asks for .3", req("s3", "192.0.2.3"), ("192.0.2.3",), "a"),
    Step("s4 cannot take s3's IP", req("s4", "192.0.2.3"), R.REQUESTED_IP_IN_USE),
    Step("s4 gets the gap .2", req("s4"), ("192.0.2.2",), "a"),
    Step("a is full and b is not auto-assign", req("s5"), R.POOL_EXHAUSTED),
    Step("s5 asks for pool b", req("s5", requested_pool="b"), ("198.51.100.10",), "b"),
    Step("unknown pool", req("s6", requested_pool="nope"), R.POOL_NOT_FOUND),
    Step("IP outside every pool", req("s6", "203.0.113.1"), R.REQUESTED_IP_NOT_IN_POOL),
    Step(
        "IP not in the requested pool",
        req("s6", "198.51.100.11", requested_pool="a"),
        R.REQUESTED_IP_NOT_IN_POOL,
    ),
    Step("requested IP of a manual pool", req("s6", "198.51.100.11"), ("198.51.100.11",), "b"),
    release("s2"),
    Step("s7 reuses the freed .1", req("s7"), ("192.0.2.1",), "a"),
    Step("s1 asks for s3's IP: refused", req("s1", "192.0.2.3"), R.REQUESTED_IP_IN_USE),
    Step("s1 still has its IP", req("s1"), ("192.0.2.0",), "a"),
    Step("s1 asks for full pool b: keeps .0", req("s1", requested_pool="b"), R.POOL_EXHAUSTED),
    release("s5"),
    Step("s1 moves to pool b", req("s1", requested_pool="b"), ("198.51.100.10",), "b"),
    Step("s8 gets s1's former .0", req("s8"), ("192.0.2.0",), "a"),
    Step("s8 changes its request to .0 explicitly", req("s8", "192.0.2.0"), ("192.0.2.0",)),
    Step("no families", req("s9", families=()), R.INVALID_REQUEST),
    Step("three families", req("s9", families=(V4, V6, V4)), R.INVALID_REQUEST),
    Step("garbage IP", req("s9", "not-an-ip"), R.INVALID_REQUEST),
    Step("two IPv4 requested", req("s9", "192.0.2.1", "192.0.2.2"), R.INVALID_REQUEST),
    Step("bad port", req("s9", ports=(("TCP", 0),)), R.INVALID_REQUEST),
    Step("empty key", LBRequest(key=""), R.INVALID_REQUEST),
    Step("no IPv6 anywhere", req("s9", families=(V6,)), R.FAMILY_UNAVAILABLE),
]


def test_basic_table() -> None:
    alloc = LBPoolAllocator(BASIC_POOLS)
    run(alloc, BASIC_STEPS)
    usage = alloc.usage()
    assert (usage["a"].assigned_ipv4, usage["a"].available_ipv4) == (4, 0)
    assert (usage["b"].assigned_ipv4, usage["b"].available_ipv4) == (2, 0)


def test_no_pools_means_no_pool_matches() -> None:
    alloc = LBPoolAllocator()
    run(alloc, [Step("nothing configured", req("s1"), R.NO_POOL_MATCHES)])
    alloc.set_pools([Pool("manual", ("192.0.2.0/30",), auto_assign=False)])
    run(alloc, [Step("only a manual pool", req("s1"), R.NO_POOL_MATCHES)])


# -- serviceAllocation: selectors, namespaces, priority ----------------------------------

TEAM_A = LabelSelector({"team": "a"})
STAGING = LabelSelector(
    match_expressions=(LabelRequirement("env", SelectorOperator.IN, ("staging",)),)
)
SELECTOR_POOLS = [
    Pool("general", ("10.0.0.0/30",)),
    Pool("team-a-lo", ("10.1.0.0/30",), priority=20, service_selectors=(TEAM_A,)),
    Pool("team-a-hi", ("10.2.0.0/31",), priority=10, service_selectors=(TEAM_A,)),
    Pool("ns-prod", ("10.3.0.0/31",), namespaces=("prod",)),
    Pool("ns-prod-b", ("10.6.0.0/32",), namespaces=("prod",)),
    Pool("ns-labelled", ("10.4.0.0/31",), namespace_selectors=(STAGING,)),
    Pool(
        "prod-edge",
        ("10.5.0.0/32",),
        priority=5,
        namespaces=("prod",),
        service_selectors=(LabelSelector({"tier": "edge"}),),
    ),
    Pool("manual", ("10.9.0.0/31",), auto_assign=False, namespaces=("prod",)),
]
TEAM = {"team": "a"}
EDGE = {"tier": "edge"}
SELECTOR_STEPS = [
    Step("no selector matches: fallback", req("default/plain"), ("10.0.0.0",), "general"),
    Step("team=a: priority 10 first", req("default/a1", service_labels=TEAM), ("10.2.0.0",)),
    Step("team=a again", req("default/a2", service_labels=TEAM), ("10.2.0.1",), "team-a-hi"),
    Step(
        "priority 10 full: 20", req("default/a3", service_labels=TEAM), ("10.1.0.0",), "team-a-lo"
    ),
    Step("namespace prod: unset priority, by name", req("prod/web"), ("10.3.0.0",), "ns-prod"),
    Step(
        "prod + tier=edge: both constraints, priority 5",
        req("prod/edge", service_labels=EDGE),
        ("10.5.0.0",),
        "prod-edge",
    ),
    Step("prod-edge full", req("prod/edge2", service_labels=EDGE), ("10.3.0.1",), "ns-prod"),
    Step("ns-prod full: ns-prod-b", req("prod/web3"), ("10.6.0.0",), "ns-prod-b"),
    Step("every prod pool full: fallback", req("prod/web4"), ("10.0.0.1",), "general"),
    Step(
        "tier=edge outside prod does not match prod-edge",
        req("default/edge", service_labels=EDGE),
        ("10.0.0.2",),
        "general",
    ),
    Step(
        "namespace selector on namespace labels",
        req("staging/app", namespace_labels={"env": "staging"}),
        ("10.4.0.0",),
        "ns-labelled",
    ),
    Step(
        "team=a in staging: team-a-lo (20) before ns-labelled (unset)",
        req("staging/a4", service_labels=TEAM, namespace_labels={"env": "staging"}),
        ("10.1.0.1",),
        "team-a-lo",
    ),
    Step(
        "requested pool that excludes the Service",
        req("dev/app", requested_pool="ns-prod"),
        R.POOL_NOT_ALLOWED,
    ),
    Step(
        "requested IP in a pool that excludes the Service",
        req("dev/app", "10.4.0.1", namespace_labels={"env": "dev"}),
        R.POOL_NOT_ALLOWED,
    ),
    Step("manual pinned pool, requested", req("prod/m", requested_pool="manual"), ("10.9.0.0",)),
    Step("fallback last address", req("dev/x"), ("10.0.0.3",), "general"),
    Step("everything full for dev", req("dev/y"), R.POOL_EXHAUSTED),
    Step("labels change: a1 no longer admitted, moves", req("default/a1"), R.POOL_EXHAUSTED),
    release("dev/x"),
    Step("labels change: a1 moves to general", req("default/a1"), ("10.0.0.3",), "general"),
    Step(
        "team=a takes the freed priority-10 address",
        req("default/a5", service_labels=TEAM),
        ("10.2.0.0",),
    ),
]


def test_selector_table() -> None:
    run(LBPoolAllocator(SELECTOR_POOLS), SELECTOR_STEPS)


def test_equal_priority_is_ordered_by_name() -> None:
    alloc = LBPoolAllocator(
        [
            Pool("zeta", ("10.0.0.0/32",), priority=1, service_selectors=(TEAM_A,)),
            Pool("alpha", ("10.0.1.0/32",), priority=1, service_selectors=(TEAM_A,)),
            Pool("first", ("10.0.2.0/32",), priority=0, service_selectors=(TEAM_A,)),
        ]
    )
    run(
        alloc,
        [
            Step("priority 0 first", req("s1", service_labels=TEAM), ("10.0.2.0",), "first"),
            Step("then alpha", req("s2", service_labels=TEAM), ("10.0.1.0",), "alpha"),
            Step("then zeta", req("s3", service_labels=TEAM), ("10.0.0.0",), "zeta"),
        ],
    )


def test_priority_only_pool_serves_everyone_first() -> None:
    # Deliberate difference from MetalLB, where such a pool is never auto-assigned.
    alloc = LBPoolAllocator([Pool("a", ("10.0.0.0/32",)), Pool("p", ("10.1.0.0/32",), priority=3)])
    run(
        alloc,
        [
            Step("priority-only pool first", req("s1"), ("10.1.0.0",), "p"),
            Step("then the plain pool", req("s2"), ("10.0.0.0",), "a"),
        ],
    )


def test_namespace_selector_matching_nothing_excludes_everyone() -> None:
    # Deliberate difference from MetalLB (an unmatched selector there drops the constraint).
    nobody = LabelSelector({"env": "nowhere"})
    alloc = LBPoolAllocator([Pool("p", ("10.1.0.0/32",), namespace_selectors=(nobody,))])
    run(alloc, [Step("pool excluded", req("s1"), R.NO_POOL_MATCHES)])


# -- avoidBuggyIPs, ranges, address order ------------------------------------------------


def test_avoid_buggy_ips_and_ranges() -> None:
    alloc = LBPoolAllocator(
        [
            Pool("edge", ("192.0.2.254-192.0.3.1",), avoid_buggy_ips=True),
            Pool("plain", ("198.51.100.0/31",), auto_assign=False),
            Pool("listed", ("203.0.113.20-203.0.113.21", "203.0.113.10/32"), auto_assign=False),
        ]
    )
    assert alloc.usage()["edge"].available_ipv4 == 2
    run(
        alloc,
        [
            Step("first usable", req("s1"), ("192.0.2.254",), "edge"),
            Step(".255 and .0 skipped", req("s2"), ("192.0.3.1",), "edge"),
            Step("edge full", req("s3"), R.POOL_EXHAUSTED),
            Step("buggy IP not requestable", req("s3", "192.0.3.0"), R.REQUESTED_IP_NOT_IN_POOL),
            Step("buggy IP fine elsewhere", req("s3", requested_pool="plain"), ("198.51.100.0",)),
            Step("entries in listed order", req("s4", requested_pool="listed"), ("203.0.113.20",)),
            Step("within a range ascending", req("s5", requested_pool="listed"), ("203.0.113.21",)),
            Step("then the next entry", req("s6", requested_pool="listed"), ("203.0.113.10",)),
            Step("listed pool full", req("s7", requested_pool="listed"), R.POOL_EXHAUSTED),
        ],
    )


# -- sharing ------------------------------------------------------------------------------

SHARING_STEPS = [
    Step("dns-tcp", req("dns-tcp", sharing_key="dns", ports=(TCP53,)), ("192.0.2.0",)),
    Step("dns-udp shares .0", req("dns-udp", sharing_key="dns", ports=(UDP53,)), ("192.0.2.0",)),
    Step(
        "port clash on .0",
        req("dns-tcp2", "192.0.2.0", sharing_key="dns", ports=(TCP53,)),
        R.SHARING_CONFLICT,
    ),
    Step(
        "other sharing key",
        req("web", "192.0.2.0", sharing_key="web", ports=(("TCP", 80),)),
        R.SHARING_CONFLICT,
    ),
    Step("no sharing key", req("solo", "192.0.2.0", ports=(("TCP", 80),)), R.REQUESTED_IP_IN_USE),
    Step(
        "backend key mismatch",
        req("local", "192.0.2.0", sharing_key="dns", backend_key="app=dns", ports=(("TCP", 5353),)),
        R.SHARING_CONFLICT,
    ),
    Step(
        "clashing sharer gets the next address",
        req("dns-tcp2", sharing_key="dns", ports=(TCP53,)),
        ("192.0.2.1",),
    ),
    Step("web", req("web", sharing_key="web", ports=(("TCP", 80),)), ("192.0.2.2",)),
    Step(
        "sole holder changes its sharing key in place",
        req("web", sharing_key="web2", ports=(("TCP", 443),)),
        ("192.0.2.2",),
    ),
    Step(
        "a sharer's new ports clash: it moves",
        req("dns-udp", sharing_key="dns", ports=(TCP53,)),
        ("192.0.2.3",),
    ),
    Step(
        "and moves back when the clash is gone",
        req("dns-udp", "192.0.2.0", sharing_key="dns", ports=(UDP53,)),
        ("192.0.2.0",),
    ),
    release("dns-tcp"),
    Step("one sharer left keeps .0", req("solo", "192.0.2.0"), R.REQUESTED_IP_IN_USE),
    release("dns-udp"),
    Step("last sharer gone: .0 free", req("solo", "192.0.2.0"), ("192.0.2.0",)),
    Step("the address dns-udp left is free again", req("late"), ("192.0.2.3",)),
    Step("pool full", req("later"), R.POOL_EXHAUSTED),
]


def test_sharing_table() -> None:
    alloc = LBPoolAllocator([Pool("shared", ("192.0.2.0/30",))])
    run(alloc, SHARING_STEPS)
    assert alloc.holders("192.0.2.1") == ("default/dns-tcp2",)
    assert alloc.holders("192.0.2.0") == ("default/solo",)
    assert alloc.usage()["shared"].assigned_ipv4 == 4


def test_shared_ip_counts_once_and_lists_every_holder() -> None:
    alloc = LBPoolAllocator([Pool("p", ("192.0.2.0/30",))])
    alloc.assign(req("t", sharing_key="k", ports=(TCP53,)))
    alloc.assign(req("u", sharing_key="k", ports=(UDP53,)))
    assert alloc.holders("192.0.2.0") == ("default/t", "default/u")
    assert alloc.usage()["p"].assigned_ipv4 == 1
    assert alloc.usage()["p"].available_ipv4 == 3


# -- dual-stack and IPv6 -------------------------------------------------------------------

DUAL_POOLS = [
    Pool("ds", ("192.0.2.0/31", "2001:db8::/127")),
    Pool("v4only", ("198.51.100.0/32",)),
    Pool("v6", ("2001:db8:1::10-2001:db8:1::11",)),
]
DUAL_STEPS = [
    Step("dual, v4 primary", req("a", families=(V4, V6)), ("192.0.2.0", "2001:db8::"), "ds"),
    Step("dual, v6 primary", req("b", families=(V6, V4)), ("2001:db8::1", "192.0.2.1"), "ds"),
    Step("no pool has both free: all or nothing", req("c", families=(V4, V6)), R.POOL_EXHAUSTED),
    Step("v6 only: ds full, v6 pool", req("d", families=(V6,)), ("2001:db8:1::10",), "v6"),
    Step(
        "PreferDualStack settles for the primary family",
        req("e", families=(V4, V6), prefer_dual_stack=True),
        ("198.51.100.0",),
        "v4only",
    ),
    release("a"),
    Step(
        "PreferDualStack: v4only has no v6 to add",
        req("e", families=(V4, V6), prefer_dual_stack=True),
        ("198.51.100.0",),
    ),
    Step(
        "PreferDualStack gets both when a pool has both",
        req("f", families=(V6, V4), prefer_dual_stack=True),
        ("2001:db8::", "192.0.2.0"),
        "ds",
    ),
    Step(
        "requested IPs in different pools",
        req("g", "198.51.100.0", "2001:db8:1::11", families=(V4, V6)),
        R.REQUESTED_IP_NOT_IN_POOL,
    ),
    Step(
        "requested IPv6",
        req("h", "2001:db8:1:0:0:0:0:11", families=(V6,)),
        ("2001:db8:1::11",),
        "v6",
    ),
    Step("requested family mismatch", req("i", "2001:db8::1", families=(V4,)), R.INVALID_REQUEST),
    Step(
        "single IP for required dual-stack",
        req("i", "2001:db8::1", families=(V4, V6)),
        R.INVALID_REQUEST,
    ),
    Step("no IPv6 left", req("j", families=(V6,)), R.POOL_EXHAUSTED),
    release("f"),
    Step("m takes ds's first IPv6", req("m", families=(V6,)), ("2001:db8::",), "ds"),
    Step(
        "k: PreferDualStack, only IPv4 free in ds",
        req("k", families=(V4, V6), prefer_dual_stack=True),
        ("192.0.2.0",),
        "ds",
    ),
    release("m"),
    Step(
        "k: the missing family is added from the same pool",
        req("k", families=(V4, V6), prefer_dual_stack=True),
        ("192.0.2.0", "2001:db8::"),
        "ds",
    ),
    Step(
        "k: RequireDualStack keeps both",
        req("k", families=(V4, V6)),
        ("192.0.2.0", "2001:db8::"),
    ),
    Step("k: single-stack IPv6 keeps its IPv6", req("k", families=(V6,)), ("2001:db8::",)),
    Step("k's IPv4 is free again", req("n", "192.0.2.0"), ("192.0.2.0",)),
    Step(
        "k: PreferDualStack again, no IPv4 left in ds",
        req("k", families=(V6, V4), prefer_dual_stack=True),
        ("2001:db8::",),
    ),
]


def test_dual_stack_table() -> None:
    alloc = LBPoolAllocator(DUAL_POOLS)
    run(alloc, DUAL_STEPS)
    usage = alloc.usage()["ds"]
    assert (usage.assigned_ipv4, usage.available_ipv4) == (2, 0)
    assert (usage.assigned_ipv6, usage.available_ipv6) == (2, 0)


def test_ipv6_pool_usage_counts_huge_pools_exactly() -> None:
    alloc = LBPoolAllocator([Pool("big6", ("2001:db8::/64",))])
    assert alloc.assign(req("s1", families=(V6,))).ips == ("2001:db8::",)
    usage = alloc.usage()["big6"]
    assert (usage.assigned_ipv6, usage.available_ipv6) == (1, 2**64 - 1)
    assert (usage.assigned_ipv4, usage.available_ipv4) == (0, 0)


# -- configuration changes -----------------------------------------------------------------


def test_set_pools_removing_a_pool_keeps_and_reports_its_assignments() -> None:
    a, b = Pool("a", ("192.0.2.0/31",)), Pool("b", ("198.51.100.0/31",))
    alloc = LBPoolAllocator([a, b])
    run(
        alloc,
        [
            Step("s1", req("s1"), ("192.0.2.0",), "a"),
            Step("s2 from b", req("s2", requested_pool="b"), ("198.51.100.0",), "b"),
        ],
    )
    findings = alloc.set_pools([a])
    assert [(f.kind, f.value, f.owner) for f in findings] == [
        (FindingKind.LB_IP_OUT_OF_RANGE, "198.51.100.0", "default/s2")
    ]
    assert alloc.get("default/s2") == Assignment("default/s2", "b", ("198.51.100.0",))
    assert set(alloc.usage()) == {"a"}
    run(alloc, [Step("gone from config", req("s3", "198.51.100.0"), R.REQUESTED_IP_NOT_IN_POOL)])
    assert alloc.set_pools([a, b]) == []
    run(
        alloc,
        [
            Step("still protected", req("s3", "198.51.100.0"), R.REQUESTED_IP_IN_USE),
            Step("s2's request still valid", req("s2", requested_pool="b"), ("198.51.100.0",)),
        ],
    )
    alloc.set_pools([a])
    run(
        alloc,
        [
            Step("s2's pool is gone: kept as is", req("s2", requested_pool="b"), R.POOL_NOT_FOUND),
            Step("s2 without pool: moved into a", req("s2"), ("192.0.2.1",), "a"),
        ],
    )
    assert alloc.set_pools([a]) == []


def test_set_pools_rehomes_assignments_to_the_pool_now_holding_them() -> None:
    alloc = LBPoolAllocator([Pool("old", ("192.0.2.0/30",))])
    alloc.assign(req("s1"))
    assert alloc.set_pools([Pool("new", ("192.0.2.0/29",))]) == []
    assert alloc.get("default/s1") == Assignment("default/s1", "new", ("192.0.2.0",))
    assert alloc.assign(req("s2")).ips == ("192.0.2.1",)


def test_set_pools_enabling_avoid_buggy_ips_orphans_a_dot_zero() -> None:
    alloc = LBPoolAllocator([Pool("p", ("192.0.2.0/30",))])
    alloc.assign(req("s1"))
    findings = alloc.set_pools([Pool("p", ("192.0.2.0/30",), avoid_buggy_ips=True)])
    assert [f.kind for f in findings] == [FindingKind.LB_IP_OUT_OF_RANGE]
    assert alloc.assign(req("s1")).ips == ("192.0.2.1",)


def test_overlapping_pools_are_rejected_and_nothing_changes() -> None:
    alloc = LBPoolAllocator([Pool("a", ("192.0.2.0/30",))])
    alloc.assign(req("s1"))
    before = alloc.snapshot()
    with pytest.raises(PoolConfigError) as err:
        alloc.set_pools([Pool("a", ("192.0.2.0/30",)), Pool("c", ("192.0.2.2-192.0.2.9",))])
    (issue,) = err.value.issues
    assert issue.kind == PoolIssueKind.OVERLAP
    assert {issue.pool, issue.other_pool} == {"a", "c"}
    assert "192.0.2.2-192.0.2.3" in str(err.value)
    assert alloc.snapshot() == before


def test_release_of_unknown_key_is_none() -> None:
    alloc = LBPoolAllocator([Pool("a", ("192.0.2.0/30",))])
    assert alloc.release("default/nobody") is None
    assert alloc.assignments() == []
    assert alloc.pool_of("192.0.2.3") == "a"
    assert alloc.pool_of("192.0.2.4") is None
