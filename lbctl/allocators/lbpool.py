"""LoadBalancer IP pool allocator with MetalLB ``IPAddressPool`` semantics. Pure, in memory.

Like MetalLB's ``internal/allocator``, but it takes only lbctl's values
(:class:`LBRequest`), never a Service.

How an address is chosen (:meth:`LBPoolAllocator.assign`):

1. Requested IPs (``spec.loadBalancerIP`` / ``loadBalancerIPs``): all in one pool (a
   .0/.255 address of a pool avoiding buggy IPs is in no pool), the requested pool if
   one is named, a pool whose serviceAllocation admits the Service, and each IP free or
   shareable.
2. Requested pool: it must exist and admit the Service (it need not be auto-assign).
3. Otherwise the auto-assign pools whose serviceAllocation admits the Service, by
   priority (lower first, unset last, then by name); if none of them can serve, the
   auto-assign pools without serviceAllocation, by name.

Within a pool the first address in address order (entries as listed, ascending inside
each) that is free or shareable wins. Dual-stack takes one address per family from one
pool, all or nothing; with ``prefer_dual_stack`` the first pool with both families wins,
else the first with the primary family, else the first with the other, and a later
assign adds the missing family from the same pool when it can.

Sharing: same non-empty sharing key, same backend key, no (protocol, port) in common.
An address is freed when its last holder releases it.

Assign is idempotent: a key keeps its addresses while they still suit the request (in
one configured pool that admits it, requested IPs/pool unchanged, sharing still
allowed; a family the request no longer wants is let go). Otherwise the request is
served afresh, and if that fails the key keeps what it had: a failed assign changes
nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from lbctl.allocators.findings import Finding
from lbctl.allocators.labelselector import LabelRequirement, LabelSelector, SelectorOperator
from lbctl.allocators.lbpool_ledger import Addr, Holding, Ledger, PoolState, addr_text, parse_addr
from lbctl.allocators.lbpool_model import (
    Assignment,
    LBAllocationError,
    LBAllocationReason,
    LBRequest,
    PoolUsage,
    PortKey,
)
from lbctl.allocators.lbpool_persist import (
    SnapshotError,
    from_snapshot,
    rebuild,
    rehome,
    snapshot_of,
)
from lbctl.allocators.lbpools import Pool, PoolConfigError, PoolIssue, PoolIssueKind, parse_pools
from lbctl.domain.service import IPFamily

__all__ = [
    "Assignment",
    "LBAllocationError",
    "LBAllocationReason",
    "LBPoolAllocator",
    "LBRequest",
    "LabelRequirement",
    "LabelSelector",
    "Pool",
    "PoolConfigError",
    "PoolIssue",
    "PoolIssueKind",
    "PoolUsage",
    "PortKey",
    "SelectorOperator",
    "SnapshotError",
]

_R = LBAllocationReason
_VERSIONS: Final[dict[tuple[object, ...], tuple[int, ...]]] = {
    (IPFamily.IPV4,): (4,),
    (IPFamily.IPV6,): (6,),
    (IPFamily.IPV4, IPFamily.IPV6): (4, 6),
    (IPFamily.IPV6, IPFamily.IPV4): (6, 4),
}
"""The valid ``families`` values (StrEnum members hash and compare as their strings)."""


@dataclass(frozen=True, slots=True)
class _Wanted:
    """A request that passed validation, with its families and requested IPs parsed."""

    request: LBRequest
    versions: tuple[int, ...]
    addrs: tuple[Addr, ...]

    @property
    def may_settle(self) -> bool:
        """PreferDualStack: one family will do."""
        return self.request.prefer_dual_stack and len(self.versions) == 2


def _fail(reason: LBAllocationReason, key: str, message: str) -> LBAllocationError:
    return LBAllocationError(reason, message, key=key)


def _check(req: LBRequest) -> _Wanted:
    """Validate a request; raises InvalidRequest."""
    key = req.key
    if not key:
        raise _fail(_R.INVALID_REQUEST, key, "the request has no Service key")
    try:
        versions = _VERSIONS.get(req.families)
    except TypeError:  # unhashable junk
        versions = None
    if versions is None:
        raise _fail(
            _R.INVALID_REQUEST, key, f"want one or two distinct IP families, got {req.families!r}"
        )
    for item in req.ports:
        ok = isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
        port = item[1] if ok and item[0] else None
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise _fail(_R.INVALID_REQUEST, key, f"invalid port {item!r}")
    if not req.requested_ips:
        return _Wanted(req, versions, ())
    addrs: list[Addr] = []
    for text in req.requested_ips:
        try:
            addrs.append(parse_addr(text))
        except ValueError:
            raise _fail(_R.INVALID_REQUEST, key, f"invalid requested IP {text!r}") from None
    asked = {a[0] for a in addrs}
    if len(asked) != len(addrs):
        raise _fail(_R.INVALID_REQUEST, key, "at most one requested IP per family")
    wanted = _Wanted(req, versions, tuple(addrs))
    if not (asked <= set(versions) if wanted.may_settle else asked == set(versions)):
        fams = "/".join(f"IPv{v}" for v in versions)
        raise _fail(
            _R.INVALID_REQUEST,
            key,
            f"requested IP(s) {', '.join(req.requested_ips)} do not match the "
            f"Service's IP families ({fams})",
        )
    return wanted


def _view(holding: Holding) -> Assignment:
    return Assignment(holding.request.key, holding.pool, tuple(map(addr_text, holding.addrs)))


def _admits(ps: PoolState, req: LBRequest) -> bool:
    return ps.parsed.pool.allows(
        namespace=req.namespace,
        namespace_labels=req.namespace_labels,
        service_labels=req.service_labels,
    )


class LBPoolAllocator:
    """Assigns LoadBalancer IPs from pools. Synchronous and not thread-safe."""

    def __init__(self, pools: Sequence[Pool] = ()) -> None:
        self._pools: tuple[Pool, ...] = ()
        self._ledger = Ledger(())
        self._pinned: list[PoolState] = []
        self._fallback: list[PoolState] = []
        if pools:
            self.set_pools(pools)

    # -- configuration -----------------------------------------------------------------

    @property
    def pools(self) -> tuple[Pool, ...]:
        return self._pools

    def set_pools(self, pools: Sequence[Pool]) -> list[Finding]:
        """Replace the pools; raises :class:`PoolConfigError` (and changes nothing) if invalid.

        Every assignment is kept and re-homed to the pool now holding its IPs; one whose
        IPs are in no single pool any more is kept (its IPs are not handed out) and
        reported as ``LoadBalancerIPOutOfRange``; its next :meth:`assign` moves it.
        """
        ledger, findings = rehome(self._ledger, parse_pools(pools))
        self._install(tuple(pools), ledger)
        return findings

    def _install(self, pools: tuple[Pool, ...], ledger: Ledger) -> None:
        self._pools, self._ledger = pools, ledger
        states = list(ledger.pools.values())
        self._pinned = sorted(
            (ps for ps in states if ps.parsed.pool.has_service_allocation),
            key=lambda ps: (ps.parsed.pool.priority is None, ps.parsed.pool.priority or 0, ps.name),
        )
        self._fallback = sorted(
            (ps for ps in states if not ps.parsed.pool.has_service_allocation),
            key=lambda ps: ps.name,
        )

    # -- assignment --------------------------------------------------------------------

    def assign(self, request: LBRequest) -> Assignment:
        """Give ``request.key`` addresses; raises :class:`LBAllocationError`, changing nothing."""
        want = _check(request)
        led = self._ledger
        current = led.holdings.get(request.key)
        kept = self._kept(current, want) if current is not None else None
        if current is not None and kept is not None:
            return _view(led.hold(request, self._topped_up(current, kept, want), pool=current.pool))
        if current is not None:
            led.unhold(request.key)
        try:
            pool, addrs = self._choose(want)
        except LBAllocationError:
            if current is not None:
                led.hold(current.request, current.addrs, pool=current.pool)
            raise
        return _view(led.hold(request, addrs, pool=pool))

    def release(self, key: str) -> Assignment | None:
        """Drop what ``key`` holds; an IP is freed once its last sharer is gone."""
        holding = self._ledger.unhold(key)
        return None if holding is None else _view(holding)

    def _kept(self, current: Holding, want: _Wanted) -> tuple[Addr, ...] | None:
        """The current addresses still suiting the request (a family dropped is let go),
        or None when the request must be served afresh."""
        req, led = want.request, self._ledger
        if current.stale or not _admits(led.pools[current.pool], req):
            return None
        if req.requested_pool and req.requested_pool != current.pool:
            return None
        kept = tuple(a for a in current.addrs if a[0] in want.versions)
        if want.addrs and set(want.addrs) != set(kept):
            return None
        have = {a[0] for a in kept}
        if not (have if want.may_settle else have == set(want.versions)):
            return None
        if any(led.sharing_problem(a, req) is not None for a in kept):
            return None
        return kept

    def _topped_up(
        self, current: Holding, kept: tuple[Addr, ...], want: _Wanted
    ) -> tuple[Addr, ...]:
        """``kept`` in the request's order, plus the missing family of PreferDualStack."""
        by_version = {a[0]: a for a in kept}
        missing = [v for v in want.versions if v not in by_version]
        if missing and not want.addrs:
            pool = self._ledger.pools[current.pool]
            extra = self._ledger.first_available(pool, missing[0], want.request)
            if extra is not None:
                by_version[extra[0]] = extra
        if want.addrs:
            return want.addrs
        return tuple(by_version[v] for v in want.versions if v in by_version)

    def _choose(self, want: _Wanted) -> tuple[str, tuple[Addr, ...]]:
        req, led = want.request, self._ledger
        if want.addrs:
            return self._choose_requested(want)
        if req.requested_pool:
            ps = led.pools.get(req.requested_pool)
            if ps is None:
                raise _fail(_R.POOL_NOT_FOUND, req.key, f"unknown pool {req.requested_pool!r}")
            if not _admits(ps, req):
                raise _fail(
                    _R.POOL_NOT_ALLOWED,
                    req.key,
                    f"pool {ps.name!r} does not serve {req.key} (serviceAllocation)",
                )
            tiers = [[ps]]
        else:
            pinned = [ps for ps in self._pinned if ps.parsed.pool.auto_assign and _admits(ps, req)]
            fallback = [ps for ps in self._fallback if ps.parsed.pool.auto_assign]
            if not pinned and not fallback:
                raise _fail(_R.NO_POOL_MATCHES, req.key, f"no auto-assign pool serves {req.key}")
            tiers = [pinned, fallback]
        for tier in tiers:
            got = self._pick(tier, want)
            if got is not None:
                return got
        raise self._no_room([ps for tier in tiers for ps in tier], want)

    def _pick(
        self, pools: Iterable[PoolState], want: _Wanted
    ) -> tuple[str, tuple[Addr, ...]] | None:
        """MetalLB's pool choice: the first pool with every family, else (Prefer) partial."""
        led, req = self._ledger, want.request
        partial: dict[int, tuple[str, tuple[Addr, ...]]] = {}
        for ps in pools:
            if len(want.versions) == 1:  # the common case, without temporaries
                one = led.first_available(ps, want.versions[0], req)
                if one is not None:
                    return ps.name, (one,)
                continue
            found = {v: led.first_available(ps, v, req) for v in want.versions}
            if all(a is not None for a in found.values()):
                return ps.name, tuple(a for a in found.values() if a is not None)
            if want.may_settle:
                for v, a in found.items():
                    if a is not None:
                        partial.setdefault(v, (ps.name, (a,)))
        for v in want.versions:
            if v in partial:
                return partial[v]
        return None

    def _no_room(self, pools: list[PoolState], want: _Wanted) -> LBAllocationError:
        key, fams = want.request.key, " and ".join(f"IPv{v}" for v in want.versions)
        names = ", ".join(repr(ps.name) for ps in pools)
        need = any if want.may_settle else all
        if any(need(ps.has_family(v) for v in want.versions) for ps in pools):
            return _fail(_R.POOL_EXHAUSTED, key, f"no free {fams} address in pool(s) {names}")
        return _fail(_R.FAMILY_UNAVAILABLE, key, f"pool(s) {names} have no {fams} addresses")

    def _choose_requested(self, want: _Wanted) -> tuple[str, tuple[Addr, ...]]:
        req, led = want.request, self._ledger
        ips = ", ".join(req.requested_ips)
        home = led.home(want.addrs)
        if home is None:
            for addr in want.addrs:
                if led.locate(addr) is None:
                    raise _fail(
                        _R.REQUESTED_IP_NOT_IN_POOL,
                        req.key,
                        f"{addr_text(addr)} is not in any pool (nor a buggy .0/.255 address "
                        "of a pool avoiding them)",
                    )
            raise _fail(
                _R.REQUESTED_IP_NOT_IN_POOL, req.key, f"requested IPs {ips} are in different pools"
            )
        if req.requested_pool and req.requested_pool != home:
            if req.requested_pool not in led.pools:
                raise _fail(_R.POOL_NOT_FOUND, req.key, f"unknown pool {req.requested_pool!r}")
            raise _fail(
                _R.REQUESTED_IP_NOT_IN_POOL,
                req.key,
                f"requested IP(s) {ips} are in pool {home!r}, not in the requested "
                f"pool {req.requested_pool!r}",
            )
        if not _admits(led.pools[home], req):
            raise _fail(
                _R.POOL_NOT_ALLOWED,
                req.key,
                f"pool {home!r} does not serve {req.key} (serviceAllocation)",
            )
        for addr in want.addrs:
            problem = led.sharing_problem(addr, req)
            if problem is not None:
                raise _fail(problem[0], req.key, problem[1])
        return home, want.addrs

    # -- queries -----------------------------------------------------------------------

    def get(self, key: str) -> Assignment | None:
        holding = self._ledger.holdings.get(key)
        return None if holding is None else _view(holding)

    def assignments(self) -> list[Assignment]:
        """Every assignment, by key."""
        holdings = self._ledger.holdings
        return [_view(holdings[k]) for k in sorted(holdings)]

    def holders(self, ip: str) -> tuple[str, ...]:
        """The keys holding ``ip`` (sorted; several only when shared). ValueError if not an IP."""
        use = self._ledger.ips.get(parse_addr(ip))
        return () if use is None else tuple(sorted(use.holders))

    def pool_of(self, ip: str) -> str | None:
        """The pool that may hand out ``ip``, or None. ValueError if not an IP."""
        found = self._ledger.locate(parse_addr(ip))
        return None if found is None else found[0].name

    def usage(self) -> dict[str, PoolUsage]:
        """Per pool: distinct addresses assigned and still available, per family."""
        return {u.pool: u for u in sorted(self._ledger.usage(), key=lambda u: u.pool)}

    # -- persistence and rebuild ---------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Pools and assignments as a plain JSON-serialisable value."""
        return snapshot_of(self._pools, self._ledger)

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Replace everything with a :meth:`snapshot`; raises :class:`SnapshotError`."""
        self._install(*from_snapshot(snapshot))

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> LBPoolAllocator:
        alloc = cls()
        alloc.restore(snapshot)
        return alloc

    def rebuild(self, existing: Sequence[tuple[LBRequest, tuple[str, ...]]]) -> list[Finding]:
        """Replace the assignments with what Services hold (their status IPs), in order.

        The first holder of an IP keeps it. Reported: ``LoadBalancerIPAlreadyAllocated``
        for an IP a later Service holds but may not share (not marked for it);
        ``LoadBalancerIPOutOfRange`` for an IP outside every pool (still marked, so it is
        never handed out); ``LoadBalancerIPLeak`` (``other`` = the key) for an IP this
        allocator had assigned to a key absent from ``existing`` -- it stays assigned
        until the caller releases the key, after seeing the leak on repeated passes.
        """
        ledger, findings = rebuild(self._ledger, existing)
        self._install(self._pools, ledger)
        return findings
