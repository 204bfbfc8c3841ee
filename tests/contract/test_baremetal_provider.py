"""The bare-metal provider alone (pools given as options): the conformance suite, and
what ensure answers (VIP, the pool annotation, IPAllocated once, refusals)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from providers import conformance
from providers.baremetal import POOL_ANNOTATION, BareMetalProvider, create
from providers.base import ConfigError, LoadBalancerRequest, UnsupportedError, load_provider

POOLS: list[dict[str, Any]] = [{"name": "conformance", "addresses": ["192.0.2.0/24"]}]


def factory() -> BareMetalProvider:
    return create(pools=POOLS)


@pytest.mark.parametrize("check", conformance.CHECKS, ids=conformance.check_id)
async def test_conformance(check: conformance.Check) -> None:
    await check(factory, conformance.build_service)


def request(name: str, **annotations: str) -> LoadBalancerRequest:
    svc = conformance.build_service(
        name=name,
        ports=conformance._ports("TCP", 80),
        load_balancer_class="lbctl.io/baremetal",
    )
    svc = dataclasses.replace(
        svc, metadata=dataclasses.replace(svc.metadata, annotations=annotations)
    )
    return LoadBalancerRequest(service=svc, ports=svc.spec.ports)


async def test_ensure_answers_vip_the_pool_and_ip_allocated_once() -> None:
    provider = create(pools=[{"name": "small", "addresses": ["192.0.2.10-192.0.2.11"]}])
    first = await provider.ensure(request("a"))
    assert [(i.ip, i.ip_mode) for i in first.ingress] == [("192.0.2.10", "VIP")]
    assert first.annotations == {POOL_ANNOTATION: "small"}
    assert [(e.type, e.reason) for e in first.events] == [("Normal", "IPAllocated")]
    again = await provider.ensure(request("a"))
    assert again == first and again.events == ()
    assert await provider.get(request("a").service) == first


async def test_refusals_carry_the_allocator_reason_and_allocation_failed() -> None:
    provider = create(pools=[{"name": "one", "addresses": ["192.0.2.10/32"]}])
    await provider.ensure(request("a"))
    with pytest.raises(UnsupportedError) as info:
        await provider.ensure(request("b"))
    assert (info.value.reason, info.value.event_reason) == ("PoolExhausted", "AllocationFailed")
    with pytest.raises(UnsupportedError) as info:
        await provider.ensure(request("c", **{"lbctl.io/loadBalancerIPs": "192.0.2.10"}))
    assert info.value.reason == "RequestedIPInUse"
    with pytest.raises(UnsupportedError) as info:
        await provider.ensure(request("d", **{"lbctl.io/address-pool": "nope"}))
    assert info.value.reason == "PoolNotFound"
    await provider.delete(request("a").service)
    got = await provider.ensure(request("b"))
    assert got.ingress[0].ip == "192.0.2.10"


async def test_a_failed_ensure_releases_what_the_service_held() -> None:
    provider = create(pools=[{"name": "p", "addresses": ["192.0.2.0/30"]}])
    await provider.ensure(request("a"))
    with pytest.raises(UnsupportedError):
        await provider.ensure(request("a", **{"lbctl.io/loadBalancerIPs": "203.0.113.1"}))
    assert await provider.get(request("a").service) is None
    assert provider.mutations[-1] == ("release", "conformance/a")


def test_capabilities_and_entry_point() -> None:
    provider = load_provider("baremetal")
    assert isinstance(provider, BareMetalProvider)
    caps = provider.capabilities
    assert caps.protocols == {"TCP", "UDP", "SCTP"} and caps.mixed_protocols and caps.dual_stack
    assert caps.ip_mode == "VIP" and provider.load_balancer_class == "lbctl.io/baremetal"


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        ({"pools": [{"addresses": ["192.0.2.0/28"]}]}, "pools"),
        ({"pools": [{"name": "x", "addresses": ["nope"]}]}, "pools"),
        ({"status_debounce": -1}, "status_debounce"),
    ],
)
def test_bad_options_name_the_setting(options: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        create(**options)
    assert info.value.setting == setting
