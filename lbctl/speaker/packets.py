"""Ethernet frames carrying ARP (RFC 826) and IPv6 NDP (RFC 4861): decode and encode. Pure.

:func:`decode` turns any ``bytes`` into an :class:`ArpPacket`, a
:class:`NeighborSolicitation`, a :class:`NeighborAdvertisement` or a :class:`Dropped`
with a :class:`DropReason`; it never raises. It checks what RFC 4861 section 7.1.1/7.1.2
asks of a received NS/NA (hop limit 255, ICMPv6 checksum over the pseudo-header of
RFC 8200 section 8.1, code 0, options of non-zero length, non-multicast target, DAD and
multicast rules) and honours the IPv6 payload length, so Ethernet padding is ignored.

:func:`encode` and the builders return whole Ethernet II frames (no FCS, no padding to
60 bytes: the NIC pads). MAC addresses are 6-byte ``bytes``; lengths are in bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address
from typing import ClassVar, Final

__all__ = [
    "ALL_NODES",
    "ARP_REPLY",
    "ARP_REQUEST",
    "BROADCAST",
    "ETH_P_ARP",
    "ETH_P_IPV6",
    "UNSPECIFIED",
    "ZERO_MAC",
    "ArpPacket",
    "DropReason",
    "Dropped",
    "NeighborAdvertisement",
    "NeighborSolicitation",
    "Packet",
    "arp_probe",
    "arp_reply",
    "dad_probe",
    "decode",
    "encode",
    "gratuitous_arp",
    "mac_from_str",
    "mac_to_str",
    "multicast_mac",
    "neighbor_advertisement",
    "solicited_node",
    "unsolicited_na",
]

ETH_P_ARP: Final = 0x0806
ETH_P_IPV6: Final = 0x86DD
ARP_REQUEST: Final = 1
ARP_REPLY: Final = 2
BROADCAST: Final = b"\xff" * 6
ZERO_MAC: Final = b"\x00" * 6
ALL_NODES: Final = IPv6Address("ff02::1")
UNSPECIFIED: Final = IPv6Address("::")

_ETH_LEN: Final = 14  # dst, src, ethertype
_ARP_LEN: Final = 28  # RFC 826 for Ethernet/IPv4
_IPV6_LEN: Final = 40  # RFC 8200 fixed header
_NDP_LEN: Final = 24  # ICMPv6 header + reserved/flags + target (RFC 4861 4.3/4.4)
_ICMPV6: Final = 58
_NDP_HOP_LIMIT: Final = 255
_NS: Final = 135
_NA: Final = 136
_ARP_FIXED: Final = struct.pack("!HHBB", 1, 0x0800, 6, 4)  # htype, ptype, hlen, plen
_SOLICITED_NODE_PREFIX: Final = int(IPv6Address("ff02::1:ff00:0"))
_HEX: Final = frozenset("0123456789abcdefABCDEF")


class DropReason(StrEnum):
    """Why a frame is not used; the values are metric labels."""

    TOO_SHORT = "too_short"
    UNKNOWN_ETHERTYPE = "unknown_ethertype"
    BAD_ARP_HEADER = "bad_arp_header"
    BAD_ARP_OP = "bad_arp_op"
    BAD_IPV6_HEADER = "bad_ipv6_header"
    NOT_ICMPV6 = "not_icmpv6"
    BAD_CHECKSUM = "bad_checksum"
    BAD_HOP_LIMIT = "bad_hop_limit"
    UNKNOWN_ICMPV6_TYPE = "unknown_icmpv6_type"
    BAD_NDP_HEADER = "bad_ndp_header"  # code != 0, or RFC 4861 addressing rules broken
    BAD_NDP_OPTION = "bad_ndp_option"
    BAD_NDP_TARGET = "bad_ndp_target"
    # The responder's reasons (lbctl.speaker.responder):
    NOT_A_REQUEST = "not_a_request"
    NOT_OURS = "not_ours"
    FROM_SELF = "from_self"
    GRATUITOUS = "gratuitous"
    NO_LINK_LOCAL = "no_link_local"


@dataclass(frozen=True, slots=True)
class Dropped:
    """A frame that is not used: the reason (a metric label) and a human-readable detail."""

    reason: DropReason
    detail: str


def _check_mac(name: str, value: bytes | None) -> None:
    if value is not None and len(value) != 6:
        raise ValueError(f"{name} must be 6 bytes, got {len(value)}")


@dataclass(frozen=True, slots=True)
class ArpPacket:
    """An Ethernet/IPv4 ARP packet (RFC 826) and its Ethernet addresses."""

    ARP_REQUEST: ClassVar[int] = ARP_REQUEST
    ARP_REPLY: ClassVar[int] = ARP_REPLY

    eth_src: bytes
    eth_dst: bytes
    op: int
    sender_mac: bytes
    sender_ip: IPv4Address
    target_mac: bytes
    target_ip: IPv4Address

    def __post_init__(self) -> None:
        for name in ("eth_src", "eth_dst", "sender_mac", "target_mac"):
            _check_mac(name, getattr(self, name))
        if self.op not in (ARP_REQUEST, ARP_REPLY):
            raise ValueError(f"ARP op must be 1 (request) or 2 (reply), got {self.op}")


@dataclass(frozen=True, slots=True)
class NeighborSolicitation:
    """An ICMPv6 Neighbor Solicitation (RFC 4861 4.3); ``source_lladdr`` is option 1."""

    eth_src: bytes
    eth_dst: bytes
    src_ip: IPv6Address
    dst_ip: IPv6Address
    target: IPv6Address
    source_lladdr: bytes | None

    def __post_init__(self) -> None:
        for name in ("eth_src", "eth_dst", "source_lladdr"):
            _check_mac(name, getattr(self, name))


@dataclass(frozen=True, slots=True)
class NeighborAdvertisement:
    """An ICMPv6 Neighbor Advertisement (RFC 4861 4.4); ``target_lladdr`` is option 2."""

    eth_src: bytes
    eth_dst: bytes
    src_ip: IPv6Address
    dst_ip: IPv6Address
    target: IPv6Address
    router: bool
    solicited: bool
    override: bool
    target_lladdr: bytes | None

    def __post_init__(self) -> None:
        for name in ("eth_src", "eth_dst", "target_lladdr"):
            _check_mac(name, getattr(self, name))


Packet = ArpPacket | NeighborSolicitation | NeighborAdvertisement


# --- helpers -------------------------------------------------------------------------


def mac_to_str(mac: bytes) -> str:
    """``b"\\xaa\\xbb..."`` -> ``"aa:bb:cc:dd:ee:ff"``; ValueError unless 6 bytes."""
    _check_mac("mac", mac)
    return ":".join(f"{b:02x}" for b in mac)


def mac_from_str(text: str) -> bytes:
    """``"aa:bb:cc:dd:ee:ff"`` (or ``-``-separated, any case) -> 6 bytes; ValueError else."""
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or any(len(p) != 2 or not set(p) <= _HEX for p in parts):
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


def solicited_node(ip: IPv6Address) -> IPv6Address:
    """The solicited-node multicast address of ``ip``: ff02::1:ff00:0/104 + its low 24 bits
    (RFC 4291 2.7.1)."""
    return IPv6Address(_SOLICITED_NODE_PREFIX | (int(ip) & 0xFFFFFF))


def multicast_mac(ip: IPv6Address) -> bytes:
    """The Ethernet address of an IPv6 multicast group: 33:33 + its last 4 bytes (RFC 2464
    section 7); ValueError if ``ip`` is not multicast."""
    if not ip.is_multicast:
        raise ValueError(f"{ip} is not a multicast address")
    return b"\x33\x33" + ip.packed[12:]


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's complement sum."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pseudo_header(src: IPv6Address, dst: IPv6Address, length: int) -> bytes:
    """The IPv6 pseudo-header for an upper-layer checksum (RFC 8200 section 8.1)."""
    return src.packed + dst.packed + struct.pack("!I3xB", length, _ICMPV6)


# --- decode --------------------------------------------------------------------------


def decode(frame: bytes) -> Packet | Dropped:
    """Parse one Ethernet II frame (no FCS); never raises, whatever ``frame`` holds."""
    if len(frame) < _ETH_LEN:
        return Dropped(DropReason.TOO_SHORT, f"frame of {len(frame)} bytes, Ethernet needs 14")
    eth_dst, eth_src = bytes(frame[0:6]), bytes(frame[6:12])
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    if ethertype == ETH_P_ARP:
        return _decode_arp(frame, eth_src, eth_dst)
    if ethertype == ETH_P_IPV6:
        return _decode_ipv6(frame, eth_src, eth_dst)
    return Dropped(DropReason.UNKNOWN_ETHERTYPE, f"ethertype 0x{ethertype:04x}")


def _decode_arp(frame: bytes, eth_src: bytes, eth_dst: bytes) -> ArpPacket | Dropped:
    if len(frame) < _ETH_LEN + _ARP_LEN:
        return Dropped(DropReason.TOO_SHORT, f"ARP frame of {len(frame)} bytes, needs 42")
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", frame, _ETH_LEN)
    if frame[_ETH_LEN : _ETH_LEN + 6] != _ARP_FIXED:
        return Dropped(
            DropReason.BAD_ARP_HEADER,
            f"htype={htype} ptype=0x{ptype:04x} hlen={hlen} plen={plen}, "
            "want Ethernet/IPv4 (1, 0x0800, 6, 4)",
        )
    if op not in (ARP_REQUEST, ARP_REPLY):
        return Dropped(DropReason.BAD_ARP_OP, f"ARP op {op}")
    body = frame[_ETH_LEN + 8 : _ETH_LEN + _ARP_LEN]
    sender_mac, sender_ip = bytes(body[0:6]), IPv4Address(bytes(body[6:10]))
    target_mac, target_ip = bytes(body[10:16]), IPv4Address(bytes(body[16:20]))
    return ArpPacket(eth_src, eth_dst, op, sender_mac, sender_ip, target_mac, target_ip)


def _decode_ipv6(
    frame: bytes, eth_src: bytes, eth_dst: bytes
) -> NeighborSolicitation | NeighborAdvertisement | Dropped:
    if len(frame) < _ETH_LEN + _IPV6_LEN:
        return Dropped(DropReason.TOO_SHORT, f"IPv6 frame of {len(frame)} bytes, needs 54")
    vtf, length, next_header, hop_limit = struct.unpack_from("!IHBB", frame, _ETH_LEN)
    if vtf >> 28 != 6:
        return Dropped(DropReason.BAD_IPV6_HEADER, f"IP version {vtf >> 28} in an IPv6 frame")
    if next_header != _ICMPV6:
        return Dropped(DropReason.NOT_ICMPV6, f"next header {next_header}")
    start = _ETH_LEN + _IPV6_LEN
    if length > len(frame) - start:
        return Dropped(
            DropReason.TOO_SHORT, f"payload length {length}, only {len(frame) - start} present"
        )
    if length < 4:
        return Dropped(DropReason.TOO_SHORT, f"ICMPv6 message of {length} bytes")
    src = IPv6Address(bytes(frame[_ETH_LEN + 8 : _ETH_LEN + 24]))
    dst = IPv6Address(bytes(frame[_ETH_LEN + 24 : start]))
    icmp = bytes(frame[start : start + length])
    if src.is_multicast:  # RFC 4291 section 2.7
        return Dropped(DropReason.BAD_IPV6_HEADER, f"multicast source {src}")
    if _checksum(_pseudo_header(src, dst, length) + icmp) != 0:
        return Dropped(DropReason.BAD_CHECKSUM, f"ICMPv6 checksum 0x{icmp[2]:02x}{icmp[3]:02x}")
    if hop_limit != _NDP_HOP_LIMIT:
        return Dropped(DropReason.BAD_HOP_LIMIT, f"hop limit {hop_limit}, NDP needs 255")
    icmp_type, code = icmp[0], icmp[1]
    if icmp_type not in (_NS, _NA):
        return Dropped(DropReason.UNKNOWN_ICMPV6_TYPE, f"ICMPv6 type {icmp_type}")
    if code != 0:
        return Dropped(DropReason.BAD_NDP_HEADER, f"ICMPv6 code {code}, NDP needs 0")
    if length < _NDP_LEN:
        return Dropped(DropReason.TOO_SHORT, f"NDP message of {length} bytes, needs 24")
    target = IPv6Address(icmp[8:24])
    if target.is_multicast:
        return Dropped(DropReason.BAD_NDP_TARGET, f"multicast target {target}")
    lladdr = _lladdr_option(icmp[_NDP_LEN:], 1 if icmp_type == _NS else 2)
    if isinstance(lladdr, Dropped):
        return lladdr
    if icmp_type == _NS:
        if src == UNSPECIFIED:  # DAD, RFC 4861 7.1.1
            if dst != solicited_node(target):
                return Dropped(DropReason.BAD_NDP_HEADER, f"DAD NS sent to {dst}")
            if lladdr is not None:
                return Dropped(DropReason.BAD_NDP_OPTION, "DAD NS with a source lladdr option")
        return NeighborSolicitation(eth_src, eth_dst, src, dst, target, lladdr)
    router, solicited, override = (bool(icmp[4] & bit) for bit in (0x80, 0x40, 0x20))
    if solicited and dst.is_multicast:  # RFC 4861 7.1.2
        return Dropped(DropReason.BAD_NDP_HEADER, f"solicited NA sent to multicast {dst}")
    return NeighborAdvertisement(
        eth_src, eth_dst, src, dst, target, router, solicited, override, lladdr
    )


def _lladdr_option(data: bytes, kind: int) -> bytes | Dropped | None:
    """The MAC in the first option of type ``kind`` (1 source, 2 target lladdr) in NDP
    options (RFC 4861 4.6: type, length in units of 8 bytes, never 0); others are skipped."""
    found: bytes | None = None
    at = 0
    while at < len(data):
        if len(data) - at < 2:
            return Dropped(DropReason.BAD_NDP_OPTION, f"option header cut at byte {at}")
        option, units = data[at], data[at + 1]
        if units == 0:
            return Dropped(DropReason.BAD_NDP_OPTION, f"option type {option} of length 0")
        if at + 8 * units > len(data):
            return Dropped(
                DropReason.BAD_NDP_OPTION,
                f"option type {option} of {8 * units} bytes, {len(data) - at} left",
            )
        if option == kind and found is None:
            if units != 1:  # Ethernet: RFC 2464 section 8
                return Dropped(DropReason.BAD_NDP_OPTION, f"lladdr option of {8 * units} bytes")
            found = data[at + 2 : at + 8]
        at += 8 * units
    return found


# --- encode --------------------------------------------------------------------------


def encode(packet: Packet) -> bytes:
    """One Ethernet II frame for ``packet``; NDP goes with hop limit 255 and a valid
    checksum, with the link-layer address option when that field is not None."""
    if isinstance(packet, ArpPacket):
        sender = packet.sender_mac + packet.sender_ip.packed
        target = packet.target_mac + packet.target_ip.packed
        arp = _ARP_FIXED + struct.pack("!H", packet.op) + sender + target
        return packet.eth_dst + packet.eth_src + struct.pack("!H", ETH_P_ARP) + arp
    if isinstance(packet, NeighborSolicitation):
        head = struct.pack("!BBHI", _NS, 0, 0, 0)
        option, kind = packet.source_lladdr, 1
    else:
        flags = (packet.router << 31) | (packet.solicited << 30) | (packet.override << 29)
        head = struct.pack("!BBHI", _NA, 0, 0, flags)
        option, kind = packet.target_lladdr, 2
    body = head + packet.target.packed
    if option is not None:
        body += bytes((kind, 1)) + option
    csum = _checksum(_pseudo_header(packet.src_ip, packet.dst_ip, len(body)) + body)
    icmp = body[:2] + struct.pack("!H", csum) + body[4:]
    ipv6 = struct.pack("!IHBB", 6 << 28, len(icmp), _ICMPV6, _NDP_HOP_LIMIT)
    ipv6 += packet.src_ip.packed + packet.dst_ip.packed
    return packet.eth_dst + packet.eth_src + struct.pack("!H", ETH_P_IPV6) + ipv6 + icmp


def arp_reply(request: ArpPacket, mac: bytes) -> bytes:
    """The reply to ``request`` saying its target IP is at ``mac``, unicast to the asker.

    A probe (sender IP 0.0.0.0, RFC 5227) gets a reply to 0.0.0.0 at the prober's MAC."""
    asker = request.sender_mac
    return encode(
        ArpPacket(mac, asker, ARP_REPLY, mac, request.target_ip, asker, request.sender_ip)
    )


def gratuitous_arp(ip: IPv4Address, mac: bytes, op: int) -> bytes:
    """A broadcast gratuitous ARP (RFC 5227 2.3/2.4) claiming ``ip`` for ``mac``: sender IP =
    target IP = ``ip``; target MAC zero in a request, ``mac`` in a reply."""
    if op not in (ARP_REQUEST, ARP_REPLY):
        raise ValueError(f"ARP op must be 1 (request) or 2 (reply), got {op}")
    target_mac = ZERO_MAC if op == ARP_REQUEST else mac
    return encode(ArpPacket(mac, BROADCAST, op, mac, ip, target_mac, ip))


def arp_probe(ip: IPv4Address, mac: bytes) -> bytes:
    """An ARP probe (RFC 5227 2.1.1): broadcast request from 0.0.0.0 asking who has ``ip``."""
    return encode(ArpPacket(mac, BROADCAST, ARP_REQUEST, mac, IPv4Address(0), ZERO_MAC, ip))


def neighbor_advertisement(request: NeighborSolicitation, mac: bytes, src_ip: IPv6Address) -> bytes:
    """The NA answering ``request`` (RFC 4861 7.2.4): target at ``mac``, override, not a
    router. A DAD NS (source ``::``) is answered to ff02::1 unsolicited (RFC 4862 5.4.3);
    otherwise solicited, unicast to the asker at its lladdr option, else its Ethernet source.
    """
    if request.src_ip == UNSPECIFIED:
        dst_ip, eth_dst, solicited = ALL_NODES, multicast_mac(ALL_NODES), False
    else:
        dst_ip, solicited = request.src_ip, True
        eth_dst = request.source_lladdr or request.eth_src
    na = NeighborAdvertisement(
        mac, eth_dst, src_ip, dst_ip, request.target, False, solicited, True, mac
    )
    return encode(na)


def unsolicited_na(ip: IPv6Address, mac: bytes, src_ip: IPv6Address) -> bytes:
    """An unsolicited NA (RFC 4861 7.2.6) to ff02::1 announcing ``ip`` at ``mac``, override."""
    return encode(
        NeighborAdvertisement(
            mac, multicast_mac(ALL_NODES), src_ip, ALL_NODES, ip, False, False, True, mac
        )
    )


def dad_probe(ip: IPv6Address, mac: bytes) -> bytes:
    """A DAD NS (RFC 4862 5.4.2): from ``::`` to the solicited-node group of ``ip``, no
    source lladdr option."""
    group = solicited_node(ip)
    return encode(NeighborSolicitation(mac, multicast_mac(group), UNSPECIFIED, group, ip, None))
