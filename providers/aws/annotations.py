"""Service annotations of the AWS NLB provider: parsed and validated in one pass (pure).

:func:`parse` returns an :class:`NLBConfig` or raises :class:`AnnotationError` listing
*every* problem, each naming its annotation, so a user fixes them all at once and
nothing is created in AWS from a half-valid Service.

Semantics chosen (cloud-provider-aws and the AWS Load Balancer Controller differ):

- ``aws-load-balancer-scheme`` (``internet-facing`` | ``internal``) wins; otherwise
  the legacy ``aws-load-balancer-internal`` as cloud-provider-aws reads it:
  ``"false"`` (any case) is internet-facing, *any* other non-empty value (``"true"``,
  the historical ``"0.0.0.0/0"``) is internal; absent or ``""``: ``default_scheme``.
- ``aws-load-balancer-nlb-target-type``: ``instance`` (default) or ``ip``.
- ``aws-load-balancer-ssl-cert`` may list several ARNs; without
  ``aws-load-balancer-ssl-ports`` every TCP port gets TLS (``("*",)``), as upstream.
- ``aws-load-balancer-additional-resource-tags``: ``k=v,k2=v2``; ``k`` alone is ``k=""``.
- Booleans are exactly ``true`` / ``false`` (any case); integers are decimal digits.
- Annotations of the prefix that lbctl does not implement are listed in
  :attr:`NLBConfig.ignored` (the provider may warn); they are not errors.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Final, TypeVar

from lbctl.domain.service import Service
from providers.aws import naming

__all__ = [
    "PREFIX",
    "SOURCE_RANGES_ANNOTATION",
    "TARGET_GROUP_ATTRIBUTES",
    "AnnotationError",
    "HealthCheckOverrides",
    "NLBConfig",
    "Scheme",
    "TargetType",
    "key",
    "parse",
]

PREFIX: Final = "service.beta.kubernetes.io/aws-load-balancer-"
SOURCE_RANGES_ANNOTATION: Final = "service.beta.kubernetes.io/load-balancer-source-ranges"
MAX_ADDITIONAL_TAGS: Final = 40

_T = TypeVar("_T")


def key(suffix: str) -> str:
    """The full annotation key: ``key("scheme")`` is ``...aws-load-balancer-scheme``."""
    return PREFIX + suffix


class Scheme(StrEnum):
    INTERNET_FACING = "internet-facing"
    INTERNAL = "internal"


class TargetType(StrEnum):
    INSTANCE = "instance"
    IP = "ip"


@dataclass(frozen=True, slots=True)
class HealthCheckOverrides:
    """Health-check fields set by annotation; None means "not set" (plan's default)."""

    protocol: str | None = None
    """``TCP`` | ``HTTP`` | ``HTTPS`` (upper-cased)."""
    port: int | None = None
    """A fixed port; None when unset or ``traffic-port``."""
    traffic_port: bool = False
    """The annotation said ``traffic-port``."""
    path: str | None = None
    interval: int | None = None
    timeout: int | None = None
    healthy_threshold: int | None = None
    unhealthy_threshold: int | None = None


@dataclass(frozen=True, slots=True)
class NLBConfig:
    """What the annotations (and ``loadBalancerSourceRanges``) ask for."""

    scheme: Scheme = Scheme.INTERNET_FACING
    subnets: tuple[str, ...] = ()
    """Subnet ids (``subnet-...``) or Name tags as written; ``()``: discover."""
    target_type: TargetType = TargetType.INSTANCE
    health: HealthCheckOverrides = field(default_factory=HealthCheckOverrides)
    target_group_attributes: Mapping[str, str] = field(default_factory=dict)
    """Validated; proxy-protocol ``*`` adds ``proxy_protocol_v2.enabled=true``."""
    ssl_cert: tuple[str, ...] = ()
    """Certificate ARNs (the first is the listener's default); ``()``: no TLS."""
    ssl_ports: tuple[str, ...] = ()
    """Port numbers or names; ``("*",)``: every TCP port. ``()`` when no certificate."""
    ssl_negotiation_policy: str | None = None
    additional_tags: Mapping[str, str] = field(default_factory=dict)
    cross_zone: bool | None = None
    eip_allocations: tuple[str, ...] = ()
    source_ranges: tuple[str, ...] = ()
    """Normalised CIDRs from the spec, else the annotation; ``()``: the plan's default."""
    ignored: tuple[str, ...] = ()
    """Annotations of the prefix that lbctl does not implement (sorted)."""


class AnnotationError(Exception):
    """One or more annotations are invalid; ``problems`` holds every one of them."""

    reason: ClassVar[str] = "InvalidAnnotation"

    def __init__(self, problems: tuple[tuple[str, str], ...]) -> None:
        self.problems = problems
        self.message = "; ".join(f"{k}: {msg}" for k, msg in problems)
        super().__init__(self.message)


# --- value checks: each returns (value, None) or (None, message) ----------------------

_INT_RE: Final = re.compile(r"[0-9]+")
_EIP_RE: Final = re.compile(r"eipalloc-[0-9a-f]+")
# AWS tag keys and values: Unicode letters, digits, spaces and _ . : / = + - @
_TAG_RE: Final = re.compile(r"[\w .:/=+\-@]*")


def _q(value: str) -> str:
    return '"' + value + '"'


def _bool(value: str) -> tuple[bool | None, str | None]:
    low = value.strip().lower()
    if low in ("true", "false"):
        return low == "true", None
    return None, f"{_q(value)} is not a boolean (true or false)"


def _int(value: str, low: int, high: int) -> tuple[int | None, str | None]:
    text = value.strip()
    if _INT_RE.fullmatch(text) and low <= int(text) <= high:
        return int(text), None
    return None, f"{_q(value)} is not an integer between {low} and {high}"


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _bool_attr(value: str) -> tuple[str | None, str | None]:
    low = value.lower()
    return (low, None) if low in ("true", "false") else (None, "must be true or false")


def _delay_attr(value: str) -> tuple[str | None, str | None]:
    number, message = _int(value, 0, 3600)
    return (None, message) if number is None else (str(number), None)


def _stickiness_type_attr(value: str) -> tuple[str | None, str | None]:
    return (value, None) if value == "source_ip" else (None, "must be source_ip")


TARGET_GROUP_ATTRIBUTES: Final[Mapping[str, Callable[[str], tuple[str | None, str | None]]]] = {
    "deregistration_delay.connection_termination.enabled": _bool_attr,
    "deregistration_delay.timeout_seconds": _delay_attr,
    "preserve_client_ip.enabled": _bool_attr,
    "proxy_protocol_v2.enabled": _bool_attr,
    "stickiness.enabled": _bool_attr,
    "stickiness.type": _stickiness_type_attr,
}
"""The target-group attributes lbctl accepts, each with its check: ``(normalised value,
None)`` or ``(None, message)``."""

_HANDLED: Final = frozenset(
    [
        "scheme",
        "internal",
        "type",
        "subnets",
        "nlb-target-type",
        "healthcheck-protocol",
        "healthcheck-port",
        "healthcheck-path",
        "healthcheck-interval",
        "healthcheck-timeout",
        "healthcheck-healthy-threshold",
        "healthcheck-unhealthy-threshold",
        "target-group-attributes",
        "proxy-protocol",
        "ssl-cert",
        "ssl-ports",
        "ssl-negotiation-policy",
        "additional-resource-tags",
        "cross-zone-load-balancing-enabled",
        "eip-allocations",
    ]
)


class _Parser:
    """Reads one Service's annotations, collecting every problem."""

    def __init__(self, annotations: Mapping[str, str]) -> None:
        self.annotations = annotations
        self.problems: list[tuple[str, str]] = []

    def get(self, suffix: str) -> str | None:
        return self.annotations.get(key(suffix))

    def problem(self, suffix: str, message: str) -> None:
        self.problems.append((key(suffix), message))

    def check(self, suffix: str, result: tuple[_T | None, str | None]) -> _T | None:
        value, message = result
        if message is not None:
            self.problem(suffix, message)
        return value

    def integer(self, suffix: str, low: int, high: int) -> int | None:
        value = self.get(suffix)
        return None if value is None else self.check(suffix, _int(value, low, high))

    def scheme(self, default: Scheme) -> Scheme:
        value = self.get("scheme")
        if value is not None:
            try:
                return Scheme(value.strip().lower())
            except ValueError:
                self.problem("scheme", f"{_q(value)} is neither internet-facing nor internal")
                return default
        internal = (self.get("internal") or "").strip().lower()
        if not internal:
            return default
        return Scheme.INTERNET_FACING if internal == "false" else Scheme.INTERNAL

    def target_type(self) -> TargetType:
        value = self.get("nlb-target-type")
        if value is None:
            return TargetType.INSTANCE
        try:
            return TargetType(value.strip().lower())
        except ValueError:
            self.problem("nlb-target-type", f"{_q(value)} is neither instance nor ip")
            return TargetType.INSTANCE

    def health(self) -> HealthCheckOverrides:
        protocol = self.get("healthcheck-protocol")
        if protocol is not None and protocol.strip().upper() not in ("TCP", "HTTP", "HTTPS"):
            self.problem("healthcheck-protocol", f"{_q(protocol)} is not TCP, HTTP or HTTPS")
            protocol = None
        port_text = self.get("healthcheck-port")
        traffic_port = port_text is not None and port_text.strip() == "traffic-port"
        port = None
        if port_text is not None and not traffic_port:
            port, message = _int(port_text, 1, 65535)
            if message is not None:
                self.problem("healthcheck-port", f"{message}, nor traffic-port")
        path = self.get("healthcheck-path")
        if path is not None and not (path.startswith("/") and len(path) <= 1024):
            self.problem("healthcheck-path", f"{_q(path)} must start with / (1024 chars max)")
            path = None
        return HealthCheckOverrides(
            protocol=protocol.strip().upper() if protocol is not None else None,
            port=port,
            traffic_port=traffic_port,
            path=path,
            interval=self.integer("healthcheck-interval", 5, 300),
            timeout=self.integer("healthcheck-timeout", 2, 120),
            healthy_threshold=self.integer("healthcheck-healthy-threshold", 2, 10),
            unhealthy_threshold=self.integer("healthcheck-unhealthy-threshold", 2, 10),
        )

    def pairs(self, suffix: str, *, bare_key: bool) -> dict[str, str]:
        """``k=v,k=v``; ``bare_key``: ``k`` alone means ``k=""``. Duplicates are errors."""
        value = self.get(suffix)
        out: dict[str, str] = {}
        for item in _items(value or ""):
            k, sep, v = item.partition("=")
            k, v = k.strip(), v.strip()
            if not k or (not sep and not bare_key):
                self.problem(suffix, f"{_q(item)} is not key=value")
            elif k in out:
                self.problem(suffix, f"key {_q(k)} is given twice")
            else:
                out[k] = v
        return out

    def attributes(self) -> dict[str, str]:
        suffix = "target-group-attributes"
        allowed = ", ".join(sorted(TARGET_GROUP_ATTRIBUTES))
        attrs: dict[str, str] = {}
        for k, v in self.pairs(suffix, bare_key=False).items():
            check = TARGET_GROUP_ATTRIBUTES.get(k)
            if check is None:
                self.problem(suffix, f"{k} is not supported (allowed: {allowed})")
                continue
            value, message = check(v)
            if value is None:
                self.problem(suffix, f"{k}={v}: {message}")
            else:
                attrs[k] = value
        proxy = self.get("proxy-protocol")
        if proxy is not None:
            if proxy.strip() != "*":
                self.problem("proxy-protocol", f'{_q(proxy)} is not "*" (the only value)')
            elif attrs.get("proxy_protocol_v2.enabled") == "false":
                self.problem(
                    "proxy-protocol",
                    '"*" conflicts with proxy_protocol_v2.enabled=false in '
                    + key("target-group-attributes"),
                )
            else:
                attrs["proxy_protocol_v2.enabled"] = "true"
        return attrs

    def tls(self) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
        certs = tuple(_items(self.get("ssl-cert") or ""))
        for cert in certs:
            if not cert.startswith("arn:"):
                self.problem("ssl-cert", f"{_q(cert)} is not an ARN (arn:...)")
        ports_text = self.get("ssl-ports")
        ports = tuple(dict.fromkeys(_items(ports_text or "")))
        if ports_text is not None and not certs:
            self.problem("ssl-ports", f"needs {key('ssl-cert')}")
        if ports_text is not None and not ports:
            self.problem("ssl-ports", "lists no port")
        if "*" in ports and len(ports) > 1:
            self.problem("ssl-ports", '"*" cannot be combined with other ports')
        policy = self.get("ssl-negotiation-policy")
        if policy is not None and not policy.strip():
            self.problem("ssl-negotiation-policy", "is empty")
        policy = policy.strip() if policy else None
        if not certs:
            return (), (), policy
        return certs, ports or ("*",), policy

    def tags(self) -> dict[str, str]:
        suffix = "additional-resource-tags"
        tags = self.pairs(suffix, bare_key=True)
        for k, v in tags.items():
            if naming.is_reserved_tag_key(k):
                self.problem(suffix, f"key {_q(k)} is reserved (lbctl.io/, cluster tag, aws:)")
            elif not 1 <= len(k) <= 128 or _TAG_RE.fullmatch(k) is None:
                self.problem(suffix, f"key {_q(k)}: 1-128 letters, digits, spaces, _.:/=+-@")
            if len(v) > 256 or _TAG_RE.fullmatch(v) is None:
                self.problem(suffix, f"value of {_q(k)}: 0-256 letters, digits, spaces, _.:/=+-@")
        if len(tags) > MAX_ADDITIONAL_TAGS:
            self.problem(suffix, f"{len(tags)} tags, at most {MAX_ADDITIONAL_TAGS} allowed")
        return tags

    def eips(self, scheme: Scheme) -> tuple[str, ...]:
        value = self.get("eip-allocations")
        if value is None:
            return ()
        eips = tuple(_items(value))
        bad = [e for e in eips if _EIP_RE.fullmatch(e) is None]
        if bad:
            self.problem("eip-allocations", ", ".join(map(_q, bad)) + " not eipalloc-<hex>")
        if len(set(eips)) != len(eips):
            self.problem("eip-allocations", "an allocation is listed twice")
        if not eips:
            self.problem("eip-allocations", "lists no allocation")
        if scheme is not Scheme.INTERNET_FACING:
            self.problem("eip-allocations", "only an internet-facing load balancer takes EIPs")
        return eips

    def subnets(self) -> tuple[str, ...]:
        value = self.get("subnets")
        subnets = tuple(dict.fromkeys(_items(value or "")))
        if value is not None and not subnets:
            self.problem("subnets", "lists no subnet")
        return subnets

    def source_ranges(self, from_spec: tuple[str, ...]) -> tuple[str, ...]:
        where, values = "spec.loadBalancerSourceRanges", from_spec
        if not from_spec:
            where = SOURCE_RANGES_ANNOTATION
            values = tuple(_items(self.annotations.get(SOURCE_RANGES_ANNOTATION, "")))
        out: list[str] = []
        for value in values:
            try:
                out.append(str(ipaddress.ip_network(value.strip(), strict=False)))
            except ValueError:
                self.problems.append((where, f"{_q(value)} is not a CIDR"))
        return tuple(dict.fromkeys(out))


def parse(service: Service, *, default_scheme: Scheme = Scheme.INTERNET_FACING) -> NLBConfig:
    """Parse and validate the Service's annotations; :class:`AnnotationError` lists all
    problems (in a fixed order) if any."""
    annotations = service.metadata.annotations
    p = _Parser(annotations)
    scheme = p.scheme(default_scheme)
    cross_zone_text = p.get("cross-zone-load-balancing-enabled")
    cross_zone = (
        None
        if cross_zone_text is None
        else p.check("cross-zone-load-balancing-enabled", _bool(cross_zone_text))
    )
    certs, ssl_ports, policy = p.tls()
    config = NLBConfig(
        scheme=scheme,
        subnets=p.subnets(),
        target_type=p.target_type(),
        health=p.health(),
        target_group_attributes=p.attributes(),
        ssl_cert=certs,
        ssl_ports=ssl_ports,
        ssl_negotiation_policy=policy,
        additional_tags=p.tags(),
        cross_zone=cross_zone,
        eip_allocations=p.eips(scheme),
        source_ranges=p.source_ranges(service.spec.load_balancer_source_ranges),
        ignored=tuple(
            sorted(
                k
                for k in annotations
                if k.startswith(PREFIX) and k.removeprefix(PREFIX) not in _HANDLED
            )
        ),
    )
    if p.problems:
        raise AnnotationError(tuple(p.problems))
    return config
