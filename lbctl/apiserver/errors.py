"""API errors and the ``Status`` bodies kube-apiserver answers them with.

::

    APIError(code, reason, message, details)
    ├── 400 BadRequest          bad JSON, bad selector, name/namespace mismatch
    ├── 401 Unauthorized
    ├── 403 Forbidden           e.g. creating in a Terminating namespace
    ├── 404 NotFound
    ├── 405 MethodNotAllowed
    ├── 409 Conflict / AlreadyExists
    ├── 410 Expired / Gone      compacted watch history or continue token
    ├── 413 RequestEntityTooLarge
    ├── 415 UnsupportedMediaType
    ├── 422 Invalid             field errors, as ``details.causes``
    └── 500 InternalError       only for exhausted allocators, as upstream
"""

from __future__ import annotations

from typing import Any

from lbctl.apimachinery.resources import ResourceType
from lbctl.domain.fielderrors import FieldErrors

__all__ = [
    "APIError",
    "already_exists",
    "bad_request",
    "conflict",
    "expired",
    "forbidden",
    "internal",
    "invalid",
    "method_not_allowed",
    "not_found",
    "status_success",
    "too_large",
    "unauthorized",
    "unsupported_media_type",
]


class APIError(Exception):
    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            out["details"] = self.details
        out["code"] = self.code
        return out


def _details(rt: ResourceType | None, name: str, kind: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name} if name else {}
    if rt is not None:
        if rt.group:
            d["group"] = rt.group
        d["kind"] = kind or rt.plural
    return d


def not_found(rt: ResourceType, name: str) -> APIError:
    return APIError(404, "NotFound", f'{rt.group_resource} "{name}" not found', _details(rt, name))


def namespace_not_found(name: str) -> APIError:
    return APIError(
        404, "NotFound", f'namespaces "{name}" not found', {"name": name, "kind": "namespaces"}
    )


def already_exists(rt: ResourceType, name: str) -> APIError:
    return APIError(
        409, "AlreadyExists", f'{rt.group_resource} "{name}" already exists', _details(rt, name)
    )


def conflict(rt: ResourceType, name: str, why: str | None = None) -> APIError:
    why = why or (
        "the object has been modified; please apply your changes to the latest version "
        "and try again"
    )
    return APIError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.group_resource} "{name}": {why}',
        _details(rt, name),
    )


def invalid(rt: ResourceType, name: str, errors: FieldErrors) -> APIError:
    details = _details(rt, name, kind=rt.kind)
    details["causes"] = [e.as_cause() for e in errors]
    return APIError(422, "Invalid", f'{rt.kind} "{name}" is invalid: {errors.summary()}', details)


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def unauthorized() -> APIError:
    return APIError(401, "Unauthorized", "Unauthorized")


def forbidden(message: str, rt: ResourceType | None = None, name: str = "") -> APIError:
    return APIError(403, "Forbidden", message, _details(rt, name) if rt else None)


def method_not_allowed(message: str) -> APIError:
    return APIError(405, "MethodNotAllowed", message)


def expired(message: str) -> APIError:
    return APIError(410, "Expired", message)


def too_large(limit: int) -> APIError:
    return APIError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def unsupported_media_type(content_type: str) -> APIError:
    return APIError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        f"application/json, application/yaml (got {content_type!r})",
    )


def internal(message: str) -> APIError:
    return APIError(
        500,
        "InternalError",
        f"Internal error occurred: {message}",
        {"causes": [{"message": message}]},
    )


def status_success(rt: ResourceType, name: str, uid: str) -> dict[str, Any]:
    details = _details(rt, name)
    details["uid"] = uid
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }
