"""Property tests of the LoadBalancer pool allocator (hypothesis).

A tiny model (what each key last asked for and got) is enough to check, after every
step of a random sequence of assigns and releases:

* no IP is held by two keys unless they share it legitimately (same non-empty sharing
  key, same backend key, disjoint ports);
* an automatic choice is the first address of its pool, in pool order, that is free or
  shareable (a brute-force oracle over the small pools);
* a failed assign changes nothing; re-sending a request changes nothing;
* usage counts equal the distinct IPs held;

and, at the end, that snapshot/restore and rebuild reproduce the exact state.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbctl.allocators.lbpool import (
    Assignment,
    LabelSelector,
    LBAllocationError,
    LBAllocationReason,
    LBPoolAllocator,
    LBRequest,
    Pool,
    PortKey,
)
from lbctl.domain.service import IPFamily

V4, V6 = IPFamily.IPV4, IPFamily.IPV6
R = LBAllocationReason

POOLS = [
    Pool("a", ("10.0.0.0/30", "2001:db8::/126")),
    Pool("b", ("10.0.1.254-10.0.2.1",), avoid_buggy_ips=True),
    Pool(
        "c",
        ("2001:db8:1::/127", "10.0.3.4/31"),
        priority=1,
        service_selectors=(LabelSelector({"team": "a"}),),
    ),
    Pool("m", ("10.0.2.8/31",), auto_assign=False),
]
CANDIDATE_IPS = [
    "10.0.0.0", "10.0.0.3", "10.0.1.255", "10.0.2.0", "10.0.2.1", "10.0.3.5", "10.0.2.9",
    "2001:db8::1", "2001:db8:1::", "192.0.2.1", "2001:db8:2::1",
]  # fmt: skip
KEYS = [f"ns/s{i}" for i in range(6)]
PORTS: list[PortKey] = [("TCP", 53), ("UDP", 53), ("TCP", 80)]
FAMILIES = [(V4,), (V6,), (V4, V6), (V6, V4)]


def pool_order(pool: Pool) -> Iterator[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every usable address of ``pool`` in allocation order (brute force)."""
    for text in pool.addresses:
        if "-" in text:
            lo, hi = (ipaddress.ip_address(p.strip()) for p in text.split("-"))
            addrs: Iterator[ipaddress.IPv4Address | ipaddress.IPv6Address] = (
                ipaddress.ip_address(v) if lo.version == 4 else ipaddress.IPv6Address(v)
                for v in range(int(lo), int(hi) + 1)
            )
        else:
            addrs = iter(ipaddress.ip_network(text, strict=False))
        for ip in addrs:
            if pool.avoid_buggy_ips and ip.version == 4 and int(ip) % 256 in (0, 255):
                continue
            yield ip


@st.composite
def requests(draw: st.DrawFn) -> LBRequest:
    families = draw(st.sampled_from(FAMILIES))
    ips: tuple[str, ...] = ()
    if draw(st.integers(0, 3)) == 0:
        # Mostly of the right families (so they get as far as the sharing checks).
        wanted = [4 if f == V4 else 6 for f in families][: draw(st.integers(1, 2))]
        ips = tuple(
            draw(st.sampled_from([ip for ip in CANDIDATE_IPS if ":" in ip] if v == 6 else
                                 [ip for ip in CANDIDATE_IPS if ":" not in ip]))
            for v in wanted
        )  # fmt: skip
    return LBRequest(
        key=draw(st.sampled_from(KEYS)),
        service_labels=draw(st.sampled_from([{}, {"team": "a"}])),
        requested_ips=ips,
        requested_pool=draw(st.sampled_from(["", "", "", "", "", "a", "b", "c", "m", "zz"])),
        sharing_key=draw(st.sampled_from(["", "x", "x", "y"])),
        backend_key=draw(st.sampled_from(["", "", "", "app=web"])),
        ports=tuple(draw(st.sets(st.sampled_from(PORTS), max_size=2))),
        families=families,
        prefer_dual_stack=draw(st.booleans()),
    )


Op = LBRequest | str  # a request to assign, or a key to release
ops = st.lists(st.one_of(requests(), requests(), st.sampled_from(KEYS)), max_size=30)


@dataclass
class Model:
    alloc: LBPoolAllocator = field(default_factory=lambda: LBPoolAllocator(POOLS))
    held: dict[str, tuple[LBRequest, Assignment]] = field(default_factory=dict)

    def may_share(self, ip: str, req: LBRequest) -> bool:
        for key, (other, got) in self.held.items():
            if key == req.key or ip not in got.ips:
                continue
            same_keys = other.sharing_key and other.sharing_key == req.sharing_key
            if not same_keys or other.backend_key != req.backend_key:
                return False
            if set(other.ports) & set(req.ports):
                return False
        return True

    def first_choice(self, pool: Pool, version: int, req: LBRequest) -> str | None:
        for ip in pool_order(pool):
            if ip.version == version and self.may_share(str(ip), req):
                return str(ip)
        return None

    def apply(self, op: Op) -> None:
        if isinstance(op, str):
            released = self.alloc.release(op)
            assert (released is None) == (op not in self.held)
            self.held.pop(op, None)
            return
        before = self.alloc.snapshot()
        previous = self.held.get(op.key)
        try:
            got = self.alloc.assign(op)
        except LBAllocationError as err:
            assert self.alloc.snapshot() == before, f"failed assign changed state: {err}"
            assert isinstance(err.reason, LBAllocationReason)
            return
        self.check_choice(op, got, previous)
        self.held[op.key] = (op, got)
        again = self.alloc.snapshot()
        assert self.alloc.assign(op) == got, "re-sending a request changed the answer"
        assert self.alloc.snapshot() == again

    def check_choice(
        self, req: LBRequest, got: Assignment, previous: tuple[LBRequest, Assignment] | None
    ) -> None:
        versions = [ipaddress.ip_address(ip).version for ip in got.ips]
        wanted = [4 if f == V4 else 6 for f in req.families]
        assert len(set(versions)) == len(versions)
        if req.prefer_dual_stack and len(wanted) == 2:
            assert set(versions) <= set(wanted) and versions
        else:
            assert sorted(versions) == sorted(wanted)
        pool = next(p for p in POOLS if p.name == got.pool)
        for ip in got.ips:
            assert self.alloc.pool_of(ip) == got.pool
        if req.requested_ips:
            assert set(got.ips) == set(req.requested_ips)
        if req.requested_pool:
            assert got.pool == req.requested_pool
        if previous is None and not req.requested_ips:
            # A fresh automatic choice: the first free-or-shareable address of the pool.
            for ip, v in zip(got.ips, versions, strict=True):
                assert ip == self.first_choice(pool, v, req), f"{req.key} got {ip}"

    def check_invariants(self) -> None:
        holders: dict[str, list[str]] = {}
        for key, (_, got) in self.held.items():
            assert self.alloc.get(key) == got
            for ip in got.ips:
                holders.setdefault(ip, []).append(key)
        assert [a.key for a in self.alloc.assignments()] == sorted(self.held)
        for ip, keys in holders.items():
            assert self.alloc.holders(ip) == tuple(sorted(keys))
            if len(keys) > 1:
                reqs = [self.held[k][0] for k in keys]
                assert all(r.sharing_key for r in reqs), f"{ip} shared without a key: {keys}"
                assert len({(r.sharing_key, r.backend_key) for r in reqs}) == 1
                ports = [p for r in reqs for p in set(r.ports)]
                assert len(ports) == len(set(ports)), f"port clash on {ip}: {keys}"
        for name, usage in self.alloc.usage().items():
            in_pool = [ip for ip in holders if self.alloc.pool_of(ip) == name]
            v4 = sum(1 for ip in in_pool if ipaddress.ip_address(ip).version == 4)
            assert (usage.assigned_ipv4, usage.assigned_ipv6) == (v4, len(in_pool) - v4)


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(ops)
def test_never_two_non_sharing_holders_and_choices_are_first_free(steps: list[Op]) -> None:
    model = Model()
    for op in steps:
        model.apply(op)
        model.check_invariants()


@PROPERTY
@given(ops, requests())
def test_snapshot_restore_round_trip(steps: list[Op], probe: LBRequest) -> None:
    model = Model()
    for op in steps:
        model.apply(op)
    snap = model.alloc.snapshot()
    restored = LBPoolAllocator.from_snapshot(json.loads(json.dumps(snap)))
    assert restored.snapshot() == snap
    assert restored.usage() == model.alloc.usage()
    assert restored.assignments() == model.alloc.assignments()
    # Same state, same future: the next assign answers the same.
    outcomes: list[Assignment | LBAllocationReason] = []
    for alloc in (model.alloc, restored):
        try:
            outcomes.append(alloc.assign(probe))
        except LBAllocationError as err:
            outcomes.append(err.reason)
    assert outcomes[0] == outcomes[1]
    assert restored.snapshot() == model.alloc.snapshot()


@PROPERTY
@given(ops)
def test_rebuild_from_current_assignments_reproduces_state(steps: list[Op]) -> None:
    model = Model()
    for op in steps:
        model.apply(op)
    existing = [(model.held[k][0], model.held[k][1].ips) for k in sorted(model.held)]
    fresh = LBPoolAllocator(POOLS)
    assert fresh.rebuild(existing) == []
    assert fresh.snapshot() == model.alloc.snapshot()
    assert model.alloc.rebuild(existing) == []
    assert model.alloc.snapshot() == fresh.snapshot()


CAPACITY_POOLS = [
    (Pool("p28", ("192.0.2.0/28",)), 16),
    (Pool("p29", ("198.51.100.8/29",)), 8),
    (Pool("p124", ("2001:db8::/124",)), 16),
    (Pool("p32", ("203.0.113.7/32",)), 1),
    (Pool("one", ("203.0.113.9-203.0.113.9",)), 1),
    (Pool("buggy29", ("192.0.2.248/29", "192.0.3.0/30"), avoid_buggy_ips=True), 10),
]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(CAPACITY_POOLS), st.data())
def test_exhaustion_exactly_at_capacity(case: tuple[Pool, int], data: st.DataObject) -> None:
    pool, capacity = case
    v6 = pool.addresses[0].count(":") > 0
    fam = (V6,) if v6 else (V4,)
    alloc = LBPoolAllocator([pool])
    order = [str(ip) for ip in pool_order(pool)]
    assert len(order) == capacity
    got = [alloc.assign(LBRequest(key=f"ns/a{i}", families=fam)).ips[0] for i in range(capacity)]
    assert got == order
    usage = alloc.usage()[pool.name]
    assert (usage.assigned_ipv6 if v6 else usage.assigned_ipv4) == capacity
    assert (usage.available_ipv6 if v6 else usage.available_ipv4) == 0
    try:
        alloc.assign(LBRequest(key="ns/extra", families=fam))
        raise AssertionError("allocated beyond capacity")
    except LBAllocationError as err:
        assert err.reason == R.POOL_EXHAUSTED
    freed = data.draw(st.sets(st.integers(0, capacity - 1), min_size=1))
    for i in freed:
        alloc.release(f"ns/a{i}")
    again = [
        alloc.assign(LBRequest(key=f"ns/b{i}", families=fam)).ips[0] for i in range(len(freed))
    ]
    assert again == [order[i] for i in sorted(freed)]
    try:
        alloc.assign(LBRequest(key="ns/extra", families=fam))
        raise AssertionError("allocated beyond capacity")
    except LBAllocationError as err:
        assert err.reason == R.POOL_EXHAUSTED
