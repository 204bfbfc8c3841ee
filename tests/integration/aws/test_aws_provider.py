"""AWSProvider against the moto server: the conformance suite, creation, idle resyncs,
replacements, annotations, security groups, ownership, delete, sweep, subnets and
throttling."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse

from lbctl.domain.service import ObjectMeta, Service, ServicePort, ServiceSpec
from providers import conformance
from providers.aws import naming
from providers.aws.annotations import key
from providers.aws.common import is_mutation
from providers.aws.localaws import DUMMY_CREDENTIALS, LocalAWS, seed
from providers.aws.provider import AWSProvider
from providers.aws.ratelimit import CallClass
from providers.base import (
    EndpointInfo,
    EndpointPort,
    LoadBalancerRequest,
    LoadBalancerStatus,
    NodeInfo,
    RetryAfterError,
    TransientError,
    UnsupportedError,
)

CLUSTER = "blue"
REGION = "us-east-1"
MakeProvider = Callable[..., AWSProvider]


# --- fixtures and helpers ---------------------------------------------------------


@pytest.fixture(scope="module")
def botocore_session() -> Any:
    """One botocore session for the module: service models load once (~0.2 s a client
    otherwise). Tests run one at a time, so clients are never created concurrently."""
    return botocore.session.get_session()


@pytest.fixture
def boto_session(botocore_session: Any) -> Any:
    return boto3.Session(region_name=REGION, botocore_session=botocore_session, **DUMMY_CREDENTIALS)


@pytest.fixture
def local(moto_url: str) -> LocalAWS:
    return seed(moto_url, region=REGION, cluster_id=CLUSTER, nodes=3)


@pytest.fixture
def elbv2(moto_url: str, boto_session: Any) -> Any:
    return boto_session.client("elbv2", endpoint_url=moto_url)


@pytest.fixture
def ec2(moto_url: str, boto_session: Any) -> Any:
    return boto_session.client("ec2", endpoint_url=moto_url)


@pytest.fixture
async def make_provider(
    moto_url: str, boto_session: Any, local: LocalAWS
) -> AsyncIterator[MakeProvider]:
    """``make_provider(**options)``: an AWSProvider on the seeded moto server (a new one
    is a new process: no memory, no caches)."""
    made: list[AWSProvider] = []

    def make(**options: Any) -> AWSProvider:
        options.setdefault("cluster_name", CLUSTER)
        options.setdefault("region", REGION)
        options.setdefault("endpoint_url", moto_url)
        options.setdefault("session", boto_session)
        options.setdefault("client_options", {"max_backoff": 0.01})
        provider = AWSProvider(**options)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.close()


def service(
    name: str = "web",
    ports: Sequence[ServicePort] = (ServicePort(port=80, protocol="TCP", node_port=30080),),
    annotations: Mapping[str, str] | None = None,
    *,
    local_traffic: bool = False,
    uid: str | None = None,
) -> Service:
    return Service(
        metadata=ObjectMeta(
            name=name,
            namespace="shop",
            uid=uid or f"uid-{name}",
            annotations=dict(annotations or {}),
        ),
        spec=ServiceSpec(
            type="LoadBalancer",
            ports=tuple(ports),
            external_traffic_policy="Local" if local_traffic else "Cluster",
            health_check_node_port=32100 if local_traffic else 0,
            load_balancer_class="lbctl.io/aws-nlb",
        ),
    )


def nodes_of(local: LocalAWS, count: int | None = None) -> tuple[NodeInfo, ...]:
    return tuple(
        NodeInfo(n.name, n.provider_id, (("InternalIP", n.internal_ip),))
        for n in local.nodes[:count]
    )


def request(
    svc: Service, local: LocalAWS, nodes: int | None = None, **extra: Any
) -> LoadBalancerRequest:
    return LoadBalancerRequest(
        service=svc, ports=svc.spec.ports, nodes=nodes_of(local, nodes), **extra
    )


def instance_ids(local: LocalAWS, count: int | None = None) -> set[str]:
    return {n.provider_id.rsplit("/", 1)[1] for n in local.nodes[:count]}


async def until_active(provider: AWSProvider, req: LoadBalancerRequest) -> LoadBalancerStatus:
    for _ in range(5):
        status = await provider.ensure(req)
        if not status.provisioning:
            return status
    raise AssertionError("still provisioning after 5 ensure calls")


def tags(elbv2: Any, arn: str) -> dict[str, str]:
    (described,) = elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"]
    return {t["Key"]: t["Value"] for t in described["Tags"]}


def owned_lbs(elbv2: Any, uid: str) -> list[dict[str, Any]]:
    return [
        lb
        for lb in elbv2.describe_load_balancers()["LoadBalancers"]
        if tags(elbv2, lb["LoadBalancerArn"]).get(naming.TAG_SERVICE_UID) == uid
    ]


def owned_tgs(elbv2: Any, uid: str) -> list[dict[str, Any]]:
    return [
        tg
        for tg in elbv2.describe_target_groups()["TargetGroups"]
        if tags(elbv2, tg["TargetGroupArn"]).get(naming.TAG_SERVICE_UID) == uid
    ]


def listeners(elbv2: Any, lb_arn: str) -> dict[int, dict[str, Any]]:
    found = elbv2.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]
    return {listener["Port"]: listener for listener in found}


RuleRow = tuple[str, int, int, str, str]


def permissions_of(sg: Mapping[str, Any]) -> set[RuleRow]:
    """A described group's ingress rules as (protocol, from, to, source, description);
    the source is a CIDR or a group id."""
    out = set()
    for perm in sg["IpPermissions"]:
        sources = [
            *((r["CidrIp"], r) for r in perm.get("IpRanges", [])),
            *((r["CidrIpv6"], r) for r in perm.get("Ipv6Ranges", [])),
            *((r["GroupId"], r) for r in perm.get("UserIdGroupPairs", [])),
        ]
        for source, r in sources:
            desc = r.get("Description", "")
            ports = perm.get("FromPort", -1), perm.get("ToPort", -1)  # none: all traffic
            out.add((perm["IpProtocol"], *ports, source, desc))
    return out


def rules_of(ec2: Any, group: str, uid: str | None = None) -> set[RuleRow]:
    """The group's lbctl rules (of the Service ``uid`` only, if given)."""
    (sg,) = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]
    return {
        r
        for r in permissions_of(sg)
        if r[4].startswith("lbctl:") and (uid is None or f":{uid}:" in r[4])
    }


def groups_in(ec2: Any, local: LocalAWS) -> list[dict[str, Any]]:
    """Every security group of the cluster's VPC."""
    filters = [{"Name": "vpc-id", "Values": [local.vpc_id]}]
    return list(ec2.describe_security_groups(Filters=filters)["SecurityGroups"])


def sg_tags(sg: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in sg.get("Tags", [])}


def frontends(ec2: Any, local: LocalAWS, uid: str | None = None) -> list[dict[str, Any]]:
    """The frontend security groups (of the Service ``uid``), found by their tags."""
    return [
        sg
        for sg in groups_in(ec2, local)
        if sg_tags(sg).get(naming.TAG_RESOURCE) == "securitygroup"
        and sg_tags(sg).get(naming.TAG_CLUSTER) == CLUSTER
        and (uid is None or sg_tags(sg).get(naming.TAG_SERVICE_UID) == uid)
    ]


def backend_id(ec2: Any, local: LocalAWS, cluster: str = CLUSTER) -> str:
    """The cluster's backend security group (exactly one)."""
    (sg,) = [
        sg
        for sg in groups_in(ec2, local)
        if sg_tags(sg).get(naming.TAG_RESOURCE) == "backend-securitygroup"
        and sg_tags(sg).get(naming.TAG_CLUSTER) == cluster
    ]
    return str(sg["GroupId"])


def cluster_rules(ec2: Any, local: LocalAWS, cluster: str = CLUSTER) -> set[RuleRow]:
    """The two rules every Service shares in the node group."""
    backend, desc = backend_id(ec2, local, cluster), naming.cluster_rule_description(cluster)
    return {("tcp", 30000, 32767, backend, desc), ("udp", 30000, 32767, backend, desc)}


def calls_since(provider: AWSProvider, before: Counter[tuple[str, str]]) -> tuple[int, int]:
    """(describes, mutations) attempted since ``before`` (a ``client.calls`` copy)."""
    diff = provider.client.calls - before
    mutations = sum(n for (op, _), n in diff.items() if is_mutation(op))
    return sum(diff.values()) - mutations, mutations


def inject(
    provider: AWSProvider, service: str, api_operation: str, faults: list[tuple[int, str]]
) -> None:
    """Answer the next ``len(faults)`` ``api_operation`` requests with these errors
    instead of sending them (a botocore before-call hook)."""
    boto = provider.client.boto_client(service)  # type: ignore[arg-type]
    service_id = boto.meta.service_model.service_id.hyphenize()

    def before_call(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if not faults:
            return None
        status, code = faults.pop(0)
        parsed = {
            "Error": {"Code": code, "Message": f"injected {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return AWSResponse("http://127.0.0.1/", status, {}, None), parsed

    boto.meta.events.register(f"before-call.{service_id}.{api_operation}", before_call)


MIXED_PORTS = (
    ServicePort(name="http", port=80, protocol="TCP", node_port=30080),
    ServicePort(name="dns-tcp", port=53, protocol="TCP", node_port=30053),
    ServicePort(name="dns-udp", port=53, protocol="UDP", node_port=30053),
    ServicePort(name="https", port=443, protocol="TCP", node_port=30443),
)
SYSLOG = ServicePort(name="syslog", port=514, protocol="UDP", node_port=30514)
"""A UDP-only port: health-checked on kube-proxy's 10256, a node rule of the Service."""


# --- conformance ------------------------------------------------------------------


def build_with_node_ports(
    *, name: str, ports: Sequence[ServicePort], load_balancer_class: str
) -> Service:
    """conformance.build_service, giving every port without one a nodePort."""
    numbered = tuple(
        p if p.node_port else ServicePort(p.port, p.protocol, p.name, p.target_port, 31000 + i)
        for i, p in enumerate(ports)
    )
    return conformance.build_service(
        name=name, ports=numbered, load_balancer_class=load_balancer_class
    )


@pytest.mark.parametrize("check", conformance.CHECKS, ids=conformance.check_id)
async def test_conformance(
    check: conformance.Check, make_provider: MakeProvider, local: LocalAWS
) -> None:
    def factory() -> AWSProvider:
        return make_provider(vpc_id=local.vpc_id, node_security_group_id=local.node_security_group)

    await check(factory, build_with_node_ports)


# --- create -----------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["internet-facing", "internal"])
async def test_create(
    scheme: str, make_provider: MakeProvider, local: LocalAWS, elbv2: Any, ec2: Any
) -> None:
    provider = make_provider()
    svc = service(
        ports=MIXED_PORTS,
        annotations={
            key("scheme"): scheme,
            key("ssl-cert"): local.certificate_arn,
            key("ssl-ports"): "https",
        },
    )
    first = await provider.ensure(request(svc, local))

    (lb,) = owned_lbs(elbv2, svc.metadata.uid)
    assert (lb["Type"], lb["Scheme"]) == ("network", scheme)
    subnets = local.public_subnets if scheme == "internet-facing" else local.private_subnets
    assert {z["SubnetId"] for z in lb["AvailabilityZones"]} == set(subnets)
    assert first.provisioning and first.requeue_after == 15.0
    assert [p.hostname for p in first.ingress] == [lb["DNSName"].lower()]
    assert tags(elbv2, lb["LoadBalancerArn"]) == {
        naming.TAG_CLUSTER: CLUSTER,
        naming.cluster_tag_key(CLUSTER): "owned",
        naming.TAG_SERVICE: "shop/web",
        naming.TAG_SERVICE_UID: "uid-web",
        naming.TAG_RESOURCE: "loadbalancer",
        naming.TAG_ADDITIONAL: "",
    }

    groups = {
        tags(elbv2, g["TargetGroupArn"])[naming.TAG_PORT]: g for g in owned_tgs(elbv2, "uid-web")
    }
    assert {k: (g["Protocol"], g["Port"]) for k, g in groups.items()} == {
        "53/TCP_UDP": ("TCP_UDP", 30053),
        "80/TCP": ("TCP", 30080),
        "443/TCP": ("TCP", 30443),
    }
    for port_key, group in groups.items():
        assert tags(elbv2, group["TargetGroupArn"])[naming.TAG_RESOURCE] == "targetgroup", port_key
        health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
        targets = {
            (d["Target"]["Id"], d["Target"]["Port"]) for d in health["TargetHealthDescriptions"]
        }
        assert targets == {(i, group["Port"]) for i in instance_ids(local)}

    found = listeners(elbv2, lb["LoadBalancerArn"])
    assert {p: found[p]["Protocol"] for p in found} == {53: "TCP_UDP", 80: "TCP", 443: "TLS"}
    assert found[443]["Certificates"] == [{"CertificateArn": local.certificate_arn}]
    for port, port_key in ((53, "53/TCP_UDP"), (80, "80/TCP"), (443, "443/TCP")):
        forward = found[port]["DefaultActions"][0]["TargetGroupArn"]
        assert forward == groups[port_key]["TargetGroupArn"]

    # The NLB's security groups: the Service's frontend, the cluster's backend.
    (frontend,) = frontends(ec2, local, "uid-web")
    backend = backend_id(ec2, local)
    assert sorted(lb["SecurityGroups"]) == sorted([frontend["GroupId"], backend])
    assert frontend["GroupName"] == naming.security_group_name(CLUSTER, svc)
    assert sg_tags(frontend) == {
        naming.TAG_CLUSTER: CLUSTER,
        naming.cluster_tag_key(CLUSTER): "owned",
        naming.TAG_SERVICE: "shop/web",
        naming.TAG_SERVICE_UID: "uid-web",
        naming.TAG_RESOURCE: "securitygroup",
    }
    source = "0.0.0.0/0" if scheme == "internet-facing" else "10.0.0.0/16"
    client = naming.rule_description(CLUSTER, "uid-web", "client")
    assert permissions_of(frontend) == {  # the listeners' ports (TLS: tcp)
        ("tcp", 53, 53, source, client),
        ("udp", 53, 53, source, client),
        ("tcp", 80, 80, source, client),
        ("tcp", 443, 443, source, client),
    }
    # The nodes let the backend group in over the NodePort range: nothing per Service.
    assert rules_of(ec2, local.node_security_group) == cluster_rules(ec2, local)

    second = await provider.ensure(request(svc, local))
    assert not second.provisioning and second.requeue_after is None
    assert second.ingress == first.ingress
    assert await provider.get(svc) == second


async def test_an_idle_ensure_makes_two_describes_and_no_change(
    make_provider: MakeProvider, local: LocalAWS
) -> None:
    provider = make_provider()
    svc = service(ports=MIXED_PORTS)
    req = request(svc, local)
    active = await until_active(provider, req)
    mutations = list(provider.mutations)

    before = provider.client.calls
    assert await provider.ensure(req) == active
    assert calls_since(provider, before) == (2, 0)
    assert provider.mutations == mutations

    before = provider.client.calls
    await provider.update_hosts(req)
    assert calls_since(provider, before) == (0, 0)


def by_operation(provider: AWSProvider, before: Counter[tuple[str, str]]) -> dict[str, int]:
    counted: Counter[str] = Counter()
    for (op, _), n in (provider.client.calls - before).items():
        counted[op] += n
    return dict(counted)


async def test_calls_per_operation_for_a_create_and_an_idle_resync(
    make_provider: MakeProvider, local: LocalAWS
) -> None:
    """The figures bench/aws.py prints, pinned: a rise here is a regression to explain."""
    provider = make_provider()
    ports = (
        ServicePort(name="http", port=80, protocol="TCP", node_port=30080),
        ServicePort(name="https", port=443, protocol="TCP", node_port=30443),
    )
    req = request(service(ports=ports), local)

    before = provider.client.calls
    assert (await provider.ensure(req)).provisioning
    assert by_operation(provider, before) == {
        # what exists: the VPC, subnets and their routes, nodes, the nodes' groups' tags
        "describe_instances": 1,
        "describe_vpcs": 1,
        "describe_subnets": 1,
        "describe_route_tables": 1,
        # the nodes' groups' tags (cached), the cluster's groups with their rules
        "describe_security_groups": 2,
        # ours, found by tags (none yet), then created
        "describe_load_balancers": 2,
        "describe_target_groups": 3,
        "describe_listeners": 1,
        "describe_target_health": 2,
        # frontend and backend groups; the frontend's rules, the nodes' cluster rules
        "create_security_group": 2,
        "authorize_security_group_ingress": 2,
        "create_load_balancer": 1,
        "create_target_group": 2,
        "register_targets": 2,
        "create_listener": 2,
    }

    before = provider.client.calls
    assert not (await provider.ensure(req)).provisioning
    assert by_operation(provider, before) == {"describe_load_balancers": 1, "describe_listeners": 1}

    before = provider.client.calls
    await provider.ensure(req)
    assert by_operation(provider, before) == {"describe_load_balancers": 1, "describe_listeners": 1}

    # Another Service: the backend group and the cluster rules exist; the network, the
    # nodes' groups and the inventory scan are cached (its names are looked up).
    other = request(service("api", ports=ports), local)
    before = provider.client.calls
    assert (await provider.ensure(other)).provisioning
    assert by_operation(provider, before) == {
        "describe_security_groups": 1,
        "describe_load_balancers": 1,
        "describe_target_groups": 2,
        "describe_listeners": 1,
        "describe_target_health": 2,
        "create_security_group": 1,
        "authorize_security_group_ingress": 1,
        "create_load_balancer": 1,
        "create_target_group": 2,
        "register_targets": 2,
        "create_listener": 2,
    }


async def test_a_fresh_process_converges_without_changes(
    make_provider: MakeProvider, local: LocalAWS
) -> None:
    req = request(service(ports=MIXED_PORTS), local)
    await until_active(make_provider(), req)
    fresh = make_provider()
    status = await fresh.ensure(req)
    assert not status.provisioning
    assert fresh.mutations == []


async def test_drift_is_repaired(make_provider: MakeProvider, local: LocalAWS, elbv2: Any) -> None:
    """A listener or load balancer removed by hand is seen by the idle check; a target
    removed by hand, by the periodic full reconcile."""
    now = [1000.0]
    provider = make_provider(clock=lambda: now[0], full_reconcile_seconds=600)
    req = request(service(), local)
    await until_active(provider, req)
    (lb,) = owned_lbs(elbv2, "uid-web")
    (group,) = owned_tgs(elbv2, "uid-web")

    (listener,) = listeners(elbv2, lb["LoadBalancerArn"]).values()
    elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
    await provider.ensure(req)
    assert list(listeners(elbv2, lb["LoadBalancerArn"])) == [80]

    victim = sorted(instance_ids(local))[0]
    elbv2.deregister_targets(
        TargetGroupArn=group["TargetGroupArn"], Targets=[{"Id": victim, "Port": 30080}]
    )
    before = provider.client.calls
    await provider.ensure(req)
    assert calls_since(provider, before) == (2, 0), "the idle check cannot see targets"
    now[0] += 600
    await provider.ensure(req)
    health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
    assert {d["Target"]["Id"] for d in health["TargetHealthDescriptions"]} == instance_ids(local)

    for item in listeners(elbv2, lb["LoadBalancerArn"]).values():
        elbv2.delete_listener(ListenerArn=item["ListenerArn"])
    elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    status = await provider.ensure(req)
    (recreated,) = owned_lbs(elbv2, "uid-web")
    assert recreated["LoadBalancerArn"] != lb["LoadBalancerArn"]
    assert status.provisioning
    assert list(listeners(elbv2, recreated["LoadBalancerArn"])) == [80]


@pytest.mark.parametrize("method", ["ensure", "update_hosts"])
async def test_one_node_fewer_is_one_deregister(
    method: str, make_provider: MakeProvider, local: LocalAWS, elbv2: Any
) -> None:
    provider = make_provider()
    svc = service()
    await until_active(provider, request(svc, local))
    mutations = len(provider.mutations)

    await getattr(provider, method)(request(svc, local, nodes=2))

    assert provider.mutations[mutations:] == [("deregister_targets", "success")]
    (group,) = owned_tgs(elbv2, "uid-web")
    health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
    assert {d["Target"]["Id"] for d in health["TargetHealthDescriptions"]} == instance_ids(local, 2)
    before = provider.client.calls
    assert not (await provider.ensure(request(svc, local, nodes=2))).provisioning
    assert calls_since(provider, before) == (2, 0)


async def test_update_hosts_leaves_an_absent_load_balancer_absent(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any
) -> None:
    provider = make_provider()
    await provider.update_hosts(request(service(), local))
    assert provider.mutations == []
    assert owned_lbs(elbv2, "uid-web") == []


# --- replacements -----------------------------------------------------------------


@pytest.mark.parametrize(
    "ports",
    [
        (ServicePort(port=80, protocol="TCP", node_port=30080),),
        (
            ServicePort(name="a", port=53, protocol="TCP", node_port=30053),
            ServicePort(name="b", port=53, protocol="UDP", node_port=30053),
        ),
    ],
    ids=["tcp", "tcp_udp"],
)
async def test_health_check_protocol_change_replaces_the_target_group(
    ports: tuple[ServicePort, ...], make_provider: MakeProvider, local: LocalAWS, elbv2: Any
) -> None:
    provider = make_provider()
    await until_active(provider, request(service(ports=ports), local))
    (lb,) = owned_lbs(elbv2, "uid-web")
    ((port, before),) = listeners(elbv2, lb["LoadBalancerArn"]).items()
    (old,) = owned_tgs(elbv2, "uid-web")
    assert old["HealthCheckProtocol"] == "TCP"
    mark = len(provider.mutations)

    await provider.ensure(request(service(ports=ports, local_traffic=True), local))

    (new,) = owned_tgs(elbv2, "uid-web")
    assert new["TargetGroupArn"] != old["TargetGroupArn"]
    assert (new["HealthCheckProtocol"], new["HealthCheckPort"], new["HealthCheckPath"]) == (
        "HTTP",
        "32100",
        "/healthz",
    )
    after = listeners(elbv2, lb["LoadBalancerArn"])[port]
    assert after["ListenerArn"] == before["ListenerArn"], "the listener was replaced"
    assert after["DefaultActions"][0]["TargetGroupArn"] == new["TargetGroupArn"]
    ops = [op for op, _ in provider.mutations[mark:]]
    assert ops.index("create_target_group") < ops.index("modify_listener")
    assert ops.index("modify_listener") < ops.index("delete_target_group")
    assert "delete_listener" not in ops


async def test_a_listener_moto_cannot_modify_is_replaced(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any
) -> None:
    """TCP -> TLS: moto refuses ModifyListener(Protocol=TLS), so delete + create."""
    provider = make_provider()
    await until_active(provider, request(service(), local))
    (lb,) = owned_lbs(elbv2, "uid-web")
    old = listeners(elbv2, lb["LoadBalancerArn"])[80]
    mark = len(provider.mutations)

    tls = service(annotations={key("ssl-cert"): local.certificate_arn})
    await provider.ensure(request(tls, local))

    new = listeners(elbv2, lb["LoadBalancerArn"])[80]
    assert (new["Protocol"], new["Certificates"]) == (
        "TLS",
        [{"CertificateArn": local.certificate_arn}],
    )
    assert new["DefaultActions"] == old["DefaultActions"], "same target group"
    assert [op for op, _ in provider.mutations[mark:]] == [
        "modify_listener",
        "delete_listener",
        "create_listener",
    ]
    assert provider.mutations[mark][1] == "UnsupportedProtocol"
    before = provider.client.calls
    await provider.ensure(request(tls, local))
    assert calls_since(provider, before) == (2, 0)


async def test_a_scheme_change_replaces_the_load_balancer(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any
) -> None:
    provider = make_provider()
    await until_active(provider, request(service(), local))
    (old,) = owned_lbs(elbv2, "uid-web")
    (group,) = owned_tgs(elbv2, "uid-web")

    await until_active(provider, request(service(annotations={key("scheme"): "internal"}), local))

    (new,) = owned_lbs(elbv2, "uid-web")
    assert (new["Scheme"], old["Scheme"]) == ("internal", "internet-facing")
    assert new["LoadBalancerArn"] != old["LoadBalancerArn"]
    assert [g["TargetGroupArn"] for g in owned_tgs(elbv2, "uid-web")] == [group["TargetGroupArn"]]
    (listener,) = listeners(elbv2, new["LoadBalancerArn"]).values()
    assert listener["DefaultActions"][0]["TargetGroupArn"] == group["TargetGroupArn"]


# --- annotations ------------------------------------------------------------------


async def test_additional_tags_follow_the_annotation_and_spare_hand_added_ones(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any
) -> None:
    provider = make_provider()
    annotation = key("additional-resource-tags")
    await until_active(provider, request(service(annotations={annotation: "team=a,tier=1"}), local))
    (lb,) = owned_lbs(elbv2, "uid-web")
    (group,) = owned_tgs(elbv2, "uid-web")
    arns = [lb["LoadBalancerArn"], group["TargetGroupArn"]]
    elbv2.add_tags(ResourceArns=arns, Tags=[{"Key": "owner", "Value": "me"}])

    await provider.ensure(request(service(annotations={annotation: "team=b,cost=7"}), local))

    for arn in arns:
        got = tags(elbv2, arn)
        assert {k: got.get(k) for k in ("team", "tier", "cost", "owner")} == {
            "team": "b",
            "tier": None,
            "cost": "7",
            "owner": "me",
        }
        assert got[naming.TAG_SERVICE_UID] == "uid-web"


async def test_attribute_annotations_are_applied_and_undone(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any
) -> None:
    provider = make_provider()
    annotated = service(
        annotations={
            key("target-group-attributes"): "deregistration_delay.timeout_seconds=10",
            key("proxy-protocol"): "*",
            key("cross-zone-load-balancing-enabled"): "true",
        }
    )
    await until_active(provider, request(annotated, local))
    (lb,) = owned_lbs(elbv2, "uid-web")
    (group,) = owned_tgs(elbv2, "uid-web")

    def attributes() -> tuple[dict[str, str], dict[str, str]]:
        tg = elbv2.describe_target_group_attributes(TargetGroupArn=group["TargetGroupArn"])
        lbs = elbv2.describe_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"])
        return (
            {a["Key"]: a["Value"] for a in tg["Attributes"]},
            {a["Key"]: a["Value"] for a in lbs["Attributes"]},
        )

    tg_attrs, lb_attrs = attributes()
    assert tg_attrs["proxy_protocol_v2.enabled"] == "true"
    assert tg_attrs["deregistration_delay.timeout_seconds"] == "10"
    assert lb_attrs["load_balancing.cross_zone.enabled"] == "true"

    await provider.ensure(request(service(), local))

    tg_attrs, lb_attrs = attributes()
    assert tg_attrs["proxy_protocol_v2.enabled"] == "false"
    assert tg_attrs["deregistration_delay.timeout_seconds"] == "300"
    assert lb_attrs["load_balancing.cross_zone.enabled"] == "false"
    before = provider.client.calls
    await provider.ensure(request(service(), local))
    assert calls_since(provider, before) == (2, 0)


async def test_health_check_annotations_are_applied_and_changed_in_place(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any
) -> None:
    provider = make_provider()
    annotations = {
        key("healthcheck-protocol"): "HTTP",
        key("healthcheck-port"): "10254",
        key("healthcheck-path"): "/ready",
        key("healthcheck-interval"): "10",
        key("healthcheck-timeout"): "6",
        key("healthcheck-healthy-threshold"): "3",
        key("healthcheck-unhealthy-threshold"): "4",
    }
    await until_active(provider, request(service(annotations=annotations), local))

    def check() -> tuple[str, tuple[Any, ...]]:
        (group,) = owned_tgs(elbv2, "uid-web")
        return group["TargetGroupArn"], tuple(
            group[k]
            for k in (
                "HealthCheckProtocol",
                "HealthCheckPort",
                "HealthCheckPath",
                "HealthCheckIntervalSeconds",
                "HealthCheckTimeoutSeconds",
                "HealthyThresholdCount",
                "UnhealthyThresholdCount",
            )
        )

    arn, applied = check()
    assert applied == ("HTTP", "10254", "/ready", 10, 6, 3, 4)

    annotations[key("healthcheck-path")] = "/live"
    annotations[key("healthcheck-healthy-threshold")] = "5"
    mark = len(provider.mutations)
    await provider.ensure(request(service(annotations=annotations), local))
    assert check() == (arn, ("HTTP", "10254", "/live", 10, 6, 5, 4)), "modified in place"
    assert [op for op, _ in provider.mutations[mark:]] == ["modify_target_group"]


async def test_the_legacy_internal_annotation_and_named_subnets(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any
) -> None:
    provider = make_provider()
    chosen = local.private_subnets[:2]
    annotations = {key("internal"): "true", key("subnets"): ",".join(chosen)}
    await provider.ensure(request(service(annotations=annotations), local))
    (lb,) = owned_lbs(elbv2, "uid-web")
    assert lb["Scheme"] == "internal"
    assert {z["SubnetId"] for z in lb["AvailabilityZones"]} == set(chosen)


async def test_source_ranges_are_the_frontend_groups_rules(
    make_provider: MakeProvider, local: LocalAWS, ec2: Any
) -> None:
    """Source ranges (IPv6 ones too) and ports are reconciled as a minimal diff in the
    frontend group; the node group never sees them."""
    provider = make_provider()
    client = naming.rule_description(CLUSTER, "uid-web", "client")

    def with_ranges(*ranges: str, ports: Sequence[ServicePort] = MIXED_PORTS[:1]) -> Service:
        svc = service(ports=ports)
        return dataclasses.replace(
            svc, spec=dataclasses.replace(svc.spec, load_balancer_source_ranges=ranges)
        )

    def frontend_rules() -> set[RuleRow]:
        (frontend,) = frontends(ec2, local, "uid-web")
        return permissions_of(frontend)

    await provider.ensure(request(with_ranges("192.0.2.0/24", "2001:db8::/32"), local))
    assert frontend_rules() == {
        ("tcp", 80, 80, "192.0.2.0/24", client),
        ("tcp", 80, 80, "2001:db8::/32", client),
    }
    mark = len(provider.mutations)
    wider = (
        ServicePort(name="http", port=80, protocol="TCP", node_port=30080),
        ServicePort(name="alt", port=81, protocol="TCP", node_port=30081),
    )
    await provider.ensure(request(with_ranges("192.0.2.0/24", ports=wider), local))
    assert frontend_rules() == {("tcp", 80, 81, "192.0.2.0/24", client)}
    assert [op for op, _ in provider.mutations[mark:] if "security_group" in op] == [
        "authorize_security_group_ingress",
        "revoke_security_group_ingress",
    ], "one call each way for the frontend; nothing in the node group"
    await provider.ensure(request(with_ranges(ports=wider), local))  # back to 0.0.0.0/0
    assert frontend_rules() == {("tcp", 80, 81, "0.0.0.0/0", client)}
    assert rules_of(ec2, local.node_security_group) == cluster_rules(ec2, local)
    before = provider.client.calls
    await provider.ensure(request(with_ranges(ports=wider), local))
    assert calls_since(provider, before) == (2, 0)


@pytest.mark.parametrize(
    ("annotations", "reason", "mentions"),
    [
        (
            {key("healthcheck-interval"): "abc"},
            "InvalidAnnotation",
            key("healthcheck-interval"),
        ),
        ({key("subnets"): "subnet-00000000"}, "SubnetNotFound", "subnet-00000000"),
        (
            {key("eip-allocations"): "eipalloc-01"},
            "EIPAllocationCountMismatch",
            "1 EIP allocations for 3 subnets",
        ),
        (
            {key("eip-allocations"): "eipalloc-01,eipalloc-02,eipalloc-03"},
            "EIPAllocationNotFound",
            key("eip-allocations"),
        ),
        (
            {key("ssl-cert"): "arn:aws:acm:us-east-1:123456789012:certificate/nope"},
            "CertificateNotFound",
            "certificate/nope",
        ),
        ("ssl-policy", "SSLPolicyNotFound", "NoSuchPolicy"),
    ],
    ids=["annotation", "subnet", "eip-count", "eip-unknown", "certificate", "ssl-policy"],
)
async def test_bad_input_is_refused_before_any_change(
    annotations: dict[str, str] | str,
    reason: str,
    mentions: str,
    make_provider: MakeProvider,
    local: LocalAWS,
    elbv2: Any,
) -> None:
    if annotations == "ssl-policy":
        annotations = {
            key("ssl-cert"): local.certificate_arn,
            key("ssl-negotiation-policy"): "NoSuchPolicy",
        }
    assert isinstance(annotations, dict)
    provider = make_provider()
    with pytest.raises(UnsupportedError) as raised:
        await provider.ensure(request(service(annotations=annotations), local))
    assert raised.value.reason == reason
    assert mentions in raised.value.message
    assert provider.mutations == []
    assert owned_lbs(elbv2, "uid-web") == []
    if reason == "InvalidAnnotation":
        assert provider.client.calls == Counter(), "refused before any AWS call"


# --- security groups --------------------------------------------------------------


async def test_seventy_services_fit_the_node_group_quota(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any, ec2: Any
) -> None:
    """One rule per Service in the node group would hit its 60-rule quota: with the
    backend group, 70 Services (created concurrently: one backend group, two cluster
    rules) leave it with the two cluster rules; each frontend group holds its own."""
    fast = dict.fromkeys(CallClass, (1000.0, 1000))  # the token buckets are not under test
    provider = make_provider(client_options={"max_backoff": 0.01, "limits": fast})
    count = 70
    services = [
        service(f"s{i}", (ServicePort(port=80, protocol="TCP", node_port=30000 + 3 * i),))
        for i in range(count)
    ]
    statuses = await asyncio.gather(*(provider.ensure(request(s, local)) for s in services))
    assert all(st.ingress for st in statuses)
    made = Counter(op for op, outcome in provider.mutations if outcome == "success")
    assert made["create_security_group"] == count + 1  # and one backend group
    assert made["authorize_security_group_ingress"] == count + 1  # and the cluster rules
    assert {outcome for _, outcome in provider.mutations} == {"success"}, "no duplicate"
    for svc in services:
        assert not (await until_active(provider, request(svc, local))).provisioning

    assert rules_of(ec2, local.node_security_group) == cluster_rules(ec2, local)
    backend = backend_id(ec2, local)
    by_uid = {sg_tags(g)[naming.TAG_SERVICE_UID]: g for g in frontends(ec2, local)}
    assert len(by_uid) == count
    pages = elbv2.get_paginator("describe_load_balancers").paginate()
    found = [lb for page in pages for lb in page["LoadBalancers"]]
    lbs = {tags(elbv2, lb["LoadBalancerArn"])[naming.TAG_SERVICE_UID]: lb for lb in found}
    for svc in services:
        uid = svc.metadata.uid
        client = naming.rule_description(CLUSTER, uid, "client")
        assert permissions_of(by_uid[uid]) == {("tcp", 80, 80, "0.0.0.0/0", client)}
        assert sorted(lbs[uid]["SecurityGroups"]) == sorted([by_uid[uid]["GroupId"], backend])

    await asyncio.gather(*(provider.delete(s) for s in services))
    assert elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert frontends(ec2, local) == []
    assert rules_of(ec2, local.node_security_group) == cluster_rules(ec2, local)
    assert backend_id(ec2, local) == backend


async def test_a_frontend_group_still_in_use_asks_for_a_retry(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any, ec2: Any
) -> None:
    """AWS refuses to delete a group the deleted NLB's network interfaces still use
    (moto does not: injected); the finalizer stays and the next delete finishes."""
    provider = make_provider()
    svc = service(ports=(*MIXED_PORTS, SYSLOG))
    await until_active(provider, request(svc, local))
    (frontend,) = frontends(ec2, local, "uid-web")
    inject(provider, "ec2", "DeleteSecurityGroup", [(400, "DependencyViolation")] * 2)

    with pytest.raises(RetryAfterError) as raised:
        await provider.delete(svc)
    assert raised.value.seconds == 10
    assert frontend["GroupName"] in str(raised.value)
    assert owned_lbs(elbv2, "uid-web") == [] and owned_tgs(elbv2, "uid-web") == []
    assert rules_of(ec2, local.node_security_group, "uid-web") == set(), "node rules went"
    assert [g["GroupId"] for g in frontends(ec2, local, "uid-web")] == [frontend["GroupId"]]

    mark = len(provider.mutations)
    with pytest.raises(RetryAfterError):  # still in use; everything else is done
        await provider.delete(svc)
    assert provider.mutations[mark:] == [("delete_security_group", "DependencyViolation")]

    fresh = make_provider()  # a new process: the group is found again by its tags
    await fresh.delete(svc)
    assert fresh.mutations == [("delete_security_group", "success")]
    assert frontends(ec2, local) == []
    assert rules_of(ec2, local.node_security_group) == cluster_rules(ec2, local)
    assert owned_lbs(elbv2, "uid-web") == [] and owned_tgs(elbv2, "uid-web") == []


async def test_too_many_frontend_rules_is_the_services_error(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any, ec2: Any
) -> None:
    """61 source ranges exceed the frontend group's 60-rule quota: a condition the
    Service's owner can act on, not a transient fault; nothing else is created, and the
    delete removes the group."""
    svc = service()
    ranges = tuple(f"198.51.{i}.0/24" for i in range(61))
    svc = dataclasses.replace(
        svc, spec=dataclasses.replace(svc.spec, load_balancer_source_ranges=ranges)
    )
    provider = make_provider()
    with pytest.raises(UnsupportedError) as raised:
        await provider.ensure(request(svc, local))
    assert raised.value.reason == "RulesPerSecurityGroupLimitExceeded"
    assert owned_lbs(elbv2, "uid-web") == []
    await provider.delete(svc)
    assert frontends(ec2, local) == []


async def test_an_owned_group_the_describe_misses_is_adopted_and_retagged(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any, ec2: Any
) -> None:
    """The Service's frontend group without the cluster tag (removed by hand): not in
    the describe, so the create is refused as a duplicate; the group under that name has
    lbctl's tags for this Service, so it is taken, its tag put back, its rules made."""
    provider = make_provider()
    svc = service()
    await until_active(provider, request(svc, local))
    (frontend,) = frontends(ec2, local, "uid-web")
    cluster_tag = naming.cluster_tag_key(CLUSTER)
    ec2.delete_tags(Resources=[frontend["GroupId"]], Tags=[{"Key": cluster_tag}])
    ec2.revoke_security_group_ingress(
        GroupId=frontend["GroupId"], IpPermissions=frontend["IpPermissions"]
    )

    fresh = make_provider()
    await fresh.ensure(request(svc, local))

    assert fresh.mutations == [
        ("create_security_group", "InvalidGroup.Duplicate"),
        ("create_tags", "success"),
        ("authorize_security_group_ingress", "success"),
    ]
    (after,) = frontends(ec2, local, "uid-web")
    assert after["GroupId"] == frontend["GroupId"]
    assert sg_tags(after) == sg_tags(frontend)
    assert permissions_of(after) == permissions_of(frontend)
    await fresh.delete(svc)
    assert frontends(ec2, local) == []


@pytest.mark.parametrize("which", ["frontend", "backend"])
async def test_a_security_group_without_our_tags_is_never_touched(
    which: str, make_provider: MakeProvider, local: LocalAWS, elbv2: Any, ec2: Any
) -> None:
    """A group that merely has the name lbctl would give its frontend (or the cluster's
    backend) group: NameConflict before anything is created; delete and sweep leave it."""
    svc = service()
    name = (
        naming.security_group_name(CLUSTER, svc)
        if which == "frontend"
        else naming.backend_security_group_name(CLUSTER)
    )
    theirs = ec2.create_security_group(
        GroupName=name,
        Description="someone else's",
        VpcId=local.vpc_id,
        TagSpecifications=[
            {"ResourceType": "security-group", "Tags": [{"Key": "owner", "Value": "me"}]}
        ],
    )["GroupId"]
    ssh = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22}
    ec2.authorize_security_group_ingress(
        GroupId=theirs, IpPermissions=[{**ssh, "IpRanges": [{"CidrIp": "192.0.2.0/24"}]}]
    )
    before = security_groups(ec2, local)
    provider = make_provider()

    with pytest.raises(UnsupportedError) as raised:
        await provider.ensure(request(svc, local))
    assert raised.value.reason == "NameConflict"
    assert name in raised.value.message
    assert owned_lbs(elbv2, "uid-web") == []
    refused = ("create_security_group", "InvalidGroup.Duplicate")
    if which == "frontend":  # the first change; nothing was made
        assert provider.mutations == [refused]
    else:  # the Service's own group came first; the backend group is looked for by tags
        assert provider.mutations[-1] == refused
        assert "create_load_balancer" not in {op for op, _ in provider.mutations}

    await provider.delete(svc)
    assert await provider.sweep(lambda: ()) == 0
    after = security_groups(ec2, local)
    assert [g for g in after if g[0] == name] == [g for g in before if g[0] == name]
    assert frontends(ec2, local) == []


@pytest.mark.parametrize("named", ["as before", "as now"])
async def test_a_load_balancer_without_security_groups_is_replaced(
    named: str, make_provider: MakeProvider, local: LocalAWS, elbv2: Any, ec2: Any
) -> None:
    """An owned NLB made without security groups (an older lbctl) cannot get any: the
    next ensure replaces it, under the new name as a scheme change does (or, should it
    have today's name, deleting it first)."""
    svc = service()
    name = (
        "k8s-shop-web-0123456789"
        if named == "as before"
        else naming.load_balancer_name(CLUSTER, svc, "internet-facing")
    )
    ownership = naming.ownership_tags(CLUSTER, svc, naming.RESOURCE_LOAD_BALANCER)
    old = elbv2.create_load_balancer(
        Name=name,
        Type="network",
        Subnets=list(local.public_subnets),
        Tags=[{"Key": k, "Value": v} for k, v in ownership.items()],
    )["LoadBalancers"][0]
    assert not old.get("SecurityGroups")
    provider = make_provider()

    status = await until_active(provider, request(svc, local))

    (new,) = owned_lbs(elbv2, "uid-web")
    assert new["LoadBalancerArn"] != old["LoadBalancerArn"]
    assert new["LoadBalancerName"] == naming.load_balancer_name(CLUSTER, svc, "internet-facing")
    (frontend,) = frontends(ec2, local, "uid-web")
    assert sorted(new["SecurityGroups"]) == sorted([frontend["GroupId"], backend_id(ec2, local)])
    assert [p.hostname for p in status.ingress] == [new["DNSName"].lower()]
    assert list(listeners(elbv2, new["LoadBalancerArn"])) == [80]
    before = provider.client.calls
    await provider.ensure(request(svc, local))
    assert calls_since(provider, before) == (2, 0)


async def test_security_groups_changed_by_hand_are_restored(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any, ec2: Any
) -> None:
    """The full reconcile puts back the NLB's groups and the frontend's rules."""
    now = [1000.0]
    provider = make_provider(clock=lambda: now[0], full_reconcile_seconds=600)
    req = request(service(), local)
    await until_active(provider, req)
    (lb,) = owned_lbs(elbv2, "uid-web")
    (frontend,) = frontends(ec2, local, "uid-web")
    elbv2.set_security_groups(
        LoadBalancerArn=lb["LoadBalancerArn"], SecurityGroups=[frontend["GroupId"]]
    )
    ec2.revoke_security_group_ingress(
        GroupId=frontend["GroupId"], IpPermissions=frontend["IpPermissions"]
    )
    ssh = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22}
    ec2.authorize_security_group_ingress(
        GroupId=frontend["GroupId"], IpPermissions=[{**ssh, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    now[0] += 600
    mark = len(provider.mutations)
    await provider.ensure(req)
    (lb,) = owned_lbs(elbv2, "uid-web")
    assert sorted(lb["SecurityGroups"]) == sorted([frontend["GroupId"], backend_id(ec2, local)])
    (after,) = frontends(ec2, local, "uid-web")
    assert permissions_of(after) == permissions_of(frontend)
    assert sorted(op for op, _ in provider.mutations[mark:]) == [
        "authorize_security_group_ingress",
        "revoke_security_group_ingress",
        "set_security_groups",
    ]


# --- ownership --------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["loadbalancer", "targetgroup"])
async def test_resources_without_our_tags_are_never_touched(
    resource: str, make_provider: MakeProvider, local: LocalAWS, elbv2: Any
) -> None:
    svc = service()
    if resource == "loadbalancer":
        name = naming.load_balancer_name(CLUSTER, svc, "internet-facing")
        arn = elbv2.create_load_balancer(
            Name=name, Type="network", Subnets=list(local.public_subnets)
        )["LoadBalancers"][0]["LoadBalancerArn"]
    else:
        name = naming.target_group_name(CLUSTER, svc, "80/TCP", ("30080", "instance", "TCP"))
        arn = elbv2.create_target_group(
            Name=name, Protocol="TCP", Port=30080, VpcId=local.vpc_id, TargetType="instance"
        )["TargetGroups"][0]["TargetGroupArn"]
    provider = make_provider()

    with pytest.raises(UnsupportedError) as raised:
        await provider.ensure(request(svc, local))
    assert raised.value.reason == "NameConflict"
    assert name in raised.value.message
    assert provider.mutations == []

    await provider.delete(svc)
    assert await provider.sweep(lambda: ()) == 0
    assert provider.mutations == []
    assert tags(elbv2, arn) == {}
    if resource == "loadbalancer":
        assert elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"] == []
    else:
        assert elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"]


async def test_another_clusters_resources_are_never_touched(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any, ec2: Any
) -> None:
    svc = service()
    other = make_provider(cluster_name="green")  # the subnets are tagged for blue only
    subnets = {key("subnets"): ",".join(local.public_subnets)}
    await until_active(other, request(service(annotations=subnets), local))
    theirs = {lb["LoadBalancerArn"] for lb in owned_lbs(elbv2, "uid-web")}
    rules = rules_of(ec2, local.node_security_group)
    provider = make_provider()

    await provider.delete(svc)
    assert await provider.sweep(lambda: ()) == 0

    assert provider.mutations == []
    assert {lb["LoadBalancerArn"] for lb in owned_lbs(elbv2, "uid-web")} == theirs
    assert rules_of(ec2, local.node_security_group) == rules


# --- delete -----------------------------------------------------------------------


async def test_delete_removes_everything_and_twice_is_fine(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any, ec2: Any
) -> None:
    provider = make_provider()
    svc = service(ports=(*MIXED_PORTS, SYSLOG))
    await until_active(provider, request(svc, local))
    assert rules_of(ec2, local.node_security_group, "uid-web"), "kube-proxy's 10256"
    assert frontends(ec2, local, "uid-web")
    backend = backend_id(ec2, local)

    await provider.delete(svc)

    assert owned_lbs(elbv2, "uid-web") == []
    assert owned_tgs(elbv2, "uid-web") == []
    assert frontends(ec2, local) == []
    assert rules_of(ec2, local.node_security_group) == cluster_rules(ec2, local)
    assert backend_id(ec2, local) == backend, "the backend group is the cluster's"
    assert await provider.get(svc) is None
    mark = len(provider.mutations)
    await provider.delete(svc)
    assert provider.mutations[mark:] == []


async def test_an_interrupted_delete_is_resumed_without_leaks(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any, ec2: Any
) -> None:
    svc = service(ports=MIXED_PORTS)
    provider = make_provider()
    await until_active(provider, request(svc, local))
    inject(provider, "elbv2", "DeleteTargetGroup", [(400, "InjectedCrash")])

    with pytest.raises(TransientError, match="InjectedCrash"):
        await provider.delete(svc)
    assert owned_lbs(elbv2, "uid-web") == []
    assert len(owned_tgs(elbv2, "uid-web")) == 3

    assert len(frontends(ec2, local, "uid-web")) == 1

    await make_provider().delete(svc)  # a new process: everything found again by tags
    assert owned_tgs(elbv2, "uid-web") == []
    assert frontends(ec2, local) == []
    assert rules_of(ec2, local.node_security_group) == cluster_rules(ec2, local)


async def test_an_interrupted_ensure_is_resumed_without_duplicates(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any
) -> None:
    svc = service(ports=MIXED_PORTS)
    provider = make_provider()
    inject(provider, "elbv2", "CreateListener", [(400, "InjectedCrash")])
    with pytest.raises(TransientError):
        await provider.ensure(request(svc, local))
    assert len(owned_lbs(elbv2, "uid-web")) == 1

    fresh = make_provider()
    await until_active(fresh, request(svc, local))

    (lb,) = owned_lbs(elbv2, "uid-web")
    assert len(owned_tgs(elbv2, "uid-web")) == 3
    assert sorted(listeners(elbv2, lb["LoadBalancerArn"])) == [53, 80, 443]
    created = [op for op, _ in fresh.mutations if op.startswith("create")]
    assert created == ["create_listener"] * 3


async def test_a_target_group_still_in_use_asks_for_a_retry(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any
) -> None:
    provider = make_provider()
    svc = service()
    await until_active(provider, request(svc, local))
    inject(provider, "elbv2", "DeleteTargetGroup", [(400, "ResourceInUse")])
    with pytest.raises(RetryAfterError) as raised:
        await provider.delete(svc)
    assert raised.value.seconds == 5
    assert await provider.get(svc) is None, "the load balancer went first"
    await provider.delete(svc)
    assert owned_tgs(elbv2, "uid-web") == []


# --- sweep ------------------------------------------------------------------------


async def test_sweep_deletes_what_gone_services_owned(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any, ec2: Any
) -> None:
    provider = make_provider()
    udp = (ServicePort(port=53, protocol="UDP", node_port=30053),)
    gone, kept = service("gone", udp), service("kept", local_traffic=True)
    await until_active(provider, request(gone, local))
    await until_active(provider, request(kept, local))
    kept_rules = rules_of(ec2, local.node_security_group, "uid-kept")
    gone_rules = rules_of(ec2, local.node_security_group, "uid-gone")
    assert gone_rules and not kept_rules  # kube-proxy's 10256; 32100 is a NodePort
    (kept_frontend,) = frontends(ec2, local, "uid-kept")
    assert frontends(ec2, local, "uid-gone")
    fresh = make_provider()  # a new process: no memory of either Service
    seen_at_live: list[Counter[tuple[str, str]]] = []

    def live() -> set[str]:
        seen_at_live.append(fresh.client.calls)
        return {"uid-kept"}

    deleted = await fresh.sweep(live)

    (calls,) = seen_at_live  # everything was listed before live_uids, nothing changed
    listed = {op for op, _ in calls}
    assert {"describe_load_balancers", "describe_target_groups"} <= listed
    assert "describe_security_groups" in listed
    assert not any(is_mutation(op) for op in listed)
    assert deleted == 1 + 1 + len(gone_rules) + 1  # LB, TG, rules, frontend group
    assert owned_lbs(elbv2, "uid-gone") == [] and owned_tgs(elbv2, "uid-gone") == []
    assert len(owned_lbs(elbv2, "uid-kept")) == 1 and len(owned_tgs(elbv2, "uid-kept")) == 1
    assert frontends(ec2, local) == [kept_frontend]
    assert rules_of(ec2, local.node_security_group) == cluster_rules(ec2, local)
    assert await fresh.sweep(live) == 0
    assert await fresh.sweep(lambda: ()) == 1 + 1 + 1  # kept's LB, TG and frontend group
    assert frontends(ec2, local) == []
    assert rules_of(ec2, local.node_security_group) == cluster_rules(ec2, local)
    backend_id(ec2, local)  # never swept: the cluster's


async def test_sweep_can_be_turned_off(make_provider: MakeProvider, local: LocalAWS) -> None:
    provider = make_provider(orphan_sweep=False)
    await until_active(provider, request(service(), local))
    assert await provider.sweep(lambda: ()) == 0
    assert await provider.get(service()) is not None


async def test_a_shared_rule_is_handed_over_not_revoked(
    make_provider: MakeProvider, local: LocalAWS, ec2: Any
) -> None:
    """Two UDP Services both need tcp/10256 (kube-proxy's health port, outside the
    NodePort range) from the backend group: one rule serves both, and it survives the
    first one's deletion."""
    provider = make_provider()
    udp = (ServicePort(port=53, protocol="UDP", node_port=30053),)
    first, second = service("one", udp), service("two", udp)
    await until_active(provider, request(first, local))
    await until_active(provider, request(second, local))
    backend = backend_id(ec2, local)
    health = {r[:4] for r in rules_of(ec2, local.node_security_group) if r[1] == 10256}
    assert health == {("tcp", 10256, 10256, backend)}

    await provider.delete(first)

    after = {r for r in rules_of(ec2, local.node_security_group) if r[1] == 10256}
    assert {r[:4] for r in after} == health
    assert {r[4] for r in after} == {naming.rule_description(CLUSTER, "uid-two", "health")}
    await provider.delete(second)
    assert rules_of(ec2, local.node_security_group) == cluster_rules(ec2, local)


# --- subnets, VPC, targets --------------------------------------------------------


async def test_no_usable_subnet_is_refused(
    make_provider: MakeProvider, local: LocalAWS, ec2: Any
) -> None:
    subnets = [*local.public_subnets, *local.private_subnets]
    ec2.delete_tags(Resources=subnets, Tags=[{"Key": naming.cluster_tag_key(CLUSTER)}])
    ec2.create_tags(Resources=subnets, Tags=[{"Key": "kubernetes.io/cluster/other", "Value": "1"}])
    provider = make_provider()
    with pytest.raises(UnsupportedError) as raised:
        await provider.ensure(request(service(), local))
    assert raised.value.reason == "SubnetsNotFound"
    assert "6 tagged for another cluster" in raised.value.message
    assert provider.mutations == []


async def test_the_vpc_is_found_without_nodes_by_its_cluster_tag(
    make_provider: MakeProvider, local: LocalAWS, ec2: Any, elbv2: Any
) -> None:
    svc = service()
    no_nodes = LoadBalancerRequest(service=svc, ports=svc.spec.ports)
    provider = make_provider()  # moto's default VPC and the seeded one, tagged for blue
    await provider.ensure(no_nodes)
    (lb,) = owned_lbs(elbv2, "uid-web")
    assert lb["VpcId"] == local.vpc_id

    ec2.create_vpc(
        CidrBlock="10.1.0.0/16",
        TagSpecifications=[
            {
                "ResourceType": "vpc",
                "Tags": [{"Key": naming.cluster_tag_key(CLUSTER), "Value": "shared"}],
            }
        ],
    )
    provider = make_provider()
    with pytest.raises(UnsupportedError) as raised:
        await provider.ensure(no_nodes)
    assert raised.value.reason == "VPCNotFound"
    assert "3 VPCs" in raised.value.message and "2 tagged" in raised.value.message
    assert provider.mutations == []


async def test_ip_targets_are_the_ready_endpoints(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any, ec2: Any
) -> None:
    provider = make_provider()
    svc = service(
        ports=(ServicePort(name="http", port=80, protocol="TCP", target_port="web"),),
        annotations={key("nlb-target-type"): "ip"},
    )
    endpoints = (
        EndpointInfo(("10.0.100.10",), True, ports=(EndpointPort("http", 8080, "TCP"),)),
        EndpointInfo(("10.0.101.10",), True, ports=(EndpointPort("http", 8081, "TCP"),)),
        EndpointInfo(("10.0.102.10",), False, ports=(EndpointPort("http", 8080, "TCP"),)),
    )
    await until_active(provider, request(svc, local, endpoints=endpoints))

    (group,) = owned_tgs(elbv2, "uid-web")
    assert (group["TargetType"], group["Port"]) == ("ip", 1)
    health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
    assert {
        (d["Target"]["Id"], d["Target"]["Port"]) for d in health["TargetHealthDescriptions"]
    } == {
        ("10.0.100.10", 8080),
        ("10.0.101.10", 8081),
    }
    # The pods' ports are outside the NodePort range: a rule of the Service, from the
    # backend group (whether or not the client address is kept).
    assert rules_of(ec2, local.node_security_group, "uid-web") == {
        (
            "tcp",
            8080,
            8081,
            backend_id(ec2, local),
            naming.rule_description(CLUSTER, "uid-web", "client"),
        )
    }


async def test_nodes_without_a_live_instance_are_not_registered(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any
) -> None:
    provider = make_provider()
    svc = service()
    ghost = NodeInfo("ghost", "aws:///us-east-1a/i-00000000000000dead")
    fargate = NodeInfo("fargate", "fargate://us-east-1a/pod")
    req = LoadBalancerRequest(
        service=svc, ports=svc.spec.ports, nodes=(*nodes_of(local), ghost, fargate)
    )
    await until_active(provider, req)
    (group,) = owned_tgs(elbv2, "uid-web")
    health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
    assert {d["Target"]["Id"] for d in health["TargetHealthDescriptions"]} == instance_ids(local)


async def test_extra_certificates_follow_the_annotation(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any, boto_session: Any, moto_url: str
) -> None:
    from providers.aws.localaws import self_signed_certificate

    cert, private_key = self_signed_certificate("other.local")
    acm = boto_session.client("acm", endpoint_url=moto_url)
    extra = acm.import_certificate(Certificate=cert, PrivateKey=private_key)["CertificateArn"]
    provider = make_provider()
    both = {key("ssl-cert"): f"{local.certificate_arn},{extra}"}
    await until_active(provider, request(service(annotations=both), local))
    (lb,) = owned_lbs(elbv2, "uid-web")
    listener = listeners(elbv2, lb["LoadBalancerArn"])[80]

    def certificates() -> dict[str, bool]:
        found = elbv2.describe_listener_certificates(ListenerArn=listener["ListenerArn"])
        return {c["CertificateArn"]: c.get("IsDefault", False) for c in found["Certificates"]}

    assert certificates() == {local.certificate_arn: True, extra: False}
    one = {key("ssl-cert"): local.certificate_arn}
    await provider.ensure(request(service(annotations=one), local))
    assert certificates() == {local.certificate_arn: True}


# --- throttling -------------------------------------------------------------------


async def test_throttling_during_ensure_still_converges(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any
) -> None:
    provider = make_provider()
    inject(provider, "elbv2", "CreateLoadBalancer", [(400, "ThrottlingException")] * 3)
    inject(provider, "elbv2", "RegisterTargets", [(400, "Throttling")] * 2)
    inject(provider, "ec2", "DescribeSubnets", [(503, "RequestLimitExceeded")])

    await until_active(provider, request(service(), local))

    calls = provider.client.calls
    assert calls[("create_load_balancer", "throttled")] == 3
    assert calls[("create_load_balancer", "success")] == 1
    assert calls[("register_targets", "throttled")] == 2
    assert calls[("describe_subnets", "throttled")] == 1
    assert len(owned_lbs(elbv2, "uid-web")) == 1


async def test_exhausted_retries_are_transient(
    make_provider: MakeProvider, local: LocalAWS
) -> None:
    provider = make_provider(client_options={"max_backoff": 0.01, "max_attempts": 2})
    inject(provider, "elbv2", "CreateLoadBalancer", [(400, "ThrottlingException")] * 2)
    with pytest.raises(TransientError, match="gave up after 2"):
        await provider.ensure(request(service(), local))


async def test_observers_see_every_call(make_provider: MakeProvider, local: LocalAWS) -> None:
    provider = make_provider()
    seen: list[tuple[str, str]] = []
    provider.observe_calls(lambda op, outcome: seen.append((op, outcome)))
    provider.observe_calls(lambda op, outcome: 1 / 0)  # a broken observer changes nothing
    await provider.ensure(request(service(), local))
    assert Counter(seen) == provider.client.calls
    assert ("create_load_balancer", "success") in seen


# --- a crash between any two AWS calls --------------------------------------------


def crash_before(provider: AWSProvider, index: int) -> list[str]:
    """Make the provider's ``index``-th mutating AWS call from now (0-based) fail as if
    the process died just before sending it; returns the mutating calls seen so far."""
    seen: list[str] = []

    def before_call(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if not is_mutation(model.name):
            return None
        seen.append(model.name)
        if len(seen) - 1 != index:
            return None
        parsed = {
            "Error": {"Code": "InjectedCrash", "Message": f"crash before {model.name}"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        return AWSResponse("http://127.0.0.1/", 400, {}, None), parsed

    for name in ("elbv2", "ec2"):
        boto = provider.client.boto_client(name)  # type: ignore[arg-type]
        service_id = boto.meta.service_model.service_id.hyphenize()
        boto.meta.events.register(f"before-call.{service_id}", before_call)
    return seen


def security_groups(ec2: Any, local: LocalAWS) -> list[tuple[str, str, str, str]]:
    """Every security group of the VPC as (name, tags, ingress rules, egress rules),
    group ids (also rules' sources) replaced by group names."""
    groups = groups_in(ec2, local)
    names = {g["GroupId"]: g["GroupName"] for g in groups}

    def rules(permissions: list[dict[str, Any]]) -> str:
        rows = permissions_of({"IpPermissions": permissions})
        return str(sorted((p, lo, hi, names.get(src, src), d) for p, lo, hi, src, d in rows))

    return sorted(
        (
            g["GroupName"],
            str(sorted(sg_tags(g).items())),
            rules(g["IpPermissions"]),
            rules(g.get("IpPermissionsEgress", [])),
        )
        for g in groups
    )


def world(elbv2: Any, ec2: Any, local: LocalAWS) -> dict[str, Any]:
    """Everything in the account that a load balancer could leave behind, without ARNs
    or ids: two worlds are equal when the same resources exist, configured the same."""
    lbs = elbv2.describe_load_balancers()["LoadBalancers"]
    group_name = {g["GroupId"]: g["GroupName"] for g in groups_in(ec2, local)}
    tgs = {g["TargetGroupArn"]: g for g in elbv2.describe_target_groups()["TargetGroups"]}
    group_names = {arn: tags(elbv2, arn).get(naming.TAG_PORT, "untagged") for arn in tgs}
    listening = {}
    for lb in lbs:
        for port, found in listeners(elbv2, lb["LoadBalancerArn"]).items():
            forward = found["DefaultActions"][0]["TargetGroupArn"]
            listening[(lb["LoadBalancerName"], port)] = (found["Protocol"], group_names[forward])
    targets = {}
    for arn, group in tgs.items():
        health = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        targets[group_names[arn]] = (
            group["Protocol"],
            group["Port"],
            group["HealthCheckProtocol"],
            str(group.get("HealthCheckPort")),
            sorted((d["Target"]["Id"], d["Target"]["Port"]) for d in health),
        )
    return {
        "load balancers": sorted(
            (
                lb["LoadBalancerName"],
                lb["Scheme"],
                str(sorted(tags(elbv2, lb["LoadBalancerArn"]).items())),
                str(sorted(group_name.get(g, g) for g in lb.get("SecurityGroups", []))),
            )
            for lb in lbs
        ),
        "target groups": sorted(group_names.values()),
        "listeners": listening,
        "targets": targets,
        "security groups": security_groups(ec2, local),
    }


def remove_cluster_infrastructure(ec2: Any, local: LocalAWS) -> None:
    """What lbctl keeps when its last Service goes (the backend group and the node
    group's cluster rules), removed by hand: checked to be exactly that."""
    rules = cluster_rules(ec2, local)
    assert rules_of(ec2, local.node_security_group) >= rules
    for protocol, lo, hi, source, desc in rules:
        pair = {"GroupId": source, "Description": desc}
        ec2.revoke_security_group_ingress(
            GroupId=local.node_security_group,
            IpPermissions=[
                {"IpProtocol": protocol, "FromPort": lo, "ToPort": hi, "UserIdGroupPairs": [pair]}
            ],
        )
    ec2.delete_security_group(GroupId=backend_id(ec2, local))


UPDATED_PORTS = (
    ServicePort(name="http", port=80, protocol="TCP", node_port=30080),
    ServicePort(name="dns-udp", port=53, protocol="UDP", node_port=30053),
    ServicePort(name="admin", port=8080, protocol="TCP", node_port=30808),
)


def updated_service() -> Service:
    """The MIXED_PORTS Service changed every way at once: a port gone, one added, a
    TCP_UDP listener become UDP, eTP Local (HTTP health checks: new target groups) and
    tags added."""
    return service(
        ports=UPDATED_PORTS,
        local_traffic=True,
        annotations={key("additional-resource-tags"): "team=net,cost=7"},
    )


async def crash_everywhere(
    make_provider: MakeProvider,
    elbv2: Any,
    ec2: Any,
    local: LocalAWS,
    before: Callable[[AWSProvider], Any],
    act: Callable[[AWSProvider], Any],
    resume: Callable[[AWSProvider], Any],
) -> int:
    """For every mutating call of ``act`` on a world made by ``before``: crash before
    it, then let a new process ``resume``; the world must be the one a run without
    crashes leaves. Each round ends by deleting everything (checked empty). Returns how
    many calls ``act`` makes."""
    empty = world(elbv2, ec2, local)

    async def clean_slate() -> None:
        await make_provider().delete(service())
        remove_cluster_infrastructure(ec2, local)
        assert world(elbv2, ec2, local) == empty, "a resource leaked"

    await before(make_provider())
    reference = make_provider()
    counted = crash_before(reference, 10_000)
    await act(reference)
    await resume(make_provider())
    expected = world(elbv2, ec2, local)
    await clean_slate()
    assert counted, "the action made no AWS change at all"

    for index, operation in enumerate(counted):
        await before(make_provider())
        crashing = make_provider()
        crash_before(crashing, index)
        with pytest.raises(TransientError, match="InjectedCrash"):
            await act(crashing)
        await resume(make_provider())
        assert world(elbv2, ec2, local) == expected, f"after a crash before {operation}"
        await clean_slate()
    return len(counted)


async def test_a_crash_before_any_create_call_is_resumed_exactly(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any, ec2: Any
) -> None:
    svc = service(
        ports=(*MIXED_PORTS, SYSLOG),
        annotations={key("ssl-cert"): local.certificate_arn, key("ssl-ports"): "https"},
    )

    async def nothing(_: AWSProvider) -> None:
        pass

    async def create(provider: AWSProvider) -> None:
        await until_active(provider, request(svc, local))

    calls = await crash_everywhere(make_provider, elbv2, ec2, local, nothing, create, create)
    assert calls >= 14  # 2 groups, 3 kinds of rules, LB, 4 TGs, 4 listeners, registrations


async def test_a_crash_before_any_update_call_is_resumed_exactly(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any, ec2: Any
) -> None:
    old, new = service(ports=MIXED_PORTS), updated_service()

    async def create(provider: AWSProvider) -> None:
        await until_active(provider, request(old, local))

    async def update(provider: AWSProvider) -> None:
        await until_active(provider, request(new, local))

    calls = await crash_everywhere(make_provider, elbv2, ec2, local, create, update, update)
    assert calls >= 6


async def test_a_crash_before_any_delete_call_is_resumed_exactly(
    make_provider: MakeProvider, local: LocalAWS, elbv2: Any, ec2: Any
) -> None:
    svc = service(ports=(*MIXED_PORTS, SYSLOG))

    async def create(provider: AWSProvider) -> None:
        await until_active(provider, request(svc, local))

    async def delete(provider: AWSProvider) -> None:
        await provider.delete(svc)

    calls = await crash_everywhere(make_provider, elbv2, ec2, local, create, delete, delete)
    assert calls >= 7  # 4 listeners go with the LB; LB, 4 TGs, node rule, frontend group


async def test_sctp_is_refused_before_any_aws_call(
    make_provider: MakeProvider, local: LocalAWS
) -> None:
    provider = make_provider()
    sctp = (ServicePort(name="sig", port=9999, protocol="SCTP", node_port=30999),)
    with pytest.raises(UnsupportedError) as raised:
        await provider.ensure(request(service(ports=sctp), local))
    assert raised.value.reason == "UnsupportedProtocol"
    assert "SCTP" in raised.value.message
    assert provider.client.calls == Counter(), "not one AWS call"
