"""Who announces each address: the same answer on every speaker, without coordination.

For each load-balancer IP, the candidates are the live speakers' nodes that

- an L2Advertisement covering the Service (its pool, its service selectors) allows
  (``nodeSelectors``),
- are not labelled ``node.kubernetes.io/exclude-from-external-load-balancers`` and are
  not ``NetworkUnavailable``,
- have a ready endpoint of the Service (``externalTrafficPolicy: Local``); with
  ``Cluster``, the Service must have a ready endpoint somewhere (MetalLB's rule: never
  attract traffic nothing can serve).

The Services sharing one IP are one unit: their candidate sets are intersected (the
union when that is empty, so a shared IP is never dropped by a mismatch) and ONE node
wins for all of them. The winner is the candidate with the smallest
``sha256(f"{node}#{ip}")``: a node joining moves only the IPs it now sorts first for,
and a node leaving moves only its own. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lbctl.speaker.model import Advertisement, NodeView, ServiceView

__all__ = ["Announcement", "elect", "plan", "score"]


def score(node: str, ip: str) -> str:
    """The sort key of ``node`` for ``ip`` (lower wins)."""
    return hashlib.sha256(f"{node}#{ip}".encode()).hexdigest()


def elect(ip: str, candidates: Iterable[str]) -> str | None:
    """The winner among ``candidates`` for ``ip`` (None when there are none)."""
    return min(candidates, key=lambda n: (score(n, ip), n), default=None)


@dataclass(frozen=True, slots=True)
class Announcement:
    """One IP, the node that announces it, for which Services, on which interfaces."""

    ip: str
    node: str
    services: tuple[str, ...]
    interfaces: tuple[str, ...] | None
    """On ``node``: the advertisements' interfaces; None: every usable interface."""


def _candidates(  # noqa: PLR0917 -- one private call site, all inputs of one decision
    svc: ServiceView,
    ads: Sequence[Advertisement],
    nodes: Mapping[str, NodeView],
    live: frozenset[str],
    ready: frozenset[str] | None,
    pool_labels: Mapping[str, str],
) -> set[str]:
    if ready is None:
        return set()
    covering = [a for a in ads if a.covers(svc.pool, pool_labels, svc)]
    out: set[str] = set()
    for name in live:
        node = nodes.get(name)
        if node is None or node.excluded or node.network_unavailable:
            continue
        if svc.local and name not in ready:
            continue
        if any(a.allows_node(node) for a in covering):
            out.add(name)
    return out


def _interfaces(
    svcs: Sequence[ServiceView],
    ads: Sequence[Advertisement],
    node: NodeView,
    pool_labels: Mapping[str, Mapping[str, str]],
) -> tuple[str, ...] | None:
    names: set[str] = set()
    for svc in svcs:
        for ad in ads:
            if ad.covers(svc.pool, pool_labels.get(svc.pool or "", {}), svc) and ad.allows_node(
                node
            ):
                if not ad.interfaces:
                    return None
                names.update(ad.interfaces)
    return tuple(sorted(names))


def plan(
    services: Iterable[ServiceView],
    *,
    ads: Sequence[Advertisement],
    nodes: Mapping[str, NodeView],
    live: frozenset[str],
    ready: Mapping[str, frozenset[str] | None],
    pool_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Announcement]:
    """Every announced IP -> its :class:`Announcement` (IPs nobody may announce are absent).

    ``ready``: Service key -> :func:`~lbctl.speaker.model.ready_nodes` of its slices
    (missing: no endpoints). ``pool_labels``: IPPool name -> its labels (for
    ``ipPoolSelectors``)."""
    labels = pool_labels or {}
    by_ip: dict[str, list[ServiceView]] = {}
    for svc in services:
        for ip in svc.ips:
            by_ip.setdefault(ip, []).append(svc)
    out: dict[str, Announcement] = {}
    for ip, svcs in sorted(by_ip.items()):
        svcs.sort(key=lambda s: s.key)
        sets = [
            _candidates(s, ads, nodes, live, ready.get(s.key), labels.get(s.pool or "", {}))
            for s in svcs
        ]
        common = set.intersection(*sets) if sets else set()
        winner = elect(ip, common or set().union(*sets))
        if winner is None:
            continue
        out[ip] = Announcement(
            ip=ip,
            node=winner,
            services=tuple(s.key for s in svcs),
            interfaces=_interfaces(svcs, ads, nodes[winner], labels),
        )
    return out
