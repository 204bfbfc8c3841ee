"""The speaker's socket edge (lbctl.speaker.rawsock) on a real link: two hosts, ``a`` and
``b``, on a bridge in network namespaces (lbctl.speaker.testbed).

The socket code runs in a child process inside ``a`` (``ip netns exec``), never in the
test process: it opens a :class:`PacketSocket` on ``eth0`` and reports, as JSON lines,
what the edge sees and does -- the frames :func:`receive` hands over, and a hand-made ARP
reply it sends for 192.0.2.88 whenever ``b`` asks. Needs root and iproute2 (skips
otherwise) and iputils ``arping``."""

from __future__ import annotations

import contextlib
import json
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lbctl.speaker import testbed

_HELPER = r"""
import asyncio, json, os, socket, struct, sys
from dataclasses import asdict
from ipaddress import IPv4Address
from lbctl.speaker.rawsock import (
    InterfaceError, PacketSocket, list_links, read_interface, receive, usable,
)

def out(**kw):
    print(json.dumps(kw), flush=True)

CLAIM = IPv4Address("192.0.2.88").packed

async def main():
    sock = PacketSocket.open("eth0")
    iface = sock.interface
    # A socket without the edge's filtering: it must see our own reply go out, which
    # proves that the edge's silence about it is filtering, not absence.
    # (ETH_P_ALL: only such taps get outgoing copies at all.)
    plain = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    plain.bind(("eth0", 3))
    plain.setblocking(False)
    links = list_links()
    try:
        read_interface("nope0")
        missing = ""
    except InterfaceError as e:
        missing = f"{type(e).__name__}|{e.name}|{e.errno}|{e}"
    out(ready=True, index=iface.index, mac=iface.mac.hex(), link_local=str(iface.link_local),
        links=[asdict(l) for l in links], usable=usable(links),
        usable_named=usable(links, ["eth0", "veth9a", "veth9b", "noarp9", "p1a", "lo"]),
        missing=missing)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.readline() and stop.set())

    def on_plain():
        while True:
            try:
                data, addr = plain.recvfrom(2048)
            except BlockingIOError:
                return
            if data[12:14] != b"\x08\x06":
                continue
            out(plain={"pkttype": addr[2], "src": data[6:12].hex(),
                       "op": int.from_bytes(data[20:22], "big")})

    loop.add_reader(plain.fileno(), on_plain)

    def on_frame(frame):
        ethertype = int.from_bytes(frame[12:14], "big")
        info = {"ethertype": ethertype, "src": frame[6:12].hex(), "dst": frame[0:6].hex()}
        if ethertype == 0x0806:
            op = int.from_bytes(frame[20:22], "big")
            info.update(op=op, sha=frame[22:28].hex(), spa=str(IPv4Address(frame[28:32])),
                        tpa=str(IPv4Address(frame[38:42])))
            if op == 1 and frame[38:42] == CLAIM:
                reply = (frame[6:12] + iface.mac + b"\x08\x06"
                         + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2)
                         + iface.mac + CLAIM + frame[22:28] + frame[28:32])
                sock.send(reply)
                info["answered"] = True
        elif ethertype == 0x86DD and len(frame) >= 55:
            info.update(next_header=frame[20], icmp_type=frame[54],
                        target=socket.inet_ntop(socket.AF_INET6, frame[62:78])
                        if len(frame) >= 78 else "")
        out(frame=info)

    await receive(sock, on_frame, stop)
    left = [fd for fd in sock.fds() if loop.remove_reader(fd)]
    sock.close()
    sock.close()  # idempotent
    out(stopped=True, readers_left=left)

asyncio.run(main())
"""

_VANISH = r"""
import asyncio, json, subprocess
from lbctl.speaker.rawsock import InterfaceError, PacketSocket, receive
def ip(*a):
    subprocess.run(["ip", *a], check=True)
ip("link", "add", "name", "gone0", "type", "veth", "peer", "name", "gone1")
ip("link", "set", "gone0", "up")
ip("link", "set", "gone1", "up")
sock = PacketSocket.open("gone0")
frame = b"\xff" * 6 + sock.interface.mac + b"\x08\x06" + bytes(28)
sock.send(frame)
ip("link", "del", "gone0")
result = {}
for what, call in (("send", lambda: sock.send(frame)),
                   ("recv", lambda: [sock.recv(fd) for fd in sock.fds()])):
    try:
        call()
        result[what] = "no error"
    except InterfaceError as e:
        result[what] = f"{e.name}|{e.errno}|{e}"
try:
    PacketSocket.open("gone0")
    result["reopen"] = "opened"
except InterfaceError as e:
    result["reopen"] = f"{e.name}|{e.errno}"

async def receiving():
    ip("link", "add", "name", "gone2", "type", "veth", "peer", "name", "gone3")
    ip("link", "set", "gone2", "up")
    ip("link", "set", "gone3", "up")
    sock = PacketSocket.open("gone2")
    stop = asyncio.Event()
    task = asyncio.create_task(receive(sock, lambda frame: None, stop))
    await asyncio.sleep(0)  # let receive() add its readers
    ip("link", "del", "gone2")
    try:
        await asyncio.wait_for(task, 5)
        return "returned"
    except InterfaceError as e:
        loop = asyncio.get_running_loop()
        left = [fd for fd in sock.fds() if loop.remove_reader(fd)]
        return f"{e.name}|{e.errno}|readers left {left}"
    except TimeoutError:
        return "still running"

result["receive"] = asyncio.run(receiving())
print(json.dumps(result))
"""


class Lines:
    """A child's stdout read by a thread into a queue: wait for a line with a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.got: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.raw: list[str] = []
        out = proc.stdout
        threading.Thread(target=self._read, args=(out,), daemon=True).start()

    def _read(self, out: Any) -> None:
        for line in out:
            text = line.decode(errors="replace").strip()
            self.raw.append(text)
            with contextlib.suppress(ValueError):
                self.got.put(json.loads(text))

    def wait(self, want: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} within {timeout}s; output: {self.raw[-20:]}")
            try:
                item = self.got.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(item)
            if want(item):
                return item


@pytest.fixture(scope="module")
def bed() -> Iterator[testbed.Testbed]:
    reason = testbed.root_and_ip_available()
    if reason is not None:
        pytest.skip(reason)
    if shutil.which("arping") is None:
        pytest.skip("needs arping (Debian package iputils-arping)")
    testbed.cleanup_leftovers()
    with testbed.Testbed() as tb:
        a = tb.add_host("a", "192.0.2.11", "2001:db8::11")
        tb.add_host("b", "192.0.2.100", "2001:db8::100")
        # Links for list_links/usable: a bridge with an enslaved veth, a NOARP veth, a
        # link left down.
        a.run("ip", "link", "add", "name", "veth9a", "type", "veth", "peer", "name", "veth9b")
        a.run("ip", "link", "add", "name", "br9", "type", "bridge")
        a.run("ip", "link", "set", "dev", "veth9b", "master", "br9")
        a.run("ip", "link", "add", "name", "noarp9", "type", "veth", "peer", "name", "arp8")
        a.run("ip", "link", "set", "dev", "noarp9", "arp", "off")
        a.run("ip", "link", "add", "name", "p1a", "type", "veth", "peer", "name", "p1b")
        for name in ("veth9a", "veth9b", "br9", "noarp9", "arp8"):
            a.run("ip", "link", "set", "dev", name, "up")
        yield tb


@pytest.fixture
def edge(bed: testbed.Testbed) -> Iterator[tuple[Lines, dict[str, Any]]]:
    a = bed.hosts["a"]
    proc = a.popen(
        [sys.executable, "-c", _HELPER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines = Lines(proc)
    try:
        ready = lines.wait(lambda m: bool(m.get("ready")), 15, "ready line")
        yield lines, ready
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_interface_and_links_as_the_kernel_sees_them(
    bed: testbed.Testbed, edge: tuple[Lines, dict[str, Any]]
) -> None:
    a = bed.hosts["a"]
    _, ready = edge
    index = int(a.run("cat", "/sys/class/net/eth0/ifindex").stdout)
    link_local = a.run("ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link").stdout
    assert ready["index"] == index
    assert ready["mac"] == a.mac.replace(":", "")
    assert ready["link_local"].startswith("fe80::")
    assert f"{ready['link_local']}/64" in link_local
    assert ready["missing"].startswith("InterfaceError|nope0|19|interface 'nope0'"), ready

    links = {link["name"]: link for link in ready["links"]}
    assert links["lo"]["loopback"]
    assert links["eth0"]["kind"] == "veth"
    assert links["eth0"]["up"] and links["eth0"]["broadcast"] and not links["eth0"]["noarp"]
    assert links["br9"]["kind"] == "bridge"
    assert links["veth9b"]["enslaved"] and not links["veth9a"]["enslaved"]
    assert links["noarp9"]["noarp"] and not links["arp8"]["noarp"]
    assert not links["p1a"]["up"]
    # MetalLB's rule: no veth* unless named; never loopback, NOARP, enslaved, down.
    assert ready["usable"] == ["eth0", "br9", "arp8"]
    assert ready["usable_named"] == ["eth0", "veth9a"]


def test_arp_and_ndp_in_our_own_frames_out(
    bed: testbed.Testbed, edge: tuple[Lines, dict[str, Any]]
) -> None:
    a, b = bed.hosts["a"], bed.hosts["b"]
    lines, _ = edge
    bmac = b.mac.replace(":", "")

    # b asks who has 192.0.2.88: the edge hands the request over, the helper's hand-made
    # reply goes out through PacketSocket.send and is what b's arping gets.
    assert testbed.arping(b, "192.0.2.88", timeout=3) == a.mac
    request = lines.wait(
        lambda m: m.get("frame", {}).get("tpa") == "192.0.2.88", 5, "the ARP request"
    )["frame"]
    assert request["op"] == 1 and request["sha"] == bmac and request["spa"] == b.ipv4
    assert request["answered"]
    # Our own reply left through the interface (a plain socket saw it, PACKET_OUTGOING)...
    amac = a.mac.replace(":", "")
    lines.wait(
        lambda m: m.get("plain") == {"pkttype": 4, "src": amac, "op": 2}, 5, "our reply, outgoing"
    )
    # ...yet the edge never returned it: nothing from a's MAC in what it reported.
    testbed.arping(b, "192.0.2.89", timeout=1)  # a later frame: everything before is in
    lines.wait(lambda m: m.get("frame", {}).get("tpa") == "192.0.2.89", 5, "a later request")
    assert not [m for m in lines.seen if m.get("frame", {}).get("src") == amac]

    # IPv6: TCP to a (dropped by the BPF filter), then a Neighbor Solicitation (kept).
    assert testbed.connect_identity(b, a.ipv6, 9, timeout=2) is None  # refused: TCP frames
    assert testbed.ndisc(b, "2001:db8::77", tries=1, timeout=0.5) is None  # nobody answers
    ns = lines.wait(
        lambda m: m.get("frame", {}).get("target") == "2001:db8::77", 5, "the NS for ::77"
    )["frame"]
    assert ns["icmp_type"] == 135 and ns["src"] == bmac
    assert ns["dst"] == "3333ff000077"  # solicited-node multicast reached us
    ipv6 = [m["frame"] for m in lines.seen if m.get("frame", {}).get("ethertype") == 0x86DD]
    assert ipv6, "no IPv6 frame reported"
    assert all(f["next_header"] == 58 and f["icmp_type"] in (135, 136) for f in ipv6), ipv6

    # stop: receive() returns and leaves no reader behind.
    assert lines.proc.stdin is not None
    lines.proc.stdin.write(b"stop\n")
    lines.proc.stdin.flush()
    done = lines.wait(lambda m: bool(m.get("stopped")), 5, "receive() to return")
    assert done["readers_left"] == []
    assert lines.proc.wait(timeout=5) == 0


def test_a_vanished_interface_is_an_interface_error(bed: testbed.Testbed) -> None:
    a = bed.hosts["a"]
    got = a.run(sys.executable, "-c", _VANISH, timeout=20)
    result = json.loads(got.stdout.strip().splitlines()[-1])
    # ENXIO (6), ENODEV (19) or ENETDOWN (100), depending on where the kernel notices.
    name, errno, _ = result["send"].split("|", 2)
    assert name == "gone0" and int(errno) in (6, 19, 100), result
    assert result["reopen"] == "gone0|19", result
    # receive() ends with the error instead of spinning or hanging, readers removed.
    assert result["receive"] == "gone2|100|readers left []", result


# -- no root needed ------------------------------------------------------------------------


def _link(name: str, **kw: Any) -> Any:
    from lbctl.speaker.rawsock import LinkInfo

    base: dict[str, Any] = {
        "index": len(name),
        "up": True,
        "loopback": False,
        "noarp": False,
        "broadcast": True,
        "enslaved": False,
        "kind": "",
    }
    base.update(kw)
    return LinkInfo(name=name, **base)


def test_usable_follows_metallbs_rules() -> None:
    from lbctl.speaker.rawsock import SKIPPED_PREFIXES, usable

    links = [
        _link("lo", loopback=True, broadcast=False),
        _link("eth0"),
        _link("eth1", up=False),
        _link("bond0", kind="bond"),
        _link("eth2", enslaved=True),
        _link("wg0", noarp=True, broadcast=False),
        _link("tun0", broadcast=False),
        *(_link(f"{p}1") for p in SKIPPED_PREFIXES),
    ]
    assert usable(links) == ["eth0", "bond0"]
    assert usable(links, []) == ["eth0", "bond0"]
    named = ["cali1", "eth1", "eth2", "wg0", "lo", "docker1", "nope"]
    assert usable(links, named) == ["cali1", "docker1"]


def test_interface_error_keeps_name_and_errno() -> None:
    import pickle

    from lbctl.speaker.rawsock import InterfaceError

    e = InterfaceError("eth9", "send failed: vanished or down", errno=19)
    assert isinstance(e, OSError)
    assert (e.name, e.errno, str(e)) == (
        "eth9",
        19,
        "interface 'eth9': send failed: vanished or down",
    )
    again = pickle.loads(pickle.dumps(e))
    assert (again.name, again.errno, again.message) == (e.name, e.errno, e.message)
    assert InterfaceError("x", "y").errno is None
