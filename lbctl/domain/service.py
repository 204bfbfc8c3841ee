"""The Service as lbctl sees it: frozen values parsed from (and back to) Kubernetes JSON.

Only the fields lbctl needs are typed; every other key, at every level, is kept in
``extra`` and written back unchanged, so ``to_dict(from_dict(d))`` loses nothing.
Serialisation follows Go's ``omitempty`` rules of ``core/v1`` (absent, null and empty
optional fields are left out), which is also how kube-apiserver answers.

Enumerated fields (``type``, ``protocol``, ...) are kept as the strings the client
sent, because validation must be able to name a bad value; the :class:`StrEnum`
classes below are the values that pass validation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, TypeVar

__all__ = [
    "Condition",
    "DecodeError",
    "IPFamily",
    "IPFamilyPolicy",
    "IPMode",
    "Ingress",
    "ObjectMeta",
    "PortStatus",
    "Protocol",
    "Service",
    "ServicePort",
    "ServiceSpec",
    "ServiceStatus",
    "ServiceType",
    "TrafficPolicy",
]

JSON = dict[str, Any]


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"
    EXTERNAL_NAME = "ExternalName"


class Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class IPFamily(StrEnum):
    IPV4 = "IPv4"
    IPV6 = "IPv6"


class IPFamilyPolicy(StrEnum):
    SINGLE_STACK = "SingleStack"
    PREFER_DUAL_STACK = "PreferDualStack"
    REQUIRE_DUAL_STACK = "RequireDualStack"


class TrafficPolicy(StrEnum):
    CLUSTER = "Cluster"
    LOCAL = "Local"


class IPMode(StrEnum):
    VIP = "VIP"
    PROXY = "Proxy"


NONE_IP: Final = "None"
"""The clusterIP value of a headless Service."""


class DecodeError(ValueError):
    """The JSON does not have the shape of a Service (kube-apiserver answers 400)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.detail = message


_T = TypeVar("_T")
_GO_TYPE: Final = {str: "string", int: "int32", bool: "bool", dict: "object", list: "array"}


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class _Reader:
    """Reads typed keys from one JSON object and keeps the keys nobody asked for."""

    __slots__ = ("_obj", "_path", "_seen")

    def __init__(self, obj: object, path: str) -> None:
        if not isinstance(obj, dict):
            raise DecodeError(path, f"expected an object, got {_json_type(obj)}")
        self._obj: dict[str, Any] = obj
        self._path = path
        self._seen: set[str] = set()

    def _sub(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def _get(self, key: str, kind: type[_T]) -> _T | None:
        self._seen.add(key)
        value = self._obj.get(key)
        if value is None:
            return None
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is int and isinstance(value, float) and value.is_integer():
            return int(value)  # type: ignore[return-value]
        if not ok:
            raise DecodeError(
                self._sub(key),
                f"expected {_GO_TYPE.get(kind, kind.__name__)}, got {_json_type(value)}",
            )
        return value  # type: ignore[no-any-return]

    def text(self, key: str) -> str | None:
        return self._get(key, str)

    def integer(self, key: str) -> int | None:
        return self._get(key, int)

    def boolean(self, key: str) -> bool | None:
        return self._get(key, bool)

    def obj(self, key: str) -> _Reader | None:
        self._seen.add(key)
        value = self._obj.get(key)
        return None if value is None else _Reader(value, self._sub(key))

    def objs(self, key: str) -> list[_Reader]:
        items = self._get(key, list) or []
        return [_Reader(v, f"{self._sub(key)}[{i}]") for i, v in enumerate(items)]

    def strs(self, key: str) -> tuple[str, ...]:
        items = self._get(key, list) or []
        for i, v in enumerate(items):
            if not isinstance(v, str):
                raise DecodeError(f"{self._sub(key)}[{i}]", f"expected string, got {_json_type(v)}")
        return tuple(items)

    def str_map(self, key: str) -> dict[str, str]:
        value = self._get(key, dict) or {}
        for k, v in value.items():
            if not isinstance(v, str):
                raise DecodeError(f"{self._sub(key)}.{k}", f"expected string, got {_json_type(v)}")
        return dict(value)

    def int_or_str(self, key: str) -> int | str | None:
        self._seen.add(key)
        value = self._obj.get(key)
        if value is None or (isinstance(value, int | str) and not isinstance(value, bool)):
            return value
        raise DecodeError(self._sub(key), f"expected int or string, got {_json_type(value)}")

    def extra(self) -> dict[str, Any]:
        return {k: v for k, v in self._obj.items() if k not in self._seen}


def _put(out: JSON, key: str, value: object) -> None:
    """Set ``key`` unless ``value`` is empty (Go's ``omitempty``)."""
    if value is None or value == "" or (isinstance(value, list | dict | tuple) and not value):
        return
    out[key] = list(value) if isinstance(value, tuple) else value


def _with_extra(extra: Mapping[str, Any], out: JSON) -> JSON:
    merged = dict(extra)
    merged.update(out)
    return merged


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    finalizers: tuple[str, ...] = ()
    deletion_timestamp: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_reader(cls, r: _Reader) -> ObjectMeta:
        return cls(
            name=r.text("name") or "",
            namespace=r.text("namespace") or "",
            uid=r.text("uid") or "",
            resource_version=r.text("resourceVersion") or "",
            generation=r.integer("generation"),
            labels=r.str_map("labels"),
            annotations=r.str_map("annotations"),
            finalizers=r.strs("finalizers"),
            deletion_timestamp=r.text("deletionTimestamp"),
            extra=r.extra(),
        )

    def to_dict(self) -> JSON:
        out: JSON = {}
        _put(out, "name", self.name)
        _put(out, "namespace", self.namespace)
        _put(out, "uid", self.uid)
        _put(out, "resourceVersion", self.resource_version)
        _put(out, "generation", self.generation)
        _put(out, "deletionTimestamp", self.deletion_timestamp)
        _put(out, "labels", dict(self.labels))
        _put(out, "annotations", dict(self.annotations))
        _put(out, "finalizers", self.finalizers)
        return _with_extra(self.extra, out)


@dataclass(frozen=True, slots=True)
class ServicePort:
    port: int = 0
    protocol: str = ""
    name: str = ""
    target_port: int | str | None = None
    node_port: int = 0
    app_protocol: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_reader(cls, r: _Reader) -> ServicePort:
        return cls(
            name=r.text("name") or "",
            protocol=r.text("protocol") or "",
            app_protocol=r.text("appProtocol"),
            port=r.integer("port") or 0,
            target_port=r.int_or_str("targetPort"),
            node_port=r.integer("nodePort") or 0,
            extra=r.extra(),
        )

    def to_dict(self) -> JSON:
        out: JSON = {}
        _put(out, "name", self.name)
        _put(out, "protocol", self.protocol)
        _put(out, "appProtocol", self.app_protocol)
        out["port"] = self.port
        if self.target_port is not None and self.target_port not in (0, ""):
            out["targetPort"] = self.target_port
        _put(out, "nodePort", self.node_port or None)
        return _with_extra(self.extra, out)


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    type: str = ""
    ports: tuple[ServicePort, ...] = ()
    selector: Mapping[str, str] = field(default_factory=dict)
    cluster_ip: str = ""
    cluster_ips: tuple[str, ...] = ()
    ip_families: tuple[str, ...] = ()
    ip_family_policy: str | None = None
    session_affinity: str = ""
    external_ips: tuple[str, ...] = ()
    external_name: str = ""
    external_traffic_policy: str = ""
    internal_traffic_policy: str | None = None
    health_check_node_port: int = 0
    load_balancer_class: str | None = None
    load_balancer_ip: str = ""
    load_balancer_source_ranges: tuple[str, ...] = ()
    allocate_load_balancer_node_ports: bool | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_reader(cls, r: _Reader) -> ServiceSpec:
        return cls(
            ports=tuple(ServicePort.from_reader(p) for p in r.objs("ports")),
            selector=r.str_map("selector"),
            cluster_ip=r.text("clusterIP") or "",
            cluster_ips=r.strs("clusterIPs"),
            type=r.text("type") or "",
            external_ips=r.strs("externalIPs"),
            session_affinity=r.text("sessionAffinity") or "",
            load_balancer_ip=r.text("loadBalancerIP") or "",
            load_balancer_source_ranges=r.strs("loadBalancerSourceRanges"),
            external_name=r.text("externalName") or "",
            external_traffic_policy=r.text("externalTrafficPolicy") or "",
            health_check_node_port=r.integer("healthCheckNodePort") or 0,
            ip_families=r.strs("ipFamilies"),
            ip_family_policy=r.text("ipFamilyPolicy"),
            allocate_load_balancer_node_ports=r.boolean("allocateLoadBalancerNodePorts"),
            load_balancer_class=r.text("loadBalancerClass"),
            internal_traffic_policy=r.text("internalTrafficPolicy"),
            extra=r.extra(),
        )

    def to_dict(self) -> JSON:
        out: JSON = {}
        _put(out, "ports", [p.to_dict() for p in self.ports])
        _put(out, "selector", dict(self.selector))
        _put(out, "clusterIP", self.cluster_ip)
        _put(out, "clusterIPs", self.cluster_ips)
        _put(out, "type", self.type)
        _put(out, "externalIPs", self.external_ips)
        _put(out, "sessionAffinity", self.session_affinity)
        _put(out, "loadBalancerIP", self.load_balancer_ip)
        _put(out, "loadBalancerSourceRanges", self.load_balancer_source_ranges)
        _put(out, "externalName", self.external_name)
        _put(out, "externalTrafficPolicy", self.external_traffic_policy)
        _put(out, "healthCheckNodePort", self.health_check_node_port or None)
        _put(out, "ipFamilies", self.ip_families)
        _put(out, "ipFamilyPolicy", self.ip_family_policy)
        _put(out, "allocateLoadBalancerNodePorts", self.allocate_load_balancer_node_ports)
        _put(out, "loadBalancerClass", self.load_balancer_class)
        _put(out, "internalTrafficPolicy", self.internal_traffic_policy)
        return _with_extra(self.extra, out)

    @property
    def is_headless(self) -> bool:
        return self.cluster_ip == NONE_IP or (
            bool(self.cluster_ips) and self.cluster_ips[0] == NONE_IP
        )


@dataclass(frozen=True, slots=True)
class PortStatus:
    port: int = 0
    protocol: str = ""
    error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_reader(cls, r: _Reader) -> PortStatus:
        return cls(
            port=r.integer("port") or 0,
            protocol=r.text("protocol") or "",
            error=r.text("error"),
            extra=r.extra(),
        )

    def to_dict(self) -> JSON:
        out: JSON = {"port": self.port, "protocol": self.protocol}
        _put(out, "error", self.error)
        return _with_extra(self.extra, out)


@dataclass(frozen=True, slots=True)
class Ingress:
    ip: str = ""
    hostname: str = ""
    ip_mode: str | None = None
    ports: tuple[PortStatus, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_reader(cls, r: _Reader) -> Ingress:
        return cls(
            ip=r.text("ip") or "",
            hostname=r.text("hostname") or "",
            ip_mode=r.text("ipMode"),
            ports=tuple(PortStatus.from_reader(p) for p in r.objs("ports")),
            extra=r.extra(),
        )

    def to_dict(self) -> JSON:
        out: JSON = {}
        _put(out, "ip", self.ip)
        _put(out, "hostname", self.hostname)
        _put(out, "ipMode", self.ip_mode)
        _put(out, "ports", [p.to_dict() for p in self.ports])
        return _with_extra(self.extra, out)


@dataclass(frozen=True, slots=True)
class Condition:
    """A ``metav1.Condition``."""

    type: str = ""
    status: str = ""
    reason: str = ""
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_reader(cls, r: _Reader) -> Condition:
        return cls(
            type=r.text("type") or "",
            status=r.text("status") or "",
            observed_generation=r.integer("observedGeneration"),
            last_transition_time=r.text("lastTransitionTime"),
            reason=r.text("reason") or "",
            message=r.text("message") or "",
            extra=r.extra(),
        )

    def to_dict(self) -> JSON:
        out: JSON = {"type": self.type, "status": self.status}
        _put(out, "observedGeneration", self.observed_generation)
        out["lastTransitionTime"] = self.last_transition_time
        out["reason"] = self.reason
        out["message"] = self.message
        return _with_extra(self.extra, out)


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    ingress: tuple[Ingress, ...] = ()
    conditions: tuple[Condition, ...] = ()
    load_balancer_extra: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_reader(cls, r: _Reader) -> ServiceStatus:
        lb = r.obj("loadBalancer")
        ingress: tuple[Ingress, ...] = ()
        lb_extra: dict[str, Any] = {}
        if lb is not None:
            ingress = tuple(Ingress.from_reader(i) for i in lb.objs("ingress"))
            lb_extra = lb.extra()
        return cls(
            ingress=ingress,
            conditions=tuple(Condition.from_reader(c) for c in r.objs("conditions")),
            load_balancer_extra=lb_extra,
            extra=r.extra(),
        )

    def to_dict(self) -> JSON:
        lb: JSON = {}
        _put(lb, "ingress", [i.to_dict() for i in self.ingress])
        out: JSON = {"loadBalancer": _with_extra(self.load_balancer_extra, lb)}
        _put(out, "conditions", [c.to_dict() for c in self.conditions])
        return _with_extra(self.extra, out)


@dataclass(frozen=True, slots=True)
class Service:
    """A core/v1 Service."""

    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: ServiceSpec = field(default_factory=ServiceSpec)
    status: ServiceStatus = field(default_factory=ServiceStatus)
    api_version: str = "v1"
    kind: str = "Service"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, obj: object) -> Service:
        """Parse Kubernetes JSON; raises :class:`DecodeError` on a wrongly typed field."""
        r = _Reader(obj, "")
        meta = r.obj("metadata")
        spec = r.obj("spec")
        status = r.obj("status")
        return cls(
            api_version=r.text("apiVersion") or "v1",
            kind=r.text("kind") or "Service",
            metadata=ObjectMeta.from_reader(meta) if meta else ObjectMeta(),
            spec=ServiceSpec.from_reader(spec) if spec else ServiceSpec(),
            status=ServiceStatus.from_reader(status) if status else ServiceStatus(),
            extra=r.extra(),
        )

    def to_dict(self) -> JSON:
        out: JSON = {
            "kind": self.kind,
            "apiVersion": self.api_version,
            "metadata": self.metadata.to_dict(),
            "spec": self.spec.to_dict(),
            "status": self.status.to_dict(),
        }
        return _with_extra(self.extra, out)

    @property
    def key(self) -> str:
        """``namespace/name``, the work-queue key."""
        return f"{self.metadata.namespace}/{self.metadata.name}"

    def replace_spec(self, **changes: Any) -> Service:
        return dataclasses.replace(self, spec=dataclasses.replace(self.spec, **changes))

    def replace_status(self, **changes: Any) -> Service:
        return dataclasses.replace(self, status=dataclasses.replace(self.status, **changes))
