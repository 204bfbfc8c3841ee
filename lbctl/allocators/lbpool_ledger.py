"""The pool allocator's bookkeeping: who holds which address, and what is free.

Addresses are ``(version, int)`` pairs inside the ledger. Each pool address entry has a
:class:`FreeBlock` that finds its first free address without scanning from the start:
a *frontier* (every address below it is held, buggy, or in the heap) plus a min-heap of
addresses released below the frontier. A sequential fill is amortised O(1) per address;
a release is O(log n). Entries in the heap that were taken again are dropped lazily.

The ledger enforces nothing about requests; :mod:`lbctl.allocators.lbpool` decides what
to hold and calls :meth:`Ledger.hold` / :meth:`Ledger.unhold`. Invariant kept by that
caller: every holder of one address has the same (sharing, backend) key, and their
ports are disjoint.
"""

from __future__ import annotations

import bisect
import heapq
import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from lbctl.allocators.lbpool_model import LBAllocationReason, LBRequest, PoolUsage, PortKey
from lbctl.allocators.lbpools import AddressBlock, ParsedPool, format_ip, is_buggy_ip

__all__ = [
    "Addr",
    "FreeBlock",
    "Holding",
    "IPUse",
    "Ledger",
    "PoolState",
    "addr_text",
    "parse_addr",
]

Addr = tuple[int, int]
"""``(ip version, integer value)``."""


def addr_text(addr: Addr) -> str:
    return format_ip(addr[0], addr[1])


def parse_addr(text: str) -> Addr:
    """Parse an IP address (surrounding blanks allowed, zones not); raises ValueError."""
    text = text.strip()
    if "%" in text:
        raise ValueError(f"zoned address {text!r}")
    ip = ipaddress.ip_address(text)
    return (ip.version, int(ip))


class FreeBlock:
    """Free-address finder for one address entry of a pool."""

    __slots__ = ("avoid_buggy", "block", "free_below", "frontier", "released", "used")

    def __init__(self, block: AddressBlock, *, avoid_buggy: bool) -> None:
        self.block = block
        self.avoid_buggy = avoid_buggy and block.version == 4
        self.used: set[int] = set()
        self.frontier = block.first
        self.released: list[int] = []
        """Min-heap holding every free address below the frontier (and stale entries)."""
        self.free_below = 0
        """How many addresses below the frontier are free (the live heap entries)."""

    def allows(self, value: int) -> bool:
        b = self.block
        return b.first <= value <= b.last and not (self.avoid_buggy and is_buggy_ip(4, value))

    def first_free(self) -> int | None:
        used, heap = self.used, self.released
        while heap and heap[0] in used:
            heapq.heappop(heap)
        f, last, avoid = self.frontier, self.block.last, self.avoid_buggy
        while f <= last and (f in used or (avoid and (f & 0xFF) in (0, 0xFF))):
            f += 1
        self.frontier = f
        if heap and (f > last or heap[0] < f):
            return heap[0]
        return f if f <= last else None

    def take(self, value: int) -> None:
        self.used.add(value)
        if value < self.frontier:
            self.free_below -= 1  # its heap entry is now stale

    def give_back(self, value: int) -> None:
        self.used.discard(value)
        if value < self.frontier:
            self.free_below += 1
            heapq.heappush(self.released, value)
            if len(self.released) - self.free_below > max(64, self.free_below):
                # Mostly stale entries: keep only the free ones (amortised O(log n)).
                used = self.used
                self.released = sorted({v for v in self.released if v not in used})


class PoolState:
    """A parsed pool with one :class:`FreeBlock` per address entry, in listed order."""

    __slots__ = ("blocks", "name", "parsed")

    def __init__(self, parsed: ParsedPool) -> None:
        self.parsed = parsed
        self.name = parsed.name
        avoid = parsed.pool.avoid_buggy_ips
        self.blocks = [FreeBlock(b, avoid_buggy=avoid) for b in parsed.blocks]

    def has_family(self, version: int) -> bool:
        return any(fb.block.version == version for fb in self.blocks)

    def order(self, addr: Addr) -> tuple[int, int] | None:
        """Position of ``addr`` in this pool's address order, or None if not usable here."""
        for i, fb in enumerate(self.blocks):
            if fb.block.version == addr[0] and fb.allows(addr[1]):
                return (i, addr[1])
        return None

    def first_free(self, version: int) -> tuple[int, int] | None:
        for i, fb in enumerate(self.blocks):
            if fb.block.version == version:
                value = fb.first_free()
                if value is not None:
                    return (i, value)
        return None


@dataclass(slots=True)
class IPUse:
    sharing: str
    backend: str
    holders: dict[str, tuple[PortKey, ...]] = field(default_factory=dict)
    """Key -> its ports on this address."""
    pool: str | None = None
    """The pool that may hand it out (None: outside every pool)."""
    block: FreeBlock | None = None


@dataclass(slots=True)
class Holding:
    request: LBRequest
    addrs: tuple[Addr, ...]
    pool: str
    stale: bool
    """Not all addresses lie (usable) in one configured pool; re-allocated on next assign."""


class Ledger:
    """Who holds what, over one fixed set of pools."""

    def __init__(self, parsed: Sequence[ParsedPool]) -> None:
        self.pools: dict[str, PoolState] = {p.name: PoolState(p) for p in parsed}
        entries = sorted(
            ((fb.block.version, fb.block.first, fb.block.last, ps, fb))
            for ps in self.pools.values()
            for fb in ps.blocks
        )
        # Blocks never overlap (validated), so one bisect finds the only candidate.
        self._starts = [(v, first) for v, first, _, _, _ in entries]
        self._entries = [(ps, fb) for _, _, _, ps, fb in entries]
        self.ips: dict[Addr, IPUse] = {}
        self.holdings: dict[str, Holding] = {}
        self.shared: dict[str, set[Addr]] = {}

    def locate(self, addr: Addr) -> tuple[PoolState, FreeBlock] | None:
        """The pool and block that may hand out ``addr`` (None: outside every pool)."""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i < 0:
            return None
        ps, fb = self._entries[i]
        if fb.block.version != addr[0] or not fb.allows(addr[1]):
            return None
        return ps, fb

    def home(self, addrs: Iterable[Addr]) -> str | None:
        """The one pool all ``addrs`` lie in, or None."""
        names = set()
        for a in addrs:
            found = self.locate(a)
            if found is None:
                return None
            names.add(found[0].name)
        return names.pop() if len(names) == 1 else None

    # -- holding and releasing -------------------------------------------------------

    def hold(self, request: LBRequest, addrs: Sequence[Addr], *, pool: str) -> Holding:
        """Record ``request.key`` as holding exactly ``addrs`` (replacing what it held).

        ``pool`` is kept as the pool name only when the addresses are in no single pool.
        """
        key, ports = request.key, request.ports
        sharing, backend = request.sharing_key, request.backend_key
        old = self.holdings.get(key)
        if old is not None:
            for addr in old.addrs:
                if addr not in addrs:
                    self._drop(key, addr)
        home: str | None = ""  # "": none seen yet; None: no single pool
        for addr in addrs:
            use = self.ips.get(addr)
            if use is None:
                use = IPUse(sharing, backend)
                found = self.locate(addr)
                if found is not None:
                    use.pool, use.block = found[0].name, found[1]
                    found[1].take(addr[1])
                self.ips[addr] = use
            elif use.sharing != sharing:
                self._unindex(use.sharing, addr)
            use.sharing, use.backend = sharing, backend
            use.holders[key] = ports
            if sharing:
                self.shared.setdefault(sharing, set()).add(addr)
            home = use.pool if home in ("", use.pool) else None
        holding = Holding(request, tuple(addrs), home or pool, stale=not home)
        self.holdings[key] = holding
        return holding

    def unhold(self, key: str) -> Holding | None:
        holding = self.holdings.pop(key, None)
        if holding is not None:
            for addr in holding.addrs:
                self._drop(key, addr)
        return holding

    def _drop(self, key: str, addr: Addr) -> None:
        use = self.ips[addr]
        del use.holders[key]
        if not use.holders:
            del self.ips[addr]
            self._unindex(use.sharing, addr)
            if use.block is not None:
                use.block.give_back(addr[1])

    def _unindex(self, sharing: str, addr: Addr) -> None:
        addrs = self.shared.get(sharing)
        if addrs is not None:
            addrs.discard(addr)
            if not addrs:
                del self.shared[sharing]

    # -- queries ---------------------------------------------------------------------

    def sharing_problem(
        self, addr: Addr, request: LBRequest
    ) -> tuple[LBAllocationReason, str] | None:
        """Why ``request`` may not hold ``addr`` next to its current holders (None: it may)."""
        use = self.ips.get(addr)
        if use is None:
            return None
        others = sorted(k for k in use.holders if k != request.key)
        if not others:
            return None  # the only holder may change its keys and ports in place
        ip, who = addr_text(addr), ", ".join(others)
        if not use.sharing:
            return (
                LBAllocationReason.REQUESTED_IP_IN_USE,
                f"{ip} is in use by {who}, which does not allow sharing",
            )
        if not request.sharing_key:
            return (
                LBAllocationReason.REQUESTED_IP_IN_USE,
                f"{ip} is in use by {who} and {request.key} does not allow sharing",
            )
        if use.sharing != request.sharing_key:
            return (
                LBAllocationReason.SHARING_CONFLICT,
                f"sharing key {request.sharing_key!r} does not match {use.sharing!r} "
                f"of {who} on {ip}",
            )
        if use.backend != request.backend_key:
            return (
                LBAllocationReason.SHARING_CONFLICT,
                f"backend key {request.backend_key!r} does not match {use.backend!r} "
                f"of {who} on {ip}",
            )
        taken = {p for k in others for p in use.holders[k]}
        clash = sorted(taken.intersection(request.ports))
        if clash:
            ports = ", ".join(f"{proto}/{port}" for proto, port in clash)
            return (
                LBAllocationReason.SHARING_CONFLICT,
                f"port(s) {ports} already in use on {ip} by {who}",
            )
        return None

    def first_available(self, pool: PoolState, version: int, request: LBRequest) -> Addr | None:
        """First address of ``pool`` (in its address order) free or shareable by ``request``."""
        best = pool.first_free(version)
        if request.sharing_key:
            for addr in self.shared.get(request.sharing_key, ()):
                if addr[0] != version:
                    continue
                pos = pool.order(addr)
                if pos is None or (best is not None and pos >= best):
                    continue
                if self.sharing_problem(addr, request) is None:
                    best = pos
        return None if best is None else (version, best[1])

    def usage(self) -> Iterator[PoolUsage]:
        for ps in self.pools.values():
            held = {4: 0, 6: 0}
            for fb in ps.blocks:
                held[fb.block.version] += len(fb.used)
            cap4, cap6 = ps.parsed.capacity(4), ps.parsed.capacity(6)
            yield PoolUsage(ps.name, held[4], cap4 - held[4], held[6], cap6 - held[6])
