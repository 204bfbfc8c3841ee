"""Hypothesis properties of the bitmap-backed allocators (ClusterIP and NodePort).

Any sequence of allocate / allocate_next / release keeps a model set in step with
the allocator: never a value twice, ``range is full`` exactly at capacity, and a
snapshot restores to the same state.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from lbctl.allocators.bitmap import Bitmap
from lbctl.allocators.clusterip import IPRange
from lbctl.allocators.errors import AlreadyAllocatedError, NotInRangeError, RangeFullError
from lbctl.allocators.nodeport import NodePortAllocator, PortRange

EDGE_CIDRS = [
    "10.0.0.0/28",
    "10.0.0.0/29",
    "10.0.0.0/27",
    "fd00::/124",
    "fd00::/121",
    "10.0.0.0/32",
]


class IPRangeMachine(RuleBasedStateMachine):
    """Drive one IPRange through random steps, checking it against a plain set."""

    def __init__(self) -> None:
        super().__init__()
        self.r = IPRange("10.0.0.0/28")
        self.model: set[str] = set()
        self.universe: list[str] = []

    @initialize(cidr=st.sampled_from(EDGE_CIDRS), seed=st.integers(0, 2**32 - 1))
    def setup(self, cidr: str, seed: int) -> None:
        self.r = IPRange(cidr, rng=random.Random(seed))
        first = self.r.first()
        self.universe = [str(first + i) for i in range(self.r.size)]

    @rule()
    def allocate_next(self) -> None:
        try:
            ip = str(self.r.allocate_next())
        except RangeFullError:
            assert len(self.model) == self.r.size, "range is full before capacity"
            return
        assert ip not in self.model, f"{ip} handed out twice"
        assert ip in self.universe
        self.model.add(ip)

    @precondition(lambda self: bool(self.universe))
    @rule(data=st.data())
    def allocate_specific(self, data: st.DataObject) -> None:
        ip = data.draw(st.sampled_from(self.universe))
        try:
            self.r.allocate(ip)
        except AlreadyAllocatedError:
            assert ip in self.model
            return
        assert ip not in self.model
        self.model.add(ip)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        ip = data.draw(st.sampled_from(sorted(self.model)))
        assert self.r.release(ip)
        self.model.discard(ip)

    @rule()
    def snapshot_round_trip(self) -> None:
        snap = self.r.snapshot()
        other = IPRange(str(self.r.network))
        other.restore(snap)
        assert {str(i) for i in other.allocated()} == self.model

    @invariant()
    def agrees(self) -> None:
        assert self.r.used == len(self.model)
        assert self.r.free == self.r.size - len(self.model)


TestIPRangeMachine = IPRangeMachine.TestCase
TestIPRangeMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


class NodePortMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.a = NodePortAllocator(PortRange.parse("30000-30000"))
        self.model: set[int] = set()

    @initialize(size=st.sampled_from([1, 2, 16, 17, 40, 100]), seed=st.integers(0, 2**32 - 1))
    def setup(self, size: int, seed: int) -> None:
        self.a = NodePortAllocator(PortRange(base=30000, size=size), rng=random.Random(seed))

    @rule()
    def allocate_next(self) -> None:
        try:
            port = self.a.allocate_next()
        except RangeFullError:
            assert len(self.model) == self.a.size
            return
        assert port not in self.model
        assert port in self.a.range
        self.model.add(port)

    @rule(port=st.integers(29990, 30110))
    def allocate(self, port: int) -> None:
        try:
            self.a.allocate(port)
        except NotInRangeError:
            assert port not in self.a.range
            return
        except AlreadyAllocatedError:
            assert port in self.model
            return
        assert port not in self.model
        self.model.add(port)

    @rule(port=st.integers(29990, 30110))
    def release(self, port: int) -> None:
        assert self.a.release(port) == (port in self.model)
        self.model.discard(port)

    @invariant()
    def agrees(self) -> None:
        assert set(self.a.allocated()) == self.model


TestNodePortMachine = NodePortMachine.TestCase
TestNodePortMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


@given(size=st.integers(0, 300), offset=st.integers(0, 300), seed=st.integers(0, 1000))
@settings(max_examples=150, deadline=None)
def test_bitmap_fills_exactly_and_prefers_dynamic_band(size: int, offset: int, seed: int) -> None:
    b = Bitmap(size, offset=offset, rng=random.Random(seed))
    order = [b.allocate_next() for _ in range(size)]
    assert None not in order
    assert sorted(v for v in order if v is not None) == list(range(size))
    assert b.allocate_next() is None
    if b.offset:
        dynamic = size - b.offset
        assert all(v is not None and v >= b.offset for v in order[:dynamic])


@given(size=st.integers(1, 200), data=st.data())
@settings(max_examples=100, deadline=None)
def test_bitmap_snapshot_restore(size: int, data: st.DataObject) -> None:
    b = Bitmap(size)
    marked = data.draw(st.sets(st.integers(0, size - 1)))
    for v in marked:
        b.allocate(v)
    c = Bitmap(size)
    c.restore(b.snapshot())
    assert c.values() == sorted(marked)
    assert c.count == len(marked)
