"""What the layer-2 speaker does with one received frame. Pure: no socket, no clock.

:func:`respond` decides whether a frame is an ARP request (RFC 826) or a Neighbor
Solicitation (RFC 4861 7.2.3) for a load-balancer IP this node owns on the interface, and
returns the reply frame to send or a :class:`~lbctl.speaker.packets.Dropped` saying why
not (one :class:`~lbctl.speaker.packets.DropReason`, usable as a metric label).

:func:`conflict` serves the probe phase before an IP is announced (RFC 5227 2.1.1 for
IPv4, RFC 4862 5.4.3/5.4.4 for IPv6): it returns the MAC of another host seen using or
claiming the IP, else None.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Literal

from lbctl.speaker.packets import (
    ARP_REQUEST,
    UNSPECIFIED,
    ArpPacket,
    Dropped,
    DropReason,
    NeighborAdvertisement,
    NeighborSolicitation,
    arp_reply,
    decode,
    neighbor_advertisement,
    solicited_node,
)

__all__ = ["Interface", "Owned", "Reply", "conflict", "respond"]

Owned = Callable[[IPv4Address | IPv6Address], bool]
"""Whether this node announces the IP on this interface right now."""

_ANY_V4 = IPv4Address(0)


@dataclass(frozen=True, slots=True)
class Interface:
    """The interface a frame came in on: ``mac`` is 6 bytes; ``link_local`` is the IPv6
    source of our NAs (None: no IPv6 replies possible)."""

    name: str
    index: int
    mac: bytes
    link_local: IPv6Address | None


@dataclass(frozen=True, slots=True)
class Reply:
    """A frame to send back on the same interface, answering for ``ip``."""

    frame: bytes
    ip: IPv4Address | IPv6Address
    kind: Literal["arp", "ndp"]


def respond(frame: bytes, iface: Interface, owned: Owned) -> Reply | Dropped:
    """The reply to ``frame`` received on ``iface``, or why there is none; never raises
    unless ``owned`` does.

    ARP: a request (a probe from 0.0.0.0 included, so the prober sees the conflict, RFC 5227
    2.1.1) whose target IP is owned gets a unicast reply with ``iface.mac``; a gratuitous ARP
    (sender IP = target IP) asks nothing. NDP: an NS for an owned target, sent to the
    target's solicited-node group or to the target itself, gets an NA from
    ``iface.link_local`` (to ff02::1 for a DAD NS).
    """
    packet = decode(frame)
    if isinstance(packet, Dropped):
        return packet
    if isinstance(packet, ArpPacket):
        if iface.mac in (packet.eth_src, packet.sender_mac):
            return Dropped(DropReason.FROM_SELF, "ARP from our own MAC")
        if packet.op != ARP_REQUEST:
            return Dropped(DropReason.NOT_A_REQUEST, f"ARP reply for {packet.sender_ip}")
        if packet.sender_ip == packet.target_ip:
            return Dropped(DropReason.GRATUITOUS, f"gratuitous ARP for {packet.target_ip}")
        if not owned(packet.target_ip):
            return Dropped(DropReason.NOT_OURS, f"ARP who-has {packet.target_ip}")
        return Reply(arp_reply(packet, iface.mac), packet.target_ip, "arp")
    if iface.mac in (packet.eth_src, _lladdr(packet)):
        return Dropped(DropReason.FROM_SELF, "NDP from our own MAC")
    if isinstance(packet, NeighborAdvertisement):
        return Dropped(DropReason.NOT_A_REQUEST, f"NA for {packet.target}")
    target = packet.target
    if packet.dst_ip not in (target, solicited_node(target)):
        return Dropped(DropReason.NOT_OURS, f"NS for {target} sent to {packet.dst_ip}")
    if not owned(target):
        return Dropped(DropReason.NOT_OURS, f"NS for {target}")
    if iface.link_local is None:
        return Dropped(DropReason.NO_LINK_LOCAL, f"{iface.name} has no IPv6 link-local address")
    return Reply(neighbor_advertisement(packet, iface.mac, iface.link_local), target, "ndp")


def conflict(frame: bytes, ip: IPv4Address | IPv6Address, own_mac: bytes) -> bytes | None:
    """The MAC of another host that ``frame`` shows using or claiming ``ip``, else None.

    IPv4 (RFC 5227 2.1.1): any ARP with sender IP ``ip``, or a probe (sender 0.0.0.0) for
    ``ip`` -- a simultaneous probe. IPv6 (RFC 4862 5.4.3/5.4.4): an NA for target ``ip``
    (its target lladdr, else Ethernet source), a DAD NS for ``ip``, or any NS sent from
    ``ip``. A frame from ``own_mac`` (a looped-back copy of ours) is never a conflict.
    """
    packet = decode(frame)
    if isinstance(packet, Dropped) or own_mac == packet.eth_src:
        return None
    if isinstance(packet, ArpPacket):
        if packet.sender_mac == own_mac or not isinstance(ip, IPv4Address):
            return None
        probe = packet.op == ARP_REQUEST and packet.sender_ip == _ANY_V4
        if packet.sender_ip == ip or (probe and packet.target_ip == ip):
            return packet.sender_mac
        return None
    other = _lladdr(packet) or packet.eth_src
    if other == own_mac:
        return None
    if isinstance(packet, NeighborAdvertisement):
        return other if packet.target == ip else None
    dad = packet.src_ip == UNSPECIFIED and packet.target == ip
    return other if dad or packet.src_ip == ip else None


def _lladdr(packet: NeighborSolicitation | NeighborAdvertisement) -> bytes | None:
    if isinstance(packet, NeighborSolicitation):
        return packet.source_lladdr
    return packet.target_lladdr
