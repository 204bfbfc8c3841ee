"""What a load-balancer provider can serve, and the pure check of a Service's ports.

A provider declares its :class:`Capabilities` once. Before any side effect the
controller runs :func:`check_ports` on the Service's ports; the provider is then given
only :attr:`PortCheck.supported`, and every refused port is reported in
``status.loadBalancer.ingress[].ports[]`` (with a CamelCase ``error``, see
:class:`PortErrorReason`), in a ``LoadBalancerPortsError`` condition and in a Warning
Event (with :attr:`PortCheck.message`).

The rules, applied port by port in ``spec.ports`` order (the first rule that refuses
a port wins, and a refused port takes no part in the later rules):

1. ``UnsupportedProtocol``: the protocol is not in :attr:`Capabilities.protocols`.
2. ``MixedProtocolNotSupported``: without :attr:`Capabilities.mixed_protocols`, the
   protocol of the first port that passed rule 1 is the Service's protocol; every
   later port with another protocol is refused.
3. ``SamePortTCPUDPNotSupported``: without :attr:`Capabilities.tcp_udp_same_port`, a
   TCP (UDP) port whose number an earlier accepted UDP (TCP) port already uses is
   refused; the earlier one is served.

An empty protocol is read as ``TCP``, the API server's default.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from lbctl.domain import names
from lbctl.domain.service import IPMode, PortStatus, Protocol, ServicePort

__all__ = [
    "MAX_MESSAGE_REFUSALS",
    "MAX_PORT_ERROR_BYTES",
    "Capabilities",
    "PortCheck",
    "PortErrorReason",
    "RefusedPort",
    "capability_errors",
    "check_ports",
    "desired_port_statuses",
    "port_error",
]

MAX_PORT_ERROR_BYTES: Final = 316
"""``status.loadBalancer.ingress[].ports[].error`` is at most 316 bytes (``core/v1``)."""

MAX_MESSAGE_REFUSALS: Final = 10
""":attr:`PortCheck.message` names at most this many ports, so a condition message stays
far below its 32 KiB limit whatever the number of ports."""

# The pattern published for ``PortStatus.error``: an optional DNS-subdomain prefix and
# '/', then a CamelCase name.
_PORT_ERROR_RE: Final = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])"
)


class PortErrorReason(StrEnum):
    """Why a port was refused: the CamelCase ``ports[].error`` and the Event reason."""

    UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"
    MIXED_PROTOCOL_NOT_SUPPORTED = "MixedProtocolNotSupported"
    SAME_PORT_TCP_UDP_NOT_SUPPORTED = "SamePortTCPUDPNotSupported"


def port_error(reason: str) -> str:
    """``reason`` if it is a valid ``ports[].error``, else :class:`ValueError`.

    Valid: at most :data:`MAX_PORT_ERROR_BYTES` bytes, a CamelCase name optionally
    prefixed with a DNS subdomain and '/' (``PortUnavailable``,
    ``example.com/PortUnavailable``). Providers with reasons of their own use this.
    """
    if names.byte_len(reason) > MAX_PORT_ERROR_BYTES:
        raise ValueError(f"port error {reason[:40]!r}...: longer than {MAX_PORT_ERROR_BYTES}")
    if _PORT_ERROR_RE.fullmatch(reason) is None:
        raise ValueError(f"port error {reason!r}: must be a CamelCase name")
    return reason


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider can serve; checked by :func:`capability_errors` on creation."""

    protocols: frozenset[str]
    """Port protocols it serves: a non-empty subset of TCP, UDP, SCTP."""
    mixed_protocols: bool = False
    """Ports of different protocols on one load balancer."""
    tcp_udp_same_port: bool = False
    """A TCP and a UDP port with the same number (one TCP_UDP listener)."""
    dual_stack: bool = False
    """One load balancer with an IPv4 and an IPv6 address."""
    source_ranges: bool = False
    """It enforces ``spec.loadBalancerSourceRanges``."""
    external_traffic_policy_local: bool = False
    """It honours ``externalTrafficPolicy: Local`` (health checks on the node port)."""
    ip_mode: str | None = "VIP"
    """The ``ipMode`` its IP ingress carries (VIP or Proxy); None when it answers only
    with hostnames."""
    hostname: bool = False
    """Its ingress may carry a hostname."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "protocols", frozenset(self.protocols))
        problems = capability_errors(self)
        if problems:
            raise ValueError("invalid capabilities: " + "; ".join(problems))

    def supported_text(self) -> str:
        """The protocols in the usual order: ``TCP, UDP``."""
        return ", ".join(p for p in Protocol if p in self.protocols)


def capability_errors(caps: Capabilities) -> list[str]:
    """Why ``caps`` is not a consistent declaration; empty when it is.

    Duck-typed, so the conformance suite can check an object built around
    :meth:`Capabilities.__post_init__`.
    """
    problems: list[str] = []
    if not caps.protocols:
        problems.append("protocols must not be empty")
    unknown = sorted(p for p in caps.protocols if p not in set(Protocol))
    if unknown:
        problems.append(f"protocols {unknown} are not among TCP, UDP, SCTP")
    if caps.ip_mode is not None and caps.ip_mode not in set(IPMode):
        problems.append(f"ip_mode {caps.ip_mode!r} is neither VIP nor Proxy")
    if caps.ip_mode is None and not caps.hostname:
        problems.append("ip_mode None means hostname-only, but hostname is False")
    return problems


@dataclass(frozen=True, slots=True)
class RefusedPort:
    """A port the provider cannot serve."""

    port: int
    protocol: str
    reason: PortErrorReason
    message: str
    """For humans: ``port 80/SCTP: protocol SCTP is not supported by provider aws
    (supported: TCP, UDP)``."""

    def status(self) -> PortStatus:
        return PortStatus(port=self.port, protocol=self.protocol, error=port_error(self.reason))


@dataclass(frozen=True, slots=True)
class PortCheck:
    """The outcome of :func:`check_ports`."""

    supported: tuple[ServicePort, ...]
    """The ports to give the provider, in ``spec.ports`` order."""
    refused: tuple[RefusedPort, ...]
    """The ports it cannot serve, in ``spec.ports`` order."""
    statuses: tuple[PortStatus, ...]
    """One entry per port, in ``spec.ports`` order; ``error`` set on refused ones."""

    @property
    def ok(self) -> bool:
        """Every port can be served."""
        return not self.refused

    @property
    def reason(self) -> str:
        """The reason of the first refusal (for the condition and Event); empty if ok."""
        return str(self.refused[0].reason) if self.refused else ""

    @property
    def message(self) -> str:
        """All refusals in one line (at most :data:`MAX_MESSAGE_REFUSALS` named)."""
        shown = [r.message for r in self.refused[:MAX_MESSAGE_REFUSALS]]
        hidden = len(self.refused) - len(shown)
        if hidden:
            shown.append(f"and {hidden} more refused port{'s' if hidden > 1 else ''}")
        return "; ".join(shown)


_TCP_UDP_PARTNER: Final[dict[str, str]] = {Protocol.TCP: Protocol.UDP, Protocol.UDP: Protocol.TCP}


def _label(port: int, protocol: str) -> str:
    return f"port {port}/{protocol}"


def check_ports(
    ports: Sequence[ServicePort], caps: Capabilities, *, provider: str = ""
) -> PortCheck:
    """Split ``ports`` into those ``caps`` can serve and those refused (module rules).

    ``provider`` names the provider in the messages. Pure and deterministic: the same
    ports in the same order always give the same answer.
    """
    by = f"provider {provider}" if provider else "the provider"
    supported: list[ServicePort] = []
    refused: list[RefusedPort] = []
    statuses: list[PortStatus] = []
    first_protocol: str | None = None
    served: set[tuple[int, str]] = set()
    for port in ports:
        protocol = port.protocol or str(Protocol.TCP)
        label = _label(port.port, protocol)
        refusal: tuple[PortErrorReason, str] | None = None
        other = _TCP_UDP_PARTNER.get(protocol)
        if protocol not in caps.protocols:
            refusal = (
                PortErrorReason.UNSUPPORTED_PROTOCOL,
                f"{label}: protocol {protocol} is not supported by {by}"
                f" (supported: {caps.supported_text()})",
            )
        elif not caps.mixed_protocols and first_protocol not in (None, protocol):
            refusal = (
                PortErrorReason.MIXED_PROTOCOL_NOT_SUPPORTED,
                f"{label}: {by} does not support mixed protocols on one load balancer"
                f" (the first port's protocol, {first_protocol}, is served)",
            )
        elif not caps.tcp_udp_same_port and other is not None and (port.port, other) in served:
            refusal = (
                PortErrorReason.SAME_PORT_TCP_UDP_NOT_SUPPORTED,
                f"{label}: {by} does not support TCP and UDP on the same port"
                f" ({_label(port.port, other)} is served)",
            )
        if refusal is None:
            if first_protocol is None:
                first_protocol = protocol
            served.add((port.port, protocol))
            supported.append(port)
            statuses.append(PortStatus(port=port.port, protocol=protocol))
        else:
            refused_port = RefusedPort(port.port, protocol, *refusal)
            refused.append(refused_port)
            statuses.append(refused_port.status())
    return PortCheck(tuple(supported), tuple(refused), tuple(statuses))


def desired_port_statuses(check: PortCheck) -> tuple[PortStatus, ...]:
    """What ``ingress[].ports`` should hold: every port when one is refused, else none.

    ``core/v1`` asks that, when ``ports`` is used, every Service port has an entry; when
    all ports are served the list is left out, as upstream controllers do.
    """
    return () if check.ok else check.statuses
