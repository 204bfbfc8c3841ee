"""Controller benchmark (not a test): convergence time, reconciles/s, RSS, node sync.

    .venv/bin/python bench/controller.py [--services 1000 10000] [--workers 4] [--json]

For each count N, three processes: the embedded API server (``lbctl apiserver``), the
controller (``lbctl controller``, in-memory provider) and this one, which only watches.
N LoadBalancer Services (``allocateLoadBalancerNodePorts: false``) and one Node are
created first; then the controller starts, and the time until every Service has its
ingress status is measured through a watch. Reconciles/s counts provider ensures (from
the controller's /metrics). Then a second Node is added and the time until every load
balancer was re-ensured is measured. Peak RSS is the controller process's VmHWM.
Targets (issue 5): 10,000 converge in <= 60 s on 2 cores, RSS <= 200 MB, node add <= 5 s.
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procstats import cpu_seconds, peak_rss_mib, start_controller
from lbctl.kube.client import NODES, SERVICES, KubeClient, connect
from lbctl.testing import APIServerProcess, free_port

CLASS = "lbctl.io/memory"
ENSURES = re.compile(
    r'^lbctl_provider_calls_total\{[^}]*operation="ensure"[^}]*outcome="success"[^}]*\} (\S+)$',
    re.M,
)


async def _create(client: KubeClient, n: int, clients: int = 8) -> None:
    names = iter(range(n))

    async def worker() -> None:
        for i in names:
            await client.create(
                SERVICES,
                {
                    "metadata": {"name": f"lb{i}"},
                    "spec": {
                        "type": "LoadBalancer",
                        "loadBalancerClass": CLASS,
                        "allocateLoadBalancerNodePorts": False,
                        "ports": [{"port": 80}],
                    },
                },
                "default",
            )

    await asyncio.gather(*(worker() for _ in range(clients)))


def _has_ingress(obj: dict[str, Any]) -> bool:
    return bool(((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress"))


async def _until_all_ready(client: KubeClient, n: int) -> None:
    """Watch (cheap for the server, unlike listing 10,000 Services again and again)."""
    items, rv = await client.list(SERVICES, "default")
    ready = {s["metadata"]["name"] for s in items if _has_ingress(s)}
    while len(ready) < n:
        async for kind, obj in client.watch(SERVICES, "default", resource_version=rv):
            if kind == "BOOKMARK":
                rv = obj["metadata"]["resourceVersion"]
                continue
            rv = obj["metadata"]["resourceVersion"]
            name = obj["metadata"]["name"]
            if kind != "DELETED" and _has_ingress(obj):
                ready.add(name)
            else:
                ready.discard(name)
            if len(ready) >= n:
                return


def _ensures(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(v) for v in ENSURES.findall(text))


def _controller(kubeconfig: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    # Addresses are only strings here (never contacted); a /16 holds 10,000.
    return start_controller(
        kubeconfig, port, workers, provider_options='{"network_v4": "100.64.0.0/16"}'
    )


async def one(n: int, workers: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as d,
        APIServerProcess(
            Path(d),
            "--service-cidrs",
            "10.96.0.0/12",
            "--log-level",
            "WARNING",
        ) as server,
    ):
        async with await connect(kubeconfig=server.kubeconfig, qps=None) as client:
            t0 = time.perf_counter()
            await _create(client, n)
            await client.create(NODES, {"metadata": {"name": "bench-node-0"}})
            created = time.perf_counter() - t0
            port = free_port()
            t0 = time.perf_counter()
            proc = _controller(server.kubeconfig, port, workers)
            try:
                await asyncio.wait_for(_until_all_ready(client, n), timeout=600)
                converge = time.perf_counter() - t0
                ensures = _ensures(port)
                t0 = time.perf_counter()
                await client.create(NODES, {"metadata": {"name": "bench-node-1"}})
                deadline = time.monotonic() + 120
                while _ensures(port) < ensures + n and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                node_sync = time.perf_counter() - t0
                rss = peak_rss_mib(proc.pid)
                cpu = {
                    "controller": round(cpu_seconds(proc.pid), 1),
                    "apiserver": round(cpu_seconds(server.proc.pid), 1) if server.proc else 0,
                    "bench": round(time.process_time(), 1),
                }
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    return {
        "services": n,
        "workers": workers,
        "create_seconds": round(created, 2),
        "converge_seconds": round(converge, 2),
        "reconciles_per_second": round(ensures / converge, 1),
        "node_add_seconds": round(node_sync, 2),
        "controller_peak_rss_mib": round(rss, 1),
        "cpu_seconds": cpu,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    results = [asyncio.run(one(n, args.workers)) for n in args.services]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print(
            f"{r['services']:>6} LoadBalancer Services: converged in {r['converge_seconds']} s "
            f"({r['reconciles_per_second']} ensures/s, {r['workers']} workers); "
            f"node add re-ensured all in {r['node_add_seconds']} s; "
            f"controller peak RSS {r['controller_peak_rss_mib']} MiB "
            f"(created in {r['create_seconds']} s); CPU seconds {r['cpu_seconds']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
