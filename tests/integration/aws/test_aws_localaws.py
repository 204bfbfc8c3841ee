"""The local AWS: moto's server on 127.0.0.1, reset, and the seeded cluster network."""

from __future__ import annotations

import ipaddress
import sys
import urllib.parse
from typing import Any

import pytest
from botocore.exceptions import ClientError

from providers.aws.localaws import LocalAWS, MotoServer, seed
from providers.base import ConfigError

CLUSTER = "demo"
CLUSTER_TAG = f"kubernetes.io/cluster/{CLUSTER}"


def tags_of(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


@pytest.fixture
def local(moto_url: str) -> LocalAWS:
    return seed(moto_url, cluster_id=CLUSTER, nodes=4)


@pytest.fixture
def ec2(moto_url: str, boto_session: Any) -> Any:
    return boto_session.client("ec2", endpoint_url=moto_url)


def test_server_binds_loopback(moto_server: MotoServer) -> None:
    url = urllib.parse.urlsplit(moto_server.url)
    assert url.scheme == "http"
    assert url.hostname == "127.0.0.1"
    assert url.port is not None and url.port > 0


def test_server_lifecycle() -> None:
    server = MotoServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    with server as url:
        assert url.startswith("http://127.0.0.1:")
        assert server.start() == url  # idempotent
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    server.stop()  # idempotent


def test_missing_moto_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "moto.server", None)  # import fails
    with pytest.raises(ConfigError) as raised:
        MotoServer().start()
    assert raised.value.setting == "provider"
    assert "pip install 'moto[server]'" in str(raised.value)


def test_reset_forgets_everything(local: LocalAWS, moto_server: MotoServer, ec2: Any) -> None:
    assert ec2.describe_vpcs(VpcIds=[local.vpc_id])["Vpcs"]
    moto_server.reset()
    with pytest.raises(ClientError) as raised:
        ec2.describe_vpcs(VpcIds=[local.vpc_id])
    assert raised.value.response["Error"]["Code"] == "InvalidVpcID.NotFound"


def test_seed_subnets_and_tags(local: LocalAWS, ec2: Any) -> None:
    assert (local.cluster_id, local.region) == (CLUSTER, "us-east-1")
    vpc = ec2.describe_vpcs(VpcIds=[local.vpc_id])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.0.0.0/16"
    subnets = {
        s["SubnetId"]: s
        for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [local.vpc_id]}])[
            "Subnets"
        ]
    }
    assert set(subnets) == set(local.public_subnets) | set(local.private_subnets)
    assert len(local.public_subnets) == len(local.private_subnets) == 3
    public_azs = [subnets[s]["AvailabilityZone"] for s in local.public_subnets]
    private_azs = [subnets[s]["AvailabilityZone"] for s in local.private_subnets]
    assert public_azs == private_azs == sorted(set(public_azs))  # 3 AZs, AZ order
    for subnet_id in local.public_subnets:
        tags = tags_of(subnets[subnet_id])
        assert tags[CLUSTER_TAG] == "shared"
        assert tags["kubernetes.io/role/elb"] == "1"
        assert "kubernetes.io/role/internal-elb" not in tags
    for subnet_id in local.private_subnets:
        tags = tags_of(subnets[subnet_id])
        assert tags[CLUSTER_TAG] == "shared"
        assert tags["kubernetes.io/role/internal-elb"] == "1"
        assert "kubernetes.io/role/elb" not in tags
    # the tag filters the provider's subnet discovery uses
    tagged = ec2.describe_subnets(Filters=[{"Name": "tag-key", "Values": [CLUSTER_TAG]}])
    assert len(tagged["Subnets"]) == 6


def test_seed_route_tables(local: LocalAWS, ec2: Any) -> None:
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [local.vpc_id]}])
    igw_by_subnet: dict[str, bool] = {}
    for table in tables["RouteTables"]:
        has_igw = any(r.get("GatewayId", "").startswith("igw-") for r in table["Routes"])
        for assoc in table.get("Associations", []):
            if "SubnetId" in assoc:
                igw_by_subnet[assoc["SubnetId"]] = has_igw
    assert igw_by_subnet == {
        **dict.fromkeys(local.public_subnets, True),
        **dict.fromkeys(local.private_subnets, False),
    }
    igws = ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [local.vpc_id]}]
    )["InternetGateways"]
    assert len(igws) == 1


def test_seed_security_group_and_instances(local: LocalAWS, ec2: Any) -> None:
    groups = ec2.describe_security_groups(
        Filters=[{"Name": f"tag:{CLUSTER_TAG}", "Values": ["owned"]}]
    )["SecurityGroups"]
    assert [g["GroupId"] for g in groups] == [local.node_security_group]
    assert groups[0]["VpcId"] == local.vpc_id

    assert len(local.nodes) == 4
    ids = [node.provider_id.rsplit("/", 1)[1] for node in local.nodes]
    reservations = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    instances = {i["InstanceId"]: i for r in reservations for i in r["Instances"]}
    assert set(instances) == set(ids)
    subnets = {
        s["SubnetId"]: s
        for s in ec2.describe_subnets(SubnetIds=list(local.private_subnets))["Subnets"]
    }
    for node, instance_id in zip(local.nodes, ids, strict=True):
        instance = instances[instance_id]
        assert node.provider_id == f"aws:///{node.az}/{instance_id}"
        assert instance["SubnetId"] in local.private_subnets
        assert instance["Placement"]["AvailabilityZone"] == node.az
        assert [g["GroupId"] for g in instance["SecurityGroups"]] == [local.node_security_group]
        assert instance["PrivateIpAddress"] == node.internal_ip
        assert instance["PrivateDnsName"] == node.name
        cidr = ipaddress.ip_network(subnets[instance["SubnetId"]]["CidrBlock"])
        assert ipaddress.ip_address(node.internal_ip) in cidr
        assert tags_of(instance)[CLUSTER_TAG] == "owned"
    assert len({node.az for node in local.nodes}) == 3  # spread over the AZs


def test_seed_certificate(local: LocalAWS, moto_url: str, boto_session: Any) -> None:
    acm = boto_session.client("acm", endpoint_url=moto_url)
    cert = acm.describe_certificate(CertificateArn=local.certificate_arn)["Certificate"]
    assert cert["Status"] == "ISSUED"
    assert cert["DomainName"] == "lbctl.local"
    assert "*.lbctl.local" in cert["SubjectAlternativeNames"]


def test_seed_without_nodes(moto_url: str) -> None:
    local = seed(moto_url, nodes=0)
    assert local.nodes == ()
    assert local.cluster_id == "lbctl"
    assert local.certificate_arn.startswith("arn:aws:acm:us-east-1:")
