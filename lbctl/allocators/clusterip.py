"""ClusterIP allocation with kube-apiserver's semantics.

:class:`IPRange` is one service CIDR: the network address is never handed out, nor is
an IPv4 broadcast address; IPv6 ranges are capped at 65,536 values; the static band
is KEP-3070's ``min(max(16, size // 16), 256)``. :class:`ClusterIPAllocator` holds one
range per family (one or two CIDRs) and hands out a Service's IPs through a
:class:`ClusterIPTransaction`, so that all of a Service's IPs are kept or none is.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from lbctl.allocators.bitmap import Bitmap, BitmapCounts, BitmapSnapshot, band_offset
from lbctl.allocators.errors import (
    AlreadyAllocatedError,
    InternalAllocationError,
    InvalidAllocationError,
    NotInRangeError,
    RangeFullError,
)
from lbctl.allocators.txn import Transaction, Transactional
from lbctl.domain.fielderrors import FieldErrors, invalid
from lbctl.domain.service import IPFamily

__all__ = [
    "ClusterIPAllocator",
    "ClusterIPSnapshot",
    "ClusterIPTransaction",
    "IPAddress",
    "IPNetwork",
    "IPRange",
    "family_of",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NOT_IN_SERVICE_CIDRS: Final = "the provided network does not match the current range"
IPV6_MAX_VALUES: Final = 65536
"""Largest bitmap kept for an IPv6 range (upstream's cap)."""


def family_of(ip: IPAddress | IPNetwork) -> IPFamily:
    return IPFamily.IPV4 if ip.version == 4 else IPFamily.IPV6


def _parse_ip(value: str | IPAddress) -> IPAddress | None:
    if not isinstance(value, str):
        return value
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


class IPRange(BitmapCounts):
    """Allocation state of one service CIDR."""

    __slots__ = ("_base", "_bitmap", "family", "network")

    def __init__(self, cidr: str | IPNetwork, *, rng: random.Random | None = None) -> None:
        self.network: IPNetwork = (
            ipaddress.ip_network(cidr, strict=True) if isinstance(cidr, str) else cidr
        )
        self.family = family_of(self.network)
        full = self.network.num_addresses
        size = full
        if self.family is IPFamily.IPV6:
            size = min(size, IPV6_MAX_VALUES)
        else:
            size -= 1  # the broadcast address
        size = max(size - 1, 0)  # the network address
        self._base = int(self.network.network_address) + 1
        offset = band_offset(full, minimum=16, maximum=256, step=16)
        self._bitmap = Bitmap(size, offset=offset, rng=rng)

    def first(self) -> IPAddress:
        """The first IP the range can hand out (kept for the ``kubernetes`` Service)."""
        return ipaddress.ip_address(self._base)

    def __str__(self) -> str:
        return str(self.network)

    def __repr__(self) -> str:
        return f"IPRange({str(self.network)!r}, used={self.used}/{self.size})"

    def _offset(self, ip: IPAddress) -> int | None:
        if ip.version != self.network.version:
            return None
        off = int(ip) - self._base
        return off if 0 <= off < self._bitmap.size else None

    def contains(self, ip: str | IPAddress) -> bool:
        """Whether ``ip`` is one this range hands out (not the network or broadcast)."""
        parsed = _parse_ip(ip)
        return parsed is not None and self._offset(parsed) is not None

    def has(self, ip: str | IPAddress) -> bool:
        """Whether ``ip`` is allocated."""
        parsed = _parse_ip(ip)
        off = None if parsed is None else self._offset(parsed)
        return off is not None and self._bitmap.has(off)

    # -- changes -------------------------------------------------------------------
    def allocate(self, ip: str | IPAddress) -> IPAddress:
        parsed = _parse_ip(ip)
        off = None if parsed is None else self._offset(parsed)
        if parsed is None or off is None:
            raise NotInRangeError(
                f"the provided IP ({ip}) is not in the valid range. "
                f"The range of valid IPs is {self.network}"
            )
        if not self._bitmap.allocate(off):
            raise AlreadyAllocatedError("IP")
        return parsed

    def allocate_next(self) -> IPAddress:
        off = self._bitmap.allocate_next()
        if off is None:
            raise RangeFullError()
        return ipaddress.ip_address(self._base + off)

    def release(self, ip: str | IPAddress) -> bool:
        """Free ``ip``; releasing a free or foreign IP is not an error (returns False)."""
        parsed = _parse_ip(ip)
        off = None if parsed is None else self._offset(parsed)
        return off is not None and self._bitmap.release(off)

    def allocated(self) -> list[IPAddress]:
        return [ipaddress.ip_address(self._base + off) for off in self._bitmap.values()]


@dataclass(frozen=True, slots=True)
class ClusterIPSnapshot:
    """The state of every family's range: ``((cidr, bits), ...)`` in family order."""

    ranges: tuple[tuple[str, BitmapSnapshot], ...]


class ClusterIPAllocator(Transactional["ClusterIPTransaction"]):
    """One :class:`IPRange` per family; the first CIDR is the primary family."""

    __slots__ = ("_ranges",)

    def __init__(self, cidrs: Sequence[str], *, rng: random.Random | None = None) -> None:
        if not 1 <= len(cidrs) <= 2:
            raise ValueError(f"expected one or two service CIDRs, got {len(cidrs)}")
        ranges = [IPRange(c, rng=rng) for c in cidrs]
        if len(ranges) == 2 and ranges[0].family == ranges[1].family:
            raise ValueError("two service CIDRs must be of different IP families")
        self._ranges: dict[IPFamily, IPRange] = {r.family: r for r in ranges}

    @property
    def families(self) -> tuple[IPFamily, ...]:
        return tuple(self._ranges)

    @property
    def ranges(self) -> tuple[IPRange, ...]:
        return tuple(self._ranges.values())

    def range(self, family: IPFamily) -> IPRange | None:
        return self._ranges.get(family)

    def range_for(self, ip: str | IPAddress) -> IPRange | None:
        parsed = _parse_ip(ip)
        return None if parsed is None else self._ranges.get(family_of(parsed))

    def has(self, ip: str | IPAddress) -> bool:
        r = self.range_for(ip)
        return r is not None and r.has(ip)

    def begin(self) -> ClusterIPTransaction:
        return ClusterIPTransaction(self)

    def snapshot(self) -> ClusterIPSnapshot:
        return ClusterIPSnapshot(tuple((str(r), r.snapshot()) for r in self._ranges.values()))

    def restore(self, snap: ClusterIPSnapshot) -> None:
        mine = [str(r) for r in self._ranges.values()]
        theirs = [cidr for cidr, _ in snap.ranges]
        if mine != theirs:
            raise ValueError(f"snapshot of ranges {theirs} does not fit ranges {mine}")
        for r, (_, bits) in zip(self._ranges.values(), snap.ranges, strict=True):
            r.restore(bits)


class ClusterIPTransaction(Transaction[IPAddress]):
    """One Service's IPs, all or nothing (see :mod:`lbctl.allocators.txn`)."""

    __slots__ = ("_alloc",)

    def __init__(self, alloc: ClusterIPAllocator) -> None:
        super().__init__()
        self._alloc = alloc

    def _free(self, value: IPAddress) -> None:
        r = self._alloc.range_for(value)
        if r is not None:
            r.release(value)

    def _range(self, family: IPFamily) -> IPRange:
        r = self._alloc.range(family)
        if r is None:
            raise NotInRangeError(f"this cluster has no {family} service range")
        return r

    def allocate(self, ip: str | IPAddress) -> IPAddress:
        parsed = _parse_ip(ip)
        r = None if parsed is None else self._alloc.range(family_of(parsed))
        if r is None:
            primary = self._alloc.ranges[0]
            raise NotInRangeError(
                f"the provided IP ({ip}) is not in the valid range. "
                f"The range of valid IPs is {primary.network}"
            )
        return self._took(r.allocate(ip))

    def allocate_next(self, family: IPFamily) -> IPAddress:
        return self._took(self._range(family).allocate_next())

    def release_deferred(self, value: str | IPAddress) -> None:
        """Release ``value`` on commit (an unparseable value is ignored)."""
        parsed = _parse_ip(value)
        if parsed is not None:
            super().release_deferred(parsed)

    def allocate_service_ips(
        self, *, families: Sequence[IPFamily | str], cluster_ips: Sequence[str]
    ) -> tuple[str, ...]:
        """Allocate one IP per family, taking ``cluster_ips[i]`` where it is set.

        Mirrors kube-apiserver's create path: a requested IP that cannot be had is a
        422 on ``spec.clusterIPs`` ("failed to allocate IP X: ..."); an exhausted range
        is a 500 ("failed to allocate a serviceIP: range is full").
        """
        padded = list(cluster_ips) + [""] * max(0, len(families) - len(cluster_ips))
        out: list[str] = []
        for i, fam in enumerate(families):
            want = padded[i]
            if want:
                try:
                    out.append(str(self.allocate(want)))
                except NotInRangeError:
                    # kube-apiserver 1.33+ (ServiceCIDR allocator) words it so.
                    detail = f"failed to allocate IP {want}: {NOT_IN_SERVICE_CIDRS}"
                    raise InvalidAllocationError(
                        FieldErrors([invalid("spec.clusterIPs", padded, detail)])
                    ) from None
                except AlreadyAllocatedError as e:
                    detail = f"failed to allocate IP {want}: {e}"
                    raise InvalidAllocationError(
                        FieldErrors([invalid("spec.clusterIPs", padded, detail)])
                    ) from e
            else:
                try:
                    out.append(str(self.allocate_next(IPFamily(fam))))
                except (RangeFullError, NotInRangeError) as e:
                    raise InternalAllocationError(f"failed to allocate a serviceIP: {e}") from e
        return tuple(out)
