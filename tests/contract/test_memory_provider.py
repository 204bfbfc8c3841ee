"""The in-memory provider: the conformance suite, and its own test hooks.

The suite is also run against deliberately broken providers, to show each check fails
when its rule is broken.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Awaitable, Callable

import pytest

from lbctl.domain.capabilities import Capabilities, PortCheck, check_ports
from lbctl.domain.service import Service, ServicePort
from providers import conformance
from providers.base import (
    ConfigError,
    IngressPoint,
    LoadBalancerRequest,
    LoadBalancerStatus,
    Provider,
    RetryAfterError,
    TransientError,
    UnsupportedError,
)
from providers.memory import DEFAULT_CAPABILITIES, InMemoryProvider, create

V4 = ipaddress.ip_network("198.51.100.0/24")
V6 = ipaddress.ip_network("2001:db8::/64")

FACTORIES: dict[str, Callable[[], Provider]] = {
    "default": create,
    "provisioning": lambda: create(provisioning_rounds=3, requeue_after=0.5),
    "tcp-only-single-protocol": lambda: create(
        capabilities=Capabilities(frozenset({"TCP"}), mixed_protocols=False)
    ),
    "hostname-only": lambda: create(
        capabilities=dataclasses.replace(DEFAULT_CAPABILITIES, ip_mode=None, hostname=True)
    ),
    "proxy-and-hostname": lambda: create(
        capabilities=dataclasses.replace(DEFAULT_CAPABILITIES, ip_mode="Proxy", hostname=True)
    ),
}


@pytest.mark.parametrize("factory", FACTORIES.values(), ids=FACTORIES.keys())
@pytest.mark.parametrize("check", conformance.CHECKS, ids=conformance.check_id)
async def test_conformance(check: conformance.Check, factory: Callable[[], Provider]) -> None:
    await check(factory, conformance.build_service)


async def test_run_all() -> None:
    await conformance.run_all(create)


# --- the suite catches broken providers -------------------------------------------


class AlwaysMutates(InMemoryProvider):
    async def ensure(self, req: LoadBalancerRequest) -> LoadBalancerStatus:
        status = await super().ensure(req)
        self.mutations.append(("update", req.key))
        return status


class NewAddressEachTime(InMemoryProvider):
    async def ensure(self, req: LoadBalancerRequest) -> LoadBalancerStatus:
        await super().ensure(req)
        n = sum(1 for op, _ in self.calls if op == "ensure")
        return LoadBalancerStatus(ingress=(IngressPoint(ip=f"198.51.100.{n}", ip_mode="VIP"),))


class DeleteAbsentFails(InMemoryProvider):
    async def delete(self, service: Service) -> None:
        if service.key not in self.state:
            raise TransientError("not found")
        await super().delete(service)


class DeleteAlwaysMutates(InMemoryProvider):
    async def delete(self, service: Service) -> None:
        await super().delete(service)
        self.mutations.append(("delete", service.key))


class StaleGet(InMemoryProvider):
    async def get(self, service: Service) -> LoadBalancerStatus | None:
        return LoadBalancerStatus(ingress=(IngressPoint(ip="198.51.100.1", ip_mode="VIP"),))


class IpWithoutMode(InMemoryProvider):
    async def ensure(self, req: LoadBalancerRequest) -> LoadBalancerStatus:
        status = await super().ensure(req)
        points = tuple(dataclasses.replace(p, ip_mode=None) for p in status.ingress)
        return dataclasses.replace(status, ingress=points)


class UndeclaredHostname(InMemoryProvider):
    async def ensure(self, req: LoadBalancerRequest) -> LoadBalancerStatus:
        await super().ensure(req)
        return LoadBalancerStatus(ingress=(IngressPoint(hostname="lb.example.com"),))


class AcceptsEverything(InMemoryProvider):
    """Drops the ports it cannot serve instead of refusing them."""

    async def ensure(self, req: LoadBalancerRequest) -> LoadBalancerStatus:
        served = check_ports(req.ports, self.capabilities).supported
        return await super().ensure(dataclasses.replace(req, ports=served))


class UpdateHostsCreates(InMemoryProvider):
    async def update_hosts(self, req: LoadBalancerRequest) -> None:
        await self.ensure(req)


class UpdateHostsAlwaysMutates(InMemoryProvider):
    async def update_hosts(self, req: LoadBalancerRequest) -> None:
        await super().update_hosts(req)
        self.mutations.append(("update_hosts", req.key))


def inconsistent_capabilities() -> InMemoryProvider:
    provider = InMemoryProvider()
    caps = dataclasses.replace(DEFAULT_CAPABILITIES)
    object.__setattr__(caps, "ip_mode", None)  # hostname False: answers with nothing
    provider.capabilities = caps
    return provider


def unqualified_class() -> InMemoryProvider:
    provider = InMemoryProvider()
    provider.load_balancer_class = "memory"
    return provider


TCP_ONLY = Capabilities(frozenset({"TCP"}))
C = conformance
BROKEN: list[tuple[conformance.Check, Callable[[], Provider]]] = [
    (C.check_capabilities_consistent, inconsistent_capabilities),
    (C.check_capabilities_consistent, unqualified_class),
    (C.check_ensure_idempotent, AlwaysMutates),
    (C.check_ensure_idempotent, NewAddressEachTime),
    (C.check_ensure_idempotent, lambda: InMemoryProvider(provisioning_rounds=1000)),
    (C.check_status_shape, IpWithoutMode),
    (C.check_status_shape, UndeclaredHostname),
    (C.check_delete_absent, DeleteAbsentFails),
    (C.check_delete_absent, DeleteAlwaysMutates),
    (C.check_delete_twice, DeleteAlwaysMutates),
    (C.check_get_after_delete_is_none, StaleGet),
    (C.check_ensure_rejects_unsupported_ports, AcceptsEverything),
    (C.check_ensure_rejects_unsupported_ports, lambda: AcceptsEverything(capabilities=TCP_ONLY)),
    (C.check_partial_refusal_serves_the_rest, lambda: InMemoryProvider(provisioning_rounds=1000)),
    (C.check_update_hosts, UpdateHostsCreates),
    (C.check_update_hosts, UpdateHostsAlwaysMutates),
]


@pytest.mark.parametrize(
    ("check", "factory"),
    BROKEN,
    ids=[f"{conformance.check_id(c)}-{getattr(f, '__name__', 'lambda')}" for c, f in BROKEN],
)
async def test_the_suite_catches(check: conformance.Check, factory: Callable[[], Provider]) -> None:
    with pytest.raises(AssertionError):
        await check(factory, conformance.build_service)


async def test_the_suite_catches_a_controller_check_that_lets_refused_ports_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def leaky(ports: tuple[ServicePort, ...], caps: Capabilities, *, provider: str) -> PortCheck:
        check = check_ports(ports, caps, provider=provider)
        return dataclasses.replace(check, supported=tuple(ports))

    monkeypatch.setattr(conformance, "check_ports", leaky)
    with pytest.raises(AssertionError, match="the provider was called"):
        await conformance.check_unsupported_refused_before_side_effects(
            AcceptsEverything, conformance.build_service
        )


# --- addresses --------------------------------------------------------------------


def service(name: str, *, uid: str | None = None, families: tuple[str, ...] = ()) -> Service:
    svc = conformance.build_service(
        name=name,
        ports=(ServicePort(port=80, protocol="TCP", node_port=30080),),
        load_balancer_class="lbctl.io/memory",
    )
    if uid is not None:
        svc = dataclasses.replace(svc, metadata=dataclasses.replace(svc.metadata, uid=uid))
    return svc.replace_spec(ip_families=families) if families else svc


def request(svc: Service, *, nodes: int = 2) -> LoadBalancerRequest:
    return LoadBalancerRequest(svc, svc.spec.ports, conformance.NODES[:nodes])


def ips(status: LoadBalancerStatus | None) -> list[str]:
    assert status is not None
    return [p.ip for p in status.ingress]


async def test_addresses_are_deterministic_per_uid_and_in_the_documentation_range() -> None:
    first, second = InMemoryProvider(), InMemoryProvider()
    svc = service("web", uid="5a3c2f4e-0000-4000-8000-000000000001")
    a = ips(await first.ensure(request(svc)))
    b = ips(await second.ensure(request(svc)))
    assert a == b
    (ip,) = a
    assert ipaddress.ip_address(ip) in V4
    assert ip not in ("198.51.100.0", "198.51.100.255")
    other = ips(await second.ensure(request(service("web2", uid="another-uid"))))
    assert other != a


async def test_distinct_addresses_until_the_range_is_exhausted() -> None:
    provider = InMemoryProvider()
    seen = set()
    for i in range(254):
        (ip,) = ips(await provider.ensure(request(service(f"s{i}"))))
        assert ipaddress.ip_address(ip) in V4
        seen.add(ip)
    assert len(seen) == 254
    with pytest.raises(TransientError, match="no free IPv4 address"):
        await provider.ensure(request(service("one-too-many")))
    assert "conformance/one-too-many" not in provider.state


@pytest.mark.parametrize(
    ("families", "dual_stack", "want"),
    [
        (("IPv4", "IPv6"), True, [V4, V6]),
        (("IPv6", "IPv4"), True, [V6, V4]),
        (("IPv6",), True, [V6]),
        (("IPv6", "IPv4"), False, [V6]),
    ],
)
async def test_ip_families(
    families: tuple[str, ...], dual_stack: bool, want: list[ipaddress.IPv4Network]
) -> None:
    caps = dataclasses.replace(DEFAULT_CAPABILITIES, dual_stack=dual_stack)
    provider = InMemoryProvider(capabilities=caps)
    got = ips(await provider.ensure(request(service("dual", families=families))))
    assert [ipaddress.ip_address(ip) in net for ip, net in zip(got, want, strict=True)] == [
        True
    ] * len(want)


# --- updates, drift, fault injection, provisioning ---------------------------------


async def test_changes_are_updates_that_keep_the_address() -> None:
    provider = InMemoryProvider()
    svc = service("web")
    before = ips(await provider.ensure(request(svc)))
    changed = svc.replace_spec(
        ports=(*svc.spec.ports, ServicePort(port=443, protocol="TCP", node_port=30443)),
        load_balancer_source_ranges=("203.0.113.0/24",),
    )
    assert ips(await provider.ensure(request(changed))) == before
    lb = provider.state[svc.key]
    assert [p.port for p in lb.ports] == [80, 443]
    assert lb.source_ranges == ("203.0.113.0/24",)
    assert provider.mutations == [("create", svc.key), ("update", svc.key)]


async def test_a_new_uid_under_the_same_name_is_a_new_load_balancer() -> None:
    provider = InMemoryProvider()
    old, new = service("web", uid="uid-old"), service("web", uid="uid-new")
    await provider.ensure(request(old))
    await provider.ensure(request(new))
    assert provider.state[new.key].uid == "uid-new"
    assert provider.state[new.key].name == "auidnew"
    assert provider.mutations == [("create", new.key), ("create", new.key)]


async def test_update_hosts_changes_only_the_nodes() -> None:
    provider = InMemoryProvider()
    svc = service("web")
    await provider.ensure(request(svc))
    before = provider.state[svc.key]
    await provider.update_hosts(request(svc, nodes=1))
    after = provider.state[svc.key]
    assert after.nodes == ("node-a",)
    assert dataclasses.replace(after, nodes=before.nodes) == before
    assert provider.mutations[-1] == ("update_hosts", svc.key)


async def test_a_hand_deleted_load_balancer_is_gone_and_recreated_with_its_address() -> None:
    provider = InMemoryProvider()
    svc = service("web")
    first = await provider.ensure(request(svc))
    del provider.state[svc.key]
    assert await provider.get(svc) is None
    assert await provider.ensure(request(svc)) == first
    assert provider.mutations == [("create", svc.key), ("create", svc.key)]


async def test_fail_next_raises_once_records_the_call_and_changes_nothing() -> None:
    provider = InMemoryProvider()
    svc = service("web")
    provider.fail_next("ensure", TransientError("throttled"))
    provider.fail_next("ensure", RetryAfterError(7))
    with pytest.raises(TransientError, match="throttled"):
        await provider.ensure(request(svc))
    with pytest.raises(RetryAfterError) as info:
        await provider.ensure(request(svc))
    assert info.value.seconds == 7
    assert provider.state == {}
    assert provider.mutations == []
    status = await provider.ensure(request(svc))
    assert ips(status)
    assert provider.calls == [("ensure", svc.key)] * 3


@pytest.mark.parametrize("operation", ["delete", "get", "update_hosts"])
async def test_fail_next_for_other_operations(operation: str) -> None:
    provider = InMemoryProvider()
    svc = service("web")
    await provider.ensure(request(svc))
    state = dict(provider.state)
    provider.fail_next(operation, UnsupportedError("Nope", "nope"))
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "delete": lambda: provider.delete(svc),
        "get": lambda: provider.get(svc),
        "update_hosts": lambda: provider.update_hosts(request(svc, nodes=1)),
    }
    with pytest.raises(UnsupportedError):
        await calls[operation]()
    assert provider.state == state
    assert provider.calls[-1] == (operation, svc.key)
    await calls[operation]()  # the fault was used up


async def test_fail_next_close_and_calls_after_close() -> None:
    provider = InMemoryProvider()
    provider.fail_next("close", TransientError("flush failed"))
    with pytest.raises(TransientError):
        await provider.close()
    await provider.close()
    await provider.close()
    assert provider.calls == [("close", ""), ("close", "")]
    with pytest.raises(RuntimeError, match="get after close"):
        await provider.get(service("web"))


def test_fail_next_rejects_unknown_operations() -> None:
    with pytest.raises(ValueError, match="'create' is not one of ensure"):
        InMemoryProvider().fail_next("create", TransientError())


async def test_provisioning_rounds() -> None:
    provider = create(provisioning_rounds=2, requeue_after=3)
    svc = service("web")
    provisioning = LoadBalancerStatus(provisioning=True, requeue_after=3.0)
    assert await provider.ensure(request(svc)) == provisioning
    assert await provider.get(svc) == provisioning, "get does not use up a round"
    assert await provider.ensure(request(svc)) == provisioning
    active = await provider.ensure(request(svc))
    assert not active.provisioning and active.requeue_after is None
    assert ips(active) == ips(await provider.get(svc))
    assert provider.mutations == [("create", svc.key)], "polling is not a change"


async def test_provisioning_starts_again_only_for_a_new_load_balancer() -> None:
    provider = InMemoryProvider(provisioning_rounds=1)
    svc = service("web")
    assert (await provider.ensure(request(svc))).provisioning
    assert not (await provider.ensure(request(svc))).provisioning
    changed = svc.replace_spec(load_balancer_source_ranges=("203.0.113.0/24",))
    assert not (await provider.ensure(request(changed))).provisioning
    del provider.state[svc.key]
    assert (await provider.ensure(request(svc))).provisioning


async def test_ensure_refuses_ports_its_capabilities_refuse() -> None:
    provider = InMemoryProvider(capabilities=Capabilities(frozenset({"TCP", "UDP"})))
    svc = service("mixed").replace_spec(
        ports=(ServicePort(port=80, protocol="TCP"), ServicePort(port=53, protocol="UDP"))
    )
    with pytest.raises(UnsupportedError) as info:
        await provider.ensure(request(svc))
    assert info.value.reason == "MixedProtocolNotSupported"
    assert str(info.value).startswith("port 53/UDP: provider memory does not support mixed")
    assert provider.state == {}


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        ({"provisioning_rounds": -1}, "provisioning_rounds"),
        ({"provisioning_rounds": "2"}, "provisioning_rounds"),
        ({"provisioning_rounds": True}, "provisioning_rounds"),
        ({"requeue_after": 0}, "requeue_after"),
        ({"requeue_after": "soon"}, "requeue_after"),
    ],
)
def test_create_names_the_bad_setting(options: dict[str, object], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        create(**options)  # type: ignore[arg-type]
    assert info.value.setting == setting
    assert str(info.value).startswith(f"{setting}: ")


def test_create_defaults() -> None:
    provider = create()
    assert (provider.name, provider.load_balancer_class) == ("memory", "lbctl.io/memory")
    caps = provider.capabilities
    assert caps.protocols == {"TCP", "UDP", "SCTP"}
    assert (caps.mixed_protocols, caps.dual_stack, caps.ip_mode) == (True, True, "VIP")
    assert isinstance(provider, Provider)
