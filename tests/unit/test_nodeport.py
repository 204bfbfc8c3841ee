"""NodePort allocator: ordered scenario tables per Service and exact upstream texts."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from lbctl.allocators.errors import InternalAllocationError, InvalidAllocationError
from lbctl.allocators.nodeport import (
    DEFAULT_NODE_PORT_RANGE,
    NodePortAllocator,
    NodePortSpec,
    PortRange,
    PortRequest,
)


def lb(*ports: PortRequest, local: bool = False, hc: int = 0, alloc: bool = True) -> NodePortSpec:
    return NodePortSpec(
        ports=ports,
        uses_node_ports=True,
        allocate_new=alloc,
        needs_health_check=local,
        health_check_node_port=hc,
    )


def tcp(port: int, node_port: int = 0) -> PortRequest:
    return PortRequest("TCP", port, node_port)


def udp(port: int, node_port: int = 0) -> PortRequest:
    return PortRequest("UDP", port, node_port)


@dataclass(frozen=True)
class Step:
    desc: str
    spec: NodePortSpec
    want: tuple[int | str, ...] = ()  # exact ports, "dyn" (upper band), "-" (none)
    want_hc: int | str = 0
    error: str | None = None  # exact str() of the error
    field: str | None = None
    used_after: int | None = None


SCENARIO = [
    Step("requested port in range", lb(tcp(80, 30080)), want=(30080,), used_after=1),
    Step(
        "requested port taken",
        lb(tcp(80, 30080)),
        error="spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated",
        field="spec.ports[0].nodePort",
        used_after=1,
    ),
    Step(
        "requested port out of range",
        lb(tcp(80, 80)),
        error="spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid "
        "range. The range of valid ports is 30000-32767",
        used_after=1,
    ),
    Step(
        "second port fails: first is rolled back",
        lb(tcp(80, 30100), tcp(81, 30080)),
        error="spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated",
        field="spec.ports[1].nodePort",
        used_after=1,
    ),
    Step(
        "TCP and UDP with one port number share one nodePort",
        lb(tcp(53), udp(53)),
        want=("dyn", "same"),
        used_after=2,
    ),
    Step(
        "the UDP port's requested value is shared by the TCP port",
        lb(tcp(54), udp(54, 30054)),
        want=(30054, 30054),
        used_after=3,
    ),
    Step(
        "eTP Local gets a health-check port",
        lb(tcp(80), local=True),
        want=("dyn",),
        want_hc="dyn",
        used_after=5,
    ),
    Step(
        "requested health-check port",
        lb(tcp(80), local=True, hc=30200),
        want=("dyn",),
        want_hc=30200,
        used_after=7,
    ),
    Step(
        "requested health-check port taken (500, upstream text)",
        lb(tcp(80), local=True, hc=30200),
        error="failed to allocate requested HealthCheck NodePort 30200: provided port is "
        "already allocated",
        used_after=7,
    ),
    Step(
        "allocateLoadBalancerNodePorts false: none allocated",
        lb(tcp(80), alloc=False),
        want=("-",),
        used_after=7,
    ),
    Step(
        "allocateLoadBalancerNodePorts false still honours a request",
        lb(tcp(80, 30300), tcp(81), alloc=False),
        want=(30300, "-"),
        used_after=8,
    ),
    Step(
        "ClusterIP services take nothing", NodePortSpec(ports=(tcp(80),)), want=("-",), used_after=8
    ),
]


def test_scenario() -> None:
    alloc = NodePortAllocator(rng=random.Random(7))
    assert (alloc.size, alloc.static_band) == (2768, 86)
    dyn_floor = DEFAULT_NODE_PORT_RANGE.base + 86
    for step in SCENARIO:
        try:
            with alloc.transaction() as txn:
                got = txn.allocate_service(step.spec)
        except InvalidAllocationError as e:
            assert step.error == str(e.errors[0]), step.desc
            assert step.field in (None, e.errors[0].field), step.desc
            assert e.errors[0].reason == "FieldValueInvalid"
        except InternalAllocationError as e:
            assert step.error == str(e), step.desc
        else:
            assert step.error is None, f"{step.desc}: expected {step.error}, got {got}"
            for want, have in zip(step.want, got.node_ports, strict=True):
                if want == "dyn":
                    assert have >= dyn_floor, f"{step.desc}: {have} not in the dynamic band"
                elif want == "same":
                    assert have == got.node_ports[0], step.desc
                elif want == "-":
                    assert have == 0, step.desc
                else:
                    assert have == want, step.desc
            if step.want_hc == "dyn":
                assert got.health_check_node_port >= dyn_floor, step.desc
            else:
                assert got.health_check_node_port == step.want_hc, step.desc
        if step.used_after is not None:
            assert alloc.used == step.used_after, step.desc


def test_whole_range_then_full_is_500() -> None:
    alloc = NodePortAllocator(PortRange.parse("30000-30099"), rng=random.Random(1))
    with alloc.transaction() as txn:
        got = {txn.allocate_next() for _ in range(100)}
    assert got == set(range(30000, 30100))
    with (
        pytest.raises(
            InternalAllocationError, match=r"^failed to allocate a nodePort: range is full$"
        ),
        alloc.transaction() as txn,
    ):
        txn.allocate_service(lb(tcp(80)))


def test_one_port_range() -> None:
    alloc = NodePortAllocator(PortRange.parse("31000-31000"))
    assert (alloc.size, alloc.static_band) == (1, 0)
    with alloc.transaction() as txn:
        assert txn.allocate_service(lb(tcp(80), udp(80))).node_ports == (31000, 31000)
    with pytest.raises(InternalAllocationError), alloc.transaction() as txn:
        txn.allocate_service(lb(tcp(81)))
    assert alloc.used == 1


def test_update_keeps_releases_and_adds() -> None:
    alloc = NodePortAllocator(rng=random.Random(2))
    old = lb(tcp(80, 30080), tcp(443, 30443))
    with alloc.transaction() as txn:
        txn.allocate_service(old)
    new = lb(tcp(80, 30080), tcp(8080))  # drop 443, add 8080
    with alloc.transaction() as txn:
        got = txn.update_service(old=old, new=new)
        assert alloc.has(30443), "released before commit"
    assert got.node_ports[0] == 30080
    assert alloc.has(got.node_ports[1])
    assert not alloc.has(30443)
    assert alloc.used == 2


def test_update_to_cluster_ip_releases_everything() -> None:
    alloc = NodePortAllocator()
    old = lb(tcp(80, 30080), local=True, hc=30081)
    with alloc.transaction() as txn:
        txn.allocate_service(old)
    assert alloc.used == 2
    with alloc.transaction() as txn:
        got = txn.update_service(old=old, new=NodePortSpec(ports=(tcp(80),)))
    assert got.node_ports == (0,)
    assert alloc.used == 0


def test_update_health_check_transitions() -> None:
    alloc = NodePortAllocator()
    old = lb(tcp(80, 30080))
    with alloc.transaction() as txn:
        txn.allocate_service(old)
    local = lb(tcp(80, 30080), local=True)
    with alloc.transaction() as txn:
        got = txn.update_service(old=old, new=local)
    assert got.health_check_node_port and alloc.has(got.health_check_node_port)
    local = lb(tcp(80, 30080), local=True, hc=got.health_check_node_port)
    with alloc.transaction() as txn:
        back = txn.update_service(old=local, new=old)
    assert back.health_check_node_port == 0
    assert alloc.allocated() == [30080]


def test_failed_update_changes_nothing() -> None:
    alloc = NodePortAllocator()
    with alloc.transaction() as txn:
        txn.allocate_service(lb(tcp(80, 30080)))
        txn.allocate_service(lb(tcp(80, 30090)))
    old = lb(tcp(80, 30080))
    before = alloc.snapshot()
    with pytest.raises(InvalidAllocationError), alloc.transaction() as txn:
        txn.update_service(old=old, new=lb(tcp(80, 30080), tcp(81), tcp(82, 30090)))
    assert alloc.snapshot() == before


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("30000-32767", True),
        ("1-1", True),
        ("100-99", False),
        ("0-10", False),
        ("a-b", False),
        ("30000", False),
        ("1-65536", False),
    ],
)
def test_port_range_parse(text: str, ok: bool) -> None:
    if ok:
        assert str(PortRange.parse(text)) == text
    else:
        with pytest.raises(ValueError):
            PortRange.parse(text)
