"""What the speaker decides from: its own value types, made once from API objects.

Nothing downstream of this module sees a raw object (MetalLB's ``internal/config``
idea): Nodes, L2Advertisements, IPPools, Services and EndpointSlices become
:class:`NodeView`, :class:`Advertisement`, :class:`ServiceView`, and the ready-node
sets of :func:`ready_nodes`. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from lbctl.allocators.labelselector import LabelSelector
from lbctl.domain.service import DecodeError, Service

__all__ = [
    "ANNOUNCED",
    "BAREMETAL_CLASS",
    "CONFLICT",
    "EXCLUDE_LABEL",
    "POOL_ANNOTATION",
    "SERVICE_NAME_LABEL",
    "Advertisement",
    "NodeView",
    "ServiceView",
    "announced_message",
    "node_of",
    "ready_nodes",
]

BAREMETAL_CLASS: Final = "lbctl.io/baremetal"
POOL_ANNOTATION: Final = "lbctl.io/ip-allocated-from-pool"
EXCLUDE_LABEL: Final = "node.kubernetes.io/exclude-from-external-load-balancers"
SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
ANNOUNCED: Final = "L2Announced"
"""Service condition: which node announces the Service's addresses, on which interfaces."""
CONFLICT: Final = "IPConflict"
"""Service condition: another host answered the probe for one of its addresses."""


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    labels = _meta(obj).get("labels")
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str) and v)


def _selectors(value: Any) -> tuple[LabelSelector, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(LabelSelector.from_json(v) for v in value if isinstance(v, Mapping))


def _any(selectors: tuple[LabelSelector, ...], labels: Mapping[str, str]) -> bool:
    """No selectors: everything; else any one of them."""
    return not selectors or any(s.matches(labels) for s in selectors)


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    labels: Mapping[str, str]
    network_unavailable: bool
    internal_ip: str | None

    @property
    def excluded(self) -> bool:
        """Labelled out of external load balancers (kube's well-known label)."""
        return EXCLUDE_LABEL in self.labels

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> NodeView:
        status = obj.get("status") or {}
        unavailable = any(
            isinstance(c, Mapping)
            and c.get("type") == "NetworkUnavailable"
            and c.get("status") == "True"
            for c in (status.get("conditions") or [])
        )
        internal = next(
            (
                str(a.get("address"))
                for a in (status.get("addresses") or [])
                if isinstance(a, Mapping) and a.get("type") == "InternalIP" and a.get("address")
            ),
            None,
        )
        return cls(str(_meta(obj).get("name") or ""), _labels(obj), unavailable, internal)


@dataclass(frozen=True, slots=True)
class Advertisement:
    """An L2Advertisement: which pools' addresses, from which nodes, on which interfaces."""

    name: str
    pools: tuple[str, ...] = ()
    pool_selectors: tuple[LabelSelector, ...] = ()
    node_selectors: tuple[LabelSelector, ...] = ()
    interfaces: tuple[str, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Advertisement:
        """``ValueError`` on a selector that does not parse."""
        spec = obj.get("spec") or {}
        if not isinstance(spec, Mapping):
            raise ValueError("spec must be an object")
        return cls(
            name=str(_meta(obj).get("name") or ""),
            pools=_strings(spec.get("ipPools")),
            pool_selectors=_selectors(spec.get("ipPoolSelectors")),
            node_selectors=_selectors(spec.get("nodeSelectors")),
            interfaces=_strings(spec.get("interfaces")),
            service_selectors=_selectors(spec.get("serviceSelectors")),
        )

    def covers(self, pool: str | None, pool_labels: Mapping[str, str], svc: ServiceView) -> bool:
        """Whether this advertisement announces ``svc``'s addresses from ``pool``.

        Pools: the named ones and those the selectors match; neither given: every pool.
        A Service whose pool is unknown is covered only by an advertisement of every pool.
        """
        if not _any(self.service_selectors, svc.labels):
            return False
        if not self.pools and not self.pool_selectors:
            return True
        if pool is None:
            return False
        if pool in self.pools:
            return True
        return any(s.matches(pool_labels) for s in self.pool_selectors)

    def allows_node(self, node: NodeView) -> bool:
        return _any(self.node_selectors, node.labels)


@dataclass(frozen=True, slots=True)
class ServiceView:
    """What the speaker needs of a LoadBalancer Service."""

    key: str
    """``namespace/name``."""
    labels: Mapping[str, str]
    ips: tuple[str, ...]
    """``status.loadBalancer.ingress[].ip``, normalised."""
    pool: str | None
    local: bool
    """``externalTrafficPolicy: Local``."""
    announced_by: str | None
    """The node its ``L2Announced`` condition names (None: never announced)."""

    @classmethod
    def from_service(cls, svc: Service, *, default_class: bool = False) -> ServiceView | None:
        """None unless a LoadBalancer Service of the bare-metal class (or unclassed with
        ``default_class``) that has addresses."""
        spec = svc.spec
        if spec.type != "LoadBalancer":
            return None
        lb_class = spec.load_balancer_class
        if lb_class != BAREMETAL_CLASS and not (lb_class is None and default_class):
            return None
        ips: list[str] = []
        for item in svc.status.ingress:
            try:
                ips.append(str(ipaddress.ip_address(item.ip)))
            except ValueError:
                continue
        if not ips:
            return None
        announced_by = None
        for c in svc.status.conditions:
            if c.type == ANNOUNCED and c.status == "True":
                announced_by = node_of(c.message)
        return cls(
            key=svc.key,
            labels=svc.metadata.labels,
            ips=tuple(dict.fromkeys(ips)),
            pool=svc.metadata.annotations.get(POOL_ANNOTATION) or None,
            local=spec.external_traffic_policy == "Local",
            announced_by=announced_by,
        )

    @classmethod
    def from_object(
        cls, obj: Mapping[str, Any], *, default_class: bool = False
    ) -> ServiceView | None:
        """:meth:`from_service` of a Service's JSON; None when it does not decode."""
        try:
            svc = Service.from_dict(obj)
        except DecodeError:
            return None
        return cls.from_service(svc, default_class=default_class)


def announced_message(node: str, interfaces: Iterable[str]) -> str:
    """The ``L2Announced`` condition's message (``node_of`` reads it back)."""
    return f"announced from node {node} on {','.join(sorted(interfaces)) or 'no interface'}"


def node_of(message: str) -> str | None:
    prefix = "announced from node "
    if not message.startswith(prefix):
        return None
    return message[len(prefix) :].split(" ", 1)[0] or None


def ready_nodes(slices: Iterable[Mapping[str, Any]]) -> frozenset[str] | None:
    """Nodes with a ready endpoint in ``slices`` (one Service's EndpointSlices);
    ``None`` when no endpoint is ready anywhere. An endpoint without ``ready`` counts as
    ready (the API's rule for an unknown condition); one without ``nodeName`` counts
    for the Service but not for a node."""
    nodes: set[str] = set()
    any_ready = False
    for sl in slices:
        for ep in sl.get("endpoints") or []:
            if not isinstance(ep, Mapping):
                continue
            cond = ep.get("conditions") or {}
            if isinstance(cond, Mapping) and cond.get("ready") is False:
                continue
            any_ready = True
            if isinstance(ep.get("nodeName"), str):
                nodes.add(ep["nodeName"])
    return frozenset(nodes) if any_ready else None
