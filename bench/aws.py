"""AWS provider benchmark (not a test): AWS calls per Service, and convergence on moto.

    .venv/bin/python bench/aws.py [--services 200] [--workers 4] [--json]

Everything runs against a moto server on 127.0.0.1, seeded like ``lbctl up`` (a VPC,
tagged subnets in three AZs, three instances) with dummy credentials.

1. Calls per Service, by operation, straight through the provider: the first ensure of
   a Service with two TCP ports (80, 443), the ensure that finds it active, an idle
   resync, a node-set change (one node fewer) and a delete.
2. Convergence: the embedded API server and ``lbctl controller --provider aws`` as
   separate processes; N Services are created, then the time until every one has its
   NLB hostname in status, and until every one is Ready (the NLB left "provisioning"),
   is measured through a watch. Also the controller's AWS calls by operation (from its
   /metrics), its peak RSS and CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3

from bench.procstats import cpu_seconds, peak_rss_mib, start_controller
from lbctl.domain.service import ObjectMeta, Service, ServicePort, ServiceSpec
from lbctl.kube.client import NODES, SERVICES, KubeClient, connect
from lbctl.testing import APIServerProcess, free_port
from providers.aws.common import is_mutation
from providers.aws.localaws import DUMMY_CREDENTIALS, LocalAWS, MotoServer, seed
from providers.aws.provider import AWSProvider
from providers.base import LoadBalancerRequest, NodeInfo

CLASS = "lbctl.io/aws-nlb"
CLUSTER = "bench"
READY = "LoadBalancerReady"
CALLS = re.compile(
    r'^lbctl_cloud_api_calls_total\{[^}]*operation="([^"]+)"[^}]*outcome="([^"]+)"[^}]*\} (\S+)$',
    re.M,
)


# --- 1. calls per Service ---------------------------------------------------------


def _nodes(local: LocalAWS, count: int | None = None) -> tuple[NodeInfo, ...]:
    return tuple(
        NodeInfo(n.name, n.provider_id, (("InternalIP", n.internal_ip),))
        for n in local.nodes[:count]
    )


def _service() -> Service:
    return Service(
        metadata=ObjectMeta(name="web", namespace="default", uid="uid-web"),
        spec=ServiceSpec(
            type="LoadBalancer",
            ports=(
                ServicePort(name="http", port=80, protocol="TCP", node_port=30080),
                ServicePort(name="https", port=443, protocol="TCP", node_port=30443),
            ),
            load_balancer_class=CLASS,
        ),
    )


def _split(calls: Counter[tuple[str, str]]) -> dict[str, Any]:
    by_op: Counter[str] = Counter()
    for (op, _), n in calls.items():
        by_op[op] += n
    mutations = sum(n for op, n in by_op.items() if is_mutation(op))
    return {
        "describes": sum(by_op.values()) - mutations,
        "mutations": mutations,
        "by_operation": dict(sorted(by_op.items())),
    }


async def calls_per_service(url: str, local: LocalAWS) -> dict[str, Any]:
    session = boto3.Session(region_name=local.region, **DUMMY_CREDENTIALS)
    provider = AWSProvider(
        cluster_name=CLUSTER, region=local.region, endpoint_url=url, session=session
    )
    svc = _service()
    full = LoadBalancerRequest(service=svc, ports=svc.spec.ports, nodes=_nodes(local))
    fewer = LoadBalancerRequest(service=svc, ports=svc.spec.ports, nodes=_nodes(local, 2))
    phases: dict[str, Any] = {}

    async def measure(name: str, coro: Any) -> Any:
        before = provider.client.calls
        t0 = time.perf_counter()
        result = await coro
        phases[name] = _split(provider.client.calls - before)
        phases[name]["seconds"] = round(time.perf_counter() - t0, 3)
        return result

    try:
        first = await measure("create (first ensure)", provider.ensure(full))
        assert first.provisioning, "moto reports a new NLB as provisioning first"
        second = await measure("ensure when it turned active", provider.ensure(full))
        assert not second.provisioning
        await measure("idle resync (ensure)", provider.ensure(full))
        await measure("node removed (update_hosts)", provider.update_hosts(fewer))
        await measure("delete", provider.delete(svc))
    finally:
        await provider.close()
    return phases


# --- 2. convergence through the controller -----------------------------------------


def _metric_calls(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    calls: Counter[tuple[str, str]] = Counter()
    for op, outcome, value in CALLS.findall(text):
        calls[(op, outcome)] += int(float(value))
    return _split(calls)


def _controller(kubeconfig: Path, port: int, workers: int, url: str) -> subprocess.Popen[bytes]:
    options = {"endpoint_url": url, "region": "us-east-1", "provisioning_requeue_seconds": 1}
    return start_controller(
        kubeconfig,
        port,
        workers,
        drop=("AWS_",),
        env_extra={k.upper(): v for k, v in DUMMY_CREDENTIALS.items()},
        provider="aws",
        cluster_name=CLUSTER,
        provider_options=json.dumps(options),
    )


def _hostname(obj: dict[str, Any]) -> bool:
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return any(i.get("hostname") for i in ingress)


def _ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == READY and c.get("status") == "True" for c in conditions)


async def _watch_until(client: KubeClient, n: int) -> tuple[float, float]:
    """Seconds until all ``n`` Services have a hostname, and until all are Ready."""
    t0 = time.perf_counter()
    items, rv = await client.list(SERVICES, "default")
    named = {s["metadata"]["name"] for s in items if _hostname(s)}
    ready = {s["metadata"]["name"] for s in items if _ready(s)}
    hostnames_at = time.perf_counter() - t0 if len(named) >= n else None
    while len(ready) < n:
        async for kind, obj in client.watch(SERVICES, "default", resource_version=rv):
            rv = obj["metadata"]["resourceVersion"]
            if kind in ("BOOKMARK", "DELETED"):
                continue
            name = obj["metadata"]["name"]
            if _hostname(obj):
                named.add(name)
            if _ready(obj):
                ready.add(name)
            if hostnames_at is None and len(named) >= n:
                hostnames_at = time.perf_counter() - t0
            if len(ready) >= n:
                break
    assert hostnames_at is not None
    return hostnames_at, time.perf_counter() - t0


async def converge(n: int, workers: int, url: str, local: LocalAWS) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as d,
        APIServerProcess(Path(d), "--log-level", "WARNING") as server,
    ):
        async with await connect(kubeconfig=server.kubeconfig, qps=None) as client:
            for node in local.nodes:
                spec = {"providerID": node.provider_id}
                await client.create(NODES, {"metadata": {"name": node.name}, "spec": spec})
                address = {"type": "InternalIP", "address": node.internal_ip}
                status = {"status": {"addresses": [address]}}
                await client.patch(NODES, node.name, status, kind="merge", subresource="status")
            for i in range(n):
                await client.create(
                    SERVICES,
                    {
                        "metadata": {"name": f"lb{i}"},
                        "spec": {
                            "type": "LoadBalancer",
                            "loadBalancerClass": CLASS,
                            "ports": [{"name": "http", "port": 80}],
                        },
                    },
                    "default",
                )
            port = free_port()
            proc = _controller(server.kubeconfig, port, workers, url)
            try:
                hostnames, ready = await asyncio.wait_for(_watch_until(client, n), timeout=900)
                calls = _metric_calls(port)
                rss = peak_rss_mib(proc.pid)
                cpu = round(cpu_seconds(proc.pid), 1)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    per_service = {k: round(v / n, 1) for k, v in calls.items() if k != "by_operation"}
    return {
        "services": n,
        "workers": workers,
        "hostnames_seconds": round(hostnames, 1),
        "ready_seconds": round(ready, 1),
        "aws_calls_per_service": per_service,
        "aws_calls_by_operation": calls["by_operation"],
        "controller_peak_rss_mib": round(rss, 1),
        "controller_cpu_seconds": cpu,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=200)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    with MotoServer() as url:
        local = seed(url, cluster_id=CLUSTER)
        phases = asyncio.run(calls_per_service(url, local))
        result = asyncio.run(converge(args.services, args.workers, url, local))
    if args.json:
        print(json.dumps({"calls_per_service": phases, "converge": result}, indent=2))
        return 0
    print("AWS calls for one Service (TCP 80 + 443, 3 nodes), straight through the provider:")
    for name, figures in phases.items():
        ops = ", ".join(f"{op} {k}" for op, k in figures["by_operation"].items()) or "none"
        print(
            f"  {name:<30} {figures['describes']:>3} describes, {figures['mutations']:>3} "
            f"mutations in {figures['seconds']} s: {ops}"
        )
    r = result
    print(
        f"{r['services']} Services through the controller ({r['workers']} workers): "
        f"every hostname in {r['hostnames_seconds']} s, every one Ready in "
        f"{r['ready_seconds']} s; AWS calls per Service {r['aws_calls_per_service']}; "
        f"controller peak RSS {r['controller_peak_rss_mib']} MiB, "
        f"CPU {r['controller_cpu_seconds']} s"
    )
    print(f"  controller calls by operation: {r['aws_calls_by_operation']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
