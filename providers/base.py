"""The provider SDK: the :class:`Provider` protocol, its value types, errors and registry.

A provider turns a :class:`LoadBalancerRequest` into a load balancer and answers with a
:class:`LoadBalancerStatus`. The controller owns everything Kubernetes: it checks the
ports with :func:`lbctl.domain.capabilities.check_ports` before any side effect, gives
the provider only the supported ports, writes status, conditions and Events, and maps
the errors below to queue operations. Providers never see API clients.

Errors a provider raises (anything else is a bug, and is retried like a transient
error)::

    ProviderError                   base of all provider errors
    ├── TransientError              the cloud failed or throttled: retry with per-key
    │                               exponential backoff
    ├── RetryAfterError(seconds)    not ready yet, or told to wait: requeue after a
    │                               fixed delay, without backoff
    ├── UnsupportedError(reason, message)
    │                               the Service asks for what the provider cannot do:
    │                               no retry until the Service changes; the controller
    │                               sets a condition and emits a Warning Event
    └── ConfigError(setting, message)
                                    the provider's own settings are wrong: names the
                                    setting; raised at start-up or on first use

Optional protocols a provider may also implement: :class:`Sweeper` (orphan sweep),
:class:`ObservesCalls` (cloud-call metrics) and :class:`ClusterAware` (a provider whose
state lives in the cluster, e.g. IP pools: the controller runs it on the leader, after
its caches synced and before the first reconcile, with a :class:`ClusterContext`).

Providers are found through the entry-point group ``lbctl.providers``: each entry
point is a factory ``create(**options) -> Provider`` (see :func:`load_provider`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Final, Literal, Protocol, runtime_checkable

from lbctl.domain import names
from lbctl.domain.capabilities import Capabilities, check_ports
from lbctl.domain.service import Ingress, PortStatus, Service, ServicePort

__all__ = [
    "ENTRY_POINT_GROUP",
    "ClusterAware",
    "ClusterContext",
    "ConfigError",
    "EndpointInfo",
    "EndpointPort",
    "Flag",
    "IngressPoint",
    "LoadBalancerRequest",
    "LoadBalancerStatus",
    "NodeInfo",
    "ObservesCalls",
    "Provider",
    "ProviderError",
    "ProviderEvent",
    "RetryAfterError",
    "Sweeper",
    "TransientError",
    "UnsupportedError",
    "available_providers",
    "default_load_balancer_name",
    "load_provider",
    "require_supported",
]

ENTRY_POINT_GROUP: Final = "lbctl.providers"


# --- errors ------------------------------------------------------------------------


class ProviderError(Exception):
    """Base of every error a provider raises on purpose."""


class TransientError(ProviderError):
    """A failure worth retrying with backoff (throttling, timeouts, 5xx)."""


class RetryAfterError(ProviderError):
    """Retry after exactly ``seconds`` (the cloud said when, or a resource is settling)."""

    def __init__(self, seconds: float, message: str = "") -> None:
        if not seconds > 0:
            raise ValueError(f"seconds must be positive, got {seconds!r}")
        super().__init__(message or f"retry after {seconds:g}s")
        self.seconds = seconds


class UnsupportedError(ProviderError):
    """The Service asks for something the provider cannot do; retrying will not help.

    ``reason`` is CamelCase (the ``LoadBalancerReady=False`` condition's reason);
    ``message`` is for humans and is ``str(error)``; ``event_reason`` is the reason of
    the Warning Event the controller emits (upstream's ``SyncLoadBalancerFailed`` unless
    the provider has a better one, e.g. MetalLB's ``AllocationFailed``).
    """

    def __init__(
        self, reason: str, message: str, *, event_reason: str = "SyncLoadBalancerFailed"
    ) -> None:
        for what in (reason, event_reason):
            problems = names.condition_reason_errors(what)
            if problems:
                raise ValueError(f"reason {what!r}: {problems[0]}")
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.event_reason = event_reason


class ConfigError(ProviderError):
    """A provider setting is wrong; ``setting`` names it, and ``str()`` starts with it."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.message = message


# --- values ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A node eligible to receive load-balancer traffic."""

    name: str
    provider_id: str = ""
    addresses: tuple[tuple[str, str], ...] = ()
    """``(type, address)`` pairs as in ``node.status.addresses``: ``("InternalIP",
    "10.0.0.5")``."""
    labels: Mapping[str, str] = field(default_factory=dict)

    def addresses_of(self, kind: str) -> tuple[str, ...]:
        """The addresses of one type (``InternalIP``, ``ExternalIP``, ``Hostname``...)."""
        return tuple(address for t, address in self.addresses if t == kind)


@dataclass(frozen=True, slots=True)
class EndpointPort:
    name: str
    port: int
    protocol: str


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """One endpoint of the Service (from its EndpointSlices), for providers that target
    pods directly."""

    addresses: tuple[str, ...]
    ready: bool
    node_name: str = ""
    ports: tuple[EndpointPort, ...] = ()


@dataclass(frozen=True, slots=True)
class LoadBalancerRequest:
    """Everything :meth:`Provider.ensure` needs; read-only for the provider."""

    service: Service
    ports: tuple[ServicePort, ...]
    """The supported ports only (``check_ports(...).supported``)."""
    nodes: tuple[NodeInfo, ...] = ()
    endpoints: tuple[EndpointInfo, ...] = ()
    cluster_name: str = ""

    @property
    def key(self) -> str:
        return self.service.key


@dataclass(frozen=True, slots=True)
class IngressPoint:
    """One ingress address: an IP (with its ipMode) or a hostname."""

    ip: str = ""
    hostname: str = ""
    ip_mode: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """An Event the provider wants recorded about the Service (by the controller)."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class LoadBalancerStatus:
    """What a provider reports for one load balancer."""

    ingress: tuple[IngressPoint, ...] = ()
    provisioning: bool = False
    """Created but not serving yet; ask again after ``requeue_after`` seconds."""
    requeue_after: float | None = None
    annotations: Mapping[str, str | None] = field(default_factory=dict)
    """Annotations the controller keeps on the Service (a metadata merge patch of only
    these keys, written when they differ); ``None`` removes one. E.g. the bare-metal
    provider's ``lbctl.io/ip-allocated-from-pool``."""
    events: tuple[ProviderEvent, ...] = field(default=(), compare=False)
    """What happened in this call, for the controller to record as Events (e.g.
    ``IPAllocated``). Not part of the status: ignored when statuses are compared, so a
    second, idempotent ``ensure`` still equals the first."""

    def to_ingress(self, ports: tuple[PortStatus, ...] = ()) -> tuple[Ingress, ...]:
        """``status.loadBalancer.ingress``, each entry carrying ``ports``."""
        return tuple(
            Ingress(ip=p.ip, hostname=p.hostname, ip_mode=p.ip_mode, ports=ports)
            for p in self.ingress
        )


def default_load_balancer_name(service: Service) -> str:
    """Upstream's default: ``"a"`` + the UID without dashes, cut to 32 characters."""
    return ("a" + service.metadata.uid.replace("-", ""))[:32]


# --- the protocol ------------------------------------------------------------------


@runtime_checkable
class Provider(Protocol):
    """A load-balancer implementation. Methods may be called concurrently for different
    Services, never for the same one. Inputs are read-only."""

    @property
    def name(self) -> str:
        """Short name, the entry-point name (``memory``, ``aws``)."""
        ...

    @property
    def load_balancer_class(self) -> str:
        """The ``spec.loadBalancerClass`` it serves (``lbctl.io/memory``)."""
        ...

    @property
    def capabilities(self) -> Capabilities: ...

    async def ensure(self, req: LoadBalancerRequest) -> LoadBalancerStatus:
        """Create or update the load balancer to match ``req``; idempotent (a second
        call with the same request changes nothing and returns the same status).
        Raises :class:`UnsupportedError` before any change if a port is not supported
        (see :func:`require_supported`)."""
        ...

    async def update_hosts(self, req: LoadBalancerRequest) -> None:
        """Only the nodes changed: update the targets. An absent load balancer is left
        absent (the Service's own reconcile recreates it)."""
        ...

    async def delete(self, service: Service) -> None:
        """Delete the load balancer; an absent one is success (idempotent)."""
        ...

    async def get(self, service: Service) -> LoadBalancerStatus | None:
        """The current status, or None if there is no load balancer. No changes."""
        ...

    async def close(self) -> None:
        """Release clients and connections."""
        ...


@runtime_checkable
class Sweeper(Protocol):
    """Optional: a provider that can find resources it created for Services now gone."""

    async def sweep(self, live_uids: Callable[[], Collection[str]]) -> int:
        """Delete owned resources whose Service UID is not in ``live_uids()`` and return
        how many were deleted. ``live_uids`` is called after the provider listed its
        resources, so a Service created meanwhile is never taken for an orphan."""
        ...


@runtime_checkable
class ObservesCalls(Protocol):
    """Optional: a provider that reports each cloud API call attempt (for metrics)."""

    def observe_calls(self, fn: Callable[[str, str], None]) -> None:
        """Call ``fn(operation, outcome)`` after every attempt."""
        ...


@dataclass(frozen=True, slots=True)
class ClusterContext:
    """What the controller hands a :class:`ClusterAware` provider."""

    client: Any
    """The controller's :class:`lbctl.kube.client.KubeClient` (for the provider's own
    kinds: list, watch, status). Typed ``Any`` so that this module, which pure provider
    modules import, does not import the client (and its I/O libraries)."""
    services: Callable[[], list[Service]]
    """The Services the controller is responsible for, from its synced cache (decoded;
    undecodable ones left out), sorted by key."""
    requeue: Callable[[str], None]
    """Reconcile the Service with this key again (e.g. an address became free)."""


class Flag(Protocol):
    """What :meth:`ClusterAware.run` needs of an ``asyncio.Event`` (this module imports
    no asyncio: pure provider modules import it)."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    async def wait(self) -> object: ...


@runtime_checkable
class ClusterAware(Protocol):
    """Optional: a provider whose state is rebuilt from, and kept in line with, the cluster
    (IP pools as custom objects, assignments in Services' status)."""

    async def run(self, cluster: ClusterContext, stop: Flag, ready: Flag) -> None:
        """Called once on the leader after the controller's caches synced: rebuild state
        (from ``cluster.services()``), set ``ready``, then keep watching until ``stop``
        is set and return. The controller starts reconciling only once ``ready`` is set;
        if this raises, the controller stops with the error."""
        ...


def require_supported(req: LoadBalancerRequest, provider: Provider) -> None:
    """Raise :class:`UnsupportedError` (first refusal's reason, all messages) if
    ``req`` holds a port ``provider`` cannot serve: the one-line guard for ``ensure``."""
    check = check_ports(req.ports, provider.capabilities, provider=provider.name)
    if not check.ok:
        raise UnsupportedError(check.reason, check.message)


# --- registry ----------------------------------------------------------------------


def _entry_points() -> tuple[metadata.EntryPoint, ...]:
    return tuple(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _by_name() -> dict[str, metadata.EntryPoint]:
    found: dict[str, metadata.EntryPoint] = {}
    for ep in _entry_points():
        prior = found.get(ep.name)
        if prior is not None and prior.value != ep.value:
            raise ConfigError(
                "provider", f"{ep.name!r} is registered twice: {prior.value} and {ep.value}"
            )
        found[ep.name] = ep
    return found


def available_providers() -> list[str]:
    """The names registered in the ``lbctl.providers`` entry-point group, sorted."""
    return sorted(_by_name())


def load_provider(
    name: str, *, shared: Mapping[str, object] | None = None, **options: object
) -> Provider:
    """Build the provider registered as ``name`` with ``options``.

    ``shared``: lbctl-wide settings a provider may take (``cluster_name``), passed only
    when the factory has a parameter of that name and ``options`` does not set it.

    :class:`ConfigError` for an unknown name (listing the available ones), a provider
    that cannot be imported, or options its factory does not accept.
    """
    registered = _by_name()
    ep = registered.get(name)
    if ep is None:
        available = ", ".join(sorted(registered)) or "none"
        raise ConfigError("provider", f"unknown provider {name!r} (available: {available})")
    try:
        factory = ep.load()
    except ImportError as e:
        raise ConfigError(
            "provider", f"provider {name!r} ({ep.value}) cannot be loaded: {e}"
        ) from e
    if not callable(factory):
        raise TypeError(f"entry point {name} = {ep.value!r} is not callable")
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to check (a builtin)
        signature = None
    for key, value in (shared or {}).items():
        if key not in options and signature is not None and key in signature.parameters:
            options[key] = value
    if signature is not None:
        try:
            signature.bind(**options)
        except TypeError as e:
            accepted = ", ".join(signature.parameters) or "none"
            raise ConfigError(
                "provider_options", f"provider {name}: {e} (accepted: {accepted})"
            ) from e
    provider = factory(**options)
    if not isinstance(provider, Provider):
        raise TypeError(f"entry point {name} = {ep.value!r} returned {provider!r}, not a Provider")
    return provider
