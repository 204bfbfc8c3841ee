"""``lbctl speaker`` end to end, on real links between network namespaces.

The bed (:class:`lbctl.speaker.testbed.SpeakerLab`): hosts on one bridge --

- ``api`` (192.0.2.1): ``lbctl apiserver --listen 192.0.2.1:6443`` and ``lbctl controller
  --provider baremetal`` (no leader election, metrics on the namespace's own loopback);
- ``n1``..``n3`` (192.0.2.11-13, 2001:db8::11-13): ``lbctl speaker --node-name nX``
  (heartbeats on <ip>:7946, metrics on <ip>:7473) and an identity server on TCP 8080
  that answers every connection with the node's name; each VIP under test is routed
  locally on every node, so whichever node gets the traffic answers -- which one does is
  decided only by who answered ARP/NDP;
- ``client`` (192.0.2.100, 2001:db8::100): ``arping``, an NDP prober and TCP clients.

How the test reaches the API server: the test process stays in the root namespace, which
is kept out of the testbed (no veth, no route, no address there), so it cannot connect
to 192.0.2.1. ``os.setns`` from a thread of a multi-threaded pytest is unsafe, and a
subprocess per API call is slow; instead a small relay runs inside ``api`` and listens on
a Unix socket (files are not namespaced) under /run/lbctl-testbed, forwarding each
connection to 192.0.2.1:6443. The test speaks plain JSON-over-HTTP through that socket
(:class:`lbctl.speaker.testbed.KubeAPI`); the controller and speakers use the API
server's kubeconfig (http://192.0.2.1:6443) over the bridge like real nodes.

One bed for the module (about 3 s to build); each test makes and deletes its own
Services. Needs root, iproute2 and ``arping`` (iputils-arping): skips
otherwise. Everything is torn down (processes SIGKILLed, namespaces deleted) even when a
test fails; logs are printed for a failing test.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lbctl.speaker import testbed
from lbctl.speaker.testbed import SpeakerLab, arping, arping_macs, connect_identity, owner_of
from lbctl.testing import wait_for

NODES = ("n1", "n2", "n3")
PORT = SpeakerLab.IDENTITY_PORT


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpeakerLab]:
    reason = testbed.root_and_ip_available()
    if reason is not None:
        pytest.skip(reason)
    if shutil.which("arping") is None:
        pytest.skip("needs arping (Debian package iputils-arping)")
    probe = subprocess.run(
        [sys.executable, "-m", "lbctl", "speaker", "--help"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip("`lbctl speaker` is not available")
    testbed.cleanup_leftovers()
    with SpeakerLab(tmp_path_factory.mktemp("speaker-lab"), nodes=NODES) as bed:
        yield bed


@pytest.fixture(autouse=True)
def _three_speakers(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test using the bed starts with all three speakers running; logs are shown
    if it fails."""
    if "lab" not in request.fixturenames:
        yield
        return
    lab: SpeakerLab = request.getfixturevalue("lab")
    for node in NODES:
        if lab.speakers[node].poll() is not None:
            lab.start_speaker(node)
    lab.client.flush_neigh()
    yield
    print(_logs(lab))


def _logs(lab: SpeakerLab, lines: int = 40) -> str:
    parts = []
    for name in sorted(p.stem for p in lab.logs.glob("*.log")):
        tail = lab.log_text(name).splitlines()[-lines:]
        parts.append(f"--- {name}.log (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(parts)


_ROUTED: set[str] = set()


def _vip_of(lab: SpeakerLab, name: str) -> str:
    """The Service's VIP, routed locally on every node (undone by ``_cleanup``)."""
    vip = lab.wait_vip(name, timeout=20)
    lab.route_vip(vip)
    _ROUTED.add(vip)
    return vip


def _cleanup(lab: SpeakerLab, *names: str) -> None:
    for name in names:
        lab.delete_service(name)
    for vip in sorted(_ROUTED):
        lab.unroute_vip(vip)
    _ROUTED.clear()


def _event(lab: SpeakerLab, name: str, type_: str, reason: str) -> dict[str, Any] | None:
    for e in lab.events(name):
        if e.get("type") == type_ and e.get("reason") == reason:
            return e
    return None


def test_a_service_is_announced_by_the_elected_node(lab: SpeakerLab) -> None:
    """(a) The VIP's owner by the sha256 rule says so in L2Announced, gets a NodeAssigned
    Event, answers ARP alone, and the client's TCP connection reaches it; once the
    Service is deleted nobody answers."""
    lab.create_service("web-a", endpoints_on=["n2"])
    try:
        vip = _vip_of(lab, "web-a")
        node = lab.wait_announcer("web-a", timeout=15)
        assert node == owner_of(vip, NODES), f"{vip}: announced by {node}"
        cond = lab.condition("web-a", "L2Announced")
        assert cond is not None
        assert cond["status"] == "True" and cond["reason"] == "Announcing"
        assert cond["message"] == f"announced from node {node} on eth0"
        wait_for(
            lambda: _event(lab, "web-a", "Normal", "NodeAssigned"),
            timeout=10,
            what="NodeAssigned Event",
        )
        mac = lab.nodes[node].mac
        assert arping(lab.client, vip, timeout=3) == mac
        assert set(arping_macs(lab.client, vip, count=2, timeout=2)) == {mac}
        assert connect_identity(lab.client, vip, PORT, timeout=3) == node

        # Deleted: nobody answers for the VIP any more.
        lab.delete_service("web-a")
        wait_for(
            lambda: arping(lab.client, vip, timeout=1) is None,
            timeout=10,
            every=0.1,
            what=f"{vip} unanswered after the Service was deleted",
        )
    finally:
        _cleanup(lab, "web-a")


def test_nobody_answers_for_free_pool_ips_or_other_hosts_addresses(lab: SpeakerLab) -> None:
    """(b) With a Service announced (speakers busy), an unassigned pool IP gets no ARP or
    NDP answer, and a node's own address is answered by that node's kernel only."""
    lab.create_service("web-b", endpoints_on=["n1"])
    try:
        vip = _vip_of(lab, "web-b")
        lab.wait_announcer("web-b")
        everything = lab.api.get("/api/v1/services")["items"]
        used = {
            i.get("ip")
            for s in everything
            for i in ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        }
        assert vip in used
        for free in ("198.51.100.49", "2001:db8:1::49"):
            assert free not in used
        assert arping_macs(lab.client, "198.51.100.49", count=2, timeout=2) == []
        assert testbed.ndisc_macs(lab.client, "2001:db8:1::49", timeout=1) == []
        n2 = lab.nodes["n2"]
        assert set(arping_macs(lab.client, n2.ipv4, count=3, timeout=2)) == {n2.mac}
        assert set(testbed.ndisc_macs(lab.client, n2.ipv6, timeout=1)) == {n2.mac}
    finally:
        _cleanup(lab, "web-b")


def test_services_sharing_an_ip_are_announced_from_one_node(lab: SpeakerLab) -> None:
    """(c) TCP 53 and UDP 53 with the same allow-shared-ip key: one IP, one node."""
    lab.create_service(
        "dns-tcp",
        ports=[{"name": "dns-tcp", "port": 53, "protocol": "TCP"}],
        shared_key="dns",
        endpoints_on=["n1"],
    )
    lab.create_service(
        "dns-udp",
        ports=[{"name": "dns-udp", "port": 53, "protocol": "UDP"}],
        shared_key="dns",
        endpoints_on=["n3"],
    )
    try:
        vip_tcp = lab.wait_vip("dns-tcp")
        vip_udp = lab.wait_vip("dns-udp")
        assert vip_tcp == vip_udp, "the allocator did not share the IP"
        tcp_node = lab.wait_announcer("dns-tcp")
        udp_node = lab.wait_announcer("dns-udp")
        assert tcp_node == udp_node == owner_of(vip_tcp, NODES)
        mac = lab.nodes[tcp_node].mac
        assert set(arping_macs(lab.client, vip_tcp, count=2, timeout=2)) == {mac}
    finally:
        _cleanup(lab, "dns-tcp", "dns-udp")


def _ip_owned_by(node: str, candidates: Any) -> str:
    """A pool IP (198.51.100.30-39) the sha256 rule gives to ``node`` among ``NODES``."""
    for last in range(30, 40):
        ip = f"198.51.100.{last}"
        if owner_of(ip, candidates) == node:
            return ip
    raise AssertionError(f"no IP in .30-.39 hashes to {node}")  # pragma: no cover


def test_local_traffic_policy_follows_the_endpoint(lab: SpeakerLab) -> None:
    """(d) eTP Local: the node with the ready local endpoint announces (not the hash
    winner), and the VIP moves when the endpoint moves."""
    ip = _ip_owned_by("n1", NODES)  # the hash prefers n1: only the endpoint rule says n2
    lab.create_service("local-d", local=True, load_balancer_ip=ip, endpoints_on=["n2"])
    try:
        assert _vip_of(lab, "local-d") == ip
        assert lab.wait_announcer("local-d") == "n2"
        assert set(arping_macs(lab.client, ip, count=2, timeout=2)) == {lab.nodes["n2"].mac}
        assert connect_identity(lab.client, ip, PORT, timeout=3) == "n2"

        lab.set_endpoints("local-d", ["n3"])
        assert lab.wait_announcer("local-d", want=lambda n: n != "n2") == "n3"
        n3 = lab.nodes["n3"].mac
        wait_for(
            lambda: set(arping_macs(lab.client, ip, count=2, timeout=2)) == {n3},
            timeout=10,
            every=0.1,
            what="only n3 answering ARP",
        )
        lab.client.flush_neigh()
        assert connect_identity(lab.client, ip, PORT, timeout=3) == "n3"
    finally:
        _cleanup(lab, "local-d")


def test_ipv6_service_is_announced_over_ndp(lab: SpeakerLab) -> None:
    """(e) A single-stack IPv6 Service: NDP resolves the VIP to the owner's MAC and a TCP
    connection over IPv6 reaches it."""
    lab.create_service("web6", family="IPv6", endpoints_on=["n1"])
    try:
        vip = _vip_of(lab, "web6")
        assert ":" in vip and vip.startswith("2001:db8:1::")
        node = lab.wait_announcer("web6")
        assert node == owner_of(vip, NODES)
        mac = lab.nodes[node].mac
        assert testbed.ndisc(lab.client, vip, tries=3, timeout=1) == mac
        assert set(testbed.ndisc_macs(lab.client, vip, timeout=1)) == {mac}
        assert connect_identity(lab.client, vip, PORT, timeout=3) == node
    finally:
        _cleanup(lab, "web6")


FAILOVER_BOUND = 10.0


def test_kill_9_of_the_announcer_moves_the_vip(lab: SpeakerLab) -> None:
    """(f) kill -9 of the announcing speaker: the next node by the hash announces, the
    client's ARP and TCP connections reach it within the bound; the killed speaker then
    comes back (and takes its VIP back) so later tests have three."""
    lab.create_service("web-f", endpoints_on=["n1", "n2", "n3"])
    try:
        vip = _vip_of(lab, "web-f")
        old = lab.wait_announcer("web-f")
        assert old == owner_of(vip, NODES)
        assert connect_identity(lab.client, vip, PORT, timeout=3) == old  # client cache warm
        new = owner_of(vip, [n for n in NODES if n != old])
        assert new is not None

        killed_at = lab.kill_speaker(old)
        wait_for(
            lambda: connect_identity(lab.client, vip, PORT, timeout=0.5) == new,
            timeout=FAILOVER_BOUND,
            every=0.02,
            what=f"TCP to {vip} reaching {new} after kill -9 of {old}",
        )
        took = time.monotonic() - killed_at
        assert took < FAILOVER_BOUND
        assert lab.wait_announcer("web-f", want=lambda n: n != old, timeout=5) == new
        assert arping(lab.client, vip, timeout=2) == lab.nodes[new].mac
        print(f"failover {old} -> {new}: {took:.2f}s from SIGKILL to TCP reaching {new}")

        lab.start_speaker(old)
        assert lab.wait_announcer("web-f", want=lambda n: n == old, timeout=15) == old
        wait_for(
            lambda: set(arping_macs(lab.client, vip, count=2, timeout=2)) == {lab.nodes[old].mac},
            timeout=10,
            every=0.1,
            what=f"{old} alone answering again",
        )
    finally:
        _cleanup(lab, "web-f")


def test_an_address_in_use_is_detected_by_the_probe(lab: SpeakerLab) -> None:
    """(g) The client already uses 198.51.100.40: the owner's probe finds it, the
    Service gets IPConflict + a Warning Event, and no speaker ever answers for it."""
    taken = "198.51.100.40"
    lab.client.add_address(f"{taken}/32")
    try:
        lab.create_service("taken-g", load_balancer_ip=taken, endpoints_on=["n1"])
        assert lab.wait_vip("taken-g") == taken
        cond = wait_for(
            lambda: lab.condition("taken-g", "IPConflict"), timeout=15, what="IPConflict"
        )
        assert cond["status"] == "True" and cond["reason"] == "AddressInUse", cond
        assert taken in cond["message"] and lab.client.mac in cond["message"].lower(), cond
        event = wait_for(
            lambda: _event(lab, "taken-g", "Warning", "IPConflict"),
            timeout=10,
            what="the IPConflict Warning Event",
        )
        assert taken in event["message"]
        assert lab.announcer("taken-g") is None
        # Asked from another host, only the client's own MAC ever answers.
        macs = arping_macs(lab.api_host, taken, count=4, timeout=3)
        assert macs and set(macs) == {lab.client.mac}, macs
        assert (
            lab.metrics(owner_of(taken, NODES) or "n1").get("lbctl_speaker_conflicts_total", 0) >= 1
        )
    finally:
        _cleanup(lab, "taken-g")
        lab.client.del_address(f"{taken}/32")


def test_metrics_count_what_the_announcer_did(lab: SpeakerLab) -> None:
    """(h) The announcing speaker's counters: requests and responses, gratuitous ARPs,
    announced IPs."""
    lab.create_service("web-h", endpoints_on=["n2"])
    try:
        vip = _vip_of(lab, "web-h")
        node = lab.wait_announcer("web-h")
        assert arping(lab.client, vip, timeout=3) == lab.nodes[node].mac

        def counted() -> dict[str, float] | None:
            m = lab.metrics(node)
            ok = (
                m.get("lbctl_speaker_requests_received_total", 0) > 0
                and m.get("lbctl_speaker_responses_sent_total", 0) > 0
                and m.get("lbctl_speaker_gratuitous_sent_total", 0) > 0
                and m.get("lbctl_speaker_announced_ips", 0) >= 1
            )
            return m if ok else None

        wait_for(counted, timeout=10, every=0.2, what=f"metrics of {node}")
    finally:
        _cleanup(lab, "web-h")


def _recreate_eth0(lab: SpeakerLab, node: str) -> None:
    """Delete ``node``'s eth0 and plug a new one in (same name, MAC and addresses, a new
    ifindex): a NIC replaced, a bond rebuilt, a veth re-created by a CNI."""
    host = lab.nodes[node]
    host.run("ip", "link", "del", "eth0")
    br = ["ip", "-n", lab.bed.bridge_ns, "link"]
    peer = ["peer", "name", "eth0", "netns", host.netns]
    subprocess.run([*br, "add", "name", node, "type", "veth", *peer], check=True)
    subprocess.run([*br, "set", "dev", node, "master", "br0", "up"], check=True)
    host.run("ip", "link", "set", "dev", "eth0", "address", host.mac)
    host.run("sysctl", "-q", "-w", "net.ipv6.conf.eth0.accept_dad=0")
    host.run("ip", "link", "set", "dev", "eth0", "up")
    host.add_address(f"{host.ipv4}/24")
    host.add_address(f"{host.ipv6}/64")
    host.run("ip", "-4", "route", "add", testbed.VIP_V4, "dev", "eth0")
    host.run("ip", "-6", "route", "add", testbed.VIP_V6, "dev", "eth0")


def test_a_recreated_interface_is_answered_on_again(lab: SpeakerLab) -> None:
    """The owner's eth0 is deleted and re-created: the speaker must answer on the new
    one (MetalLB rescans interfaces for this), else the VIP is black-holed."""
    lab.create_service("web-r", endpoints_on=["n1", "n2", "n3"])
    node = None
    try:
        vip = _vip_of(lab, "web-r")
        node = lab.wait_announcer("web-r")
        assert arping(lab.client, vip, timeout=2) == lab.nodes[node].mac
        _recreate_eth0(lab, node)
        wait_for(
            lambda: arping(lab.client, vip, timeout=1) == lab.nodes[node].mac,
            timeout=10,
            every=0.1,
            what=f"{node} answering for {vip} on its new eth0",
        )
    finally:
        _cleanup(lab, "web-r")
        if node is not None:  # a fresh speaker for whatever runs next
            lab.kill_speaker(node)
            lab.start_speaker(node)


def test_election_rule_is_sha256_of_node_and_ip() -> None:
    """The rule the assertions above rely on, pinned."""
    ip = "198.51.100.10"
    digests = {n: hashlib.sha256(f"{n}#{ip}".encode()).hexdigest() for n in NODES}
    assert owner_of(ip, NODES) == min(digests, key=lambda n: digests[n])
    assert owner_of(ip, []) is None


def test_testbed_leaves_nothing_behind(tmp_path: Path) -> None:
    """A Testbed's namespaces and processes are gone after close, even after an error."""
    reason = testbed.root_and_ip_available()
    if reason is not None:
        pytest.skip(reason)
    with pytest.raises(RuntimeError, match="boom"), testbed.Testbed() as bed:
        host = bed.add_host("x", "192.0.2.50", "2001:db8::50")
        proc = host.popen(["sleep", "600"])
        names = [bed.bridge_ns, host.netns]
        raise RuntimeError("boom")
    assert proc.poll() is not None
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert not {line.split()[0] for line in listed.stdout.splitlines() if line} & set(names)
