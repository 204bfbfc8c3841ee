"""A local AWS for ``lbctl up --provider aws`` and the tests: moto's server on 127.0.0.1
and a seeded VPC (subnets, route tables, a node security group, instances, a certificate).

moto is a test/local dependency (``pip install 'moto[server]'``): it is imported only in
:meth:`MotoServer.start`. Seeding uses plain synchronous boto3 with dummy credentials, so
it never reads, nor needs, the machine's AWS credentials.
"""

from __future__ import annotations

import datetime
import functools
import logging
import threading
import urllib.request
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

import boto3
import botocore.session
from botocore.config import Config
from cryptography import x509

from lbctl.pki import self_signed
from providers.base import ConfigError

__all__ = ["DUMMY_CREDENTIALS", "LocalAWS", "LocalNode", "MotoServer", "seed"]

HOST: Final = "127.0.0.1"
DUMMY_CREDENTIALS: Final = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}
"""What every client talking to the local AWS uses; moto accepts anything."""

VPC_CIDR: Final = "10.0.0.0/16"
ZONES: Final = 3
AMI: Final = "ami-12c6146b"  # one of moto's built-in images
CERT_DOMAIN: Final = "lbctl.local"


@dataclass(frozen=True)
class LocalNode:
    """One seeded EC2 instance, as a Kubernetes node would see it."""

    name: str
    """The instance's private DNS name (``ip-10-0-100-4.ec2.internal``), as on EC2."""
    provider_id: str
    """``aws:///<az>/<instance id>``."""
    internal_ip: str
    az: str


@dataclass(frozen=True)
class LocalAWS:
    """What :func:`seed` made."""

    endpoint_url: str
    region: str
    vpc_id: str
    cluster_id: str
    public_subnets: tuple[str, ...]
    """One per AZ, in AZ order; routed to the internet gateway."""
    private_subnets: tuple[str, ...]
    """One per AZ, in AZ order; no internet gateway route."""
    node_security_group: str
    nodes: tuple[LocalNode, ...]
    certificate_arn: str


class MotoServer:
    """moto's threaded server, bound to 127.0.0.1 (never 0.0.0.0) on ``port`` (0: any
    free port). A context manager: ``with MotoServer() as url: ...``."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: Any = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``; only while started."""
        if self._url is None:
            raise RuntimeError("MotoServer is not started")
        return self._url

    def start(self) -> str:
        """Start serving; the endpoint URL."""
        if self._url is not None:
            return self._url
        try:
            from moto.server import ThreadedMotoServer  # noqa: PLC0415 - optional dependency
        except ImportError as e:
            raise ConfigError(
                "provider", "moto is not installed: pip install 'moto[server]'"
            ) from e
        werkzeug_log = logging.getLogger("werkzeug")
        if werkzeug_log.level == logging.NOTSET:  # one access-log line per request otherwise
            werkzeug_log.setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address=HOST, port=self._port, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self._url = f"http://{host}:{port}"
        return self._url

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        server, self._server, self._url = self._server, None, None
        if server is not None:
            server.stop()

    def reset(self) -> None:
        """Forget every resource (all services, accounts and regions)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status != 200:
                raise RuntimeError(f"moto reset answered HTTP {response.status}")

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_clients_lock = threading.Lock()


@functools.cache
def _shared_botocore() -> Any:
    """One botocore session for every seed: service models load once (~0.5 s saved)."""
    return botocore.session.get_session()


def _clients(endpoint_url: str, region: str) -> tuple[Any, Any]:
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
    with _clients_lock:  # botocore sessions are not thread-safe
        session = boto3.Session(
            region_name=region, botocore_session=_shared_botocore(), **DUMMY_CREDENTIALS
        )
        return (
            session.client("ec2", endpoint_url=endpoint_url, config=config),
            session.client("acm", endpoint_url=endpoint_url, config=config),
        )


def _tags(resource_type: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "ResourceType": resource_type,
            "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
        }
    ]


def self_signed_certificate(domain: str = CERT_DOMAIN) -> tuple[bytes, bytes]:
    """``(certificate PEM, private key PEM)`` for ``domain`` and ``*.domain``, valid a year."""
    return self_signed(
        domain,
        [x509.DNSName(domain), x509.DNSName(f"*.{domain}")],
        valid=datetime.timedelta(days=365),
        backdate=datetime.timedelta(days=1),
    )


def seed(
    endpoint_url: str, *, region: str = "us-east-1", cluster_id: str = "lbctl", nodes: int = 3
) -> LocalAWS:
    """Create a cluster's network in the AWS at ``endpoint_url`` (moto):

    - VPC 10.0.0.0/16 with an internet gateway;
    - in each of the region's first 3 AZs a public subnet 10.0.<i>.0/24 (route table with
      0.0.0.0/0 -> igw; tags ``kubernetes.io/cluster/<id>=shared``,
      ``kubernetes.io/role/elb=1``) and a private one 10.0.<100+i>.0/24 (own route table
      without an igw route; ``kubernetes.io/role/internal-elb=1``);
    - a node security group tagged ``kubernetes.io/cluster/<id>=owned``;
    - ``nodes`` instances spread over the private subnets, in that group;
    - an ACM certificate imported from a fresh self-signed one, for TLS listeners.
    """
    if nodes < 0:
        raise ValueError(f"nodes must be >= 0, got {nodes}")
    ec2, acm = _clients(endpoint_url, region)
    try:
        return _seed(
            ec2, acm, endpoint_url=endpoint_url, region=region, cluster_id=cluster_id, nodes=nodes
        )
    finally:
        ec2.close()
        acm.close()


def _seed(
    ec2: Any, acm: Any, *, endpoint_url: str, region: str, cluster_id: str, nodes: int
) -> LocalAWS:
    cluster_tag = f"kubernetes.io/cluster/{cluster_id}"

    zones = ec2.describe_availability_zones(
        Filters=[{"Name": "zone-type", "Values": ["availability-zone"]}]
    )["AvailabilityZones"]
    azs = sorted(z["ZoneName"] for z in zones)[:ZONES]
    if len(azs) < ZONES:
        raise RuntimeError(f"region {region} has only {len(azs)} availability zones")

    vpc_id = ec2.create_vpc(
        CidrBlock=VPC_CIDR,
        TagSpecifications=_tags("vpc", {"Name": cluster_id, cluster_tag: "shared"}),
    )["Vpc"]["VpcId"]
    igw_id = ec2.create_internet_gateway(
        TagSpecifications=_tags("internet-gateway", {"Name": cluster_id})
    )["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)

    public_rt = ec2.create_route_table(
        VpcId=vpc_id, TagSpecifications=_tags("route-table", {"Name": f"{cluster_id}-public"})
    )["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public_rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id)

    public: list[str] = []
    private: list[str] = []
    for i, az in enumerate(azs):
        public_id = ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=f"10.0.{i}.0/24",
            AvailabilityZone=az,
            TagSpecifications=_tags(
                "subnet",
                {
                    "Name": f"{cluster_id}-public-{az}",
                    cluster_tag: "shared",
                    "kubernetes.io/role/elb": "1",
                },
            ),
        )["Subnet"]["SubnetId"]
        ec2.associate_route_table(RouteTableId=public_rt, SubnetId=public_id)
        public.append(public_id)

        private_id = ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=f"10.0.{100 + i}.0/24",
            AvailabilityZone=az,
            TagSpecifications=_tags(
                "subnet",
                {
                    "Name": f"{cluster_id}-private-{az}",
                    cluster_tag: "shared",
                    "kubernetes.io/role/internal-elb": "1",
                },
            ),
        )["Subnet"]["SubnetId"]
        private_rt = ec2.create_route_table(
            VpcId=vpc_id,
            TagSpecifications=_tags("route-table", {"Name": f"{cluster_id}-private-{az}"}),
        )["RouteTable"]["RouteTableId"]
        ec2.associate_route_table(RouteTableId=private_rt, SubnetId=private_id)
        private.append(private_id)

    sg_id = ec2.create_security_group(
        GroupName=f"{cluster_id}-nodes",
        Description=f"lbctl nodes of cluster {cluster_id}",
        VpcId=vpc_id,
        TagSpecifications=_tags(
            "security-group", {"Name": f"{cluster_id}-nodes", cluster_tag: "owned"}
        ),
    )["GroupId"]

    local_nodes: list[LocalNode] = []
    for i in range(nodes):
        zone = i % ZONES
        instance = ec2.run_instances(
            ImageId=AMI,
            InstanceType="t3.medium",
            MinCount=1,
            MaxCount=1,
            SubnetId=private[zone],
            SecurityGroupIds=[sg_id],
            TagSpecifications=_tags(
                "instance", {"Name": f"{cluster_id}-node-{i}", cluster_tag: "owned"}
            ),
        )["Instances"][0]
        local_nodes.append(
            LocalNode(
                name=instance["PrivateDnsName"],
                provider_id=f"aws:///{azs[zone]}/{instance['InstanceId']}",
                internal_ip=instance["PrivateIpAddress"],
                az=azs[zone],
            )
        )

    cert_pem, key_pem = self_signed_certificate()
    certificate_arn = acm.import_certificate(
        Certificate=cert_pem,
        PrivateKey=key_pem,
        Tags=[{"Key": "Name", "Value": f"{cluster_id}-tls"}],
    )["CertificateArn"]

    return LocalAWS(
        endpoint_url=endpoint_url,
        region=region,
        vpc_id=vpc_id,
        cluster_id=cluster_id,
        public_subnets=tuple(public),
        private_subnets=tuple(private),
        node_security_group=sg_id,
        nodes=tuple(local_nodes),
        certificate_arn=certificate_arn,
    )
