"""Building a pool allocator's ledger again: new pools, a snapshot, or a rebuild.

Each function builds a fresh :class:`Ledger` and leaves the old one untouched, so the
allocator swaps it in only on success.

* :func:`rehome` -- new pools: every holding is kept; one whose IPs are no longer in
  one pool is reported ``LoadBalancerIPOutOfRange`` (its IPs stay marked).
* :func:`snapshot_of` / :func:`from_snapshot` -- a plain JSON value, round trip exact.
* :func:`rebuild` -- from what Services hold, first holder wins; duplicates, IPs out of
  every pool and leaks are reported as :class:`Finding`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from lbctl.allocators.findings import Finding, FindingKind
from lbctl.allocators.lbpool_ledger import Addr, Holding, Ledger, addr_text, parse_addr
from lbctl.allocators.lbpool_model import LBRequest, request_from_json, request_to_json
from lbctl.allocators.lbpools import ParsedPool, Pool, parse_pools

__all__ = [
    "SNAPSHOT_VERSION",
    "SnapshotError",
    "from_snapshot",
    "misplaced",
    "rebuild",
    "rehome",
    "snapshot_of",
]

SNAPSHOT_VERSION: Final = 1


class SnapshotError(ValueError):
    """A snapshot is malformed or inconsistent (two non-sharing holders of one IP...)."""


def misplaced(led: Ledger, holding: Holding) -> list[Finding]:
    """Findings for a holding whose addresses are not all in one configured pool."""
    if not holding.stale:
        return []
    key = holding.request.key
    homes = {a: led.locate(a) for a in holding.addrs}
    outside = [a for a, found in homes.items() if found is None]
    if outside:
        return [
            Finding(
                FindingKind.LB_IP_OUT_OF_RANGE,
                addr_text(a),
                key,
                message=f"{addr_text(a)} held by {key} is in no pool; kept until {key} "
                "is assigned again",
            )
            for a in outside
        ]
    names = [found[0].name for found in homes.values() if found is not None]
    ips = [addr_text(a) for a in holding.addrs]
    return [
        Finding(
            FindingKind.LB_IP_OUT_OF_RANGE,
            ips[-1],
            key,
            message=f"{ips[-1]} held by {key} is in pool {names[-1]!r} but {ips[0]} is in "
            f"pool {names[0]!r}; dual-stack IPs must share a pool, {key} will be assigned again",
        )
    ]


def rehome(old: Ledger, parsed: Sequence[ParsedPool]) -> tuple[Ledger, list[Finding]]:
    led, findings = Ledger(parsed), []
    for key in sorted(old.holdings):
        h = old.holdings[key]
        findings.extend(misplaced(led, led.hold(h.request, h.addrs, pool=h.pool)))
    return led, findings


def snapshot_of(pools: Iterable[Pool], led: Ledger) -> dict[str, Any]:
    holdings = led.holdings
    return {
        "version": SNAPSHOT_VERSION,
        "pools": [p.to_json() for p in pools],
        "assignments": [
            {
                "request": request_to_json(holdings[k].request),
                "pool": holdings[k].pool,
                "ips": [addr_text(a) for a in holdings[k].addrs],
            }
            for k in sorted(holdings)
        ],
    }


def _load(snapshot: Mapping[str, Any]) -> tuple[tuple[Pool, ...], Ledger]:
    if snapshot.get("version") != SNAPSHOT_VERSION:
        raise SnapshotError(f"unsupported snapshot version {snapshot.get('version')!r}")
    pools = tuple(Pool.from_json(p) for p in snapshot.get("pools") or ())
    led = Ledger(parse_pools(pools))
    for item in snapshot.get("assignments") or ():
        req = request_from_json(item["request"])
        if req.key in led.holdings:
            raise SnapshotError(f"inconsistent snapshot: {req.key} appears twice")
        addrs = tuple(parse_addr(str(ip)) for ip in item["ips"])
        for addr in addrs:
            problem = led.sharing_problem(addr, req)
            if problem is not None:
                raise SnapshotError(f"inconsistent snapshot: {problem[1]}")
        led.hold(req, addrs, pool=str(item.get("pool", "")))
    return pools, led


def from_snapshot(snapshot: Mapping[str, Any]) -> tuple[tuple[Pool, ...], Ledger]:
    """Pools and ledger of a :func:`snapshot_of` value; raises :class:`SnapshotError`."""
    try:
        return _load(snapshot)
    except SnapshotError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise SnapshotError(f"malformed snapshot: {e!r}") from e


def _held_addrs(
    led: Ledger, req: LBRequest, ips: Iterable[str]
) -> tuple[list[Addr], list[Finding]]:
    """The addresses of ``ips`` that ``req`` may hold next to what ``led`` has marked."""
    key = req.key
    addrs: list[Addr] = []
    findings: list[Finding] = []
    for text in ips:
        try:
            addr = parse_addr(text)
        except ValueError:
            findings.append(
                Finding(
                    FindingKind.LB_IP_OUT_OF_RANGE,
                    text,
                    key,
                    message=f"{key} holds {text!r}, which is not an IP address",
                )
            )
            continue
        if any(a[0] == addr[0] for a in addrs):
            if addr not in addrs:
                findings.append(
                    Finding(
                        FindingKind.LB_IP_OUT_OF_RANGE,
                        text,
                        key,
                        message=f"{key} holds a second IPv{addr[0]} address {text}; ignored",
                    )
                )
            continue
        problem = led.sharing_problem(addr, req)
        if problem is not None:
            first, ip = next(iter(led.ips[addr].holders)), addr_text(addr)
            findings.append(
                Finding(
                    FindingKind.LB_IP_ALREADY_ALLOCATED,
                    ip,
                    key,
                    other=first,
                    message=f"{key} holds {ip}, already held by {first}: {problem[1]}",
                )
            )
            continue
        addrs.append(addr)
    return addrs, findings


def rebuild(
    old: Ledger, existing: Sequence[tuple[LBRequest, tuple[str, ...]]]
) -> tuple[Ledger, list[Finding]]:
    """A ledger holding what ``existing`` Services hold, and what does not add up."""
    led = Ledger([ps.parsed for ps in old.pools.values()])
    findings: list[Finding] = []
    for req, ips in existing:
        if req.key in led.holdings:
            continue  # a key is listed once; a repeat cannot hold more
        addrs, found = _held_addrs(led, req, ips)
        findings.extend(found)
        if addrs:
            prior = old.holdings.get(req.key)
            holding = led.hold(req, addrs, pool=prior.pool if prior else "")
            findings.extend(misplaced(led, holding))
    claimed = set(led.ips)
    for key in sorted(old.holdings):
        if key in led.holdings:
            continue
        gone = old.holdings[key]
        leaked = tuple(a for a in gone.addrs if a not in claimed)
        findings.extend(
            Finding(
                FindingKind.LB_IP_LEAK,
                addr_text(a),
                "",
                other=key,
                message=f"{addr_text(a)} is assigned to {key}, which no Service claims",
            )
            for a in leaked
        )
        if leaked:
            led.hold(gone.request, leaked, pool=gone.pool)
    return led, findings
