"""ClusterIP allocator: ordered scenario tables, edge sizes and exact upstream texts."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

import pytest

from lbctl.allocators.clusterip import ClusterIPAllocator, IPRange
from lbctl.allocators.errors import (
    AlreadyAllocatedError,
    InternalAllocationError,
    InvalidAllocationError,
    NotInRangeError,
    RangeFullError,
)
from lbctl.domain.service import IPFamily


@dataclass(frozen=True)
class Step:
    desc: str
    op: str  # "alloc" (specific), "next", "release"
    ip: str = ""
    want: str | None = None  # the IP expected (for "next": a CIDR it must fall in)
    error: str | None = None  # the exact error text expected


SCENARIO_24 = [
    Step(
        "network address is not in range",
        "alloc",
        "192.168.1.0",
        error="the provided IP (192.168.1.0) is not in the valid range. "
        "The range of valid IPs is 192.168.1.0/24",
    ),
    Step(
        "broadcast is not in range",
        "alloc",
        "192.168.1.255",
        error="the provided IP (192.168.1.255) is not in the valid range. "
        "The range of valid IPs is 192.168.1.0/24",
    ),
    Step("first usable", "alloc", "192.168.1.1", want="192.168.1.1"),
    Step("last usable", "alloc", "192.168.1.254", want="192.168.1.254"),
    Step("taken", "alloc", "192.168.1.1", error="provided IP is already allocated"),
    Step(
        "other family",
        "alloc",
        "fd00::1",
        error="the provided IP (fd00::1) is not in the valid range. "
        "The range of valid IPs is 192.168.1.0/24",
    ),
    Step(
        "outside",
        "alloc",
        "10.0.0.1",
        error="the provided IP (10.0.0.1) is not in the valid range. "
        "The range of valid IPs is 192.168.1.0/24",
    ),
    Step("dynamic prefers the upper band", "next", want="192.168.1.17-192.168.1.254"),
    Step("release then reallocate", "release", "192.168.1.1"),
    Step("released is free again", "alloc", "192.168.1.1", want="192.168.1.1"),
]


def _in(ip: str, spec: str) -> bool:
    lo, hi = spec.split("-")
    return ipaddress.ip_address(lo) <= ipaddress.ip_address(ip) <= ipaddress.ip_address(hi)


def test_scenario_slash24() -> None:
    r = IPRange("192.168.1.0/24", rng=random.Random(0))
    assert (r.size, r.static_band) == (254, 16)
    for step in SCENARIO_24:
        if step.op == "release":
            assert r.release(step.ip), step.desc
            continue
        try:
            got = str(r.allocate(step.ip) if step.op == "alloc" else r.allocate_next())
        except (NotInRangeError, AlreadyAllocatedError, RangeFullError) as e:
            assert step.error == str(e), step.desc
            continue
        assert step.error is None, f"{step.desc}: expected {step.error!r}, got {got}"
        assert step.want is not None
        assert (got == step.want) if "-" not in step.want else _in(got, step.want), step.desc


@pytest.mark.parametrize(
    ("cidr", "size", "band"),
    [
        ("10.0.0.0/12", 2**20 - 2, 256),
        ("10.0.0.0/16", 65534, 256),
        ("10.0.0.0/24", 254, 16),  # network and broadcast excluded
        ("10.0.0.0/27", 30, 16),
        ("10.0.0.0/28", 14, 0),  # 16 addresses: no split (kubernetes#115322)
        ("10.0.0.0/29", 6, 0),
        ("10.0.0.0/32", 0, 0),
        ("fd00::/64", 65535, 256),  # capped at 65,536 values, minus the network address
        ("fd00::/108", 65535, 256),  # 2^20 addresses, capped
        ("fd00::/120", 255, 16),
        ("fd00::/124", 15, 0),
        ("fd00::/128", 0, 0),
    ],
)
def test_range_sizes_and_bands(cidr: str, size: int, band: int) -> None:
    r = IPRange(cidr)
    assert r.size == size
    assert r.static_band == band


@pytest.mark.parametrize("cidr", ["10.0.0.0/28", "10.0.0.0/29", "fd00::/124", "10.0.0.0/27"])
def test_exhaustion_exactly_at_capacity(cidr: str) -> None:
    r = IPRange(cidr, rng=random.Random(3))
    got = {r.allocate_next() for _ in range(r.size)}
    assert len(got) == r.size
    assert all(r.contains(ip) for ip in got)
    net = ipaddress.ip_network(cidr)
    assert net.network_address not in got
    if net.version == 4:
        assert net.broadcast_address not in got
    with pytest.raises(RangeFullError, match=r"^range is full$"):
        r.allocate_next()
    # One release makes exactly that value available again.
    victim = sorted(got)[len(got) // 2]
    assert r.release(victim)
    assert r.allocate_next() == victim


def test_single_address_range_is_always_full() -> None:
    r = IPRange("10.1.2.3/32")
    with pytest.raises(RangeFullError):
        r.allocate_next()
    with pytest.raises(NotInRangeError):
        r.allocate("10.1.2.3")


def test_static_band_is_used_only_when_dynamic_band_is_full() -> None:
    r = IPRange("10.0.0.0/24", rng=random.Random(5))
    band_lo = r.first()
    static = {band_lo + i for i in range(r.static_band)}
    dynamic = [r.allocate_next() for _ in range(r.size - r.static_band)]
    assert not static & set(dynamic), "a dynamic allocation landed in the static band"
    nxt = r.allocate_next()
    assert nxt in static


def test_dual_stack_service_allocation_and_rollback() -> None:
    alloc = ClusterIPAllocator(["10.0.0.0/24", "fd00::/120"], rng=random.Random(1))
    assert alloc.families == (IPFamily.IPV4, IPFamily.IPV6)
    with alloc.transaction() as txn:
        ips = txn.allocate_service_ips(families=["IPv4", "IPv6"], cluster_ips=["10.0.0.5"])
    assert ips[0] == "10.0.0.5"
    assert ipaddress.ip_address(ips[1]).version == 6
    assert alloc.has("10.0.0.5") and alloc.has(ips[1])

    # A failing second family gives back the first: all or nothing.
    before = alloc.snapshot()
    with pytest.raises(InvalidAllocationError) as info, alloc.transaction() as txn:
        txn.allocate_service_ips(families=["IPv4", "IPv6"], cluster_ips=["", ips[1]])
    assert alloc.snapshot() == before
    (err,) = info.value.errors
    assert err.field == "spec.clusterIPs"
    assert err.reason == "FieldValueInvalid"
    assert err.message == (
        f'Invalid value: ["","{ips[1]}"]: '
        f"failed to allocate IP {ips[1]}: provided IP is already allocated"
    )


def test_requested_ip_out_of_range_is_422_with_upstream_text() -> None:
    alloc = ClusterIPAllocator(["10.0.0.0/24"])
    with pytest.raises(InvalidAllocationError) as info, alloc.transaction() as txn:
        txn.allocate_service_ips(families=["IPv4"], cluster_ips=["10.9.9.9"])
    assert str(info.value.errors[0]) == (
        'spec.clusterIPs: Invalid value: ["10.9.9.9"]: failed to allocate IP 10.9.9.9: '
        "the provided network does not match the current range"
    )


def test_exhausted_range_is_500_with_upstream_text() -> None:
    alloc = ClusterIPAllocator(["10.0.0.0/29"])
    with alloc.transaction() as txn:
        for _ in range(6):
            txn.allocate_next(IPFamily.IPV4)
    with (
        pytest.raises(
            InternalAllocationError, match=r"^failed to allocate a serviceIP: range is full$"
        ),
        alloc.transaction() as txn,
    ):
        txn.allocate_service_ips(families=["IPv4"], cluster_ips=[])


def test_release_is_deferred_until_commit() -> None:
    alloc = ClusterIPAllocator(["10.0.0.0/24"])
    with alloc.transaction() as txn:
        txn.allocate("10.0.0.9")
    txn = alloc.begin()
    txn.release_deferred("10.0.0.9")
    assert alloc.has("10.0.0.9"), "released before commit"
    txn.commit()
    assert not alloc.has("10.0.0.9")


def test_rollback_after_release_keeps_the_value() -> None:
    alloc = ClusterIPAllocator(["10.0.0.0/24"])
    with alloc.transaction() as txn:
        txn.allocate("10.0.0.9")
    txn = alloc.begin()
    txn.release_deferred("10.0.0.9")
    txn.rollback()
    assert alloc.has("10.0.0.9")


def test_snapshot_restore_round_trip_and_mismatch() -> None:
    a = ClusterIPAllocator(["10.0.0.0/24", "fd00::/120"], rng=random.Random(2))
    with a.transaction() as txn:
        for _ in range(40):
            txn.allocate_next(IPFamily.IPV4)
            txn.allocate_next(IPFamily.IPV6)
    b = ClusterIPAllocator(["10.0.0.0/24", "fd00::/120"])
    b.restore(a.snapshot())
    assert b.snapshot() == a.snapshot()
    assert [r.used for r in b.ranges] == [40, 40]
    with pytest.raises(ValueError, match="does not fit"):
        ClusterIPAllocator(["10.0.1.0/24"]).restore(a.snapshot())


@pytest.mark.parametrize(
    ("cidrs", "message"),
    [
        ([], "one or two"),
        (["10.0.0.0/24", "10.1.0.0/24"], "different IP families"),
        (["10.0.0.0/24", "fd00::/120", "10.1.0.0/24"], "one or two"),
    ],
)
def test_bad_cidr_sets(cidrs: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClusterIPAllocator(cidrs)
