"""Turn a request path into what it addresses; parse query values as kube-apiserver does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from lbctl.apimachinery.resources import Registry, ResourceType
from lbctl.apiserver import errors

__all__ = ["Target", "parse_bool", "parse_int", "resolve"]

_NAMESPACE_SUBRESOURCES: Final = frozenset({"status", "finalize"})


@dataclass(frozen=True, slots=True)
class Target:
    """What a resource path names."""

    rt: ResourceType
    namespace: str
    """"" for cluster-scoped kinds and for all-namespaces collections."""
    name: str = ""
    subresource: str = ""

    @property
    def is_collection(self) -> bool:
        return not self.name


def _not_found() -> errors.APIError:
    return errors.APIError(404, "NotFound", "the server could not find the requested resource", {})


def resolve(registry: Registry, group: str, version: str, rest: list[str]) -> Target:
    """``rest`` is the path after ``/api/v1`` or ``/apis/<g>/<v>`` (non-empty)."""
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in _NAMESPACE_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
        if not namespace:
            raise _not_found()
    plural, rest = rest[0], rest[1:]
    rt = registry.get(group, version, plural)
    if rt is None or len(rest) > 2:
        raise _not_found()
    if namespace and not rt.namespaced:
        raise _not_found()
    name = rest[0] if rest else ""
    sub = rest[1] if len(rest) > 1 else ""
    if rt.namespaced and name and not namespace:
        raise _not_found()
    if (
        sub
        and not (sub == "status" and rt.status_subresource)
        and not (sub == "finalize" and rt.kind == "Namespace")
    ):
        raise _not_found()
    return Target(rt, namespace, name, sub)


def parse_bool(query: Mapping[str, str], key: str) -> bool:
    """``true``/``1``/``True`` (kubernetes_asyncio sends Python's ``True``)."""
    return query.get(key, "").strip().lower() in ("true", "1")


def parse_int(query: Mapping[str, str], key: str) -> int | None:
    raw = query.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise errors.bad_request(f"invalid value for {key}: {raw!r}") from None
    if value < 0:
        raise errors.bad_request(f"invalid value for {key}: must be >= 0")
    return value
