"""The provider registry (entry points ``lbctl.providers``) and the rest of the SDK surface."""

from __future__ import annotations

from importlib import metadata

import pytest

from lbctl.domain.service import ObjectMeta, PortStatus, Service
from providers import base
from providers.base import (
    ENTRY_POINT_GROUP,
    ConfigError,
    IngressPoint,
    LoadBalancerStatus,
    NodeInfo,
    ProviderError,
    RetryAfterError,
    TransientError,
    UnsupportedError,
    available_providers,
    default_load_balancer_name,
    load_provider,
)
from providers.memory import InMemoryProvider


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    eps = tuple(metadata.EntryPoint(n, v, ENTRY_POINT_GROUP) for n, v in values.items())
    monkeypatch.setattr(base, "_entry_points", lambda: eps)


def test_the_installed_memory_entry_point_is_found() -> None:
    assert "memory" in available_providers()
    (ep,) = metadata.entry_points(group=ENTRY_POINT_GROUP, name="memory")
    assert ep.value == "providers.memory:create"
    provider = load_provider("memory", provisioning_rounds=2)
    assert isinstance(provider, InMemoryProvider)
    assert provider.provisioning_rounds == 2


def test_unknown_name_lists_the_available_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, memory="providers.memory:create", zeta="providers.memory:create")
    with pytest.raises(ConfigError) as info:
        load_provider("aws")
    assert info.value.setting == "provider"
    assert str(info.value) == "provider: unknown provider 'aws' (available: memory, zeta)"


def test_unknown_name_with_nothing_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch)
    assert available_providers() == []
    with pytest.raises(ConfigError, match=r"\(available: none\)"):
        load_provider("memory")


def test_available_providers_are_sorted(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, zeta="a:b", memory="c:d", aws="e:f")
    assert available_providers() == ["aws", "memory", "zeta"]


def test_one_name_registered_twice_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = (
        metadata.EntryPoint("memory", "providers.memory:create", ENTRY_POINT_GROUP),
        metadata.EntryPoint("memory", "other.memory:create", ENTRY_POINT_GROUP),
    )
    monkeypatch.setattr(base, "_entry_points", lambda: eps)
    with pytest.raises(ConfigError, match="registered twice"):
        available_providers()


def test_the_same_entry_point_seen_twice_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = metadata.EntryPoint("memory", "providers.memory:create", ENTRY_POINT_GROUP)
    monkeypatch.setattr(base, "_entry_points", lambda: (ep, ep))
    assert available_providers() == ["memory"]


def test_a_provider_that_cannot_be_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, gone="providers.does_not_exist:create")
    with pytest.raises(ConfigError, match=r"provider 'gone' .* cannot be loaded") as info:
        load_provider("gone")
    assert isinstance(info.value.__cause__, ImportError)


def test_options_the_factory_does_not_take() -> None:
    with pytest.raises(ConfigError) as info:
        load_provider("memory", region="eu-west-1")
    assert info.value.setting == "provider_options"
    assert "region" in str(info.value)
    assert "accepted: capabilities, provisioning_rounds, requeue_after, network_v4, latency" in str(
        info.value
    )


def test_shared_settings_reach_only_factories_that_take_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # memory has no cluster_name parameter: the shared setting is not forced on it.
    provider = load_provider("memory", shared={"cluster_name": "blue"}, network_v4="10.0.0.0/24")
    assert provider.name == "memory"
    # A bad option value names the option.
    with pytest.raises(ConfigError) as info:
        load_provider("memory", network_v4="nope")
    assert info.value.setting == "network_v4"


def test_a_factory_that_returns_no_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(
        monkeypatch, broken="builtins:dict", constant="providers.base:ENTRY_POINT_GROUP"
    )
    with pytest.raises(TypeError, match="not a Provider"):
        load_provider("broken")
    with pytest.raises(TypeError, match="not callable"):
        load_provider("constant")


# --- errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        TransientError("throttled"),
        RetryAfterError(5),
        UnsupportedError("UnsupportedProtocol", "no SCTP"),
        ConfigError("region", "missing"),
    ],
)
def test_every_error_is_a_provider_error(error: Exception) -> None:
    assert isinstance(error, ProviderError)


def test_the_error_kinds_are_distinct() -> None:
    """The controller tells them apart with isinstance; none may be caught as another."""
    kinds = [TransientError, RetryAfterError, UnsupportedError, ConfigError]
    for kind in kinds:
        assert [k for k in kinds if issubclass(kind, k)] == [kind]


def test_retry_after() -> None:
    error = RetryAfterError(2.5)
    assert (error.seconds, str(error)) == (2.5, "retry after 2.5s")
    assert str(RetryAfterError(1, "target group settling")) == "target group settling"
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            RetryAfterError(bad)


def test_unsupported_error() -> None:
    error = UnsupportedError("SourceRangesNotSupported", "loadBalancerSourceRanges is ignored")
    assert (error.reason, error.message) == ("SourceRangesNotSupported", str(error))
    with pytest.raises(ValueError, match="reason 'not camel'"):
        UnsupportedError("not camel", "message")


def test_config_error_names_the_setting() -> None:
    error = ConfigError("aws.region", "must be set")
    assert (error.setting, error.message, str(error)) == (
        "aws.region",
        "must be set",
        "aws.region: must be set",
    )


# --- values -----------------------------------------------------------------------


def test_status_to_ingress_carries_the_ports() -> None:
    status = LoadBalancerStatus(
        ingress=(
            IngressPoint(ip="198.51.100.1", ip_mode="VIP"),
            IngressPoint(hostname="lb.example"),
        )
    )
    ports = (PortStatus(port=53, protocol="UDP", error="MixedProtocolNotSupported"),)
    ingress = status.to_ingress(ports)
    assert [i.to_dict() for i in ingress] == [
        {"ip": "198.51.100.1", "ipMode": "VIP", "ports": [p.to_dict() for p in ports]},
        {"hostname": "lb.example", "ports": [p.to_dict() for p in ports]},
    ]
    assert [i.ports for i in status.to_ingress()] == [(), ()]


def test_default_load_balancer_name_is_upstreams() -> None:
    uid = "3f1e9c8a-1b2c-4d5e-8f90-a1b2c3d4e5f6"
    svc = Service(metadata=ObjectMeta(name="web", namespace="default", uid=uid))
    assert default_load_balancer_name(svc) == "a3f1e9c8a1b2c4d5e8f90a1b2c3d4e5f"
    assert len(default_load_balancer_name(svc)) == 32


def test_node_addresses_of_a_type() -> None:
    node = NodeInfo(
        "n1",
        addresses=(
            ("InternalIP", "10.0.0.1"),
            ("ExternalIP", "203.0.113.1"),
            ("InternalIP", "fd00::1"),
        ),
    )
    assert node.addresses_of("InternalIP") == ("10.0.0.1", "fd00::1")
    assert node.addresses_of("Hostname") == ()


@pytest.mark.parametrize("module", ["providers.base", "providers.memory", "providers.conformance"])
def test_public_surface_exists(module: str) -> None:
    import importlib

    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(set(mod.__all__))
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert missing == []


async def test_the_aws_provider_opens_the_clusters_node_port_range() -> None:
    from lbctl.controllers.main import provider_from_settings
    from lbctl.settings import load_settings

    settings = load_settings(
        provider="aws",
        node_port_range="31000-31999",
        provider_options={"region": "us-east-1", "endpoint_url": "http://127.0.0.1:9"},
    )
    provider = provider_from_settings(settings)
    try:
        assert provider.node_port_range == (31000, 31999)  # type: ignore[attr-defined]
    finally:
        await provider.close()
