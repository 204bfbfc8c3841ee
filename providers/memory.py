"""An in-memory provider: a fake cloud for tests, demos and the conformance suite.

Load balancers live in :attr:`InMemoryProvider.state`, keyed by Service key
(``namespace/name``); delete an entry by hand to simulate drift. Addresses are
deterministic, derived from the Service UID, and taken from documentation ranges that
never carry traffic: IPv4 from 198.51.100.0/24 (TEST-NET-2), IPv6 from 2001:db8::/64.

Test hooks: :attr:`~InMemoryProvider.calls` records every method call,
:attr:`~InMemoryProvider.mutations` every change made to the fake cloud,
:meth:`~InMemoryProvider.fail_next` injects a fault, and ``provisioning_rounds``
keeps a new load balancer provisioning for that many ``ensure`` calls; ``latency``
makes every ``ensure`` take that long, like a cloud call (process tests use it to catch
a reconcile in flight).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import ipaddress
from collections import defaultdict, deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final

from lbctl.domain.capabilities import Capabilities
from lbctl.domain.service import IPFamily, Protocol, Service, ServicePort
from providers.base import (
    ConfigError,
    EndpointInfo,
    IngressPoint,
    LoadBalancerRequest,
    LoadBalancerStatus,
    TransientError,
    default_load_balancer_name,
    require_supported,
)

__all__ = [
    "DEFAULT_CAPABILITIES",
    "MUTATIONS",
    "OPERATIONS",
    "InMemoryProvider",
    "MemoryLoadBalancer",
    "create",
]

OPERATIONS: Final = ("ensure", "update_hosts", "delete", "get", "close")
"""The provider methods, as recorded in ``calls`` and accepted by ``fail_next``."""

MUTATIONS: Final = ("create", "update", "update_hosts", "delete")
"""The changes to the fake cloud, as recorded in ``mutations``."""

DEFAULT_CAPABILITIES: Final = Capabilities(
    protocols=frozenset(Protocol),
    mixed_protocols=True,
    tcp_udp_same_port=True,
    dual_stack=True,
    source_ranges=True,
    external_traffic_policy_local=True,
    ip_mode="VIP",
)

_V4_NET: Final = ipaddress.IPv4Network("198.51.100.0/24")
_V6_NET: Final = ipaddress.IPv6Network("2001:db8::/64")


@dataclass(frozen=True, slots=True)
class MemoryLoadBalancer:
    """One fake load balancer."""

    uid: str
    name: str
    """Upstream's default name: ``"a"`` + UID without dashes, cut to 32 characters."""
    ips: tuple[str, ...]
    ports: tuple[ServicePort, ...]
    nodes: tuple[str, ...]
    endpoints: tuple[EndpointInfo, ...]
    source_ranges: tuple[str, ...]
    rounds_left: int = 0
    """``ensure`` calls still answered with ``provisioning=True``."""


class InMemoryProvider:
    """The ``memory`` provider (class ``lbctl.io/memory``)."""

    def __init__(
        self,
        *,
        capabilities: Capabilities = DEFAULT_CAPABILITIES,
        provisioning_rounds: int = 0,
        requeue_after: float = 1.0,
        network_v4: str = "198.51.100.0/24",
        latency: float = 0.0,
    ) -> None:
        """``network_v4``: where IPv4 addresses come from (never contacted; the default
        is a documentation range; benchmarks with thousands of Services pass a larger
        one)."""
        self.name = "memory"
        self.load_balancer_class = "lbctl.io/memory"
        self.capabilities = capabilities
        self.provisioning_rounds = provisioning_rounds
        self.requeue_after = requeue_after
        self.latency = latency
        self.state: dict[str, MemoryLoadBalancer] = {}
        self.calls: list[tuple[str, str]] = []
        """Every method call: ``(operation, service key)``; ``close`` has key ``""``."""
        self.mutations: list[tuple[str, str]] = []
        """Every change to :attr:`state` made through the API: ``(mutation, key)``."""
        self.closed = False
        self._faults: defaultdict[str, deque[BaseException]] = defaultdict(deque)
        self._owners: dict[str, str] = {}
        self._v4: ipaddress.IPv4Network = ipaddress.IPv4Network(network_v4)
        self._v6: ipaddress.IPv6Network = _V6_NET

    def fail_next(self, operation: str, exc: BaseException) -> None:
        """Make the next call of ``operation`` raise ``exc`` (queued; one per call).

        The failing call is recorded in :attr:`calls` and changes nothing.
        """
        if operation not in OPERATIONS:
            raise ValueError(f"operation {operation!r} is not one of {', '.join(OPERATIONS)}")
        self._faults[operation].append(exc)

    def _enter(self, operation: str, key: str) -> None:
        if self.closed:
            raise RuntimeError(f"memory provider: {operation} after close")
        self.calls.append((operation, key))
        faults = self._faults[operation]
        if faults:
            raise faults.popleft()

    async def ensure(self, req: LoadBalancerRequest) -> LoadBalancerStatus:
        key = req.key
        self._enter("ensure", key)
        require_supported(req, self)
        if self.latency:
            await asyncio.sleep(self.latency)  # a simulated cloud call, not a wait on state
        service = req.service
        current = self.state.get(key)
        fresh = current is None or current.uid != service.metadata.uid
        families = self._families(service)
        ips = current.ips if current is not None and not fresh else ()
        if tuple(_family(ip) for ip in ips) != families:
            ips = self._allocate(service, key, families)
        desired = MemoryLoadBalancer(
            uid=service.metadata.uid,
            name=default_load_balancer_name(service),
            ips=ips,
            ports=req.ports,
            nodes=tuple(n.name for n in req.nodes),
            endpoints=req.endpoints,
            source_ranges=service.spec.load_balancer_source_ranges,
            rounds_left=self.provisioning_rounds,
        )
        if current is None or fresh:
            self.state[key] = desired
            self.mutations.append(("create", key))
        else:
            desired = dataclasses.replace(desired, rounds_left=current.rounds_left)
            if desired != current:
                self.state[key] = desired
                self.mutations.append(("update", key))
        lb = self.state[key]
        if lb.rounds_left > 0:
            self.state[key] = dataclasses.replace(lb, rounds_left=lb.rounds_left - 1)
            return LoadBalancerStatus(provisioning=True, requeue_after=self.requeue_after)
        return self._status(lb)

    async def update_hosts(self, req: LoadBalancerRequest) -> None:
        key = req.key
        self._enter("update_hosts", key)
        lb = self.state.get(key)
        nodes = tuple(n.name for n in req.nodes)
        if lb is None or lb.nodes == nodes:
            return
        self.state[key] = dataclasses.replace(lb, nodes=nodes)
        self.mutations.append(("update_hosts", key))

    async def delete(self, service: Service) -> None:
        key = service.key
        self._enter("delete", key)
        if self.state.pop(key, None) is not None:
            self.mutations.append(("delete", key))

    async def sweep(self, live_uids: Callable[[], Collection[str]]) -> int:
        """The orphan sweep (:class:`providers.base.Sweeper`): drop load balancers whose
        Service UID is not live; ``live_uids`` is read after the state is listed."""
        self._enter("sweep", "")
        listed = list(self.state.items())
        live = set(live_uids())
        orphans = [key for key, lb in listed if lb.uid not in live]
        for key in orphans:
            del self.state[key]
            self.mutations.append(("sweep", key))
        return len(orphans)

    async def get(self, service: Service) -> LoadBalancerStatus | None:
        self._enter("get", service.key)
        lb = self.state.get(service.key)
        if lb is None:
            return None
        if lb.rounds_left > 0:
            return LoadBalancerStatus(provisioning=True, requeue_after=self.requeue_after)
        return self._status(lb)

    async def close(self) -> None:
        if not self.closed:
            self.calls.append(("close", ""))
            faults = self._faults["close"]
            if faults:
                raise faults.popleft()
        self.closed = True

    # --- helpers ----------------------------------------------------------------------

    def _families(self, service: Service) -> tuple[str, ...]:
        families = tuple(service.spec.ip_families) or (IPFamily.IPV4,)
        return families if self.capabilities.dual_stack else families[:1]

    def _allocate(self, service: Service, key: str, families: tuple[str, ...]) -> tuple[str, ...]:
        """Addresses derived from the UID; the next free one on a (rare) collision."""
        seed = hashlib.sha256((service.metadata.uid or key).encode()).digest()

        def taken(ip: str) -> bool:
            # The owner index may be stale (tests edit ``state`` by hand): check it.
            owner = self._owners.get(ip)
            return (
                owner is not None
                and owner != key
                and ip in getattr(self.state.get(owner), "ips", ())
            )

        out: list[str] = []
        for family in families:
            net = self._v6 if family == IPFamily.IPV6 else self._v4
            size = net.num_addresses - 2  # neither the first nor the last address
            start = int.from_bytes(seed[:8], "big")
            candidates = (str(net[1 + (start + i) % size]) for i in range(min(size, 4096)))
            ip = next((c for c in candidates if not taken(c)), None)
            if ip is None:
                raise TransientError(f"memory: no free {family} address for {key}")
            self._owners[ip] = key
            out.append(ip)
        return tuple(out)

    def _status(self, lb: MemoryLoadBalancer) -> LoadBalancerStatus:
        mode = self.capabilities.ip_mode
        points = [IngressPoint(ip=ip, ip_mode=mode) for ip in lb.ips] if mode else []
        if self.capabilities.hostname:
            points.append(IngressPoint(hostname=f"{lb.name}.memory.invalid"))
        return LoadBalancerStatus(ingress=tuple(points))


def _family(ip: str) -> str:
    return IPFamily.IPV6 if ipaddress.ip_address(ip).version == 6 else IPFamily.IPV4


def create(
    *,
    capabilities: Capabilities | None = None,
    provisioning_rounds: int = 0,
    requeue_after: float = 1.0,
    network_v4: str = "198.51.100.0/24",
    latency: float = 0.0,
) -> InMemoryProvider:
    """The ``lbctl.providers`` entry point ``memory``."""
    if isinstance(provisioning_rounds, bool) or not isinstance(provisioning_rounds, int):
        raise ConfigError("provisioning_rounds", f"must be an integer, got {provisioning_rounds!r}")
    if provisioning_rounds < 0:
        raise ConfigError("provisioning_rounds", f"must be >= 0, got {provisioning_rounds}")
    if not isinstance(requeue_after, int | float) or not requeue_after > 0:
        raise ConfigError("requeue_after", f"must be a positive number, got {requeue_after!r}")
    try:
        net = ipaddress.IPv4Network(network_v4)
    except (ValueError, TypeError) as e:
        raise ConfigError("network_v4", f"must be an IPv4 CIDR, got {network_v4!r}: {e}") from None
    if net.num_addresses < 4:
        raise ConfigError("network_v4", f"{network_v4} is too small (at least a /30)")
    if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
        raise ConfigError("latency", f"must be a number of seconds >= 0, got {latency!r}")
    return InMemoryProvider(
        network_v4=str(net),
        latency=float(latency),
        capabilities=capabilities or DEFAULT_CAPABILITIES,
        provisioning_rounds=provisioning_rounds,
        requeue_after=float(requeue_after),
    )
