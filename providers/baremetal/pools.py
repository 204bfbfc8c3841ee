"""IPPool objects -> validated :class:`Pool` values, and the IPPool status. Pure, no I/O.

:func:`pool_from_object` reads one ``lbctl.io/v1alpha1`` IPPool (``serviceAllocation``
``priority`` 0 or unset -> ``None``, MetalLB's "unset, sorts last"). :func:`select_pools`
judges a set of them the way MetalLB's config does, but pool by pool instead of all or
nothing: pools are taken oldest first (``creationTimestamp``, then name) and a pool that
is malformed, or overlaps one already taken, is rejected with a :class:`PoolVerdict`
(reason ``Invalid`` or ``Overlap``, naming the other pool) while the others keep
serving. :func:`pool_status` computes the ``status`` an IPPool should carry:
assigned/available counts per family and the ``Ready`` and ``Exhausted`` conditions
(``lastTransitionTime`` kept while a condition's status does not change).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from lbctl.allocators.labelselector import LabelSelector
from lbctl.allocators.lbpool_model import PoolUsage
from lbctl.allocators.lbpools import Pool, PoolIssueKind, check_pools

__all__ = [
    "EXHAUSTED",
    "READY",
    "PoolSelection",
    "PoolVerdict",
    "VerdictReason",
    "pool_from_object",
    "pool_status",
    "select_pools",
]

READY: Final = "Ready"
EXHAUSTED: Final = "Exhausted"


class VerdictReason(StrEnum):
    OVERLAP = "Overlap"
    INVALID = "Invalid"


@dataclass(frozen=True, slots=True)
class PoolVerdict:
    """Why a pool is not used."""

    reason: VerdictReason
    message: str
    other_pool: str = ""
    """For ``Overlap``: the pool already holding the addresses."""


@dataclass(frozen=True, slots=True)
class PoolSelection:
    pools: tuple[Pool, ...]
    """The pools in use: valid, and free of overlaps among them."""
    rejected: Mapping[str, PoolVerdict]
    """Pool name -> why it is not used."""


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a list of strings")
    return tuple(value)


def _selectors(value: Any, what: str) -> tuple[LabelSelector, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ValueError(f"{what} must be a list of label selectors")
    out = []
    for i, sel in enumerate(value):
        try:
            out.append(LabelSelector.from_json(sel))
        except ValueError as e:
            raise ValueError(f"{what}[{i}]: {e}") from None
    return tuple(out)


def pool_from_object(obj: Mapping[str, Any]) -> Pool:
    """The :class:`Pool` an IPPool object stands for; ``ValueError`` on a wrong shape."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise ValueError("spec must be an object")
    alloc = spec.get("serviceAllocation") or {}
    if not isinstance(alloc, Mapping):
        raise ValueError("spec.serviceAllocation must be an object")
    priority = alloc.get("priority")
    if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool)):
        raise ValueError(f"spec.serviceAllocation.priority must be an integer, got {priority!r}")
    return Pool(
        name=str(meta.get("name") or ""),
        addresses=_strings(spec.get("addresses"), "spec.addresses"),
        auto_assign=spec.get("autoAssign", True) is not False,
        avoid_buggy_ips=spec.get("avoidBuggyIPs") is True,
        priority=priority or None,  # the CRD's 0 is "unset"
        namespaces=_strings(alloc.get("namespaces"), "spec.serviceAllocation.namespaces"),
        namespace_selectors=_selectors(
            alloc.get("namespaceSelectors"), "spec.serviceAllocation.namespaceSelectors"
        ),
        service_selectors=_selectors(
            alloc.get("serviceSelectors"), "spec.serviceAllocation.serviceSelectors"
        ),
    )


def _age(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), str(meta.get("name") or "")


def select_pools(
    objects: Iterable[Mapping[str, Any]], static: Sequence[Pool] = ()
) -> PoolSelection:
    """The usable pools among ``static`` (configured, taken first) and IPPool ``objects``."""
    taken: list[Pool] = []
    rejected: dict[str, PoolVerdict] = {}
    candidates: list[Pool | tuple[str, str]] = list(static)
    for obj in sorted(objects, key=_age):
        try:
            candidates.append(pool_from_object(obj))
        except ValueError as e:
            candidates.append((_age(obj)[1], str(e)))
    for cand in candidates:
        if isinstance(cand, tuple):
            name, problem = cand
            rejected[name] = PoolVerdict(VerdictReason.INVALID, f"pool {name!r}: {problem}")
            continue
        _, issues = check_pools([*taken, cand])
        if not issues:
            taken.append(cand)
            continue
        overlaps = [i for i in issues if i.kind == PoolIssueKind.OVERLAP]
        message = "; ".join(str(i) for i in issues)
        if overlaps and len(overlaps) == len(issues):
            first = overlaps[0]
            other = first.other_pool if first.pool == cand.name else first.pool
            rejected[cand.name] = PoolVerdict(VerdictReason.OVERLAP, message, other_pool=other)
        else:
            rejected[cand.name] = PoolVerdict(VerdictReason.INVALID, message)
    return PoolSelection(tuple(taken), rejected)


def _condition(
    previous: Mapping[str, Mapping[str, Any]],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: str,
) -> dict[str, Any]:
    text = "True" if status else "False"
    before = previous.get(type_) or {}
    since = before.get("lastTransitionTime") if before.get("status") == text else None
    out: dict[str, Any] = {
        "type": type_,
        "status": text,
        "lastTransitionTime": since or now,
        "reason": reason,
        "message": message,
    }
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def pool_status(
    obj: Mapping[str, Any],
    *,
    usage: PoolUsage | None,
    verdict: PoolVerdict | None,
    now: str,
) -> dict[str, Any]:
    """The ``status`` IPPool ``obj`` should have. ``usage``: its counts (None when the
    pool is not in use: all zero); ``verdict``: why it is not used (None: it is);
    ``now``: RFC 3339, for conditions that change."""
    meta = obj.get("metadata") or {}
    generation = meta.get("generation")
    generation = generation if isinstance(generation, int) else None
    conds = (obj.get("status") or {}).get("conditions") or []
    previous = {c.get("type", ""): c for c in conds if isinstance(c, Mapping)}
    u = usage or PoolUsage(str(meta.get("name") or ""), 0, 0, 0, 0)
    kw: dict[str, Any] = {"generation": generation, "now": now}
    if verdict is not None:
        ready = _condition(previous, READY, False, verdict.reason, verdict.message, **kw)
    else:
        ready = _condition(previous, READY, True, "Valid", "the pool hands out addresses", **kw)
    assigned, available = u.assigned_ipv4 + u.assigned_ipv6, u.available_ipv4 + u.available_ipv6
    if verdict is None and available == 0:
        exhausted = _condition(
            previous,
            EXHAUSTED,
            True,
            "NoFreeAddresses",
            f"all {assigned} addresses of the pool are assigned",
            **kw,
        )
    else:
        exhausted = _condition(
            previous,
            EXHAUSTED,
            False,
            "FreeAddresses" if verdict is None else "NotInUse",
            f"{available} of {assigned + available} addresses free"
            if verdict is None
            else "the pool is not in use",
            **kw,
        )
    return {
        "assignedIPv4": u.assigned_ipv4,
        "assignedIPv6": u.assigned_ipv6,
        "availableIPv4": u.available_ipv4,
        "availableIPv6": u.available_ipv6,
        "conditions": [ready, exhausted],
    }
