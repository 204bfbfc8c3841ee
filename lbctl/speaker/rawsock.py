"""The speaker's socket edge: AF_PACKET sockets per interface and what /sys says of links.

Nothing here decides anything; it reads and writes Ethernet frames and interface facts:

- :func:`read_interface`: name -> :class:`~lbctl.speaker.responder.Interface` (ifindex,
  MAC from ``/sys/class/net/<name>/address``, the IPv6 link-local address from
  ``/proc/net/if_inet6``);
- :func:`list_links` / :func:`usable`: the links of this network namespace and which of
  them may carry announcements (up, broadcast, ARP, not a bridge/bond port, and -- unless
  interfaces are named -- none of the virtual ones MetalLB skips: veth*, cali*, ...);
- :class:`PacketSocket`: two non-blocking ``AF_PACKET``/``SOCK_RAW`` sockets bound to one
  interface, one for ARP (``ETH_P_ARP``) and one for IPv6 (``ETH_P_IPV6``). The IPv6 one
  carries a classic BPF filter (``SO_ATTACH_FILTER``) that lets only ICMPv6 Neighbor
  Solicitations (135) and Advertisements (136) through; it is attached before the socket
  is bound to a protocol, so no unfiltered frame is ever queued. The interface joins
  all-multicast (``PACKET_MR_ALLMULTI``, dropped by the kernel with the socket) so that
  Neighbor Solicitations sent to solicited-node multicast groups reach us. Frames this
  host sends (``PACKET_OUTGOING``) are never returned. Linux copies outgoing frames only
  to ``ETH_P_ALL`` taps, not to sockets bound to one protocol as these are; should that
  change, ``PACKET_IGNORE_OUTGOING`` (Linux >= 4.20) is set and :meth:`PacketSocket.recv`
  checks each frame's packet type anyway;
- :func:`receive`: an asyncio reader over a :class:`PacketSocket` until a stop Event.

Every socket error is an :class:`InterfaceError` naming the interface (keeping ``errno``):
an interface that vanished or went down (``ENODEV``, ``ENXIO``, ``ENETDOWN``) cannot be
recovered from here -- the caller reopens once :func:`list_links` shows it usable again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno as errnos
import fcntl
import os
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path
from typing import Final

from lbctl.speaker.packets import ETH_P_ARP, ETH_P_IPV6
from lbctl.speaker.responder import Interface

__all__ = [
    "ETH_P_ARP",
    "ETH_P_IPV6",
    "SKIPPED_PREFIXES",
    "InterfaceError",
    "LinkInfo",
    "PacketSocket",
    "list_links",
    "read_interface",
    "receive",
    "usable",
]

SOL_PACKET: Final = 263
PACKET_ADD_MEMBERSHIP: Final = 1
PACKET_MR_ALLMULTI: Final = 2
PACKET_IGNORE_OUTGOING: Final = 23
PACKET_OUTGOING: Final = 4
SO_ATTACH_FILTER: Final = 26

IFF_UP: Final = 0x1
IFF_BROADCAST: Final = 0x2
IFF_LOOPBACK: Final = 0x8
IFF_NOARP: Final = 0x80

IFA_F_DADFAILED: Final = 0x08
IFA_F_TENTATIVE: Final = 0x40

SIOCETHTOOL: Final = 0x8946
ETHTOOL_GDRVINFO: Final = 3

SKIPPED_PREFIXES: Final = (
    "veth",
    "cali",
    "flannel",
    "cni",
    "docker",
    "kube-ipvs",
    "lxc",
    "vxlan",
    "tunl",
    "cilium",
)
"""Interfaces MetalLB never announces on unless told to (container and overlay plumbing)."""

_GONE: Final = frozenset({errnos.ENODEV, errnos.ENXIO, errnos.ENETDOWN})
_SYS: Final = Path("/sys/class/net")
_IF_INET6: Final = Path("/proc/net/if_inet6")
_MAX_NAME: Final = 15  # IFNAMSIZ - 1
_MAX_FRAME: Final = 65536
# Drivers (ethtool's name) of virtual links whose sysfs uevent has no DEVTYPE.
_VIRTUAL_DRIVERS: Final = {
    "veth": "veth",
    "tun": "tun",
    "dummy": "dummy",
    "bonding": "bond",
    "bridge": "bridge",
    "vxlan": "vxlan",
    "macvlan": "macvlan",
    "ipvlan": "ipvlan",
    "geneve": "geneve",
    "wireguard": "wireguard",
    "vrf": "vrf",
    "team": "team",
    "nlmon": "nlmon",
}


class InterfaceError(OSError):
    """An interface is missing, unusable or failed a socket call; ``name`` says which."""

    def __init__(self, name: str, message: str, *, errno: int | None = None) -> None:
        text = f"interface {name!r}: {message}"
        if errno is None:
            super().__init__(text)
        else:
            super().__init__(errno, text)
        self.name = name
        self.message = message

    def __str__(self) -> str:
        return f"interface {self.name!r}: {self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_error, (self.name, self.message, self.errno))


def _rebuild_error(name: str, message: str, errno: int | None) -> InterfaceError:
    return InterfaceError(name, message, errno=errno)


def _os_error(name: str, what: str, e: OSError) -> InterfaceError:
    if isinstance(e, InterfaceError):
        return e
    code = e.errno
    reason = e.strerror or str(e)
    if code in _GONE:
        reason = f"vanished or down ({reason})"
    return InterfaceError(name, f"{what}: {reason}", errno=code)


def _check_name(name: str) -> None:
    if not name or len(name) > _MAX_NAME or "/" in name or name in {".", ".."} or "\0" in name:
        raise InterfaceError(name, "not a valid interface name")


# -- interfaces ------------------------------------------------------------------------


def _parse_mac(name: str, text: str) -> bytes:
    try:
        mac = bytes.fromhex(text.strip().replace(":", ""))
    except ValueError:
        raise InterfaceError(name, f"unreadable MAC address {text.strip()!r}") from None
    if len(mac) != 6:
        raise InterfaceError(name, f"not an Ethernet MAC address: {text.strip()!r}")
    return mac


def _link_local(name: str) -> IPv6Address | None:
    """The interface's fe80::/10 address, a settled one (not tentative) first."""
    try:
        lines = _IF_INET6.read_text(encoding="ascii").splitlines()
    except OSError:
        return None  # no IPv6 in this kernel
    found: list[tuple[bool, IPv6Address]] = []
    for line in lines:
        fields = line.split()
        if len(fields) != 6 or fields[5] != name:
            continue
        try:
            addr = IPv6Address(bytes.fromhex(fields[0]))
            flags = int(fields[4], 16)
        except ValueError:
            continue
        if addr.is_link_local and not flags & IFA_F_DADFAILED:
            found.append((bool(flags & IFA_F_TENTATIVE), addr))
    return min(found)[1] if found else None


def read_interface(name: str) -> Interface:
    """What the responder needs to know of ``name``; :class:`InterfaceError` if missing."""
    _check_name(name)
    try:
        index = socket.if_nametoindex(name)
    except OSError:
        raise InterfaceError(name, "no such interface", errno=errnos.ENODEV) from None
    try:
        text = (_SYS / name / "address").read_text(encoding="ascii")
    except OSError as e:
        raise _os_error(name, "cannot read its MAC address", e) from None
    return Interface(
        name=name, index=index, mac=_parse_mac(name, text), link_local=_link_local(name)
    )


# -- links -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """One link of this network namespace, as /sys/class/net shows it."""

    name: str
    index: int
    up: bool
    loopback: bool
    noarp: bool
    broadcast: bool
    enslaved: bool
    """A port of a bridge or bond (it has a ``master``): the master is the one to use."""
    kind: str
    """``veth``, ``bridge``, ``bond``, ``vlan``, ``vxlan``...; ``""`` for a physical NIC."""


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def _driver(name: str) -> str:
    """The link's driver as ethtool reports it (``veth``, ``tun``...), ``""`` if unknown."""
    info = ctypes.create_string_buffer(struct.pack("I", ETHTOOL_GDRVINFO), 196)
    ifreq = struct.pack("16sP16x", name.encode(), ctypes.addressof(info))  # struct ifreq: 40 bytes
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifreq)
    except OSError:
        return ""
    return info.raw[4:36].split(b"\0", 1)[0].decode("ascii", "replace")


def _kind(name: str, entry: Path) -> str:
    for line in (_read(entry / "uevent") or "").splitlines():
        key, _, value = line.partition("=")
        if key == "DEVTYPE" and value:
            return value
    if (entry / "bridge").is_dir():
        return "bridge"
    if (entry / "bonding").is_dir():
        return "bond"
    return _VIRTUAL_DRIVERS.get(_driver(name), "")


def list_links() -> list[LinkInfo]:
    """Every link of this network namespace (ordered by ifindex)."""
    links: list[LinkInfo] = []
    try:
        entries = sorted(_SYS.iterdir())
    except OSError:
        return links
    for entry in entries:
        flags_text, index_text = _read(entry / "flags"), _read(entry / "ifindex")
        if flags_text is None or index_text is None:
            continue  # gone meanwhile, or not a link
        try:
            flags, index = int(flags_text, 16), int(index_text)
        except ValueError:
            continue
        links.append(
            LinkInfo(
                name=entry.name,
                index=index,
                up=bool(flags & IFF_UP),
                loopback=bool(flags & IFF_LOOPBACK),
                noarp=bool(flags & IFF_NOARP),
                broadcast=bool(flags & IFF_BROADCAST),
                enslaved=os.path.lexists(entry / "master"),
                kind=_kind(entry.name, entry),
            )
        )
    links.sort(key=lambda link: link.index)
    return links


def usable(links: Sequence[LinkInfo], allowed: Sequence[str] | None = None) -> list[str]:
    """Names of the links the speaker may answer on, in the order given.

    Never: down, loopback, NOARP, without broadcast (no ARP there), or a bridge/bond port.
    With ``allowed`` (an L2Advertisement's ``interfaces``): only those names; without it,
    also none of :data:`SKIPPED_PREFIXES` (MetalLB's rule)."""
    names = set(allowed or ())
    out: list[str] = []
    for link in links:
        if not link.up or link.loopback or link.noarp or not link.broadcast or link.enslaved:
            continue
        if names:
            if link.name not in names:
                continue
        elif link.name.startswith(SKIPPED_PREFIXES):
            continue
        out.append(link.name)
    return out


# -- packet sockets ----------------------------------------------------------------------


def _bpf(*insns: tuple[int, int, int, int]) -> bytes:
    return b"".join(struct.pack("HBBI", *i) for i in insns)


_LD_H_ABS: Final = 0x28  # BPF_LD | BPF_H | BPF_ABS
_LD_B_ABS: Final = 0x30  # BPF_LD | BPF_B | BPF_ABS
_JEQ_K: Final = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_RET_K: Final = 0x06  # BPF_RET | BPF_K

NDP_FILTER: Final = _bpf(
    (_LD_H_ABS, 0, 0, 12),  # 0: ethertype
    (_JEQ_K, 0, 6, ETH_P_IPV6),  # 1: not IPv6 -> 8
    (_LD_B_ABS, 0, 0, 20),  # 2: IPv6 next header
    (_JEQ_K, 0, 4, 58),  # 3: not ICMPv6 -> 8
    (_LD_B_ABS, 0, 0, 54),  # 4: ICMPv6 type
    (_JEQ_K, 1, 0, 135),  # 5: Neighbor Solicitation -> 7
    (_JEQ_K, 0, 1, 136),  # 6: not Neighbor Advertisement -> 8
    (_RET_K, 0, 0, 0x40000),  # 7: accept the whole frame
    (_RET_K, 0, 0, 0),  # 8: drop
)
"""Classic BPF: Ethernet frames carrying an ICMPv6 NS or NA (no extension headers)."""


def _attach_filter(sock: socket.socket, program: bytes) -> ctypes.Array[ctypes.c_char]:
    """``SO_ATTACH_FILTER`` with ``program``; the returned buffer must outlive the call."""
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HP", len(program) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    return buf


def _open_one(
    iface: Interface, proto: int, program: bytes | None
) -> tuple[socket.socket, ctypes.Array[ctypes.c_char] | None]:
    # Protocol 0: nothing is queued until bind() names one, after the filter is on.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        keep = _attach_filter(sock, program) if program else None
        with contextlib.suppress(OSError):  # Linux < 4.20: recv() checks the type anyway
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        mreq = struct.pack("iHH8s", iface.index, PACKET_MR_ALLMULTI, 0, b"")
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        sock.bind((iface.name, proto))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, keep


class PacketSocket:
    """ARP and IPv6 NS/NA frames of one interface; open with :meth:`open`."""

    def __init__(
        self,
        interface: Interface,
        arp: socket.socket,
        ndp: socket.socket,
        filters: Sequence[ctypes.Array[ctypes.c_char] | None] = (),
    ) -> None:
        self.interface = interface
        self._arp = arp
        self._ndp = ndp
        self._by_fd = {arp.fileno(): arp, ndp.fileno(): ndp}
        self._filters = tuple(filters)  # the BPF programs' memory, kept alive with us
        self._closed = False

    @classmethod
    def open(cls, name: str) -> PacketSocket:
        """Sockets bound to ``name``; :class:`InterfaceError` if it is missing or unusable."""
        iface = read_interface(name)
        arp: socket.socket | None = None
        try:
            arp, arp_keep = _open_one(iface, ETH_P_ARP, None)
            ndp, ndp_keep = _open_one(iface, ETH_P_IPV6, NDP_FILTER)
        except OSError as e:
            if arp is not None:
                arp.close()
            raise _os_error(name, "cannot open a packet socket", e) from None
        return cls(iface, arp, ndp, (arp_keep, ndp_keep))

    @property
    def name(self) -> str:
        return self.interface.name

    def fds(self) -> list[int]:
        """The sockets' file descriptors, to wait on for reading."""
        return list(self._by_fd)

    def recv(self, fd: int, max_frames: int = 256) -> list[bytes]:
        """The frames ready on ``fd`` (at most ``max_frames``), without blocking; never
        frames this host sent."""
        sock = self._by_fd.get(fd)
        if sock is None:
            raise ValueError(f"fd {fd} is not one of {self.name}'s sockets")
        frames: list[bytes] = []
        while len(frames) < max_frames:
            try:
                data, addr = sock.recvfrom(_MAX_FRAME)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                raise _os_error(self.name, "receive failed", e) from None
            if addr[2] != PACKET_OUTGOING:
                frames.append(data)
        return frames

    def send(self, frame: bytes) -> None:
        """Send one Ethernet frame (ARP on the ARP socket, anything else on the IPv6 one)."""
        if len(frame) < 14:
            raise ValueError(f"not an Ethernet frame ({len(frame)} bytes)")
        ethertype = int.from_bytes(frame[12:14], "big")
        sock = self._arp if ethertype == ETH_P_ARP else self._ndp
        try:
            sent = sock.send(frame)
        except OSError as e:
            raise _os_error(self.name, "send failed", e) from None
        if sent != len(frame):
            raise InterfaceError(self.name, f"short send: {sent} of {len(frame)} bytes")

    def close(self) -> None:
        """Close both sockets (the kernel drops the all-multicast membership); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._arp.close()
        self._ndp.close()

    def __enter__(self) -> PacketSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PacketSocket({self.name!r}, fds={self.fds() if not self._closed else []})"


async def receive(
    sock: PacketSocket, on_frame: Callable[[bytes], None], stop: asyncio.Event
) -> None:
    """Call ``on_frame`` for every frame ``sock`` receives until ``stop`` is set.

    Raises :class:`InterfaceError` when the socket fails (the interface went away or
    down), and whatever ``on_frame`` raises; the readers are removed in every case."""
    loop = asyncio.get_running_loop()
    failed: asyncio.Future[None] = loop.create_future()

    def ready(fd: int) -> None:
        if failed.done():
            return
        try:
            for frame in sock.recv(fd):
                on_frame(frame)
        except Exception as e:
            failed.set_exception(e)

    fds = sock.fds()
    added: list[int] = []
    try:
        for fd in fds:
            loop.add_reader(fd, ready, fd)
            added.append(fd)
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((stopped, failed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if failed.done() and not stop.is_set():
            failed.result()  # raise what went wrong
    finally:
        for fd in added:
            loop.remove_reader(fd)
        if not failed.done():
            failed.cancel()
        elif not failed.cancelled():
            failed.exception()  # retrieved: no "exception never retrieved" warning
