"""The speaker's pure decisions: who announces each IP, who is alive, what the API says."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbctl.speaker.election import elect, plan, score
from lbctl.speaker.membership import (
    Heartbeat,
    Membership,
    decode_heartbeat,
    encode_heartbeat,
)
from lbctl.speaker.model import (
    EXCLUDE_LABEL,
    Advertisement,
    NodeView,
    ServiceView,
    announced_message,
    node_of,
    ready_nodes,
)

NODES = ("n1", "n2", "n3")


def node(name: str, *, labels: Mapping[str, str] | None = None, down: bool = False) -> NodeView:
    return NodeView(name, dict(labels or {"zone": "a"}), down, None)


def svc(
    key: str,
    *ips: str,
    pool: str | None = "default",
    local: bool = False,
    labels: Mapping[str, str] | None = None,
) -> ServiceView:
    return ServiceView(key, dict(labels or {}), ips, pool, local, None)


def run_plan(
    services: list[ServiceView],
    *,
    ads: list[Advertisement] | None = None,
    nodes: list[NodeView] | None = None,
    live: tuple[str, ...] = NODES,
    ready: Mapping[str, frozenset[str] | None] | None = None,
    pool_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, tuple[str, tuple[str, ...], tuple[str, ...] | None]]:
    nodes = nodes if nodes is not None else [node(n) for n in NODES]
    if ready is None:
        ready = {s.key: frozenset(NODES) for s in services}
    got = plan(
        services,
        ads=ads if ads is not None else [Advertisement("all")],
        nodes={n.name: n for n in nodes},
        live=frozenset(live),
        ready=ready,
        pool_labels=pool_labels,
    )
    return {ip: (a.node, a.services, a.interfaces) for ip, a in got.items()}


def test_the_score_is_sha256_of_node_hash_ip() -> None:
    assert score("n1", "192.0.2.10") == hashlib.sha256(b"n1#192.0.2.10").hexdigest()


def test_the_smallest_score_wins_and_nobody_wins_among_none() -> None:
    ip = "198.51.100.10"
    want = min(NODES, key=lambda n: score(n, ip))
    assert elect(ip, NODES) == want
    assert elect(ip, reversed(NODES)) == want
    assert elect(ip, []) is None


@settings(max_examples=200)
@given(
    ip=st.ip_addresses().map(str),
    nodes=st.sets(st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True), min_size=1, max_size=8),
    new=st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True),
)
def test_a_node_joining_takes_an_ip_only_if_it_sorts_first(
    ip: str, nodes: set[str], new: str
) -> None:
    before = elect(ip, nodes)
    after = elect(ip, nodes | {new})
    assert after in (before, new)
    assert (after == new) == (new == elect(ip, {before or new, new}))


@settings(max_examples=200)
@given(
    ip=st.ip_addresses().map(str),
    nodes=st.sets(st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True), min_size=2, max_size=8),
)
def test_a_node_leaving_moves_only_its_own_ips(ip: str, nodes: set[str]) -> None:
    winner = elect(ip, nodes)
    for gone in nodes - {winner or ""}:
        assert elect(ip, nodes - {gone}) == winner


@pytest.mark.parametrize(
    ("case", "nodes", "live", "ready", "want"),
    [
        ("every live node", [node(n) for n in NODES], NODES, frozenset(NODES), set(NODES)),
        ("a dead node is no candidate", [node(n) for n in NODES], ("n1", "n2"), frozenset(NODES),
         {"n1", "n2"}),
        (
            "the exclude label",
            [node("n1", labels={EXCLUDE_LABEL: ""}), node("n2"), node("n3")],
            NODES,
            frozenset(NODES),
            {"n2", "n3"},
        ),
        ("NetworkUnavailable", [node("n1", down=True), node("n2"), node("n3")], NODES,
         frozenset(NODES), {"n2", "n3"}),
        ("no ready endpoint: nobody", [node(n) for n in NODES], NODES, None, set()),
        ("a live speaker without a Node object", [node("n1")], NODES, frozenset(NODES), {"n1"}),
    ],
)  # fmt: skip
def test_candidates(
    case: str,
    nodes: list[NodeView],
    live: tuple[str, ...],
    ready: frozenset[str] | None,
    want: set[str],
) -> None:
    ip = "198.51.100.10"
    got = run_plan([svc("a/web", ip)], nodes=nodes, live=live, ready={"a/web": ready})
    assert got.get(ip, (None,))[0] == elect(ip, want), case


def test_local_traffic_policy_follows_the_ready_endpoints() -> None:
    ip = "198.51.100.11"
    for holder in NODES:
        got = run_plan([svc("a/web", ip, local=True)], ready={"a/web": frozenset({holder})})
        assert got[ip][0] == holder
    assert run_plan([svc("a/web", ip, local=True)], ready={"a/web": frozenset()}) == {}


def test_services_sharing_an_ip_are_elected_as_one_unit() -> None:
    ip = "198.51.100.12"
    tcp, udp = svc("a/dns-tcp", ip), svc("a/dns-udp", ip)
    got = run_plan([udp, tcp])
    assert got[ip][1] == ("a/dns-tcp", "a/dns-udp")
    assert got[ip][0] == elect(ip, NODES)
    # Different endpoint sets: the intersection wins...
    ready = {"a/dns-tcp": frozenset({"n1", "n2"}), "a/dns-udp": frozenset({"n2", "n3"})}
    tcp_l, udp_l = svc("a/dns-tcp", ip, local=True), svc("a/dns-udp", ip, local=True)
    assert run_plan([tcp_l, udp_l], ready=ready)[ip][0] == "n2"
    # ...and when it is empty, the union: the shared IP is still announced, by one node.
    ready = {"a/dns-tcp": frozenset({"n1"}), "a/dns-udp": frozenset({"n3"})}
    assert run_plan([tcp_l, udp_l], ready=ready)[ip][0] == elect(ip, {"n1", "n3"})


def test_dual_stack_ips_are_elected_separately() -> None:
    got = run_plan([svc("a/web", "198.51.100.13", "2001:db8:1::13")])
    assert set(got) == {"198.51.100.13", "2001:db8:1::13"}
    for ip, (winner, _, _) in got.items():
        assert winner == elect(ip, NODES)


def test_advertisements_pick_pools_services_nodes_and_interfaces() -> None:
    ip = "198.51.100.14"
    zone_b = Advertisement.from_object(
        {
            "metadata": {"name": "b"},
            "spec": {
                "ipPools": ["default"],
                "nodeSelectors": [{"matchLabels": {"zone": "b"}}],
                "interfaces": ["eth1", "eth0"],
            },
        }
    )
    nodes = [node("n1"), node("n2", labels={"zone": "b"}), node("n3", labels={"zone": "b"})]
    got = run_plan([svc("a/web", ip)], ads=[zone_b], nodes=nodes)
    assert got[ip][0] == elect(ip, {"n2", "n3"})
    assert got[ip][2] == ("eth0", "eth1")
    # Another pool: not covered, not announced.
    assert run_plan([svc("a/web", ip, pool="other")], ads=[zone_b], nodes=nodes) == {}
    # Pool selectors match the IPPool's labels.
    by_label = Advertisement.from_object(
        {"metadata": {"name": "l"}, "spec": {"ipPoolSelectors": [{"matchLabels": {"t": "x"}}]}}
    )
    labels = {"other": {"t": "x"}}
    got = run_plan([svc("a/web", ip, pool="other")], ads=[by_label], pool_labels=labels)
    assert got[ip][2] is None  # no interfaces named: every usable one
    assert run_plan([svc("a/web", ip, pool="default")], ads=[by_label], pool_labels=labels) == {}
    # Service selectors.
    only_web = Advertisement.from_object(
        {"metadata": {"name": "s"}, "spec": {"serviceSelectors": [{"matchLabels": {"app": "web"}}]}}
    )
    assert run_plan([svc("a/web", ip, labels={"app": "web"})], ads=[only_web])
    assert run_plan([svc("a/web", ip, labels={"app": "db"})], ads=[only_web]) == {}
    # No advertisement at all: assigned, never announced (MetalLB's #1561: now explicit).
    assert run_plan([svc("a/web", ip)], ads=[]) == {}


def test_a_service_is_read_from_its_object() -> None:
    obj: dict[str, Any] = {
        "metadata": {
            "namespace": "a",
            "name": "web",
            "uid": "u1",
            "annotations": {"lbctl.io/ip-allocated-from-pool": "default"},
        },
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": "lbctl.io/baremetal",
            "externalTrafficPolicy": "Local",
        },
        "status": {
            "loadBalancer": {"ingress": [{"ip": "2001:db8:1:0::10"}, {"ip": "bogus"}]},
            "conditions": [
                {
                    "type": "L2Announced",
                    "status": "True",
                    "message": announced_message("n2", ["eth0"]),
                }
            ],
        },
    }
    v = ServiceView.from_object(obj)
    assert v is not None
    assert (v.key, v.ips, v.pool, v.local, v.announced_by) == (
        "a/web",
        ("2001:db8:1::10",),
        "default",
        True,
        "n2",
    )
    other = {**obj, "spec": {**obj["spec"], "loadBalancerClass": "other"}}
    assert ServiceView.from_object(other) is None
    unclassed = {**obj, "spec": {"type": "LoadBalancer"}}
    assert ServiceView.from_object(unclassed) is None
    assert ServiceView.from_object(unclassed, default_class=True) is not None
    assert ServiceView.from_object({**obj, "status": {}}) is None
    assert node_of(announced_message("n1", ["eth1", "eth0"])) == "n1"
    assert announced_message("n1", ["eth1", "eth0"]).endswith("on eth0,eth1")
    assert node_of("something else") is None


def test_nodes_and_endpoints_are_read_from_their_objects() -> None:
    n = NodeView.from_object(
        {
            "metadata": {"name": "n1", "labels": {EXCLUDE_LABEL: "true"}},
            "status": {
                "conditions": [{"type": "NetworkUnavailable", "status": "True"}],
                "addresses": [
                    {"type": "Hostname", "address": "n1"},
                    {"type": "InternalIP", "address": "192.0.2.11"},
                ],
            },
        }
    )
    assert (n.excluded, n.network_unavailable, n.internal_ip) == (True, True, "192.0.2.11")
    slices = [
        {"endpoints": [{"nodeName": "n1", "conditions": {"ready": False}}, {"nodeName": "n2"}]},
        {"endpoints": [{"nodeName": "n3", "conditions": {"ready": True}}, {"addresses": ["x"]}]},
    ]
    assert ready_nodes(slices) == frozenset({"n2", "n3"})
    assert (
        ready_nodes([{"endpoints": [{"nodeName": "n1", "conditions": {"ready": False}}]}]) is None
    )
    assert ready_nodes([]) is None


# -- membership --------------------------------------------------------------------------


def test_a_member_is_live_while_heard_and_dead_after_silence() -> None:
    m = Membership("n1", dead_after=0.5, now=100.0)
    assert m.live(100.0) == {"n1"}
    m.lease("n2", ("192.0.2.12", 7946), 100.0)
    assert m.is_live("n2", 100.4)  # not heard yet: the start grace
    assert not m.is_live("n2", 100.5)
    assert m.heard("n2", 101.0)
    assert m.live(101.3) == {"n1", "n2"}
    assert m.live(101.5) == {"n1"}
    assert m.peers() == [("n2", ("192.0.2.12", 7946))]


def test_the_next_death_is_the_first_live_peers_deadline() -> None:
    m = Membership("n1", dead_after=0.5, now=0.0)
    assert m.next_death(0.0) is None  # alone: nobody to lose
    m.lease("n2", None, 0.0)
    m.lease("n3", None, 0.0)
    assert m.next_death(0.1) == 0.5  # the start grace
    m.heard("n2", 0.2)
    m.heard("n3", 0.3)
    assert m.next_death(0.4) == pytest.approx(0.7)
    assert m.next_death(0.75) == pytest.approx(0.8)  # n2 is dead: only n3 left
    assert m.next_death(0.8) is None


def test_bye_and_a_deleted_lease_end_membership_at_once() -> None:
    m = Membership("n1", dead_after=0.5, now=0.0)
    m.lease("n2", ("192.0.2.12", 7946), 0.0)
    m.heard("n2", 1.0)
    m.heard("n2", 1.1, bye=True)
    assert not m.is_live("n2", 1.1)
    m.heard("n2", 2.0)  # back
    assert m.is_live("n2", 2.0)
    m.lease_gone("n2")
    assert not m.is_live("n2", 2.0)
    assert m.members() == frozenset()


def test_heartbeats_from_unknown_nodes_and_stale_leases_give_nothing() -> None:
    m = Membership("n1", dead_after=0.5, now=0.0)
    assert not m.heard("stranger", 0.1)
    assert m.live(0.1) == {"n1"}
    m.lease("n3", None, 0.2, fresh=False)  # left behind by a killed speaker
    assert not m.is_live("n3", 0.2)
    assert m.peers() == []  # no address published: nothing to send to
    m.heard("n3", 0.3)
    assert m.is_live("n3", 0.3)


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"[]", b'{"v":2,"node":"a","seq":1}', b'{"v":1,"node":"","seq":1}',
     b'{"v":1,"node":"a","seq":"1"}', b'{"v":1,"node":"a","seq":1,"bye":"no"}', b"\xff" * 10,
     b'{"v":1,"node":"a","seq":1,"pad":"' + b"x" * 600 + b'"}'],
)  # fmt: skip
def test_anything_but_a_heartbeat_is_ignored(data: bytes) -> None:
    assert decode_heartbeat(data) is None


@given(st.binary(max_size=600))
def test_decoding_never_raises(data: bytes) -> None:
    decode_heartbeat(data)


@given(
    st.builds(
        Heartbeat,
        st.from_regex(r"[a-z0-9.-]{1,63}", fullmatch=True),
        st.integers(0, 2**62),
        st.booleans(),
    )
)
def test_heartbeats_round_trip(hb: Heartbeat) -> None:
    assert decode_heartbeat(encode_heartbeat(hb)) == hb
