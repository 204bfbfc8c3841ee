"""Rebuild and repair of ClusterIP / NodePort state from existing Services."""

from __future__ import annotations

from typing import Any

from lbctl.allocators.clusterip import ClusterIPAllocator
from lbctl.allocators.findings import FindingKind
from lbctl.allocators.nodeport import NodePortAllocator
from lbctl.allocators.rebuild import repair_cluster_ips, repair_node_ports
from lbctl.domain.service import Service

CIDRS = ("10.0.0.0/24",)


def svc(
    name: str,
    *,
    ips: list[str] | None = None,
    ports: list[dict[str, Any]] | None = None,
    type_: str = "ClusterIP",
    hc: int = 0,
) -> Service:
    spec: dict[str, Any] = {"type": type_, "ports": ports or [{"port": 80, "protocol": "TCP"}]}
    if ips is not None:
        spec["clusterIPs"] = ips
        spec["clusterIP"] = ips[0] if ips else ""
    if hc:
        spec["healthCheckNodePort"] = hc
    return Service.from_dict({"metadata": {"name": name, "namespace": "default"}, "spec": spec})


def kinds(findings: list[Any]) -> list[tuple[str, str, str]]:
    return [(f.kind.value, f.value, f.owner) for f in findings]


def test_rebuild_at_start_marks_everything_and_reports_problems() -> None:
    services = [
        svc("a", ips=["10.0.0.10"]),
        svc("b", ips=["10.0.0.10"]),  # duplicate of a
        svc("c", ips=["10.9.0.1"]),  # out of range
        svc("d", ips=["not-an-ip"]),
        svc("e", ips=["None"]),  # headless: holds nothing
        svc("f", ips=["10.0.0.11"]),
        Service.from_dict(
            {
                "metadata": {"name": "x", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "example.org"},
            }
        ),
    ]
    alloc, rep = repair_cluster_ips(None, services, cidrs=CIDRS)
    assert kinds(rep.findings) == [
        ("ClusterIPAlreadyAllocated", "10.0.0.10", "default/b"),
        ("ClusterIPOutOfRange", "10.9.0.1", "default/c"),
        ("ClusterIPNotValid", "not-an-ip", "default/d"),
    ]
    assert rep.findings[0].other == "default/a"
    assert sorted(str(i) for r in alloc.ranges for i in r.allocated()) == ["10.0.0.10", "10.0.0.11"]
    # A restart never hands out what a Service already holds.
    with alloc.transaction() as txn:
        got = {txn.allocate_next(alloc.families[0]) for _ in range(alloc.ranges[0].free)}
    assert "10.0.0.10" not in {str(i) for i in got}


def test_repair_marks_unallocated_and_frees_leak_after_three_passes() -> None:
    current = ClusterIPAllocator(list(CIDRS))
    with current.transaction() as txn:
        txn.allocate("10.0.0.50")  # leaked: nobody holds it
    services = [svc("a", ips=["10.0.0.10"])]  # held but not marked
    leaks: dict[str, int] = {}
    for attempt in (1, 2):
        current, rep = repair_cluster_ips(current, services, cidrs=CIDRS, leaks=leaks)
        if attempt == 1:
            assert kinds(rep.of_kind(FindingKind.CLUSTER_IP_NOT_ALLOCATED)) == [
                ("ClusterIPNotAllocated", "10.0.0.10", "default/a")
            ]
        assert current.has("10.0.0.50"), f"leak freed after {attempt} pass(es)"
        leaks = rep.leaks
        assert leaks == {"10.0.0.50": attempt}
    current, rep = repair_cluster_ips(current, services, cidrs=CIDRS, leaks=leaks)
    assert not current.has("10.0.0.50")
    assert current.has("10.0.0.10")
    assert "released" in rep.of_kind(FindingKind.CLUSTER_IP_LEAK)[0].message
    assert rep.leaks == {}


def test_leak_counter_resets_when_the_value_is_held_again() -> None:
    current = ClusterIPAllocator(list(CIDRS))
    with current.transaction() as txn:
        txn.allocate("10.0.0.50")
    current, rep = repair_cluster_ips(current, [], cidrs=CIDRS)
    assert rep.leaks == {"10.0.0.50": 1}
    current, rep = repair_cluster_ips(
        current, [svc("late", ips=["10.0.0.50"])], cidrs=CIDRS, leaks=rep.leaks
    )
    assert rep.leaks == {}
    assert rep.findings == []


def test_node_ports_shared_by_tcp_and_udp_are_not_duplicates() -> None:
    ports = [
        {"port": 53, "protocol": "TCP", "nodePort": 30053},
        {"port": 53, "protocol": "UDP", "nodePort": 30053},
    ]
    services = [
        svc("dns", type_="NodePort", ports=ports),
        svc("dup", type_="NodePort", ports=[{"port": 80, "protocol": "TCP", "nodePort": 30053}]),
        svc("far", type_="NodePort", ports=[{"port": 80, "protocol": "TCP", "nodePort": 80}]),
        svc(
            "lb",
            type_="LoadBalancer",
            ports=[{"port": 80, "protocol": "TCP", "nodePort": 30100}],
            hc=30101,
        ),
    ]
    current = NodePortAllocator()
    with current.transaction() as txn:
        txn.allocate(30053)
        txn.allocate(30999)  # leak
    fresh = NodePortAllocator()
    rep = repair_node_ports(current, services, fresh=fresh)
    assert kinds(rep.findings) == [
        ("PortAlreadyAllocated", "30053", "default/dup"),
        ("PortOutOfRange", "80", "default/far"),
        ("PortNotAllocated", "30100", "default/lb"),
        ("PortNotAllocated", "30101", "default/lb"),
        ("PortLeak", "30999", ""),
    ]
    assert fresh.allocated() == [30053, 30100, 30101, 30999]
    assert rep.leaks == {"30999": 1}


def test_rebuild_of_a_consistent_state_reports_nothing() -> None:
    current = ClusterIPAllocator(list(CIDRS))
    services = []
    with current.transaction() as txn:
        for i in range(20):
            ip = str(txn.allocate_next(current.families[0]))
            services.append(svc(f"s{i}", ips=[ip]))
    rebuilt, rep = repair_cluster_ips(current, services, cidrs=CIDRS)
    assert rep.findings == []
    assert rebuilt.snapshot() == current.snapshot()
