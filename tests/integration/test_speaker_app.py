"""The speaker application against the embedded API server, with real heartbeats on
127.0.0.1 and, in place of AF_PACKET sockets, datagram socket pairs that carry the same
Ethernet frames (the real sockets are exercised in network namespaces by
tests/e2e/test_speaker_netns.py). Two speakers elect, write their Leases and the
Service conditions, answer only for what they own, hand over on a clean stop, and a
probe that another host answers gives IPConflict and no announcement."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lbctl.apimachinery.lbctl_kinds import LBCTL_TYPES
from lbctl.kube.client import (
    ENDPOINTSLICES,
    EVENTS,
    LEASES,
    NAMESPACES,
    NODES,
    SERVICES,
    KubeClient,
    Resource,
    connect,
)
from lbctl.kube.errors import NotFound
from lbctl.speaker import packets
from lbctl.speaker.announcer import AnnouncerConfig
from lbctl.speaker.app import Speaker, SpeakerOptions, lease_name
from lbctl.speaker.election import elect
from lbctl.speaker.membership import Heartbeat
from lbctl.speaker.metrics import SpeakerMetrics
from lbctl.speaker.responder import Interface
from lbctl.telemetry import Metrics
from lbctl.testing import embedded_apiserver, wait_for_async

JSON = dict[str, Any]
L2ADS = Resource("lbctl.io", "v1alpha1", "l2advertisements", False, "L2Advertisement")
NS = "lbctl-speaker"
CLIENT_MAC = bytes.fromhex("02aa00000001")
OTHER_MAC = bytes.fromhex("02bb00000001")
CLIENT_IP = ipaddress.IPv4Address("192.0.2.100")


class FakeWire:
    """A PacketSocket stand-in: frames the speaker sends are kept; frames ``inject``-ed
    arrive through a real file descriptor, so the asyncio reader path is the real one."""

    def __init__(self, name: str, mac: bytes) -> None:
        self.interface = Interface(name, 1, mac, ipaddress.IPv6Address("fe80::1"))
        self._mine, self._theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._mine.setblocking(False)
        self.sent: list[bytes] = []
        self.on_send: Callable[[bytes], None] = lambda frame: None
        self.closed = False

    def fds(self) -> list[int]:
        return [self._mine.fileno()]

    def recv(self, fd: int) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self._mine.recv(2048))
            except BlockingIOError:
                return out

    def send(self, frame: bytes) -> None:
        self.sent.append(frame)
        self.on_send(frame)

    def inject(self, frame: bytes) -> None:
        self._theirs.send(frame)

    async def drained(self) -> bool:
        """Every injected frame was read (and so handled: reading and handling are one
        callback)."""
        try:
            self._mine.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True
        return False

    def close(self) -> None:
        self.closed = True
        self._mine.close()
        self._theirs.close()

    def decoded(self) -> list[Any]:
        return [packets.decode(f) for f in self.sent]


@dataclass
class Node:
    name: str
    mac: bytes
    wire: FakeWire | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    client: KubeClient | None = None
    on_send: Callable[[bytes], None] = lambda frame: None
    speaker: Speaker | None = None

    def open(self, name: str) -> FakeWire:
        self.wire = FakeWire(name, self.mac)
        self.wire.on_send = self.on_send
        return self.wire


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[tuple[KubeClient, Path]]:
    async with (
        embedded_apiserver(tmp_path / "d", extra_types=LBCTL_TYPES) as server,
        await connect(kubeconfig=server.kubeconfig_path) as client,
    ):
        await client.create(NAMESPACES, {"metadata": {"name": NS}})
        await client.create(L2ADS, {"metadata": {"name": "all"}, "spec": {"interfaces": ["eth0"]}})
        yield client, server.kubeconfig_path


async def start(kubeconfig: Path, node: Node) -> None:
    node.client = await connect(kubeconfig=kubeconfig)
    opts = SpeakerOptions(
        node=node.name,
        namespace=NS,
        heartbeat_host="127.0.0.1",
        heartbeat_port=_free_udp_port(),
        heartbeat_interval=0.05,
        dead_after=0.3,
        lease_duration=5,
        announcer=AnnouncerConfig(
            gratuitous_count=2, gratuitous_interval=0.1, probe_count=2, probe_interval=0.1,
            recheck=0.5,
        ),
    )  # fmt: skip
    ready = asyncio.Event()
    node.speaker = Speaker(
        node.client, opts, SpeakerMetrics(Metrics(), node.name), open_socket=node.open
    )
    node.task = asyncio.create_task(node.speaker.run(node.stop, ready))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait((waiter, node.task), timeout=20, return_when=asyncio.FIRST_COMPLETED)
    if node.task.done():
        node.task.result()
    assert ready.is_set(), f"speaker {node.name} not ready"


async def halt(node: Node) -> None:
    node.stop.set()
    if node.task is not None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(node.task, 10)
    if node.client is not None:
        await node.client.close()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def make_node(client: KubeClient, name: str) -> None:
    obj = await client.create(NODES, {"metadata": {"name": name, "labels": {"zone": "a"}}})
    obj["status"] = {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}
    await client.replace_status(NODES, obj)


async def make_service(
    client: KubeClient, name: str, ip: str, *, nodes: tuple[str, ...] = ("n1", "n2")
) -> JSON:
    svc = await client.create(
        SERVICES,
        {
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "type": "LoadBalancer",
                "loadBalancerClass": "lbctl.io/baremetal",
                "ports": [{"port": 80, "protocol": "TCP"}],
            },
        },
    )
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}
    await client.replace_status(SERVICES, svc)
    await client.create(
        ENDPOINTSLICES,
        {
            "metadata": {
                "name": f"{name}-1",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.1"], "nodeName": n, "conditions": {"ready": True}}
                for n in nodes
            ],
            "ports": [{"port": 80, "protocol": "TCP"}],
        },
    )
    return svc


async def condition(client: KubeClient, name: str, typ: str) -> JSON | None:
    try:
        svc = await client.get(SERVICES, name, "default")
    except NotFound:
        return None
    for c in (svc.get("status") or {}).get("conditions") or []:
        if c.get("type") == typ and c.get("status") == "True":
            return dict(c)
    return None


async def events(client: KubeClient, name: str, reason: str) -> list[JSON]:
    items, _ = await client.list(EVENTS, "default")
    return [
        e
        for e in items
        if e.get("reason") == reason and (e.get("involvedObject") or {}).get("name") == name
    ]


def arp_request(target: str) -> bytes:
    return packets.encode(
        packets.ArpPacket(
            eth_src=CLIENT_MAC,
            eth_dst=packets.BROADCAST,
            op=packets.ARP_REQUEST,
            sender_mac=CLIENT_MAC,
            sender_ip=CLIENT_IP,
            target_mac=bytes(6),
            target_ip=ipaddress.IPv4Address(target),
        )
    )


def replies(wire: FakeWire, ip: str) -> list[packets.ArpPacket]:
    return [
        p
        for p in wire.decoded()
        if isinstance(p, packets.ArpPacket)
        and p.op == packets.ARP_REPLY
        and str(p.target_ip) == str(CLIENT_IP)
        and str(p.sender_ip) == ip
    ]


async def test_two_speakers_elect_one_announcer_and_hand_over_on_stop(
    kube: tuple[KubeClient, Path],
) -> None:
    client, kubeconfig = kube
    nodes = {n: Node(n, bytes.fromhex(f"02000000000{i}")) for i, n in enumerate(("n1", "n2"), 1)}
    for n in nodes:
        await make_node(client, n)
    ip = "198.51.100.10"
    await make_service(client, "web", ip)
    for speaker in nodes.values():
        await start(kubeconfig, speaker)
    try:
        for n in nodes:  # each speaker holds its own Lease, publishing its heartbeat address

            async def lease_of(node: str = n) -> JSON | None:
                try:
                    return await client.get(LEASES, lease_name(node), NS)
                except NotFound:
                    return None

            lease = await wait_for_async(lease_of, timeout=5, what=f"the Lease of {n}")
            assert lease["spec"]["holderIdentity"] == n
            assert lease["metadata"]["annotations"]["lbctl.io/heartbeat-address"].startswith(
                "127.0.0.1:"
            )
        winner = elect(ip, nodes)
        assert winner is not None
        loser = next(n for n in nodes if n != winner)

        async def announced() -> JSON | None:
            return await condition(client, "web", "L2Announced")

        cond = await wait_for_async(announced, timeout=10, what="L2Announced")
        assert cond["message"] == f"announced from node {winner} on eth0"
        assert await wait_for_async(lambda: events(client, "web", "NodeAssigned"), timeout=5)

        w, lo = nodes[winner].wire, nodes[loser].wire
        assert w is not None
        # A never-announced IP was probed first (RFC 5227: sender 0.0.0.0), then announced.
        sent = [p for p in w.decoded() if isinstance(p, packets.ArpPacket)]
        probes = [p for p in sent if str(p.sender_ip) == "0.0.0.0" and str(p.target_ip) == ip]
        garps = [p for p in sent if str(p.sender_ip) == ip and str(p.target_ip) == ip]
        assert len(probes) == 2
        assert garps and sent.index(garps[0]) > sent.index(probes[-1])
        # Only the owner answers; nobody answers for an IP nobody holds.
        w.inject(arp_request(ip))
        w.inject(arp_request("198.51.100.11"))
        await wait_for_async(lambda: _ready(bool(replies(w, ip))), timeout=5, what="an ARP reply")
        assert replies(w, ip)[0].sender_mac == nodes[winner].mac
        assert not replies(w, "198.51.100.11")
        if lo is not None:
            lo.inject(arp_request(ip))
            await wait_for_async(lo.drained, timeout=5, what="the request handled")
            assert not replies(lo, ip)

        # A clean stop: Lease deleted, a bye heartbeat, the other node takes over at once.
        await halt(nodes[winner])

        async def lease_gone() -> bool:
            try:
                await client.get(LEASES, lease_name(winner), NS)
            except NotFound:
                return True
            return False

        assert await wait_for_async(lease_gone, timeout=5, what="the Lease deleted")

        async def moved() -> JSON | None:
            c = await condition(client, "web", "L2Announced")
            return c if c and f"node {loser} " in c["message"] else None

        await wait_for_async(moved, timeout=5, what="the other node announcing")
        lo = nodes[loser].wire
        assert lo is not None
        # A takeover does not probe (the IP was announced before): gratuitous ARP at once.
        lo_sent = [p for p in lo.decoded() if isinstance(p, packets.ArpPacket)]
        assert not [p for p in lo_sent if str(p.sender_ip) == "0.0.0.0"]
        assert [p for p in lo_sent if str(p.sender_ip) == ip and str(p.target_ip) == ip]
        lo.inject(arp_request(ip))
        await wait_for_async(lambda: _ready(bool(replies(lo, ip))), timeout=5, what="a reply")
    finally:
        for speaker in nodes.values():
            await halt(speaker)


async def test_a_probe_answered_by_another_host_gives_ip_conflict(
    kube: tuple[KubeClient, Path],
) -> None:
    client, kubeconfig = kube
    node = Node("n1", bytes.fromhex("020000000001"))
    ip = "198.51.100.20"
    in_use = {"yes": True}

    def other_host_answers(frame: bytes) -> None:
        p = packets.decode(frame)
        probing = isinstance(p, packets.ArpPacket) and str(p.sender_ip) == "0.0.0.0"
        if probing and in_use["yes"] and node.wire is not None:
            assert isinstance(p, packets.ArpPacket)
            node.wire.inject(
                packets.encode(
                    packets.ArpPacket(
                        eth_src=OTHER_MAC,
                        eth_dst=node.mac,
                        op=packets.ARP_REPLY,
                        sender_mac=OTHER_MAC,
                        sender_ip=p.target_ip,
                        target_mac=node.mac,
                        target_ip=ipaddress.IPv4Address("0.0.0.0"),
                    )
                )
            )

    node.on_send = other_host_answers
    await make_node(client, "n1")
    await make_service(client, "busy", ip, nodes=("n1",))
    await start(kubeconfig, node)
    try:

        async def conflict() -> JSON | None:
            return await condition(client, "busy", "IPConflict")

        cond = await wait_for_async(conflict, timeout=10, what="IPConflict")
        assert ip in cond["message"] and packets.mac_to_str(OTHER_MAC) in cond["message"]
        assert cond["reason"] == "AddressInUse"
        warnings = await wait_for_async(
            lambda: events(client, "busy", "IPConflict"), timeout=5, what="the Warning Event"
        )
        assert warnings[0]["type"] == "Warning"
        assert await condition(client, "busy", "L2Announced") is None
        wire = node.wire
        assert wire is not None
        wire.inject(arp_request(ip))
        await wait_for_async(wire.drained, timeout=5, what="the request handled")
        assert not replies(wire, ip)
        assert not [p for p in wire.decoded() if str(getattr(p, "sender_ip", "")) == ip]
        # The other host goes away: the next probe finds the IP free; it is announced.
        in_use["yes"] = False

        async def announced() -> JSON | None:
            return await condition(client, "busy", "L2Announced")

        await wait_for_async(announced, timeout=10, what="L2Announced after the conflict")
        svc = await client.get(SERVICES, "busy", "default")
        cleared = [c for c in svc["status"]["conditions"] if c["type"] == "IPConflict"]
        assert cleared and cleared[0]["status"] == "False"
    finally:
        await halt(node)


async def _ready(value: bool) -> bool:
    return value


async def test_without_a_ready_endpoint_nothing_is_announced_and_the_status_says_so(
    kube: tuple[KubeClient, Path],
) -> None:
    client, kubeconfig = kube
    node = Node("n1", bytes.fromhex("020000000001"))
    ip = "198.51.100.30"
    await make_node(client, "n1")
    await make_service(client, "lonely", ip, nodes=("n1",))
    await start(kubeconfig, node)
    try:

        async def announced() -> JSON | None:
            return await condition(client, "lonely", "L2Announced")

        await wait_for_async(announced, timeout=10, what="L2Announced")
        await client.delete(ENDPOINTSLICES, "lonely-1", "default")

        async def withdrawn() -> JSON | None:
            svc = await client.get(SERVICES, "lonely", "default")
            for c in svc["status"].get("conditions") or []:
                if c["type"] == "L2Announced" and c["status"] == "False":
                    return dict(c)
            return None

        cond = await wait_for_async(withdrawn, timeout=10, what="L2Announced=False")
        assert cond["reason"] == "NotAnnounced" and ip in cond["message"]
        wire = node.wire
        assert wire is not None
        # Nothing left to announce on eth0: its socket is closed, nothing is answered.
        assert wire.closed
        assert len(replies(wire, ip)) == 0
    finally:
        await halt(node)


async def test_after_a_partition_heals_one_node_announces_within_the_detection_time(
    kube: tuple[KubeClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the speakers cannot hear each other both announce (as MetalLB's memberlist:
    giving the IP up would blackhole both sides); once they hear each other again, the
    loser stops answering within dead_after (0.3 s here) plus a planner tick."""
    client, kubeconfig = kube
    nodes = {n: Node(n, bytes.fromhex(f"02000000000{i}")) for i, n in enumerate(("n1", "n2"), 1)}
    for n in nodes:
        await make_node(client, n)
    ip = "198.51.100.40"
    await make_service(client, "split", ip)
    for speaker in nodes.values():
        await start(kubeconfig, speaker)
    try:
        winner = elect(ip, nodes)
        assert winner is not None
        loser = next(n for n in nodes if n != winner)
        w, lo = nodes[winner].speaker, nodes[loser].speaker
        assert w is not None and lo is not None

        async def owns(s: Speaker) -> bool:
            return ip in s.announcer.announced()

        await wait_for_async(lambda: owns(w), timeout=10, what="the winner announcing")
        assert not await owns(lo)
        # Partition: the winner's heartbeats no longer reach the loser.
        real_send = w._send

        def lost(hb: Heartbeat) -> None:
            return None

        monkeypatch.setattr(w, "_send", lost)
        await wait_for_async(lambda: owns(lo), timeout=5, what="the loser taking over")
        assert await owns(w)  # both, for the partition's duration
        # Healed.
        monkeypatch.setattr(w, "_send", real_send)
        healed = asyncio.get_running_loop().time()

        async def loser_quiet() -> bool:
            return not await owns(lo)

        await wait_for_async(loser_quiet, timeout=5, every=0.01, what="the loser letting go")
        took = asyncio.get_running_loop().time() - healed
        assert took < 0.3 + 0.5, f"two announcers for {took:.2f} s after the partition healed"
        assert await owns(w)
        wire = nodes[loser].wire
        assert wire is not None and wire.closed  # it answers nothing any more
    finally:
        for speaker in nodes.values():
            await halt(speaker)
