"""Answering for owned IPs on the wire: probe, announce, answer, let go.

The :class:`Announcer` is told which IPs this node should announce and on which
interfaces (:meth:`Announcer.update`, from the election); for each it

1. **probes** first when the IP was never announced by anyone (a newly assigned
   address): ``probe_count`` RFC 5227 ARP probes / DAD Neighbor Solicitations,
   ``probe_interval`` apart, then waits ``probe_interval`` more. If another host
   answers or claims the IP (:func:`~lbctl.speaker.responder.conflict`), the IP goes to
   ``CONFLICT``: never answered for, probed again every ``recheck`` seconds;
2. **announces**: from then on ARP requests / Neighbor Solicitations for it are
   answered (:func:`~lbctl.speaker.responder.respond`) and a burst of
   ``gratuitous_count`` gratuitous ARP (request + reply) / unsolicited NA rounds goes
   out, the first at once, ``gratuitous_interval`` apart; with ``refresh`` > 0 every
   owned IP is announced again every ``refresh`` seconds;
3. **lets go** at once when the IP is no longer wanted: the next request for it is not
   answered.

The VIP is never added to an interface: the kernel never answers for it, only this
process, from an AF_PACKET socket per interface (:mod:`lbctl.speaker.rawsock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from lbctl.speaker import packets
from lbctl.speaker.metrics import SpeakerMetrics
from lbctl.speaker.rawsock import InterfaceError, PacketSocket, list_links, usable
from lbctl.speaker.responder import Interface, Reply, conflict, respond

__all__ = ["Announcer", "AnnouncerConfig", "FrameSocket", "OpenSocket", "State", "Want"]

log = logging.getLogger("lbctl.speaker.announcer")

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class State(StrEnum):
    PROBING = "probing"
    ANNOUNCING = "announcing"
    CONFLICT = "conflict"


@dataclass(frozen=True, slots=True)
class Want:
    ip: str
    interfaces: tuple[str, ...] | None
    """None: every usable interface."""
    probe: bool
    """Probe before the first announcement (the IP was never announced)."""


@dataclass(frozen=True, slots=True)
class AnnouncerConfig:
    gratuitous_count: int = 5
    gratuitous_interval: float = 1.1
    refresh: float = 0.0
    probe_count: int = 3
    probe_interval: float = 0.2
    recheck: float = 10.0
    interfaces: tuple[str, ...] = ()
    """Override: these interfaces for every IP (the ``--interfaces`` flag)."""


@dataclass(slots=True)
class _Entry:
    ip: IP
    interfaces: tuple[str, ...]
    state: State
    conflict: tuple[str, str] | None = None
    """``(other host's MAC, interface)`` found by the last probe round (kept while the
    next round runs, cleared when a round finds the IP free)."""
    seen: tuple[str, str] | None = None
    """What the current probe round found."""
    found: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class FrameSocket(Protocol):
    """What the announcer needs of an interface's socket (:class:`PacketSocket`)."""

    @property
    def interface(self) -> Interface: ...

    def fds(self) -> list[int]: ...

    def recv(self, fd: int) -> list[bytes]: ...

    def send(self, frame: bytes) -> None: ...

    def close(self) -> None: ...


OpenSocket = Callable[[str], FrameSocket]
REOPEN_SECONDS = 1.0
"""How often interfaces whose socket broke are tried again."""


class Announcer:
    def __init__(
        self,
        config: AnnouncerConfig,
        metrics: SpeakerMetrics,
        *,
        on_change: Callable[[], None] = lambda: None,
        open_socket: OpenSocket = PacketSocket.open,
    ) -> None:
        """``on_change``: called whenever an IP changes state (status to write)."""
        self.config = config
        self.metrics = metrics
        self._on_change = on_change
        self._open = open_socket
        self._entries: dict[str, _Entry] = {}
        self._sockets: dict[str, FrameSocket] = {}
        self._warned: set[str] = set()

    # -- what the app reads ------------------------------------------------------------
    def announced(self) -> dict[str, tuple[str, ...]]:
        """IP -> interfaces, for the IPs answered for now."""
        return {ip: e.interfaces for ip, e in self._entries.items() if e.state is State.ANNOUNCING}

    def conflicts(self) -> dict[str, tuple[str, str]]:
        """IP -> (the other host's MAC, interface), for the IPs found in use."""
        return {
            ip: e.conflict
            for ip, e in self._entries.items()
            if e.state is not State.ANNOUNCING and e.conflict is not None
        }

    # -- what the app says -------------------------------------------------------------
    def update(self, wants: Mapping[str, Want]) -> None:
        """Announce exactly ``wants`` from now on (keys: normalised IP strings)."""
        for ip in [ip for ip in self._entries if ip not in wants]:
            self._drop(ip)
        every: tuple[str, ...] | None = None  # read from /sys once per update, if needed
        for ip, want in wants.items():
            if self.config.interfaces:
                ifaces = tuple(sorted(self.config.interfaces))
            elif want.interfaces is not None:
                ifaces = tuple(sorted(want.interfaces))
            else:
                if every is None:
                    every = tuple(sorted(usable(list_links(), None)))
                ifaces = every
            e = self._entries.get(ip)
            if e is None:
                probing = want.probe and self.config.probe_count > 0
                e = _Entry(
                    ipaddress.ip_address(ip),
                    ifaces,
                    State.PROBING if probing else State.ANNOUNCING,
                )
                self._entries[ip] = e
                log.info(
                    "%s %s on %s", "probing" if probing else "announcing", ip, ",".join(ifaces)
                )
                e.task = asyncio.create_task(self._probe(e) if probing else self._burst(e))
            elif ifaces != e.interfaces:
                added = set(ifaces) - set(e.interfaces)
                e.interfaces = ifaces
                if e.state is State.ANNOUNCING and added:
                    self._send_gratuitous(e, sorted(added))
        self._sync_sockets()
        self._on_change()

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: reopen interfaces whose socket broke (deleted and re-created,
        as MetalLB rescans them) every ``REOPEN_SECONDS``, and refresh announcements (if
        configured); then close everything."""
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + (self.config.refresh or float("inf"))
        try:
            while not stop.is_set():
                wait = min(REOPEN_SECONDS, max(0.0, next_refresh - loop.time()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
                if stop.is_set():
                    break
                self._reopen()
                if loop.time() >= next_refresh:
                    next_refresh = loop.time() + self.config.refresh
                    for e in list(self._entries.values()):
                        if e.state is State.ANNOUNCING:
                            self._send_gratuitous(e, e.interfaces)
        finally:
            await self.close()

    def _reopen(self) -> None:
        """Open the sockets that are missing; announce again on the ones reopened (their
        link was reset: neighbours may have lost us)."""
        before = set(self._sockets)
        self._sync_sockets()
        reopened = set(self._sockets) - before
        for e in self._entries.values():
            names = sorted(reopened & set(e.interfaces))
            if e.state is State.ANNOUNCING and names:
                self._send_gratuitous(e, names)

    async def close(self) -> None:
        tasks = [e.task for e in self._entries.values() if e.task is not None]
        self._entries.clear()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._sync_sockets()

    # -- internals: state ----------------------------------------------------------------
    def _drop(self, ip: str) -> None:
        e = self._entries.pop(ip)
        if e.task is not None:
            e.task.cancel()
        log.info("no longer announcing %s", ip)

    async def _probe(self, e: _Entry) -> None:
        cfg = self.config
        while True:
            e.seen = None
            e.found.clear()
            e.state = State.PROBING
            for _ in range(cfg.probe_count):
                for name in e.interfaces:
                    self._send(name, lambda i: _probe_frame(e.ip, i))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(e.found.wait(), cfg.probe_interval)
                if e.found.is_set():
                    break
            e.conflict = e.seen
            if e.conflict is None:
                break
            e.state = State.CONFLICT
            self.metrics.conflict("arp" if e.ip.version == 4 else "ndp")
            log.warning(
                "%s is in use by %s on %s: not announced", e.ip, e.conflict[0], e.conflict[1]
            )
            self._on_change()
            await asyncio.sleep(cfg.recheck)
        e.state = State.ANNOUNCING
        log.info("announcing %s on %s", e.ip, ",".join(e.interfaces))
        self._on_change()
        await self._burst(e)

    async def _burst(self, e: _Entry) -> None:
        for i in range(self.config.gratuitous_count):
            if i:
                await asyncio.sleep(self.config.gratuitous_interval)
            if e.state is not State.ANNOUNCING:
                return
            self._send_gratuitous(e, e.interfaces)

    # -- internals: frames -------------------------------------------------------------
    def _send_gratuitous(self, e: _Entry, interfaces: Iterable[str]) -> None:
        proto = "arp" if e.ip.version == 4 else "ndp"
        for name in interfaces:
            sent = self._send(name, lambda i: _gratuitous_frames(e.ip, i))
            if sent:
                self.metrics.gratuitous(proto, name, sent)

    def _send(self, name: str, build: Callable[[Interface], list[bytes]]) -> int:
        sock = self._sockets.get(name)
        if sock is None:
            return 0
        frames = build(sock.interface)
        try:
            for frame in frames:
                sock.send(frame)
        except (InterfaceError, OSError) as err:
            log.warning("cannot send on %s: %s; reopening it", name, err)
            self._broken(name)
            return 0
        return len(frames)

    def _owned(self, iface: str) -> Callable[[IP], bool]:
        def owned(ip: IP) -> bool:
            e = self._entries.get(str(ip))
            return e is not None and e.state is State.ANNOUNCING and iface in e.interfaces

        return owned

    def _frame(self, sock: FrameSocket, frame: bytes) -> None:
        iface = sock.interface
        for e in self._entries.values():
            if e.state is State.PROBING and iface.name in e.interfaces and not e.found.is_set():
                mac = conflict(frame, e.ip, iface.mac)
                if mac is not None:
                    e.seen = (packets.mac_to_str(mac), iface.name)
                    e.found.set()
        result = respond(frame, iface, self._owned(iface.name))
        proto = "arp" if frame[12:14] == b"\x08\x06" else "ndp"
        if isinstance(result, Reply):
            self.metrics.request(result.kind, iface.name)
            try:
                sock.send(result.frame)
            except (InterfaceError, OSError) as err:
                log.warning("cannot answer on %s: %s; reopening it", iface.name, err)
                self._broken(iface.name)
                return
            self.metrics.response(result.kind, iface.name)
            return
        if result.reason is packets.DropReason.NOT_OURS:
            self.metrics.request(proto, iface.name)
        self.metrics.dropped(result.reason.value)

    def _readable(self, sock: FrameSocket, fd: int) -> None:
        try:
            frames = sock.recv(fd)
        except (InterfaceError, OSError) as err:
            log.warning("cannot read on %s: %s; reopening it", sock.interface.name, err)
            self._broken(sock.interface.name)
            return
        for frame in frames:
            try:
                self._frame(sock, frame)
            except Exception:  # a bug must not stop answering for the other frames
                log.exception("frame on %s not handled", sock.interface.name)

    def _broken(self, name: str) -> None:
        """Close ``name``'s socket; :meth:`run` opens it again once the interface is back."""
        sock = self._sockets.pop(name, None)
        if sock is None:
            return
        loop = asyncio.get_running_loop()
        for fd in sock.fds():
            loop.remove_reader(fd)
        with contextlib.suppress(OSError):
            sock.close()

    def _sync_sockets(self) -> None:
        needed = {n for e in self._entries.values() for n in e.interfaces}
        loop = asyncio.get_running_loop()
        for name in [n for n in self._sockets if n not in needed]:
            sock = self._sockets.pop(name)
            for fd in sock.fds():
                loop.remove_reader(fd)
            sock.close()
        for name in sorted(needed - set(self._sockets)):
            try:
                sock = self._open(name)
            except (InterfaceError, OSError) as err:
                if name not in self._warned:
                    log.warning("interface %s not usable: %s", name, err)
                    self._warned.add(name)
                continue
            self._warned.discard(name)
            self._sockets[name] = sock
            for fd in sock.fds():
                loop.add_reader(fd, self._readable, sock, fd)


def _probe_frame(ip: IP, iface: Interface) -> list[bytes]:
    if isinstance(ip, ipaddress.IPv4Address):
        return [packets.arp_probe(ip, iface.mac)]
    return [packets.dad_probe(ip, iface.mac)]


def _gratuitous_frames(ip: IP, iface: Interface) -> list[bytes]:
    if isinstance(ip, ipaddress.IPv4Address):
        return [
            packets.gratuitous_arp(ip, iface.mac, packets.ARP_REQUEST),
            packets.gratuitous_arp(ip, iface.mac, packets.ARP_REPLY),
        ]
    if iface.link_local is None:
        return []
    return [packets.unsolicited_na(ip, iface.mac, iface.link_local)]
