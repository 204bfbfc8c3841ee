"""Security groups and their ingress rules for lbctl's NLBs (pure): the AWS Load Balancer
Controller's frontend + backend model.

Every NLB has two security groups:

- its Service's **frontend** group (:func:`frontend_group`), whose rules
  (:func:`frontend_rules`) let the clients in: each listener's port (``TCP_UDP``: tcp
  and udp; ``TLS``: tcp) from every source range;
- the cluster's **backend** group (:func:`backend_group`), which has no rule: the node
  security groups let in what comes from it.

The node security groups then hold, whatever the number of Services:

- two cluster rules (:func:`cluster_node_rules`): tcp and udp over the NodePort range
  from the backend group; they belong to no Service and stay;
- per Service, only the ports outside that range its targets need
  (:func:`node_rules`): an ip target's port, a health-check port such as kube-proxy's
  10256 or an annotation's; owned by the Service (:func:`naming.rule_description`).

Fewest rules (the 60-rule quota): per (protocol, source, kind), contiguous ports merge
into one ``from..to`` range. Rules are compared by permission (protocol, ports,
source): a description-only difference is not a change, since EC2 refuses a second rule
with the same permission whatever its description.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from lbctl.domain.service import Service
from providers.aws import naming
from providers.aws.health import TRAFFIC_PORT
from providers.aws.plan import Plan

__all__ = [
    "DEFAULT_NODE_PORT_RANGE",
    "GroupSpec",
    "Permission",
    "Rule",
    "backend_group",
    "cluster_node_rules",
    "frontend_group",
    "frontend_rules",
    "node_rules",
    "owned_rules",
    "parse_ip_permissions",
    "parse_port_range",
    "pick_node_security_group",
    "rule_diff",
]

DEFAULT_NODE_PORT_RANGE: Final = (30000, 32767)
"""Kubernetes' default ``--service-node-port-range``."""

_PROTOCOLS: Final[Mapping[str, tuple[str, ...]]] = {
    "TCP": ("tcp",),
    "TLS": ("tcp",),
    "UDP": ("udp",),
    "TCP_UDP": ("tcp", "udp"),
}

Permission = tuple[str, int, int, str]


@dataclass(frozen=True, order=True, slots=True)
class Rule:
    protocol: str
    """``tcp`` | ``udp``."""
    from_port: int
    to_port: int
    source: str
    """An IPv4 CIDR (``IpRanges``), an IPv6 one (``Ipv6Ranges``) or a security group id
    ``sg-...`` (``UserIdGroupPairs``)."""
    description: str = ""

    @property
    def is_group(self) -> bool:
        """The source is a security group."""
        return self.source.startswith("sg-")

    @property
    def is_v6(self) -> bool:
        return ":" in self.source

    @property
    def permission(self) -> Permission:
        """What EC2 identifies a rule by: everything but the description."""
        return (self.protocol, self.from_port, self.to_port, self.source)

    def to_aws(self) -> dict[str, Any]:
        """One ``IpPermissions`` entry for Authorize/RevokeSecurityGroupIngress."""
        if self.is_group:
            ranges_key, entry = "UserIdGroupPairs", {"GroupId": self.source}
        elif self.is_v6:
            ranges_key, entry = "Ipv6Ranges", {"CidrIpv6": self.source}
        else:
            ranges_key, entry = "IpRanges", {"CidrIp": self.source}
        return {
            "IpProtocol": self.protocol,
            "FromPort": self.from_port,
            "ToPort": self.to_port,
            ranges_key: [{**entry, "Description": self.description}],
        }


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """A security group lbctl creates: name (unique in the VPC), description, tags."""

    name: str
    description: str
    tags: Mapping[str, str]


def frontend_group(cluster_id: str, service: Service) -> GroupSpec:
    """The Service's frontend security group: one per Service (a load balancer that is
    replaced, e.g. on a scheme change, hands it over to the new one)."""
    meta = service.metadata
    return GroupSpec(
        name=naming.security_group_name(cluster_id, service),
        description=f"lbctl frontend of {meta.namespace}/{meta.name} (cluster {cluster_id})",
        tags=naming.ownership_tags(cluster_id, service, naming.RESOURCE_SECURITY_GROUP),
    )


def backend_group(cluster_id: str) -> GroupSpec:
    """The cluster's backend security group (one per VPC)."""
    return GroupSpec(
        name=naming.backend_security_group_name(cluster_id),
        description=f"lbctl backend of the NLBs of cluster {cluster_id}",
        tags=naming.backend_security_group_tags(cluster_id),
    )


def parse_port_range(text: str) -> tuple[int, int]:
    """``"30000-32767"`` as ``(30000, 32767)``; ValueError unless ``1 <= from <= to <=
    65535``."""
    parts = text.split("-") if isinstance(text, str) else []
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"must look like 30000-32767, got {text!r}")
    lo, hi = (int(p) for p in parts)
    if not 1 <= lo <= hi <= 65535:
        raise ValueError(f"must be two ports 1-65535, the first not above the second, got {text!r}")
    return lo, hi


def _ranges(ports: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted ports as maximal contiguous ``(from, to)`` ranges."""
    out: list[tuple[int, int]] = []
    for port in sorted(set(ports)):
        if out and port == out[-1][1] + 1:
            out[-1] = (out[-1][0], port)
        else:
            out.append((port, port))
    return out


def _merged(wanted: Mapping[tuple[str, str], Iterable[int]], description: str) -> set[Rule]:
    return {
        Rule(protocol, lo, hi, source, description)
        for (protocol, source), ports in wanted.items()
        for lo, hi in _ranges(ports)
    }


def frontend_rules(*, cluster_id: str, service_uid: str, plan: Plan) -> frozenset[Rule]:
    """The frontend group's rules: every listener's port from every source range
    (IPv6 ranges as ``Ipv6Ranges``), contiguous ports merged."""
    wanted: dict[tuple[str, str], set[int]] = defaultdict(set)
    for listener in plan.listeners:
        for protocol in _PROTOCOLS[listener.protocol]:
            for cidr in plan.source_ranges:
                wanted[(protocol, cidr)].add(listener.port)
    description = naming.rule_description(cluster_id, service_uid, naming.RULE_CLIENT)
    return frozenset(_merged(wanted, description))


def cluster_node_rules(
    *, cluster_id: str, source_group: str, node_port_range: tuple[int, int]
) -> frozenset[Rule]:
    """The two rules of a node group every Service shares: tcp and udp over the
    NodePort range from the backend group ``source_group``."""
    lo, hi = node_port_range
    description = naming.cluster_rule_description(cluster_id)
    return frozenset(Rule(p, lo, hi, source_group, description) for p in ("tcp", "udp"))


def node_rules(
    *,
    cluster_id: str,
    service_uid: str,
    plan: Plan,
    source_group: str,
    node_port_range: tuple[int, int],
    target_ports: Mapping[str, Iterable[int]] | None = None,
) -> frozenset[Rule]:
    """The Service's own rules in the node groups, from the backend group
    ``source_group``: the ports its targets take traffic on (``client``) and are
    health-checked on (``health``, tcp; left out where a client rule already lets it in),
    less what the cluster rules already open (``node_port_range``, tcp and udp).

    ``target_ports`` maps a target-group key to the ports its targets really listen on:
    pass it for ``ip`` groups (a named ``targetPort`` may differ per pod, and the
    group's own port is then a placeholder); other groups use their port.
    """
    lo, hi = node_port_range
    client: dict[tuple[str, str], set[int]] = defaultdict(set)
    health: dict[tuple[str, str], set[int]] = defaultdict(set)
    for group in plan.target_groups:
        ports = set((target_ports or {}).get(group.key, (group.port,)))
        for protocol in _PROTOCOLS[group.protocol]:
            client[(protocol, source_group)].update(ports)
        hc_ports = ports if group.health.port == TRAFFIC_PORT else {int(group.health.port)}
        health[("tcp", source_group)].update(hc_ports)
    for key, ports in health.items():
        ports.difference_update(client.get(key, ()))
    rules: set[Rule] = set()
    for kind, wanted in ((naming.RULE_CLIENT, client), (naming.RULE_HEALTH, health)):
        outside = {k: {p for p in ports if not lo <= p <= hi} for k, ports in wanted.items()}
        rules |= _merged(outside, naming.rule_description(cluster_id, service_uid, kind))
    return frozenset(rules)


def rule_diff(
    current_owned: Iterable[Rule], desired: Iterable[Rule], *, others: Iterable[Rule] = ()
) -> tuple[tuple[Rule, ...], tuple[Rule, ...]]:
    """``(to authorize, to revoke)``, each sorted, compared by permission.

    ``others``: rules of the group this Service does not own; a desired permission one of
    them already grants is not authorized again (EC2 would refuse the duplicate).
    """
    current = list(current_owned)
    have = {r.permission for r in current}
    want = {r.permission: r for r in sorted(desired)}
    taken = have | {r.permission for r in others}
    authorize = tuple(sorted(r for p, r in want.items() if p not in taken))
    revoke = tuple(sorted(r for r in current if r.permission not in want))
    return authorize, revoke


def parse_ip_permissions(permissions: Iterable[Mapping[str, Any]]) -> tuple[Rule, ...]:
    """The tcp/udp rules of a DescribeSecurityGroups ``IpPermissions`` list, from CIDRs
    and from security groups, sorted (rules on other protocols or from prefix lists are
    left out)."""
    rules: list[Rule] = []
    for perm in permissions:
        protocol = str(perm.get("IpProtocol", ""))
        if protocol not in ("tcp", "udp"):
            continue
        lo, hi = int(perm.get("FromPort", 0)), int(perm.get("ToPort", 0))
        sources = [
            *((str(r["CidrIp"]), r) for r in perm.get("IpRanges") or ()),
            *((str(r["CidrIpv6"]), r) for r in perm.get("Ipv6Ranges") or ()),
            *((str(r["GroupId"]), r) for r in perm.get("UserIdGroupPairs") or () if "GroupId" in r),
        ]
        for source, entry in sources:
            rules.append(Rule(protocol, lo, hi, source, str(entry.get("Description", ""))))
    return tuple(sorted(rules))


def owned_rules(
    rules: Iterable[Rule], cluster_id: str, service_uid: str | None = None
) -> tuple[Rule, ...]:
    """The rules whose description says lbctl of ``cluster_id`` made them for a Service
    (``service_uid`` only, if given); never the cluster rules."""
    owner = naming.cluster_hash(cluster_id)
    out = []
    for rule in rules:
        parsed = naming.parse_rule_description(rule.description)
        if parsed and parsed[0] == owner and service_uid in (None, parsed[1]):
            out.append(rule)
    return tuple(out)


def pick_node_security_group(
    groups: Sequence[tuple[str, Mapping[str, str]]], cluster_id: str
) -> str | None:
    """The security group to open on the nodes, as cloud-provider-aws picks it among a
    node's groups ``(id, tags)``: the one tagged ``kubernetes.io/cluster/<id>``; else
    the only group if there is just one; None if ambiguous (several tagged, or several
    and none tagged)."""
    tag = naming.cluster_tag_key(cluster_id)
    tagged = sorted({gid for gid, tags in groups if tag in tags})
    if len(tagged) == 1:
        return tagged[0]
    ids = {gid for gid, _ in groups}
    if not tagged and len(ids) == 1:
        return next(iter(ids))
    return None
