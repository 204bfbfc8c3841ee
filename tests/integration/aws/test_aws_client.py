"""AWSClient against a moto server: calls, pagination, the event loop never blocking,
retries (faults injected with botocore before-call hooks), errors and rate limits."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from providers.aws.client import AWSClient, AWSError
from providers.aws.ratelimit import CallClass
from providers.base import ConfigError, TransientError

MakeClient = Callable[..., AWSClient]


def inject(
    client: AWSClient,
    service: str,
    api_operation: str,
    hook: Callable[[], tuple[int, str] | None],
) -> None:
    """Run ``hook`` before each ``api_operation`` request; if it returns ``(status,
    code)`` the request is not sent and botocore sees that error response instead."""
    boto = client.boto_client(service)  # type: ignore[arg-type]
    service_id = boto.meta.service_model.service_id.hyphenize()

    def before_call(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        fault = hook()
        if fault is None:
            return None
        status, code = fault
        parsed = {
            "Error": {"Code": code, "Message": f"injected {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return AWSResponse("http://127.0.0.1/", status, {}, None), parsed

    boto.meta.events.register(f"before-call.{service_id}.{api_operation}", before_call)


def fail_first(n: int, status: int, code: str) -> Callable[[], tuple[int, str] | None]:
    left = [n]

    def hook() -> tuple[int, str] | None:
        if left[0] > 0:
            left[0] -= 1
            return status, code
        return None

    return hook


async def network(client: AWSClient) -> tuple[str, list[str]]:
    """A VPC with two subnets in two AZs (an NLB needs two)."""
    vpc = (await client.call("ec2", "create_vpc", CidrBlock="10.0.0.0/16"))["Vpc"]["VpcId"]
    subnets = []
    for i, az in enumerate(("us-east-1a", "us-east-1b")):
        subnet = await client.call(
            "ec2", "create_subnet", VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=az
        )
        subnets.append(subnet["Subnet"]["SubnetId"])
    return vpc, subnets


# --- plain calls and pagination ---------------------------------------------------


async def test_create_and_describe_target_group(make_client: MakeClient) -> None:
    client = make_client()
    vpc, _ = await network(client)
    created = await client.call(
        "elbv2",
        "create_target_group",
        Name="k8s-default-web-0123456789",
        Protocol="TCP_UDP",
        Port=30053,
        VpcId=vpc,
        TargetType="instance",
        Tags=[{"Key": "lbctl.io/cluster", "Value": "c1"}],
    )
    arn = created["TargetGroups"][0]["TargetGroupArn"]
    assert "ResponseMetadata" not in created

    described = await client.call("elbv2", "describe_target_groups", TargetGroupArns=[arn])
    (group,) = described["TargetGroups"]
    assert (group["TargetGroupName"], group["Protocol"], group["Port"], group["VpcId"]) == (
        "k8s-default-web-0123456789",
        "TCP_UDP",
        30053,
        vpc,
    )
    assert client.calls[("describe_target_groups", "success")] == 1
    assert client.calls[("create_target_group", "success")] == 1


async def test_api_names_work_as_operations(make_client: MakeClient) -> None:
    client = make_client()
    result = await client.call("ec2", "DescribeAvailabilityZones")
    assert {z["ZoneName"] for z in result["AvailabilityZones"]} >= {"us-east-1a", "us-east-1b"}
    assert client.calls == Counter({("DescribeAvailabilityZones", "success"): 1})


async def test_paginate_follows_markers(make_client: MakeClient) -> None:
    client = make_client()
    _, subnets = await network(client)
    names = [f"lb-{i}" for i in range(5)]
    for name in names:
        await client.call(
            "elbv2", "create_load_balancer", Name=name, Type="network", Subnets=subnets
        )

    found = await client.paginate("elbv2", "describe_load_balancers", "LoadBalancers", PageSize=2)

    assert sorted(lb["LoadBalancerName"] for lb in found) == names
    assert client.calls[("describe_load_balancers", "success")] == 3  # pages of 2, 2, 1


async def test_paginate_target_groups_and_describe_tags_in_batches_of_20(
    make_client: MakeClient,
) -> None:
    client = make_client()
    vpc, _ = await network(client)
    arns = []
    for i in range(20):
        created = await client.call(
            "elbv2",
            "create_target_group",
            Name=f"tg-{i}",
            Protocol="TCP",
            Port=30000 + i,
            VpcId=vpc,
            Tags=[{"Key": "lbctl.io/port", "Value": f"{80 + i}/TCP"}],
        )
        arns.append(created["TargetGroups"][0]["TargetGroupArn"])

    groups = await client.paginate(
        "elbv2", "describe_target_groups", "TargetGroups", PageSize=3
    )  # moto ignores PageSize here and answers in one page
    assert sorted(g["TargetGroupArn"] for g in groups) == sorted(arns)

    tags = await client.paginate("elbv2", "describe_tags", "TagDescriptions", ResourceArns=arns)
    by_arn = {d["ResourceArn"]: {t["Key"]: t["Value"] for t in d["Tags"]} for d in tags}
    assert by_arn == {arn: {"lbctl.io/port": f"{80 + i}/TCP"} for i, arn in enumerate(arns)}
    assert client.calls[("describe_tags", "success")] == 1  # not pageable: one call


# --- the event loop keeps running ---------------------------------------------------


async def test_calls_never_block_the_event_loop(make_client: MakeClient) -> None:
    client = make_client()
    entered = threading.Event()
    release = threading.Event()
    released: list[bool] = []

    def hold() -> None:
        entered.set()
        released.append(release.wait(timeout=10))  # False if the loop never ran the ticker

    inject(client, "ec2", "DescribeVpcs", hold)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while not release.is_set():
            if entered.is_set():  # the boto3 call is in progress in its thread
                ticks += 1
                if ticks >= 20:
                    release.set()
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    result = await client.call("ec2", "describe_vpcs")
    await asyncio.wait_for(ticking, timeout=10)

    assert released == [True]
    assert ticks >= 20
    assert "Vpcs" in result


async def test_calls_run_in_parallel_threads(make_client: MakeClient) -> None:
    client = make_client(max_threads=4)
    barrier = threading.Barrier(3, timeout=10)
    met: list[int] = []

    def meet() -> None:
        met.append(barrier.wait())  # raises BrokenBarrierError unless all 3 are in flight

    inject(client, "ec2", "DescribeVpcs", meet)
    await asyncio.gather(*(client.call("ec2", "describe_vpcs") for _ in range(3)))
    assert sorted(met) == [0, 1, 2]


# --- retries and errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (400, "Throttling", "throttled"),
        (400, "ThrottlingException", "throttled"),
        (503, "RequestLimitExceeded", "throttled"),
        (429, "TooManyRequestsException", "throttled"),
        (503, "SlowDown", "throttled"),
        (500, "InternalFailure", "InternalFailure"),
        (503, "ServiceUnavailable", "ServiceUnavailable"),
    ],
)
async def test_retryable_errors_are_retried(
    make_client: MakeClient, status: int, code: str, outcome: str
) -> None:
    seen: list[tuple[str, str]] = []
    client = make_client(max_attempts=5, on_call=lambda op, out: seen.append((op, out)))
    inject(client, "elbv2", "DescribeLoadBalancers", fail_first(3, status, code))

    result = await client.call("elbv2", "describe_load_balancers")

    assert result["LoadBalancers"] == []
    op = "describe_load_balancers"
    assert seen == [(op, outcome)] * 3 + [(op, "success")]
    assert client.calls == Counter({(op, outcome): 3, (op, "success"): 1})


async def test_exhausted_retries_raise_transient_error(make_client: MakeClient) -> None:
    client = make_client(max_attempts=3)
    inject(client, "elbv2", "DescribeTargetHealth", fail_first(10, 400, "Throttling"))

    with pytest.raises(TransientError) as raised:
        await client.call("elbv2", "describe_target_health", TargetGroupArn="arn:x")

    assert "describe_target_health" in str(raised.value)
    assert "Throttling" in str(raised.value)
    assert client.calls == Counter({("describe_target_health", "throttled"): 3})


async def test_non_retryable_error_raises_at_once(make_client: MakeClient) -> None:
    client = make_client(max_attempts=5)

    with pytest.raises(AWSError) as raised:
        await client.call("elbv2", "describe_load_balancers", Names=["missing"])

    error = raised.value
    assert (error.code, error.operation, error.status) == (
        "LoadBalancerNotFound",
        "describe_load_balancers",
        400,
    )
    assert error.message
    assert client.calls == Counter({("describe_load_balancers", "LoadBalancerNotFound"): 1})


LISTENER = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/net/x/1/2"


@pytest.mark.parametrize(
    ("service", "operation", "kwargs", "code"),
    [
        ("elbv2", "describe_target_groups", {"Names": ["nope"]}, "TargetGroupNotFound"),
        ("elbv2", "delete_listener", {"ListenerArn": LISTENER}, "ListenerNotFound"),
        ("ec2", "describe_subnets", {"SubnetIds": ["subnet-123456"]}, "InvalidSubnetID.NotFound"),
    ],
)
async def test_not_found_codes(
    make_client: MakeClient, service: str, operation: str, kwargs: dict[str, Any], code: str
) -> None:
    client = make_client()
    with pytest.raises(AWSError) as raised:
        await client.call(service, operation, **kwargs)  # type: ignore[arg-type]
    assert raised.value.code == code
    assert client.calls == Counter({(operation, code): 1})


async def test_connection_errors_are_retried_then_transient(
    boto_session: Any, make_client: MakeClient
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_client(
        endpoint_url=f"http://127.0.0.1:{port}", max_attempts=2, connect_timeout=1.0
    )

    with pytest.raises(TransientError) as raised:
        await client.call("elbv2", "describe_load_balancers")

    assert "EndpointConnectionError" in str(raised.value)
    assert client.calls == Counter({("describe_load_balancers", "EndpointConnectionError"): 2})


# --- configuration --------------------------------------------------------------------


def test_no_region_anywhere_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import boto3

    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")

    with pytest.raises(ConfigError) as raised:
        AWSClient(region=None, endpoint_url=None, session=session)
    assert raised.value.setting == "aws_region"


async def test_no_credentials_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, make_client: MakeClient
) -> None:
    import boto3

    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask an instance service
    client = make_client(session=boto3.Session(region_name="us-east-1"))

    with pytest.raises(ConfigError) as raised:
        await client.call("elbv2", "describe_load_balancers")
    assert raised.value.setting == "aws_credentials"


async def test_region_comes_from_the_session(make_client: MakeClient) -> None:
    client = make_client(region=None)
    assert client.region == "us-east-1"
    assert client.boto_client("elbv2").meta.region_name == "us-east-1"


async def test_botocore_does_not_retry_by_itself(make_client: MakeClient) -> None:
    client = make_client()
    config = client.boto_client("elbv2").meta.config
    assert config.retries["total_max_attempts"] == 1


async def test_closed_client_refuses_calls(make_client: MakeClient) -> None:
    client = make_client()
    await client.call("ec2", "describe_vpcs")
    await client.close()
    with pytest.raises(RuntimeError, match="closed"):
        await client.call("ec2", "describe_vpcs")


# --- token buckets --------------------------------------------------------------------


async def test_token_bucket_spaces_register_calls(make_client: MakeClient) -> None:
    client = make_client(limits={CallClass.REGISTER: (2.0, 2)})
    vpc, _ = await network(client)
    created = await client.call(
        "elbv2", "create_target_group", Name="tg", Protocol="TCP", Port=30000, VpcId=vpc
    )
    arn = created["TargetGroups"][0]["TargetGroupArn"]

    start = time.monotonic()
    await asyncio.gather(
        *(
            client.call(
                "elbv2",
                "register_targets",
                TargetGroupArn=arn,
                Targets=[{"Id": f"i-{n:017x}", "Port": 30000}],
            )
            for n in range(5)
        )
    )
    elapsed = time.monotonic() - start

    # burst 2 goes at once; the other three wait 0.5, 1.0 and 1.5 s (2 per second)
    waited = client.limiter_wait
    assert waited["register_targets"] == pytest.approx(3.0, abs=0.2)
    assert elapsed >= 1.4
    assert set(waited) == {"register_targets"}  # other classes have their own buckets
    assert client.calls[("register_targets", "success")] == 5
    health = await client.call("elbv2", "describe_target_health", TargetGroupArn=arn)
    assert len(health["TargetHealthDescriptions"]) == 5
