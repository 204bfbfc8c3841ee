"""IPPool objects -> Pool values, pool selection (overlap / invalid) and IPPool status:
pure, no server."""

from __future__ import annotations

from typing import Any

import pytest

from lbctl.allocators.lbpool_model import PoolUsage
from lbctl.allocators.lbpools import Pool
from providers.baremetal.pools import (
    EXHAUSTED,
    READY,
    VerdictReason,
    pool_from_object,
    pool_status,
    select_pools,
)


def ippool(name: str, *addresses: str, created: str = "", **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "generation": 2}
    if created:
        meta["creationTimestamp"] = created
    return {"metadata": meta, "spec": {"addresses": list(addresses), **spec}}


@pytest.mark.parametrize(
    ("alloc", "priority"),
    [({"priority": 0}, None), ({"priority": 5}, 5), ({}, None), ({"priority": -3}, -3)],
)
def test_priority_zero_is_unset(alloc: dict[str, Any], priority: int | None) -> None:
    pool = pool_from_object(ippool("p", "192.0.2.0/28", serviceAllocation=alloc))
    assert pool.priority == priority


def test_every_field_is_read() -> None:
    pool = pool_from_object(
        ippool(
            "shop",
            "198.51.100.64-198.51.100.71",
            autoAssign=False,
            avoidBuggyIPs=True,
            serviceAllocation={
                "priority": 10,
                "namespaces": ["shop"],
                "namespaceSelectors": [{"matchLabels": {"team": "a"}}],
                "serviceSelectors": [
                    {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["x"]}]}
                ],
            },
        )
    )
    assert (pool.name, pool.addresses, pool.auto_assign, pool.avoid_buggy_ips) == (
        "shop",
        ("198.51.100.64-198.51.100.71",),
        False,
        True,
    )
    assert pool.namespaces == ("shop",)
    assert pool.allows(
        namespace="other", namespace_labels={"team": "a"}, service_labels={"tier": "x"}
    )
    assert not pool.allows(namespace="other", namespace_labels={}, service_labels={"tier": "x"})
    assert not pool.allows(namespace="shop", namespace_labels={}, service_labels={})


def test_defaults_when_fields_are_absent() -> None:
    pool = pool_from_object({"metadata": {"name": "d"}, "spec": {"addresses": ["10.0.0.0/30"]}})
    assert pool == Pool("d", ("10.0.0.0/30",))


@pytest.mark.parametrize(
    "spec",
    [
        {"addresses": "192.0.2.0/28"},
        {"addresses": ["192.0.2.0/28"], "serviceAllocation": {"priority": "high"}},
        {"addresses": ["192.0.2.0/28"], "serviceAllocation": {"serviceSelectors": [3]}},
    ],
)
def test_a_malformed_object_is_a_value_error(spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"spec\."):
        pool_from_object({"metadata": {"name": "bad"}, "spec": spec})


def test_the_younger_of_two_overlapping_pools_is_rejected_naming_the_other() -> None:
    old = ippool("old", "192.0.2.0/28", created="2026-01-01T00:00:00Z")
    young = ippool("young", "192.0.2.8-192.0.2.20", created="2026-02-01T00:00:00Z")
    fine = ippool("fine", "198.51.100.0/30", created="2026-03-01T00:00:00Z")
    for order in ([old, young, fine], [fine, young, old]):
        got = select_pools(order)
        assert [p.name for p in got.pools] == ["old", "fine"]
        verdict = got.rejected["young"]
        assert verdict.reason == VerdictReason.OVERLAP and verdict.other_pool == "old"
        assert "'old'" in verdict.message and "192.0.2.8" in verdict.message


def test_invalid_pools_are_rejected_and_the_rest_kept() -> None:
    got = select_pools(
        [
            ippool("range", "192.0.2.9-192.0.2.1"),
            ippool("junk", "not-an-ip"),
            ippool("shape", "192.0.2.0/28", serviceAllocation={"priority": "x"}),
            ippool("ok", "192.0.2.32/28"),
        ]
    )
    assert [p.name for p in got.pools] == ["ok"]
    assert {n: v.reason for n, v in got.rejected.items()} == {
        "range": VerdictReason.INVALID,
        "junk": VerdictReason.INVALID,
        "shape": VerdictReason.INVALID,
    }


def test_configured_pools_win_overlaps() -> None:
    got = select_pools([ippool("crd", "192.0.2.0/28")], static=[Pool("cfg", ("192.0.2.0/30",))])
    assert [p.name for p in got.pools] == ["cfg"]
    assert got.rejected["crd"].other_pool == "cfg"


NOW, LATER = "2026-05-01T00:00:00Z", "2026-05-02T00:00:00Z"


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_status_counts_and_conditions() -> None:
    obj = ippool("p", "192.0.2.0/30")
    st = pool_status(obj, usage=PoolUsage("p", 1, 3, 0, 0), verdict=None, now=NOW)
    assert (st["assignedIPv4"], st["availableIPv4"], st["assignedIPv6"], st["availableIPv6"]) == (
        1,
        3,
        0,
        0,
    )
    c = conditions(st)
    assert (c[READY]["status"], c[READY]["reason"], c[READY]["observedGeneration"]) == (
        "True",
        "Valid",
        2,
    )
    assert (c[EXHAUSTED]["status"], c[EXHAUSTED]["message"]) == ("False", "3 of 4 addresses free")
    full = pool_status(
        {**obj, "status": st}, usage=PoolUsage("p", 4, 0, 0, 0), verdict=None, now=LATER
    )
    c2 = conditions(full)
    assert c2[EXHAUSTED]["status"] == "True" and c2[EXHAUSTED]["reason"] == "NoFreeAddresses"
    assert c2[EXHAUSTED]["lastTransitionTime"] == LATER, "a transition gets the new time"
    assert c2[READY]["lastTransitionTime"] == NOW, "an unchanged status keeps its time"


def test_status_of_a_rejected_pool() -> None:
    got = select_pools([ippool("a", "192.0.2.0/28"), ippool("b", "192.0.2.0/29")])
    st = pool_status(ippool("b", "192.0.2.0/29"), usage=None, verdict=got.rejected["b"], now=NOW)
    c = conditions(st)
    assert (c[READY]["status"], c[READY]["reason"]) == ("False", "Overlap")
    assert "'a'" in c[READY]["message"]
    assert c[EXHAUSTED]["status"] == "False"
    assert st["availableIPv4"] == 0
