"""LoadBalancer IP pools (MetalLB ``IPAddressPool``) as values, parsed and validated once.

A :class:`Pool` lists its addresses as text, each a CIDR (``192.0.2.0/28``,
``2001:db8::/120``; host bits are masked as Go's ``net.ParseCIDR`` does) or an
inclusive range (``192.0.2.10-192.0.2.20``) of one family. :func:`parse_pools` turns a
set of pools into :class:`ParsedPool` values (one :class:`AddressBlock` per address
entry, in the order listed) or raises :class:`PoolConfigError` listing every problem:
bad CIDR or range, start after end, mixed families, duplicate names, invalid selectors,
and **overlapping addresses**, within one pool or between two, naming both pools and
the overlapping addresses. Nothing downstream ever sees an unvalidated pool.

``serviceAllocation`` (MetalLB ``allocateTo``): ``priority`` (lower wins, ``None`` is
unset and sorts last; unlike the CRD, 0 is a real priority here -- a converter from the
CRD maps 0 to ``None``), ``namespaces`` and ``namespace_selectors`` (the Service's
namespace must be listed or its labels match one selector), ``service_selectors`` (the
Service's labels must match one). Both kinds of constraint must hold when present.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lbctl.allocators.labelselector import LabelSelector

__all__ = [
    "AddressBlock",
    "ParsedPool",
    "Pool",
    "PoolConfigError",
    "PoolIssue",
    "PoolIssueKind",
    "check_pools",
    "format_ip",
    "is_buggy_ip",
    "parse_pools",
]


def format_ip(version: int, value: int) -> str:
    """The canonical text of an address given as an integer."""
    if version == 4:
        return f"{value >> 24}.{(value >> 16) & 0xFF}.{(value >> 8) & 0xFF}.{value & 0xFF}"
    return str(ipaddress.IPv6Address(value))


def is_buggy_ip(version: int, value: int) -> bool:
    """An IPv4 address ending in .0 or .255 (dropped by some broken CPE firmware)."""
    return version == 4 and (value & 0xFF) in (0, 0xFF)


@dataclass(frozen=True, slots=True)
class Pool:
    """One address pool, as configured."""

    name: str
    addresses: tuple[str, ...]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    priority: int | None = None
    namespaces: tuple[str, ...] = ()
    namespace_selectors: tuple[LabelSelector, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()

    def __post_init__(self) -> None:
        # Accept lists from callers, keep tuples (the value stays immutable).
        for name in ("addresses", "namespaces", "namespace_selectors", "service_selectors"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def has_service_allocation(self) -> bool:
        """Whether ``serviceAllocation`` is set (such a pool is never a fallback pool)."""
        return self.priority is not None or bool(
            self.namespaces or self.namespace_selectors or self.service_selectors
        )

    def allows(
        self,
        *,
        namespace: str,
        namespace_labels: Mapping[str, str],
        service_labels: Mapping[str, str],
    ) -> bool:
        """Whether a Service in ``namespace`` with these labels may take addresses from here."""
        if self.namespaces or self.namespace_selectors:
            in_ns = namespace in self.namespaces or any(
                s.matches(namespace_labels) for s in self.namespace_selectors
            )
            if not in_ns:
                return False
        if self.service_selectors:
            return any(s.matches(service_labels) for s in self.service_selectors)
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "addresses": list(self.addresses),
            "autoAssign": self.auto_assign,
            "avoidBuggyIPs": self.avoid_buggy_ips,
            "priority": self.priority,
            "namespaces": list(self.namespaces),
            "namespaceSelectors": [s.to_json() for s in self.namespace_selectors],
            "serviceSelectors": [s.to_json() for s in self.service_selectors],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Pool:
        """Inverse of :meth:`to_json`; raises ``ValueError`` on a wrong shape."""
        priority = obj.get("priority")
        if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool)):
            raise ValueError(f"pool priority must be an integer or null, got {priority!r}")
        return cls(
            name=str(obj["name"]),
            addresses=tuple(str(a) for a in obj.get("addresses") or ()),
            auto_assign=bool(obj.get("autoAssign", True)),
            avoid_buggy_ips=bool(obj.get("avoidBuggyIPs", False)),
            priority=priority,
            namespaces=tuple(str(n) for n in obj.get("namespaces") or ()),
            namespace_selectors=tuple(
                LabelSelector.from_json(s) for s in obj.get("namespaceSelectors") or ()
            ),
            service_selectors=tuple(
                LabelSelector.from_json(s) for s in obj.get("serviceSelectors") or ()
            ),
        )


@dataclass(frozen=True, slots=True)
class AddressBlock:
    """One address entry of a pool: the inclusive integer range it covers."""

    version: int
    first: int
    last: int
    text: str
    """The entry as configured (used in messages)."""

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def contains(self, version: int, value: int) -> bool:
        return version == self.version and self.first <= value <= self.last

    def buggy_count(self) -> int:
        """How many addresses of the block end in .0 or .255 (0 for IPv6)."""
        if self.version != 4:
            return 0
        return sum(((self.last - r) // 256) - ((self.first - 1 - r) // 256) for r in (0, 255))

    def span(self, first: int, last: int) -> str:
        a, b = format_ip(self.version, first), format_ip(self.version, last)
        return a if first == last else f"{a}-{b}"


@dataclass(frozen=True, slots=True)
class ParsedPool:
    pool: Pool
    blocks: tuple[AddressBlock, ...]

    @property
    def name(self) -> str:
        return self.pool.name

    def capacity(self, version: int) -> int:
        """Usable addresses of one family (buggy ones excluded when they are avoided)."""
        total = 0
        for b in self.blocks:
            if b.version == version:
                total += b.size - (b.buggy_count() if self.pool.avoid_buggy_ips else 0)
        return total


class PoolIssueKind(StrEnum):
    INVALID_NAME = "InvalidName"
    DUPLICATE_NAME = "DuplicateName"
    NO_ADDRESSES = "NoAddresses"
    INVALID_ADDRESS = "InvalidAddress"
    INVALID_RANGE = "InvalidRange"
    MIXED_FAMILIES = "MixedFamilies"
    OVERLAP = "Overlap"
    INVALID_SELECTOR = "InvalidSelector"


@dataclass(frozen=True, slots=True)
class PoolIssue:
    """One problem of a pool configuration."""

    kind: PoolIssueKind
    pool: str
    message: str
    other_pool: str = ""
    """For overlaps: the other pool (the same name when one pool overlaps itself)."""

    def __str__(self) -> str:
        return self.message


class PoolConfigError(ValueError):
    """The pool configuration is invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: Iterable[PoolIssue]) -> None:
        self.issues: tuple[PoolIssue, ...] = tuple(issues)
        super().__init__("invalid pool configuration: " + "; ".join(map(str, self.issues)))


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    text = text.strip()
    if "%" in text:
        raise ValueError(f"zoned address {text!r}")
    return ipaddress.ip_address(text)


def _parse_block(pool: str, text: str) -> AddressBlock | PoolIssue:
    if "-" in text:
        start_text, _, end_text = text.partition("-")
        try:
            start, end = _parse_ip(start_text), _parse_ip(end_text)
        except ValueError:
            return PoolIssue(
                PoolIssueKind.INVALID_ADDRESS, pool, f"pool {pool!r}: invalid IP range {text!r}"
            )
        if start.version != end.version:
            return PoolIssue(
                PoolIssueKind.MIXED_FAMILIES,
                pool,
                f"pool {pool!r}: range {text!r} mixes IPv{start.version} and IPv{end.version}",
            )
        if int(start) > int(end):
            return PoolIssue(
                PoolIssueKind.INVALID_RANGE,
                pool,
                f"pool {pool!r}: range {text!r} starts after it ends ({start} > {end})",
            )
        return AddressBlock(start.version, int(start), int(end), text.strip())
    if "/" not in text:
        return PoolIssue(
            PoolIssueKind.INVALID_ADDRESS,
            pool,
            f"pool {pool!r}: {text!r} is neither a CIDR nor a start-end range",
        )
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return PoolIssue(
            PoolIssueKind.INVALID_ADDRESS, pool, f"pool {pool!r}: invalid CIDR {text!r}"
        )
    return AddressBlock(
        net.version, int(net.network_address), int(net.broadcast_address), text.strip()
    )


def _overlaps(blocks: list[tuple[AddressBlock, str]]) -> list[PoolIssue]:
    """Every block that overlaps an earlier one, found by one sweep in address order."""
    issues: list[PoolIssue] = []
    ordered = sorted(blocks, key=lambda bp: (bp[0].version, bp[0].first, bp[0].last))
    widest: tuple[AddressBlock, str] | None = None
    for block, pool in ordered:
        if (
            widest is not None
            and widest[0].version == block.version
            and block.first <= widest[0].last
        ):
            other, other_pool = widest
            span = block.span(block.first, min(block.last, other.last))
            where = (
                f"pool {pool!r} lists overlapping addresses"
                if pool == other_pool
                else f"pools {other_pool!r} and {pool!r} overlap"
            )
            issues.append(
                PoolIssue(
                    PoolIssueKind.OVERLAP,
                    pool,
                    f"{where} on {span} ({other_pool}: {other.text!r}, {pool}: {block.text!r})",
                    other_pool=other_pool,
                )
            )
        if widest is None or widest[0].version != block.version or block.last > widest[0].last:
            widest = (block, pool)
    return issues


def check_pools(pools: Iterable[Pool]) -> tuple[list[ParsedPool], list[PoolIssue]]:
    """Parse every pool; return the parsed pools and every problem found ([] if valid)."""
    issues: list[PoolIssue] = []
    parsed: list[ParsedPool] = []
    seen: set[str] = set()
    all_blocks: list[tuple[AddressBlock, str]] = []
    for pool in pools:
        name = pool.name
        if not name:
            issues.append(PoolIssue(PoolIssueKind.INVALID_NAME, name, "a pool has an empty name"))
        elif name in seen:
            issues.append(
                PoolIssue(
                    PoolIssueKind.DUPLICATE_NAME, name, f"duplicate definition of pool {name!r}"
                )
            )
        seen.add(name)
        if not pool.addresses:
            issues.append(
                PoolIssue(PoolIssueKind.NO_ADDRESSES, name, f"pool {name!r} has no addresses")
            )
        blocks: list[AddressBlock] = []
        for text in pool.addresses:
            result = _parse_block(name, text)
            if isinstance(result, PoolIssue):
                issues.append(result)
            else:
                blocks.append(result)
                all_blocks.append((result, name))
        for field_name, selectors in (
            ("namespaceSelectors", pool.namespace_selectors),
            ("serviceSelectors", pool.service_selectors),
        ):
            for i, sel in enumerate(selectors):
                issues.extend(
                    PoolIssue(
                        PoolIssueKind.INVALID_SELECTOR,
                        name,
                        f"pool {name!r} {field_name}[{i}]: {p}",
                    )
                    for p in sel.problems()
                )
        parsed.append(ParsedPool(pool, tuple(blocks)))
    issues.extend(_overlaps(all_blocks))
    return parsed, issues


def parse_pools(pools: Iterable[Pool]) -> list[ParsedPool]:
    """Parse and validate; raises :class:`PoolConfigError` naming every problem."""
    parsed, issues = check_pools(pools)
    if issues:
        raise PoolConfigError(issues)
    return parsed
