"""The layer-2 speaker's pure packet code: lbctl.speaker.packets and lbctl.speaker.responder.

Hand-written byte vectors (an ARP exchange, an NS/NA exchange whose ICMPv6 checksums are
checked against an independent reference), a table reaching every DropReason, the
responder's and the conflict detector's decisions, and hypothesis properties: decode never
raises (arbitrary bytes, truncations, single-byte mutations), encode/decode round trips.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbctl.speaker.packets import (
    ARP_REPLY,
    ARP_REQUEST,
    BROADCAST,
    ZERO_MAC,
    ArpPacket,
    Dropped,
    DropReason,
    NeighborAdvertisement,
    NeighborSolicitation,
    Packet,
    arp_probe,
    arp_reply,
    dad_probe,
    decode,
    encode,
    gratuitous_arp,
    mac_from_str,
    mac_to_str,
    multicast_mac,
    neighbor_advertisement,
    solicited_node,
    unsolicited_na,
)
from lbctl.speaker.responder import Interface, Reply, conflict, respond

V4, V6 = IPv4Address, IPv6Address
PEER = bytes.fromhex("020000000001")  # the host asking
OURS = bytes.fromhex("020000000002")  # this node
OTHER = bytes.fromhex("020000000003")  # a third host
IFACE = Interface("eth0", 2, OURS, V6("fe80::2"))
NO_V6 = Interface("eth0", 2, OURS, None)
VIP4, VIP6 = V4("192.0.2.10"), V6("2001:db8::10")
R = DropReason
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def owned(ip: IPv4Address | IPv6Address) -> bool:
    return ip in (VIP4, VIP6)


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# --- an independent Internet checksum: the sum modulo 0xFFFF, no end-around-carry loop ---


def ref_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum((data[i] << 8) | data[i + 1] for i in range(0, len(data), 2))
    rest = total % 0xFFFF
    return 0xFFFF - rest if rest else (0 if total else 0xFFFF)


def icmpv6_checksum(src: IPv6Address, dst: IPv6Address, icmp: bytes) -> int:
    """``icmp`` with its checksum field zeroed; RFC 8200 8.1 pseudo-header."""
    pseudo = src.packed + dst.packed + len(icmp).to_bytes(4, "big") + b"\x00\x00\x00\x3a"
    return ref_checksum(pseudo + icmp[:2] + b"\x00\x00" + icmp[4:])


def fix_checksum(frame: bytes) -> bytes:
    """Recompute the ICMPv6 checksum of an Ethernet/IPv6 frame after editing it."""
    length = int.from_bytes(frame[18:20], "big")
    icmp = frame[54 : 54 + length]
    csum = icmpv6_checksum(V6(frame[22:38]), V6(frame[38:54]), icmp)
    return frame[:56] + csum.to_bytes(2, "big") + frame[58:]


def patch(frame: bytes, offset: int, new: bytes, *, fix: bool = False) -> bytes:
    out = frame[:offset] + new + frame[offset + len(new) :]
    return fix_checksum(out) if fix else out


# --- hand-written vectors ----------------------------------------------------------------

# 02:..:01 at 192.0.2.1 asks (broadcast) who has 192.0.2.10.
ARP_REQ = h("""
    ffffffffffff 020000000001 0806
    0001 0800 06 04 0001 020000000001 c0000201 000000000000 c000020a
""")
# We answer, unicast: 192.0.2.10 is at 02:..:02.
ARP_REP = h("""
    020000000001 020000000002 0806
    0001 0800 06 04 0002 020000000002 c000020a 020000000001 c0000201
""")
# 2001:db8::1 (02:..:01) asks for 2001:db8::10 at its solicited-node group ff02::1:ff00:10.
NS_CSUM = 0x1C0B
NS = h(f"""
    3333ff000010 020000000001 86dd
    60000000 0020 3a ff 20010db8000000000000000000000001 ff0200000000000000000001ff000010
    87 00 {NS_CSUM:04x} 00000000 20010db8000000000000000000000010 01 01 020000000001
""")
# We answer from fe80::2, solicited + override, with our target link-layer address.
NA_CSUM = 0xB99B
NA = h(f"""
    020000000001 020000000002 86dd
    60000000 0020 3a ff fe800000000000000000000000000002 20010db8000000000000000000000001
    88 00 {NA_CSUM:04x} 60000000 20010db8000000000000000000000010 02 01 020000000002
""")
ARP_REQ_PACKET = ArpPacket(PEER, BROADCAST, ARP_REQUEST, PEER, V4("192.0.2.1"), ZERO_MAC, VIP4)
NS_PACKET = NeighborSolicitation(
    eth_src=PEER,
    eth_dst=h("3333ff000010"),
    src_ip=V6("2001:db8::1"),
    dst_ip=V6("ff02::1:ff00:10"),
    target=VIP6,
    source_lladdr=PEER,
)


def test_checksum_vectors_agree_with_the_reference() -> None:
    assert icmpv6_checksum(V6("2001:db8::1"), V6("ff02::1:ff00:10"), NS[54:]) == NS_CSUM
    assert icmpv6_checksum(V6("fe80::2"), V6("2001:db8::1"), NA[54:]) == NA_CSUM


def test_arp_vector() -> None:
    assert decode(ARP_REQ) == ArpPacket(
        eth_src=PEER,
        eth_dst=BROADCAST,
        op=ARP_REQUEST,
        sender_mac=PEER,
        sender_ip=V4("192.0.2.1"),
        target_mac=ZERO_MAC,
        target_ip=VIP4,
    )
    assert encode(ARP_REQ_PACKET) == ARP_REQ
    assert arp_reply(ARP_REQ_PACKET, OURS) == ARP_REP
    assert respond(ARP_REQ, IFACE, owned) == Reply(ARP_REP, VIP4, "arp")
    assert respond(ARP_REQ + bytes(18), IFACE, owned) == Reply(ARP_REP, VIP4, "arp")  # padded


def test_ndp_vector() -> None:
    assert decode(NS) == NS_PACKET
    assert encode(NS_PACKET) == NS
    assert decode(NA) == NeighborAdvertisement(
        OURS, PEER, V6("fe80::2"), V6("2001:db8::1"), VIP6, False, True, True, OURS
    )
    assert neighbor_advertisement(NS_PACKET, OURS, V6("fe80::2")) == NA
    assert respond(NS, IFACE, owned) == Reply(NA, VIP6, "ndp")
    assert respond(NS + bytes(7), IFACE, owned) == Reply(NA, VIP6, "ndp")  # padded


@pytest.mark.parametrize(
    ("text", "mac"),
    [
        ("aa:bb:cc:dd:ee:ff", h("aabbccddeeff")),
        ("AA-BB-CC-00-01-02", h("aabbcc000102")),
        ("02:00:00:00:00:01", PEER),
    ],
)
def test_mac_strings(text: str, mac: bytes) -> None:
    assert mac_from_str(text) == mac
    assert mac_to_str(mac) == text.lower().replace("-", ":")


BAD_MACS = ["", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00", "aa:bb:cc:dd:ee:f", "aabb.ccdd.eeff"]
BAD_MACS += ["+a:bb:cc:dd:ee:ff", " a:bb:cc:dd:ee:ff", "gg:bb:cc:dd:ee:ff", "a_:bb:cc:dd:ee:ff"]


@pytest.mark.parametrize("text", BAD_MACS)
def test_mac_from_str_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="MAC"):
        mac_from_str(text)


def test_bad_values_raise() -> None:
    with pytest.raises(ValueError, match="6 bytes"):
        mac_to_str(b"\x00" * 5)
    with pytest.raises(ValueError, match="eth_src"):
        ArpPacket(b"\x00", BROADCAST, ARP_REQUEST, PEER, VIP4, ZERO_MAC, VIP4)
    with pytest.raises(ValueError, match="op"):
        ArpPacket(PEER, BROADCAST, 3, PEER, VIP4, ZERO_MAC, VIP4)
    with pytest.raises(ValueError, match="op"):
        gratuitous_arp(VIP4, OURS, 0)
    with pytest.raises(ValueError, match="source_lladdr"):
        NeighborSolicitation(PEER, PEER, VIP6, VIP6, VIP6, b"\x01" * 7)
    with pytest.raises(ValueError, match="multicast"):
        multicast_mac(VIP6)


@pytest.mark.parametrize(
    ("ip", "group", "mac"),
    [
        (V6("2001:db8::10"), V6("ff02::1:ff00:10"), h("3333ff000010")),
        (V6("fe80::aabb:ccdd:eeff"), V6("ff02::1:ffdd:eeff"), h("3333ffddeeff")),
        (V6("::"), V6("ff02::1:ff00:0"), h("3333ff000000")),
    ],
)
def test_solicited_node(ip: IPv6Address, group: IPv6Address, mac: bytes) -> None:
    assert solicited_node(ip) == group
    assert multicast_mac(group) == mac
    assert multicast_mac(V6("ff02::1")) == h("333300000001")


def test_builders() -> None:
    assert decode(gratuitous_arp(VIP4, OURS, ARP_REQUEST)) == ArpPacket(
        OURS, BROADCAST, ARP_REQUEST, OURS, VIP4, ZERO_MAC, VIP4
    )
    assert decode(gratuitous_arp(VIP4, OURS, ARP_REPLY)) == ArpPacket(
        OURS, BROADCAST, ARP_REPLY, OURS, VIP4, OURS, VIP4
    )
    assert decode(arp_probe(VIP4, OURS)) == ArpPacket(
        OURS, BROADCAST, ARP_REQUEST, OURS, V4("0.0.0.0"), ZERO_MAC, VIP4
    )
    all_nodes, all_nodes_mac = V6("ff02::1"), h("333300000001")
    assert decode(unsolicited_na(VIP6, OURS, V6("fe80::2"))) == NeighborAdvertisement(
        OURS, all_nodes_mac, V6("fe80::2"), all_nodes, VIP6, False, False, True, OURS
    )
    group = V6("ff02::1:ff00:10")
    assert decode(dad_probe(VIP6, OURS)) == NeighborSolicitation(
        OURS, h("3333ff000010"), V6("::"), group, VIP6, None
    )
    dad = NeighborSolicitation(OTHER, h("3333ff000010"), V6("::"), group, VIP6, None)
    assert decode(neighbor_advertisement(dad, OURS, V6("fe80::2"))) == NeighborAdvertisement(
        OURS, all_nodes_mac, V6("fe80::2"), all_nodes, VIP6, False, False, True, OURS
    )
    no_lladdr = NeighborSolicitation(OTHER, OURS, V6("2001:db8::3"), VIP6, VIP6, None)
    na = decode(neighbor_advertisement(no_lladdr, OURS, V6("fe80::2")))
    assert isinstance(na, NeighborAdvertisement)
    assert (na.eth_dst, na.dst_ip, na.solicited) == (OTHER, V6("2001:db8::3"), True)
    probe = decode(arp_probe(VIP4, OTHER))
    assert isinstance(probe, ArpPacket)
    assert decode(arp_reply(probe, OURS)) == ArpPacket(
        OURS, OTHER, ARP_REPLY, OURS, VIP4, OTHER, V4("0.0.0.0")
    )


# --- every DropReason --------------------------------------------------------------------


def with_icmp(frame: bytes, icmp: bytes) -> bytes:
    """An Ethernet/IPv6 ``frame`` carrying ``icmp`` instead, length and checksum fixed."""
    return fix_checksum(frame[:18] + len(icmp).to_bytes(2, "big") + frame[20:54] + icmp)


def with_options(frame: bytes, options: bytes) -> bytes:
    """An NS/NA ``frame`` with its NDP options replaced by ``options``."""
    return with_icmp(frame, frame[54:78] + options)


NA_MCAST = unsolicited_na(VIP6, OTHER, V6("fe80::3"))
DAD = dad_probe(VIP6, OTHER)
SLLA = h("0101") + PEER

DECODE_DROPS: list[tuple[str, bytes, DropReason]] = [
    ("empty", b"", R.TOO_SHORT),
    ("13 bytes", ARP_REQ[:13], R.TOO_SHORT),
    ("ARP of 41 bytes", ARP_REQ[:41], R.TOO_SHORT),
    ("IPv6 of 53 bytes", NS[:53], R.TOO_SHORT),
    ("payload past the end", NS[:-1], R.TOO_SHORT),
    ("ICMPv6 of 3 bytes", patch(NS, 18, h("0003")), R.TOO_SHORT),
    ("NDP of 8 bytes", with_icmp(NS, NS[54:62]), R.TOO_SHORT),
    ("IPv4", patch(ARP_REQ, 12, h("0800")), R.UNKNOWN_ETHERTYPE),
    ("802.1Q", patch(ARP_REQ, 12, h("8100")), R.UNKNOWN_ETHERTYPE),
    ("htype", patch(ARP_REQ, 14, h("0006")), R.BAD_ARP_HEADER),
    ("ptype", patch(ARP_REQ, 16, h("86dd")), R.BAD_ARP_HEADER),
    ("hlen", patch(ARP_REQ, 18, h("08")), R.BAD_ARP_HEADER),
    ("plen", patch(ARP_REQ, 19, h("10")), R.BAD_ARP_HEADER),
    ("RARP op", patch(ARP_REQ, 20, h("0003")), R.BAD_ARP_OP),
    ("op 0", patch(ARP_REQ, 20, h("0000")), R.BAD_ARP_OP),
    ("IP version 4", patch(NS, 14, h("40")), R.BAD_IPV6_HEADER),
    ("multicast source", patch(NS, 22, V6("ff02::1").packed, fix=True), R.BAD_IPV6_HEADER),
    ("UDP", patch(NS, 20, h("11")), R.NOT_ICMPV6),
    ("hop-by-hop", patch(NS, 20, h("00")), R.NOT_ICMPV6),
    ("checksum", patch(NS, 56, h("0000")), R.BAD_CHECKSUM),
    ("checksum of a changed target", patch(NS, 77, h("11")), R.BAD_CHECKSUM),
    ("checksum of a changed source", patch(NA, 23, h("81")), R.BAD_CHECKSUM),
    ("hop limit 64", patch(NS, 21, h("40")), R.BAD_HOP_LIMIT),
    ("hop limit 1", patch(NA, 21, h("01")), R.BAD_HOP_LIMIT),
    ("echo request", with_icmp(NS, h("8000 0000 0001 0001")), R.UNKNOWN_ICMPV6_TYPE),
    ("router solicitation", patch(NS, 54, h("85"), fix=True), R.UNKNOWN_ICMPV6_TYPE),
    ("code 1", patch(NS, 55, h("01"), fix=True), R.BAD_NDP_HEADER),
    ("DAD NS to ff02::1", patch(DAD, 38, V6("ff02::1").packed, fix=True), R.BAD_NDP_HEADER),
    ("solicited NA to ff02::1", patch(NA_MCAST, 58, h("60"), fix=True), R.BAD_NDP_HEADER),
    ("zero-length option", with_options(NS, h("0100") + PEER), R.BAD_NDP_OPTION),
    ("option past the end", with_options(NS, h("0102") + PEER), R.BAD_NDP_OPTION),
    ("option header cut", with_options(NS, SLLA + b"\x01"), R.BAD_NDP_OPTION),
    ("lladdr option of 16 bytes", with_options(NS, h("0102") + PEER + bytes(8)), R.BAD_NDP_OPTION),
    ("DAD NS with a source lladdr", patch(NS, 22, bytes(16), fix=True), R.BAD_NDP_OPTION),
    ("NS target ff02::1", patch(NS, 62, V6("ff02::1").packed, fix=True), R.BAD_NDP_TARGET),
    ("NA target ff02::1", patch(NA, 62, V6("ff02::1").packed, fix=True), R.BAD_NDP_TARGET),
]


@pytest.mark.parametrize(
    ("frame", "reason"), [c[1:] for c in DECODE_DROPS], ids=[c[0] for c in DECODE_DROPS]
)
def test_decode_drops(frame: bytes, reason: DropReason) -> None:
    result = decode(frame)
    assert isinstance(result, Dropped)
    assert result.reason is reason, result.detail
    assert result.detail


@pytest.mark.parametrize(
    ("options", "lladdr"),
    [
        (b"", None),
        (SLLA, PEER),
        (h("0e01 000000000000") + SLLA, PEER),  # unknown type 14 (nonce) skipped
        (SLLA + h("0101 030303030303"), PEER),  # the first wins
        (h("0201 030303030303"), None),  # a target lladdr in an NS is not its source
    ],
)
def test_ndp_options(options: bytes, lladdr: bytes | None) -> None:
    got = decode(with_options(NS, options))
    assert isinstance(got, NeighborSolicitation)
    assert got.source_lladdr == lladdr


ARP_REPLY_IN = arp_reply(ARP_REQ_PACKET, OTHER)
GRAT = gratuitous_arp(VIP4, OTHER, ARP_REQUEST)
NS_OTHER = patch(NS, 62, V6("2001:db8::99").packed, fix=True)
NS_FROM_SELF = patch(NS, 80, OURS, fix=True)
NS_TO_ALL = patch(NS, 38, V6("ff02::1").packed, fix=True)

RESPOND_DROPS: list[tuple[str, bytes, Interface, DropReason]] = [
    ("decode drop passes through", NS[:53], IFACE, R.TOO_SHORT),
    ("ARP reply", ARP_REPLY_IN, IFACE, R.NOT_A_REQUEST),
    ("NA", NA_MCAST, IFACE, R.NOT_A_REQUEST),
    ("ARP for another IP", patch(ARP_REQ, 38, V4("192.0.2.99").packed), IFACE, R.NOT_OURS),
    ("NS for another IP", NS_OTHER, IFACE, R.NOT_OURS),
    ("NS to ff02::1", NS_TO_ALL, IFACE, R.NOT_OURS),
    ("our own ARP", arp_probe(VIP4, OURS), IFACE, R.FROM_SELF),
    ("ARP with our sender MAC", patch(ARP_REQ, 22, OURS), IFACE, R.FROM_SELF),
    ("our own NS", dad_probe(VIP6, OURS), IFACE, R.FROM_SELF),
    ("NS with our lladdr", NS_FROM_SELF, IFACE, R.FROM_SELF),
    ("our own NA", unsolicited_na(VIP6, OURS, V6("fe80::2")), IFACE, R.FROM_SELF),
    ("gratuitous ARP", GRAT, IFACE, R.GRATUITOUS),
    ("gratuitous ARP reply", gratuitous_arp(VIP4, OTHER, ARP_REPLY), IFACE, R.NOT_A_REQUEST),
    ("no link-local", NS, NO_V6, R.NO_LINK_LOCAL),
]


@pytest.mark.parametrize(
    ("frame", "iface", "reason"),
    [c[1:] for c in RESPOND_DROPS],
    ids=[c[0] for c in RESPOND_DROPS],
)
def test_respond_drops(frame: bytes, iface: Interface, reason: DropReason) -> None:
    result = respond(frame, iface, owned)
    assert isinstance(result, Dropped)
    assert result.reason is reason, result.detail


def test_every_drop_reason_is_reached() -> None:
    reached = {c[2] for c in DECODE_DROPS} | {c[3] for c in RESPOND_DROPS}
    assert reached == set(DropReason)
    assert all(r.value == r.name.lower() for r in DropReason)  # snake_case metric labels


@pytest.mark.parametrize(
    ("frame", "ip", "eth_dst"),
    [
        (arp_probe(VIP4, OTHER), V4("0.0.0.0"), OTHER),  # RFC 5227: a probe is answered
        (patch(NS, 38, VIP6.packed, fix=True), V6("2001:db8::1"), PEER),  # unicast NUD
        (DAD, V6("ff02::1"), h("333300000001")),  # someone else's DAD: we defend
        (with_options(NS, b""), V6("2001:db8::1"), PEER),  # no lladdr: Ethernet source
    ],
)
def test_respond_answers(frame: bytes, ip: IPv4Address | IPv6Address, eth_dst: bytes) -> None:
    result = respond(frame, IFACE, owned)
    assert isinstance(result, Reply)
    reply = decode(result.frame)
    assert isinstance(reply, ArpPacket | NeighborAdvertisement)
    assert reply.eth_src == OURS
    assert reply.eth_dst == eth_dst
    if isinstance(reply, ArpPacket):
        assert (result.kind, reply.op, reply.sender_ip, reply.target_ip) == ("arp", 2, VIP4, ip)
    else:
        assert (result.kind, reply.target, reply.dst_ip) == ("ndp", VIP6, ip)
        assert (reply.src_ip, reply.target_lladdr, reply.override) == (IFACE.link_local, OURS, True)


# --- conflict detection ------------------------------------------------------------------

CONFLICTS: list[tuple[str, bytes, IPv4Address | IPv6Address, bytes | None]] = [
    ("ARP request from the IP", patch(ARP_REQ, 28, VIP4.packed), VIP4, PEER),
    ("ARP reply from the IP", ARP_REPLY_IN, VIP4, OTHER),
    ("gratuitous ARP", GRAT, VIP4, OTHER),
    ("simultaneous probe", arp_probe(VIP4, OTHER), VIP4, OTHER),
    ("ARP asking for the IP", ARP_REQ, VIP4, None),
    ("probe for another IP", arp_probe(V4("192.0.2.99"), OTHER), VIP4, None),
    ("our own probe", arp_probe(VIP4, OURS), VIP4, None),
    ("our sender MAC", patch(ARP_REPLY_IN, 22, OURS), VIP4, None),
    ("ARP when probing IPv6", GRAT, VIP6, None),
    ("NA for the IP", NA_MCAST, VIP6, OTHER),
    ("NA without lladdr", with_options(NA_MCAST, b""), VIP6, OTHER),
    ("NA lladdr over Ethernet source", with_options(NA_MCAST, h("0201") + PEER), VIP6, PEER),
    ("NA for another IP", unsolicited_na(V6("2001:db8::99"), OTHER, V6("fe80::3")), VIP6, None),
    ("our own NA", unsolicited_na(VIP6, OURS, V6("fe80::2")), VIP6, None),
    ("DAD NS for the IP", DAD, VIP6, OTHER),
    ("our own DAD NS", dad_probe(VIP6, OURS), VIP6, None),
    ("NS sent from the IP", patch(NS, 22, VIP6.packed, fix=True), VIP6, PEER),
    ("NS asking for the IP", NS, VIP6, None),
    ("NDP when probing IPv4", NA_MCAST, VIP4, None),
    ("garbage", b"\x00" * 30, VIP4, None),
]


@pytest.mark.parametrize(
    ("frame", "ip", "other"), [c[1:] for c in CONFLICTS], ids=[c[0] for c in CONFLICTS]
)
def test_conflict(frame: bytes, ip: IPv4Address | IPv6Address, other: bytes | None) -> None:
    assert conflict(frame, ip, OURS) == other


# --- properties --------------------------------------------------------------------------

macs = st.binary(min_size=6, max_size=6)
v4s = st.integers(0, 2**32 - 1).map(IPv4Address)
v6s = st.integers(0, 2**128 - 1).map(IPv6Address)
unicast6 = v6s.filter(lambda ip: not ip.is_multicast)
lladdrs = st.none() | macs


@st.composite
def arp_packets(draw: st.DrawFn) -> ArpPacket:
    ops = st.sampled_from([ARP_REQUEST, ARP_REPLY])
    return ArpPacket(
        draw(macs), draw(macs), draw(ops), draw(macs), draw(v4s), draw(macs), draw(v4s)
    )


@st.composite
def solicitations(draw: st.DrawFn) -> NeighborSolicitation:
    """Valid NSs: unicast from a unicast source, or DAD from :: without lladdr."""
    target = draw(unicast6)
    if draw(st.booleans()):
        group = solicited_node(target)
        return NeighborSolicitation(draw(macs), multicast_mac(group), V6(0), group, target, None)
    src, dst = draw(unicast6.filter(lambda ip: ip != V6(0))), draw(v6s)
    return NeighborSolicitation(draw(macs), draw(macs), src, dst, target, draw(lladdrs))


FrameBuilder = Callable[[st.DrawFn], bytes]

BUILDERS: list[FrameBuilder] = [
    lambda d: arp_reply(d(arp_packets()), d(macs)),
    lambda d: gratuitous_arp(d(v4s), d(macs), d(st.sampled_from([ARP_REQUEST, ARP_REPLY]))),
    lambda d: arp_probe(d(v4s), d(macs)),
    lambda d: encode(d(arp_packets())),
    lambda d: encode(d(solicitations())),
    lambda d: neighbor_advertisement(d(solicitations()), d(macs), d(unicast6)),
    lambda d: unsolicited_na(d(unicast6), d(macs), d(unicast6)),
    lambda d: dad_probe(d(unicast6), d(macs)),
]


@st.composite
def valid_frames(draw: st.DrawFn) -> bytes:
    return draw(st.sampled_from(BUILDERS))(draw)


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A valid frame with one byte changed; IPv6 ones get their checksum fixed, to go deeper."""
    frame = draw(valid_frames())
    at = draw(st.integers(0, len(frame) - 1))
    frame = patch(frame, at, bytes([draw(st.integers(0, 255))]))
    return fix_checksum(frame) if frame[12:14] == h("86dd") else frame


def check_result(result: Packet | Dropped) -> None:
    assert isinstance(result, ArpPacket | NeighborSolicitation | NeighborAdvertisement | Dropped)


@SETTINGS
@given(st.binary(max_size=200))
def test_decode_never_raises(frame: bytes) -> None:
    check_result(decode(frame))


@SETTINGS
@given(st.sampled_from([ARP_REQ[:14], NS[:14], NS[:54], NS[:78]]), st.binary(max_size=120))
def test_decode_never_raises_past_a_valid_header(head: bytes, tail: bytes) -> None:
    check_result(decode(head + tail))


@SETTINGS
@given(valid_frames(), st.binary(max_size=20))
def test_round_trip(frame: bytes, padding: bytes) -> None:
    packet = decode(frame)
    assert not isinstance(packet, Dropped), packet
    assert encode(packet) == frame
    assert decode(frame + padding) == packet


@SETTINGS
@given(valid_frames(), st.data())
def test_truncations_are_too_short(frame: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(frame) - 1))
    result = decode(frame[:cut])
    assert isinstance(result, Dropped)
    assert result.reason is R.TOO_SHORT


@SETTINGS
@given(valid_frames(), st.data())
def test_single_byte_mutations(frame: bytes, data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(frame) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != frame[at]))
    result = decode(patch(frame, at, bytes([byte])))
    check_result(result)
    if frame[12:14] == h("86dd") and at >= 22:  # IPv6 addresses and ICMPv6: checksummed
        assert isinstance(result, Dropped)
        assert result.reason is R.BAD_CHECKSUM


@SETTINGS
@given(
    st.one_of(st.binary(max_size=200), valid_frames(), mutated_frames()),
    st.sampled_from([IFACE, NO_V6]),
    st.booleans(),
)
def test_respond_and_conflict_never_raise(frame: bytes, iface: Interface, mine: bool) -> None:
    result = respond(frame, iface, lambda ip: mine)
    assert isinstance(result, Reply | Dropped)
    if isinstance(result, Reply):
        check_result(decode(result.frame))
        assert not isinstance(decode(result.frame), Dropped)
    for ip in (VIP4, VIP6):
        other = conflict(frame, ip, OURS)
        assert other is None or (len(other) == 6 and other != OURS)
