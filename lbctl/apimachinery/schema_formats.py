"""String formats and Go-style value rendering for CRD schema validation.

kube-apiserver validates CRD ``format`` values with kube-openapi's ``strfmt`` registry,
after dropping every format outside apiextensions' supported list (so ``int32`` or
``IPv4`` are silently ignored there, and here).  :func:`check_format` answers whether a
string conforms to a supported format; :func:`known_format` whether a format is
validated at all.

Error messages quote bad values the way Go prints them (``%v`` / ``%#v``):
:func:`go_float` renders floats as Go does (``1e+06``, ``3``), :func:`go_repr` renders
unstructured JSON as ``map[string]interface {}{"a":1}``, and :func:`shown` wraps a
value so that ``fielderrors.format_value`` prints it that way.  Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "SUPPORTED_FORMATS",
    "Shown",
    "check_format",
    "go_float",
    "go_json",
    "go_quote",
    "go_repr",
    "known_format",
    "shown",
]

SUPPORTED_FORMATS: Final = frozenset(
    {
        "bsonobjectid", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac", "uuid",
        "uuid3", "uuid4", "uuid5", "isbn", "isbn10", "isbn13", "creditcard", "ssn",
        "hexcolor", "rgbcolor", "byte", "password", "date", "duration", "datetime",
    }
)  # fmt: skip
"""apiextensions' ``supportedFormats`` (names normalized: dashes removed)."""

_MAX_DEPTH: Final = 64


def _normalize(fmt: str) -> str:
    return fmt.replace("-", "")


def known_format(fmt: object) -> bool:
    """True if kube-apiserver validates this ``format`` (others are stripped)."""
    return isinstance(fmt, str) and _normalize(fmt) in SUPPORTED_FORMATS


# --- IP addresses (Go net.ParseIP / net.ParseCIDR semantics) -------------------------------

_DEC = re.compile(r"[0-9]+")


def _parse_ip(s: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if "%" in s or not s.isascii():  # Go's ParseIP knows no zones
        return None
    try:
        return ipaddress.ip_address(s)
    except ValueError:
        return None


def _is_ipv4(s: str) -> bool:  # govalidator.IsIPv4
    return _parse_ip(s) is not None and "." in s


def _is_ipv6(s: str) -> bool:  # govalidator.IsIPv6
    return _parse_ip(s) is not None and ":" in s


def _is_cidr(s: str) -> bool:  # net.ParseCIDR
    addr, sep, bits = s.rpartition("/")
    ip = _parse_ip(addr) if sep else None
    if ip is None or not _DEC.fullmatch(bits):
        return False
    significant = bits.lstrip("0") or "0"
    return len(significant) <= 3 and int(significant) <= (32 if ip.version == 4 else 128)


_MAC = re.compile(
    r"(?:[0-9a-fA-F]{2}([:-]))(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}"
    r"|(?:[0-9a-fA-F]{2}([:-]))(?:[0-9a-fA-F]{2}\2){6}[0-9a-fA-F]{2}"
    r"|(?:[0-9a-fA-F]{2}([:-]))(?:[0-9a-fA-F]{2}\3){18}[0-9a-fA-F]{2}"
    r"|[0-9a-fA-F]{4}(?:\.[0-9a-fA-F]{4}){2}"
    r"|[0-9a-fA-F]{4}(?:\.[0-9a-fA-F]{4}){3}"
    r"|[0-9a-fA-F]{4}(?:\.[0-9a-fA-F]{4}){9}"
)  # net.ParseMAC: 6, 8 or 20 bytes, colon/dash/dot forms


# --- dates (strfmt.IsDate / strfmt.IsDateTime) --------------------------------------------

_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))")


def _is_date(s: str) -> bool:
    if not _FULL_DATE.fullmatch(s):
        return False
    try:
        _dt.date(int(s[0:4]), int(s[5:7]), int(s[8:10]))
    except ValueError:
        return False
    return True


def _is_datetime(s: str) -> bool:
    if len(s) < 4:
        return False
    parts = s.lower().split("t")
    if len(parts) < 2 or not _is_date(parts[0]):
        return False
    m = _TIME.fullmatch(parts[1])
    return m is not None and m[1] <= "23" and m[2] <= "59" and m[3] <= "59"


# --- the rest -----------------------------------------------------------------------------

_UUID = {
    "uuid": re.compile(r"(?i)[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}"),
    "uuid3": re.compile(r"(?i)[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}"),
    "uuid4": re.compile(
        r"(?i)[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}"
    ),
    "uuid5": re.compile(
        r"(?i)[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}"
    ),
}
_HOST_LABEL = re.compile(r"[^\W_](?:[^\W_]|-){0,62}", re.UNICODE)
_HEXCOLOR = re.compile(r"#?(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_BYTE = r"(?:0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])"
_RGB = re.compile(rf"rgb\(\s*{_BYTE}\s*,\s*{_BYTE}\s*,\s*{_BYTE}\s*\)")
_SSN = re.compile(r"\d{3}[- ]?\d{2}[- ]?\d{4}")
_BSON = re.compile(r"[0-9a-fA-F]{24}")
_DURATION = re.compile(
    r"(?:[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*[a-zµμ]+\s*)+|[-+]?0", re.IGNORECASE
)
_URI = re.compile(r"(?:[a-zA-Z][a-zA-Z0-9+.-]*:|/)\S*")


def _is_hostname(s: str) -> bool:
    if not s or len(s) > 255 or s.endswith("-"):
        return False
    return all(_HOST_LABEL.fullmatch(p) and not p.endswith("-") for p in s.split("."))


def _is_base64(s: str) -> bool:
    if not s or len(s) % 4:
        return False
    try:
        base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_email(s: str) -> bool:  # approximate net/mail.ParseAddress
    local, at, domain = s.rpartition("@")
    return bool(at and local and domain) and not any(c.isspace() for c in s)


def _matcher(rx: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda s: rx.fullmatch(s) is not None


_CHECKS: Final[dict[str, Callable[[str], bool]]] = {
    "ipv4": _is_ipv4,
    "ipv6": _is_ipv6,
    "cidr": _is_cidr,
    "mac": _matcher(_MAC),
    "date": _is_date,
    "datetime": _is_datetime,
    "hostname": _is_hostname,
    "byte": _is_base64,
    "email": _is_email,
    "uri": _matcher(_URI),
    "hexcolor": _matcher(_HEXCOLOR),
    "rgbcolor": _matcher(_RGB),
    "ssn": lambda s: len(s) == 11 and _SSN.fullmatch(s) is not None,
    "bsonobjectid": _matcher(_BSON),
    "duration": _matcher(_DURATION),
    **{name: _matcher(rx) for name, rx in _UUID.items()},
}
# password, isbn, isbn10, isbn13, creditcard: known formats, accepted without a check.


def check_format(fmt: str, value: str) -> bool:
    """True if ``value`` conforms to ``fmt`` (True for formats that are not checked)."""
    check = _CHECKS.get(_normalize(fmt))
    return check is None or check(value)


# --- Go-style rendering -------------------------------------------------------------------


def go_quote(s: str) -> str:
    """``strconv.Quote`` (close enough: JSON escaping, printable Unicode kept)."""
    return json.dumps(s, ensure_ascii=False)


def go_float(f: float) -> str:
    """A float64 as Go's ``%v`` prints it: shortest digits, ``%e`` below 1e-4 or from 1e6."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    sign = "-" if f < 0 else ""
    mant, _, e = repr(abs(f)).partition("e")
    ip, _, fp = mant.partition(".")
    digits = ip + fp
    dp = len(ip) + (int(e) if e else 0)
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    digits = stripped.rstrip("0") or "0"
    x = dp - 1
    if x < -4 or x >= 6:
        frac = "." + digits[1:] if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{frac}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def go_repr(value: object, depth: int = 0) -> str:
    """An unstructured JSON value as Go's ``%#v`` prints it."""
    if depth > _MAX_DEPTH:
        return "..."
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, Mapping):
        items = sorted(((str(k), v) for k, v in value.items()), key=lambda kv: kv[0])
        body = ", ".join(f"{go_quote(k)}:{go_repr(v, depth + 1)}" for k, v in items)
        return "map[string]interface {}{" + body + "}"
    if isinstance(value, list | tuple):
        return "[]interface {}{" + ", ".join(go_repr(v, depth + 1) for v in value) + "}"
    return go_quote(type(value).__name__)


def go_json(value: object, depth: int = 0) -> str:
    """Compact JSON as Go's ``json.Marshal`` writes it (sorted keys, ``1`` for ``1.0``)."""
    if depth > _MAX_DEPTH:
        return "null"
    if isinstance(value, float) and math.isfinite(value):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, Mapping):
        items = sorted(((str(k), v) for k, v in value.items()), key=lambda kv: kv[0])
        return "{" + ",".join(f"{go_quote(k)}:{go_json(v, depth + 1)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json(v, depth + 1) for v in value) + "]"
    if value is None or isinstance(value, bool | int | str):
        return json.dumps(value, ensure_ascii=False)
    return "null"


@dataclass(frozen=True, slots=True)
class Shown:
    """A bad value plus its Go rendering; ``repr`` gives the rendering."""

    value: object
    text: str

    def __repr__(self) -> str:
        return self.text


def shown(value: object) -> object:
    """The bad value to put in a FieldError so that its message prints it like Go."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return Shown(value, go_float(value))
    return Shown(value, go_repr(value))
