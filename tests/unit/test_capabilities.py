"""The pure port check run before any provider call: rules, order, messages, errors."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbctl.domain.capabilities import (
    MAX_MESSAGE_REFUSALS,
    MAX_PORT_ERROR_BYTES,
    Capabilities,
    PortErrorReason,
    capability_errors,
    check_ports,
    desired_port_statuses,
    port_error,
)
from lbctl.domain.service import Ingress, PortStatus, ServicePort, ServiceSpec, ServiceStatus
from lbctl.domain.validation_status import load_balancer_status_errors

TCP_UDP_SCTP = frozenset({"TCP", "UDP", "SCTP"})
ALL = Capabilities(TCP_UDP_SCTP, mixed_protocols=True, tcp_udp_same_port=True)
TCP_UDP = Capabilities(frozenset({"TCP", "UDP"}), mixed_protocols=True, tcp_udp_same_port=True)
SINGLE = Capabilities(frozenset({"TCP", "UDP"}), mixed_protocols=False)
NO_SAME_PORT = Capabilities(TCP_UDP_SCTP, mixed_protocols=True, tcp_udp_same_port=False)
UDP_SCTP = Capabilities(frozenset({"UDP", "SCTP"}), mixed_protocols=True)
TCP_ONLY = Capabilities(frozenset({"TCP"}))
UDP_ONLY = Capabilities(frozenset({"UDP"}))

UNSUPPORTED = PortErrorReason.UNSUPPORTED_PROTOCOL
MIXED = PortErrorReason.MIXED_PROTOCOL_NOT_SUPPORTED
SAME = PortErrorReason.SAME_PORT_TCP_UDP_NOT_SUPPORTED


def ports(*specs: str) -> tuple[ServicePort, ...]:
    """``"80/TCP"`` -> a port; ``"80"`` -> a port with no protocol (read as TCP)."""
    out: list[ServicePort] = []
    for spec in specs:
        number, _, protocol = spec.partition("/")
        out.append(ServicePort(port=int(number), protocol=protocol, name=f"p{len(out)}"))
    return tuple(out)


@dataclass(frozen=True)
class Case:
    desc: str
    caps: Capabilities
    ports: tuple[str, ...]
    served: tuple[str, ...]
    refused: tuple[tuple[str, PortErrorReason], ...] = ()


CASES = [
    Case("all supported", ALL, ("80/TCP", "53/UDP", "9/SCTP"), ("80/TCP", "53/UDP", "9/SCTP")),
    Case("no ports", ALL, (), ()),
    Case(
        "unsupported protocol",
        TCP_UDP,
        ("80/TCP", "80/SCTP", "53/UDP"),
        ("80/TCP", "53/UDP"),
        (("80/SCTP", UNSUPPORTED),),
    ),
    Case("empty protocol is TCP", TCP_ONLY, ("80",), ("80/TCP",)),
    Case("empty protocol refused as TCP", UDP_ONLY, ("80",), (), (("80/TCP", UNSUPPORTED),)),
    Case(
        "mixed: other protocols than the first port's are refused",
        SINGLE,
        ("80/TCP", "53/UDP", "443/TCP", "54/UDP"),
        ("80/TCP", "443/TCP"),
        (("53/UDP", MIXED), ("54/UDP", MIXED)),
    ),
    Case(
        "mixed: the first port decides, whatever its protocol",
        SINGLE,
        ("53/UDP", "80/TCP"),
        ("53/UDP",),
        (("80/TCP", MIXED),),
    ),
    Case(
        "mixed: an unsupported first port does not decide",
        SINGLE,
        ("9/SCTP", "53/UDP", "80/TCP"),
        ("53/UDP",),
        (("9/SCTP", UNSUPPORTED), ("80/TCP", MIXED)),
    ),
    Case(
        "same port TCP then UDP: the later UDP is refused",
        NO_SAME_PORT,
        ("53/TCP", "53/UDP", "54/UDP"),
        ("53/TCP", "54/UDP"),
        (("53/UDP", SAME),),
    ),
    Case(
        "same port UDP then TCP: the later TCP is refused",
        NO_SAME_PORT,
        ("53/UDP", "53/TCP"),
        ("53/UDP",),
        (("53/TCP", SAME),),
    ),
    Case("same port allowed", TCP_UDP, ("53/TCP", "53/UDP"), ("53/TCP", "53/UDP")),
    Case(
        "same port: SCTP is not TCP+UDP", NO_SAME_PORT, ("53/TCP", "53/SCTP"), ("53/TCP", "53/SCTP")
    ),
    Case(
        "same port: a refused earlier port does not count",
        Capabilities(frozenset({"UDP", "SCTP"}), mixed_protocols=True, tcp_udp_same_port=False),
        ("53/TCP", "53/UDP"),
        ("53/UDP",),
        (("53/TCP", UNSUPPORTED),),
    ),
    Case(
        "mixed wins over same port",
        SINGLE,
        ("53/TCP", "53/UDP"),
        ("53/TCP",),
        (("53/UDP", MIXED),),
    ),
]


def label(port: ServicePort | PortStatus) -> str:
    return f"{port.port}/{port.protocol}"


@pytest.mark.parametrize("case", CASES, ids=[c.desc for c in CASES])
def test_rules(case: Case) -> None:
    given_ports = ports(*case.ports)
    check = check_ports(given_ports, case.caps, provider="test")
    assert tuple(f"{p.port}/{p.protocol or 'TCP'}" for p in check.supported) == case.served
    assert tuple((f"{r.port}/{r.protocol}", r.reason) for r in check.refused) == case.refused
    assert all(p in given_ports for p in check.supported), "the ports themselves, unchanged"
    assert check.ok == (not case.refused)
    # One status per port, in spec order, the error on exactly the refused ones.
    assert tuple(label(s) for s in check.statuses) == tuple(
        f"{p.port}/{p.protocol or 'TCP'}" for p in given_ports
    )
    errors = {label(s): s.error for s in check.statuses if s.error is not None}
    assert errors == {port: str(reason) for port, reason in case.refused}


@pytest.mark.parametrize(
    ("caps", "specs", "provider", "message"),
    [
        (
            TCP_UDP,
            ("80/SCTP",),
            "aws",
            "port 80/SCTP: protocol SCTP is not supported by provider aws (supported: TCP, UDP)",
        ),
        (
            UDP_SCTP,
            ("80/TCP",),
            "",
            "port 80/TCP: protocol TCP is not supported by the provider (supported: UDP, SCTP)",
        ),
        (
            SINGLE,
            ("80/TCP", "53/UDP"),
            "aws",
            "port 53/UDP: provider aws does not support mixed protocols on one load balancer"
            " (the first port's protocol, TCP, is served)",
        ),
        (
            NO_SAME_PORT,
            ("53/TCP", "53/UDP"),
            "aws",
            "port 53/UDP: provider aws does not support TCP and UDP on the same port"
            " (port 53/TCP is served)",
        ),
    ],
)
def test_messages(caps: Capabilities, specs: tuple[str, ...], provider: str, message: str) -> None:
    check = check_ports(ports(*specs), caps, provider=provider)
    assert [r.message for r in check.refused] == [message]
    assert check.message == message


def test_reason_and_message_of_several_refusals() -> None:
    check = check_ports(ports("9/SCTP", "80/TCP", "53/UDP"), SINGLE, provider="aws")
    assert check.reason == "UnsupportedProtocol", "the first refusal's reason"
    assert check.message == "; ".join(r.message for r in check.refused)
    assert check_ports(ports("80/TCP"), SINGLE).reason == ""
    assert check_ports(ports("80/TCP"), SINGLE).message == ""


@pytest.mark.parametrize(
    ("extra", "tail"), [(1, "and 1 more refused port"), (5, "and 5 more refused ports")]
)
def test_message_names_a_bounded_number_of_ports(extra: int, tail: str) -> None:
    many = ports(*(f"{1000 + i}/SCTP" for i in range(MAX_MESSAGE_REFUSALS + extra)))
    check = check_ports(many, TCP_ONLY, provider="aws")
    parts = check.message.split("; ")
    assert len(parts) == MAX_MESSAGE_REFUSALS + 1
    assert parts[-1] == tail
    assert parts[0].startswith("port 1000/SCTP:")
    assert len(check.refused) == MAX_MESSAGE_REFUSALS + extra, "all are refused, only fewer named"


def test_exactly_the_maximum_is_named_without_a_tail() -> None:
    many = ports(*(f"{1000 + i}/SCTP" for i in range(MAX_MESSAGE_REFUSALS)))
    assert "more refused" not in check_ports(many, TCP_ONLY).message


def test_desired_port_statuses_only_when_something_is_refused() -> None:
    ok = check_ports(ports("80/TCP", "53/UDP"), ALL)
    assert desired_port_statuses(ok) == ()
    bad = check_ports(ports("80/TCP", "53/UDP"), SINGLE)
    assert desired_port_statuses(bad) == (
        PortStatus(port=80, protocol="TCP"),
        PortStatus(port=53, protocol="UDP", error="MixedProtocolNotSupported"),
    )


@pytest.mark.parametrize("caps", [SINGLE, NO_SAME_PORT, TCP_ONLY])
def test_port_statuses_pass_status_validation(caps: Capabilities) -> None:
    check = check_ports(ports("80/TCP", "53/UDP", "53/TCP", "9/SCTP"), caps)
    assert not check.ok
    status = ServiceStatus(
        ingress=(Ingress(ip="198.51.100.7", ip_mode="VIP", ports=desired_port_statuses(check)),)
    )
    spec = ServiceSpec(type="LoadBalancer")
    assert load_balancer_status_errors(status, spec=spec, strict=True) == []


def test_reasons_are_camel_case_and_short() -> None:
    for reason in PortErrorReason:
        assert port_error(reason) == reason
        assert reason[0].isupper() and reason.isalnum()
        assert len(reason.encode()) <= MAX_PORT_ERROR_BYTES


@pytest.mark.parametrize(
    "error",
    [
        "PortUnavailable",
        "example.com/PortUnavailable",
        "A" * MAX_PORT_ERROR_BYTES,
        "A" * (MAX_PORT_ERROR_BYTES + 1),
        "example.com/" + "A" * (MAX_PORT_ERROR_BYTES - 12),
        "example.com/" + "A" * (MAX_PORT_ERROR_BYTES - 11),
        "not camel!",
        "Example.com/Port",
        "-Leading",
        "",
    ],
)
def test_port_error_agrees_with_status_validation(error: str) -> None:
    """port_error accepts exactly what status validation accepts (316 bytes included)."""
    status = ServiceStatus(
        ingress=(
            Ingress(
                ip="198.51.100.7",
                ip_mode="VIP",
                ports=(PortStatus(port=80, protocol="TCP", error=error),),
            ),
        )
    )
    valid = not load_balancer_status_errors(
        status, spec=ServiceSpec(type="LoadBalancer"), strict=True
    )
    try:
        port_error(error)
    except ValueError:
        accepted = False
    else:
        accepted = True
    assert accepted == valid


def test_port_error_length_boundary() -> None:
    assert port_error("A" * 316) == "A" * 316
    with pytest.raises(ValueError, match="longer than 316"):
        port_error("A" * 317)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"protocols": frozenset()}, "protocols must not be empty"),
        ({"protocols": frozenset({"TCP", "HTTP"})}, "['HTTP'] are not among"),
        ({"protocols": frozenset({"TCP"}), "ip_mode": "Direct"}, "neither VIP nor Proxy"),
        ({"protocols": frozenset({"TCP"}), "ip_mode": None}, "hostname is False"),
    ],
)
def test_inconsistent_capabilities_are_refused(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match="invalid capabilities") as info:
        Capabilities(**kwargs)  # type: ignore[arg-type]
    assert problem in str(info.value)


def test_consistent_capabilities() -> None:
    hostname_only = Capabilities(frozenset({"TCP"}), ip_mode=None, hostname=True)
    assert capability_errors(hostname_only) == []
    both = Capabilities(frozenset({"TCP"}), ip_mode="Proxy", hostname=True)
    assert capability_errors(both) == []
    from_set = Capabilities({"UDP", "TCP"})  # type: ignore[arg-type]
    assert from_set.protocols == frozenset({"TCP", "UDP"})
    assert isinstance(from_set.protocols, frozenset)
    assert from_set.supported_text() == "TCP, UDP"


# --- properties -------------------------------------------------------------------

port_lists = st.lists(
    st.builds(
        ServicePort,
        port=st.integers(1, 6),
        protocol=st.sampled_from(["TCP", "UDP", "SCTP", ""]),
    ),
    max_size=8,
)
capabilities = st.builds(
    Capabilities,
    protocols=st.sets(st.sampled_from(["TCP", "UDP", "SCTP"]), min_size=1).map(frozenset),
    mixed_protocols=st.booleans(),
    tcp_udp_same_port=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(port_lists, capabilities)
def test_check_partitions_ports_and_respects_every_capability(
    given_ports: list[ServicePort], caps: Capabilities
) -> None:
    check = check_ports(given_ports, caps)
    assert check == check_ports(list(given_ports), caps), "deterministic"
    assert len(check.supported) + len(check.refused) == len(given_ports)
    assert len(check.statuses) == len(given_ports)
    served = [(p.port, p.protocol or "TCP") for p in check.supported]
    assert all(protocol in caps.protocols for _, protocol in served)
    if not caps.mixed_protocols:
        assert len({protocol for _, protocol in served}) <= 1
    if not caps.tcp_udp_same_port:
        assert not any((n, "TCP") in served and (n, "UDP") in served for n, _ in served)
    if caps.mixed_protocols and caps.tcp_udp_same_port:
        wanted = [p for p in given_ports if (p.protocol or "TCP") in caps.protocols]
        assert list(check.supported) == wanted, "only an unsupported protocol is refused"
