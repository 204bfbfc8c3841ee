"""The errors of :mod:`lbctl.kube`, chosen by HTTP status (and ``reason`` where 409 is two).

::

    KubeError(status, reason, message)
    ├── BadRequest          400  bad selector, namespace mismatch, undecodable body
    ├── Unauthorized        401  no or wrong token
    ├── Forbidden           403  RBAC, or creating in a Terminating namespace
    ├── NotFound            404
    ├── Conflict            409  reason Conflict: stale resourceVersion or precondition
    ├── AlreadyExists       409  reason AlreadyExists: create of an existing name
    ├── Gone                410  reason Expired/Gone: compacted watch RV or continue token
    ├── Invalid             422  field errors, as ``causes``
    ├── TooManyRequests     429  ``retry_after`` seconds from the Retry-After header
    ├── ServerError         5xx
    ├── TransportError      status 0: connection refused or reset, timeouts, a broken stream
    └── ConfigError         status 0: no usable kubeconfig / in-cluster configuration

Any other status is a plain :class:`KubeError`. :func:`map_exception` turns a
kubernetes_asyncio ``ApiException`` or an aiohttp / timeout error into one of these;
callers raise it ``from`` the original, so client-library exceptions never leave
``lbctl.kube``. :func:`from_status` builds one from a ``Status`` body (a failed response
or a watch ERROR event).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

__all__ = [
    "CLIENT_EXCEPTIONS",
    "AlreadyExists",
    "BadRequest",
    "Cause",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "KubeError",
    "NotFound",
    "ServerError",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "from_response",
    "from_status",
    "map_exception",
]


CLIENT_EXCEPTIONS = (ApiException, ConfigException, aiohttp.ClientError, OSError)
"""What the client libraries raise (OSError includes TimeoutError): catch, then map."""


class KubeError(Exception):
    """A failed request: HTTP ``status`` (0 when none came back), ``reason``, ``message``."""

    def __init__(
        self, status: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else f"{reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.details: Mapping[str, Any] = details or {}


class BadRequest(KubeError):
    pass


class Unauthorized(KubeError):
    pass


class Forbidden(KubeError):
    pass


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    pass


class AlreadyExists(KubeError):
    pass


class Gone(KubeError):
    pass


@dataclass(frozen=True, slots=True)
class Cause:
    """One field error of a 422 (``details.causes[]``)."""

    reason: str
    message: str
    field: str


class Invalid(KubeError):
    def __init__(
        self, status: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(status, reason, message, details)
        self.causes: tuple[Cause, ...] = tuple(
            Cause(str(c.get("reason", "")), str(c.get("message", "")), str(c.get("field", "")))
            for c in (self.details.get("causes") or [])
            if isinstance(c, Mapping)
        )


class TooManyRequests(KubeError):
    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, reason, message, details)
        self.retry_after = retry_after
        """Seconds the server asked us to wait (Retry-After, else details.retryAfterSeconds)."""


class ServerError(KubeError):
    pass


class TransportError(KubeError):
    """No (complete) answer: refused, reset, timed out, or the stream broke mid-way."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "TransportError", message)


class ConfigError(KubeError):
    def __init__(self, message: str) -> None:
        super().__init__(0, "ConfigError", message)


_BY_STATUS: dict[int, type[KubeError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    410: Gone,
    422: Invalid,
}


def _retry_after(headers: Mapping[str, str] | None, details: Mapping[str, Any]) -> float | None:
    raw = (headers or {}).get("Retry-After")
    if raw is None and details.get("retryAfterSeconds") is not None:
        raw = str(details["retryAfterSeconds"])
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None  # an HTTP date: rare from kube-apiserver, treated as "unknown"


def from_status(
    status: int, body: Mapping[str, Any] | None, headers: Mapping[str, str] | None = None
) -> KubeError:
    """The error for HTTP ``status`` and a ``Status`` object (``body``), if there is one."""
    body = body or {}
    code = body.get("code")
    if isinstance(code, int) and code and status in (0, 200):
        status = code  # a watch ERROR event: the code is inside
    reason = str(body.get("reason") or "")
    message = str(body.get("message") or "")
    raw_details = body.get("details")
    details: Mapping[str, Any] = raw_details if isinstance(raw_details, Mapping) else {}
    if status == 409:
        cls: type[KubeError] = AlreadyExists if reason == "AlreadyExists" else Conflict
        return cls(status, reason or "Conflict", message, details)
    if status == 429:
        return TooManyRequests(
            status,
            reason or "TooManyRequests",
            message,
            details,
            retry_after=_retry_after(headers, details),
        )
    if status >= 500:
        return ServerError(status, reason or "InternalError", message, details)
    cls = _BY_STATUS.get(status, KubeError)
    return cls(status, reason or f"HTTP{status}", message, details)


def from_response(
    status: int, data: bytes | str | None, headers: Mapping[str, str] | None = None
) -> KubeError:
    """The error for a failed response whose body (``data``) should be a ``Status``."""
    body: Mapping[str, Any] | None = None
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else (data or "")
    try:
        parsed = json.loads(text) if text.strip() else None
    except ValueError:
        parsed = None
    if isinstance(parsed, Mapping):
        body = parsed
    elif text.strip():
        body = {"message": text.strip()[:500]}
    return from_status(status, body, headers)


def map_exception(e: BaseException) -> KubeError:
    """One of ours for a kubernetes_asyncio / aiohttp / timeout exception (raise it ``from e``)."""
    if isinstance(e, KubeError):
        return e
    if isinstance(e, ApiException):
        if not e.status:
            return TransportError(str(e.reason or e))
        headers = dict(e.headers) if e.headers else None
        return from_response(int(e.status), e.body, headers)
    if isinstance(e, ConfigException):
        return ConfigError(str(e))
    if isinstance(e, aiohttp.ClientResponseError):
        return from_status(e.status, {"message": e.message}, dict(e.headers or {}))
    if isinstance(e, TimeoutError):
        return TransportError(f"timed out: {e}" if str(e) else "timed out")
    if isinstance(e, (aiohttp.ClientError, OSError)):
        return TransportError(f"{type(e).__name__}: {e}")
    return KubeError(0, type(e).__name__, str(e))
