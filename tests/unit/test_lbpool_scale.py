"""The pool allocator at scale: a whole /16 and a huge IPv6 pool, in address order.

Speed is measured by bench/allocators.py, not asserted here.
"""

from __future__ import annotations

import pytest

from lbctl.allocators.lbpool import (
    LBAllocationError,
    LBAllocationReason,
    LBPoolAllocator,
    LBRequest,
    Pool,
)
from lbctl.domain.service import IPFamily


def test_fill_a_slash_16_then_refill_released_holes() -> None:
    alloc = LBPoolAllocator([Pool("big", ("10.0.0.0/16",))])
    requests = [LBRequest(key=f"ns/s{i}") for i in range(65536)]
    got = [alloc.assign(r).ips[0] for r in requests]
    assert got[0] == "10.0.0.0"
    assert got[-1] == "10.0.255.255"
    assert len(set(got)) == 65536
    with pytest.raises(LBAllocationError) as err:
        alloc.assign(LBRequest(key="ns/extra"))
    assert err.value.reason == LBAllocationReason.POOL_EXHAUSTED

    for i in range(0, 65536, 2):
        alloc.release(f"ns/s{i}")
    refill = [alloc.assign(LBRequest(key=f"ns/r{i}")).ips[0] for i in range(0, 65536, 2)]
    assert refill == got[0::2]
    assert alloc.usage()["big"].available_ipv4 == 0


def test_huge_ipv6_pool_allocates_quickly() -> None:
    alloc = LBPoolAllocator([Pool("v6", ("2001:db8::/48",))])
    for i in range(10000):
        alloc.assign(LBRequest(key=f"ns/s{i}", families=(IPFamily.IPV6,)))
    assert alloc.get("ns/s9999") is not None
    assert alloc.usage()["v6"].available_ipv6 == 2**80 - 10000
