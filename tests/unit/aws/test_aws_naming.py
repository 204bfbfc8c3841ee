"""providers.aws.naming: names within ELBv2's rules, ownership tags, rule descriptions."""

from __future__ import annotations

import hashlib
import re
import uuid

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from lbctl.domain.service import Service
from providers.aws import naming

UID = "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
ELB_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
EC2_DESCRIPTION_RE = re.compile(r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*")


def service(name: str = "web", namespace: str = "shop", uid: str = UID) -> Service:
    return Service.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
            "spec": {
                "type": "LoadBalancer",
                "ports": [{"name": "http", "protocol": "TCP", "port": 80, "nodePort": 30080}],
            },
        }
    )


def test_cluster_hash_is_the_sha256_prefix() -> None:
    assert naming.cluster_hash("prod") == hashlib.sha256(b"prod").hexdigest()[:8]
    assert re.fullmatch(r"[0-9a-f]{8}", naming.cluster_hash(""))
    assert naming.cluster_hash("prod") != naming.cluster_hash("prod2")


@pytest.mark.parametrize(
    ("namespace", "name", "prefix"),
    [
        ("shop", "web", "k8s-shop-web-"),
        ("production-east", "frontend-api", "k8s-producti-frontend-"),
        ("abcdefg-xyz", "web", "k8s-abcdefg-web-"),  # "abcdefg-" loses its trailing "-"
        ("shop", "a-------b", "k8s-shop-a-"),
        ("--------x", "web", "k8s-web-"),  # a segment that strips to nothing is dropped
    ],
)
def test_load_balancer_name_shape(namespace: str, name: str, prefix: str) -> None:
    got = naming.load_balancer_name("prod", service(name, namespace), "internet-facing")
    assert got.startswith(prefix)
    assert re.fullmatch(r"[0-9a-f]{10}", got.removeprefix(prefix))
    assert len(got) <= naming.MAX_NAME_LEN
    assert ELB_NAME_RE.fullmatch(got)


def test_load_balancer_name_changes_with_cluster_uid_and_scheme() -> None:
    base = naming.load_balancer_name("prod", service(), "internet-facing")
    assert base == naming.load_balancer_name("prod", service(), "internet-facing")
    assert base != naming.load_balancer_name("staging", service(), "internet-facing")
    assert base != naming.load_balancer_name(
        "prod", service(uid=str(uuid.uuid4())), "internet-facing"
    )
    assert base != naming.load_balancer_name("prod", service(), "internal")


names = st.text(alphabet=st.characters(codec="utf-8"), max_size=70)


@given(
    namespace=names,
    name=names,
    uid=st.uuids().map(str),
    cluster_a=st.text(min_size=1, max_size=40),
    cluster_b=st.text(min_size=1, max_size=40),
)
def test_names_are_valid_deterministic_and_per_cluster(
    namespace: str, name: str, uid: str, cluster_a: str, cluster_b: str
) -> None:
    assume(cluster_a != cluster_b)
    svc = service(name, namespace, uid)
    for scheme in ("internet-facing", "internal"):
        got = naming.load_balancer_name(cluster_a, svc, scheme)
        assert len(got) <= naming.MAX_NAME_LEN
        assert ELB_NAME_RE.fullmatch(got), got
        assert got == naming.load_balancer_name(cluster_a, service(name, namespace, uid), scheme)
        assert got != naming.load_balancer_name(cluster_b, svc, scheme)
    tg = naming.target_group_name(cluster_a, svc, "443/TCP", ("30443", "instance", "TCP"))
    assert len(tg) <= naming.MAX_NAME_LEN
    assert ELB_NAME_RE.fullmatch(tg), tg
    assert tg != naming.target_group_name(cluster_b, svc, "443/TCP", ("30443", "instance", "TCP"))


def test_target_group_name_covers_key_and_replace_inputs() -> None:
    svc = service()
    base = naming.target_group_name("prod", svc, "443/TCP", ("30443", "instance", "TCP"))
    assert base.startswith("k8s-shop-web-")
    assert base == naming.target_group_name("prod", svc, "443/TCP", ("30443", "instance", "TCP"))
    others = {
        naming.target_group_name("prod", svc, "443/TCP_UDP", ("30443", "instance", "TCP")),
        naming.target_group_name("prod", svc, "8443/TCP", ("30443", "instance", "TCP")),
        naming.target_group_name("prod", svc, "443/TCP", ("30444", "instance", "TCP")),
        naming.target_group_name("prod", svc, "443/TCP", ("30443", "ip", "TCP")),
        naming.target_group_name("prod", svc, "443/TCP", ("30443", "instance", "HTTP")),
        naming.target_group_name(
            "prod", service(uid="other"), "443/TCP", ("30443", "instance", "TCP")
        ),
    }
    assert base not in others
    assert len(others) == 6


def test_ownership_tags() -> None:
    lb = naming.ownership_tags("prod", service(), naming.RESOURCE_LOAD_BALANCER)
    assert lb == {
        "lbctl.io/cluster": "prod",
        "kubernetes.io/cluster/prod": "owned",
        "lbctl.io/service": "shop/web",
        "lbctl.io/service-uid": UID,
        "lbctl.io/resource": "loadbalancer",
    }
    tg = naming.ownership_tags("prod", service(), naming.RESOURCE_TARGET_GROUP, "53/TCP_UDP")
    assert tg["lbctl.io/resource"] == "targetgroup"
    assert tg["lbctl.io/port"] == "53/TCP_UDP"
    with pytest.raises(ValueError, match="unknown resource"):
        naming.ownership_tags("prod", service(), "listener")


def test_owned_by_and_service_uid_of() -> None:
    tags = naming.ownership_tags("prod", service(), naming.RESOURCE_LOAD_BALANCER)
    assert naming.owned_by(tags, "prod")
    assert not naming.owned_by(tags, "staging")
    assert not naming.owned_by({"kubernetes.io/cluster/prod": "owned"}, "prod")
    assert naming.service_uid_of(tags) == UID
    assert naming.service_uid_of({}) is None
    assert naming.service_uid_of({"lbctl.io/service-uid": ""}) is None


@pytest.mark.parametrize(
    ("key", "reserved"),
    [
        ("lbctl.io/cluster", True),
        ("lbctl.io/port", True),
        ("lbctl.io/additional-tags", True),
        ("kubernetes.io/cluster/anything", True),
        ("aws:cloudformation:stack-id", True),
        ("team", False),
        ("lbctl.io/team", False),
        ("kubernetes.io/role/elb", False),
    ],
)
def test_reserved_tag_keys(key: str, reserved: bool) -> None:
    assert naming.is_reserved_tag_key(key) is reserved


@given(
    uid=st.uuids().map(str),
    cluster=st.text(max_size=50),
    kind=st.sampled_from(["client", "health"]),
)
def test_rule_description_round_trip(uid: str, cluster: str, kind: str) -> None:
    desc = naming.rule_description(cluster, uid, kind)
    assert EC2_DESCRIPTION_RE.fullmatch(desc)
    assert len(desc) <= 255
    assert naming.parse_rule_description(desc) == (naming.cluster_hash(cluster), uid, kind)


@pytest.mark.parametrize(
    "desc",
    [
        "",
        "kubernetes.io/rule/nlb/client=a123",
        "lbctl:1234567:uid:client",
        "lbctl:12345678:uid:mtu",
        "lbctl:12345678::client",
        "lbctl:12345678:uid:client:extra",
        "xlbctl:12345678:uid:client",
    ],
)
def test_parse_rule_description_rejects_foreign_text(desc: str) -> None:
    assert naming.parse_rule_description(desc) is None


def test_rule_description_refuses_bad_kind_and_uid() -> None:
    with pytest.raises(ValueError, match="client or health"):
        naming.rule_description("prod", UID, "mtu")
    with pytest.raises(ValueError, match="service uid"):
        naming.rule_description("prod", "", "client")
    with pytest.raises(ValueError, match="service uid"):
        naming.rule_description("prod", "a:b", "client")


def test_additional_tags_record_fits_a_tag_value_and_finds_our_keys_only() -> None:
    keys = [f"{i:03d}" + "k" * 125 for i in range(40)]
    record = naming.additional_tags_record(keys)
    assert len(record) <= 256
    assert re.fullmatch(r"[a-z2-7 ]*", record)
    current = dict.fromkeys(keys, "v") | {
        "added-by-hand": "x",
        naming.TAG_ADDITIONAL: record,
        "lbctl.io/cluster": "prod",
    }
    managed = naming.managed_tag_keys(current)
    assert managed[0] == naming.TAG_ADDITIONAL
    assert set(managed[1:]) == set(keys)
    assert naming.managed_tag_keys({"team": "x"}) == ()
    assert naming.managed_tag_keys({naming.TAG_ADDITIONAL: ""}) == (naming.TAG_ADDITIONAL,)


def test_security_group_names() -> None:
    frontend = naming.security_group_name("prod", service())
    assert frontend.startswith("k8s-shop-web-") and len(frontend) <= naming.MAX_NAME_LEN
    assert ELB_NAME_RE.fullmatch(frontend) and not frontend.startswith("sg-")
    assert frontend == naming.security_group_name("prod", service())
    assert frontend != naming.security_group_name("staging", service())
    assert frontend != naming.security_group_name("prod", service(uid=str(uuid.uuid4())))
    for scheme in ("internet-facing", "internal"):  # one per Service, not per NLB
        assert frontend != naming.load_balancer_name("prod", service(), scheme)
    backend = naming.backend_security_group_name("prod")
    assert re.fullmatch(r"k8s-traffic-prod-[0-9a-f]{10}", backend)
    assert re.fullmatch(r"k8s-traffic-[0-9a-f]{10}", naming.backend_security_group_name("_._"))
    assert backend != naming.backend_security_group_name("prod2")


def test_security_group_tags() -> None:
    tags = naming.ownership_tags("prod", service(), naming.RESOURCE_SECURITY_GROUP)
    assert tags[naming.TAG_RESOURCE] == "securitygroup"
    assert naming.service_uid_of(tags) == UID and naming.owned_by(tags, "prod")
    backend = naming.backend_security_group_tags("prod")
    assert backend == {
        naming.TAG_CLUSTER: "prod",
        "kubernetes.io/cluster/prod": "owned",
        naming.TAG_RESOURCE: "backend-securitygroup",
    }
    assert naming.owned_by(backend, "prod") and naming.service_uid_of(backend) is None


def test_the_cluster_rule_description_is_no_services() -> None:
    desc = naming.cluster_rule_description("prod")
    assert desc == f"lbctl:{naming.cluster_hash('prod')}:cluster:nodeports"
    assert EC2_DESCRIPTION_RE.fullmatch(desc)
    assert naming.parse_rule_description(desc) is None
