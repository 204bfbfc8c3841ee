"""The differential cases: each runs on both servers and must give the same result."""

from __future__ import annotations

from typing import Any

from tests.differential.harness import Case, Step

S = "/api/v1/namespaces/{ns}/services"
CM = "/api/v1/namespaces/{ns}/configmaps"
EPS = "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
MERGE = "application/merge-patch+json"
JSONP = "application/json-patch+json"
SMP = "application/strategic-merge-patch+json"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def svc(name: str = "s", **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def cm(name: str = "c", **extra: Any) -> dict[str, Any]:
    meta = {"name": name, **extra.pop("meta", {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, **extra}


def create(body: dict[str, Any], path: str = S, **kw: Any) -> Step:
    return Step("POST", path, body, **kw)


def get(name: str, path: str = S, **kw: Any) -> Step:
    return Step("GET", f"{path}/{name}", **kw)


def put(name: str, body: dict[str, Any], path: str = S, **kw: Any) -> Step:
    return Step("PUT", f"{path}/{name}", body, **kw)


def patch(name: str, body: Any, ctype: str = SMP, path: str = S, **kw: Any) -> Step:
    return Step("PATCH", f"{path}/{name}", body, ctype=ctype, **kw)


def delete(name: str, path: str = S, **kw: Any) -> Step:
    return Step("DELETE", f"{path}/{name}", **kw)


def c(id_: str, *steps: Step) -> Case:
    return Case(id_, steps)


LB_LOCAL = svc(type="LoadBalancer", externalTrafficPolicy="Local", selector={"a": "b"})
TWO_PORTS = [{"name": "a", "port": 80}, {"name": "b", "port": 443}]

CASES: list[Case] = [
    # -- defaulting --------------------------------------------------------------------
    c("default-clusterip", create(svc(selector={"app": "web"}))),
    c("default-nodeport", create(svc(type="NodePort"))),
    c("default-loadbalancer", create(svc(type="LoadBalancer"))),
    c("default-lb-local-healthcheck", create(LB_LOCAL)),
    c(
        "default-lb-no-nodeports",
        create(svc(type="LoadBalancer", allocateLoadBalancerNodePorts=False)),
    ),
    c("default-headless", create(svc(clusterIP="None", selector={"a": "b"}))),
    c("default-headless-selectorless", create(svc(clusterIP="None"))),
    c(
        "default-externalname",
        create(
            {
                "metadata": {"name": "x"},
                "spec": {"type": "ExternalName", "externalName": "example.org"},
            }
        ),
    ),
    c("default-client-ip-affinity", create(svc(sessionAffinity="ClientIP"))),
    c("default-named-target-port", create(svc(ports=[{"port": 80, "targetPort": "http"}]))),
    c("default-multi-port", create(svc(ports=TWO_PORTS))),
    # -- validation --------------------------------------------------------------------
    c("invalid-port-names-required", create(svc(ports=[{"port": 80}, {"port": 81}]))),
    c(
        "invalid-duplicate-port",
        create(svc(ports=[{"name": "a", "port": 80}, {"name": "b", "port": 80}])),
    ),
    c("invalid-protocol", create(svc(ports=[{"port": 80, "protocol": "HTTP"}]))),
    c("invalid-port-zero", create(svc(ports=[{"port": 0}]))),
    c("invalid-nodeport-on-clusterip", create(svc(ports=[{"port": 80, "nodePort": 30001}]))),
    c("invalid-name", create(svc(name="Bad_Name"))),
    c(
        "invalid-externalname",
        create(
            {
                "metadata": {"name": "x"},
                "spec": {"type": "ExternalName", "externalName": "not a name"},
            }
        ),
    ),
    c("invalid-require-dual-stack", create(svc(ipFamilyPolicy="RequireDualStack"))),
    c("invalid-family-not-configured", create(svc(ipFamilies=["IPv6"]))),
    c("invalid-family-policy", create(svc(ipFamilyPolicy="Sometimes"))),
    c("invalid-type", create(svc(type="Magic"))),
    c("invalid-healthcheck-on-nodeport", create(svc(type="NodePort", healthCheckNodePort=31000))),
    c("invalid-lbclass-on-clusterip", create(svc(loadBalancerClass="lbctl.io/x"))),
    c("valid-lbclass", create(svc(type="LoadBalancer", loadBalancerClass="lbctl.io/x"))),
    c("invalid-lbclass-format", create(svc(type="LoadBalancer", loadBalancerClass="no//way"))),
    c("invalid-source-ranges-on-clusterip", create(svc(loadBalancerSourceRanges=["10.0.0.0/8"]))),
    c(
        "invalid-source-range",
        create(svc(type="LoadBalancer", loadBalancerSourceRanges=["banana"])),
    ),
    c("invalid-etp-on-clusterip", create(svc(externalTrafficPolicy="Local"))),
    c("invalid-no-ports", create({"metadata": {"name": "np"}, "spec": {"selector": {"a": "b"}}})),
    # -- ClusterIP allocation ----------------------------------------------------------
    c("clusterip-requested", create(svc(clusterIP="10.96.0.10"))),
    c("clusterip-out-of-range", create(svc(clusterIP="10.1.2.3"))),
    c(
        "clusterip-taken",
        create(svc("a", clusterIP="10.96.0.11")),
        create(svc("b", clusterIP="10.96.0.11")),
    ),
    c("clusterip-kubernetes-taken", create(svc(clusterIP="10.96.0.1"))),
    c("clusterip-not-an-ip", create(svc(clusterIP="ten"))),
    c("clusterips-mismatch", create(svc(clusterIP="10.96.0.12", clusterIPs=["10.96.0.13"]))),
    # -- NodePort allocation -----------------------------------------------------------
    c("nodeport-requested", create(svc(type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))),
    c("nodeport-out-of-range", create(svc(type="NodePort", ports=[{"port": 80, "nodePort": 80}]))),
    c(
        "nodeport-taken",
        create(svc("a", type="NodePort", ports=[{"port": 80, "nodePort": 30081}])),
        create(svc("b", type="NodePort", ports=[{"port": 80, "nodePort": 30081}])),
    ),
    c(
        "nodeport-tcp-udp-share",
        create(
            svc(
                type="NodePort",
                ports=[
                    {"name": "t", "port": 53, "protocol": "TCP"},
                    {"name": "u", "port": 53, "protocol": "UDP"},
                ],
            )
        ),
    ),
    c(
        "nodeport-tcp-udp-requested",
        create(
            svc(
                type="NodePort",
                ports=[
                    {"name": "t", "port": 54, "protocol": "TCP"},
                    {"name": "u", "port": 54, "protocol": "UDP", "nodePort": 30054},
                ],
            )
        ),
    ),
    c(
        "healthcheck-requested",
        create({**LB_LOCAL, "spec": {**LB_LOCAL["spec"], "healthCheckNodePort": 30060}}),
    ),
    # -- updates -----------------------------------------------------------------------
    c(
        "update-nodeport-to-clusterip",
        create(svc(type="NodePort"), compare=False),
        patch("s", {"spec": {"type": "ClusterIP"}}, MERGE),
    ),
    c(
        "update-clusterip-to-nodeport",
        create(svc(), compare=False),
        patch("s", {"spec": {"type": "NodePort"}}, MERGE),
    ),
    c(
        "update-lb-to-clusterip",
        create(LB_LOCAL, compare=False),
        patch("s", {"spec": {"type": "ClusterIP"}}, MERGE),
    ),
    c(
        "update-clusterip-immutable",
        create(svc(clusterIP="10.96.0.20"), compare=False),
        patch("s", {"spec": {"clusterIP": "10.96.0.21", "clusterIPs": ["10.96.0.21"]}}, MERGE),
    ),
    c(
        "update-lbclass-immutable",
        create(svc(type="LoadBalancer", loadBalancerClass="lbctl.io/a"), compare=False),
        patch("s", {"spec": {"loadBalancerClass": "lbctl.io/b"}}, MERGE),
    ),
    c(
        "update-to-externalname",
        create(svc(), compare=False),
        patch("s", {"spec": {"type": "ExternalName", "externalName": "example.org"}}, MERGE),
    ),
    c(
        "update-from-externalname",
        create(
            {
                "metadata": {"name": "s"},
                "spec": {"type": "ExternalName", "externalName": "example.org"},
            },
            compare=False,
        ),
        patch(
            "s",
            {"spec": {"type": "ClusterIP", "externalName": None, "ports": [{"port": 80}]}},
            MERGE,
        ),
    ),
    c(
        "update-put-omits-allocated",
        create(svc(type="NodePort", ports=[{"port": 80, "nodePort": 30070}]), compare=False),
        put("s", svc(type="NodePort")),
    ),
    c(
        "update-stale-rv",
        create(svc(), compare=False),
        put("s", {**svc(), "metadata": {"name": "s", "resourceVersion": "1"}}),
    ),
    c("update-put-creates", put("new", svc("new"))),
    c(
        "update-healthcheck-immutable",
        create(
            {**LB_LOCAL, "spec": {**LB_LOCAL["spec"], "healthCheckNodePort": 30061}}, compare=False
        ),
        patch("s", {"spec": {"healthCheckNodePort": 30062}}, MERGE),
    ),
    # -- status ------------------------------------------------------------------------
    c(
        "status-isolation",
        create(svc(type="LoadBalancer"), compare=False),
        patch(
            "s/status",
            {
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
                "spec": {"type": "NodePort"},
            },
            MERGE,
        ),
    ),
    c(
        "status-ipmode-proxy",
        create(svc(type="LoadBalancer"), compare=False),
        patch(
            "s/status",
            {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "Proxy"}]}}},
            MERGE,
        ),
    ),
    c(
        "status-ipmode-without-ip",
        create(svc(type="LoadBalancer"), compare=False),
        patch(
            "s/status",
            {
                "status": {
                    "loadBalancer": {"ingress": [{"hostname": "lb.example.org", "ipMode": "VIP"}]}
                }
            },
            MERGE,
        ),
    ),
    c(
        "status-hostname-is-ip",
        create(svc(type="LoadBalancer"), compare=False),
        patch(
            "s/status",
            {"status": {"loadBalancer": {"ingress": [{"hostname": "192.0.2.1"}]}}},
            MERGE,
        ),
    ),
    c(
        "status-on-clusterip",
        create(svc(), compare=False),
        patch("s/status", {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}, MERGE),
    ),
    c(
        "status-main-keeps-status",
        create(svc(type="LoadBalancer"), compare=False),
        patch(
            "s",
            {
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
                "metadata": {"labels": {"a": "b"}},
            },
            MERGE,
        ),
    ),
    # -- finalizers --------------------------------------------------------------------
    c(
        "finalizer-delete-held",
        create(cm(meta={"finalizers": ["lbctl.io/f"]}), CM, compare=False),
        delete("c", CM),
        get("c", CM),
    ),
    c(
        "finalizer-removed-deletes",
        create(cm(meta={"finalizers": ["lbctl.io/f"]}), CM, compare=False),
        delete("c", CM, compare=False),
        patch("c", {"metadata": {"finalizers": None}}, MERGE, CM),
        get("c", CM),
    ),
    c(
        "finalizer-add-while-deleting",
        create(cm(meta={"finalizers": ["lbctl.io/f"]}), CM, compare=False),
        delete("c", CM, compare=False),
        patch("c", {"metadata": {"finalizers": ["lbctl.io/f", "lbctl.io/g"]}}, MERGE, CM),
    ),
    # -- errors ------------------------------------------------------------------------
    c("error-not-found", get("missing")),
    c("error-already-exists", create(svc(), compare=False), create(svc())),
    c("error-grouped-not-found", get("x", EPS)),
    c("error-namespace-missing", Step("POST", "/api/v1/namespaces/nowhere/configmaps", cm())),
    c(
        "error-namespace-mismatch",
        create({**cm(), "metadata": {"name": "c", "namespace": "other"}}, CM),
    ),
    c("error-name-mismatch", create(cm(), CM, compare=False), put("c", cm("d"), CM)),
    # -- patches -----------------------------------------------------------------------
    c(
        "patch-merge",
        create(cm(data={"a": "1", "b": "2"}), CM, compare=False),
        patch("c", {"data": {"a": None, "c": "3"}}, MERGE, CM),
    ),
    c(
        "patch-json",
        create(cm(data={"a": "1"}), CM, compare=False),
        patch(
            "c",
            [
                {"op": "add", "path": "/data/b", "value": "2"},
                {"op": "replace", "path": "/data/a", "value": "9"},
            ],
            JSONP,
            CM,
        ),
    ),
    c(
        "patch-json-fails",
        create(cm(data={"a": "1"}), CM, compare=False),
        patch("c", [{"op": "remove", "path": "/data/zzz"}], JSONP, CM),
    ),
    c(
        "patch-json-test-fails",
        create(cm(data={"a": "1"}), CM, compare=False),
        patch("c", [{"op": "test", "path": "/data/a", "value": "2"}], JSONP, CM),
    ),
    c(
        "patch-smp-ports",
        create(svc(ports=TWO_PORTS), compare=False),
        patch(
            "s",
            {
                "spec": {
                    "$setElementOrder/ports": [{"port": 443}],
                    "ports": [{"port": 443, "targetPort": 8443}, {"$patch": "delete", "port": 80}],
                }
            },
        ),
    ),
    c(
        "patch-smp-finalizers",
        create(cm(meta={"finalizers": ["a.io/x"]}), CM, compare=False),
        patch("c", {"metadata": {"finalizers": ["a.io/y"]}}, SMP, CM),
    ),
    c(
        "patch-stale-rv",
        create(cm(), CM, compare=False),
        patch("c", {"metadata": {"resourceVersion": "1"}, "data": {"x": "y"}}, MERGE, CM),
    ),
    c("patch-missing", patch("nope", {"data": {}}, MERGE, CM)),
    c("patch-bad-json", create(cm(), CM, compare=False), patch("c", "{", MERGE, CM)),
    # -- selectors ---------------------------------------------------------------------
    c(
        "select-labels",
        create(cm("a", meta={"labels": {"t": "x"}}), CM, compare=False),
        create(cm("b", meta={"labels": {"t": "y"}}), CM, compare=False),
        Step("GET", CM, query={"labelSelector": "t=x"}),
    ),
    c(
        "select-labels-set",
        create(cm("a", meta={"labels": {"t": "x"}}), CM, compare=False),
        create(cm("b"), CM, compare=False),
        Step("GET", CM, query={"labelSelector": "t notin (x)"}),
    ),
    c(
        "select-field-name",
        create(cm("a"), CM, compare=False),
        create(cm("b"), CM, compare=False),
        Step("GET", CM, query={"fieldSelector": "metadata.name=b"}),
    ),
    c("select-field-unsupported-service", Step("GET", S, query={"fieldSelector": "spec.x=1"})),
    c("select-field-unsupported-configmap", Step("GET", CM, query={"fieldSelector": "data.x=1"})),
    c(
        "select-field-service-type",
        create(svc("a", type="NodePort"), compare=False),
        create(svc("b"), compare=False),
        Step("GET", S, query={"fieldSelector": "spec.type=NodePort"}),
    ),
    c("select-bad-label", Step("GET", CM, query={"labelSelector": "a in (b"})),
    # -- watch -------------------------------------------------------------------------
    c(
        "watch-sequence",
        create(cm("a"), CM, compare=False),
        patch("a", {"data": {"k": "v"}}, MERGE, CM, compare=False),
        create(cm("b"), CM, compare=False),
        delete("a", CM, compare=False),
        Step("GET", CM, watch_from=0),
    ),
    c(
        "watch-selector-enter-leave",
        create(cm("a"), CM, compare=False),
        patch("a", {"metadata": {"labels": {"w": "1"}}}, MERGE, CM, compare=False),
        patch("a", {"metadata": {"labels": {"w": "2"}}}, MERGE, CM, compare=False),
        Step("GET", CM, query={"labelSelector": "w=1"}, watch_from=0),
    ),
    # -- tables and deletes ------------------------------------------------------------
    c(
        "table-services",
        create(svc("t", type="NodePort", selector={"a": "b"}), compare=False),
        Step("GET", S, accept=TABLE),
    ),
    c(
        "table-configmaps",
        create(cm(data={"a": "1"}), CM, compare=False),
        Step("GET", CM, accept=TABLE),
    ),
    c("delete-service-returns-it", create(svc(), compare=False), delete("s")),
    c("delete-configmap-status", create(cm(), CM, compare=False), delete("c", CM)),
    c("dry-run-create", create(svc(), query={"dryRun": "All"}), get("s")),
]
