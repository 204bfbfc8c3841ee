"""Strategic merge patch: the built-in kinds' schemas, every directive, upstream's list
ordering, the exact bodies kubectl sends, and the errors kube-apiserver answers."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from lbctl.apimachinery.patch import (
    REJECTED,
    BadPatch,
    PatchType,
    UnprocessablePatch,
    apply_patch,
)
from lbctl.apimachinery.smp import (
    ATOMIC,
    BASE_SCHEMA,
    SET,
    SMP_SCHEMAS,
    SmpSchema,
    keyed,
    smp_schema_for,
    strategic_merge_patch,
)

SVC: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "default", "finalizers": ["a", "b"],
                 "labels": {"app": "web", "tier": "front"}},
    "spec": {
        "type": "LoadBalancer",
        "selector": {"app": "web", "track": "stable"},
        "externalIPs": ["192.0.2.1", "192.0.2.2"],
        "ports": [
            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
            {"name": "https", "port": 443, "targetPort": 443, "protocol": "TCP"},
        ],
    },
    "status": {
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "Pending"},
            {"type": "Other", "status": "True"},
        ],
        "loadBalancer": {"ingress": [{"ip": "198.51.100.1"}, {"ip": "198.51.100.2"}]},
    },
}  # fmt: skip


def smp(patch: Any, doc: dict[str, Any] | None = None, kind: str = "Service") -> dict[str, Any]:
    """``patch`` sent as a strategic merge patch body; checks the input is not modified."""
    doc = SVC if doc is None else doc
    before = copy.deepcopy(doc)
    body = patch if isinstance(patch, str) else json.dumps(patch)
    out = apply_patch(doc, body.encode(), PatchType.STRATEGIC, api_version="v1", kind=kind)
    assert doc == before
    return out


def ports(obj: dict[str, Any]) -> list[tuple[int, Any]]:
    return [(p["port"], p.get("targetPort")) for p in obj["spec"]["ports"]]


# -- the exact bodies kubectl sends --------------------------------------------------------
KUBECTL_133_APPLY = (
    '{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":'
    '"{\\"apiVersion\\":\\"v1\\",\\"kind\\":\\"Service\\",\\"metadata\\":{\\"annotations\\":{},'
    '\\"name\\":\\"web\\",\\"namespace\\":\\"default\\"},\\"spec\\":{\\"ports\\":[{\\"name\\":'
    '\\"https\\",\\"port\\":443,\\"targetPort\\":8443}]}}\\n"}},"spec":{"$setElementOrder/ports":'
    '[{"port":443}],"ports":[{"name":"https","port":443,"targetPort":8443},'
    '{"$patch":"delete","port":80}]}}'
)


def test_kubectl_apply_three_way_patch() -> None:
    out = smp(KUBECTL_133_APPLY)
    assert out["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}
    ]
    last = out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    assert json.loads(last)["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": 8443}]
    assert last.endswith("}\n")
    assert out["spec"]["selector"] == SVC["spec"]["selector"]
    assert out["metadata"]["labels"] == SVC["metadata"]["labels"]
    assert "$setElementOrder/ports" not in out["spec"]


def test_kubectl_patch_default_strategic() -> None:
    # kubectl patch service web -p '{"spec":{"ports":[{"port":80,"targetPort":9090}]}}'
    out = smp('{"spec":{"ports":[{"port":80,"targetPort":9090}]}}')
    assert ports(out) == [(80, 9090), (443, 443)]
    assert out["spec"]["ports"][0]["name"] == "http"


# -- merge lists by key --------------------------------------------------------------------
def test_ports_merge_by_port_and_new_ones_are_added() -> None:
    out = smp({"spec": {"ports": [{"port": 443, "targetPort": 8443},
                                  {"name": "dns", "port": 53, "protocol": "UDP"}]}})  # fmt: skip
    assert ports(out) == [(80, 8080), (443, 8443), (53, None)]
    assert out["spec"]["ports"][1] == {"name": "https", "port": 443, "targetPort": 8443,
                                       "protocol": "TCP"}  # fmt: skip


def test_port_delete_directive() -> None:
    out = smp({"spec": {"ports": [{"$patch": "delete", "port": 80}]}})
    assert ports(out) == [(443, 443)]
    assert smp({"spec": {"ports": [{"$patch": "delete", "port": 9}]}}) == SVC


def test_tcp_and_udp_on_one_port_are_one_element_k8s_39188() -> None:
    out = smp({"spec": {"ports": [{"port": 80, "protocol": "UDP"}]}})
    assert [(p["port"], p["protocol"]) for p in out["spec"]["ports"]] == [(80, "UDP"), (443, "TCP")]


def test_conditions_merge_by_type() -> None:
    out = smp({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": None},
                                         {"type": "New", "status": "Unknown"}]}})  # fmt: skip
    assert out["status"]["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "New", "status": "Unknown"},
        {"type": "Other", "status": "True"},
    ]


def test_owner_references_merge_by_uid() -> None:
    doc = {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]}}
    out = smp({"metadata": {"ownerReferences": [{"uid": "2", "controller": True}]}}, doc)
    assert out["metadata"]["ownerReferences"] == [
        {"uid": "1", "name": "a"}, {"uid": "2", "name": "b", "controller": True}]  # fmt: skip


def test_list_replace_directive() -> None:
    out = smp({"spec": {"ports": [{"port": 8080, "name": "alt"}, {"$patch": "replace"}]}})
    assert out["spec"]["ports"] == [{"port": 8080, "name": "alt"}]
    assert smp({"spec": {"ports": [{"$patch": "replace"}]}})["spec"]["ports"] == []


# -- atomic lists and maps -----------------------------------------------------------------
def test_atomic_lists_are_replaced() -> None:
    out = smp({"spec": {"externalIPs": ["203.0.113.9"]},
               "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.9"}]}}})  # fmt: skip
    assert out["spec"]["externalIPs"] == ["203.0.113.9"]
    assert out["status"]["loadBalancer"]["ingress"] == [{"ip": "198.51.100.9"}]


def test_null_deletes_and_maps_merge() -> None:
    out = smp({"metadata": {"labels": {"tier": None, "env": "prod"}}, "spec": {"type": None}})
    assert out["metadata"]["labels"] == {"app": "web", "env": "prod"}
    assert "type" not in out["spec"]


def test_map_replace_and_delete_directives() -> None:
    out = smp({"spec": {"selector": {"$patch": "replace", "app": "api"}}})
    assert out["spec"]["selector"] == {"app": "api"}
    out = smp({"spec": {"selector": {"$patch": "delete"}}})
    assert "selector" not in out["spec"]
    assert smp({"$patch": "delete"}) == {}


def test_merge_directive_is_the_default() -> None:
    out = smp({"spec": {"selector": {"$patch": "merge", "app": "api"}}})
    assert out["spec"]["selector"] == {"app": "api", "track": "stable"}


def test_retain_keys() -> None:
    out = smp({"spec": {"selector": {"$retainKeys": ["app", "zone"], "zone": "a"}}})
    assert out["spec"]["selector"] == {"app": "web", "zone": "a"}
    with pytest.raises(BadPatch, match="invalid patch format of retainKeys"):
        smp({"spec": {"selector": {"$retainKeys": ["app"], "zone": "a"}}})
    with pytest.raises(BadPatch, match="invalid patch format of retainKeys"):
        smp({"spec": {"selector": {"$retainKeys": "app"}}})


# -- primitive sets (finalizers) -----------------------------------------------------------
def test_finalizers_merge_as_a_set() -> None:
    out = smp({"metadata": {"finalizers": ["b", "c", "c"]}})
    assert out["metadata"]["finalizers"] == ["a", "b", "c"]
    # upstream's mergeSortedSlice: a new item with no server-side neighbour comes first
    assert smp({"metadata": {"finalizers": ["c"]}})["metadata"]["finalizers"] == ["c", "a", "b"]


def test_delete_from_primitive_list() -> None:
    doc = {"metadata": {"finalizers": ["a", "b", "c", "b"]}}
    out = smp({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "x"]}}, doc)
    assert out["metadata"] == {"finalizers": ["a", "c"]}
    out = smp({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, {"metadata": {}})
    assert out == {"metadata": {}}
    with pytest.raises(BadPatch, match="invalid patch format of primitive list"):
        smp({"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}}, doc)


def test_kubectl_apply_finalizers_patch_from_the_design_proposal() -> None:
    doc = {"metadata": {"finalizers": ["b", "e", "a", "c", "d"]}}
    patch = {
        "metadata": {
            "$setElementOrder/finalizers": ["a", "b", "f"],
            "$deleteFromPrimitiveList/finalizers": ["c"],
            "finalizers": ["f"],
        }
    }
    # The proposal's prose says e, d, a, b, f; upstream's code interleaves server-only
    # items by their live position (mergeSortedSlice), as its own tests assert below.
    assert smp(patch, doc)["metadata"]["finalizers"] == ["e", "a", "b", "f", "d"]  # fmt: skip


# -- order ---------------------------------------------------------------------------------
def test_set_element_order_reorders() -> None:
    out = smp({"spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}]}})
    assert ports(out) == [(443, 443), (80, 8080)]


ORDER_CASES = [  # upstream patch_test.go cases, as (live, patch, result) of a name-keyed list
    ("preserve the order from the patch 2",
     [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}],
     {"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}]},
     [{"name": 2, "value": "b"}, {"name": 3, "value": "c"}, {"name": 1, "value": "a"}]),
    ("merge lists of maps",
     [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}],
     {"$setElementOrder/mergingList": [{"name": 4}, {"name": 1}, {"name": 2}, {"name": 3}],
      "mergingList": [{"name": 4, "value": 4}, {"name": 3, "value": 3}]},
     [{"name": 4, "value": 4}, {"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"},
      {"name": 3, "value": 3}]),
    ("$setElementOrder with an item not in the list",
     [{"name": 1}, {"name": 3}],
     {"$setElementOrder/mergingList": [{"name": 3}, {"name": 2}, {"name": 1}],
      "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]},
     [{"name": 3, "value": 3}, {"name": 1, "value": 1}]),
    ("server-only items interleave by live order (mergeSortedSlice)",
     [{"name": n} for n in "CBDAE"],
     {"$setElementOrder/mergingList": [{"name": "A"}, {"name": "B"}],
      "mergingList": [{"name": "A", "v": 1}, {"name": "B", "v": 1}]},
     [{"name": "C"}, {"name": "D"}, {"name": "A", "v": 1}, {"name": "B", "v": 1}, {"name": "E"}]),
]  # fmt: skip
LIST_SCHEMA = SmpSchema.of({"mergingList": keyed("name"), "mergingIntList": SET})


@pytest.mark.parametrize(("live", "patch", "want"), [c[1:] for c in ORDER_CASES],
                         ids=[c[0] for c in ORDER_CASES])  # fmt: skip
def test_upstream_ordering(live: list[Any], patch: dict[str, Any], want: list[Any]) -> None:
    out = strategic_merge_patch({"mergingList": live}, patch, LIST_SCHEMA)
    assert out == {"mergingList": want}


INT_ORDER_CASES = [  # upstream patch_test.go "... int list ..." cases: (current, patch, result)
    ([1, 2, 3], {"$setElementOrder/mergingIntList": [4, 2, 1], "mergingIntList": [4],
                 "$deleteFromPrimitiveList/mergingIntList": [3]}, [4, 2, 1]),
    ([1, 3, 4, 2, 9], {"$setElementOrder/mergingIntList": [4, 2, 3, 1]}, [4, 2, 3, 1, 9]),
    ([1, 2, 9, 3, 4], {"$setElementOrder/mergingIntList": [2, 1, 4, 3]}, [2, 1, 9, 4, 3]),
    ([1, 2, 7, 9, 8, 3, 4], {"$setElementOrder/mergingIntList": [2, 1, 4, 3]},
     [2, 1, 7, 9, 8, 4, 3]),
    ([1, 2, 3, 2, 4], {"$setElementOrder/mergingIntList": [2, 1, 4, 3, 2]}, [2, 2, 1, 4, 3]),
    ([1, 2], {"$setElementOrder/mergingIntList": [1, 4, 2, 3], "mergingIntList": [4, 3]},
     [1, 4, 2, 3]),
    ([1, 2, 3, 4], {"$setElementOrder/mergingIntList": [1, 2],
                    "$deleteFromPrimitiveList/mergingIntList": [3]}, [1, 2, 4]),
]  # fmt: skip


@pytest.mark.parametrize(("current", "patch", "want"), INT_ORDER_CASES)
def test_upstream_int_list_ordering(current: list[int], patch: dict[str, Any],
                                    want: list[int]) -> None:  # fmt: skip
    out = strategic_merge_patch({"mergingIntList": current}, patch, LIST_SCHEMA)
    assert out == {"mergingIntList": want}
    keyed_patch = {k: [{"name": v} for v in vs] if "deleteFrom" not in k else None
                   for k, vs in patch.items()}  # fmt: skip
    if all(keyed_patch.values()):  # the same case on a name-keyed list
        out = strategic_merge_patch({"mergingList": [{"name": v} for v in current]},
                                    {k.replace("IntList", "List"): v
                                     for k, v in keyed_patch.items()}, LIST_SCHEMA)  # fmt: skip
        assert out == {"mergingList": [{"name": v} for v in want]}


def test_primitive_set_order() -> None:
    out = strategic_merge_patch({"mergingIntList": [1, 2, 3]}, {"mergingIntList": [3, 1]},
                                LIST_SCHEMA)  # fmt: skip
    assert out == {"mergingIntList": [2, 3, 1]}
    out = strategic_merge_patch(
        {"mergingIntList": [1, 3]}, {"$setElementOrder/mergingIntList": [3, 2, 1]}, LIST_SCHEMA
    )
    assert out == {"mergingIntList": [3, 1]}


def test_order_mismatch_is_refused() -> None:
    with pytest.raises(UnprocessablePatch, match="doesn't match \\$setElementOrder list"):
        strategic_merge_patch(
            {"mergingList": [{"name": 1}, {"name": 3}, {"name": 2}]},
            {"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}, {"name": 3}],
             "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]},
            LIST_SCHEMA,
        )  # fmt: skip
    with pytest.raises(BadPatch, match="invalid patch format of setElementOrder list"):
        smp({"spec": {"$setElementOrderports": []}})


# -- values where the object has none ------------------------------------------------------
def test_new_values_do_not_keep_directives() -> None:
    doc = {"metadata": {"name": "web"}}
    out = smp(
        {
            "spec": {
                "$setElementOrder/ports": [{"port": 80}],
                "ports": [{"port": 80, "name": None}, {"$patch": "delete", "port": 1}],
                "selector": {"$patch": "replace", "app": "x", "gone": None},
            }
        },
        doc,
    )
    assert out == {"metadata": {"name": "web"},
                   "spec": {"ports": [{"port": 80}], "selector": {"app": "x"}}}  # fmt: skip


def test_node_schema() -> None:
    node = {"spec": {"podCIDRs": ["10.0.0.0/24"], "taints": [{"key": "a", "effect": "NoSchedule"}]},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.1.1.1"},
                                     {"type": "Hostname", "address": "n1"}]}}  # fmt: skip
    out = smp({"spec": {"podCIDRs": ["fd00::/64"], "taints": [{"key": "b", "effect": "NoExecute"}]},
               "status": {"addresses": [{"type": "InternalIP", "address": "10.1.1.2"}]}},
              node, kind="Node")  # fmt: skip
    assert out["spec"] == {"podCIDRs": ["fd00::/64", "10.0.0.0/24"],  # new item first, as upstream
                           "taints": [{"key": "b", "effect": "NoExecute"}]}  # fmt: skip
    assert out["status"]["addresses"] == [{"type": "InternalIP", "address": "10.1.1.2"},
                                          {"type": "Hostname", "address": "n1"}]  # fmt: skip


def test_endpointslice_lists_are_atomic() -> None:
    eps = {"endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}],
           "ports": [{"name": "http", "port": 80}]}  # fmt: skip
    patch = {"endpoints": [{"addresses": ["10.0.0.3"]}], "ports": [{"name": "h", "port": 81}]}
    out = apply_patch(eps, json.dumps(patch), PatchType.STRATEGIC,
                      api_version="discovery.k8s.io/v1", kind="EndpointSlice")  # fmt: skip
    assert out == patch


def test_schema_table() -> None:
    svc = SMP_SCHEMAS[("v1", "Service")]
    assert svc.strategy(("spec", "ports")) == keyed("port")
    assert svc.strategy(("status", "conditions")) == keyed("type")
    assert svc.strategy(("spec", "externalIPs")) == ATOMIC
    assert svc.strategy(("metadata", "finalizers")) == SET
    node = SMP_SCHEMAS[("v1", "Node")]
    assert node.strategy(("status", "addresses")) == keyed("type")
    assert node.strategy(("spec", "taints")) == ATOMIC
    assert SMP_SCHEMAS[("v1", "Namespace")].strategy(("spec", "finalizers")) == ATOMIC
    assert SMP_SCHEMAS[("v1", "Namespace")].strategy(("status", "conditions")) == keyed("type")
    assert SMP_SCHEMAS[("coordination.k8s.io/v1", "Lease")] is BASE_SCHEMA
    assert smp_schema_for("example.com/v1", "Unknown") is BASE_SCHEMA
    assert BASE_SCHEMA.strategy(("metadata", "ownerReferences")) == keyed("uid")
    assert all(s.strategy(("metadata", "managedFields")) == ATOMIC for s in SMP_SCHEMAS.values())


# -- errors --------------------------------------------------------------------------------
def test_missing_merge_key() -> None:
    with pytest.raises(UnprocessablePatch) as info:
        smp({"spec": {"ports": [{"name": "x", "targetPort": 1}]}})
    assert (
        info.value.message
        == "map: map[name:x targetPort:1] does not contain declared merge key: port"
    )
    with pytest.raises(UnprocessablePatch, match="does not contain declared merge key: port"):
        smp({"spec": {"ports": [{"$patch": "delete", "name": "http"}]}})


def test_unknown_directive() -> None:
    with pytest.raises(UnprocessablePatch, match="unknown patch type: nuke in map: map"):
        smp({"spec": {"selector": {"$patch": "nuke"}}})
    with pytest.raises(UnprocessablePatch, match="unknown patch type: nuke"):
        smp({"spec": {"ports": [{"$patch": "nuke", "port": 80}]}})


def test_lists_of_lists_and_mixed_lists() -> None:
    with pytest.raises(UnprocessablePatch) as info:
        smp({"metadata": {"finalizers": [["x"]]}})
    assert (info.value.message, info.value.detail) == (REJECTED, "lists of lists are not supported")
    with pytest.raises(UnprocessablePatch, match="list element types are not identical"):
        smp({"metadata": {"finalizers": [{"x": 1}]}})
    with pytest.raises(UnprocessablePatch) as info:
        smp({"spec": {"ports": [80]}}, {"spec": {}})
    assert info.value.message == "expected a map[string]interface {}, but received a int64"
