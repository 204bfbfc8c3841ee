"""ClusterIP and IP-family rules of kube-apiserver's Service validation.

:func:`cluster_ip_field_errors` is upstream's ``ValidateServiceClusterIPsRelatedFields``
(also run before IP families are defaulted); the ``*_update_errors`` functions are
the upgrade / downgrade rules of ``ValidateServiceUpdate``.  :class:`GoLiteral`
renders bad values the way kube-apiserver 1.34 prints them (JSON: ``["10.0.0.1"]``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Final

from lbctl.domain import names
from lbctl.domain.fielderrors import FieldError, Path, duplicate, invalid, not_supported, required
from lbctl.domain.service import (
    NONE_IP,
    IPFamily,
    IPFamilyPolicy,
    Service,
    ServiceSpec,
    ServiceType,
)

__all__ = [
    "GoLiteral",
    "cluster_ip_field_errors",
    "cluster_ips_update_errors",
    "go_families",
    "go_quote",
    "go_strings",
    "ip_families_update_errors",
    "is_headless",
]

_CHANGED: Final = "may not change once set"
_SPEC: Final = Path.root("spec")
_CLUSTER_IPS: Final = _SPEC.child("clusterIPs")
_IP_FAMILIES: Final = _SPEC.child("ipFamilies")
_POLICY: Final = _SPEC.child("ipFamilyPolicy")


class GoLiteral:
    """A bad value shown exactly as Go's ``%#v`` printed it."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoLiteral) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def go_quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def go_strings(values: Sequence[str]) -> GoLiteral:
    """A ``[]string`` bad value: JSON, as field errors render it since Kubernetes 1.32
    (``null`` when empty)."""
    if not values:
        return GoLiteral("null")
    return GoLiteral(json.dumps(list(values), ensure_ascii=False, separators=(",", ":")))


def go_families(values: Sequence[str]) -> GoLiteral:
    """A ``[]core.IPFamily`` bad value (JSON, like :func:`go_strings`)."""
    return go_strings(values)


def _sorted(values: Iterable[str]) -> list[str]:
    return sorted(str(v) for v in values)


def is_headless(spec: ServiceSpec) -> bool:
    """Headless as validation sees it: ``clusterIPs`` is exactly ``["None"]``."""
    return len(spec.cluster_ips) == 1 and spec.cluster_ips[0] == NONE_IP


def cluster_ip_field_errors(svc: Service) -> list[FieldError]:
    """clusterIP / clusterIPs / ipFamilies / ipFamilyPolicy, alone and together."""
    spec = svc.spec
    if spec.type == ServiceType.EXTERNAL_NAME:
        return []
    errors: list[FieldError] = []
    ips = spec.cluster_ips
    if spec.cluster_ip:
        if not ips:
            errors.append(required(_CLUSTER_IPS))
        elif ips[0] != spec.cluster_ip:
            errors.append(
                invalid(_CLUSTER_IPS, go_strings(ips), "first value must match `clusterIP`")
            )
    elif ips:
        errors.append(
            invalid(
                _CLUSTER_IPS, go_strings(ips), "must be empty when `clusterIP` is not specified"
            )
        )
    seen: set[str] = set()
    for i, family in enumerate(spec.ip_families):
        if family not in set(IPFamily):
            errors.append(not_supported(_IP_FAMILIES.index(i), family, _sorted(IPFamily)))
        if family in seen:
            errors.append(duplicate(_IP_FAMILIES.index(i), family))
        seen.add(family)
    policy = spec.ip_family_policy
    if policy is not None and policy not in set(IPFamilyPolicy):
        errors.append(not_supported(_POLICY, policy, _sorted(IPFamilyPolicy)))
    bad_ips = False
    for i, ip in enumerate(ips):
        if i == 0 and ip == NONE_IP:
            if len(ips) > 1:
                bad_ips = True
                errors.append(
                    invalid(
                        _CLUSTER_IPS, go_strings(ips), "'None' must be the first and only value"
                    )
                )
            continue
        messages = names.ip_errors(ip)
        bad_ips = bad_ips or bool(messages)
        errors.extend(invalid(_CLUSTER_IPS.index(i), ip, m) for m in messages)
    if len(ips) > 2:
        errors.append(invalid(_CLUSTER_IPS, go_strings(ips), "may only hold up to 2 values"))
    if bad_ips:
        return errors
    if len(ips) > 1:
        families = {names.ip_family_of(ip) for ip in ips}
        if not {IPFamily.IPV4, IPFamily.IPV6} <= families:
            errors.append(
                invalid(
                    _CLUSTER_IPS,
                    go_strings(ips),
                    "may specify no more than one IP for each IP family",
                )
            )
    if not is_headless(spec) and ips and spec.ip_families:
        for i, (ip, family) in enumerate(zip(ips, spec.ip_families, strict=False)):
            actual = names.ip_family_of(ip)
            if family == IPFamily.IPV4 and actual == IPFamily.IPV6:
                detail = f"expected an IPv4 value as indicated by `ipFamilies[{i}]`"
                errors.append(invalid(_CLUSTER_IPS.index(i), ip, detail))
            if family == IPFamily.IPV6 and actual != IPFamily.IPV6:
                detail = f"expected an IPv6 value as indicated by `ipFamilies[{i}]`"
                errors.append(invalid(_CLUSTER_IPS.index(i), ip, detail))
    return errors


def cluster_ips_update_errors(new: ServiceSpec, old: ServiceSpec) -> list[FieldError]:
    if ServiceType.EXTERNAL_NAME in (new.type, old.type):
        return []
    if is_headless(new) and is_headless(old):
        return []
    errors: list[FieldError] = []
    shown = go_strings(new.cluster_ips)
    first = _CLUSTER_IPS.index(0)
    new_ips, old_ips = new.cluster_ips, old.cluster_ips
    if len(old_ips) == len(new_ips):
        errors.extend(
            invalid(_CLUSTER_IPS.index(i), shown, _CHANGED)
            for i, ip in enumerate(old_ips)
            if ip != new_ips[i]
        )
    elif len(old_ips) > len(new_ips):
        if not new_ips:
            errors.append(invalid(first, shown, "primary clusterIP can not be unset"))
        if old_ips and new_ips and new_ips[0] != old_ips[0]:
            errors.append(invalid(first, shown, _CHANGED))
        if len(new_ips) == 1 and new.ip_family_policy != IPFamilyPolicy.SINGLE_STACK:
            detail = "must be set to 'SingleStack' when releasing the secondary clusterIP"
            errors.append(invalid(_POLICY, new.ip_family_policy, detail))
    elif old_ips and new_ips[0] != old_ips[0]:
        errors.append(invalid(first, shown, _CHANGED))
    return errors


def ip_families_update_errors(new: ServiceSpec, old: ServiceSpec) -> list[FieldError]:
    if ServiceType.EXTERNAL_NAME in (new.type, old.type):
        return []
    if is_headless(new) or is_headless(old):
        return []
    errors: list[FieldError] = []
    first = _IP_FAMILIES.index(0)
    new_fams, old_fams = new.ip_families, old.ip_families
    if len(old_fams) == len(new_fams):
        errors.extend(
            invalid(first, go_families(new_fams), _CHANGED)
            for i, fam in enumerate(old_fams)
            if fam != new_fams[i]
        )
    elif len(old_fams) > len(new_fams):
        if not new.cluster_ips:
            errors.append(
                invalid(first, go_families(new_fams), "primary ipFamily can not be unset")
            )
        if new_fams and new_fams[0] != old_fams[0]:
            errors.append(invalid(first, go_strings(new.cluster_ips), _CHANGED))
        if len(new_fams) == 1 and new.ip_family_policy != IPFamilyPolicy.SINGLE_STACK:
            detail = "must be set to 'SingleStack' when releasing the secondary ipFamily"
            errors.append(invalid(_POLICY, new.ip_family_policy, detail))
    elif old_fams and new_fams and new_fams[0] != old_fams[0]:
        errors.append(invalid(first, go_strings(new.cluster_ips), _CHANGED))
    return errors
