"""``lbctl up`` until the embedded API server and controller exist: the allocation job.

Reads the example manifests, runs every Service through what kube-apiserver does on
create (defaulting, IP families, validation, ClusterIP and NodePort allocation, all
or nothing) and what a MetalLB-style controller does for ``type: LoadBalancer``
(an address from the pools), and renders the result like ``kubectl get services -A``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lbctl.allocators.clusterip import ClusterIPAllocator
from lbctl.allocators.errors import ServiceAllocationError
from lbctl.allocators.labelselector import LabelSelector
from lbctl.allocators.lbpool import LBAllocationError, LBPoolAllocator, Pool, PoolConfigError
from lbctl.allocators.lbrequest import lb_request_from_service
from lbctl.allocators.nodeport import NodePortAllocator, NodePortSpec
from lbctl.domain.defaults import apply_defaults, init_ip_families
from lbctl.domain.service import DecodeError, Service, ServiceType
from lbctl.domain.validation import validate_service
from lbctl.settings import Settings

__all__ = ["DemoError", "Row", "render_table", "run_allocations", "run_demo"]


class DemoError(Exception):
    """The examples cannot be read; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class Row:
    namespace: str
    name: str
    type: str
    cluster_ip: str
    external_ip: str
    ports: str
    status: str


def _load(examples: Path) -> list[dict[str, Any]]:
    if not examples.is_dir():
        raise DemoError(f"examples directory {examples} does not exist")
    docs: list[dict[str, Any]] = []
    for path in sorted(examples.glob("*.yaml")):
        try:
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if isinstance(doc, dict):
                    docs.append(doc)
        except yaml.YAMLError as e:
            raise DemoError(f"{path}: {' '.join(str(e).split())}") from None
    return docs


def _selectors(items: Any) -> tuple[LabelSelector, ...]:
    return tuple(LabelSelector.from_json(s) for s in items or ())


def pool_from_manifest(doc: Mapping[str, Any]) -> Pool:
    """An ``IPPool`` (lbctl.io/v1alpha1) manifest as the allocator's :class:`Pool`."""
    spec = doc.get("spec") or {}
    alloc = spec.get("serviceAllocation") or {}
    return Pool(
        name=str((doc.get("metadata") or {}).get("name", "")),
        addresses=tuple(str(a) for a in spec.get("addresses") or ()),
        auto_assign=bool(spec.get("autoAssign", True)),
        avoid_buggy_ips=bool(spec.get("avoidBuggyIPs", False)),
        priority=alloc.get("priority"),
        namespaces=tuple(alloc.get("namespaces") or ()),
        namespace_selectors=_selectors(alloc.get("namespaceSelectors")),
        service_selectors=_selectors(alloc.get("serviceSelectors")),
    )


def _ports(svc: Service) -> str:
    parts = []
    for p in svc.spec.ports:
        node = f":{p.node_port}" if p.node_port else ""
        parts.append(f"{p.port}{node}/{p.protocol}")
    return ",".join(parts) or "<none>"


def _admit(svc: Service, clusterips: ClusterIPAllocator, nodeports: NodePortAllocator) -> Service:
    """What kube-apiserver does with a new Service, in its order: defaults, IP families,
    allocation, then validation (a failure gives every allocation back)."""
    svc = apply_defaults(svc)
    svc, errors = init_ip_families(svc, cluster_families=clusterips.families)
    if errors:
        raise ValueError(f"Invalid: {errors.summary()}")
    with clusterips.transaction() as ips, nodeports.transaction() as ports:
        spec = svc.spec
        if spec.type != ServiceType.EXTERNAL_NAME and not spec.is_headless:
            got = ips.allocate_service_ips(families=spec.ip_families, cluster_ips=spec.cluster_ips)
            svc = svc.replace_spec(cluster_ip=got[0], cluster_ips=got)
        result = ports.allocate_service(NodePortSpec.of(svc))
        new_ports = tuple(
            dataclasses.replace(p, node_port=n)
            for p, n in zip(svc.spec.ports, result.node_ports, strict=True)
        )
        svc = svc.replace_spec(
            ports=new_ports, health_check_node_port=result.health_check_node_port
        )
        errors = validate_service(svc)
        if errors:
            raise ValueError(f"Invalid: {errors.summary()}")
    return svc


def run_allocations(
    docs: Iterable[Mapping[str, Any]], *, settings: Settings, seed: int | None = None
) -> list[Row]:
    rng = random.Random(seed)
    clusterips = ClusterIPAllocator(settings.service_cidrs, rng=rng)
    nodeports = NodePortAllocator(settings.port_range, rng=rng)
    lbs = LBPoolAllocator()
    docs = list(docs)
    try:
        lbs.set_pools([pool_from_manifest(d) for d in docs if d.get("kind") == "IPPool"])
    except PoolConfigError as e:
        raise DemoError(f"IPPool: {e}") from None
    # The first address of the primary range belongs to default/kubernetes.
    kube = clusterips.ranges[0].first()
    with clusterips.transaction() as txn:
        txn.allocate(kube)
    rows = [Row("default", "kubernetes", "ClusterIP", str(kube), "<none>", "443/TCP", "Allocated")]
    for doc in docs:
        if doc.get("kind") != "Service":
            continue
        meta = doc.get("metadata") or {}
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
        try:
            svc = Service.from_dict({**doc, "metadata": {**meta, "namespace": ns}})
            svc = _admit(svc, clusterips, nodeports)
        except (DecodeError, ValueError, ServiceAllocationError) as e:
            rows.append(
                Row(
                    ns,
                    name,
                    str((doc.get("spec") or {}).get("type", "")),
                    "",
                    "",
                    "",
                    str(e) if str(e).startswith("Invalid") else f"Invalid: {e}",
                )
            )
            continue
        external, status = "<none>", "Allocated"
        if svc.spec.type == ServiceType.LOAD_BALANCER:
            try:
                got = lbs.assign(lb_request_from_service(svc, namespace_labels={}))
                external = ",".join(got.ips)
                status = f"Allocated from pool {got.pool}"
            except LBAllocationError as e:
                external, status = "<pending>", f"Pending: {e}"
        cluster_ip = ",".join(svc.spec.cluster_ips) or svc.spec.cluster_ip or "<none>"
        rows.append(Row(ns, name, svc.spec.type, cluster_ip, external, _ports(svc), status))
    return rows


def render_table(rows: Iterable[Row]) -> str:
    header = ("NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "STATUS")
    table = [header] + [
        (r.namespace, r.name, r.type, r.cluster_ip, r.external_ip, r.ports, r.status) for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = []
    for row in table:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        lines.append("   ".join([*cells, row[-1]]))
    return "\n".join(lines)


def run_demo(settings: Settings, *, examples: Path, seed: int | None = None) -> str:
    rows = run_allocations(_load(examples), settings=settings, seed=seed)
    families = "/".join(str(f) for f in ClusterIPAllocator(settings.service_cidrs).families)
    head = (
        f"lbctl allocation job: service CIDRs {', '.join(settings.service_cidrs)} ({families}), "
        f"node ports {settings.port_range}, examples from {examples}\n"
    )
    return head + "\n" + render_table(rows)
