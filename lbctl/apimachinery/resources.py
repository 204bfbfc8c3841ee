"""The kinds the embedded API server serves, as data.

A :class:`ResourceType` says everything the generic machinery needs about a kind:
where it lives (group/version/plural), whether it is namespaced, its verbs and short
names, whether it has a status subresource and generation, which field selectors it
supports, and (for lbctl's own kinds) its printer columns and schema. Behaviour that
is specific to a kind (Service allocation, Namespace deletion...) lives in strategies,
not here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "ALL_VERBS",
    "BUILTIN_TYPES",
    "READ_VERBS",
    "PrinterColumn",
    "Registry",
    "ResourceType",
    "default_registry",
]

ALL_VERBS: Final = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)
READ_VERBS: Final = ("get", "list", "watch")
_DEFAULT_FIELDS: Final = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True, slots=True)
class PrinterColumn:
    """An ``additionalPrinterColumns`` entry of a CRD (``jsonPath`` like ``.spec.x``)."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    format: str = ""


@dataclass(frozen=True, slots=True)
class ResourceType:
    group: str
    """"" for the core group."""
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    status_subresource: bool = False
    generation: bool = False
    """metadata.generation: 1 on create, +1 on each spec change (custom kinds)."""
    field_selectors: tuple[str, ...] = _DEFAULT_FIELDS
    printer_columns: tuple[PrinterColumn, ...] = ()
    schema: Mapping[str, Any] | None = None
    """OpenAPI v3 schema of the whole object (custom kinds)."""
    unconditional_update: bool = True
    """PUT without resourceVersion allowed (built-ins); custom kinds say no (422)."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``services`` or ``endpointslices.discovery.k8s.io``, as error messages name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def custom(self) -> bool:
        return self.schema is not None


_SERVICE_FIELDS = (*_DEFAULT_FIELDS, "spec.clusterIP", "spec.type")
_EVENT_FIELDS = (
    *_DEFAULT_FIELDS,
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)

BUILTIN_TYPES: Final = (
    ResourceType("", "v1", "Service", "services", "service", True, ("svc",), ("all",),
                 status_subresource=True, field_selectors=_SERVICE_FIELDS),
    ResourceType("", "v1", "Node", "nodes", "node", False, ("no",), status_subresource=True,
                 field_selectors=("metadata.name", "spec.unschedulable")),
    ResourceType("", "v1", "Namespace", "namespaces", "namespace", False, ("ns",),
                 verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
                 status_subresource=True, field_selectors=("metadata.name", "status.phase")),
    ResourceType("", "v1", "Event", "events", "event", True, ("ev",),
                 field_selectors=_EVENT_FIELDS),
    ResourceType("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",)),
    ResourceType("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice",
                 True),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", "lease", True),
    ResourceType("events.k8s.io", "v1", "Event", "events", "event", True, ("ev",),
                 field_selectors=(*_DEFAULT_FIELDS, "reason", "type", "regarding.kind",
                                  "regarding.namespace", "regarding.name", "regarding.uid")),
    ResourceType("networking.k8s.io", "v1", "ServiceCIDR", "servicecidrs", "servicecidr", False,
                 verbs=READ_VERBS, status_subresource=True),
    ResourceType("networking.k8s.io", "v1", "IPAddress", "ipaddresses", "ipaddress", False,
                 ("ip",), verbs=READ_VERBS),
)  # fmt: skip


@dataclass(slots=True)
class Registry:
    """Every served kind, looked up by (group, version, plural) or by kind."""

    _types: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)

    def add(self, rt: ResourceType) -> None:
        key = (rt.group, rt.version, rt.plural)
        if key in self._types:
            raise ValueError(f"{rt.group_resource} is already served")
        self._types[key] = rt

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        for rt in self._types.values():
            if rt.api_version == api_version and rt.kind == kind:
                return rt
        return None

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self._types.values())

    def groups(self) -> dict[str, list[str]]:
        """``{group: [versions]}`` in registration order ("" is the core group)."""
        out: dict[str, list[str]] = {}
        for rt in self._types.values():
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._types.values() if (rt.group, rt.version) == (group, version)]


def default_registry(extra: Iterable[ResourceType] = ()) -> Registry:
    reg = Registry()
    for rt in (*BUILTIN_TYPES, *extra):
        reg.add(rt)
    return reg
