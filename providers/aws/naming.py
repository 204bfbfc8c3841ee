"""Names and ownership markers of the AWS resources lbctl creates (pure).

Load balancers, target groups and the Services' frontend security groups are named
``k8s-{ns[:8]}-{name[:8]}-{hash10}`` (at most 32 characters, ELBv2's limit). The hash
covers the cluster id and the Service UID, so two clusters, or a deleted and re-created
Service, never share a name; it also covers what AWS cannot change in place (the scheme
of a load balancer and whether it has security groups; the port, protocol, target type
and health-check protocol of a target group), so a change there gives a new name and the
old resource is replaced. The cluster's backend security group is
``k8s-traffic-{cluster[:8]}-{hash10}``.

Ownership is recorded in tags (load balancers, target groups, security groups) and, for
security-group rules, which cannot carry tags of their own here, in the rule description:
``lbctl:<cluster-hash8>:<service-uid>:<kind>`` for a Service's rule,
``lbctl:<cluster-hash8>:cluster:nodeports`` for the two rules every Service shares.

Additional tags (annotation ``additional-resource-tags``) are recorded in the tag
:data:`TAG_ADDITIONAL`: a digest of each key, so that a later reconcile removes the
keys no longer asked for and never a tag a human added by hand
(see :func:`managed_tag_keys`).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Final

from lbctl.domain.service import Service

__all__ = [
    "CLUSTER_TAG_PREFIX",
    "MAX_NAME_LEN",
    "RESOURCE_BACKEND_SECURITY_GROUP",
    "RESOURCE_LOAD_BALANCER",
    "RESOURCE_SECURITY_GROUP",
    "RESOURCE_TARGET_GROUP",
    "RULE_CLIENT",
    "RULE_HEALTH",
    "TAG_ADDITIONAL",
    "TAG_CLUSTER",
    "TAG_PORT",
    "TAG_RESOURCE",
    "TAG_SERVICE",
    "TAG_SERVICE_UID",
    "additional_tags_record",
    "backend_security_group_name",
    "backend_security_group_tags",
    "cluster_hash",
    "cluster_rule_description",
    "cluster_tag_key",
    "is_reserved_tag_key",
    "load_balancer_name",
    "managed_tag_keys",
    "owned_by",
    "ownership_tags",
    "parse_rule_description",
    "rule_description",
    "security_group_name",
    "service_uid_of",
    "tag_key_digest",
    "target_group_name",
]

MAX_NAME_LEN: Final = 32
"""ELBv2 load-balancer and target-group names are at most 32 characters."""

TAG_CLUSTER: Final = "lbctl.io/cluster"
TAG_SERVICE: Final = "lbctl.io/service"
TAG_SERVICE_UID: Final = "lbctl.io/service-uid"
TAG_RESOURCE: Final = "lbctl.io/resource"
TAG_PORT: Final = "lbctl.io/port"
TAG_ADDITIONAL: Final = "lbctl.io/additional-tags"
CLUSTER_TAG_PREFIX: Final = "kubernetes.io/cluster/"

RESOURCE_LOAD_BALANCER: Final = "loadbalancer"
RESOURCE_TARGET_GROUP: Final = "targetgroup"
RESOURCE_SECURITY_GROUP: Final = "securitygroup"
"""A Service's frontend security group (attached to its NLB)."""
RESOURCE_BACKEND_SECURITY_GROUP: Final = "backend-securitygroup"
"""The cluster's backend security group (attached to every NLB; no Service owns it)."""
RULE_CLIENT: Final = "client"
RULE_HEALTH: Final = "health"

_RESERVED_KEYS: Final = frozenset(
    {TAG_CLUSTER, TAG_SERVICE, TAG_SERVICE_UID, TAG_RESOURCE, TAG_PORT, TAG_ADDITIONAL}
)
_NOT_NAME_CHAR: Final = re.compile(r"[^A-Za-z0-9-]")
_UID_RE: Final = re.compile(r"[A-Za-z0-9._-]+")
_RULE_RE: Final = re.compile(r"lbctl:([0-9a-f]{8}):([A-Za-z0-9._-]+):(client|health)")
_DIGEST_LEN: Final = 5


def _digest(*parts: str) -> str:
    """sha256 over ``parts`` joined by NUL (no two part lists give the same input)."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def cluster_hash(cluster_id: str) -> str:
    """The first 8 hex characters of ``sha256(cluster_id)``."""
    return _digest(cluster_id)[:8]


def cluster_tag_key(cluster_id: str) -> str:
    """``kubernetes.io/cluster/<cluster id>``, the tag cloud-provider-aws looks for."""
    return CLUSTER_TAG_PREFIX + cluster_id


def _segment(text: str) -> str:
    return _NOT_NAME_CHAR.sub("", text)[:8].strip("-")


def _name(service: Service, hash10: str) -> str:
    parts = ["k8s", _segment(service.metadata.namespace), _segment(service.metadata.name)]
    return "-".join([p for p in parts if p] + [hash10])


_WITH_SECURITY_GROUPS: Final = "security-groups"
"""In the load-balancer name hash: an NLB made without security groups (older lbctl)
never gets any, so the ones that have them are named apart and replace it."""


def load_balancer_name(cluster_id: str, service: Service, scheme: str) -> str:
    """``k8s-{ns[:8]}-{name[:8]}-{sha256(cluster id, uid, scheme, ...)[:10]}``.

    At most 32 characters of ``[A-Za-z0-9-]``, never starting or ending with ``-``.
    A new scheme gives a new name: AWS cannot change the scheme in place (nor add
    security groups to an NLB made without: the hash says it has them).
    """
    return _name(
        service,
        _digest(cluster_id, service.metadata.uid, str(scheme), _WITH_SECURITY_GROUPS)[:10],
    )


def security_group_name(cluster_id: str, service: Service) -> str:
    """The Service's frontend security group: ``k8s-{ns[:8]}-{name[:8]}-{hash10}``, one
    per Service whatever its scheme (a replaced load balancer takes it over)."""
    return _name(service, _digest(cluster_id, service.metadata.uid, RESOURCE_SECURITY_GROUP)[:10])


def backend_security_group_name(cluster_id: str) -> str:
    """The cluster's backend security group: ``k8s-traffic-{cluster[:8]}-{hash10}``."""
    parts = ["k8s", "traffic", _segment(cluster_id)]
    hash10 = _digest(cluster_id, RESOURCE_BACKEND_SECURITY_GROUP)[:10]
    return "-".join([p for p in parts if p] + [hash10])


def backend_security_group_tags(cluster_id: str) -> dict[str, str]:
    """The tags of the cluster's backend security group (no Service, no UID)."""
    return {
        TAG_CLUSTER: cluster_id,
        cluster_tag_key(cluster_id): "owned",
        TAG_RESOURCE: RESOURCE_BACKEND_SECURITY_GROUP,
    }


def target_group_name(
    cluster_id: str, service: Service, key: str, replace_inputs: Iterable[str] = ()
) -> str:
    """``k8s-{ns[:8]}-{name[:8]}-{hash10}`` for the target group ``key`` (``443/TCP``).

    The hash covers the cluster id, the UID, ``key`` (listener port and group protocol)
    and ``replace_inputs``: what cannot be modified in place (the plan passes the target
    port, the target type and the health-check protocol).
    """
    return _name(service, _digest(cluster_id, service.metadata.uid, key, *replace_inputs)[:10])


def ownership_tags(
    cluster_id: str, service: Service, resource: str, port: str | None = None
) -> dict[str, str]:
    """The tags that mark a load balancer, target group or frontend security group as
    this Service's.

    ``resource`` is :data:`RESOURCE_LOAD_BALANCER`, :data:`RESOURCE_TARGET_GROUP` or
    :data:`RESOURCE_SECURITY_GROUP`; ``port`` (target groups) is the group's key,
    ``<port>/<protocol>``.
    """
    if resource not in (RESOURCE_LOAD_BALANCER, RESOURCE_TARGET_GROUP, RESOURCE_SECURITY_GROUP):
        raise ValueError(f"unknown resource kind {resource!r}")
    meta = service.metadata
    tags = {
        TAG_CLUSTER: cluster_id,
        cluster_tag_key(cluster_id): "owned",
        TAG_SERVICE: f"{meta.namespace}/{meta.name}",
        TAG_SERVICE_UID: meta.uid,
        TAG_RESOURCE: resource,
    }
    if port is not None:
        tags[TAG_PORT] = port
    return tags


def is_reserved_tag_key(key: str) -> bool:
    """Keys an additional tag may not set: lbctl's own, any cluster tag, ``aws:*``."""
    return key in _RESERVED_KEYS or key.startswith((CLUSTER_TAG_PREFIX, "aws:"))


def owned_by(tags: Mapping[str, str], cluster_id: str) -> bool:
    """True if the resource's tags say it belongs to ``cluster_id``."""
    return tags.get(TAG_CLUSTER) == cluster_id


def service_uid_of(tags: Mapping[str, str]) -> str | None:
    """The UID of the owning Service, or None if the tags do not name one."""
    return tags.get(TAG_SERVICE_UID) or None


def tag_key_digest(key: str) -> str:
    """A 5-character digest of a tag key (lowercase base32; fits a tag value)."""
    raw = hashlib.sha256(key.encode()).digest()
    return base64.b32encode(raw).decode().lower()[:_DIGEST_LEN]


def additional_tags_record(keys: Iterable[str]) -> str:
    """The value of :data:`TAG_ADDITIONAL` for these additional tag keys.

    Space-separated sorted digests: 40 keys take 239 characters (tag values: 256).
    """
    return " ".join(sorted({tag_key_digest(k) for k in keys}))


def managed_tag_keys(tags: Mapping[str, str]) -> tuple[str, ...]:
    """The keys of ``tags`` lbctl set as additional tags (read from the record), plus the
    record itself; pass them to ``plan.tag_changes`` as ``managed_keys``."""
    record = tags.get(TAG_ADDITIONAL)
    if record is None:
        return ()
    digests = set(record.split())
    keys = {k for k in tags if not is_reserved_tag_key(k) and tag_key_digest(k) in digests}
    return (TAG_ADDITIONAL, *sorted(keys))


def rule_description(cluster_id: str, service_uid: str, kind: str) -> str:
    """``lbctl:<cluster-hash8>:<service-uid>:<kind>``, kind ``client`` or ``health``.

    Uses only characters EC2 accepts in a rule description.
    """
    if kind not in (RULE_CLIENT, RULE_HEALTH):
        raise ValueError(f"rule kind must be client or health, not {kind!r}")
    if _UID_RE.fullmatch(service_uid) is None:
        raise ValueError(f"service uid {service_uid!r} is empty or has unexpected characters")
    return f"lbctl:{cluster_hash(cluster_id)}:{service_uid}:{kind}"


def cluster_rule_description(cluster_id: str) -> str:
    """``lbctl:<cluster-hash8>:cluster:nodeports``: the node security group's rules from
    the backend security group over the NodePort range, which belong to no Service (no
    Service rule parses to it: the kind is neither client nor health)."""
    return f"lbctl:{cluster_hash(cluster_id)}:cluster:nodeports"


def parse_rule_description(desc: str) -> tuple[str, str, str] | None:
    """``(cluster hash, service uid, kind)`` of an lbctl rule description, else None."""
    match = _RULE_RE.fullmatch(desc)
    if match is None:
        return None
    return match.group(1), match.group(2), match.group(3)
