"""The conformance suite every provider must pass.

Each check is a plain ``async`` function taking a provider factory (called once per
check; the check closes what it made) and a :class:`ServiceBuilder`, and raising
:class:`AssertionError` on a violation, so any provider's pytest file can run them::

    @pytest.mark.parametrize("check", conformance.CHECKS, ids=conformance.check_id)
    async def test_conformance(check: conformance.Check) -> None:
        await check(lambda: create(...), conformance.build_service)

Where a provider records its calls (a ``calls`` list of ``(operation, key)``) and its
changes (a ``mutations`` list), the checks also count them; otherwise they judge by
the results of ``get``.
"""

from __future__ import annotations

import ipaddress
import typing
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Final

from lbctl.domain import names
from lbctl.domain.capabilities import PortErrorReason, capability_errors, check_ports
from lbctl.domain.service import (
    ObjectMeta,
    Protocol,
    Service,
    ServicePort,
    ServiceSpec,
    ServiceStatus,
)
from lbctl.domain.validation_status import load_balancer_status_errors
from providers.base import (
    LoadBalancerRequest,
    LoadBalancerStatus,
    NodeInfo,
    Provider,
    ProviderError,
    UnsupportedError,
)

__all__ = [
    "CHECKS",
    "NODES",
    "Check",
    "ProviderFactory",
    "ServiceBuilder",
    "build_service",
    "check_capabilities_consistent",
    "check_delete_absent",
    "check_delete_twice",
    "check_ensure_idempotent",
    "check_ensure_rejects_unsupported_ports",
    "check_get_after_delete_is_none",
    "check_id",
    "check_partial_refusal_serves_the_rest",
    "check_status_shape",
    "check_unsupported_refused_before_side_effects",
    "check_update_hosts",
    "run_all",
]

ProviderFactory = Callable[[], Provider]


class ServiceBuilder(typing.Protocol):
    """Makes a LoadBalancer Service the provider under test can be given."""

    def __call__(
        self, *, name: str, ports: Sequence[ServicePort], load_balancer_class: str
    ) -> Service: ...


Check = Callable[[ProviderFactory, ServiceBuilder], Awaitable[None]]

NODES: Final = (
    NodeInfo("node-a", "memory://node-a", (("InternalIP", "10.0.0.1"),)),
    NodeInfo("node-b", "memory://node-b", (("InternalIP", "10.0.0.2"),)),
)
MAX_PROVISIONING_ROUNDS: Final = 20
"""``ensure`` calls a new load balancer may stay provisioning for in the suite."""
_BOGUS_PROTOCOL: Final = "HTTP"
"""Refused by every provider: used when a provider serves all three real protocols."""


def build_service(*, name: str, ports: Sequence[ServicePort], load_balancer_class: str) -> Service:
    """A defaulted LoadBalancer Service in namespace ``conformance``; UID from ``name``."""
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"lbctl-conformance/{name}"))
    return Service(
        metadata=ObjectMeta(name=name, namespace="conformance", uid=uid),
        spec=ServiceSpec(
            type="LoadBalancer",
            ports=tuple(ports),
            cluster_ip="10.96.0.10",
            cluster_ips=("10.96.0.10",),
            ip_families=("IPv4",),
            ip_family_policy="SingleStack",
            external_traffic_policy="Cluster",
            load_balancer_class=load_balancer_class,
        ),
    )


def check_id(check: Check) -> str:
    """A pytest id: the function name without ``check_``."""
    return getattr(check, "__name__", repr(check)).removeprefix("check_")


# --- helpers ----------------------------------------------------------------------


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


@asynccontextmanager
async def _opened(factory: ProviderFactory) -> AsyncIterator[Provider]:
    provider = factory()
    try:
        yield provider
    finally:
        await provider.close()


def _recorded(provider: Provider, attribute: str) -> list[tuple[str, str]] | None:
    value = getattr(provider, attribute, None)
    return list(value) if isinstance(value, list) else None


def _served_protocol(provider: Provider) -> str:
    return next(p for p in Protocol if p in provider.capabilities.protocols)


def _refused_protocol(provider: Provider) -> str:
    return next((p for p in Protocol if p not in provider.capabilities.protocols), _BOGUS_PROTOCOL)


def _ports(protocol: str, *numbers: int) -> tuple[ServicePort, ...]:
    return tuple(
        ServicePort(port=n, protocol=protocol, name=f"p{n}", target_port=n, node_port=30000 + i)
        for i, n in enumerate(numbers)
    )


def _plan(provider: Provider, service: Service) -> LoadBalancerRequest | None:
    """What the controller does first: check the ports; None when none can be served."""
    check = check_ports(service.spec.ports, provider.capabilities, provider=provider.name)
    if not check.supported:
        return None
    return LoadBalancerRequest(service=service, ports=check.supported, nodes=NODES)


def _request(provider: Provider, build: ServiceBuilder, name: str) -> LoadBalancerRequest:
    service = build(
        name=name,
        ports=_ports(_served_protocol(provider), 80, 443),
        load_balancer_class=provider.load_balancer_class,
    )
    req = _plan(provider, service)
    _expect(req is not None and req.ports == service.spec.ports, "check_ports refused ports")
    assert req is not None
    return req


async def _ensure_active(provider: Provider, req: LoadBalancerRequest) -> LoadBalancerStatus:
    for _ in range(MAX_PROVISIONING_ROUNDS):
        status = await provider.ensure(req)
        if not status.provisioning:
            return status
        _expect(
            status.requeue_after is not None and status.requeue_after > 0,
            f"a provisioning status must ask for a requeue, got {status}",
        )
    raise AssertionError(f"still provisioning after {MAX_PROVISIONING_ROUNDS} ensure calls")


async def _delete_must_succeed(provider: Provider, service: Service, what: str) -> None:
    try:
        await provider.delete(service)
    except ProviderError as e:
        raise AssertionError(f"deleting {what} raised {e!r}") from e


# --- checks -----------------------------------------------------------------------


async def check_capabilities_consistent(factory: ProviderFactory, build: ServiceBuilder) -> None:
    """Protocols non-empty and real, ip_mode VIP/Proxy or None iff hostname-only, a
    name, and a qualified ``loadBalancerClass`` with a domain prefix."""
    async with _opened(factory) as provider:
        problems = capability_errors(provider.capabilities)
        _expect(not problems, f"inconsistent capabilities: {'; '.join(problems)}")
        _expect(bool(provider.name), "the provider has no name")
        lb_class = provider.load_balancer_class
        _expect(
            "/" in lb_class and not names.qualified_name_errors(lb_class),
            f"loadBalancerClass {lb_class!r} is not a prefixed qualified name",
        )


async def check_ensure_idempotent(factory: ProviderFactory, build: ServiceBuilder) -> None:
    """A second ensure with the same request changes nothing and returns the same status."""
    async with _opened(factory) as provider:
        req = _request(provider, build, "idempotent")
        first = await _ensure_active(provider, req)
        before = _recorded(provider, "mutations")
        second = await provider.ensure(req)
        _expect(second == first, f"second ensure returned {second}, first {first}")
        after = _recorded(provider, "mutations")
        _expect(before == after, f"second ensure mutated: {before} -> {after}")
        current = await provider.get(req.service)
        _expect(current == first, f"get returned {current}, ensure {first}")


async def check_status_shape(factory: ProviderFactory, build: ServiceBuilder) -> None:
    """Each ingress has an ip xor a hostname; ipMode set iff ip, equal to the declared
    one; hostnames only if declared; the status passes kube-apiserver's validation."""
    async with _opened(factory) as provider:
        caps = provider.capabilities
        req = _request(provider, build, "status-shape")
        status = await _ensure_active(provider, req)
        _expect(bool(status.ingress), "an active load balancer has no ingress")
        for point in status.ingress:
            _expect(bool(point.ip) != bool(point.hostname), f"{point}: need ip xor hostname")
            if point.ip:
                _expect(point.ip_mode == caps.ip_mode, f"{point}: ip_mode is not {caps.ip_mode}")
                ipaddress.ip_address(point.ip)
            else:
                _expect(point.ip_mode is None, f"{point}: ip_mode without ip")
                _expect(caps.hostname, f"{point}: hostname, but capabilities.hostname is False")
        errors = load_balancer_status_errors(
            ServiceStatus(ingress=status.to_ingress()), spec=req.service.spec, strict=True
        )
        _expect(not errors, f"invalid status: {[str(e) for e in errors]}")


async def check_delete_absent(factory: ProviderFactory, build: ServiceBuilder) -> None:
    """Deleting a load balancer that never existed succeeds and changes nothing."""
    async with _opened(factory) as provider:
        req = _request(provider, build, "delete-absent")
        await _delete_must_succeed(provider, req.service, "an absent load balancer")
        _expect(not _recorded(provider, "mutations"), "deleting nothing mutated")
        _expect(await provider.get(req.service) is None, "get found a load balancer")


async def check_delete_twice(factory: ProviderFactory, build: ServiceBuilder) -> None:
    """A second delete succeeds and changes nothing."""
    async with _opened(factory) as provider:
        req = _request(provider, build, "delete-twice")
        await _ensure_active(provider, req)
        await provider.delete(req.service)
        before = _recorded(provider, "mutations")
        await _delete_must_succeed(provider, req.service, "a deleted load balancer")
        after = _recorded(provider, "mutations")
        _expect(before == after, f"second delete mutated: {before} -> {after}")


async def check_get_after_delete_is_none(factory: ProviderFactory, build: ServiceBuilder) -> None:
    """``get`` sees the load balancer after ensure and not after delete."""
    async with _opened(factory) as provider:
        req = _request(provider, build, "get-after-delete")
        await _ensure_active(provider, req)
        _expect(await provider.get(req.service) is not None, "get missed the load balancer")
        await provider.delete(req.service)
        gone = await provider.get(req.service)
        _expect(gone is None, f"get after delete returned {gone}")


async def check_unsupported_refused_before_side_effects(
    factory: ProviderFactory, build: ServiceBuilder
) -> None:
    """A Service of unsupported ports only is refused by ``check_ports``, so the
    provider is never called and nothing is created."""
    async with _opened(factory) as provider:
        protocol = _refused_protocol(provider)
        service = build(
            name="unsupported",
            ports=_ports(protocol, 80, 81),
            load_balancer_class=provider.load_balancer_class,
        )
        check = check_ports(service.spec.ports, provider.capabilities, provider=provider.name)
        reasons = {r.reason for r in check.refused}
        _expect(reasons == {PortErrorReason.UNSUPPORTED_PROTOCOL}, f"refusals: {check.refused}")
        req = _plan(provider, service)
        if req is not None:  # what a controller would do; the check above must prevent it
            await provider.ensure(req)
        calls = _recorded(provider, "calls")
        _expect(not calls, f"the provider was called: {calls}")
        _expect(await provider.get(service) is None, "a load balancer was created")


async def check_ensure_rejects_unsupported_ports(
    factory: ProviderFactory, build: ServiceBuilder
) -> None:
    """Given a port it cannot serve anyway, ensure raises UnsupportedError, creates
    nothing and changes nothing (upstream: providers reject unsupported protocols)."""
    async with _opened(factory) as provider:
        served = _ports(_served_protocol(provider), 80)
        refused = _ports(_refused_protocol(provider), 81)
        service = build(
            name="rejects",
            ports=served + refused,
            load_balancer_class=provider.load_balancer_class,
        )
        req = LoadBalancerRequest(service=service, ports=service.spec.ports, nodes=NODES)
        try:
            await provider.ensure(req)
        except UnsupportedError as e:
            _expect(e.reason == PortErrorReason.UNSUPPORTED_PROTOCOL, f"reason {e.reason!r}")
        else:
            raise AssertionError("ensure accepted an unsupported port")
        _expect(not _recorded(provider, "mutations"), "a refused ensure mutated")
        _expect(await provider.get(service) is None, "a refused ensure created something")


async def check_partial_refusal_serves_the_rest(
    factory: ProviderFactory, build: ServiceBuilder
) -> None:
    """With one port refused, the others are served."""
    async with _opened(factory) as provider:
        served = _ports(_served_protocol(provider), 80)
        refused = _ports(_refused_protocol(provider), 81)
        service = build(
            name="partial",
            ports=served + refused,
            load_balancer_class=provider.load_balancer_class,
        )
        req = _plan(provider, service)
        _expect(req is not None and req.ports == served, f"planned {req}")
        assert req is not None
        status = await _ensure_active(provider, req)
        _expect(bool(status.ingress), "the served ports got no ingress")


async def check_update_hosts(factory: ProviderFactory, build: ServiceBuilder) -> None:
    """update_hosts keeps the status; with the same nodes again it changes nothing;
    on an absent load balancer it creates nothing."""
    async with _opened(factory) as provider:
        req = _request(provider, build, "update-hosts")
        await provider.update_hosts(req)
        _expect(await provider.get(req.service) is None, "update_hosts created a balancer")
        status = await _ensure_active(provider, req)
        fewer = LoadBalancerRequest(service=req.service, ports=req.ports, nodes=NODES[:1])
        await provider.update_hosts(fewer)
        _expect(await provider.get(req.service) == status, "update_hosts changed the status")
        before = _recorded(provider, "mutations")
        await provider.update_hosts(fewer)
        after = _recorded(provider, "mutations")
        _expect(before == after, f"same nodes again mutated: {before} -> {after}")


CHECKS: Final[tuple[Check, ...]] = (
    check_capabilities_consistent,
    check_ensure_idempotent,
    check_status_shape,
    check_delete_absent,
    check_delete_twice,
    check_get_after_delete_is_none,
    check_unsupported_refused_before_side_effects,
    check_ensure_rejects_unsupported_ports,
    check_partial_refusal_serves_the_rest,
    check_update_hosts,
)


async def run_all(factory: ProviderFactory, build: ServiceBuilder = build_service) -> None:
    """Every check in :data:`CHECKS`, in order; the first failure propagates."""
    for check in CHECKS:
        await check(factory, build)
