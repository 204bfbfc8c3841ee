"""Name, port and address checks with kube-apiserver's wording.

Every ``*_errors`` function returns the list of messages a value earns (empty when
valid), worded as Kubernetes' ``apimachinery`` validation words them, so a caller
can wrap each one in a :class:`~lbctl.domain.fielderrors.FieldError`.

Lengths are counted in UTF-8 bytes, as Go's ``len`` does, and patterns must match
the whole value (Go's ``^...$`` never accepts a trailing newline).

Addresses follow the "sloppy" parsers Kubernetes keeps for its older fields
(``netutils.ParseIPSloppy`` / ``ParseCIDRSloppy``): IPv4 octets may carry leading
zeros, IPv4-mapped IPv6 addresses count as IPv4, zones (``%eth0``) are refused and a
CIDR may have host bits set.  This matches kube-apiserver 1.34 with the
``StrictIPCIDRValidation`` feature gate off (its default).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from lbctl.domain.service import IPFamily

__all__ = [
    "DNS1035_LABEL_MAX",
    "DNS1123_LABEL_MAX",
    "DNS1123_SUBDOMAIN_MAX",
    "IPAddress",
    "byte_len",
    "cidr_errors",
    "condition_reason_errors",
    "dns1035_label_errors",
    "dns1123_label_errors",
    "dns1123_subdomain_errors",
    "empty_error",
    "inclusive_range_error",
    "ip_errors",
    "ip_family_of",
    "label_value_errors",
    "max_len_error",
    "non_special_ip_errors",
    "parse_cidr",
    "parse_ip",
    "port_name_errors",
    "port_number_errors",
    "qualified_name_errors",
    "regex_error",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DNS1123_LABEL_MAX: Final = 63
DNS1123_SUBDOMAIN_MAX: Final = 253
DNS1035_LABEL_MAX: Final = 63
_QUALIFIED_NAME_MAX: Final = 63
_LABEL_VALUE_MAX: Final = 63
_PORT_NAME_MAX: Final = 15


def byte_len(value: str) -> int:
    """The length Go's ``len`` gives: UTF-8 bytes."""
    return len(value.encode("utf-8", "surrogatepass"))


def max_len_error(limit: int) -> str:
    return f"must be no more than {limit} characters"


def empty_error() -> str:
    return "must be non-empty"


def inclusive_range_error(low: int, high: int) -> str:
    return f"must be between {low} and {high}, inclusive"


def regex_error(message: str, pattern: str, *examples: str) -> str:
    """A pattern failure explained with examples, in apimachinery's exact layout."""
    if not examples:
        return f"{message} (regex used for validation is '{pattern}')"
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{pattern}')"


def _matches(pattern: re.Pattern[str], value: str) -> bool:
    return pattern.fullmatch(value) is not None


_DNS1123_LABEL_FMT: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG: Final = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-',"
    " and must start and end with an alphanumeric character"
)
_DNS1123_LABEL_RE: Final = re.compile(_DNS1123_LABEL_FMT)

_DNS1123_SUBDOMAIN_FMT: Final = rf"{_DNS1123_LABEL_FMT}(\.{_DNS1123_LABEL_FMT})*"
_DNS1123_SUBDOMAIN_MSG: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters,"
    " '-' or '.', and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_RE: Final = re.compile(_DNS1123_SUBDOMAIN_FMT)

_DNS1035_LABEL_FMT: Final = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_MSG: Final = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-',"
    " start with an alphabetic character, and end with an alphanumeric character"
)
_DNS1035_LABEL_RE: Final = re.compile(_DNS1035_LABEL_FMT)


def dns1123_label_errors(value: str) -> list[str]:
    """RFC 1123 label (namespace names, port names)."""
    errors: list[str] = []
    if byte_len(value) > DNS1123_LABEL_MAX:
        errors.append(max_len_error(DNS1123_LABEL_MAX))
    if not _matches(_DNS1123_LABEL_RE, value):
        if _matches(_DNS1123_SUBDOMAIN_RE, value):
            errors.append("must not contain dots")
        else:
            errors.append(regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errors


def dns1123_subdomain_errors(value: str) -> list[str]:
    """RFC 1123 subdomain (externalName, ingress hostnames, label-key prefixes)."""
    errors: list[str] = []
    if byte_len(value) > DNS1123_SUBDOMAIN_MAX:
        errors.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _matches(_DNS1123_SUBDOMAIN_RE, value):
        errors.append(regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errors


def dns1035_label_errors(value: str) -> list[str]:
    """RFC 1035 label (Service names)."""
    errors: list[str] = []
    if byte_len(value) > DNS1035_LABEL_MAX:
        errors.append(max_len_error(DNS1035_LABEL_MAX))
    if not _matches(_DNS1035_LABEL_RE, value):
        errors.append(regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errors


_QNAME_FMT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_MSG: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.',"
    " and must start and end with an alphanumeric character"
)
_QNAME_RE: Final = re.compile(_QNAME_FMT)
_QNAME_EXAMPLES: Final = ("MyName", "my.name", "123-abc")


def qualified_name_errors(value: str) -> list[str]:
    """A "qualified name" (label keys, annotation keys, loadBalancerClass, appProtocol)."""
    errors: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errors.append("prefix part " + empty_error())
        else:
            errors.extend("prefix part " + m for m in dns1123_subdomain_errors(prefix))
    else:
        return [
            "a qualified name "
            + regex_error(_QNAME_MSG, _QNAME_FMT, *_QNAME_EXAMPLES)
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errors.append("name part " + empty_error())
    elif byte_len(name) > _QUALIFIED_NAME_MAX:
        errors.append("name part " + max_len_error(_QUALIFIED_NAME_MAX))
    if not _matches(_QNAME_RE, name):
        errors.append("name part " + regex_error(_QNAME_MSG, _QNAME_FMT, *_QNAME_EXAMPLES))
    return errors


_LABEL_VALUE_FMT: Final = f"({_QNAME_FMT})?"
_LABEL_VALUE_MSG: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters,"
    " '-', '_' or '.', and must start and end with an alphanumeric character"
)
_LABEL_VALUE_RE: Final = re.compile(_LABEL_VALUE_FMT)


def label_value_errors(value: str) -> list[str]:
    errors: list[str] = []
    if byte_len(value) > _LABEL_VALUE_MAX:
        errors.append(max_len_error(_LABEL_VALUE_MAX))
    if not _matches(_LABEL_VALUE_RE, value):
        errors.append(
            regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345")
        )
    return errors


_PORT_NAME_CHARSET_RE: Final = re.compile("[-a-z0-9]+")
_PORT_NAME_LETTER_RE: Final = re.compile("[a-z]")


def port_name_errors(value: str) -> list[str]:
    """An IANA_SVC_NAME (a ``targetPort`` given by name)."""
    errors: list[str] = []
    if byte_len(value) > _PORT_NAME_MAX:
        errors.append(max_len_error(_PORT_NAME_MAX))
    if not _matches(_PORT_NAME_CHARSET_RE, value):
        errors.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if _PORT_NAME_LETTER_RE.search(value) is None:
        errors.append("must contain at least one letter (a-z)")
    if "--" in value:
        errors.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        errors.append("must not begin or end with a hyphen")
    return errors


def port_number_errors(value: int) -> list[str]:
    """A port number, 1 to 65535."""
    return [] if 1 <= value <= 65535 else [inclusive_range_error(1, 65535)]


_REASON_FMT: Final = "[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?"
_REASON_MSG: Final = (
    "a condition reason must start with alphabetic character, optionally followed by"
    " a string of alphanumeric characters or '_,:', and must end with an alphanumeric"
    " character or '_'"
)
_REASON_RE: Final = re.compile(_REASON_FMT)


def condition_reason_errors(value: str) -> list[str]:
    """A ``metav1.Condition`` reason (format only, not length)."""
    if _matches(_REASON_RE, value):
        return []
    examples = ("my_name", "MY_NAME", "MyName", "ReasonA,ReasonB", "ReasonA:ReasonB")
    return [regex_error(_REASON_MSG, _REASON_FMT, *examples)]


# --- addresses ------------------------------------------------------------------

_DIGITS_RE: Final = re.compile("[0-9]+")


def _decimal(text: str, *, limit: int = 3) -> int | None:
    """Decimal digits (leading zeros allowed); ``None`` if not digits or over ``limit`` places."""
    if not _matches(_DIGITS_RE, text):
        return None
    significant = text.lstrip("0") or "0"
    return int(significant) if len(significant) <= limit else 10**limit


def _sloppy_ipv4(text: str) -> ipaddress.IPv4Address | None:
    parts = text.split(".")
    if len(parts) != 4:
        return None
    octets: list[int] = []
    for part in parts:
        digits = _decimal(part)
        if digits is None or digits > 255:
            return None
        octets.append(digits)
    return ipaddress.IPv4Address(bytes(octets))


def _sloppy_ipv6(text: str) -> ipaddress.IPv6Address | None:
    if "%" in text or not text.isascii():
        return None
    if "." in text:
        head, _, tail = text.rpartition(":")
        v4 = _sloppy_ipv4(tail)
        if v4 is None:
            return None
        text = f"{head}:{v4}"
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def parse_ip(value: str) -> IPAddress | None:
    """Parse like ``netutils.ParseIPSloppy``; ``None`` when it would fail."""
    if ":" in value:
        return _sloppy_ipv6(value)
    return _sloppy_ipv4(value)


def parse_cidr(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """Parse like ``netutils.ParseCIDRSloppy`` (host bits allowed); ``None`` on failure."""
    address, slash, length = value.partition("/")
    prefix = _decimal(length)
    ip = parse_ip(address)
    if not slash or prefix is None or ip is None:
        return None
    bits = 32 if ":" not in address else 128
    if prefix > bits:
        return None
    if bits == 128 and isinstance(ip, ipaddress.IPv6Address):
        return ipaddress.IPv6Network((ip, prefix), strict=False)
    return ipaddress.IPv4Network((ip, prefix), strict=False)


def _as_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv4Address):
        return ip
    return ip.ipv4_mapped


def ip_family_of(value: str) -> IPFamily | None:
    """The family Kubernetes files an address under (IPv4-mapped IPv6 is IPv4)."""
    ip = parse_ip(value)
    if ip is None:
        return None
    return IPFamily.IPV4 if _as_v4(ip) is not None else IPFamily.IPV6


def ip_errors(value: str) -> list[str]:
    """An IP address in a legacy field (``clusterIPs``, ``externalIPs``, ingress ``ip``)."""
    if parse_ip(value) is None:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    return []


def cidr_errors(value: str) -> list[str]:
    """A CIDR in a legacy field (``loadBalancerSourceRanges``)."""
    if parse_cidr(value) is None:
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    return []


def non_special_ip_errors(value: str) -> list[str]:
    """Refuse addresses no Service may claim: unspecified, loopback, link-local."""
    ip = parse_ip(value)
    if ip is None:
        return ["must be a valid IP address"]
    errors: list[str] = []
    v4 = _as_v4(ip)
    raw = ip.packed
    if (v4 is not None and int(v4) == 0) or (v4 is None and int(ip) == 0):
        errors.append(f"may not be unspecified ({value})")
    if (v4 is not None and v4.packed[0] == 127) or (v4 is None and int(ip) == 1):
        errors.append("may not be in the loopback range (127.0.0.0/8, ::1/128)")
    if v4 is not None:
        link_local = v4.packed[:2] == b"\xa9\xfe"
        link_local_multicast = v4.packed[:3] == b"\xe0\x00\x00"
    else:
        link_local = raw[0] == 0xFE and raw[1] & 0xC0 == 0x80
        link_local_multicast = raw[0] == 0xFF and raw[1] & 0x0F == 0x02
    if link_local:
        errors.append("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    if link_local_multicast:
        errors.append("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
    return errors
