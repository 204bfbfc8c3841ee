"""Network-namespace testbed for the layer-2 speaker (shipped test helpers, like
``trio.testing``; used by ``tests/e2e/test_speaker_*.py`` and ``bench/failover.py``).

Linux only, as root, with iproute2. Nothing here touches the host's own network: every
address lives in namespaces made here, from the documentation ranges (192.0.2.0/24 and
2001:db8::/64 for hosts, 198.51.100.0/24 and 2001:db8:1::/64 for VIPs).

- :class:`Testbed`: a bridge namespace ``<prefix>br`` (bridge ``br0``: STP off, forward
  delay 0, no multicast snooping) and hosts (:meth:`Testbed.add_host`), each its own
  namespace ``<prefix><name>`` plugged into ``br0`` through a veth pair (``eth0`` inside,
  MAC ``02:00:`` + the IPv4 address). Every host ignores ARP for addresses not on the
  receiving interface and announces from its own (``arp_ignore=1``, ``arp_announce=2``),
  skips DAD, and has on-link routes for the VIP ranges: a VIP routed locally on ``lo``
  (:meth:`Host.route_local`) is then reachable, yet only a speaker answers ARP/NDP for
  it. :meth:`Testbed.close` kills every process started through it and deletes the
  namespaces; :func:`cleanup_leftovers` removes those of dead test runs.
- Probes run inside a host: :func:`arping` / :func:`arping_macs` (iputils ``arping``,
  Debian ``iputils-arping``), :func:`ndisc` / :func:`ndisc_macs` (one Neighbor
  Solicitation from a raw ICMPv6 socket, stdlib only, and every Advertisement's target
  link-layer address: exact, unlike reading ``ip -6 neigh`` after traffic; not
  ``ndisc6``, which drops an Advertisement sourced from a link-local address when the
  target is global -- a scope check of its own, while RFC 4861 allows any address of the
  interface, and speakers, MetalLB's too, answer from their link-local address),
  :func:`connect_identity` against the :func:`serve_identity_cmd` server (every TCP
  connection gets the host's name).
- :class:`KubeAPI`: JSON over HTTP through a Unix socket. The API server lives in a
  namespace the test process cannot reach by IP (the root namespace stays out of the
  testbed), so a relay process started in that namespace (:func:`relay_cmd`) listens on
  a Unix socket -- files are not namespaced -- and forwards each connection to the server.
- :class:`SpeakerLab`: the whole bed for the speaker's end-to-end test and benchmark --
  hosts ``api``, ``n1``.., ``client``; ``lbctl apiserver`` and ``lbctl controller
  --provider baremetal`` in ``api``; Nodes, an IPPool and an L2Advertisement; an identity
  server and ``lbctl speaker`` on each node; helpers for Services, EndpointSlices,
  conditions, Events and metrics.
- :func:`owner_of`: the election rule (smallest ``sha256(f"{node}#{ip}")``).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from ipaddress import ip_address
from pathlib import Path
from typing import IO, Any, Final

from lbctl.testing import wait_for

__all__ = [
    "PREFIX_FAMILY",
    "RUN_DIR",
    "VIP_V4",
    "VIP_V6",
    "Host",
    "KubeAPI",
    "KubeAPIError",
    "SpeakerLab",
    "Testbed",
    "arping",
    "arping_macs",
    "clean_env",
    "cleanup_leftovers",
    "connect_identity",
    "connect_loop_cmd",
    "ndisc",
    "ndisc_macs",
    "owner_of",
    "parse_metrics",
    "relay_cmd",
    "root_and_ip_available",
    "serve_identity_cmd",
]

PREFIX_FAMILY: Final = "lbt"
"""Every testbed's namespaces are named ``lbt<4 hex digits><name>``."""
RUN_DIR: Final = Path("/run/lbctl-testbed")
"""``<prefix>.pid`` (the owning process) and ``<prefix>.sock`` (API relays) live here."""
VIP_V4: Final = "198.51.100.0/24"
VIP_V6: Final = "2001:db8:1::/64"
MAX_IFNAME: Final = 15

_PREFIX_RE: Final = re.compile(rf"^({PREFIX_FAMILY}[0-9a-f]{{4}})")
_MAC_RE: Final = re.compile(r"([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without ``LBCTL_*`` settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LBCTL_")}
    env.update(extra)
    return env


def _run(
    cmd: Sequence[str], *, check: bool = True, timeout: float = 30.0, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=False,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}"
        )
    return proc


_probe_result: list[str | None] = []


def root_and_ip_available() -> str | None:
    """None when this process can build a testbed, else why not (a reason to skip)."""
    if _probe_result:
        return _probe_result[0]
    reason: str | None = None
    if not sys.platform.startswith("linux"):
        reason = "network namespaces need Linux"
    elif os.geteuid() != 0:
        reason = "needs root (network namespaces, veth, AF_PACKET)"
    elif shutil.which("ip") is None:
        reason = "needs the ip command (iproute2)"
    else:
        probe = f"{PREFIX_FAMILY}{secrets.token_hex(2)}chk"
        try:
            got = _run(["ip", "netns", "add", probe], check=False, timeout=10)
            if got.returncode != 0:
                reason = f"cannot create a network namespace: {got.stderr.strip()}"
            else:
                _run(["ip", "netns", "del", probe], check=False, timeout=10)
        except (OSError, subprocess.SubprocessError) as e:
            reason = f"cannot run ip: {e}"
    _probe_result.append(reason)
    return reason


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_netns_pids(netns: str) -> None:
    got = _run(["ip", "netns", "pids", netns], check=False, timeout=10)
    for word in got.stdout.split():
        with contextlib.suppress(ValueError, OSError):
            os.kill(int(word), signal.SIGKILL)


def _delete_netns(netns: str) -> None:
    _kill_netns_pids(netns)
    _run(["ip", "netns", "del", netns], check=False, timeout=10)


def cleanup_leftovers(family: str = PREFIX_FAMILY) -> list[str]:
    """Delete the namespaces of testbeds whose owning process is gone (a crashed or killed
    run); those of live runs are left alone. Returns the names deleted."""
    got = _run(["ip", "netns", "list"], check=False, timeout=10)
    names = [line.split()[0] for line in got.stdout.splitlines() if line.strip()]
    deleted: list[str] = []
    for name in names:
        m = _PREFIX_RE.match(name)
        if not name.startswith(family) or m is None:
            continue
        marker = RUN_DIR / f"{m.group(1)}.pid"
        try:
            owner = int(marker.read_text().strip())
        except (OSError, ValueError):
            owner = 0
        if owner and _pid_alive(owner):
            continue
        _delete_netns(name)
        deleted.append(name)
    with contextlib.suppress(OSError):
        for marker in RUN_DIR.glob(f"{family}*.pid"):
            with contextlib.suppress(OSError, ValueError):
                if not _pid_alive(int(marker.read_text().strip())):
                    marker.unlink()
                    (RUN_DIR / f"{marker.stem}.sock").unlink(missing_ok=True)
    return deleted


def _teardown(
    procs: list[subprocess.Popen[bytes]], namespaces: list[str], files: list[Path]
) -> None:
    """Kill what was started, delete the namespaces, remove the files (idempotent)."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    procs.clear()
    for netns in reversed(namespaces):
        _delete_netns(netns)
    namespaces.clear()
    for f in files:
        with contextlib.suppress(OSError):
            f.unlink()
    files.clear()


def _mac_for(ipv4: str) -> str:
    """``02:00:`` (locally administered, unicast) followed by the IPv4 address."""
    return "02:00:" + ":".join(f"{b:02x}" for b in ip_address(ipv4).packed)


class Host:
    """A network namespace with ``eth0`` on the testbed's bridge."""

    def __init__(
        self, bed: Testbed, name: str, netns: str, *, ipv4: str, ipv6: str, mac: str
    ) -> None:
        self.bed = bed
        self.name = name
        self.netns = netns
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.mac = mac
        """Lower-case ``aa:bb:cc:dd:ee:ff``."""

    def __repr__(self) -> str:
        return f"Host({self.name!r}, netns={self.netns!r}, {self.ipv4}, {self.ipv6}, {self.mac})"

    def cmd(self, *cmd: str) -> list[str]:
        """``cmd`` prefixed to run inside this namespace."""
        return ["ip", "netns", "exec", self.netns, *cmd]

    def run(
        self, *cmd: str, check: bool = True, timeout: float = 30.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in this namespace to completion (text output captured)."""
        return _run(self.cmd(*cmd), check=check, timeout=timeout, input=input)

    def popen(
        self,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdout: int | IO[Any] | None = subprocess.DEVNULL,
        stderr: int | IO[Any] | None = subprocess.DEVNULL,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        cwd: str | Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``cmd`` in this namespace; the testbed kills it on close. ``ip netns
        exec`` execs the command, so the Popen's pid is the command's own."""
        proc = subprocess.Popen(
            self.cmd(*cmd),
            env=dict(env) if env is not None else clean_env(),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
        )
        self.bed.track(proc)
        return proc

    def python(
        self, code: str, *args: str, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a stdlib-only Python snippet here (``-I -S``: fast start, no site)."""
        return self.run(sys.executable, "-I", "-S", "-c", code, *args, check=False, timeout=timeout)

    def route_local(self, vip: str) -> None:
        """Treat ``vip`` (an address or a CIDR) as local, on ``lo``: servers bound to the
        wildcard accept connections to it; ARP/NDP for it stays the speaker's job."""
        net = vip if "/" in vip else f"{vip}/{ip_address(vip).max_prefixlen}"
        family = "-6" if ":" in vip else "-4"
        self.run("ip", family, "route", "replace", "local", net, "dev", "lo", "table", "local")

    def unroute_local(self, vip: str) -> None:
        net = vip if "/" in vip else f"{vip}/{ip_address(vip).max_prefixlen}"
        family = "-6" if ":" in vip else "-4"
        self.run(
            "ip", family, "route", "del", "local", net, "dev", "lo", "table", "local", check=False
        )

    def neighbours(self) -> str:
        """``ip neigh`` (both families)."""
        return self.run("ip", "neigh", "show").stdout

    def flush_neigh(self) -> None:
        """Forget every learnt neighbour (both families)."""
        self.run("ip", "neigh", "flush", "all", check=False)

    def add_address(self, cidr: str) -> None:
        family = "-6" if ":" in cidr else "-4"
        extra = ["nodad"] if family == "-6" else []
        self.run("ip", family, "addr", "add", cidr, "dev", "eth0", *extra)

    def del_address(self, cidr: str) -> None:
        family = "-6" if ":" in cidr else "-4"
        self.run("ip", family, "addr", "del", cidr, "dev", "eth0", check=False)


class Testbed:
    """A bridge namespace and hosts on it; a context manager (``close`` on exit)."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or f"{PREFIX_FAMILY}{secrets.token_hex(2)}"
        if len(self.prefix) > 8:
            raise ValueError(f"prefix {self.prefix!r}: at most 8 characters")
        self.bridge_ns = f"{self.prefix}br"
        self.hosts: dict[str, Host] = {}
        self._procs: list[subprocess.Popen[bytes]] = []
        self._namespaces: list[str] = []
        self._files: list[Path] = []
        self._started = False
        self._finalizer = weakref.finalize(
            self, _teardown, self._procs, self._namespaces, self._files
        )

    def __enter__(self) -> Testbed:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_file(self, suffix: str) -> Path:
        """A path under :data:`RUN_DIR` removed on close (short: fits a Unix socket)."""
        path = RUN_DIR / f"{self.prefix}{suffix}"
        self._files.append(path)
        return path

    def start(self) -> Testbed:
        """Create the bridge namespace (once)."""
        if self._started:
            return self
        reason = root_and_ip_available()
        if reason is not None:
            raise RuntimeError(f"cannot build a testbed: {reason}")
        self._started = True
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        marker = self.run_file(".pid")
        marker.write_text(f"{os.getpid()}\n")
        self._add_netns(self.bridge_ns)
        self._sysctl(
            self.bridge_ns,
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        )
        br = ["ip", "-n", self.bridge_ns, "link"]
        _run([*br, "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0",
              "mcast_snooping", "0"])  # fmt: skip
        _run([*br, "set", "lo", "up"])
        _run([*br, "set", "br0", "up"])
        return self

    def _add_netns(self, netns: str) -> None:
        _run(["ip", "netns", "add", netns])
        self._namespaces.append(netns)

    @staticmethod
    def _sysctl(netns: str, *settings: str) -> None:
        _run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", *settings])

    def add_host(self, name: str, ipv4: str, ipv6: str) -> Host:
        """A namespace ``<prefix><name>`` with ``eth0`` on ``br0``: ``ipv4``/24, ``ipv6``/64
        (no DAD), ``lo`` up, on-link routes for the VIP ranges."""
        self.start()
        netns = f"{self.prefix}{name}"
        if len(netns) > MAX_IFNAME or len(name) > MAX_IFNAME or name in self.hosts:
            raise ValueError(f"host name {name!r}: taken, or too long for prefix {self.prefix}")
        mac = _mac_for(ipv4)
        self._add_netns(netns)
        # Before eth0 exists, so that it is created with these (default.*) values.
        conf = [f"net.ipv4.conf.{i}.{k}" for i in ("all", "default") for k in
                ("arp_ignore=1", "arp_announce=2")]  # fmt: skip
        conf += [f"net.ipv6.conf.{i}.accept_dad=0" for i in ("all", "default")]
        self._sysctl(netns, *conf)
        _run(["ip", "-n", self.bridge_ns, "link", "add", "name", name, "type", "veth",
              "peer", "name", "eth0", "netns", netns])  # fmt: skip
        _run(["ip", "-n", self.bridge_ns, "link", "set", "dev", name, "master", "br0", "up"])
        ns = ["ip", "-n", netns]
        _run([*ns, "link", "set", "eth0", "address", mac])
        self._sysctl(netns, "net.ipv6.conf.eth0.accept_dad=0")
        _run([*ns, "link", "set", "lo", "up"])
        _run([*ns, "link", "set", "eth0", "up"])
        _run([*ns, "-4", "addr", "add", f"{ipv4}/24", "dev", "eth0"])
        _run([*ns, "-6", "addr", "add", f"{ipv6}/64", "dev", "eth0", "nodad"])
        _run([*ns, "-4", "route", "add", VIP_V4, "dev", "eth0"])
        _run([*ns, "-6", "route", "add", VIP_V6, "dev", "eth0"])
        host = Host(self, name, netns, ipv4=ipv4, ipv6=ipv6, mac=mac)
        self.hosts[name] = host
        return host

    def track(self, proc: subprocess.Popen[bytes]) -> None:
        """Have ``close`` kill ``proc`` (if still running)."""
        self._procs.append(proc)

    def close(self) -> None:
        """Kill every process started here (SIGKILL), delete the namespaces; idempotent."""
        self._finalizer()
        self.hosts.clear()


# -- probes run inside a host ------------------------------------------------------------


def _seconds(timeout: float) -> str:
    return str(max(1, math.ceil(timeout)))  # iputils arping takes whole seconds


def arping_macs(
    host: Host, ip: str, iface: str = "eth0", count: int = 2, timeout: float = 2.0
) -> list[str]:
    """The ARP replies ``host`` gets for ``ip`` (lower-case MACs, repeats kept): broadcast
    requests one second apart until ``count`` replies came or ``timeout`` (whole seconds,
    rounded up) passed."""
    got = host.run(
        "arping", "-b", "-c", str(count), "-w", _seconds(timeout), "-I", iface, ip,
        check=False, timeout=timeout + 10,
    )  # fmt: skip
    return [
        m.group(1).lower()
        for line in got.stdout.splitlines()
        if "reply from" in line and (m := _MAC_RE.search(line))
    ]


def arping(
    host: Host, ip: str, iface: str = "eth0", count: int = 1, timeout: float = 1.0
) -> str | None:
    """The MAC that first answers ``host``'s ARP request for ``ip``, or None: requests one
    second apart (the first at once) until a reply or ``timeout`` (whole seconds, rounded
    up); ``count`` bounds the requests when there is no deadline to reach."""
    got = host.run(
        "arping", "-f", "-c", str(count), "-w", _seconds(timeout), "-I", iface, ip,
        check=False, timeout=timeout + 10,
    )  # fmt: skip
    for line in got.stdout.splitlines():
        if "reply from" in line and (m := _MAC_RE.search(line)):
            return m.group(1).lower()
    return None


_NDP_PROBE: Final = """\
import ipaddress, select, socket, sys, time
target = ipaddress.IPv6Address(sys.argv[1])
iface, wait, tries, first = sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
index = socket.if_nametoindex(iface)
mac = bytes.fromhex(open(f"/sys/class/net/{iface}/address").read().strip().replace(":", ""))
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
group = ipaddress.IPv6Address(b"\\xff\\x02" + bytes(9) + b"\\x01\\xff" + target.packed[13:])
# type 135, code 0, checksum (the kernel fills it in), reserved, target, source lladdr option
ns = bytes([135, 0, 0, 0, 0, 0, 0, 0]) + target.packed + bytes([1, 1]) + mac
for _ in range(tries):
    s.sendto(ns, (str(group), 0, 0, index))
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([s], [], [], left)[0]:
            break
        data, anc, _flags, addr = s.recvmsg(2048, socket.CMSG_SPACE(4))
        hops = [int.from_bytes(d, sys.byteorder) for lvl, typ, d in anc
                if lvl == socket.IPPROTO_IPV6 and typ == socket.IPV6_HOPLIMIT]
        if len(data) < 24 or data[0] != 136 or data[1] != 0 or data[8:24] != target.packed:
            continue
        if hops and hops[0] != 255:
            continue
        opts, lladdr = data[24:], None
        while len(opts) >= 8 and opts[1]:
            if opts[0] == 2:
                lladdr = opts[2:8]
            opts = opts[opts[1] * 8:]
        if lladdr is not None:
            print(":".join(f"{b:02x}" for b in lladdr), addr[0], hex(data[4]), flush=True)
            if first:
                sys.exit(0)
sys.exit(0 if not first else 2)
"""


def _ndp_probe(
    host: Host, ip: str, iface: str, tries: int, timeout: float, *, first: bool
) -> list[str]:
    got = host.python(
        _NDP_PROBE, ip, iface, f"{timeout:g}", str(tries), "1" if first else "0",
        timeout=tries * timeout + 10,
    )  # fmt: skip
    return [line.split()[0] for line in got.stdout.splitlines() if _MAC_RE.match(line)]


def ndisc_macs(host: Host, ip: str, iface: str = "eth0", timeout: float = 1.0) -> list[str]:
    """The target link-layer address of every Neighbor Advertisement ``host`` gets for
    ``ip`` within ``timeout`` seconds of one Neighbor Solicitation (lower-case)."""
    return _ndp_probe(host, ip, iface, 1, timeout, first=False)


def ndisc(
    host: Host, ip: str, iface: str = "eth0", tries: int = 3, timeout: float = 1.0
) -> str | None:
    """The link-layer address the first Neighbor Advertisement for ``ip`` gives (up to
    ``tries`` solicitations, ``timeout`` seconds each), or None."""
    got = _ndp_probe(host, ip, iface, tries, timeout, first=True)
    return got[0] if got else None


_IDENTITY_SERVER: Final = """\
import socket, sys
port, text = int(sys.argv[1]), sys.argv[2].encode() + b"\\n"
s = socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True,
                         backlog=256, reuse_port=True)
print("identity ready", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.sendall(text)
    except OSError:
        pass
    c.close()
"""

_IDENTITY_CLIENT: Final = """\
import socket, sys
ip, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
try:
    with socket.create_connection((ip, port), timeout=timeout) as c:
        data = b""
        while chunk := c.recv(256):
            data += chunk
except OSError as e:
    print(e, file=sys.stderr)
    sys.exit(1)
print(data.decode(errors="replace").strip())
"""

_CONNECT_LOOP: Final = """\
import socket, sys, time
ip, port = sys.argv[1], int(sys.argv[2])
every, timeout = float(sys.argv[3]), float(sys.argv[4])
while True:
    start = time.monotonic()
    try:
        with socket.create_connection((ip, port), timeout=timeout) as c:
            data = b""
            while chunk := c.recv(256):
                data += chunk
        print(f"{time.monotonic():.6f} {data.decode(errors='replace').strip()}", flush=True)
    except OSError as e:
        print(f"{time.monotonic():.6f} ! {type(e).__name__}", flush=True)
    pause = every - (time.monotonic() - start)
    if pause > 0:
        time.sleep(pause)
"""


def serve_identity_cmd(port: int, text: str) -> list[str]:
    """A TCP server (IPv4 and IPv6, any local address) answering each connection with
    ``text`` and closing it; prints ``identity ready`` once listening."""
    return [sys.executable, "-I", "-S", "-c", _IDENTITY_SERVER, str(port), text]


def connect_identity(host: Host, ip: str, port: int, timeout: float = 2.0) -> str | None:
    """From inside ``host``: connect to ``ip``:``port`` and return what the server said
    (its host's name), or None when the connection failed."""
    got = host.python(_IDENTITY_CLIENT, ip, str(port), f"{timeout:g}", timeout=timeout + 10)
    return got.stdout.strip() if got.returncode == 0 else None


def connect_loop_cmd(ip: str, port: int, every: float = 0.02, timeout: float = 0.2) -> list[str]:
    """A client that connects to ``ip``:``port`` every ``every`` seconds forever, printing
    ``<time.monotonic()> <answer>`` per success and ``<time> ! <error>`` per failure
    (CLOCK_MONOTONIC is the same in every network namespace)."""
    return [sys.executable, "-I", "-S", "-c", _CONNECT_LOOP, ip, str(port), f"{every:g}",
            f"{timeout:g}"]  # fmt: skip


_RELAY: Final = """\
import asyncio, os, sys
path, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])

async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except OSError:
        pass
    finally:
        w.close()

async def handle(r, w):
    try:
        ur, uw = await asyncio.open_connection(host, port)
    except OSError:
        w.close()
        return
    await asyncio.gather(pipe(r, uw), pipe(ur, w))

async def main():
    if os.path.exists(path):
        os.unlink(path)
    server = await asyncio.start_unix_server(handle, path, backlog=1024)
    print("relay ready", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


def relay_cmd(path: str | Path, ip: str, port: int) -> list[str]:
    """A relay listening on the Unix socket ``path`` and forwarding every connection to
    ``ip``:``port`` (run it in the namespace where that address is reachable)."""
    return [sys.executable, "-I", "-S", "-c", _RELAY, str(path), ip, str(port)]


# -- the API through a Unix socket -------------------------------------------------------


class KubeAPIError(Exception):
    """An API call answered with an error status."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"{method} {path}: {status} {message}")
        self.status = status
        self.body = body


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class KubeAPI:
    """A minimal JSON client for an API server behind a Unix-socket relay; thread-safe
    (a connection per request)."""

    def __init__(self, socket_path: str | Path, timeout: float = 10.0) -> None:
        self.socket_path = str(socket_path)
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """``(status, decoded JSON body or text)``; OSError when the relay is not there."""
        conn = _UnixConnection(self.socket_path, self.timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Accept": "application/json", "Connection": "close"}
            if data is not None:
                headers["Content-Type"] = content_type
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw.decode(errors="replace")

    def call(self, method: str, path: str, body: Any = None, **kw: str) -> Any:
        status, got = self.request(method, path, body, **kw)
        if status >= 400:
            raise KubeAPIError(method, path, status, got)
        return got

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def get_or_none(self, path: str) -> Any:
        status, got = self.request("GET", path)
        if status == 404:
            return None
        if status >= 400:
            raise KubeAPIError("GET", path, status, got)
        return got

    def create(self, path: str, obj: Mapping[str, Any]) -> Any:
        return self.call("POST", path, obj)

    def ensure(self, path: str, obj: Mapping[str, Any]) -> Any:
        """Create ``obj``; an existing one (409) is fine."""
        status, got = self.request("POST", path, obj)
        if status >= 400 and status != 409:
            raise KubeAPIError("POST", path, status, got)
        return got

    def patch(self, path: str, patch: Mapping[str, Any]) -> Any:
        return self.call("PATCH", path, patch, content_type="application/merge-patch+json")

    def delete(self, path: str) -> None:
        status, got = self.request("DELETE", path)
        if status >= 400 and status != 404:
            raise KubeAPIError("DELETE", path, status, got)

    def ready(self) -> bool:
        try:
            return self.request("GET", "/readyz")[0] == 200
        except OSError:
            return False


# -- the election rule -------------------------------------------------------------------


def owner_of(ip: str, candidates: Iterable[str]) -> str | None:
    """The node that must announce ``ip``: the smallest ``sha256(f"{node}#{ip}")``."""
    ranked = sorted(candidates, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).hexdigest())
    return ranked[0] if ranked else None


# -- the speaker lab -----------------------------------------------------------------------

_FETCH: Final = """\
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])) as r:
        sys.stdout.write(r.read().decode())
except Exception as e:
    print(e, file=sys.stderr)
    sys.exit(1)
"""

_METRIC_RE: Final = re.compile(
    r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEInfa]+)(\s+\d+)?$"
)
_ANNOUNCED_RE: Final = re.compile(r"announced from node (\S+?)(?: on |$)")

NODE_ADDRESSES: Final = {
    "n1": ("192.0.2.11", "2001:db8::11"),
    "n2": ("192.0.2.12", "2001:db8::12"),
    "n3": ("192.0.2.13", "2001:db8::13"),
}
SPEAKER_NAMESPACE: Final = "lbctl-speaker"
SERVICE_NAMESPACE: Final = "default"
LB_CLASS: Final = "lbctl.io/baremetal"


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> ``{metric name: value summed over its label sets}``."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC_RE.match(line.strip())
        if m is None:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out[m.group(1)] = out.get(m.group(1), 0.0) + value
    return out


class SpeakerLab:
    """The speaker's end-to-end bed: ``api`` (API server + controller), nodes running
    ``lbctl speaker`` and an identity server, and a ``client``; see the module docstring.

    ``workdir`` receives the API server's data and every process's log. ``speaker_env``
    is added to each speaker's environment (timings). ``pool`` is the IPPool's addresses.
    """

    API_IP: Final = "192.0.2.1"
    API_PORT: Final = 6443
    CONTROLLER_METRICS: Final = "127.0.0.1:8080"
    IDENTITY_PORT: Final = 8080

    def __init__(
        self,
        workdir: Path,
        *,
        nodes: Sequence[str] = ("n1", "n2", "n3"),
        speaker_env: Mapping[str, str] | None = None,
        pool: Sequence[str] = ("198.51.100.10-198.51.100.50", "2001:db8:1::10-2001:db8:1::50"),
        start_speakers: Sequence[str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.node_names = tuple(nodes)
        self.speaker_extra = dict(speaker_env or {})
        self.pool = tuple(pool)
        self.initial_speakers = tuple(nodes if start_speakers is None else start_speakers)
        self.bed = Testbed()
        self.nodes: dict[str, Host] = {}
        self.speakers: dict[str, subprocess.Popen[bytes]] = {}
        self.speaker_logs: dict[str, Path] = {}
        self.identity: dict[str, subprocess.Popen[bytes]] = {}
        self.apiserver: subprocess.Popen[bytes] | None = None
        self.controller: subprocess.Popen[bytes] | None = None
        self._starts = 0
        self._log_files: list[IO[bytes]] = []

    # -- life cycle

    def __enter__(self) -> SpeakerLab:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Tear everything down (processes, namespaces, relay socket); idempotent."""
        self.bed.close()
        for f in self._log_files:
            with contextlib.suppress(OSError):
                f.close()
        self._log_files.clear()

    def _log(self, name: str) -> IO[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        f = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 -- closed in close()
        self._log_files.append(f)
        return f

    def _start_logged(
        self, host: Host, name: str, cmd: Sequence[str], env: Mapping[str, str]
    ) -> subprocess.Popen[bytes]:
        out = self._log(name)
        return host.popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)

    def log_text(self, name: str) -> str:
        try:
            return (self.logs / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""

    def start(self, timeout: float = 60.0) -> SpeakerLab:
        self.bed.start()
        self.api_host = self.bed.add_host("api", self.API_IP, "2001:db8::1")
        for name in self.node_names:
            v4, v6 = NODE_ADDRESSES.get(name) or (
                f"192.0.2.{11 + len(self.nodes)}",
                f"2001:db8::{11 + len(self.nodes):x}",
            )
            self.nodes[name] = self.bed.add_host(name, v4, v6)
        self.client = self.bed.add_host("client", "192.0.2.100", "2001:db8::100")
        self._start_api(timeout)
        self._create_cluster_objects()
        self._start_controller(timeout)
        for name, host in self.nodes.items():
            self.identity[name] = self._start_logged(
                host, f"{name}-identity", serve_identity_cmd(self.IDENTITY_PORT, name), clean_env()
            )
        for name in self.initial_speakers:
            self.start_speaker(name, wait=False)
        for name in self.initial_speakers:
            self.wait_speaker_ready(name, timeout=timeout)
        for name in self.nodes:
            log = f"{name}-identity"
            wait_for(
                lambda: "identity ready" in self.log_text(log),  # noqa: B023 -- called now
                timeout=timeout,
                what=f"identity server on {name}",
            )
        return self

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "api" / "kubeconfig"

    def _start_api(self, timeout: float) -> None:
        data = self.workdir / "api"
        cmd = [
            sys.executable, "-m", "lbctl", "apiserver",
            "--listen", f"{self.API_IP}:{self.API_PORT}", "--data-dir", str(data),
            "--service-cidrs", "10.96.0.0/16,fd00:10:96::/112",
        ]  # fmt: skip
        self.apiserver = self._start_logged(self.api_host, "apiserver", cmd, clean_env())

        def serving() -> bool:
            if self.apiserver is not None and self.apiserver.poll() is not None:
                raise RuntimeError(f"lbctl apiserver exited:\n{self.log_text('apiserver')}")
            return "serving on " in self.log_text("apiserver")

        wait_for(serving, timeout=timeout, what="lbctl apiserver")
        sock = self.bed.run_file(".sock")
        relay = relay_cmd(sock, self.API_IP, self.API_PORT)
        self._start_logged(self.api_host, "relay", relay, clean_env())
        self.api = KubeAPI(sock)
        wait_for(self.api.ready, timeout=timeout, what="the API through the relay")

    def _create_cluster_objects(self) -> None:
        api = self.api
        api.ensure("/api/v1/namespaces", {"metadata": {"name": SPEAKER_NAMESPACE}})
        api.ensure("/api/v1/namespaces", {"metadata": {"name": SERVICE_NAMESPACE}})
        for name, host in self.nodes.items():
            status = {
                "addresses": [
                    {"type": "InternalIP", "address": host.ipv4},
                    {"type": "InternalIP", "address": host.ipv6},
                    {"type": "Hostname", "address": name},
                ],
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            }
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                "status": status,
            }
            got = api.create("/api/v1/nodes", node)
            if not (got.get("status") or {}).get("addresses"):  # create dropped the status
                api.call(
                    "PATCH",
                    f"/api/v1/nodes/{name}/status",
                    {"status": status},
                    content_type="application/merge-patch+json",
                )
        api.create(
            "/apis/lbctl.io/v1alpha1/ippools",
            {
                "apiVersion": "lbctl.io/v1alpha1",
                "kind": "IPPool",
                "metadata": {"name": "lab"},
                "spec": {"addresses": list(self.pool), "autoAssign": True},
            },
        )
        api.create(
            "/apis/lbctl.io/v1alpha1/l2advertisements",
            {
                "apiVersion": "lbctl.io/v1alpha1",
                "kind": "L2Advertisement",
                "metadata": {"name": "lab"},
                "spec": {"ipPools": ["lab"], "interfaces": ["eth0"]},
            },
        )

    def _start_controller(self, timeout: float) -> None:
        env = clean_env(
            LBCTL_METRICS_LISTEN=self.CONTROLLER_METRICS,
            LBCTL_LEADER_ELECT="false",
            LBCTL_LOG_FORMAT="json",
        )
        cmd = [sys.executable, "-m", "lbctl", "controller", "--kubeconfig", str(self.kubeconfig),
               "--provider", "baremetal"]  # fmt: skip
        self.controller = self._start_logged(self.api_host, "controller", cmd, env)

        def ready() -> bool:
            if self.controller is not None and self.controller.poll() is not None:
                raise RuntimeError(f"lbctl controller exited:\n{self.log_text('controller')}")
            got = self.api_host.python(_FETCH, f"http://{self.CONTROLLER_METRICS}/readyz", "1")
            return got.returncode == 0

        wait_for(ready, timeout=timeout, what="lbctl controller /readyz", every=0.2)

    # -- speakers

    def speaker_env(self, node: str) -> dict[str, str]:
        host = self.nodes[node]
        return clean_env(
            LBCTL_SPEAKER_NAMESPACE=SPEAKER_NAMESPACE,
            LBCTL_SPEAKER_HEARTBEAT_LISTEN=f"{host.ipv4}:7946",
            LBCTL_METRICS_LISTEN=f"{host.ipv4}:7473",
            LBCTL_LOG_FORMAT="json",
            **self.speaker_extra,
        )

    def start_speaker(
        self, node: str, *, wait: bool = True, timeout: float = 30.0
    ) -> subprocess.Popen[bytes]:
        """Start ``lbctl speaker`` on ``node`` (a fresh log each time); with ``wait``, return
        once it logged ``speaker ready``."""
        self._starts += 1
        log = f"{node}-speaker-{self._starts}"
        cmd = [sys.executable, "-m", "lbctl", "speaker", "--kubeconfig", str(self.kubeconfig),
               "--node-name", node]  # fmt: skip
        proc = self._start_logged(self.nodes[node], log, cmd, self.speaker_env(node))
        self.speakers[node] = proc
        self.speaker_logs[node] = self.logs / f"{log}.log"
        if wait:
            self.wait_speaker_ready(node, timeout=timeout)
        return proc

    def speaker_log(self, node: str) -> str:
        path = self.speaker_logs.get(node)
        return path.read_text(errors="replace") if path and path.exists() else ""

    def wait_speaker_ready(self, node: str, timeout: float = 30.0) -> None:
        proc = self.speakers[node]

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"lbctl speaker on {node} exited {proc.returncode}:\n{self.speaker_log(node)}"
                )
            return "speaker ready" in self.speaker_log(node)

        wait_for(ready, timeout=timeout, what=f"speaker ready on {node}")

    def kill_speaker(self, node: str) -> float:
        """``kill -9`` the speaker of ``node``; the ``time.monotonic()`` of the kill."""
        proc = self.speakers[node]
        at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        return at

    def live_speakers(self) -> list[str]:
        return [n for n, p in self.speakers.items() if p.poll() is None]

    def metrics(self, node: str) -> dict[str, float]:
        """The node's speaker metrics, summed over label sets (empty if unreachable)."""
        host = self.nodes[node]
        got = host.python(_FETCH, f"http://{host.ipv4}:7473/metrics", "2")
        return parse_metrics(got.stdout) if got.returncode == 0 else {}

    # -- Services

    def svc_path(self, name: str, namespace: str = SERVICE_NAMESPACE) -> str:
        return f"/api/v1/namespaces/{namespace}/services/{name}"

    def create_service(
        self,
        name: str,
        *,
        ports: Sequence[Mapping[str, Any]] = ({"name": "http", "port": 8080, "protocol": "TCP"},),
        family: str = "IPv4",
        local: bool = False,
        shared_key: str | None = None,
        load_balancer_ip: str | None = None,
        endpoints_on: Sequence[str] | None = ("n1",),
        namespace: str = SERVICE_NAMESPACE,
    ) -> dict[str, Any]:
        """A ``LoadBalancer`` Service of class ``lbctl.io/baremetal`` (single stack
        ``family``) and, unless ``endpoints_on`` is None, its EndpointSlice with one ready
        endpoint per node named."""
        annotations: dict[str, str] = {}
        if shared_key:
            annotations["lbctl.io/allow-shared-ip"] = shared_key
        spec: dict[str, Any] = {
            "type": "LoadBalancer",
            "loadBalancerClass": LB_CLASS,
            "ipFamilies": [family],
            "ipFamilyPolicy": "SingleStack",
            "ports": [dict(p) for p in ports],
            "selector": {"app": name},
        }
        if local:
            spec["externalTrafficPolicy"] = "Local"
        if load_balancer_ip:
            spec["loadBalancerIP"] = load_balancer_ip
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": spec,
        }
        svc: dict[str, Any] = self.api.create(f"/api/v1/namespaces/{namespace}/services", body)
        if endpoints_on is not None:
            self.set_endpoints(name, endpoints_on, family=family, ports=ports, namespace=namespace)
        return svc

    def _slice(
        self,
        name: str,
        nodes: Sequence[str],
        family: str,
        ports: Sequence[Mapping[str, Any]],
        namespace: str,
    ) -> dict[str, Any]:
        return {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-lab",
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": family,
            "endpoints": [
                {
                    "addresses": [self.nodes[n].ipv6 if family == "IPv6" else self.nodes[n].ipv4],
                    "nodeName": n,
                    "conditions": {"ready": True, "serving": True, "terminating": False},
                }
                for n in nodes
            ],
            "ports": [
                {
                    "name": p.get("name", ""),
                    "port": int(p.get("targetPort", p["port"])),
                    "protocol": p.get("protocol", "TCP"),
                }
                for p in ports
            ],
        }

    def set_endpoints(
        self,
        name: str,
        nodes: Sequence[str],
        *,
        family: str = "IPv4",
        ports: Sequence[Mapping[str, Any]] = ({"name": "http", "port": 8080, "protocol": "TCP"},),
        namespace: str = SERVICE_NAMESPACE,
    ) -> None:
        """Create or replace the Service's EndpointSlice: one ready endpoint per node."""
        body = self._slice(name, nodes, family, ports, namespace)
        base = f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
        status, _ = self.api.request("POST", base, body)
        if status == 409:
            self.api.patch(f"{base}/{name}-lab", {"endpoints": body["endpoints"]})
        elif status >= 400:
            raise KubeAPIError("POST", base, status, _)

    def delete_service(self, name: str, namespace: str = SERVICE_NAMESPACE) -> None:
        self.api.delete(self.svc_path(name, namespace))
        self.api.delete(
            f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/{name}-lab"
        )

    def service(self, name: str, namespace: str = SERVICE_NAMESPACE) -> dict[str, Any] | None:
        got: dict[str, Any] | None = self.api.get_or_none(self.svc_path(name, namespace))
        return got

    def vips(self, name: str, namespace: str = SERVICE_NAMESPACE) -> list[str]:
        svc = self.service(name, namespace) or {}
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return [i["ip"] for i in ingress if i.get("ip")]

    def wait_vip(self, name: str, timeout: float = 20.0, namespace: str = SERVICE_NAMESPACE) -> str:
        """The Service's first load-balancer IP, once the controller assigned it."""
        got: list[str] = wait_for(
            lambda: self.vips(name, namespace), timeout=timeout, what=f"a VIP for {name}"
        )
        return got[0]

    def condition(
        self, name: str, type_: str, namespace: str = SERVICE_NAMESPACE
    ) -> dict[str, Any] | None:
        svc = self.service(name, namespace) or {}
        for c in (svc.get("status") or {}).get("conditions") or []:
            if c.get("type") == type_:
                return dict(c)
        return None

    def announcer(self, name: str, namespace: str = SERVICE_NAMESPACE) -> str | None:
        """The node the ``L2Announced`` condition (status True) names, or None."""
        c = self.condition(name, "L2Announced", namespace)
        if not c or c.get("status") != "True":
            return None
        m = _ANNOUNCED_RE.search(str(c.get("message", "")))
        return m.group(1) if m else None

    def wait_announcer(
        self,
        name: str,
        timeout: float = 15.0,
        namespace: str = SERVICE_NAMESPACE,
        want: Callable[[str], bool] | None = None,
    ) -> str:
        """Wait until ``L2Announced`` names a node (one ``want`` accepts); return it."""

        def check() -> str | None:
            got = self.announcer(name, namespace)
            return got if got and (want is None or want(got)) else None

        node: str = wait_for(check, timeout=timeout, what=f"L2Announced on {name}")
        return node

    def events(self, name: str, namespace: str = SERVICE_NAMESPACE) -> list[dict[str, Any]]:
        """core/v1 Events about the Service ``name``."""
        got = self.api.get(f"/api/v1/namespaces/{namespace}/events") or {}
        return [
            e
            for e in got.get("items") or []
            if (e.get("involvedObject") or {}).get("name") == name
            and (e.get("involvedObject") or {}).get("kind", "Service") == "Service"
        ]

    def route_vip(self, vip: str) -> None:
        """Route ``vip`` locally on every node (each one's identity server then answers)."""
        for host in self.nodes.values():
            host.route_local(vip)

    def unroute_vip(self, vip: str) -> None:
        for host in self.nodes.values():
            host.unroute_local(vip)

    def node_of_mac(self, mac: str | None) -> str | None:
        for name, host in self.bed.hosts.items():
            if mac is not None and host.mac == mac.lower():
                return name
        return None
