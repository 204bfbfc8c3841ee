"""Ingress rules of the node security group for one Service's NLB (pure).

An NLB has no security group here: traffic reaches the targets with the client's
address (client IP preservation), so the targets' security group must let it in.

- ``client`` rules: each target group's port(s) (``TCP_UDP``: tcp and udp) from every
  source range. When the group does not preserve the client IP (ip targets over TCP by
  default), traffic comes from the NLB's own addresses: the sources are then the NLB
  subnets' CIDRs.
- ``health`` rules: the health-check port over tcp (HTTP(S) checks are TCP too; the
  traffic port is the group's port) from every NLB subnet CIDR, left out where a client
  rule already lets that traffic in (same protocol and port, a source containing the
  subnet).
- Fewest rules (the 60-rule quota): per (protocol, source, kind), contiguous ports
  merge into one ``from..to`` range.

Ownership: the description ``lbctl:<cluster-hash8>:<service-uid>:<kind>``
(:func:`naming.rule_description`). Rules are compared by permission (protocol, ports,
source): a description-only difference is not a change, since EC2 refuses a second rule
with the same permission whatever its description.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from providers.aws import naming
from providers.aws.health import TRAFFIC_PORT
from providers.aws.plan import Plan, preserves_client_ip

__all__ = [
    "Rule",
    "desired_rules",
    "owned_rules",
    "parse_ip_permissions",
    "pick_node_security_group",
    "rule_diff",
]

_PROTOCOLS: Final[Mapping[str, tuple[str, ...]]] = {
    "TCP": ("tcp",),
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
    cidr: str
    """An IPv4 CIDR (``IpRanges``) or, if :attr:`is_v6`, an IPv6 one (``Ipv6Ranges``)."""
    description: str = ""

    @property
    def is_v6(self) -> bool:
        return ":" in self.cidr

    @property
    def permission(self) -> Permission:
        """What EC2 identifies a rule by: everything but the description."""
        return (self.protocol, self.from_port, self.to_port, self.cidr)

    def to_aws(self) -> dict[str, Any]:
        """One ``IpPermissions`` entry for Authorize/RevokeSecurityGroupIngress."""
        ranges_key, cidr_key = ("Ipv6Ranges", "CidrIpv6") if self.is_v6 else ("IpRanges", "CidrIp")
        return {
            "IpProtocol": self.protocol,
            "FromPort": self.from_port,
            "ToPort": self.to_port,
            ranges_key: [{cidr_key: self.cidr, "Description": self.description}],
        }


def _ranges(ports: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted ports as maximal contiguous ``(from, to)`` ranges."""
    out: list[tuple[int, int]] = []
    for port in sorted(set(ports)):
        if out and port == out[-1][1] + 1:
            out[-1] = (out[-1][0], port)
        else:
            out.append((port, port))
    return out


def _contains(outer: str, inner: str) -> bool:
    a = ipaddress.ip_network(outer, strict=False)
    b = ipaddress.ip_network(inner, strict=False)
    return a.version == b.version and b.subnet_of(a)  # type: ignore[arg-type]


def desired_rules(
    *,
    cluster_id: str,
    service_uid: str,
    plan: Plan,
    subnet_cidrs: Sequence[str],
    target_ports: Mapping[str, Iterable[int]] | None = None,
) -> frozenset[Rule]:
    """The rules the Service's NLB needs (module rules).

    ``target_ports`` maps a target-group key to the ports its targets really listen on:
    pass it for ``ip`` groups (a named ``targetPort`` may differ per pod, and the
    group's own port is then a placeholder); other groups use their port.
    """
    client: dict[tuple[str, str], set[int]] = defaultdict(set)
    health: dict[tuple[str, str], set[int]] = defaultdict(set)
    for group in plan.target_groups:
        ports = set((target_ports or {}).get(group.key, (group.port,)))
        keeps_ip = preserves_client_ip(group.target_type, group.protocol, group.attributes)
        sources = plan.source_ranges if keeps_ip else tuple(subnet_cidrs)
        for protocol in _PROTOCOLS[group.protocol]:
            for cidr in sources:
                client[(protocol, cidr)].update(ports)
        hc_ports = ports if group.health.port == TRAFFIC_PORT else {int(group.health.port)}
        for cidr in subnet_cidrs:
            health[("tcp", cidr)].update(hc_ports)
    for (protocol, cidr), ports in health.items():
        ports.difference_update(
            {
                port
                for (c_protocol, c_cidr), c_ports in client.items()
                if c_protocol == protocol and _contains(c_cidr, cidr)
                for port in c_ports
            }
        )
    rules: set[Rule] = set()
    for kind, wanted in ((naming.RULE_CLIENT, client), (naming.RULE_HEALTH, health)):
        description = naming.rule_description(cluster_id, service_uid, kind)
        for (protocol, cidr), ports in wanted.items():
            rules.update(Rule(protocol, lo, hi, cidr, description) for lo, hi in _ranges(ports))
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
    """The tcp/udp CIDR rules of a DescribeSecurityGroups ``IpPermissions`` list, sorted
    (rules on other protocols or from other security groups are left out)."""
    rules: list[Rule] = []
    for perm in permissions:
        protocol = str(perm.get("IpProtocol", ""))
        if protocol not in ("tcp", "udp"):
            continue
        lo, hi = int(perm.get("FromPort", 0)), int(perm.get("ToPort", 0))
        for r in perm.get("IpRanges", ()):
            rules.append(Rule(protocol, lo, hi, str(r["CidrIp"]), str(r.get("Description", ""))))
        for r in perm.get("Ipv6Ranges", ()):
            rules.append(Rule(protocol, lo, hi, str(r["CidrIpv6"]), str(r.get("Description", ""))))
    return tuple(sorted(rules))


def owned_rules(
    rules: Iterable[Rule], cluster_id: str, service_uid: str | None = None
) -> tuple[Rule, ...]:
    """The rules whose description says lbctl of ``cluster_id`` made them (for
    ``service_uid`` only, if given)."""
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
