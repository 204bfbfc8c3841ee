"""The whole chain on one machine: the embedded API server, the controller and the AWS
provider against the moto server. Services get NLB hostnames and security groups, SCTP
is refused per port before any AWS call, a malformed annotation creates nothing, targets
follow Nodes and EndpointSlices, eTP Local switches the health check, a delete leaves no
owned resource behind, and every AWS call attempt shows in the metrics."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from lbctl.apiserver.server import APIServer
from lbctl.controllers.app import ControllerOptions, run_controller
from lbctl.kube.client import ENDPOINTSLICES, EVENTS, NODES, SERVICES, KubeClient, connect
from lbctl.kube.errors import NotFound
from lbctl.telemetry import Metrics
from lbctl.testing import embedded_apiserver, wait_for_async
from providers.aws import create, naming
from providers.aws.localaws import DUMMY_CREDENTIALS, LocalAWS, seed

CLUSTER = "green"
REGION = "us-east-1"
CLASS = "lbctl.io/aws-nlb"
TARGET_GROUP_GONE = ("TargetGroupNotFound", "TargetGroupNotFoundException")


@pytest.fixture
def local(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> LocalAWS:
    for k, v in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(k.upper(), v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return seed(moto_url, region=REGION, cluster_id=CLUSTER, nodes=3)


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[KubeClient]:
    server: APIServer
    async with (
        embedded_apiserver(tmp_path / "d") as server,
        await connect(kubeconfig=server.kubeconfig_path) as client,
    ):
        yield client


@pytest.fixture
async def running(kube: KubeClient, local: LocalAWS) -> AsyncIterator[Metrics]:
    """The controller, with the first two instances registered as Nodes."""
    for n in local.nodes[:2]:
        await kube.create(
            NODES, {"metadata": {"name": n.name}, "spec": {"providerID": n.provider_id}}
        )
    provider = create(cluster_name=CLUSTER, region=REGION, endpoint_url=local.endpoint_url)
    metrics = Metrics()
    stop = asyncio.Event()
    options = ControllerOptions(
        class_name=CLASS, workers=2, leader_election=False, cluster_name=CLUSTER
    )
    task = asyncio.create_task(
        run_controller(client=kube, provider=provider, options=options, stop=stop, metrics=metrics)
    )
    try:
        yield metrics
    finally:
        stop.set()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=30)
        await provider.close()


def _svc(name: str, *ports: tuple[int, str], **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": CLASS,
            "ports": [
                {"name": f"p{i}", "port": p, "protocol": proto}
                for i, (p, proto) in enumerate(ports)
            ],
        },
    }


async def _status(kube: KubeClient, name: str) -> dict[str, Any]:
    return (await kube.get(SERVICES, name, "default")).get("status") or {}


async def _hostname(kube: KubeClient, name: str) -> str | None:
    ingress = ((await _status(kube, name)).get("loadBalancer") or {}).get("ingress") or []
    conds = {c["type"]: c for c in (await _status(kube, name)).get("conditions") or []}
    if ingress and conds.get("LoadBalancerReady", {}).get("status") == "True":
        return str(ingress[0].get("hostname") or "") or None
    return None


def _groups(ec2: Any, local: LocalAWS, **tags: str) -> list[dict[str, Any]]:
    """The VPC's security groups that have these tags."""
    filters = [{"Name": "vpc-id", "Values": [local.vpc_id]}]
    filters += [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
    return list(ec2.describe_security_groups(Filters=filters)["SecurityGroups"])


def _node_rules(ec2: Any, local: LocalAWS) -> set[tuple[str, int, int, str, str]]:
    (sg,) = ec2.describe_security_groups(GroupIds=[local.node_security_group])["SecurityGroups"]
    return {
        (p["IpProtocol"], p["FromPort"], p["ToPort"], pair["GroupId"], pair["Description"])
        for p in sg["IpPermissions"]
        for pair in p.get("UserIdGroupPairs", [])
    }


def _owned_lbs(elbv2: Any, uid: str) -> list[str]:
    arns = [lb["LoadBalancerArn"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]]
    if not arns:
        return []
    found = []
    for desc in elbv2.describe_tags(ResourceArns=arns)["TagDescriptions"]:
        tags = {t["Key"]: t["Value"] for t in desc["Tags"]}
        if naming.owned_by(tags, CLUSTER) and naming.service_uid_of(tags) == uid:
            found.append(desc["ResourceArn"])
    return found


async def test_services_get_nlbs_and_sctp_is_refused_per_port(
    kube: KubeClient, local: LocalAWS, running: Metrics
) -> None:
    elbv2 = boto3.client("elbv2", region_name=REGION, endpoint_url=local.endpoint_url)
    await kube.create(
        SERVICES, _svc("edge", (80, "TCP"), (53, "UDP"), (53, "TCP"), (9999, "SCTP")), "default"
    )
    host = await wait_for_async(lambda: _hostname(kube, "edge"), what="edge ready", timeout=60)
    assert host == host.lower() and host.endswith(".elb.amazonaws.com")
    status = await _status(kube, "edge")
    ports = {
        (p["port"], p["protocol"]): p.get("error")
        for p in status["loadBalancer"]["ingress"][0]["ports"]
    }
    assert ports[(9999, "SCTP")] == "UnsupportedProtocol"
    assert ports[(80, "TCP")] is None
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["LoadBalancerPortsError"]["status"] == "True"
    svc = await kube.get(SERVICES, "edge", "default")
    uid = svc["metadata"]["uid"]
    (arn,) = _owned_lbs(elbv2, uid)
    listeners = elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]
    assert sorted((lis["Port"], lis["Protocol"]) for lis in listeners) == [
        (53, "TCP_UDP"),
        (80, "TCP"),
    ]
    # Security groups: the Service's frontend (its listeners from anywhere) and the
    # cluster's backend, which the node group lets in over the NodePort range.
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=local.endpoint_url)
    (frontend,) = _groups(ec2, local, **{naming.TAG_SERVICE_UID: uid})
    (backend,) = _groups(ec2, local, **{naming.TAG_RESOURCE: "backend-securitygroup"})
    (lb,) = elbv2.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"]
    assert sorted(lb["SecurityGroups"]) == sorted([frontend["GroupId"], backend["GroupId"]])
    assert sorted(
        (p["IpProtocol"], p["FromPort"], r["CidrIp"])
        for p in frontend["IpPermissions"]
        for r in p["IpRanges"]
    ) == [("tcp", 53, "0.0.0.0/0"), ("tcp", 80, "0.0.0.0/0"), ("udp", 53, "0.0.0.0/0")]
    cluster_rules = {
        (protocol, 30000, 32767, backend["GroupId"], naming.cluster_rule_description(CLUSTER))
        for protocol in ("tcp", "udp")
    }
    assert _node_rules(ec2, local) == cluster_rules
    # Every AWS call attempt is in the metrics, by operation and outcome.
    text = running.render().decode()
    calls = re.findall(r"^lbctl_cloud_api_calls_total\{(.*)\} (\S+)$", text, re.M)
    ops = {re.search(r'operation="([^"]+)"', labels).group(1) for labels, _ in calls}  # type: ignore[union-attr]
    assert {"create_load_balancer", "create_target_group", "create_listener"} <= ops, ops
    assert all('provider="aws"' in labels for labels, _ in calls)

    # Delete: the finalizer holds until every owned resource is gone.
    await kube.delete(SERVICES, "edge", "default")

    async def gone() -> bool:
        try:
            await kube.get(SERVICES, "edge", "default")
        except NotFound:
            return True
        return False

    await wait_for_async(gone, what="edge deleted", timeout=60)
    assert _owned_lbs(elbv2, svc["metadata"]["uid"]) == []
    assert _groups(ec2, local, **{naming.TAG_SERVICE_UID: uid}) == []
    assert _node_rules(ec2, local) == cluster_rules, "the cluster's rules stay"
    assert _groups(ec2, local, **{naming.TAG_RESOURCE: "backend-securitygroup"}) == [backend]
    groups = elbv2.describe_target_groups()["TargetGroups"]
    assert groups == [] or not [
        d
        for d in elbv2.describe_tags(ResourceArns=[g["TargetGroupArn"] for g in groups])[
            "TagDescriptions"
        ]
        if any(t["Value"] == svc["metadata"]["uid"] for t in d["Tags"])
    ]


async def test_a_malformed_annotation_creates_nothing(
    kube: KubeClient, local: LocalAWS, running: Metrics
) -> None:
    elbv2 = boto3.client("elbv2", region_name=REGION, endpoint_url=local.endpoint_url)
    bad = "service.beta.kubernetes.io/aws-load-balancer-healthcheck-interval"
    await kube.create(SERVICES, _svc("bad", (80, "TCP"), **{bad: "often"}), "default")

    async def refused() -> dict[str, Any] | None:
        conds = {c["type"]: c for c in (await _status(kube, "bad")).get("conditions") or []}
        ready = conds.get("LoadBalancerReady")
        return ready if ready and ready["status"] == "False" else None

    ready = await wait_for_async(refused, what="condition", timeout=60)
    assert ready["reason"] == "InvalidAnnotation"
    assert bad in ready["message"]
    items, _ = await kube.list(EVENTS, "default")
    warnings = [e for e in items if e["involvedObject"]["name"] == "bad" and e["type"] == "Warning"]
    assert any(bad in e["message"] for e in warnings)
    assert elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert elbv2.describe_target_groups()["TargetGroups"] == []


def _targets(elbv2: Any, uid: str) -> dict[str, tuple[str, set[tuple[str, int]]]]:
    """The Service's target groups by port tag: (health-check protocol/port, targets).
    A group the controller deletes while this lists (a replaced one) is left out."""
    groups = elbv2.describe_target_groups()["TargetGroups"]
    out = {}
    for g in groups:
        try:
            (desc,) = elbv2.describe_tags(ResourceArns=[g["TargetGroupArn"]])["TagDescriptions"]
            tags = {t["Key"]: t["Value"] for t in desc["Tags"]}
            if not (naming.owned_by(tags, CLUSTER) and naming.service_uid_of(tags) == uid):
                continue
            health = elbv2.describe_target_health(TargetGroupArn=g["TargetGroupArn"])
        except ClientError as e:
            if e.response["Error"]["Code"] in TARGET_GROUP_GONE:
                continue
            raise
        found = {
            (d["Target"]["Id"], d["Target"]["Port"]) for d in health["TargetHealthDescriptions"]
        }
        check = f"{g['HealthCheckProtocol']}:{g['HealthCheckPort']}"
        out[tags[naming.TAG_PORT]] = (check, found)
    return out


async def test_targets_follow_nodes_and_endpoints_and_etp_local_checks_health(
    kube: KubeClient, local: LocalAWS, running: Metrics
) -> None:
    elbv2 = boto3.client("elbv2", region_name=REGION, endpoint_url=local.endpoint_url)
    instance = {n.name: n.provider_id.rsplit("/", 1)[1] for n in local.nodes}
    first, second, third = local.nodes

    # instance mode: the eligible Nodes' instances on the nodePort
    inst = await kube.create(SERVICES, _svc("inst", (80, "TCP")), "default")
    uid, node_port = inst["metadata"]["uid"], inst["spec"]["ports"][0]["nodePort"]

    def targets_are(want: set[str], check: str | None = None) -> Any:
        async def probe() -> bool:
            found = _targets(elbv2, uid).get("80/TCP")
            if found is None or (check is not None and found[0] != check):
                return False
            return found[1] == {(instance[n], node_port) for n in want}

        return probe

    await wait_for_async(targets_are({first.name, second.name}), what="2 nodes", timeout=60)
    await kube.create(
        NODES, {"metadata": {"name": third.name}, "spec": {"providerID": third.provider_id}}
    )
    await wait_for_async(
        targets_are({first.name, second.name, third.name}), what="node added", timeout=60
    )
    await kube.delete(NODES, first.name)
    await wait_for_async(targets_are({second.name, third.name}), what="node gone", timeout=60)
    assert _targets(elbv2, uid)["80/TCP"][0] == "TCP:traffic-port"

    # externalTrafficPolicy: Local -> HTTP health checks on healthCheckNodePort
    local_svc = await kube.patch(
        SERVICES, "inst", {"spec": {"externalTrafficPolicy": "Local"}}, "default", kind="merge"
    )
    health_port = local_svc["spec"]["healthCheckNodePort"]
    assert health_port
    await wait_for_async(
        targets_are({second.name, third.name}, f"HTTP:{health_port}"),
        what="HTTP health check",
        timeout=60,
    )
    (group,) = [
        g
        for g in elbv2.describe_target_groups()["TargetGroups"]
        if g["HealthCheckProtocol"] == "HTTP"
    ]
    assert group["HealthCheckPath"] == "/healthz"

    # ip mode: the ready endpoints of the EndpointSlices, on the target port
    ip_annotation = {"service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip"}
    body = _svc("pods", (80, "TCP"), **ip_annotation)
    body["spec"]["ports"][0]["targetPort"] = 8080
    pods = await kube.create(SERVICES, body, "default")
    pods_uid = pods["metadata"]["uid"]

    def endpoints(*ready: tuple[str, bool]) -> dict[str, Any]:
        return {
            "metadata": {
                "name": "pods-abc",
                "labels": {"kubernetes.io/service-name": "pods"},
            },
            "addressType": "IPv4",
            "ports": [{"name": "p0", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ok}} for ip, ok in ready],
        }

    def ip_targets_are(*ips: str) -> Any:
        async def probe() -> bool:
            found = _targets(elbv2, pods_uid).get("80/TCP")
            return found is not None and found[1] == {(ip, 8080) for ip in ips}

        return probe

    await kube.create(
        ENDPOINTSLICES, endpoints(("10.0.100.10", True), ("10.0.100.11", False)), "default"
    )
    await wait_for_async(ip_targets_are("10.0.100.10"), what="ready endpoint", timeout=60)
    await kube.patch(
        ENDPOINTSLICES,
        "pods-abc",
        {"endpoints": endpoints(("10.0.100.11", True), ("10.0.101.12", True))["endpoints"]},
        "default",
        kind="merge",
    )
    await wait_for_async(
        ip_targets_are("10.0.100.11", "10.0.101.12"), what="endpoints changed", timeout=60
    )
