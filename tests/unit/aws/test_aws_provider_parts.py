"""The AWS provider's factory and the small edge helpers that need no AWS: option checks,
the entry point, listener states, error mapping, and the inventory cache's bookkeeping."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from botocore.exceptions import ParamValidationError

from providers.aws import create, naming
from providers.aws.client import AWSError
from providers.aws.common import is_mutation, provider_errors, reason_of
from providers.aws.inventory import InventoryCache, LoadBalancerRecord
from providers.aws.loadbalancers import ListenerState
from providers.aws.plan import ListenerSpec
from providers.aws.provider import AWSProvider
from providers.base import (
    ConfigError,
    ObservesCalls,
    Provider,
    ProviderError,
    RetryAfterError,
    Sweeper,
    TransientError,
    UnsupportedError,
    load_provider,
)

# --- create -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        ({"cluster_name": ""}, "cluster_name"),
        ({"cluster_name": "-bad"}, "cluster_name"),
        ({"cluster_name": "a" * 64}, "cluster_name"),
        ({"region": "Mars"}, "region"),
        ({"endpoint_url": "127.0.0.1:5000"}, "endpoint_url"),
        ({"endpoint_url": "ftp://127.0.0.1"}, "endpoint_url"),
        ({"default_scheme": "public"}, "default_scheme"),
        ({"orphan_sweep": "yes"}, "orphan_sweep"),
        ({"node_security_group_id": "group-1"}, "node_security_group_id"),
        ({"vpc_id": "vpc-XYZ"}, "vpc_id"),
        ({"provisioning_requeue_seconds": 0}, "provisioning_requeue_seconds"),
        ({"provisioning_requeue_seconds": True}, "provisioning_requeue_seconds"),
        ({"provisioning_requeue_seconds": float("inf")}, "provisioning_requeue_seconds"),
        ({"provisioning_requeue_seconds": "15"}, "provisioning_requeue_seconds"),
        ({"node_port_range": "30000"}, "node_port_range"),
        ({"node_port_range": "32767-30000"}, "node_port_range"),
        ({"node_port_range": "0-100"}, "node_port_range"),
        ({"node_port_range": 30000}, "node_port_range"),
    ],
)
def test_create_names_the_bad_option(options: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError) as raised:
        create(**{"region": "us-east-1", **options})
    assert raised.value.setting == setting
    assert str(raised.value).startswith(f"{setting}: ")


def test_create_default_scheme_message() -> None:
    with pytest.raises(ConfigError, match="must be internet-facing or internal, got 'x'"):
        create(region="us-east-1", default_scheme="x")


def test_no_region_anywhere_names_the_region_option(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(ConfigError) as raised:
        create()
    assert raised.value.setting == "region"


async def test_the_entry_point_builds_the_provider() -> None:
    provider = load_provider(
        "aws",
        shared={"cluster_name": "blue"},
        region="eu-west-1",
        endpoint_url="http://127.0.0.1:1",
        default_scheme="internal",
        node_security_group_id="sg-0123456789abcdef0",
        vpc_id="vpc-0123456789abcdef0",
        provisioning_requeue_seconds=3,
        node_port_range="20000-22767",
    )
    try:
        assert isinstance(provider, AWSProvider)
        assert isinstance(provider, Provider | Sweeper | ObservesCalls)
        assert isinstance(provider, Sweeper) and isinstance(provider, ObservesCalls)
        assert (provider.name, provider.load_balancer_class) == ("aws", "lbctl.io/aws-nlb")
        assert (provider.cluster_name, provider.default_scheme) == ("blue", "internal")
        assert provider.client.region == "eu-west-1"
        assert provider.provisioning_requeue_seconds == 3.0
        assert provider.node_port_range == (20000, 22767)
        caps = provider.capabilities
        assert caps.protocols == {"TCP", "UDP"}
        assert (caps.ip_mode, caps.hostname, caps.tcp_udp_same_port) == (None, True, True)
    finally:
        await provider.close()


def test_importing_the_package_does_not_import_boto3() -> None:
    code = (
        "import sys, providers.aws; print('boto3' in sys.modules, callable(providers.aws.create))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["False", "True"]


# --- helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "mutation"),
    [
        ("describe_load_balancers", False),
        ("DescribeTargetHealth", False),
        ("get_paginator_model", False),
        ("create_listener", True),
        ("add_tags", True),
        ("authorize_security_group_ingress", True),
        ("update_security_group_rule_descriptions_ingress", True),
    ],
)
def test_is_mutation(operation: str, mutation: bool) -> None:
    assert is_mutation(operation) is mutation


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("CertificateNotFound", "CertificateNotFound"),
        ("InvalidAllocationID.NotFound", "InvalidAllocationIDNotFound"),
        ("5xx", "AWSError"),
    ],
)
def test_reason_of(code: str, reason: str) -> None:
    assert reason_of(code) == reason
    UnsupportedError(reason, "a valid condition reason")


@pytest.mark.parametrize(
    ("raised", "expected", "reason", "unexpected"),
    [
        (AWSError("CertificateNotFound", "no", "create_listener", 400), UnsupportedError,
         "CertificateNotFound", True),
        (AWSError("DuplicateTargetGroupName", "taken", "create_target_group", 400),
         UnsupportedError, "NameConflict", True),
        (AWSError("InternalFailure", "boom", "create_listener", 400), TransientError, None, True),
        (ParamValidationError(report="bad"), TransientError, None, True),
        (ConfigError("vpc_id", "several"), UnsupportedError, "VPCNotFound", True),
        (ConfigError("aws_credentials", "none"), ConfigError, None, True),
        (RetryAfterError(5), RetryAfterError, None, False),
        (TransientError("throttled"), TransientError, None, False),
    ],
)  # fmt: skip
def test_provider_errors(
    raised: Exception, expected: type[ProviderError], reason: str | None, unexpected: bool
) -> None:
    failures: list[bool] = []
    with pytest.raises(expected) as info, provider_errors("ensure ns/web", failures.append):
        raise raised
    assert failures == [unexpected]
    if reason is not None:
        assert isinstance(info.value, UnsupportedError)
        assert info.value.reason == reason
        assert info.value.message.startswith("ensure ns/web: ")


def test_provider_errors_lets_success_through() -> None:
    failures: list[bool] = []
    with provider_errors("get", failures.append):
        pass
    assert failures == []


TG = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/tg/1"
CERT = "arn:aws:acm:us-east-1:1:certificate/c"


def test_listener_state_ignores_tls_fields_of_other_protocols() -> None:
    """moto reports an SslPolicy (and old certificates) on TCP listeners."""
    item = {
        "Port": 80,
        "Protocol": "TCP",
        "SslPolicy": "ELBSecurityPolicy-2016-08",
        "Certificates": [{"CertificateArn": CERT}],
        "DefaultActions": [{"Type": "forward", "TargetGroupArn": TG}],
    }
    assert ListenerState.from_aws(item) == ListenerState(80, "TCP", TG)
    assert ListenerState.wanted(ListenerSpec(80, "TCP", "80/TCP"), TG) == ListenerState(
        80, "TCP", TG
    )


def test_listener_state_of_tls_and_forward_config() -> None:
    item = {
        "Port": 443,
        "Protocol": "TLS",
        "SslPolicy": "P",
        "Certificates": [{"CertificateArn": CERT}],
        "DefaultActions": [
            {"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": TG}]}}
        ],
    }
    spec = ListenerSpec(443, "TLS", "443/TCP", (CERT, "arn:other"), "P")
    assert ListenerState.from_aws(item) == ListenerState(443, "TLS", TG, CERT, "P")
    assert ListenerState.wanted(spec, TG) == ListenerState.from_aws(item)


# --- inventory cache --------------------------------------------------------------


def _lb(name: str, uid: str, cluster: str = "blue") -> tuple[dict[str, Any], dict[str, str]]:
    arn = f"arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/net/{name}/1"
    item = {
        "LoadBalancerArn": arn,
        "LoadBalancerName": name,
        "Type": "network",
        "State": {"Code": "active"},
        "AvailabilityZones": [{"SubnetId": "subnet-2"}, {"SubnetId": "subnet-1"}],
    }
    tags = {naming.TAG_CLUSTER: cluster, naming.TAG_SERVICE_UID: uid} if cluster else {}
    return item, tags


class FakeELB:
    """Just enough of AWSClient for a scan; ``gate`` holds scans until set."""

    def __init__(self, *lbs: tuple[dict[str, Any], dict[str, str]]) -> None:
        self.lbs = list(lbs)
        self.gate = asyncio.Event()
        self.gate.set()
        self.scans = 0
        self.tag_calls: list[int] = []

    async def paginate(self, service: str, operation: str, key: str, **_: Any) -> list[Any]:
        if operation == "describe_load_balancers":
            self.scans += 1
            await self.gate.wait()
            return [item for item, _ in self.lbs]
        return []

    async def call(self, service: str, operation: str, **kwargs: Any) -> dict[str, Any]:
        assert operation == "describe_tags"
        arns = kwargs["ResourceArns"]
        self.tag_calls.append(len(arns))
        tags = {item["LoadBalancerArn"]: t for item, t in self.lbs}
        return {
            "TagDescriptions": [
                {"ResourceArn": a, "Tags": [{"Key": k, "Value": v} for k, v in tags[a].items()]}
                for a in arns
            ]
        }


async def test_a_scan_keeps_only_this_clusters_resources_and_batches_tags() -> None:
    owned = [_lb(f"lb-{i}", f"uid-{i}") for i in range(25)]
    fake = FakeELB(*owned, _lb("other", "uid-x", cluster="green"), _lb("bare", "uid-y", ""))
    cache = InventoryCache(fake, "blue")  # type: ignore[arg-type]
    inventory = await cache.get()
    assert sorted(fake.tag_calls) == [7, 20]
    assert inventory.uids() == {f"uid-{i}" for i in range(25)}
    (record,) = inventory.load_balancers_of("uid-3")
    assert (record.name, record.subnet_ids, record.state) == (
        "lb-3",
        ("subnet-1", "subnet-2"),
        "active",
    )


async def test_the_inventory_is_reused_until_it_is_old_or_a_fresh_one_is_asked() -> None:
    now = [0.0]
    fake = FakeELB(_lb("a", "uid-a"))
    cache = InventoryCache(fake, "blue", max_age=30, clock=lambda: now[0])  # type: ignore[arg-type]
    await cache.get()
    now[0] = 29.0
    await cache.get()
    assert fake.scans == 1
    await cache.get(fresh=True)
    assert fake.scans == 2
    now[0] = 60.0
    await cache.get()
    assert fake.scans == 3
    cache.invalidate()
    await cache.get()
    assert fake.scans == 4


async def test_changes_made_during_a_scan_are_not_lost() -> None:
    """A load balancer created (or deleted) while a scan is listing must be in (or out
    of) that scan's result, whichever order AWS answered in."""
    fake = FakeELB(_lb("old", "uid-old"))
    cache = InventoryCache(fake, "blue")  # type: ignore[arg-type]
    await cache.get()
    fake.gate.clear()
    scanning = asyncio.create_task(cache.get(fresh=True))
    for _ in range(1000):  # let the scan start listing (no time involved)
        if fake.scans == 2:
            break
        await asyncio.sleep(0)
    assert fake.scans == 2
    item, tags = _lb("new", "uid-new")
    cache.put_load_balancer(LoadBalancerRecord.from_aws(item, tags))
    cache.drop_load_balancer(_lb("old", "uid-old")[0]["LoadBalancerArn"])
    fake.gate.set()
    inventory = await scanning
    assert [r.name for r in inventory.load_balancers_of("uid-new")] == ["new"]
    assert inventory.load_balancers_of("uid-old") == ()
