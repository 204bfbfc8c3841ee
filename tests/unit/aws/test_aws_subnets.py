"""providers.aws.subnets: public detection and cloud-provider-aws's subnet choice."""

from __future__ import annotations

import pytest

from providers.aws.subnets import (
    ROLE_ELB,
    ROLE_INTERNAL_ELB,
    RouteTableInfo,
    SubnetError,
    SubnetInfo,
    is_public,
    select_subnets,
)

CLUSTER = "prod"
OWN = {"kubernetes.io/cluster/prod": "shared"}
OTHER = {"kubernetes.io/cluster/staging": "owned"}
PUBLIC, INTERNAL = "internet-facing", "internal"


def sn(
    subnet_id: str,
    az: str = "us-east-1a",
    tags: dict[str, str] | None = None,
    *,
    public: bool = True,
    vpc: str = "vpc-1",
) -> SubnetInfo:
    return SubnetInfo(subnet_id, vpc, az, "10.0.0.0/24", tags or {}, public)


def ids(subnets: tuple[SubnetInfo, ...]) -> list[str]:
    return [s.id for s in subnets]


@pytest.mark.parametrize(
    ("subnet_id", "tables", "expected"),
    [
        (
            "subnet-a",
            [RouteTableInfo("rtb-1", "vpc-1", False, ("subnet-a",), ("igw-1", "local"))],
            True,
        ),
        (
            "subnet-a",
            [RouteTableInfo("rtb-1", "vpc-1", False, ("subnet-a",), ("nat-1", "local"))],
            False,
        ),
        # the explicit association wins over a public main table
        (
            "subnet-a",
            [
                RouteTableInfo("rtb-main", "vpc-1", True, (), ("igw-1",)),
                RouteTableInfo("rtb-1", "vpc-1", False, ("subnet-a",), ("local",)),
            ],
            False,
        ),
        # no association: the VPC's main table
        ("subnet-a", [RouteTableInfo("rtb-main", "vpc-1", True, (), ("igw-1",))], True),
        ("subnet-a", [RouteTableInfo("rtb-main", "vpc-1", True, (), ("local",))], False),
        # the main table of another VPC does not count
        ("subnet-a", [RouteTableInfo("rtb-main", "vpc-2", True, (), ("igw-1",))], False),
        ("subnet-a", [], False),
    ],
)
def test_is_public(subnet_id: str, tables: list[RouteTableInfo], expected: bool) -> None:
    assert is_public(subnet_id, "vpc-1", tables) is expected


DISCOVERY: list[tuple[str, list[SubnetInfo], str, list[str]]] = [
    ("cluster tag", [sn("subnet-1", tags=OWN)], PUBLIC, ["subnet-1"]),
    ("untagged", [sn("subnet-1")], PUBLIC, ["subnet-1"]),
    ("other cluster skipped", [sn("subnet-1", tags=OTHER), sn("subnet-2")], PUBLIC, ["subnet-2"]),
    (
        "tagged for both clusters is a candidate",
        [sn("subnet-1", tags=OTHER | OWN)],
        PUBLIC,
        ["subnet-1"],
    ),
    (
        "private skipped for internet-facing",
        [sn("subnet-1", public=False), sn("subnet-2", "us-east-1b")],
        PUBLIC,
        ["subnet-2"],
    ),
    (
        "private kept for internal",
        [sn("subnet-1", public=False), sn("subnet-2", "us-east-1b")],
        INTERNAL,
        ["subnet-1", "subnet-2"],
    ),
    (
        "one per AZ, sorted by AZ",
        [sn("subnet-9", "us-east-1c"), sn("subnet-8", "us-east-1a"), sn("subnet-7", "us-east-1b")],
        PUBLIC,
        ["subnet-8", "subnet-7", "subnet-9"],
    ),
    ("lowest id", [sn("subnet-b"), sn("subnet-a"), sn("subnet-c")], PUBLIC, ["subnet-a"]),
    (
        "cluster tag beats untagged",
        [sn("subnet-a"), sn("subnet-b", tags=OWN)],
        PUBLIC,
        ["subnet-b"],
    ),
    (
        "elb role beats cluster tag",
        [sn("subnet-a", tags=OWN), sn("subnet-b", tags={ROLE_ELB: "1"})],
        PUBLIC,
        ["subnet-b"],
    ),
    (
        "internal-elb role does not count for internet-facing",
        [sn("subnet-a"), sn("subnet-b", tags={ROLE_INTERNAL_ELB: "1"})],
        PUBLIC,
        ["subnet-a"],
    ),
    (
        "internal-elb role for internal",
        [sn("subnet-a", tags={ROLE_ELB: "1"} | OWN), sn("subnet-b", tags={ROLE_INTERNAL_ELB: ""})],
        INTERNAL,
        ["subnet-b"],
    ),
    (
        "role and cluster tag, then lowest id",
        [
            sn("subnet-d", tags={ROLE_ELB: ""} | OWN),
            sn("subnet-c", tags={ROLE_ELB: ""} | OWN),
            sn("subnet-b", tags={ROLE_ELB: ""}),
        ],
        PUBLIC,
        ["subnet-c"],
    ),
]


@pytest.mark.parametrize(
    ("subnets", "scheme", "expected"),
    [case[1:] for case in DISCOVERY],
    ids=[case[0] for case in DISCOVERY],
)
def test_discovery(subnets: list[SubnetInfo], scheme: str, expected: list[str]) -> None:
    assert ids(select_subnets(subnets, cluster_id=CLUSTER, scheme=scheme)) == expected
    # the input order does not matter
    reordered = select_subnets(list(reversed(subnets)), cluster_id=CLUSTER, scheme=scheme)
    assert ids(reordered) == expected


def test_none_found_says_why() -> None:
    subnets = [
        sn("subnet-1", tags=OTHER),
        sn("subnet-2", public=False),
        sn("subnet-3", public=False),
    ]
    with pytest.raises(SubnetError) as err:
        select_subnets(subnets, cluster_id=CLUSTER, scheme=PUBLIC)
    assert err.value.reason == "SubnetsNotFound"
    assert "3 subnets seen" in err.value.message
    assert "1 tagged for another cluster" in err.value.message
    assert "2 private" in err.value.message
    assert "kubernetes.io/cluster/prod" in err.value.message
    with pytest.raises(SubnetError) as err:
        select_subnets([], cluster_id=CLUSTER, scheme=INTERNAL)
    assert err.value.reason == "SubnetsNotFound"
    assert "0 subnets seen" in err.value.message


NAMED = [
    sn("subnet-1", "us-east-1a", {"Name": "public-a"}),
    sn("subnet-2", "us-east-1b", {"Name": "public-b"}),
    sn("subnet-3", "us-east-1b", {"Name": "private-b"}, public=False),
    sn("subnet-4", "us-east-1c", {"Name": "dup"}),
    sn("subnet-5", "us-east-1c", {"Name": "dup"}),
    sn("subnet-6", "us-east-1c", tags=OTHER),
]


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (["subnet-2", "subnet-1"], ["subnet-1", "subnet-2"]),
        (["public-b", "public-a"], ["subnet-1", "subnet-2"]),
        (["public-a", "subnet-3"], ["subnet-1", "subnet-3"]),  # private: asked for
        (["subnet-6"], ["subnet-6"]),  # another cluster's tag: asked for
        (["subnet-1", "public-a"], ["subnet-1"]),
    ],
)
def test_requested(requested: list[str], expected: list[str]) -> None:
    got = select_subnets(NAMED, cluster_id=CLUSTER, scheme=PUBLIC, requested=requested)
    assert ids(got) == expected


@pytest.mark.parametrize(
    ("requested", "reason", "words"),
    [
        (["subnet-404", "nope", "public-a"], "SubnetNotFound", ["subnet-404", "nope"]),
        (["dup"], "SubnetNotFound", ["dup", "subnet-4", "subnet-5"]),
        (["subnet-2", "private-b"], "InvalidSubnets", ["us-east-1b"]),
    ],
)
def test_requested_errors(requested: list[str], reason: str, words: list[str]) -> None:
    with pytest.raises(SubnetError) as err:
        select_subnets(NAMED, cluster_id=CLUSTER, scheme=PUBLIC, requested=requested)
    assert err.value.reason == reason
    for word in words:
        assert word in err.value.message
    assert "public-a" not in err.value.message


def test_requested_subnets_in_two_vpcs() -> None:
    subnets = [sn("subnet-1"), sn("subnet-2", "us-east-1b", vpc="vpc-2")]
    with pytest.raises(SubnetError) as err:
        select_subnets(
            subnets, cluster_id=CLUSTER, scheme=PUBLIC, requested=["subnet-1", "subnet-2"]
        )
    assert err.value.reason == "InvalidSubnets"
    assert "vpc-1, vpc-2" in err.value.message
